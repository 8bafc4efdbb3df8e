#!/usr/bin/env python3
"""Where a server's Wasm instructions go, per request: a profile that holds
still from run to run, unlike time on this machine.

    python3 bench/profile.py [--proxy] [WASM] [--by functions|lines|calls|copies|control] [--match REGEX] [--top N]

The module (the echo server by default; with --proxy, examples/proxy in front
of the native echo baseline) is instrumented by bench/wasm_profile (every
straight run of code counts its executions), served 2000 and then 12000
requests by bench/loadgen (64 connections, POST 128 B) under WasmEdge's
interpreter (edgepoll-host without `wasmedge` on PATH, whose faster rounds
batch requests differently: a percent or two apart), and the difference over 10000 is what one request costs; start-up and
connection set-up cancel out. Each instruction is then placed in the source
through the module's DWARF (`llvm-symbolizer`, Debian package `llvm`):

- `functions`: per function as compiled, what is inlined into it included.
- `lines`: per line of this repository's code, the innermost that the
  instruction was inlined from.
- `calls`: each call site executed, with its callee and where it is (those
  whose callee matches --match, e.g. `__rust_alloc` for allocations).
- `copies`: each `memory.copy` executed (under WasmEdge's AOT code a call
  into the runtime: 11 ns to copy 12 bytes, against under 2 for loads and
  stores), where, and its length when that is a constant: the move of a
  value over 64 bytes, which a wasm32 build makes with `memory.copy`.
- `control`: per function, how many of its instructions are control flow
  (`block`, `loop`, `end`, `br`, `br_if`, `br_table`, `return`, read from
  `llvm-objdump -d`). The interpreter executes each: a hot loop with many
  ways out opens a `block` for each on every pass (the request handler's
  state match opened 26), which moving the rare ways out of line saves.

Build first: `make build` and `cargo build --release --manifest-path
bench/Cargo.toml --target-dir target -p wasm_profile -p loadgen -p
native_echo`. The counts are the module's own instructions, a little under
what WasmEdge's `--enable-instruction-count` reports for the same requests.
"""

import argparse
import collections
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402

PROFILER = run.TARGET / "release" / "wasm_profile"
OUT = run.TARGET / "profile"


def instrument(wasm):
    OUT.mkdir(parents=True, exist_ok=True)
    counted = OUT / wasm.name
    subprocess.run([str(PROFILER), str(wasm), str(counted)], check=True)
    runs, calls, copies, names = [], {}, {}, {}
    for line in open(f"{counted}.map"):
        kind, rest = line.rstrip("\n").split(" ", 1)
        if kind == "run":
            runs.append([int(o) for o in rest.split(" ", 1)[1].split(",")])
        elif kind == "call":
            at, callee = rest.split()
            calls[int(at)] = int(callee)
        elif kind == "copy":
            at, size = rest.split()
            copies[int(at)] = size
        elif kind == "func":
            index, name = rest.split(" ", 1)
            names[int(index)] = name
    return counted, runs, calls, copies, names


def counts(counted, requests, runs, upstream):
    """How often each run executed while the server answered `requests`."""
    port = run.free_port()
    args = [f"127.0.0.1:{port}"]
    if upstream is not None:
        args = ["--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream}"]
    runtime = [shutil.which("wasmedge")] if shutil.which("wasmedge") else [str(run.HOST)]
    command = runtime + [str(counted)] + args + ["--exit-after", str(requests)]
    out = run.exit_after(command, port, requests)
    at = out.find(b"WXCOUNTS")
    if at < 0 or len(out) < at + 8 + 8 * len(runs):
        raise RuntimeError(f"no counts from {counted.name} (did it exit through proc_exit?)")
    return struct.unpack_from(f"<{len(runs)}q", out, at + 8)


def symbolize(wasm, offsets):
    """For each code offset, its inline chain, innermost first: (function, file, line)."""
    if not shutil.which("llvm-symbolizer"):
        sys.exit("profile.py needs llvm-symbolizer: apt-get install -y llvm")
    out = subprocess.run(
        ["llvm-symbolizer", f"--obj={wasm}", "-i", "-C"],
        input="".join(f"0x{o:x}\n" for o in offsets), capture_output=True, text=True, check=True,
    ).stdout
    chains = []
    for block in out.split("\n\n")[: len(offsets)]:
        lines = [l for l in block.strip().split("\n") if l]
        chain = []
        for i in range(0, len(lines) - 1, 2):
            where = lines[i + 1].rsplit(":", 2)
            chain.append((re.sub(r"<.*", "", lines[i]), where[0], where[1] if len(where) > 1 else "0"))
        chains.append(chain)
    return chains


