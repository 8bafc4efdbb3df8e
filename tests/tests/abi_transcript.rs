//! The differential ABI transcript: `tests/guests/abi_transcript` calls every
//! host function the socket programs import, with valid, boundary and hostile
//! arguments, one line per call. WasmEdge is the truth: every runtime present
//! must print its transcript byte for byte, and the test names the first line
//! that differs.
//!
//! With `wasmedge` on PATH the transcripts of its interpreter and AOT
//! compiler are the reference, and the recorded copies in `tests/golden/`
//! must still match them. Without it, edgepoll-host is held to those recorded
//! copies (made by WasmEdge 0.14.1); `EDGEPOLL_RECORD_TRANSCRIPT=1` with
//! `wasmedge` on PATH writes them anew.

use edgepoll_tests::{all_runtimes, root, run_wasm, Runtime};
use std::path::PathBuf;
use std::time::Duration;

const PROGRAMS: [&str; 2] = ["abi_transcript", "abi_transcript_by_signature"];

/// WasmEdge's own log lines (spdlog writes them to stdout), set aside.
fn is_runtime_log(line: &str) -> bool {
    line.starts_with('[')
        && line
            .as_bytes()
            .get(1..5)
            .is_some_and(|y| y.iter().all(u8::is_ascii_digit))
}

struct Run {
    transcript: String,
    logs: Vec<String>,
    code: Option<i32>,
}

/// The guest's exit status when a kernel-chosen port reads the same
/// byte-swapped (its `AMBIGUOUS_PORT`): the run says nothing and is repeated.
const AMBIGUOUS_PORT: i32 = 75;

fn run(runtime: &Runtime, program: &str, args: &[&str]) -> Run {
    let mut out = run_wasm(runtime, program, args, Duration::from_secs(120));
    for _ in 0..4 {
        if out.status.code() != Some(AMBIGUOUS_PORT) {
            break;
        }
        out = run_wasm(runtime, program, args, Duration::from_secs(120));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (logs, lines): (Vec<&str>, Vec<&str>) = stdout.lines().partition(|l| is_runtime_log(l));
    Run {
        transcript: lines.iter().map(|l| format!("{l}\n")).collect(),
        logs: logs.iter().map(|l| l.to_string()).collect(),
        code: out.status.code(),
    }
}

/// Panics with the first line where `got` differs from `want`.
fn assert_same(want: &str, want_name: &str, got: &str, got_name: &str, what: &str) {
    if want == got {
        return;
    }
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let at = w
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(w.len().min(g.len()));
    panic!(
        "{what}: the transcripts differ first at line {}\n  {want_name:>14}: {}\n  {got_name:>14}: {}\n({} and {} lines in all)",
        at + 1,
        w.get(at).copied().unwrap_or("<end of transcript>"),
        g.get(at).copied().unwrap_or("<end of transcript>"),
        w.len(),
        g.len()
    );
}

fn golden(program: &str) -> PathBuf {
    root().join("tests/golden").join(format!("{program}.txt"))
}

fn calls(transcript: &str) -> usize {
    transcript
        .lines()
        .filter(|l| {
            l.len() > 4
                && l.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && l.as_bytes()[3] == b' '
        })
        .count()
}

/// Whether this run records tests/golden (`EDGEPOLL_RECORD_TRANSCRIPT`)
/// instead of comparing with it: never under CI, which must compare.
fn recording() -> bool {
    let recording = std::env::var_os("EDGEPOLL_RECORD_TRANSCRIPT").is_some();
    assert!(
        !(recording && std::env::var("CI").as_deref() == Ok("true")),
        "CI=true compares with tests/golden: unset EDGEPOLL_RECORD_TRANSCRIPT (.ci/run does)"
    );
    recording
}

#[test]
fn the_socket_abi_transcript_is_identical_on_every_runtime() {
    let runtimes = all_runtimes();
    let recording = recording();
    for program in PROGRAMS {
        let runs: Vec<(&Runtime, Run)> = runtimes
            .iter()
            .map(|rt| (rt, run(rt, program, &[])))
            .collect();
        for (rt, r) in &runs {
            assert_eq!(
                r.code,
                Some(0),
                "{program} failed on {}:\n{}",
                rt.name(),
                r.transcript
            );
            for log in &r.logs {
                println!("{program} on {} logged: {log}", rt.name());
            }
        }
        let reference = runs.iter().find(|(rt, _)| !matches!(rt, Runtime::Host(_)));
        let recorded = std::fs::read_to_string(golden(program)).unwrap_or_default();
        match reference {
            Some((wasmedge, truth)) => {
                if recording {
                    std::fs::create_dir_all(root().join("tests/golden"))
                        .expect("create tests/golden");
                    std::fs::write(golden(program), &truth.transcript)
                        .expect("write the recorded transcript");
                } else {
                    assert_same(
                        &recorded,
                        "recorded",
                        &truth.transcript,
                        wasmedge.name(),
                        &format!("{program}: tests/golden is out of date (re-record: EDGEPOLL_RECORD_TRANSCRIPT=1 with wasmedge on PATH)"),
                    );
                }
                for (rt, r) in &runs {
                    assert_same(
                        &truth.transcript,
                        wasmedge.name(),
                        &r.transcript,
                        rt.name(),
                        program,
                    );
                }
            }
            None => {
                println!("NOTE: wasmedge is not on PATH: {program} on edgepoll-host is compared with the transcript WasmEdge 0.14.1 recorded (tests/golden)");
                for (rt, r) in &runs {
                    assert_same(
                        &recorded,
                        "WasmEdge 0.14.1 (recorded)",
                        &r.transcript,
                        rt.name(),
                        program,
                    );
                }
            }
        }
        if program == "abi_transcript" {
            let n = calls(&runs[0].1.transcript);
            assert!(n >= 300, "{program} made only {n} calls");
            readme_says(&format!("{n} socket and clock calls"));
            println!("{program}: {n} calls, identical on {} runtimes", runs.len());
        }
    }
}

#[test]
fn calls_that_fail_as_functions_on_wasmedge_end_the_guest_on_every_runtime() {
    for case in ["getaddrinfo-short-chain", "getaddrinfo-name-past-the-end"] {
        let runs: Vec<(Runtime, Run)> = all_runtimes()
            .into_iter()
            .map(|rt| {
                let r = run(&rt, "abi_transcript", &["fatal", case]);
                (rt, r)
            })
            .collect();
        for (rt, r) in &runs {
            assert!(
                !r.transcript.contains("still running") && r.code.is_some_and(|c| c != 0),
                "{case} on {}: the guest went on ({:?}): {}",
                rt.name(),
                r.code,
                r.transcript
            );
            assert_same(
                &runs[0].1.transcript,
                runs[0].0.name(),
                &r.transcript,
                rt.name(),
                case,
            );
        }
    }
}

/// Lays out a fresh sandbox for `abi_transcript files` under `dir`:
/// `sandbox/` (preopened as `/sandbox`) holds files, a subdirectory and links
/// that stay inside, and links that lead to `outside/`, which holds a secret
/// no runtime may let the guest read, write, link to or create files beside.
/// `path`, made and held under this process's write lease: another's
/// open of it with O_NONBLOCK gets EAGAIN until the lease is let go (or
/// broken, `/proc/sys/fs/lease-break-time` seconds after the first such
/// open). The notice of an open (SIGIO, which would end the process) is
/// ignored. The lease is asked again while it is refused with EAGAIN: a
/// process another test starts in the meantime holds a copy of every
/// descriptor of this one, the file's too, until it executes its program,
/// and no write lease is given on a file open elsewhere.
fn write_lease(path: &std::path::Path) -> std::fs::File {
    use std::os::fd::AsRawFd;
    std::fs::write(path, "leased").expect("write leased.txt");
    let file = std::fs::File::open(path).expect("open leased.txt");
    // SAFETY: ignoring a signal.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    for _ in 0..200 {
        // SAFETY: a lease on a descriptor held open.
        let leased = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
        let error = std::io::Error::last_os_error();
        match leased {
            0 => return file,
            _ if error.raw_os_error() == Some(libc::EAGAIN) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => panic!("a write lease: {error}"),
        }
    }
    panic!("a write lease: refused for 2 s (the file stays open elsewhere)")
}

