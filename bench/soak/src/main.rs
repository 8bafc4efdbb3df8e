//! `make soak`'s load generator: a million requests from one mio event loop,
//! bodies from 0 B to 8 MiB, Content-Length and chunked uploads,
//! `Expect: 100-continue`, pipelined bursts, HTTP/1.0 and 1.1, up to 1000
//! connections at once, and misbehaving clients mixed in. Every response body
//! is compared byte for byte with the request's.
//!
//! Usage: `soak ADDR [--seed N] [--requests N] [--peak N] [--idle-timeout S]
//! [--header-timeout S] [--upstream-failures [--failures-from N]]` (the
//! timeouts are the server's, for checking the faults' answers;
//! `--upstream-failures` when the server is a proxy one of whose upstreams
//! is made to fail once N requests are done: its 502s, 503s, 504s and
//! connections cut mid-request from then on, and for a minute from the
//! first, are counted, not errors, and their requests are lost, not
//! retried; any at another time is an error; a wrong byte is still a
//! mismatch). Prints `warmup {json}` when the warm-up is over,
//! `progress {json}` every 2 s and `RESULT {json}` at the end; exits 1 with
//! the seed and the first failure when anything went wrong.

mod conn;
mod fault;
mod plan;
mod rng;
mod work;

use conn::{Conn, Status};
use fault::{Fault, Timeouts, KINDS};
use mio::{Events, Interest, Poll, Token};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use work::{Failure, Work};

/// Faults start at these fractions of the run, one of each kind.
const FAULT_MARKS: [f64; 5] = [0.0, 0.15, 0.4, 0.6, 0.8];
const FAULT_TOKEN: usize = 1 << 30;
/// The run fails if no request completes for this long.
const STALL: Duration = Duration::from_secs(60);

struct Options {
    addr: SocketAddr,
    seed: u64,
    requests: u64,
    peak: usize,
    timeouts: Timeouts,
    upstream_failures: bool,
    /// Requests done before the upstream is restarted: no upstream failure
    /// is expected before (`--failures-from`).
    failures_from: u64,
}

fn parse() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().ok_or("missing ADDR")?;
    let mut options = Options {
        addr: addr
            .parse()
            .map_err(|_| format!("not an address: {addr}"))?,
        seed: 0,
        requests: 1_000_000,
        peak: 1000,
        timeouts: Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        },
        upstream_failures: false,
        failures_from: 0,
    };
    let mut seed = None;
    while let Some(flag) = args.next() {
        if flag == "--upstream-failures" {
            options.upstream_failures = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--seed" => {
                seed = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("--seed: not a number: {value}"))?,
                )
            }
            "--requests" => options.requests = number(&value)? as u64,
            "--failures-from" => options.failures_from = number(&value)? as u64,
            "--peak" => options.peak = number(&value)? as usize,
            "--idle-timeout" => options.timeouts.idle = Duration::from_secs_f64(number(&value)?),
            "--header-timeout" => {
                options.timeouts.header = Duration::from_secs_f64(number(&value)?)
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    options.seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
    });
    Ok(options)
}

/// How many connections to keep open: the peak through the warm-up (the
/// first 30%), down to a fifth of it at 50%, up to the peak again at 75% and
/// down to a fifth at the end.
fn target(options: &Options, progress: f64) -> usize {
    let low = options.peak / 5;
    let ramp = if progress < 0.3 {
        1.0
    } else if progress < 0.5 {
        (0.5 - progress) / 0.2
    } else if progress < 0.75 {
        (progress - 0.5) / 0.25
    } else {
        (1.0 - progress) / 0.25
    };
    low + ((options.peak - low) as f64 * ramp) as usize
}

fn main() {
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}\nusage: soak ADDR [--seed N] [--requests N] [--peak N] [--idle-timeout S] [--header-timeout S] [--upstream-failures [--failures-from N]]");
            std::process::exit(2);
        }
    };
    println!("seed {}", options.seed);
    eprintln!(
        "soak: {} requests to {}, seed {} (replay with --seed {})",
        options.requests, options.addr, options.seed, options.seed
    );
    match run(&options) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("soak: {e} (seed {})", options.seed);
            std::process::exit(1);
        }
    }
}

