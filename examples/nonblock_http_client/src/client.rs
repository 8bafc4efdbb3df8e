//! The program proper (wasm32-wasip1 only).

use edgepoll::http::ParsedResponse;
use edgepoll::{ClientOptions, ClientRequest};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

struct Options {
    method: Option<String>,
    data: Option<Vec<u8>>,
    /// `-H` fields as given; `None`: `Name:`, which sends none (nor the
    /// client's own field of that name).
    headers: Vec<(String, Option<String>)>,
    timeout: Duration,
    urls: Vec<String>,
    /// Write the body here as it arrives instead of to stdout.
    output: Option<String>,
    /// Tell on stderr what each name resolved to, and what TLS agreed.
    verbose: bool,
    /// Print each response's header fields after its status line.
    include: bool,
    /// Trust the CA certificates of this PEM file for https:// instead of
    /// the Mozilla roots.
    cacert: Option<String>,
    /// At most this many connections to one origin at once.
    parallel: usize,
    /// At most this many connections at once in all, if given (else the
    /// library's default).
    max_connections: Option<usize>,
}

/// The options given, or `None` for `--help`.
fn parse_args() -> Result<Option<Options>, String> {
    let mut options = Options {
        method: None,
        data: None,
        headers: Vec::new(),
        timeout: Duration::from_secs(10),
        urls: Vec::new(),
        output: None,
        verbose: false,
        include: false,
        cacert: None,
        parallel: usize::MAX,
        max_connections: None,
    };
    let mut args = example_args::utf8()?.into_iter();
    let mut urls_only = false;
    let mut given = example_args::Given::default();
    while let Some(arg) = args.next() {
        if urls_only {
            options.urls.push(arg);
            continue;
        }
        let (arg, mut inline) = example_args::split_inline(arg);
        if inline.is_some() && matches!(arg.as_str(), "--" | "--help" | "--verbose" | "--include") {
            return Err(format!("{arg} takes no value"));
        }
        // An option of one value given again is refused, not silently put
        // over the first (`-d a -d b` would send only b).
        let single = match arg.as_str() {
            "-X" | "--request" => Some("--request"),
            "-o" | "--output" => Some("--output"),
            "-d" | "--data" | "--data-binary" => Some("--data"),
            "--cacert" => Some("--cacert"),
            "--parallel" => Some("--parallel"),
            "--max-connections" => Some("--max-connections"),
            "--timeout" => Some("--timeout"),
            _ => None,
        };
        if let Some(name) = single {
            given.once(name).map_err(|_| match name {
                // One body: one of the two, once.
                "--data" => "give one body: -d (--data) or --data-binary, once".to_string(),
                _ => format!("{arg} is given twice"),
            })?;
        }
        let mut value = || match inline.take() {
            Some(value) => Ok(value),
            None => args.next().ok_or(format!("{arg} needs a value")),
        };
        match arg.as_str() {
            // What follows is URLs, even one that starts with '-'.
            "--" => urls_only = true,
            "-h" | "--help" => return Ok(None),
            "-X" | "--request" => options.method = Some(value()?),
            "-o" | "--output" => options.output = Some(value()?),
            "-v" | "--verbose" => options.verbose = true,
            "-i" | "--include" => options.include = true,
            "--cacert" => options.cacert = Some(value()?),
            "--parallel" => options.parallel = positive(&arg, &value()?)?,
            "--max-connections" => options.max_connections = Some(positive(&arg, &value()?)?),
            "-d" | "--data" => options.data = Some(data(&value()?, true)?),
            "--data-binary" => options.data = Some(data(&value()?, false)?),
            "-H" | "--header" => {
                let line = value()?;
                // Only spaces and tabs around them: a CR or LF at a value's
                // end is refused with the rest, not quietly dropped.
                let blank = |c: char| c == ' ' || c == '\t';
                // As curl reads them: `Name:` sends none, `Name;` an
                // empty one.
                let (name, v) = match line.split_once(':') {
                    Some((name, v)) => match v.trim_matches(blank) {
                        "" => (name, None),
                        v => (name, Some(v.to_string())),
                    },
                    None => match line.trim_end_matches(blank).strip_suffix(';') {
                        Some(name) => (name, Some(String::new())),
                        None => return Err(format!("header {line:?} needs 'Name: value'")),
                    },
                };
                options
                    .headers
                    .push((name.trim_matches(blank).to_string(), v));
            }
            "--timeout" => {
                let v = value()?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or(format!("--timeout: not a positive number: {v}"))?;
                // Deadlines are instants from now: a year is far enough, and
                // keeps them where a clock can count.
                if secs > MOST_TIMEOUT_SECS {
                    return Err(format!(
                        "--timeout: at most {MOST_TIMEOUT_SECS} seconds (a year): {v}"
                    ));
                }
                // Less would round to nothing: every exchange timed out
                // before it began.
                if secs < 0.001 {
                    return Err(format!("--timeout: less than a millisecond: {v}"));
                }
                options.timeout = Duration::from_secs_f64(secs);
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ => options.urls.push(arg),
        }
    }
    Ok(Some(options))
}

/// A request body as `-d` (`lines` true) or `--data-binary` gives it: as
/// written, or, for `@FILE`, FILE's bytes (`@-`: standard input's), as
/// curl reads them (`-d` drops their CRs, LFs and NULs, so that a file of
/// lines is one form value). A body is held whole, and sent whole to each
/// URL: a file over [`MOST_DATA_FILE`] is refused.
fn data(value: &str, lines: bool) -> Result<Vec<u8>, String> {
    let Some(path) = value.strip_prefix('@') else {
        return Ok(value.as_bytes().to_vec());
    };
    let mut bytes = Vec::new();
    let read = match path {
        "" => return Err("-d @FILE: give a file's name (or - for standard input)".to_string()),
        // Read to one byte past the most: more is refused, not held.
        "-" => std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), MOST_DATA_FILE + 1),
            &mut bytes,
        )
        .and_then(|n| too_large(n as u64)),
        // Its size first, so a large file is refused before it is read;
        // read to one byte past the most all the same (a file that grows,
        // or a FIFO, whose size says nothing).
        _ => std::fs::metadata(path).and_then(|m| {
            too_large(m.len())?;
            let file = std::fs::File::open(path)?;
            let n = std::io::Read::read_to_end(
                &mut std::io::Read::take(file, MOST_DATA_FILE + 1),
                &mut bytes,
            )?;
            too_large(n as u64)
        }),
    };
    read.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                " (the runtime must preopen its directory: --dir .:. for one here)"
            }
            _ => "",
        };
        format!("@{path}: {e}{hint}")
    })?;
    if lines {
        bytes.retain(|&b| !matches!(b, b'\r' | b'\n' | 0));
    }
    Ok(bytes)
}

