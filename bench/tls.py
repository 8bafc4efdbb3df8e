#!/usr/bin/env python3
"""TLS in the guest against the same client built natively (`make bench`
runs this; alone: `python3 bench/tls.py` after `make bench` built the
programs):

- Handshakes per second: N GETs to nginx over https, one after another, each
  on a new connection (nginx closes each after one request; the client's
  session cache resumes sessions, as rustls' default does), TLS 1.3.
- MB/s: one 64 MiB download from nginx over TLS, the body written to a file
  as it arrives by both clients (wasm through a preopened directory).

The wasm client is examples/nonblock_http_client (`--parallel 1`, `-o`) on
edgepoll-host and on WasmEdge AOT; the native one is bench/tls_client, with
the very same rustls, ring provider and configuration
(`edgepoll::tls::client_config`) over blocking std sockets. The one
difference is the record cipher: in WebAssembly edgepoll seals and opens
ChaCha20-Poly1305 records with its own SIMD code (ring has none for
WebAssembly), natively ring's AVX2 assembly does. A wasm run's
start-up (measured with one request) is taken off its time. In turns; the
median of the turns, and each turn's ratio to native.

Writes its section of bench/RESULTS.md.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (free_port, write_section, WASM, TARGET)

CLIENT = run.WASM / "nonblock_http_client.wasm"
NATIVE = run.TARGET / "release" / "tls_client"
TURNS = 5
HANDSHAKES = 1000
BIG = 64 << 20


def openssl(directory, *args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def make_pki(directory):
    """A CA and a certificate for localhost signed by it."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(directory, "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=edgepoll bench CA")
    openssl(directory, "req", *key, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    Path(directory, "ext").write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
    openssl(directory, "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "srv.pem", "-days", "1", "-extfile", "ext")


class Nginx:
    """nginx with one worker serving `/fixed` and a 64 MiB file over TLS."""

    def __init__(self, directory, port):
        binary = next((b for b in ("/usr/sbin/nginx", "/usr/bin/nginx") if Path(b).exists()), None)
        if binary is None:
            raise RuntimeError("nginx is needed: apt-get install -y nginx-light (make setup does)")
        root = Path(directory, "root")
        root.mkdir()
        with open(root / "big.bin", "wb") as f:
            f.write(os.urandom(BIG))
        temp = " ".join(f"{k}_temp_path {directory}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = (
            f"daemon off; master_process off; worker_processes 1; pid {directory}/nginx.pid; error_log stderr crit;\n"
            "events { worker_connections 1024; }\n"
            # One request per connection: each GET takes a handshake.
            f"http {{ access_log off; keepalive_requests 1; {temp}\n"
            f"  server {{ listen 127.0.0.1:{port} ssl; root {root};\n"
            f"    ssl_certificate {directory}/srv.pem; ssl_certificate_key {directory}/srv.key;\n"
            "    ssl_protocols TLSv1.2 TLSv1.3;\n"
            '    location = /fixed { return 200 "fixed\\n"; } } }\n'
        )
        Path(directory, "nginx.conf").write_text(conf)
        self.proc = subprocess.Popen([binary, "-c", f"{directory}/nginx.conf", "-p", directory],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run.wait_listening(self.proc, port, "nginx")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def timed(command, answers):
    """Seconds `command` took; it must have printed `answers` lines of a
    200 (the client exits 0 for any status, as curl does)."""
    started = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600).stdout
    elapsed = time.perf_counter() - started
    ok = sum(1 for line in out.splitlines() if " -> 200 " in line)
    if ok != answers:
        raise RuntimeError(f"{ok} of {answers} requests were answered 200: {out[-400:]}")
    return elapsed


def native(directory, port):
    ca = f"{directory}/ca.pem"

    def seconds(*args):
        out = subprocess.run([str(NATIVE), *args], check=True, capture_output=True, text=True, timeout=600).stdout
        return float(out.split("seconds=")[1].split()[0])

    hs = HANDSHAKES / seconds("handshakes", str(HANDSHAKES), str(port), ca)
    # One request's time (a full handshake: a new process has no session)
    # comes off the download's, as the guest's start-up run, which holds
    # one, comes off the guest's: both figures are the transfer alone.
    one = statistics.median(seconds("handshakes", "1", str(port), ca) for _ in range(3))
    download = seconds("download", str(port), "/big.bin", f"{directory}/native.bin", ca)
    return hs, BIG / max(download - one, 1e-6) / 1e6


def wasm(runtime, module, directory, port):
    base = runtime + ["--dir", f"{directory}:{directory}", str(module), "--timeout", "300",
                      "--cacert", f"{directory}/ca.pem"]
    fixed = f"https://localhost:{port}/fixed"
    # The median start-up (the minimum would count any slower start of the
    # measured runs as transfer time, against the guest).
    startup = statistics.median(timed(base + [fixed], answers=1) for _ in range(3))
    many = timed(base + ["--parallel", "1"] + [fixed] * HANDSHAKES, answers=HANDSHAKES)
    hs = (HANDSHAKES - 1) / max(many - startup, 1e-6)
    download = timed(base + ["-o", f"{directory}/out.bin", f"https://localhost:{port}/big.bin"], answers=1)
    got = os.path.getsize(f"{directory}/out.bin")
    if got != BIG:
        raise RuntimeError(f"the download came with {got} of {BIG} bytes")
    return hs, BIG / max(download - startup, 1e-6) / 1e6


def main():
    directory = tempfile.mkdtemp(prefix="edgepoll-bench-tls-")
    try:
        make_pki(directory)
        # Compiled first: a compile that fails ends the run with no
        # server started.
        runtimes = [("edgepoll-host", [str(run.HOST)], CLIENT)]
        if shutil.which("wasmedge"):
            runtimes.append(("WasmEdge AOT", ["wasmedge"], run.aot(CLIENT)))
        port = run.free_port()
        server = Nginx(directory, port)
        rows = {"native (same rustls, ring)": []}
        rows.update({label: [] for label, _, _ in runtimes})
        try:
            clients = [("native (same rustls, ring)", None, None)] + runtimes
            for turn in range(TURNS):
                # The order rotates from turn to turn, so that no client
                # always runs in the same place of a turn.
                first = turn % len(clients)
                measured = {}
                for label, runtime, module in clients[first:] + clients[:first]:
                    measured[label] = native(directory, port) if runtime is None else wasm(runtime, module, directory, port)
                for label, value in measured.items():
                    rows[label].append(value)
                print(f"turn {turn + 1}: " + ", ".join(
                    f"{k} {v[0]:.0f} hs/s {v[1]:.0f} MB/s" for k, v in measured.items()), flush=True)
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    write(rows)


def write(rows):
    native_rows = rows["native (same rustls, ring)"]
    lines = [
        "<!-- tls:start -->",
        "## TLS in the guest (bench/tls.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. nonblock_http_client against nginx (one worker, TLS 1.3) on loopback: {HANDSHAKES} GETs one after another,",
        "each on a new connection (sessions resumed, as rustls does by default), and a 64 MiB download.",
        "The native peer is bench/tls_client: the same rustls, ring provider and configuration; both write the body to a file.",
        "The record cipher (ChaCha20-Poly1305) is edgepoll's SIMD code in the guest and ring's AVX2 assembly natively.",
        f"{TURNS} turns, the order of the clients rotating; medians, and each turn's ratio to native (the ratio column is the median of those).",
        "",
        "| client | handshakes/s | × native (per turn) | MB/s | × native (per turn) |",
        "|---|---:|---|---:|---|",
    ]
    verdicts = []
    for label, values in rows.items():
        hs = statistics.median(v[0] for v in values)
        mbs = statistics.median(v[1] for v in values)
        hs_ratios = [v[0] / n[0] for v, n in zip(values, native_rows)]
        mb_ratios = [v[1] / n[1] for v, n in zip(values, native_rows)]
        per_turn = lambda ratios: ", ".join(f"{r:.2f}" for r in ratios)
        lines.append(
            f"| {label} | {hs:.0f} | {statistics.median(hs_ratios):.2f} ({per_turn(hs_ratios)}) "
            f"| {mbs:.0f} | {statistics.median(mb_ratios):.2f} ({per_turn(mb_ratios)}) |")
        if label == "WasmEdge AOT":
            met = lambda ratio, target: "met" if ratio >= target else "MISSED"
            verdicts = [
                f"handshakes/s ≥ 0.6× native: {met(statistics.median(hs_ratios), 0.6)}",
                f"MB/s ≥ 0.8× native: {met(statistics.median(mb_ratios), 0.8)}",
            ]
    lines += ["", "Targets for WasmEdge AOT (median of the turns' ratios): "
              + ("; ".join(verdicts) if verdicts else "not measured (wasmedge is not on PATH)") + ".",
              "<!-- tls:end -->"]
    run.write_section("tls", "\n".join(lines))


if __name__ == "__main__":
    main()
