//! The control process's own config file. It is small and has no cross-references, so it is
//! read with serde (`deny_unknown_fields`: a misspelt key is an error, not a silent default)
//! rather than with the proxy config's hand-written walker; string values take `${VAR}` as
//! in the proxy's file, through the same function.
//!
//! ```toml
//! listen = "127.0.0.1:7070"          # admin API and snapshot endpoint
//! data_dir = "./data/control"         # the sled database
//! key_env = "SLUICE_CONTROL_KEY"      # 32 bytes base64 sealing secrets
//! old_keys_env = "SLUICE_CONTROL_OLD_KEYS"
//!
//! [[admin_tokens]]                    # may use the admin API; the name is the audit actor
//! name = "ops"
//! token = "${SLUICE_ADMIN_TOKEN}"
//!
//! [[proxy_tokens]]                    # snapshots (which hold secrets) and built-in tools only
//! name = "replicas"
//! token = "${SLUICE_PROXY_TOKEN}"
//! # gateways = ["team"]               # its snapshots carry only these gateways and the
//!                                     # servers they show (no other server's credentials)
//!
//! [runtime]                           # where self-hosted (stdio) installations run
//! backend = "local"                   # the default of installations that name no runtime:
//!                                     # "local": child processes behind an in-process bridge;
//!                                     # "kubernetes": a Deployment + Service each (in-cluster
//!                                     # service account or kubeconfig);
//!                                     # "none": not run here (another control runs them)
//! # backends = ["kubernetes", "local"] # the backends installations may choose (`runtime`)
//!                                     # [default: `backend`, and "local"; none with "none"]
//! # namespace = "sluice"              # kubernetes [default: $SLUICE_KUBERNETES_NAMESPACE]
//! # bridge_image = "ghcr.io/...:tag"  # kubernetes [default: $SLUICE_BRIDGE_IMAGE]
//! healthy_within = "30s"              # how long a start may take to become healthy
//! resync = "10s"                      # status refresh when the registry is quiet
//!
//! [discovery]                         # what each installation's server offers (ctl ... tools)
//! interval = "5m"                     # re-probe an unchanged installation; "0s" = off
//! timeout = "10s"                     # one exchange with a server
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_config::SecretString;

use crate::model::RuntimeKind;

/// Shortest accepted token, in bytes.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Why the file was refused. Never holds a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The path.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// TOML or schema error, with the parser's line and column.
    #[error("{file}: {message}")]
    Parse {
        /// The path.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A value is wrong.
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The path.
        file: String,
        /// The key, e.g. `admin_tokens[0].token`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default = "default_key_env")]
    key_env: String,
    #[serde(default = "default_old_keys_env")]
    old_keys_env: String,
    #[serde(default)]
    dangerous_non_loopback_listen: bool,
    #[serde(default)]
    admin_tokens: Vec<RawToken>,
    #[serde(default)]
    proxy_tokens: Vec<RawToken>,
    #[serde(default)]
    runtime: RuntimeConfig,
    #[serde(default)]
    discovery: DiscoveryConfig,
}

/// `[discovery]`: how often control asks each installation's server what it offers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Between probes of an unchanged installation; `"0s"` turns discovery off.
    #[serde(
        default = "default_discovery_interval",
        with = "humantime_serde_compat"
    )]
    pub interval: std::time::Duration,
    /// Bound of one exchange with a server.
    #[serde(default = "default_discovery_timeout", with = "humantime_serde_compat")]
    pub timeout: std::time::Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            interval: default_discovery_interval(),
            timeout: default_discovery_timeout(),
        }
    }
}

fn default_discovery_interval() -> std::time::Duration {
    std::time::Duration::from_secs(300)
}

fn default_discovery_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

/// Where self-hosted installations run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Child processes on this machine (stdio servers behind an in-process bridge).
    #[default]
    Local,
    /// Deployments and Services in a Kubernetes namespace (stdio servers behind the bridge).
    Kubernetes,
    /// Not run by this control process.
    None,
}

