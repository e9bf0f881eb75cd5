//! The local backend with real processes: the official Python SDK's servers as a stdio
//! installation (through the in-process bridge) and as an HTTP installation on an assigned
//! port. `scripts/setup.sh` installs the SDK into `.venv`. Waits are bounded polls, except
//! where a start is held at a gate (`tests/peers/python/gated.py`, FIFOs the test controls)
//! to observe starts in progress.

mod python_peer;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_runtime::{InstallationSpec, InstallationStatus, LocalRuntime, Runtime, Transport};

use python_peer::{python, repo};

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

/// FIFOs in a fresh directory: `started` (each gated start writes its pid) and one gate each.
struct Gates {
    dir: PathBuf,
}

impl Gates {
    fn new(tag: &str, names: &[&str]) -> Gates {
        let dir = std::env::temp_dir().join(format!("sluice-gates-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let gates = Gates { dir };
        for name in std::iter::once("started").chain(names.iter().copied()) {
            let path =
                std::ffi::CString::new(gates.path(name).to_string_lossy().as_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path; mkfifo touches nothing else.
            assert_eq!(
                unsafe { libc::mkfifo(path.as_ptr(), 0o600) },
                0,
                "mkfifo {name}"
            );
        }
        gates
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The read end of `started`, opened read-write so it never sees end-of-file.
    fn announcements(
        &self,
    ) -> tokio::io::Lines<tokio::io::BufReader<tokio::net::unix::pipe::Receiver>> {
        use tokio::io::AsyncBufReadExt;
        let rx = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(self.path("started"))
            .expect("open started");
        tokio::io::BufReader::new(rx).lines()
    }

    /// Opens `gate`: the start waiting at it goes on.
    async fn open(&self, gate: &str) {
        let path = self.path(gate);
        // Blocks until the gated process has the FIFO open for reading.
        let write = tokio::task::spawn_blocking(move || std::fs::write(path, b"go"));
        tokio::time::timeout(Duration::from_secs(30), write)
            .await
            .expect("nobody waits at the gate")
            .unwrap()
            .unwrap();
    }

    /// An HTTP installation whose server starts only once `gate` opens.
    fn spec(&self, name: &str, gate: &str) -> InstallationSpec {
        let mut spec = http_spec(name);
        let mut args = vec![
            repo()
                .join("tests/peers/python/gated.py")
                .to_string_lossy()
                .into_owned(),
            self.path("started").to_string_lossy().into_owned(),
            self.path(gate).to_string_lossy().into_owned(),
            "--".into(),
            python(),
        ];
        args.append(&mut spec.args);
        spec.args = args;
        spec
    }
}

impl Drop for Gates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The next pid a gated start announces, bounded.
async fn announced(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::net::unix::pipe::Receiver>>,
    what: &str,
) -> u32 {
    match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
        Ok(Ok(Some(line))) => line.trim().parse().expect("a pid"),
        other => panic!("{what}: no start announced ({other:?})"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_installations_start_concurrently() {
    let gates = Gates::new("concurrent", &["a", "b"]);
    let mut started = gates.announcements();
    let rt = std::sync::Arc::new(LocalRuntime::default());
    let ensure = |spec: InstallationSpec| {
        let rt = rt.clone();
        tokio::spawn(async move { rt.ensure(&spec).await })
    };
    let a = ensure(gates.spec("a", "a"));
    let b = ensure(gates.spec("b", "b"));
    // Both servers' processes exist while neither has started serving: neither start
    // waited for the other. (Were starts serialised, the second would never be announced,
    // since the first is healthy only after its gate opens, below.)
    let first = announced(&mut started, "first").await;
    let second = announced(&mut started, "second (starts are serialised?)").await;
    assert_ne!(first, second);
    assert!(alive(first) && alive(second));
    assert!(!a.is_finished() && !b.is_finished());
    for name in ["a", "b"] {
        assert_eq!(
            rt.status(name).await.unwrap(),
            InstallationStatus::Starting { last_error: None },
            "{name}"
        );
    }
    gates.open("b").await;
    gates.open("a").await;
    for (name, task) in [("a", a), ("b", b)] {
        let endpoint = task.await.unwrap().expect("healthy");
        let (_, answer) = post(&endpoint.url, None, echo(name)).await;
        assert_eq!(
            answer["result"]["content"][0]["text"],
            "h:".to_owned() + name
        );
        // exec kept the pid: the announced process is the server.
        let pid = running_pid(&rt, name, None).await;
        assert!([first, second].contains(&pid), "{pid}");
    }
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_installation_is_never_started_twice_at_once() {
    let gates = Gates::new("once", &["s"]);
    let mut started = gates.announcements();
    let rt = std::sync::Arc::new(LocalRuntime::default());
    let spec = gates.spec("s", "s");
    let ensure = || {
        let (rt, spec) = (rt.clone(), spec.clone());
        tokio::spawn(async move { rt.ensure(&spec).await })
    };
    let (one, two) = (ensure(), ensure());
    let pid = announced(&mut started, "the start").await;
    assert!(!one.is_finished() && !two.is_finished());
    gates.open("s").await;
    let (one, two) = (one.await.unwrap().unwrap(), two.await.unwrap().unwrap());
    // The second call waited for the first start and found it done: same endpoint, same
    // process, and no second start was ever announced.
    assert_eq!(one, two);
    assert_eq!(running_pid(&rt, "s", None).await, pid);
    let mut more = [0u8; 64];
    let again = started.get_mut().get_mut().try_read(&mut more);
    assert!(
        matches!(&again, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a second start was announced: {again:?}"
    );
    rt.shutdown().await;
}
