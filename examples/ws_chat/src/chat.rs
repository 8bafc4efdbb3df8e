//! The chat itself: names, fan-out, announcements. No sockets here: the
//! event loop delivers what goes into the [`Outbox`].

use edgepoll::http::{Request, Response, StatusCode};
use edgepoll::ws::{CloseCode, Message, Outbox};
use edgepoll::Token;
use std::collections::HashMap;
use std::time::Instant;

const PAGE: &str = include_str!("page.html");
/// Largest message taken (the server closes a sender of a larger one with
/// 1009).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Longest name kept; a longer one is cut.
const MAX_NAME: usize = 32;
/// Most messages one member's read may queue to everyone. The loop
/// delivers what a read queued once it has read that member's socket (up
/// to 16 reads of 64 KiB, fewer once what the read queued reaches half a
/// connection's queue limit): it paces a sender's bytes itself. What it
/// cannot pace is what the chat adds to each message: every member gets
/// it with the sender's name and a frame header, 36 bytes out for an empty
/// frame of 6 in. Without this bound, one member sending thousands of
/// messages in one burst made a round of megabytes (64 KiB of empty
/// frames: 393 KiB to each member), and every member not reading fast
/// enough was dropped at its queue's limit (256 KiB) at the next round.
/// That member is closed instead (1008). Large messages are paced, not
/// closed: a few of the largest in one write all go. Across reads, an
/// [`Allowance`] bounds a sender.
const MAX_MESSAGES_PER_READ: usize = 256;
/// How many seconds' worth of messages a member may send at once.
const BURST_SECONDS: u64 = 5;

/// Who is connected, by connection.
pub struct Chat {
    /// Host names a browser's page may open the chat under, beyond IP
    /// addresses and `localhost` (see [`from_another_site`]).
    allowed_hosts: Vec<String>,
    names: HashMap<Token, Member>,
    /// How the names in use read ([`looks`]), each once.
    in_use: std::collections::HashSet<String>,
    /// By how the name asked for reads: how many members asked for it, and
    /// the next number to try for one more (so that the k-th `ann` costs
    /// one try, not k). Dropped when the last of them leaves.
    asked: HashMap<String, (usize, u64)>,
    joined: u64,
    /// What a member may send a second (see [`Allowance`]); 0: no limit.
    messages_per_second: u64,
}

/// A member: the name shown, how the name asked for reads (its key in
/// `Chat::asked`), and how many messages it may still send.
struct Member {
    name: String,
    asked: String,
    allowance: Allowance,
}

/// Messages a member may send now, in millionths (whole ones would lose
/// the fractions of those sent a few milliseconds apart): full at first,
/// [`BURST_SECONDS`]' worth, refilled at the rate given. Past it the member
/// is closed (1008), as for [`MAX_MESSAGES_PER_READ`]: 100 empty messages a
/// read, a read every 10 ms, each read under that bound, sent every member
/// 360 KB a second (6 bytes in, 36 out, to each), and got those reading
/// slower dropped at their queue's limit. Large messages are not counted in
/// bytes: what a member sends the room, it sends the server first.
#[derive(Default)]
struct Allowance {
    millionths: u64,
    at: Option<Instant>,
}

impl Allowance {
    /// Takes one message's worth at `now`, at `per_second` (more than 0:
    /// without a limit, the chat keeps no allowance); false when none is
    /// left.
    fn take(&mut self, now: Instant, per_second: u64) -> bool {
        const ONE: u64 = 1_000_000;
        let full = per_second * BURST_SECONDS * ONE;
        let left = match self.at {
            None => full,
            Some(at) => {
                let micros = now.saturating_duration_since(at).as_micros();
                let refill = u64::try_from(micros).unwrap_or(u64::MAX);
                (self.millionths)
                    .saturating_add(refill.saturating_mul(per_second))
                    .min(full)
            }
        };
        self.at = Some(now);
        match left.checked_sub(ONE) {
            Some(rest) => {
                self.millionths = rest;
                true
            }
            None => {
                self.millionths = left;
                false
            }
        }
    }
}

impl Default for Chat {
    /// No names allowed beyond addresses and `localhost`, and the default
    /// rate (`--messages-per-second`).
    fn default() -> Chat {
        Chat::new(Vec::new(), crate::config::MESSAGES_PER_SECOND)
    }
}

