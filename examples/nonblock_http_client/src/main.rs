//! Sends HTTP requests over several connections at once, waiting on `Poll`.
//!
//! Usage: `nonblock_http_client [-X METHOD] [-d DATA] [-H 'Name: value']...
//! [--timeout SECS] [URL...]`. Without a URL it sends two POSTs to
//! `http://127.0.0.1:1234/`. Exits 1 if any request failed.

#[cfg(target_os = "wasi")]
mod client;

#[cfg(target_os = "wasi")]
fn main() -> std::process::ExitCode {
    client::main()
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("nonblock_http_client is a concurrent HTTP client for WasmEdge: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
