//! The WebSocket state machine fed bytes, including one at a time.

use super::frame::{read_header, write_frame, write_masked_frame, Opcode};
use super::*;
use std::time::{Duration, Instant};

/// A masked client frame.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_masked_frame(&mut out, first, [0x37, 0xFA, 0x21, 0x3D], payload);
    out
}

#[derive(Debug, PartialEq)]
enum Got {
    Text(String),
    Binary(Vec<u8>),
}

/// Frames sent back, as (opcode, payload).
type Frames = Vec<(Opcode, Vec<u8>)>;

/// Feeds `input` in pieces of `step` bytes; returns the messages and the
/// frames sent back as (opcode, payload).
fn run(input: &[u8], step: usize, limits: WsLimits) -> (Vec<Got>, Frames, WebSocket) {
    let now = Instant::now();
    let mut ws = WebSocket::new(limits, now);
    let mut got = Vec::new();
    for piece in input.chunks(step) {
        ws.receive(piece, now, |m| {
            got.push(match m {
                Message::Text(t) => Got::Text(t.to_string()),
                Message::Binary(b) => Got::Binary(b.to_vec()),
            })
        });
    }
    let mut out = sent(&mut ws, now);
    let mut frames = Vec::new();
    while let Ok(Some(header)) = read_header(&out) {
        let end = header.header_len + header.payload_len as usize;
        frames.push((header.opcode, out[header.header_len..end].to_vec()));
        out.drain(..end);
    }
    (got, frames, ws)
}

/// Everything the socket has to send, as the loop would send it.
fn sent(ws: &mut WebSocket, now: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    while ws.wants_write() {
        let pending = ws.pending_output();
        assert!(!pending.is_empty(), "wants to write, with nothing to send");
        out.extend_from_slice(pending);
        let n = pending.len();
        ws.consume_output(n, now);
    }
    out
}

/// The code of the close frame `out` begins with, if it begins with one.
fn first_close_code(out: &[u8]) -> Option<u16> {
    let header = read_header(out).ok()??;
    let code = out.get(header.header_len..header.header_len + 2)?;
    (header.opcode == Opcode::Close).then(|| u16::from_be_bytes([code[0], code[1]]))
}

fn close_code(frames: &[(Opcode, Vec<u8>)]) -> Option<u16> {
    frames
        .iter()
        .find(|(op, _)| *op == Opcode::Close)
        .map(|(_, p)| u16::from_be_bytes([p[0], p[1]]))
}

#[test]
fn fragments_with_a_ping_between_them_at_every_split() {
    let mut input = client_frame(0x01, "héllo ".as_bytes());
    input.extend(client_frame(0x89, b"are you there"));
    input.extend(client_frame(0x00, "wörld".as_bytes()));
    input.extend(client_frame(0x80, b"!"));
    input.extend(client_frame(0x82, &[0, 1, 2, 255]));
    input.extend(client_frame(0x82, &vec![9; 70_000]));
    for step in [1, 2, 3, 7, 64, input.len()] {
        let (got, frames, ws) = run(&input, step, WsLimits::default());
        assert_eq!(
            got[..2],
            [
                Got::Text("héllo wörld!".into()),
                Got::Binary(vec![0, 1, 2, 255])
            ],
            "step {step}"
        );
        assert_eq!(got[2], Got::Binary(vec![9; 70_000]));
        assert_eq!(frames, [(Opcode::Pong, b"are you there".to_vec())]);
        assert!(!ws.is_finished());
    }
}

#[test]
fn a_text_split_inside_a_code_point_is_whole_again() {
    let euro = "€".as_bytes();
    let mut input = client_frame(0x01, &euro[..1]);
    input.extend(client_frame(0x80, &euro[1..]));
    let (got, frames, _) = run(&input, 1, WsLimits::default());
    assert_eq!(got, [Got::Text("€".into())]);
    assert!(frames.is_empty());
}

/// A text frame split over reads is checked as its pieces come: a good one
/// at every split is whole again, and a bad one is closed at the read that
/// brings its first wrong byte, the rest of the frame still to come.
#[test]
fn a_text_frame_split_over_reads_is_checked_as_it_comes() {
    let text = "a€😀é\u{10FFFF}".repeat(20);
    let input = client_frame(0x81, text.as_bytes());
    for step in 1..=text.len() {
        let (got, frames, _) = run(&input, step, WsLimits::default());
        assert_eq!(got, [Got::Text(text.clone())], "step {step}");
        assert!(frames.is_empty(), "step {step}");
    }
    let mut bad = vec![b'x'; 1 << 19];
    bad[1000..1003].copy_from_slice(&[0xE2, 0x82, 0x41]); // a code point cut by ASCII
    let mut fragmented = client_frame(0x01, "é".as_bytes());
    let mut second = vec![b'y'; 1 << 19];
    second[0] = 0xA9; // a continuation byte with nothing to continue
    let first_len = fragmented.len();
    fragmented.extend(client_frame(0x80, &second));
    let cases = [
        ("one frame", client_frame(0x81, &bad), 1003 + 14),
        ("its second fragment", fragmented, first_len + 14 + 1),
    ];
    for (label, input, wrong_by) in cases {
        let now = Instant::now();
        let mut ws = WebSocket::new(WsLimits::default(), now);
        let mut messages = 0;
        ws.receive(&input[..wrong_by - 1], now, |_| messages += 1);
        assert!(!ws.wants_write(), "{label}: closed before its wrong byte");
        ws.receive(&input[wrong_by - 1..wrong_by], now, |_| messages += 1);
        assert_eq!(first_close_code(&sent(&mut ws, now)), Some(1007), "{label}");
        assert_eq!(messages, 0, "{label}");
        assert!(ws.is_finished(), "{label}");
    }
}

