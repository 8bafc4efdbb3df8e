//! A mutation fuzzer for edgepoll's protocol state machines, on stable Rust.
//!
//! `cargo fuzz` needs a nightly toolchain, which machines here cannot fetch, so
//! this is a small self-contained fuzzer. It mutates a corpus per target (byte
//! flips, protocol-shaped tokens, splices, cuts) and checks, for every input:
//! no panic; output that is well-formed for the protocol; and, for the
//! targets fed a byte stream (`http`, `streamed`, `response`, `relayed`,
//! `ws`, `handshake`), the
//! same outcome whether fed whole, split at a random offset or in random
//! small pieces. (`deferred` plays its input as a script whose steps cut
//! what is sent and read; the others' inputs are whole by nature: a
//! datagram, a request to build, a head to rewrite.) The targets take turns:
//!
//! - `http`: requests into the HTTP/1.1 [`Handler`](edgepoll::http::Handler)
//!   (and its chunked and response decoders), CONNECT taken by the service
//!   and its 2xx never sent;
//! - `deferred`: a service answering that handler later, in any order,
//!   whole or streamed, while the client reads a little at a time and the
//!   clock moves: output held when worth it and never long, every body
//!   whole and in order, each request given up told once, 504s on time and
//!   no 408 early, memory bounded by what waits to be sent and may be read;
//! - `streamed`: request bodies the service takes in pieces as they
//!   arrive, paused and resumed around every read: each body handed over
//!   is what a strict reader written out afresh decodes from the input;
//! - `response`: what a server sends into the
//!   [`ResponseParser`](edgepoll::http::ResponseParser), whose result a
//!   forwarder must be able to pass on safely;
//! - `relayed`: the same bytes read by the client's connection whole and
//!   streamed (as examples/proxy relays an upstream's answer): the two
//!   agree, and a response refused whole is never passed on streamed;
//! - `client`: requests built by the [`ClientRequest`](edgepoll::ClientRequest)
//!   from any method, URL, fields and body, read back by the server's parser;
//! - `ws`: client frames into a [`WebSocket`](edgepoll::ws::WebSocket) (and
//!   the frame header reader on its own);
//! - `handshake`: requests answered by the WebSocket opening handshake,
//!   checked against RFC 6455 §4.2 written out afresh;
//! - `dns`: datagrams into the resolver's reading of an answer to its query
//!   (through the `fuzzing` feature's hooks);
//! - `intermediary`: requests and responses through examples/proxy's
//!   rewriting of what it passes on (hop-by-hop fields, `Via`,
//!   `X-Forwarded-*`, `Max-Forwards`), checked against rules written out
//!   afresh.
//!
//! Each target also names outcomes a run must reach (statuses, refusals,
//! limits): a target that ran 20 000 inputs and missed one fails the run,
//! so that a change that makes every input bounce off early (a generator
//! that no longer gets past a parser's first line, say) cannot pass
//! unnoticed. A run goes on past its time until every target has run
//! that many (a slow machine's short run is checked as fully as a fast
//! one's), and fails if one has not within [`MOST_EXTRA`] more.
//!
//! A failing input is written to `fuzz/crashes/`, printed escaped (to
//! replay from a log), and the run exits 1; add such inputs to the unit
//! tests. An input that takes more than 10 s (a state machine that never
//! stops wanting to write, say) is a failure too: a watchdog prints it
//! (not saved: the run is stuck in it) and ends the run, so that a hang
//! fails it instead of holding it.
//!
//! `cargo run --release -p edgepoll-fuzz --bin edgepoll-fuzz -- [--seconds N] [--seed N]`
//! (`src/bin/host_imports.rs` is the other fuzzer: edgepoll-host's imports.)

mod client;
mod deferred;
mod dns;
mod handshake;
mod http;
mod intermediary;
mod relayed;
mod response;
mod streamed;
mod ws;

use edgepoll_fuzz::{Reached, Rng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Inputs grow no larger than this.
const MAX_INPUT: usize = 4096;

/// One state machine under test.
pub struct Target {
    name: &'static str,
    /// Valid inputs to start mutating from.
    seeds: Vec<Vec<u8>>,
    /// Protocol-shaped byte strings to splice in.
    tokens: &'static [&'static [u8]],
    /// Single bytes worth trying in place of another.
    bytes: &'static [u8],
    /// Checks one input, marking what it reached; `Err` describes a failure.
    check: fn(&[u8], &mut Rng, &mut Reached) -> Result<(), String>,
    /// What a run of [`MIN_INPUTS_FOR_REACH`] inputs or more must reach.
    must_reach: &'static [&'static str],
}

/// Inputs a target must have run before its `must_reach` is checked: a
/// short run (a few seconds) may not get to the rarer outcomes.
const MIN_INPUTS_FOR_REACH: u64 = 20_000;

/// How long a run may go on past its time for its targets to reach
/// [`MIN_INPUTS_FOR_REACH`] (each takes seconds here).
const MOST_EXTRA: Duration = Duration::from_secs(300);

/// The ways one input is cut for feeding: whole, in two at a random offset,
/// and in random pieces of 1 to 7 bytes. A correct state machine gives the
/// same outcome for each.
pub fn cuts<'a>(input: &'a [u8], rng: &mut Rng) -> [Vec<&'a [u8]>; 3] {
    let split = rng.below(input.len() + 1);
    let mut pieces = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(7));
        pieces.push(&rest[..n]);
        rest = &rest[n..];
    }
    [vec![input], vec![&input[..split], &input[split..]], pieces]
}

