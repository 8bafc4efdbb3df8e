//! The command line of `ws_chat`: parsed here, apart from the program, so
//! that its rules are tested natively.

/// What `--help` prints.
pub const HELP: &str = "\
usage: ws_chat [ADDR] [--allow-host NAME]...

A WebSocket chat: GET / serves the page, /ws?name=NAME is the WebSocket;
every message goes to everyone with its sender's name.

  ADDR               IP address and port to listen on (default: $LISTEN,
                     then 127.0.0.1:1234; port 0 takes any free port)
  --allow-host NAME  a host name (no scheme, no port) a browser reaches the
                     chat by, behind a proxy too; may be given again. A page
                     may open the chat under an IP address, localhost and
                     these names only: a page of any other name is refused,
                     whatever that name resolves to (DNS rebinding)
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
    },
}

/// Parses the arguments after the program's name; `listen` is `$LISTEN`,
/// the address when none is given.
pub fn parse(
    mut args: impl Iterator<Item = String>,
    listen: Option<String>,
) -> Result<Command, String> {
    let mut addr = None;
    let mut allowed_hosts = Vec::new();
    while let Some(arg) = args.next() {
        let (arg, inline) = example_args::split_inline(arg);
        match arg.as_str() {
            "-h" | "--help" if inline.is_none() => return Ok(Command::Help),
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
    })
}

/// `name` as the chat compares it with a request's host: a host name
/// alone. A scheme, a port or an address would never match (addresses are
/// allowed anyway), and the page would be refused with no hint why.
fn allowed_host(name: &str) -> Result<String, String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    match edgepoll::dns::is_host_name(bare) {
        true => Ok(bare.to_string()),
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
            })
        );
        assert_eq!(
            run(&[]),
            Ok(Command::Run {
                addr: "[::1]:7".into(),
                allowed_hosts: vec![],
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
            (&["--help=yes"], "unknown argument --help"),
            (&["--nope"], "unknown argument --nope"),
            (&["127.0.0.2:5", "127.0.0.3:10"], "more than one address"),
        ] {
            let got = run(args);
            assert!(
                got.as_ref().is_err_and(|e| e.contains(says)),
                "{args:?}: {got:?}"
            );
        }
    }
}