impl edgepoll::http::Service for Chat {
    fn call<'a>(&mut self, request: &Request<'a>) -> Response<'a> {
        match (request.method(), request.path()) {
            ("GET" | "HEAD", "/") => Response::new(StatusCode::OK)
                .header("Content-Type", "text/html; charset=utf-8")
                .body(PAGE),
            // `accepts` turned the handshake down.
            (_, "/ws") if from_another_site(request, &self.allowed_hosts) => {
                Response::new(StatusCode::FORBIDDEN)
                    .header("Content-Type", "text/plain")
                    .body("a page from another site may not open the chat\n")
            }
            _ => Response::new(StatusCode::NOT_FOUND)
                .header("Content-Type", "text/plain")
                .body("not found: the chat is at / and its WebSocket at /ws\n"),
        }
    }
}

impl edgepoll::ws::Service for Chat {
    fn accepts(&mut self, request: &Request<'_>) -> bool {
        request.path() == "/ws" && !from_another_site(request, &self.allowed_hosts)
    }

    /// `chat`, when a page asks for it (`new WebSocket(url, "chat")`): a
    /// browser fails a handshake that agrees on none of those it offered.
    fn protocol<'o>(&mut self, _: &Request<'_>, offered: &[&'o str]) -> Option<&'o str> {
        offered.iter().copied().find(|p| *p == "chat")
    }

    fn on_open(&mut self, peer: Token, target: &str, _: Option<&str>, out: &mut Outbox) {
        self.joined += 1;
        let member = self.unique(name_from(target));
        out.broadcast(Message::Text(&format!("* {} joined", member.name)));
        self.in_use.insert(looks(&member.name));
        self.names.insert(peer, member);
    }

    fn on_message(&mut self, from: Token, message: Message<'_>, out: &mut Outbox) {
        // A clock read a message (a call into the runtime), little beside
        // the message's broadcast to every member; none without a limit.
        let now = match self.messages_per_second {
            0 => None,
            _ => Some(Instant::now()),
        };
        self.on_message_at(from, message, out, now);
    }

    fn on_close(&mut self, peer: Token, out: &mut Outbox) {
        if let Some(name) = self.leave(peer) {
            out.broadcast(Message::Text(&format!("* {name} left")));
        }
    }
}

impl Chat {
    /// A chat whose page may also be opened under these host names (as a
    /// browser names them, without the port), whose members may send
    /// `messages_per_second` (0: no limit).
    pub fn new(allowed_hosts: Vec<String>, messages_per_second: u64) -> Chat {
        Chat {
            allowed_hosts,
            names: HashMap::new(),
            in_use: Default::default(),
            asked: HashMap::new(),
            joined: 0,
            messages_per_second,
        }
    }

