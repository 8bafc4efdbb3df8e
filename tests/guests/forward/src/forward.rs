//! The forwarding service (wasm32-wasip1 only).

use edgepoll::http::{Limits, ParsedResponse, Reply, Request, Response, StatusCode, HOP_BY_HOP};
use edgepoll::ws::{Message, Outbox};
use edgepoll::{
    App, ClientError, ClientOptions, ClientRequest, Context, ExchangeId, Responder, Server,
    ServerOptions, SmallBlockAlloc, TimerId, Url,
};
use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Counts the bytes allocated and not yet freed, for `/_stats`: what the
/// service holds, apart from the high-water mark the memory size shows (and
/// the freed small blocks edgepoll's allocator keeps for reuse). Allocates
/// as the examples do.
struct Counting(SmallBlockAlloc);

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as given.
        let moved = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting(SmallBlockAlloc::new());

/// Whether a field stays behind: one that belongs to the connection
/// (`HOP_BY_HOP`, RFC 9110 §7.6.1), or one the client writes itself.
fn not_forwarded(name: &str) -> bool {
    HOP_BY_HOP
        .iter()
        .chain(&["content-length", "host"])
        .any(|n| name.eq_ignore_ascii_case(n))
}

struct Forward {
    /// (prefix, upstream origin), longest prefix first: parsed once, so
    /// that a request costs no URL to build and parse.
    routes: Vec<(String, Url)>,
    waiting: HashMap<ExchangeId, Responder>,
    /// Stream bodies both ways instead of holding them whole.
    stream: bool,
    /// `/_count` bodies being read: the bytes so far.
    counting: HashMap<Responder, u64>,
    /// How `/_count` bodies ended, by outcome.
    ends: BTreeMap<String, usize>,
    /// `/_echo_late` requests whose body has not begun: answered, with
    /// their own body, from its first piece on (their `Content-Length`).
    late_echo: HashMap<Responder, Option<u64>>,
    /// Exchanges of requests with `X-Cancel-After-Head` (streaming): the
    /// service cancels each once its response is piped to the client, as
    /// on a timeout of its own.
    cancel_after_head: HashSet<ExchangeId>,
    /// Misuses of `Context`, answered by the loop with a 500 (or refused):
    /// the exchanges of requests with `X-Pipe-Late` (streaming), piped only
    /// once their body has begun to come here ...
    pipe_late: HashMap<ExchangeId, (Responder, Response<'static>)>,
    /// ... the exchanges of requests with `X-Piece-Into-Pipe` (streaming),
    /// whose piped response the service also sends a piece and an end of
    /// its own (dropped by the loop) ...
    piece_into_pipe: HashSet<ExchangeId>,
    /// ... and `/_echo_after_end` (true) and `/_pipe_after_end` requests,
    /// whose body is echoed or sent on once it has ended.
    after_end: HashMap<Responder, bool>,
    /// `/_generate?N` responses: (bytes sent, N). Made here, a piece at a
    /// time, each after `on_body_drained` asks for more.
    generating: HashMap<Responder, (u64, u64)>,
    /// `/_send_and_answer` exchanges: the client's body goes up to `/up`'s
    /// upstream while the client is answered at once; how each ended is
    /// counted in `ends` (as `sent:` and the outcome).
    sent_on: HashSet<ExchangeId>,
    /// Exchanges of requests with `X-Relay` (streaming): their response
    /// bodies are passed on by the service itself, a piece at a time, the
    /// exchange paused until the client's response has taken it.
    relay_down: HashMap<ExchangeId, Responder>,
    /// `/_relay_echo` requests: their bodies are sent back by the service
    /// itself, a piece at a time, the body paused likewise.
    relay_up: HashSet<Responder>,
    /// What each relaying response waits on to drain before it is read
    /// again: an exchange (`X-Relay`), or its own request (`None`).
    relay_paused: HashMap<Responder, Option<ExchangeId>>,
    /// A body paused first and handed to the loop later, once another
    /// exchange (a check, `X-Pipe-After: PATH` or `/_echo_after_check`)
    /// answered: the checks (check, what they release) ...
    checks: HashMap<ExchangeId, Checked>,
    /// ... and the `X-Pipe-After` exchanges whose head came first, paused
    /// (`None` until it comes).
    paused_heads: HashMap<ExchangeId, Option<(Responder, Response<'static>, Option<u64>)>>,
    /// Requests with `X-Deadline-Ms: N` (not streaming): answered 504 by
    /// the service itself, through a timer, if their upstream has not
    /// answered within N ms. The timers' exchanges, and each exchange's
    /// timer (cancelled when its answer comes).
    deadlines: HashMap<TimerId, ExchangeId>,
    deadline_of: HashMap<ExchangeId, TimerId>,
    /// `/_generate_then_disconnect?MS` responses: an endless `/_generate`
    /// body whose client the service drops (`Context::disconnect`) after
    /// MS milliseconds, by these timers.
    disconnects: HashMap<TimerId, Responder>,
    /// `/_answer_after?MS` requests: answered 200 by these timers, MS
    /// milliseconds after they came (those taken together fire together,
    /// and are answered in one callback round) ...
    answer_at: HashMap<TimerId, Responder>,
    /// ... the requests so answered, and how many of them were then
    /// reported abandoned (`late_abandons` in `/_stats`): none should be,
    /// as the service answered them.
    answered_by_timer: HashSet<Responder>,
    late_abandons: usize,
    /// The timer `on_start` set, until it fires: then `/_stats` says
    /// `started=1`.
    start: Option<TimerId>,
    started: bool,
}

/// What a check's answer lets go on.
enum Checked {
    /// This exchange's response, piped to its client.
    Response(ExchangeId),
    /// This request's body, echoed.
    Echo(Responder, Option<u64>),
}

/// The byte at `position` of a `/_generate` body.
fn generated(position: u64) -> u8 {
    (position % 251) as u8
}

/// The size of a `/_generate` body's pieces.
const GENERATED_PIECE: u64 = 16 * 1024;

/// The value of a `Content-Length` field, if there is a valid one.
fn content_length<'a>(mut fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> Option<u64> {
    fields
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok()?.parse().ok())
}

