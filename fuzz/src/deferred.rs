//! The deferred target: a service that answers later, in any order, whole
//! or streamed in pieces of any length, with hints before, while the
//! client reads its output a little at a time and the clock moves on. The
//! input is a script of such steps, played on one [`Handler`]; the loop's
//! part is played as its rules are (send only what [`Handler::hold_output`]
//! lets go, asked before each send; `process` after every read, timeout and
//! step, as after any answer, and then read on), not in its exact order of
//! steps.
//!
//! Checked, against rules written out here afresh:
//!
//! - every step the script only takes when it is allowed (answering a
//!   request still owed, a piece within the announced length) succeeds;
//! - a hold never lasts past `4 × hold_for` from its start, and each one
//!   ends no later than `hold_for` from when it was begun or drawn out;
//! - once everything is answered and time passes, all output goes, and the
//!   connection finishes at the client's close, holding no request; quiet
//!   before that, its buffers released, it keeps no memory;
//! - the memory its buffers keep is bounded by the most output pending at
//!   once and what it may read, not by how much went through (see
//!   `Player::within_budget`);
//! - a client may close early, and time may run to the handler's next
//!   deadline (a 504 for answers owed too long, a 408, a client that stopped
//!   reading dropped): the handler reports a request abandoned only if its
//!   answer is not all given, once, and every request taken and never
//!   answered is reported by the time the connection finishes; an answering
//!   call finds its request gone exactly when it was reported (and no
//!   other error); no request taken is still owed once a
//!   deadline past its respond timeout was acted on; output worth holding
//!   (see `Player::worth_holding`) is held, once all before it has gone;
//! - what the client read, by its own reading of HTTP/1.1, is one response
//!   per request, in the requests' order, each with the body given for it,
//!   byte for byte (none to HEAD), after a 103 for each hint the handler
//!   took for it and at most one 100, only to a request that asked; or a
//!   504 to a request reported abandoned no sooner than its respond timeout
//!   after it was taken, or a 408 to one never taken (its head or body did
//!   not come whole) no sooner than the header or idle timeout, whichever
//!   is shorter (no body is streamed, so none is refused once taken); up
//!   to the first request left unanswered at an early close, or the answer
//!   a drop cut, of which at most a start came; nothing after that.

use crate::{Reached, Rng, Target};
use edgepoll::http::{
    Dispatch, Gone, Handler, Limits, OutputHold, Reply, Request, RequestId, Response, StatusCode,
    StreamError,
};
use std::cell::RefCell;
use std::time::{Duration, Instant};

pub fn target() -> Target {
    Target {
        name: "deferred",
        seeds: SEEDS.iter().map(|s| s.to_vec()).collect(),
        tokens: TOKENS,
        bytes: b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x7f\x80\xff",
        check,
        must_reach: &[
            "held",
            "a hold drawn out",
            "a hold ended",
            "64 KiB sent at once",
            "a short send",
            "chunked",
            "a HEAD's body left out",
            "a 100 Continue",
            "a 103",
            "a piece shared",
            "closed early",
            "cut short by the close",
            "a deadline passed",
            "refused at a deadline",
            "dropped",
            "buffers let go",
        ],
    }
}

/// Scripts: the first byte of each step picks it, the next ones are its
/// arguments (see `Player::step`).
const SEEDS: &[&[u8]] = &[
    // Three GETs answered whole, out of order; read; time passes.
    b"\x00\x02\x00\x05\x01\x02\x20\x01\x00\x10\x06\xff\x01\x00\x30\x07\x05\x06\xff",
    // A GET streamed chunked, in pieces of 2 and 16 KiB and more, read in part.
    b"\x00\x00\x00\x00\x02\x00\x00\x03\x00\x82\x07\x01\x03\x00\xc0\x06\x40\x03\x00\x05\x04\x00\x07\x09\x06\xff",
    // A HEAD, a 103 to it, and a GET, both streamed with a length.
    b"\x00\x01\x05\x05\x05\x00\x02\x00\x01\x03\x00\x10\x02\x00\x01\x03\x01\x10\x04\x01\x06\xff",
    // A POST asking 100-continue, its body sent once read; answered.
    b"\x00\x00\x0a\x10\x06\xff\x08\x01\x00\x08\x07\x02\x06\xff",
    // A long chunked stream, read a little slower than it comes: the
    // output never empties, while far more than it holds goes through.
    b"\x00\x00\x00\x00\x02\x00\x00\x03\x00\x8f\x06\x8e\x03\x00\x8f\x06\x8e\x03\x00\x8f\x06\x8e\x03\x00\x8f\x06\x8e\x03\x00\x8f\x06\x8e\x03\x00\x8f\x06\x8e\x03\x00\x8f\x06\x8e\x03\x00\x8f\x06\x8e\x04\x00\x06\xff",
    // Eight pipelined GETs, answered apart in time.
    b"\x00\x07\x00\x00\x01\x00\x04\x07\x01\x01\x00\x04\x07\x01\x01\x00\x04\x07\x01\x01\x00\x04\x07\x03\x06\xff\x01\x00\x04\x06\xff",
];

