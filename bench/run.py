#!/usr/bin/env python3
"""`make bench`: every server back to back under the same load, on loopback.

Throughput: wrk, 1 thread, 64 kept-alive connections, POSTing 128 B and 4 KiB
bodies (bench/post.lua); each figure is the median of BENCH_RUNS runs of
BENCH_SECONDS. Scale: the same 128 B load while 0, 1000 and 5000 idle
keep-alive connections are held open, against the same process without them
in turns; guest memory per idle connection comes
from the runtime's memory report (EDGEPOLL_HOST_MEMORY_FILE), runtime RSS from
/proc; meanwhile one held connection at a time sends a request every 50 ms
(the quiet-connection latency). Idle cost: CPU time of a server holding 5000
idle connections with no load. With `wasmedge` on PATH: interpreter and AOT
rows, Wasm instructions per request (`--enable-instruction-count`, the
server exiting after a counted number of requests), the interpreter's cost per
instruction by loop body size (bench/dispatch_cost.py), and the target ratios
measured in turns (A B B A A B B A A B; the median of the per-turn ratios), and
the HTTP layer alone, in-process (bench/http_layer: Wasm instructions, the
interpreter's own instructions under callgrind, and CPU time per request). WebSocket fan-out: ws_chat
and a native tungstenite-on-mio chat, 1000 clients, one sender keeping 8 or 128
broadcasts in flight (bench/ws_load counts every delivery), and guest memory per
idle WebSocket connection. Writes bench/RESULTS.md,
bench/throughput.png and bench/scale.png, and the table into README.md
between the bench markers.
"""

import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dispatch_cost

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
HOST = TARGET / "release" / "edgepoll-host"
WASM = TARGET / "wasm32-wasip1" / "release"
SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))
RUNS = int(os.environ.get("BENCH_RUNS", "2"))
IDLE_LEVELS = [0, 1000, 5000]
OUT = ROOT / "bench"
LOADGEN = TARGET / "release" / "loadgen"
HOLDER = TARGET / "release" / "idle_holder"
PROBE_EVERY_MS = 50
# Turns of the idle-connection ratios (see `scale`).
IDLE_TURNS = 3
QUIET_COST_SECONDS = 5
QUIET_COST_TURNS = 3
# The echo server's Wasm instructions per request before the interpreter work
# of issue 9, measured the same way at commit a86f78c (it had no
# --exit-after then; it was added there for the measurement only).
INSTRUCTIONS_BEFORE = 14334
ECHO_INTERP = "edgepoll echo · wasmedge (interpreter)"
MINIMAL_INTERP = "minimal keep-alive server · wasmedge (interpreter)"
FIXED_INTERP = "edgepoll, the minimal server's fixed response · wasmedge (interpreter)"
WS_LOAD = TARGET / "release" / "ws_load"
WS_NATIVE_LABEL = "native tungstenite on mio (baseline)"
FANOUT_CLIENTS = 1000
FANOUT_SECONDS = 5
FANOUT_RUNS = 3
# Broadcasts in flight: few (each goes out in a send of its own) and many
# (several per send).
FANOUT_WINDOWS = [8, 128]
WS_IDLE = 2000


