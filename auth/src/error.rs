//! Why a request's credential was refused. Every variant has a stable `reason` label for
//! metrics and logs and a message safe to send to the client: none quotes the token, and
//! names taken from an untrusted token are cut short.

use thiserror::Error;

/// A refused credential.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("this gateway requires a bearer token")]
    Missing,
    /// The header or the token is not well formed.
    #[error("malformed credential: {0}")]
    Malformed(&'static str),
    /// Not a known static token, and not a JWT this gateway accepts.
    #[error("the token is not valid for this gateway")]
    UnknownToken,
    /// The JWT's issuer is not a provider of this gateway.
    #[error("tokens issued by '{0}' are not accepted by this gateway")]
    IssuerNotAccepted(String),
    /// The JWT's algorithm is not allowed for its provider.
    #[error("JWT algorithm '{0}' is not accepted for this issuer")]
    Algorithm(String),
    /// No key of the provider matches the token's `kid` and algorithm.
    #[error("no signing key of the issuer matches the token")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is not valid")]
    Signature,
    /// Past `exp` (plus leeway).
    #[error("the token has expired")]
    Expired,
    /// Before `nbf` (minus leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` names none of the accepted audiences.
    #[error("the token's audience is not this gateway")]
    Audience,
    /// The provider's keys were never fetched, or are too stale to trust.
    #[error("the keys of identity provider '{0}' are unavailable; try again later")]
    KeysUnavailable(String),
}

impl AuthError {
    /// Every [`AuthError::reason`] label, in [`AuthError::reason_index`] order.
    pub const REASONS: [&'static str; 11] = [
        "missing",
        "malformed",
        "unknown_token",
        "issuer_not_accepted",
        "algorithm",
        "unknown_key",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "keys_unavailable",
    ];

    /// The position of this error's reason in [`AuthError::REASONS`].
    pub fn reason_index(&self) -> usize {
        let reason = self.reason();
        Self::REASONS.iter().position(|r| *r == reason).unwrap_or(0)
    }

    /// A short stable label (`sluice_auth_failures_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed(_) => "malformed",
            AuthError::UnknownToken => "unknown_token",
            AuthError::IssuerNotAccepted(_) => "issuer_not_accepted",
            AuthError::Algorithm(_) => "algorithm",
            AuthError::UnknownKey => "unknown_key",
            AuthError::Signature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::Audience => "wrong_audience",
            AuthError::KeysUnavailable(_) => "keys_unavailable",
        }
    }

    /// Whether a token was presented (RFC 6750: `error="invalid_token"` then, nothing when
    /// the request simply lacked one).
    pub fn token_presented(&self) -> bool {
        !matches!(self, AuthError::Missing)
    }
}

/// Text from an untrusted token cut for an error message.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 64;
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(MAX)
        .collect();
    if s.chars().count() > MAX {
        format!("{clean}…")
    } else {
        clean
    }
}