const TOKENS: &[&[u8]] = &[
    b"\x06\xff",
    b"\x07\x01",
    b"\x07\x09",
    b"\x08",
    b"\x03\x00\xc0",
    b"\x03\x00\x40",
    // A piece of 15 KiB, read a KiB short.
    b"\x03\x00\x8f\x06\x8e",
    b"\x02\x00\x00",
    b"\x02\x00\x01",
    b"\x04\x00",
    b"\x00\x04\x00",
    b"\x00\x01\x05",
    // The client's close; time run to a deadline.
    b"\x09",
    b"\x0a",
];

/// The loop's hold (`ServerOptions::hold_for_body`'s default) and backlog.
const HOLD_FOR: Duration = Duration::from_millis(2);
const MOST: usize = 256 * 1024;

/// Takes each request as it comes: its id, in order.
#[derive(Default)]
struct Later(RefCell<Vec<RequestId>>);

impl Dispatch for &Later {
    fn dispatch<'a>(&mut self, _: &Request<'a>, id: RequestId) -> Reply<'a> {
        self.0.borrow_mut().push(id);
        Reply::Later
    }
}

/// One request as the script sent it, and what its answer must be.
struct Asked {
    head: bool,
    /// A POST asking 100-continue: the only kind that may get a 100.
    post: bool,
    /// A POST whose body the client sends once it has its 100 (Continue).
    body_due: bool,
    /// When the client sent it: no deadline of its can pass sooner.
    sent_at: Instant,
    /// Its id, once the handler took it, and when.
    id: Option<RequestId>,
    taken_at: Instant,
    answer: Answer,
    /// The body given for it so far (to HEAD: what a GET would get).
    body: Vec<u8>,
    /// 103s the handler took for it (`Ok(true)`): each goes before its answer.
    hints: usize,
    /// When the handler reported it abandoned (once only).
    abandoned_at: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Answer {
    Owed,
    /// Streamed; `left` of an announced length still to give.
    Streaming {
        left: Option<u64>,
    },
    Done,
    /// Refused as gone: the client closed first, or a deadline passed.
    Gone,
}

/// What an answering call's error says, if the client has gone.
trait Refusal: std::fmt::Display {
    fn is_gone(&self) -> bool;
}

impl Refusal for Gone {
    fn is_gone(&self) -> bool {
        true
    }
}

impl Refusal for StreamError {
    fn is_gone(&self) -> bool {
        matches!(self, StreamError::Gone)
    }
}

/// The bytes of the body of request `n`, from `from`: its own, so that
/// one given to the wrong request, or out of order, shows (the offset's
/// higher bytes mixed in: pieces 256 bytes apart differ too).
fn body_bytes(n: usize, from: usize, len: usize) -> Vec<u8> {
    (from..from + len)
        .map(|i| ((i ^ i >> 8 ^ i >> 16).wrapping_mul(7) ^ n.wrapping_mul(131)) as u8)
        .collect()
}

/// A length from one byte of the script: that byte under 64; else, drawn
/// from the check's random source: under 256, up to 64 KiB, or 16 to 80
/// KiB (over `SHARED_FROM`, sent by reference; around a segment).
fn length(b: u8, rng: &mut Rng) -> usize {
    match b >> 6 {
        0 => b as usize,
        1 => rng.below(256),
        2 => 1024 * (b as usize & 0x3f) + rng.below(1024),
        _ => 16 * 1024 + 1024 * (b as usize & 0x3f) + rng.below(1024),
    }
}

/// The script being played.
struct Player<'a> {
    script: &'a [u8],
    rng: &'a mut Rng,
    at: usize,
    now: Instant,
    conn: Handler,
    limits: Limits,
    later: &'a Later,
    asked: Vec<Asked>,
    /// What the client has sent that the handler has not yet read.
    unread: Vec<u8>,
    /// What the client has read.
    read: Vec<u8>,
    /// When the hold going on began, as the loop saw it.
    held_since: Option<Instant>,
    /// The client has closed its side; the handler has read that.
    closed: bool,
    eof_read: bool,
    /// When the handler answered 408 (at a deadline it acted on).
    refused_at: Option<Instant>,
    /// The handler dropped the connection with output unsent (the client
    /// stopped reading past its idle timeout).
    dropped: bool,
    /// Most output that was pending at once, after any step.
    peak_output: usize,
    /// All output has gone since a hold last let any go.
    emptied: bool,
}

