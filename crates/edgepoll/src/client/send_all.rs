//! Many requests at once on a loop of their own: every connection opens
//! without blocking and one [`Poll`](crate::Poll) waits for all of them. No
//! busy loop: while nothing is ready, the program sleeps in the runtime.

use super::{ClientError, ClientOptions, ClientRequest, ExchangeId};
use crate::app::{Context, Responder};
use crate::dns::{resolver, Lookup, ResolveError, Resolved};
use crate::http::{ParsedResponse, Reply, Request, Response, StatusCode};
use crate::server::{Core, Driven};
use crate::timer::bounded;
use crate::ServerOptions;
use rustc_hash::FxHashMap;
use std::time::{Duration, Instant};

/// Sends every request at once, each on its own connection, and waits for all
/// responses; each request gets `timeout` from the start. The call returns
/// within about a second after that: what is still open then is
/// [`ClientError::Timeout`], unless a timer of its own (its connect, its
/// handshake, its name's lookup) ends it meanwhile with its own reason. The same client
/// an [`App`](crate::App) uses, on a loop without a listener. At most
/// [`ClientOptions::max_connections`] (512) are open at once: past that,
/// requests wait their turn within the same `timeout`.
///
/// Results come back in the order of `requests`; a request that cannot be
/// sent as it is (a CR or LF in a field) fails with
/// [`ClientError::Request`] and nothing is sent for it.
///
/// ```
/// use edgepoll::{ClientError, ClientRequest, RequestError};
/// use std::time::Duration;
/// let bad = ClientRequest::new("GET", "http://127.0.0.1:8080/")
///     .unwrap()
///     .header("X-A", "a\r\nX-Injected: 1");
/// // Refused before any connection is made.
/// let results = edgepoll::send_all(&[bad], Duration::from_secs(5));
/// assert!(matches!(results[0], Err(ClientError::Request(RequestError::FieldValue(_)))));
/// ```
pub fn send_all(
    requests: &[ClientRequest],
    timeout: Duration,
) -> Vec<Result<ParsedResponse, ClientError>> {
    let each_its_own = ClientOptions {
        max_per_origin: usize::MAX,
        ..ClientOptions::default()
    };
    send_all_with(requests, timeout, &each_its_own)
}

/// [`send_all`] with the client's other settings (trusted CA certificates,
/// DNS server, and at most `base.max_per_origin` connections to one
/// origin, the other requests waiting their turn) taken from `base`; its
/// timeouts are `send_all`'s.
///
/// ```no_run
/// let options = edgepoll::ClientOptions {
///     ca_certificates: Some(std::fs::read("ca.pem").unwrap()),
///     ..Default::default()
/// };
/// let request = edgepoll::ClientRequest::new("GET", "https://localhost:8443/").unwrap();
/// let results = edgepoll::send_all_with(&[request], std::time::Duration::from_secs(5), &options);
/// ```
pub fn send_all_with(
    requests: &[ClientRequest],
    timeout: Duration,
    base: &ClientOptions,
) -> Vec<Result<ParsedResponse, ClientError>> {
    let mut results = Vec::with_capacity(requests.len());
    send_all_each(requests, timeout, base, |_, result| results.push(result));
    results
}

