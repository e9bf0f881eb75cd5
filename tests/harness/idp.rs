//! A real OAuth 2 / OIDC identity provider for the auth tests: `tests/peers/node/idp.mjs`
//! (oauth2-mock-server from npm) on a free loopback port, driven over its stdin/stdout with
//! one JSON command and one JSON answer per line.

use serde_json::{Value, json};

use super::node_peer::NodePeer;

/// A running identity provider.
pub struct Idp {
    peer: NodePeer,
    /// Its issuer URL (`http://127.0.0.1:PORT`): metadata, `/jwks`, `iss` of its tokens.
    pub issuer: String,
}

impl Idp {
    /// Starts the IdP with keys `rsa-1` (RS256) and `ec-1` (ES256).
    pub fn start() -> Idp {
        let (peer, ready) = NodePeer::start("idp.mjs");
        let issuer = ready["issuer"]
            .as_str()
            .unwrap_or_else(|| panic!("the IdP did not start: {ready}"))
            .to_owned();
        Idp { peer, issuer }
    }

    /// Sends one command and returns its answer (panics on an `error` answer).
    pub fn cmd(&mut self, cmd: Value) -> Value {
        self.peer.cmd(cmd)
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
