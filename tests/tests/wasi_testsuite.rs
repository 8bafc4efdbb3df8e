//! The official WASI test suite (WebAssembly/wasi-testsuite, branch
//! `prod/testsuite-base`: its prebuilt wasm32-wasip1 programs and their
//! specs) on every runtime present. Every test must pass on each: WasmEdge
//! 0.14.1 passes them all, and edgepoll-host mirrors it.
//!
//! Each test is `NAME.wasm` with an optional `NAME.json`: `args`, `env`,
//! `root` (a directory the guest sees as `/`) or `dirs` (directories the
//! guest sees by their own names), each copied first, for tests change
//! them; `exit_code` (0 if absent), `stdout` and `stderr`. A spec with
//! any other key, or a value of another type, fails the test: nothing it
//! asks is left unchecked. The runtime is run as
//! `RUNTIME [--env K=V]... [--dir GUEST:COPY]... NAME.wasm [ARGS]...`, the
//! command line of both `wasmedge` and `edgepoll-host`.

use edgepoll_tests::{all_runtimes, finish_within, root, Runtime};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How to get the suite, for a machine without it.
const GET_IT: &str = "git clone --depth 1 -b prod/testsuite-base \
    https://github.com/WebAssembly/wasi-testsuite ../shared/wasi-testsuite";

/// The suite's folder: `$WASI_TESTSUITE`, or `shared/wasi-testsuite` beside
/// this checkout or beside the one it was cloned from (as CI clones it).
fn suite() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("WASI_TESTSUITE") {
        candidates.push(dir.into());
    }
    candidates.push(root().join("../shared/wasi-testsuite"));
    let origin = Command::new("git")
        .current_dir(root())
        .args(["config", "--get", "remote.origin.url"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|o| !o.is_empty());
    if let Some(origin) = origin {
        candidates.push(PathBuf::from(origin).join("../shared/wasi-testsuite"));
    }
    candidates
        .iter()
        .find(|dir| dir.join("tests").is_dir())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the WASI test suite is missing: no tests/ in {candidates:?}. \
                 Get it with `{GET_IT}` (run from this checkout), \
                 or name its folder in WASI_TESTSUITE"
            )
        })
}

/// The command each test is run with: WasmEdge's command line.
fn runtime_command(runtime: &Runtime) -> PathBuf {
    match runtime {
        Runtime::Host(bin) => bin.clone(),
        Runtime::WasmEdge => PathBuf::from("wasmedge"),
        Runtime::WasmEdgeAot => root().join("scripts/wasmedge-aot"),
    }
}

/// Every test's program, `tests/LANGUAGE/testsuite/wasm32-wasip1/NAME.wasm`,
/// in order.
fn programs(suite: &Path) -> Vec<PathBuf> {
    let list = |dir: &Path| -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        paths.sort();
        paths
    };
    list(&suite.join("tests"))
        .iter()
        .flat_map(|language| list(&language.join("testsuite/wasm32-wasip1")))
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .collect()
}