fn sandbox_tree(dir: &std::path::Path) {
    use std::os::unix::fs::symlink;
    let _ = std::fs::remove_dir_all(dir);
    let sandbox = dir.join("sandbox");
    std::fs::create_dir_all(sandbox.join("sub")).expect("create the sandbox");
    std::fs::create_dir_all(dir.join("outside")).expect("create outside/");
    std::fs::write(dir.join("outside/secret.txt"), "secret").expect("write the secret");
    std::fs::write(sandbox.join("file.txt"), "hello").expect("write file.txt");
    std::fs::write(sandbox.join("sub/inner.txt"), "inner").expect("write sub/inner.txt");
    let links: [(&str, String); 11] = [
        (
            "link_abs",
            dir.join("outside/secret.txt").display().to_string(),
        ),
        ("link_rel", "../outside/secret.txt".into()),
        ("linkdir", "../outside".into()),
        ("link_mid", "sub".into()),
        ("link_file", "file.txt".into()),
        ("dangling_out", "../outside/created.txt".into()),
        ("dangling_in", "sub/new_from_link.txt".into()),
        ("loop", "loop".into()),
        ("sub/up", "..".into()),
        ("sub/upup", "../..".into()),
        ("sub/abs_up", "/".into()),
    ];
    for (name, target) in links {
        symlink(target, sandbox.join(name)).expect("make a link");
    }
    // Chains of eight and seven links: WasmEdge follows at most seven, in
    // the middle of a path and last together. `c` and `d` end at a file,
    // `e` and `f` at a directory (for paths through them).
    // `deep/` is for them alone: `sub` is renamed along the way.
    std::fs::create_dir_all(sandbox.join("deep")).expect("create deep/");
    std::fs::write(sandbox.join("deep/inner.txt"), "deep").expect("write deep/inner.txt");
    symlink("..", sandbox.join("deep/up")).expect("make a link");
    symlink("deep", sandbox.join("to_deep")).expect("make a link");
    for (prefix, length, end) in [
        ("c", 8, "file.txt"),
        ("d", 7, "file.txt"),
        ("e", 8, "deep"),
        ("f", 7, "deep"),
    ] {
        for i in 1..=length {
            let target = if i == length {
                end.to_string()
            } else {
                format!("{prefix}{}", i + 1)
            };
            symlink(target, sandbox.join(format!("{prefix}{i}"))).expect("make a chain link");
        }
    }
    std::fs::write(sandbox.join("victim.txt"), "victim").expect("write victim.txt");
    for (name, target) in [
        ("victim_link", "victim.txt"),
        ("sym_at", "sym_made"),
        ("hard_at", "hard_made"),
    ] {
        symlink(target, sandbox.join(name)).expect("make a link");
    }
}

