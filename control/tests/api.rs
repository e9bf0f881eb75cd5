//! The admin API over real HTTP on loopback, with a real sled directory.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{SECRET, installation, start, template};
use http::Method;
use serde_json::{Value, json};
use sluice_control::client::Client;

async fn post(c: &Client, path: &str, body: Value) -> (u16, Value) {
    let a = c.request(Method::POST, path, Some(&body)).await.unwrap();
    (a.status, a.body)
}

async fn get(c: &Client, path: &str) -> (u16, Value) {
    let a = c.request(Method::GET, path, None).await.unwrap();
    (a.status, a.body)
}

#[tokio::test]
async fn requests_need_a_valid_token_and_proxy_tokens_reach_only_the_snapshot() {
    let ctl = start("auth").await;
    let none = Client::new(&ctl.url, None).unwrap();
    let wrong = Client::new(&ctl.url, Some("admin-token-012345678X".into())).unwrap();
    for c in [&none, &wrong] {
        let (status, body) = get(c, "/v1/templates").await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "unauthorized");
    }
    assert_eq!(get(&none, "/healthz").await.0, 200);
    assert_eq!(get(&ctl.proxy, "/v1/templates").await.0, 403);
    assert_eq!(get(&ctl.admin, "/v1/snapshot").await.0, 403);
    assert_eq!(get(&ctl.proxy, "/v1/snapshot").await.0, 200);
    let (status, body) = get(&ctl.admin, "/v1/nope").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let a = ctl
        .admin
        .request(Method::PATCH, "/v1/templates", None)
        .await
        .unwrap();
    assert_eq!(a.status, 405);
}

#[tokio::test]
async fn invalid_requests_name_the_field_and_get_400_404_409_or_413() {
    let ctl = start("validation").await;
    let c = &ctl.admin;
    let mut t = template();
    t["url"] = json!("{host}/mcp");
    let (status, body) = post(c, "/v1/templates", t).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("templates.url")),
        "{body}"
    );
    let (status, body) = post(c, "/v1/templates", json!({"name": "x"})).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("templates.transport")),
        "{body}"
    );
    let (status, body) = post(
        c,
        "/v1/templates",
        json!({"name": "x", "transport": "http", "ur": "y"}),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("templates.ur")),
        "{body}"
    );
    assert_eq!(post(c, "/v1/templates", template()).await.0, 201);
    assert_eq!(post(c, "/v1/templates", template()).await.0, 409);
    let (status, body) = post(
        c,
        "/v1/installations",
        json!({"name": "gh", "template": "github"}),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("installations.values.api_key"))
    );
    let bad_url =
        json!({"name": "gh", "template": "github", "values": {"api_key": "k", "base": "ftp://x"}});
    let (status, body) = post(c, "/v1/installations", bad_url).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("installations.values.base"))
    );
    let (status, body) = post(
        c,
        "/v1/installations",
        json!({"name": "Bad_Name", "template": "github"}),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("installations.name"))
    );
    // What the proxy's own loader refuses is refused here, without echoing the secret.
    let header_breaking =
        json!({"name": "gh", "template": "github", "values": {"api_key": "a\r\nX-Evil: 1"}});
    let (status, body) = post(c, "/v1/installations", header_breaking).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("installations.credential")),
        "{body}"
    );
    assert!(!body.to_string().contains("X-Evil"), "{body}");
    assert_eq!(get(c, "/v1/installations/gh").await.0, 404);
    let (status, body) = post(
        c,
        "/v1/gateways",
        json!({"name": "team", "servers": ["gh"]}),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("gateways.servers[0]"))
    );
    let a = c
        .request(Method::PUT, "/v1/templates/other", Some(&template()))
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.body["field"].as_str()),
        (400, Some("templates.name"))
    );
    // A gateway the proxy's loader would refuse (nothing to show) is refused here.
    post(c, "/v1/installations", installation("gh")).await;
    post(
        c,
        "/v1/gateways",
        json!({"name": "team", "servers": ["gh"]}),
    )
    .await;
    let last = c
        .request(Method::DELETE, "/v1/gateways/team/assignments/gh", None)
        .await
        .unwrap();
    assert_eq!(
        (last.status, last.body["error"].as_str()),
        (400, Some("invalid")),
        "{}",
        last.body
    );
    let huge = json!({"name": "x", "transport": "http", "description": "x".repeat(2 << 20)});
    assert_eq!(post(c, "/v1/templates", huge).await.0, 413);
    // Nothing refused was written.
    assert_eq!(get(c, "/v1/version").await.1["version"], 3);
}

