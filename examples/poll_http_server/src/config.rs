//! The command line of `poll_http_server`: parsed here, apart from the
//! program, so that its rules are tested natively.

use edgepoll::http::Limits;
use std::time::Duration;

/// What `--help` prints.
pub const HELP: &str = "\
usage: poll_http_server [ADDR] [OPTIONS]

An HTTP/1.1 echo server: POST a body and get it back; GET / says how.

  ADDR                    IP address and port to listen on (default: $LISTEN,
                          then 127.0.0.1:1234; port 0 takes any free port)
  --header-timeout SECS   time a client has to send a request's head (10)
  --idle-timeout SECS     time a keep-alive connection may stay idle, and a
                          body or a reader may stall (60)
  --max-body BYTES        the largest body echoed; past it, 413 (16777216);
                          a chunked body that grows past it ends the
                          connection after its 200
  --peek-quiet            under WasmEdge AOT with thousands of idle
                          connections: find the ones with data by peeking
                          instead of polling each (see edgepoll's
                          ServerOptions::peek_quiet)
  --exit-after REQUESTS   answer that many requests, then finish what was
                          accepted and exit 0 (for benchmarks)
  -h, --help              this text

--name=value is taken as --name value; an option is given once.
Exit status: 0 after --help or --exit-after, 1 when the server cannot
listen or its event loop fails, 2 for a mistake on the command line.
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Help,
    Run(Config),
}

/// The server the command line asks for.
#[derive(Debug, PartialEq)]
pub struct Config {
    /// As given, parsed by the caller (it says how to write one).
    pub addr: String,
    pub limits: Limits,
    pub peek_quiet: bool,
    pub exit_after: Option<u64>,
}

/// Parses the arguments after the program's name; `listen` is `$LISTEN`,
/// the address when none is given.
///
/// ```
/// use poll_http_server::config::{parse, Command};
/// let args = ["--max-body=1024", "[::1]:8080"].map(String::from);
/// let Ok(Command::Run(config)) = parse(args.into_iter(), None) else { panic!() };
/// assert_eq!((config.addr.as_str(), config.limits.max_body_bytes), ("[::1]:8080", 1024));
/// ```
pub fn parse(
    mut args: impl Iterator<Item = String>,
    listen: Option<String>,
) -> Result<Command, String> {
    let mut addr = None;
    let mut config = Config {
        addr: String::new(),
        limits: Limits::default(),
        peek_quiet: false,
        exit_after: None,
    };
    let mut given = example_args::Given::default();
    while let Some(arg) = args.next() {
        let (arg, mut inline) = example_args::split_inline(arg);
        if arg.starts_with('-') {
            given.once(&arg)?;
        }
        let flag = matches!(arg.as_str(), "-h" | "--help" | "--peek-quiet");
        if flag && inline.is_some() {
            return Err(format!("{arg} takes no value"));
        }
        let mut value = || match inline.take() {
            Some(value) => Ok(value),
            None => args.next().ok_or(format!("{arg} needs a value")),
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--header-timeout" => config.limits.header_timeout = seconds(&arg, &value()?)?,
            "--idle-timeout" => config.limits.idle_timeout = seconds(&arg, &value()?)?,
            "--max-body" => {
                let text = value()?;
                config.limits.max_body_bytes = text.parse().map_err(|_| {
                    format!(
                        "--max-body: not a number of bytes up to {}: {text}",
                        usize::MAX
                    )
                })?;
            }
            "--peek-quiet" => config.peek_quiet = true,
            "--exit-after" => {
                let text = value()?;
                let n = text.parse().ok().filter(|&n| n > 0);
                config.exit_after =
                    Some(n.ok_or(format!("--exit-after: not a positive number: {text}"))?);
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg} (see --help)")),
            _ => {
                if addr.replace(arg).is_some() {
                    return Err("more than one address to listen on".into());
                }
            }
        }
    }
    config.addr = addr
        .or(listen)
        .unwrap_or_else(|| "127.0.0.1:1234".to_string());
    Ok(Command::Run(config))
}

