//! Bearer tokens and JWTs (`sluice-auth`), with a fixed key set so nothing goes to the network.
//!
//! The authenticator is the real one, built from a config with a static token, Sluice's own
//! issuer (an embedded P-256 key) and a provider the gateway does not accept, so no token can
//! make it fetch keys; it must answer every input at once. The first byte picks a mode:
//!
//! - 0: the rest as the `Authorization` value; 1: the rest as the token of `Bearer <token>`;
//! - 2: a header and claims from the bytes, signed with the issuer's key, so the checks after
//!   the signature (typ, alg, exp/nbf, aud) meet any JSON;
//! - 3: the rest as a JWKS document (what an identity provider serves).
//!
//! Checked: nothing panics; `authenticate` never waits (no fetch); it accepts only the static
//! token or a token this harness signed, for the gateway's own audience, unexpired; a token the
//! parser accepts has the shape the authenticator's pre-filter looks for; only harness-signed
//! tokens verify against the fixed key set; every refusal gives a `WWW-Authenticate` challenge
//! that is a valid header value; usable JWKS keys are well formed and never panic the verifier.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::Value;
use sluice_auth::jwk::{self, PublicKey, VerifyingKey};
use sluice_auth::jwt::{self, MAX_TOKEN_BYTES};
use sluice_auth::{AuthError, Authenticator, GatewayPolicy, Identity, Source};
use sluice_config::JwtAlgorithm;
use sluice_proxy::error::GatewayError;

use super::shown;
use crate::input::Input;
use crate::shape;

/// The issuer's signing key: a P-256 key made for this harness, never used anywhere else.
const ISSUER_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgMK6aA6Sz8BOb5wnM
FQD00hGn8gYJIuCu/0eXaqPEN2yhRANCAASbHHZmN/fnZ5eZsKQKHwLFF5xIa+wW
XyymFVtjQmtq9bJZvh71+Wn6iUBpg/qq7aAWB6MWD5+Azhe3bax8ldTB
-----END PRIVATE KEY-----
";
/// The modulus of a 2048-bit RSA key made for this harness (base64url).
const RSA_N: &str = "iLCM_bydLqH0crQiWNNY8vIaoN_8wdo6gPql4tTBY790O1xtho3mjyqTiZKMg0qU3_LOnBGA1tm7qPyPF09z6D9zymLIMqjW8iEGy_QbF-iWD5WnbWSCHISsOll8MdLbZbsdZFzVAWk43rmjF6-fv5YCEhYqWsKoBocxeO-Zq-Xkp1TeM5Ii2IN3bbwZ5WJUCQF82bdpg2PTVWbxkl7CF-7TV2LJ0pm-18Jw2umnhJM7Sm9KgI9vP6n728Poqw0qj7axPrzrI4Cn8gj8IWUFaxGh2K517b0tub2lqFbhnLaQCnPtG1sSjePfbTG4ySM5WKtqA4AF_IM7Ea8R3zDZxw";
/// `auth.public_url`: the issuer identifier.
pub const PUBLIC_URL: &str = "https://gw.example";
/// The gateway's resource, the audience of issued tokens.
pub const RESOURCE: &str = "https://gw.example/mcp/dev";
/// The one static token.
pub const STATIC_TOKEN: &str = "fuzz-static-token-0123456789";
/// "Now" for every check.
pub const NOW: u64 = 1_800_000_000;

