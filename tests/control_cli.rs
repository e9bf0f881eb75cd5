//! `sluice control` and `sluice ctl` as an operator meets them: the real binary on loopback,
//! a real sled directory, exit codes, tables and `--json`, and no secret in any output, log
//! or file.

mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use harness::control::{Control, Tokens};
use harness::{free_port, temp_path};
use serde_json::Value;

const ADMIN_TOKEN: &str = "admin-token-for-ctl-tests";
const PROXY_TOKEN: &str = "proxy-token-for-ctl-tests";
const SECRET: &str = "ghp_ctl-e2e-secret-value-7c1d";

const TOKENS: Tokens = Tokens {
    admin: ADMIN_TOKEN,
    proxy: PROXY_TOKEN,
    secret: SECRET,
};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{:?}: {}{}",
        o.status,
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_contain(&p, needle)
        } else {
            std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        }
    })
}

#[tokio::test]
async fn ctl_manages_the_registry_with_tables_json_and_meaningful_exit_codes() {
    let dir = temp_path("registry");
    let port = free_port();
    let control = Control::start(&dir, port, TOKENS).await;
    let template = temp_path("github.json");
    std::fs::write(
        &template,
        r#"{"name": "github", "description": "GitHub MCP", "transport": "http",
            "url": "{base}/mcp",
            "fields": [{"name": "base", "type": "url", "default": "http://127.0.0.1:3001"},
                       {"name": "api_key", "secret": true}],
            "credential": {"type": "static", "value": "Bearer {api_key}"}}"#,
    )
    .unwrap();
    let template_arg = template.display().to_string();
    let mut outputs = String::new();

    let out = ok(control.ctl(&["templates", "create", "--file", &template_arg]));
    assert_eq!(out, "created template github (version 1)\n");
    let out = ok(control.ctl(&[
        "installations",
        "create",
        "gh",
        "--template",
        "github",
        "--set-env",
        "api_key=GITHUB_TOKEN",
    ]));
    assert_eq!(out, "created installation gh (version 2)\n");
    outputs.push_str(&ok(
        control.ctl(&["gateways", "create", "team", "--server", "gh"])
    ));
    outputs.push_str(&ok(control.ctl(&[
        "gateways",
        "assign",
        "team",
        "gh__search_code",
    ])));

    let table = ok(control.ctl(&["installations", "list"]));
    assert_eq!(
        table,
        "NAME  TEMPLATE  STATUS      RUNTIME  ENDPOINT  LAST ERROR  SECRETS  RESOURCE TOOLS  VERSION\ngh    github    configured  -        -         -           api_key  auto            2\n"
    );
    let templates = ok(control.ctl(&["templates", "list"]));
    assert!(
        templates.contains("github  http       base,api_key*"),
        "{templates}"
    );
    let json: Value =
        serde_json::from_str(&ok(control.ctl(&["--json", "installations", "get", "gh"]))).unwrap();
    assert_eq!(json["values"]["api_key"], "<secret>");
    let gateways: Value =
        serde_json::from_str(&ok(control.ctl(&["gateways", "list", "--json"]))).unwrap();
    assert_eq!(gateways["gateways"][0]["tools"][0], "gh__search_code");
    let audit = ok(control.ctl(&["audit"]));
    assert_eq!(audit.lines().count(), 5, "{audit}");
    assert!(
        audit
            .lines()
            .nth(4)
            .unwrap()
            .contains("ops    assign  gateway       team/gh__search_code"),
        "{audit}"
    );
    outputs.push_str(&table);
    outputs.push_str(&json.to_string());
    outputs.push_str(&audit);
    assert_eq!(ok(control.ctl(&["version"])), "4\n");

    // 1: the API refused, with its message (and the body under --json).
    let refused = control.ctl(&["installations", "delete", "gh"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("used by gateway \"team\" (HTTP 409)"),
        "{stderr}"
    );
    let refused = control.ctl(&[
        "--json",
        "installations",
        "create",
        "x",
        "--template",
        "github",
        "--set",
        "base=ftp://h",
        "--set",
        "api_key=k",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let body: Value = serde_json::from_str(&stdout(&refused)).unwrap();
    assert_eq!(body["field"], "installations.values.base");
    // 2: usage.
    assert_eq!(
        control.ctl(&["installations", "create", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(
        control.ctl(&["templates", "frobnicate"]).status.code(),
        Some(2)
    );
    // 3: unreachable.
    let unreachable = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "ctl",
            "--url",
            &format!("http://127.0.0.1:{}", free_port()),
            "version",
        ])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(3));
    // A wrong token is an API refusal.
    let wrong = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "ctl",
            "--url",
            &format!("http://{}", control.addr),
            "--token",
            "not-the-admin-token",
            "version",
        ])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));

    // The proxies' snapshot carries the secret, and the proxy's own loader accepts it.
    let snap = reqwest_snapshot(control.addr).await;
    let snapshot: sluice_config::Snapshot = serde_json::from_value(snap).unwrap();
    assert_eq!(snapshot.version, 4);
    assert_eq!(
        snapshot.servers[0].credential["value"],
        format!("Bearer {SECRET}")
    );
    let config =
        sluice_config::load_str_with_snapshot("", "proxy.toml", &|_| None, &snapshot).unwrap();
    assert_eq!(config.gateways[0].tools, ["gh__search_code"]);

    // SIGTERM stops control cleanly; a restart serves the same registry.
    let data = dir.clone();
    let log = control.stop();
    assert!(!outputs.contains(SECRET), "a secret reached ctl output");
    assert!(
        !log.contains(SECRET),
        "a secret reached the control log:\n{log}"
    );
    assert!(
        !files_contain(&data, SECRET.as_bytes()),
        "a secret is in clear on disk"
    );
    let control = Control::start(&data, port, TOKENS).await;
    assert_eq!(ok(control.ctl(&["version"])), "4\n");
    control.stop();
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&template);
}

async fn reqwest_snapshot(addr: SocketAddr) -> Value {
    harness::ensure_crypto();
    reqwest::Client::new()
        .get(format!("http://{addr}/v1/snapshot"))
        .bearer_auth(PROXY_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
