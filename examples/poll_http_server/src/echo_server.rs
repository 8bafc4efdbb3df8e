//! The program proper (wasm32-wasip1 only).

use edgepoll::{net, Server, ServerOptions};
use poll_http_server::config::{self, Command};
use poll_http_server::Echo;
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let listen = std::env::var_os("LISTEN").map(|v| v.to_string_lossy().into_owned());
    let parsed =
        example_args::utf8().and_then(|args| config::parse(args.into_iter(), listen.clone()));
    let config = match parsed {
        Ok(Command::Help) => {
            print!("{}", config::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(config)) => config,
        Err(message) => {
            eprintln!("poll_http_server: {message}");
            return ExitCode::from(2);
        }
    };
    let addr = config.addr;
    let options = ServerOptions {
        limits: config.limits,
        peek_quiet: config.peek_quiet,
        stop_after: config.exit_after,
        ..ServerOptions::default()
    };
    let addr = match example_args::listen_addr(&addr, listen.as_deref()) {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("poll_http_server: {message}");
            return ExitCode::from(2);
        }
    };
    let listener = match net::bind(addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "poll_http_server: {}",
                example_args::cannot_listen(addr, &e)
            );
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
