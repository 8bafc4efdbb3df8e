//! edgepoll's `Server` answering every request with the minimal server's
//! fixed response (see lib.rs): `make bench` runs it beside
//! `bench/minimal_server` under the WasmEdge interpreter. Takes ADDR and, for
//! counting, `--exit-after N`. For `make bench` only.

#[cfg(target_os = "wasi")]
fn main() -> std::process::ExitCode {
    use edgepoll::{net, Server, ServerOptions};
    use std::process::ExitCode;

    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:1238".into());
    let mut options = ServerOptions::default();
    if let (Some("--exit-after"), Some(n)) = (args.next().as_deref(), args.next()) {
        options.stop_after = n.parse().ok();
    }
    let probe = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
    if !fixed_server::answers_as_minimal_server(probe) {
        eprintln!("fixed_server: its response differs from the minimal server's");
        return ExitCode::FAILURE;
    }
    let Ok(addr) = addr.parse() else {
        eprintln!("fixed_server: {addr:?} is not an address");
        return ExitCode::from(2);
    };
    let listener = match net::bind(addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("fixed_server: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {addr}");
    match Server::new(listener, options).serve(fixed_server::fixed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fixed_server: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("fixed_server runs on wasm32-wasip1");
    std::process::exit(2);
}
