//! `sluice control` as a test peer: the real binary on a loopback port with a sled directory,
//! the admin token taken from the environment (`${SLUICE_ADMIN_TOKEN}`, as operators write it),
//! debug logging (so tests can check that no secret is logged even there), and `sluice ctl`
//! run against it. Killed when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::{temp_path, wait_for_port};

/// The control key (32 bytes, base64) every test registry is sealed with.
pub const KEY: &str = "c2x1aWNlLWNvbnRyb2wtdGVzdC1rZXktMzItYnl0ZXM=";

/// The credentials a test's control and `sluice ctl` use.
#[derive(Clone, Copy)]
pub struct Tokens {
    /// The admin token `sluice ctl` presents.
    pub admin: &'static str,
    /// The token proxies present for snapshots.
    pub proxy: &'static str,
    /// A secret installation value, given to `sluice ctl` as `GITHUB_TOKEN`.
    pub secret: &'static str,
}

/// A running `sluice control`.
pub struct Control {
    child: Child,
    /// Its admin API.
    pub addr: SocketAddr,
    config: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    tokens: Tokens,
}

impl Control {
    /// Starts control on `port` with its registry in `dir`; returns once it listens.
    pub async fn start(dir: &Path, port: u16, tokens: Tokens) -> Control {
        Self::start_with(dir, port, tokens, "").await
    }

    /// [`Control::start`] with more config (e.g. a `[runtime]` table) at the end of the file.
    pub async fn start_with(dir: &Path, port: u16, tokens: Tokens, extra: &str) -> Control {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let config = temp_path("control.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"{addr}\"\ndata_dir = \"{}\"\n\n[[admin_tokens]]\nname = \"ops\"\ntoken = \"${{SLUICE_ADMIN_TOKEN}}\"\n\n[[proxy_tokens]]\nname = \"replicas\"\ntoken = \"{}\"\n{extra}",
                dir.display(),
                tokens.proxy
            ),
        )
        .unwrap();
        let log = temp_path("control.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["control", "--config"])
            .arg(&config)
            .env("SLUICE_ADMIN_TOKEN", tokens.admin)
            .env("SLUICE_CONTROL_KEY", KEY)
            .env("SLUICE_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(addr).await;
        Control {
            child,
            addr,
            config,
            log,
            tokens,
        }
    }

    /// Runs `sluice ctl ARGS` against this control.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("ctl")
            .args(["--url", &format!("http://{}", self.addr)])
            .args(args)
            .env("SLUICE_ADMIN_TOKEN", self.tokens.admin)
            .env("GITHUB_TOKEN", self.tokens.secret)
            .output()
            .unwrap()
    }

    /// Runs `sluice ctl ARGS`, asserts it succeeded and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "sluice ctl {args:?}: {:?}: {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Creates a template from its JSON (`sluice ctl templates create --file`).
    pub fn template(&self, template: &serde_json::Value) {
        let path = temp_path("template.json");
        std::fs::write(&path, template.to_string()).unwrap();
        self.ok(&["templates", "create", "--file", &path.display().to_string()]);
    }

    /// Kills control at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Stops control with SIGTERM, asserts it exited 0, and returns its log.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "control exited with {status}");
        let _ = std::fs::remove_file(&self.config);
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
