//! Sends HTTP requests over several connections at once, waiting on `Poll`.
//!
//! Usage: `nonblock_http_client [-X METHOD] [-d DATA | --data-binary DATA]
//! [-H 'Name: value']... [--timeout SECS] [-o FILE] [-i] [-v] [--cacert FILE]
//! [--parallel N] [--max-connections N] [URL...]`. `-d @FILE` sends FILE's
//! bytes without their line ends, `--data-binary @FILE` all of them, as
//! curl does (the runtime must preopen FILE's directory). `-i` prints each
//! response's header fields after its status line.
//! All URLs go at once, each on its own connection, or at most N at a time
//! to one origin with `--parallel N`, and at most 512 (`--max-connections`)
//! in all. URLs are
//! `http://` or `https://` (TLS in the guest; `--cacert FILE` trusts a
//! private CA's PEM certificates instead of the Mozilla roots, read through
//! a preopened directory). Without a URL it sends two
//! POSTs to `http://127.0.0.1:1234/`. `-v` tells on stderr the addresses each
//! host resolved to (names go to the DNS server in `DNS_SERVER`, `ip:port`,
//! when it is set, else to the runtime's resolver). `-o FILE` writes the body of one URL to FILE as
//! it arrives (any size, in bounded memory; the runtime must preopen FILE's
//! directory, e.g. `wasmedge --dir .:.`), through `FILE.part`, renamed to
//! FILE once a 2xx body is whole. `--timeout` (10 s) is each request's
//! time, or with `-o` the most a download waits for its next byte.
//! Redirects are not followed. Exits 1 if any request failed (with `-o`:
//! also a status other than 2xx or 304), 2 on bad arguments (a header that
//! could split the request among them).

#[cfg(target_os = "wasi")]
mod client;

// Small blocks recycled rather than paid for in dlmalloc each time (see
// edgepoll's `SmallBlockAlloc`).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOC: edgepoll::SmallBlockAlloc = edgepoll::SmallBlockAlloc::new();

#[cfg(target_os = "wasi")]
fn main() -> std::process::ExitCode {
    client::main()
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("nonblock_http_client is a concurrent HTTP client for WasmEdge: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
