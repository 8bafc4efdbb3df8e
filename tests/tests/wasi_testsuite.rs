//! The official WASI test suite (WebAssembly/wasi-testsuite, its prebuilt
//! wasm32-wasip1 programs) on every runtime present, through the runner that
//! ships with it (`../shared/wasi-testsuite/run.py`). Every test must pass on
//! each: WasmEdge 0.14.1 passes them all, and edgepoll-host mirrors it.

use edgepoll_tests::{all_runtimes, root, wait_bounded, Runtime};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

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
        .find(|dir| dir.join("run.py").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the WASI test suite is missing: looked for run.py in {candidates:?}. \
                 Put WebAssembly/wasi-testsuite's prebuilt wasm32-wasip1 tests with its run.py \
                 at ../shared/wasi-testsuite, or name the folder in WASI_TESTSUITE"
            )
        })
}

/// The command run.py starts each test with: WasmEdge's command line.
fn runtime_command(runtime: &Runtime) -> PathBuf {
    match runtime {
        Runtime::Host(bin) => bin.clone(),
        Runtime::WasmEdge => PathBuf::from("wasmedge"),
        Runtime::WasmEdgeAot => root().join("scripts/wasmedge-aot"),
    }
}

fn count_tests(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("the suite's folders are readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            n += count_tests(&path);
        } else if path.extension().is_some_and(|e| e == "wasm") {
            n += 1;
        }
    }
    n
}

#[test]
fn the_official_wasi_testsuite_passes_on_every_runtime() {
    let suite = suite();
    let expected = count_tests(&suite.join("tests"));
    assert!(
        expected >= 72,
        "only {expected} tests found in {}",
        suite.display()
    );
    for runtime in all_runtimes() {
        // Each test has 20 s (the suite's own limit is 60 s), and all of
        // them on one runtime half an hour, so that a runtime that hangs
        // fails the test instead of holding CI.
        let child = Command::new("python3")
            .arg(suite.join("run.py"))
            .args(["--timeout", "20"])
            .arg(runtime_command(&runtime))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs (install python3)");
        let out = wait_bounded(child, Duration::from_secs(1800));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
        let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
        assert!(
            out.status.success() && failures.is_empty() && passed == expected,
            "wasi-testsuite on {}: {passed} of {expected} passed; failures:\n{}\n{}",
            runtime.name(),
            failures.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "wasi-testsuite on {}: {passed} of {expected} passed",
            runtime.name()
        );
    }
}