    /// A message from `from`, come at `now` (`None` without a limit to
    /// keep): sent to everyone, unless its sender is over its bounds, which
    /// closes it.
    fn on_message_at(
        &mut self,
        from: Token,
        message: Message<'_>,
        out: &mut Outbox,
        now: Option<Instant>,
    ) {
        // Not a member: closed for flooding (what it sent before its close
        // arrived is dropped).
        let Some(Member {
            name, allowance, ..
        }) = self.names.get_mut(&from)
        else {
            return;
        };
        let rate = self.messages_per_second;
        let spent = now.is_some_and(|now| !allowance.take(now, rate));
        if out.len() >= MAX_MESSAGES_PER_READ || spent {
            out.close(from, CloseCode::POLICY);
            if let Some(name) = self.leave(from) {
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

    /// `wanted`, or `guestN`, made unique among the members: `ann (2)` for
    /// a second ann, and for an `Ann` or an `ANN` (see [`looks`]). One
    /// member cannot speak under another's name.
    fn unique(&mut self, wanted: Option<String>) -> Member {
        let in_use = &self.in_use;
        let taken = |name: &str| in_use.contains(&looks(name));
        let base = wanted.unwrap_or_else(|| format!("guest{}", self.joined));
        let asked = looks(&base);
        let (members, next) = self.asked.entry(asked.clone()).or_insert((0, 2));
        *members += 1;
        let mut name = base.clone();
        // Numbers past `next` were never given while one of these members
        // stayed (a name asked for cannot hold parentheses): the first try
        // is free but for a name of another's that reads the same.
        while taken(&name) {
            name = format!("{base} ({next})");
            *next += 1;
        }
        Member {
            name,
            asked,
            allowance: Allowance::default(),
        }
    }

    /// The member `peer` is no more; its name, if it had one.
    fn leave(&mut self, peer: Token) -> Option<String> {
        let Member { name, asked, .. } = self.names.remove(&peer)?;
        self.in_use.remove(&looks(&name));
        if let Some((members, _)) = self.asked.get_mut(&asked) {
            *members -= 1;
            if *members == 0 {
                self.asked.remove(&asked);
            }
        }
        Some(name)
    }
}

/// Whether a browser sent the request for a page of another site: its
/// `Origin` is not this server's. A browser names the origin of the page
/// that opens a WebSocket, and lets any page open one to any address, this
/// chat on 127.0.0.1 included: the server must check (RFC 6455 §10.2).
/// This server is the `Host` asked for, or, behind a proxy that sets its
/// own (examples/proxy, nginx's default), the `X-Forwarded-Host` the
/// proxy passes on: a page cannot add fields to a browser's handshake.
/// Clients that are not browsers send no `Origin` and are let in.
///
/// A page's own host must also be one the chat serves: an IP address,
/// `localhost`, or a name of `allowed`. Else a site whose name its owner
/// made resolve to the chat's address (DNS rebinding) would be its own
/// origin: `Origin` and `Host` would both name it.
fn from_another_site(request: &Request<'_>, allowed: &[String]) -> bool {
    let forwarded = request.header("X-Forwarded-Host").unwrap_or_default();
    let forwarded = std::str::from_utf8(forwarded).unwrap_or_default();
    let hosts = request
        .host()
        .into_iter()
        .chain(forwarded.split(',').map(str::trim));
    foreign_origin(request.header("Origin"), hosts, allowed)
}

/// Whether `origin`, when there is one, is `http://` or `https://` and
/// none of `hosts` that the chat serves (see [`served`]).
fn foreign_origin<'h>(
    origin: Option<&[u8]>,
    mut hosts: impl Iterator<Item = &'h str>,
    allowed: &[String],
) -> bool {
    let Some(origin) = origin else {
        return false;
    };
    let own = |host: &str| {
        served(host, allowed)
            && [&b"http://"[..], b"https://"].iter().any(|scheme| {
                origin.len() == scheme.len() + host.len()
                    && origin[..scheme.len()].eq_ignore_ascii_case(scheme)
                    && origin[scheme.len()..].eq_ignore_ascii_case(host.as_bytes())
            })
    };
    !hosts.any(own)
}

/// Whether `host` (a `Host` value: a name or address, and a port) names
/// the chat: an IP address, `localhost` or a name under it (RFC 6761), or
/// one of `allowed`.
fn served(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // An IPv6 address, as a `Host` can only hold one.
        Some(rest) => {
            return rest
                .split_once(']')
                .is_some_and(|(a, _)| a.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    // A name's final dot names the same host (`localhost.`).
    let name = name.strip_suffix('.').unwrap_or(name);
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && (name.parse::<std::net::Ipv4Addr>().is_ok()
            || lower == "localhost"
            || lower.ends_with(".localhost")
            || allowed.iter().any(|a| a.eq_ignore_ascii_case(name)))
}

/// How `name` reads in a page's sans-serif font, as far as ASCII goes:
/// case aside, `I`, `l`, `1` and `i` alike, `O` and `0`, `rn` and `m`, `vv`
/// and `w`. Two names that read alike are one name to [`Chat::unique`].
fn looks(name: &str) -> String {
    let folded: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            'i' | '1' => 'l',
            '0' => 'o',
            c => c,
        })
        .collect();
    folded.replace("rn", "m").replace("vv", "w")
}

/// The `name` query parameter, percent-decoded: its ASCII letters and
/// digits, `-`, `_`, `.` and single spaces, cut to [`MAX_NAME`]. ASCII
/// only, so that the uniqueness check sees what a reader sees ([`looks`]
/// folds ASCII's look-alikes): Unicode has a look-alike of nearly every
/// letter (Cyrillic `а` for `a`) and characters that show nothing
/// (variation selectors, Hangul fillers, zero-width spaces), with which a
/// name the check sees as new would read as another member's. The rest (a
/// colon, which ends the name in a line; a `*`, which starts the server's
/// own notes) is dropped; a name left empty is `guestN`.
fn name_from(target: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("name="))?;
    let decoded = percent_decode(raw);
    let kept: String = decoded
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
        .collect();
    let mut name = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    name.truncate(MAX_NAME);
    name.truncate(name.trim_end().len());
    (!name.is_empty()).then_some(name)
}

/// A message's text on one line: a line break or other control character
/// becomes a space, and a run of blanks one space, so that a message
/// cannot show a line of its own that seems another member's (a long run
/// of spaces would wrap what follows onto a line of its own).
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    let blank = |c: char| c.is_whitespace() || c.is_control();
    let plain = text
        .char_indices()
        .filter(|&(_, c)| blank(c))
        .all(|(at, c)| c == ' ' && !text[at + 1..].starts_with(blank));
    if plain {
        return text.into();
    }
    let mut line = String::with_capacity(text.len());
    let mut after_blank = false;
    for c in text.chars() {
        match blank(c) {
            true if after_blank => {}
            true => line.push(' '),
            false => line.push(c),
        }
        after_blank = blank(c);
    }
    line.into()
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Two hex digits exactly (`from_str_radix` would take `%+4` too).
        let digit = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
        let hex = digit(i + 1)
            .zip(digit(i + 2))
            .map(|(hi, lo)| (hi * 16 + lo) as u8);
        match (bytes[i], hex) {
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
        // Cut at the limit, no space is left at the end.
        let spaced = format!("/ws?name={}+y", "x".repeat(31));
        assert_eq!(name_from(&spaced).map(|n| n.len()), Some(31));
        // Runs of spaces are one.
        assert_eq!(name_from("/ws?name=a++%09+b").as_deref(), Some("a b"));
        // A `%` without two hex digits after it is itself (then dropped).
        assert_eq!(name_from("/ws?name=a%+4b").as_deref(), Some("a 4b"));
        assert_eq!(name_from("/ws?name=a%4").as_deref(), Some("a4"));
        assert_eq!(name_from("/ws?name=a%4a%41").as_deref(), Some("aJA"));
        // Nothing invisible, nothing that only looks like a letter.
        for hidden in [
            "%EF%B8%8F",
            "%CD%8F",
            "%E3%85%A4",
            "%F3%A0%80%A0",
            "%E2%A0%80",
            "%E1%A0%8E",
        ] {
            let target = format!("/ws?name=ann{hidden}");
            assert_eq!(name_from(&target).as_deref(), Some("ann"), "{hidden}");
        }
        assert_eq!(name_from("/ws?name=%D0%B0nn").as_deref(), Some("nn"));
        assert_eq!(name_from("/ws?name=bob%EF%BC%9A").as_deref(), Some("bob"));
        assert_eq!(
            name_from("/ws?name=%D0%98%D0%B2%D0%B0%D0%BD").as_deref(),
            None
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
        let names: Vec<&str> = (1..=5)
            .map(|t| chat.names[&Token(t)].name.as_str())
            .collect();
        assert_eq!(names, ["ann", "ann (2)", "ann (3)", "guest5", "guest5 (2)"]);
        chat.on_close(Token(1), &mut out);
        chat.on_open(Token(1), "/ws?name=ann", None, &mut out);
        assert_eq!(chat.names[&Token(1)].name, "ann");
    }

    /// The k-th member asking for a name gets a number at the first try
    /// (it tried k names, each formatted and folded: one client opening
    /// thousands of `?name=ann` held the loop for seconds); what is kept
    /// for that goes with the last of them.
    #[test]
    fn many_members_asking_for_one_name_are_numbered_at_once() {
        let mut chat = Chat::default();
        let mut out = Outbox::default();
        for t in 1..=3000 {
            chat.on_open(Token(t), "/ws?name=ann", None, &mut Outbox::default());
        }
        assert_eq!(chat.names[&Token(3000)].name, "ann (3000)");
        assert_eq!(chat.asked["ann"], (3000, 3001));
        // One that leaves frees its name for the next, who asks for the
        // same name (as it reads) in another spelling.
        chat.on_close(Token(1), &mut out);
        chat.on_open(Token(1), "/ws?name=ANN", None, &mut out);
        assert_eq!(chat.names[&Token(1)].name, "ANN");
        chat.on_close(Token(2), &mut out);
        chat.on_open(Token(2), "/ws?name=ann", None, &mut out);
        assert_eq!(chat.names[&Token(2)].name, "ann (3001)");
        for t in 1..=3000 {
            chat.on_close(Token(t), &mut out);
        }
        assert!(chat.names.is_empty() && chat.in_use.is_empty() && chat.asked.is_empty());
    }

    /// Names that read alike in a page's sans-serif font are one name.
    #[test]
    fn a_name_that_only_looks_like_one_in_use_is_made_unique() {
        let mut chat = Chat::default();
        let mut out = Outbox::default();
        chat.on_open(Token(1), "/ws?name=bill", None, &mut out);
        for (token, name) in [(2, "biIl"), (3, "BILL"), (4, "b1ll"), (5, "Bi11")] {
            chat.on_open(Token(token), &format!("/ws?name={name}"), None, &mut out);
        }
        chat.on_open(Token(6), "/ws?name=rnoo", None, &mut out);
        chat.on_open(Token(7), "/ws?name=m0O", None, &mut out);
        let names: Vec<&str> = (2..=7)
            .map(|t| chat.names[&Token(t)].name.as_str())
            .collect();
        assert_eq!(
            names,
            ["biIl (2)", "BILL (3)", "b1ll (4)", "Bi11 (5)", "rnoo", "m0O (2)"]
        );
    }

    #[test]
    fn a_name_made_of_invisible_characters_is_not_new() {
        let mut chat = Chat::default();
        let mut out = Outbox::default();
        chat.on_open(Token(1), "/ws?name=ann", None, &mut out);
        chat.on_open(Token(2), "/ws?name=ann%EF%B8%8F", None, &mut out);
        assert_eq!(chat.names[&Token(2)].name, "ann (2)");
    }

    #[test]
    fn only_pages_of_this_site_may_open_the_chat() {
        let host = ["127.0.0.1:1234"];
        let cases: [(Option<&[u8]>, bool); 8] = [
            (None, false),
            (Some(b"http://127.0.0.1:1234"), false),
            (Some(b"HTTPS://127.0.0.1:1234"), false),
            (Some(b"http://evil.example"), true),
            (Some(b"http://127.0.0.1:1234.evil.example"), true),
            (Some(b"http://127.0.0.1:12345"), true),
            (Some(b"null"), true),
            (Some(b"127.0.0.1:1234"), true),
        ];
        for (origin, foreign) in cases {
            assert_eq!(
                foreign_origin(origin, host.into_iter(), &[]),
                foreign,
                "{origin:?}"
            );
        }
        assert!(foreign_origin(Some(b"http://x"), std::iter::empty(), &[]));
        assert!(foreign_origin(Some(b"http://"), [""].into_iter(), &[]));
        // Behind a proxy: the host the browser asked the proxy for, when
        // the chat serves that name.
        let behind = ["127.0.0.1:9001", "chat.example", "other.example"];
        let chat = ["chat.example".to_string()];
        let origin = Some(&b"http://chat.example"[..]);
        assert!(!foreign_origin(origin, behind.into_iter(), &chat));
        // A name not served is a page of its own site, however its name
        // resolves (DNS rebinding): refused, as under its own Host.
        assert!(foreign_origin(origin, behind.into_iter(), &[]));
        let rebound = Some(&b"http://evil.example:1234"[..]);
        assert!(foreign_origin(
            rebound,
            ["evil.example:1234"].into_iter(),
            &[]
        ));
        for (host, ok) in [
            ("[::1]:1234", true),
            ("[::1]", true),
            ("[fe80::zz]:1", false),
            ("LocalHost:80", true),
            ("localhost.:80", true),
            ("chat.example.", true),
            (".", false),
            ("chat.localhost", true),
            ("10.0.0.7", true),
            ("CHAT.example:8080", true),
            ("chat.example.evil", false),
            ("", false),
            (":80", false),
        ] {
            assert_eq!(served(host, &chat), ok, "{host}");
        }
    }

    #[test]
    fn a_message_stays_on_its_line() {
        assert_eq!(one_line("hi\nbob: give me"), "hi bob: give me");
        assert_eq!(one_line("a\r\u{2028}b\tc"), "a b c");
        let padded = format!("hi{}bob: give me", " ".repeat(400));
        assert_eq!(one_line(&padded), "hi bob: give me");
        assert_eq!(one_line("a\u{a0}\u{3000} b"), "a b");
        assert!(matches!(
            one_line("a b c"),
            std::borrow::Cow::Borrowed("a b c")
        ));
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

    /// A member whose one read holds many messages is closed once they fill
    /// the bound, and what everyone is sent stays within it, far under a
    /// member's queue limit (256 KiB): the others stay. A message over any
    /// such bound in bytes still goes on its own.
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
        // One read of the flooder's: 1000 empty messages (under the
        // allowance of messages, over the bound of a read).
        let mut out = Outbox::default();
        for _ in 0..1000 {
            chat.on_message(Token(1), Message::Text(""), &mut out);
        }
        let actions = format!("{out:?}");
        assert_eq!(actions.matches("Close(").count(), 1, "{actions:.200}");
        assert!(actions.contains("Close(Token(1), CloseCode(1008))"));
        // Its messages, and the line that says it left.
        assert_eq!(
            actions.matches("Broadcast").count(),
            MAX_MESSAGES_PER_READ + 1
        );
        let each = MAX_NAME + 2 + 2;
        assert!(
            out.queued_bytes() < (MAX_MESSAGES_PER_READ + 1) * each + 64,
            "{} bytes to each",
            out.queued_bytes()
        );
        // The reader still talks, and the flooder no more.
        let mut out = Outbox::default();
        chat.on_message(Token(1), Message::Text("more"), &mut out);
        assert!(out.is_empty());
        chat.on_message(Token(2), Message::Text("still here"), &mut out);
        assert_eq!(format!("{out:?}").matches("Broadcast").count(), 1);
    }

    /// The largest messages, several in one read (a script posting files),
    /// all go: the loop paces a sender's bytes; the chat bounds only how
    /// many messages one read holds. Before, a second 64 KiB message in
    /// the read closed its sender.
    #[test]
    fn large_messages_in_one_read_all_go() {
        let mut chat = Chat::default();
        chat.on_open(Token(1), "/ws?name=poster", None, &mut Outbox::default());
        let largest = vec![7u8; MAX_MESSAGE];
        let mut out = Outbox::default();
        for _ in 0..3 {
            chat.on_message(Token(1), Message::Binary(&largest), &mut out);
        }
        chat.on_message(Token(1), Message::Text("ok"), &mut out);
        let actions = format!("{out:?}");
        assert!(!actions.contains("Close("), "{actions:.200}");
        assert_eq!(actions.matches("Broadcast").count(), 4);
    }

    /// A member sending faster than its allowance across reads, each read
    /// far under the one-read bound, is closed once the burst is spent;
    /// one under the rate is never closed, however long it goes on.
    #[test]
    fn a_member_over_its_allowance_across_reads_is_closed() {
        let mut chat = Chat::new(Vec::new(), 200);
        chat.on_open(Token(1), "/ws?name=steady", None, &mut Outbox::default());
        chat.on_open(Token(2), "/ws?name=talker", None, &mut Outbox::default());
        let start = Instant::now();
        let at = |ms: u64| start + std::time::Duration::from_millis(ms);
        let closed = |out: &Outbox| format!("{out:?}").contains("Close(");
        // Steady: 100 messages a read, a read every 10 ms.
        let mut sent = 0;
        let closed_after = (0..100).find_map(|read| {
            let mut out = Outbox::default();
            for _ in 0..100 {
                chat.on_message_at(Token(1), Message::Text(""), &mut out, Some(at(10 * read)));
                if closed(&out) {
                    return Some(sent);
                }
                sent += 1;
            }
            None
        });
        // The burst (five seconds' worth), and what 200 a second refilled
        // meanwhile (at most 20).
        assert!(
            closed_after.is_some_and(|n| (1000..1030).contains(&n)),
            "{closed_after:?}"
        );
        // The talker, at 150 a second for a minute, is never closed.
        for i in 0..9000 {
            let mut out = Outbox::default();
            chat.on_message_at(
                Token(2),
                Message::Text("hi"),
                &mut out,
                Some(at(i * 20 / 3)),
            );
            assert!(!closed(&out), "closed at message {i}");
        }
        // Without a limit, the steady flood goes on.
        let mut chat = Chat::new(Vec::new(), 0);
        chat.on_open(Token(1), "/ws?name=bench", None, &mut Outbox::default());
        for i in 0..5000 {
            let mut out = Outbox::default();
            chat.on_message_at(Token(1), Message::Text(""), &mut out, None);
            assert!(!closed(&out), "closed at message {i}");
        }
    }
}
