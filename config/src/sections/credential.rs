//! `[servers.credential]` and `[servers.catalog_credential]`. Secrets are never quoted in a
//! message (a value from `${VAR}` is shown as written), and every value that will become a
//! header is checked here for bytes a header cannot carry, so a CR/LF can never be injected.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::de::DeTable;

use crate::reader::{Reader, Text};
use crate::schema::{
    ACCESS_TOKEN_TYPE, CallerKey, ClientAuth, ClientCredentials, CredentialConfig, CredentialKind,
    IdJag, PerCaller, TokenClient, TokenExchange,
};
use crate::{SecretString, suggest};

/// The types, as written.
const TYPES: &[&str] = &[
    "static",
    "oauth_client_credentials",
    "token_exchange",
    "id_jag",
    "jwt_forward",
    "per_caller",
];
const COMMON: &[&str] = &[
    "type",
    "header",
    "expiry_margin",
    "timeout",
    "failure_ttl",
    "cache_capacity",
];
const CLIENT: &[&str] = &["token_url", "client_id", "client_secret", "client_auth"];
const GRANT: &[&str] = &["scopes", "scope", "audience", "resource"];
const EXCHANGE: &[&str] = &["requested_token_type", "subject_token_type"];
const ID_JAG: &[&str] = &[
    "idp_token_url",
    "idp_client_id",
    "idp_client_secret",
    "idp_client_auth",
    "as_token_url",
    "as_client_id",
    "as_client_secret",
    "as_client_auth",
    "audience",
    "resource",
    "scopes",
    "scope",
    "subject_token_type",
];
/// Largest per-caller secrets file.
const MAX_SECRETS_FILE: u64 = 16 << 20;

/// Reads `[servers.{key}]` of one server whose URL is `server_url` (the default `resource` of
/// an ID-JAG). `catalog` restricts the types to those that need no caller.
pub(super) fn read(
    r: &mut Reader<'_>,
    server: &DeTable<'_>,
    key: &str,
    server_url: Option<&url::Url>,
) -> Option<Option<CredentialConfig>> {
    let Some((t, span)) = r.table(server, key) else {
        return Some(None);
    };
    let place = format!("servers.{key}");
    let header_name = format!("[servers.{key}]");
    let kind_text = r.required_string(t, "type", &place, &header_name, span.clone())?;
    let kind = kind_text.value.as_str();
    let allowed: Vec<&str> = match kind {
        "static" => [COMMON, &["value"]].concat(),
        "oauth_client_credentials" => [COMMON, CLIENT, GRANT].concat(),
        "token_exchange" => [COMMON, CLIENT, GRANT, EXCHANGE].concat(),
        "id_jag" => [COMMON, ID_JAG].concat(),
        "jwt_forward" => [COMMON].concat(),
        "per_caller" => [COMMON, &["secrets_file", "callers", "value"]].concat(),
        _ => {
            let hint = suggest::hint(kind, TYPES);
            r.problem(
                kind_text.span.clone(),
                format!(
                    "{place}.type {} is not a credential type{hint}; one of {}",
                    kind_text.shown(),
                    TYPES.join(", ")
                ),
            );
            return None;
        }
    };
    r.check_keys(t, &allowed, &header_name);
    let c = Ctx {
        t,
        span,
        place: &place,
        header_name: &header_name,
    };
    if key == "catalog_credential"
        && matches!(
            kind,
            "token_exchange" | "id_jag" | "jwt_forward" | "per_caller"
        )
    {
        r.problem(
            kind_text.span.clone(),
            format!(
                "{place}.type {} acts for a caller, and the gateway's own catalog calls have none; use static or oauth_client_credentials",
                kind_text.shown()
            ),
        );
        return None;
    }
    let header = header(r, &c);
    let expiry_margin = r
        .duration(
            t,
            "expiry_margin",
            &place,
            Duration::ZERO..=Duration::from_secs(3600),
        )
        .unwrap_or(CredentialConfig::DEFAULT_EXPIRY_MARGIN);
    let timeout = r
        .duration(
            t,
            "timeout",
            &place,
            Duration::from_millis(10)..=Duration::from_secs(300),
        )
        .unwrap_or(CredentialConfig::DEFAULT_TIMEOUT);
    let failure_ttl = r
        .duration(
            t,
            "failure_ttl",
            &place,
            Duration::ZERO..=Duration::from_secs(3600),
        )
        .unwrap_or(CredentialConfig::DEFAULT_FAILURE_TTL);
    let cache_capacity = r
        .count(t, "cache_capacity", &place, 1..=10_000_000)
        .map_or(CredentialConfig::DEFAULT_CACHE_CAPACITY, |n| n as u64);
    let kind = match kind {
        "static" => r
            .required_string(t, "value", &place, &header_name, c.span.clone())
            .and_then(|v| header_safe(r, &v, &format!("{place}.value")))
            .map(|value| CredentialKind::Static { value }),
        "oauth_client_credentials" => {
            let client = client(r, &c, "");
            let scopes = scopes(r, &c);
            let audience = r.string(t, "audience", &place).map(|a| a.value);
            let resource = r.string(t, "resource", &place).map(|a| a.value);
            Some(CredentialKind::ClientCredentials(ClientCredentials {
                client: client?,
                scopes: scopes?,
                audience,
                resource,
            }))
        }
        "token_exchange" => {
            let client = client(r, &c, "");
            let scopes = scopes(r, &c);
            let audience = r.string(t, "audience", &place).map(|a| a.value);
            let resource = r.string(t, "resource", &place).map(|a| a.value);
            let requested_token_type = r
                .string(t, "requested_token_type", &place)
                .map_or_else(|| ACCESS_TOKEN_TYPE.to_owned(), |v| v.value);
            let subject_token_type = subject_token_type(r, &c);
            Some(CredentialKind::TokenExchange(TokenExchange {
                client: client?,
                audience,
                resource,
                scopes: scopes?,
                requested_token_type,
                subject_token_type,
            }))
        }
        "id_jag" => {
            let idp = client(r, &c, "idp_");
            let authorization_server = client(r, &c, "as_");
            let scopes = scopes(r, &c);
            let audience = r.required_string(t, "audience", &place, &header_name, c.span.clone());
            let resource = r
                .string(t, "resource", &place)
                .map(|v| v.value)
                .or_else(|| server_url.map(url::Url::to_string));
            let subject_token_type = subject_token_type(r, &c);
            Some(CredentialKind::IdJag(IdJag {
                idp: idp?,
                authorization_server: authorization_server?,
                audience: audience?.value,
                resource: resource?,
                scopes: scopes?,
                subject_token_type,
            }))
        }
        "jwt_forward" => {
            if header != CredentialConfig::DEFAULT_HEADER
                && let Some(v) = t.get("header")
            {
                r.problem(
                    v.span(),
                    format!("{place}.header: jwt_forward sends the caller's token as Authorization: Bearer; leave header out"),
                );
            }
            Some(CredentialKind::JwtForward)
        }
        "per_caller" => per_caller(r, &c),
        _ => None,
    };
    Some(Some(CredentialConfig {
        header,
        kind: kind?,
        expiry_margin,
        timeout,
        failure_ttl,
        cache_capacity,
    }))
}

