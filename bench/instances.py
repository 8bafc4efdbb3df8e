#!/usr/bin/env python3
"""`edgepoll-host --instances` (`make bench` runs this; alone:
`python3 bench/instances.py` after `make bench` built the programs), in
turns, wrk's load (POST 128 B, 64 connections, 1 thread):

- bench/cpu_server (a fixed CPU cost per request) under `--instances 1`
  and `--instances 2`: whether the second core is used;
- the echo server run plainly, under `--instances 1` (what the supervisor
  costs a single instance: it should cost nothing) and `--instances 2`
  (for information: wrk itself takes most of the second core here).

Writes its section of bench/RESULTS.md.
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy  # noqa: E402  (measure, WORK)
import run  # noqa: E402

TURNS = 3
# The echo servers' turns: "not slower" is a ratio near 1, where this
# machine's noise between two runs is ±10% or more.
ECHO_TURNS = 5
# "Not slower": the median of the turns' ratios at least this.
NOT_SLOWER = 0.9


def in_turns(commands, turns=TURNS):
    """{label: [wrk result per turn]} for `commands` {label: f(port)}, the
    order rotating each turn."""
    labels = list(commands)
    got = {label: [] for label in labels}
    for turn in range(turns):
        for label in labels[turn % len(labels):] + labels[:turn % len(labels)]:
            start = lambda port, label=label: start_server(commands[label](port), label)
            got[label].append(proxy.measure(start))
    return got


def start_server(command, label):
    """Ready once every instance says it listens: under `--instances N`
    each prints `[i] listening on ADDR` (an instance's error line would
    also begin with `[i]`)."""
    if "--instances" not in command:
        return run.Process(command, "listening on")
    count = int(command[command.index("--instances") + 1])
    if count == 1:
        return run.Process(command, "listening on")
    prefixes = tuple(f"[{i}] listening on" for i in range(count))
    return run.Process(command, prefixes, ready_lines=count)


def ratio(got, a, b):
    ratios = [x["rps"] / y["rps"] for x, y in zip(got[a], got[b])]
    return statistics.median(ratios), ratios


def main():
    print("edgepoll-host --instances (bench/instances.py):", flush=True)
    host, cpu, echo = str(run.HOST), str(proxy.CPU_SERVER), str(run.WASM / "poll_http_server.wasm")
    cpu_runs = in_turns({
        "cpu_server, --instances 1": lambda port: [host, "--instances", "1", cpu, f"127.0.0.1:{port}", "--work", proxy.WORK],
        "cpu_server, --instances 2": lambda port: [host, "--instances", "2", cpu, f"127.0.0.1:{port}", "--work", proxy.WORK],
    })
    echo_runs = in_turns({
        "echo, plain": lambda port: [host, echo, f"127.0.0.1:{port}"],
        "echo, --instances 1": lambda port: [host, "--instances", "1", echo, f"127.0.0.1:{port}"],
        "echo, --instances 2": lambda port: [host, "--instances", "2", echo, f"127.0.0.1:{port}"],
    }, turns=ECHO_TURNS)
    cores = ratio(cpu_runs, "cpu_server, --instances 2", "cpu_server, --instances 1")
    single = ratio(echo_runs, "echo, --instances 1", "echo, plain")
    double = ratio(echo_runs, "echo, --instances 2", "echo, plain")
    rows = []
    for got in (cpu_runs, echo_runs):
        for label, results in got.items():
            rows.append((label, statistics.median(r["rps"] for r in results),
                         statistics.median(r["p99_us"] for r in results) / 1000,
                         sum(r["errors"] + r["non_2xx"] for r in results)))
            print(f"  {label}: {rows[-1][1]:.0f} requests/s, p99 {rows[-1][2]:.2f} ms", flush=True)
    print(f"  --instances 2 / 1 on cpu_server: {cores[0]:.2f} (per turn {', '.join(f'{x:.2f}' for x in cores[1])}); "
          f"echo --instances 1 / plain: {single[0]:.2f} (per turn {', '.join(f'{x:.2f}' for x in single[1])})", flush=True)
    write(rows, cores, single, double)


def write(rows, cores, single, double):
    lines = [
        "<!-- instances:start -->",
        "## edgepoll-host --instances (`bench/instances.py`, part of `make bench`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. wrk (POST 128 B, 64 connections, 1 thread), "
        f"{TURNS} turns for cpu_server and {ECHO_TURNS} for the echo server, the order rotating; medians. bench/cpu_server does `--work {proxy.WORK}` rounds of "
        "a mixing function per request.",
        "",
        "| server | requests/s | p99 ms | errors |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {label} | {rps:.0f} | {p99:.2f} | {errors} |" for label, rps, p99, errors in rows]
    lines += [
        "",
        f"- `--instances 2` against `--instances 1` on cpu_server: **{cores[0]:.2f}×** (per turn "
        f"{', '.join(f'{x:.2f}' for x in cores[1])}; target ≥ 1.7×: {'met' if cores[0] >= 1.7 else 'MISSED'}).",
        f"- The echo server under `--instances 1` against run plainly: **{single[0]:.2f}×** (per turn "
        f"{', '.join(f'{x:.2f}' for x in single[1])}; target: not slower, within this machine's noise, "
        f"≥ {NOT_SLOWER}×: {'met' if single[0] >= NOT_SLOWER else 'MISSED'}).",
        f"- The echo server under `--instances 2` against run plainly: {double[0]:.2f}× (per turn "
        f"{', '.join(f'{x:.2f}' for x in double[1])}): the load generator needs a core of its own, so a "
        "cheap service gains little on a 2-core machine.",
        "<!-- instances:end -->",
    ]
    run.write_section("instances", "\n".join(lines))


if __name__ == "__main__":
    main()