#[test]
fn each_violation_closes_with_its_code() {
    let unmasked = vec![0x81, 0x02, b'h', b'i'];
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", unmasked, 1002),
        ("reserved bit", client_frame(0xC1, b"x"), 1002),
        ("unknown opcode", client_frame(0x83, b"x"), 1002),
        ("fragmented ping", client_frame(0x09, b"x"), 1002),
        ("long ping", client_frame(0x89, &[0; 126]), 1002),
        ("lone continuation", client_frame(0x80, b"x"), 1002),
        (
            "new message mid-fragments",
            [client_frame(0x01, b"a"), client_frame(0x81, b"b")].concat(),
            1002,
        ),
        ("bad utf-8", client_frame(0x81, &[0xC3, 0x28]), 1007),
        (
            "bad utf-8 in a fragment",
            [client_frame(0x01, b"ok"), client_frame(0x00, &[0xFF])].concat(),
            1007,
        ),
        ("too big", client_frame(0x82, &vec![0; 2000]), 1009),
        (
            "too big in fragments",
            [client_frame(0x02, &[0; 600]), client_frame(0x80, &[0; 600])].concat(),
            1009,
        ),
        (
            "close code 1005",
            client_frame(0x88, &1005u16.to_be_bytes()),
            1002,
        ),
        ("close of one byte", client_frame(0x88, &[3]), 1002),
        // 5 bytes announced in the 16-bit form: not the shortest.
        (
            "length not in its shortest form",
            [vec![0x82, 0xFE, 0, 5, 1, 2, 3, 4], vec![0; 5]].concat(),
            1002,
        ),
        // Wrong in the header alone: refused before any of a payload that
        // will never come (the 1000 bytes announced are not sent).
        (
            "a continuation without a message, payload still to come",
            vec![0x80, 0xFE, 0x03, 0xE8, 1, 2, 3, 4],
            1002,
        ),
        (
            "a new message mid-fragments, payload still to come",
            [
                client_frame(0x01, b"a"),
                vec![0x82, 0xFE, 0x03, 0xE8, 1, 2, 3, 4],
            ]
            .concat(),
            1002,
        ),
    ];
    let limits = WsLimits {
        max_message_bytes: 1000,
        ..WsLimits::default()
    };
    for (name, input, code) in cases {
        for step in [1, input.len()] {
            let (got, frames, ws) = run(&input, step, limits.clone());
            assert!(got.is_empty(), "{name}: nothing delivered");
            assert_eq!(close_code(&frames), Some(code), "{name}");
            assert!(ws.is_finished(), "{name}: the connection ends");
        }
    }
}

#[test]
fn a_close_is_answered_with_its_code_and_ends_the_connection() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    let mut input = client_frame(0x88, &payload);
    input.extend(client_frame(0x81, b"too late"));
    let (got, frames, ws) = run(&input, 1, WsLimits::default());
    assert!(got.is_empty());
    assert_eq!(frames, [(Opcode::Close, 1000u16.to_be_bytes().to_vec())]);
    assert!(ws.is_finished());
    assert_eq!(ws.close_code(), Some(CloseCode::NORMAL));
}

#[test]
fn the_registered_codes_1012_to_1014_are_answered_as_sent() {
    for code in [1012u16, 1013, 1014] {
        let (_, frames, ws) = run(
            &client_frame(0x88, &code.to_be_bytes()),
            1,
            WsLimits::default(),
        );
        assert_eq!(frames, [(Opcode::Close, code.to_be_bytes().to_vec())]);
        assert_eq!(ws.close_code(), Some(CloseCode(code)));
    }
}

/// A frame or a fragmented message that stops coming is closed with 1008
/// at the message timeout, counted from its last progress, and what it
/// held is freed; between messages there is no timeout.
#[test]
fn a_message_that_stops_coming_is_closed_and_freed() {
    let limits = WsLimits {
        message_timeout: Duration::from_secs(30),
        keepalive: None,
        ..WsLimits::default()
    };
    let big = client_frame(0x82, &vec![7; 100_000]);
    let fragments = [
        client_frame(0x02, &[1; 60_000]),
        client_frame(0x00, &[2; 60_000]),
    ]
    .concat();
    for (name, stalled) in [
        ("half a frame", &big[..50_000]),
        ("two fragments of many", &fragments[..]),
    ] {
        let start = Instant::now();
        let mut ws = WebSocket::new(limits.clone(), start);
        // A whole message first: no deadline after it.
        ws.receive(&client_frame(0x81, b"hi"), start, |_| {});
        assert_eq!(ws.deadline(), None, "{name}");
        let later = start + Duration::from_secs(100);
        ws.receive(stalled, later, |_| {});
        assert!(ws.buffered_capacity() >= 50_000, "{name}");
        assert_eq!(
            ws.deadline(),
            Some(later + Duration::from_secs(30)),
            "{name}"
        );
        ws.handle_timeout(later + Duration::from_secs(29));
        assert!(
            !ws.is_finished() && ws.pending_output().is_empty(),
            "{name}"
        );
        let due = later + Duration::from_secs(30);
        ws.handle_timeout(due);
        let out = ws.pending_output().to_vec();
        assert_eq!(first_close_code(&out), Some(1008), "{name}");
        ws.consume_output(out.len(), due);
        assert!(ws.is_finished(), "{name}");
        ws.release_buffers();
        assert_eq!(ws.buffered_capacity(), 0, "{name}");
    }
}

