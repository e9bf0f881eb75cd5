//! One request to an OAuth token endpoint (RFC 6749 §3.2): a form POST with the client
//! authenticated by HTTP Basic or form fields, a bounded JSON answer, and errors that name the
//! endpoint and the server's `error` code but never a secret or token.

use std::time::Duration;

use base64::Engine;
use bytes::BytesMut;
use serde::Deserialize;
use sluice_config::{ClientAuth, TokenClient};
use url::form_urlencoded;

use super::{CredentialError, Observer};

/// Largest token response read.
const MAX_RESPONSE_BYTES: usize = 64 << 10;

/// What a token endpoint granted.
#[derive(Debug, Deserialize)]
pub(crate) struct Granted {
    /// The token.
    pub access_token: String,
    /// `Bearer`, or `N_A` for tokens that are not access tokens (an ID-JAG).
    #[serde(default)]
    pub token_type: Option<String>,
    /// Lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<f64>,
    /// RFC 8693's type of what was issued.
    #[serde(default)]
    pub issued_token_type: Option<String>,
}

impl Granted {
    /// The lifetime, or `default` when the endpoint did not say.
    pub fn lifetime(&self, default: Duration) -> Duration {
        match self.expires_in {
            Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s.min(1e9)),
            _ => default,
        }
    }
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// POSTs `form` (the grant's fields) to the client's token endpoint.
pub(crate) async fn request(
    http: &reqwest::Client,
    client: &TokenClient,
    mut form: Vec<(&'static str, String)>,
    observer: &Observer,
) -> Result<Granted, CredentialError> {
    let endpoint = shown_url(&client.token_url);
    let unavailable = |reason: String| CredentialError::Unavailable {
        server: observer.server.to_string(),
        reason,
    };
    let mut req = http
        .post(client.token_url.clone())
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded");
    match client.auth {
        ClientAuth::Basic => {
            // RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding.
            let pair = format!(
                "{}:{}",
                form_encode(&client.client_id),
                form_encode(client.client_secret.expose())
            );
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            let mut value = http::HeaderValue::from_str(&format!("Basic {basic}"))
                .map_err(|_| unavailable("the client credentials cannot form a header".into()))?;
            value.set_sensitive(true);
            req = req.header(http::header::AUTHORIZATION, value);
        }
        ClientAuth::Post => {
            form.push(("client_id", client.client_id.clone()));
            form.push(("client_secret", client.client_secret.expose().to_owned()));
        }
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let sent = req.body(body).send().await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let outcome = if e.is_timeout() { "timeout" } else { "error" };
            observer.token_request(outcome);
            return Err(unavailable(format!(
                "cannot reach the token endpoint {endpoint}: {}",
                e.without_url()
            )));
        }
    };
    let status = resp.status().as_u16();
    let mut body = BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_RESPONSE_BYTES => {
                body.extend_from_slice(&chunk);
            }
            Ok(Some(_)) => {
                observer.token_request("error");
                return Err(unavailable(format!(
                    "the token endpoint {endpoint} answered more than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            Ok(None) => break,
            Err(e) => {
                observer.token_request("error");
                return Err(unavailable(format!(
                    "the token endpoint {endpoint} broke off its answer: {}",
                    e.without_url()
                )));
            }
        }
    }
    if status != 200 {
        observer.token_request("error");
        let detail = serde_json::from_slice::<OAuthError>(&body)
            .map(|e| {
                let mut d = format!(": {}", printable(&e.error));
                if let Some(desc) = e.error_description {
                    d.push_str(&format!(" ({})", printable(&desc)));
                }
                d
            })
            .unwrap_or_default();
        return Err(unavailable(format!(
            "the token endpoint {endpoint} answered HTTP {status}{detail}"
        )));
    }
    match serde_json::from_slice::<Granted>(&body) {
        Ok(g) if !g.access_token.is_empty() => {
            observer.token_request("ok");
            Ok(g)
        }
        _ => {
            observer.token_request("error");
            Err(unavailable(format!(
                "the token endpoint {endpoint} answered without an access_token"
            )))
        }
    }
}

/// The endpoint without query or credentials, for messages.
fn shown_url(u: &url::Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// At most 200 visible characters of a server-supplied string.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}
