//! Splicing: rewriting one token leaves every other byte as it was.

use super::*;

#[test]
fn renaming_the_tool_changes_only_the_name_token() {
    let body = br#"{"jsonrpc":"2.0", "id" : "req-\u0031", "method":"tools/call","params":{"name":"github__create_issue","arguments":{"n":1.50}}}"#;
    let Ok(Scanned::Single(env)) = scan(body, DEPTH) else {
        panic!("scan")
    };
    let name = env.name.expect("name");
    let renamed =
        replace_span(body, name.span, &json_string_literal("create_issue")).expect("splice");
    let expected = br#"{"jsonrpc":"2.0", "id" : "req-\u0031", "method":"tools/call","params":{"name":"create_issue","arguments":{"n":1.50}}}"#;
    assert_eq!(&renamed[..], &expected[..]);
}

#[test]
fn splicing_several_spans_keeps_the_bytes_between_them() {
    let body = br#"{"id":1,"params":{"name":"a__b","_meta":{"progressToken":"p"}}}"#;
    let s = std::str::from_utf8(body).expect("utf8");
    let at = |needle: &str| {
        let start = s.find(needle).expect("needle");
        Span {
            start,
            end: start + needle.len(),
        }
    };
    let out =
        replace_spans(body, &[(at("\"a__b\""), b"\"b\""), (at("\"p\""), b"17")]).expect("splice");
    assert_eq!(
        &out[..],
        br#"{"id":1,"params":{"name":"b","_meta":{"progressToken":17}}}"#
    );
    let bad = replace_spans(body, &[(at("\"p\""), b""), (at("\"a__b\""), b"")]);
    assert!(matches!(bad, Err(SpliceError::Overlapping { .. })));
    let outside = Span {
        start: 3,
        end: body.len() + 1,
    };
    assert!(matches!(
        replace_span(body, outside, b""),
        Err(SpliceError::OutOfBounds { .. })
    ));
    let reversed = Span { start: 5, end: 4 };
    assert!(matches!(
        replace_span(body, reversed, b""),
        Err(SpliceError::OutOfBounds { .. })
    ));
    assert_eq!(
        &replace_span(body, Span { start: 0, end: 0 }, b" ").expect("insert")[..1],
        b" "
    );
}

#[test]
fn json_string_literal_matches_serde_json() {
    let mut all_ascii = String::new();
    for b in 0u8..0x80 {
        all_ascii.push(char::from(b));
    }
    let cases = [
        "",
        "create_issue",
        "a\"b\\c/d",
        "é😀\u{7f}\u{80}\u{2028}",
        all_ascii.as_str(),
    ];
    for case in cases {
        let ours = json_string_literal(case);
        let theirs = serde_json::to_vec(case).expect("serialise");
        assert_eq!(ours, theirs, "{case:?}");
    }
}
