//! TLS for the client's `https://` connections: rustls inside the guest,
//! driven over the non-blocking socket by the loop's one read/write path
//! (no blocking read, no thread). WasmEdge 0.14.1 dropped its rustls
//! plugin because rustls builds for the Wasm target: TLS belongs here.
//!
//! - Server names are sent (SNI) unless the host is an IP address; ALPN
//!   offers `http/1.1`; TLS 1.3 and 1.2 with rustls' safe defaults.
//! - Trusted roots: the Mozilla set of `webpki-roots` by default, or
//!   instead the PEM certificates of
//!   [`ClientOptions::ca_certificates`](crate::ClientOptions) (as curl's
//!   `--cacert`: a private CA).
//! - A certificate that fails verification ends the exchange with
//!   [`ClientError::TlsHandshake`](crate::ClientError::TlsHandshake), as
//!   any failure of the handshake does (nothing of the request was sent),
//!   whose message names the cause: unknown issuer, a name the certificate
//!   does not cover (and those it does), expired, ...
//!
//! The crypto provider is *ring*: it builds for `wasm32-wasip1` with
//! Debian's clang for its C and assembly parts (`make setup` installs it),
//! and its AES-GCM and ChaCha20 code is the one rustls measures best with.
//! A pure-Rust provider (RustCrypto's) would need no C compiler but is not
//! yet recommended by its authors for production. One part is edgepoll's
//! own, in WebAssembly only: the ChaCha20-Poly1305 record cipher
//! (`chacha20_poly1305.rs`), as ring has no SIMD code for WebAssembly and
//! bulk transfer was held to a quarter of native speed by it. Nor are
//! the key exchanges' private keys drawn as ring draws them, in one
//! `random_get` call: they come from [`crate::entropy`] (`kx.rs`).
//!
//! All of it is behind the cargo feature `tls`, as it adds about 2 MB to a
//! module (1 MB of code and data, the rest debug line tables) and some
//! 20 s to its AOT compilation (the README's "HTTPS" has the measure);
//! built without it, an `https://` request fails at once with
//! [`TlsError::Config`].
//!
//! The client presents no certificate of its own: a server that demands
//! one (mutual TLS) refuses the handshake, with the alert
//! `certificate_required` in TLS 1.3 and, as a rule, `handshake_failure`
//! in TLS 1.2.

// The loop that uses these runs on WasmEdge only; they are tested natively too.
#![cfg_attr(not(target_os = "wasi"), allow(dead_code, unused_imports))]

#[cfg(feature = "tls")]
mod chacha20;
#[cfg(feature = "tls")]
mod chacha20_poly1305;
#[cfg(feature = "tls")]
mod config;
#[cfg(feature = "tls")]
mod kx;
#[cfg(feature = "tls")]
mod poly1305;
#[cfg(feature = "tls")]
mod session;
#[cfg(not(feature = "tls"))]
mod stub;
#[cfg(feature = "tls")]
mod subject;
#[cfg(all(test, feature = "tls"))]
mod test_support;

#[cfg(feature = "tls")]
pub use config::client_config;
#[cfg(feature = "tls")]
pub(crate) use rustls::ClientConfig;
#[cfg(feature = "tls")]
pub(crate) use session::{Plain, TlsSession};
#[cfg(not(feature = "tls"))]
pub(crate) use stub::{client_config, ClientConfig, Plain, TlsSession};

use std::fmt;

/// Why a TLS connection failed.
///
/// ```
/// use edgepoll::tls::TlsError;
/// let e = TlsError::Certificate("unknown issuer".into());
/// assert_eq!(e.to_string(), "certificate rejected: unknown issuer");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate did not verify: the cause.
    Certificate(String),
    /// The server sent a TLS alert (its description).
    Alert(String),
    /// What the server sent is not TLS, or breaks the protocol.
    Protocol(String),
    /// The trusted roots could not be set up (a CA file with no
    /// certificate, a malformed one).
    Config(String),
    /// The connection ended in the middle of a TLS record or handshake.
    Truncated,
    /// The connection was reset during the handshake (by the server, as
    /// a rule).
    Reset,
    /// The connection failed otherwise during the handshake (the system's
    /// words: a timeout of the kernel's, an unreachable host).
    Broken(String),
    /// The handshake did not finish within the connect timeout (counted
    /// from the end of the TCP connect).
    HandshakeTimeout(std::time::Duration),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Certificate(why) => write!(f, "certificate rejected: {why}"),
            TlsError::Alert(what) => write!(f, "the server sent the TLS alert {what}"),
            TlsError::Protocol(what) => write!(f, "TLS protocol error: {what}"),
            TlsError::Config(what) => write!(f, "TLS setup failed: {what}"),
            TlsError::Truncated => f.write_str("the connection closed in the middle of TLS"),
            TlsError::Reset => f.write_str("the connection was reset during the handshake"),
            TlsError::Broken(why) => {
                write!(f, "the connection failed during the handshake: {why}")
            }
            TlsError::HandshakeTimeout(t) => {
                write!(f, "no TLS handshake within {:.1} s", t.as_secs_f64())
            }
        }
    }
}

impl std::error::Error for TlsError {}

