//! Per-caller upstream credentials managed in the registry, end to end: `sluice control`, a
//! `sluice proxy` following it on loopback, and a Python SDK upstream whose `seen_headers`
//! tool shows the request headers it received. Two callers (two static gateway tokens) each
//! reach the upstream with their own secret, set through `sluice ctl` (from a file and from
//! stdin); a caller without one gets a JSON-RPC error naming the problem; a secret set or
//! removed later reaches the running proxy through the snapshot, with no restart. No secret
//! appears in `sluice ctl` output, in either log, or in clear in the saved snapshot. Every
//! wait is a bounded poll.

mod harness;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use harness::control::{Control, Tokens};
use harness::sdk_peers::python_server_with;
use harness::{Raw, Sluice, free_port, poll, temp_path};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-token-for-caller-tests";
const PROXY_TOKEN: &str = "proxy-token-for-caller-tests";
const ALICE_TOKEN: &str = "alice-gateway-token-0123456789";
const BOB_TOKEN: &str = "bob-gateway-token-0123456789";
const CAROL_TOKEN: &str = "carol-gateway-token-0123456789";
const ALICE_KEY: &str = "alice-upstream-key-e1f0c2";
const BOB_KEY: &str = "bob-upstream-key-5d9a7b";
const CAROL_KEY: &str = "carol-upstream-key-0b3e44";

const TOKENS: Tokens = Tokens {
    admin: ADMIN_TOKEN,
    proxy: PROXY_TOKEN,
    secret: "unused-installation-secret",
};

/// What one caller's `up__seen_headers` call gave: the upstream's headers, or the JSON-RPC
/// error; `None` while the gateway is not served yet.
async fn seen(raw: &Raw, token: &str) -> Option<Result<Value, String>> {
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"callers","version":"1"}}}"#;
    let r = raw.post_with(init, None, &h).await;
    if r.status != 200 {
        return None;
    }
    let session = r.headers.get("mcp-session-id")?.to_str().ok()?.to_owned();
    let done = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    raw.post_with(done, Some(&session), &h).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "up__seen_headers", "arguments": {}}});
    let r = raw.post_with(&call.to_string(), Some(&session), &h).await;
    if r.status != 200 {
        return None;
    }
    let m = r.message();
    match m["result"]["content"][0]["text"].as_str() {
        Some(text) => Some(Ok(serde_json::from_str(text).ok()?)),
        None => Some(Err(m["error"]["message"].as_str()?.to_owned())),
    }
}

/// Polls until `token`'s call satisfies `done`; returns that outcome.
async fn wait_for(
    raw: &Raw,
    token: &str,
    what: &str,
    done: impl Fn(&Result<Value, String>) -> bool,
) -> Result<Value, String> {
    poll(what, 500, Duration::from_millis(20), || async {
        seen(raw, token).await.filter(|o| done(o))
    })
    .await
}

fn authorization(outcome: &Result<Value, String>) -> Option<&str> {
    outcome.as_ref().ok()?["authorization"].as_str()
}

