//! The proxy as an [`App`] on edgepoll's loop: each request is sent on to
//! an upstream through the loop's pooled client, its body streamed as it
//! arrives, and the upstream's response streamed back. A request that
//! offers to switch protocols (a WebSocket handshake) is offered on to the
//! upstream; if it answers 101, the loop joins the two connections into a
//! tunnel and moves their bytes unchanged both ways.

use crate::balancer::{Balancer, Ticket};
use crate::config::Config;
use crate::forwarded;
use edgepoll::http::{ParsedResponse, Reply, Request, Response, ResponseError, StatusCode};
use edgepoll::{App, ClientError, ClientRequest, Context, ExchangeId, RequestError, Responder};
use rustc_hash::FxHashMap;

pub struct Proxy {
    balancer: Balancer,
    trust_forwarded: bool,
    /// Each exchange with an upstream, from its request to the end of its
    /// response's body: one map entry for its whole life.
    exchanges: FxHashMap<ExchangeId, Exchange>,
    /// The exchange each request waits on for its response head (one at a
    /// time: a retry's replaces the one that failed), so that a request
    /// whose client left is found without a look at every exchange, which
    /// would make a burst of n departures cost n² steps.
    waiting_on: FxHashMap<Responder, ExchangeId>,
}

enum Exchange {
    /// Waiting for the upstream's response head.
    Waiting(Waiting),
    /// A response whose body the loop pipes to the client: the request's
    /// ticket at its upstream, given back when the body is through (and
    /// naming the upstream if it breaks off).
    Piped(Ticket),
}

struct Waiting {
    responder: Responder,
    upstream: Ticket,
    /// The upstreams tried so far, a bit each.
    tried: u64,
    /// The request again, for another upstream if this one cannot be
    /// reached, when it may go again (its body whole, not streamed): kept,
    /// not copied, once the client has encoded it. Nothing of it reached
    /// the upstream then, so its method does not matter (as nginx's
    /// `proxy_next_upstream`). Boxed: the entry then stays within 64 bytes,
    /// which a wasm32 build moves without a `memory.copy` (a call into the
    /// runtime under WasmEdge's AOT code).
    again: Option<Box<ClientRequest>>,
    /// A HEAD request: its answer has no body, whatever its fields say.
    to_head: bool,
}

impl Proxy {
    pub fn new(config: &Config) -> Proxy {
        Proxy {
            balancer: Balancer::new(
                config.upstreams.clone(),
                config.eject_for,
                // A probe out longer than its failure could take is moving
                // bytes: as long as the clients' own wait for an answer
                // (see main.rs), which covers a connect and a handshake or
                // two and a silence, each timed.
                config
                    .eject_for
                    .max(2 * (config.connect_timeout + config.timeout)),
                config.max_per_upstream,
            ),
            trust_forwarded: config.trust_forwarded,
            exchanges: FxHashMap::default(),
            waiting_on: FxHashMap::default(),
        }
    }

    fn log(&self, ticket: Ticket, what: &str) {
        edgepoll::log_to_stderr(&format!(
            "proxy: upstream {}: {what}",
            self.balancer.upstream(ticket.upstream).url
        ));
    }

