//! The byte-level half of the scanner: a cursor that validates JSON tokens (RFC 8259, with the
//! same strictness as `serde_json` parsing into a `Value`) and skips whole values without
//! recursion, so nesting depth is bounded by a counter rather than by the stack.

use super::{ScanError, Span};

mod strings;

pub(super) use strings::hex_value;
#[cfg(test)]
pub(super) use strings::skip_plain;

/// A string token that passed validation.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawStr {
    /// The token, quotes included.
    pub span: Span,
    /// Whether the token contains at least one escape sequence.
    pub escaped: bool,
}

impl RawStr {
    /// The bytes between the quotes.
    pub fn content<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        body.get(self.span.start + 1..self.span.end.saturating_sub(1))
            .unwrap_or_default()
    }
}

/// One bit per open container (1 = object, 0 = array). The first 64 levels live inline, so the
/// usual body costs no allocation.
#[derive(Default)]
struct Nesting {
    len: usize,
    inline: u64,
    spill: Vec<u64>,
}

impl Nesting {
    fn push(&mut self, is_object: bool) {
        let (word, bit) = (self.len / 64, self.len % 64);
        let slot = match word.checked_sub(1) {
            None => &mut self.inline,
            Some(index) => {
                if self.spill.len() <= index {
                    self.spill.push(0);
                }
                match self.spill.get_mut(index) {
                    Some(slot) => slot,
                    None => return,
                }
            }
        };
        if is_object {
            *slot |= 1 << bit;
        } else {
            *slot &= !(1 << bit);
        }
        self.len += 1;
    }

    /// Whether the innermost open container is an object; `None` when none is open.
    fn top_is_object(&self) -> Option<bool> {
        let last = self.len.checked_sub(1)?;
        let (word, bit) = (last / 64, last % 64);
        let bits = match word.checked_sub(1) {
            None => self.inline,
            Some(index) => *self.spill.get(index)?,
        };
        Some(bits & (1 << bit) != 0)
    }

    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }
}

/// A position in the body plus the nesting limit.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8], max_depth: usize) -> Self {
        Cursor {
            bytes,
            pos: 0,
            max_depth,
        }
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub fn error(&self, reason: &'static str) -> ScanError {
        ScanError::Syntax {
            offset: self.pos,
            reason,
        }
    }

    fn error_at(offset: usize, reason: &'static str) -> ScanError {
        ScanError::Syntax { offset, reason }
    }

    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Succeeds when only whitespace is left.
    pub fn finish(&mut self) -> Result<(), ScanError> {
        self.skip_ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("trailing characters after the JSON value")),
        }
    }

    #[inline]
    fn check_depth(&self, depth: usize) -> Result<(), ScanError> {
        if depth > self.max_depth {
            return Err(ScanError::TooDeep {
                max_depth: self.max_depth,
            });
        }
        Ok(())
    }

    /// Enters the object at the cursor, which sits at nesting level `depth` once entered.
    /// Returns whether the object has members; an empty object is consumed whole.
    #[inline]
    pub fn begin_object(&mut self, depth: usize) -> Result<bool, ScanError> {
        if self.peek() != Some(b'{') {
            return Err(self.error("expected '{'"));
        }
        self.check_depth(depth)?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// Reads `"key" :` and the whitespace after it, leaving the cursor on the value.
    #[inline]
    pub fn member_key(&mut self) -> Result<RawStr, ScanError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string key"));
        }
        let key = self.string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.error("expected ':' after an object key"));
        }
        self.pos += 1;
        self.skip_ws();
        Ok(key)
    }

    /// After a member's value: consumes `,` (returns true, cursor on the next key) or `}`
    /// (returns false).
    #[inline]
    pub fn end_member(&mut self) -> Result<bool, ScanError> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_ws();
                Ok(true)
            }
            Some(b'}') => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.error("expected ',' or '}' after an object member")),
        }
    }

    /// Validates one value of any kind; `depth` is the nesting level of the container that holds
    /// it (0 at the top level). Returns the value's span.
    #[inline]
    pub fn skip_value(&mut self, depth: usize) -> Result<Span, ScanError> {
        let start = self.pos;
        match self.peek() {
            Some(b'{' | b'[') => self.skip_container(depth)?,
            _ => self.scalar()?,
        }
        Ok(Span {
            start,
            end: self.pos,
        })
    }

    /// Validates a string, number or literal at the cursor.
    #[inline]
    fn scalar(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(_) => Err(self.error("expected a JSON value")),
            None => Err(self.error("unexpected end of input, expected a value")),
        }
    }

    /// Validates a nested array or object with an explicit stack instead of recursion.
    fn skip_container(&mut self, outer_depth: usize) -> Result<(), ScanError> {
        let mut open = Nesting::default();
        'value: loop {
            match self.peek() {
                Some(opener @ (b'{' | b'[')) => {
                    let is_object = opener == b'{';
                    self.check_depth(outer_depth + open.len + 1)?;
                    open.push(is_object);
                    self.pos += 1;
                    self.skip_ws();
                    let closer = if is_object { b'}' } else { b']' };
                    if self.peek() == Some(closer) {
                        self.pos += 1;
                        open.pop();
                    } else {
                        if is_object {
                            self.member_key()?;
                        }
                        continue 'value;
                    }
                }
                _ => self.scalar()?,
            }
            // A value just ended: close containers until one continues with ','.
            loop {
                let Some(in_object) = open.top_is_object() else {
                    return Ok(());
                };
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_ws();
                        if in_object {
                            self.member_key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if in_object => {
                        self.pos += 1;
                        open.pop();
                    }
                    Some(b']') if !in_object => {
                        self.pos += 1;
                        open.pop();
                    }
                    _ if in_object => {
                        return Err(self.error("expected ',' or '}' after an object member"));
                    }
                    _ => return Err(self.error("expected ',' or ']' after an array element")),
                }
            }
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), ScanError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    #[inline]
    pub fn number(&mut self) -> Result<(), ScanError> {
        let mut i = self.pos;
        if self.bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        match self.bytes.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = self.digits(i + 1),
            _ => return Err(Self::error_at(i, "invalid number")),
        }
        if self.bytes.get(i) == Some(&b'.') {
            i += 1;
            if !matches!(self.bytes.get(i), Some(b'0'..=b'9')) {
                return Err(Self::error_at(i, "expected a digit after '.'"));
            }
            i = self.digits(i);
        }
        if let Some(b'e' | b'E') = self.bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = self.bytes.get(i) {
                i += 1;
            }
            if !matches!(self.bytes.get(i), Some(b'0'..=b'9')) {
                return Err(Self::error_at(i, "expected a digit in the exponent"));
            }
            i = self.digits(i);
        }
        self.pos = i;
        Ok(())
    }

    #[inline]
    fn digits(&self, mut i: usize) -> usize {
        while let Some(b'0'..=b'9') = self.bytes.get(i) {
            i += 1;
        }
        i
    }
}
