//! `jsonrpc::scan` and the name splice against `serde_json`, the parser upstream servers
//! effectively use. The gateway routes on what the scanner reports, so it must be what a
//! JSON parser reads from the same bytes, or the body must be refused:
//!
//! - `serde_json` refuses the bytes ⇒ the scanner refuses them (numbers beyond `f64`, which
//!   RFC 8259 allows and `serde_json::Value` does not, are the one exception);
//! - `serde_json` accepts them ⇒ the scanner reports no syntax error (and "too deep" only past
//!   its depth limit);
//! - the scanner accepts a message ⇒ `serde_json` reads it as an object whose `method`, `id`,
//!   `params` (and its `name`, `uri`, `_meta.progressToken`), `result` and `error` are exactly
//!   what the scanner reported, and the message kind follows from them;
//! - replacing the `params.name` (or `params.uri`) span with another JSON string literal
//!   yields bytes `serde_json` reads as the same message with only that member changed, and
//!   that the scanner reads with the new name and the same id bytes.

use serde_json::Value;
use sluice_proxy::jsonrpc::{
    self, Envelope, MessageKind, ScanError, Scanned, Span, StrField, json_string_literal,
    replace_span,
};

use super::shown;
use crate::{fnv1a, shape};

/// Below `serde_json`'s own recursion limit (128), so the two limits never disagree.
const DEPTH: usize = 100;

/// JSON-RPC members and values the mutator splices in.
pub const DICTIONARY: &[&[u8]] = &[
    b"\"jsonrpc\"",
    b"\"2.0\"",
    b"\"id\"",
    b"\"method\"",
    b"\"params\"",
    b"\"name\"",
    b"\"uri\"",
    b"\"_meta\"",
    b"\"progressToken\"",
    b"\"result\"",
    b"\"error\"",
    b"\"arguments\"",
    b"\"tools/call\"",
    b"\"resources/read\"",
    b"\"github__create_issue\"",
    b"\"n\\u0061me\"",
    b"\"tools\\/call\"",
    b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a__b\"}}",
    b"{}",
    b"[]",
    b"1.5e3",
    b"-0.0",
    b"12345678901234567890",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

/// Runs one body.
pub fn run(data: &[u8]) -> u64 {
    let ours = jsonrpc::scan(data, DEPTH);
    let theirs = serde_json::from_slice::<Value>(data);
    match (&ours, theirs) {
        // RFC 8259 allows numbers beyond f64; serde_json's Value does not. Not a routing risk.
        (_, Err(e)) if e.to_string().contains("number out of range") => {}
        (Ok(_), Err(e)) => panic!(
            "scan accepted a body serde_json refuses ({e}): {}",
            shown(data)
        ),
        (Err(_), Err(_)) => {}
        (Err(ScanError::Syntax { reason, .. }), Ok(_)) => panic!(
            "scan calls valid JSON a syntax error ({reason}): {}",
            shown(data)
        ),
        (Err(ScanError::TooDeep { .. }), Ok(v)) => assert!(
            depth(&v) > DEPTH,
            "scan calls JSON of depth {} too deep: {}",
            depth(&v),
            shown(data)
        ),
        // Valid JSON refused as JSON-RPC: duplicate or escaped keys, missing or mistyped
        // members. The differential unit tests check those reasons against a reference.
        (Err(_), Ok(_)) => {}
        (Ok(Scanned::Batch), Ok(v)) => assert!(v.is_array(), "batch: {}", shown(data)),
        (Ok(Scanned::Single(env)), Ok(v)) => agree(data, env, &v),
    }
    classify(&ours)
}

/// The nesting depth of a value, counting the outermost container as one.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The bytes of a span, which must lie inside the body.
fn slice<'a>(data: &'a [u8], span: Span, what: &str) -> &'a [u8] {
    span.slice(data)
        .unwrap_or_else(|| panic!("{what} span {span:?} outside the body: {}", shown(data)))
}

/// A reported span and `serde_json`'s member agree: both absent, or the span's bytes parse to
/// the member's value.
fn same_value(data: &[u8], span: Option<Span>, member: Option<&Value>, what: &str) {
    match (span, member) {
        (None, None) => {}
        (Some(span), Some(value)) => {
            let bytes = slice(data, span, what);
            let parsed: Value = serde_json::from_slice(bytes).unwrap_or_else(|e| {
                panic!("{what} span is not a JSON value ({e}): {}", shown(data))
            });
            assert_eq!(&parsed, value, "{what}: {}", shown(data));
        }
        (span, member) => panic!(
            "{what}: scan says {span:?}, serde_json says {member:?}: {}",
            shown(data)
        ),
    }
}

/// A reported string member and `serde_json`'s agree: the same decoded text, and the span's
/// bytes are the string token.
fn same_string(data: &[u8], field: &Option<StrField<'_>>, member: Option<&Value>, what: &str) {
    let expected = member.and_then(Value::as_str);
    assert_eq!(
        field.as_ref().map(|f| f.value.as_ref()),
        expected,
        "{what}: {}",
        shown(data)
    );
    if let Some(field) = field {
        let token: String = serde_json::from_slice(slice(data, field.span, what))
            .unwrap_or_else(|e| panic!("{what} span is not a string token ({e}): {}", shown(data)));
        assert_eq!(token, field.value, "{what} span: {}", shown(data));
    }
}

fn is_id_like(v: &Value) -> bool {
    v.is_string() || v.is_number()
}

