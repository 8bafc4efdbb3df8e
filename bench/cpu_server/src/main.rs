//! A service whose every answer costs fixed CPU: `--work N` rounds of a
//! mixing function over the request body (default 200 000, about 0.2 ms on
//! WasmEdge AOT here), answered with the result. With it, a benchmark shows
//! whether a second core is used: two of these behind examples/proxy
//! against one. Usage: `cpu_server ADDR [--work N]`. For `make bench` only.

/// `rounds` rounds of a 64-bit mix seeded by `body`: work the optimiser
/// cannot skip, as each round needs the last.
pub fn digest(body: &[u8], rounds: u64) -> u64 {
    let mut state = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    for round in 0..rounds {
        state ^= state >> 29;
        state = state.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ round;
    }
    state
}

#[cfg(target_os = "wasi")]
fn main() -> std::process::ExitCode {
    use edgepoll::http::{Request, Response, StatusCode};
    use edgepoll::{net, Server, ServerOptions};
    use std::process::ExitCode;

    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:1239".into());
    let rounds = match (args.next().as_deref(), args.next()) {
        (Some("--work"), Some(n)) => match n.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("cpu_server: --work: not a number: {n}");
                return ExitCode::from(2);
            }
        },
        _ => 200_000,
    };
    let Ok(addr) = addr.parse() else {
        eprintln!("cpu_server: {addr:?} is not an address");
        return ExitCode::from(2);
    };
    let listener = match net::bind(addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cpu_server: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {addr}");
    struct Work(u64);
    impl edgepoll::http::Service for Work {
        fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
            let text = format!("{:016x}\n", digest(request.body(), self.0));
            Response::new(StatusCode::OK).body(text)
        }
    }
    match Server::new(listener, ServerOptions::default()).serve(Work(rounds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cpu_server: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    println!("{:016x}", digest(b"check", 1000));
    eprintln!("cpu_server runs on wasm32-wasip1");
    std::process::exit(2);
}
