#!/usr/bin/env python3
"""System calls per proxied request, by kind, for each proxy of
bench/proxy.py (nginx, examples/proxy on edgepoll-host and on WasmEdge AOT,
and the byte pipes measured beside them) under its load (POST 128 B, 64 kept-alive connections, in front of the
native echo baseline). Counted by `perf stat` on the proxy process's
syscall tracepoints while wrk runs, so that what a runtime adds (WasmEdge's
`poll_oneoff` calls `epoll_ctl` once per subscription and `ioctl` once per
read event) shows beside what nginx makes.

Not part of `make bench`: it needs `perf` (Debian: `apt-get install -y
linux-perf`) and root (the syscall tracepoints are root's to read). Run
`make bench` first to build the programs, then, as root, `python3
bench/syscalls.py`. Prints a table; writes nothing.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy  # noqa: E402  (the proxies and how to start them)
import run  # noqa: E402  (Process, wrk, free_port)

SECONDS = 3
# FIONREAD: how WasmEdge's poll_oneoff learns how many bytes a read event has.
FIONREAD = 0x541B
# (column, tracepoint, filter): each counted on its own. A tracepoint this
# kernel lacks makes perf refuse to start, and says which.
COUNTED = [
    ("send", "syscalls:sys_enter_sendmsg", None),
    ("send", "syscalls:sys_enter_sendto", None),
    ("send", "syscalls:sys_enter_writev", None),
    ("send", "syscalls:sys_enter_write", None),
    ("receive", "syscalls:sys_enter_recvmsg", None),
    ("receive", "syscalls:sys_enter_recvfrom", None),
    ("receive", "syscalls:sys_enter_readv", None),
    ("receive", "syscalls:sys_enter_read", None),
    ("epoll_wait", "syscalls:sys_enter_epoll_wait", None),
    ("epoll_wait", "syscalls:sys_enter_epoll_pwait", None),
    ("epoll_ctl add", "syscalls:sys_enter_epoll_ctl", "op == 1"),
    ("epoll_ctl del", "syscalls:sys_enter_epoll_ctl", "op == 2"),
    ("epoll_ctl mod", "syscalls:sys_enter_epoll_ctl", "op == 3"),
    ("ioctl FIONREAD", "syscalls:sys_enter_ioctl", f"cmd == {FIONREAD}"),
    ("getsockopt", "syscalls:sys_enter_getsockopt", None),
    ("all", "raw_syscalls:sys_enter", None),
]
COUNTED_COLUMNS = list(dict.fromkeys(column for column, _, _ in COUNTED))
# "other": every call not in a column of its own (timers, accepts).
COLUMNS = COUNTED_COLUMNS[:-1] + ["other", "all", "requests per epoll_wait"]


def counted_load(pid, port):
    """Runs wrk against `port` for SECONDS while perf counts each tracepoint
    of process `pid`: (the counts, the requests wrk had answered)."""
    with tempfile.NamedTemporaryFile("r", suffix=".csv") as out:
        command = ["perf", "stat", "-x", ",", "-o", out.name, "-p", str(pid)]
        for _, event, where in COUNTED:
            command += ["-e", event] + (["--filter", where] if where else [])
        command += ["--"] + run.wrk_command(port, SECONDS)
        done = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 60,
                              env={**os.environ, "BODY_BYTES": "128"})
        if done.returncode != 0:
            raise RuntimeError(f"perf stat failed (bench/syscalls.py runs as root): {done.stderr.strip()}")
        rows = [line.split(",") for line in out.read().splitlines() if line and not line.startswith("#")]
    # "<not counted>": no such call while it ran.
    counts = [int(row[0]) if row[0].isdigit() else 0 for row in rows]
    if len(counts) != len(COUNTED):
        raise RuntimeError(f"perf stat gave {len(counts)} counts for {len(COUNTED)} events")
    return counts, run.wrk_result(done.stdout)["requests"]


def per_request(start):
    """System calls per request, by column, of what `start(port)` starts."""
    port = run.free_port()
    server = start(port)
    try:
        run.wrk(port, 128, runs=1)
        counts, requests = counted_load(server.proc.pid, port)
    finally:
        server.stop()
    got = dict.fromkeys(COLUMNS, 0.0)
    for (column, _, _), n in zip(COUNTED, counts):
        got[column] += n / requests
    got["other"] = max(0.0, got["all"] - sum(got[c] for c in COUNTED_COLUMNS[:-1]))
    got["requests per epoll_wait"] = 1 / got["epoll_wait"] if got["epoll_wait"] else 0.0
    return got


def main():
    if shutil.which("perf") is None:
        sys.exit("bench/syscalls.py needs perf: apt-get install -y linux-perf")
    upstream_port = run.free_port()
    upstream = run.Process([str(run.TARGET / "release" / "native_echo"), f"127.0.0.1:{upstream_port}"], "listening on")
    try:
        rows = [(label, per_request(start)) for label, start in proxy.proxies(upstream_port)]
    finally:
        upstream.stop()
    print("System calls per proxied request (POST 128 B, 64 connections):")
    print("| proxy | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for label, got in rows:
        print(f"| {label} | " + " | ".join(f"{got[c]:.2f}" if c != COLUMNS[-1] else f"{got[c]:.0f}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
