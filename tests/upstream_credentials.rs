//! Upstream credentials end to end, against real peers: the official Python MCP SDK as the
//! upstream (it reports the headers it received through its `seen_headers` tool, and with
//! `--require-bearer` refuses any request without a JWT of a trusted issuer, as a protected MCP
//! server does), oidc-provider from npm as every token endpoint (`authz.mjs`), and
//! oauth2-mock-server from npm as the identity provider of the gateway's callers (`idp.mjs`).

mod harness;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use harness::authz::Authz;
use harness::idp::Idp;
use harness::sdk_peers::python_server_with;
use harness::{Raw, Sluice, temp_path};
use serde_json::{Value, json};

const STATIC_TOKEN: &str = "alice-gateway-token-0123456789";
const CLIENT_ID: &str = "sluice";
const CLIENT_SECRET: &str = "sluice-client-secret-0123456789";
/// Tools of the Python upstream; with `--require-bearer` it adds `revoke_my_token`.
const TOOLS: u64 = 10;
const PROTECTED_TOOLS: u64 = TOOLS + 1;
/// Concurrent first calls in the single-flight test.
const CONCURRENT: usize = 300;

/// The claims of a JWT (no verification: the upstream verified it).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The headers the upstream saw for one `seen_headers` call.
async fn seen(raw: &Raw, session: &str, headers: &[(&str, &str)]) -> Value {
    let msg = raw
        .call_tool_with(session, "up__seen_headers", json!({}), headers)
        .await;
    let text = msg["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("seen_headers failed: {msg}"));
    serde_json::from_str(text).expect("headers as JSON")
}

/// The bearer token the upstream received.
fn bearer(headers: &Value) -> String {
    headers["authorization"]
        .as_str()
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_else(|| panic!("no bearer reached the upstream: {headers}"))
        .to_owned()
}

/// The JSON-RPC error message of one `tools/call` by the caller holding `auth` (these calls
/// fail at the credential step, before any upstream); panics when the call did not fail.
async fn refusal(raw: &Raw, session: &str, auth: &str) -> String {
    let msg = raw
        .call_tool_with(
            session,
            "up__echo",
            json!({"text": "x"}),
            &[("authorization", auth)],
        )
        .await;
    msg["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("the call did not fail: {msg}"))
        .to_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn client(authz: &Authz) -> String {
    format!(
        "token_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n",
        authz.token_endpoint
    )
}

/// A gateway `g` over server `up` with `credential` (TOML keys of `[servers.credential]`) and
/// `more` (further tables of the server), accepting the static token and the IdP's JWTs.
fn config(port: u16, idp: &str, credential: &str, more: &str) -> String {
    format!(
        r#"
[[auth.tokens]]
name = "alice"
token = "{STATIC_TOKEN}"

[[auth.providers]]
name = "idp"
issuer = "{idp}"
audiences = ["sluice"]

[[servers]]
name = "up"
url = "http://127.0.0.1:{port}/mcp"

[servers.credential]
{credential}
{more}

[[gateways]]
name = "g"
servers = ["up"]
[gateways.auth]
tokens = true
providers = ["idp"]
"#
    )
}

/// A caller's JWT from the IdP, for the gateway (`aud = sluice`).
fn caller_jwt(idp: &mut Idp, sub: &str) -> String {
    idp.token(
        None,
        json!({"sub": sub, "aud": "sluice", "jti": format!("{sub}-{}", now())}),
    )
}

#[tokio::test]
async fn a_static_credential_reaches_the_upstream_and_the_gateway_token_does_not() {
    let up = python_server_with("up", false, None, &[]).await;
    let mut idp = Idp::start();
    let credential = "type = \"static\"\nheader = \"X-Api-Key\"\nvalue = \"upstream-api-key-1\"";
    let sluice = Sluice::start(&config(up.addr.port(), &idp.issuer, credential, "")).await;
    sluice.wait_tools("g", TOOLS).await;
    let raw = Raw::new(sluice.url("g"));
    let auth = format!("Bearer {STATIC_TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("cookie", "gateway-session=secret"),
    ];
    let session = raw.initialize_with(&headers).await;
    let h = seen(&raw, &session, &headers).await;
    assert_eq!(h["x-api-key"], "upstream-api-key-1");
    assert!(
        h.get("authorization").is_none(),
        "gateway token forwarded: {h}"
    );
    assert!(h.get("cookie").is_none(), "client cookie forwarded: {h}");

    // A JWT caller is treated the same way.
    let jwt = caller_jwt(&mut idp, "carol");
    let auth = format!("Bearer {jwt}");
    let h = seen(&raw, &session, &[("authorization", auth.as_str())]).await;
    assert!(
        h.get("authorization").is_none(),
        "caller JWT forwarded: {h}"
    );
    assert!(
        !sluice.log().contains("upstream-api-key-1"),
        "the secret reached the log"
    );
}

#[tokio::test]
async fn client_credentials_are_fetched_once_cached_and_injected_for_catalog_and_calls() {
    let mut authz = Authz::start(CLIENT_ID, CLIENT_SECRET);
    let issuer = authz.issuer.clone();
    let up = python_server_with("up", false, None, &["--require-bearer", &issuer]).await;
    let idp = Idp::start();
    let credential = format!(
        "type = \"oauth_client_credentials\"\n{}scopes = [\"tools.read\", \"tools.call\"]\nresource = \"https://upstream.example/mcp\"\nclient_auth = \"client_secret_post\"",
        client(&authz)
    );
    let sluice = Sluice::start(&config(up.addr.port(), &idp.issuer, &credential, "")).await;
    // The catalog fetch itself needs the token: the upstream refuses anything else.
    sluice.wait_tools("g", PROTECTED_TOOLS).await;
    let last = authz.last();
    assert_eq!(last["grant_type"], "client_credentials");
    assert_eq!(last["scope"], "tools.read tools.call");
    assert_eq!(last["resource"], "https://upstream.example/mcp");
    assert_eq!(last["client_auth"], "post");
    assert_eq!(last["client_id"], CLIENT_ID);

    let raw = Raw::new(sluice.url("g"));
    let auth = format!("Bearer {STATIC_TOKEN}");
    let headers = [("authorization", auth.as_str())];
    let session = raw.initialize_with(&headers).await;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(bearer(&seen(&raw, &session, &headers).await));
    }
    assert!(tokens.windows(2).all(|w| w[0] == w[1]), "one cached token");
    let c = claims(&tokens[0]);
    assert_eq!(c["iss"], issuer.as_str());
    assert_eq!(c["sub"], CLIENT_ID);
    assert_eq!(c["aud"], "https://upstream.example/mcp");
    assert_eq!(
        authz.grants().client_credentials,
        1,
        "one token request in all"
    );

    let metrics = reqwest::get(format!("http://{}/metrics", sluice.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"sluice_token_endpoint_requests_total{outcome="ok",server="up"} 1"#),
        "{metrics}"
    );
    let hits = metrics
        .lines()
        .find(|l| {
            l.starts_with(r#"sluice_credential_cache_requests_total{result="hit",server="up"}"#)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(hits >= 20, "{hits} cache hits");
    let token = &tokens[0];
    assert!(
        !sluice.log().contains(token.as_str()),
        "a token reached the log"
    );
    assert!(!metrics.contains(token.as_str()));
}

/// Token exchange with a catalog credential: the upstream accepts tokens of the
/// authorization server only, for callers and for the gateway's own catalog fetch.
async fn exchange_setup(extra: &str) -> (Authz, Idp, harness::ChildGuard, Sluice) {
    let mut authz = Authz::start(CLIENT_ID, CLIENT_SECRET);
    let idp = Idp::start();
    authz.trust(&idp.issuer);
    let up = python_server_with("up", false, None, &["--require-bearer", &authz.issuer]).await;
    let credential = format!(
        "type = \"token_exchange\"\n{}audience = \"upstream\"\nscope = \"tools\"\n{extra}",
        client(&authz)
    );
    let catalog = format!(
        "[servers.catalog_credential]\ntype = \"oauth_client_credentials\"\n{}",
        client(&authz)
    );
    let sluice = Sluice::start(&config(up.addr.port(), &idp.issuer, &credential, &catalog)).await;
    sluice.wait_tools("g", PROTECTED_TOOLS).await;
    (authz, idp, up, sluice)
}

#[tokio::test]
async fn token_exchange_acts_for_each_caller_and_never_mixes_their_tokens() {
    let (mut authz, mut idp, _up, sluice) = exchange_setup("").await;
    let raw = Raw::new(sluice.url("g"));
    let alice = format!("Bearer {}", caller_jwt(&mut idp, "alice"));
    let bob = format!("Bearer {}", caller_jwt(&mut idp, "bob"));
    let session = raw
        .initialize_with(&[("authorization", alice.as_str())])
        .await;
    let before = authz.grants().token_exchange;
    for round in 0..3 {
        for (who, auth) in [("alice", &alice), ("bob", &bob)] {
            let token = bearer(&seen(&raw, &session, &[("authorization", auth.as_str())]).await);
            let c = claims(&token);
            assert_eq!(c["sub"], who, "round {round}: {who} got {c}");
            assert_eq!(c["aud"], "upstream");
            assert_eq!(c["act"]["sub"], CLIENT_ID);
        }
    }
    let last = authz.last();
    assert_eq!(
        last["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(last["subject_token"], "***");
    assert_eq!(last["client_auth"], "basic");
    assert_eq!(
        authz.grants().token_exchange - before,
        2,
        "one exchange per caller, then cached"
    );

    // Callers that cannot be acted for are refused before any token endpoint is contacted.
    let grants = authz.grants();
    let stat = format!("Bearer {STATIC_TOKEN}");
    let err = refusal(&raw, &session, &stat).await;
    assert!(
        err.contains(
            "upstream server 'up' needs the caller's JWT for its token_exchange credential"
        ),
        "{err}"
    );
    assert_eq!(authz.grants(), grants);
}

#[tokio::test]
async fn concurrent_first_calls_of_one_caller_make_one_token_exchange() {
    let (mut authz, mut idp, _up, sluice) = exchange_setup("").await;
    // A slow token endpoint, so every call arrives while the first fetch is in flight.
    authz.cmd(json!({"op": "delay", "ms": 500}));
    let raw = Raw::new(sluice.url("g"));
    let dave = format!("Bearer {}", caller_jwt(&mut idp, "dave"));
    let session = raw
        .initialize_with(&[("authorization", dave.as_str())])
        .await;
    let before = authz.grants().token_exchange;
    // 300 at once keeps both sockets per call under the default 1024 descriptors; the cache's
    // own test drives 1000 through the same single-flight slot.
    let calls = (0..CONCURRENT).map(|_| async {
        let msg = raw
            .call_tool_with(
                &session,
                "up__echo",
                json!({"text": "x"}),
                &[("authorization", dave.as_str())],
            )
            .await;
        msg["result"]["content"][0]["text"] == "up:x"
    });
    let ok = futures_util::future::join_all(calls).await;
    assert_eq!(
        ok.iter().filter(|o| **o).count(),
        CONCURRENT,
        "every call succeeded"
    );
    let exchanges = authz.grants().token_exchange - before;
    println!("token-endpoint hits for {CONCURRENT} concurrent first calls: {exchanges}");
    assert_eq!(exchanges, 1);
}

#[tokio::test]
async fn a_token_is_refreshed_before_it_expires_and_a_401_replaces_it() {
    let (mut authz, mut idp, _up, sluice) = exchange_setup("expiry_margin = \"2s\"").await;
    // 8 s tokens, used for 6 s, refreshed in the background from 4.5 s.
    authz.cmd(json!({"op": "ttl", "seconds": 8}));
    let raw = Raw::new(sluice.url("g"));
    let erin = format!("Bearer {}", caller_jwt(&mut idp, "erin"));
    let h = [("authorization", erin.as_str())];
    let session = raw.initialize_with(&h).await;
    let first = bearer(&seen(&raw, &session, &h).await);
    let first_exp = claims(&first)["exp"].as_u64().unwrap();
    // Calls until the served token changes (bounded: 12 s), noting when it did.
    let (raw_, session_, h_, first_) = (&raw, &session, &h, &first);
    let (second, at) = harness::poll(
        "the token to be replaced",
        120,
        Duration::from_millis(100),
        || async move {
            let token = bearer(&seen(raw_, session_, h_).await);
            (token != *first_).then(|| (token, now()))
        },
    )
    .await;
    assert!(
        at + 2 <= first_exp,
        "the new token arrived at {at}, within the margin of the old one's expiry {first_exp}: refreshed late"
    );
    assert!(claims(&second)["exp"].as_u64().unwrap() > first_exp);

    // The upstream revokes the token in use: the next call gets 401 once, the gateway drops
    // the token, exchanges again and the call succeeds with the new one.
    let before = authz.grants().token_exchange;
    let revoked = raw
        .call_tool_with(&session, "up__revoke_my_token", json!({}), &h)
        .await;
    assert!(revoked["result"].is_object(), "{revoked}");
    let third = bearer(&seen(&raw, &session, &h).await);
    assert_ne!(third, second);
    assert_eq!(authz.grants().token_exchange - before, 1);
}

#[tokio::test]
async fn a_token_endpoint_that_is_down_or_hangs_gives_a_clear_error_not_a_hang() {
    let (mut authz, mut idp, _up, sluice) =
        exchange_setup("timeout = \"1s\"\nfailure_ttl = \"30s\"").await;
    let raw = Raw::new(sluice.url("g"));
    let frank = format!("Bearer {}", caller_jwt(&mut idp, "frank"));
    let h = [("authorization", frank.as_str())];
    let session = raw.initialize_with(&h).await;
    authz.cmd(json!({"op": "down"}));
    let refused_before = authz.grants().refused;
    let err = refusal(&raw, &session, &frank).await;
    assert!(
        err.contains("upstream server 'up': credential unavailable"),
        "{err}"
    );
    assert!(err.contains("HTTP 503"), "{err}");
    // Within failure_ttl the broken endpoint is not asked again.
    for _ in 0..10 {
        let err = refusal(&raw, &session, &frank).await;
        assert!(err.contains("credential unavailable"), "{err}");
    }
    assert_eq!(authz.grants().refused - refused_before, 1);

    // A hanging endpoint is cut off at the credential timeout.
    authz.cmd(json!({"op": "up"}));
    authz.cmd(json!({"op": "delay", "ms": 5000}));
    let gina = format!("Bearer {}", caller_jwt(&mut idp, "gina"));
    let started = Instant::now();
    let err = refusal(&raw, &session, &gina).await;
    assert!(err.contains("did not answer within 1s"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the call waited for the endpoint"
    );
    assert!(!sluice.log().contains(CLIENT_SECRET));
}

#[tokio::test]
async fn id_jag_exchanges_the_caller_token_at_the_idp_then_at_the_upstream_authorization_server() {
    let idp = Idp::start();
    // The enterprise IdP's token endpoint (leg 1) and the upstream's authorization server
    // (leg 2), each a real oidc-provider. The ID-JAG names the client as the upstream's server
    // knows it, so Sluice is registered under one client id at both (as the draft's IdPs map
    // it).
    let mut enterprise = Authz::start(CLIENT_ID, "secret-at-the-enterprise-idp");
    enterprise.trust(&idp.issuer);
    let mut upstream_as = Authz::start(CLIENT_ID, CLIENT_SECRET);
    upstream_as.trust(&enterprise.issuer);
    let up = python_server_with(
        "up",
        false,
        None,
        &["--require-bearer", &upstream_as.issuer],
    )
    .await;
    let credential = format!(
        r#"type = "id_jag"
idp_token_url = "{}"
idp_client_id = "{CLIENT_ID}"
idp_client_secret = "secret-at-the-enterprise-idp"
as_token_url = "{}"
as_client_id = "{CLIENT_ID}"
as_client_secret = "{CLIENT_SECRET}"
audience = "{}"
scopes = ["tools"]"#,
        enterprise.token_endpoint, upstream_as.token_endpoint, upstream_as.issuer
    );
    let catalog = format!(
        "[servers.catalog_credential]\ntype = \"oauth_client_credentials\"\ntoken_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"",
        upstream_as.token_endpoint
    );
    let mut idp = idp;
    let sluice = Sluice::start(&config(up.addr.port(), &idp.issuer, &credential, &catalog)).await;
    sluice.wait_tools("g", PROTECTED_TOOLS).await;
    let raw = Raw::new(sluice.url("g"));
    let hank = format!("Bearer {}", caller_jwt(&mut idp, "hank"));
    let h = [("authorization", hank.as_str())];
    let session = raw.initialize_with(&h).await;
    let token = bearer(&seen(&raw, &session, &h).await);
    let c = claims(&token);
    assert_eq!(c["iss"], upstream_as.issuer.as_str());
    assert_eq!(c["sub"], "hank");
    assert_eq!(c["aud"], format!("http://127.0.0.1:{}/mcp", up.addr.port()));
    let leg1 = enterprise.last();
    assert_eq!(
        leg1["requested_token_type"],
        "urn:ietf:params:oauth:token-type:id-jag"
    );
    assert_eq!(leg1["audience"], upstream_as.issuer.as_str());
    assert_eq!(enterprise.grants().token_exchange, 1);
    assert_eq!(upstream_as.grants().jwt_bearer, 1);
    // Cached: a second call asks neither server.
    assert_eq!(bearer(&seen(&raw, &session, &h).await), token);
    assert_eq!(enterprise.grants().token_exchange, 1);
    assert_eq!(upstream_as.grants().jwt_bearer, 1);
}

#[tokio::test]
async fn jwt_forward_sends_the_callers_own_token() {
    let mut idp = Idp::start();
    let up = python_server_with("up", false, None, &["--require-bearer", &idp.issuer]).await;
    // The catalog fetch has no caller: a static service token of the same IdP.
    let service = idp.token(None, json!({"sub": "sluice-service", "aud": "up"}));
    let catalog =
        format!("[servers.catalog_credential]\ntype = \"static\"\nvalue = \"Bearer {service}\"");
    let sluice = Sluice::start(&config(
        up.addr.port(),
        &idp.issuer,
        "type = \"jwt_forward\"",
        &catalog,
    ))
    .await;
    sluice.wait_tools("g", PROTECTED_TOOLS).await;
    let raw = Raw::new(sluice.url("g"));
    let jwt = caller_jwt(&mut idp, "ivy");
    let auth = format!("Bearer {jwt}");
    let h = [("authorization", auth.as_str())];
    let session = raw.initialize_with(&h).await;
    assert_eq!(bearer(&seen(&raw, &session, &h).await), jwt);
}

#[tokio::test]
async fn per_caller_secrets_are_found_by_caller_and_a_missing_one_is_named() {
    let mut idp = Idp::start();
    let up = python_server_with("up", false, None, &[]).await;
    let secrets = temp_path("callers.toml");
    std::fs::write(
        &secrets,
        format!(
            "[[callers]]\ntoken = \"alice\"\nsecret = \"alice-upstream-key\"\n\n[[callers]]\nissuer = \"{}\"\nsubject = \"jack\"\nsecret = \"jack-upstream-key\"\n",
            idp.issuer
        ),
    )
    .unwrap();
    let credential = format!(
        "type = \"per_caller\"\nheader = \"X-Api-Key\"\nvalue = \"key={{secret}}\"\nsecrets_file = \"{}\"",
        secrets.display()
    );
    let sluice = Sluice::start(&config(up.addr.port(), &idp.issuer, &credential, "")).await;
    sluice.wait_tools("g", TOOLS).await;
    let raw = Raw::new(sluice.url("g"));
    let alice = format!("Bearer {STATIC_TOKEN}");
    let session = raw
        .initialize_with(&[("authorization", alice.as_str())])
        .await;
    let h = seen(&raw, &session, &[("authorization", alice.as_str())]).await;
    assert_eq!(h["x-api-key"], "key=alice-upstream-key");
    let jack = format!("Bearer {}", caller_jwt(&mut idp, "jack"));
    let h = seen(&raw, &session, &[("authorization", jack.as_str())]).await;
    assert_eq!(h["x-api-key"], "key=jack-upstream-key");
    let kim = format!("Bearer {}", caller_jwt(&mut idp, "kim"));
    let err = refusal(&raw, &session, &kim).await;
    assert!(
        err.contains("upstream server 'up' needs a per-caller secret for caller 'idp:kim'"),
        "{err}"
    );
    assert!(
        !sluice.log().contains("upstream-key"),
        "a secret reached the log"
    );
}