impl Forward {
    /// The next piece of a `/_generate` body, or its end.
    fn generate(&mut self, responder: Responder, cx: &mut Context<'_>) {
        let Some((sent, total)) = self.generating.get_mut(&responder) else {
            return;
        };
        let n = GENERATED_PIECE.min(*total - *sent);
        let piece: Vec<u8> = (*sent..*sent + n).map(generated).collect();
        *sent += n;
        if n > 0 {
            cx.send_body(responder, bytes::Bytes::from(piece));
        }
        if *sent == *total {
            self.generating.remove(&responder);
            cx.end_body(responder);
        }
    }

    /// A `GET` of `path` on its route's upstream: the check another
    /// exchange or body waits on.
    fn check(&self, cx: &mut Context<'_>, path: &str) -> Option<ExchangeId> {
        let base = self.upstream(path)?;
        let request = ClientRequest::to_origin("GET", base, path).ok()?;
        cx.fetch(&request).ok()
    }

    fn upstream(&self, path: &str) -> Option<&Url> {
        self.routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, base)| base)
    }
}

impl App for Forward {
    fn call<'a>(
        &mut self,
        request: &Request<'a>,
        responder: Responder,
        cx: &mut Context<'_>,
    ) -> Reply<'a> {
        if request.path() == "/_stats" {
            let pages = core::arch::wasm32::memory_size(0);
            let live = LIVE.load(Ordering::Relaxed);
            let ends: Vec<String> = self.ends.iter().map(|(k, n)| format!("{k}:{n}")).collect();
            return Reply::Now(Response::new(StatusCode::OK).body(format!(
                "waiting={} pages={pages} live={live} counting={} generating={} ends={} started={} \
                 answering={} answered_by_timer={} late_abandons={}\n",
                self.waiting.len(),
                self.counting.len(),
                self.generating.len(),
                ends.join(","),
                u8::from(self.started),
                self.answer_at.len(),
                self.answered_by_timer.len(),
                self.late_abandons,
            )));
        }
        // `/_generate?N`: N bytes, announced. `/_generate_no_content?N`: a
        // 204 whose service streams N bytes all the same, as a naive one
        // would. `/_generate_over?N`: N announced, N + 1 streamed.
        if let path @ ("/_generate" | "/_generate_no_content" | "/_generate_over") = request.path()
        {
            let Some(announced) = request.query().and_then(|n| n.parse::<u64>().ok()) else {
                return Reply::Now(Response::new(StatusCode::BAD_REQUEST).body("/_generate?N\n"));
            };
            // Taken after the drain began (it was under way): no stream.
            if cx.draining() {
                return Reply::Now(
                    Response::new(StatusCode::SERVICE_UNAVAILABLE).body("draining\n"),
                );
            }
            let (status, total) = match path {
                "/_generate_no_content" => (StatusCode::NO_CONTENT, announced),
                "/_generate_over" => (StatusCode::OK, announced.saturating_add(1)),
                _ => (StatusCode::OK, announced),
            };
            cx.respond_stream(responder, Response::new(status), Some(announced));
            // HEAD too, as a naive service would: the loop asks no more.
            self.generating.insert(responder, (0, total));
            self.generate(responder, cx);
            return Reply::Later;
        }
        if request.path() == "/_answer_after" {
            let Some(ms) = request.query().and_then(|n| n.parse::<u64>().ok()) else {
                return Reply::Now(Response::new(StatusCode::BAD_REQUEST).body("?MS\n"));
            };
            let timer = cx.set_timer(cx.now() + Duration::from_millis(ms));
            self.answer_at.insert(timer, responder);
            return Reply::Later;
        }
        if request.path() == "/_generate_then_disconnect" {
            let Some(ms) = request.query().and_then(|n| n.parse::<u64>().ok()) else {
                return Reply::Now(Response::new(StatusCode::BAD_REQUEST).body("?MS\n"));
            };
            cx.respond_stream(responder, Response::new(StatusCode::OK), None);
            self.generating.insert(responder, (0, u64::MAX));
            self.generate(responder, cx);
            let timer = cx.set_timer(cx.now() + Duration::from_millis(ms));
            self.disconnects.insert(timer, responder);
            return Reply::Later;
        }
        if request.path() == "/_send_and_answer" {
            let Some(base) = self.upstream("/up/") else {
                return Reply::Now(Response::new(StatusCode::NOT_FOUND).body("no /up route\n"));
            };
            let upstream = ClientRequest::to_origin("POST", base, "/")
                .map(|r| r.streamed_body(content_length(request.headers())));
            return match upstream.map(|r| cx.fetch_stream(&r, Some(responder))) {
                Ok(Ok(exchange)) => {
                    self.sent_on.insert(exchange);
                    cx.respond(
                        responder,
                        Response::new(StatusCode::from_u16(202).unwrap_or(StatusCode::OK))
                            .body("sending\n"),
                    );
                    Reply::Later
                }
                Ok(Err(e)) => {
                    Reply::Now(Response::new(StatusCode::BAD_REQUEST).body(format!("{e}\n")))
                }
                Err(e) => Reply::Now(Response::new(StatusCode::BAD_REQUEST).body(format!("{e}\n"))),
            };
        }
        if request.path() == "/_relay_echo" {
            let length = content_length(request.headers());
            cx.respond_stream(responder, Response::new(StatusCode::OK), length);
            self.relay_up.insert(responder);
            return Reply::Later;
        }
        if request.path() == "/_echo_after_check" {
            // Paused now, echoed once `/delay/200/check` answers.
            cx.pause_request_body(responder, true);
            let length = content_length(request.headers());
            return match self.check(cx, "/delay/200/check") {
                Some(check) => {
                    self.checks.insert(check, Checked::Echo(responder, length));
                    Reply::Later
                }
                None => Reply::Now(Response::new(StatusCode::NOT_FOUND).body("no route\n")),
            };
        }
        if request.path() == "/_echo_late" {
            self.late_echo
                .insert(responder, content_length(request.headers()));
            return Reply::Later;
        }
        if let path @ ("/_echo_after_end" | "/_pipe_after_end") = request.path() {
            self.after_end.insert(responder, path == "/_echo_after_end");
            return Reply::Later;
        }
        if request.path() == "/_count" {
            // Read here, piece by piece (see `on_request_body`); answered
            // when it ends, or (`?now`) at once, before its body.
            self.counting.insert(responder, 0);
            return match request.query() {
                Some("now") => Reply::Now(Response::new(StatusCode::OK).body("before the body\n")),
                _ => Reply::Later,
            };
        }
        let Some(base) = self.upstream(request.path()) else {
            return Reply::Now(Response::new(StatusCode::NOT_FOUND).body("no route\n"));
        };
        // What to fetch may be named (`X-Upstream-Method`), as a naive
        // service fetches GET for a HEAD.
        let method = (request.header("x-upstream-method"))
            .and_then(|m| std::str::from_utf8(m).ok())
            .unwrap_or(request.method());
        let mut upstream = match ClientRequest::to_origin(method, base, &request.origin_form()) {
            Ok(upstream) => upstream,
            Err(e) => {
                return Reply::Now(Response::new(StatusCode::BAD_REQUEST).body(format!("{e}\n")))
            }
        };
        for (name, value) in request.headers() {
            if not_forwarded(name) {
                continue;
            }
            upstream = upstream.header_bytes(name, value);
        }
        if self.stream {
            let (upstream, body_from) = match request.body_streams() {
                // A misuse: the request to send the body with was given
                // none to stream (refused by `fetch_stream`).
                true if request.header("x-unstreamed").is_some() => (upstream, Some(responder)),
                true => (
                    upstream.streamed_body(content_length(request.headers())),
                    Some(responder),
                ),
                false => (upstream, None),
            };
            return match cx.fetch_stream(&upstream, body_from) {
                Ok(exchange) => {
                    self.waiting.insert(exchange, responder);
                    if request.header("x-cancel-after-head").is_some() {
                        self.cancel_after_head.insert(exchange);
                    }
                    if request.header("x-piece-into-pipe").is_some() {
                        self.piece_into_pipe.insert(exchange);
                    }
                    if request.header("x-relay").is_some() {
                        self.relay_down.insert(exchange, responder);
                    }
                    if request.header("x-pipe-late").is_some() {
                        self.pipe_late
                            .insert(exchange, (responder, Response::new(StatusCode::OK)));
                    }
                    let after = request.header("x-pipe-after").map(String::from_utf8_lossy);
                    if let Some(check) = after.and_then(|path| self.check(cx, &path)) {
                        self.checks.insert(check, Checked::Response(exchange));
                        self.paused_heads.insert(exchange, None);
                    }
                    Reply::Later
                }
                Err(e) => Reply::Now(Response::new(StatusCode::BAD_REQUEST).body(format!("{e}\n"))),
            };
        }
        let deadline = request.header("x-deadline-ms").and_then(|ms| {
            let ms = std::str::from_utf8(ms).ok()?.parse().ok()?;
            Some(Duration::from_millis(ms))
        });
        match cx.fetch(&upstream.body(request.body().to_vec())) {
            Ok(exchange) => {
                self.waiting.insert(exchange, responder);
                // A deadline past what an Instant holds is none.
                if let Some(at) = deadline.and_then(|after| cx.now().checked_add(after)) {
                    let timer = cx.set_timer(at);
                    self.deadlines.insert(timer, exchange);
                    self.deadline_of.insert(exchange, timer);
                }
                Reply::Later
            }
            Err(e) => Reply::Now(Response::new(StatusCode::BAD_REQUEST).body(format!("{e}\n"))),
        }
    }

    fn on_response(
        &mut self,
        exchange: ExchangeId,
        result: Result<ParsedResponse, ClientError>,
        cx: &mut Context<'_>,
    ) {
        if let Some(checked) = self.checks.remove(&exchange) {
            return match checked {
                Checked::Echo(responder, length) => {
                    cx.respond_with_request_body(responder, Response::new(StatusCode::OK), length)
                }
                Checked::Response(piped) => {
                    // Without a head yet, it is piped when that comes, unpaused.
                    if let Some(Some((responder, head, length))) = self.paused_heads.remove(&piped)
                    {
                        cx.respond_pipe(responder, head, length, piped)
                    }
                }
            };
        }
        if self.sent_on.remove(&exchange) {
            let outcome = match &result {
                Ok(head) => format!("sent:{}", head.status.as_u16()),
                Err(e) => format!("sent:{}", format!("{e:?}").to_lowercase()),
            };
            *self.ends.entry(outcome).or_default() += 1;
            return;
        }
        if let Some(timer) = self.deadline_of.remove(&exchange) {
            self.deadlines.remove(&timer);
            if !cx.cancel_timer(timer) {
                // Gone without firing: the loop lost it.
                *self.ends.entry("timer-lost".to_string()).or_default() += 1;
            }
        }
        let Some(responder) = self.waiting.remove(&exchange) else {
            return;
        };
        if result.is_err() {
            // No body to relay.
            self.relay_down.remove(&exchange);
        }
        let response = match result {
            Ok(upstream) if self.stream => {
                // The head now; the body follows through the loop.
                let length = content_length(
                    upstream
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_slice())),
                );
                let mut head = Response::new(upstream.status);
                for (name, value) in upstream.headers {
                    if !not_forwarded(&name) {
                        head = head.header(name, value);
                    }
                }
                if let Some(late) = self.pipe_late.get_mut(&exchange) {
                    late.1 = head;
                    return;
                }
                if let Some(waits) = self.paused_heads.get_mut(&exchange) {
                    cx.pause_response_body(exchange, true);
                    *waits = Some((responder, head, length));
                    return;
                }
                if self.relay_down.contains_key(&exchange) {
                    return cx.respond_stream(responder, head, length);
                }
                // The loop ends the pipe with the body, or cancels it when
                // the client goes.
                cx.respond_pipe(responder, head, length, exchange);
                if self.piece_into_pipe.remove(&exchange) {
                    cx.send_body(responder, bytes::Bytes::from_static(b"MIXED"));
                    cx.end_body(responder);
                }
                if self.cancel_after_head.remove(&exchange) {
                    cx.cancel(exchange);
                }
                return;
            }
            Ok(upstream) => {
                let mut response = Response::new(upstream.status);
                for (name, value) in upstream.headers {
                    if !not_forwarded(&name) {
                        response = response.header(name, value);
                    }
                }
                response.body(upstream.body)
            }
            Err(ClientError::Timeout(_) | ClientError::Queued(_)) => {
                Response::new(StatusCode::GATEWAY_TIMEOUT).body("upstream timed out\n")
            }
            Err(e) => Response::new(StatusCode::BAD_GATEWAY).body(format!("{e}\n")),
        };
        cx.respond(responder, response);
    }

    fn streams_request(&mut self, request: &Request<'_>) -> bool {
        self.stream
            || matches!(
                request.path(),
                "/_count"
                    | "/_relay_echo"
                    | "/_echo_late"
                    | "/_echo_after_end"
                    | "/_pipe_after_end"
                    | "/_send_and_answer"
                    | "/_echo_after_check"
            )
    }

    fn on_response_body(
        &mut self,
        exchange: ExchangeId,
        piece: bytes::Bytes,
        cx: &mut Context<'_>,
    ) {
        if let Some(&responder) = self.relay_down.get(&exchange) {
            cx.send_body(responder, piece);
            cx.pause_response_body(exchange, true);
            self.relay_paused.insert(responder, Some(exchange));
            return;
        }
        // Too late: the body has begun to come here.
        if let Some((responder, head)) = self.pipe_late.remove(&exchange) {
            cx.respond_pipe(responder, head, None, exchange);
        }
    }

    fn on_request_body(&mut self, responder: Responder, piece: bytes::Bytes, cx: &mut Context<'_>) {
        if self.relay_up.contains(&responder) {
            cx.send_body(responder, piece);
            cx.pause_request_body(responder, true);
            self.relay_paused.insert(responder, None);
            return;
        }
        if let Some(length) = self.late_echo.remove(&responder) {
            // The rest of the body follows this piece into the response,
            // moved by the loop (pieces of this same read included).
            cx.respond_with_request_body(responder, Response::new(StatusCode::OK), length);
            cx.send_body(responder, piece);
            return;
        }
        if let Some(n) = self.counting.get_mut(&responder) {
            *n += piece.len() as u64;
        }
    }

    fn on_request_end(
        &mut self,
        responder: Responder,
        result: Result<(), edgepoll::http::BodyError>,
        cx: &mut Context<'_>,
    ) {
        if self.relay_up.remove(&responder) {
            self.relay_paused.remove(&responder);
            return match result {
                Ok(()) => cx.end_body(responder),
                // Broken off: the response is cut, chunked or not.
                Err(_) => cx.abort_body(responder),
            };
        }
        if self.late_echo.remove(&responder).is_some() {
            // A body that had no piece.
            return cx.respond(responder, Response::new(StatusCode::OK));
        }
        match self.after_end.remove(&responder) {
            Some(true) => {
                return cx.respond_with_request_body(responder, Response::new(StatusCode::OK), None)
            }
            Some(false) => {
                let Some((_, base)) = self.routes.first() else {
                    return cx.respond(responder, Response::new(StatusCode::NOT_FOUND));
                };
                let request = ClientRequest::to_origin("POST", base, "/")
                    .map(|r| r.streamed_body(None))
                    .map_err(|e| e.to_string());
                let answer = match request.map(|r| cx.fetch_stream(&r, Some(responder))) {
                    Ok(Ok(_)) => "sent\n".to_string(),
                    Ok(Err(e)) => format!("{e}\n"),
                    Err(e) => format!("{e}\n"),
                };
                return cx.respond(
                    responder,
                    Response::new(StatusCode::BAD_REQUEST).body(answer),
                );
            }
            None => {}
        }
        let Some(n) = self.counting.remove(&responder) else {
            // Told of an end twice, or of a body it never read.
            *self.ends.entry("unknown".to_string()).or_default() += 1;
            return;
        };
        let outcome = match result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("{e:?}").to_lowercase(),
        };
        *self.ends.entry(outcome).or_default() += 1;
        if result.is_ok() {
            cx.respond(
                responder,
                Response::new(StatusCode::OK).body(format!("bytes={n}\n")),
            );
        }
    }

    fn on_body_drained(&mut self, responder: Responder, cx: &mut Context<'_>) {
        match self.relay_paused.remove(&responder) {
            Some(Some(exchange)) => cx.pause_response_body(exchange, false),
            Some(None) => cx.pause_request_body(responder, false),
            None => self.generate(responder, cx),
        }
    }

    fn on_response_end(
        &mut self,
        exchange: ExchangeId,
        result: Result<(), ClientError>,
        cx: &mut Context<'_>,
    ) {
        // How a piped one ended, for the tests (a piped one is not in
        // relay_down).
        if let Err(e) = &result {
            eprintln!("forward_guest: a response ended: {e}");
        }
        // Broken off, the response is cut, chunked or not.
        if let Some(responder) = self.relay_down.remove(&exchange) {
            self.relay_paused.remove(&responder);
            match result {
                Ok(()) => cx.end_body(responder),
                Err(_) => cx.abort_body(responder),
            }
        }
    }

    /// A drain: the `/_generate` bodies still going end here, short of
    /// their length (so cut), instead of holding the shutdown open.
    fn on_drain(&mut self, cx: &mut Context<'_>) {
        for (responder, _) in self.generating.drain() {
            cx.end_body(responder);
        }
    }

    fn on_timer(&mut self, timer: TimerId, cx: &mut Context<'_>) {
        // Counted in `/_stats`: a timer fires once, never after it was
        // cancelled, and not before its time.
        if self.start == Some(timer) {
            self.started = true;
            return;
        }
        if let Some(responder) = self.disconnects.remove(&timer) {
            // Its end comes back through `on_abandoned`, which forgets it.
            return cx.disconnect(responder);
        }
        if let Some(responder) = self.answer_at.remove(&timer) {
            self.answered_by_timer.insert(responder);
            return cx.respond(responder, Response::new(StatusCode::OK).body("answered\n"));
        }
        let outcome = match self.deadlines.remove(&timer) {
            None => "timer-unknown",
            Some(_) if cx.now() < timer.at() => "timer-early",
            Some(exchange) => {
                self.deadline_of.remove(&exchange);
                if let Some(responder) = self.waiting.remove(&exchange) {
                    cx.cancel(exchange);
                    cx.respond(
                        responder,
                        Response::new(StatusCode::GATEWAY_TIMEOUT).body("deadline\n"),
                    );
                }
                "deadline"
            }
        };
        *self.ends.entry(outcome.to_string()).or_default() += 1;
    }

    fn on_start(&mut self, cx: &mut Context<'_>) {
        self.start = Some(cx.set_timer(cx.now()));
    }

    fn on_abandoned(&mut self, responder: Responder, cx: &mut Context<'_>) {
        if self.answered_by_timer.contains(&responder) {
            self.late_abandons += 1;
        }
        self.answer_at.retain(|timer, r| {
            let gone = *r == responder;
            if gone {
                cx.cancel_timer(*timer);
            }
            !gone
        });
        self.generating.remove(&responder);
        self.relay_up.remove(&responder);
        self.relay_paused.remove(&responder);
        self.relay_down.retain(|exchange, r| {
            let gone = *r == responder;
            if gone {
                cx.cancel(*exchange);
            }
            !gone
        });
        // The client is gone or got its 504: the upstream exchange stops too.
        let gone: Vec<ExchangeId> = self
            .waiting
            .iter()
            .filter(|(_, r)| **r == responder)
            .map(|(e, _)| *e)
            .collect();
        for exchange in gone {
            self.waiting.remove(&exchange);
            cx.cancel(exchange);
            if let Some(timer) = self.deadline_of.remove(&exchange) {
                self.deadlines.remove(&timer);
                cx.cancel_timer(timer);
            }
        }
    }
}