/// Token material the mutator splices in.
pub const DICTIONARY: &[&[u8]] = &[
    b"Bearer ",
    b"bearer ",
    b"Basic ",
    b".",
    b"eyJ",
    b"e30",
    b"\"alg\"",
    b"\"ES256\"",
    b"\"RS256\"",
    b"\"none\"",
    b"\"HS256\"",
    b"\"typ\"",
    b"\"at+jwt\"",
    b"\"oauth-id-jag+jwt\"",
    b"\"kid\"",
    b"\"crit\"",
    b"\"iss\"",
    b"\"https://gw.example\"",
    b"\"https://idp.example\"",
    b"\"aud\"",
    b"\"https://gw.example/mcp/dev\"",
    b"\"exp\"",
    b"\"nbf\"",
    b"\"sub\"",
    b"1900000000",
    b"1800000000",
    b"1.8e9",
    b"-1",
    b"\"keys\"",
    b"\"kty\"",
    b"\"EC\"",
    b"\"RSA\"",
    b"\"crv\"",
    b"\"P-256\"",
    b"\"P-384\"",
    b"\"use\"",
    b"\"sig\"",
    b"\"n\"",
    b"\"e\"",
    b"\"AQAB\"",
    b"\"x\"",
    b"\"y\"",
];

struct Fixture {
    auth: Authenticator,
    policy: GatewayPolicy,
    /// The fixed key set: the issuer's EC key (`fuzz-ec`) and an RSA key (`fuzz-rsa`).
    keys: Vec<VerifyingKey>,
    signer: EcdsaKeyPair,
    rng: SystemRandom,
    /// SHA-256 of the signing inputs this harness signed: the only ones that may verify.
    signed: Mutex<HashSet<[u8; 32]>>,
    /// A token signed at start, verified against every key of a fuzzed JWKS.
    sample: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

fn build() -> Fixture {
    // The config loader and the issuer read the key from a file; it is removed once loaded.
    let path = std::env::temp_dir().join(format!(
        "sluice-fuzz-issuer-{}-{:?}.pem",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, ISSUER_KEY_PEM).expect("write the issuer key to the temp dir");
    let toml = format!(
        r#"
[auth]
public_url = "{PUBLIC_URL}"

[[auth.tokens]]
name = "ci"
token = "{STATIC_TOKEN}"

[[auth.providers]]
name = "idp"
issuer = "https://idp.example"
audiences = ["sluice"]
jwks_url = "http://127.0.0.1:9/jwks"

[auth.issuer]
signing_key_file = '{}'
trusted_providers = ["idp"]

[[auth.issuer.clients]]
client_id = "fuzz-client"
client_secret = "fuzz-client-secret-0123456789"

[[servers]]
name = "docs"
url = "http://127.0.0.1:9/mcp"

[[gateways]]
name = "dev"
servers = ["docs"]

[gateways.auth]
tokens = true
id_jag = true
"#,
        path.display()
    );
    let config = sluice_config::load_str(&toml, "fuzz-auth.toml", &|_| None);
    let auth = config
        .as_ref()
        .ok()
        .map(|c| Authenticator::new(&c.auth, &["dev".to_owned()]));
    let _ = std::fs::remove_file(&path);
    let config = config.unwrap_or_else(|e| panic!("the harness's auth config: {e}"));
    let auth = auth
        .expect("config loaded")
        .unwrap_or_else(|e| panic!("the harness's authenticator: {e}"));
    let gateway_auth = config.gateways[0].auth.as_ref().expect("[gateways.auth]");
    let policy = auth.policy("dev", gateway_auth);
    assert_eq!(policy.resource.as_deref(), Some(RESOURCE));
    assert!(policy.providers.is_empty(), "no provider: nothing to fetch");

    let rng = SystemRandom::new();
    let body: String = ISSUER_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(body).expect("PEM body");
    let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        .expect("a P-256 PKCS#8 key");
    let point = signer.public_key().as_ref();
    let jwks = serde_json::json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "fuzz-ec", "use": "sig",
         "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])},
        {"kty": "RSA", "kid": "fuzz-rsa", "n": RSA_N, "e": "AQAB", "alg": "RS256"},
    ]});
    let keys = jwk::parse_jwks(jwks.to_string().as_bytes()).expect("the fixed key set");
    assert_eq!(keys.len(), 2);
    let mut fixture = Fixture {
        auth,
        policy,
        keys,
        signer,
        rng,
        signed: Mutex::new(HashSet::new()),
        sample: String::new(),
    };
    fixture.sample = sign(
        &fixture,
        br#"{"alg":"ES256","kid":"fuzz-ec"}"#,
        br#"{"iss":"https://idp.example","sub":"alice","aud":"sluice","exp":1900000000}"#,
    );
    fixture
}

