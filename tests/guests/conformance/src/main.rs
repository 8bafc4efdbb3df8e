//! Conformance cases for a WasmEdge-compatible runtime. Each subcommand runs one
//! case on loopback and prints `key=value` facts; the test asserts them, and
//! expects the same facts from `wasmedge` and `edgepoll-host`.

#[cfg(target_os = "wasi")]
mod cases;
#[cfg(target_os = "wasi")]
mod names;

#[cfg(target_os = "wasi")]
fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    if let Err(e) = cases::run(&case) {
        println!("failed={e}");
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("conformance_guest runs on wasm32-wasip1 only");
    std::process::exit(2);
}