/// The largest file `-d @FILE` sends, and the most `-d @-` reads.
const MOST_DATA_FILE: u64 = 64 << 20;

/// Refuses a body of `length` bytes over [`MOST_DATA_FILE`].
fn too_large(length: u64) -> std::io::Result<()> {
    match length > MOST_DATA_FILE {
        true => Err(std::io::Error::other(format!(
            "over the {} MiB a body may hold (use -o to download a large body; \
             a large upload wants a streaming client)",
            MOST_DATA_FILE >> 20
        ))),
        false => Ok(()),
    }
}

/// A response's header fields as they came, a line each, and an empty
/// line after them (`-i`).
fn write_fields(out: &mut impl Write, response: &ParsedResponse) -> std::io::Result<()> {
    for (name, value) in &response.headers {
        write!(out, "{name}: ")?;
        out.write_all(value)?;
        writeln!(out)?;
    }
    writeln!(out)
}

/// A response's status as its status line has it: the code, and the
/// reason phrase if there is one.
fn status_line(response: &edgepoll::http::ParsedResponse) -> String {
    match response.reason.is_empty() {
        true => response.status.as_u16().to_string(),
        false => format!("{} {}", response.status.as_u16(), response.reason),
    }
}

/// The longest `--timeout`, in seconds.
const MOST_TIMEOUT_SECS: f64 = 365.0 * 24.0 * 3600.0;

