//! `sluice bridge` as a test peer: a stdio MCP server served as Streamable HTTP, started on a
//! free loopback port (its banner line is the readiness signal) and stopped when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::sdk_peers::{python, repo};
use super::temp_path;

/// A running `sluice bridge`; SIGTERM'd (then killed) when dropped.
pub struct BridgeProc {
    child: Child,
    /// Its MCP endpoint.
    pub url: String,
    log: std::path::PathBuf,
}

impl BridgeProc {
    pub fn start(restart: bool, command: &[&str]) -> BridgeProc {
        let log = temp_path("bridge.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["bridge", "--listen", "127.0.0.1:0", "--name", "peer"]);
        if restart {
            cmd.arg("--restart");
        }
        let mut child = cmd
            .arg("--")
            .args(command)
            .env("SLUICE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("bridge log"))
            .spawn()
            .expect("spawn sluice bridge");
        // The banner is printed once the listener is bound: the readiness signal.
        let mut banner = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut banner)
            .expect("read the banner");
        let url = banner
            .trim()
            .rsplit(" at ")
            .next()
            .filter(|u| u.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in the banner {banner:?}"))
            .to_owned();
        BridgeProc { child, url, log }
    }

    pub fn python(restart: bool) -> BridgeProc {
        let server = repo().join("tests/peers/python/stdio_server.py");
        let py = python();
        BridgeProc::start(
            restart,
            &[
                py.to_str().unwrap(),
                server.to_str().unwrap(),
                "--name",
                "a",
            ],
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_exit()
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the bridge did not exit within 10 s");
    }
}

impl Drop for BridgeProc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            for _ in 0..200 {
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- bridge log -----\n{}", self.log());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
