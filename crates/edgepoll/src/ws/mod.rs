//! WebSocket (RFC 6455) as a state machine free of I/O, like [`http`](crate::http).
//!
//! - [`handshake`]: checks an upgrade request and answers 101 (or 400, or 426
//!   for another protocol version).
//! - [`frame`]: frame headers, read incrementally and written.
//! - [`WebSocket`]: the server side of one connection: bytes in, messages
//!   out; pings answered, fragments joined, text checked, the close handshake.
//! - [`Service`] and [`Outbox`]: what an application implements to run on
//!   the event loop ([`Server::serve_websockets`](crate::Server::serve_websockets)),
//!   and how it sends to its own connection or to any other.
//!
//! Why by hand: the SHA-1 and base64 of the handshake come from the `sha1`
//! and `base64` crates, but framing is written here. `tungstenite` owns its
//! stream (`Read + Write`) and its buffers; driving it from the loop's
//! buffers would need an adapter that copies every byte twice and a second
//! outbound queue beside the bounded one the loop needs for fan-out. The
//! framing itself is small, and here it shares the loop's buffers, is fed one
//! byte at a time in the tests and fuzzed (`make fuzz`).

pub mod frame;
pub mod handshake;
mod service;
#[cfg(target_os = "wasi")]
pub(crate) use service::Action;
mod socket;
mod utf8;

pub use service::{Outbox, Service};
pub use socket::{CloseCode, Message, WebSocket, WsLimits};

#[cfg(test)]
mod tests;
