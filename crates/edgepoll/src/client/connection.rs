//! One outbound HTTP/1.1 connection, free of I/O: a request goes out, its
//! response comes in, and the connection says whether it can carry the next.

use crate::http::{ParsedResponse, ResponseError, ResponseParser};

/// What a connection knows of the exchange it carries.
#[derive(Debug)]
enum State {
    /// Connected (or connecting), no exchange.
    Idle,
    /// Sending a request and reading its response (boxed: an idle pooled
    /// connection keeps only the small state).
    Busy(Box<Busy>),
}

#[derive(Debug)]
struct Busy {
    request: Vec<u8>,
    sent: usize,
    parser: ResponseParser,
}

/// The client side of one connection: feed it the server's bytes, send what
/// [`pending_output`](Self::pending_output) holds (tested below).
#[derive(Debug)]
pub(crate) struct ClientConnection {
    state: State,
    /// Exchanges completed on this connection.
    completed: u32,
    /// Whether the last response left the connection reusable.
    reusable: bool,
}

impl Default for ClientConnection {
    fn default() -> Self {
        ClientConnection {
            state: State::Idle,
            completed: 0,
            reusable: true,
        }
    }
}

impl ClientConnection {
    /// Starts an exchange: `request` is the encoded request.
    pub(crate) fn start(&mut self, request: Vec<u8>, to_head: bool, max_body: usize) {
        self.state = State::Busy(Box::new(Busy {
            request,
            sent: 0,
            parser: ResponseParser::new(to_head).with_max_body(max_body),
        }));
    }

    /// Whether no exchange is under way.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Whether an earlier exchange completed on this connection: then a
    /// close before any response byte may just be the server's idle timeout
    /// racing the request, and the request may go again on a new connection.
    pub(crate) fn was_reused(&self) -> bool {
        self.completed > 0
    }

    /// Whether the connection can carry another exchange once idle.
    pub(crate) fn is_reusable(&self) -> bool {
        self.reusable
    }

    pub(crate) fn pending_output(&self) -> &[u8] {
        match &self.state {
            State::Busy(busy) => &busy.request[busy.sent..],
            State::Idle => &[],
        }
    }

    pub(crate) fn consume_output(&mut self, n: usize) {
        if let State::Busy(busy) = &mut self.state {
            busy.sent = (busy.sent + n).min(busy.request.len());
            if busy.sent == busy.request.len() {
                // The request is out: its bytes are not kept.
                busy.request = Vec::new();
                busy.sent = 0;
            }
        }
    }

    pub(crate) fn wants_write(&self) -> bool {
        !self.pending_output().is_empty()
    }

    /// Takes in the server's bytes; returns the exchange's end once the
    /// response is complete or cannot be read. Bytes while idle make the
    /// connection unusable (a server may not send unasked).
    pub(crate) fn receive(&mut self, data: &[u8]) -> Option<Result<ParsedResponse, ResponseError>> {
        let State::Busy(busy) = &mut self.state else {
            self.reusable = false;
            return None;
        };
        let result = busy.parser.feed(data).transpose()?;
        Some(self.finish(result))
    }

    /// The server closed its side: ends a response delimited by the close,
    /// or reports the exchange truncated.
    pub(crate) fn receive_eof(&mut self) -> Option<Result<ParsedResponse, ResponseError>> {
        self.reusable = false;
        let State::Busy(busy) = &mut self.state else {
            return None;
        };
        let result = busy.parser.finish();
        Some(self.finish(result))
    }

    fn finish(
        &mut self,
        result: Result<ParsedResponse, ResponseError>,
    ) -> Result<ParsedResponse, ResponseError> {
        let reusable = match &self.state {
            // A response that came before the whole request was sent leaves
            // the request's tail unsent: the connection cannot go on.
            State::Busy(busy) => busy.parser.is_reusable() && busy.request.is_empty(),
            State::Idle => false,
        };
        self.reusable &= result.is_ok() && reusable;
        self.completed += 1;
        self.state = State::Idle;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_all(conn: &mut ClientConnection) -> Vec<u8> {
        let out = conn.pending_output().to_vec();
        conn.consume_output(out.len());
        out
    }

    #[test]
    fn carries_exchanges_one_after_another_while_the_server_keeps_it_alive() {
        let mut conn = ClientConnection::default();
        for round in 0..3 {
            conn.start(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), false, 100);
            assert_eq!(send_all(&mut conn), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(conn.was_reused(), round > 0);
            let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            // A byte at a time: complete only at the last.
            for (i, b) in response.iter().enumerate() {
                let done = conn.receive(std::slice::from_ref(b));
                assert_eq!(done.is_some(), i == response.len() - 1);
            }
            assert!(conn.is_idle() && conn.is_reusable());
        }
    }

    #[test]
    fn a_close_ends_a_close_delimited_body_and_truncates_the_rest() {
        let mut conn = ClientConnection::default();
        conn.start(b"GET / HTTP/1.1\r\n\r\n".to_vec(), false, 100);
        send_all(&mut conn);
        assert!(conn.receive(b"HTTP/1.1 200 OK\r\n\r\nall").is_none());
        assert_eq!(conn.receive_eof().unwrap().unwrap().body, b"all");
        assert!(!conn.is_reusable());

        let mut conn = ClientConnection::default();
        conn.start(b"GET / HTTP/1.1\r\n\r\n".to_vec(), false, 100);
        send_all(&mut conn);
        assert!(conn
            .receive(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart")
            .is_none());
        assert_eq!(conn.receive_eof(), Some(Err(ResponseError::Truncated)));
    }

    #[test]
    fn unasked_bytes_or_an_early_answer_spoil_the_connection() {
        let mut conn = ClientConnection::default();
        assert!(conn.receive(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
        assert!(!conn.is_reusable());

        let mut conn = ClientConnection::default();
        conn.start(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            false,
            100,
        );
        conn.consume_output(10);
        let early = conn.receive(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(early.unwrap().unwrap().status.as_u16(), 413);
        assert!(!conn.is_reusable());
    }
}