/// Takes every `100 Continue` out of a server's output (whether one goes
/// depends on whether a body came with its head, so on the cut); whether
/// there was one.
pub fn without_continues(out: &mut Vec<u8>) -> bool {
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut continued = false;
    while let Some(i) = out.windows(interim.len()).position(|w| w == interim) {
        out.drain(i..i + interim.len());
        continued = true;
    }
    continued
}

fn mutate(rng: &mut Rng, target: &Target, input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(input.len() + 1);
        match rng.below(8) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = target.bytes[rng.below(target.bytes.len())];
            }
            2 => {
                let token = target.tokens[rng.below(target.tokens.len())];
                input.splice(at..at, token.iter().copied());
            }
            3 if !input.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            4 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(32)).min(input.len());
                let piece = input[start..end].to_vec();
                input.splice(at..at, piece);
            }
            // A piece repeated: inputs grow past the limits (a body, a
            // head, a message) that the other mutations never reach.
            6 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(32)).min(input.len());
                let piece = input[start..end].repeat(1 + rng.below(128));
                input.splice(at..at, piece);
            }
            5 => {
                let other = &target.seeds[rng.below(target.seeds.len())];
                let from = rng.below(other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => input.truncate(at),
        }
    }
    input.truncate(MAX_INPUT);
}

/// The input being checked (when it began, its target, its bytes), watched
/// by a thread that fails the run, with the input, once one has taken 10 s.
fn watchdog(seed: u64) -> Arc<Mutex<(Instant, &'static str, Vec<u8>)>> {
    let current = Arc::new(Mutex::new((Instant::now(), "", Vec::new())));
    let watched = Arc::clone(&current);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let Ok(current) = watched.lock() else {
            continue;
        };
        let (began, name, input) = &*current;
        if began.elapsed() > Duration::from_secs(10) {
            println!(
                "FAILED ({name}, seed {seed}): an input did not finish within 10 s\ninput: b\"{}\"",
                input.escape_ascii()
            );
            std::process::exit(1);
        }
    });
    current
}

fn main() {
    let (seconds, seed) = edgepoll_fuzz::options("edgepoll-fuzz");
    let targets = [
        http::target(),
        deferred::target(),
        streamed::target(),
        response::target(),
        relayed::target(),
        client::target(),
        ws::target(),
        handshake::target(),
        dns::target(),
        intermediary::target(),
    ];
    let names: Vec<_> = targets.iter().map(|t| t.name).collect();
    println!("fuzzing {} for {seconds} s (seed {seed})", names.join(", "));
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = vec![0u64; targets.len()];
    let mut reached: Vec<Reached> = targets.iter().map(|_| Reached::default()).collect();
    let current = watchdog(seed);
    let mut turn = 0;
    loop {
        let now = Instant::now();
        let short = |n: &u64| *n < MIN_INPUTS_FOR_REACH;
        if now >= deadline && (!runs.iter().any(short) || now >= deadline + MOST_EXTRA) {
            break;
        }
        // Past its time, only the targets still short of the inputs their
        // check needs.
        if now >= deadline && !short(&runs[turn % targets.len()]) {
            turn += 1;
            continue;
        }
        let target = &targets[turn % targets.len()];
        for _ in 0..100 {
            let mut input = target.seeds[rng.below(target.seeds.len())].clone();
            mutate(&mut rng, target, &mut input);
            if let Ok(mut current) = current.lock() {
                current.0 = Instant::now();
                current.1 = target.name;
                current.2.clear();
                current.2.extend_from_slice(&input);
            }
            let mut check_rng = Rng::new(rng.next_u64());
            let marks = &mut reached[turn % targets.len()];
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                (target.check)(&input, &mut check_rng, marks)
            }))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                Err(format!("panic: {}", what.unwrap_or_default()))
            });
            runs[turn % targets.len()] += 1;
            if let Err(problem) = outcome {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crashes");
                let _ = std::fs::create_dir_all(&dir);
                let n: u64 = runs.iter().sum();
                let file = dir.join(format!("crash-{}-{seed}-{n}.bin", target.name));
                let _ = std::fs::write(&file, &input);
                println!(
                    "FAILED ({}, seed {seed}) after {n} inputs: {problem}\ninput: b\"{}\"\nsaved to {}",
                    target.name,
                    input.escape_ascii(),
                    file.display()
                );
                std::process::exit(1);
            }
        }
        turn += 1;
    }
    let counts: Vec<_> = targets
        .iter()
        .zip(&runs)
        .map(|(t, n)| format!("{n} {} inputs", t.name))
        .collect();
    let mut missed = Vec::new();
    for ((target, &n), reached) in targets.iter().zip(&runs).zip(&reached) {
        let not = reached.missing(target.must_reach);
        match n >= MIN_INPUTS_FOR_REACH {
            true if !not.is_empty() => missed.push(format!("{}: {}", target.name, not.join(", "))),
            true => {}
            false => missed.push(format!(
                "{}: only {n} inputs in {} s, too few to check",
                target.name,
                seconds + MOST_EXTRA.as_secs()
            )),
        }
    }
    if !missed.is_empty() {
        println!(
            "FAILED (seed {seed}): outcomes never reached, or too few inputs to tell, in {}: {}",
            counts.join(", "),
            missed.join("; ")
        );
        std::process::exit(1);
    }
    println!(
        "{}, every outcome named reached, no failure",
        counts.join(", ")
    );
}
