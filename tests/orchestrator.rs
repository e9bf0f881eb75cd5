//! The orchestrator (issue 11): `sluice control` runs a self-hosted (stdio) installation made
//! with `sluice ctl` as a local child process behind its in-process bridge, a `sluice proxy`
//! following the registry serves its tools, the status (state, endpoint, restarts) is
//! written back and shown by `sluice ctl`, a secret reaches the server in its environment but
//! never an API answer, a crashed server is restarted and counted, and deleting the
//! installation (or stopping control) kills its process. The server is the official Python
//! SDK's stdio server. Every wait is a bounded poll.

mod harness;

use std::time::Duration;

use harness::control::{Control, Tokens};
use harness::sdk_peers::{python, repo};
use harness::{Raw, Sluice, free_port, poll, temp_path};
use serde_json::{Value, json};

const TOKENS: Tokens = Tokens {
    admin: "admin-token-for-orchestrator-tests",
    proxy: "proxy-token-for-orchestrator-tests",
    secret: "orchestrated-secret-value-77c1",
};

/// Calls `tool` on `gateway` in a fresh session; `None` until the proxy serves it.
async fn call(proxy: &Sluice, gateway: &str, tool: &str, args: Value) -> Option<Value> {
    let raw = Raw::new(proxy.url(gateway));
    let init = raw
        .post(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"orch","version":"1"}}}"#,
            None,
        )
        .await;
    let session = init
        .headers
        .get("mcp-session-id")?
        .to_str()
        .ok()?
        .to_owned();
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    let resp = raw.post(&body.to_string(), Some(&session)).await;
    if resp.status != 200 {
        return None;
    }
    let message = resp.message();
    message["result"]["content"][0]["text"]
        .as_str()
        .map(|t| Value::String(t.to_owned()))
}

