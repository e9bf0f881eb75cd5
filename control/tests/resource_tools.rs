//! An installation's `resource_tools` over the admin API: validated at write (a bad value is
//! a 400 naming `installations.resource_tools`, and nothing is written), stored and shown,
//! carried into the snapshot's `[[servers]]` entry so proxies apply it, dropped by a replace
//! that leaves it out, and reported by the discovery view with the names proxies would give.

mod common;

use common::{installation, start, template};
use http::Method;
use serde_json::{Value, json};
use sluice_control::client::Client;

async fn send(c: &Client, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let a = c.request(method, path, body.as_ref()).await.unwrap();
    (a.status, a.body)
}

async fn get(c: &Client, path: &str) -> Value {
    let (status, body) = send(c, Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The snapshot's `resource_tools` of server `name`.
async fn snapshot_mode(proxy: &Client, name: &str) -> Value {
    let snap = get(proxy, "/v1/snapshot").await;
    let server = snap["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {snap}"))
        .clone();
    server.get("resource_tools").cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn resource_tools_is_validated_stored_shown_and_rendered_into_the_snapshot() {
    let ctl = start("resource-tools").await;
    let c = &ctl.admin;
    assert_eq!(
        send(c, Method::POST, "/v1/templates", Some(template()))
            .await
            .0,
        201
    );
    let version = get(c, "/v1/version").await["version"].clone();

    // Bad values name the field; nothing is written.
    for bad in [json!("sometimes"), json!("ON"), json!(5), json!(["on"])] {
        let mut body = installation("gh");
        body["resource_tools"] = bad.clone();
        let (status, answer) = send(c, Method::POST, "/v1/installations", Some(body)).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some("installations.resource_tools")),
            "{bad}: {answer}"
        );
    }
    assert_eq!(get(c, "/v1/version").await["version"], version);

    // Set: stored, shown, and in the proxies' snapshot.
    let mut body = installation("gh");
    body["resource_tools"] = json!("on");
    let (status, created) = send(c, Method::POST, "/v1/installations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["resource_tools"], "on");
    assert_eq!(get(c, "/v1/installations/gh").await["resource_tools"], "on");
    assert_eq!(
        get(c, "/v1/installations").await["installations"][0]["resource_tools"],
        "on"
    );
    assert_eq!(snapshot_mode(&ctl.proxy, "gh").await, "on");
    let offer = get(c, "/v1/installations/gh/tools").await;
    assert_eq!(offer["resource_tools"]["mode"], "on", "{offer}");
    assert_eq!(offer["resource_tools"]["tools"], json!([]), "{offer}");

    // Changed by a replace, then dropped by one that leaves it out (the proxies' default).
    let mut body = installation("gh");
    body["resource_tools"] = json!("off");
    let (status, _) = send(c, Method::PUT, "/v1/installations/gh", Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(snapshot_mode(&ctl.proxy, "gh").await, "off");
    let (status, replaced) = send(
        c,
        Method::PUT,
        "/v1/installations/gh",
        Some(installation("gh")),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert!(replaced.get("resource_tools").is_none(), "{replaced}");
    assert_eq!(snapshot_mode(&ctl.proxy, "gh").await, Value::Null);
    let offer = get(c, "/v1/installations/gh/tools").await;
    assert_eq!(offer["resource_tools"]["mode"], "auto", "{offer}");
}