impl Player<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.script.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// Ids the handler has given since: to the requests in order.
    fn take_ids(&mut self) {
        let ids = std::mem::take(&mut *self.later.0.borrow_mut());
        let mut waiting = self.asked.iter_mut().filter(|a| a.id.is_none());
        for id in ids {
            if let Some(asked) = waiting.next() {
                (asked.id, asked.taken_at) = (Some(id), self.now);
            }
        }
    }

    /// Takes what the handler reports abandoned: each request once, and
    /// never one whose answer was all given.
    fn note_abandoned(&mut self) -> Result<(), String> {
        let abandoned: Vec<RequestId> = self.conn.take_abandoned().collect();
        for id in abandoned {
            let i = (self.asked.iter())
                .position(|a| a.id == Some(id))
                .ok_or_else(|| format!("{id:?} abandoned, never taken"))?;
            let asked = &mut self.asked[i];
            if asked.answer == Answer::Done {
                return Err(format!("request {i} abandoned after its answer was given"));
            }
            if asked.abandoned_at.replace(self.now).is_some() {
                return Err(format!("request {i} reported abandoned twice"));
            }
        }
        Ok(())
    }

    /// The memory the connection keeps is bounded by what it was given to
    /// send and what it may read, not by how much went through it. Each of
    /// the output's two buffers (its own, and the one behind streamed
    /// pieces, which takes its place once they have gone) holds its sent
    /// prefix until that is at least 16 KiB and as long as what is left, and keeps
    /// the capacity it grew to by doubling: four times the most output
    /// pending at once, and 32 KiB, each; the pieces count as what they
    /// have left to send. Then twice a head and a read, and 4 KiB for the
    /// index of a head's fields.
    fn within_budget(&mut self) -> Result<(), String> {
        let pending = self.conn.fuzzing_output_len();
        self.peak_output = self.peak_output.max(pending);
        let reading = 2 * (self.limits.max_head_bytes + 16 * 1024);
        let output = 2 * (4 * self.peak_output + 32 * 1024) + self.peak_output;
        let budget = output + reading + 4096;
        match self.conn.buffered_capacity() {
            kept if kept > budget => Err(format!(
                "{kept} bytes kept, {} output at most pending",
                self.peak_output
            )),
            _ => Ok(()),
        }
    }

    /// The `pick`th (modulo their count) of the requests taken whose
    /// answer is as `open` wants.
    fn pick(&self, pick: u8, open: fn(Answer) -> bool) -> Option<usize> {
        let open: Vec<usize> = (0..self.asked.len())
            .filter(|&i| self.asked[i].id.is_some() && open(self.asked[i].answer))
            .collect();
        (!open.is_empty()).then(|| open[pick as usize % open.len()])
    }

    /// The client sends `bytes`: the handler reads them as the loop
    /// would, while it wants to.
    fn receive(&mut self, bytes: &[u8]) {
        self.unread.extend_from_slice(bytes);
        self.pump();
    }

    /// The handler reads what waits, 16 KiB at a time, while it wants to,
    /// and then the client's close.
    fn pump(&mut self) {
        let mut later = self.later;
        while !self.unread.is_empty() && self.conn.wants_read() {
            let n = self.unread.len().min(16 * 1024);
            self.conn.receive(&self.unread[..n], self.now, &mut later);
            self.unread.drain(..n);
        }
        if self.closed && !self.eof_read && self.unread.is_empty() && self.conn.wants_read() {
            self.eof_read = true;
            self.conn.receive_eof(self.now, &mut later);
        }
        self.take_ids();
    }

    /// The outcome of an answering call for request `i`: an error is a
    /// failure, but that the request is gone once the handler reported it
    /// abandoned (then it is marked so); taken, it must not have been.
    fn answered<T, E: Refusal>(
        &mut self,
        i: usize,
        what: &str,
        result: Result<T, E>,
    ) -> Result<Option<T>, String> {
        self.note_abandoned()?;
        let abandoned = self.asked[i].abandoned_at.is_some();
        match result {
            Ok(_) if abandoned => Err(format!("{what} to request {i}, abandoned, taken")),
            Ok(t) => Ok(Some(t)),
            Err(e) if e.is_gone() && abandoned => {
                self.asked[i].answer = Answer::Gone;
                Ok(None)
            }
            Err(e) => Err(format!("{what} to request {i}: {e}")),
        }
    }

    /// Answers request `i` whole, with `len` bytes of its body.
    fn respond_whole(&mut self, i: usize, len: usize) -> Result<(), String> {
        let body = body_bytes(i, 0, len);
        let id = self.asked[i].id.ok_or("no id")?;
        let response = Response::new(StatusCode::OK).body(&body[..]);
        let result = self.conn.respond(id, response, self.now);
        if self.answered(i, "respond", result)?.is_some() {
            self.asked[i].answer = Answer::Done;
            self.asked[i].body = body;
        }
        Ok(())
    }

    /// Whether the pending output is worth holding, by a part of the rules
    /// `hold.rs` gives (enough to say it must be held, not all of when it
    /// may be): less than a segment of it, no interim response in it, and
    /// after it the rest of a streamed body (not to HEAD, not all given) or
    /// an answer still owed; on a connection not closing, no request yet
    /// given up (after that, never).
    fn worth_holding(&self) -> bool {
        let held = self.conn.fuzzing_output_len();
        let closing = self.eof_read || self.dropped || self.refused_at.is_some();
        if held == 0 || held >= 64 * 1024 || closing || self.conn.is_finished() {
            return false;
        }
        let parts = self.conn.pending_output_parts();
        let interim =
            |p: &&[u8]| (p.windows(13)).any(|w| w == b"HTTP/1.1 100 " || w == b"HTTP/1.1 103 ");
        if parts.iter().any(interim) || self.asked.iter().any(|a| a.abandoned_at.is_some()) {
            return false;
        }
        // The first request not all answered: the one the output waits on.
        match self.asked.iter().find(|a| a.answer != Answer::Done) {
            Some(front) if front.id.is_some() => match front.answer {
                Answer::Owed => true,
                Answer::Streaming { left } => !front.head && left != Some(0),
                _ => false,
            },
            _ => false,
        }
    }

    /// Asks the hold, as the loop does before it sends; checks its bounds,
    /// and that output worth holding is held once all before it has gone
    /// (output a hold released, or an interim response, goes at once until
    /// then).
    fn hold(&mut self, reached: &mut Reached) -> Result<OutputHold, String> {
        let said = self.conn.hold_output(self.now, HOLD_FOR, MOST);
        match said {
            OutputHold::Send => {
                if self.held_since.take().is_some() {
                    reached.mark("a hold ended");
                } else if self.emptied && self.worth_holding() {
                    return Err(format!(
                        "{} bytes worth holding sent at once",
                        self.conn.fuzzing_output_len()
                    ));
                }
                if self.conn.fuzzing_output_len() > 0 {
                    self.emptied = false;
                }
            }
            OutputHold::Begun(_) | OutputHold::Held => {
                if let OutputHold::Begun(until) = said {
                    if until > self.now + HOLD_FOR || until <= self.now {
                        return Err(format!(
                            "a hold begun until {:?} from now",
                            until - self.now
                        ));
                    }
                    reached.mark(match self.held_since {
                        None => "held",
                        Some(_) => "a hold drawn out",
                    });
                }
                let since = *self.held_since.get_or_insert(self.now);
                if self.now >= since + HOLD_FOR * 4 {
                    return Err(format!("held {:?}", self.now - since));
                }
            }
        }
        Ok(said)
    }

    /// The client reads up to `most` bytes, if the hold lets them go.
    fn read(&mut self, most: usize, reached: &mut Reached) -> Result<(), String> {
        // A finished connection is closed by the loop: nothing more goes.
        if self.conn.is_finished() || self.hold(reached)? != OutputHold::Send {
            return Ok(());
        }
        let parts = self.conn.pending_output_parts();
        let pending: usize = parts.iter().map(|p| p.len()).sum();
        if pending >= 64 * 1024 && most >= pending {
            reached.mark("64 KiB sent at once");
        }
        if parts[1].len() >= 16 * 1024 || parts[2].len() >= 16 * 1024 {
            reached.mark("a piece shared");
        }
        let mut n = 0;
        for part in parts {
            let take = part.len().min(most - n);
            self.read.extend_from_slice(&part[..take]);
            n += take;
        }
        if n > 0 && n < pending {
            reached.mark("a short send");
        }
        self.conn.consume_output(n, self.now);
        if self.conn.fuzzing_output_len() == 0 {
            self.emptied = true;
        }
        let mut later = self.later;
        self.conn.process(self.now, &mut later);
        self.pump();
        Ok(())
    }

    fn step(&mut self, reached: &mut Reached) -> Result<(), String> {
        let now = self.now;
        match self.byte() % 11 {
            // Requests, pipelined: GET, HEAD, or POST asking 100-continue
            // (its body sent with it, or, last, with a later step).
            0 => {
                let (count, kinds) = (1 + self.byte() % 8, self.byte());
                if self.closed {
                    return Ok(());
                }
                let mut wire = self.due_bodies();
                for k in 0..count {
                    let n = self.asked.len();
                    let head = (kinds >> k) & 5 == 5;
                    let post = !head && (kinds >> k) & 10 == 10;
                    match (head, post) {
                        (true, _) => wire.extend(format!("HEAD /{n} HTTP/1.1\r\nHost: x\r\n\r\n").bytes()),
                        (_, true) => wire.extend(format!("POST /{n} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n").bytes()),
                        _ => wire.extend(format!("GET /{n} HTTP/1.1\r\nHost: x\r\n\r\n").bytes()),
                    }
                    let body_due = post && k + 1 == count;
                    if post && !body_due {
                        wire.extend_from_slice(b"abc");
                    }
                    self.asked.push(Asked {
                        head,
                        post,
                        body_due,
                        sent_at: now,
                        id: None,
                        taken_at: now,
                        answer: Answer::Owed,
                        body: Vec::new(),
                        hints: 0,
                        abandoned_at: None,
                    });
                }
                let split = self.byte() as usize % (wire.len() + 1);
                self.receive(&wire[..split]);
                self.receive(&wire[split..]);
            }
            // A whole answer to one owed.
            1 => {
                let (pick, len) = (self.byte(), self.byte());
                if let Some(i) = self.pick(pick, |a| a == Answer::Owed) {
                    let len = length(len, self.rng);
                    self.respond_whole(i, len)?;
                }
            }
            // A streamed answer begun: chunked, or of a length.
            2 => {
                let (pick, how) = (self.byte(), self.byte());
                if let Some(i) = self.pick(pick, |a| a == Answer::Owed) {
                    let length = (how & 1 == 1).then(|| length(how, self.rng) as u64 * 3);
                    let id = self.asked[i].id.ok_or("no id")?;
                    let head = Response::new(StatusCode::OK);
                    let result = self.conn.respond_stream(id, head, length, now);
                    if self.answered(i, "respond_stream", result)?.is_some() {
                        self.asked[i].answer = Answer::Streaming { left: length };
                    }
                }
            }
            // A piece of a streamed body (cut to what its length leaves).
            3 => {
                let (pick, len) = (self.byte(), self.byte());
                if let Some(i) = self.pick(pick, |a| matches!(a, Answer::Streaming { .. })) {
                    let Answer::Streaming { left } = self.asked[i].answer else {
                        return Ok(());
                    };
                    let len = length(len, self.rng);
                    let len = left.map_or(len, |l| (l as usize).min(len));
                    let (id, from) = (self.asked[i].id.ok_or("no id")?, self.asked[i].body.len());
                    let result = self
                        .conn
                        .send_body(id, body_bytes(i, from, len).into(), now);
                    // Counted as given only if taken.
                    if self.answered(i, "send_body", result)?.is_some() {
                        self.asked[i].body.extend(body_bytes(i, from, len));
                        self.asked[i].answer = Answer::Streaming {
                            left: left.map(|l| l - len as u64),
                        };
                    }
                }
            }
            // A streamed body ends (what its length leaves given first).
            4 => {
                let pick = self.byte();
                if let Some(i) = self.pick(pick, |a| matches!(a, Answer::Streaming { .. })) {
                    self.finish(i)?;
                }
            }
            // A 103 (Early Hints) before the answer.
            5 => {
                let pick = self.byte();
                if let Some(i) = self.pick(pick, |a| a == Answer::Owed) {
                    let id = self.asked[i].id.ok_or("no id")?;
                    let hint =
                        Response::new(StatusCode::EARLY_HINTS).header("Link", "</a>; rel=preload");
                    let result = self.conn.respond_interim(id, &hint, now);
                    if self.answered(i, "respond_interim", result)? == Some(true) {
                        self.asked[i].hints += 1;
                        reached.mark("a 103");
                    }
                }
            }
            // The client reads: a little, or all there is.
            6 => {
                let b = self.byte();
                let most = match b {
                    0xff => usize::MAX,
                    _ => 1 + length(b, self.rng),
                };
                self.read(most, reached)?;
            }
            // Time passes.
            7 => {
                let quarters = self.byte() % 16;
                self.now += Duration::from_micros(250 * quarters as u64);
                self.hold(reached)?;
            }
            // The body of a POST that waited for its 100.
            8 => {
                let body = self.due_bodies();
                self.receive(&body);
            }
            // The client closes (once the body it owes is sent): what it
            // has not been answered may be abandoned.
            9 if !self.closed => {
                let body = self.due_bodies();
                self.receive(&body);
                self.closed = true;
                self.pump();
                reached.mark("closed early");
            }
            // Time runs to the handler's next deadline, which it acts on:
            // a 504 for answers owed too long, a 408, a close for a client
            // that stopped reading.
            10 => {
                if let Some(deadline) = self.conn.deadline() {
                    self.now = self.now.max(deadline);
                    self.conn.handle_timeout(self.now);
                    // As the loop does after a timeout (its 504s answer):
                    // requests held back go on before more is read.
                    let mut later = self.later;
                    self.conn.process(self.now, &mut later);
                    self.take_ids();
                    self.timed_out()?;
                    let unsent = self
                        .conn
                        .pending_output_parts()
                        .iter()
                        .any(|p| !p.is_empty());
                    if self.conn.is_finished() && unsent {
                        self.dropped = true;
                        reached.mark("dropped");
                    }
                    reached.mark("a deadline passed");
                    self.pump();
                }
            }
            // The loop asks the hold without sending.
            _ => {
                self.hold(reached)?;
            }
        }
        Ok(())
    }

    /// The body of the POST waiting for its 100, if one does: sent now.
    fn due_bodies(&mut self) -> Vec<u8> {
        let mut wire = Vec::new();
        for asked in self.asked.iter_mut().filter(|a| a.body_due) {
            asked.body_due = false;
            wire.extend_from_slice(b"abc");
        }
        wire
    }

    /// Ends the streamed answer `i`, giving what its length leaves first.
    fn finish(&mut self, i: usize) -> Result<(), String> {
        let id = self.asked[i].id.ok_or("no id")?;
        if let Answer::Streaming { left: Some(left) } = self.asked[i].answer {
            let (from, len) = (self.asked[i].body.len(), left as usize);
            let result = self
                .conn
                .send_body(id, body_bytes(i, from, len).into(), self.now);
            if self.answered(i, "send_body", result)?.is_none() {
                return Ok(());
            }
            self.asked[i].body.extend(body_bytes(i, from, len));
        }
        let result = self.conn.end_body(id, self.now);
        if self.answered(i, "end_body", result)?.is_some() {
            self.asked[i].answer = Answer::Done;
        }
        Ok(())
    }

    /// Everything answered, then read while time passes, then the client
    /// closes (if it has not): all of it goes, every round taking a request
    /// or sending a byte at least within four hold times, and the
    /// connection finishes, holding nothing.
    fn wind_up(&mut self, reached: &mut Reached) -> Result<(), String> {
        let (mut last, mut still) = ((0, 0), 0);
        loop {
            let body = self.due_bodies();
            self.receive(&body);
            for i in 0..self.asked.len() {
                match (self.asked[i].id, self.asked[i].answer) {
                    (Some(_), Answer::Owed) => self.respond_whole(i, 5)?,
                    (Some(_), Answer::Streaming { .. }) => self.finish(i)?,
                    _ => {}
                }
            }
            self.within_budget()?;
            self.read(usize::MAX, reached)?;
            let settled = self
                .asked
                .iter()
                .all(|a| matches!(a.answer, Answer::Done | Answer::Gone) || a.id.is_none());
            if self.conn.is_finished() {
                return self.nothing_held();
            }
            if settled && self.unread.is_empty() && !self.conn.wants_write() && !self.closed {
                // Quiet: the loop lets its buffers go.
                let kept = self.conn.buffered_capacity();
                self.conn.release_buffers();
                if self.conn.is_between_requests() {
                    if self.conn.buffered_capacity() != 0 {
                        return Err(format!(
                            "{} bytes kept by a quiet connection",
                            self.conn.buffered_capacity()
                        ));
                    }
                    if kept > 0 {
                        reached.mark("buffers let go");
                    }
                }
                self.closed = true;
                self.pump();
            }
            let taken = self.asked.iter().filter(|a| a.id.is_some()).count();
            still = if (taken, self.read.len()) == last {
                still + 1
            } else {
                0
            };
            last = (taken, self.read.len());
            if still == 8 {
                return Err(format!(
                    "stuck: {} of {} requests taken, output {}, close read {}, finished {}",
                    taken,
                    self.asked.len(),
                    self.conn.wants_write(),
                    self.eof_read,
                    self.conn.is_finished()
                ));
            }
            self.now += HOLD_FOR / 2;
        }
    }

    /// Once finished: nothing waits, and every request taken and not
    /// answered was reported abandoned (once: `note_abandoned`).
    fn nothing_held(&mut self) -> Result<(), String> {
        if self.conn.waiting_count() != 0 {
            return Err(format!(
                "finished with {} waiting",
                self.conn.waiting_count()
            ));
        }
        self.note_abandoned()?;
        let untold = (self.asked.iter())
            .position(|a| a.id.is_some() && a.answer != Answer::Done && a.abandoned_at.is_none());
        match untold {
            Some(i) => Err(format!(
                "request {i} not answered, never reported abandoned"
            )),
            None => Ok(()),
        }
    }

    /// After a deadline acted on: the 408 given, if one was, noted; and no
    /// request taken still owed past its respond timeout (which counts
    /// from when it was taken: at its head, or a POST at its body's end,
    /// `Later` streaming no body).
    fn timed_out(&mut self) -> Result<(), String> {
        self.note_abandoned()?;
        let incident = self.conn.take_incident().and_then(|i| i.status);
        if incident == Some(StatusCode::REQUEST_TIMEOUT) {
            self.refused_at.get_or_insert(self.now);
        }
        let late = (self.asked.iter()).position(|a| {
            a.id.is_some()
                && a.answer == Answer::Owed
                && a.abandoned_at.is_none()
                && self.now >= a.taken_at + self.limits.respond_timeout
        });
        match late {
            Some(i) => Err(format!("request {i} owed past its respond timeout")),
            None => Ok(()),
        }
    }
}

