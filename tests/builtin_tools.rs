//! The built-in tools (issue 10): `sluice control`, a `sluice proxy` following it, and the
//! official Python SDK client. A file gateway with `builtin_tools = true` shows control's
//! `sluice__*` tools, ruled like any tool: a viewer token may list and inspect, an admin
//! token may also install and assign. An installation made through the tools becomes
//! callable on the registry gateway it was assigned to, and control's audit log names the
//! caller, the gateway and the proxy token. Every wait is a bounded poll.

mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use harness::control::{Control, Tokens};
use harness::{Sluice, free_port, poll, temp_path};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-token-for-builtin-tests";
const PROXY_TOKEN: &str = "proxy-token-for-builtin-tests";
const OPS_TOKEN: &str = "ops-caller-token-0123456789";
const VIEWER_TOKEN: &str = "viewer-caller-token-0123456789";

const TOKENS: Tokens = Tokens {
    admin: ADMIN_TOKEN,
    proxy: PROXY_TOKEN,
    secret: "unused-secret-value",
};

/// `[control]`, two callers with a `role` claim, and the `ops` gateway: built-in tools only,
/// reads for every caller, writes for `role = "admin"`.
fn body(control: SocketAddr) -> String {
    let snapshot = temp_path("builtin-snapshot.bin");
    format!(
        r#"[control]
url = "http://{control}"
token = "{PROXY_TOKEN}"
snapshot_file = "{}"
poll_wait = "20s"

[[auth.tokens]]
name = "ops"
token = "{OPS_TOKEN}"
claims = {{ role = "admin" }}

[[auth.tokens]]
name = "viewer"
token = "{VIEWER_TOKEN}"
claims = {{ role = "viewer" }}

[[gateways]]
name = "ops"
builtin_tools = true
[gateways.auth]
tokens = true
[[gateways.auth.rules]]
tools = ["sluice__list_*", "sluice__get_*"]
[[gateways.auth.rules]]
tools = ["sluice__*"]
require = {{ role = ["admin"] }}
"#,
        snapshot.display()
    )
}

/// Runs the Python SDK client against `url` (with `token`, optionally calling `tool`): its
/// JSON, or its stderr when it failed.
async fn sdk_client(
    url: &str,
    token: Option<&str>,
    tool: Option<(&str, &Value)>,
) -> Result<Value, String> {
    let mut cmd = tokio::process::Command::new(harness::sdk_peers::python());
    cmd.arg(harness::sdk_peers::repo().join("tests/peers/python/client.py"))
        .arg(url)
        .args(["--mode", "legacy"]);
    if let Some(token) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    if let Some((name, args)) = tool {
        cmd.args(["--call", name, "--args", &args.to_string()]);
    }
    let out = cmd
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("no JSON: {e}"))
}

async fn client(proxy: &Sluice, gateway: &str, token: &str, tool: Option<(&str, &Value)>) -> Value {
    sdk_client(&proxy.url(gateway), Some(token), tool)
        .await
        .unwrap_or_else(|e| panic!("the SDK client failed on {gateway}: {e}"))
}

