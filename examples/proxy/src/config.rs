//! The command line.

use edgepoll::Url;
use std::net::SocketAddr;
use std::time::Duration;

pub const HELP: &str = "\
proxy: a reverse proxy and load balancer for HTTP/1.1 on WasmEdge

usage: proxy --listen ADDR --upstream ADDR [--upstream ADDR]... [OPTIONS]

  --listen ADDR          where to accept clients, e.g. 0.0.0.0:8080 or [::]:8080
  --upstream ADDR        a server to forward to: host:port, a host (port 80)
                         or http[s]://host:port; repeat for more (up to
                         64). A name is resolved as requests go to it:
                         through the DNS server in DNS_SERVER (ip:port,
                         or an IP for port 53; anything else is a
                         mistake, exit 2) without
                         blocking, kept for its TTL, or else through the
                         runtime
  --timeout SECS         longest silence from an upstream while a request
                         waits for its answer: then 504 (default 30)
  --connect-timeout SECS longest wait for an upstream's connection (default 5)
  --header-timeout SECS  longest a client may take to send a request head:
                         then 408 (default 10)
  --idle-timeout SECS    how long a client's connection may sit idle, or a
                         request body stall, before it is closed (default 60)
  --eject SECS           how long an upstream that failed gets no requests
                         before one probes it (default 10)
  --max-per-upstream N   most connections open to one upstream (default 256)
  --hold MS              how long a response (its head and the body so far)
                         or a pipelined answer waits for more before it is
                         sent to the client (default 2; up to four times as
                         long while more keeps coming, until the body ends
                         or 64 KiB wait; at most 250): fewer, fuller sends,
                         as Nagle's algorithm stays on under WasmEdge. 0
                         sends each piece as it comes (server-sent events)
  --cacert FILE          trust this PEM file's CA certificates for https://
                         upstreams instead of the Mozilla roots (read
                         through a preopened directory)
  --trust-forwarded      keep the incoming X-Forwarded-* fields, appending the
                         client's address to X-Forwarded-For, and pass on
                         Forwarded, X-Real-IP, Client-IP, True-Client-IP and
                         the like (off: X-Forwarded-For, -Proto and -Host are
                         replaced, the others dropped, as a client could
                         claim anything)
  --exit-after N         answer N requests, then exit (for benchmarks)
  -h, --help             this text

A value may also follow an '=' (--timeout=5). An option of one value is
given once; --upstream as often as there are upstreams.

Each request goes to the upstream with the fewest requests outstanding
(round-robin among equals). An upstream that refuses, is unreachable, resets,
times out or answers garbage is left out for --eject seconds (when all are
left out, all are taken back at once, as nginx does); a request that
could not reach one (refused, unreachable, no connection in time, a TLS
handshake that failed or took too long, a name that does not resolve) is
tried on another, whatever its method, when its body (if any) has a
Content-Length of at most 64 KiB (larger or chunked bodies stream through, and
cannot be sent twice); so is such an idempotent one (GET, HEAD, OPTIONS, PUT,
DELETE) that an upstream closed or reset the connection on before answering. No
upstream reachable: 502; too slow: 504; garbage: 502; a response that
breaks off: the client's connection closes. Bodies stream both ways.
A request that offers to switch to WebSocket is offered on to an http://
upstream (an offer of any other protocol, or to an https:// upstream, is
dropped: the request goes without it); after the upstream's 101 the two connections are
one tunnel, bytes passed unchanged both ways until both ends close (or 10
minutes of silence). Pipelined requests go on side by side only while all
are safe (GET, HEAD, OPTIONS, TRACE). TRACE gets 405, and fields whose names
have an underscore are dropped, as nginx does. The proxy names itself in Via
as edgepoll- and eight hex digits drawn at start; a request whose Via already
names it came back through a loop of proxies, and gets 508.

