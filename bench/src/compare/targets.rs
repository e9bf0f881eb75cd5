//! Starting what a comparison measures: the mock upstream, Sluice in front of it and nginx as
//! a plain reverse proxy in front of it, each configured from the scenario.
//!
//! nginx gets the settings a careful operator would give a proxy for this traffic: keep-alive
//! upstream connections, HTTP/1.1 upstream, no access log, response buffering off so SSE
//! streams through, bodies up to 16 MiB held in memory. Sluice gets the same worker count and
//! its access log off, so the two do comparable work.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use super::procs::{self, Proc};
use crate::jwt;
use crate::scenario::{Auth, Scenario};

/// The static bearer token of `auth = "token"` scenarios.
pub const STATIC_TOKEN: &str = "sluice-bench-static-token-0123456789abcdef";
/// The gateway Sluice serves the mock behind.
const GATEWAY: &str = "bench";

/// A target being measured.
pub struct Target {
    pub name: String,
    pub url: String,
    /// The process whose CPU and memory are sampled (none for targets given by URL).
    pub pid: Option<u32>,
    /// Kept for its lifetime: dropping it stops the process.
    pub proc: Option<Proc>,
}

/// Starts the mock upstream for `scenario`; its `/mcp` URL is in the returned target.
pub fn mock(
    scenario: &Scenario,
    listen: SocketAddr,
    dir: &Path,
    jwks: Option<&Path>,
) -> Result<Target> {
    let mut command = Command::new(std::env::current_exe().context("locating sluice-bench")?);
    command
        .arg("mock-upstream")
        .args(["--listen", &listen.to_string()])
        .args(scenario.upstream.to_args());
    if let Some(jwks) = jwks {
        command.arg("--jwks").arg(jwks);
    }
    let mut proc = Proc::spawn("mock-upstream", command, dir, "KILL")?;
    let addr = proc.wait_for_line("listening on ", Duration::from_secs(10))?;
    Ok(Target {
        name: "direct".into(),
        url: format!("http://{addr}/mcp"),
        pid: Some(proc.pid()),
        proc: Some(proc),
    })
}

/// Starts Sluice with one gateway over the mock at `upstream` (`host:port`).
pub fn sluice(binary: &Path, scenario: &Scenario, upstream: &str, dir: &Path) -> Result<Target> {
    let listen = procs::free_addr()?;
    let admin = procs::free_addr()?;
    let config = dir.join("sluice.toml");
    std::fs::write(&config, sluice_config(scenario, listen, admin, upstream))
        .with_context(|| format!("writing {}", config.display()))?;
    let mut command = Command::new(binary);
    command
        .args(["proxy", "--config"])
        .arg(&config)
        .env("SLUICE_LOG", "warn");
    let mut proc = Proc::spawn("sluice", command, dir, "INT")?;
    procs::wait_http_ok(&mut proc, admin, "/readyz", Duration::from_secs(20))?;
    Ok(Target {
        name: "sluice".into(),
        url: format!("http://{listen}/mcp/{GATEWAY}"),
        pid: Some(proc.pid()),
        proc: Some(proc),
    })
}

fn sluice_config(
    scenario: &Scenario,
    listen: SocketAddr,
    admin: SocketAddr,
    upstream: &str,
) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "[proxy]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nthreads = {}\nmax_body_bytes = 16777216\n",
        scenario.gateway.threads
    );
    let _ = writeln!(
        c,
        "[sessions]\nsecret = \"sluice-bench-session-secret-0123456789abcdef\"\n"
    );
    let _ = writeln!(c, "[telemetry]\naccess_log = \"off\"\n");
    match scenario.gateway.auth {
        Auth::None => {}
        Auth::Token => {
            let _ = writeln!(
                c,
                "[[auth.tokens]]\nname = \"bench\"\ntoken = \"{STATIC_TOKEN}\"\n"
            );
        }
        Auth::Jwt => {
            let _ = writeln!(
                c,
                "[[auth.providers]]\nname = \"bench\"\nissuer = \"{}\"\naudiences = [\"{}\"]\n\
                 jwks_url = \"http://{upstream}/jwks.json\"\nalgorithms = [\"ES256\"]\n",
                jwt::ISSUER,
                jwt::AUDIENCE
            );
        }
    }
    let _ = writeln!(
        c,
        "[[servers]]\nname = \"mock\"\nurl = \"http://{upstream}/mcp\""
    );
    if scenario.gateway.upstream_credential {
        let _ = writeln!(
            c,
            "[servers.credential]\ntype = \"static\"\nvalue = \"Bearer sluice-bench-upstream-0123456789\""
        );
    }
    let _ = writeln!(
        c,
        "\n[[gateways]]\nname = \"{GATEWAY}\"\nservers = [\"mock\"]"
    );
    match scenario.gateway.auth {
        Auth::None => {}
        Auth::Token => {
            let _ = writeln!(c, "[gateways.auth]\ntokens = true");
        }
        Auth::Jwt => {
            let _ = writeln!(c, "[gateways.auth]\nproviders = [\"bench\"]");
        }
    }
    c
}

