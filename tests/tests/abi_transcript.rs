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

fn run(runtime: &Runtime, program: &str, args: &[&str]) -> Run {
    let out = run_wasm(runtime, program, args, Duration::from_secs(120));
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

#[test]
fn the_socket_abi_transcript_is_identical_on_every_runtime() {
    let runtimes = all_runtimes();
    let recording = std::env::var_os("EDGEPOLL_RECORD_TRANSCRIPT").is_some();
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
