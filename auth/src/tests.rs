//! Token checks against real signatures: keys are generated with `ring` and tokens signed
//! here, so every forgery case (alg none, HMAC keyed with the public key, a tampered payload,
//! another key) meets the same verifier the gateway uses.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sluice_config::JwtAlgorithm;

use crate::error::AuthError;
use crate::jwk::{self, Curve, PublicKey, VerifyingKey};
use crate::jwt;

struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Signer {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Signer { key, rng }
    }

    fn public(&self, kid: &str) -> VerifyingKey {
        VerifyingKey {
            kid: Some(kid.to_owned()),
            alg: None,
            key: PublicKey::Ec {
                curve: Curve::P256,
                point: self.key.public_key().as_ref().to_vec(),
            },
        }
    }

    fn jwk(&self, kid: &str) -> Value {
        let p = self.key.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
               "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65])})
    }

    fn token(&self, header: Value, claims: Value) -> String {
        let mut t = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.key.sign(&self.rng, t.as_bytes()).unwrap();
        t.push('.');
        t.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        t
    }
}

fn claims() -> Value {
    json!({"iss": "http://127.0.0.1:1", "sub": "alice", "aud": "sluice", "exp": 2_000, "nbf": 1_000})
}

#[test]
fn a_signed_token_verifies_and_a_tampered_one_does_not() {
    let s = Signer::new();
    let token = s.token(json!({"alg": "ES256", "kid": "k1"}), claims());
    let parsed = jwt::parse(&token).unwrap();
    let alg = parsed.algorithm(&[JwtAlgorithm::ES256]).unwrap();
    assert_eq!(parsed.verify(alg, &s.public("k1")), Ok(()));
    assert_eq!(
        parsed.verify(alg, &Signer::new().public("k1")),
        Err(AuthError::Signature)
    );

    let (head, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged_claims = URL_SAFE_NO_PAD.encode(json!({"sub": "mallory", "exp": 2_000}).to_string());
    let forged = format!("{head}.{forged_claims}.{sig}");
    let parsed = jwt::parse(&forged).unwrap();
    assert_eq!(
        parsed.verify(alg, &s.public("k1")),
        Err(AuthError::Signature)
    );
}

#[test]
fn none_and_hmac_are_refused_before_any_key_is_used() {
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let parsed = jwt::parse(&unsigned).unwrap();
    assert!(
        matches!(parsed.algorithm(&JwtAlgorithm::ALL), Err(AuthError::Algorithm(a)) if a == "none")
    );

    let s = Signer::new();
    let hs = s.token(json!({"alg": "HS256", "kid": "k1"}), claims());
    let parsed = jwt::parse(&hs).unwrap();
    assert!(matches!(
        parsed.algorithm(&JwtAlgorithm::ALL),
        Err(AuthError::Algorithm(_))
    ));

    let rs = s.token(json!({"alg": "RS256", "kid": "k1"}), claims());
    let parsed = jwt::parse(&rs).unwrap();
    assert!(
        parsed.algorithm(&[JwtAlgorithm::ES256]).is_err(),
        "alg is pinned by config"
    );
    assert_eq!(
        parsed.verify(JwtAlgorithm::RS256, &s.public("k1")),
        Err(AuthError::UnknownKey),
        "an EC key never verifies an RSA algorithm"
    );
}

#[test]
fn time_and_audience_claims_are_checked_with_leeway() {
    let c = claims();
    let c = c.as_object().unwrap();
    assert_eq!(jwt::check_times(c, 1_500, 0), Ok(2_000));
    assert_eq!(jwt::check_times(c, 2_001, 0), Err(AuthError::Expired));
    assert_eq!(jwt::check_times(c, 2_030, 30), Ok(2_000));
    assert_eq!(jwt::check_times(c, 999, 0), Err(AuthError::NotYetValid));
    assert_eq!(jwt::check_times(c, 990, 10), Ok(2_000));
    let no_exp = json!({"sub": "x"});
    assert!(matches!(
        jwt::check_times(no_exp.as_object().unwrap(), 1, 0),
        Err(AuthError::Malformed(_))
    ));
    assert!(jwt::audience_matches(c, &["sluice".into()]));
    assert!(!jwt::audience_matches(c, &["other".into()]));
    let many = json!({"aud": ["a", "sluice"]});
    assert!(jwt::audience_matches(
        many.as_object().unwrap(),
        &["sluice".into()]
    ));
}

#[test]
fn malformed_tokens_are_refused_without_panicking() {
    for bad in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "!!!.e30.",
        "e30.!!!.",
        "e30.e30.!!!",
        "W10.e30.",
        "e30.W10.",
    ] {
        assert!(jwt::parse(bad).is_err(), "{bad:?}");
    }
    let huge = "a".repeat(jwt::MAX_TOKEN_BYTES + 1);
    assert!(jwt::parse(&huge).is_err());
    let crit = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","crit":["x"]}"#),
        URL_SAFE_NO_PAD.encode("{}")
    );
    assert!(
        jwt::parse(&crit).is_err(),
        "unknown critical extensions are refused"
    );
}

#[test]
fn key_sets_keep_usable_signing_keys_only() {
    let s = Signer::new();
    let doc = json!({"keys": [
        s.jwk("k1"),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny-rsa"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "short"},
        {"kty": "EC", "crv": "P-256", "use": "enc", "kid": "enc"},
        {"kty": "EC", "crv": "P-256", "alg": "HS256", "kid": "odd-alg"}
    ]});
    let keys = jwk::parse_jwks(doc.to_string().as_bytes()).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0], s.public("k1"));
    let by_kid: Vec<_> = jwk::candidates(&keys, Some("k1"), JwtAlgorithm::ES256).collect();
    assert_eq!(by_kid.len(), 1);
    assert_eq!(
        jwk::candidates(&keys, Some("k2"), JwtAlgorithm::ES256).count(),
        0
    );
    assert_eq!(jwk::candidates(&keys, None, JwtAlgorithm::ES256).count(), 1);
    assert_eq!(jwk::candidates(&keys, None, JwtAlgorithm::RS256).count(), 0);
    assert!(matches!(
        jwk::parse_jwks(br#"{"keys":[{"kty":"oct","k":"AA"}]}"#),
        Err(jwk::JwksError::NoUsableKey(1))
    ));
    assert!(jwk::parse_jwks(b"[]").is_err());
}
