//! Interop through the gateway with the official Rust SDK on both sides: an rmcp client in
//! front (handshake era, and 2026-07-28 by `server/discover`), a stateful (sessions + SSE)
//! and a stateless (JSON) rmcp server behind.

mod harness;

use harness::rmcp_peers::{
    RmcpServer, ServerOpts, rmcp_call, rmcp_connect, rmcp_connect_modern, start_rmcp_server,
};
use harness::{Raw, Sluice};
use serde_json::json;

async fn upstreams() -> (RmcpServer, RmcpServer) {
    let alpha = start_rmcp_server(ServerOpts {
        name: "alpha".into(),
        stateful: true,
        filler: 120,
    })
    .await;
    let beta = start_rmcp_server(ServerOpts {
        name: "beta".into(),
        stateful: false,
        filler: 0,
    })
    .await;
    (alpha, beta)
}

fn config(alpha: &RmcpServer, beta: &RmcpServer, extra: &str) -> String {
    format!(
        "[catalog]\npage_size = 25\n\n[[servers]]\nname = \"alpha\"\nurl = \"{}\"\n{extra}\n\n[[servers]]\nname = \"beta\"\nurl = \"{}\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"alpha\", \"beta\"]\n",
        alpha.url, beta.url
    )
}

#[tokio::test]
async fn rmcp_client_sees_one_prefixed_paginated_catalog_and_calls_both_servers() {
    let (alpha, beta) = upstreams().await;
    let sluice = Sluice::start(&config(&alpha, &beta, "")).await;
    sluice.wait_tools("dev", 126 + 6).await;

    let client = rmcp_connect(&sluice.url("dev")).await;
    let tools = client
        .list_all_tools()
        .await
        .expect("tools/list through the gateway");
    assert_eq!(tools.len(), 132, "every page was followed");
    assert!(tools.iter().any(|t| t.name == "alpha__filler_119"));
    assert!(tools.iter().any(|t| t.name == "beta__echo"));
    assert!(
        tools
            .iter()
            .all(|t| t.name.starts_with("alpha__") || t.name.starts_with("beta__"))
    );

    assert_eq!(
        rmcp_call(&client, "alpha__echo", json!({ "text": "x" })).await,
        ("alpha:x".into(), false)
    );
    assert_eq!(
        rmcp_call(&client, "beta__echo", json!({ "text": "y" })).await,
        ("beta:y".into(), false)
    );
    assert_eq!(
        rmcp_call(&client, "beta__add", json!({ "a": 40, "b": 2 })).await,
        ("42".into(), false)
    );
    assert_eq!(
        rmcp_call(&client, "alpha__fail", json!({})).await,
        ("failed on purpose".into(), true),
        "isError results pass through untouched"
    );
    let err = client
        .call_tool(rmcp::model::CallToolRequestParams::new("alpha__nope"))
        .await
        .expect_err("unknown tool is refused");
    assert!(err.to_string().contains("alpha__nope"), "{err}");
    client.cancel().await.expect("client closes");
}

#[tokio::test]
async fn a_stateful_upstream_keeps_one_session_per_client_session() {
    let (alpha, beta) = upstreams().await;
    let sluice = Sluice::start(&config(&alpha, &beta, "")).await;
    sluice.wait_tools("dev", 132).await;

    let one = rmcp_connect(&sluice.url("dev")).await;
    let two = rmcp_connect(&sluice.url("dev")).await;
    rmcp_call(&one, "alpha__remember", json!({ "value": "first" })).await;
    rmcp_call(&two, "alpha__remember", json!({ "value": "second" })).await;
    assert_eq!(rmcp_call(&one, "alpha__recall", json!({})).await.0, "first");
    assert_eq!(
        rmcp_call(&two, "alpha__recall", json!({})).await.0,
        "second"
    );
    one.cancel().await.expect("close");
    two.cancel().await.expect("close");
}

