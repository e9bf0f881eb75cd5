//! The command line as an operator meets it: `check`, `up`, `--version`, and draining on
//! SIGTERM.

mod harness;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use harness::rmcp_peers::{ServerOpts, start_rmcp_server};
use harness::{ChildGuard, Raw, Sluice, free_port, temp_path};
use serde_json::json;

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

#[test]
fn version_and_help_describe_the_binary() {
    let v = sluice().arg("--version").output().expect("run");
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).contains(env!("CARGO_PKG_VERSION")));
    let h = sluice().arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&h.stdout);
    for sub in ["proxy", "check", "up"] {
        assert!(help.contains(sub), "{help}");
    }
}

#[test]
fn check_prints_every_error_with_its_position_and_fails() {
    let path = temp_path("bad.toml");
    std::fs::write(
        &path,
        "[proxy]\nlisten = \"nowhere\"\nthreds = 2\n\n[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n\n[[gateways]]\nname = \"g\"\nservers = [\"b\"]\n",
    )
    .unwrap();
    let out = sluice()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let file = path.display().to_string();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{file}:2:10: ")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&format!("{file}:3:1: "))
            && lines[1].contains("did you mean \"threads\""),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(&format!("{file}:11:12: "))
            && lines[2].contains("unknown server \"b\""),
        "{}",
        lines[2]
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn check_accepts_a_valid_file_with_a_one_line_summary() {
    let path = temp_path("good.toml");
    std::fs::write(&path, "[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n\n[[gateways]]\nname = \"g\"\nservers = [\"a\"]\n").unwrap();
    let out = sluice()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.contains("1 server, 1 gateway"), "{stdout}");
    let missing = sluice()
        .args(["check", "--config", "/nonexistent/sluice.toml"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read config file"));
    let _ = std::fs::remove_file(path);
}

/// The pids of `pid`'s children (every thread's).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

#[tokio::test]
async fn up_runs_control_and_the_example_server_as_a_stdio_installation_behind_a_proxy() {
    let (listen, admin, control) = (free_port(), free_port(), free_port());
    let data = harness::temp_path("up-data");
    let start = || {
        sluice()
            .args([
                "up",
                "--listen",
                &format!("127.0.0.1:{listen}"),
                "--admin-listen",
                &format!("127.0.0.1:{admin}"),
                "--control-listen",
                &format!("127.0.0.1:{control}"),
                "--data-dir",
            ])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sluice up")
    };
    let mut child = start();
    let stdout = child.stdout.take().expect("stdout");
    let url = BufReader::new(stdout)
        .lines()
        .take(20)
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("http://") && w.contains("/mcp/"))
                .map(str::to_owned)
        })
        .expect("sluice up prints the MCP endpoint");
    let pid = child.id();
    let mut guard = ChildGuard {
        child,
        addr: format!("127.0.0.1:{listen}").parse().unwrap(),
    };
    assert_eq!(url, format!("http://127.0.0.1:{listen}/mcp/default"));
    harness::poll(
        "the default gateway's tools",
        600,
        std::time::Duration::from_millis(50),
        || async {
            harness::ensure_crypto();
            let r: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{admin}/readyz"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (r["gateways"]["default"]["tools"] == 3).then_some(())
        },
    )
    .await;
    let raw = Raw::new(url.clone());
    let session = raw.initialize().await;
    let m = raw
        .call_tool(&session, "example__add", json!({ "a": 1.5, "b": 2 }))
        .await;
    assert_eq!(m["result"]["content"][0]["text"], "3.5");

    // The registry is reachable with the generated admin token, and shows the example running.
    let token = data.join("admin.token");
    let mode = std::fs::metadata(&token)
        .expect("admin.token")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let out = sluice()
        .args(["ctl", "--url", &format!("http://127.0.0.1:{control}")])
        .arg("--token-file")
        .arg(&token)
        .args(["installations", "list"])
        .output()
        .expect("sluice ctl");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("example") && table.contains("running"),
        "{table}"
    );

    // SIGTERM stops the proxy, control, and the server control runs: no orphan.
    let servers = children(pid);
    assert!(!servers.is_empty(), "the example server runs as a child");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = guard.child.wait().expect("sluice up exits");
    assert!(status.success(), "{status}");
    for server in servers {
        assert!(
            !std::path::Path::new(&format!("/proc/{server}")).exists(),
            "child {server} outlived sluice up"
        );
    }
}

/// A stateless rmcp server `u` and the config of a gateway `g` serving it.
async fn stateless_rmcp_behind_gateway_g() -> (harness::rmcp_peers::RmcpServer, String) {
    let upstream = start_rmcp_server(ServerOpts {
        name: "u".into(),
        stateful: false,
        filler: 0,
    })
    .await;
    let body = format!(
        "[[servers]]\nname = \"u\"\nurl = \"{}\"\n\n[[gateways]]\nname = \"g\"\nservers = [\"u\"]\n",
        upstream.url
    );
    (upstream, body)
}

#[tokio::test]
async fn sigterm_lets_in_flight_calls_finish_then_exits() {
    let (upstream, body) = stateless_rmcp_behind_gateway_g().await;
    let sluice = Sluice::start(&body).await;
    sluice.wait_tools("g", 6).await;
    let raw = Raw::new(sluice.url("g"));
    let session = raw.initialize().await;
    // A stateless rmcp server builds one handler per request: a new one means the call arrived.
    let before = upstream.sessions_created();
    let call = {
        let raw = Raw::new(sluice.url("g"));
        let session = session.clone();
        tokio::spawn(async move {
            raw.call_tool(&session, "u__slow", json!({ "millis": 600 }))
                .await
        })
    };
    harness::poll(
        "the call to reach the upstream",
        500,
        std::time::Duration::from_millis(5),
        || async { (upstream.sessions_created() > before).then_some(()) },
    )
    .await;
    let listen = sluice.listen;
    let status = tokio::task::spawn_blocking(move || sluice.terminate())
        .await
        .expect("join");
    assert!(status.success(), "clean exit after draining: {status:?}");
    let m = call.await.expect("call task");
    assert_eq!(
        m["result"]["content"][0]["text"], "done",
        "the in-flight call completed: {m}"
    );
    assert!(
        tokio::net::TcpStream::connect(listen).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_false_before_the_listener_closes() {
    let (_upstream, body) = stateless_rmcp_behind_gateway_g().await;
    // The bound the balancer gets to notice; the test needs it only to be long enough to
    // see readiness turn and one request served in between.
    let sluice = Sluice::start_with(&body, "drain_delay = \"4s\"").await;
    sluice.wait_tools("g", 6).await;
    let raw = Raw::new(sluice.url("g"));
    let session = raw.initialize().await;
    assert_eq!(sluice.readyz().await.map(|(s, _)| s), Some(200));

    sluice.send_term();
    let body = harness::poll(
        "readiness to turn false",
        400,
        std::time::Duration::from_millis(5),
        || async {
            let (status, body) = sluice.readyz().await?;
            (status == 503).then_some(body)
        },
    )
    .await;
    assert_eq!(body["draining"], true, "{body}");
    // Still serving while the balancer catches up.
    let m = raw
        .call_tool(&session, "u__echo", json!({ "text": "late" }))
        .await;
    assert_eq!(m["result"]["content"][0]["text"], "u:late", "{m}");

    let listen = sluice.listen;
    let status = tokio::task::spawn_blocking(move || sluice.wait_exit())
        .await
        .expect("join");
    assert!(status.success(), "clean exit after the drain: {status:?}");
    assert!(
        tokio::net::TcpStream::connect(listen).await.is_err(),
        "the listener is closed"
    );
}
