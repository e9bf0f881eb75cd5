//! JSON Web Keys: a provider's published key set turned into `ring` public keys once per
//! fetch, so verifying a token never parses a key. Keys that cannot verify signatures (other
//! key types, `use: enc`, RSA below 2048 bits, unknown curves) are skipped, not fatal: an IdP
//! may publish keys for other purposes beside its signing keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sluice_config::JwtAlgorithm;

/// A public key ready for `ring`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA modulus and exponent, big-endian.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// An uncompressed EC point (`0x04 || x || y`).
    Ec {
        /// `P-256` or `P-384`.
        curve: Curve,
        /// The point.
        point: Vec<u8>,
    },
}

/// The EC curves JWS uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (ES256).
    P256,
    /// NIST P-384 (ES384).
    P384,
}

/// One usable key of a key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// The key id, if the JWK has one.
    pub kid: Option<String>,
    /// The algorithm the JWK is restricted to, if it says.
    pub alg: Option<JwtAlgorithm>,
    /// The key.
    pub key: PublicKey,
}

impl VerifyingKey {
    /// Whether this key may verify a signature made with `alg`.
    pub fn fits(&self, alg: JwtAlgorithm) -> bool {
        if self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        use JwtAlgorithm as A;
        let rsa = matches!(
            alg,
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512
        );
        match &self.key {
            PublicKey::Rsa { .. } => rsa,
            PublicKey::Ec { curve, .. } => {
                matches!(
                    (curve, alg),
                    (Curve::P256, A::ES256) | (Curve::P384, A::ES384)
                )
            }
        }
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(rename = "use", default)]
    use_: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// Why a key set document was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Not `{"keys": [...]}`.
    #[error("not a JWK set: {0}")]
    NotAKeySet(String),
    /// No key in it can verify signatures.
    #[error("the JWK set holds no usable signing key ({0} keys skipped)")]
    NoUsableKey(usize),
}

/// Most keys taken from one set; a key set is a handful of keys, not thousands.
pub const MAX_KEYS: usize = 64;

/// The usable keys of a JWKS document.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<VerifyingKey>, JwksError> {
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|e| JwksError::NotAKeySet(e.to_string()))?;
    let total = set.keys.len();
    let keys: Vec<VerifyingKey> = set
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter_map(|k| usable(&k))
        .take(MAX_KEYS)
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey(total));
    }
    Ok(keys)
}

fn usable(k: &Jwk) -> Option<VerifyingKey> {
    if k.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let alg = match &k.alg {
        None => None,
        Some(a) => Some(JwtAlgorithm::from_name(a)?),
    };
    let b64 = |s: &Option<String>| s.as_deref().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
    let key = match k.kty.as_str() {
        "RSA" => {
            let n = strip_zeros(b64(&k.n)?);
            let e = strip_zeros(b64(&k.e)?);
            if n.len() < 256 || e.is_empty() {
                return None;
            }
            PublicKey::Rsa { n, e }
        }
        "EC" => {
            let (curve, len) = match k.crv.as_deref()? {
                "P-256" => (Curve::P256, 32),
                "P-384" => (Curve::P384, 48),
                _ => return None,
            };
            let (x, y) = (b64(&k.x)?, b64(&k.y)?);
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::Ec { curve, point }
        }
        _ => return None,
    };
    Some(VerifyingKey {
        kid: k.kid.clone(),
        alg,
        key,
    })
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let lead = v.iter().take_while(|&&b| b == 0).count();
    v.drain(..lead);
    v
}

/// The keys of `keys` that may verify a token with `kid` under `alg`: the key with that id,
/// or, for a token without `kid`, every key that fits the algorithm.
pub fn candidates<'k>(
    keys: &'k [VerifyingKey],
    kid: Option<&'k str>,
    alg: JwtAlgorithm,
) -> impl Iterator<Item = &'k VerifyingKey> + 'k {
    keys.iter()
        .filter(move |k| k.fits(alg) && (kid.is_none() || k.kid.as_deref() == kid))
}
