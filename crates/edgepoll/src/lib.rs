//! edgepoll: non-blocking network programs for WasmEdge.
//!
//! - [`net`]: WasmEdge's `TcpListener`/`TcpStream`, with real addresses and a
//!   non-blocking IPv4/IPv6 connect.
//! - [`Poll`], [`Token`], [`Interest`], [`Events`]: a mio-shaped registry over
//!   WasmEdge's `poll_oneoff`.
//! - [`dns`]: host names to addresses, on the loop when a DNS server is
//!   configured.
//! - [`http`]: the HTTP/1.1 state machine, free of I/O (runs natively too).
//! - [`Server`]: the one event loop that drives an [`http::Service`], a
//!   [`ws::Service`] or an [`App`] (a service that may answer later and calls
//!   other services through the loop's client); [`send_all`]: many client
//!   requests at once on the same client.
//! - [`SmallBlockAlloc`]: a global allocator for guests that recycles small
//!   blocks instead of paying dlmalloc for each.
//! - With the cargo feature `http`: conversions to and from the `http`
//!   crate's `Request` and `Response` ([`http_interop`] says what each
//!   carries and what it leaves out).
//!
//! The error enums (`ClientError`, `RequestError`, `ResolveError`,
//! `TlsError`, `UrlError` and the HTTP and WebSocket parsers' errors) are
//! `#[non_exhaustive]`: a new way to fail can be added without breaking a
//! program, whose matches end with a `_` arm.
//!
//! An echo server in full:
//!
//! ```no_run
//! use edgepoll::http::{Request, Response, StatusCode};
//!
//! fn echo<'a>(request: &Request<'a>) -> Response<'a> {
//!     Response::new(StatusCode::OK).body(request.body())
//! }
//!
//! # #[cfg(target_os = "wasi")]
//! fn main() -> std::io::Result<()> {
//!     let listener = edgepoll::net::bind("127.0.0.1:1234".parse().unwrap())?;
//!     edgepoll::Server::new(listener, Default::default()).serve(echo)
//! }
//! # #[cfg(not(target_os = "wasi"))] fn main() {}
//! ```

#![deny(missing_docs)]

mod app;
mod app_timers;
mod client;
/// The client's part for edgepoll-fuzz: not an API (`fuzzing` feature).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use client::fuzzing as client_fuzzing;
pub mod dns;
pub mod entropy;
mod event;
mod headroom;
mod held_pieces;
mod held_writers;
pub mod http;
#[cfg(feature = "http")]
pub mod http_interop;
mod interest;
mod poll;
mod small_alloc;
mod subscriptions;
mod sys;
#[cfg(test)]
mod test_alloc;
mod timer;
pub mod tls;
mod token;
mod url;
pub mod ws;

mod log;
#[cfg(target_os = "wasi")]
pub mod net;
#[cfg(target_os = "wasi")]
mod server;
mod short_copy;

pub use app::{App, Context, Responder};
pub use app_timers::TimerId;
#[cfg(target_os = "wasi")]
pub use client::{download, download_with, send_all, send_all_each, send_all_with};
pub use client::{ClientError, ClientOptions, ClientRequest, ExchangeId, RequestError};
pub use event::{Event, Events};
#[cfg(feature = "http")]
pub use http_interop::{ConnectionAddresses, StreamedBody};
pub use interest::Interest;
pub use log::log_to_stderr;
pub use poll::{
    Poll, COLD_PER_INTERVAL, DEFAULT_FULL_POLL_INTERVAL, MAX_INTERVAL_STRETCH, SPLIT_ABOVE,
};
#[cfg(target_os = "wasi")]
pub use server::{Server, ServerOptions};
pub use small_alloc::SmallBlockAlloc;
pub use timer::Sweep;
pub use token::Token;
pub use url::{Url, UrlError};