fn seconds(value: Option<String>, flag: &str) -> Result<Duration, String> {
    let text = value.ok_or(format!("{flag} needs a value"))?;
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or(format!("{flag}: not a positive number: {text}"))
}

fn run() -> Result<(), String> {
    let mut limits = Limits::default();
    let mut client = ClientOptions::default();
    let mut listen = None;
    let mut routes = Vec::new();
    let mut stream = false;
    let mut ws_echo = false;
    let mut stop_after = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--respond-timeout" => limits.respond_timeout = seconds(args.next(), &arg)?,
            "--stream" => stream = true,
            "--ws-echo" => ws_echo = true,
            "--idle-timeout" => limits.idle_timeout = seconds(args.next(), &arg)?,
            "--header-timeout" => limits.header_timeout = seconds(args.next(), &arg)?,
            "--response-timeout" => client.response_timeout = seconds(args.next(), &arg)?,
            "--stop-after" => {
                stop_after = Some(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--stop-after needs a number")?,
                )
            }
            "--max-per-origin" => {
                client.max_per_origin = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--max-per-origin needs a number")?
            }
            _ if !arg.contains('=') => {
                if listen.replace(arg).is_some() {
                    return Err("more than one listening address".into());
                }
            }
            _ => {
                let (prefix, base) = arg
                    .split_once('=')
                    .ok_or(format!("route {arg:?} is not PREFIX=ORIGIN"))?;
                let base = Url::parse(base).map_err(|e| format!("route {arg:?}: {e}"))?;
                if base.path != "/" {
                    return Err(format!(
                        "route {arg:?}: the upstream must be an origin (scheme, host, port), without a path"
                    ));
                }
                routes.push((prefix.to_string(), base));
            }
        }
    }
    routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    let addr = listen
        .ok_or("usage: forward_guest [OPTIONS] ADDR PREFIX=ORIGIN... (ORIGIN: http://host:port)")?;
    let addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let listener =
        edgepoll::net::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let shown = edgepoll::net::local_addr(&listener).unwrap_or(addr);
    println!("listening on {shown}");
    let options = ServerOptions {
        limits,
        client,
        stop_after,
        ..ServerOptions::default()
    };
    if ws_echo {
        return Server::new(listener, options)
            .serve_websockets(WsEcho::default())
            .map_err(|e| format!("poll failed: {e}"));
    }
    let service = Forward {
        routes,
        waiting: HashMap::new(),
        stream,
        counting: HashMap::new(),
        ends: BTreeMap::new(),
        late_echo: HashMap::new(),
        cancel_after_head: HashSet::new(),
        piece_into_pipe: HashSet::new(),
        pipe_late: HashMap::new(),
        after_end: HashMap::new(),
        generating: HashMap::new(),
        sent_on: HashSet::new(),
        relay_down: HashMap::new(),
        relay_up: HashSet::new(),
        relay_paused: HashMap::new(),
        checks: HashMap::new(),
        paused_heads: HashMap::new(),
        deadlines: HashMap::new(),
        deadline_of: HashMap::new(),
        disconnects: HashMap::new(),
        answer_at: HashMap::new(),
        answered_by_timer: HashSet::new(),
        late_abandons: 0,
        start: None,
        started: false,
    };
    Server::new(listener, options)
        .serve_app(service)
        .map_err(|e| format!("poll failed: {e}"))
}