/// A message that grows past the limit is closed with 1009 and what it
/// held is freed at once: the connection lingers for up to 30 s after its
/// close, and a peer dribbling bytes kept the message (up to a MiB) alive
/// that long.
#[test]
fn a_message_closed_for_its_size_is_freed_at_the_close() {
    let now = Instant::now();
    let mut ws = WebSocket::new(WsLimits::default(), now);
    let fragment = client_frame(0x02, &vec![1; 512 * 1024 - 16]);
    ws.receive(&fragment, now, |_| {});
    ws.receive(&client_frame(0x00, &vec![2; 512 * 1024 - 16]), now, |_| {});
    assert!(ws.buffered_capacity() >= 1 << 20);
    ws.receive(&client_frame(0x00, &[3; 64]), now, |_| {});
    let out = ws.pending_output().to_vec();
    let header = read_header(&out).expect("valid").expect("a frame");
    assert_eq!(header.opcode, Opcode::Close);
    assert_eq!(out[header.header_len..][..2], 1009u16.to_be_bytes());
    assert!(
        ws.buffered_capacity() < 4096,
        "{} bytes held",
        ws.buffered_capacity()
    );
    // The close the server itself makes frees them too: a message under
    // way, and a frame half received.
    let mut ws = WebSocket::new(WsLimits::default(), now);
    ws.receive(&fragment, now, |_| {});
    let next = client_frame(0x00, &vec![4; 512 * 1024]);
    ws.receive(&next[..next.len() / 2], now, |_| {});
    assert!(ws.buffered_capacity() >= 768 * 1024);
    ws.close(CloseCode::GOING_AWAY, "bye", now);
    let held = ws.buffered_capacity();
    assert!(held < 4096, "{held} bytes held");
    // What still comes is not read.
    ws.receive(&next[next.len() / 2..], now, |_| {
        panic!("a message after the close")
    });
    let held = ws.buffered_capacity();
    assert!(held < 4096, "{held} bytes held");
}

#[test]
fn a_full_queue_drops_the_connection_and_frees_it() {
    let now = Instant::now();
    let limits = WsLimits {
        max_queued_bytes: 10_000,
        ..WsLimits::default()
    };
    let mut ws = WebSocket::new(limits, now);
    let mut sent = 0;
    while ws.send(Message::Binary(&[1; 1000]), now) {
        sent += 1;
        assert!(sent < 100, "the queue is bounded");
    }
    // Frames of 1004 bytes: the tenth still finds the queue under the
    // limit (9036 bytes), the eleventh finds it over.
    assert_eq!(sent, 10);
    assert!(ws.is_finished() && ws.is_dropped());
    assert_eq!(ws.buffered_capacity(), 0);
}

/// Queues `frames` as the loop's delivery round `round` does: copied, or
/// `shared` (held by reference, as a large broadcast is).
fn queue_round(ws: &mut WebSocket, frames: &[u8], shared: bool, round: u64, now: Instant) -> bool {
    let shared = shared.then(|| bytes::Bytes::copy_from_slice(frames));
    ws.queue_round(frames, shared.as_ref(), round, now)
}

/// Everything the socket has to send, sent.
fn drain_output(ws: &mut WebSocket, now: Instant) -> Vec<u8> {
    let mut sent = Vec::new();
    loop {
        let pending = ws.pending_output();
        if pending.is_empty() {
            return sent;
        }
        sent.extend_from_slice(pending);
        let n = pending.len();
        ws.consume_output(n, now);
    }
}

/// A peer that reads is not dropped for what one round queues however
/// large (one member's "a", 300 KiB and "x", broadcast to everyone in a
/// chat; an echo of a 300 KiB message and the next, which one read
/// completed): nothing of it has had a chance to be sent. A queue still at
/// its limit when the next round comes is dropped, and one under it takes
/// that round whole.
#[test]
fn a_round_is_queued_whole_and_only_what_came_before_it_counts() {
    let now = Instant::now();
    let limits = WsLimits::default();
    let mut frames = Vec::new();
    let mut run = Vec::new();
    for payload in [&b"a"[..], &vec![b'y'; 300 << 10], b"x"] {
        let mut frame = Vec::new();
        write_frame(&mut frame, Opcode::Text, payload);
        run.extend_from_slice(&frame);
        frames.push(frame);
    }
    for shared in [false, true] {
        // The round in one run (a broadcast), or frame by frame (sends).
        for whole in [true, false] {
            let said = format!("shared: {shared}, whole: {whole}");
            let mut ws = WebSocket::new(limits.clone(), now);
            let round = |ws: &mut WebSocket, n: u64| match whole {
                true => queue_round(ws, &run, shared, n, now),
                false => frames.iter().all(|f| queue_round(ws, f, shared, n, now)),
            };
            assert!(round(&mut ws, 1) && !ws.is_dropped(), "{said}");
            assert_eq!(drain_output(&mut ws, now), run, "{said}");
            // Written, then the next round: taken whole again.
            assert!(round(&mut ws, 2) && !ws.is_dropped(), "{said}");
            // Not written: the round after finds it over the limit.
            assert!(!round(&mut ws, 3) && ws.is_dropped(), "{said}");
            assert_eq!(ws.buffered_capacity(), 0, "{said}");
        }
    }
    // Under the limit before a round: the round goes in whole.
    let limits = WsLimits {
        max_queued_bytes: 2500,
        ..WsLimits::default()
    };
    let mut ws = WebSocket::new(limits, now);
    let mut small = Vec::new();
    write_frame(&mut small, Opcode::Binary, &[1; 1000]);
    assert!(queue_round(&mut ws, &small, false, 1, now));
    assert!(queue_round(&mut ws, &small, false, 2, now));
    assert!(queue_round(&mut ws, &run, true, 3, now) && !ws.is_dropped());
    assert!(!queue_round(&mut ws, &small, false, 4, now) && ws.is_dropped());
    // One by one outside the loop (`send`), a frame that finds the queue at
    // its limit still drops it, as `WsLimits::max_queued_bytes` says.
    let mut ws = WebSocket::new(WsLimits::default(), now);
    assert!(ws.send(Message::Text("a"), now));
    assert!(ws.send(Message::Text(&"y".repeat(300 << 10)), now));
    assert!(!ws.send(Message::Text("more"), now) && ws.is_dropped());
}

