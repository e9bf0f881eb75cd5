//! Per-caller secrets over the admin API (real HTTP on loopback, a real sled directory): set,
//! list and remove one caller's secret; validation names the field; every write is one
//! version and one audit entry; no answer but the proxies' snapshot holds a secret, and a
//! scoped proxy gets only the callers of the installations its gateways show.

mod common;

use common::start;
use http::Method;
use serde_json::{Value, json};
use sluice_control::client::Client;

const ALICE_KEY: &str = "alice-per-caller-key-51e0";
const BOB_KEY: &str = "bob-per-caller-key-a7d2";
const ISSUER: &str = "https://idp.example/realms/a b?x=1&y";

async fn call(c: &Client, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let a = c.request(method, path, body.as_ref()).await.unwrap();
    (a.status, a.body)
}

fn personal() -> Value {
    json!({
        "name": "personal",
        "transport": "http",
        "url": "http://127.0.0.1:9/mcp",
        "credential": {"type": "per_caller", "header": "X-Api-Key", "value": "key={secret}"}
    })
}

fn encoded(issuer: &str, subject: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("issuer", issuer)
        .append_pair("subject", subject)
        .finish()
}

async fn setup(name: &str) -> common::Control {
    let ctl = start(name).await;
    let c = &ctl.admin;
    assert_eq!(
        call(c, Method::POST, "/v1/templates", Some(personal()))
            .await
            .0,
        201
    );
    for inst in ["mine", "other"] {
        let body = json!({"name": inst, "template": "personal"});
        let (status, b) = call(c, Method::POST, "/v1/installations", Some(body)).await;
        assert_eq!(status, 201, "{b}");
    }
    ctl
}

#[tokio::test]
async fn a_callers_secret_is_set_listed_and_removed_and_only_the_snapshot_holds_it() {
    let ctl = setup("callers-api").await;
    let c = &ctl.admin;
    let path = "/v1/installations/mine/callers";
    let (status, set) = call(
        c,
        Method::PUT,
        path,
        Some(json!({"subject": "alice", "secret": ALICE_KEY})),
    )
    .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["version"], 4);
    assert_eq!(
        (set["issuer"].as_str(), set["subject"].as_str()),
        (Some(""), Some("alice"))
    );
    let body = json!({"issuer": ISSUER, "subject": "bob", "secret": BOB_KEY});
    let (status, set_bob) = call(c, Method::PUT, path, Some(body)).await;
    assert_eq!(status, 200, "{set_bob}");

    let (status, list) = call(c, Method::GET, path, None).await;
    assert_eq!(status, 200);
    let who: Vec<(String, String)> = list["callers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["issuer"].as_str().unwrap().into(),
                c["subject"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [("".into(), "alice".into()), (ISSUER.into(), "bob".into())]
    );
    assert_eq!(
        call(c, Method::GET, "/v1/installations/other/callers", None)
            .await
            .1["callers"],
        json!([])
    );

    // Only the proxies' snapshot carries the secrets, on the right server.
    let snap = call(&ctl.proxy, Method::GET, "/v1/snapshot", None).await.1;
    let server = |name: &str| {
        snap["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        server("mine")["callers"],
        json!([{"subject": "alice", "secret": ALICE_KEY},
               {"issuer": ISSUER, "subject": "bob", "secret": BOB_KEY}])
    );
    assert!(server("other").get("callers").is_none());

    // The issuer is a URL with '?', '&' and a space: percent-encoded in the query.
    let gone = format!("{path}?{}", encoded(ISSUER, "bob"));
    let (status, removed) = call(c, Method::DELETE, &gone, None).await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["deleted"], true);
    let (status, again) = call(c, Method::DELETE, &gone, None).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (404, Some("not_found")),
        "{again}"
    );
    let (_, list) = call(c, Method::GET, path, None).await;
    assert_eq!(list["callers"].as_array().unwrap().len(), 1);

    let (_, audit) = call(c, Method::GET, "/v1/audit?after=3", None).await;
    let entries: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let caller = |a: &str| (a.to_owned(), "caller_secret".to_owned());
    assert_eq!(
        entries,
        [caller("create"), caller("create"), caller("delete")]
    );

    let mut seen = [set, set_bob, list, removed, audit]
        .map(|v| v.to_string())
        .concat();
    for listing in ["/v1/installations", "/v1/installations/mine"] {
        seen.push_str(&call(c, Method::GET, listing, None).await.1.to_string());
    }
    assert!(
        !seen.contains(ALICE_KEY) && !seen.contains(BOB_KEY),
        "{seen}"
    );

    // Deleting the installation deletes its callers' secrets: a new one starts with none.
    let (status, _) = call(c, Method::DELETE, "/v1/installations/mine", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        call(c, Method::GET, path, None).await.0,
        404,
        "no installation, no callers"
    );
    let body = json!({"name": "mine", "template": "personal"});
    call(c, Method::POST, "/v1/installations", Some(body)).await;
    assert_eq!(
        call(c, Method::GET, path, None).await.1["callers"],
        json!([])
    );
}