def cpu_split(pid):
    """The CPU time process `pid` has spent so far, in seconds: (in user
    space, in the kernel)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def schedstat_seconds(pid):
    """The CPU time, user and kernel, that process `pid`'s threads now
    running have spent so far, to the nanosecond (/proc's schedstat: the
    10 ms ticks of /proc/PID/stat are too coarse for the few milliseconds
    per second an idle server spends)."""
    total, read = 0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
            read += 1
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    if not read:
        raise RuntimeError(f"no CPU time readable for process {pid} (/proc/{pid}/task/*/schedstat)")
    return total / 1e9


# The longest a `wasmedge compile` may take (about a minute here for the
# largest module) before the benchmark stops and says which module.
COMPILE_SECONDS = 600


def aot(module):
    """Compiles `module` with WasmEdge's AOT compiler into target/bench-aot
    (same file name) and returns the compiled file's path."""
    out = TARGET / "bench-aot" / Path(module).name
    out.parent.mkdir(exist_ok=True)
    try:
        subprocess.run(["wasmedge", "compile", str(module), str(out)], check=True, capture_output=True, text=True, timeout=COMPILE_SECONDS)
    except subprocess.TimeoutExpired:
        sys.exit(f"wasmedge compile {module} took over {COMPILE_SECONDS} s")
    except subprocess.CalledProcessError as failed:
        sys.exit(f"wasmedge compile {module} failed (exit {failed.returncode}):\n{(failed.stdout + failed.stderr).strip()}")
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A program started with an address argument, stopped on exit."""

    def __init__(self, command, ready_prefix, env=None, stdin=False, ready_lines=1):
        """Ready once its first `ready_lines` lines each begin with
        `ready_prefix` (a string or a tuple of them)."""
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            text=True,
        )
        lines = []
        reader = threading.Thread(
            target=lambda: lines.extend(self.proc.stdout.readline() for _ in range(ready_lines)), daemon=True)
        reader.start()
        reader.join(timeout=120)
        if len(lines) < ready_lines or not all(line.startswith(ready_prefix) for line in lines):
            self.stop()
            raise RuntimeError(f"{command[0]} did not get ready: {lines!r}")
        self.first_line = lines[0].strip()

    def rss_kib(self):
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def cpu_seconds(self):
        """User plus system CPU time so far (see `schedstat_seconds`)."""
        return schedstat_seconds(self.proc.pid)

    def finish(self):
        """Closes standard input and returns what the program prints before exiting."""
        try:
            out, _ = self.proc.communicate(input="", timeout=60)
        except subprocess.TimeoutExpired:
            self.stop()
            return ""
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def wrk_command(port, seconds=None):
    """wrk's load on `port`: 64 kept-alive connections posting bench/post.lua's
    body (its size in the environment's BODY_BYTES) for `seconds`."""
    # wrk counts a timed-out request only if its answer comes at last (one
    # never answered is not counted at all), so the timeout is short (p99s
    # here are milliseconds) and `wrk` checks afterwards that the server
    # still answers.
    return ["wrk", "-t1", "-c64", f"-d{seconds or SECONDS}s", "--timeout", "1s", "-s", str(OUT / "post.lua"),
            f"http://127.0.0.1:{port}/"]


# Failed requests (socket errors, answers other than 2xx) a run may have
# before it is refused: wrk may cut a few connections as it stops.
FAILED_AT_MOST = 0.01


def wrk_result(stdout):
    """The figures post.lua prints (its `RESULT` line), with requests/s
    counting only 2xx answers; a run with more failures than FAILED_AT_MOST
    of its requests is an error, not a throughput."""
    line = next((l for l in stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {stdout}")
    r = json.loads(line[len("RESULT "):])
    failed = r["errors"] + r["non_2xx"]
    if failed > FAILED_AT_MOST * max(r["requests"], 1):
        raise RuntimeError(f"wrk: {r['errors']} socket errors and {r['non_2xx']} answers other than 2xx "
                           f"in {r['requests']} requests")
    r["requests"] -= r["non_2xx"]
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def still_answers(port):
    """Raises unless the server on `port` answers a fresh request with 200
    within 5 s: a server that died or stalled during a run must not pass
    for a slow one."""
    body = b"x" * 128
    request = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Length: 128\r\nConnection: close\r\n\r\n" + body)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request)
            head = b""
            while len(head) < 12:
                got = s.recv(12 - len(head))
                if not got:
                    break
                head += got
    except OSError as e:
        raise RuntimeError(f"the server on port {port} stopped answering after a wrk run: {e}") from e
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the server on port {port} answered {head!r} after a wrk run")


def wrk(port, body_bytes, runs=None):
    """Median (by requests/s) of `runs` (default RUNS) wrk runs; of an even
    number, the slower of the middle two. Each run is followed by a check
    that the server still answers."""
    results = []
    for _ in range(runs or RUNS):
        out = subprocess.run(
            wrk_command(port),
            capture_output=True,
            text=True,
            env={**os.environ, "BODY_BYTES": str(body_bytes)},
            timeout=SECONDS + 60,
        )
        results.append(wrk_result(out.stdout + out.stderr))
        still_answers(port)
    results.sort(key=lambda r: r["rps"])
    return results[(len(results) - 1) // 2]


def write_section(name, block):
    """Puts `block` (which begins with `<!-- NAME:start -->` and ends with
    `<!-- NAME:end -->`) into bench/RESULTS.md in place of the old one, or
    at the end."""
    results = OUT / "RESULTS.md"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text)
    print(block)


def servers():
    """(label, command, runs under edgepoll-host) for every server present."""
    listed = [
        ("edgepoll echo · edgepoll-host", [str(HOST), str(WASM / "poll_http_server.wasm")], True),
        ("native mio echo (baseline)", [str(TARGET / "release" / "native_echo")], False),
        ("book-style · edgepoll-host", [str(HOST), str(WASM / "book_style_server.wasm")], True),
        ("hyper_wasi · edgepoll-host", [str(HOST), str(WASM / "hyper_echo.wasm")], True),
    ]
    if shutil.which("wasmedge"):
        echo_aot, hyper_aot = aot(WASM / "poll_http_server.wasm"), aot(WASM / "hyper_echo.wasm")
        listed += [
            (ECHO_INTERP, ["wasmedge", str(WASM / "poll_http_server.wasm")], False),
            (MINIMAL_INTERP, ["wasmedge", str(WASM / "minimal_server.wasm")], False),
            (FIXED_INTERP, ["wasmedge", str(WASM / "fixed_server.wasm")], False),
            # Under AOT, quiet connections are looked at by peeking (see
            # quiet_cost: cheaper there, dearer under the other runtimes).
            ("edgepoll echo · wasmedge AOT", ["wasmedge", str(echo_aot), "--peek-quiet"], False),
            ("hyper_wasi · wasmedge AOT", ["wasmedge", str(hyper_aot)], False),
        ]
    else:
        print("NOTE: wasmedge is not on PATH: the WasmEdge rows (interpreter, AOT) are skipped")
    return listed


def start_server(command, port, env=None):
    return Process(command + [f"127.0.0.1:{port}"], "listening on", env=env)


def throughput(listed):
    rows = []
    for label, command, _ in listed:
        row = {"server": label}
        for size in [128, 4096]:
            port = free_port()
            server = start_server(command, port)
            try:
                wrk(port, size, runs=1)  # warm up: each size on a new server
                row[size] = wrk(port, size)
            finally:
                server.stop()
        rows.append(row)
        print(f"  {label}: {row[128]['rps']:.0f} req/s (128 B), {row[4096]['rps']:.0f} req/s (4 KiB)", flush=True)
    return rows


def scale(listed):
    """Each server's rate with 0, 1000 and 5000 idle connections held open.
    With idle connections the rate is compared with the same process's rate
    without them in IDLE_TURNS turns (A B B A A B: the held connections open
    and close between turns), as the other targets are, so that this
    machine's drift falls on both sides of the ratio."""
    wanted = {"edgepoll echo · edgepoll-host", "native mio echo (baseline)", "edgepoll echo · wasmedge AOT"}
    rows = []
    for label, command, on_host in listed:
        if label not in wanted:
            continue
        for idle in IDLE_LEVELS:
            port = free_port()
            memory_file = Path(tempfile.mkstemp(prefix="edgepoll-mem-")[1])
            server = start_server(command, port, env={"EDGEPOLL_HOST_MEMORY_FILE": str(memory_file)} if on_host else None)
            holder = None
            try:
                wrk(port, 128)  # warm up: buffers and tables reach their working size
                if not idle:
                    result = wrk(port, 128)
                    rows.append({
                        "server": label, "idle": 0, "rps": result["rps"], "base_rps": result["rps"], "ratio": 1.0,
                        "turns": [], "p99_us": result["p99_us"], "guest_bytes_per_idle": None,
                        "rss_kib": server.rss_kib(), "probe": None,
                    })
                    print(f"  {label}, 0 idle: {result['rps']:.0f} req/s", flush=True)
                    continue
                bases, helds, probes = [], [], []
                mem_before = mem_after = rss_after = None

                def hold():
                    nonlocal holder, mem_before, mem_after, rss_after
                    first = rss_after is None
                    if first and on_host:
                        mem_before = read_int(memory_file)
                    holder = Process(
                        [str(HOLDER), f"127.0.0.1:{port}", str(idle), "--probe-every", str(PROBE_EVERY_MS)],
                        "ready",
                        stdin=True,
                    )
                    if first:
                        mem_after = read_int(memory_file) if on_host else None
                        rss_after = server.rss_kib()

                def release():
                    nonlocal holder
                    line = next((l for l in holder.finish().splitlines() if l.startswith("probe ")), None)
                    # No line: a probed connection stalled past 10 s or was
                    # closed, the failure the quiet-connection target is for.
                    probes.append(json.loads(line[len("probe "):]) if line else {"failed": True})
                    holder = None

                for turn in range(IDLE_TURNS):
                    if turn % 2 == 0:  # without, then with
                        bases.append(wrk(port, 128))
                        hold()
                        helds.append(wrk(port, 128))
                    else:  # with (still held), then without
                        helds.append(wrk(port, 128))
                        release()
                        # The closes of the idle connections, handled now,
                        # not during the run without them.
                        time.sleep(1)
                        bases.append(wrk(port, 128))
                if holder is not None:
                    release()
            finally:
                if holder is not None:
                    holder.stop()
                server.stop()
                memory_file.unlink(missing_ok=True)
            turns = [h["rps"] / b["rps"] for b, h in zip(bases, helds)]
            # The worst probe: the quiet-connection target holds in every turn.
            failed = next((p for p in probes if p.get("failed")), None)
            probe = failed or max(probes, key=lambda p: p["p99_us"])
            rows.append({
                "server": label,
                "idle": idle,
                "rps": statistics.median(h["rps"] for h in helds),
                "base_rps": statistics.median(b["rps"] for b in bases),
                "ratio": statistics.median(turns),
                "turns": turns,
                "p99_us": statistics.median(h["p99_us"] for h in helds),
                "guest_bytes_per_idle": (mem_after - mem_before) / idle if on_host else None,
                "rss_kib": rss_after,
                "probe": probe,
            })
            print(f"  {label}, {idle} idle: {rows[-1]['rps']:.0f} req/s, × {rows[-1]['ratio']:.2f} "
                  f"(per turn {', '.join(f'{t:.2f}' for t in turns)})", flush=True)
    return rows


def idle_cost(listed):
    """CPU a server spends per second holding 5000 idle connections, no load."""
    wanted = {"edgepoll echo · edgepoll-host", "edgepoll echo · wasmedge AOT"}
    rows = []
    for label, command, _ in listed:
        if label not in wanted:
            continue
        port = free_port()
        server = start_server(command, port)
        holder = None
        try:
            holder = Process([str(HOLDER), f"127.0.0.1:{port}", "5000"], "ready", stdin=True)
            time.sleep(1)  # let the quiet connections go cold
            before = server.cpu_seconds()
            time.sleep(3)
            per_second = (server.cpu_seconds() - before) / 3
        finally:
            if holder:
                holder.stop()
            server.stop()
        rows.append({"server": label, "cpu_ms_per_s": per_second * 1000})
        print(f"  {label}, 5000 idle, no load: {per_second * 1000:.1f} ms CPU per second", flush=True)
    return rows


def quiet_cost(listed):
    """CPU a server spends per second holding 5000 quiet connections while
    they keep it busy (one of them, in turn, sends a request every 10 ms, so
    that `Poll` goes through its rounds over the quiet ones), with peeking
    off and on, in QUIET_COST_TURNS turns (full, peek; peek, full; ...), the
    median of the turns' ratios. A turn whose requests were not all answered
    (a server that stops answering spends less) leaves the row unmeasured."""
    commands = {label: command for label, command, _ in listed}
    rows = []
    for label in ["edgepoll echo · edgepoll-host", ECHO_INTERP, "edgepoll echo · wasmedge AOT"]:
        if label not in commands:
            continue
        base = [arg for arg in commands[label] if arg != "--peek-quiet"]
        runs = {False: [], True: []}
        unserved = None
        for turn in range(QUIET_COST_TURNS):
            for peek in [False, True] if turn % 2 == 0 else [True, False]:
                port = free_port()
                server = start_server(base + (["--peek-quiet"] if peek else []), port)
                holder = None
                try:
                    holder = Process([str(HOLDER), f"127.0.0.1:{port}", "5000", "--probe-every", "10"], "ready", stdin=True)
                    time.sleep(2)  # the quiet ones go cold
                    before = server.cpu_seconds()
                    time.sleep(QUIET_COST_SECONDS)
                    runs[peek].append((server.cpu_seconds() - before) / QUIET_COST_SECONDS * 1000)
                    # Every request answered (the holder prints no probe
                    # line when one failed or stalled past 10 s), and at
                    # least one a second: else the server was not kept busy.
                    line = next((l for l in holder.finish().splitlines() if l.startswith("probe ")), None)
                    count = json.loads(line[len("probe "):])["count"] if line else 0
                    if count < 2 + QUIET_COST_SECONDS:
                        unserved = f"{'peeks' if peek else 'full polls'}: {count} requests answered"
                finally:
                    if holder:
                        holder.stop()
                    server.stop()
        if unserved:
            rows.append({"server": label, "unserved": unserved})
            print(f"  {label}: not measured, the load was not served ({unserved})", flush=True)
            continue
        turns = [p / f for f, p in zip(runs[False], runs[True])]
        row = {"server": label, False: statistics.median(runs[False]), True: statistics.median(runs[True]),
               "turns": turns, "ratio": statistics.median(turns)}
        rows.append(row)
        print(f"  {label}: {row[False]:.1f} ms CPU per second with full polls, {row[True]:.1f} with peeks, "
              f"× {row['ratio']:.2f} (per turn {', '.join(f'{t:.2f}' for t in turns)})", flush=True)
    return rows


def render_quiet_cost(rows):
    if not rows:
        return "(not measured)"
    lines = [
        "| server | full polls: ms CPU per second | peeks (`--peek-quiet`): ms CPU per second | peeks ÷ full polls (per turn) |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        if "unserved" in r:
            lines.append(f"| {r['server']} | not measured: the load was not served ({r['unserved']}) | | |")
            continue
        lines.append(f"| {r['server']} | {r[False]:.1f} | {r[True]:.1f} | {r['ratio']:.2f}× ({', '.join(f'{t:.2f}' for t in r['turns'])}) |")
    return "\n".join(lines)


def listens(pid, port):
    """Whether process `pid` holds a socket listening on 127.0.0.1:`port`:
    a connect alone could reach another process that took the port first
    (nginx keeps trying to bind for seconds before it gives up)."""
    wanted = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(fields[9])
    try:
        held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    return any(f"socket:[{inode}]" in held for inode in inodes)


def wait_listening(proc, port, name, timeout=10):
    """Waits until `proc` listens on `port`; kills it and raises if it
    exits or takes longer than `timeout` seconds."""
    deadline = time.time() + timeout
    while not listens(proc.pid, port):
        if proc.poll() is not None or time.time() > deadline:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise RuntimeError(f"{name} did not start listening on 127.0.0.1:{port}")
        time.sleep(0.05)


def pinned(command, cpu):
    """The command on one CPU, so that server and load generator each have
    one and do not trade places (less noise on two cores)."""
    if pins():
        return ["taskset", "-c", str(cpu)] + command
    return command


def pins():
    """Whether `pinned` pins: taskset is there and so is a second core."""
    return bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2


def ws_servers():
    """(label, command, runs under edgepoll-host) for the fan-out servers."""
    listed = [
        (WS_NATIVE_LABEL, [str(TARGET / "release" / "ws_native")], False),
        # No limit on what a member sends: ws_native has none, and c0 sends
        # as fast as its window lets it.
        ("ws_chat · edgepoll-host", [str(HOST), str(WASM / "ws_chat.wasm"), "--messages-per-second", "0"], True),
    ]
    if shutil.which("wasmedge"):
        listed.append(("ws_chat · wasmedge AOT", ["wasmedge", str(aot(WASM / "ws_chat.wasm")), "--messages-per-second", "0"], False))
    return listed


def ws_load(port, args):
    out = subprocess.run(
        pinned([str(WS_LOAD), f"127.0.0.1:{port}"] + args, 1),
        capture_output=True, text=True, timeout=300,
    )
    line = next((l for l in out.stdout.splitlines() if l.startswith("fanout ")), None)
    if line is None:
        raise RuntimeError(f"ws_load {' '.join(args)}: {out.stdout} {out.stderr}")
    return json.loads(line[len("fanout "):])


def ws_idle_memory(command, on_host):
    """Memory per idle WebSocket connection: WS_IDLE clients connect (each
    join announced to all) and then hold still."""
    port = free_port()
    memory_file = Path(tempfile.mkstemp(prefix="edgepoll-mem-")[1])
    server = start_server(command, port, env={"EDGEPOLL_HOST_MEMORY_FILE": str(memory_file)} if on_host else None)
    holder = None
    try:
        ws_load(port, ["100", "1"])  # warm up: tables and the outbox reach their working size
        time.sleep(0.5)
        mem_before, rss_before = read_int(memory_file) if on_host else None, server.rss_kib()
        holder = Process([str(WS_LOAD), f"127.0.0.1:{port}", str(WS_IDLE), "--hold"], "ready", stdin=True)
        time.sleep(1)
        mem_after, rss_after = read_int(memory_file) if on_host else None, server.rss_kib()
    finally:
        if holder:
            holder.stop()
        server.stop()
        memory_file.unlink(missing_ok=True)
    return {
        "guest_bytes_per_ws": (mem_after - mem_before) / WS_IDLE if on_host else None,
        "rss_bytes_per_ws": (rss_after - rss_before) * 1024 / WS_IDLE,
    }


def fanout():
    """Deliveries per second of each WebSocket server, measured in rounds:
    each server once per round, the order rotating, so that the machine's
    drift falls on all of them alike; `runs` keeps each round's figure for
    the per-round ratios of the targets."""
    listed = ws_servers()
    runs = {label: {w: [] for w in FANOUT_WINDOWS} for label, _, _ in listed}
    for window in FANOUT_WINDOWS:
        for turn in range(FANOUT_RUNS):
            first = turn % len(listed)
            for label, command, _ in listed[first:] + listed[:first]:
                port = free_port()
                server = Process(pinned(command + [f"127.0.0.1:{port}"], 0), "listening on")
                try:
                    rate = ws_load(port, [str(FANOUT_CLIENTS), str(FANOUT_SECONDS), "--window", str(window)])["per_second"]
                    runs[label][window].append(rate)
                finally:
                    server.stop()
    rows = []
    for label, command, on_host in listed:
        row = {"server": label, "runs": runs[label]}
        for window in FANOUT_WINDOWS:
            row[window] = statistics.median(runs[label][window])
        row.update(ws_idle_memory(command, on_host))
        rows.append(row)
        rates = ", ".join(f"{row[w]:.0f} deliveries/s with {w} in flight" for w in FANOUT_WINDOWS)
        print(f"  {label}: {rates}", flush=True)
    return rows


def render_fanout(fanout_rows):
    native = next(r for r in fanout_rows if r["server"] == WS_NATIVE_LABEL)
    head = "| server | " + " | ".join(f"deliveries/s, {w} in flight | × native" for w in FANOUT_WINDOWS)
    head += " | guest bytes / idle WebSocket | runtime RSS bytes / idle WebSocket |"
    lines = [head, "|---|" + "---:|---:|" * len(FANOUT_WINDOWS) + "---:|---:|"]
    for r in fanout_rows:
        cells = [r["server"]]
        for w in FANOUT_WINDOWS:
            # The median of the rounds' ratios, as the target takes it.
            per_round = statistics.median(a / b for a, b in zip(r["runs"][w], native["runs"][w]))
            cells += [f"{r[w]:.0f}", f"{per_round:.2f}"]
        guest = "" if r["guest_bytes_per_ws"] is None else f"{r['guest_bytes_per_ws']:.0f}"
        cells += [guest, f"{r['rss_bytes_per_ws']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def exit_after(command, port, requests, any_body=False):
    """All that `command`, a server that exits after answering `requests`
    requests (`--exit-after`), printed, as bytes, once bench/loadgen has sent
    them to `port` (64 connections, 128 B bodies)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    name = next((Path(a).name for a in command if a.endswith((".wasm", ".so"))), command[0])
    # Killed if it never starts: the read below then ends.
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        first = proc.stdout.readline()
        watchdog.cancel()
        if not first.startswith(b"listening on"):
            raise RuntimeError(f"{name} did not start: {first!r}")
        load = subprocess.run(
            [str(LOADGEN), f"127.0.0.1:{port}", "64", str(requests), "128"] + (["any"] if any_body else []),
            capture_output=True, text=True, timeout=600,
        )
        if '"errors": 0' not in load.stdout:
            raise RuntimeError(f"loadgen against {name}: {load.stdout} {load.stderr}")
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return first + out


def instruction_count(wasm, requests, any_body, listen=lambda port: [f"127.0.0.1:{port}"]):
    """Wasm instructions WasmEdge's interpreter executes for a server that
    answers `requests` requests (64 connections, 128 B bodies) and exits;
    `listen(port)` gives its arguments before `--exit-after`."""
    port = free_port()
    command = ["wasmedge", "--enable-instruction-count", str(wasm)] + listen(port)
    out = exit_after(command + ["--exit-after", str(requests)], port, requests, any_body)
    out = out.decode(errors="replace")
    line = next((l for l in out.splitlines() if "instructions count:" in l), None)
    if line is None:
        raise RuntimeError(f"no instruction count from wasmedge: {out[-500:]}")
    return int(line.rsplit(":", 1)[1])


def instructions():
    """Instructions per request: the count for 12000 requests minus that for
    2000, over 10000, so start-up and connection set-up cancel out."""
    rows = []
    for label, wasm, any_body in [
        ("edgepoll echo", WASM / "poll_http_server.wasm", False),
        ("minimal keep-alive server", WASM / "minimal_server.wasm", True),
        ("edgepoll, the minimal server's fixed response", WASM / "fixed_server.wasm", True),
    ]:
        per_request = (instruction_count(wasm, 12000, any_body) - instruction_count(wasm, 2000, any_body)) / 10000
        rows.append({"server": label, "per_request": per_request})
        print(f"  {label}: {per_request:.0f} Wasm instructions per request", flush=True)
    return rows


def read_int(path):
    """The guest memory edgepoll-host reports in `path`; an error if it
    reported none (a 0 would pass every memory target)."""
    try:
        value = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        value = 0
    if value <= 0:
        raise RuntimeError(f"edgepoll-host wrote no guest memory size to {path}")
    return value


def paired(listed, a, b, turns=5):
    """Requests/s of servers `a` and `b` (labels in `listed`), measured in
    turns A B B A A B B A A B, a fresh process and a warm-up each time. This
    machine's speed drifts (±10% between minutes, 30% in a busy spell), so
    the ratio is taken within each turn, between two runs made back to back,
    and the median of those is the figure: a ratio of the two medians could
    set a run from a fast minute against one from a slow minute."""
    commands = {label: command for label, command, _ in listed}
    rates = {a: [], b: []}
    order = ([a, b, b, a] * turns)[: 2 * turns]
    for label in order:
        port = free_port()
        server = start_server(commands[label], port)
        try:
            wrk(port, 128, runs=1)  # warm up
            rates[label].append(wrk(port, 128, runs=1)["rps"])
        finally:
            server.stop()
    median = {label: statistics.median(r) for label, r in rates.items()}
    ratios = [x / y for x, y in zip(rates[a], rates[b])]
    ratio = statistics.median(ratios)
    print(f"  {a}: {median[a]:.0f} req/s; {b}: {median[b]:.0f} req/s; ratio per turn {', '.join(f'{r:.2f}' for r in ratios)}: median {ratio:.2f}", flush=True)
    return {"a": a, "b": b, "a_rps": median[a], "b_rps": median[b], "a_runs": rates[a], "b_runs": rates[b], "ratios": ratios, "ratio": ratio}


def ms(us):
    return f"{us / 1000:.2f}"


def render(rows, scale_rows):
    native = next(r for r in rows if r["server"].startswith("native"))
    lines = [
        "| server | req/s 128 B | p50 ms | p99 ms | × native, not in turns | req/s 4 KiB | p50 ms | p99 ms | × native, not in turns |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [r["server"]]
        for size in [128, 4096]:
            m = r[size]
            cells += [f"{m['rps']:.0f}", ms(m["p50_us"]), ms(m["p99_us"]), f"{m['rps'] / native[size]['rps']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    s_lines = [
        "| server | idle connections | req/s (64 active) | req/s at 0 idle in the same turns | × that (per turn) | p99 ms | quiet connection p99 ms | guest bytes / idle conn | runtime RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in scale_rows:
        guest = "" if r["guest_bytes_per_idle"] is None else f"{r['guest_bytes_per_idle']:.0f}"
        probe = r.get("probe")
        quiet = "" if not probe else "failed" if probe.get("failed") else ms(probe["p99_us"])
        s_lines.append(
            f"| {r['server']} | {r['idle']} | {r['rps']:.0f} | {r['base_rps']:.0f} | {ratio_text(r)} | {ms(r['p99_us'])} | {quiet} | {guest} | {r['rss_kib'] / 1024:.1f} |"
        )
    return table, "\n".join(s_lines)


def ratio_text(row):
    """A scale row's ratio to its own rate without idle connections, with
    its turns."""
    if not row["turns"]:
        return f"{row['ratio']:.2f}"
    return f"{row['ratio']:.2f} ({', '.join(f'{t:.2f}' for t in row['turns'])})"


def probe_text(probe):
    """A quiet-connection probe's p99, or that it failed."""
    if probe.get("failed"):
        return "no answer within 10 s"
    return f"{ms(probe['p99_us'])} ms"


def targets(rows, scale_rows, idle_rows, fanout_rows, pairs):
    by = {r["server"]: r[128] for r in rows}
    echo = by["edgepoll echo · edgepoll-host"]
    checks = []  # (target, measured text, met)

    def ratio(name, value, goal):
        checks.append((name, f"{value:.2f}", value >= goal))

    def pair_of(a, b):
        return next(p for p in pairs if p["a"] == a and p["b"] == b)

    on_host = "edgepoll echo · edgepoll-host"
    ratio("echo on edgepoll-host ≥ 0.85 × native (measured in turns)", pair_of(on_host, "native mio echo (baseline)")["ratio"], 0.85)
    ratio("echo ≥ 4 × book-style (measured in turns)", pair_of(on_host, "book-style · edgepoll-host")["ratio"], 4.0)
    ratio("echo ≥ 1.0 × hyper_wasi (measured in turns)", pair_of(on_host, "hyper_wasi · edgepoll-host")["ratio"], 1.0)
    checks.append(("p99 at 0 idle ≤ 1.5 ms (edgepoll-host)", f"{ms(echo['p99_us'])} ms", echo["p99_us"] <= 1500))
    if "edgepoll echo · wasmedge AOT" in by:
        aot = by["edgepoll echo · wasmedge AOT"]
        pair = next((p for p in pairs if p["a"] == "edgepoll echo · wasmedge AOT"), None)
        if pair:
            ratio("WasmEdge AOT ≥ 0.90 × native at 0 idle (measured in turns)", pair["ratio"], 0.90)
        checks.append(("p99 at 0 idle ≤ 1.5 ms (WasmEdge AOT)", f"{ms(aot['p99_us'])} ms", aot["p99_us"] <= 1500))
    pair = next((p for p in pairs if p["a"] == ECHO_INTERP), None)
    if pair:
        ratio("WasmEdge interpreter: echo ≥ 1.0 × minimal server (measured in turns)", pair["ratio"], 1.0)
    for server, levels in [
        ("edgepoll echo · edgepoll-host", [(5000, 0.9)]),
        ("edgepoll echo · wasmedge AOT", [(1000, 0.9), (5000, 0.8)]),
    ]:
        scale = {r["idle"]: r for r in scale_rows if r["server"] == server}
        short = server.split(" · ")[1]
        for idle, goal in levels:
            if 0 in scale and idle in scale:
                ratio(f"{short}: {idle} idle ≥ {goal} × own 0-idle rate (measured in turns)", scale[idle]["ratio"], goal)
        if 5000 in scale and scale[5000].get("probe"):
            probe = scale[5000]["probe"]
            met = not probe.get("failed") and probe["p99_us"] <= 250_000
            checks.append((f"{short}: quiet connection answered within 250 ms (p99, 5000 idle, under load; full polls every 200 ms there)", probe_text(probe), met))
        if 5000 in scale and scale[5000]["guest_bytes_per_idle"] is not None:
            per = scale[5000]["guest_bytes_per_idle"]
            checks.append(("guest memory per idle connection ≤ 2 KiB", f"{per:.0f} B", per <= 2048))
    for r in idle_rows:
        short = r["server"].split(" · ")[1]
        checks.append((f"{short}: 5000 idle connections, no load, ≤ 10 ms CPU per second", f"{r['cpu_ms_per_s']:.1f} ms/s", r["cpu_ms_per_s"] <= 10))
    native_ws = next(r for r in fanout_rows if r["server"] == WS_NATIVE_LABEL)
    for r in fanout_rows:
        if r["server"] == "ws_chat · edgepoll-host":
            for w in FANOUT_WINDOWS:
                # The median of the ratios within each round (see `fanout`).
                per_round = statistics.median(a / b for a, b in zip(r["runs"][w], native_ws["runs"][w]))
                ratio(f"WebSocket fan-out on edgepoll-host ≥ 0.8 × native ({FANOUT_CLIENTS} clients, {w} in flight, in rounds)", per_round, 0.8)
            per = r["guest_bytes_per_ws"]
            checks.append(("guest memory per idle WebSocket connection ≤ 4 KiB", f"{per:.0f} B", per <= 4096))
    out = [f"| {name} | {shown} | {'met' if met else 'MISSED'} |" for name, shown, met in checks]
    return "| target | measured | verdict |\n|---|---:|---|\n" + "\n".join(out)


HTTP_LAYER = WASM / "http_layer.wasm"
HTTP_LAYER_RUNS = 9
HTTP_LAYER_REQUESTS = 20000


def http_layer():
    """The HTTP work alone, in-process under WasmEdge's interpreter
    (bench/http_layer): Wasm instructions per request, the interpreter's own
    (x86) instructions per request under callgrind, and CPU time per request
    (median of HTTP_LAYER_RUNS rounds, each mode once per round, the order
    rotating; a ratio is the median of the rounds' ratios)."""
    def wasm_count(mode, requests):
        proc = subprocess.run(
            ["wasmedge", "--enable-instruction-count", str(HTTP_LAYER), mode, str(requests)],
            capture_output=True, text=True, timeout=600, check=True,
        )
        line = next(l for l in (proc.stdout + proc.stderr).splitlines() if "instructions count:" in l)
        return int(line.rsplit(":", 1)[1])

    def host_count(mode, requests):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", "wasmedge", str(HTTP_LAYER), mode, str(requests)],
                capture_output=True, text=True, timeout=1200, check=True,
            )
        line = next(l for l in proc.stderr.splitlines() if "Collected :" in l)
        return int(line.rsplit(":", 1)[1])

    def cpu_us(mode):
        proc = subprocess.Popen(["wasmedge", str(HTTP_LAYER), mode, str(HTTP_LAYER_REQUESTS)], stdout=subprocess.DEVNULL)
        # A hung run is killed, and fails below on its status.
        watchdog = threading.Timer(1200, proc.kill)
        watchdog.start()
        _, status, usage = os.wait4(proc.pid, 0)
        watchdog.cancel()
        if status != 0:
            raise RuntimeError(f"http_layer {mode} exited with status {status}")
        return (usage.ru_utime + usage.ru_stime) * 1e6 / HTTP_LAYER_REQUESTS

    modes = [
        ("edgepoll", "edgepoll `Handler` + the echo example's service"),
        ("fixed", "edgepoll `Handler` + the minimal server's fixed response"),
        ("minimal", "the minimal server's handling (httparse)"),
    ]
    rows = {mode: {"label": label, "cpu": []} for mode, label in modes}
    for mode, _ in modes:
        rows[mode]["wasm"] = (wasm_count(mode, 12000) - wasm_count(mode, 2000)) / 10000
        rows[mode]["host"] = None
        if shutil.which("valgrind"):
            rows[mode]["host"] = (host_count(mode, 3000) - host_count(mode, 1000)) / 2000
    for turn in range(HTTP_LAYER_RUNS):
        first = turn % len(modes)
        for mode, _ in modes[first:] + modes[:first]:
            rows[mode]["cpu"].append(cpu_us(mode))
    for mode, _ in modes:
        r = rows[mode]
        r["cpu_median"] = statistics.median(r["cpu"])
        host = f"{r['host']:.0f}" if r["host"] is not None else "n/a"
        print(f"  {r['label']}: {r['wasm']:.0f} Wasm instructions, {host} interpreter instructions, {r['cpu_median']:.1f} µs CPU per request", flush=True)
    return [rows[mode] for mode, _ in modes]


def render_http_layer(rows):
    if not rows:
        return "(wasmedge was not on PATH: not measured)"
    *handlers, minimal = rows
    host = lambda r: f"{r['host']:.0f}" if r["host"] is not None else "n/a (valgrind not installed)"
    lines = [
        "| in-process, no sockets | Wasm instructions per request | interpreter's instructions per request (callgrind) | CPU µs per request (median) |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['label']} | {r['wasm']:.0f} | {host(r)} | {r['cpu_median']:.1f} |")
    for name, r in zip(["echo service", "fixed response"], handlers):
        host_ratio = f"{minimal['host'] / r['host']:.2f}×" if r["host"] and minimal["host"] else "n/a"
        cpu_ratio = statistics.median(m / c for m, c in zip(minimal["cpu"], r["cpu"]))
        lines.append(
            f"| minimal ÷ edgepoll, {name} | {minimal['wasm'] / r['wasm']:.2f}× | {host_ratio} | {cpu_ratio:.2f}× |"
        )
    runs = "; ".join(f"{r['label']}: " + ", ".join(f"{c:.1f}" for c in r["cpu"]) for r in rows)
    return "\n".join(lines) + (
        f"\n\nCPU µs per request of each round (each mode once per round, the order rotating; "
        f"a CPU ratio is the median of the rounds' ratios): {runs}.")


def render_instructions(instruction_rows):
    if not instruction_rows:
        return "(wasmedge was not on PATH: not measured)"
    lines = [
        "| server | Wasm instructions per request | note |",
        "|---|---:|---|",
        f"| edgepoll echo, before (commit a86f78c) | {INSTRUCTIONS_BEFORE} | measured the same way before the interpreter work |",
    ]
    for r in instruction_rows:
        note = {
            "edgepoll echo": "now",
            "minimal keep-alive server": "bench/minimal_server: httparse, one Vec per connection, fixed response",
        }.get(r["server"], "bench/fixed_server: edgepoll's `Server` and `Handler` doing the minimal server's job")
        lines.append(f"| {r['server']} | {r['per_request']:.0f} | {note} |")
    return "\n".join(lines)


def chart(rows, scale_rows):
    if not shutil.which("gnuplot"):
        print("NOTE: gnuplot is not installed (apt-get install gnuplot-nox): no charts")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "throughput.dat"
        data.write_text("".join(f"\"{r['server']}\" {r[128]['rps']:.0f} {r[4096]['rps']:.0f}\n" for r in rows))
        plot = f"""
set terminal pngcairo size 1000,520 noenhanced
set output '{OUT / "throughput.png"}'
set title 'Echo servers, 1 wrk thread, 64 kept-alive connections (requests/s)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -20 left
set ylabel 'requests/s'
set grid ytics
set key top right
plot '{data}' using 2:xtic(1) title '128 B body', '' using 3 title '4 KiB body'
"""
        if scale_rows:
            sdata = Path(tmp) / "scale.dat"
            servers_seen = sorted({r["server"] for r in scale_rows})
            blocks = []
            for name in servers_seen:
                blocks.append("\n".join(f"{r['idle']} {r['rps']:.0f}" for r in scale_rows if r["server"] == name))
            sdata.write_text("\n\n\n".join(blocks) + "\n")
            plot += f"""
set output '{OUT / "scale.png"}'
set title 'Requests/s of 64 active connections while idle keep-alive connections are held open'
unset style
set style data linespoints
set xtics auto norotate
set xlabel 'idle connections'
set xrange [-250:5250]
set yrange [0:*]
plot """ + ", ".join(f"'{sdata}' index {i} using 1:2 title '{name}' lw 2" for i, name in enumerate(servers_seen)) + "\n"
        script = Path(tmp) / "plot.gp"
        script.write_text(plot)
        subprocess.run(["gnuplot", str(script)], check=True)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for needed in [HOST, WASM / "poll_http_server.wasm", WASM / "ws_chat.wasm", TARGET / "release" / "native_echo", TARGET / "release" / "ws_native", WS_LOAD]:
        if not needed.exists():
            sys.exit(f"bench: {needed} is missing; run `make bench`, which builds everything first")
    started = time.time()
    listed = servers()
    print(f"throughput ({RUNS} × {SECONDS} s per figure, {'the slower of the middle two' if RUNS % 2 == 0 else 'median'}):", flush=True)
    rows = throughput(listed)
    print("target ratios, measured in turns (A B B A A B B A A B, median of the per-turn ratios):", flush=True)
    pairs = [
        paired(listed, "edgepoll echo · edgepoll-host", "native mio echo (baseline)"),
        # A margin of 6× over a target of 4×: three turns do.
        paired(listed, "edgepoll echo · edgepoll-host", "book-style · edgepoll-host", turns=3),
        paired(listed, "edgepoll echo · edgepoll-host", "hyper_wasi · edgepoll-host"),
    ]
    if shutil.which("wasmedge"):
        pairs += [
            paired(listed, "edgepoll echo · wasmedge AOT", "native mio echo (baseline)"),
            paired(listed, "edgepoll echo · wasmedge AOT", "hyper_wasi · wasmedge AOT", turns=3),
            paired(listed, ECHO_INTERP, MINIMAL_INTERP),
            paired(listed, FIXED_INTERP, MINIMAL_INTERP),
        ]
    print("scale with idle connections:", flush=True)
    scale_rows = scale(listed)
    print("cost of an idle server:", flush=True)
    idle_rows = idle_cost(listed)
    print("cost of 5000 quiet connections while busy, full polls and peeks:", flush=True)
    quiet_rows = quiet_cost(listed)
    instruction_rows, dispatch_rows, http_layer_rows = [], [], []
    if shutil.which("wasmedge"):
        print("WebAssembly instructions per request (wasmedge --enable-instruction-count):", flush=True)
        instruction_rows = instructions()
        print("what one instruction costs the interpreter, by loop body size:", flush=True)
        dispatch_rows = dispatch_cost.measure()
        for r in dispatch_rows:
            print(f"  body of {r['body']} instructions: {r['ns_per_instruction']:.2f} ns per instruction", flush=True)
        print("the HTTP layer alone, in-process (bench/http_layer):", flush=True)
        http_layer_rows = http_layer()
    print(f"WebSocket fan-out ({FANOUT_CLIENTS} clients, {FANOUT_RUNS} × {FANOUT_SECONDS} s per figure, median):", flush=True)
    fanout_rows = fanout()
    fanout_table = render_fanout(fanout_rows)
    table, scale_table = render(rows, scale_rows)
    instruction_table = render_instructions(instruction_rows)
    http_layer_table = render_http_layer(http_layer_rows)
    interp_per_wasm = (
        "; ".join(f"{r['host'] / r['wasm']:.0f} per Wasm instruction for {r['label']}" for r in http_layer_rows if r["host"] is not None)
        or "(valgrind was not installed)"
    ) + "."
    goals = targets(rows, scale_rows, idle_rows, fanout_rows, pairs)
    dispatch_text = "\n".join(
        f"- a loop body of {r['body']} instructions: {r['ns_per_instruction']:.1f} ns per instruction" for r in dispatch_rows
    ) or "- (wasmedge is not on PATH: not measured)"
    pair_text = "\n".join(
        f"- {p['a']} against {p['b']}: **{p['ratio']:.2f}×** (per turn: {', '.join(f'{r:.2f}' for r in p['ratios'])};"
        f" runs: {', '.join(f'{r:.0f}' for r in p['a_runs'])} against {', '.join(f'{r:.0f}' for r in p['b_runs'])} req/s;"
        f" medians {p['a_rps']:.0f} against {p['b_rps']:.0f}, {p['a_rps'] / p['b_rps']:.2f}×)"
        for p in pairs
    )
    quiet_table = render_quiet_cost(quiet_rows)
    idle_table = "; ".join(f"{r['server']}: {r['cpu_ms_per_s']:.1f} ms CPU per second" for r in idle_rows)
    chart(rows, scale_rows)
    machine = f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = f"""# Benchmark results

Measured {when} on {machine} by `make bench` ({RUNS} runs × {SECONDS} s per figure, {"the slower of the middle two" if RUNS % 2 == 0 else "median"};
wrk 1 thread, 64 kept-alive connections, POST bodies of 128 B and 4 KiB, loopback; latencies
are of the requests answered within wrk's 1 s timeout, and each run is followed by a check
that the server still answers).
Compare ratios within one run, not absolute numbers across machines. The table's
"× native" sets runs minutes apart against each other, which on this machine differ by
±10% or more; the ratios the targets use are measured in turns (below).

## Throughput and latency

{table}

![throughput](throughput.png)

## Cost of idle connections

{scale_table}

![scale](scale.png)

Guest bytes per idle connection: growth of the guest's linear memory (64 KiB pages,
reported by edgepoll-host) while the idle connections were opened, divided by their number.
A lower bound: linear memory only grows, so what wrk's warm-up and runs freed before
may hold some of the idle connections' buffers without growing it.
Quiet connection p99: while wrk keeps 64 connections busy, one of the held idle
connections at a time sends a request every {PROBE_EVERY_MS} ms; the 99th percentile of
its response times. `Poll` hands WasmEdge only the recently active connections on most
calls and all of them at least every 100 ms (`ServerOptions::full_poll_interval`),
stretched in proportion with thousands of quiet ones (200 ms at 5000), so a connection
that was quiet is answered within about that.
"× that": against the same server's rate in the same process without the idle
connections, measured in {IDLE_TURNS} turns (without, with; with, without; ...: the idle
connections open and close between them), the median of the turns' ratios, as the
targets are; the rates shown are the medians of each side (the 0-idle rows come from
processes of their own, minutes apart; on this machine such rates differ by ±10% or
more). The quiet connection's p99 is the worst of its turns.

Target ratios measured in turns (A B B A A B B A A B, a fresh server each time). The
figure is the median of the per-turn ratios (five turns; three for the pairs
with wide margins), each between two runs made back to
back, so that the machine's drift from minute to minute falls on both sides of every
ratio (the ratio of the two medians, which earlier results used, is given too):
{pair_text}

The last pair is not a target: it gives edgepoll the minimal server's job
(`bench/fixed_server`: edgepoll's `Server` and `Handler` answering every request with the
minimal server's fixed response, byte for byte), so that the two are compared on the
same work. The echo example does more for each request than the minimal server: it
echoes the 128 B body and the `Content-Type` (see "The HTTP layer alone" below).

Idle cost, 5000 idle connections and no load: {idle_table}

### Quiet connections while the server is busy

CPU time the server spends per second while it holds 5000 quiet connections, one of
which (a different one each time) sends a request every 10 ms, all of them answered:
nearly all of it goes to `Poll`'s rounds
over the quiet ones (every 200 ms at 5000). With full polls, WasmEdge adds each quiet
socket to its epoll set and removes it again per round (two `epoll_ctl` calls); with
`ServerOptions::peek_quiet` (the echo server's `--peek-quiet`) each is looked at with
one peeking `sock_recv` instead. That pays under WasmEdge AOT, where a host call is
cheap and the full poll is not; edgepoll-host's full polls cost it little, and under
the interpreter each peek is a costly host call. So `make bench` runs the AOT rows
above with `--peek-quiet` and the others without (each figure the median of
{QUIET_COST_TURNS} turns, full polls and peeks alternating, a fresh server each time; the
ratio is the median of the turns' ratios):

{quiet_table}

## WebAssembly instructions per request (WasmEdge interpreter)

{instruction_table}

What a WasmEdge interpreter spends on each request grows with this count, but not with
it alone: the interpreter dispatches each instruction through one indirect jump, and an
instruction that runs once per pass costs it more than one in a short loop. Measured
here (`bench/dispatch_cost.py`: a loop over a body of simple integer instructions that
does not repeat itself):

{dispatch_text}

A server whose work is straight-line code, as edgepoll's eight- and sixteen-byte scans
and its checks on a parsed head are, pays more per instruction than one whose work is
byte loops, as httparse's is: that is why the throughput ratio of the two interpreter
rows is below the ratio of their instruction counts.

### The HTTP layer alone

`bench/http_layer` does the HTTP work of the two interpreter rows in-process, without
sockets, poll or a second process on the CPU: it feeds loadgen's request (a 128 B POST
with `Content-Type`) {HTTP_LAYER_REQUESTS} times to edgepoll's `Handler` with the echo
example's own service (`poll_http_server::echo`), or to the minimal server's own handling
(`minimal_server::complete`: httparse, the `Content-Length`, a fixed response), under
`wasmedge` (the interpreter). The middle row gives the `Handler` the minimal server's
job: a service that answers every request with the minimal server's fixed response
(the harness checks that the bytes are the same), so that the two are compared on the
same work, all of edgepoll's checks on the request included:

{http_layer_table}

The two edgepoll rows differ only in the service, so their difference is what the echo
example does beyond the minimal server: it looks up and echoes the `Content-Type` and
sends back the 128 B body (a longer `Content-Length`, a copy of the body, a header
field checked for CR and LF). That is the interpreter target's gap; the parser and the
connection's state machine, given the same job, cost fewer instructions than
httparse and the minimal server's handling.

The interpreter's instructions are counted by `valgrind --tool=callgrind`, which gives
the same count for the same run however busy the machine is: {interp_per_wasm}
WasmEdge's dispatch loop calls one function per Wasm instruction (seen in libwasmedge's
machine code), so most of that cost is the same for every instruction, and the
interpreter's work per request follows the Wasm instruction count: the first two ratios
of each row agree. CPU time is the figure that moves with the machine's load (see the runs); where
it falls below the other two, that is the cost per instruction the loop-size figures
above show: straight-line code costs the interpreter more per instruction than short
loops (this VM has no hardware counters to say which part of the CPU pays).

## WebSocket fan-out

{fanout_table}

`examples/ws_chat` against `bench/ws_native`, the same chat (join and leave notices,
every message broadcast to everyone as "name: text", a 256 KiB queue per connection)
on tungstenite over a single-threaded mio loop; ws_chat runs with
`--messages-per-second 0`, as ws_native has no limit on a sender. `bench/ws_load` connects
{FANOUT_CLIENTS} clients; one of them sends 64-byte messages, keeping 8 or 128 of them
not yet received by every client, and every client checks that it gets each message
once and in order. A delivery is one message arriving at one client; the figure is
deliveries per second over {FANOUT_SECONDS} s after a 1 s warm-up, median of
{FANOUT_RUNS} rounds (each server once per round, the order rotating); "× native" is
the median of the rounds' ratios. {"Server and load generator are pinned to one core each (taskset)." if pins() else "Server and load generator were not pinned (no taskset, or one core)."}
With 8 in flight most broadcasts go out in a send of their own to each client, so the
kernel's TCP path dominates; with 128, several go out per send. The load generator
does as many receives as the server does sends, so it bounds the fastest server.

Memory per idle WebSocket: after a warm-up, {WS_IDLE} clients connect (every join is
announced to everyone) and then hold still; the growth of the guest's linear memory
(edgepoll-host's report, 64 KiB pages; it only grows, so the buffers of the join
broadcasts count too) and of the runtime's RSS, divided by {WS_IDLE}.

## Targets

{goals}

## Notes

- The native baseline runs the same sans-IO `Handler` on mio, so its ratio is the cost
  of wasm and the runtime, not of a different HTTP implementation. wrk and the server
  share the machine's cores, so figures move by about ±10% between runs; a wasm row
  can come out above the native one.
- The book-style server answers one request per connection (`Connection: close`); wrk
  reconnects for every request.
- hyper_wasi writes each response in one send (`http1_writev(false)` in
  `bench/hyper_echo`). With its default it sent a head and a body apart, and with
  Nagle's algorithm on (WasmEdge sockets cannot set `TCP_NODELAY`, and
  edgepoll-host keeps it on to behave the same) each kept-alive request waited for
  the client's delayed ACK, about 40 ms: about 1450 req/s, which measured the
  delay, not hyper (until 2026-12-03; the target was then 50×, now 1.0×).
- Total time of this run: {time.time() - started:.0f} s.
"""
    (OUT / "RESULTS.md").write_text(report + kept_sections())
    # The README's copy of the report goes with it, before the sections
    # below run: one of them failing leaves the two agreeing.
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        body = f"{start}\nLatest `make bench` ({when}, {machine}):\n\n{table}\n\n{scale_table}\n\nWebSocket fan-out ({FANOUT_CLIENTS} clients):\n\n{fanout_table}\n\n![throughput](bench/throughput.png)\n![scale](bench/scale.png)\n{end}"
        readme.write_text(before + body + after)
    # A service that waits: its own section, after the report.
    print("a service that waits (bench/forwarding.py):", flush=True)
    import forwarding

    forwarding.write(forwarding.main())
    # The reverse proxy against nginx, and spread over two backends.
    import proxy

    proxy.main()
    # edgepoll-host --instances: a second core, and a single instance's cost.
    import instances

    instances.main()
    # TLS in the guest against the same client built natively.
    import tls

    tls.main()
    print(table)
    print()
    print(scale_table)
    print()
    print(instruction_table)
    print()
    print(http_layer_table)
    print()
    print(fanout_table)
    print()
    print(goals)
    print(f"\nwrote bench/RESULTS.md, bench/throughput.png, bench/scale.png ({time.time() - started:.0f} s)")
    print_missed()


def print_missed():
    """Ends the run with the targets it missed, from every section of
    RESULTS.md (each script writes its own). A missed target is a result,
    not a failure of the run: `make bench` exits 0 once all is measured."""
    lines = (OUT / "RESULTS.md").read_text().splitlines()
    # Per cell: a row may carry a verdict that is no target on its runtime
    # beside one that is (forwarding.py's CPU and memory on edgepoll-host).
    missed = [line for line in lines
              if any("MISSED" in cell and "not a target here" not in cell for cell in line.split("|"))]
    print(f"\nlines of bench/RESULTS.md with a missed target: {len(missed)}")
    for line in missed:
        print("  " + (line if len(line) <= 160 else line[:157] + "..."))


def kept_sections():
    """The sections of RESULTS.md other scripts write (`make soak`'s, and
    those of the measurements that run after this report is written),
    kept as they are: each is replaced in place when its script ends, so
    one that fails leaves its last (dated) section, not a hole."""
    path = OUT / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    kept = ""
    for name in ("forwarding", "proxy", "instances", "tls", "soak"):
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start in text and end in text:
            kept += "\n" + start + text.split(start, 1)[1].split(end, 1)[0] + end + "\n"
    return kept


if __name__ == "__main__":
    main()
