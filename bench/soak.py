#!/usr/bin/env python3
"""`make soak`: the echo server under a million mixed requests on every runtime
present (edgepoll-host; WasmEdge AOT when `wasmedge` is on PATH), then the
same through a streaming forwarding service (tests/guests/forward --stream,
the loop's own client) in front of the echo server, then through
examples/proxy in front of two echo servers, one of them restarted during
the warm-up (the requests it had in flight fail cleanly: 502/504 or a cut connection,
counted, never a wrong byte), driven by
bench/soak (one mio event loop; every body compared byte for byte; faults mixed
in). Samples the runtime's RSS at the start, after the warm-up, at the peak and
after the load stops, and fails if the end is more than 10% above the level
after the warm-up. Writes its section of bench/RESULTS.md.

SOAK_SEED replays a run (the seed is printed); SOAK_REQUESTS changes the count.
"""

import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import run  # the shared helpers (aot); this directory is the script's own

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
HOST = TARGET / "release" / "edgepoll-host"
WASM = TARGET / "wasm32-wasip1" / "release" / "poll_http_server.wasm"
FORWARD = TARGET / "wasm32-wasip1" / "release" / "forward_guest.wasm"
PROXY = TARGET / "wasm32-wasip1" / "release" / "proxy.wasm"
SOAK = TARGET / "release" / "soak"
REQUESTS = int(os.environ.get("SOAK_REQUESTS", "1000000"))
# Requests done when the proxy's upstream is restarted (within the warm-up).
RESTART_AT = REQUESTS * 15 // 100
# Short timeouts, so that the faults' answers arrive within the run.
IDLE_TIMEOUT = 2
HEADER_TIMEOUT = 3
# RSS after the load may exceed the level after the warm-up by this much.
RSS_GROWTH = 0.10
# The most one run's load may take before it is killed (and fails).
LOAD_LIMIT_SECONDS = 3600
SETTLE_SECONDS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field="VmRSS:"):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def guest_kib(path):
    try:
        return int(path.read_text().strip()) // 1024
    except (OSError, ValueError):
        return 0


class Sampler(threading.Thread):
    """The server's RSS every 100 ms; keeps the latest and the highest."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.latest, self.peak, self.stopped = pid, 0, 0, False

    def run(self):
        while not self.stopped:
            self.latest = rss_kib(self.pid)
            self.peak = max(self.peak, self.latest)
            time.sleep(0.1)


def answers(port):
    """Whether the server still answers a plain GET."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.startswith(b"HTTP/1.1 200 ")
    except OSError:
        return False


