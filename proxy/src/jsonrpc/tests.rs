//! Table tests for the scanner: what valid messages yield. Refusals are in `tests/refusals.rs`,
//! splicing in `tests/splice.rs`, the differential test against `serde_json` in
//! `tests/differential.rs`.

use std::borrow::Cow;

use super::*;

mod differential;
mod generate;
mod reference;
mod refusals;
mod splice;

const DEPTH: usize = DEFAULT_MAX_DEPTH;

fn single(body: &str) -> Envelope<'_> {
    match scan(body.as_bytes(), DEPTH) {
        Ok(Scanned::Single(envelope)) => envelope,
        other => panic!("expected one message from {body}, got {other:?}"),
    }
}

fn refused(body: &str) -> ScanError {
    match scan(body.as_bytes(), DEPTH) {
        Err(error) => error,
        Ok(other) => panic!("expected {body} to be refused, got {other:?}"),
    }
}

fn text(body: &str, span: Option<Span>) -> &str {
    let span = span.expect("span present");
    body.get(span.start..span.end).expect("span inside body")
}

#[test]
fn tools_call_request_yields_method_id_and_name_spans() {
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"github__create_issue","arguments":{"title":"x","labels":["a","b"]}}}"#;
    let env = single(body);
    assert_eq!(env.kind, MessageKind::Request);
    assert_eq!(text(body, env.id), "7");
    assert_eq!(env.method.as_deref(), Some("tools/call"));
    let name = env.name.expect("name");
    assert_eq!(name.value, "github__create_issue");
    assert!(matches!(name.value, Cow::Borrowed(_)));
    assert_eq!(text(body, Some(name.span)), r#""github__create_issue""#);
    assert!(text(body, env.params).starts_with(r#"{"name""#));
    assert!(text(body, env.params).ends_with("]}}"));
    assert_eq!(env.uri, None);
    assert_eq!(env.progress_token, None);
}

#[test]
fn valid_messages_are_classified() {
    let cases: &[(&str, MessageKind, Option<&str>)] = &[
        (
            r#"{"jsonrpc":"2.0","id":"a-1","method":"ping"}"#,
            MessageKind::Request,
            Some(r#""a-1""#),
        ),
        (
            r#"{"method":"ping","id":-1.5e3,"jsonrpc":"2.0"}"#,
            MessageKind::Request,
            Some("-1.5e3"),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            MessageKind::Notification,
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}"#,
            MessageKind::Notification,
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            MessageKind::Response,
            Some("1"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":"x","result":null}"#,
            MessageKind::Response,
            Some(r#""x""#),
        ),
        (
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"nope"}}"#,
            MessageKind::Response,
            Some("2"),
        ),
        (
            " \t\r\n{ \"jsonrpc\" : \"2.0\" ,\n \"id\" : 0 , \"method\" : \"m\" } \n",
            MessageKind::Request,
            Some("0"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1,2,{"name":"ignored"}]}"#,
            MessageKind::Request,
            Some("1"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","x-extension":{"any":[true,false,null]}}"#,
            MessageKind::Request,
            Some("1"),
        ),
    ];
    for &(body, kind, id) in cases {
        let env = single(body);
        assert_eq!(env.kind, kind, "{body}");
        assert_eq!(env.id.map(|s| text(body, Some(s))), id, "{body}");
        assert_eq!(env.name, None, "{body}");
    }
}

#[test]
fn response_records_result_and_error_spans() {
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
    assert_eq!(text(body, single(body).result), r#"{"content":[]}"#);
    let body = r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#;
    assert_eq!(
        text(body, single(body).error),
        r#"{"code":1,"message":"m"}"#
    );
}

#[test]
fn resources_read_yields_uri_and_prompts_get_yields_name() {
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a/b.txt"}}"#;
    let env = single(body);
    assert_eq!(env.uri.expect("uri").value, "file:///a/b.txt");
    let body = r#"{"params":{"arguments":{"k":"v"},"name":"docs__summarise"},"jsonrpc":"2.0","method":"prompts/get","id":"p"}"#;
    let env = single(body);
    assert_eq!(env.method.as_deref(), Some("prompts/get"));
    assert_eq!(env.name.expect("name").value, "docs__summarise");
}

#[test]
fn progress_token_and_meta_spans_are_recorded() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":"tok-1","other":[1]},"name":"a__b"}}"#;
    let env = single(body);
    assert_eq!(text(body, env.progress_token), r#""tok-1""#);
    assert_eq!(
        text(body, env.meta),
        r#"{"progressToken":"tok-1","other":[1]}"#
    );
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":42}}}"#;
    assert_eq!(text(body, single(body).progress_token), "42");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{}}}"#;
    let env = single(body);
    assert_eq!(text(body, env.meta), "{}");
    assert_eq!(env.progress_token, None);
}

#[test]
fn escaped_values_are_decoded_like_serde_json() {
    let values = [
        r#""tools\/call""#,
        r#""a\u005f_\u0062""#,
        r#""\"\\\/\b\f\n\r\t""#,
        r#""\u00e9\u00E9é""#,
        r#""\ud83d\ude00 \uD83D\uDE00 😀""#,
        r#""\u0000\u001f\u007f""#,
        r#""\uffff\u0800\u07ff""#,
    ];
    for value in values {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":{value},"params":{{"name":{value},"uri":{value}}}}}"#
        );
        let env = single(&body);
        let expected: String = serde_json::from_str(value).expect("serde_json decodes");
        assert_eq!(env.method.as_deref(), Some(expected.as_str()), "{value}");
        assert_eq!(env.name.expect("name").value, expected, "{value}");
        assert_eq!(env.uri.expect("uri").value, expected, "{value}");
    }
}

#[test]
fn non_string_name_and_uri_are_not_reported() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5,"uri":{"a":1},"_meta":"x"}}"#;
    let env = single(body);
    assert_eq!((env.name, env.uri, env.meta), (None, None, None));
}

#[test]
fn span_helpers_never_panic() {
    let span = Span { start: 4, end: 2 };
    assert_eq!(span.len(), 0);
    assert!(span.is_empty());
    assert_eq!(span.slice(b"abcdef"), None);
    assert_eq!(Span { start: 1, end: 3 }.slice(b"abcdef"), Some(&b"bc"[..]));
}

#[test]
fn word_at_a_time_string_scan_stops_where_the_bytewise_scan_does() {
    let stops = |b: u8| !(0x20..0x80).contains(&b) || b == b'"' || b == b'\\';
    let mut rng = generate::Rng::new(7);
    let alphabet = b"abc \"\\\x00\x1f\x20\x7f\x80\xff!~";
    for _ in 0..20_000 {
        let len = rng.below(40);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.chance(90) {
                    b'a' + (rng.below(26) as u8)
                } else {
                    *rng.pick(alphabet)
                }
            })
            .collect();
        let from = rng.below(len + 1);
        let expected = (from..len).find(|&i| stops(bytes[i])).unwrap_or(len);
        assert_eq!(
            super::lexer::skip_plain(&bytes, from),
            expected,
            "{bytes:?} from {from}"
        );
    }
}