/// A copy of `from` at `to`, links as links, every file and directory
/// writable by its owner (the suite's own copy may be read-only).
fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).expect("a scratch directory");
    for entry in std::fs::read_dir(from).expect("the fixture is readable") {
        let entry = entry.expect("a directory entry");
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().expect("its type");
        if kind.is_symlink() {
            let text = std::fs::read_link(&source).expect("a link's text");
            std::os::unix::fs::symlink(text, &target).expect("copy a link");
            continue;
        }
        if kind.is_dir() {
            copy_tree(&source, &target);
        } else {
            std::fs::copy(&source, &target).expect("copy a file");
        }
        let mode = std::fs::metadata(&target)
            .expect("stat")
            .permissions()
            .mode();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode | 0o200))
            .expect("make it writable");
    }
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Runs one test on `runtime` in `scratch`; `Err` says how it failed.
fn run_test(runtime: &Runtime, wasm: &Path, scratch: &Path) -> Result<(), String> {
    let spec_path = wasm.with_extension("json");
    let spec: Value = match std::fs::read(&spec_path) {
        Ok(text) => serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not JSON: {e}", spec_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Default::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", spec_path.display())),
    };
    let spec = spec.as_object().ok_or("a spec that is not an object")?;
    let known = [
        "args",
        "env",
        "root",
        "dirs",
        "exit_code",
        "stdout",
        "stderr",
    ];
    if let Some(key) = spec.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!(
            "the spec asks {key:?}, which this runner does not check"
        ));
    }
    let text = |value: &Value, what: &str| -> Result<String, String> {
        value
            .as_str()
            .map(str::to_string)
            .ok_or(format!("{what} that is not a string: {value}"))
    };
    let list = |key: &str| -> Result<Vec<String>, String> {
        match spec.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(|v| text(v, key)).collect(),
            Some(other) => Err(format!("{key} that is not a list: {other}")),
        }
    };
    let mut command = Command::new(runtime_command(runtime));
    match spec.get("env") {
        None => {}
        Some(Value::Object(env)) => {
            for (name, value) in env {
                let value = text(value, "an env value")?;
                command.arg("--env").arg(format!("{name}={value}"));
            }
        }
        Some(other) => return Err(format!("env that is not an object: {other}")),
    }
    if let Some(fixture) = spec.get("root") {
        let copy = scratch.join("root");
        copy_tree(&wasm.with_file_name(text(fixture, "root")?), &copy);
        command.arg("--dir").arg(format!("/:{}", copy.display()));
    }
    for dir in list("dirs")? {
        let copy = scratch.join("dirs").join(&dir);
        copy_tree(&wasm.with_file_name(&dir), &copy);
        command
            .arg("--dir")
            .arg(format!("{dir}:{}", copy.display()));
    }
    command.arg(wasm);
    command.args(list("args")?);
    let mut child = command
        .current_dir(scratch)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", runtime.name()))?;
    // Stdin is an empty pipe, its end already come (`poll_oneoff_stdio`
    // polls it: /dev/null is no file epoll takes).
    drop(child.stdin.take());
    // 20 s a test (the suite's own limit is 60 s): one that hangs fails.
    let out = finish_within(child, Duration::from_secs(20))
        .map_err(|_| "did not finish within 20 s".to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last: Vec<&str> = stderr.trim().lines().rev().take(3).collect();
    let want = match spec.get("exit_code") {
        None => 0,
        Some(code) => code
            .as_i64()
            .ok_or(format!("exit_code that is not a number: {code}"))?,
    };
    if out.status.code().map(i64::from) != Some(want) {
        return Err(format!(
            "exit {:?}, expected {want}: {}",
            out.status.code(),
            last.join(" | ")
        ));
    }
    // Compared trimmed at both ends: a final newline is not the point.
    for (key, got) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if let Some(expected) = spec.get(key) {
            let expected = text(expected, key)?;
            let got = String::from_utf8_lossy(got);
            if got.trim() != expected.trim() {
                return Err(format!("{key} {got:.80?}, expected {expected:.80?}"));
            }
        }
    }
    Ok(())
}

#[test]
fn the_official_wasi_testsuite_passes_on_every_runtime() {
    let suite = suite();
    let programs = programs(&suite);
    assert!(
        programs.len() >= 72,
        "only {} tests found in {} (get the suite with `{GET_IT}`)",
        programs.len(),
        suite.display()
    );
    // The tests are apart (each in a scratch directory of its own, with
    // copies of its fixtures), so they run a core each: one after the
    // other, the suite took a core for 2 to 3 minutes while the other idled.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    for runtime in all_runtimes() {
        let next = AtomicUsize::new(0);
        let failures = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for worker in 0..workers {
                let (next, failures, runtime) = (&next, &failures, &runtime);
                let (programs, suite) = (&programs, &suite);
                scope.spawn(move || {
                    let tag = format!("wasi-test-{worker}");
                    while let Some(wasm) = programs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let scratch = edgepoll_tests::scratch_dir(&tag, runtime);
                        let name = wasm.strip_prefix(suite.join("tests")).unwrap_or(wasm);
                        if let Err(why) = run_test(runtime, wasm, &scratch) {
                            let failure = format!("{}: {why}", name.display());
                            failures
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(failure);
                        }
                    }
                });
            }
        });
        let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
        failures.sort();
        let passed = programs.len() - failures.len();
        assert!(
            failures.is_empty(),
            "wasi-testsuite on {}: {passed} of {} passed; failures:\n{}",
            runtime.name(),
            programs.len(),
            failures.join("\n")
        );
        println!(
            "wasi-testsuite on {}: {passed} of {} passed",
            runtime.name(),
            programs.len()
        );
    }
}
