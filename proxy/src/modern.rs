//! The 2026-07-28 revision of MCP at the front door: no `initialize` and no session; every
//! request carries its own envelope in `params._meta` and mirrors its method and target in
//! headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) so that balancers can route
//! without reading the body.
//!
//! A request belongs to this era when its `MCP-Protocol-Version` header names anything but a
//! handshake-era version (an unknown value included, so it is told which versions exist), or,
//! without the header, when its `_meta` carries the envelope's protocol version. It is then
//! checked in the order the official SDKs check it, first failure wins:
//!
//! 1. a routing header given twice → -32020 (readers of the first and last copy disagree);
//! 2. `params._meta` is an object with the protocol version and client capabilities → else
//!    -32602 naming the missing keys;
//! 3. the headers agree with the body: `MCP-Protocol-Version` with the envelope, `Mcp-Method`
//!    with `method`, and for `tools/call`, `prompts/get` and `resources/read` the `Mcp-Name`
//!    (after `=?base64?…?=` decoding) with `params.name` / `params.uri` → else -32020 with
//!    HTTP 400; this runs before the version check, so a client that disagrees with itself is
//!    told so rather than told its version is unknown;
//! 4. the version is one the gateway serves in this era → else -32022 with
//!    `data: {supported, requested}` and HTTP 400.
//!
//! The body's name is the one the gateway routes on and rewrites; the header can only make a
//! request fail, never send it elsewhere.

use std::borrow::Cow;

use base64::Engine;
use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::GatewayError;
use crate::jsonrpc::Envelope;

/// Revisions of the per-request-envelope era the gateway serves.
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];
/// `_meta` key of the envelope's protocol version.
pub const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the envelope's client capabilities.
pub const CLIENT_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the envelope's (optional) client info.
pub const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
/// Header mirroring the JSON-RPC method.
pub const METHOD_HEADER: &str = "mcp-method";
/// Header mirroring the tool or prompt name, or the resource URI.
pub const NAME_HEADER: &str = "mcp-name";

/// The revision's routing headers, each of which may appear once.
const ROUTING_HEADERS: [&str; 3] = [crate::protocol::VERSION_HEADER, METHOD_HEADER, NAME_HEADER];

/// The checked envelope of a modern request.
#[derive(Debug, Clone, PartialEq)]
pub struct ModernEnvelope {
    /// The envelope's protocol version (one of [`MODERN_VERSIONS`]).
    pub protocol_version: String,
    /// The envelope's client capabilities, as raw JSON.
    pub client_capabilities: Vec<u8>,
}

/// Every version the gateway serves, both eras, oldest first.
pub fn all_versions() -> Vec<&'static str> {
    let mut v: Vec<&str> = crate::protocol::SUPPORTED_VERSIONS.to_vec();
    v.reverse();
    v.extend(MODERN_VERSIONS);
    v
}

/// Whether the request belongs to the per-request-envelope era (see the module docs).
pub fn is_modern(headers: &HeaderMap, body: &[u8], envelope: &Envelope<'_>) -> bool {
    match headers.get(crate::protocol::VERSION_HEADER) {
        Some(v) => v.to_str().map_or(true, |v| !is_handshake_era(v)),
        // Parsed only when the key's bytes are there: a handshake client's `_meta` (a
        // progress token) costs one byte search, not a parse.
        None => envelope.meta.is_some_and(|span| {
            let meta = &body[span.start..span.end];
            meta.windows(PROTOCOL_VERSION_KEY.len())
                .any(|w| w == PROTOCOL_VERSION_KEY.as_bytes())
                && meta_object(meta).is_some_and(|m| m.contains_key(PROTOCOL_VERSION_KEY))
        }),
    }
}

/// Whether a version names a revision of the handshake era (a date up to 2025-11-25, served or
/// not), so that an old client is told its version is unsupported in its own era's words.
fn is_handshake_era(version: &str) -> bool {
    let date = version.len() == 10
        && version.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    date && version <= crate::protocol::LATEST_VERSION
}