/// A number of seconds from a millisecond (less would time every
/// connection out at once) to under 10^9 (a deadline far past that would
/// not fit a clock).
fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    let seconds = text
        .parse::<f64>()
        .ok()
        .filter(|s| (0.001..1e9).contains(s))
        .ok_or(format!(
            "{flag}: not a number of seconds from 0.001 to 999999999: {text}"
        ))?;
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], listen: Option<&str>) -> Result<Config, String> {
        let args = args.iter().map(|a| a.to_string());
        match parse(args, listen.map(String::from))? {
            Command::Run(config) => Ok(config),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn every_option_is_read_in_both_forms() {
        let config = run(
            &[
                "--header-timeout",
                "2.5",
                "--idle-timeout=0.001",
                "--max-body",
                "7",
                "--peek-quiet",
                "--exit-after=3",
                "0.0.0.0:0",
            ],
            Some("127.0.0.1:9"),
        )
        .expect("parsed");
        assert_eq!(config.addr, "0.0.0.0:0");
        assert_eq!(config.limits.header_timeout, Duration::from_millis(2500));
        assert_eq!(config.limits.idle_timeout, Duration::from_millis(1));
        assert_eq!(config.limits.max_body_bytes, 7);
        assert!(config.peek_quiet);
        assert_eq!(config.exit_after, Some(3));
    }

    #[test]
    fn the_address_is_the_argument_then_listen_then_the_default() {
        assert_eq!(
            run(&[], Some("[::1]:5")).map(|c| c.addr),
            Ok("[::1]:5".into())
        );
        assert_eq!(run(&[], None).map(|c| c.addr), Ok("127.0.0.1:1234".into()));
        let defaults = run(&[], None).expect("parsed");
        assert_eq!(defaults.limits, Limits::default());
        assert_eq!((defaults.peek_quiet, defaults.exit_after), (false, None));
    }

    #[test]
    fn help_is_asked_for_and_lists_every_option() {
        for args in [&["--help"][..], &["-h"], &["127.0.0.2:5", "--help"]] {
            let parsed = parse(args.iter().map(|a| a.to_string()), None);
            assert_eq!(parsed, Ok(Command::Help), "{args:?}");
        }
        for option in [
            "--header-timeout",
            "--idle-timeout",
            "--max-body",
            "--peek-quiet",
            "--exit-after",
            "$LISTEN",
        ] {
            assert!(HELP.contains(option), "{option}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        for (args, says) in [
            (&["--max-body"][..], "--max-body needs a value"),
            (&["--max-body", "-1"], "--max-body: not a number"),
            (
                &["--max-body", "99999999999999999999999"],
                "--max-body: not a number",
            ),
            (
                &["--idle-timeout", "1e20"],
                "--idle-timeout: not a number of seconds",
            ),
            (
                &["--idle-timeout", "1e-300"],
                "--idle-timeout: not a number of seconds",
            ),
            (
                &["--header-timeout", "NaN"],
                "--header-timeout: not a number",
            ),
            (
                &["--header-timeout", "inf"],
                "--header-timeout: not a number",
            ),
            (&["--header-timeout="], "--header-timeout: not a number"),
            (
                &["--exit-after", "0"],
                "--exit-after: not a positive number",
            ),
            (
                &["--idle-timeout", "1", "--idle-timeout", "2"],
                "given twice",
            ),
            (&["--idle-timeout=1", "--idle-timeout", "2"], "given twice"),
            (&["--peek-quiet", "--peek-quiet"], "given twice"),
            (&["--peek-quiet=yes"], "takes no value"),
            (&["127.0.0.2:5", "127.0.0.3:10"], "more than one address"),
            (&["--nope"], "unknown option --nope"),
        ] {
            let got = run(args, None);
            assert!(
                got.as_ref().is_err_and(|e| e.contains(says)),
                "{args:?}: {got:?}"
            );
        }
    }
}
