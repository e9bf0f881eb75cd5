//! Bounded HTTP GETs for identity-provider documents (metadata and key sets): a status other
//! than 200 is an error, and a body is read chunk by chunk and refused past a limit, so a
//! misbehaving IdP cannot make the proxy buffer without bound.

use bytes::{Bytes, BytesMut};
use std::time::Duration;
use url::Url;

/// Largest metadata or key-set document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// A failed fetch.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting, sending or reading failed.
    #[error("GET {url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A status other than 200.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body is larger than allowed.
    #[error("GET {url}: body larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
}

/// The HTTP client for IdP documents: short timeouts, few redirects, no proxy from the
/// environment.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    // reqwest panics without a process-wide rustls provider; the binary installs ring first,
    // embedders (and benches) may not have.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// GETs `url`, expecting 200 and at most `limit` bytes.
pub async fn get(http: &reqwest::Client, url: &Url, limit: usize) -> Result<Bytes, HttpError> {
    let transport = |e: reqwest::Error| HttpError::Transport {
        url: url.to_string(),
        reason: e.without_url().to_string(),
    };
    let mut resp = http
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(transport)?;
    if resp.status().as_u16() != 200 {
        return Err(HttpError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    let too_large = || HttpError::TooLarge {
        url: url.to_string(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
