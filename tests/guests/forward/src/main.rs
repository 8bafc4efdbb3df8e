//! A service that waits: each request is forwarded to an upstream through
//! the loop's own client, and answered with what the upstream said.
//!
//! Usage: `forward_guest [--stream] [--respond-timeout SECS] [--response-timeout SECS]
//! [--idle-timeout SECS] [--header-timeout SECS] [--max-per-origin N] [--stop-after N]
//! ADDR ROUTE...`
//! (in any order), a ROUTE being `PREFIX=http://HOST:PORT`:
//! the longest prefix of the request's path picks the upstream. `--stream`
//! moves bodies both ways piece by piece (any size, memory bounded by the
//! loop's backlog limit) instead of whole. `POST /_count` has its body read
//! by the service itself, piece by piece, and answered with its length.
//! `GET /_stats` answers with what the service holds (`waiting=N pages=N
//! live=N counting=N`), how `/_count` bodies ended (`ends=ok:N,...`),
//! for the tests that look for leaks, and whether the timer `on_start`
//! set has fired (`started=1`). `GET /_generate_then_disconnect?MS`
//! streams without end and drops its client after MS milliseconds. `POST /_echo_after_check` pauses its
//! body and echoes it once `GET /delay/200/check` is answered; with
//! `--stream`, a request with `X-Pipe-After: PATH` has its response paused
//! at its head and piped once `GET PATH` is answered. `--ws-echo` serves WebSockets
//! instead, at the loop's default limits: `/echo` sends each message back,
//! `/all` to every connection, `/room/NAME` to the room's members; `/ticks`
//! is sent `tick N` every 50 ms. `--stop-after N` drains after N requests;
//! the drain ends the `/_generate` bodies still going (cut short), and a
//! `/_generate` taken after it began gets 503.

#[cfg(target_os = "wasi")]
mod forward;

#[cfg(target_os = "wasi")]
fn main() -> std::process::ExitCode {
    forward::main()
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("forward_guest runs on wasm32-wasip1 only");
    std::process::exit(2);
}
