//! `sluice-bench compare`: one scenario against several targets in the same run.
//!
//! This machine is shared and noisy, so absolute figures drift between runs; ratios taken in
//! one run do not. Every target is measured in every round, and the order rotates from round
//! to round so a slow patch of the machine does not always hit the same target. The targets
//! are the mock upstream directly (the baseline every ratio is taken against), Sluice, nginx
//! as a plain reverse proxy, and any other gateway given by URL. For each target the
//! process tree's CPU time and memory are read from `/proc` around the measured window.

pub mod markdown;
pub mod plot;
pub mod procs;
pub mod targets;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client;
use crate::load::latency;
use crate::load::report::{self, Latency, Summary};
use crate::load::{Prepared, progress};
use crate::scenario::{Auth, Scenario};
use targets::Target;

/// `sluice-bench compare` options; those given override the scenario's.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareOptions {
    /// Scenario files (TOML), run one after the other.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Measured time per target and round.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Unmeasured time before each measured window.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    #[arg(long)]
    pub connections: Option<usize>,
    #[arg(long)]
    pub sessions: Option<usize>,
    /// The Sluice binary (default: `sluice` beside this binary, then on PATH).
    #[arg(long)]
    pub sluice: Option<PathBuf>,
    /// The nginx binary (default: `nginx` on PATH or in /usr/sbin; skipped when absent).
    #[arg(long)]
    pub nginx: Option<PathBuf>,
    /// Built-in targets to run instead of the scenario's list: direct,sluice,nginx.
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Another gateway, as NAME=URL or NAME=URL@PID, already configured in front of the mock
    /// upstream at --upstream-listen; with a PID its process tree's CPU and memory are sampled.
    #[arg(long = "target", value_name = "NAME=URL[@PID]")]
    pub extra: Vec<String>,
    /// Where the mock upstream listens (fix it when another gateway must point at it).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub upstream_listen: SocketAddr,
    /// Directory for `<scenario>.json`, `.md`, `-latency.svg`, `-throughput.svg` and
    /// `summary.md`.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
}

/// Everything one scenario's comparison measured; written as `<scenario>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub rounds: usize,
    /// The open-loop rate used, when the scenario sets `rate_of_max`.
    pub calibrated_rate: Option<f64>,
    pub host_cpus: usize,
    pub generated_unix: u64,
    pub targets: Vec<TargetResult>,
}

/// One target's figures over all rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetResult {
    pub name: String,
    pub url: String,
    /// Mean over rounds.
    pub rps: f64,
    /// `rps` divided by the direct target's.
    pub ratio_to_direct: Option<f64>,
    /// Over every round's samples.
    pub latency_us: Latency,
    /// p50 and p99 minus the direct target's.
    pub added_p50_us: Option<i64>,
    pub added_p99_us: Option<i64>,
    /// CPU time of the target's process tree per answered request (mean over rounds).
    pub cpu_us_per_request: Option<f64>,
    /// Largest resident set of the process tree after a measured window.
    pub rss_mib: Option<f64>,
    pub errors: BTreeMap<String, u64>,
    pub answered: u64,
    /// SSE messages (progress notifications) per answered request.
    pub messages_per_request: f64,
    pub session_setup_ms: f64,
    /// Sessions the target issued ids for.
    pub stateful_sessions: usize,
    pub percentiles: Vec<(f64, u64)>,
    pub round_results: Vec<RoundResult>,
    /// Why the target could not be measured, if it could not.
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundResult {
    pub round: usize,
    pub summary: Summary,
    pub cpu_us_per_request: Option<f64>,
    pub rss_kib: Option<u64>,
    /// Time to open the round's sessions.
    #[serde(default)]
    pub session_setup_ms: f64,
    /// Sessions the target issued ids for.
    #[serde(default)]
    pub stateful_sessions: usize,
}

