#!/usr/bin/env python3
"""The forwarding service's costs (`make bench` runs this; alone:
`python3 bench/forwarding.py`), on every runtime present:

- CPU per request: tests/guests/forward (one inbound and one outbound
  exchange per request, through the loop's pooled client) against the echo
  server, both in front of wrk's same load (POST 128 B, 64 connections), the
  forwarder's upstream being the native echo baseline (so that only the
  forwarder's own work is counted). Process CPU time divided by requests
  answered, in turns (A B B A A B), the ratio taken within each turn.
- The same ratio for nginx (one worker, upstream keep-alive), measured in
  the same turns: nginx answering by itself (`return 200` with a 128 B
  body, as long as the echo server's answer) against nginx
  forwarding to the same upstream. That is what one outbound exchange costs
  a production proxy on this machine: on loopback, the kernel's work for
  the second connection's sends and receives (including delivering them to
  the peer) is charged to the forwarder.
- A reference, in the same turns: a byte pipe in front of the same
  upstream (each client paired with an upstream connection of its own,
  nothing parsed), natively (bench/native_pipe, against the native echo
  baseline answering by itself) and as a guest on each runtime
  (bench/wasm_pipe, on edgepoll's Poll, against the echo server there).
  What a pipe costs is mostly the kernel's and the runtime's work for one
  outbound exchange per request: one lean design, not a proven least.
- Guest memory per idle pooled upstream connection: the bytes the forwarder
  holds (its counting allocator, `/_stats`) after a burst of 200 concurrent
  clients whose requests an upstream answers after 0.3 s each, with a pool of up to 256 connections against one of at most 1;
  the difference divided by the extra pooled connections (counted with ss).

Writes its section of bench/RESULTS.md.
"""

import tempfile
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared helpers: Process, wrk, free_port)

FORWARD = run.WASM / "forward_guest.wasm"
ECHO = run.WASM / "poll_http_server.wasm"
PIPE = run.WASM / "wasm_pipe.wasm"
TURNS = 3
BURST_CLIENTS = 200


def runtimes():
    listed = [("edgepoll-host", [str(run.HOST)], FORWARD, ECHO, PIPE)]
    if shutil.which("wasmedge"):
        listed.append(("WasmEdge AOT", ["wasmedge"], run.aot(FORWARD), run.aot(ECHO), run.aot(PIPE)))
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


