//! JSON-RPC envelope inspection by scanning bytes, and rewriting by splicing them.
//!
//! The gateway routes on `method`, `params.name` and `params.uri` and must forward every other
//! byte untouched, so it never builds a `serde_json::Value` on the hot path: [`scan`] validates
//! the whole body in one pass and records byte spans, and [`replace_span`] swaps one token.
//! Security: the scanner refuses duplicate and escaped keys in the envelope, `params` and
//! `params._meta`, so the gateway can never route on a different key than the one the upstream's
//! parser keeps (see PINGORA-NOTES, "A security trap in early-stopping scanners").

use std::borrow::Cow;

mod envelope;
mod keys;
mod lexer;
mod splice;
#[cfg(test)]
mod tests;
mod unescape;

pub use envelope::scan;
pub use splice::{
    SpliceError, json_string_literal, replace_span, replace_spans, write_json_string,
};

/// A nesting limit suited to MCP bodies: deep enough for any real tool arguments, shallow enough
/// that a hostile body cannot make the scanner do unbounded bookkeeping.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// A byte range `start..end` into the scanned body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// Offset of the first byte of the token.
    pub start: usize,
    /// Offset one past the last byte of the token.
    pub end: usize,
}

impl Span {
    /// The bytes this span covers in `body`, or `None` if it does not fit (a span from another
    /// body).
    pub fn slice<'b>(&self, body: &'b [u8]) -> Option<&'b [u8]> {
        body.get(self.start..self.end)
    }

    /// Number of bytes covered.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span covers no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a single JSON-RPC message is, as decided by which members it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `method` and `id`: the peer waits for a response.
    Request,
    /// `method` without `id`: no response is expected.
    Notification,
    /// `id` with `result` or `error`, no `method`.
    Response,
}

/// A string member found while scanning, with where it sits and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrField<'a> {
    /// The whole string token, quotes included: the span to splice when rewriting the value.
    pub span: Span,
    /// The decoded value, borrowed from the body unless the token contains escapes.
    pub value: Cow<'a, str>,
}

/// The routing-relevant parts of one JSON-RPC message. Spans point into the scanned body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Request, notification or response.
    pub kind: MessageKind,
    /// The raw `id` token (a string with its quotes, or a number), to echo back byte for byte.
    pub id: Option<Span>,
    /// The decoded `method`.
    pub method: Option<Cow<'a, str>>,
    /// The whole `params` value (an object or an array).
    pub params: Option<Span>,
    /// `params.name` when `params` is an object and `name` is a string.
    pub name: Option<StrField<'a>>,
    /// `params.uri` when `params` is an object and `uri` is a string.
    pub uri: Option<StrField<'a>>,
    /// The raw `params._meta.progressToken` token (a string with its quotes, or a number).
    pub progress_token: Option<Span>,
    /// The whole `params._meta` object.
    pub meta: Option<Span>,
    /// The whole `result` value of a response.
    pub result: Option<Span>,
    /// The whole `error` object of a response.
    pub error: Option<Span>,
}

/// What [`scan`] found at the top level of a body.
// Returned by value once per request and never stored in bulk: boxing the envelope would cost an
// allocation on the hot path to save stack bytes nobody keeps.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned<'a> {
    /// One JSON-RPC message.
    Single(Envelope<'a>),
    /// A syntactically valid JSON array: a JSON-RPC batch, which MCP no longer allows and the
    /// gateway refuses.
    Batch,
}

/// Why a body was refused. [`ScanError::json_rpc_code`] gives the JSON-RPC error code to answer
/// with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The body is not valid JSON (RFC 8259).
    #[error("invalid JSON at byte {offset}: {reason}")]
    Syntax {
        /// Offset of the byte where the problem was seen.
        offset: usize,
        /// What was wrong there.
        reason: &'static str,
    },
    /// Arrays and objects are nested deeper than the configured limit.
    #[error("JSON nested deeper than {max_depth} levels")]
    TooDeep {
        /// The limit that was exceeded.
        max_depth: usize,
    },
    /// A key appears twice in an object the gateway routes on.
    #[error("duplicate key {key:?} in {level}")]
    DuplicateKey {
        /// The key as written (lossy UTF-8, cut to 64 bytes).
        key: String,
        /// Which object: `message`, `params` or `params._meta`.
        level: &'static str,
    },
    /// A key spelled with an escape sequence in an object the gateway routes on.
    #[error("escaped key in {level}")]
    EscapedKey {
        /// Which object: `message`, `params` or `params._meta`.
        level: &'static str,
    },
    /// Valid JSON that is not a valid JSON-RPC 2.0 message.
    #[error("invalid JSON-RPC message: {reason}")]
    InvalidRequest {
        /// What is missing or mistyped.
        reason: &'static str,
    },
}

impl ScanError {
    /// The JSON-RPC error code for this refusal: `-32700` (parse error) when the body is not
    /// acceptable JSON, `-32600` (invalid request) otherwise.
    pub fn json_rpc_code(&self) -> i64 {
        match self {
            ScanError::Syntax { .. } | ScanError::TooDeep { .. } => -32700,
            ScanError::DuplicateKey { .. }
            | ScanError::EscapedKey { .. }
            | ScanError::InvalidRequest { .. } => -32600,
        }
    }
}