/// Runs every scenario and writes the result files; fails if any target failed.
pub async fn run(options: CompareOptions) -> Result<()> {
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    // Every file is checked before anything starts, so a typo does not waste a long run.
    let mut scenarios = Vec::new();
    for path in &options.scenarios {
        let mut scenario = Scenario::load(path)?;
        apply_overrides(&mut scenario, &options).with_context(|| format!("{}", path.display()))?;
        scenarios.push(scenario);
    }
    let mut results = Vec::new();
    let mut broken = Vec::new();
    for scenario in &scenarios {
        eprintln!("== {}: {}", scenario.name, scenario.description);
        // A scenario that cannot run (a target that does not start, say) is reported and the
        // others still run.
        match run_scenario(scenario, &options).await {
            Ok(result) => {
                write_outputs(&options.out, &result)?;
                print!("{}", markdown::scenario_table(&result));
                results.push(result);
            }
            Err(e) => {
                eprintln!("scenario {} failed: {e:#}", scenario.name);
                broken.push(scenario.name.clone());
            }
        }
    }
    let summary = options.out.join("summary.md");
    std::fs::write(&summary, markdown::summary(&results))
        .with_context(|| format!("writing {}", summary.display()))?;
    eprintln!("results in {}", options.out.display());
    let failed: Vec<String> = results
        .iter()
        .flat_map(|r| {
            r.targets
                .iter()
                .filter(|t| t.failure.is_some())
                .map(move |t| format!("{}/{}", r.scenario.name, t.name))
        })
        .collect();
    if !failed.is_empty() || !broken.is_empty() {
        bail!(
            "not measured: {}",
            broken
                .iter()
                .chain(&failed)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn apply_overrides(s: &mut Scenario, o: &CompareOptions) -> Result<()> {
    if let Some(r) = o.rounds {
        s.compare.rounds = r;
    }
    if let Some(d) = o.duration {
        s.load.duration = d;
    }
    if let Some(w) = o.warmup {
        s.load.warmup = w;
    }
    if let Some(c) = o.connections {
        s.load.connections = c;
    }
    if let Some(n) = o.sessions {
        s.load.sessions = Some(n);
    }
    if let Some(only) = &o.only {
        s.compare.targets = only.clone();
    }
    s.validate()
}

async fn run_scenario(scenario: &Scenario, options: &CompareOptions) -> Result<ScenarioResult> {
    let dir = std::env::temp_dir().join(format!(
        "sluice-bench-{}-{}",
        std::process::id(),
        scenario.name
    ));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveOnDrop(dir.clone());

    let signer = match scenario.gateway.auth {
        Auth::Jwt => Some(crate::jwt::Signer::generate()?),
        _ => None,
    };
    let jwks_path = dir.join("jwks.json");
    if let Some(signer) = &signer {
        std::fs::write(&jwks_path, signer.jwks())?;
    }
    let bearer = match (scenario.gateway.auth, &signer) {
        (Auth::Token, _) => Some(targets::STATIC_TOKEN.to_string()),
        (Auth::Jwt, Some(signer)) => Some(signer.token("bench")?),
        _ => None,
    };

    let mut mock = targets::mock(
        scenario,
        options.upstream_listen,
        &dir,
        signer.as_ref().map(|_| jwks_path.as_path()),
    )?;
    // Declared before the targets, so it stops after them.
    let _mock_proc = mock.proc.take();
    let upstream = mock
        .url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix("/mcp"))
        .ok_or_else(|| anyhow!("unexpected mock URL {}", mock.url))?
        .to_string();
    eprintln!("mock upstream at {}", mock.url);

    let wanted = &scenario.compare.targets;
    let mut running: Vec<Target> = Vec::new();
    if wanted.iter().any(|t| t == "direct") {
        running.push(mock);
    }
    if wanted.iter().any(|t| t == "sluice") {
        let binary = targets::find_sluice(options.sluice.as_ref()).ok_or_else(|| {
            anyhow!("no sluice binary: build it (cargo build --release) or pass --sluice PATH")
        })?;
        running.push(targets::sluice(&binary, scenario, &upstream, &dir)?);
    }
    if wanted.iter().any(|t| t == "nginx") {
        let given = options.nginx.clone();
        match given.or_else(|| procs::find_program("nginx", &[])) {
            Some(binary) => running.push(targets::nginx(&binary, scenario, &upstream, &dir)?),
            None => eprintln!("nginx not found: skipped (bench/setup.sh installs it)"),
        }
    }
    for extra in &options.extra {
        running.push(extra_target(extra)?);
    }

    let calibrated_rate = if scenario.load.rate_of_max > 0.0 {
        let base = running
            .iter()
            .find(|t| t.name == "sluice")
            .or_else(|| running.iter().find(|t| t.name != "direct"))
            .or(running.first())
            .ok_or_else(|| anyhow!("no target to calibrate against"))?;
        // `rate` and `rate_of_max` exclude each other, so this spec is closed loop.
        let spec = scenario.load_spec(None);
        let target = client::Target::new(&base.url, bearer.as_deref())?;
        let mut prepared = Prepared::connect(&target, &spec).await?;
        prepared.run(scenario.load.warmup, None).await?;
        let max = Summary::of(&prepared.run(scenario.load.duration, None).await?).rps;
        let rate = (max * scenario.load.rate_of_max).max(1.0);
        eprintln!(
            "calibration: {} closed loop {max:.0} req/s, open loop at {rate:.0} req/s",
            base.name
        );
        Some(rate)
    } else {
        None
    };

    let ticks = procs::clock_ticks();
    let mut tallies: Vec<Tally> = running.iter().map(|_| Tally::default()).collect();
    let rounds = scenario.compare.rounds;
    for round in 1..=rounds {
        let n = running.len();
        for k in 0..n {
            let i = (k + round - 1) % n;
            let (target, tally) = (&running[i], &mut tallies[i]);
            if tally.failure.is_some() {
                continue;
            }
            match measure(
                scenario,
                target,
                bearer.as_deref(),
                calibrated_rate,
                ticks,
                round,
            )
            .await
            {
                Ok((result, histogram)) => {
                    let line = result.summary.table(&target.name);
                    eprint!(
                        "round {round}/{rounds} {}",
                        line.lines().nth(1).unwrap_or("")
                    );
                    if let Some(cpu) = result.cpu_us_per_request {
                        eprint!("  cpu {cpu:.1}µs/req");
                    }
                    eprintln!();
                    tally.histogram.add(&histogram).expect("same bounds");
                    tally.rounds.push(result);
                }
                Err(e) => {
                    eprintln!("round {round}: {} failed: {e:#}", target.name);
                    tally.failure = Some(format!("{e:#}"));
                }
            }
        }
    }

    let mut results: Vec<TargetResult> = running
        .iter()
        .zip(tallies)
        .map(|(t, tally)| aggregate(t, tally))
        .collect();
    if let Some(direct) = results
        .iter()
        .find(|t| t.name == "direct" && t.failure.is_none())
        .cloned()
    {
        for t in &mut results {
            if t.failure.is_none() && direct.rps > 0.0 {
                t.ratio_to_direct = Some(t.rps / direct.rps);
                t.added_p50_us = Some(t.latency_us.p50 as i64 - direct.latency_us.p50 as i64);
                t.added_p99_us = Some(t.latency_us.p99 as i64 - direct.latency_us.p99 as i64);
            }
        }
    }
    drop(running);
    Ok(ScenarioResult {
        scenario: scenario.clone(),
        rounds,
        calibrated_rate,
        host_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        generated_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        targets: results,
    })
}

/// One target, one round: sessions, warm-up, then the measured window with `/proc` samples.
async fn measure(
    scenario: &Scenario,
    target: &Target,
    bearer: Option<&str>,
    rate: Option<f64>,
    ticks: u64,
    round: usize,
) -> Result<(RoundResult, Histogram<u64>)> {
    let spec = scenario.load_spec(rate);
    let client_target = client::Target::new(&target.url, bearer)?;
    let mut prepared = Prepared::connect(&client_target, &spec).await?;
    if !scenario.load.warmup.is_zero() {
        prepared.run(scenario.load.warmup, None).await?;
    }
    let before = target.pid.map(procs::usage).transpose()?;
    let live = Arc::new(progress::Live::default());
    let bar = progress::Bar::start(target.name.clone(), scenario.load.duration, live.clone());
    let run = prepared.run(scenario.load.duration, Some(live)).await;
    bar.finish();
    let run = run?;
    let after = target.pid.map(procs::usage).transpose()?;
    let summary = Summary::of(&run);
    if summary.answered == 0 {
        bail!(
            "no request was answered ({})",
            report::fmt_errors(&summary.errors)
        );
    }
    let cpu = match (before, after) {
        (Some(b), Some(a)) => Some(
            (a.cpu_ticks.saturating_sub(b.cpu_ticks)) as f64 * 1e6
                / ticks as f64
                / summary.answered as f64,
        ),
        _ => None,
    };
    Ok((
        RoundResult {
            round,
            summary,
            cpu_us_per_request: cpu,
            rss_kib: after.map(|a| a.rss_kib),
            session_setup_ms: prepared.session_setup.as_secs_f64() * 1e3,
            stateful_sessions: prepared.stateful_sessions(),
        },
        run.latency.corrected,
    ))
}

/// What one target gathered over the rounds.
struct Tally {
    rounds: Vec<RoundResult>,
    /// Every round's latencies.
    histogram: Histogram<u64>,
    /// Set by the first round that failed; later rounds skip the target.
    failure: Option<String>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            rounds: Vec::new(),
            histogram: latency::histogram(),
            failure: None,
        }
    }
}

