//! examples/ws_chat against real WebSocket clients (Python's `websockets`,
//! tests/ws/clients.py) on every runtime present: two clients see each
//! other, a thousand receive one broadcast, fragmented and binary messages,
//! ping/pong, the handshake's answers, each protocol violation's close code
//! while a bystander carries on, and a client that never reads is dropped
//! without the server's memory growing.

use edgepoll_tests::{build, on_each_runtime, root, start_program};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn chat_serves_real_websocket_clients() {
    build();
    let probe = Command::new("python3")
        .args(["-c", "import websockets"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "Python 3 with the websockets package is needed: python3 -m pip install websockets (make test installs it)"
    );
    on_each_runtime(|runtime| {
        let server = start_program(runtime, "ws_chat", &[], &[]);
        let started = Instant::now();
        let mut child = Command::new("python3")
            .arg(root().join("tests/ws/clients.py"))
            .arg(server.addr.to_string())
            .arg(server.pid().to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        // The script bounds each case; this bounds the whole run.
        let limit = Duration::from_secs(600);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait works") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                panic!("the WebSocket clients did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut output = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            use std::io::Read;
            let _ = stdout.read_to_string(&mut output);
        }
        println!("{}: {}", runtime.name(), output.trim().replace('\n', "; "));
        assert!(status.success(), "{output}");
    });
}
