//! The Markdown a comparison leaves behind: one table per scenario (`<scenario>.md`) and a
//! table of every scenario of the run (`summary.md`, the one `bench/README.md` quotes).

use std::fmt::Write as _;

use super::{ScenarioResult, TargetResult};
use crate::load::report::{fmt_errors, fmt_us};

const HEADER: &str = "| target | req/s | × direct | p50 | p99 | p99.9 | +p99 vs direct | CPU µs/req | RSS MiB | errors |\n\
                      |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";

/// The table of one scenario, with how it was run.
pub fn scenario_table(result: &ScenarioResult) -> String {
    let s = &result.scenario;
    let mut out = String::new();
    let _ = writeln!(out, "### {}\n", s.name);
    if !s.description.is_empty() {
        let _ = writeln!(out, "{}\n", s.description);
    }
    let mode = match (result.calibrated_rate, s.load.rate) {
        (Some(rate), _) => format!(
            "open loop at {rate:.0} req/s ({:.0} % of Sluice's max)",
            s.load.rate_of_max * 100.0
        ),
        (None, rate) if rate > 0.0 => format!("open loop at {rate:.0} req/s"),
        _ => format!("closed loop, {} connections", s.load.connections),
    };
    let _ = writeln!(
        out,
        "{mode}, {} sessions, {} rounds of {}, {} CPUs\n",
        s.load.sessions.unwrap_or(s.load.connections),
        result.rounds,
        humantime::format_duration(s.load.duration),
        result.host_cpus
    );
    out.push_str(HEADER);
    for t in &result.targets {
        out.push_str(&row(None, t));
    }
    out.push('\n');
    out
}

/// Every scenario of a run in one table.
pub fn summary(results: &[ScenarioResult]) -> String {
    let mut out = String::from("| scenario ");
    out.push_str(HEADER.lines().next().unwrap_or_default());
    out.push_str("\n|---");
    out.push_str(HEADER.lines().nth(1).unwrap_or_default());
    out.push('\n');
    for r in results {
        for t in &r.targets {
            out.push_str(&row(Some(&r.scenario.name), t));
        }
    }
    out
}

fn row(scenario: Option<&str>, t: &TargetResult) -> String {
    let mut out = String::new();
    if let Some(s) = scenario {
        let _ = write!(out, "| {s} ");
    }
    if let Some(failure) = &t.failure {
        let first = failure.lines().next().unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | failed: {} ||||||||| ",
            t.name,
            first.replace('|', "/")
        );
        return out;
    }
    let l = &t.latency_us;
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
    let _ = writeln!(
        out,
        "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
        t.name,
        t.rps,
        opt(t.ratio_to_direct, 2),
        fmt_us(l.p50),
        fmt_us(l.p99),
        fmt_us(l.p999),
        t.added_p99_us.map_or("–".into(), |us| {
            if us < 0 {
                format!("-{}", fmt_us(us.unsigned_abs()))
            } else {
                format!("+{}", fmt_us(us as u64))
            }
        }),
        opt(t.cpu_us_per_request, 1),
        opt(t.rss_mib, 1),
        fmt_errors(&t.errors)
    );
    out
}
