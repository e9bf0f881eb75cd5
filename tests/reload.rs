//! Hot reload of the real `sluice` binary (issue 12): SIGHUP and `POST /reload` / `sluice
//! reload` re-read the config file. A valid file is swapped in without dropping a request (a
//! call in flight finishes on the config it started with; calls running through several
//! reloads all succeed); connected clients hear `notifications/tools/list_changed`; a file
//! with errors is refused with every error while the running config keeps serving; keys fixed
//! at start are reported as needing a restart. Upstreams are real rmcp servers.

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use harness::prom::{scrape, sum};
use harness::rmcp_peers::{RmcpServer, ServerOpts, start_rmcp_server};
use harness::sse::{Events, get_stream};
use harness::{Raw, Sluice, poll};
use serde_json::{Value, json};

async fn rmcp(name: &str) -> RmcpServer {
    start_rmcp_server(ServerOpts {
        name: name.into(),
        stateful: true,
        filler: 0,
    })
    .await
}

fn server(name: &str, upstream: &RmcpServer) -> String {
    format!(
        "[[servers]]\nname = \"{name}\"\nurl = \"{}\"\ntimeout = \"20s\"\n\n",
        upstream.url
    )
}

fn gateway(name: &str, servers: &[&str]) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[[gateways]]\nname = \"{name}\"\nservers = [{}]\n\n",
        list.join(", ")
    )
}

/// Replaces everything after the generated `[proxy]` and `[sessions]` tables.
fn rewrite(sluice: &Sluice, body: &str) {
    let path = sluice.config_path();
    let text = std::fs::read_to_string(path).expect("read config");
    let head_end = text.find("[[servers]]").expect("the config has servers");
    std::fs::write(path, format!("{}{body}", &text[..head_end])).expect("write config");
}

