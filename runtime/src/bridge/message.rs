//! The JSON-RPC envelope of one MCP message, read once with `serde_json` into borrowed spans,
//! and byte splicing to swap ids.
//!
//! The bridge multiplexes many clients over one stdio session, so it rewrites request ids (and
//! progress tokens, and the `requestId` of cancellations) on the way in and restores the
//! originals on the way out. Only the bytes of those values change; the rest of the message is
//! copied as it came, so an original id comes back byte-exactly. Parsing is complete (duplicate
//! keys are refused, escaped keys decoded), so the bridge and the server never disagree about
//! which id or method a message carries.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

/// What kind of JSON-RPC message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `method` and `id`.
    Request,
    /// `method`, no `id`.
    Notification,
    /// `id` and `result` or `error`, no `method`.
    Response,
}

/// The parts of a message the bridge routes on, as byte ranges of the original text.
#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    pub kind: Kind,
    pub method: Option<Cow<'a, str>>,
    /// The `id` value (absent or `null`: `None`).
    pub id: Option<Range<usize>>,
    /// `params._meta.progressToken` of a request, `params.progressToken` of a notification.
    pub progress_token: Option<Range<usize>>,
    /// `params.requestId` (of `notifications/cancelled`).
    pub request_id: Option<Range<usize>>,
    /// Whether the response carries `result` (else `error`).
    pub has_result: bool,
    /// `result` of a response.
    pub result: Option<Range<usize>>,
    /// `params` of a request.
    pub params: Option<Range<usize>>,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Not JSON, or not the shape of a JSON-RPC message.
    #[error("not a JSON-RPC message: {0}")]
    Malformed(String),
    /// A JSON array: JSON-RPC batches were removed from MCP in 2025-06-18.
    #[error("JSON-RPC batches are not supported")]
    Batch,
    /// JSON, but not a valid JSON-RPC 2.0 message.
    #[error("invalid JSON-RPC message: {0}")]
    Invalid(&'static str),
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    jsonrpc: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default, rename = "_meta")]
    meta: Option<Meta<'a>>,
    #[serde(borrow, default, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "requestId")]
    request_id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow, default, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// Reads the envelope of `text`.
    pub fn parse(text: &'a str) -> Result<Envelope<'a>, MessageError> {
        if text.trim_start().starts_with('[') {
            return Err(MessageError::Batch);
        }
        let wire: Wire<'a> =
            serde_json::from_str(text).map_err(|e| MessageError::Malformed(e.to_string()))?;
        if wire.jsonrpc != "2.0" {
            return Err(MessageError::Invalid("jsonrpc must be \"2.0\""));
        }
        let span = |raw: &RawValue| span_in(text, raw);
        let id = wire.id.map(span).transpose()?;
        let kind = match (&wire.method, &id) {
            (Some(_), Some(_)) => Kind::Request,
            (Some(_), None) => Kind::Notification,
            (None, _) if wire.result.is_some() != wire.error.is_some() => Kind::Response,
            (None, _) => return Err(MessageError::Invalid("no method, result or error")),
        };
        let mut envelope = Envelope {
            kind,
            method: wire.method,
            id,
            progress_token: None,
            request_id: None,
            has_result: wire.result.is_some(),
            result: wire.result.map(span).transpose()?,
            params: wire.params.map(span).transpose()?,
        };
        if let Some(params) = wire.params.filter(|p| p.get().starts_with('{')) {
            // A params object that is not the expected shape routes on nothing, like no params.
            if let Ok(p) = serde_json::from_str::<Params<'a>>(params.get()) {
                let token = match kind {
                    Kind::Request => p.meta.and_then(|m| m.progress_token),
                    _ => p.progress_token,
                };
                envelope.progress_token = token.map(span).transpose()?;
                envelope.request_id = p.request_id.map(span).transpose()?;
            }
        }
        Ok(envelope)
    }
}

/// The byte range of `raw` inside `text` (serde_json borrows raw values from the input).
fn span_in(text: &str, raw: &RawValue) -> Result<Range<usize>, MessageError> {
    let start = (raw.get().as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    let end = start.wrapping_add(raw.get().len());
    if start > text.len() || end > text.len() {
        return Err(MessageError::Malformed(
            "value not borrowed from input".into(),
        ));
    }
    Ok(start..end)
}

/// Whether `answer` is a response carrying `result` (not `error`).
pub(crate) fn is_success(answer: &[u8]) -> bool {
    std::str::from_utf8(answer)
        .ok()
        .and_then(|t| Envelope::parse(t).ok())
        .is_some_and(|e| e.kind == Kind::Response && e.has_result)
}

/// Parses an id (or token) the bridge itself assigned: a plain non-negative integer.
pub(crate) fn bridge_number(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// `text` with each range replaced by its bytes (ranges must not overlap), plus `\n` when
/// `newline` is set (a line for the child's stdin).
pub(crate) fn splice(text: &[u8], edits: &mut [(Range<usize>, &[u8])], newline: bool) -> Vec<u8> {
    edits.sort_by_key(|(r, _)| r.start);
    let extra: usize = edits.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(text.len() + extra + 1);
    let mut at = 0;
    for (range, bytes) in edits.iter() {
        out.extend_from_slice(&text[at..range.start]);
        out.extend_from_slice(bytes);
        at = range.end;
    }
    out.extend_from_slice(&text[at..]);
    if newline {
        out.push(b'\n');
    }
    out
}

/// A JSON-RPC error response with `id` (raw JSON, `null` when unknown).
pub(crate) fn error_response(id: &[u8], code: i64, message: &str) -> Vec<u8> {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    let mut out = Vec::with_capacity(64 + id.len() + message.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(if id.is_empty() { b"null" } else { id });
    out.extend_from_slice(
        format!(r#","error":{{"code":{code},"message":{message}}}}}"#).as_bytes(),
    );
    out
}

/// A JSON-RPC success response with `id` and a raw `result`.
pub(crate) fn result_response(id: &[u8], result: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + id.len() + result.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id);
    out.extend_from_slice(br#","result":"#);
    out.extend_from_slice(result);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests;
