//! Read-resource tools set per installation in the registry, end to end: `sluice control`, a
//! `sluice proxy` following it on loopback, and two real Python SDK servers: `docs`, which
//! offers only resources (`--resources-only`), and `full`, which offers tools and one
//! resource. `resource_tools` is set and changed through `sluice ctl installations
//! create/replace --resource-tools`; the running proxy's `tools/list` shows or hides the
//! `read_*` tools accordingly, with no restart; and `sluice ctl installations tools NAME`
//! lists the same names the proxy serves (control and proxy share one naming function).
//! Every wait is a bounded poll on what the proxy or control shows.

mod harness;

use std::time::Duration;

use harness::control::{Control, Tokens};
use harness::sdk_peers::python_server_with;
use harness::{Raw, Sluice, free_port, poll, temp_path};
use serde_json::{Value, json};

const TOKENS: Tokens = Tokens {
    admin: "admin-token-for-resource-tool-tests",
    proxy: "proxy-token-for-resource-tool-tests",
    secret: "unused-installation-secret",
};

/// The tools `docs` (resources only) gets, in its resources' order.
const DOCS_READS: [&str; 3] = ["read_user_guide", "read_logo_png", "read_user_guide_2"];

/// What the gateway lists: tool names and resource URIs; `None` while it is not served.
async fn listed(raw: &Raw) -> Option<(Vec<String>, Vec<String>)> {
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"rt","version":"1"}}}"#;
    let r = raw.post(init, None).await;
    if r.status != 200 {
        return None;
    }
    let session = r.headers.get("mcp-session-id")?.to_str().ok()?.to_owned();
    let done = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    raw.post(done, Some(&session)).await;
    let mut out = Vec::new();
    for (method, key, field) in [
        ("tools/list", "tools", "name"),
        ("resources/list", "resources", "uri"),
    ] {
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": method});
        let r = raw.post(&body.to_string(), Some(&session)).await;
        if r.status != 200 {
            return None;
        }
        let items = r.message()["result"][key].as_array()?.clone();
        out.push(
            items
                .iter()
                .filter_map(|i| i[field].as_str().map(str::to_owned))
                .collect::<Vec<_>>(),
        );
    }
    let resources = out.pop()?;
    Some((out.pop()?, resources))
}

/// Polls until the gateway's lists satisfy `done`; returns the tool names then.
async fn wait_until(
    raw: &Raw,
    what: &str,
    done: impl Fn(&[String], &[String]) -> bool,
) -> Vec<String> {
    poll(what, 600, Duration::from_millis(50), || async {
        let (tools, resources) = listed(raw).await?;
        done(&tools, &resources).then_some(tools)
    })
    .await
}

/// The proxy's `{server}__read_*` tools, by their own names, in list order.
fn reads_of(tools: &[String], server: &str) -> Vec<String> {
    let prefix = format!("{server}__");
    tools
        .iter()
        .filter_map(|t| t.strip_prefix(&prefix))
        .filter(|t| t.starts_with("read_"))
        .map(str::to_owned)
        .collect()
}

/// `sluice ctl --json installations tools NAME` once discovery has probed it.
async fn offer(control: &Control, name: &str) -> Value {
    poll(
        &format!("{name} discovered"),
        400,
        Duration::from_millis(25),
        || async {
            let out = control.ok(&["--json", "installations", "tools", name]);
            let o: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            o["discovered_at"].is_u64().then_some(o)
        },
    )
    .await
}