/// [`send_all_with`], handing each result to `each` with its request's
/// index, in the order of `requests`, as soon as it and every one before it
/// are in: a program can show (and drop) each response while later ones
/// are still coming, where `send_all_with` holds every body until the last.
/// `each` runs inside the loop: while it works (or blocks on a full pipe),
/// no other exchange moves, and the deadline runs on.
///
/// ```no_run
/// let requests = [
///     edgepoll::ClientRequest::new("GET", "http://127.0.0.1:1234/a").unwrap(),
///     edgepoll::ClientRequest::new("GET", "http://127.0.0.1:1234/b").unwrap(),
/// ];
/// let options = edgepoll::ClientOptions::default();
/// edgepoll::send_all_each(&requests, std::time::Duration::from_secs(5), &options, |i, result| {
///     match result {
///         Ok(response) => println!("{i}: {}", response.status.as_u16()),
///         Err(e) => eprintln!("{i}: {e}"),
///     }
/// });
/// ```
pub fn send_all_each(
    requests: &[ClientRequest],
    timeout: Duration,
    base: &ClientOptions,
    each: impl FnMut(usize, Result<ParsedResponse, ClientError>),
) {
    let mut core = client_core(ClientOptions {
        max_per_origin: requests.len().clamp(1, base.max_per_origin.max(1)),
        connect_timeout: timeout,
        response_timeout: timeout,
        dns_timeout: timeout.min(base.dns_timeout),
        ..base.clone()
    });
    let timeout = bounded(timeout);
    let started = Instant::now();
    let mut collect = Collect {
        results: (0..requests.len()).map(|_| None).collect(),
        index: FxHashMap::default(),
        open: 0,
        next: 0,
        each,
        deadline: Some((started + timeout, timeout)),
    };
    for (i, request) in requests.iter().enumerate() {
        match core.work.pool.submit(request, started, false) {
            Ok(id) => {
                collect.index.insert(id, i);
                collect.open += 1;
            }
            Err(e) => collect.results[i] = Some(Err(ClientError::Request(e))),
        }
    }
    collect.hand_on();
    let ran = core.run(
        &mut collect,
        None,
        Some(started + timeout + grace(timeout)),
        |_, c| c.open == 0,
    );
    // What is still open failed with the poll, or ran out of time.
    for i in collect.next..requests.len() {
        let result = collect.results[i].take().unwrap_or_else(|| match &ran {
            Err(e) => Err(ClientError::Io(std::io::Error::new(
                e.kind(),
                e.to_string(),
            ))),
            Ok(()) => Err(ClientError::Timeout(timeout)),
        });
        (collect.each)(i, result);
    }
}

/// The addresses of `host`, as the client would connect to them
/// ([`crate::dns`]): through the DNS server of `DNS_SERVER` on a loop of
/// its own, or through the runtime's resolver. The lookup through a DNS
/// server gets `timeout`; the runtime's takes what the host's resolver
/// takes. Each call has a resolver of its own: nothing is kept from one
/// to the next (a loop's client keeps answers for their TTL).
///
/// ```no_run
/// let addrs = edgepoll::dns::resolve("localhost", std::time::Duration::from_secs(5)).unwrap();
/// assert!(addrs[0].is_loopback());
/// ```
pub fn resolve(host: &str, timeout: Duration) -> Resolved {
    let options = ClientOptions {
        dns_timeout: timeout,
        ..ClientOptions::default()
    };
    resolve_with(host, &options)
}

/// [`resolve`] through `options.dns_server` (the runtime's resolver when
/// `None`), within `options.dns_timeout`.
///
/// ```no_run
/// let options = edgepoll::ClientOptions {
///     dns_server: Some("127.0.0.1:5353".parse().unwrap()),
///     ..Default::default()
/// };
/// let addrs = edgepoll::dns::resolve_with("echo.test", &options);
/// ```
pub fn resolve_with(host: &str, options: &ClientOptions) -> Resolved {
    let timeout = bounded(options.dns_timeout);
    let mut core = client_core(ClientOptions {
        dns_timeout: timeout,
        ..options.clone()
    });
    let started = Instant::now();
    if let Lookup::Ready(resolved) = core.work.pool.names.lookup(host, started) {
        return resolved;
    }
    core.work.pool.watched = Some((resolver::key_of(host), None));
    let mut idle = Collect {
        results: Vec::new(),
        index: FxHashMap::default(),
        open: 0,
        next: 0,
        each: |_: usize, _: Result<ParsedResponse, ClientError>| {},
        deadline: None,
    };
    let done = |core: &Core, _: &_| matches!(core.work.pool.watched, Some((_, Some(_))));
    // A generous bound: the resolver ends the lookup at its timeout.
    let ran = core.run(&mut idle, None, Some(started + timeout * 2), done);
    match (ran, core.work.pool.watched.take()) {
        (_, Some((_, Some(resolved)))) => resolved,
        (Err(e), _) => Err(ResolveError::Unreachable(e.to_string())),
        (Ok(()), _) => Err(ResolveError::Timeout(timeout)),
    }
}

/// How long the loop runs past `timeout`: each exchange's own timers (set
/// when it connected, a little after the start) end it with its own reason
/// (no handshake in time, no answer from the DNS server) within this.
fn grace(timeout: Duration) -> Duration {
    (timeout / 2).min(Duration::from_secs(1))
}

