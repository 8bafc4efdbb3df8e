//! The program proper (wasm32-wasip1 only).

use edgepoll::ClientRequest;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

struct Options {
    method: Option<String>,
    data: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
    timeout: Duration,
    urls: Vec<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        method: None,
        data: None,
        headers: Vec::new(),
        timeout: Duration::from_secs(10),
        urls: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "-X" | "--request" => options.method = Some(value()?),
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
                options.timeout = Duration::from_secs_f64(secs);
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ => options.urls.push(arg),
        }
    }
    Ok(options)
}

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

pub fn main() -> ExitCode {
    let requests = match parse_args().and_then(|o| Ok((build(&o)?, o.timeout))) {
        Ok(r) => r,
        Err(message) => {
            eprintln!("nonblock_http_client: {message}");
            eprintln!("usage: nonblock_http_client [-X METHOD] [-d DATA] [-H 'Name: value']... [--timeout SECS] [URL...]");
            return ExitCode::from(2);
        }
    };
    let (requests, timeout) = requests;
    let results = edgepoll::send_all(&requests, timeout);
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for (i, (request, result)) in requests.iter().zip(results).enumerate() {
        let tag = format!("[{}] {} {}", i + 1, request.method(), request.url());
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