/// One response read from the start of the client's bytes.
struct Read {
    status: u16,
    /// Its body (none to HEAD), or as much of it as came.
    body: Vec<u8>,
    /// Bytes it took.
    took: usize,
    /// Whether all of it came, or the bytes ended first.
    whole: bool,
}

/// One HTTP/1.1 response from the start of `wire`, read afresh; a head
/// cut short is read as a status of 0.
fn one_response(wire: &[u8], head_only: bool) -> Result<Read, String> {
    let cut = |status, body, whole| Read {
        status,
        body,
        took: wire.len(),
        whole,
    };
    let Some(end) = wire.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(cut(0, Vec::new(), false));
    };
    let end = end + 4;
    let head = std::str::from_utf8(&wire[..end]).map_err(|_| "a head not UTF-8")?;
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("a status line {:?}", head.lines().next()))?;
    let field = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let whole = |body, took| Read {
        status,
        body,
        took,
        whole: true,
    };
    if status < 200 || head_only {
        return Ok(whole(Vec::new(), end));
    }
    if field("transfer-encoding").as_deref() == Some("chunked") {
        let (mut body, mut at) = (Vec::new(), end);
        loop {
            let Some(line_end) = wire[at..].windows(2).position(|w| w == b"\r\n") else {
                return Ok(cut(status, body, false));
            };
            let line = std::str::from_utf8(&wire[at..at + line_end]).map_err(|_| "a chunk line")?;
            let size =
                usize::from_str_radix(line, 16).map_err(|_| format!("a chunk size {line:?}"))?;
            at += line_end + 2;
            let data = &wire[at.min(wire.len())..(at + size).min(wire.len())];
            body.extend_from_slice(data);
            if data.len() < size {
                return Ok(cut(status, body, false));
            }
            match wire.get(at + size..(at + size + 2).min(wire.len())) {
                Some(b"\r\n") => {}
                Some(b"" | b"\r") => return Ok(cut(status, body, false)),
                _ => return Err("a chunk without its CRLF".into()),
            }
            at += size + 2;
            if size == 0 {
                return Ok(whole(body, at));
            }
        }
    }
    let length: usize = field("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or("a response with neither length nor chunks")?;
    match wire.get(end..end + length) {
        Some(body) => Ok(whole(body.to_vec(), end + length)),
        None => Ok(cut(status, wire[end..].to_vec(), false)),
    }
}

