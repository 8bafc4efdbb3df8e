//! The relayed target: what a server sends, read by the client's
//! connection in both of its ways: whole (a response handed over with its
//! body) and streamed (the head at once, then the body in pieces), the way
//! examples/proxy relays an upstream's answer. Checked:
//!
//! - streamed, the same head, body, end and reuse however the bytes are
//!   cut, once the server has closed or the response is whole by its
//!   framing (a body that broke off may have handed on more or less of
//!   itself first: of two such, one is the start of the other);
//! - streamed and whole agree: a response read whole has the streamed
//!   head's status and fields, its body is the streamed pieces put
//!   together, and the connection is reusable after one exactly when after
//!   the other; a response refused whole is refused streamed too (its head
//!   or its body's end), never passed on as if it were whole.

use crate::{cuts, Reached, Rng, Target};
use edgepoll::client_fuzzing::{exchange, Seen};
use edgepoll::http::{ParsedResponse, ResponseError};

pub fn target() -> Target {
    Target {
        name: "relayed",
        seeds: SEEDS.iter().map(|s| s.to_vec()).collect(),
        tokens: TOKENS,
        bytes: b"\r\n: 0aZ\x00\xff;x\t",
        check,
        must_reach: &[
            "a streamed body by length",
            "a streamed chunked body",
            "a streamed body until the close",
            "a bodiless answer announcing a body",
            "an interim answer",
            "refused in the head",
            "refused in the body",
            "reusable",
        ],
    }
}

const SEEDS: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\nWiki\r\n5\r\npedia\r\n0\r\nT: x\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b": ",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.0",
    b"204",
    b"304",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"0\r\n\r\n",
    b"ffffffff",
    b";ext=\"v\"",
    b"\xff\xfe",
];

/// Past any input: no body that comes is refused for its size (one that
/// declares more is, read whole: see `Read::too_large`).
const MAX_BODY: usize = 1 << 20;

/// One reading of a response: interim statuses, the head (status and
/// fields, `Err` if refused), the body, how it ended (`None`: still
/// open), whether a body was streamed at all, and reuse.
#[derive(Debug, PartialEq)]
struct Read {
    interim: Vec<u16>,
    head: Option<Result<Head, ()>>,
    body: Vec<u8>,
    end: Option<Result<(), ()>>,
    streamed: bool,
    reusable: bool,
    /// Refused for the size of its body, which only a whole one has.
    too_large: bool,
}

type Head = (u16, Vec<(String, Vec<u8>)>);

fn head_of(response: &ParsedResponse) -> Head {
    let fields = (response.headers.iter())
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    (response.status.as_u16(), fields)
}

fn read(pieces: &[&[u8]], to_head: bool, streams: bool, close: bool) -> Result<Read, String> {
    let (seen, reusable) = exchange(pieces, to_head, streams, MAX_BODY, close);
    let mut read = Read {
        interim: Vec::new(),
        head: None,
        body: Vec::new(),
        end: None,
        streamed: false,
        reusable,
        too_large: false,
    };
    for event in seen {
        match event {
            Seen::Interim(status) if read.head.is_none() => read.interim.push(status),
            Seen::Response(r) if read.head.is_none() => match r {
                Ok(response) => {
                    read.body.extend_from_slice(&response.body);
                    read.head = Some(Ok(head_of(&response)));
                }
                Err(e) => {
                    read.too_large = e == ResponseError::BodyTooLarge;
                    read.head = Some(Err(()));
                }
            },
            Seen::Body(piece) if read.end.is_none() && matches!(read.head, Some(Ok(_))) => {
                if piece.is_empty() {
                    return Err("an empty piece handed on".into());
                }
                read.streamed = true;
                read.body.extend_from_slice(&piece);
            }
            Seen::End(r) if read.end.is_none() && matches!(read.head, Some(Ok(_))) => {
                read.streamed = true;
                read.end = Some(r.map_err(drop));
            }
            other => return Err(format!("{other:?} out of order")),
        }
    }
    if !streams && read.streamed {
        return Err("a body streamed from a connection that reads them whole".into());
    }
    Ok(read)
}

/// The same reading, but for how much of a body that broke off was handed
/// on before its error was seen.
fn same_read(a: &Read, b: &Read) -> bool {
    let (short, long) = match a.body.len() <= b.body.len() {
        true => (&a.body, &b.body),
        false => (&b.body, &a.body),
    };
    let bodies = match a.end {
        Some(Err(())) | None => long.starts_with(short),
        Some(Ok(())) => a.body == b.body,
    };
    bodies
        && (&a.interim, &a.head, &a.end, a.streamed, a.reusable)
            == (&b.interim, &b.head, &b.end, b.streamed, b.reusable)
}