fn build(options: &Options) -> Result<Vec<ClientRequest>, String> {
    let (urls, default_data) = if options.urls.is_empty() {
        let url = "http://127.0.0.1:1234/".to_string();
        (
            vec![url.clone(), url],
            Some(b"hello from nonblock_http_client".to_vec()),
        )
    } else {
        (options.urls.clone(), None)
    };
    let data = options.data.clone().or(default_data);
    let method = options.method.clone().unwrap_or_else(|| {
        if data.is_some() {
            "POST".into()
        } else {
            "GET".into()
        }
    });
    urls.iter()
        .map(|url| {
            let mut request =
                ClientRequest::new(&method, url).map_err(|e| format!("{url}: {e}"))?;
            if let Some(data) = &data {
                if !options
                    .headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                {
                    request = request.header("Content-Type", "application/x-www-form-urlencoded");
                }
                request = request.body(data.clone());
            }
            // Who asks (RFC 9110 §10.1.5), as curl says it: unless -H gives
            // one, or `User-Agent:`, which sends none.
            let agent =
                (options.headers.iter()).find(|(n, _)| n.eq_ignore_ascii_case("user-agent"));
            if agent.is_none() {
                request = request.header("User-Agent", USER_AGENT);
            }
            for (name, value) in &options.headers {
                if let Some(value) = value {
                    request = request.header(name, value);
                }
            }
            // Refused here, before anything is sent to any URL.
            request.encode().map_err(|e| format!("{url}: {e}"))?;
            Ok(request)
        })
        .collect()
}

/// `-o FILE` as given: one URL, a file name, and a response with a body.
fn check_output(path: &str, options: &Options) -> Result<(), String> {
    if options.urls.len() != 1 {
        return Err("-o FILE takes exactly one URL".to_string());
    }
    let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
    let no_name = std::path::Path::new(path).file_name().is_none();
    if path.is_empty() || path.ends_with('/') || path == "-" || no_name || is_dir {
        // "-" is stdout to curl; here stdout gets each body after its status
        // line without -o.
        return Err(format!("-o {path:?}: give the name of a file"));
    }
    if options.include {
        // curl writes them into FILE, ahead of the body: not a copy of it.
        return Err("-o FILE with -i: the header fields would go into FILE".to_string());
    }
    if options.method.as_deref() == Some("HEAD") {
        return Err("-o FILE with -X HEAD: a response to HEAD has no body to write".to_string());
    }
    Ok(())
}

/// The value of `option`, a count of at least 1.
fn positive(option: &str, value: &str) -> Result<usize, String> {
    (value.parse().ok())
        .filter(|n| *n > 0)
        .ok_or(format!("{option}: not a positive number: {value}"))
}

/// The `User-Agent` sent unless `-H` names one.
const USER_AGENT: &str = concat!("nonblock_http_client/", env!("CARGO_PKG_VERSION"));

const USAGE: &str = "usage: nonblock_http_client [-X METHOD] [-d DATA | --data-binary DATA] [-H 'Name: value']... [--timeout SECS] [-o FILE] [-i] [-v] [--cacert FILE] [--parallel N] [--max-connections N] [URL...]";

