//! Bodies the scanner must refuse, and how: duplicate and escaped keys, invalid envelopes,
//! malformed JSON, nesting limits, truncation.

use super::*;

#[test]
fn duplicate_name_attack_is_refused() {
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__x","name":"b__y"}}"#;
    let error = refused(body);
    assert_eq!(
        error,
        ScanError::DuplicateKey {
            key: "name".into(),
            level: "params"
        }
    );
    assert_eq!(error.json_rpc_code(), -32600);
}

#[test]
fn duplicate_keys_are_refused_at_every_routed_level() {
    let cases = [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}"#,
            "method",
            "message",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}"#,
            "id",
            "message",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{},"params":{"name":"x"}}"#,
            "params",
            "message",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"uri":"a","uri":"b"}}"#,
            "uri",
            "params",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"progressToken":1,"progressToken":2}}}"#,
            "progressToken",
            "params._meta",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","x":1,"x":2}"#,
            "x",
            "message",
        ),
    ];
    for (body, key, level) in cases {
        assert_eq!(
            refused(body),
            ScanError::DuplicateKey {
                key: key.into(),
                level
            },
            "{body}"
        );
    }
}

#[test]
fn many_keys_are_checked_for_duplicates_past_the_inline_set() {
    let members: Vec<String> = (0..200).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{{},"k150":0}}}}"#,
        members.join(",")
    );
    assert_eq!(
        refused(&body),
        ScanError::DuplicateKey {
            key: "k150".into(),
            level: "params"
        }
    );
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{{}}}}}"#,
        members.join(",")
    );
    assert_eq!(single(&body).kind, MessageKind::Request);
}

#[test]
fn duplicates_and_escapes_below_routed_levels_are_only_syntax_checked() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__b","arguments":{"x":1,"x":2,"n\u0061me":3}}}"#;
    assert_eq!(single(body).name.expect("name").value, "a__b");
}

#[test]
fn escaped_keys_are_refused_at_every_routed_level() {
    let cases = [
        (
            r#"{"jsonrpc":"2.0","id":1,"meth\u006fd":"tools/call"}"#,
            "message",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"b__y"}}"#,
            "params",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__x","n\u0061me":"b__y"}}"#,
            "params",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"progress\u0054oken":1}}}"#,
            "params._meta",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","unrelated\n":1}"#,
            "message",
        ),
    ];
    for (body, level) in cases {
        let error = refused(body);
        assert_eq!(error, ScanError::EscapedKey { level }, "{body}");
        assert_eq!(error.json_rpc_code(), -32600);
    }
}

#[test]
fn invalid_json_rpc_messages_are_refused_with_a_reason() {
    let cases = [
        (r#"{"id":1,"method":"m"}"#, "missing \"jsonrpc\": \"2.0\""),
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"m"}"#,
            "\"jsonrpc\" must be \"2.0\"",
        ),
        (
            r#"{"jsonrpc":2.0,"id":1,"method":"m"}"#,
            "\"jsonrpc\" must be \"2.0\"",
        ),
        (r#"{"jsonrpc":"2.0","id":1}"#, "missing method"),
        (r#"{"jsonrpc":"2.0"}"#, "missing method"),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"m"}"#,
            "id must be a string or a number",
        ),
        (
            r#"{"jsonrpc":"2.0","id":{},"method":"m"}"#,
            "id must be a string or a number",
        ),
        (
            r#"{"jsonrpc":"2.0","id":true,"method":"m"}"#,
            "id must be a string or a number",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            "method must be a string",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}"#,
            "params must be an object or an array",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":null}"#,
            "params must be an object or an array",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#,
            "a response carries both result and error",
        ),
        (r#"{"jsonrpc":"2.0","result":1}"#, "a response without id"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","result":1}"#,
            "a request carries result or error",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":1,"params":{}}"#,
            "a response carries params",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"error":"boom"}"#,
            "error must be an object",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"progressToken":[]}}}"#,
            "progressToken must be a string or a number",
        ),
        (r#""just a string""#, "the message is not a JSON object"),
        ("42", "the message is not a JSON object"),
        ("null", "the message is not a JSON object"),
    ];
    for (body, reason) in cases {
        let error = refused(body);
        assert_eq!(error, ScanError::InvalidRequest { reason }, "{body}");
        assert_eq!(error.json_rpc_code(), -32600);
    }
}

#[test]
fn batches_are_reported_after_full_validation() {
    assert_eq!(
        scan(
            br#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}]"#,
            DEPTH
        ),
        Ok(Scanned::Batch)
    );
    assert_eq!(scan(b" [] ", DEPTH), Ok(Scanned::Batch));
    assert!(matches!(
        scan(b"[1,]", DEPTH),
        Err(ScanError::Syntax { .. })
    ));
}

