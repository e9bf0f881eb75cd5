//! The local backend with real processes: the official Python SDK's servers as a stdio
//! installation (through the in-process bridge) and as an HTTP installation on an assigned
//! port. `scripts/setup.sh` installs the SDK into `.venv`. Waits are bounded polls.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_runtime::{InstallationSpec, InstallationStatus, LocalRuntime, Runtime, Transport};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> String {
    let p = repo().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

fn stdio_spec(name: &str, server_name: &str) -> InstallationSpec {
    InstallationSpec {
        name: name.into(),
        command: python(),
        args: vec![
            repo()
                .join("tests/peers/python/stdio_server.py")
                .to_string_lossy()
                .into_owned(),
            "--name".into(),
            server_name.into(),
        ],
        env: vec![],
        secret_env: vec![],
        transport: Transport::Stdio,
        image: None,
        resources: None,
    }
}

fn http_spec(name: &str) -> InstallationSpec {
    InstallationSpec {
        name: name.into(),
        command: python(),
        args: vec![
            repo()
                .join("tests/peers/python/server.py")
                .to_string_lossy()
                .into_owned(),
            "--port".into(),
            "{port}".into(),
            "--name".into(),
            "h".into(),
            "--mode".into(),
            "stateless".into(),
        ],
        env: vec![],
        secret_env: vec![],
        transport: Transport::Http {
            path: "/mcp".into(),
        },
        image: None,
        resources: None,
    }
}

async fn post(url: &str, session: Option<&str>, body: Value) -> (Option<String>, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let resp = req.send().await.expect("request");
    let session = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:").map(str::trim))
        .next_back()
        .unwrap_or(&text)
        .to_owned();
    (session, serde_json::from_str(&json).unwrap_or(Value::Null))
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
}

fn echo(text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"text": text}}})
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

async fn running_pid(rt: &LocalRuntime, name: &str, not: Option<u32>) -> u32 {
    for _ in 0..400 {
        if let Ok(InstallationStatus::Running { pid, .. }) = rt.status(name).await
            && Some(pid) != not
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} never ran (again): {:?}", rt.status(name).await);
}

async fn gone(pid: u32) {
    for _ in 0..400 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("process {pid} is still alive");
}

#[tokio::test]
async fn stdio_installation_is_served_through_the_bridge_and_remove_kills_it() {
    let rt = LocalRuntime::default();
    let endpoint = rt.ensure(&stdio_spec("s", "one")).await.expect("ensure");
    let (session, init) = post(&endpoint.url, None, initialize()).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "py-stdio-one");
    let (_, answer) = post(&endpoint.url, session.as_deref(), echo("hi")).await;
    assert_eq!(answer["result"]["content"][0]["text"], "one:hi");
    let pid = running_pid(&rt, "s", None).await;
    let logs = rt.logs("s").await.unwrap();
    assert!(
        logs.iter().any(|l| l == "stdio server one started"),
        "{logs:?}"
    );
    rt.remove("s").await.unwrap();
    gone(pid).await;
    assert!(rt.status("s").await.is_err());
}

#[tokio::test]
async fn http_installation_gets_a_port_is_healthy_by_initialize_and_is_restarted() {
    let rt = LocalRuntime::default();
    let endpoint = rt.ensure(&http_spec("h")).await.expect("ensure");
    assert!(
        endpoint.url.starts_with("http://127.0.0.1:"),
        "{}",
        endpoint.url
    );
    let (_, answer) = post(&endpoint.url, None, echo("x")).await;
    assert_eq!(answer["result"]["content"][0]["text"], "h:x");
    let pid = running_pid(&rt, "h", None).await;
    // Killed from outside: restarted on the same port with backoff.
    unsafe_kill(pid);
    let again = running_pid(&rt, "h", Some(pid)).await;
    let (_, answer) = post(&endpoint.url, None, echo("y")).await;
    assert_eq!(answer["result"]["content"][0]["text"], "h:y");
    match rt.status("h").await.unwrap() {
        InstallationStatus::Running { restarts, .. } => assert_eq!(restarts, 1),
        other => panic!("{other:?}"),
    }
    rt.shutdown().await;
    gone(again).await;
}

#[tokio::test]
async fn unchanged_spec_is_left_alone_and_a_changed_one_replaces_the_process() {
    let rt = LocalRuntime::default();
    let first = rt.ensure(&stdio_spec("c", "one")).await.unwrap();
    let pid = running_pid(&rt, "c", None).await;
    assert_eq!(rt.ensure(&stdio_spec("c", "one")).await.unwrap(), first);
    assert_eq!(running_pid(&rt, "c", None).await, pid);
    let second = rt.ensure(&stdio_spec("c", "two")).await.unwrap();
    gone(pid).await;
    let (session, init) = post(&second.url, None, initialize()).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "py-stdio-two");
    let (_, answer) = post(&second.url, session.as_deref(), echo("z")).await;
    assert_eq!(answer["result"]["content"][0]["text"], "two:z");
}

#[tokio::test]
async fn a_command_that_cannot_start_is_an_error() {
    let rt = LocalRuntime::default();
    let mut spec = stdio_spec("bad", "x");
    spec.command = "/nonexistent/server".into();
    let err = rt.ensure(&spec).await.expect_err("cannot start");
    assert!(err.to_string().contains("/nonexistent/server"), "{err}");
}

fn unsafe_kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}
