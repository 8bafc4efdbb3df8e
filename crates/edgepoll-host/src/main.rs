//! `edgepoll-host`: runs `wasm32-wasip1` programs that use WasmEdge's socket
//! extension, on wasmtime. Same command line as `wasmedge`:
//! `edgepoll-host [--dir GUEST:HOST]... [--env NAME=VALUE]... MODULE.wasm [ARGS...]`.

// Top: the command line, loading and running, and the linker that wires
// the areas below to the guest's imports.
mod host;
mod linker;
mod runtime;

// Areas, each unaware of the others: WASI preview1, WasmEdge's sockets, polling.
mod poll;
mod sock;
mod wasi;

// Shared pieces at the bottom.
mod clock;
mod errno;
mod fd_table;
mod memory;

use runtime::Invocation;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: edgepoll-host [--dir GUEST:HOST]... [--env NAME=VALUE]... MODULE.wasm [ARGS...]";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Invocation, String> {
    let mut env = Vec::new();
    let mut dirs = Vec::new();
    loop {
        let Some(arg) = args.next() else {
            return Err("no module given".to_string());
        };
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f == "--dir" || f == "--env" => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "--env" => {
                let value = inline
                    .or_else(|| args.next())
                    .ok_or("--env needs NAME=VALUE")?;
                let (k, v) = value
                    .split_once('=')
                    .ok_or(format!("--env {value}: expected NAME=VALUE"))?;
                env.push((k.to_string(), v.to_string()));
            }
            "--dir" => {
                let value = inline
                    .or_else(|| args.next())
                    .ok_or("--dir needs GUEST::HOST")?;
                // GUEST::HOST, or WasmEdge's own GUEST:HOST, or one path for both.
                let (guest, host) = value
                    .split_once("::")
                    .or_else(|| value.split_once(':'))
                    .unwrap_or((&value, &value));
                dirs.push((guest.to_string(), PathBuf::from(host)));
            }
            "-h" | "--help" => return Err(String::new()),
            "--" => {
                let module = args.next().ok_or("no module given")?;
                return Ok(Invocation {
                    module: module.into(),
                    args: args.collect(),
                    env,
                    dirs,
                });
            }
            f if f.starts_with("--") => return Err(format!("unknown option {f}")),
            _ => {
                return Ok(Invocation {
                    module: arg.into(),
                    args: args.collect(),
                    env,
                    dirs,
                })
            }
        }
    }
}

fn main() -> ExitCode {
    let invocation = match parse(std::env::args().skip(1)) {
        Ok(i) => i,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("edgepoll-host: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match runtime::run(&invocation) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(message) => {
            eprintln!("edgepoll-host: {message}");
            ExitCode::from(if message.contains("trapped") { 134 } else { 2 })
        }
    }
}
