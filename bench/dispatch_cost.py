#!/usr/bin/env python3
"""What one Wasm instruction costs WasmEdge's interpreter, by how much code runs.

Builds modules whose only function loops over a body of N simple integer
instructions (local.get/set/tee, i32 arithmetic and compares, i32.load8_u,
blocks with br_if), picked at random from a fixed seed so that the body does
not repeat itself, and times `wasmedge` running each. The instruction count is
WasmEdge's own (`--enable-instruction-count`, in a separate run: counting
costs time). A small body is a tight loop, as byte-at-a-time parsing is; a
body of thousands of instructions that each run once per pass is what
straight-line request handling looks like to the interpreter.

Run alone: `python3 bench/dispatch_cost.py` (wasmedge on PATH).
"""

import random
import subprocess
import tempfile
import time
from pathlib import Path

BODY_SIZES = [50, 1000, 3000, 10000]
# Instructions per timed run: long enough that start-up is a few percent.
TOTAL_INSTRUCTIONS = 30_000_000
SEED = 9


def leb_u(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def leb_s(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        done = (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40)
        out.append(byte if done else byte | 0x80)
        if done:
            return bytes(out)


def section(kind, payload):
    return bytes([kind]) + leb_u(len(payload)) + payload


def vector(items):
    return leb_u(len(items)) + b"".join(items)


def name(text):
    return leb_u(len(text)) + text.encode()


LOCAL_GET, LOCAL_SET, LOCAL_TEE, I32_CONST = 0x20, 0x21, 0x22, 0x41


def unit(rng):
    """A few instructions that leave the stack as they found it; local 0 is
    the loop counter and is never written here."""
    a, b, c = (rng.randint(1, 6) for _ in range(3))
    kind = rng.randrange(6)
    if kind == 0:  # c = a + b
        return bytes([LOCAL_GET, a, LOCAL_GET, b, 0x6A, LOCAL_SET, c])
    if kind == 1:  # c = a ^ k
        return bytes([LOCAL_GET, a, I32_CONST]) + leb_s(rng.randint(0, 1000)) + bytes([0x73, LOCAL_SET, c])
    if kind == 2:  # c = a == 0
        return bytes([LOCAL_GET, a, 0x45, LOCAL_SET, c])
    if kind == 3:  # block { if a break; c = b }
        return bytes([0x02, 0x40, LOCAL_GET, a, 0x0D, 0x00, LOCAL_GET, b, LOCAL_SET, c, 0x0B])
    if kind == 4:  # c = a; c = a < b
        return bytes([LOCAL_GET, a, LOCAL_TEE, c, LOCAL_GET, b, 0x49, LOCAL_SET, c])
    # c = memory[16 + (a & 255)]
    return bytes([LOCAL_GET, a, I32_CONST]) + leb_s(255) + bytes([0x71, 0x2D, 0x00, 0x10, LOCAL_SET, c])


def module(body_units, iterations):
    body = b"".join(body_units)
    code = (
        vector([bytes([7, 0x7F])])  # seven i32 locals
        + bytes([I32_CONST]) + leb_s(iterations) + bytes([LOCAL_SET, 0])
        + bytes([0x03, 0x40]) + body  # loop
        + bytes([LOCAL_GET, 0, I32_CONST, 1, 0x6B, LOCAL_TEE, 0, 0x0D, 0x00, 0x0B])
        + bytes([0x0B])
    )
    return (
        b"\0asm\x01\0\0\0"
        + section(1, vector([bytes([0x60, 0, 0])]))  # type () -> ()
        + section(3, vector([leb_u(0)]))  # one function of type 0
        + section(5, vector([bytes([0x00, 1])]))  # memory, one page
        + section(7, vector([name("_start") + bytes([0x00, 0]), name("memory") + bytes([0x02, 0])]))
        + section(10, vector([leb_u(len(code)) + code]))
    )


def instruction_count(path):
    out = subprocess.run(["wasmedge", "--enable-instruction-count", str(path)], capture_output=True, text=True, check=True, timeout=1200)
    text = out.stdout + out.stderr
    line = next(l for l in text.splitlines() if "instructions count:" in l)
    return int(line.rsplit(":", 1)[1])


def best_time(path, runs=3):
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["wasmedge", str(path)], check=True, timeout=1200)
        best = min(best, time.perf_counter() - started)
    return best


def measure():
    """Rows of (body size in instructions, ns per executed instruction)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in BODY_SIZES:
            rng = random.Random(SEED)
            units, n = [], 0
            while n < size:
                u = unit(rng)
                units.append(u)
                n = sum(len(x) for x in units) // 2  # about two bytes per instruction
            iterations = max(1000, TOTAL_INSTRUCTIONS // size)
            paths = {}
            for label, iters in [("one", 1), ("two", 2), ("run", iterations), ("start", 1)]:
                paths[label] = Path(tmp) / f"body{size}_{label}.wasm"
                paths[label].write_bytes(module(units, iters))
            per_pass = instruction_count(paths["two"]) - instruction_count(paths["one"])
            executed = instruction_count(paths["one"]) + (iterations - 1) * per_pass
            seconds = best_time(paths["run"]) - best_time(paths["start"])
            rows.append({"body": per_pass, "ns_per_instruction": seconds / executed * 1e9})
    return rows


if __name__ == "__main__":
    for row in measure():
        print(f"loop body of {row['body']:6d} instructions: {row['ns_per_instruction']:5.2f} ns per instruction")
