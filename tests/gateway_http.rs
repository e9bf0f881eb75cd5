//! The MCP endpoint's HTTP and JSON-RPC contract, byte for byte, through the real binary in
//! front of the bundled example server (a real Streamable HTTP upstream).

mod harness;

use harness::{Raw, Sluice, example_server};
use serde_json::{Value, json};

async fn gateway_with(proxy_extra: &str, catalog: &str) -> (Sluice, harness::ChildGuard) {
    let upstream = example_server().await;
    let body = format!(
        "{catalog}\n[[servers]]\nname = \"example\"\nurl = \"http://{}/mcp\"\ntimeout = \"5s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"example\"]\n\n[[gateways]]\nname = \"other\"\nservers = [\"example\"]\n",
        upstream.addr
    );
    let sluice = Sluice::start_with(&body, proxy_extra).await;
    sluice.wait_tools("dev", 3).await;
    (sluice, upstream)
}

async fn gateway() -> (Sluice, harness::ChildGuard) {
    gateway_with("", "").await
}

const CALL_ECHO: &str = r#"{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"example__echo","arguments":{"text":"hi"}}}"#;

#[tokio::test]
async fn initialize_negotiates_and_returns_a_session() {
    let (sluice, _up) = gateway().await;
    let raw = Raw::new(sluice.url("dev"));
    let r = raw
        .post(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#, None)
        .await;
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!(m["id"], 0);
    assert_eq!(m["result"]["protocolVersion"], "2025-06-18");
    assert!(m["result"]["capabilities"]["tools"].is_object());
    assert!(r.headers.contains_key("mcp-session-id"));
    let unknown = raw
        .post(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"1999-01-01","capabilities":{}}}"#, None)
        .await;
    assert_eq!(unknown.json()["result"]["protocolVersion"], "2025-11-25");
}

#[tokio::test]
async fn tools_call_is_routed_by_prefix_and_the_id_passes_through() {
    let (sluice, _up) = gateway().await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let r = raw.post(CALL_ECHO, Some(&session)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = r.message();
    assert_eq!(m["id"], "call-1");
    assert_eq!(m["result"]["content"][0]["text"], "hi");
    let list = raw
        .post(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            Some(&session),
        )
        .await;
    let names: Vec<String> = list.json()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["example__echo", "example__add", "example__time"]);
}

#[tokio::test]
async fn tool_names_are_decoded_like_the_upstream_decodes_them() {
    let (sluice, _up) = gateway().await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let r = raw
        .post(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"example__ad\u0064","arguments":{"a":2,"b":40}}}"#, Some(&session))
        .await;
    assert_eq!(r.message()["result"]["content"][0]["text"], "42");
}

#[tokio::test]
async fn duplicate_or_escaped_envelope_keys_are_refused() {
    let (sluice, _up) = gateway().await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"example__echo","name":"example__add","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"example__add","name":"example__echo","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"example__echo"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"meth\u006fd":"tools/call","params":{"name":"example__echo"}}"#,
    ] {
        let r = raw.post(body, Some(&session)).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.body);
        assert_eq!(r.error_code(), Some(-32600), "{body}");
    }
}

#[tokio::test]
async fn malformed_bodies_get_json_rpc_errors() {
    let (sluice, _up) = gateway_with("max_json_depth = 16", "").await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"example__echo","arguments":{{"x":{}{}}}}}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    let cases: Vec<(String, u16, i64)> = vec![
        ("{not json".into(), 400, -32700),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"} trailing"#.into(),
            400,
            -32700,
        ),
        (deep, 400, -32700),
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.into(),
            400,
            -32600,
        ),
        (r#"{"id":1,"method":"ping"}"#.into(), 400, -32600),
        (r#""just a string""#.into(), 400, -32600),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#.into(),
            400,
            -32600,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"no/such/method"}"#.into(),
            200,
            -32601,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"example__ecko"}}"#
                .into(),
            200,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#.into(),
            200,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"999"}}"#.into(),
            200,
            -32602,
        ),
    ];
    for (body, status, code) in cases {
        let r = raw.post(&body, Some(&session)).await;
        assert_eq!(r.status, status, "{body} -> {}", r.body);
        assert_eq!(r.error_code(), Some(code), "{body} -> {}", r.body);
    }
    let unknown = raw
        .post(
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"example__ecko"}}"#,
            Some(&session),
        )
        .await;
    assert_eq!(unknown.json()["id"], 9);
    let msg = unknown.error_message();
    assert!(
        msg.contains("example__ecko") && msg.contains("example__echo"),
        "{msg}"
    );
}

