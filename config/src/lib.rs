//! Sluice's configuration: the TOML schema, its defaults, and validation that reports every
//! problem of a file at once, each as `file:line:col: message`.
//!
//! The file is parsed into a spanned tree and walked by hand rather than deserialised with
//! serde, because serde stops at the first error and an operator wants all of them from one
//! `sluice check`. Only a fully valid file produces a [`Config`], so the proxy holds nothing
//! else.
//!
//! # Keys
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `proxy.listen` | socket address | `"127.0.0.1:8080"` | MCP listener |
//! | `proxy.admin_listen` | socket address | `"127.0.0.1:9090"` | `/healthz`, `/readyz`, `/metrics`, `POST /reload` (unauthenticated: keep it private); must differ from `listen` |
//! | `proxy.threads` | integer 1..=1024 | number of cores | worker threads |
//! | `proxy.max_body_bytes` | integer 1..=1073741824 | `4194304` (4 MiB) | largest request body (413 above) |
//! | `proxy.grace_period` | duration 0s..=1day | `"10s"` | how long requests may drain after SIGTERM |
//! | `proxy.drain_delay` | duration 0s..=10m | `"0s"` | after SIGTERM, how long `/readyz` answers 503 (`"draining": true`) while the listener still serves, before it closes and `grace_period` starts; set it to what your balancer needs to notice |
//! | `proxy.max_json_depth` | integer 1..=1024 | `64` | deepest JSON nesting in a request |
//! | `proxy.upstream_idle_timeout` | duration 1s..=1day | `"50s"` | pooled upstream connections idle this long are closed; keep it below the upstreams' keep-alive |
//! | `proxy.upstream_ca_file` | path to a PEM bundle | system roots | trust anchors for `https` upstreams, replacing the system roots; must be readable and hold a certificate |
//! | `proxy.allowed_hosts` | array of `"host"`, `"host:port"` (IPv6 as `"[::1]"`), or `["*"]` | loopback `listen`: `localhost`, `127.0.0.1`, `[::1]` and the `listen` address (any port); else no check | `Host` values MCP requests may carry (DNS-rebinding protection); a host without a port allows any port; case-insensitive, exact; `"*"` (alone) turns the check off |
//! | `proxy.allowed_origins` | array of `"scheme://host"`, `"scheme://host:port"`, or `["*"]` | loopback `listen`: `http://` and `https://` of those names (any port); else no check | `Origin` values MCP requests may carry; a request without `Origin` is not checked |
//! | `sessions` | table | absent | absent: sessions are sealed with a random per-process key (lost on restart, not shared by replicas) |
//! | `sessions.secret` | string, >= 32 bytes | required in `[sessions]` | key material sealing `Mcp-Session-Id`; the same on every replica; use `"${VAR}"` |
//! | `sessions.ttl` | duration 1s..=30days | `"24h"` | session lifetime |
//! | `auth.public_url` | `http(s)` origin | from `Host` | origin clients use; gateway `X` is the protected resource `{public_url}/mcp/X`; required with `[auth.issuer]` (its issuer identifier) |
//! | `auth.tokens[].name` | 1..=64 of `[A-Za-z0-9-_.]`, unique | required | the caller's name in logs |
//! | `auth.tokens[].token` | string >= 16 bytes | one of token / token_sha256 | a static bearer token; hashed at load, never kept |
//! | `auth.tokens[].token_sha256` | 64 hex digits | | SHA-256 of the token, so the file holds no secret |
//! | `auth.tokens[].claims` | table of string / integer / boolean (or arrays of them) | `{}` | identity the gateway rules match on |
//! | `auth.providers[].name` | 1..=64 of `[A-Za-z0-9-_.]`, unique | required | referenced by `gateways.auth.providers` |
//! | `auth.providers[].issuer` | `http(s)` URL, unique | required | exactly the tokens' `iss` |
//! | `auth.providers[].audiences` | non-empty array of strings | required | a token's `aud` must name one |
//! | `auth.providers[].jwks_url` | `http(s)` URL | discovered | else `jwks_uri` from `{issuer}/.well-known/openid-configuration` or `oauth-authorization-server` |
//! | `auth.providers[].algorithms` | RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 | `["RS256", "ES256"]` | HMAC and `none` are refused |
//! | `auth.providers[].jwks_refresh` | duration 10s..=1day | `"5m"` | background key refresh; also the longest a validated token stays cached |
//! | `auth.providers[].jwks_max_stale` | duration 0s..=30days | `"1h"` | how long past a refresh the last good keys serve while the provider is down |
//! | `auth.providers[].leeway` | duration 0s..=10m | `"30s"` | clock skew on `exp` / `nbf` |
//! | `auth.issuer.signing_key_file` | PEM PKCS#8 P-256 key | required in `[auth.issuer]` | signs Sluice's ES256 access tokens |
//! | `auth.issuer.token_lifetime` | duration 10s..=1h | `"5m"` | lifetime of issued tokens (never past the assertion's `exp`) |
//! | `auth.issuer.trusted_providers` | non-empty array of provider names | required | whose ID-JAGs are exchanged |
//! | `auth.issuer.clients[].client_id` | string, unique | required (at least one client) | must equal the ID-JAG's `client_id` |
//! | `auth.issuer.clients[].client_secret` | string >= 16 bytes | one of secret / secret_sha256 | hashed at load |
//! | `auth.issuer.clients[].client_secret_sha256` | 64 hex digits | | |
//! | `gateways[].auth` | table | absent | absent: the gateway is open; present: every request needs an accepted token |
//! | `gateways[].auth.tokens` | boolean | `false` | accept `[[auth.tokens]]` |
//! | `gateways[].auth.providers` | array of declared provider names | `[]` | accept their JWTs |
//! | `gateways[].auth.id_jag` | boolean | `false` | accept tokens `[auth.issuer]` granted for this gateway |
//! | `gateways[].auth.scopes` | array of strings | `[]` | advertised in the metadata and 403 challenges |
//! | `gateways[].auth.rules[].tools` | non-empty array of patterns (`*` = any run) | required | the first rule matching a tool decides it; no match = hidden |
//! | `gateways[].auth.rules[].require` | table claim = value or \[values\] | `{}` | all claims must hold: equal one value, or contain one for arrays and space-separated `scope`/`scp`; at most 64 rules |
//! | `catalog.refresh` | duration 1s..=30days | `"5m"` | how often upstream tool lists are refetched |
//! | `catalog.page_size` | integer 1..=10000 | `100` | items per `tools/list` page |
//! | `catalog.init_timeout` | duration 10ms..=5m | `"5s"` | bound on opening upstream sessions during a client's `initialize` |
//! | `telemetry.otlp_endpoint` | `http(s)` URL | absent (tracing off) | OTLP/HTTP protobuf receiver; a bare origin gets `/v1/traces` |
//! | `telemetry.sampling_ratio` | number 0.0..=1.0 | `1.0` | fraction of new traces sampled; a sampled incoming `traceparent` is always followed |
//! | `telemetry.service_name` | string | `"sluice"` | `service.name` of exported spans |
//! | `telemetry.access_log` | `"stdout"`, `"off"` or a file path | `"stdout"` | one JSON line per request |
//! | `telemetry.metrics` | boolean | `true` | count requests in `/metrics` (off only to measure the cost) |
//! | `control` | table | absent | absent: the proxy serves its file alone; present: it also follows a registry snapshot from `sluice control` (see the README's "Registry (control plane)"); needs `[sessions]` |
//! | `control.url` | `http(s)` URL | required in `[control]` | control's API; the proxy long-polls `{url}/v1/snapshot` |
//! | `control.token` | string >= 16 bytes | required in `[control]` | one of control's `[[proxy_tokens]]`, sent as a bearer token; use `"${VAR}"` |
//! | `control.snapshot_file` | path | required in `[control]` | the last applied snapshot, saved encrypted (key derived from `sessions.secret`), mode 0600; started from when control does not answer at start |
//! | `control.poll_wait` | duration 1s..=60s | `"30s"` | how long one long-poll waits for a registry change |
//! | `servers[].name` | `[a-z0-9-]`, 1..=64 chars, unique | required | tools appear as `{name}__{tool}` |
//! | `servers[].url` | `http`/`https` URL with a host | required | the upstream's MCP endpoint |
//! | `servers[].timeout` | duration 1ms..=1day | `"30s"` | bound on one whole forwarded request |
//! | `servers[].connect_timeout` | duration 1ms..=1day | `"5s"` | bound on connecting |
//! | `servers[].read_timeout` | duration 1ms..=1day | `timeout` | bound on each read |
//! | `servers[].credential` | table | absent (nothing injected) | what the gateway presents upstream; see the README's "Upstream credentials" |
//! | `servers[].credential.type` | `static`, `oauth_client_credentials`, `token_exchange`, `id_jag`, `jwt_forward`, `per_caller` | required | how the credential is made |
//! | `servers[].credential.header` | header name | `"Authorization"` | not `jwt_forward`; never a header the gateway sets (`Host`, `Content-Length`, `Mcp-Session-Id`, ...) |
//! | `servers[].credential.value` | header-safe string | required for `static`; `"Bearer {secret}"` for `per_caller` | CR, LF and control bytes are refused |
//! | `servers[].credential.token_url`, `client_id`, `client_secret`, `client_auth` | URL, strings, `client_secret_basic` / `client_secret_post` | required; `client_secret_basic` | token endpoint of `oauth_client_credentials` and `token_exchange` |
//! | `servers[].credential.idp_*`, `as_*` | as above | required for `id_jag` | leg 1 (enterprise IdP) and leg 2 (the upstream's authorization server) |
//! | `servers[].credential.scopes` / `scope`, `audience`, `resource` | array / space-separated string, strings | none; `id_jag`: `audience` required, `resource` = `url` | grant parameters |
//! | `servers[].credential.requested_token_type`, `subject_token_type` | strings | access-token type | RFC 8693 token types |
//! | `servers[].credential.secrets_file` | path | `per_caller`: this or `callers` | `[[callers]]` with `token` or `issuer` + `subject`, and `secret`; read at load |
//! | `servers[].credential.callers` | array of inline tables with `token` or `issuer` + `subject`, and `secret` | `per_caller`: this or `secrets_file` | the same entries inline (how the registry snapshot carries callers' secrets; use `"${VAR}"` for secrets in a file) |
//! | `servers[].credential.expiry_margin` | duration 0s..=1h | `"30s"` | a fetched token is not used this close to expiry |
//! | `servers[].credential.timeout` | duration 10ms..=5m | `"10s"` | bound on one token request |
//! | `servers[].credential.failure_ttl` | duration 0s..=1h | `"5s"` | how long a failed fetch is answered from the cache |
//! | `servers[].credential.cache_capacity` | integer 1..=10000000 | `10000` | callers' tokens cached per server |
//! | `servers[].catalog_credential` | table, `static` or `oauth_client_credentials` | the credential if it needs no caller | what the gateway's own catalog calls present |
//! | `servers[].max_concurrent` | integer 1..=1000000 | `1024` | requests forwarded to this server at once, per replica; more get 503 with `Retry-After` |
//! | `servers[].eject_after` | integer 0..=1000 | `5` | consecutive failures (connect, reset, timeout, 5xx, not MCP) that eject the server; 0 = never |
//! | `servers[].eject_for` | duration 1ms..=5m | `"10s"` | the first ejection; doubles while probes fail, up to 5 min |
//! | `servers[].resource_tools` | `"auto"`, `"off"` or `"on"` | `"auto"` | offer each listed resource (at most 256 per server) as a read-only tool `{name}__read_{resource name}` that reads it: `auto` only when the server lists resources and no tools, `on` beside its own tools too, `off` never; see the README's "Resources as tools" |
//! | `gateways[].name` | `[a-z0-9-]`, 1..=64 chars, unique | required | served at `/mcp/{name}` |
//! | `gateways[].servers` | array of declared server names | `[]` | every tool of these servers |
//! | `gateways[].tools` | array of `"server__tool"` | `[]` | plus these individual tools; a gateway needs at least one entry in `servers` or `tools` |
//! | `gateways[].prefix` | boolean | `true` | `false`: show the upstreams' own tool and prompt names, without `{server}__`; two `tools` entries of one name are refused, and a name two servers offer at run time is withheld |
//! | `gateways[].tools_mode` | `"direct"` or `"lazy"` | `"direct"` | lazy: `tools/list` shows only `search_tools` and `run_tool` |
//! | `gateways[].builtin_tools` | bool | `false` | also show control's `sluice__*` tools (needs `[control]`; rule them with `auth.rules`) |
//! | `gateways[].policy_default` | `"allow"` or `"deny"` | `"allow"` | what a `tools/call` no policy matches gets |
//! | `gateways[].policies[].name` | 1..=64 of `[A-Za-z0-9-_.]`, unique in the gateway | required | named in refusals, metrics, spans |
//! | `gateways[].policies[].tools` | non-empty array of patterns (`*` = any run) | required | tools the policy is about |
//! | `gateways[].policies[].claims` | table claim = value or \[values\] | `{}` | caller claims that must hold (as `rules[].require`) |
//! | `gateways[].policies[].arguments` | array of `{ pointer, equals \| prefix \| regex \| min/max }` | `[]` | conditions on `params.arguments` (JSON pointer; numeric strings read as numbers) |
//! | `gateways[].policies[].effect` | `"allow"` or `"deny"` | required | what a matching call gets; the first matching policy decides; at most 1024 policies |
//! | `gateways[].limits.gateway`, `.caller`, `.tool` | `"N/s"`, `"N/min"`, `"N/h"`, `"N/d"`, or `{ rate, burst }` | none | per-replica request rates; burst defaults to N |
//! | `gateways[].limits.concurrent` | integer 1..=1000000 | `4096` | POSTs to the gateway in flight at once, per replica; more get 503 with `Retry-After` |
//!
//! Durations are strings such as `"250ms"`, `"10s"`, `"5m"`, `"24h"`. In every string value,
//! `${VAR}` is replaced from the environment (a missing variable is an error) and `$${` is a
//! literal `${`. Unknown keys are errors, with the nearest valid key suggested.
#![warn(missing_docs)]

