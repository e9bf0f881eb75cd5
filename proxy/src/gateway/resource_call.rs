//! Calls of synthesised read-resource tools ([`crate::catalog::resource_tools`]).
//!
//! The upstream has no such tool: the gateway sends it a `resources/read` of the tool's URI
//! instead, with the call's own id (and its `_meta`, which carries a progress token or the
//! 2026-07-28 envelope), and turns the answer back into what the caller asked for, a
//! `CallToolResult`. Each item of the read's `contents` becomes an `EmbeddedResource`
//! (`{"type": "resource", "resource": item}`), so text and binary contents both arrive intact
//! with their URI and MIME type. A JSON-RPC error of the upstream stays the call's error.
//!
//! The answer is mended whole: a JSON body is held (bounded, like every held answer) and an
//! event stream's response event is rewritten alone; notifications and relayed requests in
//! the stream pass untouched.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value, json};

use crate::jsonrpc::{self, MessageKind, Scanned};

/// The `resources/read` sent upstream for a call with raw `id` (as the client wrote it) of a
/// tool reading the URI `uri_literal` (a JSON string literal), keeping the call's raw
/// `params._meta`.
pub fn request(id: &[u8], uri_literal: &[u8], meta: Option<&[u8]>) -> Bytes {
    let meta_len = meta.map_or(0, |m| m.len() + 10);
    let mut out = BytesMut::with_capacity(80 + id.len() + uri_literal.len() + meta_len);
    out.put_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.put_slice(id);
    out.put_slice(br#","method":"resources/read","params":{"uri":"#);
    out.put_slice(uri_literal);
    if let Some(meta) = meta {
        out.put_slice(br#","_meta":"#);
        out.put_slice(meta);
    }
    out.put_slice(b"}}");
    out.freeze()
}

/// The response `message` with its `resources/read` result replaced by the equivalent
/// `CallToolResult`; `None` when it is not a response with a result (an error response, a
/// notification, a request, not JSON), which passes as it is.
pub fn to_call_result(message: &[u8], max_depth: usize) -> Option<Vec<u8>> {
    let Ok(Scanned::Single(envelope)) = jsonrpc::scan(message, max_depth) else {
        return None;
    };
    if envelope.kind != MessageKind::Response {
        return None;
    }
    let span = envelope.result?;
    let result: Value = serde_json::from_slice(&message[span.start..span.end]).ok()?;
    let converted = serde_json::to_vec(&call_result(result)).ok()?;
    let mut out = Vec::with_capacity(message.len() + 64);
    out.extend_from_slice(&message[..span.start]);
    out.extend_from_slice(&converted);
    out.extend_from_slice(&message[span.end..]);
    Some(out)
}

/// One SSE event of the answer with its response converted ([`to_call_result`]).
pub fn convert_event(block: Bytes, max_depth: usize) -> Bytes {
    let converted = crate::sse::frames::fields(&block)
        .data
        .and_then(|data| to_call_result(&data, max_depth));
    match converted {
        Some(data) => crate::sse::frames::rewrite(&block, None, Some(&data)),
        None => block,
    }
}

/// The `CallToolResult` for a `ReadResourceResult`: one embedded resource per content item,
/// `_meta` and a 2026-07-28 `resultType` kept. A result without a `contents` array is a tool
/// error saying so, so the caller is not handed an empty success.
fn call_result(result: Value) -> Value {
    let Value::Object(mut result) = result else {
        return failed("its resources/read answer was not an object");
    };
    let Some(Value::Array(contents)) = result.remove("contents") else {
        return failed("its resources/read answer had no contents");
    };
    let content: Vec<Value> = contents
        .into_iter()
        .filter(Value::is_object)
        .map(|item| json!({ "type": "resource", "resource": item }))
        .collect();
    let mut out = Map::new();
    out.insert("content".into(), Value::Array(content));
    out.insert("isError".into(), Value::Bool(false));
    for key in ["_meta", "resultType"] {
        if let Some(v) = result.remove(key) {
            out.insert(key.into(), v);
        }
    }
    Value::Object(out)
}

fn failed(why: &str) -> Value {
    json!({
        "content": [{ "type": "text", "text": format!("The upstream server could not be read: {why}.") }],
        "isError": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(message: Value) -> Option<Value> {
        let bytes = serde_json::to_vec(&message).unwrap();
        to_call_result(&bytes, 64).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn the_request_reads_the_uri_with_the_calls_id_and_meta() {
        let body = request(
            br#""a-1""#,
            br#""docs://guide""#,
            Some(br#"{"progressToken":3}"#),
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":"a-1","method":"resources/read",
                   "params":{"uri":"docs://guide","_meta":{"progressToken":3}}})
        );
        let v: Value = serde_json::from_slice(&request(b"7", br#""x:\"q\"""#, None)).unwrap();
        assert_eq!(v["params"], json!({ "uri": "x:\"q\"" }));
        assert_eq!(v["id"], 7);
    }

    #[test]
    fn contents_become_embedded_resources_text_and_blob_alike() {
        let out = convert(json!({
            "jsonrpc": "2.0", "id": 9,
            "result": {
                "contents": [
                    { "uri": "docs://guide", "mimeType": "text/plain", "text": "hello" },
                    { "uri": "docs://logo", "mimeType": "image/png", "blob": "iVBORw0K" },
                    "not an item",
                ],
                "_meta": { "k": 1 },
                "resultType": "complete",
                "ttlMs": 5,
            },
        }))
        .expect("converted");
        assert_eq!(
            out,
            json!({
                "jsonrpc": "2.0", "id": 9,
                "result": {
                    "content": [
                        { "type": "resource", "resource": { "uri": "docs://guide", "mimeType": "text/plain", "text": "hello" } },
                        { "type": "resource", "resource": { "uri": "docs://logo", "mimeType": "image/png", "blob": "iVBORw0K" } },
                    ],
                    "isError": false,
                    "_meta": { "k": 1 },
                    "resultType": "complete",
                },
            })
        );
    }

    #[test]
    fn errors_and_other_messages_pass_unchanged_and_a_result_without_contents_is_a_tool_error() {
        let error =
            json!({"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"Resource not found"}});
        assert_eq!(convert(error), None);
        let note = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}});
        assert_eq!(convert(note), None);
        assert_eq!(to_call_result(b"not json", 64), None);
        let odd = convert(json!({"jsonrpc":"2.0","id":1,"result":{"something":"else"}})).unwrap();
        assert_eq!(odd["result"]["isError"], true);
        assert!(
            odd["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("no contents")
        );
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{{"contents":{}1{}}}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(
            to_call_result(deep.as_bytes(), 64),
            None,
            "too deep: untouched"
        );
    }

    #[test]
    fn an_event_is_rewritten_only_when_it_carries_the_response() {
        let response = Bytes::from_static(
            b"event: message\nid: e1\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"contents\":[{\"uri\":\"u\",\"text\":\"t\"}]}}\n\n",
        );
        let out = convert_event(response, 64);
        let data = crate::sse::frames::fields(&out).data.unwrap().into_owned();
        let v: Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(v["result"]["content"][0]["resource"]["text"], "t");
        assert_eq!(crate::sse::frames::fields(&out).id, Some(&b"e1"[..]));
        let note = Bytes::from_static(
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n",
        );
        assert_eq!(convert_event(note.clone(), 64), note);
    }
}