/// Starts nginx as a plain reverse proxy to the mock at `upstream`.
pub fn nginx(binary: &Path, scenario: &Scenario, upstream: &str, dir: &Path) -> Result<Target> {
    let listen = procs::free_addr()?;
    let prefix = dir.join("nginx");
    for sub in ["", "body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(prefix.join(sub))?;
    }
    let config = prefix.join("nginx.conf");
    std::fs::write(&config, nginx_config(scenario, listen, upstream, &prefix))
        .with_context(|| format!("writing {}", config.display()))?;
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(&prefix)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .arg("-c")
        .arg(&config);
    let mut proc = Proc::spawn("nginx", command, dir, "TERM")?;
    // Any answer means it listens (the mock answers GET /mcp with 405).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        proc.check_alive().map_err(|e| {
            let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            anyhow!("{e:#}\n{log}")
        })?;
        if procs::http_get(listen, "/mcp").is_ok() {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(anyhow!("nginx did not listen on {listen} within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Target {
        name: "nginx".into(),
        url: format!("http://{listen}/mcp"),
        pid: Some(proc.pid()),
        proc: Some(proc),
    })
}

fn nginx_config(scenario: &Scenario, listen: SocketAddr, upstream: &str, prefix: &Path) -> String {
    let workers = scenario.gateway.threads;
    let p = |sub: &str| prefix.join(sub).display().to_string();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {pid};\n\
         error_log {err} warn;\n\
         events {{ worker_connections 16384; }}\n\
         http {{\n  access_log off;\n\
           client_body_temp_path {body};\n  proxy_temp_path {proxy};\n\
           fastcgi_temp_path {fastcgi};\n  uwsgi_temp_path {uwsgi};\n  scgi_temp_path {scgi};\n\
           client_max_body_size 16m;\n  client_body_buffer_size 2m;\n\
           upstream mock {{ server {upstream}; keepalive 512; }}\n\
           server {{\n    listen {listen};\n    location / {{\n\
               proxy_pass http://mock;\n      proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n      proxy_buffering off;\n\
               proxy_read_timeout 60s;\n    }}\n  }}\n}}\n",
        pid = p("nginx.pid"),
        err = p("error.log"),
        body = p("body"),
        proxy = p("proxy"),
        fastcgi = p("fastcgi"),
        uwsgi = p("uwsgi"),
        scgi = p("scgi"),
    )
}

/// The Sluice binary: `--sluice`, else `target/release/sluice` beside this binary's target
/// directory, else `sluice` on `PATH`.
pub fn find_sluice(given: Option<&PathBuf>) -> Option<PathBuf> {
    if let Some(path) = given {
        return Some(path.clone());
    }
    let exe = std::env::current_exe().ok()?;
    let beside = exe.parent()?.join("sluice");
    procs::find_program("sluice", &[beside])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        let s: Scenario = toml::from_str(text).unwrap();
        s.validate().unwrap();
        s
    }

    #[test]
    fn sluice_configs_switch_auth_and_credentials() {
        let listen: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let jwt = sluice_config(
            &scenario("[gateway]\nauth = \"jwt\"\nupstream_credential = true"),
            listen,
            listen,
            "127.0.0.1:2",
        );
        assert!(jwt.contains("jwks_url = \"http://127.0.0.1:2/jwks.json\""));
        assert!(jwt.contains("providers = [\"bench\"]"));
        assert!(jwt.contains("type = \"static\""));
        let open = sluice_config(&scenario(""), listen, listen, "127.0.0.1:2");
        assert!(!open.contains("[gateways.auth]") && !open.contains("credential"));
        // The generated file is valid TOML.
        toml::from_str::<toml::Table>(&jwt).unwrap();
        toml::from_str::<toml::Table>(&open).unwrap();
    }
}