/// `[runtime]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The default backend of installations that name none.
    #[serde(default)]
    pub backend: Backend,
    /// The backends installations may choose; absent, [`RuntimeConfig::kinds`]'s default.
    #[serde(default)]
    pub backends: Option<Vec<Backend>>,
    /// How long a start may take to become healthy.
    #[serde(default = "default_healthy_within", with = "humantime_serde_compat")]
    pub healthy_within: std::time::Duration,
    /// Longest pause between reconcile passes (status refresh) when nothing is written.
    #[serde(default = "default_resync", with = "humantime_serde_compat")]
    pub resync: std::time::Duration,
    /// `kubernetes`: the namespace installations live in [default:
    /// `$SLUICE_KUBERNETES_NAMESPACE`, else the one of the service account].
    #[serde(default)]
    pub namespace: Option<String>,
    /// `kubernetes`: the image stdio servers run in unless their template names one; it holds
    /// `sluice` (the bridge) [default: `$SLUICE_BRIDGE_IMAGE`].
    #[serde(default)]
    pub bridge_image: Option<String>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            backend: Backend::Local,
            backends: None,
            healthy_within: default_healthy_within(),
            resync: default_resync(),
            namespace: None,
            bridge_image: None,
        }
    }
}

impl RuntimeConfig {
    /// The default backend, unless it is `none`.
    pub fn default_kind(&self) -> Option<RuntimeKind> {
        kind(self.backend)
    }

    /// The backends this control runs: `backends` as given, else the default one and
    /// `local` (a process on this machine needs nothing configured); none with `none`.
    pub fn kinds(&self) -> Vec<RuntimeKind> {
        let mut out: Vec<RuntimeKind> = match (&self.backends, self.default_kind()) {
            (_, None) => Vec::new(),
            (Some(list), _) => list.iter().copied().filter_map(kind).collect(),
            (None, Some(default)) => vec![default, RuntimeKind::Local],
        };
        out.sort();
        out.dedup();
        out
    }

    /// `backends` must hold the default and cannot hold `none`; with `none`, it must be
    /// empty. Returns the offending key and why.
    fn check(&self) -> Result<(), (String, String)> {
        let Some(list) = &self.backends else {
            return Ok(());
        };
        if let Some(i) = list.iter().position(|b| *b == Backend::None) {
            return Err((
                format!("runtime.backends[{i}]"),
                "\"none\" is no backend; set backend = \"none\" to run nothing here".into(),
            ));
        }
        match self.default_kind() {
            None if !list.is_empty() => Err((
                "runtime.backends".into(),
                "backend = \"none\" runs nothing here: leave backends out".into(),
            )),
            Some(default) if !list.iter().any(|b| kind(*b) == Some(default)) => Err((
                "runtime.backends".into(),
                format!("must include the default backend {:?}", default.as_str()),
            )),
            _ => Ok(()),
        }
    }
}

fn kind(backend: Backend) -> Option<RuntimeKind> {
    match backend {
        Backend::Local => Some(RuntimeKind::Local),
        Backend::Kubernetes => Some(RuntimeKind::Kubernetes),
        Backend::None => None,
    }
}

fn default_resync() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

fn default_healthy_within() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

/// `"30s"`-style durations through `humantime`.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    token: String,
    #[serde(default)]
    gateways: Option<Vec<String>>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7070))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data/control")
}

fn default_key_env() -> String {
    "SLUICE_CONTROL_KEY".to_owned()
}

fn default_old_keys_env() -> String {
    "SLUICE_CONTROL_OLD_KEYS".to_owned()
}

/// A named bearer token.
#[derive(Debug, Clone)]
pub struct Token {
    /// Who holds it (the audit actor).
    pub name: String,
    /// The token.
    pub token: SecretString,
    /// Proxy tokens only: the gateways its snapshots carry (with the servers they show),
    /// so a proxy gets no other credentials; `None` = every gateway.
    pub gateways: Option<Vec<String>>,
}