#[test]
fn malformed_json_is_a_parse_error() {
    let cases: &[&[u8]] = &[
        b"",
        b"   ",
        b"{",
        b"}",
        b"{\"a\"}",
        b"{\"a\":}",
        b"{\"a\":1,}",
        b"{,}",
        b"{\"a\" 1}",
        b"{\"a\":1 \"b\":2}",
        b"{} x",
        b"{}{}",
        b"{\"a\":01}",
        b"{\"a\":1.}",
        b"{\"a\":-}",
        b"{\"a\":.5}",
        b"{\"a\":+1}",
        b"{\"a\":1e}",
        b"{\"a\":1e+}",
        b"{\"a\":tru}",
        b"{\"a\":nul}",
        b"{\"a\":True}",
        b"{\"a\":NaN}",
        b"{\"a\":\"\x01\"}",
        b"{\"a\":\"\\x\"}",
        b"{\"a\":\"\\u12\"}",
        b"{\"a\":\"\\u12g4\"}",
        b"{\"a\":\"\\ud800\"}",
        b"{\"a\":\"\\udc00\"}",
        b"{\"a\":\"\\ud800\\u0041\"}",
        b"{\"a\":\"\\ud800\\n\"}",
        b"{\"a\":\"\xff\"}",
        b"{\"a\":\"\xc3\"}",
        b"{\"a\":\"\xc0\xaf\"}",
        b"{\"a\":\"\xed\xa0\x80\"}",
        b"{\"a\":\"\xf4\x90\x80\x80\"}",
        b"\xef\xbb\xbf{}",
        b"{'a':1}",
        b"{\"a\":1}/*c*/",
        b"{\"a\":[1}",
        b"{\"a\":{]}",
        b"[1 2]",
        b"{\"a\":\"unterminated}",
        b"{\"a\":\"\\",
        b"\x00",
        b"{\"a\":\"\\u\"}",
        b"{\"a\"\n:\n[\n",
        b"{\"a\":1}\x00",
    ];
    for &body in cases {
        match scan(body, DEPTH) {
            Err(error @ ScanError::Syntax { .. }) => assert_eq!(error.json_rpc_code(), -32700),
            other => panic!(
                "{:?}: expected a syntax error, got {other:?}",
                String::from_utf8_lossy(body)
            ),
        }
        assert!(
            serde_json::from_slice::<serde_json::Value>(body).is_err(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn syntax_errors_take_precedence_over_envelope_problems() {
    let body = br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"m"#;
    assert!(matches!(scan(body, DEPTH), Err(ScanError::Syntax { .. })));
    let body = br#"{"jsonrpc":"1.0","n\u0061me":1} trailing"#;
    assert!(matches!(scan(body, DEPTH), Err(ScanError::Syntax { .. })));
}

#[test]
fn depth_limit_is_exact() {
    // params is level 2, "a"'s array level 3: allowed with max_depth 3, refused with 2.
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":[1]}}"#;
    assert!(scan(body, 3).is_ok());
    assert_eq!(scan(body, 2), Err(ScanError::TooDeep { max_depth: 2 }));
    let meta = br#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{}}}"#;
    assert!(scan(meta, 3).is_ok());
    assert_eq!(scan(meta, 2), Err(ScanError::TooDeep { max_depth: 2 }));
    assert_eq!(scan(b"{}", 0), Err(ScanError::TooDeep { max_depth: 0 }));
    for max in [1usize, 2, 63, 64, 65, 127, 128, 129, 300] {
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert_eq!(
            scan(nested(max).as_bytes(), max),
            Ok(Scanned::Batch),
            "{max}"
        );
        assert_eq!(
            scan(nested(max + 1).as_bytes(), max),
            Err(ScanError::TooDeep { max_depth: max }),
            "{max}"
        );
        let objects = format!("{}1{}", r#"{"a":"#.repeat(max), "}".repeat(max));
        assert!(
            scan(objects.as_bytes(), max).is_err_and(|e| e.json_rpc_code() == -32600),
            "{max}"
        );
        let objects = format!("{}1{}", r#"{"a":"#.repeat(max + 1), "}".repeat(max + 1));
        assert_eq!(
            scan(objects.as_bytes(), max),
            Err(ScanError::TooDeep { max_depth: max })
        );
    }
    let error = scan(b"[[[]]]", 2).expect_err("too deep");
    assert_eq!(error.json_rpc_code(), -32700);
}

#[test]
fn very_deep_nesting_does_not_touch_the_stack() {
    let levels = 200_000;
    let deep = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    assert_eq!(scan(deep.as_bytes(), usize::MAX), Ok(Scanned::Batch));
    assert_eq!(
        scan(deep.as_bytes(), DEPTH),
        Err(ScanError::TooDeep { max_depth: DEPTH })
    );
    let mixed = format!(
        "{}1{}",
        r#"[{"a":"#.repeat(levels / 2),
        "}]".repeat(levels / 2)
    );
    assert_eq!(scan(mixed.as_bytes(), usize::MAX), Ok(Scanned::Batch));
    let wrong = format!("{}{}", "[{\"a\":".repeat(100), "]}".repeat(100));
    assert!(matches!(
        scan(wrong.as_bytes(), usize::MAX),
        Err(ScanError::Syntax { .. })
    ));
}

#[test]
fn every_prefix_of_valid_bodies_is_handled_without_panic() {
    for body in generate::seed_corpus() {
        for end in 0..body.len() {
            let prefix = body.get(..end).unwrap_or_default();
            let ours = scan(prefix, DEPTH);
            let serde_ok = serde_json::from_slice::<serde_json::Value>(prefix).is_ok();
            if !serde_ok {
                assert!(
                    matches!(ours, Err(ScanError::Syntax { .. })),
                    "prefix {:?} gave {ours:?}",
                    String::from_utf8_lossy(prefix)
                );
            }
        }
    }
}