class Nginx:
    """nginx with one worker and no master process on `port`: answering
    by itself, or forwarding to `upstream_port` over kept-alive connections."""

    def __init__(self, port, upstream_port=None):
        binary = next((b for b in ("/usr/sbin/nginx", "/usr/bin/nginx") if Path(b).exists()), None)
        if binary is None:
            raise RuntimeError("nginx is needed: apt-get install -y nginx-light (make setup does)")
        self.dir = tempfile.mkdtemp(prefix="edgepoll-bench-nginx-")
        if upstream_port is None:
            # As long as the echo server's answer (128 B): the same bytes
            # to send on the inbound side as the forwarder relays.
            upstream, location = "", f'return 200 "{"x" * 128}";'
        else:
            # nginx closes a kept-alive connection after 1000 requests by
            # default, both ways; edgepoll's peers never do: no reconnects
            # counted against nginx alone.
            upstream = (f"upstream echo {{ server 127.0.0.1:{upstream_port}; keepalive 64; "
                        "keepalive_requests 1000000; }")
            location = 'proxy_pass http://echo; proxy_http_version 1.1; proxy_set_header Connection "";'
        temp = " ".join(f"{kind}_temp_path {self.dir}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = (
            f"daemon off; master_process off; worker_processes 1; pid {self.dir}/nginx.pid; error_log stderr crit;\n"
            "events { worker_connections 1024; }\n"
            f"http {{ access_log off; keepalive_requests 1000000; {temp} {upstream}\n"
            f"  server {{ listen 127.0.0.1:{port}; location / {{ {location} }} }} }}\n"
        )
        Path(self.dir, "nginx.conf").write_text(conf)
        self.proc = subprocess.Popen([binary, "-c", f"{self.dir}/nginx.conf", "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            run.wait_listening(self.proc, port, "nginx")
        finally:
            if self.proc.poll() is not None:
                shutil.rmtree(self.dir, ignore_errors=True)

    def cpu_seconds(self):
        return run.schedstat_seconds(self.proc.pid)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def nginx_cpu_per_request(upstream_port):
    """CPU µs per request of nginx answering by itself (`upstream_port`
    None) or forwarding, under the same wrk load."""
    port = run.free_port()
    server = Nginx(port, upstream_port)
    try:
        run.wrk(port, 128, runs=1)
        before = server.cpu_seconds()
        result = run.wrk(port, 128, runs=1)
        return (server.cpu_seconds() - before) * 1e6 / result["requests"]
    finally:
        server.stop()


def stats(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /_stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return dict(kv.split("=") for kv in data.split(b"\r\n\r\n", 1)[1].decode().split())


class SlowUpstream:
    """An HTTP/1.1 upstream that answers each request after `delay`
    seconds, keeping connections alive: so that a burst of concurrent
    requests needs as many upstream connections as the pool allows."""

    def __init__(self, delay=0.3):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 1024

            def handle_error(self, request, client_address):
                pass  # a client of the burst that left: nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def burst(port, clients, wait=3.0):
    """`clients` concurrent GETs on their own connections; waits up to
    `wait` seconds for their answers, then closes them all. Returns how
    many were answered 200."""
    import selectors

    sockets = []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /burst HTTP/1.1\r\nHost: x\r\n\r\n")
        s.setblocking(False)
        sockets.append(s)
    selector = selectors.DefaultSelector()
    for s in sockets:
        selector.register(s, selectors.EVENT_READ)
    answered, deadline = 0, time.time() + wait
    while answered < clients and time.time() < deadline:
        for key, _ in selector.select(timeout=0.1):
            # The status line comes in the first read of a 3-byte answer.
            if key.fileobj.recv(65536).startswith(b"HTTP/1.1 200 "):
                answered += 1
            selector.unregister(key.fileobj)
    for s in sockets:
        s.close()
    return answered


def established_to(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True, timeout=30).stdout
    return len([l for l in out.splitlines() if l.strip()])


def native_cpu_per_request(upstream_port, which):
    """CPU µs per request of the native echo baseline answering by itself
    (`which` "direct") or of the native byte pipe in front of it ("pipe")."""
    port = run.free_port()
    if which == "direct":
        command = [str(run.TARGET / "release" / "native_echo"), f"127.0.0.1:{port}"]
    else:
        command = [str(run.TARGET / "release" / "native_pipe"), f"127.0.0.1:{port}", f"127.0.0.1:{upstream_port}"]
    return cpu_per_request(command, port)[0]


def pooled_memory(runtime, forward):
    """Live guest bytes after a burst of concurrent requests to a slow
    upstream, with a pool limit of 1 and of 256 connections."""
    measured = {}
    upstream = SlowUpstream()
    try:
        for limit in (1, 256):
            port = run.free_port()
            server = run.Process(runtime + [str(forward), "--max-per-origin", str(limit), f"127.0.0.1:{port}", f"/=http://127.0.0.1:{upstream.port}"], "listening on")
            try:
                answered = burst(port, BURST_CLIENTS)
                # With 256 connections allowed, the burst is answered at
                # once: a forwarder that fails it pools nothing, and would
                # look cheap.
                if limit == 256 and answered < BURST_CLIENTS:
                    raise RuntimeError(f"the forwarder answered {answered} of {BURST_CLIENTS} requests 200")
                # Idle first: the requests the burst gave up on (with one
                # connection most queue) are let go, or their bytes would
                # count as the pool's.
                deadline = time.time() + 30
                while (held := int(stats(port)["waiting"])) and time.time() < deadline:
                    time.sleep(0.5)
                if held:
                    raise RuntimeError(f"the forwarder (pool of {limit}) still held {held} requests 30 s after the burst")
                time.sleep(1)
                pooled = established_to(upstream.port)
                live = int(stats(port)["live"])
                measured[limit] = (live, pooled)
            finally:
                server.stop()
    finally:
        upstream.stop()
    (small, small_pool), (large, large_pool) = measured[1], measured[256]
    extra = large_pool - small_pool
    if extra < BURST_CLIENTS // 2:
        raise RuntimeError(f"the pool kept {large_pool} upstream connections after {BURST_CLIENTS} concurrent requests")
    return (large - small) / extra, large_pool


def main():
    rows = []
    upstream_port = run.free_port()
    upstream = run.Process([str(run.TARGET / "release" / "native_echo"), f"127.0.0.1:{upstream_port}"], "listening on")
    try:
        listed = runtimes()
        # nginx and every runtime in each turn, each pair's order flipping
        # from turn to turn, so that the peer's ratio and ours come from the
        # same minutes.
        nginx = {"direct": [], "forward": []}
        native = {"direct": [], "pipe": []}
        ours = {label: {"echo": [], "forward": [], "pipe": []} for label, *_ in listed}
        for turn in range(TURNS):
            flip = turn % 2 == 1
            for which in ["forward", "direct"] if flip else ["direct", "forward"]:
                nginx[which].append(nginx_cpu_per_request(upstream_port if which == "forward" else None))
            for which in ["pipe", "direct"] if flip else ["direct", "pipe"]:
                native[which].append(native_cpu_per_request(upstream_port, which))
            for label, runtime, forward, echo, pipe in listed:
                # The echo server in the middle, so that each ratio to it
                # spans one neighbour, not the whole turn.
                for which in ["pipe", "echo", "forward"] if flip else ["forward", "echo", "pipe"]:
                    port = run.free_port()
                    if which == "echo":
                        command = runtime + [str(echo), f"127.0.0.1:{port}"]
                    elif which == "pipe":
                        command = runtime + [str(pipe), f"127.0.0.1:{port}", f"127.0.0.1:{upstream_port}"]
                    else:
                        command = runtime + [str(forward), "--max-per-origin", "64", f"127.0.0.1:{port}", f"/=http://127.0.0.1:{upstream_port}"]
                    ours[label][which].append(cpu_per_request(command, port)[0])
        ratios = [f / d for d, f in zip(nginx["direct"], nginx["forward"])]
        peer = {"direct_us": statistics.median(nginx["direct"]), "proxy_us": statistics.median(nginx["forward"]),
                "ratios": ratios, "ratio": statistics.median(ratios)}
        print(f"  nginx (peer): CPU per request answering itself {peer['direct_us']:.1f} µs, forwarding "
              f"{peer['proxy_us']:.1f} µs; ratio per turn {', '.join(f'{r:.2f}' for r in peer['ratios'])}: "
              f"median {peer['ratio']:.2f}", flush=True)
        ratios = [p / d for d, p in zip(native["direct"], native["pipe"])]
        peer["native"] = {"direct_us": statistics.median(native["direct"]), "pipe_us": statistics.median(native["pipe"]),
                         "ratios": ratios, "ratio": statistics.median(ratios)}
        print(f"  reference: CPU per request of the native echo {peer['native']['direct_us']:.1f} µs, of a native byte pipe "
              f"in front of it {peer['native']['pipe_us']:.1f} µs; ratio per turn {', '.join(f'{r:.2f}' for r in ratios)}: "
              f"median {peer['native']['ratio']:.2f}", flush=True)
        for label, runtime, forward, _, _ in listed:
            got = ours[label]
            ratios = [f / e for e, f in zip(got["echo"], got["forward"])]
            # This runtime's pipe against its echo server, and its forwarder
            # against its pipe, turn by turn.
            pipe_ratios = [p / e for e, p in zip(got["echo"], got["pipe"])]
            over_pipe = [f / p for p, f in zip(got["pipe"], got["forward"])]
            per_idle, pooled = pooled_memory(runtime, forward)
            row = {
                "runtime": label,
                "echo_us": statistics.median(got["echo"]),
                "forward_us": statistics.median(got["forward"]),
                "pipe_us": statistics.median(got["pipe"]),
                "ratios": ratios,
                "ratio": statistics.median(ratios),
                "pipe_ratio": statistics.median(pipe_ratios),
                "pipe_ratios": pipe_ratios,
                "over_pipe": over_pipe,
                "per_idle": per_idle,
                "pooled": pooled,
            }
            rows.append(row)
            print(f"  {label}: CPU per request echo {row['echo_us']:.1f} µs, forwarding {row['forward_us']:.1f} µs; "
                  f"ratio per turn {', '.join(f'{r:.2f}' for r in ratios)}: median {row['ratio']:.2f} (the pipe {row['pipe_ratio']:.2f}; "
                  f"forwarding × the pipe {statistics.median(over_pipe):.2f}); "
                  f"{per_idle:.0f} guest bytes per idle pooled connection ({pooled} pooled)", flush=True)
    finally:
        upstream.stop()
    return rows, peer


def section(rows, peer):
    lines = [
        "<!-- forwarding:start -->",
        "## A service that waits (`bench/forwarding.py`, part of `make bench`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. tests/guests/forward answers each request with what an "
        "upstream (the native echo baseline) said, through the loop's pooled client: one inbound and one outbound "
        "exchange per request. CPU time of the serving process per request under wrk (POST 128 B, 64 connections), "
        f"in {TURNS} turns against the echo server on the same runtime; memory from the guest's own count of "
        f"the bytes it holds after {BURST_CLIENTS} concurrent requests to an upstream that answers each after 0.3 s, with a pool of up to 256 upstream "
        "connections against one of at most 1.",
        "",
        f"The peer, in the same run: nginx (one worker, upstream keep-alive) costs {peer['proxy_us']:.1f} µs per request "
        f"forwarding to the same upstream against {peer['direct_us']:.1f} µs answering by itself (`return 200` with a body of 128 B): "
        f"{peer['ratio']:.2f}× (per turn {', '.join(f'{x:.2f}' for x in peer['ratios'])}).",
        "",
        f"A reference, in the same turns: a byte pipe in front of the same upstream, each client paired with an "
        "upstream connection of its own and nothing parsed. Natively (bench/native_pipe) it costs "
        f"{peer['native']['pipe_us']:.1f} µs per request against {peer['native']['direct_us']:.1f} µs for that upstream "
        f"answering by itself: {peer['native']['ratio']:.2f}× (per turn {', '.join(f'{x:.2f}' for x in peer['native']['ratios'])}). "
        "As a guest (bench/wasm_pipe, on edgepoll's Poll) its cost is in the pipe columns, against each runtime's echo "
        "server and against the forwarder, turn by turn: what one outbound exchange per request over TCP costs there "
        "with nothing parsed (one lean design, not a proven least). On loopback the kernel's work for the second "
        "connection (its sends, and their delivery to the peer) is charged to the forwarder, and under WasmEdge so is "
        "the runtime's per-call work (an `epoll_ctl` per subscription of each poll, an `ioctl` per read event).",
        "",
        "| runtime | echo CPU µs/request | forwarding CPU µs/request | × echo (per turn) | pipe CPU µs/request | pipe × echo (per turn) | forwarding × pipe (per turn) | target ≤ 1.6× (AOT) | guest bytes per idle pooled connection | target ≤ 2 KiB |",
        "|---|---:|---:|---|---:|---|---|---|---:|---|",
    ]
    for r in rows:
        met = r["ratio"] <= 1.6
        lines.append(
            f"| {r['runtime']} | {r['echo_us']:.1f} | {r['forward_us']:.1f} | {r['ratio']:.2f} ({', '.join(f'{x:.2f}' for x in r['ratios'])}) | {r['pipe_us']:.1f} | {r['pipe_ratio']:.2f} ({', '.join(f'{x:.2f}' for x in r['pipe_ratios'])}) "
            f"| {statistics.median(r['over_pipe']):.2f} ({', '.join(f'{x:.2f}' for x in r['over_pipe'])}) "
            f"| {'met' if met else 'MISSED'}{'' if r['runtime'] == 'WasmEdge AOT' else ' (not a target here)'} "
            f"| {r['per_idle']:.0f} ({r['pooled']} pooled) | {'met' if r['per_idle'] <= 2048 else 'MISSED'} |"
        )
    lines.append("<!-- forwarding:end -->")
    return "\n".join(lines)


def write(measured):
    run.write_section("forwarding", section(*measured))


if __name__ == "__main__":
    write(main())