def start_upstream(runtime_command, echo, port=None):
    """The echo server as an upstream (on `port`, or a free one); returns it
    and its port. A port just given up may take a moment to bind again."""
    port = port or free_port()
    for _ in range(50):
        upstream = subprocess.Popen(
            runtime_command + [str(echo), f"127.0.0.1:{port}", "--idle-timeout", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        )
        # Killed if it never starts: the read then ends.
        watchdog = threading.Timer(120, upstream.kill)
        watchdog.start()
        started = upstream.stdout.readline().startswith("listening on")
        watchdog.cancel()
        if started:
            return upstream, port
        upstream.kill()
        upstream.wait()
        time.sleep(0.1)
    raise RuntimeError("the upstream echo server did not start")


class Restarter:
    """Restarts an upstream once, at 15% of the run, in a thread (the load
    goes on meanwhile): killed, then started again on its port. Within the
    warm-up (the first 30%), as the warm-up is to meet every kind of memory
    use of the run: the queue that builds while one upstream is away too."""

    def __init__(self, runtime_command, echo, upstream, port):
        self.runtime_command, self.echo, self.upstream, self.port = runtime_command, echo, upstream, port
        self.thread = None
        # What went wrong in the restart, if anything: the run fails on it.
        self.error = None
        # Set by `stop`: an upstream the restart starts after it is killed
        # at once, not left running.
        self.stopped = False
        self.lock = threading.Lock()

    def on_progress(self, completed):
        if self.thread is None and completed >= RESTART_AT:
            self.thread = threading.Thread(target=self.restart, daemon=True)
            self.thread.start()

    def restart(self):
        try:
            self.upstream.kill()
            self.upstream.wait()
            print(f"  upstream on port {self.port} killed", flush=True)
            time.sleep(1)
            upstream, _ = start_upstream(self.runtime_command, self.echo, self.port)
            with self.lock:
                if self.stopped:
                    upstream.kill()
                    upstream.wait()
                    return
                self.upstream = upstream
            print(f"  upstream on port {self.port} started again", flush=True)
        except Exception as e:  # noqa: BLE001 - kept for the report
            self.error = e

    def stop(self):
        if self.thread:
            self.thread.join(timeout=300)
        with self.lock:
            self.stopped = True
            self.upstream.kill()
            self.upstream.wait()


def soak(label, launch, seed, restarter=None):
    """Soaks the server `launch(addr)` starts; with a `restarter`, one of
    its upstreams is restarted during the warm-up and upstream failures are
    counted."""
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    # edgepoll-host reports the guest's linear memory size here (WasmEdge has no such report).
    memory_dir = tempfile.mkdtemp()
    memory_file = Path(memory_dir) / "guest-memory"
    server = subprocess.Popen(
        launch(f"127.0.0.1:{port}") + ["--idle-timeout", str(IDLE_TIMEOUT), "--header-timeout", str(HEADER_TIMEOUT)],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "EDGEPOLL_HOST_MEMORY_FILE": str(memory_file)},
    )
    load_started = []
    try:
        return run_soak(label, server, load_started, port, log, memory_file, seed, restarter)
    finally:
        # Whatever happened: nothing is left running, nothing left behind.
        for proc in [server] + load_started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(memory_dir, ignore_errors=True)


