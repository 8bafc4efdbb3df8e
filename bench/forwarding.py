#!/usr/bin/env python3
"""The forwarding service's costs (`make bench` runs this; alone:
`python3 bench/forwarding.py`), on every runtime present:

- CPU per request: tests/guests/forward (one inbound and one outbound
  exchange per request, through the loop's pooled client) against the echo
  server, both in front of wrk's same load (POST 128 B, 64 connections), the
  forwarder's upstream being the native echo baseline (so that only the
  forwarder's own work is counted). Process CPU time divided by requests
  answered, in turns (A B B A A B), the ratio taken within each turn.
- Guest memory per idle pooled upstream connection: the bytes the forwarder
  holds (its counting allocator, `/_stats`) after a burst of 200 concurrent
  clients, with a pool of up to 256 connections against one of at most 1;
  the difference divided by the extra pooled connections (counted with ss).

Writes its section of bench/RESULTS.md.
"""

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared helpers: Process, wrk, free_port)

ROOT = Path(__file__).resolve().parent.parent
FORWARD = run.WASM / "forward_guest.wasm"
ECHO = run.WASM / "poll_http_server.wasm"
TURNS = 3
BURST_CLIENTS = 200


def runtimes():
    listed = [("edgepoll-host", [str(run.HOST)], FORWARD, ECHO)]
    if shutil.which("wasmedge"):
        aot = run.TARGET / "bench-aot"
        aot.mkdir(exist_ok=True)
        for module in (FORWARD, ECHO):
            subprocess.run(["wasmedge", "compile", str(module), str(aot / module.name)], check=True, capture_output=True)
        listed.append(("WasmEdge AOT", ["wasmedge"], aot / FORWARD.name, aot / ECHO.name))
    return listed


def cpu_per_request(command, port):
    """CPU µs per request of the process started with `command`, under wrk."""
    server = run.Process(command, "listening on")
    try:
        run.wrk(port, 128, runs=1)  # warm up
        before = server.cpu_seconds()
        result = run.wrk(port, 128, runs=1)
        spent = server.cpu_seconds() - before
        return spent * 1e6 / result["requests"], result["rps"]
    finally:
        server.stop()


def stats(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /_stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return dict(kv.split("=") for kv in data.split(b"\r\n\r\n", 1)[1].decode().split())


def established_to(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True).stdout
    return len([l for l in out.splitlines() if l.strip()])


def pooled_memory(runtime, forward, upstream_port):
    """Live guest bytes after a burst, with a pool limit of `max_per_origin`."""
    measured = {}
    for limit in (1, 256):
        port = run.free_port()
        server = run.Process(runtime + [str(forward), "--max-per-origin", str(limit), f"127.0.0.1:{port}", f"/=http://127.0.0.1:{upstream_port}"], "listening on")
        try:
            subprocess.run(
                ["wrk", "-t1", f"-c{BURST_CLIENTS}", "-d2s", "-s", str(run.OUT / "post.lua"), f"http://127.0.0.1:{port}/"],
                capture_output=True, env={**os.environ, "BODY_BYTES": "128"}, timeout=60,
            )
            time.sleep(1)
            pooled = established_to(upstream_port)
            live = int(stats(port)["live"])
            measured[limit] = (live, pooled)
        finally:
            server.stop()
    (small, small_pool), (large, large_pool) = measured[1], measured[256]
    extra = max(large_pool - small_pool, 1)
    return (large - small) / extra, large_pool


def main():
    rows = []
    upstream_port = run.free_port()
    upstream = run.Process([str(run.TARGET / "release" / "native_echo"), f"127.0.0.1:{upstream_port}"], "listening on")
    try:
        for label, runtime, forward, echo in runtimes():
            ratios, fwd_us, echo_us = [], [], []
            for turn in range(TURNS):
                order = ["echo", "forward"] if turn % 2 == 0 else ["forward", "echo"]
                got = {}
                for which in order:
                    port = run.free_port()
                    if which == "echo":
                        command = runtime + [str(echo), f"127.0.0.1:{port}"]
                    else:
                        command = runtime + [str(forward), "--max-per-origin", "64", f"127.0.0.1:{port}", f"/=http://127.0.0.1:{upstream_port}"]
                    got[which] = cpu_per_request(command, port)
                fwd_us.append(got["forward"][0])
                echo_us.append(got["echo"][0])
                ratios.append(got["forward"][0] / got["echo"][0])
            per_idle, pooled = pooled_memory(runtime, forward, upstream_port)
            row = {
                "runtime": label,
                "echo_us": statistics.median(echo_us),
                "forward_us": statistics.median(fwd_us),
                "ratios": ratios,
                "ratio": statistics.median(ratios),
                "per_idle": per_idle,
                "pooled": pooled,
            }
            rows.append(row)
            print(f"  {label}: CPU per request echo {row['echo_us']:.1f} µs, forwarding {row['forward_us']:.1f} µs; "
                  f"ratio per turn {', '.join(f'{r:.2f}' for r in ratios)}: median {row['ratio']:.2f}; "
                  f"{per_idle:.0f} guest bytes per idle pooled connection ({pooled} pooled)", flush=True)
    finally:
        upstream.stop()
    return rows


def section(rows):
    lines = [
        "<!-- forwarding:start -->",
        "## A service that waits (`bench/forwarding.py`, part of `make bench`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. tests/guests/forward answers each request with what an "
        "upstream (the native echo baseline) said, through the loop's pooled client: one inbound and one outbound "
        "exchange per request. CPU time of the serving process per request under wrk (POST 128 B, 64 connections), "
        f"in {TURNS} turns against the echo server on the same runtime; memory from the guest's own count of "
        f"the bytes it holds after {BURST_CLIENTS} concurrent clients, with a pool of up to 256 upstream "
        "connections against one of at most 1.",
        "",
        "| runtime | echo CPU µs/request | forwarding CPU µs/request | × echo (per turn) | target ≤ 1.6× (AOT) | guest bytes per idle pooled connection | target ≤ 2 KiB |",
        "|---|---:|---:|---|---|---:|---|",
    ]
    for r in rows:
        met = r["ratio"] <= 1.6
        lines.append(
            f"| {r['runtime']} | {r['echo_us']:.1f} | {r['forward_us']:.1f} | {r['ratio']:.2f} ({', '.join(f'{x:.2f}' for x in r['ratios'])}) "
            f"| {'met' if met else 'MISSED'}{'' if r['runtime'] == 'WasmEdge AOT' else ' (not a target here)'} "
            f"| {r['per_idle']:.0f} ({r['pooled']} pooled) | {'met' if r['per_idle'] <= 2048 else 'MISSED'} |"
        )
    lines.append("<!-- forwarding:end -->")
    return "\n".join(lines)


def write(rows):
    results = ROOT / "bench" / "RESULTS.md"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    block = section(rows)
    start, end = "<!-- forwarding:start -->", "<!-- forwarding:end -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text)
    print(block)


if __name__ == "__main__":
    write(main())