/// The validated control config.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Admin API and snapshot listener.
    pub listen: SocketAddr,
    /// Where the sled database lives.
    pub data_dir: PathBuf,
    /// Variable holding the current secrets key.
    pub key_env: String,
    /// Variable holding old keys, comma-separated.
    pub old_keys_env: String,
    /// Tokens for the admin API.
    pub admin_tokens: Vec<Token>,
    /// Tokens for `GET /v1/snapshot` only.
    pub proxy_tokens: Vec<Token>,
    /// `[runtime]`: where self-hosted installations run.
    pub runtime: RuntimeConfig,
    /// `[discovery]`: probing installations for their tools.
    pub discovery: DiscoveryConfig,
}

impl ControlConfig {
    /// Reads and checks a file, taking `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file, &|k| std::env::var(k).ok())
    }

    /// Checks config text; `env` resolves `${VAR}`.
    pub fn parse(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |key: String, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            key,
            message,
        };
        if !raw.listen.ip().is_loopback() && !raw.dangerous_non_loopback_listen {
            return Err(invalid(
                "listen".into(),
                "the admin API speaks plain HTTP: listen on loopback, or set \
                 dangerous_non_loopback_listen = true behind a TLS-terminating proxy"
                    .into(),
            ));
        }
        if raw.admin_tokens.is_empty() {
            return Err(invalid(
                "admin_tokens".into(),
                "at least one is required".into(),
            ));
        }
        let mut names = Vec::new();
        let mut tokens = |list: Vec<RawToken>, key: &str| -> Result<Vec<Token>, ConfigError> {
            let mut out = Vec::new();
            for (i, t) in list.into_iter().enumerate() {
                let at = |k: &str| format!("{key}[{i}].{k}");
                if t.name.is_empty() || names.contains(&t.name) {
                    return Err(invalid(at("name"), "must be non-empty and unique".into()));
                }
                names.push(t.name.clone());
                let token = sluice_config::interpolate(&t.token, env)
                    .map_err(|m| invalid(at("token"), m))?;
                if token.len() < MIN_TOKEN_BYTES {
                    return Err(invalid(
                        at("token"),
                        format!("must be at least {MIN_TOKEN_BYTES} bytes"),
                    ));
                }
                if t.gateways.is_some() && key == "admin_tokens" {
                    return Err(invalid(
                        at("gateways"),
                        "only proxy tokens are scoped to gateways".into(),
                    ));
                }
                out.push(Token {
                    name: t.name,
                    token: SecretString::new(token),
                    gateways: t.gateways,
                });
            }
            Ok(out)
        };
        let admin_tokens = tokens(raw.admin_tokens, "admin_tokens")?;
        let proxy_tokens = tokens(raw.proxy_tokens, "proxy_tokens")?;
        // One value in two places would make its holder's rights depend on lookup order.
        let all: Vec<&Token> = admin_tokens.iter().chain(&proxy_tokens).collect();
        for (i, t) in all.iter().enumerate() {
            if all[..i].iter().any(|o| o.token == t.token) {
                return Err(invalid(
                    format!("{}.token", t.name),
                    "the same token value is configured twice".into(),
                ));
            }
        }
        raw.runtime
            .check()
            .map_err(|(key, message)| invalid(key, message))?;
        if raw.dangerous_non_loopback_listen {
            tracing::warn!(listen = %raw.listen, "DANGEROUS: the control API listens beyond loopback in plain HTTP");
        }
        Ok(ControlConfig {
            listen: raw.listen,
            data_dir: raw.data_dir,
            key_env: raw.key_env,
            old_keys_env: raw.old_keys_env,
            admin_tokens,
            proxy_tokens,
            runtime: raw.runtime,
            discovery: raw.discovery,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "T").then(|| "0123456789abcdef-token".to_owned())
    }

    #[test]
    fn tokens_come_from_the_environment_and_unknown_keys_are_refused() {
        let c = ControlConfig::parse(
            "[[admin_tokens]]\nname = \"ops\"\ntoken = \"${T}\"\n",
            "c.toml",
            &env,
        )
        .unwrap();
        assert_eq!(c.admin_tokens[0].token.expose(), "0123456789abcdef-token");
        assert_eq!(c.listen, default_listen());
        let e = ControlConfig::parse("lisen = \"127.0.0.1:1\"\n", "c.toml", &env).unwrap_err();
        assert!(e.to_string().contains("unknown field `lisen`"), "{e}");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn installations_choose_among_the_backends_this_control_runs() {
        let parse = |runtime: &str| {
            let text = format!(
                "[[admin_tokens]]\nname = \"ops\"\ntoken = \"${{T}}\"\n[runtime]\n{runtime}"
            );
            ControlConfig::parse(&text, "c.toml", &env).map(|c| c.runtime)
        };
        use RuntimeKind::{Kubernetes, Local};
        let r = parse("").unwrap();
        assert_eq!((r.default_kind(), r.kinds()), (Some(Local), vec![Local]));
        let r = parse("backend = \"kubernetes\"\n").unwrap();
        assert_eq!(
            (r.default_kind(), r.kinds()),
            (Some(Kubernetes), vec![Local, Kubernetes])
        );
        let r = parse("backend = \"kubernetes\"\nbackends = [\"kubernetes\"]\n").unwrap();
        assert_eq!(r.kinds(), vec![Kubernetes]);
        let r = parse("backend = \"none\"\n").unwrap();
        assert_eq!((r.default_kind(), r.kinds()), (None, vec![]));
        for (bad, key) in [
            ("backends = [\"kubernetes\"]\n", "runtime.backends"),
            ("backends = [\"local\", \"none\"]\n", "runtime.backends[1]"),
            (
                "backend = \"none\"\nbackends = [\"local\"]\n",
                "runtime.backends",
            ),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("c.toml: {key}:")), "{bad}: {e}");
        }
    }

    #[test]
    fn only_proxy_tokens_are_scoped_to_gateways() {
        let text = "[[admin_tokens]]\nname = \"ops\"\ntoken = \"${T}\"\n\n[[proxy_tokens]]\nname = \"p\"\ntoken = \"another-token-0123456789\"\ngateways = [\"team\"]\n";
        let c = ControlConfig::parse(text, "c.toml", &env).unwrap();
        assert_eq!(
            c.proxy_tokens[0].gateways.as_deref(),
            Some(&["team".to_owned()][..])
        );
        assert!(c.admin_tokens[0].gateways.is_none());
        let admin = "[[admin_tokens]]\nname = \"ops\"\ntoken = \"${T}\"\ngateways = [\"team\"]\n";
        let e = ControlConfig::parse(admin, "c.toml", &env).unwrap_err();
        assert!(e.to_string().contains("admin_tokens[0].gateways"), "{e}");
    }

    #[test]
    fn a_short_token_a_missing_variable_and_a_public_listener_are_refused() {
        let short = "[[admin_tokens]]\nname = \"ops\"\ntoken = \"short\"\n";
        let e = ControlConfig::parse(short, "c.toml", &env).unwrap_err();
        assert!(e.to_string().contains("admin_tokens[0].token"), "{e}");
        let missing = "[[admin_tokens]]\nname = \"ops\"\ntoken = \"${NOPE}\"\n";
        let e = ControlConfig::parse(missing, "c.toml", &env).unwrap_err();
        assert!(e.to_string().contains("NOPE is not set"), "{e}");
        let public =
            "listen = \"0.0.0.0:7070\"\n[[admin_tokens]]\nname = \"ops\"\ntoken = \"${T}\"\n";
        let e = ControlConfig::parse(public, "c.toml", &env).unwrap_err();
        assert!(
            e.to_string().contains("dangerous_non_loopback_listen"),
            "{e}"
        );
    }
}
