//! Gateway authentication end to end: the real `sluice` binary in front of the bundled example
//! server, tokens from a real OAuth/OIDC provider (oauth2-mock-server from npm, serving its
//! JWKS over HTTP on 127.0.0.1), and the official Python SDK's OAuth client for discovery and
//! the ID-JAG grant.

mod harness;

use std::net::SocketAddr;

use base64::Engine;
use harness::idp::Idp;
use harness::{Raw, RawResponse, Sluice, example_server, free_port, temp_path};
use serde_json::{Value, json};

const CI_TOKEN: &str = "ci-bot-token-0123456789abcdef";
const CLIENT_SECRET: &str = "agent-secret-0123456789abcdef";
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// A fresh P-256 PKCS#8 key in PEM, for `[auth.issuer]`.
fn signing_key() -> std::path::PathBuf {
    let rng = ring::rand::SystemRandom::new();
    let der = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .expect("generate a key");
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let path = temp_path("issuer-key.pem");
    std::fs::write(&path, pem).expect("write key");
    path
}

struct World {
    sluice: Sluice,
    idp: Idp,
    base: String,
    key: std::path::PathBuf,
    _upstream: harness::ChildGuard,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key);
    }
}

impl World {
    async fn start() -> World {
        let upstream = example_server().await;
        let idp = Idp::start();
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let base = format!("http://{listen}");
        let dead = free_port();
        let key = signing_key();
        let body = format!(
            r#"
[auth]
public_url = "{base}"

[[auth.tokens]]
name = "ci-bot"
token = "{CI_TOKEN}"
claims = {{ team = "platform" }}

[[auth.providers]]
name = "corp"
issuer = "{issuer}"
audiences = ["sluice"]
algorithms = ["RS256", "ES256"]
leeway = "5s"

[[auth.providers]]
name = "dead"
issuer = "http://127.0.0.1:{dead}"
audiences = ["sluice"]
jwks_url = "http://127.0.0.1:{dead}/jwks"

[auth.issuer]
signing_key_file = "{key}"
trusted_providers = ["corp"]
[[auth.issuer.clients]]
client_id = "agent-1"
client_secret = "{CLIENT_SECRET}"

[[servers]]
name = "example"
url = "http://{up}/mcp"

[[gateways]]
name = "dev"
servers = ["example"]
[gateways.auth]
tokens = true
providers = ["corp", "dead"]
id_jag = true
scopes = ["mcp:tools"]
[[gateways.auth.rules]]
tools = ["example__add"]
require = {{ groups = "eng" }}
[[gateways.auth.rules]]
tools = ["example__*"]

[[gateways]]
name = "ops"
servers = ["example"]
[gateways.auth]
tokens = true

[[gateways]]
name = "open"
servers = ["example"]
"#,
            issuer = idp.issuer,
            key = key.display(),
            up = upstream.addr,
        );
        let sluice = Sluice::start_at(listen, &body, "").await;
        sluice.wait_tools("open", 3).await;
        World {
            sluice,
            idp,
            base,
            key,
            _upstream: upstream,
        }
    }