fn aggregate(target: &Target, tally: Tally) -> TargetResult {
    let Tally {
        rounds,
        histogram: merged,
        failure,
    } = tally;
    let n = rounds.len().max(1) as f64;
    let mut errors = BTreeMap::new();
    for r in &rounds {
        for (k, v) in &r.summary.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    let answered: u64 = rounds.iter().map(|r| r.summary.answered).sum();
    let cpus: Vec<f64> = rounds.iter().filter_map(|r| r.cpu_us_per_request).collect();
    TargetResult {
        name: target.name.clone(),
        url: target.url.clone(),
        rps: rounds.iter().map(|r| r.summary.rps).sum::<f64>() / n,
        ratio_to_direct: None,
        latency_us: Latency::of(&merged),
        added_p50_us: None,
        added_p99_us: None,
        cpu_us_per_request: (!cpus.is_empty())
            .then(|| cpus.iter().sum::<f64>() / cpus.len() as f64),
        rss_mib: rounds
            .iter()
            .filter_map(|r| r.rss_kib)
            .max()
            .map(|k| k as f64 / 1024.0),
        errors,
        answered,
        messages_per_request: if answered > 0 {
            rounds.iter().map(|r| r.summary.messages).sum::<u64>() as f64 / answered as f64
        } else {
            0.0
        },
        session_setup_ms: rounds.iter().map(|r| r.session_setup_ms).sum::<f64>() / n,
        stateful_sessions: rounds.last().map_or(0, |r| r.stateful_sessions),
        percentiles: report::percentile_points(&merged),
        round_results: rounds,
        failure,
    }
}

/// Rewrites the plots, the per-scenario tables and `summary.md` of earlier results.
pub fn redraw(paths: &[PathBuf]) -> Result<()> {
    let mut results = Vec::new();
    for path in paths {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let result: ScenarioResult = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a `compare` result", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        write_outputs(dir, &result)?;
        results.push((dir.to_path_buf(), result));
    }
    if let Some((dir, _)) = results.first() {
        let all: Vec<ScenarioResult> = results.iter().map(|(_, r)| r.clone()).collect();
        std::fs::write(dir.join("summary.md"), markdown::summary(&all))?;
    }
    Ok(())
}

/// `NAME=URL` or `NAME=URL@PID`.
fn extra_target(text: &str) -> Result<Target> {
    let (name, rest) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("--target '{text}': expected NAME=URL or NAME=URL@PID"))?;
    if name.is_empty() || crate::scenario::BUILT_IN_TARGETS.contains(&name) {
        bail!("--target '{text}': give the target a name of its own");
    }
    let (url, pid) = match rest.rsplit_once('@') {
        Some((url, pid)) => {
            let pid = pid
                .parse::<u32>()
                .map_err(|_| anyhow!("--target '{text}': '{pid}' is not a process id"))?;
            if !Path::new(&format!("/proc/{pid}")).exists() {
                bail!("--target '{text}': no process {pid}");
            }
            (url, Some(pid))
        }
        None => (rest, None),
    };
    client::Target::new(url, None).with_context(|| format!("--target '{text}'"))?;
    Ok(Target {
        name: name.into(),
        url: url.into(),
        pid,
        proc: None,
    })
}

