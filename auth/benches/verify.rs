//! Cold and warm costs of gateway authentication, per token:
//! - `cold/rs256`, `cold/es256`: parse a JWT and check its signature (what a token costs the
//!   first time it is seen; the inverse is signature checks per second per core);
//! - `warm/static_token`: the whole `Authenticator::authenticate` of a static bearer token
//!   (SHA-256 of the token, one hash lookup) — the same work as a cached JWT.
//!
//! RS256 material is a fixture made by oauth2-mock-server (public key and a token only);
//! ES256 keys are generated with ring at start.

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sluice_auth::jwk::{self, Curve, PublicKey, VerifyingKey};
use sluice_auth::{Authenticator, jwt};
use sluice_config::{AuthConfig, GatewayAuthConfig, JwtAlgorithm, StaticToken};

fn rs256() -> (VerifyingKey, String) {
    let fixture: Value =
        serde_json::from_str(include_str!("rs256-fixture.json")).expect("fixture is JSON");
    let keys = jwk::parse_jwks(fixture["jwks"].to_string().as_bytes()).expect("usable key");
    (
        keys[0].clone(),
        fixture["token"].as_str().unwrap().to_owned(),
    )
}

fn es256() -> (VerifyingKey, String) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"ec","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": "http://127.0.0.1:8999", "sub": "bench", "aud": "sluice", "exp": 1_800_003_600u64, "groups": ["eng"]})
            .to_string(),
    );
    let mut token = format!("{header}.{claims}");
    let sig = key.sign(&rng, token.as_bytes()).unwrap();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
    let public = VerifyingKey {
        kid: Some("ec".into()),
        alg: None,
        key: PublicKey::Ec {
            curve: Curve::P256,
            point: key.public_key().as_ref().to_vec(),
        },
    };
    (public, token)
}

fn cold(c: &mut Criterion) {
    for (name, (key, token), alg) in [
        ("cold/rs256", rs256(), JwtAlgorithm::RS256),
        ("cold/es256", es256(), JwtAlgorithm::ES256),
    ] {
        let parsed = jwt::parse(&token).unwrap();
        assert_eq!(parsed.verify(alg, &key), Ok(()), "{name} fixture verifies");
        c.bench_function(name, |b| {
            b.iter(|| {
                let t = jwt::parse(black_box(&token)).unwrap();
                t.verify(alg, &key).unwrap();
            })
        });
    }
}

fn warm(c: &mut Criterion) {
    use sha2::Digest;
    let token = "bench-static-token-0123456789abcdef";
    let cfg = AuthConfig {
        tokens: vec![StaticToken {
            name: "bench".into(),
            sha256: sha2::Sha256::digest(token.as_bytes()).into(),
            claims: Default::default(),
        }],
        ..AuthConfig::default()
    };
    let auth = Authenticator::new(&cfg, &[]).unwrap();
    let policy = auth.policy(
        "bench",
        &GatewayAuthConfig {
            tokens: true,
            ..GatewayAuthConfig::default()
        },
    );
    let header = format!("Bearer {token}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    c.bench_function("warm/static_token", |b| {
        b.iter(|| {
            rt.block_on(auth.authenticate(&policy, Some(black_box(header.as_bytes())), 1))
                .unwrap()
        })
    });
}

/// A JWT served from the validated-token cache: a token Sluice's own issuer signed, validated
/// once, then authenticated again and again (SHA-256 plus one cache lookup).
fn warm_jwt(c: &mut Criterion) {
    use sluice_config::{IssuerClient, IssuerConfig};
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
    );
    let key_file =
        std::env::temp_dir().join(format!("sluice-bench-key-{}.pem", std::process::id()));
    std::fs::write(&key_file, pem).unwrap();
    let cfg = AuthConfig {
        public_url: Some("http://127.0.0.1:8080".parse().unwrap()),
        issuer: Some(IssuerConfig {
            signing_key_file: key_file.clone(),
            token_lifetime: std::time::Duration::from_secs(300),
            trusted_providers: vec![],
            clients: Vec::<IssuerClient>::new(),
        }),
        ..AuthConfig::default()
    };
    let auth = Authenticator::new(&cfg, &["bench".to_owned()]).unwrap();
    let _ = std::fs::remove_file(&key_file);
    let policy = auth.policy(
        "bench",
        &GatewayAuthConfig {
            id_jag: true,
            ..GatewayAuthConfig::default()
        },
    );
    let now = 1_800_000_000u64;
    let token = auth
        .issuer()
        .unwrap()
        .sign(&json!({"iss": "http://127.0.0.1:8080", "sub": "bench", "aud": "http://127.0.0.1:8080/mcp/bench", "exp": now + 3600}))
        .unwrap();
    let header = format!("Bearer {token}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(auth.authenticate(&policy, Some(header.as_bytes()), now))
        .expect("the issued token validates");
    c.bench_function("warm/jwt_cached", |b| {
        b.iter(|| {
            rt.block_on(auth.authenticate(&policy, Some(black_box(header.as_bytes())), now))
                .unwrap()
        })
    });
}

criterion_group!(benches, cold, warm, warm_jwt);
criterion_main!(benches);
