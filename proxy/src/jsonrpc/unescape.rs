//! Decoding of string tokens the lexer has already validated, with `serde_json`'s semantics:
//! the value the gateway routes on must be the value the upstream's parser sees.

use std::borrow::Cow;

use super::lexer::{RawStr, hex_value};
use super::{ScanError, Span};

/// Decodes a validated string token: borrowed when it has no escapes.
pub(super) fn decode<'a>(body: &'a [u8], raw: RawStr) -> Result<Cow<'a, str>, ScanError> {
    let content = raw.content(body);
    if !raw.escaped {
        return std::str::from_utf8(content)
            .map(Cow::Borrowed)
            .map_err(|_| invalid(raw.span));
    }
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(backslash) = rest.iter().position(|&b| b == b'\\') {
        let (plain, tail) = rest.split_at(backslash);
        out.push_str(std::str::from_utf8(plain).map_err(|_| invalid(raw.span))?);
        let (ch, used) = escape(tail).ok_or_else(|| invalid(raw.span))?;
        out.push(ch);
        rest = tail.get(used..).ok_or_else(|| invalid(raw.span))?;
    }
    out.push_str(std::str::from_utf8(rest).map_err(|_| invalid(raw.span))?);
    Ok(Cow::Owned(out))
}

/// Decodes the escape at the start of `s` (which begins with a backslash): the character and
/// the number of bytes used.
fn escape(s: &[u8]) -> Option<(char, usize)> {
    let ch = match s.get(1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let high = hex4(s.get(2..6)?)?;
            if !(0xD800..=0xDBFF).contains(&high) {
                return Some((char::from_u32(u32::from(high))?, 6));
            }
            if s.get(6..8)? != b"\\u" {
                return None;
            }
            let low = hex4(s.get(8..12)?)?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return None;
            }
            let code = 0x1_0000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
            return Some((char::from_u32(code)?, 12));
        }
        _ => return None,
    };
    Some((ch, 2))
}

fn hex4(digits: &[u8]) -> Option<u16> {
    digits
        .iter()
        .try_fold(0u16, |acc, &d| Some((acc << 4) | u16::from(hex_value(d)?)))
}

/// Only reachable if the lexer and the decoder disagree; refuse rather than guess.
fn invalid(span: Span) -> ScanError {
    ScanError::Syntax {
        offset: span.start,
        reason: "undecodable string",
    }
}
