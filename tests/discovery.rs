//! Tool discovery (issue 10): `sluice control` asks each installation's server what it offers
//! (`initialize`, `tools/list`, `resources/list`, `prompts/list`) when it is installed and on
//! a timer, and `sluice ctl installations tools NAME` shows it. Real peers: the official
//! Python SDK server over HTTP (remote installation) and its stdio server run by the
//! orchestrator (self-hosted installation); an unreachable one is shown with its error.

mod harness;

use std::time::Duration;

use harness::control::{Control, Tokens};
use harness::sdk_peers::{python, python_server_with, repo};
use harness::{free_port, poll, temp_path};
use serde_json::{Value, json};

const TOKENS: Tokens = Tokens {
    admin: "admin-token-for-discovery-tests",
    proxy: "proxy-token-for-discovery-tests",
    secret: "discovery-secret-value-0a9f",
};

fn offer(control: &Control, name: &str) -> Value {
    let out = control.ok(&["--json", "installations", "tools", name]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i[key].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installations_are_probed_for_their_tools_resources_and_prompts() {
    harness::ensure_crypto();
    let upstream = python_server_with("remote", true, None, &[]).await;
    let control = Control::start_with(
        &temp_path("discovery-registry"),
        free_port(),
        TOKENS,
        "\n[runtime]\nresync = \"200ms\"\n\n[discovery]\ninterval = \"1h\"\ntimeout = \"5s\"\n",
    )
    .await;
    control.template(&json!({"name": "py", "transport": "http", "url": "{base}/mcp",
               "fields": [{"name": "base", "type": "url"}, {"name": "key", "secret": true, "required": false}],
               "credential": {"type": "static", "value": "Bearer {key}"}}));
    control.template(&json!({"name": "pystdio", "transport": "stdio",
               "command": [python(), repo().join("tests/peers/python/stdio_server.py"), "--name", "s"]}));

    // A remote installation: probed as soon as it is written, with its credential.
    control.ok(&[
        "installations",
        "create",
        "docs",
        "--template",
        "py",
        "--set",
        &format!("base=http://{}", upstream.addr),
        "--set-env",
        "key=GITHUB_TOKEN",
    ]);
    let found = poll(
        "docs discovered",
        400,
        Duration::from_millis(25),
        || async {
            let o = offer(&control, "docs");
            o["discovered_at"].is_u64().then_some(o)
        },
    )
    .await;
    assert!(found["error"].is_null(), "{found}");
    let tools = names(&found["tools"], "name");
    for t in ["echo", "add", "seen_headers"] {
        assert!(tools.contains(&t.to_owned()), "{tools:?}");
    }
    assert!(found["tools"][0]["description"].is_string(), "{found}");
    assert!(
        found["tools"][0].get("inputSchema").is_none(),
        "only names and descriptions"
    );
    assert!(!names(&found["resources"], "uri").is_empty(), "{found}");
    assert!(
        names(&found["prompts"], "name").contains(&"greet".to_owned()),
        "{found}"
    );
    let table = control.ok(&["installations", "tools", "docs"]);
    assert!(table.starts_with("KIND"), "{table}");
    assert!(table.contains("tool") && table.contains("echo"), "{table}");
    assert!(!table.contains(TOKENS.secret), "{table}");

    // A self-hosted one: probed once the orchestrator has it running.
    control.ok(&["installations", "create", "local", "--template", "pystdio"]);
    let local = poll(
        "local discovered",
        600,
        Duration::from_millis(25),
        || async {
            let o = offer(&control, "local");
            o["discovered_at"].is_u64().then_some(o)
        },
    )
    .await;
    let tools = names(&local["tools"], "name");
    assert!(tools.contains(&"slow_echo".to_owned()), "{local}");

    // An unreachable one: shown with why.
    control.ok(&[
        "installations",
        "create",
        "gone",
        "--template",
        "py",
        "--set",
        &format!("base=http://127.0.0.1:{}", free_port()),
    ]);
    let gone = poll("gone probed", 400, Duration::from_millis(25), || async {
        let o = offer(&control, "gone");
        o["discovered_at"].is_u64().then_some(o)
    })
    .await;
    assert!(
        gone["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect")),
        "{gone}"
    );
    assert_eq!(gone["tools"], json!([]));
    let log = control.stop();
    assert!(!log.contains(TOKENS.secret), "the secret was logged");
}
