//! Warm costs of the upstream-credential step, per call, from `UpstreamCredential::resolve`:
//! - `warm/static`: a fixed header value (a refcount clone);
//! - `warm/client_credentials`: a cached token of the server (one atomic load, a clock read,
//!   the cache counter);
//! - `warm/token_exchange`: a cached token of the caller (a moka lookup by token digest).
//!
//! The one fetch that warms each cache goes to a loopback responder written here that answers
//! every request with the same token JSON: what is measured never reaches it.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use sluice_auth::credential::{Caller, NoEvents};
use sluice_auth::{Identity, Source, UpstreamCredential};
use sluice_config::{
    ACCESS_TOKEN_TYPE, ClientAuth, ClientCredentials, CredentialConfig, CredentialKind,
    SecretString, TokenClient, TokenExchange,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback endpoint that answers every request with one access token.
async fn token_responder() -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 << 10];
                let _ = s.read(&mut buf).await;
                let body = r#"{"access_token":"bench-access-token","token_type":"Bearer","expires_in":3600}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/token").parse().unwrap()
}

fn config(kind: CredentialKind) -> CredentialConfig {
    CredentialConfig {
        header: "authorization".into(),
        kind,
        expiry_margin: CredentialConfig::DEFAULT_EXPIRY_MARGIN,
        timeout: CredentialConfig::DEFAULT_TIMEOUT,
        failure_ttl: CredentialConfig::DEFAULT_FAILURE_TTL,
        cache_capacity: CredentialConfig::DEFAULT_CACHE_CAPACITY,
    }
}

fn warm(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(token_responder());
    let http = sluice_auth::fetch::client().unwrap();
    let events = Arc::new(NoEvents);
    let client = TokenClient {
        token_url: url,
        client_id: "bench".into(),
        client_secret: SecretString::new("bench-secret".into()),
        auth: ClientAuth::Basic,
    };
    let statik = UpstreamCredential::new(
        0,
        "s",
        &config(CredentialKind::Static {
            value: SecretString::new("Bearer static-upstream-token".into()),
        }),
        http.clone(),
        events.clone(),
    );
    let cc = UpstreamCredential::new(
        1,
        "cc",
        &config(CredentialKind::ClientCredentials(ClientCredentials {
            client: client.clone(),
            scopes: vec!["tools".into()],
            audience: None,
            resource: None,
        })),
        http.clone(),
        events.clone(),
    );
    let exchange = UpstreamCredential::new(
        2,
        "tx",
        &config(CredentialKind::TokenExchange(TokenExchange {
            client,
            audience: Some("up".into()),
            resource: None,
            scopes: Vec::new(),
            requested_token_type: ACCESS_TOKEN_TYPE.into(),
            subject_token_type: ACCESS_TOKEN_TYPE.into(),
        })),
        http,
        events,
    );
    let identity = Identity::new(
        Source::Provider(0),
        "idp",
        "alice",
        Some("http://idp".into()),
        Default::default(),
        Some(4_000_000_000),
    )
    .with_token_sha256([7; 32]);
    let caller = Caller {
        identity: Some(&identity),
        token: Some("caller.jwt.token"),
    };
    rt.block_on(async {
        cc.resolve(Caller::default()).await.expect("warm-up fetch");
        exchange.resolve(caller).await.expect("warm-up exchange");
    });
    let _guard = rt.enter();
    let mut g = c.benchmark_group("warm");
    g.bench_function("static", |b| {
        b.iter(|| black_box(statik.resolve(Caller::default()).now_or_never()))
    });
    g.bench_function("client_credentials", |b| {
        b.iter(|| black_box(cc.resolve(Caller::default()).now_or_never()))
    });
    g.bench_function("token_exchange", |b| {
        b.iter(|| black_box(exchange.resolve(caller).now_or_never()))
    });
    g.finish();
}

criterion_group!(benches, warm);
criterion_main!(benches);
