#!/usr/bin/env python3
"""make browser-check: two headless Chromium pages chat through examples/ws_chat.

For each runtime present (edgepoll-host; WasmEdge's interpreter and AOT when
`wasmedge` is on PATH) it starts the chat server on 127.0.0.1, opens the page
as ann and as bob (and then as a second ann, who must be named `ann (2)`),
puts a line into the first page's input
(`Input.insertText`), presses Enter there (key events) and waits for the line
to appear in the second; then bob answers and ann sees it. Chromium is
driven over its DevTools protocol (a WebSocket on 127.0.0.1) with Python's
`websockets`, so no driver binary is needed. The second page is saved as a
PNG per runtime under target/browser-check/, and the one from WasmEdge (else
edgepoll-host) as docs/chat.png, which the README shows. Every wait is
bounded; exit status 0 only if every runtime passed.

Chromium is started with its background services off and every host name but
127.0.0.1 made unresolvable, so it contacts nothing but the local server.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    from websockets.sync.client import connect
except ImportError:
    sys.exit("Python's websockets package is missing: python3 -m pip install websockets (make setup installs it)")

# Loopback only: websockets 15 and later go through a proxy named in the
# environment unless no_proxy exempts the host (Chromium is told apart).
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "*"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WASM = os.path.join(ROOT, "target/wasm32-wasip1/release/ws_chat.wasm")
OUT = os.path.join(ROOT, "target/browser-check")
WAIT = 30


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("headless Chromium is missing: apt-get install chromium (make browser-check installs it)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, probe, timeout=WAIT):
    """Calls probe() until it returns something true; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class DevTools:
    """A minimal Chrome DevTools protocol client: one WebSocket to the browser,
    pages reached through flattened sessions."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    def call(self, method, session=None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"DevTools {method}: no answer within {WAIT} s")
            reply = json.loads(self.ws.recv(timeout=left))
            if reply.get("id") == self.next_id:  # events have no id
                if "error" in reply:
                    raise AssertionError(f"DevTools {method}: {reply['error']}")
                return reply.get("result", {})

    def open_page(self, url):
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", session, width=760, height=560,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", session, url=url)
        return session

    def evaluate(self, session, expression):
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def type_line(self, session, text):
        """Focuses the input, inserts `text` into it and presses Enter (key events)."""
        self.evaluate(session, "document.getElementById('text').focus()")
        self.call("Input.insertText", session, text=text)
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", session, type=kind, key="Enter", code="Enter",
                      windowsVirtualKeyCode=13, nativeVirtualKeyCode=13,
                      **({"text": "\r"} if kind == "keyDown" else {}))

    def log_of(self, session):
        return self.evaluate(session, "document.getElementById('log').innerText") or ""

    def wait_connected(self, session, who):
        """Waits until the page says it is connected as `who`, the name the server gave."""
        wait_for(f"{who}'s page connected", lambda: self.evaluate(
            session, "document.getElementById('status').textContent") == f"connected as {who}")

    def wait_line(self, session, line, who):
        wait_for(f"'{line}' shown on {who}'s page", lambda: line in self.log_of(session).splitlines())


def start_chromium(profile):
    command = [
        chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
        "--no-first-run", "--no-default-browser-check", "--disable-sync",
        "--disable-background-networking", "--disable-component-update",
        "--disable-domain-reliability", "--disable-default-apps", "--no-pings",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-proxy-server",
        "about:blank",
    ]
    browser = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    active = os.path.join(profile, "DevToolsActivePort")

    def port_and_path():
        # Chromium creates the file before it writes it: both lines or wait.
        if browser.poll() is not None:
            raise AssertionError(f"Chromium exited with status {browser.returncode} before it listened")
        lines = open(active).read().split("\n")[:2] if os.path.exists(active) else []
        return lines if len(lines) == 2 and all(lines) else None

    try:
        port, path = wait_for("Chromium's DevTools port", port_and_path)
    except BaseException:
        browser.kill()
        browser.wait()
        raise
    return browser, f"ws://127.0.0.1:{port}{path}"


def check(runtime):
    port = free_port()
    env = dict(os.environ, EDGEPOLL_RUNTIME=runtime)
    os.makedirs(OUT, exist_ok=True)
    log = open(os.path.join(OUT, f"{runtime}-server.log"), "wb")
    # Its own process group: the runner's children (an AOT compile, the
    # runtime) go with it.
    server = subprocess.Popen([os.path.join(ROOT, "scripts/wasm-runner"), WASM, f"127.0.0.1:{port}"],
                              env=env, stdout=log, stderr=log, start_new_session=True)
    profile = tempfile.mkdtemp(prefix="edgepoll-chromium-")
    browser = None

    def server_listening():
        if server.poll() is not None:
            raise AssertionError(f"the chat server exited with status {server.returncode} before it listened")
        return listening(port)

    try:
        wait_for("the chat server listening", server_listening, timeout=120)  # AOT compiles first
        browser, url = start_chromium(profile)
        with connect(url, max_size=None, open_timeout=WAIT) as ws:
            return chat(DevTools(ws), port, runtime)
    finally:
        if browser:
            browser.kill()
            browser.wait()
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


def chat(devtools, port, runtime):
    """ann and bob chat; returns the path of bob's screenshot."""
    page = f"http://127.0.0.1:{port}/"
    ann = devtools.open_page(page + "?name=ann")
    devtools.wait_connected(ann, "ann")
    bob = devtools.open_page(page + "?name=bob")
    devtools.wait_connected(bob, "bob")
    devtools.wait_line(ann, "* bob joined", "ann")
    devtools.type_line(ann, "hello from ann's page")
    devtools.wait_line(bob, "ann: hello from ann's page", "bob")
    devtools.type_line(bob, "hi ann, bob here")
    devtools.wait_line(ann, "bob: hi ann, bob here", "ann")
    devtools.wait_line(bob, "bob: hi ann, bob here", "bob")
    # A run of blanks cannot wrap a fake line of bob's onto ann's message.
    devtools.type_line(ann, "see" + " " * 300 + "bob: this is not bob")
    devtools.wait_line(bob, "ann: see bob: this is not bob", "bob")
    # A second ann is told the name the server made unique.
    ann2 = devtools.open_page(page + "?name=ann")
    devtools.wait_connected(ann2, "ann (2)")
    devtools.wait_line(bob, "* ann (2) joined", "bob")
    shot = base64.b64decode(devtools.call("Page.captureScreenshot", bob, format="png")["data"])
    path = os.path.join(OUT, f"{runtime}.png")
    with open(path, "wb") as f:
        f.write(shot)
    return path


def main():
    if not os.path.exists(WASM):
        sys.exit(f"{WASM} is missing: run make build first")
    runtimes = ["host"]
    if shutil.which("wasmedge"):
        runtimes += ["wasmedge", "aot"]
    else:
        print("NOTE: wasmedge is not on PATH: the browser check runs on edgepoll-host only")
    shots = {}
    failed = False
    for runtime in runtimes:
        try:
            shots[runtime] = check(runtime)
            print(f"browser-check on {runtime}: a line sent from one page appeared on the other "
                  f"(both ways); screenshot {os.path.relpath(shots[runtime], ROOT)}")
        except Exception as problem:  # noqa: BLE001 (any failure is this runtime's; the others still run)
            print(f"browser-check on {runtime}: FAILED: {type(problem).__name__}: {problem} "
                  f"(server output in target/browser-check/{runtime}-server.log)")
            failed = True
    best = shots.get("wasmedge") or shots.get("host")
    if best:
        os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
        shutil.copy(best, os.path.join(ROOT, "docs/chat.png"))
        print(f"docs/chat.png is the screenshot from {os.path.basename(best)[:-4]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
