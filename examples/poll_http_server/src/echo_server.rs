//! The program proper (wasm32-wasip1 only).

use edgepoll::{net, Server, ServerOptions};
use poll_http_server::Echo;
use std::process::ExitCode;
use std::time::Duration;

fn parse_args() -> Result<(String, ServerOptions), String> {
    let mut options = ServerOptions::default();
    let mut addr = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:1234".to_string());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--header-timeout" => options.limits.header_timeout = seconds(&value(&arg)?)?,
            "--idle-timeout" => options.limits.idle_timeout = seconds(&value(&arg)?)?,
            "--max-body" => {
                let v = value(&arg)?;
                options.limits.max_body_bytes = v
                    .parse()
                    .map_err(|_| format!("--max-body: not a number: {v}"))?;
            }
            // Under WasmEdge AOT with thousands of idle connections: see
            // `ServerOptions::peek_quiet`.
            "--peek-quiet" => options.peek_quiet = true,
            // For benchmarks: answer N requests, then exit.
            "--exit-after" => {
                let v = value(&arg)?;
                options.stop_after = Some(
                    v.parse()
                        .map_err(|_| format!("--exit-after: not a number: {v}"))?,
                );
            }
            "-h" | "--help" => return Err(String::new()),
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ => addr = arg,
        }
    }
    Ok((addr, options))
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or(format!("not a positive number of seconds: {text}"))
}

pub fn main() -> ExitCode {
    let (addr, options) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("poll_http_server: {message}");
            }
            eprintln!("usage: poll_http_server [ADDR] [--header-timeout SECS] [--idle-timeout SECS] [--max-body BYTES] [--peek-quiet] [--exit-after REQUESTS]");
            return ExitCode::from(2);
        }
    };
    let Ok(addr) = addr.parse() else {
        eprintln!("poll_http_server: {addr:?} is not an address like 127.0.0.1:1234 or [::1]:1234");
        return ExitCode::from(2);
    };
    let listener = match net::bind(addr) {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!("poll_http_server: cannot listen on {addr}: the port is already in use");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("poll_http_server: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shown = net::local_addr(&listener).unwrap_or(addr);
    println!("listening on {shown}");
    let echo = Echo {
        max_body: options.limits.max_body_bytes as u64,
    };
    // Streamed (chunked) bodies are held to the same limit as whole ones.
    let mut options = options;
    options.limits.max_stream_bytes = echo.max_body;
    // Small bodies are not even offered for streaming: one compare each.
    options.limits.stream_above = poll_http_server::STREAM_ABOVE;
    if let Err(e) = Server::new(listener, options).serve_app(echo) {
        eprintln!("poll_http_server: event loop failed: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
