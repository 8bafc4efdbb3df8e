//! The rustls client configuration: roots, versions, ALPN.

use super::TlsError;
use rustls::crypto::ring;
use rustls::{CipherSuite, ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;

/// What is wrong with a PEM file, in words: the PEM reader's own message
/// shows the section's name as a list of byte values.
fn pem_fault(e: rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "a {} section has no END line (is the file cut short?)",
            String::from_utf8_lossy(&end_marker)
        ),
        Error::IllegalSectionStart { line } => format!(
            "a section begins with a malformed line: {:?}",
            String::from_utf8_lossy(&line)
        ),
        other => other.to_string(),
    }
}

/// The client's TLS configuration: trusting the PEM certificates of
/// `ca_pem`, or the Mozilla roots without it; ALPN `http/1.1`; the ChaCha20
/// suites first. Public so that a program can check its CA file at start
/// (the loop builds this at the first `https://` request, and a file with
/// no certificate fails every such request with [`TlsError::Config`]), as
/// examples/proxy's `--cacert` does, and so that a native program can use
/// the very same configuration (the TLS benchmark's native client does).
///
/// ```
/// let config = edgepoll::tls::client_config(None).unwrap();
/// assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
/// ```
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Config(format!("CA file: {}", pem_fault(e))))?;
            // A bundle (a distribution's whole `ca-certificates.crt`, say)
            // may hold a certificate webpki cannot take as a root: it is
            // passed over, as OpenSSL and curl pass it over, not a reason
            // to trust nothing.
            let (added, passed_over) = roots.add_parsable_certificates(certs);
            match (added, passed_over) {
                (0, 0) => return Err(TlsError::Config("the CA file holds no certificate".into())),
                (0, n) => {
                    return Err(TlsError::Config(format!(
                        "the CA file holds no usable certificate ({n} passed over)"
                    )))
                }
                _ => {}
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    // Deprecated since rustls 0.23.48 for want of post-quantum key
    // exchanges, which ring has none of; the groups are replaced below.
    #[allow(deprecated)]
    let mut provider = ring::default_provider();
    // Secret bytes from many calls of the system's source, not one (see
    // `crate::entropy`).
    provider.kx_groups = super::kx::GROUPS.to_vec();
    provider.secure_random = &crate::entropy::ForRustls;
    // WebAssembly has no AES instructions: ring's constant-time software
    // AES-GCM runs at a sixth of ChaCha20-Poly1305's speed there (64 MiB
    // from nginx: 1.6-1.9 s against 0.27-0.34 s, on edgepoll-host and
    // WasmEdge AOT alike), so the ChaCha20 suites are offered first
    // (servers honour the client's order by default).
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        )
    });
    // In WebAssembly the ChaCha20-Poly1305 records are sealed and opened
    // by edgepoll's SIMD code, four times as fast as ring's portable code
    // there (see `chacha20_poly1305.rs`); natively ring's assembly stays.
    #[cfg(target_arch = "wasm32")]
    for suite in provider.cipher_suites.iter_mut() {
        *suite = super::chacha20_poly1305::with_own_record_cipher(*suite);
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_ca_file_is_said_in_words() {
        let said = |pem: &str| match client_config(Some(pem.as_bytes())) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{pem:?} taken"),
        };
        assert_eq!(
            said("-----BEGIN CERTIFICATE-----\nMIIB\n"),
            "TLS setup failed: CA file: a CERTIFICATE section has no END line (is the file cut short?)"
        );
        assert_eq!(
            said("no PEM here\n"),
            "TLS setup failed: the CA file holds no certificate"
        );
    }
}