/// Hands the results on in request order.
struct Collect<F> {
    /// Results in, not yet handed on (those before `next` were).
    results: Vec<Option<Result<ParsedResponse, ClientError>>>,
    index: FxHashMap<ExchangeId, usize>,
    open: usize,
    next: usize,
    each: F,
    /// When the requests' time is up, and how long that was: a response
    /// that completes after it (in the grace the loop runs on for the
    /// exchanges' own reasons to fail) is a timeout, so that no request
    /// takes longer than it was given and succeeds.
    deadline: Option<(Instant, Duration)>,
}

impl<F: FnMut(usize, Result<ParsedResponse, ClientError>)> Collect<F> {
    /// Hands on every result that is in and has all before it in.
    fn hand_on(&mut self) {
        while let Some(result) = self.results.get_mut(self.next).and_then(Option::take) {
            (self.each)(self.next, result);
            self.next += 1;
        }
    }
}

impl<F: FnMut(usize, Result<ParsedResponse, ClientError>)> Driven for Collect<F> {
    fn call<'a>(&mut self, _: &Request<'a>, _: Responder, _: &mut Context<'_>) -> Reply<'a> {
        Reply::Now(Response::new(StatusCode::NOT_FOUND))
    }

    fn on_response(
        &mut self,
        exchange: ExchangeId,
        result: Result<ParsedResponse, ClientError>,
        cx: &mut Context<'_>,
    ) {
        if let Some(&i) = self.index.get(&exchange) {
            let result = match (result, self.deadline) {
                (Ok(_), Some((deadline, timeout))) if cx.now() > deadline => {
                    Err(ClientError::Timeout(timeout))
                }
                (result, _) => result,
            };
            self.results[i] = Some(result);
            self.open -= 1;
            self.hand_on();
        }
    }
}