    /// Sends `request` to an upstream not in `tried`; says why not if none.
    fn send<'r>(
        &mut self,
        responder: Responder,
        build: impl FnOnce(&edgepoll::Url) -> Result<ClientRequest, Response<'r>>,
        streams_body: bool,
        tried: u64,
        cx: &mut Context<'_>,
    ) -> Result<(), Response<'r>> {
        let picked = self.balancer.pick(cx.now(), tried);
        if self.balancer.take_revived() {
            edgepoll::log_to_stderr("proxy: every upstream was ejected: all are tried again");
        }
        // Only a retry finds none (`pick` takes every upstream back for a
        // first try): the failure before it was logged, with its upstream.
        let Some(ticket) = picked else {
            return Err(text(StatusCode::BAD_GATEWAY, "no upstream available\n"));
        };
        let request = match build(&self.balancer.upstream(ticket.upstream).url) {
            Ok(request) => request,
            Err(answer) => {
                self.balancer.done(ticket, cx.now());
                return Err(answer);
            }
        };
        // A tunnel does not pass through TLS: to an https:// upstream the
        // request goes without its offer, and the answer (not a 101) is the
        // client's. The offer stays with the request kept for a retry,
        // which may go to a plain upstream.
        let stripped;
        let sent = match request.url().tls && request.offers_upgrade() {
            true => {
                stripped = request.clone().without_upgrade();
                &stripped
            }
            false => &request,
        };
        let body_from = streams_body.then_some(responder);
        match cx.fetch_stream(sent, body_from) {
            Ok(exchange) => {
                let tried = tried | bit(ticket.upstream);
                let to_head = request.method() == "HEAD";
                let waiting = Waiting {
                    responder,
                    upstream: ticket,
                    tried,
                    again: (!streams_body).then(|| Box::new(request)),
                    to_head,
                };
                self.exchanges.insert(exchange, Exchange::Waiting(waiting));
                self.waiting_on.insert(responder, exchange);
                Ok(())
            }
            Err(e) => {
                self.balancer.done(ticket, cx.now());
                Err(text(StatusCode::BAD_REQUEST, format!("{e}\n")))
            }
        }
    }

    /// A 101 from `upstream`: to WebSocket, the only protocol the proxy
    /// passes an offer of on, the two connections are joined into a tunnel
    /// (the loop answers 502 instead where this request made no offer); to
    /// any other, it is garbage.
    fn switch(
        &mut self,
        exchange: ExchangeId,
        response: ParsedResponse,
        responder: Responder,
        upstream: Ticket,
        cx: &mut Context<'_>,
    ) {
        let now = cx.now();
        // Only to the protocol offered (RFC 9110 §7.8); the
        // connection the application does not take closes. Such an
        // answer is garbage, as any other would be.
        let Some(protocol) = response.header("upgrade").and_then(websocket_offer) else {
            let ejected = self.balancer.failed(upstream, now);
            let also = if ejected {
                "; left out for a while"
            } else {
                ""
            };
            self.log(
                upstream,
                &format!("101 to a protocol not offered; answered 502{also}"),
            );
            let answer = text(StatusCode::BAD_GATEWAY, "bad answer from upstream\n");
            return cx.respond(responder, answer);
        };
        // A tunnel may last for ever: it counts no longer.
        self.balancer.answered(upstream);
        self.balancer.done(upstream, now);
        let mut head = passed_on(response);
        head.append_header("Connection", "upgrade");
        head.append_header("Upgrade", protocol);
        cx.respond_tunnel(responder, head, exchange);
    }

    /// The exchange for `waiting` failed: logged, and tried on another
    /// upstream where nothing reached this one (or an idempotent request got
    /// no answer). Else answered by what the error says: 504 for a timeout,
    /// 411 for a body an HTTP/1.0 upstream cannot take without a length,
    /// 503 for an answer memory could not hold, 502 for the rest; or by what a retry's `send` refused with.
    fn failed(&mut self, waiting: Waiting, error: ClientError, cx: &mut Context<'_>) {
        let (upstream, now) = (waiting.upstream, cx.now());
        if !blames_upstream(&error) {
            self.balancer.done(upstream, now);
            match error {
                // The client's doing, not the upstream's.
                ClientError::Abandoned => {
                    self.log(upstream, "the client left or its request body broke off")
                }
                _ => self.log(upstream, &error.to_string()),
            }
        } else if self.balancer.failed(upstream, now) {
            self.log(upstream, &format!("{error}; left out for a while"));
        } else {
            self.log(upstream, &error.to_string());
        }
        // Nothing reached the upstream: another may take it. Not one that
        // waited its whole timeout for a free connection (`Queued`): queued
        // again at the next, it would wait as long again for its 504.
        let unsent = matches!(
            error,
            ClientError::Refused
                | ClientError::Connect(_)
                | ClientError::ConnectTimeout(_)
                | ClientError::Resolve { .. }
                | ClientError::TlsHandshake(_)
        );
        // Sent, and the connection closed or reset before the response's
        // head was whole (nothing but a 1xx has gone to the client): an
        // idempotent request may go again (RFC 9110 §9.2.2), to another
        // upstream, as nginx's `proxy_next_upstream error` sends it. Not a
        // POST, which the upstream may have acted on, and not after a
        // timeout, which would double the client's wait for its 504.
        let unanswered = matches!(error, ClientError::Closed | ClientError::Reset)
            && waiting
                .again
                .as_ref()
                .is_some_and(|again| idempotent(again.method()));
        if let (true, Some(again)) = (unsent || unanswered, waiting.again) {
            // With its offer, if any: `send` leaves it out for TLS.
            let retried = self.send(
                waiting.responder,
                |base| Ok(again.with_origin(base)),
                false,
                waiting.tried,
                cx,
            );
            match retried {
                Ok(()) => return,
                Err(answer) if answer.status() != StatusCode::BAD_GATEWAY => {
                    return cx.respond(waiting.responder, answer);
                }
                Err(_) => {}
            }
        }
        let answer = match error {
            e if e.is_timeout() => text(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"),
            // Memory this side had not: the upstream is not at fault.
            ClientError::BadResponse(ResponseError::NoMemory) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no memory free for the upstream's answer\n",
            ),
            ClientError::BadResponse(_) => {
                text(StatusCode::BAD_GATEWAY, "bad answer from upstream\n")
            }
            // Nothing was sent: the body may come again with a length.
            ClientError::Request(RequestError::LengthRequired) => text(
                StatusCode::LENGTH_REQUIRED,
                "the upstream speaks HTTP/1.0: send the body with a Content-Length\n",
            ),
            // Reached, and then the connection broke off.
            ClientError::Reset | ClientError::Closed | ClientError::IdleClosed => text(
                StatusCode::BAD_GATEWAY,
                "the upstream closed the connection before its answer was whole\n",
            ),
            _ => text(StatusCode::BAD_GATEWAY, "upstream unreachable\n"),
        };
        cx.respond(waiting.responder, answer);
    }
}