/// Replies to the messages read before a close (the peer's, or one for a
/// violation, in the same read) go out before the close frame, as a
/// browser's `send(x); close()` expects its echo; a send after our own
/// close has started to go out, or after the application's close, does
/// not.
#[test]
fn replies_to_messages_before_a_close_go_out_before_it() {
    let mut reserved = client_frame(0x81, b"x");
    reserved[0] |= 0x40; // RSV1 without an extension
    let peer_close = client_frame(0x88, &1000u16.to_be_bytes());
    for (name, closing, close) in [
        ("the peer's close", &peer_close, 1000u16),
        ("a violation", &reserved, 1002),
    ] {
        let input = [
            client_frame(0x81, b"hi"),
            client_frame(0x89, b"p"),
            closing.clone(),
        ]
        .concat();
        for step in [1, input.len()] {
            let now = Instant::now();
            let mut ws = WebSocket::new(WsLimits::default(), now);
            let mut got = Vec::new();
            for piece in input.chunks(step) {
                ws.receive(piece, now, |m| got.push(format!("{m:?}")));
            }
            assert_eq!(got, ["Text(\"hi\")"], "{name}");
            assert!(ws.send(Message::Text("hi"), now), "{name}");
            let mut want = Vec::new();
            write_frame(&mut want, Opcode::Pong, b"p");
            write_frame(&mut want, Opcode::Text, b"hi");
            let out = sent(&mut ws, now);
            assert_eq!(out[..want.len()], want[..], "{name}, {step}");
            let header = read_header(&out[want.len()..]).unwrap().unwrap();
            assert_eq!(header.opcode, Opcode::Close, "{name}");
            assert_eq!(out[want.len() + 2..][..2], close.to_be_bytes(), "{name}");
            assert!(ws.is_finished(), "{name}");
            // Its close is out: nothing more goes.
            assert!(ws.send(Message::Text("late"), now) && !ws.wants_write());
        }
    }
    // Once the loop says the replies are queued, later frames (a busy
    // chat's broadcasts) no longer go ahead of the close.
    let now = Instant::now();
    let mut ws = WebSocket::new(WsLimits::default(), now);
    let input = [client_frame(0x81, b"hi"), peer_close.clone()].concat();
    ws.receive(&input, now, |_| {});
    assert!(ws.send(Message::Text("reply"), now));
    ws.replies_done();
    assert!(ws.send(Message::Text("someone else's"), now));
    let mut want = Vec::new();
    write_frame(&mut want, Opcode::Text, b"reply");
    write_frame(&mut want, Opcode::Close, &1000u16.to_be_bytes());
    assert_eq!(sent(&mut ws, now), want);
    // The application's own close: what it sends after is not sent.
    let now = Instant::now();
    let mut ws = WebSocket::new(WsLimits::default(), now);
    ws.close(CloseCode::POLICY, "", now);
    assert!(ws.send(Message::Text("after"), now));
    assert_eq!(sent(&mut ws, now), [0x88, 0x02, 0x03, 0xF0]);
}

/// A burst of pings is answered as it is read, one pong for each read (to
/// its last ping: RFC 6455 §5.5.3), and reading stops while half the queue
/// limit waits to go out: a peer that reads is never dropped for its pings,
/// even under a queue limit below what one read of pings would answer
/// (a pong for each of 500 pings in a read of 64 KiB is 62 KiB).
#[test]
fn a_burst_of_pings_is_answered_by_the_last_ping_of_each_read() {
    let now = Instant::now();
    let pings: Vec<Vec<u8>> = (0..2200u32)
        .map(|i| {
            let mut payload = [9; 125];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            client_frame(0x89, &payload)
        })
        .collect();
    let burst = pings.concat();
    let limits = WsLimits {
        max_queued_bytes: 16 * 1024,
        ..WsLimits::default()
    };
    let mut ws = WebSocket::new(limits, now);
    let (mut fed, mut reads, mut pongs, mut last) = (0, 0, 0, Vec::new());
    while fed < burst.len() {
        // As the loop reads: 16 reads of up to 64 KiB at most, while
        // input is wanted, then it writes.
        for _ in 0..16 {
            if !ws.wants_read() || fed == burst.len() {
                break;
            }
            let piece = &burst[fed..(fed + (64 << 10)).min(burst.len())];
            ws.receive(piece, now, |_| panic!("no messages"));
            fed += piece.len();
            reads += 1;
        }
        assert!(!ws.is_dropped(), "dropped after {fed} bytes");
        let out = sent(&mut ws, now);
        assert_eq!(out.len() % 127, 0, "pongs of 125 bytes");
        pongs += out.len() / 127;
        last = out[out.len() - 127..].to_vec();
    }
    assert_eq!(pongs, reads, "a pong for each read");
    // The last read ended with the last ping, whole: its pong came last.
    assert_eq!(
        last[..6],
        [0x8A, 125, 0, 0, 0x08, 0x97],
        "the pong to ping 2199"
    );
}

