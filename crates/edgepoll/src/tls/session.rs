//! One TLS connection's state, free of I/O: ciphertext in and out,
//! plaintext handed over in place. The loop's read/write path drives it
//! (`server/connection.rs`, `TlsEndpoint`).

use super::{subject, TlsError, TlsInfo};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use std::io::BufRead;
use std::sync::Arc;

/// A client TLS connection.
pub(crate) struct TlsSession {
    conn: ClientConnection,
    /// Ciphertext to send, and how much of it went.
    out: Vec<u8>,
    out_sent: usize,
    /// Plaintext taken from the application is not all on the wire yet
    /// (what else rustls sends, an alert or a key update, does not count).
    plain_unsent: bool,
    /// Ciphertext rustls did not take yet (its plaintext buffer was full
    /// while the reader was held back): at most one socket read, from
    /// `input_at` on (empty once all is taken).
    input: Vec<u8>,
    input_at: usize,
    /// The server closed the TCP connection.
    eof: bool,
    error: Option<TlsError>,
    /// Where the ciphertext handed to rustls stands between records.
    edge: RecordEdge,
    /// Ciphertext bytes received in all: a record arriving slowly is
    /// progress before any of its plaintext can be had.
    received: u64,
}

/// Follows the record headers of the ciphertext given to rustls, to tell
/// whether it holds part of a record: bytes a server sent after a response
/// that rustls cannot decrypt yet, which a plain connection would have
/// shown at once (and made it unfit for another request).
#[derive(Clone, Copy, Debug, Default)]
struct RecordEdge {
    /// Header bytes of the next record seen so far (0 to 4).
    header: u8,
    /// The high byte of its length.
    length_high: u8,
    /// Bytes of the current record's body still to come.
    body_left: usize,
}

impl RecordEdge {
    fn advance(&mut self, mut data: &[u8]) {
        while let Some((&byte, rest)) = data.split_first() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                data = &data[n..];
                continue;
            }
            match self.header {
                3 => self.length_high = byte,
                4 => self.body_left = usize::from(u16::from_be_bytes([self.length_high, byte])),
                _ => {}
            }
            self.header = (self.header + 1) % 5;
            data = rest;
        }
    }

    fn between_records(&self) -> bool {
        self.header == 0 && self.body_left == 0
    }
}

/// Empties `buffer`, giving its memory back if it grew past what a
/// connection between transfers keeps: a pooled connection held a read's
/// ciphertext (up to 48 KiB) and an upload's (64 KiB) for as long as it
/// stayed idle.
fn release_if_large(buffer: &mut Vec<u8>) {
    match buffer.capacity() > 4096 {
        true => *buffer = Vec::new(),
        false => buffer.clear(),
    }
}

/// What the plaintext side holds now.
pub(crate) enum Plain<'a> {
    Data(&'a [u8]),
    /// Nothing until more ciphertext comes.
    Nothing,
    /// The server ended the stream with close_notify.
    End,
    /// The transport closed without close_notify, or a fault ended the
    /// session (see [`TlsSession::error`]): a body that runs until the
    /// close may have been cut.
    Cut,
}

