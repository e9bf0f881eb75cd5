//! Gateways without prefixes (`prefix = false`) end to end: the real `sluice` binary in front
//! of two real Python `mcp` servers that offer the same tool and prompt names. A gateway that
//! picks one tool of each shows and routes the upstreams' own names; a gateway that takes both
//! servers whole withholds every name they share, and says so in the refusal, in `/readyz`, in
//! `/metrics` and in its log.

mod harness;

use harness::prom::{scrape, sum};
use harness::sdk_peers::python_server;
use harness::{ChildGuard, Raw, Sluice};
use serde_json::{Value, json};

async fn start() -> (Sluice, ChildGuard, ChildGuard) {
    let one = python_server("one", false, None).await;
    let two = python_server("two", false, None).await;
    let body = format!(
        r#"
[[servers]]
name = "one"
url = "http://{}/mcp"

[[servers]]
name = "two"
url = "http://{}/mcp"

[[gateways]]
name = "bare"
prefix = false
tools = ["two__echo", "one__add"]

[[gateways]]
name = "clash"
prefix = false
servers = ["one", "two"]
"#,
        one.addr, two.addr
    );
    let sluice = Sluice::start(&body).await;
    // Both catalogs are in once the picked tool of each server shows.
    sluice.wait_tools("bare", 2).await;
    (sluice, one, two)
}

fn names(list: &Value) -> Vec<&str> {
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn bare_names_are_shown_and_routed_and_shared_ones_withheld() {
    let (sluice, _one, _two) = start().await;

    let bare = Raw::new(sluice.url("bare"));
    let session = bare.initialize().await;
    let list = bare
        .post(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            Some(&session),
        )
        .await;
    assert_eq!(names(&list.json()), ["echo", "add"]);
    let echo = bare
        .call_tool(&session, "echo", json!({ "text": "hi" }))
        .await;
    assert_eq!(
        echo["result"]["content"][0]["text"], "two:hi",
        "routed to the server it was picked from: {echo}"
    );
    let add = bare
        .call_tool(&session, "add", json!({ "a": 2, "b": 40 }))
        .await;
    assert_eq!(add["result"]["content"][0]["text"], "42", "{add}");
    let prefixed = bare
        .call_tool(&session, "two__echo", json!({ "text": "hi" }))
        .await;
    assert_eq!(prefixed["error"]["code"], -32602, "{prefixed}");

    let clash = Raw::new(sluice.url("clash"));
    let session = clash.initialize().await;
    let list = clash
        .post(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            Some(&session),
        )
        .await;
    assert!(
        names(&list.json()).is_empty(),
        "both servers offer every tool: {}",
        list.body
    );
    let refused = clash
        .call_tool(&session, "echo", json!({ "text": "hi" }))
        .await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(
        refused["error"]["message"],
        "tool 'echo' of gateway 'clash' is withheld: servers 'one', 'two' all offer it, and the gateway shows names without a server prefix (prefix = false), so the call could reach either"
    );
    // Resource URIs differ between the servers, so they are served and routed by URI.
    let read = clash
        .post(
            r#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"note://two/readme"}}"#,
            Some(&session),
        )
        .await;
    assert_eq!(
        read.message()["result"]["contents"][0]["text"],
        "readme of two",
        "{}",
        read.body
    );

    let (_, ready) = sluice.readyz().await.expect("readyz");
    let conflicts = ready["gateways"]["clash"]["conflicts"]
        .as_array()
        .expect("conflicts listed")
        .clone();
    assert!(
        conflicts.contains(&json!({ "kind": "tool", "name": "echo", "servers": ["one", "two"] })),
        "{conflicts:?}"
    );
    assert!(
        conflicts
            .contains(&json!({ "kind": "prompt", "name": "greet", "servers": ["one", "two"] })),
        "{conflicts:?}"
    );
    assert_eq!(ready["gateways"]["bare"]["conflicts"], json!([]));

    let m = scrape(&sluice).await;
    let gauge = |g: &str| sum(&m, "sluice_catalog_conflicts", &[("gateway", g)], true);
    assert_eq!(gauge("clash"), conflicts.len() as f64);
    assert_eq!(gauge("bare"), 0.0);

    let log = sluice.log();
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("gateway 'clash'")
            && l.contains("'one', 'two'")
            && l.contains("tool 'echo'")),
        "{log}"
    );
}
