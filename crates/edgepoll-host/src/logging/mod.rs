//! WasmEdge 0.14's built-in `wasi:logging/logging` plugin, which its
//! command line links into every module: `log(level, context, message)`
//! writes `[2026-12-05 15:36:58.204] [warning] message` (local time, the
//! level named as spdlog names it) and a line end to stdout, or to stderr
//! for the context `stderr` (`stdout` and the empty context are stdout).
//!
//! Where it differs from WasmEdge, on purpose:
//! - any other context names a host file there, which WasmEdge creates and
//!   appends to (directories too, `a/b`), wherever it is: outside what
//!   `--dir` gave the guest. Here such a call traps, saying why;
//! - a message or context outside the guest's memory traps here; WasmEdge
//!   checks only where each starts and reads past the memory's end (its
//!   process dies of SIGSEGV);
//! - the message is written from where it lies in the guest's memory, in
//!   one `writev` with the line's start and end; spdlog copies it into the
//!   line it formats, so a guest logging 1 GiB of memory it never touched
//!   costs WasmEdge a gigabyte of its own.
//!
//! As on WasmEdge, a level above 5 traps (134) after lines on stdout that
//! list the levels.

pub mod link;

/// The module name WasmEdge registers the plugin under.
pub const MODULE: &str = "wasi:logging/logging";

/// The levels' names as spdlog writes them, from 0 (trace) to 5.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warning", "error", "critical"];

/// The most bytes of a context a refusal shows.
const SHOWN_CONTEXT: usize = 256;

/// The host descriptor a context writes to (1 or 2), or why it cannot be.
fn stream_of(context: &[u8]) -> Result<i32, String> {
    match context {
        b"" | b"stdout" => Ok(1),
        b"stderr" => Ok(2),
        other => {
            // Its start: a guest may pass gigabytes.
            let (shown, cut) = match other.get(..SHOWN_CONTEXT) {
                Some(start) if start.len() < other.len() => (start, "..."),
                _ => (other, ""),
            };
            let shown = String::from_utf8_lossy(shown);
            Err(format!(
                "wasi:logging: the context {shown:?}{cut} names a host file, which WasmEdge writes wherever it is; edgepoll-host keeps the guest to stdout, stderr and its --dir"
            ))
        }
    }
}

/// What WasmEdge writes to stdout for a level it does not know, line by
/// line (as errors), before the call fails.
fn unknown_level_lines(level: u32) -> Vec<String> {
    let mut lines = vec![format!("[WasiLogging] Unrecognized Logging Level: {level}")];
    let shown = ["Trace", "Debug", "Info", "Warn", "Error", "Critical"];
    for (number, name) in shown.iter().enumerate() {
        lines.push(format!("[WasiLogging] {name} Level = {number}"));
    }
    lines
}

/// What comes before the message in a line as spdlog writes it with
/// WasmEdge's pattern (`[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v`, then a line
/// end), the level coloured on a terminal.
fn line_prefix(level: &str, colored: bool) -> Vec<u8> {
    let mut line = format!("[{}] [", local_time()).into_bytes();
    match colored {
        true => {
            line.extend_from_slice(color(level).as_bytes());
            line.extend_from_slice(level.as_bytes());
            line.extend_from_slice(b"\x1b[m");
        }
        false => line.extend_from_slice(level.as_bytes()),
    }
    line.extend_from_slice(b"] ");
    line
}

/// spdlog's colour for a level on a terminal.
fn color(level: &str) -> &'static str {
    match level {
        "trace" => "\x1b[37m",
        "debug" => "\x1b[36m",
        "info" => "\x1b[32m",
        "warning" => "\x1b[33m\x1b[1m",
        "error" => "\x1b[31m\x1b[1m",
        _ => "\x1b[1m\x1b[41m",
    }
}

/// Now in local time, to the millisecond: `2026-12-05 15:36:58.204`.
fn local_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to fill.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live values of the right types.
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_spdlog_s_with_wasmedge_s_pattern() {
        let plain = String::from_utf8(line_prefix("warning", false)).unwrap();
        // `[2026-12-05 15:36:58.204] [warning] `
        assert_eq!(plain.len(), "[2026-12-05 15:36:58.204] [warning] ".len());
        assert!(plain.ends_with("] [warning] "), "{plain:?}");
        let colored = String::from_utf8(line_prefix("error", true)).unwrap();
        assert!(
            colored.ends_with("] [\x1b[31m\x1b[1merror\x1b[m] "),
            "{colored:?}"
        );
        assert_eq!((stream_of(b""), stream_of(b"stdout")), (Ok(1), Ok(1)));
        assert_eq!(stream_of(b"stderr"), Ok(2));
        assert!(stream_of(b"logs/x")
            .unwrap_err()
            .contains("\"logs/x\" names a host file"));
        let long = stream_of(&[b'a'; 1 << 20]).unwrap_err();
        assert!(long.contains(&format!("\"{}\"... names", "a".repeat(256))));
        assert!(long.len() < 1000, "{}", long.len());
        assert_eq!(unknown_level_lines(6).len(), 7);
    }
}
