//! The chat itself: names, fan-out, announcements. No sockets here: the
//! event loop delivers what goes into the [`Outbox`].

use edgepoll::http::{Request, Response, StatusCode};
use edgepoll::ws::{Message, Outbox};
use edgepoll::Token;
use std::collections::HashMap;

const PAGE: &str = include_str!("page.html");
/// Longest name kept; a longer one is cut.
const MAX_NAME: usize = 32;

/// Who is connected, by connection.
#[derive(Default)]
pub struct Chat {
    names: HashMap<Token, String>,
    joined: u64,
}

impl edgepoll::http::Service for Chat {
    fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
        match (request.method(), request.path()) {
            ("GET" | "HEAD", "/") => Response::new(StatusCode::OK)
                .header("Content-Type", "text/html; charset=utf-8")
                .body(PAGE),
            _ => Response::new(StatusCode::NOT_FOUND)
                .header("Content-Type", "text/plain")
                .body("not found: the chat is at / and its WebSocket at /ws\n"),
        }
    }
}

impl edgepoll::ws::Service for Chat {
    fn accepts(&mut self, request: &Request<'_>) -> bool {
        request.path() == "/ws"
    }

    fn on_open(&mut self, peer: Token, target: &str, out: &mut Outbox) {
        self.joined += 1;
        let name = name_from(target).unwrap_or_else(|| format!("guest{}", self.joined));
        out.broadcast(Message::Text(&format!("* {name} joined")));
        self.names.insert(peer, name);
    }

    fn on_message(&mut self, from: Token, message: Message<'_>, out: &mut Outbox) {
        let name = self.names.get(&from).map_or("?", String::as_str);
        match message {
            Message::Text(text) => out.broadcast(Message::Text(&format!("{name}: {text}"))),
            Message::Binary(bytes) => {
                let mut framed = format!("{name}: ").into_bytes();
                framed.extend_from_slice(bytes);
                out.broadcast(Message::Binary(&framed));
            }
        }
    }

    fn on_close(&mut self, peer: Token, out: &mut Outbox) {
        if let Some(name) = self.names.remove(&peer) {
            out.broadcast(Message::Text(&format!("* {name} left")));
        }
    }
}

/// The `name` query parameter, percent-decoded, trimmed to printable
/// characters and [`MAX_NAME`] of them.
fn name_from(target: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("name="))?;
    let decoded = percent_decode(raw);
    let name: String = decoded
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepoll::ws::Service as _;

    #[test]
    fn names_come_from_the_query_and_are_cleaned() {
        assert_eq!(name_from("/ws?name=al%20ice").as_deref(), Some("al ice"));
        assert_eq!(name_from("/ws?x=1&name=bob+b").as_deref(), Some("bob b"));
        assert_eq!(name_from("/ws?name=%0A").as_deref(), None);
        assert_eq!(name_from("/ws").as_deref(), None);
        assert_eq!(
            name_from(&format!("/ws?name={}", "x".repeat(99))).map(|n| n.len()),
            Some(32)
        );
    }

    #[test]
    fn joins_messages_and_leaves_are_broadcast_with_names() {
        let mut chat = Chat::default();
        let mut out = Outbox::default();
        chat.on_open(Token(1), "/ws?name=ann", &mut out);
        chat.on_message(Token(1), Message::Text("hi"), &mut out);
        chat.on_close(Token(1), &mut out);
        chat.on_close(Token(1), &mut out);
        assert_eq!(
            format!("{out:?}").matches("Broadcast").count(),
            3,
            "join, message, leave; a second close says nothing"
        );
    }
}