/// Pings in separate reads are each answered; a ping read with a close is
/// answered ahead of the close.
#[test]
fn pings_of_separate_reads_each_get_a_pong_and_one_before_a_close_goes_first() {
    let now = Instant::now();
    let mut ws = WebSocket::new(WsLimits::default(), now);
    ws.receive(&client_frame(0x89, b"one"), now, |_| panic!("no messages"));
    ws.receive(&client_frame(0x89, b"two"), now, |_| panic!("no messages"));
    let mut want = Vec::new();
    write_frame(&mut want, Opcode::Pong, b"one");
    write_frame(&mut want, Opcode::Pong, b"two");
    assert_eq!(sent(&mut ws, now), want);
    let input = [
        client_frame(0x89, b"three"),
        client_frame(0x88, &1000u16.to_be_bytes()),
    ]
    .concat();
    ws.receive(&input, now, |_| panic!("no messages"));
    let mut want = Vec::new();
    write_frame(&mut want, Opcode::Pong, b"three");
    write_frame(&mut want, Opcode::Close, &1000u16.to_be_bytes());
    assert_eq!(sent(&mut ws, now), want);
}

/// A peer's close frees the message it left half-sent at once, as our own
/// close does: the connection lingers after it.
#[test]
fn a_peer_close_frees_the_message_it_left_unfinished() {
    let now = Instant::now();
    let input = [
        client_frame(0x02, &[1; 100_000]),
        client_frame(0x88, &1000u16.to_be_bytes()),
    ]
    .concat();
    let (_, frames, mut ws) = run(&input, input.len(), WsLimits::default());
    assert_eq!(close_code(&frames), Some(1000));
    ws.release_buffers();
    let held = ws.buffered_capacity();
    assert!(held < 4096, "{held} bytes held");
    let _ = now;
}

/// Pings between the fragments of a message do not keep a stalled
/// message alive: its timeout counts from its own last bytes.
#[test]
fn pings_do_not_keep_a_stalled_message_alive() {
    let start = Instant::now();
    // Whatever counts as progress: with 0, every byte of the message.
    for min_progress_bytes in [1024, 0] {
        let limits = WsLimits {
            message_timeout: Duration::from_secs(30),
            min_progress_bytes,
            ..WsLimits::default()
        };
        let mut ws = WebSocket::new(limits, start);
        ws.receive(&client_frame(0x01, b"part"), start, |_| {});
        for at in [20, 40] {
            let now = start + Duration::from_secs(at);
            ws.handle_timeout(now);
            ws.receive(&client_frame(0x89, b""), now, |_| {});
        }
        let out = sent(&mut ws, start + Duration::from_secs(40));
        let mut frames = Vec::new();
        let mut rest = &out[..];
        while let Ok(Some(h)) = read_header(rest) {
            let end = h.header_len + h.payload_len as usize;
            frames.push((h.opcode, rest[h.header_len..end].to_vec()));
            rest = &rest[end..];
        }
        assert_eq!(close_code(&frames), Some(1008), "{frames:?}");
    }
    // The bytes of a fragment still arriving keep it alive, slowly as
    // they may come: 1 KiB within each timeout.
    let mut ws = WebSocket::new(WsLimits::default(), start);
    let fragment = client_frame(0x02, &[3; 6000]);
    for (i, piece) in fragment.chunks(600).enumerate() {
        let now = start + Duration::from_secs(10 * i as u64);
        ws.handle_timeout(now);
        ws.receive(piece, now, |_| {});
    }
    assert!(!ws.wants_write() && ws.wants_read());
}

/// A byte now and then, or an empty fragment, is not progress: the
/// message (up to `max_message_bytes`) is not held for ever.
#[test]
fn a_message_trickled_or_padded_with_empty_fragments_is_closed_at_the_message_timeout() {
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let limits = WsLimits {
        message_timeout: Duration::from_secs(30),
        keepalive: None,
        ..WsLimits::default()
    };
    let frame = client_frame(0x82, &[5; 100_000]);
    let mut padded = client_frame(0x02, &[6; 50_000]);
    for _ in 0..1000 {
        padded.extend(client_frame(0x00, b""));
    }
    let (frame_head, padded_head) = (frame[..10].to_vec(), padded[..50_010].to_vec());
    for (name, first, then) in [
        (
            "a byte at a time",
            &frame_head,
            frame[10..].chunks(1).collect::<Vec<_>>(),
        ),
        // 1.2 KB every 10 s, all of it frame headers.
        (
            "empty fragments in bulk",
            &padded_head,
            padded[50_010..].chunks(1200).collect(),
        ),
        (
            "empty fragments",
            &padded_head,
            padded[50_010..].chunks(6).collect(),
        ),
    ] {
        let mut ws = WebSocket::new(limits.clone(), start);
        ws.receive(first, at(0), |_| panic!("{name}: no message is whole"));
        let mut closed_at = None;
        for (i, piece) in then.iter().enumerate() {
            let now = at(10 * (i as u64 + 1));
            ws.handle_timeout(now);
            if ws.close_code().is_some() {
                closed_at = Some(now);
                break;
            }
            ws.receive(piece, now, |_| panic!("{name}: no message is whole"));
        }
        assert_eq!(closed_at, Some(at(30)), "{name}");
        let out = sent(&mut ws, at(30));
        assert_eq!(first_close_code(&out), Some(1008), "{name}");
    }
    // With 0, every byte is progress, as before.
    let mut ws = WebSocket::new(
        WsLimits {
            min_progress_bytes: 0,
            ..limits
        },
        start,
    );
    for (i, byte) in frame.chunks(1).take(20).enumerate() {
        let now = at(10 * i as u64);
        ws.handle_timeout(now);
        ws.receive(byte, now, |_| {});
    }
    assert!(ws.close_code().is_none());
}