fn check(input: &[u8], rng: &mut Rng, reached: &mut Reached) -> Result<(), String> {
    for to_head in [false, true] {
        for close in [false, true] {
            let [whole, halves, pieces] = cuts(input, rng);
            let streamed = read(&whole, to_head, true, close)?;
            // Before the close, a bad line may be refused as it ends or
            // only for its size, by how it was cut; but a response whole
            // by its framing is all the same however it came, reuse
            // included.
            let settled = close || streamed.end == Some(Ok(()));
            let cut_as = [(&halves, "split in two"), (&pieces, "in small pieces")];
            for (cut, name) in cut_as.into_iter().filter(|_| settled) {
                let other = read(cut, to_head, true, close)?;
                if !same_read(&streamed, &other) {
                    return Err(format!(
                        "streamed, fed {name} (HEAD: {to_head}): {other:?} against {streamed:?}"
                    ));
                }
            }
            let at_once = read(&whole, to_head, false, close)?;
            if at_once.too_large {
                // A streamed body has no limit (its sink's backpressure
                // bounds it): nothing to compare.
                continue;
            }
            compare(&at_once, &streamed, reached)
                .map_err(|e| format!("{e} (HEAD: {to_head}, close: {close})"))?;
            if let Some(Ok((status, fields))) = &at_once.head {
                let announced = fields.iter().any(|(name, _)| {
                    name.eq_ignore_ascii_case("content-length")
                        || name.eq_ignore_ascii_case("transfer-encoding")
                });
                if (to_head || matches!(status, 204 | 304)) && announced {
                    reached.mark("a bodiless answer announcing a body");
                }
            }
        }
    }
    Ok(())
}

/// A response read whole against the same bytes streamed.
fn compare(at_once: &Read, streamed: &Read, reached: &mut Reached) -> Result<(), String> {
    if at_once.interim != streamed.interim {
        return Err(format!(
            "interim answers {:?} whole, {:?} streamed",
            at_once.interim, streamed.interim
        ));
    }
    if !at_once.interim.is_empty() {
        reached.mark("an interim answer");
    }
    match (&at_once.head, &streamed.head, &streamed.end) {
        // Whole: the response is complete.
        (Some(Ok(head)), Some(Ok(streamed_head)), end) => {
            if head != streamed_head {
                return Err(format!("head {head:?} whole, {streamed_head:?} streamed"));
            }
            // Streamed, every final head (a bodiless one too) has an end.
            if *end != Some(Ok(())) {
                return Err(format!("a body whole, {end:?} streamed"));
            }
            if at_once.body != streamed.body {
                return Err(format!(
                    "body {:?} whole, {:?} streamed",
                    String::from_utf8_lossy(&at_once.body),
                    String::from_utf8_lossy(&streamed.body)
                ));
            }
            if at_once.reusable != streamed.reusable {
                return Err(format!(
                    "reusable after it whole: {}, streamed: {}",
                    at_once.reusable, streamed.reusable
                ));
            }
            if at_once.reusable {
                reached.mark("reusable");
            }
        }
        // Refused whole: refused streamed, in its head or its body.
        (Some(Err(())), Some(Err(())), _) => reached.mark("refused in the head"),
        (Some(Err(())), Some(Ok(_)), Some(Err(()))) => reached.mark("refused in the body"),
        (Some(Err(())), Some(Ok(_)), end) => {
            return Err(format!(
                "refused whole, passed on streamed (its end: {end:?})"
            ));
        }
        (Some(Err(())), None, _) => return Err("refused whole, still awaited streamed".into()),
        // Not complete whole: not streamed to its end either.
        (None, _, Some(Ok(()))) => {
            return Err("incomplete whole, ended streamed".into());
        }
        (None, Some(Err(())), _) => return Err("incomplete whole, refused streamed".into()),
        (None, Some(Ok(_)), Some(Err(()))) => {
            return Err("incomplete whole, its body refused streamed".into());
        }
        (None, _, _) => {}
        (Some(Ok(_)), other, _) => {
            return Err(format!("complete whole, {other:?} streamed"));
        }
    }
    if streamed.streamed && streamed.end == Some(Ok(())) && !streamed.body.is_empty() {
        let head = match &streamed.head {
            Some(Ok(head)) => head,
            _ => return Ok(()),
        };
        let named = |wanted: &str| head.1.iter().any(|(n, _)| n.eq_ignore_ascii_case(wanted));
        let chunked = head.1.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().ends_with(b"chunked")
        });
        reached.mark(match (chunked, named("content-length")) {
            (true, _) => "a streamed chunked body",
            (false, true) => "a streamed body by length",
            (false, false) => "a streamed body until the close",
        });
    }
    Ok(())
}