#[tokio::test]
async fn bad_caller_requests_name_the_field_and_write_nothing() {
    let ctl = setup("callers-invalid").await;
    let c = &ctl.admin;
    let path = "/v1/installations/mine/callers";
    let version = call(c, Method::GET, "/v1/version", None).await.1["version"].clone();
    let cases = [
        (json!({"subject": "", "secret": "k"}), "callers.subject"),
        (json!({"secret": "k"}), "callers.subject"),
        (json!({"subject": "alice"}), "callers.secret"),
        (
            json!({"subject": "alice", "secret": "a\r\nX-Evil: 1"}),
            "callers.secret",
        ),
        (
            json!({"subject": "alice", "secret": "k", "token": "x"}),
            "callers.token",
        ),
        (
            json!({"issuer": "a\nb", "subject": "alice", "secret": "k"}),
            "callers.issuer",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = call(c, Method::PUT, path, Some(body.clone())).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(field)),
            "{body}: {answer}"
        );
        assert!(!answer.to_string().contains("X-Evil"), "{answer}");
    }
    // An installation whose template takes no per-caller secrets.
    let plain = json!({"name": "plain", "transport": "http", "url": "http://127.0.0.1:9/mcp"});
    call(c, Method::POST, "/v1/templates", Some(plain)).await;
    call(
        c,
        Method::POST,
        "/v1/installations",
        Some(json!({"name": "shared", "template": "plain"})),
    )
    .await;
    let version = version.as_u64().unwrap() + 2;
    let (status, answer) = call(
        c,
        Method::PUT,
        "/v1/installations/shared/callers",
        Some(json!({"subject": "alice", "secret": "k"})),
    )
    .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("callers")),
        "{answer}"
    );
    let (status, _) = call(
        c,
        Method::PUT,
        "/v1/installations/nope/callers",
        Some(json!({"subject": "alice", "secret": "k"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, answer) = call(c, Method::DELETE, &format!("{path}?who=alice"), None).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("callers.who"))
    );
    let (status, answer) = call(c, Method::DELETE, path, None).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("callers.subject"))
    );
    // A per_caller template without its {secret} slot is refused with the field.
    let mut t = personal();
    t["name"] = json!("broken");
    t["credential"]["value"] = json!("Bearer fixed");
    let (status, answer) = call(c, Method::POST, "/v1/templates", Some(t)).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("templates.credential.value"))
    );
    assert_eq!(
        call(c, Method::GET, "/v1/version", None).await.1["version"],
        version
    );
    // A proxy token cannot set one.
    let (status, _) = call(
        &ctl.proxy,
        Method::PUT,
        path,
        Some(json!({"subject": "alice", "secret": "k"})),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_scoped_proxy_gets_the_callers_of_its_gateways_servers_only() {
    let ctl = setup("callers-scoped").await;
    let c = &ctl.admin;
    for (inst, secret) in [("mine", ALICE_KEY), ("other", BOB_KEY)] {
        let (status, b) = call(
            c,
            Method::PUT,
            &format!("/v1/installations/{inst}/callers"),
            Some(json!({"subject": "alice", "secret": secret})),
        )
        .await;
        assert_eq!(status, 200, "{b}");
    }
    let team = json!({"name": "team", "servers": ["mine"]});
    assert_eq!(
        call(c, Method::POST, "/v1/gateways", Some(team)).await.0,
        201
    );
    let ops = json!({"name": "ops", "servers": ["other"]});
    assert_eq!(
        call(c, Method::POST, "/v1/gateways", Some(ops)).await.0,
        201
    );
    let (status, scoped) = call(&ctl.scoped, Method::GET, "/v1/snapshot", None).await;
    assert_eq!(status, 200);
    let text = scoped.to_string();
    assert!(text.contains(ALICE_KEY), "{text}");
    assert!(
        !text.contains(BOB_KEY),
        "another gateway's caller secret leaked: {text}"
    );
}
