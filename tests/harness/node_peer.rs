//! A Node test peer driven over stdin/stdout: it prints one JSON line when ready, then
//! answers one JSON command per line with one JSON line, in order. `idp.mjs` and `authz.mjs`
//! speak this protocol.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

use super::sdk_peers::node_peers;

/// A running peer; killed when dropped.
pub struct NodePeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    name: &'static str,
}

impl NodePeer {
    /// Starts `tests/peers/node/{script}` and returns it with its ready line.
    pub fn start(script: &'static str) -> (NodePeer, Value) {
        let mut child = Command::new("node")
            .arg(node_peers().join(script))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {script} (node): {e}"));
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut peer = NodePeer {
            child,
            stdin,
            stdout,
            name: script,
        };
        let ready = peer.read();
        (peer, ready)
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("read from {}: {e}", self.name));
        assert!(n > 0, "{} exited", self.name);
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{} printed {line:?}: {e}", self.name))
    }

    /// Sends one command and returns its answer (panics on an `error` answer).
    pub fn cmd(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").expect("write to the peer");
        self.stdin.flush().expect("flush to the peer");
        let answer = self.read();
        assert!(
            answer.get("error").is_none(),
            "{} refused {cmd}: {answer}",
            self.name
        );
        answer
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