    fn raw(&self, gateway: &str) -> Raw {
        Raw::new(self.sluice.url(gateway))
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn init_with(raw: &Raw, token: &str) -> RawResponse {
    raw.post_with(INIT, None, &[("authorization", &bearer(token))])
        .await
}

/// Initializes with `token` and returns the session id (asserting 200).
async fn session(raw: &Raw, token: &str) -> String {
    raw.initialize_with(&[("authorization", &bearer(token))])
        .await
}

async fn tools(raw: &Raw, token: &str) -> Vec<String> {
    let s = session(raw, token).await;
    let r = raw
        .post_with(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            Some(&s),
            &[("authorization", &bearer(token))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut names: Vec<String> = r.message()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn call(raw: &Raw, token: &str, tool: &str, args: Value) -> RawResponse {
    let s = session(raw, token).await;
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": tool, "arguments": args}});
    raw.post_with(
        &body.to_string(),
        Some(&s),
        &[("authorization", &bearer(token))],
    )
    .await
}

fn challenge(r: &RawResponse) -> String {
    r.headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn tokens_are_checked_and_every_refusal_says_why() {
    let mut w = World::start().await;
    let dev = w.raw("dev");
    let metadata = format!("{}/.well-known/oauth-protected-resource/mcp/dev", w.base);

    let none = dev.post(INIT, None).await;
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(
        challenge(&none),
        format!("Bearer resource_metadata=\"{metadata}\"")
    );
    assert_eq!(none.error_code(), Some(-32001));
    assert!(none.error_message().contains("requires a bearer token"));

    let wrong = init_with(&dev, "not-the-ci-token-0123456789").await;
    assert_eq!(wrong.status, 401);
    assert!(challenge(&wrong).starts_with("Bearer error=\"invalid_token\""));
    assert!(
        !wrong.body.contains("not-the-ci-token"),
        "the token is never echoed"
    );

    // Static token: team=platform, not eng, so example__add is hidden and refused.
    assert_eq!(
        tools(&dev, CI_TOKEN).await,
        ["example__echo", "example__time"]
    );
    let refused = call(&dev, CI_TOKEN, "example__add", json!({"a": 1, "b": 2})).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(challenge(&refused).contains("error=\"insufficient_scope\""));
    assert!(challenge(&refused).contains("scope=\"mcp:tools\""));
    let msg = refused.error_message();
    assert!(
        msg.contains("example__add") && msg.contains("groups = \"eng\""),
        "{msg}"
    );
    let ok = call(&dev, CI_TOKEN, "example__echo", json!({"text": "hi"})).await;
    assert_eq!(ok.message()["result"]["content"][0]["text"], "hi");

    // A provider's JWT with groups=[eng] sees and calls everything.
    let eng = w.idp.token(
        None,
        json!({"sub": "alice", "aud": "sluice", "groups": ["eng"]}),
    );
    assert_eq!(
        tools(&dev, &eng).await,
        ["example__add", "example__echo", "example__time"]
    );
    let sum = call(&dev, &eng, "example__add", json!({"a": 2, "b": 3})).await;
    assert_eq!(sum.status, 200, "{}", sum.body);
    let es = w
        .idp
        .token(Some("ec-1"), json!({"sub": "bob", "aud": ["x", "sluice"]}));
    assert_eq!(
        init_with(&dev, &es).await.status,
        200,
        "ES256 and an aud array"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cases = [
        (
            w.idp.token(None, json!({"aud": "sluice", "exp": now - 60})),
            "expired",
        ),
        (
            w.idp
                .token(None, json!({"aud": "sluice", "nbf": now + 600})),
            "not valid yet",
        ),
        (
            w.idp.token(None, json!({"aud": "someone-else"})),
            "audience",
        ),
        (
            w.idp
                .token(None, json!({"aud": "sluice", "iss": "http://127.0.0.1:1"})),
            "not accepted",
        ),
        (
            w.idp
                .cmd(json!({"op": "none", "claims": {"aud": "sluice"}}))["token"]
                .as_str()
                .unwrap()
                .to_owned(),
            "algorithm 'none'",
        ),
        (
            w.idp
                .cmd(json!({"op": "hs256", "claims": {"aud": "sluice"}}))["token"]
                .as_str()
                .unwrap()
                .to_owned(),
            "algorithm 'HS256'",
        ),
    ];
    for (token, why) in cases {
        let r = init_with(&dev, &token).await;
        assert_eq!(r.status, 401, "{why}: {}", r.body);
        assert!(
            r.error_message().contains(why),
            "{why}: {}",
            r.error_message()
        );
        assert!(challenge(&r).contains("invalid_token"));
    }

    // Per gateway: ops takes static tokens only, open takes anyone.
    assert_eq!(init_with(&w.raw("ops"), CI_TOKEN).await.status, 200);
    let jwt_on_ops = init_with(&w.raw("ops"), &eng).await;
    assert_eq!(jwt_on_ops.status, 401);
    assert_eq!(w.raw("open").post(INIT, None).await.status, 200);

    // The RFC 9728 document.
    let prm: Value = reqwest::get(&metadata).await.unwrap().json().await.unwrap();
    assert_eq!(prm["resource"], format!("{}/mcp/dev", w.base));
    let servers = prm["authorization_servers"].as_array().unwrap();
    assert_eq!(
        servers.len(),
        3,
        "corp, dead and Sluice's own issuer: {prm}"
    );
    assert_eq!(servers[0], w.idp.issuer);
    assert_eq!(servers[2], w.base);
    assert_eq!(prm["scopes_supported"], json!(["mcp:tools"]));
    let open_prm = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp/open",
        w.base
    ))
    .await
    .unwrap();
    assert_eq!(
        open_prm.status(),
        404,
        "a gateway without auth has no metadata"
    );
    w.sluice
        .wait_access("alice's call in the access log", |l| {
            l["caller"] == "corp:alice"
        })
        .await;
    let access = w.sluice.access_log();
    assert!(access.iter().any(|l| l["caller"] == "token:ci-bot"));
    let everything = format!("{}{access:?}", w.sluice.log());
    assert!(
        !everything.contains(CI_TOKEN) && !everything.contains(&eng),
        "tokens never reach a log"
    );
}

#[tokio::test]
async fn new_keys_are_fetched_on_demand_and_unknown_kid_storms_stay_bounded() {
    let mut w = World::start().await;
    let dev = w.raw("dev");
    let first = w.idp.token(None, json!({"sub": "a", "aud": "sluice"}));
    assert_eq!(init_with(&dev, &first).await.status, 200);

    // A key published after start-up is fetched when a token names it.
    w.idp
        .cmd(json!({"op": "add_key", "alg": "RS256", "kid": "rsa-2"}));
    let second = w
        .idp
        .token(Some("rsa-2"), json!({"sub": "b", "aud": "sluice"}));
    harness::poll(
        "the new key to be fetched",
        200,
        std::time::Duration::from_millis(50),
        || {
            let dev = &dev;
            let second = &second;
            async move { (init_with(dev, second).await.status == 200).then_some(()) }
        },
    )
    .await;

    // Fifty tokens naming keys nobody published: at most one extra key-set fetch.
    let (before, _) = w.idp.counts();
    let mut forged = Vec::new();
    for i in 0..50 {
        forged.push(w.idp.cmd(json!({"op": "token", "header_kid": format!("nope-{i}"), "claims": {"aud": "sluice"}}))["token"].as_str().unwrap().to_owned());
    }
    let answers = futures_util::future::join_all(forged.iter().map(|t| init_with(&dev, t))).await;
    for a in &answers {
        assert_eq!(a.status, 401);
        assert!(a.error_message().contains("no signing key"), "{}", a.body);
    }
    let (after, _) = w.idp.counts();
    assert!(
        after - before <= 1,
        "{} fetches for 50 unknown kids",
        after - before
    );

    // Rotation: every old key withdrawn. A token under the new key is accepted once the set
    // is refetched; a fresh token under a withdrawn key is then refused.
    let stale = w
        .idp
        .token(Some("ec-1"), json!({"sub": "c", "aud": "sluice"}));
    w.idp
        .cmd(json!({"op": "rotate", "alg": "ES256", "kid": "ec-2"}));
    let rotated = w
        .idp
        .token(Some("ec-2"), json!({"sub": "d", "aud": "sluice"}));
    harness::poll(
        "the rotated key set to be fetched",
        300,
        std::time::Duration::from_millis(50),
        || {
            let dev = &dev;
            let rotated = &rotated;
            async move { (init_with(dev, rotated).await.status == 200).then_some(()) }
        },
    )
    .await;
    let r = init_with(&dev, &stale).await;
    assert_eq!(
        r.status, 401,
        "a withdrawn key no longer verifies: {}",
        r.body
    );
}

#[tokio::test]
async fn a_down_idp_keeps_cached_keys_and_a_never_fetched_provider_fails_closed() {
    let mut w = World::start().await;
    let dev = w.raw("dev");
    let warm = w.idp.token(None, json!({"sub": "a", "aud": "sluice"}));
    assert_eq!(init_with(&dev, &warm).await.status, 200);
    w.idp.cmd(json!({"op": "down"}));
    let fresh = w.idp.token(None, json!({"sub": "b", "aud": "sluice"}));
    let r = init_with(&dev, &fresh).await;
    assert_eq!(
        r.status, 200,
        "cached keys verify a new token while the IdP is down: {}",
        r.body
    );

    // `dead` never answered: its tokens fail closed with a message naming it. The token's
    // issuer is dead's, signed by the live IdP (so only the keys are missing).
    let prm: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp/dev",
        w.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let dead = prm["authorization_servers"][1].as_str().unwrap().to_owned();
    let orphan = w.idp.token(None, json!({"aud": "sluice", "iss": dead}));
    let r = init_with(&dev, &orphan).await;
    assert_eq!(r.status, 401);
    assert!(
        r.error_message().contains("'dead' are unavailable"),
        "{}",
        r.body
    );
    w.idp.cmd(json!({"op": "up"}));
}

#[tokio::test]
async fn an_id_jag_is_exchanged_by_the_python_sdk_and_used_on_its_gateway() {
    let mut w = World::start().await;
    let url = w.sluice.url("dev");
    let id_jag = w
        .idp
        .cmd(json!({"op": "token", "typ": "oauth-id-jag+jwt", "claims": {
            "sub": "carol", "aud": w.base, "client_id": "agent-1", "resource": url,
            "groups": ["eng"], "scope": "mcp:tools", "jti": "jag-1"
        }}))["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // An ID-JAG is a grant, not an access token.
    let direct = init_with(&w.raw("dev"), &id_jag).await;
    assert_eq!(direct.status, 401);
    assert!(
        direct
            .error_message()
            .contains("ID-JAG is not an access token")
    );

    let out = tokio::process::Command::new(harness::sdk_peers::python())
        .arg(harness::sdk_peers::repo().join("tests/peers/python/auth_client.py"))
        .args([
            &url,
            "--issuer",
            &w.base,
            "--client-id",
            "agent-1",
            "--client-secret",
            CLIENT_SECRET,
        ])
        .args([
            "--assertion",
            &id_jag,
            "--call",
            "example__add",
            "--args",
            r#"{"a": 20, "b": 22}"#,
        ])
        .kill_on_drop(true)
        .output()
        .await
        .expect("run the Python SDK client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON from the client");
    assert_eq!(r["resource_allowed"], true, "{r}");
    assert_eq!(r["metadata"]["resource"], url);
    assert_eq!(r["assertion_requested_for"], json!([[w.base, url]]));
    assert_eq!(
        r["tools"],
        json!(["example__echo", "example__add", "example__time"])
    );
    assert_eq!(r["call"]["content"][0]["text"], "42");
    w.sluice
        .wait_access("carol's call in the access log", |l| {
            l["caller"] == "sluice:carol"
        })
        .await;

    // The token endpoint refuses what the draft says it must.
    let http = reqwest::Client::new();
    let token = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let endpoint = format!("{}/oauth/token", w.base);
        async move {
            let resp = http
                .post(endpoint)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_body(&form))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let base_form = |assertion: &str| {
        vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion.to_owned()),
            ("client_id", "agent-1".to_owned()),
            ("client_secret", CLIENT_SECRET.to_owned()),
        ]
    };
    let (status, ok) = token(base_form(&id_jag)).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["token_type"], "Bearer");
    let issued = ok["access_token"].as_str().unwrap().to_owned();
    assert_eq!(init_with(&w.raw("dev"), &issued).await.status, 200);
    assert_eq!(
        init_with(&w.raw("ops"), &issued).await.status,
        401,
        "issued for dev only"
    );

    let mut wrong_secret = base_form(&id_jag);
    wrong_secret[3].1 = "wrong-secret-0123456789abcdef".into();
    assert_eq!(token(wrong_secret).await.0, 401);
    let plain = w.idp.token(
        None,
        json!({"aud": w.base, "client_id": "agent-1", "resource": url}),
    );
    let (status, e) = token(base_form(&plain)).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "typ must be oauth-id-jag+jwt"
    );
    let elsewhere = w
        .idp
        .cmd(json!({"op": "token", "typ": "oauth-id-jag+jwt", "claims": {
            "sub": "carol", "aud": w.base, "client_id": "agent-1", "resource": w.sluice.url("ops")
        }}))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, e) = token(base_form(&elsewhere)).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_target")),
        "ops does not take ID-JAG tokens"
    );
    let mut grant = base_form(&id_jag);
    grant[0].1 = "password".into();
    assert_eq!(token(grant).await.1["error"], "unsupported_grant_type");

    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", w.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "only the public key is published"
    );
}

/// `application/x-www-form-urlencoded` for the token endpoint tests.
fn form_body(pairs: &[(&'static str, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