#[test]
fn an_idle_connection_releases_its_buffers() {
    let input = client_frame(0x82, &[5; 5000]);
    let (_, _, mut ws) = run(&input, 100, WsLimits::default());
    ws.release_buffers();
    assert_eq!(ws.buffered_capacity(), 0);
    // 344 bytes natively (a pointer is half that in wasm32): a bound to
    // catch growth by accident.
    let size = std::mem::size_of::<WebSocket>();
    assert!(size <= 344, "{size}");
}

/// What a close sends is always a valid close frame: a long reason is cut
/// at a character's end, and a code that may not be sent is left out.
#[test]
fn a_close_sends_only_what_may_be_sent() {
    let now = Instant::now();
    let mut ws = WebSocket::new(WsLimits::default(), now);
    ws.close(CloseCode::NORMAL, &"é".repeat(62), now);
    let out = ws.pending_output().to_vec();
    let header = read_header(&out).expect("valid").expect("a frame");
    let payload = &out[header.header_len..];
    assert_eq!(header.payload_len as usize, payload.len());
    assert_eq!(
        payload.len(),
        2 + 122,
        "61 whole characters, not 61 and a half"
    );
    assert!(std::str::from_utf8(&payload[2..]).is_ok());
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let mut ws = WebSocket::new(WsLimits::default(), now);
        ws.close(CloseCode(code), "why", now);
        assert_eq!(ws.pending_output(), b"\x88\x00", "{code}");
    }
    for code in [1000, 1011, 1012, 1014, 3000, 4999] {
        let mut ws = WebSocket::new(WsLimits::default(), now);
        ws.close(CloseCode(code), "", now);
        assert_eq!(ws.pending_output()[2..], code.to_be_bytes(), "{code}");
    }
}

/// A frame announcing 4 GiB − 1 under a limit of `usize::MAX`: on wasm32
/// `header + payload` wrapped and the payload's range panicked; now it is
/// too big there, and awaited natively, where it fits a buffer.
#[test]
fn a_frame_length_no_buffer_could_hold_is_too_big_whatever_the_limit() {
    let limits = WsLimits {
        max_message_bytes: usize::MAX,
        ..WsLimits::default()
    };
    let mut input = vec![0x82, 0x80 | 127];
    input.extend_from_slice(&u64::from(u32::MAX).to_be_bytes());
    input.extend_from_slice(&[1, 2, 3, 4]);
    input.extend_from_slice(&[0; 20]);
    let (got, frames, _) = run(&input, input.len(), limits);
    assert!(got.is_empty());
    let expected = match usize::BITS {
        32 => Some(1009),
        _ => None,
    };
    assert_eq!(close_code(&frames), expected);
}

/// A peer that takes a byte of its queue now and then (each within the
/// send timeout) is dropped at the send timeout: the queue is not moving.
/// A KiB at a time is progress, as is all of it; with the limit at 0, so
/// is every byte. (Each byte restarted the clock: a peer could hold its
/// queue, up to the limit, for ever.)
#[test]
fn a_peer_taking_its_queue_a_byte_at_a_time_is_dropped_at_the_send_timeout() {
    let timeout = Duration::from_secs(60);
    for (min_progress_bytes, take, kept) in [(1024, 1, false), (1024, 1024, true), (0, 1, true)] {
        let limits = WsLimits {
            send_timeout: timeout,
            min_progress_bytes,
            keepalive: None,
            ..WsLimits::default()
        };
        let start = Instant::now();
        let mut ws = WebSocket::new(limits, start);
        assert!(ws.send(Message::Binary(&[7; 100_000]), start));
        let mut now = start;
        for _ in 0..6 {
            now += timeout / 2;
            ws.handle_timeout(now);
            if ws.is_finished() {
                break;
            }
            ws.consume_output(take.min(ws.pending_output().len()), now);
        }
        let case = format!("limit {min_progress_bytes}, {take} at a time");
        assert_eq!(ws.is_finished(), !kept, "{case}");
        if !kept {
            assert_eq!(now, start + timeout, "{case}: at the first timeout");
        }
    }
}

/// A send timeout of `Duration::MAX` means "never", not a panic.
#[test]
fn a_send_timeout_of_duration_max_never_fires() {
    let now = Instant::now();
    let limits = WsLimits {
        send_timeout: Duration::MAX,
        keepalive: None,
        ..WsLimits::default()
    };
    let mut ws = WebSocket::new(limits, now);
    assert!(ws.send(Message::Text("hi"), now));
    let later = now + Duration::from_secs(10 * 365 * 24 * 3600);
    assert!(ws.deadline().is_none_or(|d| d > later));
    ws.handle_timeout(later);
    assert!(!ws.is_finished());
}

