//! `[auth]`: static tokens, identity providers and Sluice's own ID-JAG issuer. A plain token
//! is hashed as soon as it is read and no message ever quotes it (nor a `token_sha256`), so a
//! typo in a token's entry cannot leak the token into `sluice check` output.

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};

use super::array_of_tables;
use crate::reader::{Reader, Text, kind};
use crate::schema::{
    AuthConfig, IssuerClient, IssuerConfig, JwtAlgorithm, ProviderConfig, StaticToken,
};
use crate::suggest;

const KEYS: &[&str] = &["public_url", "tokens", "providers", "issuer"];
const TOKEN_KEYS: &[&str] = &["name", "token", "token_sha256", "claims"];
const PROVIDER_KEYS: &[&str] = &[
    "name",
    "issuer",
    "audiences",
    "jwks_url",
    "algorithms",
    "jwks_refresh",
    "jwks_max_stale",
    "leeway",
];
const ISSUER_KEYS: &[&str] = &[
    "signing_key_file",
    "token_lifetime",
    "trusted_providers",
    "clients",
];
const CLIENT_KEYS: &[&str] = &["client_id", "client_secret", "client_secret_sha256"];

/// Shortest accepted plain static token, in bytes.
pub(crate) const MIN_TOKEN_BYTES: usize = 16;
/// Longest name of a token or provider.
const MAX_NAME: usize = 64;

/// What `[auth]` yielded.
pub(super) struct Auth {
    pub config: AuthConfig,
    /// Every validly named provider, valid or not, for resolving gateway references.
    pub providers: Vec<String>,
    /// Whether `[auth.issuer]` is present (valid or not).
    pub has_issuer: bool,
}

pub(super) fn read(r: &mut Reader<'_>, doc: &DeTable<'_>) -> Auth {
    let Some((t, _)) = r.table(doc, "auth") else {
        return Auth {
            config: AuthConfig::default(),
            providers: Vec::new(),
            has_issuer: false,
        };
    };
    r.check_keys(t, KEYS, "[auth]");
    let public_url = r
        .string(t, "public_url", "auth")
        .and_then(|u| public_url(r, &u));
    let tokens = tokens(r, t);
    let (providers, declared) = providers(r, t);
    let issuer_table = r.table(t, "issuer");
    let has_issuer = issuer_table.is_some();
    let issuer = issuer_table.and_then(|(it, span)| issuer(r, it, span, &declared));
    if has_issuer
        && public_url.is_none()
        && t.get("public_url").is_none()
        && let Some(v) = t.get("issuer")
    {
        r.problem(
            v.span(),
            "[auth.issuer] needs auth.public_url: it is the issuer identifier of the tokens Sluice signs",
        );
    }
    Auth {
        config: AuthConfig {
            public_url,
            tokens,
            providers,
            issuer,
        },
        providers: declared,
        has_issuer,
    }
}

/// An `http`/`https` URL with a host and no path beyond `/`.
fn public_url(r: &mut Reader<'_>, u: &Text) -> Option<url::Url> {
    let problem = match url::Url::parse(&u.value) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            format!("auth.public_url {} must use http:// or https://", u.shown())
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            format!("auth.public_url {} has no host", u.shown())
        }
        Ok(url) if url.path() != "/" || url.query().is_some() || url.fragment().is_some() => {
            format!(
                "auth.public_url {} must be a bare origin such as \"https://mcp.example.com\" (gateways are at /mcp/{{name}} below it)",
                u.shown()
            )
        }
        Ok(url) => return Some(url),
        Err(e) => format!("auth.public_url {} is not a URL ({e})", u.shown()),
    };
    r.problem(u.span.clone(), problem);
    None
}

fn entry_name(r: &mut Reader<'_>, text: &Text, place: &str) -> bool {
    let ok = !text.value.is_empty()
        && text.value.len() <= MAX_NAME
        && text
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        r.problem(
            text.span.clone(),
            format!(
                "{place}.name {} must be 1 to {MAX_NAME} characters of a-z, A-Z, 0-9, '-', '_', '.'",
                text.shown()
            ),
        );
    }
    ok
}