/// A compact JWS of `header` and `claims` (any bytes) signed with the issuer's key.
fn sign(f: &Fixture, header: &[u8], claims: &[u8]) -> String {
    let mut token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = f
        .signer
        .sign(&f.rng, token.as_bytes())
        .expect("ECDSA signing");
    f.signed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(digest(&token));
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
    token
}

/// The `header.claims` part of a compact JWS.
fn signing_input(token: &str) -> &str {
    let mut dots = token.match_indices('.').map(|(i, _)| i);
    let _ = dots.next();
    match dots.next() {
        Some(i) => &token[..i],
        None => token,
    }
}

fn digest(signing_input: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, signing_input.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn harness_signed(f: &Fixture, token: &str) -> bool {
    f.signed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&digest(signing_input(token)))
}

/// Polls a future once: the authenticator must answer without waiting when it has no
/// provider to fetch keys from.
fn at_once<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("authenticate waited (a key fetch?) with no provider accepted"),
    }
}

/// Runs one input.
pub fn run(data: &[u8]) -> u64 {
    let mut input = Input::new(data);
    match input.byte() % 4 {
        0 => header(input.rest()),
        1 => {
            let mut value = b"Bearer ".to_vec();
            value.extend_from_slice(input.rest());
            header(&value)
        }
        2 => signed(&mut input),
        _ => jwks(input.rest()),
    }
}

