//! Where the library's one-line reports go unless a program says otherwise.

/// Writes `line` and a line end to stderr: `ServerOptions::log` unless
/// set otherwise. A write that fails is dropped: a log reader gone (a pipe
/// closed, with SIGPIPE ignored as systemd starts services) must not take
/// the server and its connections down, as `eprintln!`'s panic did.
///
/// ```
/// edgepoll::log_to_stderr("proxy: upstream 127.0.0.1:8081 refused");
/// ```
pub fn log_to_stderr(line: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(line.as_bytes())
        .and_then(|()| stderr.write_all(b"\n"));
}