fn tokens(r: &mut Reader<'_>, auth: &DeTable<'_>) -> Vec<StaticToken> {
    const P: &str = "auth.tokens";
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    for (t, span) in array_of_tables(r, auth, "tokens") {
        r.check_keys(t, TOKEN_KEYS, "[[auth.tokens]]");
        let name = r
            .required_string(t, "name", P, "[[auth.tokens]]", span.clone())
            .filter(|n| entry_name(r, n, P));
        if let Some(n) = &name
            && !names.insert(n.value.clone())
        {
            r.problem(
                n.span.clone(),
                format!("duplicate token name {}", n.shown()),
            );
        }
        let digest = secret_digest(r, t, "token", "[[auth.tokens]]", P, span.clone());
        if let Some(d) = digest
            && !digests.insert(d)
            && let Some(v) = t.get("token").or_else(|| t.get("token_sha256"))
        {
            r.problem(v.span(), "the same token is configured twice");
        }
        let claims = claims(r, t, P);
        if let (Some(name), Some(sha256), Some(claims)) = (name, digest, claims) {
            out.push(StaticToken {
                name: name.value,
                sha256,
                claims,
            });
        }
    }
    out
}

/// The SHA-256 of a secret given either as `{key}` (at least [`MIN_TOKEN_BYTES`], hashed
/// here and not kept) or as `{key}_sha256` (64 hex digits); exactly one must be present.
/// No message quotes either value.
fn secret_digest(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    key: &str,
    header: &str,
    place: &str,
    span: Range<usize>,
) -> Option<[u8; 32]> {
    let hashed = format!("{key}_sha256");
    match (t.get(key), t.get(hashed.as_str())) {
        (Some(_), Some(v)) => {
            r.problem(
                v.span(),
                format!("{header} entry has both {key} and {hashed}; keep one"),
            );
            None
        }
        (None, None) => {
            r.problem(
                span,
                format!("{header} entry needs {key} = \"${{VAR}}\" or {hashed} = \"<64 hex digits>\""),
            );
            None
        }
        (Some(_), None) => r.string(t, key, place).and_then(|secret| {
            if secret.value.len() < MIN_TOKEN_BYTES {
                r.problem(
                    secret.span.clone(),
                    format!(
                        "{place}.{key} must be at least {MIN_TOKEN_BYTES} bytes; generate one with e.g. `openssl rand -base64 32`"
                    ),
                );
                return None;
            }
            Some(Sha256::digest(secret.value.as_bytes()).into())
        }),
        (None, Some(_)) => r.string(t, &hashed, place).and_then(|h| {
            let digest = hex32(h.value.trim());
            if digest.is_none() {
                r.problem(
                    h.span.clone(),
                    format!(
                        "{place}.{hashed} must be 64 hex digits (`printf %s \"$SECRET\" | sha256sum`)"
                    ),
                );
            }
            digest
        }),
    }
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// `claims = { key = value | [values] }`.
fn claims(r: &mut Reader<'_>, t: &DeTable<'_>, place: &str) -> Option<Map<String, Value>> {
    let Some(v) = t.get("claims") else {
        return Some(Map::new());
    };
    let DeValue::Table(claims) = v.get_ref() else {
        r.problem(
            v.span(),
            format!(
                "{place}.claims must be a table such as {{ team = \"platform\" }}, not {}",
                kind(v.get_ref())
            ),
        );
        return None;
    };
    let mut out = Map::new();
    let mut ok = true;
    for (k, value) in claims.iter() {
        let key: &str = k.get_ref();
        let what = format!("{place}.claims.{key}");
        let parsed = match value.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .map(|item| r.claim_value(item, &what))
                .collect::<Option<Vec<_>>>()
                .map(Value::Array),
            _ => r.claim_value(value, &what),
        };
        match parsed {
            Some(p) => {
                out.insert(key.to_owned(), p);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn providers(r: &mut Reader<'_>, auth: &DeTable<'_>) -> (Vec<ProviderConfig>, Vec<String>) {
    const P: &str = "auth.providers";
    let mut out = Vec::new();
    let mut declared = Vec::new();
    let mut issuers = HashSet::new();
    for (t, span) in array_of_tables(r, auth, "providers") {
        r.check_keys(t, PROVIDER_KEYS, "[[auth.providers]]");
        let name = r
            .required_string(t, "name", P, "[[auth.providers]]", span.clone())
            .filter(|n| entry_name(r, n, P));
        if let Some(n) = &name {
            if declared.contains(&n.value) {
                r.problem(
                    n.span.clone(),
                    format!("duplicate provider name {}", n.shown()),
                );
            } else {
                declared.push(n.value.clone());
            }
        }
        let issuer = r
            .required_string(t, "issuer", P, "[[auth.providers]]", span.clone())
            .filter(|i| {
                let ok = url::Url::parse(&i.value)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !ok {
                    r.problem(
                        i.span.clone(),
                        format!("auth.providers.issuer {} must be an http(s) URL, exactly as the tokens' iss claim", i.shown()),
                    );
                }
                ok
            });
        if let Some(i) = &issuer
            && !issuers.insert(i.value.clone())
        {
            r.problem(
                i.span.clone(),
                format!(
                    "two providers have issuer {}; a token's iss must name one provider",
                    i.shown()
                ),
            );
        }
        let audiences = match r.strings(t, "audiences", P) {
            Some(a) if !a.is_empty() => Some(a.into_iter().map(|t| t.value).collect()),
            Some(_) => {
                if let Some(v) = t.get("audiences") {
                    r.problem(
                        v.span(),
                        "auth.providers.audiences must name at least one audience",
                    );
                }
                None
            }
            None => {
                if t.get("audiences").is_none() {
                    r.problem(
                        span.clone(),
                        "[[auth.providers]] entry is missing the required key \"audiences\" (the aud values its tokens must carry for Sluice)",
                    );
                }
                None
            }
        };
        let jwks_url = r
            .string(t, "jwks_url", P)
            .and_then(|u| match url::Url::parse(&u.value) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Some(url)
                }
                _ => {
                    r.problem(
                        u.span.clone(),
                        format!(
                            "auth.providers.jwks_url {} must be an http(s) URL",
                            u.shown()
                        ),
                    );
                    None
                }
            });
        let algorithms = algorithms(r, t);
        let jwks_refresh = r
            .duration(
                t,
                "jwks_refresh",
                P,
                Duration::from_secs(10)..=Duration::from_secs(86_400),
            )
            .unwrap_or(ProviderConfig::DEFAULT_JWKS_REFRESH);
        let jwks_max_stale = r
            .duration(
                t,
                "jwks_max_stale",
                P,
                Duration::ZERO..=Duration::from_secs(30 * 86_400),
            )
            .unwrap_or(ProviderConfig::DEFAULT_JWKS_MAX_STALE);
        let leeway = r
            .duration(t, "leeway", P, Duration::ZERO..=Duration::from_secs(600))
            .unwrap_or(ProviderConfig::DEFAULT_LEEWAY);
        if let (Some(name), Some(issuer), Some(audiences), Some(algorithms)) =
            (name, issuer, audiences, algorithms)
        {
            out.push(ProviderConfig {
                name: name.value,
                issuer: issuer.value,
                audiences,
                jwks_url,
                algorithms,
                jwks_refresh,
                jwks_max_stale,
                leeway,
            });
        }
    }
    (out, declared)
}

fn algorithms(r: &mut Reader<'_>, t: &DeTable<'_>) -> Option<Vec<JwtAlgorithm>> {
    let Some(names) = r.strings(t, "algorithms", "auth.providers") else {
        return t
            .get("algorithms")
            .is_none()
            .then(|| ProviderConfig::DEFAULT_ALGORITHMS.to_vec());
    };
    let mut out = Vec::new();
    let mut ok = true;
    for n in names {
        match JwtAlgorithm::from_name(&n.value) {
            Some(a) if !out.contains(&a) => out.push(a),
            Some(_) => {}
            None => {
                ok = false;
                let why = if n.value.starts_with("HS") {
                    "HMAC algorithms need a shared secret and are refused (a public key used as an HMAC key forges tokens)".to_owned()
                } else if n.value.eq_ignore_ascii_case("none") {
                    "unsigned tokens are refused".to_owned()
                } else {
                    let all: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
                    format!(
                        "not supported{}; supported: {}",
                        suggest::hint(&n.value, &all),
                        all.join(", ")
                    )
                };
                r.problem(
                    n.span.clone(),
                    format!("auth.providers.algorithms {}: {why}", n.shown()),
                );
            }
        }
    }
    if ok
        && out.is_empty()
        && let Some(v) = t.get("algorithms")
    {
        r.problem(
            v.span(),
            "auth.providers.algorithms must name at least one algorithm",
        );
        return None;
    }
    ok.then_some(out)
}

fn issuer(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    span: Range<usize>,
    providers: &[String],
) -> Option<IssuerConfig> {
    const P: &str = "auth.issuer";
    r.check_keys(t, ISSUER_KEYS, "[auth.issuer]");
    let key = r
        .required_string(t, "signing_key_file", P, "[auth.issuer]", span.clone())
        .and_then(|f| signing_key(r, &f));
    let token_lifetime = r
        .duration(
            t,
            "token_lifetime",
            P,
            Duration::from_secs(10)..=Duration::from_secs(3600),
        )
        .unwrap_or(IssuerConfig::DEFAULT_TOKEN_LIFETIME);
    let mut trusted = Vec::new();
    let mut ok = true;
    match r.strings(t, "trusted_providers", P) {
        Some(list) if !list.is_empty() => {
            for p in list {
                if providers.contains(&p.value) {
                    trusted.push(p.value);
                } else {
                    ok = false;
                    r.problem(
                        p.span.clone(),
                        super::unknown("provider", &p, providers, "[[auth.providers]]"),
                    );
                }
            }
        }
        Some(_) => {
            ok = false;
            if let Some(v) = t.get("trusted_providers") {
                r.problem(
                    v.span(),
                    "auth.issuer.trusted_providers must name at least one provider",
                );
            }
        }
        None => {
            ok = false;
            if t.get("trusted_providers").is_none() {
                r.problem(
                    span.clone(),
                    "[auth.issuer] needs trusted_providers = [\"name\"]: the providers whose identity assertions (ID-JAGs) it exchanges",
                );
            }
        }
    }
    let clients = clients(r, t, span);
    let signing_key_file = key?;
    let clients = clients?;
    ok.then_some(IssuerConfig {
        signing_key_file,
        token_lifetime,
        trusted_providers: trusted,
        clients,
    })
}

/// A readable PEM file holding one PKCS#8 private key.
fn signing_key(r: &mut Reader<'_>, file: &Text) -> Option<PathBuf> {
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;
    let problem = match std::fs::read(&file.value) {
        Err(e) => format!("cannot read {}: {e}", file.shown()),
        Ok(pem) => match PrivatePkcs8KeyDer::from_pem_slice(&pem) {
            Ok(_) => return Some(PathBuf::from(&file.value)),
            Err(_) => format!(
                "{} holds no PKCS#8 private key (\"-----BEGIN PRIVATE KEY-----\"); make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`",
                file.shown()
            ),
        },
    };
    r.problem(
        file.span.clone(),
        format!("auth.issuer.signing_key_file: {problem}"),
    );
    None
}

/// `[[auth.issuer.clients]]`: at least one, since the token endpoint never serves
/// unauthenticated clients.
fn clients(r: &mut Reader<'_>, t: &DeTable<'_>, span: Range<usize>) -> Option<Vec<IssuerClient>> {
    const P: &str = "auth.issuer.clients";
    let entries = array_of_tables(r, t, "clients");
    if entries.is_empty() {
        if t.get("clients").is_none() {
            r.problem(
                span,
                "[auth.issuer] needs at least one [[auth.issuer.clients]] entry (client_id and client_secret): the token endpoint only serves authenticated clients",
            );
        }
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut ids = HashSet::new();
    for (c, cspan) in entries {
        r.check_keys(c, CLIENT_KEYS, "[[auth.issuer.clients]]");
        let id = r.required_string(c, "client_id", P, "[[auth.issuer.clients]]", cspan.clone());
        if let Some(i) = &id
            && (i.value.is_empty() || !ids.insert(i.value.clone()))
        {
            r.problem(
                i.span.clone(),
                format!(
                    "auth.issuer.clients.client_id {} is empty or listed twice",
                    i.shown()
                ),
            );
            ok = false;
        }
        let digest = secret_digest(
            r,
            c,
            "client_secret",
            "[[auth.issuer.clients]]",
            P,
            cspan.clone(),
        );
        match (id, digest) {
            (Some(id), Some(secret_sha256)) => out.push(IssuerClient {
                client_id: id.value,
                secret_sha256,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}
