//! Limits and timeouts that bound what one connection may cost the server.

use std::time::Duration;

/// Bounds on one connection's input, output and time.
///
/// Every limit has an answer the client can see: see [`crate::http`] for the
/// status each one produces.
///
/// The server's loop looks at its connections' deadlines together, every
/// eighth of the shortest timeout it is given (between 5 ms and 1 s), not
/// at each one's own moment: a timeout's answer (408, 504, a close) may
/// come that much after it. An application's own timers
/// ([`Context::set_timer`](crate::Context::set_timer)) fire on time.
///
/// ```
/// use std::time::Duration;
/// let limits = edgepoll::http::Limits {
///     max_body_bytes: 1 << 20,
///     header_timeout: Duration::from_secs(5),
///     ..Default::default()
/// };
/// assert_eq!(limits.max_headers, 100);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and header fields), in bytes.
    /// Over it: 431, or 414 when the request line alone is over it (RFC
    /// 9112 §3). 16 KiB by default.
    pub max_head_bytes: usize,
    /// Most header fields in one request head. Over it: 431. 100 by default
    /// (as hyper's and Apache's), at most 256.
    pub max_headers: usize,
    /// Largest request body, in bytes (decoded size for chunked bodies). Over it: 413.
    /// 16 MiB by default. A chunked body held whole may take up to about
    /// twice this in buffers while it comes; a streamed one is handed on
    /// as it comes.
    pub max_body_bytes: usize,
    /// Longest chunk-size line, extensions included. Over it: 400. 4 KiB by default.
    pub max_chunk_line_bytes: usize,
    /// While more response bytes than this wait to be sent, the connection stops
    /// reading new requests (backpressure against pipelining clients that do not read).
    /// 1 MiB by default.
    pub max_pending_output_bytes: usize,
    /// Time from a request's first byte to the end of its head. Past it: 408 and close.
    /// 10 s by default.
    pub header_timeout: Duration,
    /// Longest time without progress (bytes in or out) on an open connection,
    /// idle or in a request body. Past it: closed (408 first if a request was under way).
    /// 60 s by default.
    pub idle_timeout: Duration,
    /// What counts as progress against [`idle_timeout`](Self::idle_timeout)
    /// while a request body comes or output waits to be taken: this many
    /// bytes moved since the clock last started over (or the body done, or,
    /// between bodies, all the output sent). While a body comes, only its
    /// bytes count: what is sent back (an echo of it) says nothing of the
    /// client. So a peer trickling a byte now and then cannot hold a
    /// connection for ever, nor what it holds: an upstream connection a
    /// streamed body is piped to, a megabyte of output. The slowest peer
    /// kept moves this much per idle timeout: 1 KiB by default, 17 bytes a
    /// second at the default 60 s. 0 counts every byte.
    pub min_progress_bytes: usize,
    /// Longest wait for a deferred response ([`Reply::Later`](super::Reply::Later)),
    /// counted from when the request is handed to the service (at its head,
    /// or at the end of a body it takes whole), or for a streamed body from
    /// its end (an upload may take longer than this; one its client stalls
    /// meets [`idle_timeout`](Self::idle_timeout) and gets 408), or from its
    /// last piece while its sink holds it back (paused). Past it: 504, and
    /// the service is told the request was abandoned. 30 s by default.
    pub respond_timeout: Duration,
    /// Most requests of one connection waiting for their deferred responses;
    /// past it, pipelined requests are not taken until one is answered. Only
    /// safe requests wait side by side: one after an unsafe request still
    /// unanswered, or an unsafe one after any, is taken once those before
    /// it are answered (RFC 9112 §9.3.2). Meanwhile a head's worth
    /// ([`max_head_bytes`](Self::max_head_bytes)) is read ahead, as no
    /// progress, so that a client that leaves is noticed. 16 by default.
    pub max_waiting: usize,
    /// Largest body a service may take in pieces ([`Dispatch::streams`](super::Dispatch::streams)):
    /// a longer `Content-Length` is not offered for streaming (413 as
    /// usual); a chunked body that grows past it ends the connection.
    /// Unlimited by default (but a `Content-Length` of more than 19 digits,
    /// read as `u64::MAX`, is never offered).
    pub max_stream_bytes: u64,
    /// Bodies with a `Content-Length` up to this are never offered for
    /// streaming (the service is not asked): they come whole, as for a
    /// [`Service`](super::Service). 0 (the default) offers every body.
    pub stream_above: u64,
    /// Once a streamed request's response has been given whole while its
    /// body still comes, at most this many more bytes of the body are read
    /// (and handed to the service) so that the connection can serve the
    /// next request; past it, the connection closes after its responses,
    /// and the service is told [`BodyError::Unread`](super::BodyError::Unread).
    /// 256 KiB by default, as Go's `net/http` reads after a handler; nginx
    /// closes at once after refusing a body. So a service that wants a
    /// whole upload answers after it, or streams its response until then
    /// (Go says as much: a body may be unavailable once the response is
    /// written); `u64::MAX` reads every body to its end.
    pub max_body_after_response: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 16 * 1024 * 1024,
            max_chunk_line_bytes: 4096,
            max_pending_output_bytes: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            min_progress_bytes: 1024,
            respond_timeout: Duration::from_secs(30),
            max_waiting: 16,
            max_stream_bytes: u64::MAX,
            stream_above: 0,
            max_body_after_response: 256 * 1024,
        }
    }
}