async fn post_reload(sluice: &Sluice) -> (u16, Value) {
    harness::ensure_crypto();
    let resp = reqwest::Client::new()
        .post(format!("http://{}/reload", sluice.admin))
        .send()
        .await
        .expect("the admin listener answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

/// What an echo tool answered (the whole answer when it is not a text result).
async fn echoed(raw: &Raw, session: &str, tool: &str, text: &str) -> Value {
    let answer = raw.call_tool(session, tool, json!({"text": text})).await;
    match answer.pointer("/result/content/0/text") {
        Some(t) => t.clone(),
        None => answer,
    }
}

/// `sluice_config_reloads_total` of one outcome.
fn reloads(metrics: &prometheus_parse::Scrape, outcome: &str) -> f64 {
    sum(
        metrics,
        "sluice_config_reloads_total",
        &[("outcome", outcome)],
        true,
    )
}

async fn generation(sluice: &Sluice) -> Option<u64> {
    sluice.readyz().await?.1["generation"].as_u64()
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .expect("a tools list")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

async fn list_tools(raw: &Raw, session: &str) -> Vec<String> {
    let list = raw
        .post(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
            Some(session),
        )
        .await
        .message();
    tool_names(&list)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_server_announces_it_and_sessions_carry_on() {
    let alpha = rmcp("alpha").await;
    let beta = rmcp("beta").await;
    let sluice = Sluice::start(&format!(
        "{}{}",
        server("a", &alpha),
        gateway("dev", &["a"])
    ))
    .await;
    sluice.wait_tools("dev", 6).await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let mut stream = Events::new(get_stream(&sluice.url("dev"), &session, None).await);
    stream.next().await.expect("the priming event");

    rewrite(
        &sluice,
        &format!(
            "{}{}{}",
            server("a", &alpha),
            server("b", &beta),
            gateway("dev", &["a", "b"])
        ),
    );
    sluice.send_hup();
    stream
        .until("the gateway's tools/list_changed", |m| {
            m["method"] == "notifications/tools/list_changed"
        })
        .await;
    // The announcement comes after the swap: what the client lists now has the new server.
    let tools = list_tools(&raw, &session).await;
    assert!(tools.contains(&"b__echo".to_owned()), "{tools:?}");
    assert!(tools.contains(&"a__echo".to_owned()), "{tools:?}");
    // The session from before the reload reaches both servers.
    assert_eq!(echoed(&raw, &session, "a__echo", "x").await, "alpha:x");
    assert_eq!(echoed(&raw, &session, "b__echo", "y").await, "beta:y");

    assert_eq!(generation(&sluice).await, Some(1));
    let metrics = scrape(&sluice).await;
    assert_eq!(reloads(&metrics, "applied"), 1.0);
    assert_eq!(sum(&metrics, "sluice_config_generation", &[], false), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_is_refused_with_every_error_and_the_running_config_serves_on() {
    let alpha = rmcp("alpha").await;
    let good = format!("{}{}", server("a", &alpha), gateway("dev", &["a"]));
    let sluice = Sluice::start(&good).await;
    sluice.wait_tools("dev", 6).await;

    // Two problems: an unknown key and a gateway naming a server that does not exist.
    rewrite(
        &sluice,
        &format!(
            "{}{}",
            server("a", &alpha).replace("timeout", "timeuot"),
            gateway("dev", &["a", "nope"])
        ),
    );
    let (status, body) = post_reload(&sluice).await;
    assert_eq!(status, 400, "{body}");
    let errors: Vec<String> = body["errors"]
        .as_array()
        .expect("the errors")
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(errors.iter().any(|e| e.contains("timeuot")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("nope")), "{errors:?}");

    // The CLI says the same and exits 1.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["reload", "--admin"])
        .arg(sluice.admin.to_string())
        .output()
        .expect("run sluice reload");
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("timeuot") && stderr.contains("nope"),
        "{stderr}"
    );

    // Nothing changed: the old config serves.
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    assert_eq!(
        echoed(&raw, &session, "a__echo", "still").await,
        "alpha:still"
    );
    assert_eq!(generation(&sluice).await, Some(0));
    let metrics = scrape(&sluice).await;
    assert_eq!(reloads(&metrics, "invalid"), 2.0);

    // A key fixed at start is kept and reported; the rest of the file is applied.
    let moved = format!("127.0.0.1:{}", harness::free_port());
    let text = std::fs::read_to_string(sluice.config_path()).expect("read config");
    let text = text.replace(&sluice.listen.to_string(), &moved);
    std::fs::write(sluice.config_path(), text).expect("write config");
    rewrite(&sluice, &good.replace("\"dev\"", "\"renamed\""));
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["reload", "--config"])
        .arg(sluice.config_path())
        .output()
        .expect("run sluice reload");
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(cli.status.code(), Some(0), "{stdout}");
    let answer: Value = serde_json::from_str(&stdout).expect("the report is JSON");
    assert_eq!(
        answer["report"]["restart_required"],
        json!(["proxy.listen"]),
        "{answer}"
    );
    assert_eq!(answer["report"]["gateways"]["added"], json!(["renamed"]));
    assert_eq!(answer["report"]["gateways"]["removed"], json!(["dev"]));
    let renamed = Raw::new(sluice.url("renamed"));
    let session = renamed.initialize().await;
    assert_eq!(
        echoed(&renamed, &session, "a__echo", "moved").await,
        "alpha:moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_dropped_and_in_flight_calls_finish_on_their_config() {
    let alpha = rmcp("alpha").await;
    let beta = rmcp("beta").await;
    let both = format!(
        "{}{}{}",
        server("a", &alpha),
        server("b", &beta),
        gateway("dev", &["a", "b"])
    );
    let sluice = Sluice::start(&both).await;
    sluice.wait_tools("dev", 12).await;
    let raw = Arc::new(Raw::new(sluice.url("dev")));
    let session = Arc::new(raw.initialize().await);

    // A call in flight on `a` when a reload removes `a` completes with its result.
    let slow = {
        let (raw, session) = (raw.clone(), session.clone());
        tokio::spawn(async move {
            raw.call_tool(&session, "a__slow", json!({"millis": 1500}))
                .await
        })
    };
    poll(
        "the slow call to start",
        400,
        Duration::from_millis(25),
        || async { (alpha.slow_calls_started() == 1).then_some(()) },
    )
    .await;
    let only_b = format!("{}{}", server("b", &beta), gateway("dev", &["b"]));
    rewrite(&sluice, &only_b);
    let (status, body) = post_reload(&sluice).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["report"]["servers"]["removed"], json!(["a"]));
    let finished = slow.await.expect("the slow call task");
    assert!(finished.get("result").is_some(), "{finished}");
    assert_eq!(alpha.slow_calls_cancelled(), 0);
    // New calls see the new config.
    let gone = raw
        .call_tool(&session, "a__echo", json!({"text": "x"}))
        .await;
    assert!(gone.get("error").is_some(), "{gone}");

    // Calls running through a series of reloads all succeed, each with its own answer.
    let stop = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (raw, stop, ok) = (raw.clone(), stop.clone(), ok.clone());
            tokio::spawn(async move {
                let session = raw.initialize().await;
                let mut failures = Vec::new();
                for n in 0..10_000 {
                    if stop.load(Ordering::Acquire) == 1 {
                        break;
                    }
                    let text = format!("{w}-{n}");
                    let r = raw
                        .call_tool(&session, "b__echo", json!({"text": text}))
                        .await;
                    if r["result"]["content"][0]["text"] == format!("beta:{text}") {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.push(r);
                    }
                }
                failures
            })
        })
        .collect();
    poll(
        "calls under way",
        400,
        Duration::from_millis(25),
        || async { (ok.load(Ordering::Relaxed) >= 8).then_some(()) },
    )
    .await;
    for round in 0..6 {
        // Alternate between adding `a` back under another gateway and removing it.
        let body = if round % 2 == 0 {
            format!("{both}{}", gateway("extra", &["a"]))
        } else {
            only_b.clone()
        };
        rewrite(&sluice, &body);
        let before = ok.load(Ordering::Relaxed);
        let (status, answer) = post_reload(&sluice).await;
        assert_eq!(status, 200, "{answer}");
        poll(
            "calls after the reload",
            400,
            Duration::from_millis(25),
            || async { (ok.load(Ordering::Relaxed) > before + 4).then_some(()) },
        )
        .await;
    }
    stop.store(1, Ordering::Release);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.expect("worker"));
    }
    assert!(
        failures.is_empty(),
        "calls failed during reloads: {failures:?}"
    );
    assert_eq!(generation(&sluice).await, Some(7));
    eprintln!(
        "reload test: {} calls answered correctly through 6 reloads",
        ok.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_while_a_server_is_down_keeps_its_tools_failing_clearly() {
    let alpha = rmcp("alpha").await;
    let beta = rmcp("beta").await;
    let beta_addr = beta.addr;
    let both = format!(
        "{}{}{}",
        server("a", &alpha),
        server("b", &beta),
        gateway("dev", &["a", "b"])
    );
    let sluice = Sluice::start(&both).await;
    sluice.wait_tools("dev", 12).await;
    drop(beta);
    poll(
        "beta to stop listening",
        400,
        Duration::from_millis(25),
        || async {
            tokio::net::TcpStream::connect(beta_addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    // Only b's timeout changes: its catalog (fetched while it was up) stays until a fetch
    // replaces it, so its tools do not vanish.
    let b_changed = both.replacen(
        "timeout = \"20s\"\n\n[[gateways]]",
        "timeout = \"15s\"\n\n[[gateways]]",
        1,
    );
    assert_ne!(b_changed, both);
    rewrite(&sluice, &b_changed);
    let (status, body) = post_reload(&sluice).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["report"]["servers"]["changed"], json!(["b"]));
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    assert!(
        list_tools(&raw, &session)
            .await
            .contains(&"b__echo".to_owned())
    );
    let call = raw
        .call_tool(&session, "b__echo", json!({"text": "x"}))
        .await;
    assert_eq!(call["error"]["code"], -32603, "{call}");
    assert!(
        call["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("'b'"),
        "{call}"
    );
}
