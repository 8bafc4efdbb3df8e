//! The chat itself: names, fan-out, announcements. No sockets here: the
//! event loop delivers what goes into the [`Outbox`].

use edgepoll::http::{Request, Response, StatusCode};
use edgepoll::ws::{CloseCode, Message, Outbox};
use edgepoll::Token;
use std::collections::HashMap;

const PAGE: &str = include_str!("page.html");
/// Largest message taken (the server closes a sender of a larger one with
/// 1009).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Longest name kept; a longer one is cut.
const MAX_NAME: usize = 32;
/// Most bytes one member's messages may queue to everyone before the loop
/// delivers them (it does once it has read that member's socket: up to 16
/// reads of 64 KiB). Each
/// message is queued to every member, and a member whose queue is found at
/// its limit (256 KiB) is dropped: without this bound, one member sending
/// thousands of messages in one burst (the frame of an empty one is 6
/// bytes in, 40 out) filled every queue before any could be written, and
/// everyone was dropped. That member is closed instead (1008). One message
/// of any size still goes when nothing of that member's is queued.
const MAX_QUEUED_PER_READ: usize = 64 * 1024;

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

    /// `chat`, when a page asks for it (`new WebSocket(url, "chat")`): a
    /// browser fails a handshake that agrees on none of those it offered.
    fn protocol<'o>(&mut self, _: &Request<'_>, offered: &[&'o str]) -> Option<&'o str> {
        offered.iter().copied().find(|p| *p == "chat")
    }

    fn on_open(&mut self, peer: Token, target: &str, _: Option<&str>, out: &mut Outbox) {
        self.joined += 1;
        let name = self.unique(name_from(target));
        out.broadcast(Message::Text(&format!("* {name} joined")));
        self.names.insert(peer, name);
    }

    fn on_message(&mut self, from: Token, message: Message<'_>, out: &mut Outbox) {
        // Not a member: closed for flooding (what it sent before its close
        // arrived is dropped).
        let Some(name) = self.names.get(&from) else {
            return;
        };
        if out.queued_bytes() >= MAX_QUEUED_PER_READ {
            out.close(from, CloseCode::POLICY);
            if let Some(name) = self.names.remove(&from) {
                out.broadcast(Message::Text(&format!("* {name} left (sending too fast)")));
            }
            return;
        }
        match message {
            Message::Text(text) => {
                let line = format!("{name}: {}", one_line(text));
                out.broadcast(Message::Text(&line))
            }
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

impl Chat {
    /// `wanted`, or `guestN`, made unique among the members: `ann (2)` for
    /// a second ann. One member cannot speak under another's name.
    fn unique(&self, wanted: Option<String>) -> String {
        // One pass over the members, not one per name tried.
        let in_use: std::collections::HashSet<&str> =
            self.names.values().map(String::as_str).collect();
        let taken = |name: &str| in_use.contains(name);
        let base = wanted.unwrap_or_else(|| format!("guest{}", self.joined));
        let mut name = base.clone();
        let mut n = 1;
        while taken(&name) {
            n += 1;
            name = format!("{base} ({n})");
        }
        name
    }
}

/// The `name` query parameter, percent-decoded, cut to [`MAX_NAME`]
/// characters, without what could make a line look like another's: control
/// and invisible formatting characters (a right-to-left override would
/// show the text after it reversed), a colon (which ends the name in a
/// line) and a leading `*` (which starts the server's own notes).
fn name_from(target: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("name="))?;
    let decoded = percent_decode(raw);
    let name: String = decoded
        .chars()
        .filter(|&c| !breaks_line(c) && !is_invisible_format(c) && c != ':')
        .take(MAX_NAME)
        .collect();
    let name = name.trim_start_matches(|c: char| c == '*' || c.is_whitespace());
    let name = name.trim_end();
    (!name.is_empty()).then(|| name.to_string())
}

/// A message's text on one line: a line break or other control character
/// (a tab aside) becomes a space, so that a message cannot show a line of
/// its own that seems another member's.
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    let breaks = |c: char| c != '\t' && breaks_line(c);
    match text.contains(breaks) {
        true => text.replace(breaks, " ").into(),
        false => text.into(),
    }
}

/// A control character, or a Unicode line or paragraph separator (which a
/// page shows as a line break too).
fn breaks_line(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Format characters that change how text around them shows: bidirectional
/// controls, zero-width spaces and joiners, the byte order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{61c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
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
        // Nothing that makes a line look like another's.
        assert_eq!(name_from("/ws?name=*+bob").as_deref(), Some("bob"));
        assert_eq!(name_from("/ws?name=al:ice").as_deref(), Some("alice"));
        assert_eq!(name_from("/ws?name=%E2%80%AEeve").as_deref(), Some("eve"));
        assert_eq!(name_from("/ws?name=x%E2%80%A8bob").as_deref(), Some("xbob"));
        assert_eq!(name_from("/ws?name=*").as_deref(), None);
        assert_eq!(
            name_from(&format!("/ws?name={}", "x".repeat(99))).map(|n| n.len()),
            Some(32)
        );
    }

    #[test]
    fn a_name_taken_is_made_unique() {
        let mut chat = Chat::default();
        let mut out = Outbox::default();
        chat.on_open(Token(1), "/ws?name=ann", None, &mut out);
        chat.on_open(Token(2), "/ws?name=ann", None, &mut out);
        chat.on_open(Token(3), "/ws?name=ann", None, &mut out);
        // The fifth member's own name would be guest5: taken, it is made unique.
        chat.on_open(Token(4), "/ws?name=guest5", None, &mut out);
        chat.on_open(Token(5), "/ws", None, &mut out);
        let names: Vec<&str> = (1..=5).map(|t| chat.names[&Token(t)].as_str()).collect();
        assert_eq!(names, ["ann", "ann (2)", "ann (3)", "guest5", "guest5 (2)"]);
        chat.on_close(Token(1), &mut out);
        chat.on_open(Token(1), "/ws?name=ann", None, &mut out);
        assert_eq!(chat.names[&Token(1)], "ann");
    }

    #[test]
    fn a_message_stays_on_its_line() {
        assert_eq!(one_line("hi\nbob: give me"), "hi bob: give me");
        assert_eq!(one_line("a\r\u{2028}b\tc"), "a  b\tc");
        assert!(matches!(
            one_line("plain"),
            std::borrow::Cow::Borrowed("plain")
        ));
        let mut chat = Chat::default();
        chat.on_open(Token(1), "/ws?name=ann", None, &mut Outbox::default());
        let mut out = Outbox::default();
        chat.on_message(Token(1), Message::Text("x\nbob: y"), &mut out);
        // The outbox shows its frames as numbers.
        let line = format!("{:?}", "ann: x bob: y".as_bytes());
        let line = line.trim_start_matches('[').trim_end_matches(']');
        assert!(format!("{out:?}").contains(line), "{out:?}");
    }

    #[test]
    fn joins_messages_and_leaves_are_broadcast_with_names() {
        let mut chat = Chat::default();
        let mut out = Outbox::default();
        chat.on_open(Token(1), "/ws?name=ann", None, &mut out);
        chat.on_message(Token(1), Message::Text("hi"), &mut out);
        chat.on_close(Token(1), &mut out);
        chat.on_close(Token(1), &mut out);
        assert_eq!(
            format!("{out:?}").matches("Broadcast").count(),
            3,
            "join, message, leave; a second close says nothing"
        );
    }

    /// A member whose one read holds thousands of messages is closed once
    /// they fill the bound, and what everyone is sent stays within it, far
    /// under a member's queue limit (256 KiB): the others stay. A message
    /// over the bound still goes on its own.
    #[test]
    fn a_member_flooding_the_chat_is_closed_and_the_others_keep_their_place() {
        let mut chat = Chat::default();
        let flooder = "x".repeat(MAX_NAME);
        chat.on_open(
            Token(1),
            &format!("/ws?name={flooder}"),
            None,
            &mut Outbox::default(),
        );
        chat.on_open(Token(2), "/ws?name=reader", None, &mut Outbox::default());
        let big = "y".repeat(512 * 1024);
        let mut out = Outbox::default();
        chat.on_message(Token(2), Message::Text(&big), &mut out);
        assert_eq!(format!("{out:?}").matches("Broadcast").count(), 1);
        // One read of the flooder's: 64 KiB of empty text frames.
        let mut out = Outbox::default();
        for _ in 0..10_922 {
            chat.on_message(Token(1), Message::Text(""), &mut out);
        }
        let queued = out.queued_bytes();
        let actions = format!("{out:?}");
        assert_eq!(actions.matches("Close(").count(), 1, "{actions:.200}");
        assert!(actions.contains("Close(Token(1), CloseCode(1008))"));
        let most = MAX_QUEUED_PER_READ + 128;
        assert!(
            (MAX_QUEUED_PER_READ..most).contains(&queued),
            "{queued} bytes to each"
        );
        // The reader still talks, and the flooder no more.
        let mut out = Outbox::default();
        chat.on_message(Token(1), Message::Text("more"), &mut out);
        assert!(out.is_empty());
        chat.on_message(Token(2), Message::Text("still here"), &mut out);
        assert_eq!(format!("{out:?}").matches("Broadcast").count(), 1);
    }
}
