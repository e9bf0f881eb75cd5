//! Bounded concurrency against a real rmcp upstream: a request beyond `servers.max_concurrent`
//! or `gateways.limits.concurrent` is refused at once with 503, `Retry-After` and a JSON-RPC
//! error naming the bound, counted in `sluice_overloaded_total`; once the request holding the
//! slot ends, the next one is served.

mod harness;

use std::time::Duration;

use harness::prom::{scrape, sum};
use harness::rmcp_peers::{ServerOpts, start_rmcp_server};
use harness::{Raw, Sluice, poll};
use serde_json::json;

const SLOW_CALL: &str = r#"{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"up__slow","arguments":{"millis":60000}}}"#;
const ECHO_CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"up__echo","arguments":{"text":"hi"}}}"#;

/// Holds one slot with a slow call until the returned task is aborted (which cancels it).
async fn hold_a_slot(
    sluice: &Sluice,
    session: &str,
    started: impl Fn() -> usize,
    before: usize,
) -> tokio::task::JoinHandle<()> {
    let (url, session) = (sluice.url("dev"), session.to_owned());
    let task = tokio::spawn(async move {
        let _ = Raw::new(url).post(SLOW_CALL, Some(&session)).await;
    });
    poll(
        "the slow call to start",
        400,
        Duration::from_millis(25),
        || async { (started() > before).then_some(()) },
    )
    .await;
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_a_bound_are_refused_at_once_and_served_after() {
    let upstream = start_rmcp_server(ServerOpts {
        name: "up".into(),
        stateful: false,
        filler: 0,
    })
    .await;
    for (config, scope, name, key) in [
        (
            format!(
                "[[servers]]\nname = \"up\"\nurl = \"{}\"\nmax_concurrent = 1\n\n[[gateways]]\nname = \"dev\"\nservers = [\"up\"]\n",
                upstream.url
            ),
            "server",
            "up",
            "servers.max_concurrent",
        ),
        (
            format!(
                "[[servers]]\nname = \"up\"\nurl = \"{}\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"up\"]\n[gateways.limits]\nconcurrent = 1\n",
                upstream.url
            ),
            "gateway",
            "dev",
            "gateways.limits.concurrent",
        ),
    ] {
        let sluice = Sluice::start(&config).await;
        sluice.wait_tools("dev", 6).await;
        let raw = Raw::new(sluice.url("dev"));
        let session = raw.initialize().await;
        let before = upstream.slow_calls_started();
        let holder = hold_a_slot(&sluice, &session, || upstream.slow_calls_started(), before).await;

        let refused = raw.post(ECHO_CALL, Some(&session)).await;
        assert_eq!(refused.status, 503, "{scope}: {}", refused.body);
        assert_eq!(
            refused
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        assert_eq!(refused.error_code(), Some(-32030), "{}", refused.body);
        assert!(refused.error_message().contains(key), "{}", refused.body);
        assert_eq!(refused.json()["id"], json!(2), "{}", refused.body);
        let s = scrape(&sluice).await;
        assert_eq!(
            sum(
                &s,
                "sluice_overloaded_total",
                &[("scope", scope), ("name", name)],
                true
            ),
            1.0
        );

        // The holder leaves (its upstream call is cancelled): the slot comes back.
        holder.abort();
        let served = poll(
            "a call to be served again",
            400,
            Duration::from_millis(25),
            || {
                let raw = &raw;
                let session = &session;
                async move {
                    let r = raw.post(ECHO_CALL, Some(session)).await;
                    (r.status == 200).then_some(r)
                }
            },
        )
        .await;
        assert_eq!(
            served.message()["result"]["content"][0]["text"],
            "up:hi",
            "{}",
            served.body
        );
    }
}