/// Every file below `dir` with its content (links by their text).
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable") {
            let path = entry.expect("an entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("a status");
            let shown = path.strip_prefix(dir).expect("below").display().to_string();
            if meta.is_dir() {
                out.push(format!("{shown}/"));
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                out.push(format!(
                    "{shown} -> {:?}",
                    std::fs::read_link(&path).expect("a link")
                ));
            } else {
                let content = std::fs::read(&path).expect("a readable file");
                out.push(format!(
                    "{shown}: {:?} (mtime {:?})",
                    String::from_utf8_lossy(&content),
                    meta.modified().ok()
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_filesystem_transcript_is_identical_and_no_guest_leaves_its_directory() {
    let scratch = edgepoll_tests::TempPath(
        std::env::temp_dir().join(format!("edgepoll-files-{}", std::process::id())),
    );
    let mut runs = Vec::new();
    for rt in all_runtimes() {
        let dir = scratch.join(rt.name().replace(' ', "-"));
        sandbox_tree(&dir);
        let outside_before = listing(&dir.join("outside"));
        let mapping = format!("/sandbox:{}", dir.join("sandbox").display());
        let lease = write_lease(&dir.join("sandbox/leased.txt"));
        let out = edgepoll_tests::run_wasm_with(
            &rt,
            "abi_transcript",
            &["--dir", &mapping],
            &["files"],
            Duration::from_secs(120),
        );
        drop(lease);
        let transcript = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !is_runtime_log(l))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        assert_eq!(
            out.status.code(),
            Some(0),
            "abi_transcript files failed on {}:\n{transcript}\n{}",
            rt.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            listing(&dir.join("outside")),
            outside_before,
            "on {}, the guest changed what lies outside its directory",
            rt.name()
        );
        let scratch_name = dir.display().to_string();
        let sandbox: Vec<String> = listing(&dir.join("sandbox"))
            .iter()
            .map(|l| l.replace(&scratch_name, "<scratch>"))
            .collect();
        runs.push((rt, transcript, sandbox));
    }
    let golden_path = golden("abi_transcript_files");
    let recorded = std::fs::read_to_string(&golden_path).unwrap_or_default();
    let reference = runs
        .iter()
        .find(|(rt, _, _)| !matches!(rt, Runtime::Host(_)));
    let truth = match reference {
        Some((wasmedge, transcript, _)) => {
            if recording() {
                std::fs::write(&golden_path, transcript).expect("write the recorded transcript");
            } else {
                assert_same(&recorded, "recorded", transcript, wasmedge.name(), "abi_transcript files: tests/golden is out of date (re-record: EDGEPOLL_RECORD_TRANSCRIPT=1 with wasmedge on PATH)");
            }
            (wasmedge.name(), transcript.clone())
        }
        None => {
            println!("NOTE: wasmedge is not on PATH: abi_transcript files on edgepoll-host is compared with the transcript WasmEdge 0.14.1 recorded (tests/golden)");
            ("WasmEdge 0.14.1 (recorded)", recorded)
        }
    };
    for (rt, transcript, sandbox) in &runs {
        assert_same(
            &truth.1,
            truth.0,
            transcript,
            rt.name(),
            "abi_transcript files",
        );
        // What the guest left inside, byte for byte, is the same too (times
        // aside: only the ones the transcript set are equal).
        let strip = |v: &Vec<String>| -> Vec<String> {
            v.iter()
                .map(|l| l.split(" (mtime").next().unwrap_or(l).to_string())
                .collect()
        };
        assert_eq!(
            strip(sandbox),
            strip(&runs[0].2),
            "the sandbox {} left differs from {}'s",
            rt.name(),
            runs[0].0.name()
        );
    }
    let n = calls(&runs[0].1);
    assert!(n >= 100, "abi_transcript files made only {n} calls");
    readme_says(&format!("(`abi_transcript files`, {n} calls)"));
    readme_says(&format!("(and {n} filesystem calls)"));
    println!(
        "abi_transcript files: {n} calls, identical on {} runtimes, nothing outside changed",
        runs.len()
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The README gives the transcripts' sizes: they stay true as cases are added.
fn readme_says(phrase: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    assert!(
        readme.replace('\n', " ").contains(phrase),
        "README.md should say {phrase:?}: update its count"
    );
}
