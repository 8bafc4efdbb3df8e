#!/usr/bin/env python3
"""Real WebSocket clients against examples/ws_chat (Python's `websockets`).

Usage: clients.py HOST:PORT SERVER_PID [CASE...]. Runs every case (or the
named ones), prints one line per case, exits non-zero on the first failure.
Every wait is bounded by a timeout, so nothing hangs.
"""

import asyncio
import base64
import os
import socket
import struct
import sys
import threading
import time

try:
    import websockets
    from websockets.asyncio.client import connect
except ImportError:
    sys.exit("Python's websockets package is missing: python3 -m pip install websockets (make test installs it)")

# Loopback only: websockets 15 and later go through a proxy named in the
# environment unless no_proxy exempts the host.
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "*"

ADDR = sys.argv[1]
PID = int(sys.argv[2])
URL = f"ws://{ADDR}/ws"
WAIT = 60


async def until(ws, predicate, what):
    """Reads messages until one satisfies `predicate`; fails after WAIT seconds."""
    async def loop():
        while True:
            message = await ws.recv()
            if predicate(message):
                return message
    try:
        return await asyncio.wait_for(loop(), WAIT)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} within {WAIT} s")


async def two_clients():
    async with connect(f"{URL}?name=ann") as ann, connect(f"{URL}?name=bob") as bob:
        await until(ann, lambda m: m == "* bob joined", "join of bob")
        await ann.send("hello from ann")
        await until(bob, lambda m: m == "ann: hello from ann", "ann's message at bob")
        await bob.send("hi ann")
        await until(ann, lambda m: m == "bob: hi ann", "bob's message at ann")
    async with connect(f"{URL}?name=cid") as cid, connect(f"{URL}?name=dee") as dee:
        await until(cid, lambda m: m == "* dee joined", "join of dee")
    async with connect(f"{URL}?name=eve") as eve:
        async with connect(f"{URL}?name=fay"):
            await until(eve, lambda m: m == "* fay joined", "join of fay")
        await until(eve, lambda m: m == "* fay left", "leave of fay")


async def fragments_and_binary():
    async with connect(f"{URL}?name=frag", max_size=None) as ws:
        await ws.send(["frag", "mented ", "tëxt"])
        await until(ws, lambda m: m == "frag: fragmented tëxt", "the fragmented text")
        await ws.send([b"\x00\x01", b"\xff"])
        await until(ws, lambda m: m == b"frag: \x00\x01\xff", "the fragmented binary")
        # The chat's largest message, 64 KiB (its echo is larger by the
        # sender's name; a byte more is a violation, 1009, below).
        blob = os.urandom(64 * 1024)
        await ws.send(blob)
        await until(ws, lambda m: m == b"frag: " + blob, "the 64 KiB binary")
    # Three of the largest and a short one in one write (a script posting
    # files): all go, in order, and the sender stays.
    with raw() as s:
        assert handshake(s, name=b"poster").startswith(b"HTTP/1.1 101 ")
        blobs = [os.urandom(64 * 1024) for _ in range(3)] + [b"ok"]
        # Sent while the echoes are read: the server stops reading a
        # sender whose replies wait, which a send of it all first could
        # then wait on.
        sender = threading.Thread(target=s.sendall, args=(b"".join(masked(0x82, b) for b in blobs),))
        sender.start()
        got = [p for op, p in read_frames(s, lambda frames: len([f for f in frames if f[0] == 0x2]) == 4) if op == 0x2]
        sender.join(WAIT)
        assert got == [b"poster: " + b for b in blobs], [len(p) for p in got]


async def ping_pong():
    async with connect(f"{URL}?name=pinger") as ws:
        for _ in range(3):
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, WAIT)