fn agree(data: &[u8], env: &Envelope<'_>, v: &Value) {
    let message = v
        .as_object()
        .unwrap_or_else(|| panic!("a single message that is not an object: {}", shown(data)));
    assert_eq!(
        env.method.as_deref(),
        message.get("method").and_then(Value::as_str),
        "method: {}",
        shown(data)
    );
    assert_eq!(
        env.method.is_some(),
        message.contains_key("method"),
        "a method that is not a string: {}",
        shown(data)
    );
    assert!(
        message.get("id").is_none_or(is_id_like),
        "accepted an id that is neither string nor number: {}",
        shown(data)
    );
    same_value(data, env.id, message.get("id"), "id");
    same_value(data, env.params, message.get("params"), "params");
    same_value(data, env.result, message.get("result"), "result");
    same_value(data, env.error, message.get("error"), "error");
    let params = message.get("params").and_then(Value::as_object);
    same_string(
        data,
        &env.name,
        params.and_then(|p| p.get("name")),
        "params.name",
    );
    same_string(
        data,
        &env.uri,
        params.and_then(|p| p.get("uri")),
        "params.uri",
    );
    let meta = params
        .and_then(|p| p.get("_meta"))
        .filter(|m| m.is_object());
    same_value(data, env.meta, meta, "params._meta");
    let token = meta.and_then(|m| m.get("progressToken"));
    assert!(
        token.is_none_or(is_id_like),
        "progressToken: {}",
        shown(data)
    );
    same_value(
        data,
        env.progress_token,
        token,
        "params._meta.progressToken",
    );
    assert_eq!(
        message.get("jsonrpc").and_then(Value::as_str),
        Some("2.0"),
        "jsonrpc: {}",
        shown(data)
    );
    let expected_kind = match (env.method.is_some(), env.id.is_some()) {
        (true, true) => MessageKind::Request,
        (true, false) => MessageKind::Notification,
        (false, _) => MessageKind::Response,
    };
    assert_eq!(env.kind, expected_kind, "kind: {}", shown(data));
    if env.kind == MessageKind::Response {
        assert!(
            env.id.is_some() && (env.result.is_some() != env.error.is_some()),
            "a response needs an id and exactly one of result and error: {}",
            shown(data)
        );
    }

    if let Some(name) = &env.name {
        let renamed = format!("{}\"\\\u{1}é/{}", data.len() % 7, name.value);
        splice(data, env, v, name, "name", &renamed);
    }
    if let Some(uri) = &env.uri {
        let moved = format!("sluice://{}\u{2028}\u{7f}", uri.value);
        splice(data, env, v, uri, "uri", &moved);
    }
}

/// Replaces one string member's token and checks both parsers read only that change.
fn splice(data: &[u8], env: &Envelope<'_>, v: &Value, field: &StrField<'_>, key: &str, new: &str) {
    let spliced = replace_span(data, field.span, &json_string_literal(new))
        .unwrap_or_else(|e| panic!("splice of params.{key} failed ({e}): {}", shown(data)));
    let mut expected = v.clone();
    expected["params"][key] = Value::String(new.to_owned());
    let actual: Value = serde_json::from_slice(&spliced).unwrap_or_else(|e| {
        panic!(
            "spliced body is not JSON ({e}): {} from {}",
            shown(&spliced),
            shown(data)
        )
    });
    assert_eq!(actual, expected, "splice of params.{key}: {}", shown(data));
    let Ok(Scanned::Single(again)) = jsonrpc::scan(&spliced, DEPTH) else {
        panic!(
            "spliced body no longer scans: {} from {}",
            shown(&spliced),
            shown(data)
        );
    };
    let value = match key {
        "name" => again.name.map(|n| n.value.into_owned()),
        _ => again.uri.map(|n| n.value.into_owned()),
    };
    assert_eq!(value.as_deref(), Some(new), "rescanned params.{key}");
    assert_eq!(
        again.id.and_then(|s| s.slice(&spliced)),
        env.id.and_then(|s| s.slice(data)),
        "the id bytes changed in a splice: {}",
        shown(data)
    );
    assert_eq!(again.method, env.method, "method changed in a splice");
}

fn classify(result: &Result<Scanned<'_>, ScanError>) -> u64 {
    match result {
        Ok(Scanned::Batch) => shape(&[1]),
        Ok(Scanned::Single(env)) => {
            let bits = [
                env.id.is_some(),
                env.method.is_some(),
                env.params.is_some(),
                env.name.is_some(),
                env.uri.is_some(),
                env.meta.is_some(),
                env.progress_token.is_some(),
                env.result.is_some(),
                env.error.is_some(),
                env.name
                    .as_ref()
                    .is_some_and(|n| matches!(n.value, std::borrow::Cow::Owned(_))),
                env.method
                    .as_ref()
                    .is_some_and(|m| matches!(m, std::borrow::Cow::Owned(_))),
            ]
            .iter()
            .fold(0u64, |acc, &b| (acc << 1) | u64::from(b));
            shape(&[2, env.kind as u64, bits])
        }
        Err(ScanError::Syntax { reason, .. }) => shape(&[3, fnv1a(reason.as_bytes())]),
        Err(ScanError::TooDeep { .. }) => shape(&[4]),
        Err(ScanError::DuplicateKey { level, .. }) => shape(&[5, fnv1a(level.as_bytes())]),
        Err(ScanError::EscapedKey { level }) => shape(&[6, fnv1a(level.as_bytes())]),
        Err(ScanError::InvalidRequest { reason }) => shape(&[7, fnv1a(reason.as_bytes())]),
        Err(other) => shape(&[8, fnv1a(other.to_string().as_bytes())]),
    }
}