#[tokio::test]
async fn secrets_never_appear_in_responses_or_the_audit_log() {
    let ctl = start("secrets").await;
    let c = &ctl.admin;
    post(c, "/v1/templates", template()).await;
    let (status, created) = post(c, "/v1/installations", installation("gh")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["values"]["api_key"], "<secret>");
    assert_eq!(created["status"]["state"], "configured");
    let replaced = c
        .request(Method::PUT, "/v1/installations/gh", Some(&json!({"name": "gh", "template": "github", "values": {"api_key": "<secret>", "base": "http://127.0.0.1:7"}})))
        .await
        .unwrap();
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let mut seen = String::new();
    for path in [
        "/v1/installations",
        "/v1/installations/gh",
        "/v1/audit",
        "/v1/templates",
    ] {
        seen.push_str(&get(c, path).await.1.to_string());
    }
    seen.push_str(&created.to_string());
    seen.push_str(&replaced.body.to_string());
    assert!(!seen.contains(SECRET), "a secret leaked: {seen}");
    // Only the proxies' snapshot carries it, and the kept secret survived the replace.
    let snap = get(&ctl.proxy, "/v1/snapshot").await.1;
    assert_eq!(
        snap["servers"][0]["credential"]["value"],
        format!("Bearer {SECRET}")
    );
    assert_eq!(snap["servers"][0]["url"], "http://127.0.0.1:7/mcp");
}

