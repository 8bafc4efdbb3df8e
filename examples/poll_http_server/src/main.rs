//! An HTTP/1.1 echo server for WasmEdge: POST a body, get it back.
//!
//! Usage: `poll_http_server [ADDR] [--header-timeout SECS] [--idle-timeout SECS]
//! [--max-body BYTES] [--peek-quiet] [--exit-after REQUESTS]`; `--help` says
//! all (`config::HELP`). ADDR defaults to `$LISTEN`, then `127.0.0.1:1234`.

#[cfg(target_os = "wasi")]
mod echo_server;

#[cfg(target_os = "wasi")]
fn main() -> std::process::ExitCode {
    echo_server::main()
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("poll_http_server is an HTTP echo server for WasmEdge: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