#[cfg(feature = "tls")]
impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        use rustls::{CertificateError as C, Error as E};
        match e {
            E::InvalidCertificate(cert) => TlsError::Certificate(match cert {
                C::UnknownIssuer => "unknown issuer (not signed by a trusted CA)".into(),
                C::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
                    // A few: a certificate may name hundreds. Escaped:
                    // webpki gives a name's bytes as they came, and a
                    // private CA's certificate must not write a log line
                    // or a terminal's escapes.
                    let shown: Vec<String> = (presented.iter().take(4))
                        .map(|n| subject::printable(bare_name(n)))
                        .collect();
                    let mut names = shown.join(", ");
                    if presented.len() > 4 {
                        names += &format!(" and {} more", presented.len() - 4);
                    }
                    format!("the certificate is not valid for this host name (it is for {names})")
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "the certificate is not valid for this host name".into()
                }
                C::Expired | C::ExpiredContext { .. } => "the certificate has expired".into(),
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    "the certificate is not valid yet".into()
                }
                C::Revoked => "the certificate is revoked".into(),
                C::BadSignature => "bad signature".into(),
                C::BadEncoding => "the certificate is malformed".into(),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                    "the certificate is not for a server (its extended key usage)".into()
                }
                // webpki's words for a certificate that is its own CA.
                other if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                    "a CA certificate used as the server's (self-signed?)".into()
                }
                other => format!("{other:?}"),
            }),
            // A server that speaks only h2 says so by this alert (rustls's
            // own `NoApplicationProtocol` is a server's error only).
            E::AlertReceived(rustls::AlertDescription::NoApplicationProtocol) => {
                TlsError::Protocol(NO_HTTP11.into())
            }
            E::AlertReceived(alert) => TlsError::Alert(format!("{alert:?}")),
            // The first bytes of a plain HTTP server's answer, say.
            E::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                TlsError::Protocol("what the server sent is not TLS (a plain port?)".into())
            }
            E::InvalidMessage(m) => TlsError::Protocol(format!("invalid message: {m:?}")),
            E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
                TlsError::Protocol("unexpected message".into())
            }
            E::PeerIncompatible(why) => TlsError::Protocol(format!("incompatible peer: {why:?}")),
            E::PeerMisbehaved(why) => TlsError::Protocol(format!("peer misbehaved: {why:?}")),
            E::NoApplicationProtocol => TlsError::Protocol(NO_HTTP11.into()),
            other => TlsError::Protocol(other.to_string()),
        }
    }
}

/// A server that takes no connection for http/1.1, the one protocol the
/// client offers by ALPN.
#[cfg(feature = "tls")]
const NO_HTTP11: &str = "the server offers no http/1.1 (ALPN)";

/// A name webpki presents as its debug form (`DnsName("a.test")`,
/// `IpAddress(127.0.0.1)`), as written.
#[cfg(feature = "tls")]
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'));
    inner.map_or(presented, |name| name.trim_matches('"'))
}

/// What a TLS connection agreed on, for `-v` and logs. Only edgepoll makes
/// one (`#[non_exhaustive]`), so a later release may tell more without
/// breaking a program that reads it.
///
/// ```
/// /// One line on how an `https://` response came.
/// fn log_tls(response: &edgepoll::http::ParsedResponse) {
///     if let Some(tls) = &response.tls {
///         let alpn = tls.alpn.as_deref().unwrap_or("none");
///         eprintln!("{} {} (ALPN {alpn}), server {}", tls.version, tls.cipher_suite, tls.subject);
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite, as rustls names it (`TLS13_AES_128_GCM_SHA256`;
    /// the IANA registry leaves out the `13`).
    pub cipher_suite: String,
    /// The key exchange's group (`X25519`, `secp256r1`, `secp384r1`);
    /// empty when a resumed session made none (TLS 1.2).
    pub key_exchange: String,
    /// The ALPN protocol, if the server chose one.
    pub alpn: Option<String>,
    /// The server certificate's subject (`CN=..., O=...`).
    pub subject: String,
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::TlsError;
    use rustls::{CertificateError as C, Error as E};

    /// A refused certificate is told by its cause, in words, not as rustls
    /// debug-prints it.
    #[test]
    fn certificate_refusals_name_their_cause() {
        for (cause, words) in [
            (C::UnknownIssuer, "unknown issuer"),
            (C::NotValidForName, "not valid for this host name"),
            (C::Expired, "has expired"),
            (C::InvalidPurpose, "not for a server"),
        ] {
            let said = TlsError::from(E::InvalidCertificate(cause)).to_string();
            assert!(said.contains(words) && !said.contains('{'), "{said}");
        }
    }

    /// A name mismatch says which names the certificate is for, as
    /// written (webpki gives them as it debug-prints them), a few at most.
    #[test]
    fn a_name_mismatch_says_a_few_of_the_names_the_certificate_is_for() {
        let mismatch = |presented: &[&str]| {
            let cause = C::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                presented: presented.iter().map(|n| n.to_string()).collect(),
            };
            TlsError::from(E::InvalidCertificate(cause)).to_string()
        };
        let one = mismatch(&["DnsName(\"other.test\")", "IpAddress(10.0.0.1)"]);
        assert!(
            one.ends_with("host name (it is for other.test, 10.0.0.1)"),
            "{one}"
        );
        let names: Vec<String> = (0..6).map(|i| format!("DnsName(\"n{i}.test\")")).collect();
        let many = mismatch(&names.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            many.ends_with("(it is for n0.test, n1.test, n2.test, n3.test and 2 more)"),
            "{many}"
        );
        assert!(mismatch(&[]).ends_with("not valid for this host name"));
        // An h2-only server's alert says what it means.
        let alert = E::AlertReceived(rustls::AlertDescription::NoApplicationProtocol);
        assert_eq!(
            TlsError::from(alert).to_string(),
            "TLS protocol error: the server offers no http/1.1 (ALPN)"
        );
        // Control and bidirectional characters escaped, as in a subject.
        let hostile = mismatch(&["DnsName(\"a\nb\u{1b}[31m\u{202e}c\")"]);
        assert!(
            hostile.ends_with("(it is for a\\nb\\u{1b}[31m\\u{202e}c)"),
            "{hostile}"
        );
    }
}