mod error;
mod interpolate;
mod names;
mod quickstart;
mod reader;
pub mod resource_tools;
mod schema;
mod secret;
mod sections;
mod snapshot;
mod suggest;

use std::path::Path;

use toml::de::DeTable;

pub use error::{ConfigError, ConfigErrors};
pub use names::{GatewayName, MAX_NAME_LEN, NameError, ServerName};
pub use schema::{
    ACCESS_TOKEN_TYPE, AccessLog, Allowlist, ArgumentCondition, ArgumentTest, AuthConfig,
    CallerKey, CatalogConfig, ClientAuth, ClientCredentials, Config, ControlConfig,
    CredentialConfig, CredentialKind, Effect, GatewayAuthConfig, GatewayConfig, GatewayLimits,
    HostError, HostPort, ID_JAG_TOKEN_TYPE, IdJag, IssuerClient, IssuerConfig, JwtAlgorithm,
    MAX_POLICIES, MAX_REGEX_SIZE, MAX_RULES, MIN_CONTROL_TOKEN_BYTES, MIN_SECRET_BYTES, Origin,
    OriginError, PerCaller, PolicyConfig, ProviderConfig, ProxyConfig, RateLimit, ResourceTools,
    ServerConfig, SessionsConfig, StaticToken, TelemetryConfig, TokenClient, TokenExchange,
    ToolRule, ToolsMode, default_allowed_hosts, default_allowed_origins,
};
pub use secret::SecretString;
pub use sections::BUILTIN_SERVER;
pub use snapshot::{
    Snapshot, SnapshotCaller, SnapshotGateway, SnapshotGatewayAuth, SnapshotRule, SnapshotServer,
    load_str_with_snapshot, tool_server,
};

