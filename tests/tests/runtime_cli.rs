//! The runtime as a command: exit codes, --dir, --env on every runtime
//! present; traps and bad modules as edgepoll-host reports them.

use edgepoll_tests::{
    free_port, host_runtime, module_importing, on_each_runtime, run_wasm, wasm, Runtime, TempPath,
};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A command run to its end within 120 s (a runtime or tool that hangs
/// fails the test, not CI).
trait OutputWithin {
    fn output_within(&mut self) -> std::process::Output;
}

impl OutputWithin for std::process::Command {
    fn output_within(&mut self) -> std::process::Output {
        edgepoll_tests::output_bounded(self, std::time::Duration::from_secs(120))
    }
}

fn host_bin() -> std::path::PathBuf {
    match host_runtime() {
        Runtime::Host(bin) => bin,
        other => unreachable!("host_runtime is edgepoll-host, not {}", other.name()),
    }
}

#[test]
fn the_guest_exit_code_is_the_runtime_exit_code() {
    on_each_runtime(|rt| {
        let out = run_wasm(rt, "conformance_guest", &["exit"], Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(7));
        // A status is its low byte: exit(-1) fails with 255, as a process's.
        let out = run_wasm(
            rt,
            "conformance_guest",
            &["exit-minus-one"],
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(255), "{}", rt.name());
        let out = run_wasm(
            rt,
            "poll_http_server",
            &["--no-such-option"],
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(2));
    });
}

#[test]
fn a_trap_names_the_function_and_fails() {
    let out = run_wasm(
        &host_runtime(),
        "conformance_guest",
        &["trap"],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("edgepoll-host:"))
        .unwrap_or_default();
    assert!(
        line.contains("trapped") && line.contains("unreachable"),
        "{stderr}"
    );
    assert!(
        line.contains("trap_here"),
        "the guest function that trapped is not named: {stderr}"
    );
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}

/// Deep recursion that WasmEdge runs runs here too: its AOT code runs a
/// small function 400 000 deep on its thread's 8 MiB stack (its
/// interpreter, with no limit, any depth), where wasmtime's default limit
/// of 512 KiB trapped at some 30 000. Past the host's own limit, a trap.
#[test]
fn recursion_as_deep_as_wasmedge_runs_runs_here() {
    on_each_runtime(|rt| {
        let out = run_wasm(
            rt,
            "conformance_guest",
            &["recurse", "400000"],
            Duration::from_secs(60),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            (out.status.code(), stdout.trim()),
            (Some(0), "depth=400000"),
            "{}: {}",
            rt.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    });
    // WasmEdge's AOT code dies of SIGSEGV there, and its interpreter
    // grows its heap without end: edgepoll-host alone.
    let out = run_wasm(
        &host_runtime(),
        "conformance_guest",
        &["recurse", "100000000"],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(134), "{stderr}");
    assert!(
        stderr.trim().lines().count() == 1 && stderr.contains("call stack exhausted"),
        "{stderr}"
    );
    // The same under `--instances`, whose instances run on threads of
    // their own (a thread with Rust's default stack would die of SIGSEGV).
    let instance = ["--instances", "1", "--restart", "no"];
    for (depth, code, said) in [
        ("400000", 0, "depth=400000"),
        ("100000000", 134, "call stack exhausted"),
    ] {
        let out = edgepoll_tests::run_wasm_with(
            &host_runtime(),
            "conformance_guest",
            &instance,
            &["recurse", depth],
            Duration::from_secs(60),
        );
        let both = [out.stdout, out.stderr].concat();
        let both = String::from_utf8_lossy(&both);
        assert_eq!(out.status.code(), Some(code), "{depth} deep: {both}");
        assert!(both.contains(said), "{depth} deep: {both}");
    }
}

/// Exit 1 (as WasmEdge's) and one line on stderr that says `why`.
fn refused_in_one_line(output: &std::process::Output, why: &str) {
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(why), "{stderr}");
}

#[test]
fn a_missing_or_invalid_module_gets_one_clear_line() {
    // A name in the path is no trap (exit 134 is for traps alone).
    let missing = Command::new(host_bin())
        .arg("/no/such/trapped/module.wasm")
        .output_within();
    refused_in_one_line(&missing, "cannot read /no/such/trapped/module.wasm");

    let garbage =
        std::env::temp_dir().join(format!("edgepoll-garbage-{}.wasm", std::process::id()));
    std::fs::write(&garbage, b"this is not wasm").expect("write");
    let invalid = Command::new(host_bin()).arg(&garbage).output_within();
    let _ = std::fs::remove_file(&garbage);
    refused_in_one_line(&invalid, "is not a valid wasm module");

    // A `_start` that returns a value, which WasmEdge calls as a reactor's
    // function (and prints 5): named for what it is, not as missing.
    let typed_start = edgepoll_tests::TempPath(
        std::env::temp_dir().join(format!("edgepoll-typed-start-{}.wasm", std::process::id())),
    );
    let module = [
        &b"\0asm\x01\0\0\0"[..],
        &[1, 5, 1, 0x60, 0, 1, 0x7f], // type: [] -> [i32]
        &[3, 2, 1, 0],                // one function of that type
        &[7, 10, 1, 6, b'_', b's', b't', b'a', b'r', b't', 0, 0], // exported as _start
        &[10, 6, 1, 4, 0, 0x41, 5, 0x0b], // its body: i32.const 5
    ]
    .concat();
    std::fs::write(&typed_start, module).expect("write");
    let typed = Command::new(host_bin()).arg(&*typed_start).output_within();
    refused_in_one_line(&typed, "has a _start function that takes or returns values");
    // Refused once before any instance starts, not by each at each restart.
    let typed = Command::new(host_bin())
        .args(["--instances", "2"])
        .arg(&*typed_start)
        .output_within();
    refused_in_one_line(&typed, "has a _start function that takes or returns values");

    // A directory that is not there is left out, said once (not by each
    // instance), and the guest runs without it, as on WasmEdge.
    let no_dir = Command::new(host_bin())
        .args([
            "--instances",
            "3",
            "--restart",
            "no",
            "--dir",
            "/x:/no/such/dir",
        ])
        .arg(wasm("conformance_guest"))
        .arg("exit")
        .output_within();
    let stderr = String::from_utf8_lossy(&no_dir.stderr);
    assert_eq!(no_dir.status.code(), Some(7), "{stderr}");
    let told: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("--dir /x:/no/such/dir"))
        .collect();
    assert_eq!(told.len(), 1, "{stderr}");
    assert!(told[0].contains("runs without it"), "{stderr}");

    // A mistake on the command line fails with 1, as on WasmEdge.
    let usage = Command::new(host_bin()).output_within();
    assert_eq!(usage.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&usage.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("Usage: edgepoll-host"), "{stderr}");
}