/// `--ws-echo`: WebSockets at the loop's default limits. On `/echo` each
/// message goes back to its sender, on `/all` to every connection, on
/// `/room/NAME` to each member of room NAME (`Outbox::send_to`). `/ticks`
/// is sent `tick N` at each tick of the service's own clock (every
/// `TICK`), with nothing else going on.
#[derive(Default)]
struct WsEcho {
    to_all: HashSet<edgepoll::Token>,
    rooms: HashMap<String, Vec<edgepoll::Token>>,
    room_of: HashMap<edgepoll::Token, String>,
    ticked: Vec<edgepoll::Token>,
    ticks: u64,
}

/// `--ws-echo`'s tick.
const TICK: Duration = Duration::from_millis(50);

impl edgepoll::http::Service for WsEcho {
    fn call<'a>(&mut self, _: &Request<'a>) -> Response<'a> {
        Response::new(StatusCode::NOT_FOUND)
    }
}

impl edgepoll::ws::Service for WsEcho {
    fn accepts(&mut self, request: &Request<'_>) -> bool {
        matches!(request.path(), "/echo" | "/all" | "/ticks")
            || request.path().starts_with("/room/")
    }

    fn on_open(&mut self, peer: edgepoll::Token, target: &str, _: Option<&str>, _: &mut Outbox) {
        if target.starts_with("/all") {
            self.to_all.insert(peer);
        } else if target.starts_with("/ticks") {
            self.ticked.push(peer);
        } else if let Some(room) = target.strip_prefix("/room/") {
            self.rooms.entry(room.to_string()).or_default().push(peer);
            self.room_of.insert(peer, room.to_string());
        }
    }

    fn on_message(&mut self, from: edgepoll::Token, message: Message<'_>, out: &mut Outbox) {
        if let Some(room) = self.room_of.get(&from) {
            let members = self.rooms.get(room).map_or(&[][..], Vec::as_slice);
            return out.send_to(members, message);
        }
        match self.to_all.contains(&from) {
            true => out.broadcast(message),
            false => out.send(from, message),
        }
    }

    fn on_close(&mut self, peer: edgepoll::Token, _: &mut Outbox) {
        self.to_all.remove(&peer);
        self.ticked.retain(|member| *member != peer);
        if let Some(room) = self.room_of.remove(&peer) {
            if let Some(members) = self.rooms.get_mut(&room) {
                members.retain(|member| *member != peer);
                if members.is_empty() {
                    self.rooms.remove(&room);
                }
            }
        }
    }

    fn tick(&self) -> Option<Duration> {
        Some(TICK)
    }

    fn on_tick(&mut self, _: std::time::Instant, out: &mut Outbox) {
        self.ticks += 1;
        out.send_to(&self.ticked, Message::Text(&format!("tick {}", self.ticks)));
    }
}

pub fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("forward_guest: {message}");
            ExitCode::from(2)
        }
    }
}
