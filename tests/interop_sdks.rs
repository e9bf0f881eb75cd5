//! The interop matrix: the official Python, TypeScript and Rust SDK clients through the
//! gateway to the official Python SDK servers (stateful SSE and stateless JSON) and the
//! TypeScript SDK's server-everything, all on one gateway at once.

mod harness;

use harness::rmcp_peers::{rmcp_call, rmcp_connect};
use harness::sdk_peers::{
    SdkClient, everything_server, python_server, python_server_with, run_client, test_certificates,
    wait_for_line,
};
use harness::{ChildGuard, Raw, Sluice};
use serde_json::{Value, json};

struct Upstreams {
    py_stateful: ChildGuard,
    py_stateless: ChildGuard,
    everything: ChildGuard,
}

async fn upstreams() -> Upstreams {
    Upstreams {
        py_stateful: python_server("pysf", true, None).await,
        py_stateless: python_server("pysl", false, None).await,
        everything: everything_server().await,
    }
}

async fn gateway(u: &Upstreams) -> Sluice {
    let body = format!(
        "[[servers]]\nname = \"pysf\"\nurl = \"http://{}/mcp\"\n\n[[servers]]\nname = \"pysl\"\nurl = \"http://{}/mcp\"\n\n[[servers]]\nname = \"ev\"\nurl = \"http://{}/mcp\"\n\n[[gateways]]\nname = \"all\"\nservers = [\"pysf\", \"pysl\", \"ev\"]\n",
        u.py_stateful.addr, u.py_stateless.addr, u.everything.addr
    );
    let sluice = Sluice::start(&body).await;
    harness::poll(
        "every upstream's catalog",
        600,
        std::time::Duration::from_millis(50),
        || async {
            let (_, r) = sluice.readyz().await?;
            let up = ["pysf", "pysl", "ev"]
                .iter()
                .all(|s| r["servers"][s]["up"] == true);
            up.then_some(())
        },
    )
    .await;
    sluice
}

/// One stateful Python upstream `pysf` behind gateway `g`, its catalog loaded, and a client
/// session opened with the raw client. `extra` goes first in the config (e.g. `[catalog]`),
/// `server_extra` into the server's table.
struct OnePython {
    upstream: ChildGuard,
    sluice: Sluice,
    raw: Raw,
    session: String,
}

async fn one_python(extra: &str, server_extra: &str) -> OnePython {
    let upstream = python_server("pysf", true, None).await;
    let body = format!(
        "{extra}\n[[servers]]\nname = \"pysf\"\nurl = \"http://{}/mcp\"\n{server_extra}\n\n[[gateways]]\nname = \"g\"\nservers = [\"pysf\"]\n",
        upstream.addr
    );
    let sluice = Sluice::start(&body).await;
    sluice.wait_tools("g", 10).await;
    let raw = Raw::new(sluice.url("g"));
    let session = raw.initialize().await;
    OnePython {
        upstream,
        sluice,
        raw,
        session,
    }
}

/// (tool, arguments, text the result must contain) for each upstream.
fn calls() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("pysf__echo", json!({ "text": "a" }), "pysf:a"),
        ("pysl__echo", json!({ "text": "b" }), "pysl:b"),
        ("ev__echo", json!({ "message": "c" }), "Echo: c"),
    ]
}

