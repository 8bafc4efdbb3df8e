//! The native fan-out baseline: ws_chat's protocol (join and leave notices,
//! every message broadcast to everyone as "name: text") on tungstenite over a
//! single-threaded mio loop, with the same 256 KiB bound per connection's
//! queue. For `make bench` only.
//!
//! Usage: `ws_native [ADDR]` (default 127.0.0.1:1236); the WebSocket is at
//! `/ws?name=NAME`.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::cell::RefCell;
use std::io::ErrorKind;
use std::rc::Rc;
use tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response, ServerHandshake};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message, WebSocket};

const LISTENER: Token = Token(usize::MAX);
const MAX_QUEUED: usize = 256 * 1024;

/// Takes the name from `?name=` during the handshake.
struct NameFromPath(Rc<RefCell<String>>);

impl Callback for NameFromPath {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        let name = request
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("name="))
            .unwrap_or("guest");
        *self.0.borrow_mut() = name.chars().take(32).collect();
        Ok(response)
    }
}

type Handshake = MidHandshake<ServerHandshake<TcpStream, NameFromPath>>;

enum Conn {
    Handshaking(Handshake, Rc<RefCell<String>>),
    Open(WebSocket<TcpStream>, String),
}

fn config() -> WebSocketConfig {
    // Frames gather in the write buffer (128 KiB by default) until the
    // round's flush: one send per connection per round, as edgepoll does.
    WebSocketConfig::default()
        .max_write_buffer_size(MAX_QUEUED)
        .max_message_size(Some(1 << 20))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1236".into());
    let addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {addr}");
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut outgoing: Vec<Message> = Vec::new();
    loop {
        poll.poll(&mut events, None)?;
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    // Nagle left on, as in ws_chat: WasmEdge 0.14 cannot turn
                    // it off, and a peer that did would send its broadcasts
                    // in more, smaller segments than the server it is
                    // measured against.
                    let slot = conns.iter().position(Option::is_none).unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.registry().register(
                        &mut stream,
                        Token(slot),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    let name = Rc::new(RefCell::new(String::new()));
                    let start = tungstenite::accept_hdr_with_config(
                        stream,
                        NameFromPath(name.clone()),
                        Some(config()),
                    );
                    conns[slot] = handshake_step(start, name, &mut outgoing);
                }
                continue;
            }
            let index = event.token().0;
            let Some(conn) = conns.get_mut(index).and_then(Option::take) else {
                continue;
            };
            conns[index] = match conn {
                Conn::Handshaking(mid, name) => {
                    handshake_step(mid.handshake(), name, &mut outgoing)
                }
                Conn::Open(mut ws, name) => {
                    let open = read_all(&mut ws, &name, &mut outgoing)
                        && (!event.is_writable() || flushed(&mut ws));
                    if open {
                        Some(Conn::Open(ws, name))
                    } else {
                        outgoing.push(Message::text(format!("* {name} left")));
                        None
                    }
                }
            };
        }
        // Deliver the round's broadcasts: queue each to everyone, then flush.
        while !outgoing.is_empty() {
            let messages = std::mem::take(&mut outgoing);
            for slot in conns.iter_mut() {
                let Some(Conn::Open(ws, name)) = slot else {
                    continue;
                };
                let queued = messages.iter().all(|m| ws.write(m.clone()).is_ok());
                if !queued || !flushed(ws) {
                    outgoing.push(Message::text(format!("* {name} left")));
                    *slot = None;
                }
            }
        }
    }
}

fn handshake_step(
    step: Result<WebSocket<TcpStream>, HandshakeError<ServerHandshake<TcpStream, NameFromPath>>>,
    name: Rc<RefCell<String>>,
    outgoing: &mut Vec<Message>,
) -> Option<Conn> {
    match step {
        Ok(ws) => {
            let name = name.borrow().clone();
            outgoing.push(Message::text(format!("* {name} joined")));
            Some(Conn::Open(ws, name))
        }
        Err(HandshakeError::Interrupted(mid)) => Some(Conn::Handshaking(mid, name)),
        Err(HandshakeError::Failure(_)) => None,
    }
}

/// Reads every complete message; false once the connection is over.
fn read_all(ws: &mut WebSocket<TcpStream>, name: &str, outgoing: &mut Vec<Message>) -> bool {
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => outgoing.push(Message::text(format!("{name}: {text}"))),
            Ok(Message::Binary(bytes)) => {
                let mut framed = format!("{name}: ").into_bytes();
                framed.extend_from_slice(&bytes);
                outgoing.push(Message::binary(framed));
            }
            Ok(_) => {}
            Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// Flushes what is queued; false if the connection failed.
fn flushed(ws: &mut WebSocket<TcpStream>) -> bool {
    match ws.flush() {
        Ok(()) => true,
        Err(Error::Io(e)) => e.kind() == ErrorKind::WouldBlock,
        Err(_) => false,
    }
}
