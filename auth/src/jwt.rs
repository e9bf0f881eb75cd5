//! Compact JWS parsing and signature checking. A token is split and its header and claims
//! decoded once; the signature is checked with `ring` against a key chosen by `kid`, with the
//! algorithm pinned by configuration *before* any key is touched, so `alg: none` and an HMAC
//! algorithm keyed with a public key (the classic forgery) never reach a verifier.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_config::JwtAlgorithm;

use crate::error::AuthError;
use crate::jwk::{PublicKey, VerifyingKey};

/// Longest bearer token accepted, in bytes: far above any real JWT, small enough that a
/// hostile one costs nothing to refuse.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A parsed, not yet verified, compact JWS.
#[derive(Debug)]
pub struct Unverified<'t> {
    /// The JOSE header.
    pub header: Header,
    /// The claims.
    pub claims: Map<String, Value>,
    signing_input: &'t str,
    signature: Vec<u8>,
}

/// The JOSE header fields Sluice reads.
#[derive(Debug, Deserialize)]
pub struct Header {
    /// Signing algorithm as written.
    pub alg: String,
    /// Key id.
    #[serde(default)]
    pub kid: Option<String>,
    /// Media type, e.g. `oauth-id-jag+jwt`.
    #[serde(default)]
    pub typ: Option<String>,
    /// Critical extensions; any is refused, since Sluice understands none.
    #[serde(default)]
    pub crit: Option<Value>,
}

/// Whether `token` has the shape of a compact JWS (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Splits and decodes a compact JWS.
pub fn parse(token: &str) -> Result<Unverified<'_>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed("token too large"));
    }
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(c), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed("not a JWT"));
    };
    if s.contains('.') {
        return Err(AuthError::Malformed("not a JWT"));
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| AuthError::Malformed("JWT header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|_| AuthError::Malformed("JWT header is not a JSON object with alg"))?;
    if header.crit.is_some() {
        return Err(AuthError::Malformed("JWT header has crit extensions"));
    }
    let claim_bytes = URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| AuthError::Malformed("JWT claims are not base64url"))?;
    let claims: Map<String, Value> = serde_json::from_slice(&claim_bytes)
        .map_err(|_| AuthError::Malformed("JWT claims are not a JSON object"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| AuthError::Malformed("JWT signature is not base64url"))?;
    Ok(Unverified {
        header,
        claims,
        signing_input: &token[..h.len() + 1 + c.len()],
        signature,
    })
}

impl Unverified<'_> {
    /// The header's algorithm if it is one of `allowed`.
    pub fn algorithm(&self, allowed: &[JwtAlgorithm]) -> Result<JwtAlgorithm, AuthError> {
        JwtAlgorithm::from_name(&self.header.alg)
            .filter(|a| allowed.contains(a))
            .ok_or_else(|| AuthError::Algorithm(crate::error::shown(&self.header.alg)))
    }

    /// Checks the signature with `key` under `alg`.
    pub fn verify(&self, alg: JwtAlgorithm, key: &VerifyingKey) -> Result<(), AuthError> {
        if !key.fits(alg) {
            return Err(AuthError::UnknownKey);
        }
        let msg = self.signing_input.as_bytes();
        let ok = match &key.key {
            PublicKey::Rsa { n, e } => {
                let params = match alg {
                    JwtAlgorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    JwtAlgorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    JwtAlgorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    JwtAlgorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    JwtAlgorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    JwtAlgorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(AuthError::UnknownKey),
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, msg, &self.signature)
                    .is_ok()
            }
            PublicKey::Ec { point, .. } => {
                let params = match alg {
                    JwtAlgorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                    JwtAlgorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return Err(AuthError::UnknownKey),
                };
                UnparsedPublicKey::new(params, point)
                    .verify(msg, &self.signature)
                    .is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::Signature)
        }
    }
}

/// Time claims checked against `now` (seconds since the epoch) with `leeway` seconds of
/// clock skew. `exp` is required: a token that never expires would stay in every cache.
pub fn check_times(claims: &Map<String, Value>, now: u64, leeway: u64) -> Result<u64, AuthError> {
    let exp = numeric(claims, "exp")?.ok_or(AuthError::Malformed("JWT has no exp claim"))?;
    if now > exp.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = numeric(claims, "nbf")?
        && now.saturating_add(leeway) < nbf
    {
        return Err(AuthError::NotYetValid);
    }
    Ok(exp)
}

fn numeric(claims: &Map<String, Value>, key: &'static str) -> Result<Option<u64>, AuthError> {
    match claims.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or(AuthError::Malformed("JWT time claim is not a number")),
    }
}

/// Whether the `aud` claim (a string or an array of strings) names one of `accepted`.
pub fn audience_matches(claims: &Map<String, Value>, accepted: &[String]) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => accepted.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| accepted.iter().any(|x| x == a)),
        _ => false,
    }
}
