//! Proxies following the registry (issue 10): `sluice control` and two `sluice proxy`
//! processes with `[control]` on loopback. An installation made with `sluice ctl` becomes
//! callable through both proxies (the write→serving latency is printed with `--nocapture`);
//! a snapshot that clashes with a file entry is refused while the previous one keeps serving;
//! with control killed (SIGKILL) both proxies keep serving, and a restarted proxy serves from
//! its saved snapshot, which holds no credential in clear. No sleeps synchronise anything:
//! every wait is a bounded poll.

mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::control::{Control, Tokens};
use harness::{Sluice, free_port, poll, temp_path};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-token-for-sync-tests";
const PROXY_TOKEN: &str = "proxy-token-for-sync-tests";
const SECRET: &str = "ghp_sync-e2e-secret-value-4b2e";

const TOKENS: Tokens = Tokens {
    admin: ADMIN_TOKEN,
    proxy: PROXY_TOKEN,
    secret: SECRET,
};

/// The proxy config body after the harness's `[proxy]` and `[sessions]`: a `[control]` table
/// and one file server ("local") with its own gateway.
fn body(control: SocketAddr, snapshot_file: &Path, upstream: SocketAddr) -> String {
    format!(
        "[control]\nurl = \"http://{control}\"\ntoken = \"{PROXY_TOKEN}\"\nsnapshot_file = \"{}\"\npoll_wait = \"20s\"\n\n[[servers]]\nname = \"local\"\nurl = \"http://{upstream}/mcp\"\n\n[[gateways]]\nname = \"file\"\nservers = [\"local\"]\n",
        snapshot_file.display()
    )
}

/// Opens a session on `gateway` and calls `tool`; `None` while the gateway or tool is not
/// served yet.
async fn call(http: &reqwest::Client, proxy: &Sluice, gateway: &str, tool: &str) -> Option<Value> {
    let url = proxy.url(gateway);
    let init = http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"sync","version":"1"}}}"#)
        .send()
        .await
        .ok()?;
    if init.status() != 200 {
        return None;
    }
    let session = init
        .headers()
        .get("mcp-session-id")?
        .to_str()
        .ok()?
        .to_owned();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": {"text": "through the registry"}}});
    let resp = http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", session)
        .body(call.to_string())
        .send()
        .await
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    let text = resp.text().await.ok()?;
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text)
        .trim()
        .to_owned();
    let message: Value = serde_json::from_str(&json).ok()?;
    (message["result"]["content"][0]["text"] == "through the registry").then_some(message)
}

async fn wait_callable(http: &reqwest::Client, proxy: &Sluice, gateway: &str, tool: &str) {
    poll(
        &format!("{tool} on {gateway} at {}", proxy.listen),
        1000,
        Duration::from_millis(10),
        || call(http, proxy, gateway, tool),
    )
    .await;
}

