//! The harness end to end, for a few seconds on loopback: `sluice-bench compare` runs the
//! smoke scenario against the mock upstream directly, the real `sluice` binary and a real
//! nginx (installed by scripts/setup.sh), and leaves result files with sane numbers. Speed is
//! not asserted here; the figures live in bench/README.md.
//!
//! Also: `sluice-bench load` against a mock with added latency (the latency floor must show in
//! the percentiles), and a scenario with a typo refused before anything starts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn bench_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice-bench")
}

/// The `sluice` binary built by the same `cargo test --workspace` (beside this crate's binary).
fn sluice_bin() -> PathBuf {
    let path = Path::new(bench_bin()).with_file_name("sluice");
    assert!(
        path.is_file(),
        "{} is missing: run the workspace's tests (scripts/test.sh) or `cargo build -p sluice`",
        path.display()
    );
    path
}

fn nginx_bin() -> PathBuf {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    found.expect("nginx is missing: scripts/setup.sh installs it")
}

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn compare_writes_results_plots_and_summary_for_every_target() {
    let out = temp_dir("compare");
    let output = Command::new(bench_bin())
        .arg("compare")
        .arg(scenarios().join("smoke.toml"))
        .arg("--sluice")
        .arg(sluice_bin())
        .arg("--nginx")
        .arg(nginx_bin())
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "compare failed:\n{stderr}");

    let result: Value =
        serde_json::from_slice(&std::fs::read(out.join("smoke.json")).unwrap()).unwrap();
    assert_eq!(result["rounds"], 2);
    let targets = result["targets"].as_array().unwrap();
    let names: Vec<&str> = targets
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["direct", "sluice", "nginx"]);
    for t in targets {
        let name = t["name"].as_str().unwrap();
        assert!(t["failure"].is_null(), "{name}: {}", t["failure"]);
        assert_eq!(t["round_results"].as_array().unwrap().len(), 2, "{name}");
        let rps = t["rps"].as_f64().unwrap();
        assert!(rps > 10.0, "{name}: {rps} req/s");
        // The mix is 8 calls : 1 list : 1 ping, all answered without errors ...
        assert_eq!(t["errors"], serde_json::json!({}), "{name}");
        // ... and every call streamed its 2 progress notifications through the target.
        let per_request = t["messages_per_request"].as_f64().unwrap();
        assert!(
            (per_request - 1.6).abs() < 0.05,
            "{name}: {per_request} messages per request"
        );
        let l = &t["latency_us"];
        let (p50, p99, max) = (
            l["p50"].as_u64().unwrap(),
            l["p99"].as_u64().unwrap(),
            l["max"].as_u64().unwrap(),
        );
        assert!(
            0 < p50 && p50 <= p99 && p99 <= max && max < 10_000_000,
            "{name}: {l}"
        );
        // The mock issued a session to every one of the 8 sessions (Sluice's are its own).
        assert_eq!(t["stateful_sessions"], 8, "{name}");
        let cpu = t["cpu_us_per_request"].as_f64().unwrap();
        assert!(
            cpu > 0.0 && cpu < 100_000.0,
            "{name}: {cpu} µs CPU per request"
        );
        let rss = t["rss_mib"].as_f64().unwrap();
        assert!(rss > 0.5 && rss < 1024.0, "{name}: {rss} MiB");
        let ratio = t["ratio_to_direct"].as_f64().unwrap();
        assert!(ratio > 0.0, "{name}");
    }
    assert_eq!(targets[0]["ratio_to_direct"], 1.0);

    for file in ["smoke-latency.svg", "smoke-throughput.svg"] {
        let svg = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{file}");
        for name in ["direct", "sluice", "nginx"] {
            assert!(svg.contains(name), "{file} does not name {name}");
        }
    }
    let md = std::fs::read_to_string(out.join("smoke.md")).unwrap();
    assert!(
        md.contains("| sluice |") && md.contains("| nginx |"),
        "{md}"
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("| smoke | sluice |"), "{summary}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Starts `sluice-bench mock-upstream` and returns it with its address.
fn mock(args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(bench_bin())
        .args(["mock-upstream", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("the mock prints its address")
        .to_string();
    (child, addr)
}

/// Runs `sluice-bench load` with `args` against a mock started with `mock_args` (4
/// connections, no warm-up); returns the table it printed.
fn load_against_mock(mock_args: &[&str], args: &[&str]) -> String {
    let (mut child, addr) = mock(mock_args);
    let output = Command::new(bench_bin())
        .args([
            "load",
            &format!("http://{addr}/mcp"),
            "-c",
            "4",
            "--warmup",
            "0s",
        ])
        .args(args)
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn load_reports_at_least_the_upstream_latency() {
    let dir = temp_dir("load");
    let json = dir.join("load.json");
    let table = load_against_mock(
        &["--latency", "20ms", "--error-rate", "0.25"],
        &["-d", "1s", "--json", json.to_str().unwrap()],
    );
    assert!(
        table.contains("req/s") && table.contains("p99.9"),
        "{table}"
    );

    let summary: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let p50 = summary["latency_us"]["p50"].as_u64().unwrap();
    assert!(p50 >= 20_000, "p50 {p50} µs is below the mock's 20 ms");
    // 4 connections at >= 20 ms each: at most 200 answers a second.
    let rps = summary["rps"].as_f64().unwrap();
    assert!(rps > 0.0 && rps <= 200.0, "{rps}");
    // Every 4th call fails with HTTP 500 (error_rate 0.25 is deterministic).
    let answered = summary["answered"].as_u64().unwrap();
    let failed = summary["errors"]["http_5xx"].as_u64().unwrap();
    assert!(
        failed * 4 <= answered + 4 && failed * 4 + 4 >= answered,
        "{failed} of {answered}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn open_loop_runs_hold_the_rate() {
    let table = load_against_mock(&[], &["-d", "2s", "--rate", "200"]);
    assert!(table.contains("uncorrected"), "{table}");
    // 200/s for 2 s: about 400 requests, whatever the machine's speed.
    let rps: f64 = table
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (150.0..=210.0).contains(&rps),
        "{rps} req/s at a 200/s schedule"
    );
}

#[test]
fn a_scenario_with_a_typo_is_refused_before_anything_starts() {
    let dir = temp_dir("typo");
    let file = dir.join("typo.toml");
    std::fs::write(&file, "[load]\nconections = 8\n").unwrap();
    let output = Command::new(bench_bin())
        .arg("compare")
        .arg(&file)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("conections") && stderr.contains("typo.toml"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