/// The names of the read-resource tools the offer says proxies make.
fn offered(offer: &Value) -> Vec<String> {
    offer["resource_tools"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_tools_set_through_ctl_reach_the_proxy_and_the_discovery_view() {
    harness::ensure_crypto();
    let docs = python_server_with("docs", false, None, &["--resources-only"]).await;
    let full = python_server_with("full", false, None, &[]).await;
    let control = Control::start_with(
        &temp_path("rt-registry"),
        free_port(),
        TOKENS,
        "\n[discovery]\ninterval = \"1h\"\ntimeout = \"5s\"\n",
    )
    .await;
    let snapshot_file = temp_path("rt-snapshot.bin");
    let proxy = Sluice::start(&format!(
        "[control]\nurl = \"http://{}\"\ntoken = \"{}\"\nsnapshot_file = \"{}\"\npoll_wait = \"20s\"\n",
        control.addr,
        TOKENS.proxy,
        snapshot_file.display()
    ))
    .await;
    control.template(
        &json!({"name": "py", "transport": "http", "url": "{base}/mcp",
        "fields": [{"name": "base", "type": "url"}]}),
    );
    let docs_base = format!("base=http://{}", docs.addr);
    let full_base = format!("base=http://{}", full.addr);

    // docs: off although it qualifies under auto; full: on although it has tools.
    let created = control.ok(&[
        "installations",
        "create",
        "docs",
        "--template",
        "py",
        "--set",
        &docs_base,
        "--resource-tools",
        "off",
    ]);
    assert!(
        created.starts_with("created installation docs"),
        "{created}"
    );
    control.ok(&[
        "installations",
        "create",
        "full",
        "--template",
        "py",
        "--set",
        &full_base,
        "--resource-tools",
        "on",
    ]);
    let shown: Value =
        serde_json::from_str(&control.ok(&["--json", "installations", "get", "full"])).unwrap();
    assert_eq!(shown["resource_tools"], "on", "{shown}");
    let table = control.ok(&["installations", "list"]);
    assert!(
        table.lines().next().unwrap().contains("RESOURCE TOOLS"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("docs") && l.contains(" off ")),
        "{table}"
    );
    control.ok(&[
        "gateways", "create", "team", "--server", "docs", "--server", "full",
    ]);

    // The proxy: full's own tools and its read tool; docs' resources but no tool of docs.
    let raw = Raw::new(proxy.url("team"));
    let tools = wait_until(&raw, "both catalogs on team", |tools, resources| {
        tools.iter().any(|t| t == "full__echo")
            && resources.iter().any(|r| r == "docs://guide")
            && tools.iter().any(|t| t.starts_with("full__read_"))
    })
    .await;
    assert_eq!(reads_of(&tools, "full"), ["read_readme"], "{tools:?}");
    assert!(!tools.iter().any(|t| t.starts_with("docs__")), "{tools:?}");

    // Discovery lists the same names the proxy serves, and none for docs.
    let full_offer = offer(&control, "full").await;
    assert_eq!(full_offer["resource_tools"]["mode"], "on", "{full_offer}");
    assert_eq!(offered(&full_offer), reads_of(&tools, "full"));
    assert_eq!(
        full_offer["resource_tools"]["tools"][0]["uri"],
        "note://full/readme"
    );
    let human = control.ok(&["installations", "tools", "full"]);
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("resource-tool") && l.contains("read_readme")),
        "{human}"
    );
    let docs_offer = offer(&control, "docs").await;
    assert_eq!(docs_offer["resource_tools"]["mode"], "off", "{docs_offer}");
    assert_eq!(offered(&docs_offer), Vec::<String>::new());
    assert_eq!(docs_offer["resources"].as_array().map(Vec::len), Some(3));

    // docs replaced without the flag: the default (auto) gives it its read tools.
    control.ok(&[
        "installations",
        "replace",
        "docs",
        "--template",
        "py",
        "--set",
        &docs_base,
    ]);
    let tools = wait_until(&raw, "docs' read tools", |tools, _| {
        tools.iter().any(|t| t.starts_with("docs__read_"))
    })
    .await;
    assert_eq!(reads_of(&tools, "docs"), DOCS_READS, "{tools:?}");
    let docs_offer = offer(&control, "docs").await;
    assert_eq!(docs_offer["resource_tools"]["mode"], "auto", "{docs_offer}");
    assert_eq!(offered(&docs_offer), DOCS_READS);

    // full switched off: its read tool goes, its own tools stay.
    control.ok(&[
        "installations",
        "replace",
        "full",
        "--template",
        "py",
        "--set",
        &full_base,
        "--resource-tools",
        "off",
    ]);
    let tools = wait_until(&raw, "full's read tool gone", |tools, _| {
        tools.iter().any(|t| t == "full__echo")
            && !tools.iter().any(|t| t.starts_with("full__read_"))
    })
    .await;
    assert_eq!(reads_of(&tools, "docs"), DOCS_READS, "{tools:?}");
    assert_eq!(
        offered(&offer(&control, "full").await),
        Vec::<String>::new()
    );

    // ctl refuses a mode it does not know before sending anything.
    let bad = control.ctl(&[
        "installations",
        "replace",
        "full",
        "--template",
        "py",
        "--set",
        &full_base,
        "--resource-tools",
        "sometimes",
    ]);
    assert!(!bad.status.success(), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("sometimes"),
        "{bad:?}"
    );
}
