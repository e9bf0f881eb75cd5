//! The 2026-07-28 front door (`sluice_proxy::modern`) on any body: the envelope checks, the
//! byte splices the gateway makes when it bridges eras, and the header-value codec. Checked:
//!
//! - `validate` with routing headers made from the body itself passes exactly when the body
//!   carries a well-formed envelope of a served version, and a different `Mcp-Name` on a named
//!   method is always refused with -32020;
//! - `complete_result`: the output parses, its `result` is the input's plus `resultType` (and,
//!   when cacheable, `ttlMs` / `cacheScope`) where missing, and nothing else changed;
//! - `strip_envelope`: the output parses and equals the input without the envelope's keys in
//!   `params._meta`;
//! - `decode_header_value(encode_header_value(s)) == s` for the input as text;
//! - `NameLocator`, fed the body in chunks, finds the span of `params.name` the scan finds.

use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use sluice_proxy::jsonrpc::{Scanned, scan};
use sluice_proxy::modern::{
    CLIENT_CAPABILITIES_KEY, CLIENT_INFO_KEY, MODERN_VERSIONS, PROTOCOL_VERSION_KEY,
    complete_result, decode_header_value, encode_header_value, strip_envelope, validate,
};
use sluice_proxy::name_locator::{Located, NameLocator};

use super::shown;
use crate::shape;

/// Material the mutator splices in.
pub const DICTIONARY: &[&[u8]] = &[
    b"\"io.modelcontextprotocol/protocolVersion\"",
    b"\"io.modelcontextprotocol/clientCapabilities\"",
    b"\"io.modelcontextprotocol/clientInfo\"",
    b"\"io.modelcontextprotocol/logLevel\"",
    b"\"2026-07-28\"",
    b"\"_meta\":",
    b"\"params\":",
    b"\"result\":",
    b"\"resultType\":",
    b"\"ttlMs\":0",
    b"\"method\":\"tools/call\"",
    b"\"method\":\"resources/read\"",
    b"\"name\":",
    b"\"uri\":",
    b"\"jsonrpc\":\"2.0\"",
    b"\"id\":1",
    b"=?base64?",
    b"?=",
    b"\\u00e9",
];

const DEPTH: usize = 64;
const ENVELOPE_KEYS: [&str; 4] = [
    PROTOCOL_VERSION_KEY,
    CLIENT_CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    "io.modelcontextprotocol/logLevel",
];

/// Runs one input.
pub fn run(data: &[u8]) -> u64 {
    let codec = round_trip(data);
    let Ok(Scanned::Single(envelope)) = scan(data, DEPTH) else {
        return shape(&[0, codec]);
    };
    // serde reads the same message: the scanner refuses duplicate and escaped keys, so the
    // two agree on every key looked at below.
    let Ok(message) = serde_json::from_slice::<Value>(data) else {
        return shape(&[1, codec]);
    };
    let checked = check_validate(data, &envelope, &message);
    let completed = check_complete(data, &message);
    let stripped = check_strip(data, &message);
    let located = check_locator(data, &envelope);
    shape(&[2, checked, completed, stripped, codec, located])
}

/// The streaming locator, fed the body in chunks of every size from 1 to 7, finds exactly the
/// scan's `params.name` string, and nothing when the scan has no string name there.
fn check_locator(data: &[u8], envelope: &sluice_proxy::jsonrpc::Envelope<'_>) -> u64 {
    let want = envelope.name.as_ref().map(|n| n.span);
    for size in 1..=7 {
        let mut locator = NameLocator::default();
        for chunk in data.chunks(size) {
            locator.feed(chunk);
        }
        let got = match locator.located() {
            Located::Found(span) => Some(span),
            _ => None,
        };
        assert_eq!(
            got,
            want,
            "{}: the locator (chunks of {size}) and the scan disagree on params.name",
            shown(data)
        );
    }
    u64::from(want.is_some())
}

fn round_trip(data: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(data);
    let text: String = text.chars().take(256).collect();
    let encoded = encode_header_value(&text);
    assert!(
        HeaderValue::from_str(&encoded).is_ok(),
        "{} encodes to a value that is not a header: {encoded:?}",
        shown(data)
    );
    assert_eq!(
        decode_header_value(&encoded).as_deref(),
        Some(text.as_str()),
        "{} does not round trip",
        shown(data)
    );
    u64::from(encoded.starts_with("=?base64?"))
}

