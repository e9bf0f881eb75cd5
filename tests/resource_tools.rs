//! Resources as tools end to end: the real `sluice` binary in front of real Python `mcp`
//! servers that offer only resources (`server.py --resources-only`: a text resource, a binary
//! one, and a second text one named like the first but for case). Their resources become
//! `read_*` tools that gateways list, assign one by one, search in lazy mode, and call; the
//! calls reach the upstream as `resources/read` (its answer as JSON from a stateless server,
//! as SSE from a stateful one) and come back as embedded resources, also to the official
//! Python SDK client in both protocol eras.

mod harness;

use std::time::Duration;

use harness::sdk_peers::{SdkClient, python_server_with, run_client_with};
use harness::{ChildGuard, Raw, Sluice, poll};
use serde_json::{Value, json};

/// The tools one resources-only server gets, in its resources' order.
const READS: [&str; 3] = ["read_user_guide", "read_logo_png", "read_user_guide_2"];

/// `docs` (stateless, JSON answers) and `live` (stateful, SSE answers), auto; `quiet` is
/// `docs` again with `resource_tools = "off"`.
async fn start() -> (Sluice, ChildGuard, ChildGuard) {
    let docs = python_server_with("docs", false, None, &["--resources-only"]).await;
    let live = python_server_with("live", true, None, &["--resources-only"]).await;
    let body = format!(
        r#"
[[servers]]
name = "docs"
url = "http://{docs}/mcp"

[[servers]]
name = "live"
url = "http://{live}/mcp"
resource_tools = "auto"

[[servers]]
name = "quiet"
url = "http://{docs}/mcp"
resource_tools = "off"

[[gateways]]
name = "all"
servers = ["docs", "live", "quiet"]

[[gateways]]
name = "one"
tools = ["docs__read_user_guide"]

[[gateways]]
name = "off"
servers = ["quiet"]

[[gateways]]
name = "lazy"
servers = ["docs"]
tools_mode = "lazy"
"#,
        docs = docs.addr,
        live = live.addr,
    );
    let sluice = Sluice::start(&body).await;
    sluice.wait_tools("all", 6).await;
    // `quiet` adds no tools, so wait for its catalog by its resources.
    let off = Raw::new(sluice.url("off"));
    let session = off.initialize().await;
    poll(
        "quiet's resources",
        600,
        Duration::from_millis(50),
        || async {
            let listed = list(&off, &session, "resources/list").await;
            (listed["resources"].as_array()?.len() == 3).then_some(())
        },
    )
    .await;
    (sluice, docs, live)
}

async fn list(raw: &Raw, session: &str, method: &str) -> Value {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method });
    let r = raw.post(&body.to_string(), Some(session)).await;
    assert_eq!(r.status, 200, "{method}: {}", r.body);
    r.message()["result"].clone()
}

fn names(listed: &Value) -> Vec<String> {
    listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect()
}

fn shown(server: &str) -> Vec<String> {
    READS.iter().map(|t| format!("{server}__{t}")).collect()
}

