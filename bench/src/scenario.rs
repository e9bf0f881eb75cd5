//! Scenario files (`bench/scenarios/*.toml`): what the mock upstream serves, how the gateway
//! is configured and what load is driven — everything a comparison needs to be repeated.
//!
//! Every key has a default, so a scenario states only what makes it different; unknown keys
//! are errors, so a typo cannot silently measure the default instead.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::load::LoadSpec;
use crate::load::mix::Mix;
use crate::mock::Behaviour;

/// The targets `compare` starts itself.
pub const BUILT_IN_TARGETS: [&str; 3] = ["direct", "sluice", "nginx"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Defaults to the file's stem; names the result files.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `[upstream]`: what the mock serves, with the names and defaults of its flags.
    #[serde(default)]
    pub upstream: Behaviour,
    #[serde(default)]
    pub gateway: Gateway,
    #[serde(default)]
    pub load: Load,
    #[serde(default)]
    pub compare: Compare,
}

/// How a request to a gateway authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    None,
    /// A static bearer token.
    Token,
    /// An ES256 JWT checked against a JWKS the mock serves.
    Jwt,
}

/// `[gateway]`: how Sluice (and nginx) are set up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gateway {
    /// Worker threads of Sluice and worker processes of nginx.
    pub threads: usize,
    pub auth: Auth,
    /// Sluice injects a static upstream credential.
    pub upstream_credential: bool,
}

impl Default for Gateway {
    fn default() -> Self {
        Self {
            threads: 1,
            auth: Auth::None,
            upstream_credential: false,
        }
    }
}

/// `[load]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Load {
    pub connections: usize,
    /// Defaults to `connections`.
    pub sessions: Option<usize>,
    #[serde(with = "human")]
    pub duration: Duration,
    #[serde(with = "human")]
    pub warmup: Duration,
    /// Open loop at this many requests per second (0: closed loop).
    pub rate: f64,
    /// Open loop at this fraction of Sluice's closed-loop throughput, measured first.
    pub rate_of_max: f64,
    pub mix: Mix,
    pub tool: String,
    pub argument_bytes: usize,
    /// Ask for progress notifications.
    pub progress: bool,
    #[serde(with = "human")]
    pub timeout: Duration,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            connections: 32,
            sessions: None,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            rate: 0.0,
            rate_of_max: 0.0,
            mix: Mix::default(),
            tool: crate::mock::catalog::ECHO.into(),
            argument_bytes: 64,
            progress: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// `[compare]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compare {
    pub rounds: usize,
    /// Built-in targets to run: `direct`, `sluice`, `nginx`.
    pub targets: Vec<String>,
}

impl Default for Compare {
    fn default() -> Self {
        Self {
            rounds: 3,
            targets: BUILT_IN_TARGETS.map(String::from).to_vec(),
        }
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut scenario: Scenario = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid scenario", path.display()))?;
        if scenario.name.is_empty() {
            scenario.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into());
        }
        scenario
            .validate()
            .with_context(|| format!("{}", path.display()))?;
        Ok(scenario)
    }

    pub fn validate(&self) -> Result<()> {
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "name '{}': use letters, digits, '-' and '_' (it names files)",
                self.name
            );
        }
        if self.load.connections == 0 {
            bail!("load.connections must be at least 1");
        }
        if self.load.rate < 0.0 || !(0.0..=1.0).contains(&self.load.rate_of_max) {
            bail!("load.rate must be >= 0 and load.rate_of_max between 0 and 1");
        }
        if self.load.rate > 0.0 && self.load.rate_of_max > 0.0 {
            bail!("set load.rate or load.rate_of_max, not both");
        }
        if self.load.duration.is_zero() {
            bail!("load.duration must be above 0");
        }
        if self.compare.rounds == 0 {
            bail!("compare.rounds must be at least 1");
        }
        self.upstream
            .validate()
            .map_err(|e| anyhow::anyhow!("upstream.{e}"))?;
        if self.gateway.threads == 0 {
            bail!("gateway.threads must be at least 1");
        }
        for t in &self.compare.targets {
            if !BUILT_IN_TARGETS.contains(&t.as_str()) {
                bail!("compare.targets: '{t}' is not one of direct, sluice, nginx");
            }
        }
        self.load.mix.cycle()?;
        Ok(())
    }

    /// The load spec at `rate` (None: closed loop or the scenario's fixed rate).
    pub fn load_spec(&self, rate: Option<f64>) -> LoadSpec {
        let l = &self.load;
        LoadSpec {
            connections: l.connections,
            sessions: l.sessions.unwrap_or(l.connections),
            rate: rate.or((l.rate > 0.0).then_some(l.rate)),
            mix: l.mix,
            tool: l.tool.clone(),
            argument_bytes: l.argument_bytes,
            progress: l.progress,
            timeout: l.timeout,
        }
    }
}

/// Durations as humantime strings ("10s", "250ms").
pub(crate) mod human {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("'{text}': {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
                n += 1;
            }
        }
        assert!(n >= 10, "{n} scenarios");
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            ("[load]\nconections = 3", "unknown field `conections`"),
            ("[load]\nduration = \"ten\"", "'ten'"),
            ("[load]\nrate = 5.0\nrate_of_max = 0.5", "not both"),
            ("[compare]\ntargets = [\"envoy\"]", "'envoy'"),
            ("[upstream]\nmode = \"grpc\"", "unknown variant"),
        ] {
            let err = toml::from_str::<Scenario>(text)
                .map_err(anyhow::Error::from)
                .and_then(|s| s.validate())
                .unwrap_err();
            assert!(format!("{err:#}").contains(says), "{text}: {err:#}");
        }
    }
}
