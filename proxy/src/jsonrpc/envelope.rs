//! The message-level half of the scanner: walks the envelope, `params` and `params._meta`
//! (three fixed levels, so this recursion is bounded), hands every other value to the lexer, and
//! decides what kind of message the body is.
//!
//! Problems that make the body a bad request but not bad JSON are held until the end of the pass,
//! so a body that is also syntactically broken is reported as a parse error, as JSON-RPC asks.

use std::borrow::Cow;

use super::keys::KeySet;
use super::lexer::{Cursor, RawStr};
use super::unescape::decode;
use super::{Envelope, MessageKind, ScanError, Scanned, Span, StrField};

const MESSAGE: &str = "message";
const PARAMS: &str = "params";
const META: &str = "params._meta";

/// Validates `body` as JSON in one pass and reads the JSON-RPC envelope.
///
/// Nesting deeper than `max_depth` containers (the top-level object counts as one) is refused.
/// Never panics, whatever the bytes.
pub fn scan(body: &[u8], max_depth: usize) -> Result<Scanned<'_>, ScanError> {
    let mut cursor = Cursor::new(body, max_depth);
    cursor.skip_ws();
    match cursor.peek() {
        Some(b'{') => {
            let mut reader = Reader {
                cursor,
                problem: None,
                fields: Fields::default(),
            };
            reader.message()?;
            reader.cursor.finish()?;
            if let Some(problem) = reader.problem {
                return Err(problem);
            }
            reader.fields.into_envelope().map(Scanned::Single)
        }
        Some(b'[') => {
            cursor.skip_value(0)?;
            cursor.finish()?;
            Ok(Scanned::Batch)
        }
        Some(_) => {
            cursor.skip_value(0)?;
            cursor.finish()?;
            Err(invalid("the message is not a JSON object"))
        }
        None => Err(cursor.error("empty body")),
    }
}

fn invalid(reason: &'static str) -> ScanError {
    ScanError::InvalidRequest { reason }
}

/// What the envelope carried, before the kind is decided.
#[derive(Default)]
struct Fields<'a> {
    jsonrpc: Option<bool>,
    id: Option<Span>,
    method: Option<Cow<'a, str>>,
    params: Option<Span>,
    name: Option<StrField<'a>>,
    uri: Option<StrField<'a>>,
    progress_token: Option<Span>,
    meta: Option<Span>,
    result: Option<Span>,
    error: Option<Span>,
}

impl<'a> Fields<'a> {
    fn into_envelope(self) -> Result<Envelope<'a>, ScanError> {
        match self.jsonrpc {
            None => return Err(invalid("missing \"jsonrpc\": \"2.0\"")),
            Some(false) => return Err(invalid("\"jsonrpc\" must be \"2.0\"")),
            Some(true) => {}
        }
        let answers = self.result.is_some() || self.error.is_some();
        let kind = match (&self.method, self.id) {
            (Some(_), _) if answers => return Err(invalid("a request carries result or error")),
            (Some(_), Some(_)) => MessageKind::Request,
            (Some(_), None) => MessageKind::Notification,
            (None, _) if !answers => return Err(invalid("missing method")),
            (None, _) if self.result.is_some() && self.error.is_some() => {
                return Err(invalid("a response carries both result and error"));
            }
            (None, None) => return Err(invalid("a response without id")),
            (None, Some(_)) if self.params.is_some() => {
                return Err(invalid("a response carries params"));
            }
            (None, Some(_)) => MessageKind::Response,
        };
        Ok(Envelope {
            kind,
            id: self.id,
            method: self.method,
            params: self.params,
            name: self.name,
            uri: self.uri,
            progress_token: self.progress_token,
            meta: self.meta,
            result: self.result,
            error: self.error,
        })
    }
}

struct Reader<'a> {
    cursor: Cursor<'a>,
    /// The first non-syntax problem seen; reported only if the whole body is valid JSON.
    problem: Option<ScanError>,
    fields: Fields<'a>,
}

impl<'a> Reader<'a> {
    fn note(&mut self, problem: ScanError) {
        self.problem.get_or_insert(problem);
    }