Exit status: 0 after --help or --exit-after, 1 when the proxy cannot listen
or its event loop fails, 2 for a mistake on the command line (a --cacert
file that cannot be read or holds no certificate is one).
";

/// Whether two hosts are one however spelled: in any case, with a final
/// dot or not (`localhost.`), an IPv6 address in any of its forms (`::1`,
/// `0::1`), an IPv4 one mapped or not (`::ffff:127.0.0.1`, which a
/// dual-stack socket connects to 127.0.0.1).
fn same_host(a: &str, b: &str) -> bool {
    let key = |host: &str| host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let (a, b) = (key(a), key(b));
    match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
        (Ok(a), Ok(b)) => a.to_canonical() == b.to_canonical(),
        _ => a == b,
    }
}

/// The most `--upstream`s.
const MAX_UPSTREAMS: usize = 64;

/// The longest `--hold`: four of them, a second, are the longest a client
/// then waits for bytes the proxy already has.
const MAX_HOLD_MS: u64 = 250;

#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub upstreams: Vec<Url>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub eject_for: Duration,
    pub max_per_upstream: usize,
    /// `ServerOptions::hold_for_body`, where not its default.
    pub hold: Option<Duration>,
    pub trust_forwarded: bool,
    /// PEM CA certificates for https:// upstreams (a file path).
    pub cacert: Option<String>,
    /// Answer this many requests, then exit (for benchmarks).
    pub exit_after: Option<u64>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Help,
    Run(Box<Config>),
}

pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut listen = None;
    let mut upstreams = Vec::new();
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstreams: Vec::new(),
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        eject_for: Duration::from_secs(10),
        max_per_upstream: 256,
        hold: None,
        trust_forwarded: false,
        cacert: None,
        exit_after: None,
    };
    let mut given = example_args::Given::default();
    while let Some(arg) = args.next() {
        let (arg, mut inline) = example_args::split_inline(arg);
        if inline.is_some() && matches!(arg.as_str(), "--help" | "--trust-forwarded") {
            return Err(format!("{arg} takes no value"));
        }
        if arg.starts_with("--") && !matches!(arg.as_str(), "--upstream" | "--trust-forwarded") {
            given.once(&arg)?;
        }
        let mut value = || match inline.take() {
            Some(value) => Ok(value),
            None => args.next().ok_or(format!("{arg} needs a value")),
        };
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--listen" => {
                let text = value()?;
                listen = Some(
                    example_args::listen_addr(&text, None).map_err(|e| format!("--listen {e}"))?,
                );
            }
            "--upstream" => {
                let text = value()?;
                let url = upstream(&text)?;
                // Twice would weigh it double, and eject both copies at its
                // first failure (no longer a lone upstream).
                let same = |u: &Url| {
                    (u.tls, u.port) == (url.tls, url.port) && same_host(&u.host, &url.host)
                };
                if upstreams.iter().any(same) {
                    return Err(format!("--upstream {text} is given twice"));
                }
                upstreams.push(url);
            }
            "--timeout" => config.timeout = seconds(&arg, &value()?)?,
            "--connect-timeout" => config.connect_timeout = seconds(&arg, &value()?)?,
            "--header-timeout" => config.header_timeout = seconds(&arg, &value()?)?,
            "--idle-timeout" => config.idle_timeout = seconds(&arg, &value()?)?,
            "--eject" => config.eject_for = seconds(&arg, &value()?)?,
            "--cacert" => config.cacert = Some(value()?),
            "--max-per-upstream" => {
                let text = value()?;
                config.max_per_upstream = text
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--max-per-upstream: not a positive number: {text}"))?;
            }
            "--hold" => {
                let text = value()?;
                let ms = text.parse().ok().filter(|ms| *ms <= MAX_HOLD_MS);
                let ms = ms.ok_or(format!(
                    "--hold: not a number of milliseconds up to {MAX_HOLD_MS}: {text}"
                ))?;
                config.hold = Some(Duration::from_millis(ms));
            }
            "--trust-forwarded" => config.trust_forwarded = true,
            "--exit-after" => {
                let text = value()?;
                let n = text.parse().ok().filter(|n| *n > 0);
                config.exit_after =
                    Some(n.ok_or(format!("--exit-after: not a positive number: {text}"))?);
            }
            _ => return Err(format!("unknown argument {arg:?} (see --help)")),
        }
    }
    config.listen = listen.ok_or("--listen ADDR is needed (see --help)")?;
    if upstreams.is_empty() {
        return Err("at least one --upstream ADDR is needed (see --help)".into());
    }
    // A retry leaves out the upstreams tried, a bit each in a word.
    if upstreams.len() > MAX_UPSTREAMS {
        return Err(format!(
            "at most {MAX_UPSTREAMS} --upstream, not {}",
            upstreams.len()
        ));
    }
    if let Some(own) = upstreams.iter().find(|u| is_own_address(u, config.listen)) {
        let host = match own.host.contains(':') {
            true => format!("[{}]", own.host),
            false => own.host.clone(),
        };
        return Err(format!(
            "--upstream {host}:{} is where the proxy listens: each request would come back to it",
            own.port
        ));
    }
    config.upstreams = upstreams;
    Ok(Command::Run(Box::new(config)))
}

