//! examples/ws_chat against real WebSocket clients (Python's `websockets`,
//! tests/ws/clients.py) on every runtime present: two clients see each
//! other, a thousand receive one broadcast, fragmented and binary messages,
//! ping/pong, the handshake's answers, each protocol violation's close code
//! while a bystander carries on, a client that never reads is dropped
//! without the server's memory growing, a client flooding the chat in
//! one burst is closed (1008) while a reader stays, and a message sent
//! with a close in one write is answered before the close.

use edgepoll_tests::{build, on_each_runtime, run_ws_clients, start_program};
use std::time::Duration;

#[test]
fn chat_serves_real_websocket_clients() {
    build();
    on_each_runtime(|runtime| {
        let server = start_program(runtime, "ws_chat", &[], &[]);
        let limit = Duration::from_secs(600);
        let (passed, output) = run_ws_clients(server.addr, server.pid(), &[], limit);
        println!("{}: {}", runtime.name(), output.trim().replace('\n', "; "));
        assert!(passed, "{output}");
    });
}
