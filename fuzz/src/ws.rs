//! The WebSocket target: client frames into a [`WebSocket`], its messages
//! echoed back once the input is spent.

use crate::{cuts, Reached, Rng, Target};
use edgepoll::ws::frame::{read_header, write_masked_frame, Opcode};
use edgepoll::ws::{Message, WebSocket, WsLimits};
use std::time::Instant;

/// Small, so that mutations reach the size limit (close 1009).
const MAX_MESSAGE: usize = 64;

pub fn target() -> Target {
    Target {
        name: "ws",
        seeds: seeds(),
        tokens: TOKENS,
        bytes: &[
            0x00, 0x01, 0x7e, 0x7f, 0x80, 0x81, 0x82, 0x88, 0x89, 0x8a, 0xc0, 0xff,
        ],
        check,
        must_reach: &[
            "a message",
            "close 1000",
            "close 1002",
            "close 1007",
            "close 1009",
        ],
    }
}

/// A client frame: masked with `mask` (all zeros leaves the payload readable,
/// so mutations of it stay meaningful).
fn frame(first: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_masked_frame(&mut out, first, mask, payload);
    out
}

fn seeds() -> Vec<Vec<u8>> {
    let zero = [0; 4];
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let concat = |frames: &[Vec<u8>]| frames.concat();
    vec![
        frame(0x81, key, b"Hello"),
        frame(0x82, zero, &[0, 1, 2, 0xff]),
        // Fragmented text, a ping between the fragments, a multi-byte
        // character split across them.
        concat(&[
            frame(0x01, zero, b"caf\xc3"),
            frame(0x89, key, b"p"),
            frame(0x80, zero, b"\xa9!"),
        ]),
        concat(&[frame(0x81, zero, b"a"), frame(0x88, key, b"\x03\xe8bye")]),
        frame(0x88, zero, b""),
        frame(0x8a, zero, b"unsolicited pong"),
        frame(0x82, zero, &[7; 130]),
        concat(&[frame(0x02, key, &[1; 40]), frame(0x80, key, &[2; 40])]),
    ]
}

const TOKENS: &[&[u8]] = &[
    // Frame heads: text, binary, continuation, close, ping, pong; masked.
    &[0x81, 0x80, 0, 0, 0, 0],
    &[0x82, 0x81, 0, 0, 0, 0],
    &[0x00, 0x80, 0, 0, 0, 0],
    &[0x80, 0x80, 0, 0, 0, 0],
    &[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8],
    &[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed],
    &[0x88, 0x81, 0, 0, 0, 0, 0x03],
    &[0x89, 0x80, 0, 0, 0, 0],
    &[0x8a, 0x80, 0, 0, 0, 0],
    // Unmasked, reserved bits, unknown opcode, fragmented control.
    &[0x81, 0x00],
    &[0xc1, 0x80, 0, 0, 0, 0],
    &[0x83, 0x80, 0, 0, 0, 0],
    &[0x09, 0x80, 0, 0, 0, 0],
    // Extended lengths, including the 64-bit one with its top bit set.
    &[0x82, 0xfe, 0x00, 0x7e],
    &[0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x7f],
    &[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0],
    // UTF-8 edges: an overlong form, a surrogate, a 4-byte character, a cut.
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf0\x9f\x98\x80",
    b"\xe2\x82",
];

/// What one feeding produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Messages delivered: (is text, bytes).
    messages: Vec<(bool, Vec<u8>)>,
    /// Everything the connection sent.
    output: Vec<u8>,
    close_code: Option<u16>,
    finished: bool,
}

fn feed(pieces: &[&[u8]]) -> Outcome {
    let now = Instant::now();
    let limits = WsLimits {
        max_message_bytes: MAX_MESSAGE,
        ..WsLimits::default()
    };
    let mut ws = WebSocket::new(limits, now);
    let mut messages = Vec::new();
    let mut output = Vec::new();
    // All of it, as the loop sends it: the close frame comes out after
    // the rest.
    let drain = |ws: &mut WebSocket, output: &mut Vec<u8>| {
        while ws.wants_write() {
            output.extend_from_slice(ws.pending_output());
            ws.consume_output(ws.pending_output().len(), now);
        }
    };
    for piece in pieces {
        ws.receive(piece, now, |message| {
            messages.push(match message {
                Message::Text(text) => (true, text.as_bytes().to_vec()),
                Message::Binary(bytes) => (false, bytes.to_vec()),
            })
        });
        drain(&mut ws, &mut output);
        ws.release_buffers();
    }
    // The send path too: echo everything (ignored once closing).
    for (text, bytes) in &messages {
        let message = match (text, std::str::from_utf8(bytes)) {
            (true, Ok(text)) => Message::Text(text),
            _ => Message::Binary(bytes),
        };
        assert!(ws.send(message, now), "an echo overflowed an empty queue");
        drain(&mut ws, &mut output);
    }
    Outcome {
        messages,
        output,
        close_code: ws.close_code().map(|c| c.0),
        finished: ws.is_finished(),
    }
}

