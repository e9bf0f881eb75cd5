//! A real OAuth 2 authorization server for the upstream-credential tests:
//! `tests/peers/node/authz.mjs` (oidc-provider from npm, with its token-exchange, jwt-bearer
//! and client-credentials grants registered through its extension point), on a free loopback
//! port.

use serde_json::{Value, json};

use super::node_peer::NodePeer;

/// Token requests an authorization server granted, per grant, and those it refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grants {
    pub client_credentials: u64,
    pub token_exchange: u64,
    pub jwt_bearer: u64,
    pub refused: u64,
}

/// A running authorization server.
pub struct Authz {
    peer: NodePeer,
    /// Issuer identifier (`http://127.0.0.1:PORT`).
    pub issuer: String,
    /// Token endpoint URL.
    pub token_endpoint: String,
}

impl Authz {
    /// Starts a server with one client, `client_id` / `client_secret`.
    pub fn start(client_id: &str, client_secret: &str) -> Authz {
        let (mut peer, ready) = NodePeer::start("authz.mjs");
        let field = |k: &str| {
            ready[k]
                .as_str()
                .unwrap_or_else(|| panic!("authz.mjs did not start: {ready}"))
                .to_owned()
        };
        let (issuer, token_endpoint) = (field("issuer"), field("token_endpoint"));
        peer.cmd(json!({"op": "client", "client_id": client_id, "client_secret": client_secret}));
        Authz {
            peer,
            issuer,
            token_endpoint,
        }
    }

    /// Sends one command and returns its answer.
    pub fn cmd(&mut self, cmd: Value) -> Value {
        self.peer.cmd(cmd)
    }

    /// Accepts JWTs of `issuer` (keys at `{issuer}/jwks`) as subject tokens and assertions.
    pub fn trust(&mut self, issuer: &str) {
        self.cmd(json!({"op": "trust", "issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}));
    }

    /// The counts of token requests so far.
    pub fn grants(&mut self) -> Grants {
        let c = self.cmd(json!({"op": "count"}));
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        Grants {
            client_credentials: n("client_credentials"),
            token_exchange: n("token_exchange"),
            jwt_bearer: n("jwt_bearer"),
            refused: n("refused"),
        }
    }

    /// The form fields of the last token request (secrets masked) and how the client
    /// authenticated.
    pub fn last(&mut self) -> Value {
        self.cmd(json!({"op": "last"}))
    }
}