/// A peer quiet for the keepalive interval is pinged; any byte back (its
/// pong) keeps it, and silence until the keepalive timeout drops it (a
/// peer gone without a FIN would otherwise stay for ever).
#[test]
fn a_quiet_peer_is_pinged_and_dropped_if_nothing_comes_back() {
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let limits = WsLimits {
        keepalive: Some(Duration::from_secs(60)),
        keepalive_timeout: Duration::from_secs(30),
        ..WsLimits::default()
    };
    let mut ws = WebSocket::new(limits.clone(), start);
    ws.receive(&client_frame(0x81, b"hi"), at(10), |_| {});
    assert_eq!(ws.deadline(), Some(at(70)));
    ws.handle_timeout(at(69));
    assert!(!ws.wants_write());
    ws.handle_timeout(at(70));
    assert_eq!(sent(&mut ws, at(70)), [0x89, 0x00], "a ping");
    assert_eq!(ws.deadline(), Some(at(100)));
    // Its pong: kept, and quiet again from there.
    ws.receive(&client_frame(0x8A, b""), at(75), |_| {});
    assert_eq!(ws.deadline(), Some(at(135)));
    ws.handle_timeout(at(135));
    assert_eq!(sent(&mut ws, at(135)), [0x89, 0x00]);
    // Nothing back: dropped at the timeout, not before.
    ws.handle_timeout(at(164));
    assert!(!ws.is_finished());
    ws.handle_timeout(at(165));
    assert!(ws.is_dropped() && ws.is_finished());

    // A peer slowly reading a large message is not quiet: no ping, no
    // drop, while the send timeout keeps watching it.
    let mut ws = WebSocket::new(limits.clone(), start);
    assert!(ws.send(Message::Binary(&[7; 300_000]), at(0)));
    for s in (10..=120).step_by(10) {
        ws.handle_timeout(at(s));
        assert!(!ws.is_dropped(), "dropped at {s} s");
        ws.consume_output(1000, at(s));
    }
    while ws.wants_write() {
        let n = ws.pending_output().len();
        ws.consume_output(n, at(120));
    }
    // Nothing came from it all along: pinged once its output went.
    assert_eq!(ws.deadline(), Some(at(60)));
    ws.handle_timeout(at(120));
    assert_eq!(sent(&mut ws, at(120)), [0x89, 0x00]);

    // Pinged, then given more than half its queue: its pong cannot be read
    // until that drains, and the wait for it counts from then.
    let mut ws = WebSocket::new(limits.clone(), start);
    ws.handle_timeout(at(60));
    assert_eq!(sent(&mut ws, at(60)), [0x89, 0x00]);
    assert!(ws.send(Message::Binary(&[7; 200_000]), at(61)));
    assert!(!ws.wants_read());
    while ws.wants_write() {
        let n = ws.pending_output().len().min(10_000);
        ws.consume_output(n, at(120));
    }
    assert_eq!(ws.deadline(), Some(at(150)));

    // A peer sent to all the time (the kernel takes it, gone or not) is
    // still pinged when it sends nothing, and dropped when nothing comes
    // back. (Timed from what was sent, it was never pinged.)
    let mut ws = WebSocket::new(limits.clone(), start);
    ws.receive(&client_frame(0x81, b"hi"), at(10), |_| {});
    let mut pinged = false;
    for s in (15..=100).step_by(5) {
        ws.handle_timeout(at(s));
        if ws.is_dropped() {
            assert!(pinged && s >= 100, "dropped at {s} s");
            break;
        }
        assert!(ws.send(Message::Text("news"), at(s)));
        let out = sent(&mut ws, at(s));
        pinged |= out.starts_with(&[0x89, 0x00]);
        assert_eq!(pinged, s >= 70, "at {s} s: {out:?}");
    }
    assert!(ws.is_dropped(), "a peer that answers nothing is dropped");

    // Without a keepalive a quiet connection has no deadline.
    let limits = WsLimits {
        keepalive: None,
        ..limits
    };
    let mut ws = WebSocket::new(limits, start);
    ws.receive(&client_frame(0x81, b"hi"), at(10), |_| {});
    assert_eq!(ws.deadline(), None);
}

/// Pings and closes have their own bound (125 bytes), whatever the limit
/// on messages: with a 64-byte limit, a 100-byte ping is answered and a
/// 100-byte close echoed, not refused as too big (1009).
#[test]
fn control_frames_are_bounded_by_their_own_limit_not_the_messages() {
    let limits = WsLimits {
        max_message_bytes: 64,
        ..WsLimits::default()
    };
    let (_, frames, ws) = run(&client_frame(0x89, &[1; 100]), 7, limits.clone());
    assert_eq!(frames, [(Opcode::Pong, vec![1; 100])]);
    assert!(ws.wants_read());
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(&[b'x'; 98]);
    let (_, frames, _) = run(&client_frame(0x88, &close), 100, limits.clone());
    assert_eq!(close_code(&frames), Some(1000), "{frames:?}");
    // A message over the limit still is.
    let (_, frames, _) = run(&client_frame(0x82, &[1; 65]), 100, limits);
    assert_eq!(close_code(&frames), Some(1009), "{frames:?}");
}