#[tokio::test]
async fn a_snapshot_long_poll_answers_promptly_after_a_write_and_304_when_idle() {
    let ctl = start("longpoll").await;
    post(&ctl.admin, "/v1/templates", template()).await;
    let idle = Instant::now();
    let a = ctl
        .proxy
        .request(Method::GET, "/v1/snapshot?after=1&wait=1", None)
        .await
        .unwrap();
    assert_eq!(a.status, 304);
    assert!(
        idle.elapsed() >= Duration::from_millis(900),
        "{:?}",
        idle.elapsed()
    );
    let mut latencies = Vec::new();
    for n in 0..20u64 {
        let version = 1 + n;
        let proxy = ctl.proxy.clone();
        let poll = tokio::spawn(async move {
            let a = proxy
                .request(
                    Method::GET,
                    &format!("/v1/snapshot?after={version}&wait=30"),
                    None,
                )
                .await
                .unwrap();
            (a, Instant::now())
        });
        // Measure the wake-up of a parked poll, not a poll that arrives after the write.
        for attempt in 0.. {
            if ctl.running.parked_polls() == 1 {
                break;
            }
            assert!(attempt < 2000, "the long-poll never parked");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = Instant::now();
        let (status, _) = post(
            &ctl.admin,
            "/v1/installations",
            installation(&format!("gh{n}")),
        )
        .await;
        assert_eq!(status, 201);
        let (answer, arrived) = poll.await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["version"], version + 1);
        assert_eq!(
            answer.body["servers"].as_array().unwrap().len() as u64,
            n + 1
        );
        latencies.push(arrived.duration_since(started));
    }
    latencies.sort();
    println!(
        "write -> snapshot latency over {} writes: median {:?}, max {:?} (request start to snapshot received)",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(latencies[latencies.len() - 1] < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admin_writes_get_unique_monotonic_versions() {
    let ctl = Arc::new(start("concurrent").await);
    const CLIENTS: u64 = 8;
    const WRITES: u64 = 40;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let ctl = ctl.clone();
            tokio::spawn(async move {
                let mut versions = Vec::new();
                for w in 0..WRITES {
                    let name = format!("t{c}-{w}");
                    let body =
                        json!({"name": name, "transport": "http", "url": "http://127.0.0.1:1/mcp"});
                    let (status, body) = post(&ctl.admin, "/v1/templates", body).await;
                    assert_eq!(status, 201, "{body}");
                    versions.push(body["version"].as_u64().unwrap());
                }
                versions
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        let versions = t.await.unwrap();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        all.extend(versions);
    }
    let elapsed = started.elapsed();
    all.sort();
    let expected: Vec<u64> = (1..=CLIENTS * WRITES).collect();
    assert_eq!(all, expected, "versions are unique and dense");
    let audit = get(&ctl.admin, "/v1/audit?limit=1000").await.1;
    assert_eq!(
        audit["entries"].as_array().unwrap().len() as u64,
        CLIENTS * WRITES
    );
    println!(
        "admin API: {} flushed writes from {CLIENTS} concurrent clients in {elapsed:?} = {:.0} writes/s",
        CLIENTS * WRITES,
        (CLIENTS * WRITES) as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test]
async fn a_proxy_token_scoped_to_gateways_gets_only_their_servers_and_credentials() {
    let ctl = start("scoped").await;
    let c = &ctl.admin;
    post(c, "/v1/templates", template()).await;
    assert_eq!(
        post(c, "/v1/installations", installation("gh")).await.0,
        201
    );
    assert_eq!(
        post(c, "/v1/installations", installation("other")).await.0,
        201
    );
    let team = json!({"name": "team", "servers": ["gh"]});
    assert_eq!(post(c, "/v1/gateways", team).await.0, 201);
    let ops = json!({"name": "ops", "servers": ["other"], "tools": ["gh__search_code"]});
    assert_eq!(post(c, "/v1/gateways", ops).await.0, 201);

    let all = get(&ctl.proxy, "/v1/snapshot").await.1;
    assert_eq!(all["servers"].as_array().map(Vec::len), Some(2), "{all}");
    assert_eq!(all["gateways"].as_array().map(Vec::len), Some(2), "{all}");
    let (status, scoped) = get(&ctl.scoped, "/v1/snapshot").await;
    assert_eq!(status, 200, "{scoped}");
    let names = |key: &str| -> Vec<String> {
        scoped[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(names("gateways"), ["team"]);
    assert_eq!(
        names("servers"),
        ["gh"],
        "no other server, nor its credential"
    );
    assert_eq!(scoped["version"], all["version"]);
}

#[tokio::test]
async fn an_installation_may_choose_only_a_runtime_this_control_runs() {
    // Default `[runtime]`: the local backend only.
    let ctl = start("runtime-choice").await;
    let stdio = json!({"name": "tool", "transport": "stdio",
        "command": ["/nonexistent/sluice-test-server"]});
    assert_eq!(post(&ctl.admin, "/v1/templates", stdio).await.0, 201);
    for (runtime, says) in [
        ("kubernetes", "runs no kubernetes backend (it runs: local)"),
        ("docker", "\"docker\" is not a runtime"),
    ] {
        let body = json!({"name": "t1", "template": "tool", "runtime": runtime});
        let (status, answer) = post(&ctl.admin, "/v1/installations", body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["field"], "installations.runtime", "{answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{answer}");
    }
    assert_eq!(get(&ctl.admin, "/v1/installations/t1").await.0, 404);

    // A remote (http) installation runs nowhere: naming a runtime is refused too.
    assert_eq!(post(&ctl.admin, "/v1/templates", template()).await.0, 201);
    let mut remote = installation("gh");
    remote["runtime"] = json!("local");
    let (status, answer) = post(&ctl.admin, "/v1/installations", remote).await;
    assert_eq!(
        (status, &answer["field"]),
        (400, &json!("installations.runtime"))
    );

    // Named or defaulted, the list says where each one runs.
    let named = json!({"name": "t1", "template": "tool", "runtime": "local"});
    let (status, created) = post(&ctl.admin, "/v1/installations", named).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["runtime"], "local");
    let defaulted = json!({"name": "t2", "template": "tool"});
    let (status, created) = post(&ctl.admin, "/v1/installations", defaulted).await;
    assert_eq!(status, 201, "{created}");
    assert!(created.get("runtime").is_none(), "{created}");
    let (_, list) = get(&ctl.admin, "/v1/installations").await;
    for i in list["installations"].as_array().unwrap() {
        assert_eq!(i["status"]["runtime"], "local", "{i}");
    }
}
