//! Drives the real `sluice` binary for integration tests: writes a config file, starts
//! `sluice proxy` on free loopback ports, waits for `/readyz` (a bounded poll, never a fixed
//! sleep), and kills the process when the test ends. Its log is printed if the test failed.

#![allow(dead_code)]

pub mod authz;
pub mod bridge_proc;
pub mod control;
pub mod idp;
pub mod node_peer;
pub mod prom;
pub mod rmcp_peers;
pub mod sdk_peers;
pub mod sse;
pub mod tap;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

/// A secret shared by replicas in tests (>= 32 bytes).
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123";

static NEXT_FILE: AtomicUsize = AtomicUsize::new(0);

/// Installs the process-wide rustls provider reqwest needs (this build picks none itself).
pub fn ensure_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A unique path under the system temp dir.
pub fn temp_path(name: &str) -> PathBuf {
    let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("sluice-test-{}-{n}-{name}", std::process::id()))
}

/// A free port on 127.0.0.1 (bound then released; fine for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `check` until it returns `Some`, at most `attempts` times spaced by `pause`.
pub async fn poll<T, F, Fut>(what: &str, attempts: usize, pause: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..attempts {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(pause).await;
    }
    panic!("gave up waiting for {what}");
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_for_port(addr: SocketAddr) {
    poll(
        &format!("port {addr}"),
        600,
        Duration::from_millis(50),
        || async move { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) },
    )
    .await
}

/// A running `sluice proxy`.
pub struct Sluice {
    child: Child,
    /// The MCP listener.
    pub listen: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    log: PathBuf,
    access: PathBuf,
    config: PathBuf,
}

impl Sluice {
    /// Starts `sluice proxy` with `body` appended to a generated `[proxy]` and `[sessions]`
    /// section (free ports, one thread, the test secret).
    pub async fn start(body: &str) -> Sluice {
        Self::start_with(body, "").await
    }

    /// Like [`Sluice::start`] with extra keys in the `[proxy]` table.
    pub async fn start_with(body: &str, proxy_extra: &str) -> Sluice {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Self::start_at(listen, body, proxy_extra).await
    }

    /// Like [`Sluice::start_with`] on a chosen MCP listener (for configs that name it).
    pub async fn start_at(listen: SocketAddr, body: &str, proxy_extra: &str) -> Sluice {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = format!(
            "[proxy]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nthreads = 1\ngrace_period = \"1s\"\n{proxy_extra}\n\n[sessions]\nsecret = \"{TEST_SECRET}\"\n\n{body}\n"
        );
        let path = temp_path("config.toml");
        std::fs::write(&path, config).expect("write config");
        let log = temp_path("sluice.log");
        let log_file = std::fs::File::create(&log).expect("create log");
        let access = temp_path("access.log");
        let access_file = std::fs::File::create(&access).expect("create access log");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["proxy", "--config"])
            .arg(&path)
            .env("SLUICE_LOG", "info,pingora=warn")
            .stdout(access_file)
            .stderr(log_file)
            .spawn()
            .expect("spawn sluice");
        let sluice = Sluice {
            child,
            listen,
            admin,
            log,
            access,
            config: path,
        };
        sluice.wait_ready().await;
        sluice
    }

    /// The MCP endpoint of a gateway.
    pub fn url(&self, gateway: &str) -> String {
        format!("http://{}/mcp/{gateway}", self.listen)
    }

    /// `/readyz` as JSON (status, body).
    pub async fn readyz(&self) -> Option<(u16, Value)> {
        ensure_crypto();
        let resp = reqwest::get(format!("http://{}/readyz", self.admin))
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.json().await.ok()?))
    }

    /// Waits for `/readyz` to answer 200.
    pub async fn wait_ready(&self) {
        poll("sluice /readyz", 600, Duration::from_millis(50), || async {
            match self.readyz().await {
                Some((200, _)) => Some(()),
                _ => None,
            }
        })
        .await
    }

    /// Waits until the gateway shows exactly `n` tools.
    pub async fn wait_tools(&self, gateway: &str, n: u64) {
        poll(
            &format!("{n} tools on {gateway}"),
            600,
            Duration::from_millis(50),
            || async {
                let (_, body) = self.readyz().await?;
                (body["gateways"][gateway]["tools"].as_u64() == Some(n)).then_some(())
            },
        )
        .await
    }

    /// Sends SIGTERM and waits for the process to exit, returning its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY-free: plain kill(2) through the `kill` command keeps this test dependency-free.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait for sluice")
    }

    /// Sends SIGHUP (reload the config file) and returns at once.
    pub fn send_hup(&self) {
        let _ = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status();
    }

    /// The config file the process was started with.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_term(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits for the process to exit (after [`Sluice::send_term`]).
    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for sluice")
    }

    /// The process log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Sluice {
    /// The JSON access log lines written so far (stdout of the process).
    pub fn access_log(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.access)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("access log line {l:?}: {e}"))
            })
            .collect()
    }

    /// Waits (bounded) for an access log line that `matches`, and returns it.
    pub async fn wait_access(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let matches = &matches;
        poll(what, 400, Duration::from_millis(25), || async move {
            self.access_log().into_iter().find(|l| matches(l))
        })
        .await
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- sluice log -----\n{}", self.log());
        }
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(&self.access);
    }
}