fn check(input: &[u8], rng: &mut Rng, reached: &mut Reached) -> Result<(), String> {
    let now = Instant::now();
    let (later, limits) = (Later::default(), Limits::default());
    let mut player = Player {
        script: input,
        rng,
        at: 0,
        now,
        conn: Handler::new(limits.clone(), now),
        limits,
        later: &later,
        asked: Vec::new(),
        unread: Vec::new(),
        read: Vec::new(),
        held_since: None,
        closed: false,
        eof_read: false,
        refused_at: None,
        dropped: false,
        peak_output: 0,
        emptied: true,
    };
    while player.at < input.len() {
        player.step(reached)?;
        // As the loop does after any answer: requests held back go on,
        // and then it reads on.
        let mut later = player.later;
        player.conn.process(player.now, &mut later);
        player.pump();
        player.note_abandoned()?;
        player.within_budget()?;
    }
    player.wind_up(reached)?;

    let mut wire = &player.read[..];
    for (n, asked) in player.asked.iter().enumerate() {
        // Interim responses: a 100 only to a request that asked for one,
        // once; a 103 for each the handler took for it.
        let (mut read, mut continues, mut hints) = (one_response(wire, asked.head)?, 0, 0);
        while read.whole && matches!(read.status, 100 | 103) {
            match read.status {
                100 => continues += 1,
                _ => hints += 1,
            }
            if (continues > 0 && !asked.post) || continues > 1 || hints > asked.hints {
                return Err(format!(
                    "request {n}: {continues} 100s and {hints} 103s where {} were given",
                    asked.hints
                ));
            }
            wire = &wire[read.took..];
            read = one_response(wire, asked.head)?;
        }
        if continues > 0 {
            reached.mark("a 100 Continue");
        }
        wire = &wire[read.took..];
        let given: &[u8] = if asked.head { &[] } else { &asked.body };
        if asked.answer != Answer::Done {
            // Refused at a deadline: a 504 to a request taken, reported
            // abandoned at it, no sooner than its respond timeout after it
            // was taken; a 408 to one never taken (a head or body that did
            // not come), no sooner than the shorter of the header and idle
            // timeouts after it was sent. The connection may go on.
            let limits = &player.limits;
            let refused = match read.status {
                504 => {
                    let due = asked.taken_at + limits.respond_timeout;
                    asked.id.is_some() && asked.abandoned_at.is_some_and(|t| t >= due)
                }
                408 => {
                    let due = asked.sent_at + limits.header_timeout.min(limits.idle_timeout);
                    asked.id.is_none() && player.refused_at.is_some_and(|t| t >= due)
                }
                _ => false,
            };
            if refused && read.whole {
                reached.mark("refused at a deadline");
                continue;
            }
            // Left unanswered at an early close or a dropped connection (a
            // streamed answer under way too): what came of it, if
            // anything, is a start of its answer or refusal, and nothing
            // follows.
            let start = refused || (read.status == 200 && given.starts_with(&read.body));
            if read.status != 0 && !start {
                return Err(format!(
                    "request {n}, not answered: a {} with {} bytes of body",
                    read.status,
                    read.body.len()
                ));
            }
            if !wire.is_empty() {
                return Err(format!(
                    "{} bytes after request {n}, not answered",
                    wire.len()
                ));
            }
            reached.mark("cut short by the close");
            break;
        }
        if !read.whole && player.dropped {
            // Dropped: nothing after the answer it cut.
            if read.status != 0 && (read.status != 200 || !given.starts_with(&read.body)) {
                return Err(format!(
                    "request {n}: a {} where the connection was dropped",
                    read.status
                ));
            }
            if !wire.is_empty() {
                return Err(format!("{} bytes after the drop", wire.len()));
            }
            break;
        }
        if hints != asked.hints {
            return Err(format!(
                "request {n}: {hints} 103s where {} were given",
                asked.hints
            ));
        }
        if !read.whole || read.status != 200 {
            return Err(format!(
                "request {n} answered {}, whole: {}",
                read.status, read.whole
            ));
        }
        if read.body != given {
            return Err(format!(
                "request {n}: a body of {} bytes where {} were given",
                read.body.len(),
                given.len()
            ));
        }
        if asked.head && !asked.body.is_empty() {
            reached.mark("a HEAD's body left out");
        }
    }
    if !wire.is_empty() {
        return Err(format!("{} bytes after the last response", wire.len()));
    }
    if player
        .read
        .windows(26)
        .any(|w| w == b"Transfer-Encoding: chunked")
    {
        reached.mark("chunked");
    }
    Ok(())
}