struct Ctx<'a, 't> {
    t: &'a DeTable<'t>,
    span: Range<usize>,
    place: &'a str,
    header_name: &'a str,
}

/// A header name (RFC 9110 token characters), lower-cased; hop-by-hop and framing headers
/// are refused since they would break the exchange rather than authenticate it.
fn header(r: &mut Reader<'_>, c: &Ctx<'_, '_>) -> String {
    const FORBIDDEN: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "host",
        "content-length",
        "content-type",
        "mcp-session-id",
        "mcp-protocol-version",
    ];
    let Some(h) = r.string(c.t, "header", c.place) else {
        return CredentialConfig::DEFAULT_HEADER.to_owned();
    };
    let lower = h.value.to_ascii_lowercase();
    let token = !lower.is_empty()
        && lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        r.problem(
            h.span.clone(),
            format!(
                "{}.header {} is not a valid header name",
                c.place,
                h.shown()
            ),
        );
    } else if FORBIDDEN.contains(&lower.as_str()) {
        r.problem(
            h.span.clone(),
            format!(
                "{}.header {} is a header the gateway sets itself; use e.g. \"Authorization\" or \"X-Api-Key\"",
                c.place,
                h.shown()
            ),
        );
    }
    lower
}

/// A value that can go into a header as is: visible ASCII, spaces and tabs (no CR, LF or
/// other control bytes, which would split the header).
fn header_safe(r: &mut Reader<'_>, v: &Text, what: &str) -> Option<SecretString> {
    if is_header_safe(&v.value) && !v.value.is_empty() {
        return Some(SecretString::new(v.value.clone()));
    }
    r.problem(
        v.span.clone(),
        format!("{what} is empty or holds a byte a header cannot carry (CR, LF or another control character); it is never injected"),
    );
    None
}