/// `sluice ctl ARGS` with `stdin` fed to it.
fn ctl_with_stdin(control: &Control, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("ctl")
        .args(["--url", &format!("http://{}", control.addr)])
        .args(args)
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_reaches_the_upstream_with_their_own_registry_secret() {
    harness::ensure_crypto();
    let up = python_server_with("up", false, None, &[]).await;
    let data = temp_path("registry");
    let control = Control::start(&data, free_port(), TOKENS).await;
    let snapshot_file = temp_path("callers-snapshot.bin");
    let body = format!(
        "[control]\nurl = \"http://{}\"\ntoken = \"{PROXY_TOKEN}\"\nsnapshot_file = \"{}\"\npoll_wait = \"20s\"\n\n[[auth.tokens]]\nname = \"alice\"\ntoken = \"{ALICE_TOKEN}\"\n\n[[auth.tokens]]\nname = \"bob\"\ntoken = \"{BOB_TOKEN}\"\n\n[[auth.tokens]]\nname = \"carol\"\ntoken = \"{CAROL_TOKEN}\"\n",
        control.addr,
        snapshot_file.display()
    );
    let proxy = Sluice::start(&body).await;

    control.template(&json!({
        "name": "personal",
        "description": "each caller's own key",
        "transport": "http",
        "url": format!("http://{}/mcp", up.addr),
        "credential": {"type": "per_caller", "value": "Bearer {secret}"}
    }));
    control.ok(&["installations", "create", "up", "--template", "personal"]);
    let gateway = temp_path("gateway.json");
    std::fs::write(
        &gateway,
        json!({"name": "team", "servers": ["up"], "auth": {"tokens": true}}).to_string(),
    )
    .unwrap();
    control.ok(&[
        "gateways",
        "create",
        "team",
        "--file",
        &gateway.display().to_string(),
    ]);

    // Alice's secret from a file, Bob's from stdin.
    let alice_file = temp_path("alice.key");
    std::fs::write(&alice_file, format!("{ALICE_KEY}\n")).unwrap();
    let out = control.ok(&[
        "installations",
        "set-caller",
        "up",
        "--subject",
        "alice",
        "--secret-file",
        &alice_file.display().to_string(),
    ]);
    assert!(
        out.starts_with("set the secret for token alice on up"),
        "{out}"
    );
    let out = ctl_with_stdin(
        &control,
        &[
            "installations",
            "set-caller",
            "up",
            "--subject",
            "bob",
            "--secret-stdin",
        ],
        BOB_KEY,
    );
    assert!(out.status.success(), "{out:?}");
    let mut printed = out.stdout.clone();

    let raw = Raw::new(proxy.url("team"));
    let alice = wait_for(&raw, ALICE_TOKEN, "alice's secret upstream", |o| {
        authorization(o).is_some()
    })
    .await;
    assert_eq!(authorization(&alice), Some(&*format!("Bearer {ALICE_KEY}")));
    // Bob's secret was written after Alice's: it may be one snapshot later.
    let bob = wait_for(&raw, BOB_TOKEN, "bob's secret upstream", |o| {
        authorization(o).is_some()
    })
    .await;
    assert_eq!(authorization(&bob), Some(&*format!("Bearer {BOB_KEY}")));

    // Carol has none: a JSON-RPC error that says so, and nothing reaches the upstream.
    let carol = seen(&raw, CAROL_TOKEN).await.expect("served");
    let err = carol.expect_err("carol has no secret");
    assert!(
        err.contains("upstream server 'up' needs a per-caller secret for caller 'token:carol'"),
        "{err}"
    );

    // Set through ctl while the proxy runs: it follows without a restart.
    let out = ctl_with_stdin(
        &control,
        &[
            "installations",
            "set-caller",
            "up",
            "--subject",
            "carol",
            "--secret-stdin",
        ],
        CAROL_KEY,
    );
    assert!(out.status.success(), "{out:?}");
    printed.extend_from_slice(&out.stdout);
    let carol = wait_for(&raw, CAROL_TOKEN, "carol's new secret upstream", |o| {
        o.is_ok()
    })
    .await;
    assert_eq!(authorization(&carol), Some(&*format!("Bearer {CAROL_KEY}")));

    // Removed through ctl: Bob is refused again.
    printed.extend_from_slice(
        control
            .ok(&["installations", "unset-caller", "up", "--subject", "bob"])
            .as_bytes(),
    );
    let bob = wait_for(&raw, BOB_TOKEN, "bob's secret gone", |o| o.is_err()).await;
    assert!(
        bob.unwrap_err().contains("needs a per-caller secret"),
        "bob still served"
    );
    let alice = seen(&raw, ALICE_TOKEN).await.expect("served");
    assert_eq!(authorization(&alice), Some(&*format!("Bearer {ALICE_KEY}")));

    // Listing shows who has a secret, never the secret.
    let table = control.ok(&["installations", "callers", "up"]);
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("KIND") && rows.len() == 3, "{table}");
    assert!(rows[1].starts_with("token  alice"), "{table}");
    assert!(rows[2].starts_with("token  carol"), "{table}");
    let listed: Value =
        serde_json::from_str(&control.ok(&["--json", "installations", "callers", "up"])).unwrap();
    assert_eq!(listed["callers"].as_array().map(Vec::len), Some(2));
    printed.extend_from_slice(table.as_bytes());
    printed.extend_from_slice(listed.to_string().as_bytes());
    printed.extend_from_slice(
        control
            .ok(&["--json", "installations", "get", "up"])
            .as_bytes(),
    );
    printed.extend_from_slice(control.ok(&["audit"]).as_bytes());

    // A secret is never taken as an argument (it would show in the process list).
    let refused = control.ctl(&[
        "installations",
        "set-caller",
        "up",
        "--subject",
        "dave",
        "--secret",
        "dave-key",
    ]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let neither = control.ctl(&["installations", "set-caller", "up", "--subject", "dave"]);
    assert_eq!(neither.status.code(), Some(2), "{neither:?}");

    let saved = std::fs::read(&snapshot_file).expect("the proxy saved its snapshot");
    let control_log = std::fs::read_to_string(&control.log).unwrap();
    for key in [ALICE_KEY, BOB_KEY, CAROL_KEY] {
        assert!(!contains(&printed, key.as_bytes()), "{key} in ctl output");
        assert!(
            !contains(&saved, key.as_bytes()),
            "{key} in the saved snapshot"
        );
        assert!(!proxy.log().contains(key), "{key} in the proxy log");
        assert!(!control_log.contains(key), "{key} in the control log");
    }
    let _ = std::fs::remove_dir_all(&data);
    for f in [snapshot_file, gateway, alice_file] {
        let _ = std::fs::remove_file(f);
    }
}
