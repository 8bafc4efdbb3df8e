//! `edgepoll-host`: runs `wasm32-wasip1` programs that use WasmEdge's socket
//! extension, on wasmtime. Same command line as `wasmedge` for a command
//! module: `edgepoll-host [run] [--dir GUEST:HOST]... [--env NAME=VALUE]...
//! MODULE.wasm [ARGS...]` (not WasmEdge's reactor mode).
//! This file is the command line only; the runtime is the library (`lib.rs`).

use clap::Parser;
use edgepoll_host::runtime::{self, Invocation, Preopen};
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs wasm32-wasip1 programs built for WasmEdge (its socket extension
/// included) on wasmtime, with WasmEdge's command line: options, then the
/// module, then the module's own arguments.
#[derive(Parser)]
#[command(name = "edgepoll-host", version)]
struct Cli {
    /// Preopen a host directory for the guest, as GUEST:HOST (one path: the
    /// same in both), or GUEST:HOST:readonly. Repeatable.
    #[arg(long = "dir", value_name = "GUEST:HOST", value_parser = parse_dir)]
    dirs: Vec<Preopen>,
    /// Set an environment variable for the guest; the runtime's own
    /// environment is not passed on. Repeatable. Passed on byte for byte,
    /// as WasmEdge passes it (one without `=` too).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<std::ffi::OsString>,
    /// Most 64 KiB pages each memory of the guest may grow to (as WasmEdge's
    /// flag): past it, `memory.grow` fails and the guest sees its
    /// allocator fail.
    /// Given twice, the last counts, as on WasmEdge.
    #[arg(
        long = "memory-page-limit",
        value_name = "PAGE_COUNT",
        overrides_with = "memory_page_limit"
    )]
    memory_page_limit: Option<u64>,
    /// Let the guest open Unix domain sockets, as WasmEdge's flag does:
    /// it can then reach any socket the host's user can, by its path.
    #[arg(long = "allow-af-unix")]
    allow_af_unix: bool,
    /// (edgepoll-host only.) Run N instances of the module (`auto`: one per core), each on its
    /// own thread; their sockets share ports (SO_REUSEPORT), so the kernel
    /// spreads connections over them. An instance that ends is restarted.
    /// Output lines of instance k start with `[k] ` when N > 1.
    #[arg(long = "instances", value_name = "N|auto", value_parser = edgepoll_host::instances::parse_count)]
    instances: Option<usize>,
    /// (edgepoll-host only.) With --instances: `always` (the default) restarts an instance that
    /// ends (giving up on one that fails again and again right after
    /// starting); `no` lets it end, and the host exits once all have, with
    /// the worst exit code.
    #[arg(long = "restart", value_name = "always|no", value_parser = edgepoll_host::instances::parse_restart, requires = "instances")]
    restart: Option<edgepoll_host::instances::Restart>,
    /// (edgepoll-host only.) With --instances: on SIGTERM or SIGINT, how long the instances may
    /// take to finish the connections they accepted before the host exits.
    #[arg(
        long = "grace",
        value_name = "SECS",
        default_value = "10",
        value_parser = parse_grace,
        requires = "instances"
    )]
    grace: std::time::Duration,
    /// The module to run.
    #[arg(value_name = "MODULE.wasm")]
    module: PathBuf,
    /// The module's arguments, passed on as they are.
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<std::ffi::OsString>,
}