fn run(options: &Options) -> std::io::Result<i32> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut work = Work::new(options.seed, options.requests);
    work.upstream_failures_expected = options.upstream_failures;
    work.failures_from = options.failures_from;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut open = 0usize;
    let mut next_conn = 0u64;
    let mut faults: Vec<Fault> = Vec::new();
    let mut marks = FAULT_MARKS.iter().peekable();
    let mut buf = vec![0u8; 256 << 10];
    let started = Instant::now();
    let mut last_report = started;
    let mut last_completed = (0u64, started);
    // Faults answered by the failing upstream (`--upstream-failures`).
    let mut faults_upstream = 0;
    // The warm-up: the first 30% of requests and two rounds of faults,
    // so that it meets every kind of memory use the run has.
    let warmup = options.requests * 3 / 10;
    let mut warm = false;

    loop {
        let progress = work.tally.completed as f64 / options.requests.max(1) as f64;
        // Open connections up to the wanted number; ask extra ones to finish.
        let wanted = target(options, progress);
        while open < wanted && work.available() {
            let plan = plan::ConnPlan::of(options.seed, next_conn);
            let mut stream = mio::net::TcpStream::connect(options.addr)?;
            let slot = free.pop().unwrap_or_else(|| {
                conns.push(None);
                conns.len() - 1
            });
            poll.registry().register(
                &mut stream,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            conns[slot] = Some(Conn::new(next_conn, stream, plan));
            next_conn += 1;
            open += 1;
            work.tally.connections += 1;
        }
        if open > wanted {
            let mut surplus = open - wanted;
            for conn in conns.iter_mut().flatten().filter(|c| !c.wind_down) {
                if surplus == 0 {
                    break;
                }
                conn.wind_down = true;
                surplus -= 1;
            }
        }
        work.tally.peak_connections = work.tally.peak_connections.max(open);
        while marks.peek().is_some_and(|&&m| progress >= m) {
            marks.next();
            for (i, kind) in KINDS.iter().enumerate() {
                let mut fault = Fault::start(
                    *kind,
                    options.addr,
                    options.seed ^ (faults.len() + i) as u64,
                )?;
                if let Some(stream) = fault.stream.as_mut() {
                    poll.registry().register(
                        stream,
                        Token(FAULT_TOKEN + faults.len()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                }
                faults.push(fault);
            }
        }

        let faults_left = faults.iter().filter(|f| f.outcome.is_none()).count();
        if open == 0 && !work.available() && faults_left == 0 && marks.peek().is_none() {
            break;
        }
        if open == 0 && !work.available() && faults_left == 0 {
            // Out of requests before the last marks (a short run): start them now.
            while marks.next().is_some() {}
        }

        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        // Wind-down connections that are idle finish without an event.
        let mut ready: Vec<usize> = events.iter().map(|e| e.token().0).collect();
        ready.extend(
            conns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.as_ref().is_some_and(|c| c.wind_down))
                .map(|(i, _)| i),
        );
        for token in ready {
            if token >= FAULT_TOKEN {
                continue;
            }
            let Some(conn) = conns.get_mut(token).and_then(Option::as_mut) else {
                continue;
            };
            match conn.drive(&mut work, &mut buf) {
                Status::Open => {}
                Status::Done | Status::Failed => {
                    if let Some(mut conn) = conns[token].take() {
                        let _ = poll.registry().deregister(&mut conn.stream);
                    }
                    free.push(token);
                    open -= 1;
                }
            }
        }
        for fault in faults.iter_mut().filter(|f| f.outcome.is_none()) {
            fault.drive(&options.timeouts, &mut buf);
            if let Some(outcome) = &fault.outcome {
                // Closed now: a reset mid-body goes out now, during the
                // load, not when the run ends.
                if let Some(mut stream) = fault.stream.take() {
                    let _ = poll.registry().deregister(&mut stream);
                }
                match outcome {
                    Ok(text) => eprintln!("soak: fault {:?}: {text}", fault.kind),
                    Err(text) => {
                        // A fault's request that met the failing upstream.
                        let gateway = ["HTTP/1.1 502 ", "HTTP/1.1 503 ", "HTTP/1.1 504 "]
                            .iter()
                            .any(|status| text.contains(status));
                        if gateway && options.upstream_failures {
                            faults_upstream += 1;
                        }
                        let text = format!("fault {text}");
                        work.fail(match gateway {
                            true => Failure::Gateway(text),
                            false => Failure::Error(text),
                        });
                    }
                }
            }
        }

        let now = Instant::now();
        if work.tally.completed != last_completed.0 {
            last_completed = (work.tally.completed, now);
        } else if now - last_completed.1 > STALL && (open > 0 || work.available()) {
            let waiting: Vec<String> = conns
                .iter()
                .flatten()
                .filter_map(Conn::waiting_on)
                .take(3)
                .collect();
            work.fail(Failure::Error(format!(
                "no request completed for {STALL:?} with {open} connections open, waiting on: {}",
                waiting.join("; ")
            )));
            break;
        }
        if !warm
            && work.tally.completed >= warmup
            && faults.len() >= 2 * KINDS.len()
            && faults[..2 * KINDS.len()]
                .iter()
                .all(|f| f.outcome.is_some())
        {
            warm = true;
            println!("warmup {}", summary(&work, started, open));
        }
        if now - last_report >= Duration::from_secs(2) {
            last_report = now;
            println!("progress {}", summary(&work, started, open));
        }
        if work.tally.mismatches + work.tally.errors >= 100 {
            eprintln!("soak: 100 failures; stopping");
            break;
        }
    }

    let faults_ok = faults
        .iter()
        .filter(|f| matches!(f.outcome, Some(Ok(_))))
        .count();
    let t = &mut work.tally;
    t.latencies_us.sort_unstable();
    let pct = |p: f64| {
        t.latencies_us
            .get(
                ((t.latencies_us.len() as f64 * p) as usize)
                    .min(t.latencies_us.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or(0)
    };
    let result = format!(
        "{{\"seed\": {}, \"requests\": {}, \"completed\": {}, \"bytes_echoed\": {}, \"mismatches\": {}, \"errors\": {}, \"requests_lost\": {}, \"upstream_failures\": {}, \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}, \"seconds\": {:.1}, \"connections\": {}, \"peak_connections\": {}, \"chunked\": {}, \"expect\": {}, \"http10\": {}, \"bursts\": {}, \"faults\": {}, \"faults_ok\": {}, \"first_failure\": {}}}",
        options.seed,
        options.requests,
        t.completed,
        t.bytes_echoed,
        t.mismatches,
        t.errors,
        t.requests_lost,
        t.upstream_failures,
        pct(0.5),
        pct(0.99),
        t.latencies_us.last().copied().unwrap_or(0),
        started.elapsed().as_secs_f64(),
        t.connections,
        t.peak_connections,
        t.chunked,
        t.expect,
        t.http10,
        t.bursts,
        faults.len(),
        faults_ok,
        t.first_failure.as_deref().map_or("null".to_string(), json_string),
    );
    println!("RESULT {result}");
    // Requests lost to a failing upstream are accounted for, not done.
    let accounted = match options.upstream_failures {
        true => t.completed + t.requests_lost,
        false => t.completed,
    };
    // An upstream restarted once costs the requests in flight to it, and
    // those sent before it is left out: a few, never a share of the run
    // (a proxy that kept cutting connections would otherwise pass).
    let lost_at_most = (options.requests / 100).max(100);
    let few_lost = t.requests_lost <= lost_at_most && t.upstream_failures <= lost_at_most;
    if !few_lost {
        eprintln!(
            "soak: {} requests lost to {} upstream failures: more than the {lost_at_most} one restart may cost",
            t.requests_lost, t.upstream_failures
        );
    }
    let ok = t.mismatches == 0
        && t.errors == 0
        && few_lost
        && accounted == options.requests
        && faults_ok + faults_upstream == faults.len();
    if !ok {
        eprintln!(
            "soak: FAILED (seed {}; replay with --seed {}): {} of {} requests done, {} mismatches, {} errors; first: {}",
            options.seed,
            options.seed,
            t.completed,
            options.requests,
            t.mismatches,
            t.errors,
            t.first_failure.as_deref().unwrap_or("requests left undone")
        );
    }
    Ok(if ok { 0 } else { 1 })
}

fn summary(work: &Work, started: Instant, open: usize) -> String {
    let t = &work.tally;
    format!(
        "{{\"completed\": {}, \"bytes_echoed\": {}, \"open\": {open}, \"errors\": {}, \"mismatches\": {}, \"seconds\": {:.1}}}",
        t.completed,
        t.bytes_echoed,
        t.errors,
        t.mismatches,
        started.elapsed().as_secs_f64()
    )
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