impl TlsSession {
    /// Starts a handshake with `host` (its name is sent and checked; an IP
    /// address is checked against the certificate's IP addresses).
    pub(crate) fn new(config: Arc<ClientConfig>, host: &str) -> Result<TlsSession, TlsError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        // An address with a final dot is the address, as the URL connects
        // to it (`Url::socket_addr`): checked as one, and sent no SNI. As a
        // name it is no name (its last label is all digits).
        let bare = match bare.strip_suffix('.') {
            Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => ip,
            _ => bare,
        };
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| TlsError::Config(format!("{host:?} is not a valid TLS server name")))?;
        let conn = ClientConnection::new(config, name).map_err(TlsError::from)?;
        Ok(TlsSession {
            conn,
            out: Vec::new(),
            out_sent: 0,
            plain_unsent: false,
            input: Vec::new(),
            input_at: 0,
            eof: false,
            error: None,
            edge: RecordEdge::default(),
            received: 0,
        })
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Why the connection failed, once it has.
    pub(crate) fn error(&self) -> Option<&TlsError> {
        self.error.as_ref()
    }

    /// Whether more ciphertext may be read from the socket: not after an
    /// error or the end, nor while what came last is not taken yet.
    pub(crate) fn takes_input(&self) -> bool {
        self.error.is_none() && !self.eof && self.input.is_empty()
    }

    /// Ciphertext from the socket.
    pub(crate) fn receive(&mut self, data: &[u8]) {
        self.received = self.received.wrapping_add(data.len() as u64);
        if self.input.is_empty() {
            let taken = self.decrypt(data);
            self.input.extend_from_slice(&data[taken..]);
        } else {
            // (Not reached by the loop, which reads only while
            // `takes_input`.) What was taken goes first.
            self.input.drain(..self.input_at);
            self.input_at = 0;
            self.input.extend_from_slice(data);
            self.retry_input();
        }
    }

    /// The server closed the TCP connection.
    pub(crate) fn receive_eof(&mut self) {
        self.eof = true;
        self.retry_input();
    }

    /// Feeds ciphertext kept back, now that plaintext was taken.
    pub(crate) fn retry_input(&mut self) {
        if !self.input.is_empty() {
            let input = std::mem::take(&mut self.input);
            let taken = self.decrypt(&input[self.input_at..]);
            self.input = input;
            // Not drained: rustls takes 16 KiB of plaintext at a time, and
            // moving the rest of a 64 KiB read down each time copied more
            // than the read.
            self.input_at += taken;
            if self.input_at == self.input.len() {
                self.input_at = 0;
                release_if_large(&mut self.input);
            }
        }
        if self.eof && self.input.is_empty() && self.error.is_none() {
            if self.conn.is_handshaking() {
                self.error = Some(TlsError::Truncated);
                return;
            }
            // An empty read tells rustls the transport ended.
            let _ = self.conn.read_tls(&mut &[][..]);
            if let Err(e) = self.conn.process_new_packets() {
                self.error = Some(e.into());
            }
        }
    }

    /// Hands as much of `data` to rustls as it takes; returns how much.
    fn decrypt(&mut self, mut data: &[u8]) -> usize {
        let total = data.len();
        let given = data;
        while !data.is_empty() && self.error.is_none() {
            match self.conn.read_tls(&mut data) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    // Backpressure (its plaintext buffer is full) is the one
                    // refusal that clears: the rest waits for the reader.
                    // Any other (a handshake message whose records fill
                    // rustls's 64 KiB) would wait for ever.
                    if !self.holds_plaintext() {
                        self.error = Some(TlsError::Protocol(e.to_string()));
                    }
                    break;
                }
            }
            if let Err(e) = self.conn.process_new_packets() {
                self.error = Some(e.into());
            }
        }
        let taken = total - data.len();
        self.edge.advance(&given[..taken]);
        taken
    }

    /// Whether rustls holds part of a record (bytes that arrived but
    /// cannot be read yet).
    pub(crate) fn holds_partial_record(&self) -> bool {
        !self.edge.between_records() || !self.input.is_empty()
    }

    fn holds_plaintext(&mut self) -> bool {
        matches!(self.conn.reader().into_first_chunk(), Ok(chunk) if !chunk.is_empty())
    }

    /// The plaintext received, in place; [`TlsSession::consume`] it.
    pub(crate) fn plain(&mut self) -> Plain<'_> {
        let failed = self.error.is_some();
        match self.conn.reader().into_first_chunk() {
            // Records authenticated before a fault are the server's own
            // (a fault ends the connection, not what it carried: RFC 8446
            // §6.2), so a response they complete stands.
            Ok(chunk) if !chunk.is_empty() => Plain::Data(chunk),
            // A fault (a forged record, an alert) is no clean end: a body
            // that runs until the close is not complete because of it.
            _ if failed => Plain::Cut,
            // The server's close_notify, all read.
            Ok(_) => Plain::End,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Plain::Nothing,
            // A TCP close without close_notify (or inside a record): for
            // HTTP, framing says whether a body with a length or chunks was
            // complete, but one read until the close cannot be told from a
            // cut one (RFC 8446 §6.1, RFC 9112 §9.8).
            Err(_) => Plain::Cut,
        }
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.conn.reader().consume(n);
    }

    /// Plaintext to send; returns how much rustls took (it buffers up to
    /// 64 KiB, also before the handshake ends).
    pub(crate) fn send(&mut self, data: &[u8]) -> usize {
        if self.error.is_some() {
            return 0;
        }
        let n = std::io::Write::write(&mut self.conn.writer(), data).unwrap_or(0);
        self.plain_unsent |= n > 0;
        n
    }

    /// Moves what rustls has to send into the output, once the last went.
    pub(crate) fn fill_output(&mut self) {
        if self.out_sent < self.out.len() {
            return;
        }
        self.out_sent = 0;
        if !self.conn.wants_write() {
            release_if_large(&mut self.out);
            return;
        }
        self.out.clear();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Bytes of memory its own buffers hold (rustls's aside).
    #[cfg(test)]
    fn buffered_capacity(&self) -> usize {
        self.input.capacity() + self.out.capacity()
    }

    /// Queues the close_notify alert that must precede the end of the
    /// connection (RFC 8446 §6.1), if nothing else waits to go out and no
    /// error alert went; returns what to send.
    pub(crate) fn close_notify(&mut self) -> &[u8] {
        if self.error.is_none() && self.output().is_empty() {
            self.conn.send_close_notify();
            self.fill_output();
        }
        self.output()
    }

    pub(crate) fn output(&self) -> &[u8] {
        &self.out[self.out_sent..]
    }

    /// Ciphertext bytes received so far (compare two readings).
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Whether bytes taken from the application are not all on the wire:
    /// in records waiting for the socket, or as plaintext rustls holds. A
    /// response that came meanwhile leaves a request unfinished there. What
    /// rustls sends of its own accord does not count: a TLS 1.2 server's
    /// HelloRequest answered by a `no_renegotiation` alert leaves the
    /// connection fit for the pool.
    pub(crate) fn has_unsent(&self) -> bool {
        self.plain_unsent
    }

    pub(crate) fn sent(&mut self, n: usize) {
        self.out_sent = (self.out_sent + n).min(self.out.len());
        // Plaintext given during the handshake waits in rustls, unseen by
        // `wants_write`, until the handshake ends.
        if self.output().is_empty() && !self.conn.wants_write() && !self.conn.is_handshaking() {
            self.plain_unsent = false;
        }
    }

    /// What the handshake agreed on (empty fields before it ends).
    pub(crate) fn info(&self) -> TlsInfo {
        let version = match self.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let cipher_suite = self
            .conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let key_exchange = (self.conn.negotiated_key_exchange_group())
            .map(|group| format!("{:?}", group.name()))
            .unwrap_or_default();
        let alpn = self
            .conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let subject = self
            .conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| subject::of(cert.as_ref()))
            .unwrap_or_default();
        TlsInfo {
            version,
            cipher_suite,
            key_exchange,
            alpn,
            subject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TLS records of `kind` carrying `payload`, `size` bytes each.
    fn records(kind: u8, payload: &[u8], size: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for piece in payload.chunks(size) {
            wire.extend_from_slice(&[kind, 3, 3]);
            wire.extend_from_slice(&(piece.len() as u16).to_be_bytes());
            wire.extend_from_slice(piece);
        }
        wire
    }

    /// The record edge is followed across any split of the ciphertext.
    #[test]
    fn part_of_a_record_is_seen_at_every_split() {
        let mut wire = records(23, &[7; 300], 100);
        wire.extend([23, 3, 3, 0, 0]); // an empty record
        wire.extend(records(21, &[1, 2], 2));
        let ends: Vec<usize> = {
            let mut at = 0;
            let mut ends = vec![0];
            for len in [100, 100, 100, 0, 2] {
                at += 5 + len;
                ends.push(at);
            }
            ends
        };
        for split in 0..=wire.len() {
            let mut edge = RecordEdge::default();
            edge.advance(&wire[..split]);
            assert_eq!(edge.between_records(), ends.contains(&split), "{split}");
            edge.advance(&wire[split..]);
            assert!(edge.between_records());
        }
        for step in [1, 3, 7] {
            let mut edge = RecordEdge::default();
            for (i, piece) in wire.chunks(step).enumerate() {
                edge.advance(piece);
                let at = ((i + 1) * step).min(wire.len());
                assert_eq!(edge.between_records(), ends.contains(&at), "{step} {at}");
            }
        }
    }

    #[test]
    fn a_handshake_message_rustls_cannot_hold_fails_at_once_not_at_the_timeout() {
        let config = crate::tls::client_config(None).expect("config");
        let mut session = TlsSession::new(config, "localhost").expect("session");
        session.fill_output(); // the ClientHello
                               // A ServerHello announced at 65 000 bytes (under rustls's limit),
                               // sent in 64-byte records: with their headers it outgrows the 64 KiB
                               // rustls joins a handshake message in before it is complete.
        let mut message = vec![2, 0, 0xfd, 0xe8];
        message.resize(4 + 65_000, 0);
        let wire = records(22, &message, 64);
        for read in wire.chunks(16 * 1024) {
            if !session.takes_input() {
                break;
            }
            session.receive(read);
        }
        let error = session.error().map(|e| e.to_string());
        assert!(
            matches!(&error, Some(e) if e.contains("TLS protocol error")),
            "{error:?}"
        );
        assert!(!session.takes_input());
    }

    /// A session and a rustls server in memory, for `localhost` under the
    /// test CA (tls/testdata: a CA and a certificate valid from 2020 to 2126).
    fn session_and_server() -> (TlsSession, rustls::ServerConnection) {
        // Deprecated since rustls 0.23.48 (see `tls/config.rs`).
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        session_and_server_with(provider, rustls::DEFAULT_VERSIONS)
    }

    /// A session to a server of `provider`'s suites and `versions`, whose
    /// keys a test may take (`dangerous_extract_secrets`).
    fn session_and_server_with(
        provider: rustls::crypto::CryptoProvider,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (TlsSession, rustls::ServerConnection) {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let ca = include_bytes!("testdata/ca.pem");
        let config = crate::tls::client_config(Some(ca)).expect("client config");
        let session = TlsSession::new(config, "localhost").expect("session");
        let certs = CertificateDer::pem_slice_iter(include_bytes!("testdata/localhost.pem"))
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate");
        let key =
            PrivateKeyDer::from_pem_slice(include_bytes!("testdata/localhost.key")).expect("key");
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        server.enable_secret_extraction = true;
        let server = rustls::ServerConnection::new(Arc::new(server)).expect("server");
        (session, server)
    }

    /// Hands what the session sends to the server, whose plaintext goes to
    /// `read`; returns what the server has to send back.
    fn to_server(
        session: &mut TlsSession,
        server: &mut rustls::ServerConnection,
        read: &mut Vec<u8>,
    ) -> Vec<u8> {
        session.fill_output();
        let out = session.output().to_vec();
        session.sent(out.len());
        let mut rest = &out[..];
        while !rest.is_empty() {
            server.read_tls(&mut rest).expect("server reads");
            server.process_new_packets().expect("server processes");
            // Until it would block: the bytes so far are in `read`.
            let _ = std::io::Read::read_to_end(&mut server.reader(), read);
        }
        let mut back = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut back).expect("server writes");
        }
        back
    }

    /// A download in 64 KiB reads arrives byte for byte, and an upload
    /// goes; after them the session's buffers hold nothing large: a pooled
    /// connection kept a read's leftover ciphertext (40 KiB and more) and
    /// an upload's records for as long as it stayed idle.
    #[test]
    fn a_transfer_leaves_no_large_buffer_behind() {
        use std::io::Write;
        let (mut session, mut server) = session_and_server();
        let mut uploaded = Vec::new();
        while session.is_handshaking() {
            let back = to_server(&mut session, &mut server, &mut uploaded);
            assert!(!back.is_empty() || !session.is_handshaking(), "stuck");
            session.receive(&back);
            assert!(session.error().is_none(), "{:?}", session.error());
        }
        // The client's Finished; the server's session tickets back.
        let tickets = to_server(&mut session, &mut server, &mut uploaded);
        session.receive(&tickets);
        // The suite whose records edgepoll's own cipher seals and opens in
        // WebAssembly: the transfer below goes through it there.
        assert_eq!(
            session.info().cipher_suite,
            "TLS13_CHACHA20_POLY1305_SHA256"
        );
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        server.set_buffer_limit(None);
        server.writer().write_all(&body).expect("server sends");
        let mut wire = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut wire).expect("server writes");
        }
        let mut got = Vec::new();
        let take = |session: &mut TlsSession, got: &mut Vec<u8>| {
            while let Plain::Data(data) = session.plain() {
                let n = data.len();
                got.extend_from_slice(data);
                session.consume(n);
                session.retry_input();
            }
        };
        for read in wire.chunks(64 * 1024) {
            assert!(
                session.takes_input(),
                "{} left at {} of {}; {:?}; got {}",
                session.input.len() - session.input_at,
                session.input_at,
                session.input.len(),
                session.error(),
                got.len()
            );
            session.receive(read);
            take(&mut session, &mut got);
        }
        assert!(got == body, "{} bytes of {}", got.len(), body.len());
        // An upload of as much.
        let mut at = 0;
        while at < body.len() {
            at += session.send(&body[at..]);
            let _ = to_server(&mut session, &mut server, &mut uploaded);
        }
        assert!(
            uploaded == body,
            "{} bytes of {}",
            uploaded.len(),
            body.len()
        );
        session.fill_output();
        assert!(
            session.buffered_capacity() <= 8192,
            "{} bytes held",
            session.buffered_capacity()
        );
    }

    /// Only the application's bytes make a session's output unsent: the
    /// `no_renegotiation` alert that answers a TLS 1.2 server's
    /// HelloRequest once left a response complete with the request's tail
    /// seemingly still to go, and the connection out of the pool.
    #[test]
    fn an_alert_rustls_answers_of_its_own_accord_is_no_unsent_request() {
        use rustls::ConnectionTrafficSecrets;
        // A TLS 1.2 server whose keys the test takes over, to send what
        // rustls never sends: a HelloRequest.
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        (provider.cipher_suites).retain(|suite| {
            suite.suite() == rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        });
        let (mut session, mut server) =
            session_and_server_with(provider, &[&rustls::version::TLS12]);
        let mut read = Vec::new();
        while session.is_handshaking() {
            let back = to_server(&mut session, &mut server, &mut read);
            session.receive(&back);
            assert!(session.error().is_none(), "{:?}", session.error());
        }
        let _ = to_server(&mut session, &mut server, &mut read);
        assert_eq!(session.info().version, "TLSv1.2");
        assert!(!session.has_unsent(), "nothing sent yet");
        let request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        assert_eq!(session.send(request), request.len());
        assert!(session.has_unsent(), "the request is in rustls");
        session.fill_output();
        let sent = session.output().len();
        session.sent(sent / 2);
        assert!(session.has_unsent(), "half the request went");
        session.sent(sent - sent / 2);
        assert!(!session.has_unsent(), "all of it went");
        // The server's HelloRequest (type 0, empty), sealed as its next
        // record (RFC 7905: the nonce is the IV XOR the sequence number).
        let secrets = server.dangerous_extract_secrets().expect("secrets");
        let (seq, ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv }) = secrets.tx else {
            panic!("not ChaCha20-Poly1305");
        };
        let mut nonce: [u8; 12] = iv.as_ref().try_into().expect("a 12-byte IV");
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        let mut aad = seq.to_be_bytes().to_vec();
        aad.extend([22, 3, 3, 0, 4]);
        let mut sealed = vec![0u8; 4];
        let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key.as_ref());
        ring::aead::LessSafeKey::new(key.expect("key"))
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(aad),
                &mut sealed,
            )
            .expect("sealed");
        let mut record = vec![22, 3, 3];
        record.extend((sealed.len() as u16).to_be_bytes());
        record.extend(sealed);
        session.receive(&record);
        assert!(session.error().is_none(), "{:?}", session.error());
        session.fill_output();
        assert!(!session.output().is_empty(), "no alert answered it");
        assert!(!session.has_unsent(), "the alert taken for a request");
    }

    /// An IP address with a final dot is taken as the address (it was
    /// refused as a name, so `https://127.0.0.1.:8443/` never connected):
    /// no SNI names it, as none names an address.
    #[test]
    fn an_address_with_a_final_dot_is_an_address() {
        let config = crate::tls::client_config(None).expect("config");
        let hello = |host: &str| {
            let mut session = TlsSession::new(config.clone(), host).expect(host);
            session.fill_output();
            session.output().to_vec()
        };
        let names = |hello: &[u8], name: &[u8]| hello.windows(name.len()).any(|w| w == name);
        assert!(!names(&hello("127.0.0.1."), b"127.0.0.1"));
        assert!(!names(&hello("127.0.0.1"), b"127.0.0.1"));
        assert!(names(&hello("localhost."), b"localhost"));
        assert!(TlsSession::new(config, "1.2.3.4.5.").is_err());
    }

    /// A fault is no clean end of the stream: a body read until the close
    /// is told it may be cut, not that it is complete.
    #[test]
    fn a_session_ended_by_a_fault_reads_as_cut_not_as_ended() {
        let config = crate::tls::client_config(None).expect("config");
        let mut session = TlsSession::new(config, "localhost").expect("session");
        session.fill_output();
        session.receive(b"HTTP/1.1 200 OK\r\n\r\nthis is no TLS record");
        assert!(session.error().is_some());
        assert!(matches!(session.plain(), Plain::Cut));
    }
}