/// Replaces every `${VAR}` in `s` as the config loader does (`$${` is a literal `${`), for
/// other files that follow the same convention (the control process's). The error lists
/// every problem and never holds a value read from the environment.
pub fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    interpolate::expand(s, env)
        .map(|e| e.value.into_owned())
        .map_err(|errors| {
            let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
            messages.join("; ")
        })
}

use reader::{Problem, Reader};

/// Reads and validates a config file, taking `${VAR}` values from the process environment.
/// A file that cannot be read is one [`ConfigError`] with line 0.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        errors: vec![ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read config file: {e}"),
        }],
    })?;
    load_str(&source, &file, &|k| std::env::var(k).ok())
}

/// Validates config text. `file_name` labels the errors; `env` resolves `${VAR}`.
///
/// TOML syntax errors are reported alone: the tree recovered around them is partial, and
/// checking it would add misleading follow-on errors (a key cut off by the syntax error would
/// be reported as missing).
pub fn load_str(
    source: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let (doc, syntax) = DeTable::parse_recoverable(source);
    let mut r = Reader::new(source, env);
    let config = if syntax.is_empty() {
        Some(sections::read_config(&mut r, doc.get_ref()))
    } else {
        for e in &syntax {
            let span = e.span().unwrap_or(0..0);
            let message = syntax_message(e.message(), r.source_text(span.clone()));
            r.problem(span, format!("TOML syntax: {message}"));
        }
        None
    };
    let mut problems = r.into_problems();
    match config {
        Some(c) if problems.is_empty() => Ok(c),
        _ => {
            problems.sort_by_key(|p| p.offset);
            problems.dedup();
            Err(positioned(source, file_name, problems))
        }
    }
}

/// The parser's message, naming the key when it is a duplicate (the parser does not).
fn syntax_message(message: &str, at: Option<&str>) -> String {
    let message = message.trim();
    match at {
        Some(key) if message == "duplicate key" && !key.is_empty() => {
            format!("duplicate key {:?}", key.trim())
        }
        _ => message.to_owned(),
    }
}

fn positioned(source: &str, file_name: &str, problems: Vec<Problem>) -> ConfigErrors {
    let errors = problems
        .into_iter()
        .map(|p| {
            let (line, column) = error::line_col(source, p.offset);
            ConfigError {
                file: file_name.to_owned(),
                line,
                column,
                message: p.message,
            }
        })
        .collect();
    ConfigErrors { errors }
}