#[test]
fn the_command_line_speaks_clap_with_wasmedges_flags() {
    let help = Command::new(host_bin()).arg("--help").output_within();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--dir <GUEST:HOST>",
        "--env <NAME=VALUE>",
        "<MODULE.wasm>",
        "[ARGS]...",
    ] {
        assert!(text.contains(flag), "--help does not show {flag}: {text}");
    }
    // The flags WasmEdge has not are marked so.
    let own = text.matches("(edgepoll-host only.)").count();
    assert_eq!(own, 3, "--instances, --restart, --grace: {text}");
    // Help asked for is help, whatever else the line holds.
    for line in [
        &["--help", "--reactor"][..],
        &["--reactor", "--help"],
        &["--help", "compile"],
    ] {
        let asked = Command::new(host_bin()).args(line).output_within();
        assert_eq!(asked.status.code(), Some(0), "{line:?}: {asked:?}");
        let shown = String::from_utf8_lossy(&asked.stdout);
        assert!(shown.contains("<MODULE.wasm>"), "{line:?}: {shown}");
    }
    let version = Command::new(host_bin()).arg("--version").output_within();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("edgepoll-host {}", env!("CARGO_PKG_VERSION"))
    );
    for (args, says) in [
        (&["--bogus", "x.wasm"][..], "unexpected argument '--bogus'"),
        (&["--reactor", "x.wasm"][..], "--reactor is not supported"),
        (
            &["compile", "x.wasm", "x_aot.wasm"][..],
            "`compile` is WasmEdge's ahead-of-time compiler",
        ),
        (
            &["--dir", "/a:/b:ro", "x.wasm"][..],
            "unknown directory mode \"ro\"",
        ),
        (
            &["--instances", "2", "--grace", "inf", "x.wasm"][..],
            "not a number of seconds from 0 to 86400: inf",
        ),
    ] {
        let out = Command::new(host_bin()).args(args).output_within();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
    // Everything after the module belongs to the module, flags included.
    let out = Command::new(host_bin())
        .arg(wasm("conformance_guest"))
        .args(["exit", "--not-for-the-runtime"])
        .output_within();
    assert_eq!(out.status.code(), Some(7));
}

/// A scratch directory for `rt` holding `hello.txt`, for `--dir`.
fn directory_with_hello(tag: &str, rt: &Runtime) -> edgepoll_tests::TempPath {
    let dir = edgepoll_tests::scratch_dir(tag, rt);
    std::fs::write(dir.join("hello.txt"), "hello from the host\n").expect("write");
    dir
}

