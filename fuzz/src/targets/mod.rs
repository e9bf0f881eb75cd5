//! The targets, one module each. Every `run` returns the outcome's shape and panics on a
//! finding.

pub mod config;
pub mod cursor;
pub mod headers;
pub mod jsonrpc;
pub mod jwt;
pub mod modern;
pub mod relay;
pub mod session;
pub mod sse;

/// A lossy, bounded rendering of an input for panic messages.
pub(crate) fn shown(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let mut out: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    format!("{out:?}")
}