#[tokio::test]
async fn resources_only_servers_get_read_tools_that_return_embedded_resources() {
    let (sluice, _docs, _live) = start().await;
    let all = Raw::new(sluice.url("all"));
    let session = all.initialize().await;

    let listed = list(&all, &session, "tools/list").await;
    let expected: Vec<String> = [shown("docs"), shown("live")].concat();
    assert_eq!(names(&listed), expected, "quiet (off) adds none");
    let guide = &listed["tools"][0];
    assert_eq!(
        guide["description"],
        "Read the resource docs://guide: How to use the docs."
    );
    assert_eq!(
        guide["inputSchema"],
        json!({ "type": "object", "properties": {} })
    );
    assert_eq!(guide["annotations"]["readOnlyHint"], true);

    // A stateless upstream answers resources/read as JSON.
    let text = all
        .call_tool(&session, "docs__read_user_guide", json!({}))
        .await;
    assert_eq!(text["id"], 7);
    assert_eq!(
        text["result"],
        json!({
            "content": [{ "type": "resource", "resource": {
                "uri": "docs://guide", "mimeType": "text/plain", "text": "guide of docs",
            }}],
            "isError": false,
        }),
        "{text}"
    );
    let second = all
        .call_tool(&session, "docs__read_user_guide_2", json!({}))
        .await;
    assert_eq!(
        second["result"]["content"][0]["resource"]["text"],
        "guide v2 of docs"
    );

    // A stateful one answers on an event stream: the response event is converted.
    let r = all
        .post(
            &json!({ "jsonrpc": "2.0", "id": "b", "method": "tools/call",
                     "params": { "name": "live__read_logo_png", "arguments": {} } })
            .to_string(),
            Some(&session),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "the stateful upstream streams: {:?}",
        r.headers
    );
    let blob = r.message();
    assert_eq!(blob["id"], "b");
    assert_eq!(
        blob["result"]["content"],
        json!([{ "type": "resource", "resource": {
            "uri": "docs://logo.png", "mimeType": "image/png", "blob": "iVBORw0KGgpsaXZl",
        }}]),
        "{blob}"
    );
    assert_eq!(blob["result"]["isError"], false);

    // The resources themselves are still listed and readable.
    let resources = list(&all, &session, "resources/list").await;
    assert!(
        resources["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["uri"] == "docs://logo.png"),
        "{resources}"
    );
}

#[tokio::test]
async fn read_tools_are_assignable_one_by_one_switchable_off_and_searchable() {
    let (sluice, _docs, _live) = start().await;

    let one = Raw::new(sluice.url("one"));
    let session = one.initialize().await;
    assert_eq!(
        names(&list(&one, &session, "tools/list").await),
        ["docs__read_user_guide"]
    );
    let called = one
        .call_tool(&session, "docs__read_user_guide", json!({}))
        .await;
    assert_eq!(
        called["result"]["content"][0]["resource"]["text"],
        "guide of docs"
    );
    let refused = one
        .call_tool(&session, "docs__read_logo_png", json!({}))
        .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("docs__read_logo_png")),
        "a read tool the gateway does not assign is unknown there: {refused}"
    );

    let off = Raw::new(sluice.url("off"));
    let session = off.initialize().await;
    assert_eq!(
        names(&list(&off, &session, "tools/list").await),
        Vec::<String>::new()
    );

    // Lazy mode: found by search_tools, run by run_tool.
    let lazy = Raw::new(sluice.url("lazy"));
    let session = lazy.initialize().await;
    let found = lazy
        .call_tool(&session, "search_tools", json!({ "query": "guide" }))
        .await;
    let hits: Vec<&str> = found["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("search result: {found}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(hits.contains(&"docs__read_user_guide"), "{found}");
    let ran = lazy
        .call_tool(
            &session,
            "run_tool",
            json!({ "name": "docs__read_user_guide", "arguments": {} }),
        )
        .await;
    assert_eq!(
        ran["result"]["content"][0]["resource"]["text"], "guide of docs",
        "{ran}"
    );
}

#[tokio::test]
async fn the_python_sdk_client_calls_a_read_tool_in_both_eras() {
    let (sluice, _docs, _live) = start().await;
    let url = sluice.url("all");
    for (tool, mode, text) in [
        ("live__read_user_guide", "legacy", "guide of live"),
        ("docs__read_user_guide", "2026-07-28", "guide of docs"),
        ("live__read_user_guide_2", "2026-07-28", "guide v2 of live"),
    ] {
        let out = run_client_with(
            SdkClient::Python,
            &url,
            Some((tool, &json!({}))),
            &["--mode", mode],
        )
        .await;
        let tools: Vec<&str> = out["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(tools.contains(&tool), "{mode}: {out}");
        let call = &out["call"];
        assert_eq!(call["isError"], false, "{mode}: {out}");
        assert_eq!(call["content"][0]["type"], "resource", "{mode}: {out}");
        assert_eq!(
            call["content"][0]["resource"]["text"], text,
            "{mode}: {out}"
        );
    }
}