#[tokio::test]
async fn http_level_checks_answer_with_their_status() {
    let (sluice, _up) = gateway_with("max_body_bytes = 2048", "").await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let r = raw
        .post_with(ping, Some(&session), &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, 406);
    let r = raw
        .post_with(ping, Some(&session), &[("content-type", "text/plain")])
        .await;
    assert_eq!(r.status, 415);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
        "a".repeat(4096)
    );
    let r = raw.post(&big, Some(&session)).await;
    assert_eq!(r.status, 413);
    assert!(r.body.contains("2048"), "{}", r.body);
    let r = Raw::new(sluice.url("nope"))
        .post(ping, Some(&session))
        .await;
    assert_eq!(r.status, 404);
    assert!(r.error_message().contains("nope"));
    let r = Raw::new(format!("http://{}/elsewhere", sluice.listen))
        .post(ping, None)
        .await;
    assert_eq!(r.status, 404);
    // GET opens the standalone stream (tests/mcp_passthrough.rs); other methods are refused.
    let r = raw.send(reqwest::Method::PUT, Some(&session)).await;
    assert_eq!(r.status, 405);
    assert_eq!(
        r.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST, GET, DELETE")
    );
    let r = raw
        .post_with(
            ping,
            Some(&session),
            &[("mcp-protocol-version", "2001-01-01")],
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn notifications_and_responses_are_accepted_without_a_body() {
    let (sluice, _up) = gateway().await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    for body in [
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
        r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
    ] {
        let r = raw.post(body, Some(&session)).await;
        assert_eq!(r.status, 202, "{body}");
        assert!(r.body.is_empty());
    }
}

#[tokio::test]
async fn sessions_are_checked_and_ended_by_delete() {
    let (sluice, _up) = gateway().await;
    let raw = Raw::new(sluice.url("dev"));
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let r = raw.post(ping, None).await;
    assert_eq!(r.status, 400, "no session id");
    let session = raw.initialize().await;
    assert_eq!(raw.post(ping, Some(&session)).await.status, 200);

    let mut tampered = session.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let r = raw
        .post(ping, Some(std::str::from_utf8(&tampered).unwrap()))
        .await;
    assert_eq!(r.status, 404, "tampered");
    assert_eq!(raw.post(ping, Some("garbage")).await.status, 404);

    let other = Raw::new(sluice.url("other"));
    assert_eq!(
        other.post(ping, Some(&session)).await.status,
        404,
        "other gateway's session"
    );

    assert_eq!(
        raw.send(reqwest::Method::DELETE, Some(&session))
            .await
            .status,
        200
    );
    assert_eq!(
        raw.post(ping, Some(&session)).await.status,
        404,
        "ended session"
    );
}

#[tokio::test]
async fn list_methods_paginate_from_the_gateway() {
    let (sluice, _up) = gateway_with("", "[catalog]\npage_size = 2\n").await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let first = raw
        .post(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            Some(&session),
        )
        .await
        .json();
    assert_eq!(first["result"]["tools"].as_array().unwrap().len(), 2);
    let cursor = first["result"]["nextCursor"].as_str().expect("a next page");
    let body = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": { "cursor": cursor } });
    let second = raw.post(&body.to_string(), Some(&session)).await.json();
    assert_eq!(second["result"]["tools"][0]["name"], "example__time");
    assert!(second["result"].get("nextCursor").is_none());
    for method in ["prompts/list", "resources/list", "resources/templates/list"] {
        let body = json!({ "jsonrpc": "2.0", "id": 3, "method": method });
        let r = raw.post(&body.to_string(), Some(&session)).await.json();
        assert!(r["result"].is_object(), "{method}: {r}");
    }
}

#[tokio::test]
async fn bodies_larger_than_pingoras_retry_buffer_are_routed_whole() {
    let (sluice, _up) = gateway().await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let text = "x".repeat(300 * 1024);
    let m = raw
        .call_tool(&session, "example__echo", json!({ "text": text }))
        .await;
    assert_eq!(
        m["result"]["content"][0]["text"].as_str().map(str::len),
        Some(text.len())
    );
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (sluice, _up) = gateway().await;
    let session = Raw::new(sluice.url("dev")).initialize().await;
    let mut sock = tokio::net::TcpStream::connect(sluice.listen).await.unwrap();
    let head = format!(
        "POST /mcp/dev HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        CALL_ECHO.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
        .await
        .expect("100 Continue arrives without the body being sent")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    sock.write_all(CALL_ECHO.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..100 {
        let n = sock.read(&mut chunk).await.unwrap();
        rest.extend_from_slice(&chunk[..n]);
        if n == 0 || String::from_utf8_lossy(&rest).contains("\"hi\"") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("200") && text.contains("\"hi\""), "{text}");
}

#[tokio::test]
async fn an_upstream_that_is_down_leaves_the_gateway_serving_and_calls_fail_clearly() {
    let (sluice, mut up) = gateway().await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    up.kill();
    let r = raw.post(CALL_ECHO, Some(&session)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.error_code(), Some(-32603));
    assert!(r.error_message().contains("example"), "{}", r.body);
    let list = raw
        .post(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            Some(&session),
        )
        .await;
    assert_eq!(list.status, 200, "the catalog is still served");
    let _: Value = list.json();
}

#[tokio::test]
async fn hostile_bodies_never_take_the_gateway_down() {
    let (sluice, _up) = gateway().await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let mut bodies: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, 0x7b],
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}".to_vec(),
        "[".repeat(100_000).into_bytes(),
        format!("{{\"a\":{}}}", "{\"a\":".repeat(50_000)).into_bytes(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud800"}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":{"nested":true},"method":"ping"}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1,2,3]}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":12}}"#.to_vec(),
        Vec::new(),
    ];
    // A deterministic spray of byte soup.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for len in [1usize, 7, 64, 513, 4096] {
        let mut b = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push((x & 0xff) as u8);
        }
        bodies.push(b);
    }
    for body in bodies {
        let r = reqwest::Client::new()
            .post(sluice.url("dev"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .body(body.clone())
            .send()
            .await
            .expect("the gateway answers");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        assert!(status == 400 || status == 200, "{status}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(
            v["error"]["code"].as_i64().is_some(),
            "a JSON-RPC error for {:?}: {v}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
    }
    let ping = raw
        .post(
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            Some(&session),
        )
        .await;
    assert_eq!(ping.status, 200, "still serving");
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

#[tokio::test]
async fn a_foreign_host_or_origin_is_refused_on_a_loopback_gateway() {
    let (sluice, _up) = gateway().await;
    let raw = Raw::new(sluice.url("dev"));
    let port = sluice.listen.port();

    let r = raw
        .post_with(INITIALIZE, None, &[("host", "evil.example")])
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error_code(), Some(-32600));
    assert_eq!(
        r.error_message(),
        "Host header 'evil.example' is not allowed (DNS-rebinding protection); if clients reach the gateway by this name, add it to proxy.allowed_hosts"
    );
    assert!(
        r.headers.get("mcp-session-id").is_none(),
        "nothing was served"
    );

    let r = raw
        .post_with(INITIALIZE, None, &[("origin", "http://evil.example")])
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Origin header 'http://evil.example' is not allowed (DNS-rebinding protection); if pages of this origin may use the gateway, add it to proxy.allowed_origins"
    );

    let localhost = format!("localhost:{port}");
    let local_origin = format!("http://localhost:{port}");
    let ok = raw
        .post_with(
            INITIALIZE,
            None,
            &[("host", &localhost), ("origin", &local_origin)],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.headers.contains_key("mcp-session-id"));

    let missing = http10_without_host(sluice.listen).await;
    assert!(
        missing.starts_with("HTTP/1.1 403") || missing.starts_with("HTTP/1.0 403"),
        "{missing}"
    );
    assert!(missing.contains("no Host header"), "{missing}");

    let m = harness::prom::scrape(&sluice).await;
    let refused = |reason: &str| {
        harness::prom::sum(&m, "sluice_bad_requests_total", &[("reason", reason)], true)
    };
    assert_eq!(refused("host_not_allowed"), 1.0);
    assert_eq!(refused("origin_not_allowed"), 1.0);
    assert_eq!(refused("missing_host"), 1.0);
}

#[tokio::test]
async fn an_explicit_host_list_replaces_the_loopback_default() {
    let (sluice, _up) = gateway_with(
        "allowed_hosts = [\"mcp.example.com\"]\nallowed_origins = [\"*\"]",
        "",
    )
    .await;
    let raw = Raw::new(sluice.url("dev"));
    let r = raw.post(INITIALIZE, None).await;
    assert_eq!(r.status, 403, "127.0.0.1 is no longer listed: {}", r.body);
    assert!(
        r.error_message().contains("proxy.allowed_hosts"),
        "{}",
        r.body
    );
    let ok = raw
        .post_with(
            INITIALIZE,
            None,
            &[("host", "MCP.example.com:443"), ("origin", "null")],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

/// Sends an HTTP/1.0 POST without a Host header and returns the raw response.
async fn http10_without_host(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /mcp/dev HTTP/1.0\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{INITIALIZE}",
        INITIALIZE.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sock.read_to_end(&mut out),
    )
    .await
    .expect("an HTTP/1.0 answer ends with the connection")
    .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}