/// Whether `s` may be a header value: visible ASCII or obs-text, space and tab only.
pub(crate) fn is_header_safe(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn client(r: &mut Reader<'_>, c: &Ctx<'_, '_>, prefix: &str) -> Option<TokenClient> {
    let key = |k: &str| format!("{prefix}{k}");
    let url = r
        .required_string(
            c.t,
            &key("token_url"),
            c.place,
            c.header_name,
            c.span.clone(),
        )
        .and_then(|u| token_url(r, &u, &format!("{}.{}", c.place, key("token_url"))));
    let id = r.required_string(
        c.t,
        &key("client_id"),
        c.place,
        c.header_name,
        c.span.clone(),
    );
    if let Some(i) = &id
        && i.value.is_empty()
    {
        r.problem(
            i.span.clone(),
            format!("{}.{} is empty", c.place, key("client_id")),
        );
    }
    let secret = r
        .required_string(
            c.t,
            &key("client_secret"),
            c.place,
            c.header_name,
            c.span.clone(),
        )
        .map(|s| SecretString::new(s.value));
    let auth = match r.string(c.t, &key("client_auth"), c.place) {
        None => Some(ClientAuth::Basic),
        Some(a) if a.value == "client_secret_basic" => Some(ClientAuth::Basic),
        Some(a) if a.value == "client_secret_post" => Some(ClientAuth::Post),
        Some(a) => {
            r.problem(
                a.span.clone(),
                format!(
                    "{}.{} {} must be \"client_secret_basic\" or \"client_secret_post\"",
                    c.place,
                    key("client_auth"),
                    a.shown()
                ),
            );
            None
        }
    };
    Some(TokenClient {
        token_url: url?,
        client_id: id?.value,
        client_secret: secret?,
        auth: auth?,
    })
}

/// An `http`/`https` URL. Plain `http` is allowed (loopback IdPs, sidecars); operators see it in
/// the config.
fn token_url(r: &mut Reader<'_>, u: &Text, what: &str) -> Option<url::Url> {
    match url::Url::parse(&u.value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Some(url)
        }
        _ => {
            r.problem(
                u.span.clone(),
                format!("{what} {} must be an http:// or https:// URL", u.shown()),
            );
            None
        }
    }
}

/// `scopes = ["a", "b"]` or `scope = "a b"`, not both.
fn scopes(r: &mut Reader<'_>, c: &Ctx<'_, '_>) -> Option<Vec<String>> {
    match (c.t.get("scopes"), c.t.get("scope")) {
        (Some(_), Some(v)) => {
            r.problem(
                v.span(),
                format!("{} has both scopes and scope; keep one", c.header_name),
            );
            None
        }
        (Some(_), None) => r
            .strings(c.t, "scopes", c.place)
            .map(|list| list.into_iter().map(|s| s.value).collect()),
        (None, Some(_)) => r.string(c.t, "scope", c.place).map(|s| {
            s.value
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect()
        }),
        (None, None) => Some(Vec::new()),
    }
}

fn subject_token_type(r: &mut Reader<'_>, c: &Ctx<'_, '_>) -> String {
    r.string(c.t, "subject_token_type", c.place)
        .map_or_else(|| ACCESS_TOKEN_TYPE.to_owned(), |v| v.value)
}

/// `value`, a template with one `{secret}`, and the callers' secrets: from `secrets_file`
/// (read now) or inline in `callers` (how the registry snapshot carries them), not both.
fn per_caller(r: &mut Reader<'_>, c: &Ctx<'_, '_>) -> Option<CredentialKind> {
    let template = match r.string(c.t, "value", c.place) {
        Some(v) if v.value.matches("{secret}").count() == 1 => Some(v.value),
        Some(v) => {
            r.problem(
                v.span.clone(),
                format!(
                    "{}.value {} must hold \"{{secret}}\" exactly once, e.g. \"Bearer {{secret}}\"",
                    c.place,
                    v.shown()
                ),
            );
            None
        }
        None => Some("Bearer {secret}".to_owned()),
    };
    if let Some(t) = &template
        && !is_header_safe(t)
        && let Some(v) = c.t.get("value")
    {
        r.problem(
            v.span(),
            format!("{}.value holds a byte a header cannot carry", c.place),
        );
        return None;
    }
    if let (Some(_), Some(inline)) = (c.t.get("secrets_file"), c.t.get("callers")) {
        r.problem(
            inline.span(),
            format!(
                "{} has both secrets_file and callers; keep one",
                c.header_name
            ),
        );
        return None;
    }
    if let Some(inline) = c.t.get("callers") {
        let span = inline.span();
        let entries = inline_callers(r, c)?;
        let values = match callers_map(entries, template.as_deref()?) {
            Ok(v) => v,
            Err(problem) => {
                r.problem(span, format!("{}.callers: {problem}", c.place));
                return None;
            }
        };
        return Some(CredentialKind::PerCaller(PerCaller {
            secrets_file: None,
            values: Arc::new(values),
        }));
    }
    let file = r.required_string(c.t, "secrets_file", c.place, c.header_name, c.span.clone())?;
    let path = PathBuf::from(&file.value);
    let values = match load_secrets(&path, template.as_deref()?) {
        Ok(v) => v,
        Err(problem) => {
            r.problem(
                file.span.clone(),
                format!("{}.secrets_file {}: {problem}", c.place, file.shown()),
            );
            return None;
        }
    };
    Some(CredentialKind::PerCaller(PerCaller {
        secrets_file: Some(path),
        values: Arc::new(values),
    }))
}