/// Whether `url` names the address the proxy listens on, as written, with
/// the same port: the same IP; a loopback one, or `localhost`, where it
/// listens on all addresses; or the unspecified address (which a connect
/// takes for this machine's loopback) where it listens on all or on
/// loopback. Each of the family it listens on (`[::]` takes IPv4 too),
/// an IPv4 address mapped into IPv6 (`[::ffff:127.0.0.1]`) as IPv4. (A
/// name that resolves to it, or another of the machine's own addresses, is
/// not seen here: each request such a loop brings back is stopped after
/// one turn, its `Via` naming the proxy; see `forwarded::came_back`.)
fn is_own_address(url: &Url, listen: SocketAddr) -> bool {
    let listen_ip = listen.ip().to_canonical();
    let everywhere = listen_ip.is_unspecified();
    let family = |ip: std::net::IpAddr| {
        ip.is_ipv4() == listen_ip.is_ipv4() || (everywhere && listen_ip.is_ipv6())
    };
    let local = everywhere || listen_ip.is_loopback();
    let host = url.host.strip_suffix('.').unwrap_or(&url.host);
    url.port == listen.port()
        && match host.parse::<std::net::IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) => {
                ip == listen_ip
                    || (family(ip) && everywhere && ip.is_loopback())
                    || (family(ip) && local && ip.is_unspecified())
            }
            Err(_) => local && same_host(host, "localhost"),
        }
}

/// `host:port`, `host`, `http://host[:port][/]` or `https://...` (the
/// scheme in any case, as [`Url::parse`] takes it).
fn upstream(text: &str) -> Result<Url, String> {
    // `Url::parse` would drop a fragment; on an upstream it is a mistake.
    if text.contains('#') {
        return Err(format!(
            "--upstream {text}: an upstream is a server, not a path"
        ));
    }
    let url = match text.contains("://") {
        true => text.to_string(),
        false => format!("http://{text}"),
    };
    let url = Url::parse(&url).map_err(|e| format!("--upstream {text}: {e}"))?;
    if url.path != "/" {
        return Err(format!(
            "--upstream {text}: an upstream is a server, not a path"
        ));
    }
    // A name is resolved when requests go to it (and again when its TTL
    // ends), as addresses behind a service name change.
    Ok(url)
}