/// Everything after the module belongs to the guest, `--help` included, as
/// on WasmEdge's command line: only what comes before it is the runtime's.
/// `run` before the module is WasmEdge's subcommand of that name (options
/// may stand on either side of it), and dropped.
fn parse_command_line(mut argv: Vec<std::ffi::OsString>) -> Cli {
    let takes_value = [
        "--dir",
        "--env",
        "--memory-page-limit",
        "--instances",
        "--restart",
        "--grace",
    ];
    let mut at = 1;
    let (mut subcommand, mut reactor, mut asks) = (false, false, false);
    while at < argv.len() {
        let arg = argv[at].to_string_lossy();
        if takes_value.contains(&arg.as_ref()) {
            at += 2;
        } else if arg == "--reactor" {
            // Refused below, unless help or the version is asked for
            // (which clap would not reach past a flag it does not know).
            reactor = true;
            argv.remove(at);
        } else if arg.starts_with('-') && arg != "-" {
            asks |= ["-h", "--help", "-V", "--version"].contains(&arg.as_ref());
            at += 1;
        } else if arg == "run" && !subcommand {
            subcommand = true;
            argv.remove(at);
        } else if arg == "compile" && !subcommand && !asks {
            // WasmEdge's ahead-of-time compiler, not a module's name there.
            fail("`compile` is WasmEdge's ahead-of-time compiler: edgepoll-host compiles a module itself when it first runs it (and caches that), so run MODULE.wasm as it is");
        } else {
            break;
        }
    }
    if reactor && !asks {
        // A reactor's exported function, called by name with its
        // arguments: WasmEdge's, not this runtime's, which runs commands.
        fail(
            "--reactor is not supported: edgepoll-host runs wasm32-wasip1 commands (their _start)",
        );
    }
    let split = (at + 1).min(argv.len());
    // A mistake on the command line fails with 1, as on WasmEdge (clap's
    // own is 2); `--help` and `--version` succeed.
    let mut cli = Cli::try_parse_from(&argv[..split]).unwrap_or_else(|e| {
        let code = match e.use_stderr() {
            true => 1,
            false => 0,
        };
        let _ = e.print();
        std::process::exit(code)
    });
    // As they are: an argument need not be UTF-8.
    cli.args.extend_from_slice(&argv[split..]);
    cli
}

/// A command line this runtime does not run: told as clap tells a
/// mistake (a stderr nobody reads is no panic), exit 1.
fn fail(why: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "error: {why}");
    std::process::exit(1)
}

/// `GUEST:HOST[:readonly]` as WasmEdge splits it: the guest name at the
/// first colon, a mode at the next. An empty guest name is `/` and an empty
/// host one binds nothing (the guest runs without it), as there. WasmEdge
/// ignores a mode it does not know; here it is an error, so a mistyped
/// `:readonly` cannot grant writing.
fn parse_dir(value: &str) -> Result<Preopen, String> {
    let (guest, rest) = value.split_once(':').unwrap_or((value, value));
    let (host, readonly) = match rest.split_once(':') {
        None => (rest, false),
        Some((host, "readonly")) => (host, true),
        Some((_, mode)) => {
            return Err(format!(
                "unknown directory mode {mode:?} in {value:?} (only \"readonly\" is known)"
            ))
        }
    };
    Ok(Preopen {
        guest: guest.to_string(),
        host: PathBuf::from(host),
        readonly,
    })
}

/// Runs before `main`, so before Rust's runtime sets SIGPIPE to ignored:
/// how it was inherited decides what a guest's write to a closed pipe does.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_INHERITED_SIGPIPE: extern "C" fn() = edgepoll_host::record_inherited_sigpipe;

fn main() -> ExitCode {
    let cli = parse_command_line(std::env::args_os().collect());
    let invocation = Invocation {
        module: cli.module,
        args: cli.args,
        env: cli.env,
        dirs: runtime::bindable(cli.dirs),
        memory_page_limit: cli.memory_page_limit,
        allow_af_unix: cli.allow_af_unix,
    };
    let outcome = match cli.instances {
        Some(count) => {
            let restart = cli
                .restart
                .unwrap_or(edgepoll_host::instances::Restart::Always);
            edgepoll_host::instances::run(&invocation, count, restart, cli.grace)
                .map_err(runtime::Failure::from)
        }
        None => runtime::run(&invocation),
    };
    match outcome {
        // As a process's status: the low byte (exit(-1) is 255, not 0).
        Ok(code) => ExitCode::from(code as u8),
        // A trap is 134; anything else (no module, not wasm, an import
        // missing) fails with 1, as WasmEdge's command line does.
        Err(failure) => {
            edgepoll_host::output::say(&failure.message);
            ExitCode::from(failure.exit_code())
        }
    }
}

/// `--grace SECS`: from 0 to a day (a longer wait is surely a mistake).
fn parse_grace(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| (0.0..=86_400.0).contains(s))
        .map(std::time::Duration::from_secs_f64)
        .ok_or(format!("not a number of seconds from 0 to 86400: {text}"))
}