async def thousand_clients():
    clients = []
    try:
        for i in range(1000):
            clients.append(await connect(f"{URL}?name=c{i}", open_timeout=WAIT, max_queue=None))
        await clients[0].send("to all")
        await asyncio.gather(*(until(c, lambda m: m == "c0: to all", "the broadcast") for c in clients))

        # Each of the thousand, the sender too, got the broadcast once:
        # every join came before it, so nothing more comes.
        async def nothing_more(c):
            try:
                extra = await asyncio.wait_for(c.recv(), 0.5)
            except asyncio.TimeoutError:
                return None
            return extra
        extra = [m for m in await asyncio.gather(*(nothing_more(c) for c in clients)) if m is not None]
        assert not extra, f"{len(extra)} messages after the broadcast: {extra[:3]}"
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def handshake(sock, extra=b"", version=b"13", key=None, name=b"raw", fields=b"", host=b"x"):
    key = key or base64.b64encode(os.urandom(16))
    sock.sendall(b"GET /ws?name=" + name + b" HTTP/1.1\r\nHost: " + host + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Version: " + version + b"\r\nSec-WebSocket-Key: " + key + b"\r\n" + fields + b"\r\n" + extra)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return head


def raw(timeout=WAIT):
    host, port = ADDR.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def masked(first, payload, mask=b"\x11\x22\x33\x44"):
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_close_code(sock):
    """Reads server frames until a close; returns its code."""
    return read_until_close(sock)[1]


def read_until_close(sock):
    """Reads server frames until a close: the (opcode, payload) of those
    before it, and its code (None for a close without one)."""
    frames = read_frames(sock, lambda frames: frames and frames[-1][0] == 0x8)
    payload = frames.pop()[1]
    return frames, struct.unpack("!H", payload[:2])[0] if payload else None


def read_frames(sock, done):
    """Reads server frames, as (opcode, payload), until `done(frames)`."""
    frames = []
    data = b""
    deadline = time.time() + WAIT
    while time.time() < deadline:
        while len(data) >= 2:
            n = data[1] & 0x7F
            offset = 2
            if n == 126:
                if len(data) < 4:
                    break
                n, offset = struct.unpack("!H", data[2:4])[0], 4
            elif n == 127:
                if len(data) < 10:
                    break
                n, offset = struct.unpack("!Q", data[2:10])[0], 10
            if len(data) < offset + n:
                break
            frames.append((data[0] & 0x0F, data[offset:offset + n]))
            data = data[offset + n:]
            if done(frames):
                return frames
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed after {len(frames)} frames")
        data += chunk
    raise AssertionError(f"only {len(frames)} frames within {WAIT} s")


async def handshakes():
    with raw() as s:
        head = handshake(s, key=b"dGhlIHNhbXBsZSBub25jZQ==")
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head, head
    with raw() as s:
        head = handshake(s, version=b"8")
        assert head.startswith(b"HTTP/1.1 426 ") and b"Sec-WebSocket-Version: 13\r\n" in head, head
    with raw() as s:
        head = handshake(s, key=b"c2hvcnQ=")
        assert head.startswith(b"HTTP/1.1 400 "), head
    with raw() as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    # A page of this site may open the chat; a page of another may not
    # (its visitor's browser would join for it: RFC 6455 §10.2), nor one
    # of a name the chat does not serve, whatever it resolves to (DNS
    # rebinding: its Origin and Host then agree).
    with raw() as s:
        head = handshake(s, fields=b"Origin: http://127.0.0.1:9\r\n", host=b"127.0.0.1:9")
        assert head.startswith(b"HTTP/1.1 101 "), head
    # Host and Origin agree on a name the chat does not serve (rebinding).
    with raw() as s:
        head = handshake(s, fields=b"Origin: http://x\r\n")
        assert head.startswith(b"HTTP/1.1 403 "), head
    # Another site's page, or another port's, asking for this host.
    for origin, status in [(b"http://evil.example", b"403"), (b"http://127.0.0.1:10", b"403"),
                           (b"https://127.0.0.1:9", b"101"), (b"HTTP://127.0.0.1:9", b"101")]:
        with raw() as s:
            head = handshake(s, fields=b"Origin: " + origin + b"\r\n", host=b"127.0.0.1:9")
            assert head.startswith(b"HTTP/1.1 " + status + b" "), (origin, head)
    with raw() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        page = b""
        while chunk := s.recv(65536):
            page += chunk
        assert page.startswith(b"HTTP/1.1 200 ") and b"new WebSocket(" in page
    # The chat's subprotocol, when offered among others; none when it is not.
    with raw() as s:
        head = handshake(s, fields=b"Sec-WebSocket-Protocol: other\r\nSec-WebSocket-Protocol: x y, chat\r\n")
        assert head.startswith(b"HTTP/1.1 101 ") and b"\r\nSec-WebSocket-Protocol: chat\r\n" in head, head
    with raw() as s:
        head = handshake(s, fields=b"Sec-WebSocket-Protocol: other\r\n")
        assert head.startswith(b"HTTP/1.1 101 ") and b"Sec-WebSocket-Protocol" not in head, head
    async with connect(f"{URL}?name=proto", subprotocols=["v2.chat", "chat"]) as ws:
        assert ws.subprotocol == "chat", ws.subprotocol
        await ws.send("spoken")
        await until(ws, lambda m: m == "proto: spoken", "a message over the subprotocol")
    # A frame sent right behind the handshake is not lost.
    async with connect(f"{URL}?name=watch") as watcher:
        with raw() as s:
            # Its own name: the chat makes a name in use unique ("raw (2)").
            head = handshake(s, extra=masked(0x81, b"early bird"), name=b"early")
            assert head.startswith(b"HTTP/1.1 101 "), head
            await until(watcher, lambda m: m == "early: early bird", "the frame sent with the handshake")


async def forwarded_host():
    """Behind a proxy, the host it was asked for (`X-Forwarded-Host`), if the
    chat serves it, is one a page's Origin may name. (Not run through
    examples/proxy, which sets that field itself.)"""
    for forwarded, status in [(b"localhost:8080", b"101"), (b"evil.example", b"403")]:
        with raw() as s:
            fields = b"Origin: http://" + forwarded + b"\r\nX-Forwarded-Host: " + forwarded + b"\r\n"
            head = handshake(s, fields=fields, host=b"127.0.0.1:9")
            assert head.startswith(b"HTTP/1.1 " + status + b" "), (forwarded, head)


async def violations():
    cases = [
        ("unmasked frame", b"\x81\x02hi", 1002),
        ("reserved bit", masked(0xC1, b"x"), 1002),
        ("unknown opcode", masked(0x83, b"x"), 1002),
        ("fragmented ping", masked(0x09, b"x"), 1002),
        ("continuation without a start", masked(0x80, b"x"), 1002),
        # Its header alone is wrong: answered before the 1000 bytes it
        # announces, which never come.
        ("continuation without a start, payload never sent", b"\x80\xfe\x03\xe8\x11\x22\x33\x44", 1002),
        ("length not in its shortest form", b"\x82\xfe\x00\x02\x11\x22\x33\x44" + b"\x11\x22", 1002),
        ("invalid UTF-8", masked(0x81, b"\xc3\x28"), 1007),
        ("invalid UTF-8 across fragments", masked(0x01, b"ok\xe2") + masked(0x80, b"\x28\xa1"), 1007),
        ("a close of one byte", masked(0x88, b"\x03"), 1002),
        ("a close code no endpoint may send (1016)", masked(0x88, struct.pack("!H", 1016)), 1002),
        ("a close code only for reports, not the wire (1005)", masked(0x88, struct.pack("!H", 1005)), 1002),
        ("a close code only for reports, not the wire (1006)", masked(0x88, struct.pack("!H", 1006)), 1002),
        ("a close code only for reports, not the wire (1015)", masked(0x88, struct.pack("!H", 1015)), 1002),
        ("a ping over 125 bytes", masked(0x89, b"x" * 126), 1002),
        ("a new message inside a fragmented one", masked(0x01, b"a") + masked(0x81, b"b"), 1002),
        ("fragmented text ending in half a character", masked(0x01, b"ok\xe2\x82") + masked(0x80, b""), 1007),
        ("a close reason not UTF-8", masked(0x88, struct.pack("!H", 1000) + b"\xff\xfe"), 1007),
        # ws_chat takes messages of 64 KiB at most.
        ("message too big", masked(0x82, b"\x00" * (64 * 1024 + 1)), 1009),
        ("fragments too big together", masked(0x02, b"\x00" * 40000) + masked(0x80, b"\x00" * 30000), 1009),
    ]
    async with connect(f"{URL}?name=bystander", max_size=None) as bystander:
        for name, frames, code in cases:
            with raw() as s:
                assert handshake(s).startswith(b"HTTP/1.1 101 ")
                s.sendall(frames)
                got = read_close_code(s)
                assert got == code, f"{name}: close code {got}, expected {code}"
            await bystander.send(f"still here after {name}")
            await until(bystander, lambda m, n=name: m == f"bystander: still here after {n}", "the bystander's echo")
        # The clean close handshake.
        with raw() as s:
            assert handshake(s).startswith(b"HTTP/1.1 101 ")
            s.sendall(masked(0x88, struct.pack("!H", 1000) + b"bye"))
            assert read_close_code(s) == 1000
        # A code registered after RFC 6455 (1012, service restart) is echoed.
        with raw() as s:
            assert handshake(s).startswith(b"HTTP/1.1 101 ")
            s.sendall(masked(0x88, struct.pack("!H", 1012)))
            got = read_close_code(s)
            assert got == 1012, f"close 1012 answered with {got}"


def rss_kib():
    for line in open(f"/proc/{PID}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def non_reader():
    """A client that never reads is dropped once its queue is full; the
    server's memory does not grow with what it was sent."""
    async with connect(f"{URL}?name=flood", max_size=None, max_queue=None) as flood:
        with raw() as sleeper:
            sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            assert handshake(sleeper, name=b"sleeper").startswith(b"HTTP/1.1 101 ")
            await until(flood, lambda m: m == "* sleeper joined", "the sleeper's join")
            before = rss_kib()
            blob = b"x" * (64 * 1024)  # the chat's largest message
            seen = []
            for i in range(320):  # 20 MiB through the sleeper's queue
                await flood.send(blob)
                await until(flood, lambda m: seen.append(m) or isinstance(m, bytes), "the flood's own echo")
            if "* sleeper left" not in seen:
                await until(flood, lambda m: m == "* sleeper left", "the sleeper's drop")
            grown = rss_kib() - before
            assert grown < 12 * 1024, f"RSS grew by {grown} KiB while 20 MiB went to a client that does not read"
            # Reset, not closed: a FIN would leave what the sleeper was
            # sent in the server's kernel for as long as it kept its window
            # shut. The reset shows once it reads at last.
            sleeper.settimeout(10)
            ended = "closed"
            try:
                while sleeper.recv(1 << 20):
                    pass
            except ConnectionResetError:
                ended = "reset"
            assert ended == "reset", f"the dropped sleeper's connection was {ended}, not reset"
        await flood.send("after")
        await until(flood, lambda m: m == "flood: after", "service after the drop")


def closed_behind_handshake(name, before, wanted):
    """A handshake as `name`, then the frames `before` and a close, in one
    write: the frames `wanted` and the chat's greeting come back before the
    close's answer (1000)."""
    with raw() as s:
        extra = before + masked(0x88, struct.pack("!H", 1000))
        assert handshake(s, extra=extra, name=name).startswith(b"HTTP/1.1 101 ")
        frames, code = read_until_close(s)
        assert code == 1000, f"close answered with {code}"
        for frame in wanted + [(0x1, b"* " + name + b" joined")]:
            assert frame in frames, f"{frame} not before the close: {frames}"


async def replies_before_close():
    """A message and a close in one write (a browser's `send(x); close()`):
    the message's broadcast comes back before the close's answer, and a
    member who stays sees it too; so does what the chat sent as the socket
    opened, when a close comes right behind the handshake."""
    async with connect(f"{URL}?name=stayer") as stayer:
        with raw() as s:
            assert handshake(s, name=b"leaver").startswith(b"HTTP/1.1 101 ")
            await until(stayer, lambda m: m == "* leaver joined", "the leaver's join")
            s.sendall(masked(0x81, b"last words") + masked(0x88, struct.pack("!H", 1000)))
            frames, code = read_until_close(s)
            assert code == 1000, f"close answered with {code}"
            assert (0x1, b"leaver: last words") in frames, f"no echo before the close: {frames}"
        await until(stayer, lambda m: m == "leaver: last words", "the leaver's message")
        await until(stayer, lambda m: m == "* leaver left", "the leaver's leave")
        # The same, sent right behind the handshake in one write.
        closed_behind_handshake(b"hasty", masked(0x81, b"in one go"), [(0x1, b"hasty: in one go")])
        await until(stayer, lambda m: m == "hasty: in one go", "the hasty one's message")
        # A ping and a close behind the handshake: nothing goes to the
        # application, yet what it sent as the socket opened (the join)
        # still comes before the close, with the pong.
        closed_behind_handshake(b"pingclose", masked(0x89, b"are you there"), [(0xA, b"are you there")])
        await until(stayer, lambda m: m == "* pingclose joined", "the ping-and-close one's join")


async def flooder():
    """A client whose one burst holds thousands of messages is closed
    (1008); the others, who read, are not dropped with it."""
    flooder = b"f" * 32
    async with connect(f"{URL}?name=reader") as reader:
        with raw() as s:
            assert handshake(s, name=flooder).startswith(b"HTTP/1.1 101 ")
            await until(reader, lambda m: m == f"* {'f' * 32} joined", "the flooder's join")
            # 64 KiB of empty text frames in one write: 393 KiB to each
            # member if every one were broadcast (36 bytes each, with the
            # name). The chat takes 256 messages a read: the flooder is
            # closed before its allowance (1000 at once) runs out, which
            # would take 1000 of them, unless the server's reads cut the
            # burst into pieces of under 256 frames (1.5 KB).
            s.sendall(masked(0x81, b"") * 10922)
            assert read_close_code(s) == 1008
        seen = []
        await until(reader, lambda m: seen.append(m) or m == f"* {'f' * 32} left (sending too fast)", "the flooder's close")
        flooded = sum(1 for m in seen if m == f"{'f' * 32}: ")
        assert 0 < flooded < 1000, f"{flooded} of the flooder's messages went out before its close"
        await reader.send("still here")
        await until(reader, lambda m: m == "reader: still here", "the reader's own message")
        # Across reads: 100 empty messages a write, a write every 10 ms, each
        # far under the one-read bound; past the allowance (1000 at once,
        # then 200 a second) it is closed too.
        with raw() as s:
            assert handshake(s, name=b"steady").startswith(b"HTTP/1.1 101 ")
            await until(reader, lambda m: m == "* steady joined", "the steady flooder's join")
            for _ in range(100):
                try:
                    s.sendall(masked(0x81, b"") * 100)
                except OSError:  # its close is done: the rest is not taken
                    break
                await asyncio.sleep(0.01)
            assert read_close_code(s) == 1008
        await until(reader, lambda m: m == "* steady left (sending too fast)", "the steady flooder's close")
        await reader.send("still here")
        await until(reader, lambda m: m == "reader: still here", "the reader's own message again")


CASES = {
    "two_clients": two_clients,
    "handshakes": handshakes,
    "forwarded_host": forwarded_host,
    "fragments_and_binary": fragments_and_binary,
    "ping_pong": ping_pong,
    "violations": violations,
    "non_reader": non_reader,
    "flooder": flooder,
    "replies_before_close": replies_before_close,
    "thousand_clients": thousand_clients,
}


async def main():
    names = sys.argv[3:] or list(CASES)
    for name in names:
        started = time.time()
        try:
            await asyncio.wait_for(CASES[name](), 240)
        except BaseException as e:
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            sys.exit(1)
        print(f"ok {name} ({time.time() - started:.1f} s)", flush=True)


asyncio.run(main())
