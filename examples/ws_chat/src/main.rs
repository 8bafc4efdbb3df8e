//! A WebSocket chat for WasmEdge: `GET /` serves the page, `/ws?name=NAME`
//! is the WebSocket; every message goes to everyone with its sender's name,
//! and joins and leaves are announced.
//!
//! Usage: `ws_chat [ADDR] [--allow-host NAME]... [--messages-per-second N]` (ADDR: default `$LISTEN`,
//! then `127.0.0.1:1234`; `--help` says all, `config::HELP`). A browser's page may open the chat under an IP
//! address or `localhost`, and under each NAME allowed (the name a browser
//! reaches it by, behind a proxy too): a page of any other name is refused,
//! whatever that name resolves to (DNS rebinding).

#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
mod chat;
#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
mod config;

// Small blocks recycled rather than paid for in dlmalloc each time (see
// edgepoll's `SmallBlockAlloc`).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOC: edgepoll::SmallBlockAlloc = edgepoll::SmallBlockAlloc::new();

#[cfg(target_os = "wasi")]
fn main() -> std::process::ExitCode {
    let listen = std::env::var_os("LISTEN").map(|v| v.to_string_lossy().into_owned());
    let parsed =
        example_args::utf8().and_then(|args| config::parse(args.into_iter(), listen.clone()));
    let (addr, allowed, messages_per_second) = match parsed {
        Ok(config::Command::Help) => {
            print!("{}", config::HELP);
            return std::process::ExitCode::SUCCESS;
        }
        Ok(config::Command::Run {
            addr,
            allowed_hosts,
            messages_per_second,
        }) => (addr, allowed_hosts, messages_per_second),
        Err(message) => {
            eprintln!("ws_chat: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let addr = match example_args::listen_addr(&addr, listen.as_deref()) {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("ws_chat: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match edgepoll::net::bind(addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("ws_chat: {}", example_args::cannot_listen(addr, &e));
            return std::process::ExitCode::from(1);
        }
    };
    // The port bound, where the address asked for any (port 0).
    let addr = edgepoll::net::local_addr(&listener).unwrap_or(addr);
    // A browser goes to an address, not to "any": loopback stands in for it.
    let mut page = addr;
    if addr.ip().is_unspecified() {
        page.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    println!("listening on {addr}; open http://{page}/ in two browser windows");
    let mut options = edgepoll::ServerOptions::default();
    // Chat-sized messages (1009 past them): each goes to every member,
    // whose queue may hold four of them before a slow reader is dropped
    // (its connection reset: a close frame would only queue behind them).
    options.ws_limits.max_message_bytes = chat::MAX_MESSAGE;
    let server = edgepoll::Server::new(listener, options);
    match server.serve_websockets(chat::Chat::new(allowed, messages_per_second)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws_chat: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("ws_chat is a WebSocket chat for WasmEdge: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
