//! Sluice as an OAuth authorization server for its own gateways, granting access tokens for
//! Identity Assertion JWT Authorization Grants (ID-JAG, draft-ietf-oauth-identity-assertion-
//! authz-grant): an enterprise IdP vouches for a user to Sluice with a short-lived signed
//! assertion, and Sluice answers with an ES256 access token (`typ: at+jwt`, RFC 9068) for one
//! gateway, which gateways with `id_jag = true` accept like a provider's token.
//!
//! The token endpoint is `POST /oauth/token` with
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<ID-JAG>` (RFC 7523).
//! The assertion's `typ` must be `oauth-id-jag+jwt`, its `iss` a trusted provider, its `aud`
//! this issuer, its `resource` a gateway with `id_jag = true`, and it must carry `client_id`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sluice_config::{IssuerClient, IssuerConfig, JwtAlgorithm};
use subtle::ConstantTimeEq;

use crate::authenticator::Authenticator;
use crate::error::AuthError;
use crate::jwk::{Curve, PublicKey, VerifyingKey};
use crate::jwt;

/// `typ` of an identity assertion grant.
pub const ID_JAG_TYPE: &str = "oauth-id-jag+jwt";
/// `typ` of the access tokens Sluice issues (RFC 9068).
pub const ISSUED_TOKEN_TYPE: &str = "at+jwt";
/// The grant profile advertised in the metadata (draft §7.2).
pub const ID_JAG_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
/// The grant type of the token request (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Claims of the assertion that are not copied into the issued token.
const REGISTERED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "resource",
    "scope",
    "cnf",
];

/// The issuer's signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// Reading the file failed.
    #[error("auth.issuer.signing_key_file {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong (never key material).
        reason: String,
    },
}

/// An OAuth error response of the token endpoint (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_target`, ...
    pub error: &'static str,
    /// Human-readable detail, free of secrets.
    pub description: String,
    /// The HTTP status to send.
    pub status: u16,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
            status: 400,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({"error": self.error, "error_description": self.description}))
            .unwrap_or_default()
    }
}

/// Sluice's own authorization server.
pub struct Issuer {
    url: String,
    key: EcdsaKeyPair,
    kid: String,
    verifying: VerifyingKey,
    jwk: Value,
    lifetime: u64,
    trusted: Vec<usize>,
    gateways: Vec<String>,
    clients: Vec<IssuerClient>,
    rng: SystemRandom,
}