#[test]
fn preopened_directories_are_readable_writable_and_sandboxed() {
    on_each_runtime(|rt| {
        let dir = directory_with_hello("dir", rt);
        // WasmEdge's spelling, GUEST:HOST, which edgepoll-host accepts too.
        let mapping = format!("/data:{}", dir.display());
        let out = rt
            .command_with(&wasm("conformance_guest"), &["--dir", &mapping])
            .arg("read-file")
            .output_within();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("content=hello from the host"), "{stdout}");
        assert!(stdout.contains("escape_refused=true"), "{stdout}");
        assert_eq!(
            std::fs::read_to_string(dir.join("written.txt")).expect("guest wrote"),
            "from the guest"
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A `--dir` whose host path ends in a symbolic link is not bound, on
/// WasmEdge (`O_NOFOLLOW`) and so on edgepoll-host, which bound it: a guest
/// given a directory and one inside it could turn the inner one into a
/// link that leads out, for the next run. With a final `/` the link names
/// a directory, and both follow it.
#[test]
fn a_dir_whose_path_ends_in_a_link_is_not_bound() {
    on_each_runtime(|rt| {
        let dir = directory_with_hello("linked-dir", rt);
        let link = std::path::PathBuf::from(format!("{}-link", dir.display()));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        for (host, bound) in [
            (link.display().to_string(), false),
            (format!("{}/", link.display()), true),
        ] {
            let mapping = format!("/data:{host}");
            let out = rt
                .command_with(&wasm("conformance_guest"), &["--dir", &mapping])
                .arg("read-file")
                .output_within();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let said = format!(
                "{} {host}: {stdout} {}",
                rt.name(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                stdout.contains("content=hello from the host"),
                bound,
                "{said}"
            );
            assert_eq!(out.status.success(), bound, "{said}");
        }
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// `--env` entries reach the guest byte for byte as given, as WasmEdge
/// passes them: one without `=`, one with an empty name, an empty one, one
/// not UTF-8 (edgepoll-host refused the first two).
#[test]
fn env_entries_reach_the_guest_as_given() {
    use std::os::unix::ffi::OsStrExt;
    on_each_runtime(|rt| {
        let entries = [&b"FOO"[..], b"=x", b"A=1", b"", b"B=\xff"];
        let flags = entries.iter().flat_map(|entry| {
            [
                std::ffi::OsStr::new("--env"),
                std::ffi::OsStr::from_bytes(entry),
            ]
        });
        let out = rt
            .command_with_os(&wasm("conformance_guest"), flags)
            .arg("environ")
            .output_within();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let expected = format!("{:?}", b"FOO\0=x\0A=1\0\0B=\xff\0");
        assert_eq!(
            stdout.trim(),
            format!("errno=0,0 count=5 environ={expected}"),
            "{}: {}",
            rt.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

#[test]
fn env_reaches_the_guest_only_through_the_flag() {
    on_each_runtime(|rt| {
        let with = rt
            .command_with(&wasm("conformance_guest"), &["--env", "GREETING=hi there"])
            .arg("env")
            .output_within();
        assert!(String::from_utf8_lossy(&with.stdout).contains("greeting=hi there"));
        let without = rt
            .command(&wasm("conformance_guest"))
            .env("GREETING", "leaked")
            .arg("env")
            .output_within();
        assert!(
            String::from_utf8_lossy(&without.stdout).contains("greeting=\n"),
            "the host environment leaked into the guest"
        );
    });
}

#[test]
fn the_server_takes_its_address_from_listen() {
    on_each_runtime(|rt| {
        // A port found free may be taken before the server binds it: then
        // it says so and exits, and another is tried.
        let mut said = Vec::new();
        for _ in 0..5 {
            let port = free_port();
            let listen = format!("LISTEN=127.0.0.1:{port}");
            let mut child = edgepoll_tests::KilledOnDrop::new(
                rt.command_with(&wasm("poll_http_server"), &["--env", &listen])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("runs"),
            );
            let mut line = String::new();
            let stdout = child.stdout.take().expect("stdout");
            let reader = std::thread::spawn(move || {
                use std::io::BufRead;
                let mut r = std::io::BufReader::new(stdout);
                let _ = r.read_line(&mut line);
                line
            });
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !reader.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(child);
            let line = reader.join().expect("reader");
            if line.trim() == format!("listening on 127.0.0.1:{port}") {
                return;
            }
            said.push(line);
        }
        panic!(
            "{}: the server never listened where LISTEN said: {said:?}",
            rt.name()
        );
    });
}

#[test]
fn memory_page_limit_holds_the_guest_to_its_pages_as_on_wasmedge() {
    on_each_runtime(|rt| {
        // A Rust program starts with 17 pages: one page is too few to start.
        let out = edgepoll_tests::run_wasm_with(
            rt,
            "conformance_guest",
            &["--memory-page-limit", "1"],
            &["exit"],
            Duration::from_secs(30),
        );
        assert!(
            out.status.code().is_some_and(|c| c != 0 && c != 7),
            "a guest above its page limit started on {}: {:?}",
            rt.name(),
            out.status
        );
        let out = edgepoll_tests::run_wasm_with(
            rt,
            "conformance_guest",
            &["--memory-page-limit", "1000"],
            &["exit"],
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(7), "on {}", rt.name());
    });
}

/// A grow refused for `--memory-page-limit` is told on stderr, and a
/// stderr that takes no more (its reader gone) changes nothing: the guest
/// that cannot start fails with exit 1, as it does on WasmEdge. (The host's
/// `eprintln!` panicked under the guest's grow: exit 101, or under
/// `--instances` a fault of the host's own.)
#[test]
fn a_page_limit_refusal_on_a_stderr_nobody_reads_is_no_panic() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut ends = [0; 2];
    // SAFETY: pipe writes two descriptors into `ends`, each owned below.
    assert_eq!(unsafe { libc::pipe(ends.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both are open and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    drop(read);
    let child = Command::new(host_bin())
        .args(["--memory-page-limit", "1"])
        .arg(wasm("conformance_guest"))
        .arg("exit")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(write))
        .spawn()
        .expect("edgepoll-host starts");
    let out = edgepoll_tests::wait_bounded(child, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "{:?}", out.status);
    let out = Command::new(host_bin())
        .args(["--memory-page-limit", "1"])
        .arg(wasm("conformance_guest"))
        .arg("exit")
        .output_within();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let told = stderr.lines().any(|line| {
        line.starts_with("edgepoll-host: memory grow to ")
            && line.ends_with(" pages refused: over --memory-page-limit 1")
    });
    assert!(told, "{stderr}");
}

/// A guest that opens its read-only directory again, asking for every
/// right, still cannot create, link, rename or remove a name below it on
/// edgepoll-host. WasmEdge 0.14 lets it (its read-only preopen passes those
/// rights on): the README names the difference, and this checks it is
/// still there, so that the README stays true. On every runtime the file
/// may be given again the rights it holds (rights only shrink).
#[test]
fn names_below_a_readonly_directory_stay_as_they_were_given() {
    on_each_runtime(|rt| {
        let dir = directory_with_hello("ro-names", rt);
        let work = dir.with_extension("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let out = rt
            .command_with(
                &wasm("conformance_guest"),
                &[
                    "--dir",
                    &format!("/data:{}:readonly", dir.display()),
                    "--dir",
                    &format!("/work:{}", work.display()),
                ],
            )
            .arg("readonly-names")
            .output_within();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let errno = |what: &str| -> Option<u16> {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{what}=")))
                .and_then(|n| n.parse().ok())
        };
        let (mkdir, link, rename) = (errno("mkdir"), errno("link"), errno("rename"));
        // A file opened to read with broad rights opens everywhere.
        assert_eq!(errno("open_broad"), Some(0), "{}: {stdout}", rt.name());
        assert_eq!(errno("set_own_rights"), Some(0), "{}: {stdout}", rt.name());
        // 31: EISDIR, a directory opened for writing, as the kernel says.
        assert_eq!(
            errno("open_dir_to_write"),
            Some(31),
            "{}: {stdout}",
            rt.name()
        );
        let listing = |d: &std::path::Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(d)
                .map(|r| {
                    r.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        };
        match rt {
            Runtime::Host(_) => {
                // 76: ENOTCAPABLE, each; nothing changed on either side.
                for what in ["set_times", "mkdir", "link", "rename", "unlink"] {
                    assert_eq!(errno(what), Some(76), "{what}: {stdout}");
                }
                assert_eq!(listing(&dir), ["hello.txt"]);
                assert!(listing(&work).is_empty());
                assert_eq!(
                    std::fs::read_to_string(dir.join("hello.txt"))
                        .ok()
                        .as_deref(),
                    Some("hello from the host\n")
                );
            }
            _ => assert_eq!(
                (mkdir, link, rename),
                (Some(0), Some(0), Some(0)),
                "{}: WasmEdge no longer lets a read-only directory's names change; \
                 the README's list of differences is out of date: {stdout}",
                rt.name()
            ),
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&work);
    });
}

#[test]
fn a_readonly_directory_is_read_but_not_written_as_on_wasmedge() {
    on_each_runtime(|rt| {
        let dir = directory_with_hello("ro", rt);
        let mapping = format!("/data:{}:readonly", dir.display());
        let out = rt
            .command_with(&wasm("conformance_guest"), &["--dir", &mapping])
            .arg("read-file")
            .output_within();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stdout.contains("content=hello from the host"),
            "{}: {stdout} {stderr}",
            rt.name()
        );
        assert!(
            !out.status.success(),
            "{}: a write to a read-only directory succeeded",
            rt.name()
        );
        assert!(
            stdout.contains("failed=write /data/written.txt: Capabilities insufficient"),
            "{}: {stdout}",
            rt.name()
        );
        assert!(
            !dir.join("written.txt").exists(),
            "{}: the file was created",
            rt.name()
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// What a compile cache holds.
fn entries_in(cache: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(cache)
        .expect("the cache exists")
        .map(|e| e.expect("entry").path())
        .collect()
}

/// A file's permission bits.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("there").permissions().mode() & 0o7777
}

/// edgepoll-host caches compiled native code and runs it on the next start
/// of the same module: a guest able to write that cache could replace it
/// with code of its choosing and run outside its sandbox. Here another
/// module's code, under `conformance_guest`'s key and header, stands in for
/// a guest's: it is run only from a file as the host writes it (mode 0500,
/// which no file a guest makes has), never from a cache a writable `--dir`
/// holds, whose entries are removed when such a run starts and ends.
#[test]
fn a_guest_that_could_write_the_compile_cache_gets_none() {
    use std::os::unix::fs::PermissionsExt;
    let rt = host_runtime();
    let dir = edgepoll_tests::scratch_dir("cache", &rt);
    let cache = dir.join("compiled");
    let _ = std::fs::remove_dir_all(&cache);
    let run = |module: &str, flags: &[&str], arg: &str| {
        let out = Command::new(host_bin())
            .env("EDGEPOLL_HOST_CACHE", &cache)
            .args(flags)
            .arg(wasm(module))
            .arg(arg)
            .output_within();
        out.status.code()
    };
    let entries = || entries_in(&cache);
    assert_eq!(run("conformance_guest", &[], "exit"), Some(7));
    let guest = entries().pop().expect("an entry");
    assert_eq!(mode(&cache) & 0o077, 0, "the cache is its user's alone");
    assert_eq!(mode(&guest), 0o500, "an entry is written read-only");
    assert_eq!(run("poll_http_server", &[], "--no-such-option"), Some(2));
    let other = entries().into_iter().find(|p| *p != guest);
    let other = std::fs::read(other.expect("a second entry")).expect("readable");
    // Another module's code in place of this one's is not run...
    std::fs::remove_file(&guest).expect("removable");
    std::fs::write(&guest, &other).expect("written");
    std::fs::set_permissions(&guest, std::fs::Permissions::from_mode(0o500)).expect("chmod");
    assert_eq!(
        run("conformance_guest", &[], "exit"),
        Some(7),
        "foreign header"
    );
    // ...nor with this one's header in a file as a guest writes it...
    let forged = [
        &std::fs::read(&guest).expect("readable")[..24],
        &other[24..],
    ]
    .concat();
    let plant = |file_mode: u32| {
        let _ = std::fs::remove_file(&guest);
        std::fs::write(&guest, &forged).expect("written");
        std::fs::set_permissions(&guest, std::fs::Permissions::from_mode(file_mode))
            .expect("chmod");
    };
    plant(0o644);
    assert_eq!(run("conformance_guest", &[], "exit"), Some(7), "mode 0644");
    // (0644 under a umask of 0277: a guest may make that.)
    plant(0o400);
    assert_eq!(run("conformance_guest", &[], "exit"), Some(7), "mode 0400");
    // ...but as the host writes it, it is: so no guest may reach the cache.
    plant(0o500);
    assert_eq!(
        run("conformance_guest", &[], "exit"),
        Some(2),
        "the cache is used"
    );
    let readonly = format!("/data:{}:readonly", dir.display());
    assert_eq!(
        run("conformance_guest", &["--dir", &readonly], "exit"),
        Some(2)
    );
    let writable = format!("/data:{}", dir.display());
    assert_eq!(
        run("conformance_guest", &["--dir", &writable], "exit"),
        Some(7)
    );
    assert!(
        entries().is_empty(),
        "entries a guest could write are removed"
    );
    // An entry there before such a run (a guest that ran as root rewrote a
    // genuine one, and its host was killed) is gone before its guest starts.
    plant(0o500);
    let out = Command::new(host_bin())
        .env("EDGEPOLL_HOST_CACHE", &cache)
        .args(["--dir", &writable])
        .arg(wasm("conformance_guest"))
        .arg("list-cache")
        .output_within();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("entries=0"),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cache works under any umask (0177 left entries 0400, which no run
/// takes for an entry, so every run compiled again), and a directory a
/// guest made, with a file in it, under an entry's name goes with the
/// exposed run's entries (it kept the entry from ever being written).
#[test]
fn the_cache_outlasts_a_tight_umask_and_a_directory_in_an_entrys_place() {
    let rt = host_runtime();
    let dir = edgepoll_tests::scratch_dir("cache-umask", &rt);
    let cache = dir.join("compiled");
    let _ = std::fs::remove_dir_all(&cache);
    let run = |flags: &[&str]| {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("umask 0177; exec \"$@\"")
            .arg("sh")
            .arg(host_bin())
            .args(flags)
            .arg(wasm("conformance_guest"))
            .arg("exit")
            .env("EDGEPOLL_HOST_CACHE", &cache);
        command.output_within().status.code()
    };
    let entries = || entries_in(&cache);
    assert_eq!(run(&[]), Some(7));
    assert_eq!(
        mode(&cache),
        0o700,
        "the cache's owner may reach its entries"
    );
    let entry = entries().pop().expect("an entry");
    assert_eq!(mode(&entry), 0o500, "an entry as a read takes it");
    // As a guest given the cache's directory could leave it.
    std::fs::remove_file(&entry).expect("removable");
    std::fs::create_dir_all(entry.join("sub")).expect("a directory in its place");
    std::fs::write(entry.join("sub/kept"), "x").expect("a file in it");
    let writable = format!("/data:{}", dir.display());
    assert_eq!(run(&["--dir", &writable]), Some(7));
    assert!(
        !entry.exists(),
        "the directory in the entry's place is gone"
    );
    assert_eq!(run(&[]), Some(7));
    assert!(entry.is_file(), "the entry is written again");
    let _ = std::fs::remove_dir_all(&dir);
}

/// In its default place (`~/.cache/edgepoll-host`) the cache is kept only
/// by a host not running as root: mode bits do not bind root, so a root
/// guest given that directory in another run could plant code there. As
/// root it is kept only where `EDGEPOLL_HOST_CACHE` names a directory.
#[test]
fn a_host_running_as_root_keeps_no_cache_in_its_default_place() {
    let rt = host_runtime();
    let home = edgepoll_tests::scratch_dir("cache-home", &rt);
    let _ = std::fs::remove_dir_all(home.join(".cache"));
    let out = Command::new(host_bin())
        .env_remove("EDGEPOLL_HOST_CACHE")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", &home)
        .arg(wasm("conformance_guest"))
        .arg("exit")
        .output_within();
    assert_eq!(out.status.code(), Some(7));
    let kept = std::fs::read_dir(home.join(".cache/edgepoll-host"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match root {
        true => assert_eq!(kept, 0, "a root host kept code in its default cache"),
        false => assert_eq!(kept, 1, "the cache is kept in its default place"),
    }
    let _ = std::fs::remove_dir_all(&home);
}

/// The runtime's own failures end as WasmEdge's do, on every runtime
/// present: 1 for a module that is not there or not wasm, whose start
/// function traps, that imports a function no runtime provides, and for a
/// flag it does not know, 134 for a trap of the
/// program's (in `_start`); a `--dir` that cannot be bound (or names no
/// host directory) is
/// left out and the guest runs (its exit code, 7, is the guest's).
#[test]
fn the_runtime_s_own_failures_exit_as_wasmedge_s() {
    let garbage = edgepoll_tests::TempPath(
        std::env::temp_dir().join(format!("edgepoll-not-wasm-{}.wasm", std::process::id())),
    );
    std::fs::write(&garbage, b"this is not wasm").expect("write");
    // A module whose start function (run as it is instantiated) is
    // `unreachable`: a failed start, not a trap of the program's.
    let start_traps = edgepoll_tests::TempPath(
        std::env::temp_dir().join(format!("edgepoll-start-traps-{}.wasm", std::process::id())),
    );
    let module = [
        &b"\0asm\x01\0\0\0"[..],
        &[1, 4, 1, 0x60, 0, 0],     // type: [] -> []
        &[3, 2, 1, 0],              // one function of that type
        &[8, 1, 0],                 // the start function
        &[10, 5, 1, 3, 0, 0, 0x0b], // its body: unreachable
    ]
    .concat();
    std::fs::write(&start_traps, module).expect("write");
    // Modules whose `_start` does nothing, that import a function neither
    // runtime provides: from WASI's module, and from another.
    let unknown_wasi = module_importing("wasi_snapshot_preview1", "sock_nothing");
    let unknown_env = module_importing("env", "nothing");
    // A name that reads as a trap's message is still a missing import.
    let trap_named = module_importing("env", "x: guest trapped during run");
    let guest = wasm("conformance_guest");
    on_each_runtime(|rt| {
        let cases: [(&std::path::Path, &[&str], &[&str], i32); 14] = [
            // WasmEdge's `run` subcommand, before or after options.
            (&guest, &["run"], &["exit"], 7),
            (
                &guest,
                &["--env", "A=1", "run", "--dir", "/x:/no/such/dir"],
                &["exit"],
                7,
            ),
            // Given twice, the last counts (a page is too few to start).
            (
                &guest,
                &["--memory-page-limit", "1", "--memory-page-limit", "2000"],
                &["exit"],
                7,
            ),
            (&guest, &["--no-such-flag"], &["exit"], 1),
            (&guest, &["--dir", "/x:/no/such/dir"], &["exit"], 7),
            (&guest, &[], &["trap"], 134),
            (&guest, &["--dir", ":/no/such/dir"], &["exit"], 7),
            (&guest, &["--dir", "/x:"], &["exit"], 7),
            (&start_traps, &[], &[], 1),
            (&unknown_wasi, &[], &[], 1),
            (&unknown_env, &[], &[], 1),
            (&trap_named, &[], &[], 1),
            (&garbage, &[], &[], 1),
            (std::path::Path::new("/no/such/module.wasm"), &[], &[], 1),
        ];
        // A module that is no module has no AOT form: the interpreter's
        // run of it is the same binary's.
        let cases = match rt {
            Runtime::WasmEdgeAot => &cases[..12],
            _ => &cases[..],
        };
        for &(module, flags, args, code) in cases {
            let out = rt.command_with(module, flags).args(args).output_within();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{} {flags:?} {}: {stderr}",
                rt.name(),
                module.display(),
            );
            // Refused for its import, not as a module that does not load
            // (WasmEdge logs it on stdout).
            let stdout = String::from_utf8_lossy(&out.stdout);
            if module == &*unknown_wasi {
                assert!(
                    stderr.contains("sock_nothing") || stdout.contains("sock_nothing"),
                    "{}: {stdout} {stderr}",
                    rt.name()
                );
            }
        }
    });
}

/// A module section of fewer than 128 bytes: its id, length and content.
fn wasm_section(id: u8, content: &[u8]) -> Vec<u8> {
    [&[id, content.len() as u8][..], content].concat()
}

/// A name (or any byte vector) of fewer than 128 bytes, as a module holds it.
fn wasm_name(text: &[u8]) -> Vec<u8> {
    [&[text.len() as u8][..], text].concat()
}

/// A module that imports `wasi:logging/logging`'s `log` and exports a
/// memory of `pages` (LEB128) and `_start`, whose body (its locals and
/// code, under 128 bytes) is `body`; `data`, its data section, if any.
fn logging_module(pages: &[u8], body: &[u8], data: &[u8]) -> Vec<u8> {
    let (section, string) = (wasm_section, wasm_name);
    [
        &b"\0asm\x01\0\0\0"[..],
        &section(
            1,
            &[2, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0, 0x60, 0, 0],
        ),
        &section(
            2,
            &[
                &[1][..],
                &string(b"wasi:logging/logging"),
                &string(b"log"),
                &[0, 0],
            ]
            .concat(),
        ),
        &section(3, &[1, 1]),
        &section(5, &[&[1, 0][..], pages].concat()),
        &section(
            7,
            &[
                &[2][..],
                &string(b"memory"),
                &[2, 0],
                &string(b"_start"),
                &[0, 1],
            ]
            .concat(),
        ),
        &section(10, &[&[1][..], &string(body)].concat()),
        data,
    ]
    .concat()
}

/// WasmEdge links its `wasi:logging/logging` plugin into every module; so
/// does edgepoll-host: `log(level, context, message)` writes a timestamped
/// line with spdlog's level name to stdout, or to stderr for `stderr`. A
/// context that names a file (WasmEdge's writes it wherever it is) traps
/// here, saying why.
#[test]
fn the_wasi_logging_plugin_writes_as_wasmedge_s() {
    let (section, string) = (wasm_section, wasm_name);
    // log(level, 0: context, its length, 16: "hello", 5), once per call.
    let module = |calls: &[(u8, u8, u8)]| {
        let mut body = vec![0u8]; // no locals
        for &(level, context, length) in calls {
            for value in [level, context, length, 16, 5] {
                body.extend([0x41, value]); // i32.const
            }
            body.extend([0x10, 0]); // call the import
        }
        body.push(0x0b);
        let segment = |at: u8, bytes: &[u8]| [&[0, 0x41, at, 0x0b][..], &string(bytes)].concat();
        let data = section(
            11,
            &[
                &[4][..],
                &segment(0, b"stderr"),
                &segment(16, b"hello"),
                &segment(32, b"stdout"),
                &segment(48, b"logs/x"),
            ]
            .concat(),
        );
        logging_module(&[1], &body, &data)
    };
    let path = |name: &str| {
        std::env::temp_dir().join(format!(
            "edgepoll-logging-{name}-{}.wasm",
            std::process::id()
        ))
    };
    let logs = edgepoll_tests::TempPath(path("logs"));
    std::fs::write(&logs, module(&[(3, 0, 6), (2, 32, 6), (0, 0, 0)])).expect("write");
    // `[2026-12-05 15:36:58.204] [warning] hello`
    let line = |line: &str, level: &str| {
        let stamp = line.get(1..24).unwrap_or_default();
        let shape = stamp.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            19 => b == b'.',
            _ => b.is_ascii_digit(),
        });
        shape && line.starts_with('[') && line.get(24..) == Some(&format!("] [{level}] hello")[..])
    };
    let to_a_file = edgepoll_tests::TempPath(path("file"));
    std::fs::write(&to_a_file, module(&[(3, 48, 6)])).expect("write");
    let unknown_level = edgepoll_tests::TempPath(path("level"));
    std::fs::write(&unknown_level, module(&[(8, 0, 0)])).expect("write");
    let utc_hour = |out: &std::process::Output| {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let hour = stdout.get(12..14).and_then(|h| h.parse::<u64>().ok());
        (hour, stdout.into_owned())
    };
    on_each_runtime(|rt| {
        // Local time, as spdlog writes it: five hours ahead of UTC under
        // TZ=UTC-5 (POSIX counts the offset the other way).
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let before = before.expect("a clock after 1970").as_secs() / 3600;
        let out = rt
            .command_with(&logs, &[])
            .env("TZ", "UTC-5")
            .output_within();
        let (hour, stdout) = utc_hour(&out);
        let local = |utc: u64| Some((utc + 5) % 24);
        assert!(
            hour == local(before % 24) || hour == local((before + 1) % 24),
            "{}: {stdout}",
            rt.name()
        );
        // A level past spdlog's (0 to 5) traps, naming the levels.
        let out = rt.command_with(&unknown_level, &[]).output_within();
        assert_eq!(
            out.status.code(),
            Some(134),
            "{}: {}",
            rt.name(),
            String::from_utf8_lossy(&[out.stdout, out.stderr].concat())
        );
        let out = rt.command_with(&logs, &[]).output_within();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {stdout} {stderr}",
            rt.name()
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(
            lines.len() == 2 && line(lines[0], "info") && line(lines[1], "trace"),
            "{}: {stdout}",
            rt.name()
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(
            lines.len() == 1 && line(lines[0], "warning"),
            "{}: {stderr}",
            rt.name()
        );
    });
    // WasmEdge would make logs/x wherever it runs: not run there.
    let out = host_runtime().command_with(&to_a_file, &[]).output_within();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(134), "{stderr}");
    assert!(stderr.contains("names a host file"), "{stderr}");
}

/// A `wasi:logging` message as long as the guest's memory is written from
/// where it lies: a guest that asks the host to log 1 GiB of memory it never
/// touched (pages that cost it nothing) costs the host no more memory than
/// a short line. The message was copied three times (12 GB from a 4 GiB
/// memory, whatever `--memory-page-limit` allowed, under `--instances` for
/// every instance at once). WasmEdge copies it too (spdlog formats the
/// line whole), so this is edgepoll-host's alone.
#[test]
fn a_message_of_a_gibibyte_to_wasi_logging_costs_the_host_no_copy() {
    // 16384 pages of memory; log(2, "", 0, 0, 2^30): info, to stdout.
    let mut body = vec![0u8]; // no locals
    for value in [&[2][..], &[0], &[0], &[0], &[0x80, 0x80, 0x80, 0x80, 0x04]] {
        body.push(0x41); // i32.const, signed LEB128
        body.extend(value);
    }
    body.extend([0x10, 0, 0x0b]); // call the import; end
    let module = logging_module(&[0x80, 0x80, 0x01], &body, &[]);
    let path = std::env::temp_dir().join(format!("edgepoll-log-gib-{}.wasm", std::process::id()));
    let path = TempPath(path);
    std::fs::write(&path, module).expect("write");
    // Reaped by wait_with_peak, which tells its peak.
    #[allow(clippy::zombie_processes)]
    let mut child = host_runtime()
        .command_with(&path, &[])
        .stdout(Stdio::piped())
        .spawn()
        .expect("edgepoll-host");
    // What it wrote, counted as it comes.
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let (mut count, mut buf, mut first) = (0usize, vec![0; 1 << 16], Vec::new());
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            if first.len() < 64 {
                first.extend_from_slice(&buf[..n.min(64)]);
            }
            count += n;
        }
        (count, first)
    });
    let (status, peak) = wait_with_peak(&child);
    let (written, first) = reader.join().expect("reader");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status:#x}"
    );
    // `[2026-12-05 15:36:58.204] [info] `, the message, a line end.
    let prefix = "[2026-12-05 15:36:58.204] [info] ".len();
    assert_eq!(
        written,
        prefix + (1 << 30) + 1,
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    // The runtime alone takes some 10 MiB; a copy of the message 1 GiB.
    assert!(peak < 256 * 1024, "edgepoll-host peaked at {peak} KiB");
}

/// Waits for `child` (for at most 120 s, then kills it and fails): its
/// wait status and its peak resident memory in KiB, which `Child::wait`
/// does not tell. The caller must not wait for it itself.
fn wait_with_peak(child: &std::process::Child) -> (i32, i64) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    let waiter = std::thread::spawn(move || {
        // SAFETY: a child of this process, waited for here alone; both
        // pointers are to live values.
        let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        (got == pid).then_some((status, usage.ru_maxrss))
    });
    if !edgepoll_tests::wait_until(Duration::from_secs(120), || waiter.is_finished()) {
        // SAFETY: the child, not yet waited for.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("edgepoll-host ran past 120 s");
    }
    waiter.join().expect("waiter").expect("wait4")
}

/// `value` as a signed LEB128 (an `i32.const`'s immediate).
fn signed_leb128(mut value: i64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        out.push(if done { byte } else { byte | 0x80 });
        if done {
            return out;
        }
    }
}

/// A module with `pages` of memory whose `_start` exits with the errno of
/// `poll_oneoff(0, 0, nsubs, 0)`: the list read from address 0 and its
/// events written over it, zeroed records, each a relative wait of 0 on
/// `CLOCK_REALTIME`, which fires at once.
fn polling_module(pages: u32, nsubs: u32) -> Vec<u8> {
    let (section, string) = (wasm_section, wasm_name);
    let wasi = string(b"wasi_snapshot_preview1");
    let mut body = vec![0u8]; // no locals
    for value in [0, 0, i64::from(nsubs), 0] {
        body.push(0x41); // i32.const
        body.extend(signed_leb128(value));
    }
    // call poll_oneoff; call proc_exit; end
    body.extend([0x10, 0, 0x10, 1, 0x0b]);

    // A positive number's signed LEB128 reads as its unsigned one too.
    let pages_leb = signed_leb128(i64::from(pages));
    [
        &b"\0asm\x01\0\0\0"[..],
        // (i32 i32 i32 i32) -> i32, (i32) -> (), () -> ()
        &section(
            1,
            &[
                3, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f, 0x60, 1, 0x7f, 0, 0x60, 0, 0,
            ],
        ),
        &section(
            2,
            &[
                &[2][..],
                &wasi,
                &string(b"poll_oneoff"),
                &[0, 0],
                &wasi,
                &string(b"proc_exit"),
                &[0, 1],
            ]
            .concat(),
        ),
        &section(3, &[1, 2]),
        &section(5, &[&[1, 0][..], &pages_leb].concat()),
        &section(
            7,
            &[
                &[2][..],
                &string(b"memory"),
                &[2, 0],
                &string(b"_start"),
                &[0, 2],
            ]
            .concat(),
        ),
        &section(10, &[&[1][..], &string(&body)].concat()),
    ]
    .concat()
}

/// A `poll_oneoff` list may have one subscription per 256 bytes of the
/// guest's memory, or 65 536 whatever its memory; a longer one is ENOMEM
/// before the host takes memory for it, where its bookkeeping (some 150
/// bytes a subscription) would make a guest's memory three times as much
/// of the host's. WasmEdge tries any list memory holds: a difference kept
/// on purpose (the README's list), so edgepoll-host's alone.
#[test]
fn a_poll_list_past_the_guests_share_of_memory_is_enomem_and_costs_the_host_nothing() {
    const NOMEM: i32 = 48;
    // 4 MiB: 65 536 at least; 64 MiB: 262 144, then as many as memory
    // holds (1 398 101 records of 48 bytes).
    for (pages, nsubs, errno) in [
        (64, 65_536, 0),
        (64, 65_537, NOMEM),
        (1024, 262_144, 0),
        (1024, 262_145, NOMEM),
        (1024, 1_398_101, NOMEM),
    ] {
        let path = std::env::temp_dir().join(format!(
            "edgepoll-poll-{pages}-{nsubs}-{}.wasm",
            std::process::id()
        ));
        let path = TempPath(path);
        std::fs::write(&path, polling_module(pages, nsubs)).expect("write");
        // Reaped by wait_with_peak.
        #[allow(clippy::zombie_processes)]
        let child = host_runtime()
            .command_with(&path, &[])
            .stdout(Stdio::null())
            .spawn()
            .expect("edgepoll-host");
        let (status, peak) = wait_with_peak(&child);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == errno,
            "{nsubs} subscriptions in {pages} pages: status {status:#x}, not errno {errno}"
        );
        // Its bookkeeping alone would take some 200 MB, and the events
        // written 43 MiB of the guest's memory.
        if nsubs == 1_398_101 {
            assert!(peak < 64 * 1024, "edgepoll-host peaked at {peak} KiB");
        }
    }
}

/// A guest that writes to stdout after its reader has gone ends as SIGPIPE
/// ends a process, quietly (status 141 in a shell: `| head` ends it), on
/// WasmEdge, which writes with `writev` and leaves SIGPIPE as it is, and
/// here; unless SIGPIPE was ignored when the runtime started. (The host answered EPIPE, the guest's own error path ran, and a
/// Rust guest's `println!` panicked into a trap: exit 134 and a message.)
#[test]
fn a_write_to_a_pipe_nobody_reads_ends_the_run_as_sigpipe_does() {
    use std::os::unix::process::ExitStatusExt;
    let guest = wasm("conformance_guest");
    on_each_runtime(|rt| {
        let (status, stderr) = reader_leaves(rt.command(&guest), rt.name());
        assert_eq!(
            status.signal(),
            Some(libc::SIGPIPE),
            "{}: {status:?} {stderr}",
            rt.name()
        );
        assert!(stderr.is_empty(), "{}: quietly: {stderr}", rt.name());
    });
    // Started with SIGPIPE ignored (systemd's default) or blocked,
    // WasmEdge's write fails with EPIPE, and the guest's own error path
    // runs (exit 3): so here. (This host had always raised SIGPIPE.)
    on_each_runtime(|rt| {
        for blocked in [false, true] {
            let mut command = rt.command(&guest);
            // SAFETY: only `signal` or `sigprocmask`, which are
            // async-signal-safe, between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                    match blocked {
                        false => {
                            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                        }
                        true => {
                            let mut set: libc::sigset_t = std::mem::zeroed();
                            libc::sigemptyset(&mut set);
                            libc::sigaddset(&mut set, libc::SIGPIPE);
                            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                        }
                    }
                    Ok(())
                });
            }
            let how = if blocked { "blocked" } else { "ignored" };
            let name = format!("{}, SIGPIPE {how}", rt.name());
            let (status, stderr) = reader_leaves(command, &name);
            assert_eq!(status.code(), Some(3), "{name}: {status:?} {stderr}");
            assert!(
                stderr.contains("stdout refused: errno Some(64)"),
                "{name}: {stderr}"
            );
        }
    });
    // Under --instances (threads of one process), even one, the write fails
    // with EPIPE instead: the guest's own error path runs (exit 3), and the
    // host goes on to report it.
    let mut host = Command::new(host_bin());
    host.args(["--instances", "1", "--restart", "no"])
        .arg(&guest);
    let (status, stderr) = reader_leaves(host, "edgepoll-host --instances 1");
    assert_eq!(status.code(), Some(3), "{status:?} {stderr}");
    assert!(
        stderr.contains("stdout refused: errno Some(64)"),
        "{stderr}"
    );
}

/// Runs `command` with `write-until-refused`, reads the first 4 KiB of its
/// stdout and closes it; its exit status (within a minute) and stderr.
fn reader_leaves(mut command: Command, name: &str) -> (std::process::ExitStatus, String) {
    let mut child = edgepoll_tests::KilledOnDrop::new(
        command
            .arg("write-until-refused")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the runtime starts"),
    );
    // Read apart, each with a bound: a guest that never writes fails the
    // test instead of holding it, and stderr cannot fill up meanwhile.
    let mut stdout = child.stdout.take().expect("stdout");
    let (first_read, first) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = [0u8; 4096];
        let _ = first_read.send(stdout.read_exact(&mut first).map(|()| stdout));
    });
    let mut pipe = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut stderr = String::new();
        let _ = pipe.read_to_string(&mut stderr);
        stderr
    });
    match first.recv_timeout(Duration::from_secs(60)) {
        // The reader leaves.
        Ok(Ok(stdout)) => drop(stdout),
        other => panic!("{name}: 4 KiB not written within a minute: {other:?}"),
    }
    let Some(status) = edgepoll_tests::wait_within(&mut child, Duration::from_secs(60)) else {
        panic!("{name}: still running a minute after its reader left");
    };
    (status, stderr.join().unwrap_or_default())
}

/// WASI calls use the module's memory whatever its export is named (here
/// `mem`), as WasmEdge's use memory 0: a `_start` that writes `hi` to
/// stdout through `fd_write` from a memory so exported.
#[test]
fn a_memory_exported_under_another_name_is_the_guest_s_memory() {
    let (section, name) = (wasm_section, wasm_name);
    let body = [0, 0x41, 1, 0x41, 0, 0x41, 1, 0x41, 16, 0x10, 0, 0x1a, 0x0b];
    let module = [
        b"\0asm\x01\0\0\0".to_vec(),
        // Types: fd_write's (i32 i32 i32 i32) -> i32, and [] -> [].
        section(
            1,
            &[2, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f, 0x60, 0, 0],
        ),
        section(
            2,
            &[
                &[1][..],
                &name(b"wasi_snapshot_preview1"),
                &name(b"fd_write"),
                &[0, 0],
            ]
            .concat(),
        ),
        section(3, &[1, 1]),
        section(5, &[1, 0, 1]),
        section(
            7,
            &[&[2][..], &name(b"mem"), &[2, 0], &name(b"_start"), &[0, 1]].concat(),
        ),
        // fd_write(1, iovec at 0, 1, written at 16), result dropped.
        section(10, &[&[1, body.len() as u8][..], &body].concat()),
        // The iovec (8, 2) at 0, and "hi" at 8.
        section(
            11,
            &[
                &[1, 0, 0x41, 0, 0x0b, 10, 8, 0, 0, 0, 2, 0, 0, 0][..],
                b"hi",
            ]
            .concat(),
        ),
    ]
    .concat();
    let path = TempPath(
        std::env::temp_dir().join(format!("edgepoll-mem-name-{}.wasm", std::process::id())),
    );
    std::fs::write(&path, module).expect("write");
    on_each_runtime(|rt| {
        let out = rt.command_with(&path, &[]).output_within();
        assert_eq!(out.status.code(), Some(0), "{}", rt.name());
        assert_eq!(out.stdout, b"hi", "{}", rt.name());
    });
}