/// A child process that is killed when dropped (upstream servers in tests).
pub struct ChildGuard {
    /// The process.
    pub child: Child,
    /// Its address, once listening.
    pub addr: SocketAddr,
}

impl ChildGuard {
    /// Kills the process now (an upstream dying mid-call).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the bundled example MCP server (`sluice example-server`) on a free port.
pub async fn example_server() -> ChildGuard {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["example-server", "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn example server");
    let guard = ChildGuard { child, addr };
    wait_for_port(addr).await;
    guard
}

/// A bare Streamable HTTP client for exact protocol assertions.
pub struct Raw {
    client: reqwest::Client,
    /// The endpoint.
    pub url: String,
}

/// One raw response.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub body: String,
}

impl RawResponse {
    /// Reads a whole response.
    pub async fn read(resp: reqwest::Response) -> RawResponse {
        RawResponse {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap_or_default(),
        }
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The JSON-RPC error code.
    pub fn error_code(&self) -> Option<i64> {
        self.json()["error"]["code"].as_i64()
    }

    /// The JSON-RPC error message.
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The JSON-RPC message in the body, whether plain JSON or the last SSE data event.
    pub fn message(&self) -> Value {
        let is_sse = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return self.json();
        }
        let data = self
            .body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .rfind(|d| serde_json::from_str::<Value>(d).is_ok_and(|v| v.get("id").is_some()))
            .unwrap_or_else(|| panic!("no response event in SSE body: {}", self.body));
        serde_json::from_str(data).expect("SSE data is JSON")
    }
}

impl Raw {
    /// A client for an endpoint.
    pub fn new(url: impl Into<String>) -> Raw {
        ensure_crypto();
        Raw {
            client: reqwest::Client::new(),
            url: url.into(),
        }
    }

    /// POSTs `body` with the MCP headers (and `session` if given).
    pub async fn post(&self, body: &str, session: Option<&str>) -> RawResponse {
        self.post_with(body, session, &[]).await
    }

    /// POSTs with extra or replaced headers (an empty value removes a default header).
    pub async fn post_with(
        &self,
        body: &str,
        session: Option<&str>,
        headers: &[(&str, &str)],
    ) -> RawResponse {
        self.post_body(body.to_owned().into(), session, headers)
            .await
    }

    /// POSTs any body (a stream is sent chunked) with the MCP headers and `headers`.
    pub async fn post_body(
        &self,
        body: reqwest::Body,
        session: Option<&str>,
        headers: &[(&str, &str)],
    ) -> RawResponse {
        let mut defaults = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        defaults.retain(|(k, _)| !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)));
        let mut req = self.client.post(&self.url).body(body);
        for (k, v) in defaults.iter().chain(headers.iter()) {
            if !v.is_empty() {
                req = req.header(*k, *v);
            }
        }
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        RawResponse::read(req.send().await.expect("request reaches sluice")).await
    }

    /// Sends a request with any HTTP method.
    pub async fn send(&self, method: reqwest::Method, session: Option<&str>) -> RawResponse {
        let mut req = self.client.request(method, &self.url);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        RawResponse::read(req.send().await.expect("request reaches sluice")).await
    }

    /// Initializes a session and returns its id.
    pub async fn initialize(&self) -> String {
        self.initialize_with(&[]).await
    }

    /// [`Raw::initialize`] with extra headers (e.g. `authorization`) on both requests.
    pub async fn initialize_with(&self, headers: &[(&str, &str)]) -> String {
        self.initialize_declaring("{}", headers).await
    }

    /// [`Raw::initialize_with`] declaring the client `capabilities` (a JSON object).
    pub async fn initialize_declaring(
        &self,
        capabilities: &str,
        headers: &[(&str, &str)],
    ) -> String {
        let init = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{capabilities},"clientInfo":{{"name":"raw","version":"1"}}}}}}"#
        );
        let r = self.post_with(&init, None, headers).await;
        assert_eq!(r.status, 200, "initialize failed: {}", r.body);
        let session = r
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("initialize returns Mcp-Session-Id")
            .to_owned();
        let n = self
            .post_with(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                Some(&session),
                headers,
            )
            .await;
        assert_eq!(n.status, 202, "notifications/initialized: {}", n.body);
        session
    }

    /// Calls a tool in a session and returns the JSON-RPC response message.
    pub async fn call_tool(&self, session: &str, name: &str, args: Value) -> Value {
        self.call_tool_with(session, name, args, &[]).await
    }

    /// [`Raw::call_tool`] with extra headers (e.g. `authorization`).
    pub async fn call_tool_with(
        &self,
        session: &str,
        name: &str,
        args: Value,
        headers: &[(&str, &str)],
    ) -> Value {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": { "name": name, "arguments": args },
        });
        let r = self
            .post_with(&body.to_string(), Some(session), headers)
            .await;
        assert_eq!(r.status, 200, "tools/call {name}: {}", r.body);
        r.message()
    }
}