/// A number of seconds from a millisecond up: less (`1e-10` would round
/// to nothing) would time out every exchange before it began.
fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    let seconds = text
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or(format!("{flag}: not a positive number of seconds: {text}"))?;
    // Deadlines are instants from now: far ones would not fit a clock.
    if seconds >= 1e9 {
        return Err(format!("{flag}: at most 999999999 seconds: {text}"));
    }
    let duration = Duration::from_secs_f64(seconds);
    match duration >= Duration::from_millis(1) {
        true => Ok(duration),
        false => Err(format!("{flag}: less than a millisecond: {text}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(|a| a.to_string()))? {
            Command::Run(config) => Ok(*config),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn an_upstream_on_the_same_port_elsewhere_is_no_loop() {
        for (listen, upstream) in [
            ("127.0.0.1:8080", "127.0.0.2:8080"),
            ("127.0.0.1:8080", "[::1]:8080"),
            ("0.0.0.0:8080", "192.0.2.1:8080"),
            ("0.0.0.0:8080", "backend:8080"),
            ("0.0.0.0:8080", "[::1]:8080"),
            ("127.0.0.1:8080", "[::]:8080"),
        ] {
            let config = run(&["--listen", listen, "--upstream", upstream]);
            assert!(config.is_ok(), "{listen} {upstream}: {config:?}");
        }
    }

    #[test]
    fn every_form_of_upstream_and_option_is_read() {
        let config = run(&[
            "--listen",
            "127.0.0.1:8080",
            "--upstream",
            "127.0.0.1:9001",
            "--upstream",
            "http://[::1]:9002/",
            "--upstream",
            "localhost",
            "--upstream",
            "HTTPS://localhost:9443",
            "--timeout=2.5",
            "--eject",
            "1",
            "--idle-timeout",
            "2",
            "--header-timeout",
            "3",
            "--trust-forwarded",
            "--hold",
            "0",
            "--exit-after",
            "1000",
        ])
        .unwrap();
        assert_eq!(config.listen.port(), 8080);
        let ports: Vec<u16> = config.upstreams.iter().map(|u| u.port).collect();
        assert_eq!(ports, [9001, 9002, 80, 9443]);
        assert!(config.upstreams[3].tls);
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert_eq!(config.eject_for, Duration::from_secs(1));
        assert_eq!(config.idle_timeout, Duration::from_secs(2));
        assert_eq!(config.header_timeout, Duration::from_secs(3));
        assert!(config.trust_forwarded);
        assert_eq!(config.hold, Some(Duration::ZERO));
        assert_eq!(config.exit_after, Some(1000));
    }

    #[test]
    fn mistakes_are_named() {
        let mut many_upstreams = vec!["--listen", "127.0.0.1:1"];
        let ports: Vec<String> = (1..=65).map(|port| format!("127.0.0.1:{port}")).collect();
        for port in &ports {
            many_upstreams.extend(["--upstream", port]);
        }
        for (args, says) in [
            (&["--upstream", "127.0.0.1:1"][..], "--listen"),
            (&["--listen", "127.0.0.1:1"][..], "--upstream"),
            (
                &["--listen", "nowhere"][..],
                "--listen \"nowhere\" is not an address",
            ),
            (
                &["--listen", "127.0.0.1:1", "--upstream", "ftp://127.0.0.1"][..],
                "only http:// and https://",
            ),
            (
                &["--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:1/api"][..],
                "not a path",
            ),
            (
                &["--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:1#x"][..],
                "not a path",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "127.0.0.1:1",
                    "--timeout",
                    "-1",
                ][..],
                "--timeout",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "127.0.0.1:1",
                    "--exit-after",
                    "0",
                ][..],
                "--exit-after: not a positive number",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "127.0.0.1:1",
                    "--timeout",
                    "1e-10",
                ][..],
                "--timeout: less than a millisecond",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "127.0.0.1:1",
                    "--timeout",
                    "1e9",
                ][..],
                "--timeout: at most 999999999 seconds",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "127.0.0.1:1",
                    "--hold",
                    "251",
                ][..],
                "--hold: not a number of milliseconds up to 250: 251",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "127.0.0.1:1",
                    "--hold",
                    "-1",
                ][..],
                "--hold: not a number of milliseconds up to 250: -1",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "127.0.0.1:1",
                    "--hold",
                    "1.5",
                ][..],
                "--hold: not a number of milliseconds up to 250: 1.5",
            ),
            (
                &["--listen", "127.0.0.1:1", "--upstream", "127.1:80"][..],
                "--upstream 127.1:80: invalid host",
            ),
            (
                &["--listen", "127.0.0.1:1", "--upstream"][..],
                "needs a value",
            ),
            (&["--bogus"][..], "unknown argument"),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "LocalHost:80",
                    "--upstream",
                    "http://localhost/",
                ][..],
                "--upstream http://localhost/ is given twice",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "localhost.:80",
                    "--upstream",
                    "http://localhost/",
                ][..],
                "--upstream http://localhost/ is given twice",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "[::1]:80",
                    "--upstream",
                    "[0::1]",
                ][..],
                "--upstream [0::1] is given twice",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "127.0.0.1:80",
                    "--timeout",
                    "1",
                    "--timeout",
                    "2",
                ][..],
                "--timeout is given twice",
            ),
            (
                &["--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2"][..],
                "--listen is given twice",
            ),
            (
                &["--listen", "localhost:8080"][..],
                "--listen \"localhost:8080\" is not an address like 127.0.0.1:1234 or [::1]:1234",
            ),
            (
                &["--listen=localhost:8080"][..],
                "--listen \"localhost:8080\" is not",
            ),
            (
                &["--listen", "::1:8080"][..],
                "(an IPv6 address goes in brackets)",
            ),
            (
                &["--trust-forwarded=yes"][..],
                "--trust-forwarded takes no value",
            ),
            (&many_upstreams[..], "at most 64 --upstream, not 65"),
            (
                &["--listen", "127.0.0.1:8080", "--upstream", "127.0.0.1:8080"][..],
                "--upstream 127.0.0.1:8080 is where the proxy listens",
            ),
            (
                &[
                    "--listen",
                    "0.0.0.0:8080",
                    "--upstream",
                    "http://LocalHost.:8080/",
                ][..],
                "is where the proxy listens",
            ),
            (
                &[
                    "--listen",
                    "[::]:8080",
                    "--upstream",
                    "127.0.0.1:81",
                    "--upstream",
                    "[::1]:8080",
                ][..],
                "--upstream [::1]:8080 is where the proxy listens",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:8080",
                    "--upstream",
                    "127.0.0.1.:8080",
                ][..],
                "is where the proxy listens",
            ),
            (
                &["--listen", "127.0.0.1:8080", "--upstream", "0.0.0.0:8080"][..],
                "is where the proxy listens",
            ),
            // An IPv4 address mapped into IPv6 is that IPv4 address.
            (
                &[
                    "--listen",
                    "[::]:8080",
                    "--upstream",
                    "[::ffff:127.0.0.1]:8080",
                ][..],
                "is where the proxy listens",
            ),
            (
                &[
                    "--listen",
                    "[::ffff:127.0.0.1]:8080",
                    "--upstream",
                    "127.0.0.1:8080",
                ][..],
                "is where the proxy listens",
            ),
            (
                &[
                    "--listen",
                    "0.0.0.0:8080",
                    "--upstream",
                    "[::ffff:127.0.0.1]:8080",
                ][..],
                "is where the proxy listens",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "127.0.0.1:80",
                    "--upstream",
                    "[::FFFF:127.0.0.1]:80",
                ][..],
                "--upstream [::FFFF:127.0.0.1]:80 is given twice",
            ),
            (
                &["--listen", "127.0.0.1:1", "--upstream", "--trust-forwarded"][..],
                "--upstream --trust-forwarded: invalid host",
            ),
        ] {
            let error = run(args).unwrap_err();
            assert!(error.contains(says), "{args:?}: {error}");
        }
        assert!(matches!(
            parse(["--help".to_string()].into_iter()),
            Ok(Command::Help)
        ));
    }
}