#[tokio::test]
async fn two_replicas_with_one_secret_serve_the_same_session_and_upstream_session() {
    let (alpha, beta) = upstreams().await;
    let a = Sluice::start(&config(&alpha, &beta, "")).await;
    let b = Sluice::start(&config(&alpha, &beta, "")).await;
    a.wait_tools("dev", 132).await;
    b.wait_tools("dev", 132).await;

    let on_a = Raw::new(a.url("dev"));
    let on_b = Raw::new(b.url("dev"));
    let before = alpha.sessions_created();
    let session = on_a.initialize().await;
    let remembered = on_a
        .call_tool(&session, "alpha__remember", json!({ "value": "kept" }))
        .await;
    assert_eq!(remembered["result"]["content"][0]["text"], "ok");
    let recalled = on_b.call_tool(&session, "alpha__recall", json!({})).await;
    assert_eq!(
        recalled["result"]["content"][0]["text"], "kept",
        "replica b used the session opened by a"
    );
    let echoed = on_b
        .call_tool(&session, "beta__echo", json!({ "text": "z" }))
        .await;
    assert_eq!(echoed["result"]["content"][0]["text"], "beta:z");
    assert_eq!(
        alpha.sessions_created() - before,
        1,
        "one upstream session for one client session"
    );
}

#[tokio::test]
async fn a_slow_upstream_times_out_with_an_error_naming_it() {
    let (alpha, beta) = upstreams().await;
    let sluice = Sluice::start(&config(&alpha, &beta, "timeout = \"500ms\"")).await;
    sluice.wait_tools("dev", 132).await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let m = raw
        .call_tool(&session, "alpha__slow", json!({ "millis": 5000 }))
        .await;
    assert_eq!(m["error"]["code"], -32603, "{m}");
    let message = m["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("alpha") && message.contains("timed out"),
        "{message}"
    );
    let fast = raw
        .call_tool(&session, "alpha__echo", json!({ "text": "still" }))
        .await;
    assert_eq!(
        fast["result"]["content"][0]["text"], "alpha:still",
        "the gateway keeps serving"
    );
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_call() {
    let (alpha, beta) = upstreams().await;
    let sluice = Sluice::start(&config(&alpha, &beta, "")).await;
    sluice.wait_tools("dev", 132).await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let call = {
        let raw = Raw::new(sluice.url("dev"));
        tokio::spawn(async move {
            raw.call_tool(&session, "alpha__slow", json!({ "millis": 20_000 }))
                .await
        })
    };
    harness::poll(
        "the call to reach the upstream",
        500,
        std::time::Duration::from_millis(10),
        || async { (alpha.slow_calls_started() == 1).then_some(()) },
    )
    .await;
    call.abort();
    harness::poll(
        "the upstream call to be cancelled",
        500,
        std::time::Duration::from_millis(10),
        || async { (alpha.slow_calls_cancelled() == 1).then_some(()) },
    )
    .await;
    sluice
        .wait_access("the access log to record the client closing", |l| {
            l["outcome"] == "client_closed"
        })
        .await;
}

#[tokio::test]
async fn an_rmcp_client_in_2026_07_28_discovers_the_gateway_and_calls_both_servers() {
    let (alpha, beta) = upstreams().await;
    let sluice = Sluice::start(&config(&alpha, &beta, "")).await;
    sluice.wait_tools("dev", 126 + 6).await;

    let client = rmcp_connect_modern(&sluice.url("dev")).await;
    let info = client.peer_info().expect("discovered server info");
    assert_eq!(info.protocol_version.as_str(), "2026-07-28", "{info:?}");
    let tools = client
        .list_all_tools()
        .await
        .expect("tools/list through the gateway");
    assert_eq!(tools.len(), 132, "every page was followed");
    assert_eq!(
        rmcp_call(&client, "alpha__echo", json!({ "text": "x" })).await,
        ("alpha:x".into(), false)
    );
    assert_eq!(
        rmcp_call(&client, "beta__echo", json!({ "text": "y" })).await,
        ("beta:y".into(), false)
    );
    // Every request went in the revision: the gateway saw a discover and no initialize.
    sluice
        .wait_access("the second call's record", |e| {
            e["method"] == "tools/call" && e["server"] == "beta"
        })
        .await;
    let log = sluice.access_log();
    assert!(
        log.iter().any(|e| e["method"] == "server/discover"),
        "{log:?}"
    );
    assert!(!log.iter().any(|e| e["method"] == "initialize"), "{log:?}");
}
