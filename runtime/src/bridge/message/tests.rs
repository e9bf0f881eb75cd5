use super::*;

#[test]
fn request_spans_cover_id_method_and_progress_token() {
    let text = r#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"x","_meta":{"progressToken":7}}}"#;
    let e = Envelope::parse(text).unwrap();
    assert_eq!(e.kind, Kind::Request);
    assert_eq!(e.method.as_deref(), Some("tools/call"));
    assert_eq!(&text[e.id.clone().unwrap()], r#""a-1""#);
    assert_eq!(&text[e.progress_token.clone().unwrap()], "7");
}

#[test]
fn spliced_id_is_restored_byte_exactly() {
    let text = r#"{"jsonrpc":"2.0","id": 1.0e0 ,"method":"ping"}"#;
    let e = Envelope::parse(text).unwrap();
    let id = e.id.clone().unwrap();
    let original = text[id.clone()].to_owned();
    let rewritten = splice(text.as_bytes(), &mut [(id, b"42")], false);
    let back = std::str::from_utf8(&rewritten).unwrap();
    assert_eq!(back, r#"{"jsonrpc":"2.0","id": 42 ,"method":"ping"}"#);
    let e2 = Envelope::parse(back).unwrap();
    let restored = splice(
        back.as_bytes(),
        &mut [(e2.id.unwrap(), original.as_bytes())],
        false,
    );
    assert_eq!(restored, text.as_bytes());
}

#[test]
fn escaped_keys_are_read_as_the_server_reads_them() {
    let text = r#"{"jsonrpc":"2.0","\u0069d":5,"method":"ping"}"#;
    let e = Envelope::parse(text).unwrap();
    assert_eq!(&text[e.id.unwrap()], "5");
}

#[test]
fn duplicate_keys_batches_and_garbage_are_refused() {
    assert!(matches!(
        Envelope::parse(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#),
        Err(MessageError::Malformed(_))
    ));
    assert!(matches!(Envelope::parse("[]"), Err(MessageError::Batch)));
    assert!(Envelope::parse("not json").is_err());
    assert!(Envelope::parse(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).is_err());
    assert!(Envelope::parse(r#"{"jsonrpc":"2.0","id":1}"#).is_err());
}

#[test]
fn notification_and_response_kinds() {
    let n = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}"#;
    let e = Envelope::parse(n).unwrap();
    assert_eq!(e.kind, Kind::Notification);
    assert_eq!(&n[e.progress_token.unwrap()], r#""t""#);
    let c = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}"#;
    assert_eq!(&c[Envelope::parse(c).unwrap().request_id.unwrap()], "3");
    let r = r#"{"jsonrpc":"2.0","id":9,"result":{}}"#;
    let e = Envelope::parse(r).unwrap();
    assert_eq!(e.kind, Kind::Response);
    assert!(e.has_result);
}

#[test]
fn only_plain_integers_are_bridge_numbers() {
    assert_eq!(bridge_number(b"17"), Some(17));
    assert_eq!(bridge_number(b"\"17\""), None);
    assert_eq!(bridge_number(b"-1"), None);
    assert_eq!(bridge_number(b"1.0"), None);
    assert_eq!(bridge_number(b"99999999999999999999"), None);
}

#[test]
fn error_responses_escape_their_message() {
    let out = error_response(b"\"x\"", -32603, "exit \"status\" 3");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["id"], "x");
    assert_eq!(v["error"]["message"], "exit \"status\" 3");
}
