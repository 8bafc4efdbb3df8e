//! Built without the `tls` feature: the same names, and an `https://`
//! request fails at once, saying why.

use super::{TlsError, TlsInfo};
use std::sync::Arc;

/// No configuration is ever made.
pub(crate) enum ClientConfig {}

pub(crate) fn client_config(_: Option<&[u8]>) -> Result<Arc<ClientConfig>, TlsError> {
    Err(TlsError::Config(
        "https:// needs edgepoll built with its `tls` feature".into(),
    ))
}

/// No session exists: every method is unreachable.
pub(crate) enum TlsSession {}

// Named by the loop's TLS layer, never made here.
#[allow(dead_code)]
pub(crate) enum Plain<'a> {
    Data(&'a [u8]),
    Nothing,
    End,
    Cut,
}

impl TlsSession {
    pub(crate) fn new(config: Arc<ClientConfig>, _: &str) -> Result<TlsSession, TlsError> {
        match *config {}
    }
    pub(crate) fn is_handshaking(&self) -> bool {
        match *self {}
    }
    pub(crate) fn holds_partial_record(&self) -> bool {
        match *self {}
    }
    pub(crate) fn error(&self) -> Option<&TlsError> {
        match *self {}
    }
    pub(crate) fn takes_input(&self) -> bool {
        match *self {}
    }
    pub(crate) fn receive(&mut self, _: &[u8]) {
        match *self {}
    }
    pub(crate) fn receive_eof(&mut self) {
        match *self {}
    }
    pub(crate) fn retry_input(&mut self) {
        match *self {}
    }
    pub(crate) fn plain(&mut self) -> Plain<'_> {
        match *self {}
    }
    pub(crate) fn consume(&mut self, _: usize) {
        match *self {}
    }
    pub(crate) fn send(&mut self, _: &[u8]) -> usize {
        match *self {}
    }
    pub(crate) fn fill_output(&mut self) {
        match *self {}
    }
    pub(crate) fn close_notify(&mut self) -> &[u8] {
        match *self {}
    }
    pub(crate) fn output(&self) -> &[u8] {
        match *self {}
    }
    pub(crate) fn has_unsent(&self) -> bool {
        match *self {}
    }
    pub(crate) fn received(&self) -> u64 {
        match *self {}
    }
    pub(crate) fn sent(&mut self, _: usize) {
        match *self {}
    }
    pub(crate) fn info(&self) -> TlsInfo {
        match *self {}
    }
}
