//! Rewriting a body by replacing token spans, so every byte the gateway does not mean to change
//! (the JSON-RPC id, the arguments, the client's whitespace) reaches the upstream unchanged.

use bytes::{Bytes, BytesMut};

use super::Span;

/// Why a splice could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpliceError {
    /// A span reaches past the end of the body (it came from another body).
    #[error("span {}..{} is outside a body of {len} bytes", span.start, span.end)]
    OutOfBounds {
        /// The offending span.
        span: Span,
        /// The body's length.
        len: usize,
    },
    /// Spans must be given in order and must not overlap.
    #[error("span {}..{} overlaps or precedes the previous one", span.start, span.end)]
    Overlapping {
        /// The offending span.
        span: Span,
    },
}

/// Returns `body` with the bytes of `span` replaced by `replacement`, in one allocation of the
/// exact size.
pub fn replace_span(body: &[u8], span: Span, replacement: &[u8]) -> Result<Bytes, SpliceError> {
    replace_spans(body, &[(span, replacement)])
}

/// Returns `body` with each span replaced by its bytes, in one allocation of the exact size.
/// Spans must be sorted by position and must not overlap.
pub fn replace_spans(body: &[u8], edits: &[(Span, &[u8])]) -> Result<Bytes, SpliceError> {
    let mut size = body.len();
    let mut previous_end = 0;
    for &(span, replacement) in edits {
        if span.start > span.end || span.end > body.len() {
            return Err(SpliceError::OutOfBounds {
                span,
                len: body.len(),
            });
        }
        if span.start < previous_end {
            return Err(SpliceError::Overlapping { span });
        }
        previous_end = span.end;
        size = size + replacement.len() - span.len();
    }
    let mut out = BytesMut::with_capacity(size);
    let mut copied = 0;
    for &(span, replacement) in edits {
        out.extend_from_slice(body.get(copied..span.start).unwrap_or_default());
        out.extend_from_slice(replacement);
        copied = span.end;
    }
    out.extend_from_slice(body.get(copied..).unwrap_or_default());
    Ok(out.freeze())
}

/// Encodes `s` as a JSON string token, quotes included, byte for byte as `serde_json` would.
pub fn json_string_literal(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_json_string(&mut out, s);
    out
}

/// Appends `s` to `out` as a JSON string token, quotes included, byte for byte as `serde_json`
/// would: `"` and `\` escaped, control characters as `\b \t \n \f \r` or `\u00xx`, everything
/// else (including `/`, DEL and non-ASCII) as is.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0a => b'n',
            0x0c => b'f',
            0x0d => b'r',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(bytes.get(plain_from..i).unwrap_or_default());
        plain_from = i + 1;
        if short == b'u' {
            let high = HEX[usize::from(b >> 4)];
            let low = HEX[usize::from(b & 0xf)];
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
    }
    out.extend_from_slice(bytes.get(plain_from..).unwrap_or_default());
    out.push(b'"');
}