async fn wait_log(proxy: &Sluice, what: &str, needle: &str) -> String {
    poll(what, 600, Duration::from_millis(20), || async {
        let log = proxy.log();
        log.contains(needle).then_some(log)
    })
    .await
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_follow_the_registry_survive_control_and_restart_from_the_saved_snapshot() {
    harness::ensure_crypto();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let upstream = harness::example_server().await;
    let data = temp_path("registry");
    let mut control = Control::start(&data, free_port(), TOKENS).await;
    let snap_a = temp_path("a-snapshot.bin");
    let snap_b = temp_path("b-snapshot.bin");
    let body_a = body(control.addr, &snap_a, upstream.addr);
    let a = Sluice::start(&body_a).await;
    let b = Sluice::start(&body(control.addr, &snap_b, upstream.addr)).await;
    // Both got the (empty) registry and still serve their file's gateway.
    wait_callable(&http, &a, "file", "local__echo").await;
    wait_callable(&http, &b, "file", "local__echo").await;

    let template = temp_path("example.json");
    std::fs::write(
        &template,
        format!(
            r#"{{"name": "example", "description": "the bundled example server", "transport": "http",
                "url": "{{base}}/mcp",
                "fields": [{{"name": "base", "type": "url", "default": "http://{}"}},
                           {{"name": "api_key", "secret": true}}],
                "credential": {{"type": "static", "value": "Bearer {{api_key}}"}}}}"#,
            upstream.addr
        ),
    )
    .unwrap();
    control.ok(&[
        "templates",
        "create",
        "--file",
        &template.display().to_string(),
    ]);
    control.ok(&[
        "installations",
        "create",
        "gh",
        "--template",
        "example",
        "--set-env",
        "api_key=GITHUB_TOKEN",
    ]);
    control.ok(&["gateways", "create", "team", "--server", "gh"]);
    // Write → serving: from the last ctl command returning to the tool answering on both.
    let written = Instant::now();
    let (first, second) = tokio::join!(
        async {
            wait_callable(&http, &a, "team", "gh__echo").await;
            written.elapsed()
        },
        async {
            wait_callable(&http, &b, "team", "gh__echo").await;
            written.elapsed()
        },
    );
    let latency = first.max(second);
    println!(
        "sync latency (sluice ctl write returned -> tool callable through both proxies): {} ms (proxy a {} ms, proxy b {} ms)",
        latency.as_millis(),
        first.as_millis(),
        second.as_millis()
    );
    assert!(
        latency < Duration::from_secs(5),
        "sync took {latency:?}; the issue asks for one second"
    );

    // A registry entry whose name is a file server's: the merged config is invalid, the
    // snapshot is refused with the error, and the previous one keeps serving.
    control.ok(&[
        "installations",
        "create",
        "local",
        "--template",
        "example",
        "--set",
        "api_key=another-key-123",
    ]);
    for p in [&a, &b] {
        let log = wait_log(p, "the clashing snapshot refused", "duplicate server name").await;
        assert!(log.contains("<registry snapshot v4>"), "{log}");
        wait_callable(&http, p, "team", "gh__echo").await;
        wait_callable(&http, p, "file", "local__echo").await;
    }

    // Control dies: both keep serving.
    control.kill();
    for p in [&a, &b] {
        wait_callable(&http, p, "team", "gh__echo").await;
        wait_callable(&http, p, "file", "local__echo").await;
    }

    // The saved snapshot (v3, the last applied) is sealed: no credential in clear.
    let saved = std::fs::read(&snap_a).expect("proxy a saved its snapshot");
    assert!(
        !contains(&saved, SECRET.as_bytes()),
        "the secret is in clear in the saved snapshot"
    );
    assert!(!contains(&saved, b"another-key-123"));
    assert!(!contains(&saved, b"gh__echo") && !contains(&saved, b"\"servers\""));

    // Proxy a restarts while control is down: it serves from its saved snapshot.
    let listen = a.listen;
    let log_a = a.log();
    a.terminate();
    let restarted = Sluice::start_at(listen, &body_a, "").await;
    wait_callable(&http, &restarted, "team", "gh__echo").await;
    wait_callable(&http, &restarted, "file", "local__echo").await;
    let log_r = wait_log(
        &restarted,
        "start from the saved snapshot logged",
        "starting from registry snapshot v3 (the saved snapshot)",
    )
    .await;

    for (name, log) in [
        ("a", log_a),
        ("b", b.log()),
        ("restarted", log_r),
        ("control", std::fs::read_to_string(&control.log).unwrap()),
    ] {
        assert!(
            !log.contains(SECRET),
            "the secret reached {name}'s log:\n{log}"
        );
        assert!(
            !log.contains(PROXY_TOKEN),
            "the proxy token reached {name}'s log:\n{log}"
        );
    }
    let _ = std::fs::remove_dir_all(&data);
    for f in [template, snap_a, snap_b] {
        let _ = std::fs::remove_file(f);
    }
}
