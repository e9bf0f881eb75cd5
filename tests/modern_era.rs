//! The 2026-07-28 revision at the gateway's front door (issue 9): the official Python SDK
//! client in its modern mode (`--mode 2026-07-28`), its auto mode (which probes
//! `server/discover` and adopts the revision when the gateway answers it) and its handshake
//! mode, against official Python SDK servers with sessions and without, behind one gateway;
//! and the revision's checks with raw requests: header/body mismatch, a spoofed `Mcp-Name`,
//! missing envelope keys, an unsupported version, a 1 MiB argument.

mod harness;

use harness::sdk_peers::{SdkClient, python_server_with, run_client_with};
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
async fn the_python_sdk_in_every_mode_reaches_servers_with_and_without_sessions() {
    let with_sessions = python_server_with("sessions", true, None, &[]).await;
    let without = python_server_with("plain", false, None, &[]).await;
    let sluice = Sluice::start(&config(
        &with_sessions.addr.to_string(),
        &without.addr.to_string(),
    ))
    .await;
    sluice.wait_tools("dev", 2 * 10).await;
    let url = sluice.url("dev");

    for (mode, version) in [(MODERN, MODERN), ("auto", MODERN), ("legacy", "2025-11-25")] {
        for (tool, expect) in [
            ("sessions__echo", "sessions:hi"),
            ("plain__echo", "plain:hi"),
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
            let tools = out["tools"].as_array().expect("tools");
            assert!(tools.contains(&json!("plain__add")), "{out}");
        }
    }

    // A modern caller has no session; the gateway holds the stateful upstream's session for
    // the caller's identity (anonymous here), so state carries from one client to the next.
    let remember = run_client_with(
        SdkClient::Python,
        &url,
        Some(("sessions__remember", &json!({"value": "kept"}))),
        &["--mode", MODERN],
    )
    .await;
    assert_eq!(text(&remember["call"]), "ok", "{remember}");
    let recall = run_client_with(
        SdkClient::Python,
        &url,
        Some(("sessions__recall", &json!({}))),
        &["--mode", MODERN],
    )
    .await;
    assert_eq!(text(&recall["call"]), "kept", "{recall}");
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
