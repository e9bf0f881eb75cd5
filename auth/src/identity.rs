//! Who a request comes from, as the gateway's later steps (rules, credentials, logs, spans)
//! see it. An identity is shared (`Arc`) between the validated-token cache and the requests
//! using it, so a warm request clones a pointer, not claims.

use serde_json::{Map, Value};

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A static token from `[[auth.tokens]]`.
    Token,
    /// A JWT of provider `index` in `[[auth.providers]]`.
    Provider(usize),
    /// An access token Sluice's own issuer signed for one gateway (`aud`).
    Issued {
        /// The protected resource (gateway URL) the token is for.
        audience: String,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// How it was authenticated.
    pub source: Source,
    /// The JWT's `iss`.
    pub issuer: Option<String>,
    /// The claims the rules see.
    pub claims: Map<String, Value>,
    /// `exp`, seconds since the epoch.
    pub expires_at: Option<u64>,
    /// SHA-256 of the bearer token this identity was proven with: upstream credentials made
    /// from the caller's token are cached under it, so two tokens never share one.
    pub token_sha256: [u8; 32],
    /// `authority:subject`, built once so logging a cached identity copies nothing.
    label: String,
}

impl Identity {
    /// An identity; `authority` is the token name's kind (`token`), the JWT's provider, or
    /// `sluice` for issued tokens, and `subject` the token name or the JWT's `sub`.
    pub fn new(
        source: Source,
        authority: &str,
        subject: &str,
        issuer: Option<String>,
        claims: Map<String, Value>,
        expires_at: Option<u64>,
    ) -> Self {
        Identity {
            source,
            issuer,
            claims,
            expires_at,
            token_sha256: [0; 32],
            label: format!("{authority}:{subject}"),
        }
    }

    /// The identity as proven by the token with this SHA-256.
    pub fn with_token_sha256(mut self, digest: [u8; 32]) -> Self {
        self.token_sha256 = digest;
        self
    }

    /// Whether the caller holds a JWT (from a provider or Sluice's issuer) rather than a
    /// static token, so its token can be exchanged or forwarded.
    pub fn has_jwt(&self) -> bool {
        !matches!(self.source, Source::Token)
    }

    /// Who the caller is, exactly as proven: a static token's name, or the JWT's `sub` claim
    /// (the label's subject is cut short and cleaned for display, so it cannot serve as a key).
    pub fn subject(&self) -> Option<&str> {
        match self.source {
            Source::Token => self.label.split_once(':').map(|(_, name)| name),
            _ => self.claims.get("sub").and_then(Value::as_str),
        }
    }

    /// `authority:subject`, for logs and spans (never a token).
    pub fn display(&self) -> &str {
        &self.label
    }
}
