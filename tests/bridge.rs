//! `sluice bridge` with real stdio MCP servers: the official Python SDK (`mcp`) server in
//! `tests/peers/python/stdio_server.py`, `@modelcontextprotocol/server-everything` and
//! `@modelcontextprotocol/server-filesystem` from npm; driven by raw HTTP (exact ids, SSE
//! events, statuses), by the official SDK clients, and through a Sluice gateway in front of the
//! bridge. Everything on 127.0.0.1; readiness is the bridge's banner line, never a sleep.

mod harness;

use std::time::Duration;

use harness::bridge_proc::BridgeProc;
use harness::sdk_peers::{SdkClient, node_peers, run_client, run_client_with};
use harness::sse::{Events, get_stream, post_stream};
use harness::{Raw, Sluice, poll, temp_path};
use serde_json::{Value, json};

fn text_of(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {answer}"))
        .to_owned()
}

async fn call(raw: &Raw, session: &str, id: Value, tool: &str, args: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": tool, "arguments": args}});
    let r = raw.post(&body.to_string(), Some(session)).await;
    assert_eq!(r.status, 200, "tools/call {tool}: {}", r.body);
    r.message()
}

fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_using_the_same_ids_get_their_own_answers() {
    let bridge = BridgeProc::python(false);
    let raw = Raw::new(&bridge.url);
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(raw.initialize().await);
    }
    let mut calls = Vec::new();
    for (c, session) in sessions.iter().enumerate() {
        for i in 1..=5 {
            let (raw, session) = (Raw::new(&bridge.url), session.clone());
            calls.push(tokio::spawn(async move {
                // Every client uses ids 1..=5; later ids answer sooner, so answers interleave.
                let seconds = 0.05 * f64::from(6 - i);
                let text = format!("client {c} call {i}");
                let answer = call(
                    &raw,
                    &session,
                    json!(i),
                    "slow_echo",
                    json!({"text": text, "seconds": seconds}),
                )
                .await;
                (i, text, answer)
            }));
        }
    }
    for task in calls {
        let (i, text, answer) = task.await.expect("call task");
        assert_eq!(answer["id"], json!(i), "{answer}");
        assert_eq!(text_of(&answer), format!("a:{text}"));
    }
}

