//! The token cache's contract on its own, with tokio's clock paused so expiry and refresh are
//! exact: fetches are counted closures (the end-to-end tests in `tests/upstream_credentials.rs`
//! run the same paths against real authorization servers).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;

use super::CredentialError;
use super::Lookup;
use super::cache::{Aging, Fetch, Fetched, Slot};

fn aging() -> Aging {
    Aging {
        server: Arc::from("s"),
        margin: Duration::from_secs(10),
        failure_ttl: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
    }
}

/// A fetch that counts itself, takes `delay`, and yields `token-N` living `lifetime`.
fn counted(
    fetches: &Arc<AtomicUsize>,
    delay: Duration,
    lifetime: Duration,
) -> impl Fn() -> Fetch + use<> {
    let fetches = fetches.clone();
    move || {
        let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(Fetched {
                value: HeaderValue::from_str(&format!("token-{n}")).unwrap(),
                lifetime,
            })
        }) as Fetch
    }
}

fn failing(fetches: &Arc<AtomicUsize>) -> impl Fn() -> Fetch + use<> {
    let fetches = fetches.clone();
    move || {
        fetches.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            Err(CredentialError::Unavailable {
                server: "s".into(),
                reason: "down".into(),
            })
        }) as Fetch
    }
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_first_requests_make_one_fetch() {
    let slot = Arc::new(Slot::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let make = counted(
        &fetches,
        Duration::from_millis(200),
        Duration::from_secs(600),
    );
    let a = aging();
    let all = (0..1000).map(|_| slot.get(&a, &make));
    let results = futures_util::future::join_all(all).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    let misses = results.iter().filter(|(_, l)| *l == Lookup::Miss).count();
    let waited = results.iter().filter(|(_, l)| *l == Lookup::Waited).count();
    assert_eq!((misses, waited), (1, 999));
    assert!(
        results
            .iter()
            .all(|(v, _)| v.as_ref().unwrap() == "token-1")
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_is_refreshed_ahead_of_expiry_while_the_old_one_serves() {
    let slot = Arc::new(Slot::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    // 100 s lifetime, 10 s margin: usable for 90 s, refreshed from 67.5 s.
    let make = counted(
        &fetches,
        Duration::from_millis(50),
        Duration::from_secs(100),
    );
    let a = aging();
    assert_eq!(slot.get(&a, &make).await.0.unwrap(), "token-1");
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        slot.get(&a, &make).await,
        (Ok(HeaderValue::from_static("token-1")), Lookup::Hit)
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "no refresh before 3/4 of the usable life"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    // Past 67.5 s: this request starts the refresh and is served the current token at once.
    assert_eq!(
        slot.get(&a, &make).await,
        (Ok(HeaderValue::from_static("token-1")), Lookup::Hit)
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // The paused clock moves only once the refresh task has run to its own timer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Still before the old token's usable end (90 s), the new one is served.
    assert_eq!(
        slot.get(&a, &make).await,
        (Ok(HeaderValue::from_static("token-2")), Lookup::Hit)
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_is_fetched_again() {
    let slot = Arc::new(Slot::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let make = counted(&fetches, Duration::ZERO, Duration::from_secs(30));
    let a = Aging {
        margin: Duration::from_secs(5),
        ..aging()
    };
    assert_eq!(slot.get(&a, &make).await.0.unwrap(), "token-1");
    // Usable for 25 s; the refresh-ahead window starts at 18.75 s, but no request came then.
    tokio::time::advance(Duration::from_secs(26)).await;
    assert_eq!(
        slot.get(&a, &make).await,
        (Ok(HeaderValue::from_static("token-2")), Lookup::Miss)
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_remembered_for_failure_ttl_then_retried() {
    let slot = Arc::new(Slot::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let make = failing(&fetches);
    let a = aging();
    for _ in 0..50 {
        assert!(slot.get(&a, &make).await.0.is_err());
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(slot.get(&a, &make).await.1, Lookup::Failed);
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(slot.get(&a, &make).await.1, Lookup::Miss);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_fetch_that_hangs_fails_after_the_timeout() {
    let slot = Arc::new(Slot::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let make = counted(
        &fetches,
        Duration::from_secs(3600),
        Duration::from_secs(600),
    );
    let (result, _) = slot.get(&aging(), &make).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("credential unavailable"), "{err}");
    assert!(err.contains("did not answer within 2s"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_rejected_token_is_forgotten_but_a_newer_one_is_kept() {
    let slot = Arc::new(Slot::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let make = counted(&fetches, Duration::ZERO, Duration::from_secs(600));
    let a = aging();
    let first = slot.get(&a, &make).await.0.unwrap();
    slot.invalidate(&HeaderValue::from_static("some-other-token"));
    assert_eq!(slot.get(&a, &make).await.1, Lookup::Hit);
    slot.invalidate(&first);
    assert_eq!(
        slot.get(&a, &make).await,
        (Ok(HeaderValue::from_static("token-2")), Lookup::Miss)
    );
}

#[tokio::test]
async fn a_per_caller_secret_is_found_by_the_exact_subject_not_its_display_form() {
    use sluice_config::{CallerKey, CredentialConfig, CredentialKind, PerCaller, SecretString};
    // Longer than the 64 characters a label shows, and with a quote the label drops.
    let sub = format!("user\"{}@example.com", "x".repeat(70));
    let values = [(
        CallerKey {
            issuer: "https://idp".into(),
            subject: sub.clone(),
        },
        SecretString::new("Bearer theirs".into()),
    )]
    .into_iter()
    .collect();
    let cfg = CredentialConfig {
        header: "authorization".into(),
        kind: CredentialKind::PerCaller(PerCaller {
            secrets_file: Some("callers.toml".into()),
            values: Arc::new(values),
        }),
        expiry_margin: CredentialConfig::DEFAULT_EXPIRY_MARGIN,
        timeout: CredentialConfig::DEFAULT_TIMEOUT,
        failure_ttl: CredentialConfig::DEFAULT_FAILURE_TTL,
        cache_capacity: CredentialConfig::DEFAULT_CACHE_CAPACITY,
    };
    let http = crate::fetch::client().unwrap();
    let credential = super::UpstreamCredential::new(0, "s", &cfg, http, Arc::new(super::NoEvents));
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), sub.clone().into());
    // The authenticator labels identities with the subject as shown (cut short, cleaned).
    let identity = crate::Identity::new(
        crate::Source::Provider(0),
        "idp",
        &crate::error::shown(&sub),
        Some("https://idp".into()),
        claims,
        None,
    );
    let caller = super::Caller {
        identity: Some(&identity),
        token: Some("a.b.c"),
    };
    let injected = credential.resolve(caller).await.unwrap();
    assert_eq!(injected.value, "Bearer theirs");
}
