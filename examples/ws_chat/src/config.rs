//! The command line of `ws_chat`: parsed here, apart from the program, so
//! that its rules are tested natively.

/// What `--help` prints.
pub const HELP: &str = "\
usage: ws_chat [ADDR] [--allow-host NAME]... [--messages-per-second N]

A WebSocket chat: GET / serves the page, /ws?name=NAME is the WebSocket;
every message goes to everyone with its sender's name.

  ADDR               IP address and port to listen on (default: $LISTEN,
                     then 127.0.0.1:1234; port 0 takes any free port)
  --allow-host NAME  a host name (no scheme, no port) a browser reaches the
                     chat by, behind a proxy too; may be given again. A page
                     may open the chat under an IP address, localhost and
                     these names only: a page of any other name is refused,
                     whatever that name resolves to (DNS rebinding)
  --messages-per-second N
                     what a member may send a second, after five seconds'
                     worth at once; past it the member is closed (1008).
                     Default 200; 0: no limit (benchmarks)
  -h, --help         this text

--name=value is taken as --name value.
Exit status: 1 when the chat cannot listen or its event loop fails, 2 for a
mistake on the command line.
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Help,
    /// The address as given (the caller parses it), and the host names
    /// allowed, each without a final dot (a `Host` is compared without
    /// one).
    Run {
        addr: String,
        allowed_hosts: Vec<String>,
        /// What a member may send a second; 0: no limit.
        messages_per_second: u64,
    },
}

/// The default of `--messages-per-second`.
pub const MESSAGES_PER_SECOND: u64 = 200;

/// Parses the arguments after the program's name; `listen` is `$LISTEN`,
/// the address when none is given.
pub fn parse(
    mut args: impl Iterator<Item = String>,
    listen: Option<String>,
) -> Result<Command, String> {
    let mut addr = None;
    let mut allowed_hosts = Vec::new();
    let mut messages_per_second = MESSAGES_PER_SECOND;
    let mut given = example_args::Given::default();
    while let Some(arg) = args.next() {
        let (arg, inline) = example_args::split_inline(arg);
        match arg.as_str() {
            "-h" | "--help" if inline.is_none() => return Ok(Command::Help),
            "-h" | "--help" => return Err(format!("{arg} takes no value")),
            "--messages-per-second" => {
                given.once(&arg)?;
                let value = inline
                    .or_else(|| args.next())
                    .ok_or("--messages-per-second needs a number")?;
                // At most a million: five seconds' worth in millionths
                // stays far inside a u64.
                messages_per_second =
                    value
                        .parse()
                        .ok()
                        .filter(|&n| n <= 1_000_000)
                        .ok_or_else(|| {
                            format!(
                                "--messages-per-second {value:?}: not a number from 0 to 1000000"
                            )
                        })?;
            }
            "--allow-host" => {
                let name = inline
                    .or_else(|| args.next())
                    .ok_or("--allow-host needs a name")?;
                allowed_hosts.push(allowed_host(&name)?);
            }
            _ if arg.starts_with('-') => {
                return Err(format!("unknown argument {arg} (see --help)"))
            }
            _ => {
                if addr.replace(arg).is_some() {
                    return Err("more than one address to listen on".into());
                }
            }
        }
    }
    Ok(Command::Run {
        addr: addr
            .or(listen)
            .unwrap_or_else(|| "127.0.0.1:1234".to_string()),
        allowed_hosts,
        messages_per_second,
    })
}

/// `name` as the chat compares it with a request's host: a host name
/// alone. A scheme, a port or an address would never match (addresses are
/// allowed anyway), and the page would be refused with no hint why.
fn allowed_host(name: &str) -> Result<String, String> {
    // Checked with its final dot, if any: `a.test..` is no name.
    match edgepoll::dns::is_host_name(name) {
        true => Ok(name.strip_suffix('.').unwrap_or(name).to_string()),
        false => Err(format!(
            "--allow-host {name:?}: not a host name (give it as a browser's \
             address bar shows it, without scheme or port: chat.example.com)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|a| a.to_string()), Some("[::1]:7".into()))
    }

    #[test]
    fn the_address_and_the_names_allowed_are_read() {
        assert_eq!(
            run(&[
                "0.0.0.0:0",
                "--allow-host",
                "Chat.Example.",
                "--allow-host=b.test"
            ]),
            Ok(Command::Run {
                addr: "0.0.0.0:0".into(),
                allowed_hosts: vec!["Chat.Example".into(), "b.test".into()],
                messages_per_second: MESSAGES_PER_SECOND,
            })
        );
        assert_eq!(
            run(&[]),
            Ok(Command::Run {
                addr: "[::1]:7".into(),
                allowed_hosts: vec![],
                messages_per_second: MESSAGES_PER_SECOND,
            })
        );
        assert_eq!(
            run(&["--messages-per-second=0"]),
            Ok(Command::Run {
                addr: "[::1]:7".into(),
                allowed_hosts: vec![],
                messages_per_second: 0,
            })
        );
        assert_eq!(run(&["-h"]), Ok(Command::Help));
        assert_eq!(run(&["x", "--help"]), Ok(Command::Help));
        assert!(HELP.contains("--allow-host NAME") && HELP.contains("$LISTEN"));
    }

    #[test]
    fn mistakes_are_named() {
        for (args, says) in [
            (&["--allow-host"][..], "needs a name"),
            (&["--allow-host", "chat.example:8080"], "not a host name"),
            (&["--allow-host", "http://chat.example"], "not a host name"),
            (&["--allow-host", ""], "not a host name"),
            (&["--allow-host="], "not a host name"),
            (&["--allow-host", "127.0.0.1"], "not a host name"),
            (&["--allow-host", "chat.example.."], "not a host name"),
            (&["--help=yes"], "--help takes no value"),
            (&["--nope"], "unknown argument --nope"),
            (&["127.0.0.2:5", "127.0.0.3:10"], "more than one address"),
            (&["--messages-per-second"], "needs a number"),
            (&["--messages-per-second", "-1"], "not a number from 0"),
            (&["--messages-per-second", "1000001"], "not a number from 0"),
            (
                &["--messages-per-second", "5", "--messages-per-second=6"],
                "given twice",
            ),
        ] {
            let got = run(args);
            assert!(
                got.as_ref().is_err_and(|e| e.contains(says)),
                "{args:?}: {got:?}"
            );
        }
    }
}
