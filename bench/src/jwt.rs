//! An ES256 signing key made for one comparison, its JWKS and a token signed with it, so
//! the JWT scenario needs no identity provider: the mock upstream serves the JWKS.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::json;

/// The `iss` of bench tokens.
pub const ISSUER: &str = "https://sluice-bench.invalid";
/// The `aud` of bench tokens.
pub const AUDIENCE: &str = "sluice";
const KID: &str = "bench-1";

pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Signer {
    pub fn generate() -> Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow!("generating a P-256 key failed"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow!("loading the generated P-256 key failed"))?;
        Ok(Self { key, rng })
    }

    /// `{"keys":[…]}` with the public key.
    pub fn jwks(&self) -> String {
        // Uncompressed point: 0x04 || X (32 bytes) || Y (32 bytes).
        let point = self.key.public_key().as_ref();
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KID,
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        }]})
        .to_string()
    }

    /// A token for `sub` valid for an hour.
    pub fn token(&self, sub: &str) -> Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": KID});
        let claims =
            json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 3600});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| anyhow!("signing failed"))?;
        Ok(format!("{input}.{}", B64.encode(signature.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn tokens_verify_against_the_published_key() {
        let signer = Signer::generate().unwrap();
        let token = signer.token("bench").unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let jwks: serde_json::Value = serde_json::from_str(&signer.jwks()).unwrap();
        let key = &jwks["keys"][0];
        let mut point = vec![4u8];
        point.extend(B64.decode(key["x"].as_str().unwrap()).unwrap());
        point.extend(B64.decode(key["y"].as_str().unwrap()).unwrap());
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(input.as_bytes(), &B64.decode(sig).unwrap())
            .unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["iss"], ISSUER);
    }
}