fn check_validate(
    data: &[u8],
    envelope: &sluice_proxy::jsonrpc::Envelope<'_>,
    message: &Value,
) -> u64 {
    let meta = message.pointer("/params/_meta").and_then(Value::as_object);
    let version = meta.and_then(|m| m.get(PROTOCOL_VERSION_KEY));
    let method = message.get("method").and_then(Value::as_str);
    let named = match method {
        Some("tools/call" | "prompts/get") => message.pointer("/params/name"),
        Some("resources/read") => message.pointer("/params/uri"),
        _ => None,
    }
    .and_then(Value::as_str);
    let mut headers = HeaderMap::new();
    let header = |s: &str| HeaderValue::from_str(&encode_header_value(s)).ok();
    // The version and the method travel verbatim (only Mcp-Name is ever wrapped), so a value
    // that cannot be a header as it is can never agree with its body.
    let verbatim = |s: &str| {
        (encode_header_value(s) == s)
            .then(|| HeaderValue::from_str(s).ok())
            .flatten()
    };
    if let Some(v) = version.and_then(Value::as_str).and_then(verbatim) {
        headers.insert("mcp-protocol-version", v);
    }
    if let Some(m) = method.and_then(verbatim) {
        headers.insert("mcp-method", m);
    }
    if let Some(n) = named.and_then(header) {
        headers.insert("mcp-name", n);
    }
    let outcome = validate(&headers, data, envelope);
    let well_formed = meta.is_some_and(|m| m.contains_key(CLIENT_CAPABILITIES_KEY))
        && version
            .and_then(Value::as_str)
            .is_some_and(|v| MODERN_VERSIONS.contains(&v))
        && method.is_some_and(|m| verbatim(m).is_some());
    assert_eq!(
        outcome.is_ok(),
        well_formed,
        "{}: consistent headers gave {:?}",
        shown(data),
        outcome.as_ref().err().map(ToString::to_string)
    );
    if outcome.is_ok()
        && let Some(name) = named
    {
        headers.insert(
            "mcp-name",
            HeaderValue::from_str(&encode_header_value(&format!("{name}x")))
                .expect("an encoded value is a header"),
        );
        let spoofed = validate(&headers, data, envelope);
        assert_eq!(
            spoofed.as_ref().map_err(|e| e.jsonrpc_code()).err(),
            Some(-32020),
            "{}: a spoofed Mcp-Name was not refused",
            shown(data)
        );
    }
    u64::from(outcome.is_ok())
}

fn check_complete(data: &[u8], message: &Value) -> u64 {
    let result = message.get("result").and_then(Value::as_object);
    let mut shape_bits = 0;
    for cacheable in [false, true] {
        let out = complete_result(data, DEPTH, cacheable);
        let mut wanted = message.clone();
        let mut changed = false;
        if let (Some(result), Some(obj)) = (
            result,
            wanted.get_mut("result").and_then(Value::as_object_mut),
        ) {
            let mut add = |k: &str, v: Value| {
                if !result.contains_key(k) {
                    obj.insert(k.to_owned(), v);
                    changed = true;
                }
            };
            add("resultType", Value::from("complete"));
            if cacheable {
                add("ttlMs", Value::from(0));
                add("cacheScope", Value::from("private"));
            }
        }
        match out {
            Some(out) => {
                let got: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
                    panic!("{}: completed result does not parse: {e}", shown(data))
                });
                assert_eq!(got, wanted, "{}: completed result", shown(data));
                shape_bits |= 1 << u64::from(cacheable);
            }
            None => assert!(!changed, "{}: a result was left incomplete", shown(data)),
        }
    }
    shape_bits
}

fn check_strip(data: &[u8], message: &Value) -> u64 {
    let mut wanted = message.clone();
    let mut changed = false;
    if let Some(meta) = wanted
        .pointer_mut("/params/_meta")
        .and_then(Value::as_object_mut)
    {
        for key in ENVELOPE_KEYS {
            changed |= meta.remove(key).is_some();
        }
    }
    match strip_envelope(data, DEPTH) {
        Some(out) => {
            let got: Value = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("{}: stripped body does not parse: {e}", shown(data)));
            assert_eq!(got, wanted, "{}: stripped body", shown(data));
            1
        }
        None => {
            assert!(!changed, "{}: envelope keys were left", shown(data));
            0
        }
    }
}