/// Sends one request and hands its response body to `write` piece by piece
/// as it arrives, never holding it whole: a body of any size in bounded
/// memory (a file written this way grows as the body comes). Returns the
/// response's head (its body empty). `timeout` bounds each wait (to
/// resolve, to connect to each address tried, for each next byte). The
/// head, interim (1xx) responses and all, is whole within the longest
/// those waits may take before it (the lookup, a connect to each of the
/// four addresses tried at most, a TLS handshake) and `timeout` more, from
/// the start, however slowly it comes: a request body that takes longer
/// to send counts against it. The body is not bounded as a whole: a large
/// one that keeps coming takes as long as it takes.
///
/// ```no_run
/// use std::io::Write;
/// let request = edgepoll::ClientRequest::new("GET", "http://127.0.0.1:1234/big").unwrap();
/// let mut file = std::fs::File::create("big.bin").unwrap();
/// let head = edgepoll::download(&request, std::time::Duration::from_secs(60), |piece| file.write_all(piece));
/// ```
pub fn download(
    request: &ClientRequest,
    timeout: Duration,
    write: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<ParsedResponse, ClientError> {
    download_with(request, timeout, &ClientOptions::default(), write)
}

/// [`download`] with the client's other settings taken from `base`, as
/// [`send_all_with`] does.
///
/// ```no_run
/// use std::io::Write;
/// let options = edgepoll::ClientOptions {
///     ca_certificates: Some(std::fs::read("ca.pem").unwrap()),
///     ..Default::default()
/// };
/// let request = edgepoll::ClientRequest::new("GET", "https://localhost:8443/big").unwrap();
/// let mut file = std::fs::File::create("big.bin").unwrap();
/// let timeout = std::time::Duration::from_secs(60);
/// let head = edgepoll::download_with(&request, timeout, &options, |piece| file.write_all(piece));
/// ```
pub fn download_with(
    request: &ClientRequest,
    timeout: Duration,
    base: &ClientOptions,
    write: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<ParsedResponse, ClientError> {
    let mut core = client_core(ClientOptions {
        connect_timeout: timeout,
        response_timeout: timeout,
        dns_timeout: timeout.min(base.dns_timeout),
        max_body_bytes: usize::MAX,
        ..base.clone()
    });
    let started = Instant::now();
    let mut download = Download {
        write,
        head: None,
        outcome: None,
    };
    let exchange = match core.work.pool.submit(request, started, true) {
        Ok(exchange) => exchange,
        Err(e) => return Err(ClientError::Request(e)),
    };
    let _ = exchange;
    // The head by its deadline (a server sending it a byte at a time would
    // keep every wait short), then no deadline for the body: the client's
    // own timers end every wait.
    let dns = timeout.min(base.dns_timeout);
    let handshake = match request.url().tls {
        true => timeout,
        false => Duration::ZERO,
    };
    // The connect timeout is the host's, over all its addresses.
    let waits = dns.saturating_add(timeout).saturating_add(handshake);
    let head_budget = waits.saturating_add(timeout);
    let head_by = started.checked_add(head_budget);
    let mut ran = core.run(&mut download, None, head_by, |_, d| {
        d.outcome.is_some() || d.head.is_some()
    });
    if ran.is_ok() && download.head.is_some() && download.outcome.is_none() {
        ran = core.run(&mut download, None, None, |_, d| d.outcome.is_some());
    }
    if let Err(e) = ran {
        return Err(ClientError::Io(e));
    }
    match (download.outcome, download.head) {
        (Some(Ok(())), Some(head)) => Ok(head),
        (Some(Err(e)), _) => Err(e),
        // The head's time ran out.
        _ => Err(ClientError::Timeout(head_budget)),
    }
}

/// Writes a streamed response body as it comes.
struct Download<W> {
    write: W,
    head: Option<ParsedResponse>,
    outcome: Option<Result<(), ClientError>>,
}

impl<W: FnMut(&[u8]) -> std::io::Result<()>> Driven for Download<W> {
    fn call<'a>(&mut self, _: &Request<'a>, _: Responder, _: &mut Context<'_>) -> Reply<'a> {
        Reply::Now(Response::new(StatusCode::NOT_FOUND))
    }

    fn on_response(
        &mut self,
        _: ExchangeId,
        result: Result<ParsedResponse, ClientError>,
        _: &mut Context<'_>,
    ) {
        match result {
            // A switch (an offer the request made): no body follows, and
            // the switched connection, which nothing here takes, closes.
            Ok(head) if head.status.as_u16() == 101 => {
                self.head = Some(head);
                self.outcome = Some(Ok(()));
            }
            Ok(head) => self.head = Some(head),
            Err(e) => self.outcome = Some(Err(e)),
        }
    }

    fn on_response_body(
        &mut self,
        exchange: ExchangeId,
        piece: bytes::Bytes,
        cx: &mut Context<'_>,
    ) {
        if self.outcome.is_some() {
            return;
        }
        if let Err(e) = (self.write)(&piece) {
            self.outcome = Some(Err(ClientError::Io(e)));
            cx.cancel(exchange);
        }
    }

    fn on_response_end(
        &mut self,
        _: ExchangeId,
        result: Result<(), ClientError>,
        _: &mut Context<'_>,
    ) {
        if self.outcome.is_none() {
            self.outcome = Some(result);
        }
    }
}

/// A loop for the client alone: `client` its options, and no server side
/// (so nothing to date).
fn client_core(client: ClientOptions) -> Core {
    Core::new(ServerOptions {
        client,
        date: false,
        ..ServerOptions::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_too_long_to_add_to_an_instant_means_none() {
        // `Duration::MAX` panicked when added to the start.
        assert!(send_all(&[], Duration::MAX).is_empty());
        let refused = ClientRequest::new("GET", "http://127.0.0.1:1/").unwrap();
        let got = send_all(std::slice::from_ref(&refused), Duration::MAX);
        assert!(matches!(&got[..], [Err(ClientError::Refused)]), "{got:?}");
        let got = download(&refused, Duration::MAX, |_| Ok(()));
        assert!(matches!(got, Err(ClientError::Refused)), "{got:?}");
    }

    #[test]
    fn resolve_with_asks_the_server_it_is_given() {
        let options = ClientOptions {
            // Nothing answers on the discard port.
            dns_server: Some("127.0.0.1:9".parse().unwrap()),
            dns_timeout: Duration::from_secs(3),
            ..ClientOptions::default()
        };
        // Asked there, not of the system's resolver (no such name, or a
        // failure of its own).
        let got = resolve_with("name.test", &options);
        assert!(
            matches!(
                got,
                Err(ResolveError::Unreachable(_) | ResolveError::Timeout(_))
            ),
            "{got:?}"
        );
        let got = resolve_with("localhost", &options);
        assert!(got.as_ref().is_ok_and(|a| a[0].is_loopback()), "{got:?}");
    }
}