/// A frame under way is not timed while the socket is not read (the peer
/// does not read what it is sent, and its queue is over half full): it
/// could not send the rest. Its time counts again from when reading
/// resumes. (It was closed, 1008, for the server's own pause.)
#[test]
fn a_frame_is_not_timed_while_its_socket_is_not_read() {
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let limits = WsLimits {
        max_queued_bytes: 1000,
        message_timeout: Duration::from_secs(30),
        send_timeout: Duration::from_secs(60),
        // Every byte sent is progress here: this is of the frame's timer.
        min_progress_bytes: 0,
        keepalive: None,
        ..WsLimits::default()
    };
    let mut ws = WebSocket::new(limits, start);
    let frame = client_frame(0x82, &[3; 100]);
    ws.receive(&frame[..50], at(0), |_| {});
    assert!(ws.send(Message::Binary(&[1; 600]), at(0)));
    assert!(!ws.wants_read(), "over half the queue: not read");
    // Slowly sent: the send timeout is content, and nothing else runs.
    ws.consume_output(100, at(50));
    assert_eq!(ws.deadline(), Some(at(110)));
    ws.handle_timeout(at(100));
    assert!(ws.close_code().is_none() && !ws.is_finished());
    // Read again from 100 s: the frame has until 130 s.
    ws.consume_output(5, at(100));
    assert!(ws.wants_read());
    assert_eq!(ws.deadline(), Some(at(130)));
    ws.handle_timeout(at(129));
    let mut got = Vec::new();
    ws.receive(&frame[50..], at(129), |m| got.push(format!("{m:?}")));
    assert_eq!(got.len(), 1, "the frame came whole");
    assert!(ws.close_code().is_none());
}

/// Whole pings, read across their boundaries (each read ends in the middle
/// of the next), are no message under way: a flood of them for longer than
/// the message timeout is answered, not closed with 1008. A data frame
/// begun and left so is still closed at the timeout.
#[test]
fn pings_read_across_their_boundaries_are_no_stalled_message() {
    let limits = WsLimits::default();
    let timeout = limits.message_timeout;
    let start = Instant::now();
    let mut ws = WebSocket::new(limits.clone(), start);
    let ping = client_frame(0x89, b"p");
    let flood = ping.repeat(1000);
    // Half a frame first: no read after it starts on a frame's boundary.
    ws.receive(&flood[..ping.len() / 2], start, |_| {});
    let mut at = start;
    for piece in flood[ping.len() / 2..].chunks(ping.len()) {
        at += Duration::from_millis(100);
        ws.receive(piece, at, |_| {});
        ws.handle_timeout(at);
        let out = ws.pending_output().len();
        ws.consume_output(out, at);
    }
    assert!(at - start > timeout * 3);
    assert_eq!(ws.close_code(), None);
    // A frame begun, then nothing: closed at the timeout.
    let mut ws = WebSocket::new(limits, start);
    ws.receive(&client_frame(0x81, b"hello")[..4], start, |_| {});
    ws.handle_timeout(start + timeout);
    assert_eq!(ws.close_code(), Some(CloseCode::POLICY));
}

/// A message at the limit, whole or in fragments, read 64 KiB at a time,
/// is held in buffers no larger than the limit and a read: their doubling
/// stops there (a whole one took twice the limit in the input, and a
/// fragment that more than doubled the message took it past the limit).
#[test]
fn a_message_at_the_limit_is_held_in_buffers_of_its_size() {
    let limits = WsLimits::default();
    let most = limits.max_message_bytes;
    let read = 64 * 1024;
    let input_most = most + 14 + read;
    let now = Instant::now();
    let whole = client_frame(0x82, &vec![7; most]);
    // The third fragment comes in reads after the second one's.
    let (first, second) = (600 * 1024, 300 * 1024);
    let fragmented = [
        client_frame(0x02, &vec![7; first]),
        client_frame(0x00, &vec![7; second]),
        client_frame(0x80, &vec![7; most - first - second]),
    ]
    .concat();
    for (input, bound) in [(whole, input_most), (fragmented, input_most + most)] {
        let mut ws = WebSocket::new(limits.clone(), now);
        let (mut largest, mut got) = (0, 0);
        for piece in input.chunks(read) {
            ws.receive(piece, now, |m| {
                if let Message::Binary(bytes) = m {
                    got = bytes.len();
                }
            });
            largest = largest.max(ws.buffered_capacity());
        }
        assert_eq!(got, most);
        assert!(largest <= bound, "{largest} bytes held, over {bound}");
    }
}

#[test]
fn a_message_no_memory_is_free_for_is_closed_1013_and_the_process_goes_on() {
    let now = Instant::now();
    // A fragment kept in the message, then one the message cannot grow for;
    // and a frame half read that the input cannot grow for.
    let first = client_frame(0x02, &vec![1; 48 * 1024]);
    let next = client_frame(0x00, &vec![2; 48 * 1024]);
    let whole = client_frame(0x82, &vec![3; 200 * 1024]);
    for (before, failing) in [(&first[..], &next[..]), (&[][..], &whole[..])] {
        let mut ws = WebSocket::new(WsLimits::default(), now);
        ws.receive(before, now, |_| {});
        crate::test_alloc::with_allocations_failing_from(64 * 1024, || {
            for piece in failing.chunks(16 * 1024) {
                ws.receive(piece, now, |_| panic!("a message without memory"));
            }
        });
        let out = sent(&mut ws, now);
        assert_eq!(first_close_code(&out), Some(1013));
        assert!(
            ws.buffered_capacity() < 4096,
            "{} bytes held",
            ws.buffered_capacity()
        );
    }
}