/// The names a listing shows.
fn tool_names(out: &Value) -> Vec<&str> {
    out["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The structured content of a successful call, or the call result itself.
fn structured(out: &Value) -> &Value {
    assert_ne!(out["call"]["isError"], json!(true), "tool refused: {out}");
    &out["call"]["structuredContent"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_tools_are_ruled_like_any_tool_and_act_on_the_registry() {
    harness::ensure_crypto();
    let upstream = harness::example_server().await;
    let data = temp_path("builtin-registry");
    let control = Control::start(&data, free_port(), TOKENS).await;
    control.template(
        &json!({"name": "example", "description": "Sluice's example server",
        "transport": "http", "url": "{base}/mcp", "fields": [{"name": "base", "type": "url"}]}),
    );
    control.ok(&["gateways", "create", "team", "--builtin-tools"]);

    let proxy = Sluice::start(&body(control.addr)).await;

    // The viewer sees the read tools only, and may use them.
    let viewer = client(
        &proxy,
        "ops",
        VIEWER_TOKEN,
        Some(("sluice__list_templates", &json!({}))),
    )
    .await;
    let tools = tool_names(&viewer);
    assert!(tools.contains(&"sluice__list_templates"), "{tools:?}");
    assert!(tools.contains(&"sluice__get_gateway"), "{tools:?}");
    assert!(
        !tools.contains(&"sluice__install"),
        "the viewer must not see install: {tools:?}"
    );
    let templates = &structured(&viewer)["templates"];
    assert_eq!(templates[0]["name"], "example", "{viewer}");
    assert_eq!(templates[0]["fields"][0]["name"], "base");

    // ... and is refused install, which the rules keep from it.
    let install = json!({"name": "demo", "template": "example",
        "values": {"base": format!("http://{}", upstream.addr)}});
    let refused = sdk_client(
        &proxy.url("ops"),
        Some(VIEWER_TOKEN),
        Some(("sluice__install", &install)),
    )
    .await
    .expect_err("the viewer installed a server");
    assert!(refused.contains("sluice__install"), "{refused}");
    assert!(
        !control
            .ok(&["installations", "list", "--json"])
            .contains("\"demo\""),
        "a refused call reached control"
    );

    // The admin caller installs, gets a field-naming refusal for a bad install, and assigns.
    let ops = client(
        &proxy,
        "ops",
        OPS_TOKEN,
        Some(("sluice__install", &install)),
    )
    .await;
    assert!(tool_names(&ops).contains(&"sluice__install"), "{ops}");
    assert_eq!(structured(&ops)["name"], "demo", "{ops}");
    let bad = client(
        &proxy,
        "ops",
        OPS_TOKEN,
        Some((
            "sluice__install",
            &json!({"name": "demo2", "template": "missing"}),
        )),
    )
    .await;
    assert_eq!(bad["call"]["isError"], true, "{bad}");
    let text = bad["call"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("missing"), "{text}");
    let assigned = client(
        &proxy,
        "ops",
        OPS_TOKEN,
        Some((
            "sluice__assign",
            &json!({"entry": "demo__echo", "gateway": "team"}),
        )),
    )
    .await;
    assert_eq!(
        structured(&assigned)["tools"],
        json!(["demo__echo"]),
        "{assigned}"
    );

    // The assignment reaches the proxy: the registry gateway now serves the new tool.
    let url = proxy.url("team");
    let echoed = poll(
        "demo__echo on team",
        500,
        Duration::from_millis(20),
        || async {
            let text = json!({"text": "via the built-in tools"});
            let v = sdk_client(&url, None, Some(("demo__echo", &text)))
                .await
                .ok()?;
            (v["call"]["content"][0]["text"] == "via the built-in tools").then_some(v)
        },
    )
    .await;
    assert!(
        tool_names(&echoed).contains(&"sluice__list_gateways"),
        "{echoed}"
    );

    // Control's audit log names who did it, through which gateway and proxy token.
    let audit = control.ok(&["audit", "--json"]);
    assert!(
        audit.contains("token:ops via gateway ops (proxy token replicas)"),
        "{audit}"
    );

    // The endpoint is for proxies: an admin token is refused.
    let direct = reqwest::Client::new()
        .post(format!("http://{}/v1/mcp", control.addr))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_token_sees_and_assigns_only_its_gateways() {
    harness::ensure_crypto();
    let data = temp_path("builtin-scope");
    let control = Control::start_with(
        &data,
        free_port(),
        TOKENS,
        "\n[[proxy_tokens]]\nname = \"scoped\"\ntoken = \"scoped-proxy-token-0123456789\"\ngateways = [\"team\"]\n",
    )
    .await;
    for name in ["team", "other"] {
        control.ok(&["gateways", "create", name, "--builtin-tools"]);
    }
    let http = reqwest::Client::new();
    let call = |tool: &'static str, args: Value| {
        let http = http.clone();
        let url = format!("http://{}/v1/mcp", control.addr);
        async move {
            let v: Value = http
                .post(url)
                .bearer_auth("scoped-proxy-token-0123456789")
                .header("sluice-gateway", "team")
                .header("sluice-caller", "token:someone")
                .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                    "params": {"name": tool, "arguments": args}}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let listed = call("list_gateways", json!({})).await;
    let names: Vec<&Value> = listed["result"]["structuredContent"]["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["name"])
        .collect();
    assert_eq!(names, [&json!("team")], "{listed}");
    let other = call("unassign", json!({"entry": "sluice", "gateway": "other"})).await;
    assert_eq!(other["result"]["isError"], true, "{other}");
    assert!(
        other["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("scoped")
    );
    // Arguments of the wrong shape are a JSON-RPC error, not a tool result.
    let wrong = call("get_gateway", json!({"gateway": "team"})).await;
    assert_eq!(wrong["error"]["code"], -32602, "{wrong}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_gateway_rules_its_builtin_tools_with_its_own_rules() {
    harness::ensure_crypto();
    let data = temp_path("builtin-ruled");
    let control = Control::start(&data, free_port(), TOKENS).await;
    let gw = temp_path("ruled.json");
    std::fs::write(
        &gw,
        json!({"name": "ruled", "builtin_tools": true, "auth": {"tokens": true, "rules": [
            {"tools": ["sluice__list_*"]},
            {"tools": ["sluice__*"], "require": {"role": ["admin"]}}
        ]}})
        .to_string(),
    )
    .unwrap();
    control.ok(&[
        "gateways",
        "create",
        "ruled",
        "--file",
        &gw.display().to_string(),
    ]);
    let proxy = Sluice::start(&body(control.addr)).await;
    let tools_of = |token: &'static str| {
        let url = proxy.url("ruled");
        async move {
            let v = sdk_client(&url, Some(token), None).await.ok()?;
            Some(
                tool_names(&v)
                    .into_iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            )
        }
    };
    let ops = poll(
        "the ruled gateway on the proxy",
        500,
        Duration::from_millis(20),
        || tools_of(OPS_TOKEN),
    )
    .await;
    assert!(ops.iter().any(|t| t == "sluice__install"), "{ops:?}");
    let viewer = tools_of(VIEWER_TOKEN)
        .await
        .expect("the viewer lists tools");
    assert!(
        viewer.iter().any(|t| t == "sluice__list_gateways"),
        "{viewer:?}"
    );
    assert!(
        !viewer
            .iter()
            .any(|t| t == "sluice__install" || t == "sluice__get_gateway"),
        "{viewer:?}"
    );
}