/// Whether a request by `method` may be sent again: its effect is the
/// same however many times it is made (RFC 9110 §9.2.2).
fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// Whether `error` says the upstream is failing. Not when its connections
/// were all busy the whole time (it is slow or saturated, and nothing was
/// sent), its idle timeout met a request that cannot go again, the client
/// left or its body broke off, the request could not be written, or this
/// side had no descriptor or port to connect with, or no memory to hold
/// the answer.
fn blames_upstream(error: &ClientError) -> bool {
    !(error.is_local()
        || matches!(
            error,
            ClientError::Queued(_)
                | ClientError::IdleClosed
                | ClientError::Abandoned
                | ClientError::Request(_)
                | ClientError::BadResponse(ResponseError::NoMemory)
        ))
}

fn bit(upstream: usize) -> u64 {
    1u64.checked_shl(upstream as u32).unwrap_or(0)
}

/// The methods the proxy takes on to its upstreams, as its `Allow` field
/// says them: the standard ones but TRACE and CONNECT (RFC 9110 §9, and
/// PATCH). Extension methods go on too, but no list can name them all.
const ALLOWED: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

/// The answer to an OPTIONS request whose `Max-Forwards` reached 0 here,
/// as its final recipient (RFC 9110 §7.6.2, §9.3.7).
fn final_recipient<'r>() -> Response<'r> {
    Response::new(StatusCode::OK).header("Allow", ALLOWED)
}

/// The answer to TRACE, which would echo the request back, cookies and
/// all, to any script that asks: refused, as nginx refuses it. A 405 names
/// what is allowed (RFC 9110 §15.5.6).
fn trace_refused<'r>() -> Response<'r> {
    text(
        StatusCode::METHOD_NOT_ALLOWED,
        "TRACE is not answered here\n",
    )
    .header("Allow", ALLOWED)
}

