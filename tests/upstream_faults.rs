//! An upstream that goes away and comes back, with a real Python SDK server killed and
//! restarted on its port: its calls fail with clear JSON-RPC errors, after `eject_after`
//! failures in a row it is ejected (calls refused at once, saying when to retry, counted in
//! `sluice_upstream_ejections_total` and `sluice_upstream_ejected`), and once the ejection is
//! over a probe that succeeds puts it back in service.

mod harness;

use std::time::{Duration, Instant};

use harness::prom::{scrape, sum};
use harness::sdk_peers::python_server;
use harness::{Raw, Sluice, free_port, poll};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_is_ejected_then_probed_back_into_service() {
    let port = free_port();
    let mut upstream = python_server("a", false, Some(port)).await;
    let sluice = Sluice::start(&format!(
        "[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:{port}/mcp\"\ntimeout = \"5s\"\neject_after = 2\neject_for = \"1s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"a\"]\n"
    ))
    .await;
    poll("the catalog", 600, Duration::from_millis(50), || async {
        let (_, body) = sluice.readyz().await?;
        (body["gateways"]["dev"]["tools"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let echo = |text: &str| {
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "a__echo", "arguments": {"text": text}}})
        .to_string()
    };
    let ok = raw.post(&echo("up"), Some(&session)).await.message();
    assert_eq!(ok["result"]["content"][0]["text"], "a:up", "{ok}");

    upstream.kill();
    for attempt in 0..2 {
        let failed = raw.post(&echo("down"), Some(&session)).await;
        assert_eq!(failed.error_code(), Some(-32603), "{}", failed.body);
        let message = failed.error_message();
        assert!(
            message.contains("upstream server 'a'"),
            "{attempt}: {message}"
        );
        assert!(!message.contains("ejected"), "{attempt}: {message}");
    }
    let started = Instant::now();
    let ejected = raw.post(&echo("down"), Some(&session)).await;
    assert_eq!(ejected.error_code(), Some(-32603), "{}", ejected.body);
    assert!(
        ejected
            .error_message()
            .contains("is ejected after 2 consecutive failures; retry after"),
        "{}",
        ejected.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused without trying the server"
    );
    let s = scrape(&sluice).await;
    assert_eq!(
        sum(
            &s,
            "sluice_upstream_ejections_total",
            &[("server", "a")],
            true
        ),
        1.0
    );
    assert_eq!(
        sum(&s, "sluice_upstream_ejected", &[("server", "a")], true),
        1.0
    );

    let _back = python_server("a", false, Some(port)).await;
    let served = poll("a probe to succeed", 200, Duration::from_millis(50), || {
        let (raw, session) = (&raw, &session);
        async move {
            let r = raw.post(&echo("back"), Some(session)).await;
            (r.message()["result"]["content"][0]["text"] == "a:back").then_some(r)
        }
    })
    .await;
    assert_eq!(served.status, 200);
    let s = scrape(&sluice).await;
    assert_eq!(
        sum(&s, "sluice_upstream_ejected", &[("server", "a")], true),
        0.0
    );
    assert_eq!(
        sum(
            &s,
            "sluice_upstream_ejections_total",
            &[("server", "a")],
            true
        ),
        1.0,
        "back in service without another ejection"
    );
}