    /// Reads a key and refuses escaped or repeated spellings; returns the raw key, or `None`
    /// when it was refused (its value must still be skipped).
    #[inline]
    fn key(
        &mut self,
        seen: &mut KeySet<'a>,
        level: &'static str,
    ) -> Result<Option<&'a [u8]>, ScanError> {
        let raw: RawStr = self.cursor.member_key()?;
        if raw.escaped {
            self.note(ScanError::EscapedKey { level });
            return Ok(None);
        }
        let key = raw.content(self.cursor.bytes());
        if !seen.insert(key) {
            let shown = key.get(..64).unwrap_or(key);
            self.note(ScanError::DuplicateKey {
                key: String::from_utf8_lossy(shown).into_owned(),
                level,
            });
        }
        Ok(Some(key))
    }

    /// A string value, decoded, or `None` (value skipped) when the value is another type.
    #[inline]
    fn string_field(&mut self, depth: usize) -> Result<Option<StrField<'a>>, ScanError> {
        if self.cursor.peek() != Some(b'"') {
            self.cursor.skip_value(depth)?;
            return Ok(None);
        }
        let raw = self.cursor.string()?;
        let value = decode(self.cursor.bytes(), raw)?;
        Ok(Some(StrField {
            span: raw.span,
            value,
        }))
    }

    /// Whether the value is the string "2.0" (compared raw unless it is spelled with escapes).
    fn version(&mut self) -> Result<bool, ScanError> {
        if self.cursor.peek() != Some(b'"') {
            self.cursor.skip_value(1)?;
            return Ok(false);
        }
        let raw = self.cursor.string()?;
        if !raw.escaped {
            return Ok(raw.content(self.cursor.bytes()) == b"2.0");
        }
        Ok(decode(self.cursor.bytes(), raw)? == "2.0")
    }

    /// A string or number token's span, or `None` (value skipped) for other types.
    #[inline]
    fn id_like(&mut self, depth: usize) -> Result<Option<Span>, ScanError> {
        let start = self.cursor.pos();
        match self.cursor.peek() {
            Some(b'"') => Ok(Some(self.cursor.string()?.span)),
            Some(b'-' | b'0'..=b'9') => {
                self.cursor.number()?;
                let end = self.cursor.pos();
                Ok(Some(Span { start, end }))
            }
            _ => {
                self.cursor.skip_value(depth)?;
                Ok(None)
            }
        }
    }

    fn message(&mut self) -> Result<(), ScanError> {
        let mut seen = KeySet::new();
        let mut more = self.cursor.begin_object(1)?;
        while more {
            match self.key(&mut seen, MESSAGE)? {
                Some(b"jsonrpc") => {
                    let version = self.version()?;
                    self.fields.jsonrpc = Some(version);
                }
                Some(b"id") => {
                    self.fields.id = self.id_like(1)?;
                    if self.fields.id.is_none() {
                        self.note(invalid("id must be a string or a number"));
                    }
                }
                Some(b"method") => {
                    self.fields.method = self.string_field(1)?.map(|f| f.value);
                    if self.fields.method.is_none() {
                        self.note(invalid("method must be a string"));
                    }
                }
                Some(b"params") => self.params()?,
                Some(b"result") => self.fields.result = Some(self.cursor.skip_value(1)?),
                Some(b"error") => {
                    if self.cursor.peek() != Some(b'{') {
                        self.note(invalid("error must be an object"));
                    }
                    self.fields.error = Some(self.cursor.skip_value(1)?);
                }
                _ => {
                    self.cursor.skip_value(1)?;
                }
            }
            more = self.cursor.end_member()?;
        }
        Ok(())
    }

    fn params(&mut self) -> Result<(), ScanError> {
        let start = self.cursor.pos();
        match self.cursor.peek() {
            Some(b'{') => {}
            Some(b'[') => {
                self.fields.params = Some(self.cursor.skip_value(1)?);
                return Ok(());
            }
            _ => {
                self.cursor.skip_value(1)?;
                self.note(invalid("params must be an object or an array"));
                return Ok(());
            }
        }
        let mut seen = KeySet::new();
        let mut more = self.cursor.begin_object(2)?;
        while more {
            match self.key(&mut seen, PARAMS)? {
                Some(b"name") => self.fields.name = self.string_field(2)?,
                Some(b"uri") => self.fields.uri = self.string_field(2)?,
                Some(b"_meta") if self.cursor.peek() == Some(b'{') => self.meta()?,
                _ => {
                    self.cursor.skip_value(2)?;
                }
            }
            more = self.cursor.end_member()?;
        }
        let end = self.cursor.pos();
        self.fields.params = Some(Span { start, end });
        Ok(())
    }

    fn meta(&mut self) -> Result<(), ScanError> {
        let start = self.cursor.pos();
        let mut seen = KeySet::new();
        let mut more = self.cursor.begin_object(3)?;
        while more {
            match self.key(&mut seen, META)? {
                Some(b"progressToken") => {
                    self.fields.progress_token = self.id_like(3)?;
                    if self.fields.progress_token.is_none() {
                        self.note(invalid("progressToken must be a string or a number"));
                    }
                }
                _ => {
                    self.cursor.skip_value(3)?;
                }
            }
            more = self.cursor.end_member()?;
        }
        let end = self.cursor.pos();
        self.fields.meta = Some(Span { start, end });
        Ok(())
    }
}