def ours(path):
    root = str(run.ROOT) + "/"
    return path.startswith(root) and "/.cargo/" not in path


def place(chain):
    """The innermost frame in this repository's code, as `file:line`."""
    for function, path, line in chain:
        if ours(path):
            return f"{path[len(str(run.ROOT)) + 1:]}:{line}"
    return f"{chain[0][1].rsplit('/', 1)[-1]}:{chain[0][2]}" if chain else "?"


CONTROL = {"block", "loop", "end", "br", "br_if", "br_table", "return"}


def print_control(wasm, per, top):
    """Per function: its control-flow instructions per request, of all."""
    if not shutil.which("llvm-objdump"):
        sys.exit("profile.py --by control needs llvm-objdump: apt-get install -y llvm")
    listing = subprocess.run(["llvm-objdump", "-d", str(wasm)], capture_output=True, text=True, check=True).stdout
    control, total = collections.Counter(), collections.Counter()
    function = None
    for line in listing.splitlines():
        if line.endswith(">:"):
            function = line.split("<", 1)[1][:-2]
            continue
        m = re.match(r"\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*(\S+)", line)
        if m and function and int(m.group(1), 16) in per:
            count = per[int(m.group(1), 16)]
            total[function] += count
            if m.group(2) in CONTROL:
                control[function] += count
    shown = control.most_common(top)
    names = subprocess.run(["c++filt"], input="\n".join(f for f, _ in shown), capture_output=True, text=True).stdout.splitlines()
    print(f"{sum(control.values()):.0f} control-flow instructions per request of {sum(total.values()):.0f}")
    for (function, count), name in zip(shown, names):
        name = re.sub(r"::h[0-9a-f]{16}$", "", name)
        print(f"{count:9.2f} of {total[function]:9.2f}  {name[-90:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wasm", nargs="?", type=Path)
    parser.add_argument("--proxy", action="store_true")
    parser.add_argument("--by", choices=["functions", "lines", "calls", "copies", "control"], default="functions")
    parser.add_argument("--match", default="")
    parser.add_argument("--top", type=int, default=40)
    options = parser.parse_args()
    wasm = options.wasm or run.WASM / ("proxy.wasm" if options.proxy else "poll_http_server.wasm")
    for tool in [PROFILER, run.LOADGEN] + ([] if shutil.which("wasmedge") else [run.HOST]):
        if not tool.exists():
            sys.exit(f"{tool} is missing: see the build line in bench/profile.py")
    counted, runs, calls, copies, names = instrument(wasm)
    upstream, port = None, None
    if options.proxy:
        port = run.free_port()
        upstream = run.Process([str(run.TARGET / "release" / "native_echo"), f"127.0.0.1:{port}"], "listening on")
    try:
        before = counts(counted, 2000, runs, port)
        after = counts(counted, 12000, runs, port)
    finally:
        if upstream:
            upstream.stop()
    per = collections.Counter()
    for offsets, a, b in zip(runs, before, after):
        if b != a:
            for o in offsets:
                per[o] += (b - a) / 10000
    total = sum(per.values())
    print(f"{wasm.name}: {total:.0f} Wasm instructions per request")
    rows = collections.Counter()
    if options.by == "control":
        return print_control(wasm, per, options.top)
    if options.by in ("functions", "lines"):
        offsets = sorted(per)
        for o, chain in zip(offsets, symbolize(wasm, offsets)):
            key = chain[-1][0] if options.by == "functions" and chain else place(chain)
            rows[key] += per[o]
    else:
        if options.by == "calls":
            sites = [o for o in calls if o in per]
            pattern = re.compile(options.match)
            def demangle(name):
                text = subprocess.run(["c++filt"], input=name, capture_output=True, text=True).stdout
                return re.sub(r"::h[0-9a-f]{16}$", "", text.strip())

            callee = {o: demangle(names.get(calls[o], f"import {calls[o]}")) for o in sites}
            sites = [o for o in sites if pattern.search(callee[o])]
        else:
            sites = [o for o in copies if o in per]
        for o, chain in zip(sites, symbolize(wasm, sites)):
            mine = " < ".join(f"{f}@{p.rsplit('/', 1)[-1]}:{l}" for f, p, l in chain if ours(p))
            what = callee[o][-60:] if options.by == "calls" else f"memory.copy of {copies[o]} B".replace(" - B", " any length")
            rows[f"{what}  {mine or place(chain)}"] += per[o]
        print(f"{sum(rows.values()):.2f} per request")
    for key, value in rows.most_common(options.top):
        print(f"{value:9.2f}  {key}")


if __name__ == "__main__":
    main()
