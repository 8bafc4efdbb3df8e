//! `wasi:logging/logging`'s `log`, wired to the guest's memory and output.

use super::{line_prefix, stream_of, unknown_level_lines, LEVELS, MODULE};
use crate::errno::Failed;
use crate::host::{with_memory, Host, C};
use std::io::IsTerminal;
use wasmtime::Linker;

/// Defines `name` of [`MODULE`] if the plugin has it; false otherwise.
pub fn define(l: &mut Linker<Host>, name: &str) -> wasmtime::Result<bool> {
    if name != "log" {
        return Ok(false);
    }
    l.func_wrap(
        MODULE,
        "log",
        |mut c: C, level: u32, context: u32, context_len: u32, message: u32, message_len: u32| {
            // Read where they lie: a guest may pass gigabytes, which a
            // copy would make the host's.
            let logged = with_memory(&mut c, |mem, host| {
                let context = mem.slice(context, context_len)?;
                let message = mem.slice(message, message_len)?;
                Ok(log(host, level, context, message))
            });
            match logged {
                Ok(logged) => logged.map_err(failed),
                Err(_) => Err(failed(
                    "wasi:logging: the context or message lies outside the guest's memory".into(),
                )),
            }
        },
    )?;
    Ok(true)
}

/// One call's line, or why the guest traps.
fn log(host: &mut Host, level: u32, context: &[u8], message: &[u8]) -> Result<(), String> {
    let stream = stream_of(context)?;
    let Some(name) = LEVELS.get(level as usize) else {
        for text in unknown_level_lines(level) {
            write(host, 1, "error", text.as_bytes());
        }
        return Err(format!("wasi:logging: unknown level {level} (0 to 5)"));
    };
    write(host, stream, name, message);
    Ok(())
}

/// The guest traps, and the runtime says why (exit 134).
fn failed(why: String) -> wasmtime::Error {
    wasmtime::Error::new(Failed(why))
}

/// One line to host descriptor `stream` (1 or 2), through the instance's
/// tagged output under `--instances`, as the guest's own writes go.
fn write(host: &mut Host, stream: i32, level: &str, message: &[u8]) {
    let colored = match stream {
        1 => std::io::stdout().is_terminal(),
        _ => std::io::stderr().is_terminal(),
    };
    let prefix = line_prefix(level, colored);
    crate::output::write_line(host.tagged.as_mut(), stream, &[&prefix, message, b"\n"]);
}
