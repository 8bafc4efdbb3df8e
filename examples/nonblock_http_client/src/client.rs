//! The program proper (wasm32-wasip1 only).

use edgepoll::{ClientOptions, ClientRequest};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

struct Options {
    method: Option<String>,
    data: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
    timeout: Duration,
    urls: Vec<String>,
    /// Write the body here as it arrives instead of to stdout.
    output: Option<String>,
    /// Tell on stderr what each name resolved to, and what TLS agreed.
    verbose: bool,
    /// Trust the CA certificates of this PEM file for https:// instead of
    /// the Mozilla roots.
    cacert: Option<String>,
    /// At most this many connections to one origin at once.
    parallel: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        method: None,
        data: None,
        headers: Vec::new(),
        timeout: Duration::from_secs(10),
        urls: Vec::new(),
        output: None,
        verbose: false,
        cacert: None,
        parallel: usize::MAX,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "-X" | "--request" => options.method = Some(value()?),
            "-o" | "--output" => options.output = Some(value()?),
            "-v" | "--verbose" => options.verbose = true,
            "--cacert" => options.cacert = Some(value()?),
            "--parallel" => {
                let v = value()?;
                options.parallel = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--parallel: not a positive number: {v}"))?;
            }
            "-d" | "--data" => options.data = Some(value()?.into_bytes()),
            "-H" | "--header" => {
                let line = value()?;
                let (name, v) = line
                    .split_once(':')
                    .ok_or(format!("header {line:?} needs 'Name: value'"))?;
                options
                    .headers
                    .push((name.trim().to_string(), v.trim().to_string()));
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
                options.timeout = Duration::from_secs_f64(secs);
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ => options.urls.push(arg),
        }
    }
    Ok(options)
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
            for (name, value) in &options.headers {
                request = request.header(name, value);
            }
            // Refused here, before anything is sent to any URL.
            request.encode().map_err(|e| format!("{url}: {e}"))?;
            Ok(request)
        })
        .collect()
}

const USAGE: &str = "usage: nonblock_http_client [-X METHOD] [-d DATA] [-H 'Name: value']... [--timeout SECS] [-o FILE] [-v] [--cacert FILE] [--parallel N] [URL...]";

pub fn main() -> ExitCode {
    let parsed = parse_args().and_then(|o| {
        if o.output.is_some() && o.urls.len() != 1 {
            return Err("-o FILE takes exactly one URL".to_string());
        }
        let client = client_options(&o)?;
        Ok((build(&o)?, o.timeout, o.output, o.verbose, client))
    });
    let (requests, timeout, output, verbose, client) = match parsed {
        Ok(r) => r,
        Err(message) => {
            eprintln!("nonblock_http_client: {message}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if verbose {
        tell_addresses(&requests, timeout);
    }
    if let (Some(path), [request]) = (output, &requests[..]) {
        return download(request, timeout, &client, &path, verbose);
    }
    let results = edgepoll::send_all_with(&requests, timeout, &client);
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for (i, (request, result)) in requests.iter().zip(results).enumerate() {
        let tag = format!("[{}] {} {}", i + 1, request.method(), request.url());
        if let (true, Ok(response)) = (verbose, &result) {
            tell_tls(&tag, response);
        }
        let written = match result {
            Ok(response) => writeln!(
                out,
                "{tag} -> {} {}",
                response.status.as_u16(),
                response.reason
            )
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
        if written.is_err() {
            return ExitCode::FAILURE;
        }
    }
    let _ = out.flush();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The client's settings: `--cacert` read through a preopened directory.
fn client_options(options: &Options) -> Result<ClientOptions, String> {
    let mut client = ClientOptions {
        max_per_origin: options.parallel,
        ..ClientOptions::default()
    };
    if let Some(path) = &options.cacert {
        let pem = std::fs::read(path).map_err(|e| {
            format!("--cacert {path}: {e} (is its directory preopened, e.g. wasmedge --dir .:.?)")
        })?;
        client.ca_certificates = Some(pem);
    }
    Ok(client)
}

/// `-v`: what the TLS connection of a response agreed on.
fn tell_tls(tag: &str, response: &edgepoll::http::ParsedResponse) {
    if let Some(tls) = &response.tls {
        let alpn = tls.alpn.as_deref().unwrap_or("none");
        eprintln!(
            "* {tag}: {} {}, ALPN {alpn}, certificate subject: {}",
            tls.version, tls.cipher_suite, tls.subject
        );
    }
}

/// `-v`: each host and its addresses, once, on stderr (`* host: a, b`), in
/// the order the client tries them.
fn tell_addresses(requests: &[ClientRequest], timeout: Duration) {
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
fn download(
    request: &ClientRequest,
    timeout: Duration,
    client: &ClientOptions,
    path: &str,
    verbose: bool,
) -> ExitCode {
    let tag = format!("[1] {} {}", request.method(), request.url());
    // Written (an old one emptied) only once the body's first piece comes,
    // or the response ends with an empty one, much as curl does: a request
    // that fails leaves an existing file as it was, and none where there
    // was none. Whether it can be written is checked before anything is sent.
    let existed = std::fs::metadata(path).is_ok();
    if let Err(e) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        eprintln!("nonblock_http_client: cannot create {path}: {e} (is its directory preopened, e.g. wasmedge --dir .:.?)");
        return ExitCode::FAILURE;
    }
    let mut file: Option<std::io::BufWriter<std::fs::File>> = None;
    let mut written = 0u64;
    let result = edgepoll::download_with(request, timeout, client, |piece| {
        let out = match &mut file {
            Some(out) => out,
            None => file.insert(std::io::BufWriter::with_capacity(
                256 * 1024,
                std::fs::File::create(path)?,
            )),
        };
        out.write_all(piece)?;
        written += piece.len() as u64;
        Ok(())
    });
    match (&result, &file) {
        // An empty body: the file is the response's, empty.
        (Ok(_), None) => {
            if let Err(e) = std::fs::File::create(path) {
                eprintln!("{tag} -> error: writing {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
        (Err(_), None) if !existed => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
    let flushed = file.as_mut().map_or(Ok(()), |out| out.flush());
    match (result, flushed) {
        (Ok(head), Ok(())) => {
            if verbose {
                tell_tls(&tag, &head);
            }
            println!(
                "{tag} -> {} {} ({written} bytes written to {path})",
                head.status.as_u16(),
                head.reason
            );
            ExitCode::SUCCESS
        }
        (Ok(_), Err(e)) => {
            eprintln!("{tag} -> error: writing {path}: {e}");
            ExitCode::FAILURE
        }
        (Err(e), _) => {
            eprintln!("{tag} -> error: {e} ({written} bytes written to {path} before it)");
            ExitCode::FAILURE
        }
    }
}