/// `callers = [{ token = "alice", secret = "..." }, { issuer = "...", subject = "...",
/// secret = "..." }]`: the entries of a secrets file, inline. Problems name the key, never
/// the value of `secret`.
fn inline_callers(r: &mut Reader<'_>, c: &Ctx<'_, '_>) -> Option<Vec<CallerEntry>> {
    let place = format!("{}.callers", c.place);
    let mut out = Vec::new();
    let mut ok = true;
    for (t, _) in super::array_of_tables(r, c.t, "callers") {
        r.check_keys(t, &["token", "issuer", "subject", "secret"], &place);
        let mut text = |key: &str| r.string(t, key, &place).map(|v| v.value);
        let entry = CallerEntry {
            token: text("token"),
            issuer: text("issuer"),
            subject: text("subject"),
            secret: text("secret").unwrap_or_default(),
        };
        ok &= t.get("secret").is_some();
        out.push(entry);
    }
    if !ok {
        r.problem(
            c.t.get("callers").map_or(c.span.clone(), |v| v.span()),
            format!("{place}: every entry needs a secret"),
        );
        return None;
    }
    Some(out)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    #[serde(default)]
    callers: Vec<CallerEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerEntry {
    token: Option<String>,
    issuer: Option<String>,
    subject: Option<String>,
    secret: String,
}

/// Reads a per-caller secrets file:
///
/// ```toml
/// [[callers]]
/// token = "alice"                       # a static token's name
/// secret = "..."
/// [[callers]]
/// issuer = "https://idp.example.com"    # or a JWT's iss and sub
/// subject = "bob@example.com"
/// secret = "..."
/// ```
///
/// Messages name entries by position and caller, never by secret.
pub(crate) fn load_secrets(
    path: &Path,
    template: &str,
) -> Result<HashMap<CallerKey, SecretString>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if meta.len() > MAX_SECRETS_FILE {
        return Err(format!("larger than {MAX_SECRETS_FILE} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    // toml's messages quote the offending line, which may hold a secret: report the line only.
    let parsed: SecretsFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        match line {
            Some(l) => format!("not a valid secrets file near line {l} (expected [[callers]] entries with token or issuer + subject, and secret)"),
            None => "not a valid secrets file (expected [[callers]] entries with token or issuer + subject, and secret)".to_owned(),
        }
    })?;
    callers_map(parsed.callers, template)
}

/// The header value of each caller (`template` filled in with their secret). Messages name
/// entries by position and caller, never by secret.
fn callers_map(
    entries: Vec<CallerEntry>,
    template: &str,
) -> Result<HashMap<CallerKey, SecretString>, String> {
    let mut out = HashMap::new();
    let mut seen = HashSet::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let n = i + 1;
        let key = match (entry.token, entry.issuer, entry.subject) {
            (Some(token), None, None) if !token.is_empty() => CallerKey {
                issuer: String::new(),
                subject: token,
            },
            (None, Some(issuer), Some(subject)) if !issuer.is_empty() && !subject.is_empty() => {
                CallerKey { issuer, subject }
            }
            _ => {
                return Err(format!(
                    "callers entry {n} needs either token = \"name\" or issuer and subject"
                ));
            }
        };
        if entry.secret.is_empty() || !is_header_safe(&entry.secret) {
            return Err(format!(
                "callers entry {n} ({}) has an empty secret or one with a byte a header cannot carry",
                shown_caller(&key)
            ));
        }
        if !seen.insert(key.clone()) {
            return Err(format!("caller {} is listed twice", shown_caller(&key)));
        }
        let value = template.replacen("{secret}", &entry.secret, 1);
        out.insert(key, SecretString::new(value));
    }
    Ok(out)
}

fn shown_caller(key: &CallerKey) -> String {
    if key.issuer.is_empty() {
        format!("token {:?}", key.subject)
    } else {
        format!("{:?} of {:?}", key.subject, key.issuer)
    }
}