fn header(value: &[u8]) -> u64 {
    let token = match sluice_auth::bearer(Some(value)) {
        Ok(token) => {
            assert!(
                !token.is_empty()
                    && token.len() <= MAX_TOKEN_BYTES
                    && token.bytes().all(|b| b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')),
                "bearer() returned {token:?}"
            );
            Some(token)
        }
        Err(_) => None,
    };
    let outcome = authenticate(value, token);
    let pipeline = token.map_or(0, pipeline);
    shape(&[0, outcome, pipeline])
}

fn signed(input: &mut Input<'_>) -> u64 {
    let f = fixture();
    let header: Vec<u8> = match input.byte() % 4 {
        0 => input.sized(300).to_vec(),
        1 => br#"{"alg":"ES256","kid":"fuzz-ec"}"#.to_vec(),
        _ => br#"{"alg":"ES256","typ":"at+jwt"}"#.to_vec(),
    };
    let token = sign(f, &header, input.rest());
    let outcome = authenticate(format!("Bearer {token}").as_bytes(), Some(&token));
    let pipeline = pipeline(&token);
    shape(&[2, outcome, pipeline])
}

fn authenticate(value: &[u8], token: Option<&str>) -> u64 {
    let f = fixture();
    let result = at_once(f.auth.authenticate(&f.policy, Some(value), NOW));
    match result {
        Ok(identity) => {
            accepted(f, &identity, token.unwrap_or_default());
            1
        }
        Err(e) => {
            refused(&e);
            10 + e.reason_index() as u64
        }
    }
}

fn accepted(f: &Fixture, identity: &Arc<Identity>, token: &str) {
    match &identity.source {
        Source::Token => assert_eq!(token, STATIC_TOKEN, "accepted as the static token"),
        Source::Issued { audience } => {
            assert!(
                harness_signed(f, token),
                "accepted a token nobody signed: {token}"
            );
            assert_eq!(audience, RESOURCE);
            assert_eq!(identity.issuer.as_deref(), Some(PUBLIC_URL));
            let exp = identity.expires_at.expect("an issued token expires");
            assert!(NOW <= exp, "accepted a token that expired at {exp}");
            let (header, claims) = decode_parts(token);
            assert!(
                header["typ"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")),
                "typ: {header}"
            );
            assert_eq!(header["alg"], "ES256", "alg");
            let audience_ok = match &claims["aud"] {
                Value::String(a) => a == RESOURCE,
                Value::Array(list) => list.iter().any(|a| a == RESOURCE),
                _ => false,
            };
            assert!(audience_ok, "aud: {claims}");
        }
        Source::Provider(_) => panic!("accepted a provider's token with no provider accepted"),
    }
}

fn decode_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = || {
        let bytes = URL_SAFE_NO_PAD
            .decode(parts.next().unwrap_or_default())
            .expect("an accepted token is base64url");
        serde_json::from_slice::<Value>(&bytes).expect("an accepted token is JSON")
    };
    let header = part();
    let claims = part();
    (header, claims)
}

fn refused(e: &AuthError) {
    let text = e.to_string();
    let body = sluice_proxy::reply::error_body(None, -32001, &text);
    let _: Value = serde_json::from_slice(&body).expect("an error body is JSON");
    let error = GatewayError::Unauthorized {
        error: e.clone(),
        metadata_url: format!("{PUBLIC_URL}/.well-known/oauth-protected-resource/mcp/dev"),
    };
    let challenge = error.challenge().expect("a 401 has a challenge");
    assert!(
        http::HeaderValue::from_str(&challenge).is_ok(),
        "WWW-Authenticate is not a valid header value: {challenge:?}"
    );
}

/// The provider path with the fixed key set: parse, algorithm, key choice, signature, times,
/// audience.
fn pipeline(token: &str) -> u64 {
    let f = fixture();
    let unverified = match jwt::parse(token) {
        Ok(u) => u,
        Err(_) => return 1,
    };
    assert!(
        jwt::looks_like_jwt(token),
        "parse accepted what the pre-filter refuses: {}",
        shown(token.as_bytes())
    );
    let Ok(alg) = unverified.algorithm(&JwtAlgorithm::ALL) else {
        return 2;
    };
    let kid = unverified.header.kid.as_deref();
    let mut verified = false;
    for key in jwk::candidates(&f.keys, kid, alg) {
        verified |= unverified.verify(alg, key).is_ok();
    }
    if verified {
        assert!(
            harness_signed(f, token),
            "a token nobody signed verifies: {token}"
        );
    }
    let times = jwt::check_times(&unverified.claims, NOW, 30);
    if let Ok(exp) = times {
        assert!(NOW <= exp.saturating_add(30), "expired at {exp}");
    }
    let audience = jwt::audience_matches(&unverified.claims, &["sluice".to_owned()]);
    shape(&[
        3,
        alg as u64,
        u64::from(verified),
        times.map_or_else(|e| e.reason_index() as u64, |_| 99),
        u64::from(audience),
    ])
}

fn jwks(document: &[u8]) -> u64 {
    let f = fixture();
    let keys = match jwk::parse_jwks(document) {
        Ok(keys) => keys,
        Err(jwk::JwksError::NoUsableKey(_)) => return shape(&[4, 0, 1]),
        Err(_) => return shape(&[4, 0, 0]),
    };
    assert!(
        !keys.is_empty() && keys.len() <= jwk::MAX_KEYS,
        "{} keys",
        keys.len()
    );
    let sample = jwt::parse(&f.sample).expect("the sample token parses");
    for key in &keys {
        match &key.key {
            PublicKey::Rsa { n, e } => assert!(
                n.len() >= 256 && n[0] != 0 && !e.is_empty() && e[0] != 0,
                "an unusable RSA key passed: n {} bytes, e {e:?}",
                n.len()
            ),
            PublicKey::Ec { point, .. } => assert!(
                matches!(point.len(), 65 | 97) && point[0] == 4,
                "an unusable EC point passed: {point:?}"
            ),
        }
        for alg in JwtAlgorithm::ALL {
            if key.fits(alg) {
                let _ = sample.verify(alg, key);
            }
        }
    }
    shape(&[4, 1, keys.len().min(4) as u64])
}