#[tokio::test]
async fn ids_come_back_byte_exactly_and_later_initializes_come_from_the_cache() {
    let bridge = BridgeProc::python(false);
    let raw = Raw::new(&bridge.url);
    let session = raw.initialize().await;
    let r = raw
        .post(
            r#"{"jsonrpc":"2.0","id":1.50,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#,
            Some(&session),
        )
        .await;
    assert!(r.body.contains(r#""id":1.50,"#), "{}", r.body);
    let r = raw
        .post(
            r#"{"jsonrpc":"2.0","id":"\u0041b","method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#,
            Some(&session),
        )
        .await;
    assert!(r.body.contains(r#""id":"\u0041b","#), "{}", r.body);
    let init = r#"{"jsonrpc":"2.0","id":"again","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"second","version":"1"}}}"#;
    let second = raw.post(init, None).await;
    assert_eq!(second.json()["id"], "again");
    assert_eq!(second.json()["result"]["serverInfo"]["name"], "py-stdio-a");
    let other = second.headers["mcp-session-id"].to_str().unwrap();
    assert_ne!(other, session);
    // The second session shares the child's one MCP session.
    let echo = call(&raw, other, json!(2), "echo", json!({"text": "second"})).await;
    assert_eq!(text_of(&echo), "a:second");
}

#[tokio::test]
async fn sessions_and_malformed_bodies_are_refused_with_json_rpc_errors() {
    let bridge = BridgeProc::python(false);
    let raw = Raw::new(&bridge.url);
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let missing = raw.post(list, None).await;
    assert_eq!((missing.status, missing.error_code()), (400, Some(-32600)));
    let unknown = raw
        .post(list, Some("0123456789abcdef0123456789abcdef"))
        .await;
    assert_eq!((unknown.status, unknown.error_code()), (404, Some(-32001)));
    let forged = raw.post(list, Some("not-a-session")).await;
    assert_eq!(forged.status, 404);
    let session = raw.initialize().await;
    let garbage = raw.post("{not json", Some(&session)).await;
    assert_eq!((garbage.status, garbage.error_code()), (400, Some(-32700)));
    let batch = raw.post("[]", Some(&session)).await;
    assert_eq!((batch.status, batch.error_code()), (400, Some(-32600)));
    let dup = raw
        .post(
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list"}"#,
            Some(&session),
        )
        .await;
    assert_eq!(dup.status, 400);
    let foreign = raw
        .post_with(list, Some(&session), &[("origin", "http://evil.example")])
        .await;
    assert_eq!(foreign.status, 403);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
        "a".repeat(17 << 20)
    );
    assert_eq!(raw.post(&big, Some(&session)).await.status, 413);
    // The session still works after all that.
    assert_eq!(raw.post(list, Some(&session)).await.status, 200);
    let deleted = raw.send(reqwest::Method::DELETE, Some(&session)).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(raw.post(list, Some(&session)).await.status, 404);
}

#[tokio::test]
async fn progress_streams_on_the_request_and_unsolicited_notifications_on_every_get_stream() {
    let bridge = BridgeProc::python(false);
    let raw = Raw::new(&bridge.url);
    let (s1, s2) = (raw.initialize().await, raw.initialize().await);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok-1"}}});
    let mut events = Events::new(post_stream(&bridge.url, &s1, body).await);
    for step in 1..=3 {
        let e = events.next().await.expect("a progress event");
        assert_eq!(e.data["method"], "notifications/progress");
        assert_eq!(
            e.data["params"]["progressToken"], "tok-1",
            "original token restored"
        );
        assert_eq!(e.data["params"]["progress"], step);
    }
    let answer = events.next().await.expect("the answer");
    assert_eq!(answer.data["id"], 1);
    assert_eq!(text_of(&answer.data), "progressed 3");

    let mut g1 = Events::new(get_stream(&bridge.url, &s1, None).await);
    let mut g2 = Events::new(get_stream(&bridge.url, &s2, None).await);
    // The GET streams are registered before their response headers come back.
    assert_eq!(
        text_of(&call(&raw, &s2, json!(9), "announce", json!({})).await),
        "announced"
    );
    for g in [&mut g1, &mut g2] {
        g.until("list_changed", |d| {
            d["method"] == "notifications/tools/list_changed"
        })
        .await;
        let log = g
            .until("log message", |d| d["method"] == "notifications/message")
            .await;
        assert_eq!(log.data["params"]["data"], "announced");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_restart_a_crashed_server_comes_back_reinitialized_in_the_same_sessions() {
    let bridge = BridgeProc::python(true);
    let raw = Raw::new(&bridge.url);
    let session = raw.initialize().await;
    let first_pid = text_of(&call(&raw, &session, json!(1), "pid", json!({})).await);
    // A call in flight when the server dies gets an error naming the exit status.
    let slow_raw = Raw::new(&bridge.url);
    let slow_session = session.clone();
    let in_flight = tokio::spawn(async move {
        call(
            &slow_raw,
            &slow_session,
            json!("slow"),
            "slow_echo",
            json!({"text": "t", "seconds": 30}),
        )
        .await
    });
    let crashed = call(&raw, &session, json!(2), "crash", json!({"code": 3})).await;
    assert_eq!(crashed["id"], 2);
    assert_eq!(crashed["error"]["code"], -32603);
    assert!(
        crashed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exited (exit status: 3)"),
        "{crashed}"
    );
    let slow = in_flight.await.expect("in-flight task");
    assert_eq!(slow["id"], "slow");
    assert_eq!(slow["error"]["code"], -32603);
    // The next call waits for the restarted, re-initialized server; the session is unchanged.
    let second_pid = text_of(&call(&raw, &session, json!(3), "pid", json!({})).await);
    assert_ne!(first_pid, second_pid);
    assert!(!process_alive(first_pid.parse().unwrap()));
    assert!(
        bridge.log().contains("re-initialized after restart"),
        "{}",
        bridge.log()
    );
    assert_eq!(
        text_of(&call(&raw, &session, json!(4), "echo", json!({"text": "back"})).await),
        "a:back"
    );
}

#[tokio::test]
async fn without_restart_the_bridge_exits_nonzero_saying_the_server_exited() {
    let mut bridge = BridgeProc::python(false);
    let raw = Raw::new(&bridge.url);
    let session = raw.initialize().await;
    let crashed = call(&raw, &session, json!(1), "crash", json!({"code": 7})).await;
    assert!(
        crashed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exit status: 7"),
        "{crashed}"
    );
    let status = bridge.wait_exit();
    assert_eq!(status.code(), Some(1));
    let log = bridge.log();
    assert!(
        log.contains("error: the MCP server process exited (exit status: 7); the bridge stops"),
        "{log}"
    );
    assert!(
        log.contains("[peer] crashing"),
        "stderr is logged with a prefix: {log}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_server_and_exits_zero() {
    let mut bridge = BridgeProc::python(false);
    let raw = Raw::new(&bridge.url);
    let session = raw.initialize().await;
    let pid: u32 = text_of(&call(&raw, &session, json!(1), "pid", json!({})).await)
        .parse()
        .unwrap();
    assert!(process_alive(pid));
    assert_eq!(bridge.terminate().code(), Some(0));
    poll(
        "the server process to be gone",
        200,
        Duration::from_millis(25),
        || async move { (!process_alive(pid)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn server_everything_over_stdio_serves_both_sdk_clients() {
    let main =
        node_peers().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let bridge = BridgeProc::start(true, &["node", main.to_str().unwrap(), "stdio"]);
    let args = json!({"message": "through the bridge"});
    let py = run_client_with(
        SdkClient::Python,
        &bridge.url,
        Some(("echo", &args)),
        &["--mode", "legacy"],
    )
    .await;
    assert!(
        py["tools"].as_array().unwrap().iter().any(|t| t == "echo"),
        "{py}"
    );
    assert_eq!(py["call"]["content"][0]["text"], "Echo: through the bridge");
    let node = run_client(SdkClient::Node, &bridge.url, Some(("echo", &args))).await;
    assert_eq!(
        node["call"]["content"][0]["text"],
        "Echo: through the bridge"
    );
    assert_eq!(py["server_name"], node["server_name"]);
}

#[tokio::test]
async fn stdio_servers_behind_a_sluice_gateway() {
    let dir = temp_path("fs-root");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello from the filesystem server").unwrap();
    let fs_main =
        node_peers().join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    let fs = BridgeProc::start(
        true,
        &["node", fs_main.to_str().unwrap(), dir.to_str().unwrap()],
    );
    let py = BridgeProc::python(true);
    let sluice = Sluice::start(&format!(
        "[[servers]]\nname = \"fs\"\nurl = \"{}\"\n\n[[servers]]\nname = \"py\"\nurl = \"{}\"\n\n[[gateways]]\nname = \"g\"\nservers = [\"fs\", \"py\"]\n",
        fs.url, py.url
    ))
    .await;
    let url = sluice.url("g");
    let raw = Raw::new(&url);
    let session = raw.initialize().await;
    let path = dir.join("hello.txt");
    let read = call(
        &raw,
        &session,
        json!(1),
        "fs__read_text_file",
        json!({"path": path}),
    )
    .await;
    assert_eq!(text_of(&read), "hello from the filesystem server", "{read}");
    let echo = call(
        &raw,
        &session,
        json!(2),
        "py__echo",
        json!({"text": "via sluice"}),
    )
    .await;
    assert_eq!(text_of(&echo), "a:via sluice");
    // The official Python SDK client through the gateway and the bridge. `legacy`: in its
    // default mode the client speaks 2026-07-28 to the gateway, which forwards the envelope
    // in `_meta` to this handshake-era upstream, and the SDK's stdio server refuses it.
    let args = json!({"text": "sdk"});
    let out = run_client_with(
        SdkClient::Python,
        &url,
        Some(("py__echo", &args)),
        &["--mode", "legacy"],
    )
    .await;
    assert_eq!(out["call"]["content"][0]["text"], "a:sdk");
    let _ = std::fs::remove_dir_all(&dir);
}