const HELP: &str = "\
Sends every URL at once, each on its own connection, and prints each response.

  -X, --request METHOD   the method (GET, or POST with a body)
  -d, --data DATA        a request body (sent as application/x-www-form-urlencoded);
                         @FILE sends FILE (@- standard input; at most 64 MiB),
                         its CRs, LFs and NULs dropped, as curl does (the
                         runtime must preopen its directory: --dir .:.); a body
                         that begins with @ cannot be sent
  --data-binary DATA     the same, but @FILE goes byte for byte
  -H, --header 'N: V'    a header field (repeatable); 'User-Agent: V' replaces
                         the nonblock_http_client/VERSION sent by default, and
                         'Content-Type: V' the type -d sends by default; 'N:'
                         sends none (nor the default), 'N;' sends N empty, as
                         curl does
  --timeout SECS         each request's time from the start (10; a response
                         still coming then is cut about a second later); with -o, the
                         most a download waits for its next byte; its head,
                         however slowly it comes, is whole within the waits
                         before it could take and --timeout more
  -o, --output FILE      write the one URL's body to FILE as it arrives, through
                         FILE.part (which must not be there yet), renamed to
                         FILE once a 2xx body is whole (the runtime must
                         preopen FILE's directory: --dir .:.)
  -i, --include          print each final response's header fields after its
                         status line (not with -o)
  -v, --verbose          tell on stderr what names resolved to and what TLS agreed;
                         names are looked up first (through DNS_SERVER each
                         within --timeout and 5 s; through the runtime's
                         resolver as long as it takes), before
                         the requests look them up again (a name whose answers
                         rotate may then be tried at another address; one that
                         does not resolve takes that time twice)
  --cacert FILE          trust this PEM file's CA certificates for https://
  --parallel N           at most N connections to one origin at once
  --max-connections N    at most N connections at once in all (default 512);
                         an idle one gives way to a URL of another origin
  -h, --help             this text

A long option's value may also follow an '=' (--timeout=5); an option that
takes a value, but -H, is given once; after -- every argument is a URL.

Many URLs of one server go to it at once: a server with a short listen
backlog (Python's http.server has 5) drops some of the connections, and
their requests time out; --parallel 8 sends them at most 8 at a time.

Responses print in the order of their URLs: one in before an earlier one is
held (whole) until that one is printed. A reader of stdout slower than
--timeout makes the requests still out time out. Use -o for a large body.

URLs are http:// or https://; redirects are not followed. Without a URL, two
POSTs go to http://127.0.0.1:1234/. Names go to the DNS server in DNS_SERVER
(ip:port, or an IP for port 53) when it is set, within 5 s, else to the runtime's resolver, whose
lookups block the client for as long as that resolver waits (its own
timeouts: --timeout cannot cut them short), each name once. Exits 0 when every
request got a response (with -o: a 2xx or a 304), 1 otherwise, 2 on bad
arguments (a DNS_SERVER that is no address among them).";

pub fn main() -> ExitCode {
    let parsed = parse_args().and_then(|o| {
        let Some(o) = o else {
            return Ok(None);
        };
        if let Some(path) = &o.output {
            check_output(path, &o)?;
        }
        let client = client_options(&o)?;
        let shown = (o.verbose, o.include);
        Ok(Some((build(&o)?, o.timeout, o.output, shown, client)))
    });
    let (requests, timeout, output, (verbose, include), client) = match parsed {
        Ok(Some(r)) => r,
        Ok(None) => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("nonblock_http_client: {message}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if verbose {
        // Each told name waits as the requests' own lookups do, at most.
        tell_addresses(&requests, timeout.min(client.dns_timeout));
    }
    if let (Some(path), [request]) = (output, &requests[..]) {
        return download(request, timeout, &client, &path, verbose);
    }
    // Each response is shown (and its body dropped) as soon as it and those
    // before it are in: many large bodies are not all held until the last.
    let mut failed = false;
    // The first write to stdout that failed: no response is shown after
    // it, while failures still are (on stderr).
    let mut unwritable: Option<std::io::Error> = None;
    let mut out = std::io::stdout().lock();
    edgepoll::send_all_each(&requests, timeout, &client, |i, result| {
        let request = &requests[i];
        let tag = format!("[{}] {} {}", i + 1, request.method(), request.url());
        if let (true, Ok(response)) = (verbose, &result) {
            tell_tls(&tag, response);
        }
        let result = result.map_err(|e| e.to_string()).and_then(|response| {
            match undecoded(&response, response.body.len() as u64) {
                Some(why) => Err(why),
                None => Ok(response),
            }
        });
        let written = match result {
            Ok(_) if unwritable.is_some() => Ok(()),
            Ok(response) => writeln!(out, "{tag} -> {}", status_line(&response))
                .and_then(|_| match include {
                    true => write_fields(&mut out, &response),
                    false => Ok(()),
                })
                .and_then(|_| out.write_all(&response.body))
                .and_then(|_| {
                    // End the body on a line of its own; an empty body adds nothing.
                    if response.body.is_empty() || response.body.ends_with(b"\n") {
                        Ok(())
                    } else {
                        writeln!(out)
                    }
                }),
            Err(e) => {
                failed = true;
                let _ = out.flush();
                eprintln!("{tag} -> error: {e}");
                Ok(())
            }
        };
        if let Err(e) = written {
            unwritable.get_or_insert(e);
        }
    });
    let flushed = out.flush();
    if let Some(e) = unwritable.or(flushed.err()) {
        // A reader that went away (`| head`) is no failure to tell of.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("nonblock_http_client: writing the responses: {e}");
        }
        return ExitCode::FAILURE;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Why a response whose body, `length` bytes, is still in a transfer
/// coding other than chunked (`Transfer-Encoding: gzip, chunked`) is an
/// error: this client does not take such a coding off, so its bytes are
/// not the body. (curl writes them as they came unless told
/// `--tr-encoding`; a file that silently holds gzip is worse than a clear
/// refusal.) A bodiless response (to HEAD, a 204, a 304) is not refused.
fn undecoded(response: &ParsedResponse, length: u64) -> Option<String> {
    let coding = response.undecoded_coding().filter(|_| length > 0)?;
    Some(format!(
        "the body came in the transfer coding {:?}, which this client does not decode",
        String::from_utf8_lossy(coding)
    ))
}

/// The client's settings: `--cacert` read through a preopened directory.
fn client_options(options: &Options) -> Result<ClientOptions, String> {
    // A DNS_SERVER that is no address is a mistake in how the client was
    // started, told as one: not a warning, and every name then asked of
    // the runtime's blocking resolver instead.
    edgepoll::dns::server_from_env()?;
    let mut client = ClientOptions {
        max_per_origin: options.parallel,
        ..ClientOptions::default()
    };
    if let Some(n) = options.max_connections {
        client.max_connections = n;
    }
    if let Some(path) = &options.cacert {
        let pem = std::fs::read(path).map_err(|e| {
            format!("--cacert {path}: {e} (is its directory preopened, e.g. wasmedge --dir .:.?)")
        })?;
        // A file that holds no certificate is a bad argument, told before
        // anything is sent, not a failure of each https:// request.
        edgepoll::tls::client_config(Some(&pem)).map_err(|e| format!("--cacert {path}: {e}"))?;
        client.ca_certificates = Some(pem);
    }
    Ok(client)
}

/// `-v`: what the TLS connection of a response agreed on.
fn tell_tls(tag: &str, response: &ParsedResponse) {
    if let Some(tls) = &response.tls {
        let alpn = tls.alpn.as_deref().unwrap_or("none");
        let kx = match tls.key_exchange.as_str() {
            "" => "none",
            group => group,
        };
        eprintln!(
            "* {tag}: {} {} {kx}, ALPN {alpn}, certificate subject: {}",
            tls.version, tls.cipher_suite, tls.subject
        );
    }
}

/// `-v`: where names are asked, and each host and its addresses, once, on
/// stderr (`* host: a, b`), in
/// the order the client tries them, from a lookup of its own before the
/// requests' (which may get other answers from a server that rotates them,
/// and has its own timeout).
fn tell_addresses(requests: &[ClientRequest], timeout: Duration) {
    // Where names go, first: a DNS_SERVER read otherwise than meant shows.
    // (`localhost` and its subdomains are answered without asking.)
    let named = |r: &ClientRequest| {
        let host = r.url().host.trim_end_matches('.').to_ascii_lowercase();
        let local = host == "localhost" || host.ends_with(".localhost");
        host.parse::<std::net::IpAddr>().is_err() && !local
    };
    if requests.iter().any(named) {
        match edgepoll::dns::server_from_env() {
            Ok(Some(server)) => eprintln!("* names go to the DNS server {server} (DNS_SERVER)"),
            _ => eprintln!("* names go to the system's resolver"),
        }
    }
    let mut told: Vec<&str> = Vec::new();
    for request in requests {
        let host = request.url().host.as_str();
        if told.contains(&host) {
            continue;
        }
        told.push(host);
        match edgepoll::dns::resolve(host, timeout) {
            Ok(addrs) => {
                let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
                eprintln!("* {host}: {}", list.join(", "));
            }
            Err(e) => eprintln!("* {host}: {e}"),
        }
    }
}

/// `-o FILE`: the body goes to the file as it arrives (through a directory
/// the runtime preopened, e.g. `wasmedge --dir .:.`), never whole in memory.
/// It is written to `FILE.part` and renamed to FILE only once the whole
/// body of a 2xx response is in: a download that fails part-way, or another
/// status, leaves FILE as it was (a 304 is not a failure: FILE is current).
fn download(
    request: &ClientRequest,
    timeout: Duration,
    client: &ClientOptions,
    path: &str,
    verbose: bool,
) -> ExitCode {
    let tag = format!("[1] {} {}", request.method(), request.url());
    let part = format!("{path}.part");
    // Checked before anything is sent. Never one that is there already:
    // two downloads into one FILE.part would mix their bytes.
    let file = match std::fs::File::create_new(&part) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!("nonblock_http_client: {part} exists: another download to {path} is running, or one was stopped (remove it if none runs)");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("nonblock_http_client: cannot create {part}: {e} (is its directory preopened, e.g. wasmedge --dir .:.?)");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut written = 0u64;
    // A failed write ends the download as an I/O error: kept to say it
    // was the file's, not the connection's.
    let mut write_error = None;
    let result = edgepoll::download_with(request, timeout, client, |piece| {
        if let Err(e) = out.write_all(piece) {
            let kind = e.kind();
            write_error = Some(e);
            return Err(kind.into());
        }
        written += piece.len() as u64;
        Ok(())
    });
    let flushed = out.flush();
    drop(out);
    let kept = |what: &str| {
        // FILE as it was: there, or not made.
        let left = match std::fs::symlink_metadata(path).is_ok() {
            true => format!("{path} left as it was"),
            false => format!("no {path} made"),
        };
        match std::fs::remove_file(&part) {
            Ok(()) => format!("{what}; {left}"),
            Err(e) => format!("{what}; {left}, but {part} could not be removed ({e}): remove it before the next download"),
        }
    };
    if let Some(why) = result
        .as_ref()
        .ok()
        .and_then(|head| undecoded(head, written))
    {
        eprintln!("{tag} -> error: {}", kept(&why));
        return ExitCode::FAILURE;
    }
    match (result, flushed) {
        (Ok(head), Ok(())) if head.status.is_success() => {
            if let Err(e) = std::fs::rename(&part, path) {
                eprintln!("{tag} -> error: {}", kept(&format!("renaming {part}: {e}")));
                return ExitCode::FAILURE;
            }
            if verbose {
                tell_tls(&tag, &head);
            }
            // FILE is whole whether or not stdout can still be told.
            let _ = writeln!(
                std::io::stdout(),
                "{tag} -> {} ({written} bytes written to {path})",
                status_line(&head)
            );
            ExitCode::SUCCESS
        }
        (Ok(head), Ok(())) if head.status.as_u16() == 304 => {
            let _ = writeln!(std::io::stdout(), "{tag} -> {}", kept(&status_line(&head)));
            ExitCode::SUCCESS
        }
        (Ok(head), Ok(())) => {
            eprintln!("{tag} -> {}", kept(&status_line(&head)));
            ExitCode::FAILURE
        }
        (Ok(_), Err(e)) => {
            eprintln!("{tag} -> error: {}", kept(&format!("writing {part}: {e}")));
            ExitCode::FAILURE
        }
        (Err(e), _) => {
            let cause = match (write_error, written) {
                (Some(e), _) => format!("writing {part}: {e} after {written} bytes of the body"),
                (None, 0) => e.to_string(),
                (None, _) => format!("{e} after {written} bytes of the body"),
            };
            eprintln!("{tag} -> error: {}", kept(&cause));
            ExitCode::FAILURE
        }
    }
}