fn write_outputs(out: &Path, result: &ScenarioResult) -> Result<()> {
    let name = &result.scenario.name;
    let json = out.join(format!("{name}.json"));
    std::fs::write(&json, serde_json::to_vec_pretty(result)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let md = out.join(format!("{name}.md"));
    std::fs::write(&md, markdown::scenario_table(result))
        .with_context(|| format!("writing {}", md.display()))?;
    plot::latency(&out.join(format!("{name}-latency.svg")), result)?;
    plot::throughput(&out.join(format!("{name}-throughput.svg")), result)?;
    Ok(())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_gateways_are_named_with_an_optional_pid() {
        let t = extra_target("envoy=http://127.0.0.1:9/mcp").unwrap();
        assert_eq!(
            (t.name.as_str(), t.url.as_str(), t.pid),
            ("envoy", "http://127.0.0.1:9/mcp", None)
        );
        let me = std::process::id();
        let t = extra_target(&format!("x=http://127.0.0.1:9/mcp@{me}")).unwrap();
        assert_eq!(
            (t.url.as_str(), t.pid),
            ("http://127.0.0.1:9/mcp", Some(me))
        );
        for (bad, says) in [
            ("envoy", "NAME=URL"),
            ("sluice=http://127.0.0.1:9/", "name of its own"),
            ("x=ftp://127.0.0.1:9/", "http://"),
            ("x=http://127.0.0.1:9/@abc", "not a process id"),
        ] {
            let err = format!("{:#}", extra_target(bad).err().unwrap());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
