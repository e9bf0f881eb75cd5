//! String tokens, the bulk of every MCP body: a word-at-a-time fast path over plain ASCII, and a
//! slow path that checks escapes (surrogates must pair), control characters and UTF-8 exactly as
//! strictly as `serde_json` does when it builds a `String`.

use super::{Cursor, RawStr, ScanError, Span};

/// Byte classes for the string fast path: 0 for bytes that can be copied blindly, 1 for bytes
/// that end the fast path (`"`, `\`, control characters, and any non-ASCII byte, whose UTF-8
/// sequence is then checked).
const STRING_STOP: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        if i < 0x20 || i >= 0x80 || i == b'"' as usize || i == b'\\' as usize {
            table[i] = 1;
        }
        i += 1;
    }
    table
};

impl Cursor<'_> {
    /// Validates the string token at the cursor: escapes (surrogates must pair), no raw control
    /// characters, well-formed UTF-8.
    #[inline]
    pub fn string(&mut self) -> Result<RawStr, ScanError> {
        let start = self.pos;
        let end = skip_plain(self.bytes, start + 1);
        if self.bytes.get(end) == Some(&b'"') {
            self.pos = end + 1;
            let span = Span {
                start,
                end: self.pos,
            };
            return Ok(RawStr {
                span,
                escaped: false,
            });
        }
        self.string_slow(start, end)
    }

    /// The rest of a string once the fast path met an escape, a control character, non-ASCII
    /// or the end of input at `i`. Kept out of line so the common case stays small.
    #[inline(never)]
    fn string_slow(&mut self, start: usize, mut i: usize) -> Result<RawStr, ScanError> {
        let mut escaped = false;
        loop {
            match self.bytes.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    let span = Span {
                        start,
                        end: self.pos,
                    };
                    return Ok(RawStr { span, escaped });
                }
                Some(b'\\') => {
                    escaped = true;
                    i = self.escape(i + 1)?;
                }
                Some(0x00..=0x1f) => {
                    return Err(Self::error_at(i, "control character in a string"));
                }
                Some(_) => i = self.utf8_sequence(i)?,
                None => return Err(Self::error_at(i, "unexpected end of input in a string")),
            }
            i = skip_plain(self.bytes, i);
        }
    }

    /// Validates the escape whose letter is at `i` (just after the backslash); returns the
    /// offset after it.
    fn escape(&self, i: usize) -> Result<usize, ScanError> {
        match self.bytes.get(i) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 1),
            Some(b'u') => {
                let unit = self.hex4(i + 1)?;
                match unit {
                    0xDC00..=0xDFFF => Err(Self::error_at(i, "lone trailing surrogate")),
                    0xD800..=0xDBFF => {
                        let next = i + 5;
                        if self.bytes.get(next..next + 2) != Some(b"\\u") {
                            return Err(Self::error_at(next, "unpaired leading surrogate"));
                        }
                        match self.hex4(next + 2)? {
                            0xDC00..=0xDFFF => Ok(next + 6),
                            _ => Err(Self::error_at(next, "unpaired leading surrogate")),
                        }
                    }
                    _ => Ok(i + 5),
                }
            }
            Some(_) => Err(Self::error_at(i, "invalid escape")),
            None => Err(Self::error_at(i, "unexpected end of input in an escape")),
        }
    }

    /// Reads four hex digits at `i`.
    fn hex4(&self, i: usize) -> Result<u16, ScanError> {
        let digits = self
            .bytes
            .get(i..i + 4)
            .ok_or_else(|| Self::error_at(i, "unexpected end of input in a \\u escape"))?;
        let mut unit = 0u16;
        for (k, &d) in digits.iter().enumerate() {
            let v = hex_value(d).ok_or_else(|| Self::error_at(i + k, "invalid \\u escape"))?;
            unit = (unit << 4) | u16::from(v);
        }
        Ok(unit)
    }

    /// Validates the UTF-8 sequence whose lead byte (>= 0x80) is at `i` (RFC 3629 table:
    /// no overlong forms, no surrogates, nothing above U+10FFFF); returns the offset after it.
    fn utf8_sequence(&self, i: usize) -> Result<usize, ScanError> {
        let lead = self.bytes.get(i).copied().unwrap_or(0);
        let (second, tail) = match lead {
            0xC2..=0xDF => (0x80..=0xBF, 0),
            0xE0 => (0xA0..=0xBF, 1),
            0xE1..=0xEC | 0xEE..=0xEF => (0x80..=0xBF, 1),
            0xED => (0x80..=0x9F, 1),
            0xF0 => (0x90..=0xBF, 2),
            0xF1..=0xF3 => (0x80..=0xBF, 2),
            0xF4 => (0x80..=0x8F, 2),
            _ => return Err(Self::error_at(i, "invalid UTF-8 in a string")),
        };
        let ok_second = self.bytes.get(i + 1).is_some_and(|b| second.contains(b));
        let ok_tail = (0..tail).all(|k| {
            self.bytes
                .get(i + 2 + k)
                .is_some_and(|b| (0x80..=0xBF).contains(b))
        });
        if ok_second && ok_tail {
            Ok(i + 2 + tail)
        } else {
            Err(Self::error_at(i, "invalid UTF-8 in a string"))
        }
    }
}

/// Returns the offset of the first byte at or after `i` that ends the string fast path (see
/// [`STRING_STOP`]), or `bytes.len()`. Looks at eight bytes per step while none of them is
/// special: JSON strings in MCP traffic are mostly long runs of plain ASCII.
#[inline]
pub(in crate::jsonrpc) fn skip_plain(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(chunk);
        let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        // Bytes below 0x20, equal to '"' or '\\', or with the high bit set. Borrows can only
        // mark bytes above a true match, so the lowest marked byte is a real one.
        let special = (word.wrapping_sub(ONES * 0x20) & !word)
            | has_zero(word ^ (ONES * u64::from(b'"')))
            | has_zero(word ^ (ONES * u64::from(b'\\')))
            | word;
        let special = special & HIGH;
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if STRING_STOP[usize::from(b)] != 0 {
            break;
        }
        i += 1;
    }
    i
}

/// The value of one hex digit.
pub(in crate::jsonrpc) fn hex_value(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}