def run_soak(label, server, load_started, port, log, memory_file, seed, restarter):
    """The soak of `soak`, on a started `server`; the load generator goes
    into `load_started` as it starts."""
    lines = []
    reader = threading.Thread(target=lambda: lines.append(server.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=120)
    first = lines[0] if lines else ""
    if not first.startswith("listening on"):
        raise RuntimeError(f"{label}: the server did not start: {first!r}")
    sampler = Sampler(server.pid)
    sampler.start()
    time.sleep(0.3)
    row = {"runtime": label, "rss_start": rss_kib(server.pid)}
    print(f"\n== {label}: {REQUESTS} requests, seed {seed}", flush=True)
    load = subprocess.Popen(
        [str(SOAK), f"127.0.0.1:{port}", "--seed", str(seed), "--requests", str(REQUESTS),
         "--idle-timeout", str(IDLE_TIMEOUT), "--header-timeout", str(HEADER_TIMEOUT)]
        # Failures are the restart's only from the kill on, and for a
        # minute (the load generator's FAILURE_WINDOW).
        + (["--upstream-failures", "--failures-from", str(RESTART_AT)] if restarter else []),
        stdout=subprocess.PIPE, text=True,
    )
    load_started.append(load)
    # The load generator ends itself on a stall (60 s without progress);
    # this bounds the run should it not.
    watchdog = threading.Timer(LOAD_LIMIT_SECONDS, load.kill)
    watchdog.start()
    result = None
    for line in load.stdout:
        kind, _, data = line.partition(" ")
        if kind == "warmup":
            row["rss_warm"] = rss_kib(server.pid)
            row["guest_warm"] = guest_kib(memory_file)
            print(f"  warm-up done: {data.strip()}; RSS {row['rss_warm'] / 1024:.1f} MiB", flush=True)
        elif kind == "progress":
            print(f"  {data.strip()}; RSS {sampler.latest / 1024:.1f} MiB", flush=True)
            if restarter:
                restarter.on_progress(json.loads(data)["completed"])
        elif kind == "RESULT":
            result = json.loads(data)
    watchdog.cancel()
    load.wait(timeout=60)
    time.sleep(SETTLE_SECONDS)
    row["rss_end"] = rss_kib(server.pid)
    row["guest_end"] = guest_kib(memory_file)
    row["rss_peak"] = max(sampler.peak, rss_kib(server.pid, "VmHWM:"))
    sampler.stopped = True
    if restarter:
        # Both upstreams serve again (the restarted one after its ejection).
        restarter.thread and restarter.thread.join(timeout=300)
        time.sleep(max(0, 11 - SETTLE_SECONDS))
    row["alive"] = server.poll() is None and answers(port)
    server.kill()
    server.wait()
    log.seek(0)
    row["log_lines"] = sum(1 for _ in log)
    row["result"] = result
    problems = []
    if load.returncode != 0 or result is None:
        problems.append(f"the load generator failed (exit {load.returncode})"
                        + (f": {result['first_failure']}" if result and result.get("first_failure") else ""))
    if not row["alive"]:
        problems.append("the server died or stopped answering")
    if restarter and restarter.error is not None:
        problems.append(f"the upstream could not be restarted: {restarter.error}")
    if restarter and restarter.thread is None:
        # Progress lines too few (a short SOAK_REQUESTS): the row would pass
        # without the restart it claims.
        problems.append("the upstream was never restarted during the run")
    warm = row.get("rss_warm", 0)
    if not warm:
        problems.append("the run never finished its warm-up")
    elif row["rss_end"] > warm * (1 + RSS_GROWTH):
        problems.append(f"RSS grew: {warm} KiB after the warm-up, {row['rss_end']} KiB at the end")
    guest_warm = row.get("guest_warm")
    if label.startswith("edgepoll-host") and not (guest_warm and row["guest_end"]):
        # Its report is what the check below reads: none is no pass.
        problems.append("edgepoll-host reported no guest memory (EDGEPOLL_HOST_MEMORY_FILE)")
    elif guest_warm and row["guest_end"] > guest_warm * (1 + RSS_GROWTH):
        problems.append(f"guest memory grew: {guest_warm} KiB after the warm-up, {row['guest_end']} KiB at the end")
    row["problems"] = problems
    print(f"  guest memory {row.get('guest_warm', 0)} KiB after the warm-up, {row['guest_end']} KiB at the end", flush=True)
    return row


def mib(kib):
    return f"{kib / 1024:.1f}"


def report(rows, seed, seconds):
    lines = [
        "<!-- soak:start -->",
        "## Soak (`make soak`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores; seed {seed} "
        f"(`SOAK_SEED={seed} make soak` replays it); {seconds:.0f} s in all.",
        "",
        "| runtime | requests done | bytes echoed | mismatches | unexpected errors | upstream failures (requests lost) | faults as promised | p50 ms | p99 ms | max ms | RSS start MiB | after warm-up | peak | end | guest memory MiB after warm-up → end | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        r = row["result"] or {}
        lines.append(
            f"| {row['runtime']} | {r.get('completed', 0)} of {r.get('requests', REQUESTS)} | {r.get('bytes_echoed', 0)} "
            f"| {r.get('mismatches', '?')} | {r.get('errors', '?')} | {r.get('upstream_failures', 0)} ({r.get('requests_lost', 0)}) "
            f"| {r.get('faults_ok', 0)} of {r.get('faults', 0)} "
            f"| {r.get('p50_us', 0) / 1000:.2f} | {r.get('p99_us', 0) / 1000:.2f} | {r.get('max_us', 0) / 1000:.0f} "
            f"| {mib(row['rss_start'])} | {mib(row.get('rss_warm', 0))} | {mib(row['rss_peak'])} | {mib(row['rss_end'])} "
            f"| {mib(row['guest_warm']) + ' → ' + mib(row['guest_end']) if row.get('guest_warm') else ''} "
            f"| {'pass' if not row['problems'] else 'FAIL: ' + '; '.join(row['problems'])} |"
        )
    r = next((row["result"] for row in rows if row["result"]), None) or {}
    lines += [
        "",
        f"- The mix: bodies 0 B to 8 MiB (94% up to 512 B, a log-uniform tail; at most 4 over 1 MiB in flight), "
        f"{r.get('chunked', 0)} chunked uploads, {r.get('expect', 0)} with `Expect: 100-continue`, "
        f"{r.get('http10', 0)} HTTP/1.0 requests, {r.get('bursts', 0)} pipelined bursts of 2–16, over "
        f"{r.get('connections', 0)} connections, at most {r.get('peak_connections', 0)} open at once.",
        f"- Faults: 30 misbehaving clients during each run (resets mid-body, clients that stop reading an 8 MiB "
        f"echo, connections quiet before a request, after a response, in a head and in a body); each got the "
        f"README's answer (a close at the idle timeout, or 408 and a close) while the load went on. The server "
        f"ran with `--idle-timeout {IDLE_TIMEOUT} --header-timeout {HEADER_TIMEOUT}`.",
        "- Latency is per request, first byte sent to last byte received, all sizes together.",
        "- The proxy rows: examples/proxy (`--max-per-upstream 256`) in front of two echo servers under the same "
        "runtime; when 15% of the requests are done (within the warm-up) one echo server is killed and started again on its port 1 s "
        "later. What it had in flight fails cleanly (a 502 or 504, or the client's connection cut mid-response), "
        "is counted as an upstream failure and its connection's unanswered requests as lost, but only from the "
        "kill on and for a minute from the first such failure (one at another time is an error); every response "
        "that arrives is compared byte for byte as everywhere else.",
        f"- RSS: the runtime process's VmRSS; the warm-up (the first 30% of requests, at the peak of 1000 "
        f"connections with four 8 MiB bodies at once, and two rounds of faults) meets every kind of memory use of the run; the end is measured "
        f"{SETTLE_SECONDS} s after the load stops and must be within {RSS_GROWTH:.0%} of the level after the warm-up "
        f"(WebAssembly memory never shrinks, so growth after the warm-up would be a leak); so must the guest's "
        f"linear memory, which edgepoll-host reports (the WasmEdge rows have no such report).",
        "<!-- soak:end -->",
    ]
    return "\n".join(lines)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    seed = int(os.environ.get("SOAK_SEED") or random.randrange(1, 2**48))
    started = time.time()
    # (label, the runtime, the echo server, the forwarder, the proxy)
    runtimes = [("edgepoll-host", [str(HOST)], WASM, FORWARD, PROXY)]
    if shutil.which("wasmedge"):
        runtimes.append(("WasmEdge AOT", ["wasmedge"], *(run.aot(m) for m in (WASM, FORWARD, PROXY))))
    else:
        print("NOTE: wasmedge is not on PATH: only edgepoll-host is soaked")
    print(f"soak seed {seed} (SOAK_SEED={seed} make soak replays it)")
    rows = [soak(label, lambda addr: runtime + [str(echo), addr], seed) for label, runtime, echo, _, _ in runtimes]
    for label, runtime, echo, forward, _ in runtimes:
        # The same load through the forwarding service, in front of the
        # echo server under the same runtime.
        upstream, upstream_port = start_upstream(runtime, echo)
        try:
            command = runtime + [str(forward), "--stream", "--max-per-origin", "256", f"/=http://127.0.0.1:{upstream_port}"]
            rows.append(soak(f"{label}, forwarding", lambda addr: command + [addr], seed))
        finally:
            upstream.kill()
            upstream.wait()
    for label, runtime, echo, _, proxy in runtimes:
        # Through the proxy in front of two echo servers, one restarted.
        steady, steady_port = start_upstream(runtime, echo)
        restarter = None
        try:
            restarted, restarted_port = start_upstream(runtime, echo)
            restarter = Restarter(runtime, echo, restarted, restarted_port)
            launch = lambda addr: runtime + [str(proxy),
                "--listen", addr, "--upstream", f"127.0.0.1:{steady_port}",
                "--upstream", f"127.0.0.1:{restarted_port}", "--max-per-upstream", "256"]
            rows.append(soak(f"{label}, proxy, one upstream restarted", launch, seed, restarter))
        finally:
            if restarter:
                restarter.stop()
            steady.kill()
            steady.wait()
    section = report(rows, seed, time.time() - started)
    results = ROOT / "bench" / "RESULTS.md"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    start, end = "<!-- soak:start -->", "<!-- soak:end -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(text)
    print()
    print(section)
    failed = [row for row in rows if row["problems"]]
    for row in failed:
        print(f"\nFAILED on {row['runtime']} (seed {seed}; SOAK_SEED={seed} make soak replays it): " + "; ".join(row["problems"]))
    print(f"\nwrote bench/RESULTS.md ({time.time() - started:.0f} s)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