impl Issuer {
    /// Loads the signing key; `url` is `auth.public_url` without a trailing slash.
    pub fn load(
        cfg: &IssuerConfig,
        url: &str,
        trusted: Vec<usize>,
        gateways: &[String],
    ) -> Result<Self, IssuerError> {
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        let path = cfg.signing_key_file.display().to_string();
        let fail = |reason: &str| IssuerError::Key {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let der = PrivatePkcs8KeyDer::from_pem_file(&cfg.signing_key_file)
            .map_err(|_| fail("no readable PKCS#8 private key"))?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_pkcs8_der(),
            &rng,
        )
        .map_err(|_| fail("not a P-256 (prime256v1) EC key"))?;
        let point = key.public_key().as_ref().to_vec();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..65]),
        );
        // RFC 7638 thumbprint as the key id: stable across restarts and replicas.
        let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint.as_bytes()));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
        Ok(Issuer {
            url: url.to_owned(),
            verifying: VerifyingKey {
                kid: Some(kid.clone()),
                alg: Some(JwtAlgorithm::ES256),
                key: PublicKey::Ec {
                    curve: Curve::P256,
                    point,
                },
            },
            key,
            kid,
            jwk,
            lifetime: cfg.token_lifetime.as_secs(),
            trusted,
            gateways: gateways.to_vec(),
            clients: cfg.clients.clone(),
            rng,
        })
    }

    /// The issuer identifier (`auth.public_url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The public key issued tokens verify with.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// `GET /.well-known/jwks.json`.
    pub fn jwks_document(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({"keys": [self.jwk]})).unwrap_or_default()
    }

    /// `GET /.well-known/oauth-authorization-server` (RFC 8414). It names an
    /// `authorization_endpoint` although Sluice runs no authorization-code flow: RFC 8414 lets
    /// a jwt-bearer-only server omit it, but the official Python SDK's metadata model requires
    /// it, so it is named and answers every request with `unsupported_response_type`.
    pub fn metadata_document(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "issuer": self.url,
            "authorization_endpoint": format!("{}/oauth/authorize", self.url),
            "token_endpoint": format!("{}/oauth/token", self.url),
            "jwks_uri": format!("{}/.well-known/jwks.json", self.url),
            "grant_types_supported": [JWT_BEARER_GRANT],
            "authorization_grant_profiles_supported": [ID_JAG_PROFILE],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "response_types_supported": [],
        }))
        .unwrap_or_default()
    }

    /// Handles a token request: its body (`application/x-www-form-urlencoded`) and its
    /// `Authorization` header (client_secret_basic); returns the JSON token response.
    pub async fn exchange(
        &self,
        auth: &Authenticator,
        authorization: Option<&[u8]>,
        form: &[u8],
        now: u64,
    ) -> Result<Vec<u8>, OAuthError> {
        let mut grant_type = None;
        let mut assertion = None;
        let mut client_id = None;
        let mut client_secret = None;
        let mut resource_param = None;
        let mut scope_param = None;
        for (k, v) in url::form_urlencoded::parse(form) {
            let slot = match &*k {
                "grant_type" => &mut grant_type,
                "assertion" => &mut assertion,
                "client_id" => &mut client_id,
                "client_secret" => &mut client_secret,
                "resource" => &mut resource_param,
                "scope" => &mut scope_param,
                _ => continue,
            };
            if slot.is_some() {
                return Err(OAuthError::new(
                    "invalid_request",
                    format!("parameter {k} is repeated"),
                ));
            }
            *slot = Some(v.into_owned());
        }
        match grant_type.as_deref() {
            Some(JWT_BEARER_GRANT) => {}
            Some(other) => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    format!(
                        "grant_type {} is not supported; use {JWT_BEARER_GRANT}",
                        crate::error::shown(other)
                    ),
                ));
            }
            None => return Err(OAuthError::new("invalid_request", "grant_type is missing")),
        }
        let client = self.authenticate_client(authorization, client_id, client_secret)?;
        let assertion =
            assertion.ok_or_else(|| OAuthError::new("invalid_request", "assertion is missing"))?;
        let grant =
            |e: AuthError| OAuthError::new("invalid_grant", format!("assertion refused: {e}"));
        let unverified = jwt::parse(&assertion).map_err(grant)?;
        if !unverified
            .header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ID_JAG_TYPE))
        {
            return Err(OAuthError::new(
                "invalid_grant",
                format!("assertion must have typ {ID_JAG_TYPE}"),
            ));
        }
        let claims = &unverified.claims;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| OAuthError::new("invalid_grant", "assertion has no iss"))?;
        let index = auth
            .provider_by_issuer(iss)
            .filter(|i| self.trusted.contains(i))
            .ok_or_else(|| grant(AuthError::IssuerNotAccepted(crate::error::shown(iss))))?;
        let provider = auth
            .provider(index)
            .ok_or_else(|| OAuthError::new("server_error", "provider vanished"))?;
        let alg = unverified
            .algorithm(&provider.config.algorithms)
            .map_err(grant)?;
        auth.verify_signature(provider, &unverified, alg)
            .await
            .map_err(grant)?;
        let exp = jwt::check_times(claims, now, provider.config.leeway.as_secs()).map_err(grant)?;
        if !jwt::audience_matches(claims, std::slice::from_ref(&self.url)) {
            return Err(OAuthError::new(
                "invalid_grant",
                format!("assertion aud must be {}", self.url),
            ));
        }
        let assertion_client = claims
            .get("client_id")
            .and_then(Value::as_str)
            .ok_or_else(|| OAuthError::new("invalid_grant", "assertion has no client_id"))?;
        if client != assertion_client {
            return Err(OAuthError::new(
                "invalid_grant",
                "the assertion was issued to another client_id",
            ));
        }
        let resource = claims
            .get("resource")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                OAuthError::new(
                    "invalid_target",
                    "assertion has no resource (the gateway URL)",
                )
            })?;
        let gateway = resource
            .strip_prefix(&self.url)
            .and_then(|p| p.strip_prefix("/mcp/"))
            .map(|g| g.trim_end_matches('/'))
            .filter(|g| self.gateways.iter().any(|x| x == g))
            .ok_or_else(|| {
                OAuthError::new(
                    "invalid_target",
                    format!(
                        "resource {} is not a gateway of {} that accepts ID-JAG tokens",
                        crate::error::shown(resource),
                        self.url
                    ),
                )
            })?;
        let audience = format!("{}/mcp/{gateway}", self.url);
        if resource_param
            .as_deref()
            .is_some_and(|r| r.trim_end_matches('/') != audience)
        {
            return Err(OAuthError::new(
                "invalid_target",
                "the resource parameter differs from the assertion's resource",
            ));
        }
        let lifetime = self.lifetime.min(exp.saturating_sub(now).max(1));
        let mut out = Map::new();
        for (k, v) in claims {
            if !REGISTERED.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| OAuthError::new("server_error", "no randomness"))?;
        out.insert("iss".into(), json!(self.url));
        out.insert(
            "sub".into(),
            claims.get("sub").cloned().unwrap_or(Value::Null),
        );
        out.insert("aud".into(), json!(audience));
        out.insert("client_id".into(), json!(assertion_client));
        out.insert("idp".into(), json!(provider.config.name));
        out.insert("iat".into(), json!(now));
        out.insert("exp".into(), json!(now + lifetime));
        out.insert("jti".into(), json!(URL_SAFE_NO_PAD.encode(jti)));
        let scope = claims
            .get("scope")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(s) = &scope {
            out.insert("scope".into(), json!(s));
        }
        let token = self
            .sign(&Value::Object(out))
            .map_err(|_| OAuthError::new("server_error", "signing failed"))?;
        let mut response = json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
        });
        if let Some(s) = scope {
            response["scope"] = json!(s);
        }
        Ok(serde_json::to_vec(&response).unwrap_or_default())
    }

    /// The authenticated client's id: `client_secret_basic` or `client_secret_post`, the
    /// secret compared by SHA-256 digest in constant time.
    fn authenticate_client(
        &self,
        authorization: Option<&[u8]>,
        form_id: Option<String>,
        form_secret: Option<String>,
    ) -> Result<String, OAuthError> {
        let invalid = |d: &str| OAuthError {
            error: "invalid_client",
            description: d.to_owned(),
            status: 401,
        };
        let (id, secret) = match authorization {
            Some(h) => {
                let h = std::str::from_utf8(h).map_err(|_| invalid("malformed Authorization"))?;
                let encoded = h
                    .strip_prefix("Basic ")
                    .or_else(|| h.strip_prefix("basic "))
                    .ok_or_else(|| {
                        invalid("client authentication must use Basic or client_secret_post")
                    })?;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok())
                    .ok_or_else(|| invalid("malformed Basic credentials"))?;
                let (id, secret) = decoded
                    .split_once(':')
                    .ok_or_else(|| invalid("malformed Basic credentials"))?;
                let dec = |s: &str| {
                    url::form_urlencoded::parse(format!("x={s}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                (dec(id), dec(secret))
            }
            None => match (form_id, form_secret) {
                (Some(id), Some(secret)) => (id, secret),
                _ => {
                    return Err(invalid(
                        "client authentication is required (client_id and client_secret)",
                    ));
                }
            },
        };
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let known = self
            .clients
            .iter()
            .find(|c| c.client_id == id)
            .is_some_and(|c| bool::from(c.secret_sha256.ct_eq(&digest)));
        if known {
            Ok(id)
        } else {
            Err(invalid("unknown client or wrong secret"))
        }
    }

    /// Signs `claims` as a compact JWS (ES256, `typ: at+jwt`).
    pub fn sign(&self, claims: &Value) -> Result<String, ring::error::Unspecified> {
        let header = json!({"alg": "ES256", "typ": ISSUED_TOKEN_TYPE, "kid": self.kid});
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default()));
        let sig = self.key.sign(&self.rng, token.as_bytes())?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        Ok(token)
    }
}