fn meta_object(raw: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice(raw).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Runs the checks of the module docs over a modern request.
pub fn validate(
    headers: &HeaderMap,
    body: &[u8],
    envelope: &Envelope<'_>,
) -> Result<ModernEnvelope, GatewayError> {
    for name in ROUTING_HEADERS {
        if headers.get_all(name).iter().count() > 1 {
            return Err(GatewayError::HeaderMismatch(format!(
                "the {name} header appears more than once"
            )));
        }
    }
    let meta = envelope
        .meta
        .and_then(|span| meta_object(&body[span.start..span.end]))
        .ok_or_else(|| {
            GatewayError::InvalidEnvelope(format!(
                "params._meta must be an object carrying the required '{PROTOCOL_VERSION_KEY}' and '{CLIENT_CAPABILITIES_KEY}' envelope keys (protocol revision 2026-07-28)"
            ))
        })?;
    let missing: Vec<&str> = [PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(GatewayError::InvalidEnvelope(format!(
            "params._meta is missing the required envelope key(s): {}",
            missing.join(", ")
        )));
    }
    let version = &meta[PROTOCOL_VERSION_KEY];
    let header = |name: &str| headers.get(name).map(|v| v.to_str().ok());
    // An absent header is a mismatch too: a null body version must not equal it.
    match header(crate::protocol::VERSION_HEADER) {
        Some(Some(h)) if version.as_str() == Some(h) => {}
        _ => {
            return Err(GatewayError::HeaderMismatch(
                "the MCP-Protocol-Version header does not match the request envelope's protocol version".into(),
            ));
        }
    }
    let method = envelope.method.as_deref();
    if header(METHOD_HEADER).flatten() != method || method.is_none() {
        return Err(GatewayError::HeaderMismatch(
            "the Mcp-Method header does not match the request body's method".into(),
        ));
    }
    let named = match method {
        Some("tools/call" | "prompts/get") => Some(("name", envelope.name.as_ref())),
        Some("resources/read") => Some(("uri", envelope.uri.as_ref())),
        _ => None,
    };
    if let Some((key, Some(field))) = named {
        let claimed = header(NAME_HEADER).flatten().and_then(decode_header_value);
        if claimed.as_deref() != Some(field.value.as_ref()) {
            return Err(GatewayError::HeaderMismatch(format!(
                "the Mcp-Name header does not match the request body's '{key}' parameter"
            )));
        }
    }
    let Some(version) = version.as_str() else {
        return Err(GatewayError::InvalidEnvelope(
            "the protocol-version envelope value must be a string".into(),
        ));
    };
    if !MODERN_VERSIONS.contains(&version) {
        return Err(GatewayError::UnsupportedModernVersion {
            requested: crate::error::truncated(version),
        });
    }
    let capabilities = serde_json::to_vec(&meta[CLIENT_CAPABILITIES_KEY]).unwrap_or_default();
    Ok(ModernEnvelope {
        protocol_version: version.to_owned(),
        client_capabilities: capabilities,
    })
}

/// A header value as the revision encodes it: verbatim, or `=?base64?…?=` around the UTF-8
/// bytes of a value that would not survive as a header. A malformed or non-canonical wrapper
/// is `None`, so a corrupt header never matches a body value by accident.
pub fn decode_header_value(value: &str) -> Option<Cow<'_, str>> {
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(Cow::Borrowed(value));
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine.decode(payload).ok()?;
    if engine.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

/// The body without the envelope's keys in `params._meta`, for an
/// upstream spoken to in the handshake era (which may refuse a request carrying them); `None`
/// when there are none. Other `_meta` keys (a progress token) keep their bytes.
pub fn strip_envelope(body: &[u8], max_depth: usize) -> Option<Vec<u8>> {
    let Ok(crate::jsonrpc::Scanned::Single(envelope)) = crate::jsonrpc::scan(body, max_depth)
    else {
        return None;
    };
    let span = envelope.meta?;
    let fields: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(&body[span.start..span.end]).ok()?;
    if !fields.keys().any(|k| ENVELOPE_KEYS.contains(&k.as_str())) {
        return None;
    }
    let mut kept = Vec::with_capacity(span.end - span.start);
    kept.push(b'{');
    for (key, value) in fields
        .iter()
        .filter(|(k, _)| !ENVELOPE_KEYS.contains(&k.as_str()))
    {
        if kept.len() > 1 {
            kept.push(b',');
        }
        kept.extend_from_slice(serde_json::to_string(key).ok()?.as_bytes());
        kept.push(b':');
        kept.extend_from_slice(value.get().as_bytes());
    }
    kept.push(b'}');
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(&kept);
    out.extend_from_slice(&body[span.end..]);
    Some(out)
}

/// The envelope the gateway gives a handshake-era client's request to an upstream that speaks
/// only the 2026-07-28 revision. It declares no client capabilities: the client cannot answer
/// an `InputRequiredResult`, so the upstream must not count on sampling, elicitation or roots.
const RAISED_ENVELOPE: &[u8] = br#""io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}"#;

/// A handshake-era request raised to the 2026-07-28 revision by splicing the envelope keys into
/// `params._meta` (added where missing, `params` too); envelope keys the body already had are
/// replaced. `None` when the body is not one request with object `params` (or none).
pub fn raise(body: &[u8], max_depth: usize) -> Option<Vec<u8>> {
    let stripped = strip_envelope(body, max_depth);
    let body = stripped.as_deref().unwrap_or(body);
    let Ok(crate::jsonrpc::Scanned::Single(envelope)) = crate::jsonrpc::scan(body, max_depth)
    else {
        return None;
    };
    let mut out = Vec::with_capacity(body.len() + RAISED_ENVELOPE.len() + 16);
    let open_object = |out: &mut Vec<u8>, span: crate::jsonrpc::Span, inner: &[&[u8]]| {
        let object = &body[span.start..span.end];
        let empty = object[1..].trim_ascii_start().starts_with(b"}");
        out.extend_from_slice(&body[..span.start + 1]);
        for part in inner {
            out.extend_from_slice(part);
        }
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(&body[span.start + 1..]);
    };
    match (envelope.params, envelope.meta) {
        (Some(_), Some(meta)) if body[meta.start] == b'{' => {
            open_object(&mut out, meta, &[RAISED_ENVELOPE]);
        }
        (Some(params), None) if body[params.start] == b'{' => {
            open_object(&mut out, params, &[br#""_meta":{"#, RAISED_ENVELOPE, b"}"]);
        }
        (None, _) => {
            let end = body.trim_ascii_end().len().checked_sub(1)?;
            out.extend_from_slice(&body[..end]);
            out.extend_from_slice(br#","params":{"_meta":{"#);
            out.extend_from_slice(RAISED_ENVELOPE);
            out.extend_from_slice(b"}}");
            out.extend_from_slice(&body[end..]);
        }
        _ => return None,
    }
    Some(out)
}

/// What a handshake-era client gets instead of an upstream's `InputRequiredResult` (it has no
/// way to answer one): the same id with an error saying so. `None` for any other message.
pub fn lower_input_required(message: &[u8], max_depth: usize, server: &str) -> Option<Vec<u8>> {
    let Ok(crate::jsonrpc::Scanned::Single(envelope)) = crate::jsonrpc::scan(message, max_depth)
    else {
        return None;
    };
    let span = envelope.result?;
    #[derive(serde::Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "resultType", borrow)]
        result_type: Option<Cow<'a, str>>,
    }
    let typed: Typed<'_> = serde_json::from_slice(&message[span.start..span.end]).ok()?;
    if typed.result_type.as_deref() != Some("input_required") {
        return None;
    }
    let id = envelope
        .id
        .map_or(&b"null"[..], |s| &message[s.start..s.end]);
    let err = GatewayError::InputRequired {
        server: server.to_owned(),
    };
    Some(crate::reply::error_body(Some(id), err.jsonrpc_code(), &err.to_string()).to_vec())
}

/// The `_meta` keys of the revision's per-request envelope (and its per-request log level).
const ENVELOPE_KEYS: [&str; 4] = [
    PROTOCOL_VERSION_KEY,
    CLIENT_CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    "io.modelcontextprotocol/logLevel",
];

/// The HTTP status the revision gives a JSON-RPC error code, where it gives one.
pub fn http_status_of(code: i64) -> Option<u16> {
    use crate::error::{
        HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
        UNSUPPORTED_PROTOCOL_VERSION,
    };
    match code {
        PARSE_ERROR
        | INVALID_REQUEST
        | INVALID_PARAMS
        | HEADER_MISMATCH
        | UNSUPPORTED_PROTOCOL_VERSION
        | MISSING_REQUIRED_CLIENT_CAPABILITY => Some(400),
        METHOD_NOT_FOUND => Some(404),
        _ => None,
    }
}

/// MCP 2026-07-28: the request needs a client capability the envelope does not declare.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;

/// A value as a header carries it: verbatim when it is visible ASCII without edge spaces (and
/// does not look like the wrapper), else `=?base64?…?=` around its UTF-8 bytes.
pub fn encode_header_value(value: &str) -> Cow<'_, str> {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        Cow::Borrowed(value)
    } else {
        let engine = base64::engine::general_purpose::STANDARD;
        Cow::Owned(format!("=?base64?{}?=", engine.encode(value)))
    }
}

/// The key under which the gateway holds upstream sessions for modern callers on this
/// replica: one per gateway and caller identity (all anonymous callers of a gateway share one).
pub fn caller_session_uid(gateway: &str, identity: Option<&str>) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"sluice modern caller\0");
    h.update(gateway.as_bytes());
    h.update([0]);
    h.update(identity.unwrap_or("-").as_bytes());
    let digest = h.finalize();
    let mut uid = [0u8; 16];
    uid.copy_from_slice(&digest[..16]);
    uid
}

