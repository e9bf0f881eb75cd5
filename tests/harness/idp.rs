//! A real OAuth 2 / OIDC identity provider for the auth tests: `tests/peers/node/idp.mjs`
//! (oauth2-mock-server from npm) on a free loopback port, driven over its stdin/stdout with
//! one JSON command and one JSON answer per line.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

use super::sdk_peers::node_peers;

/// A running identity provider.
pub struct Idp {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Its issuer URL (`http://127.0.0.1:PORT`): metadata, `/jwks`, `iss` of its tokens.
    pub issuer: String,
}

impl Idp {
    /// Starts the IdP with keys `rsa-1` (RS256) and `ec-1` (ES256).
    pub fn start() -> Idp {
        let mut child = Command::new("node")
            .arg(node_peers().join("idp.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the identity provider (node)");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut idp = Idp {
            child,
            stdin,
            stdout,
            issuer: String::new(),
        };
        let ready = idp.read();
        idp.issuer = ready["issuer"]
            .as_str()
            .unwrap_or_else(|| panic!("the IdP did not start: {ready}"))
            .to_owned();
        idp
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("read from the IdP");
        assert!(n > 0, "the IdP exited");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("IdP printed {line:?}: {e}"))
    }

    /// Sends one command and returns its answer (panics on an `error` answer).
    pub fn cmd(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").expect("write to the IdP");
        self.stdin.flush().expect("flush to the IdP");
        let answer = self.read();
        assert!(answer.get("error").is_none(), "IdP refused {cmd}: {answer}");
        answer
    }

    /// A token signed with key `kid` (`None`: `rsa-1`) carrying `claims` over the defaults
    /// (`iss`, `iat`, `exp` in 5 minutes, `nbf`).
    pub fn token(&mut self, kid: Option<&str>, claims: Value) -> String {
        let mut cmd = json!({"op": "token", "claims": claims});
        if let Some(k) = kid {
            cmd["kid"] = json!(k);
        }
        self.cmd(cmd)["token"].as_str().expect("token").to_owned()
    }

    /// How many key-set and metadata requests the IdP has served.
    pub fn counts(&mut self) -> (u64, u64) {
        let c = self.cmd(json!({"op": "count"}));
        (
            c["jwks"].as_u64().unwrap_or(0),
            c["metadata"].as_u64().unwrap_or(0),
        )
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
