//! Many requests at once on a loop of their own: every connection opens
//! without blocking and one [`Poll`](crate::Poll) waits for all of them. No
//! busy loop: while nothing is ready, the program sleeps in the runtime.

use super::{ClientError, ClientOptions, ClientRequest, ExchangeId};
use crate::app::{Context, Responder};
use crate::http::{ParsedResponse, Reply, Request, Response, StatusCode};
use crate::server::{Core, Driven};
use crate::ServerOptions;
use rustc_hash::FxHashMap;
use std::time::{Duration, Instant};

/// Sends every request at once, each on its own connection, and waits for all
/// responses; each request gets `timeout` from the start. The same client
/// an [`App`](crate::App) uses, on a loop without a listener.
///
/// Results come back in the order of `requests`; a request that cannot be
/// sent as it is (a CR or LF in a field) fails with
/// [`ClientError::Request`] and nothing is sent for it.
pub fn send_all(
    requests: &[ClientRequest],
    timeout: Duration,
) -> Vec<Result<ParsedResponse, ClientError>> {
    let options = ServerOptions {
        client: ClientOptions {
            max_per_origin: requests.len().max(1),
            connect_timeout: timeout,
            response_timeout: timeout,
            ..ClientOptions::default()
        },
        ..ServerOptions::default()
    };
    let mut core = Core::new(options);
    let started = Instant::now();
    let mut collect = Collect {
        results: (0..requests.len()).map(|_| None).collect(),
        index: FxHashMap::default(),
        open: 0,
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
    let ran = core.run(&mut collect, None, Some(started + timeout), |_, c| {
        c.open == 0
    });
    if let Err(e) = ran {
        // The poll itself failed: every request still open fails with it.
        for result in collect.results.iter_mut().filter(|r| r.is_none()) {
            *result = Some(Err(ClientError::Io(std::io::Error::new(
                e.kind(),
                e.to_string(),
            ))));
        }
    }
    collect
        .results
        .into_iter()
        .map(|r| r.unwrap_or(Err(ClientError::Timeout(timeout))))
        .collect()
}

/// Gathers the results in request order.
struct Collect {
    results: Vec<Option<Result<ParsedResponse, ClientError>>>,
    index: FxHashMap<ExchangeId, usize>,
    open: usize,
}

impl Driven for Collect {
    fn call<'a>(&mut self, _: &Request<'a>, _: Responder, _: &mut Context<'_>) -> Reply<'a> {
        Reply::Now(Response::new(StatusCode::NOT_FOUND))
    }

    fn handles_connect(&self) -> bool {
        false
    }

    fn on_response(
        &mut self,
        exchange: ExchangeId,
        result: Result<ParsedResponse, ClientError>,
        _: &mut Context<'_>,
    ) {
        if let Some(&i) = self.index.get(&exchange) {
            self.results[i] = Some(result);
            self.open -= 1;
        }
    }

    fn on_abandoned(&mut self, _: Responder, _: &mut Context<'_>) {}
}