/// The installation as `sluice ctl installations get --json` shows it.
fn shown(control: &Control, name: &str) -> Value {
    let out = control.ok(&["--json", "installations", "get", name]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_installation_runs_locally_is_served_restarted_and_stopped() {
    harness::ensure_crypto();
    let data = temp_path("orchestrated-registry");
    let control = Control::start_with(
        &data,
        free_port(),
        TOKENS,
        "\n[runtime]\nbackend = \"local\"\nresync = \"200ms\"\n",
    )
    .await;
    let proxy = Sluice::start(&format!(
        "[control]\nurl = \"http://{}\"\ntoken = \"{}\"\nsnapshot_file = \"{}\"\npoll_wait = \"20s\"\n",
        control.addr,
        TOKENS.proxy,
        temp_path("orch-snapshot.bin").display()
    ))
    .await;

    control.template(&json!({
            "name": "pystdio",
            "description": "the Python SDK's stdio server",
            "transport": "stdio",
            "command": [python(), repo().join("tests/peers/python/stdio_server.py"), "--name", "{label}", "--env-tool"],
            "fields": [{"name": "label"}, {"name": "token", "secret": true}],
            "env": {"PEER_TOKEN": "{token}"},
        }));
    control.ok(&[
        "installations",
        "create",
        "files",
        "--template",
        "pystdio",
        "--set",
        "label=files",
        "--set-env",
        "token=GITHUB_TOKEN",
    ]);
    control.ok(&["gateways", "create", "team", "--server", "files"]);

    // Started, healthy, in the registry, and served by the proxy.
    let echoed = poll(
        "files__echo through the proxy",
        600,
        Duration::from_millis(50),
        || call(&proxy, "team", "files__echo", json!({"text": "hi"})),
    )
    .await;
    assert_eq!(echoed, "files:hi");
    let status = shown(&control, "files")["status"].clone();
    assert_eq!(status["state"], "running", "{status}");
    let url = status["url"].as_str().expect("an endpoint").to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "{url}"
    );
    assert_eq!(status["restarts"], 0, "{status}");
    // No runtime named: the control's default backend, local.
    assert_eq!(status["runtime"], "local", "{status}");
    let table = control.ok(&["installations", "list"]);
    assert!(
        table.contains("running  local") && table.contains(&url),
        "{table}"
    );

    // The secret reached the server's environment, and no answer of the API shows it.
    let env = call(
        &proxy,
        "team",
        "files__env",
        json!({"variable": "PEER_TOKEN"}),
    )
    .await;
    assert_eq!(env, Some(Value::String(TOKENS.secret.to_owned())));
    let all = control.ok(&["--json", "installations", "list"]);
    assert!(!all.contains(TOKENS.secret), "{all}");
    // Its stderr is kept as logs.
    let logs = control.ok(&["installations", "logs", "files"]);
    assert!(logs.contains("stdio server files started"), "{logs}");

    // A crash: the server is restarted, and the restart is counted in its status.
    let pid: u32 = call(&proxy, "team", "files__pid", json!({}))
        .await
        .and_then(|p| p.as_str()?.parse().ok())
        .expect("a pid");
    let _ = call(&proxy, "team", "files__crash", json!({"code": 3})).await;
    let restarted: u32 = poll(
        "a restarted server",
        600,
        Duration::from_millis(50),
        || async {
            call(&proxy, "team", "files__pid", json!({}))
                .await
                .and_then(|p| p.as_str()?.parse().ok())
                .filter(|p| *p != pid)
        },
    )
    .await;
    assert!(!alive(pid), "the crashed server is gone");
    poll(
        "the restart in the status",
        200,
        Duration::from_millis(50),
        || async {
            let status = shown(&control, "files")["status"].clone();
            (status["restarts"].as_u64() >= Some(1) && status["state"] == "running").then_some(())
        },
    )
    .await;

    // Deleted: the process is stopped and the status forgotten.
    control.ok(&["gateways", "delete", "team"]);
    control.ok(&["installations", "delete", "files"]);
    poll(
        "the server stopped",
        200,
        Duration::from_millis(50),
        || async { (!alive(restarted)).then_some(()) },
    )
    .await;
    let audit = control.ok(&["--json", "audit"]);
    assert!(audit.contains("\"orchestrator\""), "{audit}");
    assert!(!audit.contains(TOKENS.secret));
    let log = control.stop();
    assert!(!log.contains(TOKENS.secret), "the secret was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_control_stops_what_it_runs_and_a_failed_start_is_reported() {
    harness::ensure_crypto();
    let data = temp_path("orchestrated-registry-2");
    let control = Control::start_with(
        &data,
        free_port(),
        TOKENS,
        "\n[runtime]\nhealthy_within = \"2s\"\nresync = \"200ms\"\n",
    )
    .await;
    control.template(&json!({
            "name": "pystdio",
            "transport": "stdio",
            "command": [python(), repo().join("tests/peers/python/stdio_server.py"), "--name", "{label}"],
            "fields": [{"name": "label"}],
        }));
    control.template(
        &json!({"name": "broken", "transport": "stdio", "command": ["/nonexistent/mcp-server"]}),
    );
    control.ok(&[
        "installations",
        "create",
        "a",
        "--template",
        "pystdio",
        "--set",
        "label=a",
    ]);
    control.ok(&["installations", "create", "nope", "--template", "broken"]);

    let url = poll(
        "installation a running",
        600,
        Duration::from_millis(50),
        || async {
            let status = shown(&control, "a")["status"].clone();
            (status["state"] == "running").then(|| status["url"].as_str().map(str::to_owned))?
        },
    )
    .await;
    let failed = poll(
        "installation nope failed",
        600,
        Duration::from_millis(50),
        || async {
            let status = shown(&control, "nope")["status"].clone();
            (status["state"] == "failed" || status["state"] == "starting")
                .then(|| status["last_error"].as_str().map(str::to_owned))?
        },
    )
    .await;
    assert!(
        failed.contains("nope") || failed.contains("nonexistent"),
        "{failed}"
    );

    // The server behind the endpoint, found by asking it for its pid over the bridge.
    let raw = Raw::new(url);
    let session = raw.initialize().await;
    let pid: u32 = raw.call_tool(&session, "pid", json!({})).await["result"]["content"][0]["text"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("a pid");
    assert!(alive(pid));
    control.stop();
    assert!(!alive(pid), "control's stop stopped the server it ran");
}