/// Appends the revision's result fields (`resultType`, and for cacheable results `ttlMs` and
/// `cacheScope`) to a serialised result object. `private` when what the gateway lists depends
/// on who asks.
pub fn with_result_fields(result: &[u8], cacheable: Option<bool>) -> Vec<u8> {
    let trimmed = result.trim_ascii_end();
    let Some(open) = trimmed.strip_suffix(b"}") else {
        return result.to_vec();
    };
    let empty = open.trim_ascii_end().ends_with(b"{");
    let mut out = Vec::with_capacity(result.len() + 64);
    out.extend_from_slice(open);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(br#""resultType":"complete""#);
    if let Some(private) = cacheable {
        out.extend_from_slice(br#","ttlMs":0,"cacheScope":"#);
        out.extend_from_slice(if private {
            br#""private""#
        } else {
            br#""public""#
        });
    }
    out.push(b'}');
    out
}

/// A JSON-RPC response from a handshake-era upstream completed for a 2026-07-28 client: its
/// `result` object gets `"resultType":"complete"`, and for a cacheable result (`cacheable`,
/// e.g. `resources/read`) `"ttlMs":0` and `"cacheScope":"private"` (the gateway cannot tell
/// whether the upstream's answer depends on who asked). Keys already present are kept; `None`
/// when the message is not a response with an object result or needs nothing.
pub fn complete_result(message: &[u8], max_depth: usize, cacheable: bool) -> Option<Vec<u8>> {
    let Ok(crate::jsonrpc::Scanned::Single(envelope)) = crate::jsonrpc::scan(message, max_depth)
    else {
        return None;
    };
    let span = envelope.result?;
    let result = &message[span.start..span.end];
    if result.first() != Some(&b'{') {
        return None;
    }
    let keys: std::collections::HashMap<Cow<'_, str>, serde::de::IgnoredAny> =
        serde_json::from_slice(result).ok()?;
    let mut added: Vec<&[u8]> = Vec::new();
    if !keys.contains_key("resultType") {
        added.push(br#""resultType":"complete""#);
    }
    if cacheable && !keys.contains_key("ttlMs") {
        added.push(br#""ttlMs":0"#);
    }
    if cacheable && !keys.contains_key("cacheScope") {
        added.push(br#""cacheScope":"private""#);
    }
    if added.is_empty() {
        return None;
    }
    let insert = span.start + 1;
    let mut out = Vec::with_capacity(message.len() + 64);
    out.extend_from_slice(&message[..insert]);
    out.extend_from_slice(&added.join(&b","[..]));
    if !keys.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(&message[insert..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Scanned, scan};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn check(body: &str, pairs: &[(&'static str, &str)]) -> Result<ModernEnvelope, GatewayError> {
        let Scanned::Single(env) = scan(body.as_bytes(), 64).unwrap() else {
            panic!("single")
        };
        validate(&headers(pairs), body.as_bytes(), &env)
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"gh__search","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":{}}}}}"#;
    const GOOD: [(&str, &str); 3] = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "gh__search"),
    ];

    #[test]
    fn a_consistent_request_passes_with_its_capabilities() {
        let env = check(CALL, &GOOD).unwrap();
        assert_eq!(env.protocol_version, "2026-07-28");
        assert_eq!(env.client_capabilities, br#"{"sampling":{}}"#);
    }

    #[test]
    fn each_rung_fails_with_its_code() {
        let code = |r: Result<ModernEnvelope, GatewayError>| r.unwrap_err().jsonrpc_code();
        // Spoofed or missing name, method or version header: -32020.
        let spoofed = [GOOD[0], GOOD[1], ("mcp-name", "other__tool")];
        assert_eq!(code(check(CALL, &spoofed)), -32020);
        assert_eq!(code(check(CALL, &GOOD[..2])), -32020);
        assert_eq!(code(check(CALL, &GOOD[1..])), -32020);
        let twice = [GOOD[0], GOOD[1], GOOD[2], ("mcp-name", "gh__search")];
        assert_eq!(code(check(CALL, &twice)), -32020);
        // Missing envelope keys: -32602, naming them.
        let bare = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let err = check(bare, &[GOOD[0], ("mcp-method", "tools/list")]).unwrap_err();
        assert_eq!(err.jsonrpc_code(), -32602);
        assert!(err.to_string().contains(CLIENT_CAPABILITIES_KEY), "{err}");
        // An unknown version, consistent with its header: -32022 listing what is served.
        let future = CALL.replace("2026-07-28", "2027-01-01");
        let err = check(
            &future,
            &[("mcp-protocol-version", "2027-01-01"), GOOD[1], GOOD[2]],
        )
        .unwrap_err();
        assert_eq!(err.jsonrpc_code(), -32022);
        assert_eq!(err.http_status(), 400);
        assert_eq!(
            err.data().unwrap()["supported"].as_array().unwrap().len(),
            all_versions().len()
        );
    }

    #[test]
    fn names_that_cannot_be_headers_are_wrapped_and_round_trip() {
        assert_eq!(encode_header_value("gh__search"), "gh__search");
        for v in ["élève", " edge", "=?base64?x?=", "tab\there"] {
            let wrapped = encode_header_value(v);
            assert!(wrapped.starts_with("=?base64?"), "{wrapped}");
            assert_eq!(decode_header_value(&wrapped).as_deref(), Some(v));
        }
    }

    #[test]
    fn base64_wrapped_names_decode_and_corrupt_ones_match_nothing() {
        assert_eq!(decode_header_value("plain").as_deref(), Some("plain"));
        assert_eq!(
            decode_header_value("=?base64?w6lsw6h2ZQ==?=").as_deref(),
            Some("élève")
        );
        assert_eq!(decode_header_value("=?base64?!!?="), None);
        // Non-canonical padding bits.
        assert_eq!(decode_header_value("=?base64?YR==?="), None);
        let body = CALL.replace("gh__search", "é");
        let env = check(&body, &[GOOD[0], GOOD[1], ("mcp-name", "=?base64?w6k=?=")]);
        assert!(env.is_ok());
    }

    #[test]
    fn the_era_is_told_by_the_header_else_by_the_envelope() {
        let Scanned::Single(env) = scan(CALL.as_bytes(), 64).unwrap() else {
            panic!()
        };
        assert!(is_modern(&headers(&[]), CALL.as_bytes(), &env));
        assert!(!is_modern(
            &headers(&[("mcp-protocol-version", "2025-11-25")]),
            CALL.as_bytes(),
            &env
        ));
        // An unknown value is told what is served; an old handshake revision stays in its era.
        for (value, modern) in [
            ("2099-01-01", true),
            ("garbage", true),
            ("2024-11-05", false),
        ] {
            let h = headers(&[("mcp-protocol-version", value)]);
            assert_eq!(is_modern(&h, CALL.as_bytes(), &env), modern, "{value}");
        }
        let plain = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let Scanned::Single(env) = scan(plain.as_bytes(), 64).unwrap() else {
            panic!()
        };
        assert!(!is_modern(&headers(&[]), plain.as_bytes(), &env));
    }

    #[test]
    fn result_fields_are_spliced_into_any_object() {
        let v: Value =
            serde_json::from_slice(&with_result_fields(br#"{"tools":[]}"#, Some(false))).unwrap();
        assert_eq!(v["resultType"], "complete");
        assert_eq!(v["cacheScope"], "public");
        assert_eq!(v["ttlMs"], 0);
        let v: Value = serde_json::from_slice(&with_result_fields(b"{ }", None)).unwrap();
        assert_eq!(v, serde_json::json!({"resultType": "complete"}));
    }

    #[test]
    fn handshake_results_get_their_type_for_modern_clients() {
        let out = complete_result(
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
            64,
            false,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["resultType"], "complete");
        assert_eq!(v["result"]["content"], serde_json::json!([]));
        let empty = complete_result(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, 64, false).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&empty).unwrap()["result"],
            serde_json::json!({"resultType": "complete"})
        );
        // Already typed, an error, a notification: untouched.
        let typed = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required"}}"#;
        assert_eq!(complete_result(typed, 64, false), None);
        let error = br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#;
        assert_eq!(complete_result(error, 64, false), None);
        let note = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#;
        assert_eq!(complete_result(note, 64, false), None);
        // A read result is cacheable: both cache fields, keeping what the upstream set.
        let read = br#"{"jsonrpc":"2.0","id":1,"result":{"contents":[],"ttlMs":5}}"#;
        let v: Value = serde_json::from_slice(&complete_result(read, 64, true).unwrap()).unwrap();
        assert_eq!(v["result"]["ttlMs"], 5);
        assert_eq!(v["result"]["cacheScope"], "private");
        assert_eq!(v["result"]["resultType"], "complete");
    }

    #[test]
    fn the_envelope_is_stripped_for_handshake_upstreams_and_the_rest_kept() {
        let out = strip_envelope(CALL.as_bytes(), 64).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["params"]["_meta"], serde_json::json!({}));
        assert_eq!(v["params"]["name"], "gh__search");
        let with_token = CALL.replace(r#""_meta":{"#, r#""_meta":{"progressToken":7,"#);
        let v: Value =
            serde_json::from_slice(&strip_envelope(with_token.as_bytes(), 64).unwrap()).unwrap();
        assert_eq!(
            v["params"]["_meta"],
            serde_json::json!({"progressToken": 7})
        );
        let plain = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":1}}}"#;
        assert_eq!(strip_envelope(plain.as_bytes(), 64), None);
    }

    #[test]
    fn modern_callers_share_upstream_sessions_per_identity() {
        let a = caller_session_uid("dev", Some("token:alice"));
        assert_eq!(a, caller_session_uid("dev", Some("token:alice")));
        assert_ne!(a, caller_session_uid("dev", Some("token:bob")));
        assert_ne!(a, caller_session_uid("ops", Some("token:alice")));
    }

    /// The `params` of a raised body, parsed.
    fn raised_params(body: &str) -> Value {
        let out = raise(body.as_bytes(), 64).expect("raised");
        let message: Value = serde_json::from_slice(&out).expect("raised body is JSON");
        message["params"].clone()
    }

    #[test]
    fn raising_adds_the_envelope_wherever_params_stand() {
        let want =
            serde_json::json!({PROTOCOL_VERSION_KEY: "2026-07-28", CLIENT_CAPABILITIES_KEY: {}});
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{ }}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list" }  "#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{}}}"#,
        ] {
            assert_eq!(raised_params(body)["_meta"], want, "{body}");
        }
        // Other `_meta` keys stay; an envelope the client sent is replaced, not doubled.
        let params = raised_params(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"progressToken":7,"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}"#,
        );
        assert_eq!(params["_meta"]["progressToken"], 7);
        assert_eq!(params["_meta"][PROTOCOL_VERSION_KEY], "2026-07-28");
        assert_eq!(params["name"], "a");
        // Positional params cannot carry an envelope.
        assert!(raise(br#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}"#, 64).is_none());
    }

    #[test]
    fn only_an_input_required_result_is_lowered() {
        let asked = br#"{"jsonrpc":"2.0","id":"q","result":{"resultType":"input_required","inputRequests":{}}}"#;
        let lowered: Value =
            serde_json::from_slice(&lower_input_required(asked, 64, "up").expect("lowered"))
                .expect("JSON");
        assert_eq!(lowered["id"], "q");
        assert_eq!(lowered["error"]["code"], MISSING_REQUIRED_CLIENT_CAPABILITY);
        assert!(
            lowered["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("'up'")
        );
        let done = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[]}}"#;
        assert!(lower_input_required(done, 64, "up").is_none());
        let error = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#;
        assert!(lower_input_required(error, 64, "up").is_none());
    }
}