/// Checks the server's output: unmasked, unfragmented frames; pongs, then a
/// close frame last (agreeing with the close code) or else the echoes.
fn check_output(outcome: &Outcome) -> Result<(), String> {
    let mut rest: &[u8] = &outcome.output;
    let mut echoes = outcome.messages.iter();
    let mut closed = false;
    while !rest.is_empty() {
        let header = read_header(rest)
            .map_err(|e| format!("server sent a bad frame: {e:?}"))?
            .ok_or("server sent a cut frame")?;
        let end = header.header_len + header.payload_len as usize;
        let payload = rest
            .get(header.header_len..end)
            .ok_or("server sent a cut frame")?;
        if header.mask.is_some() || !header.fin {
            return Err("server frame masked or fragmented".into());
        }
        if closed {
            return Err("server sent a frame after its close frame".into());
        }
        match header.opcode {
            Opcode::Pong => {}
            Opcode::Close => {
                closed = true;
                let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                let expected = outcome.close_code.filter(|&c| c != 1005);
                if code != expected
                    || std::str::from_utf8(&payload[payload.len().min(2)..]).is_err()
                {
                    return Err(format!(
                        "close frame {payload:?} for close code {:?}",
                        outcome.close_code
                    ));
                }
            }
            Opcode::Text | Opcode::Binary => {
                let text = header.opcode == Opcode::Text;
                if echoes.next() != Some(&(text, payload.to_vec())) {
                    return Err("an echo differs from its message".into());
                }
            }
            Opcode::Continuation | Opcode::Ping => {
                return Err("server sent a continuation or ping".into())
            }
        }
        rest = &rest[end..];
    }
    match outcome.close_code {
        None if outcome.finished || echoes.next().is_some() => {
            Err("open, yet finished or not echoing".into())
        }
        Some(c) if !closed || !outcome.finished => {
            Err(format!("close code {c} without a close frame sent"))
        }
        Some(c) if !matches!(c, 1000..=1003 | 1005 | 1007..=1014 | 3000..=4999) => {
            Err(format!("close code {c} may not be used"))
        }
        _ => Ok(()),
    }
}

/// What must not depend on how the input was cut: all but the pongs. A
/// read's pings get one pong, to the last of them (RFC 6455 §5.5.3), so
/// how many pongs go out depends on the reads; the last ping is answered
/// however they fell.
fn settled(outcome: &Outcome) -> (Outcome, Option<Vec<u8>>) {
    let (mut output, mut last_pong) = (Vec::new(), None);
    let mut rest: &[u8] = &outcome.output;
    while let Ok(Some(header)) = read_header(rest) {
        let end = (header.header_len + header.payload_len as usize).min(rest.len());
        match header.opcode {
            Opcode::Pong => last_pong = Some(rest[header.header_len.min(end)..end].to_vec()),
            _ => output.extend_from_slice(&rest[..end]),
        }
        rest = &rest[end..];
    }
    output.extend_from_slice(rest);
    let settled = Outcome {
        messages: outcome.messages.clone(),
        output,
        close_code: outcome.close_code,
        finished: outcome.finished,
    };
    (settled, last_pong)
}

fn check(input: &[u8], rng: &mut Rng, reached: &mut Reached) -> Result<(), String> {
    let [whole, halves, pieces] = cuts(input, rng);
    let whole = feed(&whole);
    let settled_whole = settled(&whole);
    if settled(&feed(&halves)) != settled_whole {
        return Err(format!("outcome differs when split at {}", halves[0].len()));
    }
    if settled(&feed(&pieces)) != settled_whole {
        return Err("outcome differs when fed in small pieces".into());
    }
    for (text, bytes) in &whole.messages {
        if bytes.len() > MAX_MESSAGE {
            return Err(format!(
                "a message of {} bytes passed the limit",
                bytes.len()
            ));
        }
        if *text && std::str::from_utf8(bytes).is_err() {
            return Err("a text message that is not UTF-8".into());
        }
    }
    check_output(&whole)?;
    if !whole.messages.is_empty() {
        reached.mark("a message");
    }
    match whole.close_code {
        Some(1000) => reached.mark("close 1000"),
        Some(1002) => reached.mark("close 1002"),
        Some(1007) => reached.mark("close 1007"),
        Some(1009) => reached.mark("close 1009"),
        _ => {}
    }
    // The header reader on its own: any bytes, no panic, a length in bounds.
    if let Ok(Some(header)) = read_header(input) {
        if header.header_len > input.len() || ![2, 4, 6, 8, 10, 14].contains(&header.header_len) {
            return Err(format!(
                "header length {} for {} bytes",
                header.header_len,
                input.len()
            ));
        }
    }
    Ok(())
}
