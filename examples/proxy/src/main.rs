//! A reverse proxy and load balancer on edgepoll: `proxy --listen ADDR
//! --upstream ADDR [--upstream ADDR]...` (`--help` says all). See
//! `config.rs` for the options, `balancer.rs` for the choice of upstream and
//! its health, `forwarded.rs` for what changes in the messages, and
//! `proxy.rs` for the service on the loop.

// Natively only the unit tests of the parts run: the service needs wasm.
#![cfg_attr(not(target_os = "wasi"), allow(dead_code))]

mod balancer;
mod config;
mod forwarded;
#[cfg(target_os = "wasi")]
mod proxy;

use std::process::ExitCode;

// Small blocks recycled rather than paid for in dlmalloc each time: a
// proxied request makes dozens (see edgepoll's `SmallBlockAlloc`).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOC: edgepoll::SmallBlockAlloc = edgepoll::SmallBlockAlloc::new();

fn main() -> ExitCode {
    let config = match example_args::utf8().and_then(|args| config::parse(args.into_iter())) {
        Ok(config::Command::Help) => {
            print!("{}", config::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(config::Command::Run(config)) => *config,
        Err(message) => {
            eprintln!("proxy: {message}");
            return ExitCode::from(2);
        }
    };
    // A --cacert file that cannot be read, or holds no certificate, is a
    // mistake on the command line (exit 2), as the client takes it; read
    // now, not at the first https:// request, which would eject every such
    // upstream.
    let ca_certificates = match config.cacert.as_deref().map(read_cacert).transpose() {
        Ok(pem) => pem,
        Err(message) => {
            eprintln!("proxy: {message}");
            return ExitCode::from(2);
        }
    };
    // So is a DNS_SERVER that is no address: the loop would otherwise ask
    // the runtime's blocking resolver for every name, after a warning.
    if let Err(message) = edgepoll::dns::server_from_env() {
        eprintln!("proxy: {message}");
        return ExitCode::from(2);
    }
    match serve(config, ca_certificates) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("proxy: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(target_os = "wasi")]
fn serve(config: config::Config, ca_certificates: Option<Vec<u8>>) -> Result<(), String> {
    use edgepoll::http::Limits;
    use edgepoll::{ClientOptions, Server, ServerOptions};

    let listener = edgepoll::net::bind(config.listen)
        .map_err(|e| example_args::cannot_listen(config.listen, &e))?;
    let upstreams: Vec<String> = config.upstreams.iter().map(|u| u.to_string()).collect();
    // The port bound, where `--listen` asked for any (port 0).
    let shown = edgepoll::net::local_addr(&listener).unwrap_or(config.listen);
    // Drawn now, and shown: the name a loop would bring back (see
    // `forwarded::own_name`).
    let name = forwarded::own_name();
    println!(
        "listening on {shown}, upstreams {}; named {name} in Via",
        upstreams.join(" ")
    );
    let mut options = ServerOptions {
        limits: Limits {
            // The upstream's own timeouts answer first (504 or 502): this
            // only catches what they cannot, with room for one retry.
            respond_timeout: 2 * (config.connect_timeout + config.timeout)
                + std::time::Duration::from_secs(1),
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            // A small body comes whole and leaves with its request head in
            // one write; a larger one streams through in bounded memory.
            stream_above: 64 * 1024,
            ..Limits::default()
        },
        client: ClientOptions {
            max_per_origin: config.max_per_upstream,
            connect_timeout: config.connect_timeout,
            response_timeout: config.timeout,
            ca_certificates,
            ..ClientOptions::default()
        },
        stop_after: config.exit_after,
        // `date` stays on, as by default: its own answers, the loop's
        // refusals and responses forwarded without one (RFC 9110 §6.6.1).
        ..ServerOptions::default()
    };
    if let Some(hold) = config.hold {
        options.hold_for_body = hold;
    }
    let service = proxy::Proxy::new(&config);
    Server::new(listener, options)
        .serve_app(service)
        .map_err(|e| format!("poll failed: {e}"))
}

#[cfg(not(target_os = "wasi"))]
fn serve(_: config::Config, _: Option<Vec<u8>>) -> Result<(), String> {
    Err("build for wasm32-wasip1 and run under WasmEdge or edgepoll-host".into())
}

/// The PEM file of `--cacert`, checked to hold a certificate webpki takes.
#[cfg(target_os = "wasi")]
fn read_cacert(path: &str) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| {
        format!("--cacert {path}: {e} (is its directory preopened, e.g. wasmedge --dir .:.?)")
    })?;
    edgepoll::tls::client_config(Some(&pem)).map_err(|e| format!("--cacert {path}: {e}"))?;
    Ok(pem)
}

#[cfg(not(target_os = "wasi"))]
fn read_cacert(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("--cacert {path}: {e}"))
}