fn result_text(call: &Value) -> String {
    call["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn sdk_client_calls_every_upstream(client: SdkClient) {
    let u = upstreams().await;
    let sluice = gateway(&u).await;
    for (tool, args, expected) in calls() {
        let out = run_client(client, &sluice.url("all"), Some((tool, &args))).await;
        assert_eq!(out["server_name"], "sluice/all");
        let tools: Vec<&str> = out["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            tools.contains(&"pysf__recall")
                && tools.contains(&"pysl__add")
                && tools.contains(&"ev__get-sum"),
            "{tools:?}"
        );
        assert!(
            result_text(&out["call"]).contains(expected),
            "{client:?} {tool}: {}",
            out["call"]
        );
        assert_ne!(out["call"]["isError"], true, "{client:?} {tool}");
    }
}

#[tokio::test]
async fn python_sdk_client_through_sluice_to_python_and_typescript_servers() {
    sdk_client_calls_every_upstream(SdkClient::Python).await;
}

#[tokio::test]
async fn typescript_sdk_client_through_sluice_to_python_and_typescript_servers() {
    sdk_client_calls_every_upstream(SdkClient::Node).await;
}

#[tokio::test]
async fn rust_sdk_client_through_sluice_to_python_and_typescript_servers() {
    let u = upstreams().await;
    let sluice = gateway(&u).await;
    let client = rmcp_connect(&sluice.url("all")).await;
    for (tool, args, expected) in calls() {
        let (text, is_error) = rmcp_call(&client, tool, args).await;
        assert!(text.contains(expected) && !is_error, "{tool}: {text}");
    }
    let (text, _) = rmcp_call(&client, "pysf__remember", json!({ "value": "v1" })).await;
    assert_eq!(text, "ok");
    assert_eq!(
        rmcp_call(&client, "pysf__recall", json!({})).await.0,
        "v1",
        "one upstream session per client session"
    );
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn python_prompts_and_resources_are_routed() {
    let u = upstreams().await;
    let sluice = gateway(&u).await;
    let raw = Raw::new(sluice.url("all"));
    let session = raw.initialize().await;
    let prompt = raw
        .post(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"pysl__greet","arguments":{"who":"ann"}}}"#, Some(&session))
        .await
        .message();
    assert!(
        prompt["result"]["messages"][0]["content"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Hello, ann, from pysl"),
        "{prompt}"
    );
    let read = raw
        .post(r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"note://pysf/readme"}}"#, Some(&session))
        .await
        .message();
    assert_eq!(
        read["result"]["contents"][0]["text"], "readme of pysf",
        "{read}"
    );
}

// Two workers: the test thread blocks reading the upstream's stderr while the call runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_killed_mid_call_fails_the_call_and_a_restarted_one_gets_a_new_session() {
    let OnePython {
        mut upstream,
        sluice,
        raw,
        session,
    } = one_python("", "timeout = \"20s\"").await;
    let port = upstream.addr.port();
    assert_eq!(
        raw.call_tool(&session, "pysf__remember", json!({ "value": "before" }))
            .await["result"]["content"][0]["text"],
        "ok"
    );

    let call = {
        let raw = Raw::new(sluice.url("g"));
        let session = session.clone();
        tokio::spawn(async move {
            let body = r#"{"jsonrpc":"2.0","id":"slow-1","method":"tools/call","params":{"name":"pysf__slow","arguments":{"seconds":30}}}"#;
            raw.post(body, Some(&session)).await
        })
    };
    wait_for_line(&mut upstream, "slow started", 1000);
    upstream.kill();
    let r = call.await.expect("the call task finishes");
    let m = r.message();
    assert_eq!(m["id"], "slow-1", "{}", r.body);
    assert_eq!(m["error"]["code"], -32603, "{}", r.body);
    assert!(
        m["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("pysf"),
        "{}",
        r.body
    );

    let _restarted = python_server("pysf", true, Some(port)).await;
    let m = raw.call_tool(&session, "pysf__recall", json!({})).await;
    assert_eq!(
        m["result"]["content"][0]["text"], "nothing",
        "a fresh upstream session after the restart: {m}"
    );
}

#[tokio::test]
async fn a_list_changed_notification_in_a_response_refreshes_the_catalog_at_once() {
    let OnePython {
        upstream: _upstream,
        sluice,
        raw,
        session,
    } = one_python("[catalog]\nrefresh = \"1h\"", "").await;
    let m = raw.call_tool(&session, "pysf__grow", json!({})).await;
    assert_eq!(m["result"]["content"][0]["text"], "grown", "{m}");
    // With a one-hour timer, only the announced change can add the tool now.
    sluice.wait_tools("g", 11).await;
    let m = raw.call_tool(&session, "pysf__grown", json!({})).await;
    assert_eq!(m["result"]["content"][0]["text"], "grown", "{m}");
}

#[tokio::test]
async fn sse_responses_stream_through_unbuffered() {
    let OnePython {
        upstream: _upstream,
        sluice,
        raw: _raw,
        session,
    } = one_python("", "").await;
    let release = harness::temp_path("release");
    let request = json!({
        "jsonrpc": "2.0", "id": 11, "method": "tools/call",
        "params": { "name": "pysf__progress_then_wait", "arguments": { "path": release.display().to_string() },
                    "_meta": { "progressToken": "tok-1" } },
    });
    let mut resp = reqwest::Client::new()
        .post(sluice.url("g"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .body(request.to_string())
        .send()
        .await
        .expect("request");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // The progress event must arrive while the upstream still holds the result back.
    let mut seen = String::new();
    for _ in 0..100 {
        let chunk = resp
            .chunk()
            .await
            .expect("stream")
            .expect("more data before the result");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if seen.contains("notifications/progress") {
            break;
        }
    }
    assert!(
        seen.contains("\"tok-1\"") && !seen.contains("released"),
        "{seen}"
    );
    std::fs::write(&release, b"go").expect("release the upstream");
    while let Some(chunk) = resp.chunk().await.expect("stream") {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("released"), "{seen}");
    let _ = std::fs::remove_file(release);
}

#[tokio::test]
async fn the_clients_credentials_and_session_id_never_reach_the_upstream() {
    let OnePython {
        upstream: _upstream,
        sluice: _sluice,
        raw,
        session,
    } = one_python("", "").await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pysf__seen_headers","arguments":{}}}"#;
    let r = raw
        .post_with(
            call,
            Some(&session),
            &[
                ("authorization", "Bearer client-gateway-token"),
                ("cookie", "sid=client-cookie"),
            ],
        )
        .await;
    let text = r.message()["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let seen: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(
        seen.get("authorization").is_none() && seen.get("cookie").is_none(),
        "{seen}"
    );
    assert!(
        !text.contains("client-gateway-token") && !text.contains(&session),
        "{seen}"
    );
    assert!(
        seen.get("mcp-session-id").is_some(),
        "the upstream sees its own session id: {seen}"
    );
    assert_eq!(seen["mcp-protocol-version"], "2025-11-25");
}

#[tokio::test]
async fn an_https_upstream_is_verified_against_the_configured_ca() {
    let (ca, cert, key) = test_certificates();
    let (ca, c, k) = (
        ca.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    let upstream =
        python_server_with("tls", true, None, &["--certfile", &c, "--keyfile", &k]).await;
    let servers = format!(
        "[[servers]]\nname = \"tls\"\nurl = \"https://127.0.0.1:{}/mcp\"\n\n[[gateways]]\nname = \"g\"\nservers = [\"tls\"]\n",
        upstream.addr.port()
    );
    let trusted = Sluice::start_with(&servers, &format!("upstream_ca_file = {ca:?}")).await;
    trusted.wait_tools("g", 10).await;
    let client = rmcp_connect(&trusted.url("g")).await;
    assert_eq!(
        rmcp_call(&client, "tls__echo", json!({ "text": "sealed" })).await,
        ("tls:sealed".into(), false)
    );
    client.cancel().await.expect("close");

    // Without the CA the certificate is refused: the upstream stays down, never used insecurely.
    let untrusted = Sluice::start(&servers).await;
    let (_, ready) = untrusted.readyz().await.expect("readyz");
    assert_eq!(ready["servers"]["tls"]["up"], false, "{ready}");
    assert_eq!(ready["gateways"]["g"]["tools"], 0);
}