/// `websocket`, if `protocols` (an `Upgrade` field) offers it.
fn websocket_offer(protocols: &[u8]) -> Option<&'static [u8]> {
    let offered = protocols
        .split(|&b| b == b',')
        .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"websocket"));
    offered.then_some(b"websocket")
}

fn text<'r>(status: StatusCode, body: impl Into<String>) -> Response<'r> {
    Response::new(status)
        .header("Content-Type", "text/plain")
        .body(body.into())
}

/// The head of an upstream's response as the proxy passes it on: its
/// status, its end-to-end fields (moved, not copied) and `Via`. One that
/// came without `Date` gets the loop's (`ServerOptions::date`, on by
/// default: RFC 9110 §6.6.1 asks a proxy with a clock to add one).
fn passed_on(response: ParsedResponse) -> Response<'static> {
    let mut head = Response::new(response.status);
    let (fields, via) = forwarded::response_fields(response.headers, response.version);
    for (name, value) in fields {
        head.append_header(name, value);
    }
    head.append_header("Via", via);
    head
}

impl App for Proxy {
    fn call<'a>(
        &mut self,
        request: &Request<'a>,
        responder: Responder,
        cx: &mut Context<'_>,
    ) -> Reply<'a> {
        // Bodies over `stream_above` stream through; smaller ones come whole
        // and go in the request's one write.
        let streams_body = request.body_streams();
        // `Upgrade` is hop-by-hop: offered on only as a real offer (see
        // `Request::upgrade`) to WebSocket, and otherwise dropped with the
        // others. Any other protocol, tunnelled, would pass the proxy by:
        // h2c would carry requests it never sees (as nginx passes
        // `Upgrade` only when told to).
        let upgrade = request
            .upgrade()
            .and_then(|mut offered| offered.find_map(websocket_offer));
        let method = request.method();
        if method == "TRACE" {
            return Reply::Now(trace_refused());
        }
        if forwarded::came_back(request.headers()) {
            edgepoll::log_to_stderr(
                "proxy: a request came back to this proxy (its Via names it): a loop of proxies; answered 508",
            );
            let answer = text(
                StatusCode::LOOP_DETECTED,
                "this request came back to the proxy that passed it on (a loop of proxies)\n",
            );
            return Reply::Now(answer);
        }
        // TRACE is gone, so only OPTIONS counts hops here.
        if forwarded::max_forwards(method, request.headers()) == Some(0) {
            return Reply::Now(final_recipient());
        }
        let forwarding = forwarded::Forwarding::of(request, self.trust_forwarded);
        let build = |base: &edgepoll::Url| {
            let upstream = (forwarding.request(request, base))
                .map_err(|e| text(StatusCode::BAD_REQUEST, format!("{e}\n")))?;
            Ok(match (streams_body, upgrade) {
                (true, _) => upstream.streamed_body(request.body_length()),
                (false, Some(protocols)) => upstream.upgrade(protocols),
                (false, _) if request.body().is_empty() => upstream,
                (false, _) => upstream.body(request.body().to_vec()),
            })
        };
        match self.send(responder, build, streams_body, 0, cx) {
            Ok(()) => Reply::Later,
            Err(answer) => Reply::Now(answer),
        }
    }

    fn streams_request(&mut self, _: &Request<'_>) -> bool {
        // Asked only of bodies over `Limits::stream_above` (see main.rs).
        true
    }

    fn on_response(
        &mut self,
        exchange: ExchangeId,
        result: Result<ParsedResponse, ClientError>,
        cx: &mut Context<'_>,
    ) {
        // The entry stays, as the pipe's, when the response's body follows
        // (the common case: one lookup, not a removal and an insertion).
        let Some(entry) = self.exchanges.get_mut(&exchange) else {
            return;
        };
        let Exchange::Waiting(Waiting { upstream, .. }) = *entry else {
            return;
        };
        let Exchange::Waiting(waiting) = std::mem::replace(entry, Exchange::Piped(upstream)) else {
            return;
        };
        self.waiting_on.remove(&waiting.responder);
        match result {
            Ok(response) if response.status == StatusCode::SWITCHING_PROTOCOLS => {
                self.exchanges.remove(&exchange);
                self.switch(exchange, response, waiting.responder, upstream, cx);
            }
            Ok(response) => {
                let now = cx.now();
                if let Some(why) = forwarded::unpassable(&response, waiting.to_head) {
                    self.exchanges.remove(&exchange);
                    // A status past 599 is garbage, as a 101 not offered
                    // is: a failure. A transfer coding this side cannot
                    // pass on is its own limit: the upstream answered.
                    let ejected = match response.status.as_u16() > 599 {
                        true => self.balancer.failed(upstream, now),
                        false => {
                            self.balancer.answered(upstream);
                            self.balancer.done(upstream, now);
                            false
                        }
                    };
                    let also = match ejected {
                        true => "; left out for a while",
                        false => "",
                    };
                    self.log(upstream, &format!("{why}; answered 502{also}"));
                    // Its body is not read on: a connection still carrying
                    // it closes; one whose response came whole is back in
                    // the pool, nothing of it left.
                    cx.cancel(exchange);
                    let answer = text(StatusCode::BAD_GATEWAY, "bad answer from upstream\n");
                    return cx.respond(waiting.responder, answer);
                }
                self.balancer.answered(upstream);
                let length = response.content_length();
                let head = passed_on(response);
                cx.respond_pipe(waiting.responder, head, length, exchange);
            }
            Err(error) => {
                self.exchanges.remove(&exchange);
                self.failed(waiting, error, cx);
            }
        }
    }

    fn on_interim(&mut self, exchange: ExchangeId, response: ParsedResponse, cx: &mut Context<'_>) {
        // A proxy passes interim responses on (RFC 9110 §15.2), as any
        // head: its hop-by-hop fields left behind, `Via` added. (`100
        // Continue` never comes here: the proxy answers `Expect` itself.)
        if let Some(Exchange::Waiting(waiting)) = self.exchanges.get(&exchange) {
            cx.respond_interim(waiting.responder, passed_on(response));
        }
    }

    fn on_response_end(
        &mut self,
        exchange: ExchangeId,
        result: Result<(), ClientError>,
        cx: &mut Context<'_>,
    ) {
        let Some(Exchange::Piped(upstream)) = self.exchanges.remove(&exchange) else {
            return;
        };
        // Through or broken off, the response no longer keeps a connection
        // of the upstream's busy. Broken off by the upstream (reset, closed
        // or garbled mid-body), it failed as it would have before its head:
        // answering heads and dying in every body is no health. Not a body
        // quiet past the timeout: a stream or a long poll may be, from a
        // healthy upstream (nginx counts no failure after the head at all).
        let now = cx.now();
        let e = match result {
            Ok(()) | Err(ClientError::Abandoned) => return self.balancer.done(upstream, now),
            Err(e) => e,
        };
        let ejected = match blames_upstream(&e) && !matches!(e, ClientError::Timeout(_)) {
            true => self.balancer.failed(upstream, now),
            false => {
                self.balancer.done(upstream, now);
                false
            }
        };
        let also = if ejected {
            "; left out for a while"
        } else {
            ""
        };
        self.log(
            upstream,
            &format!("response broke off: {e}; client connection closed{also}"),
        );
    }

    fn on_abandoned(&mut self, responder: Responder, cx: &mut Context<'_>) {
        // The client left or got its 504: the upstream exchange stops too.
        // (One whose response head came is a pipe: the loop ends it.)
        let Some(exchange) = self.waiting_on.remove(&responder) else {
            return;
        };
        let Some(Exchange::Waiting(waiting)) = self.exchanges.get(&exchange) else {
            return;
        };
        let upstream = waiting.upstream;
        self.exchanges.remove(&exchange);
        self.balancer.done(upstream, cx.now());
        cx.cancel(exchange);
    }
}
