//! `sluice-bench`: the one harness every Sluice performance figure comes from.
//!
//! - `mock-upstream` — a fast MCP server to put behind the system under test;
//! - `load` — an MCP-aware load generator against one URL;
//! - `compare` — a scenario against the upstream directly, Sluice, nginx and other gateways
//!   in the same run, interleaved, with ratios, `/proc` CPU and memory, SVG plots and
//!   Markdown.
//!
//! It talks to Sluice only over the network (it does not link the proxy), so it measures
//! any MCP gateway the same way.

mod client;
mod compare;
mod jwt;
mod load;
mod mcp;
mod mock;
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use load::mix::Mix;
use load::report::Summary;
use load::{LoadSpec, Prepared, progress};

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    version,
    about = "Load generator, mock MCP upstream and comparisons for Sluice"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a fast mock MCP server.
    MockUpstream(mock::MockOptions),
    /// Drive MCP load against one URL and print its figures.
    Load(LoadOptions),
    /// Run scenarios against several targets side by side.
    Compare(compare::CompareOptions),
    /// Redraw the plots and tables of earlier `compare` results (`<scenario>.json` files).
    Plot {
        /// Result files written by `compare`; outputs go beside each.
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct LoadOptions {
    /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp/dev.
    url: String,
    /// Bearer token sent with every request.
    #[arg(long)]
    bearer: Option<String>,
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
    /// MCP sessions (default: one per connection; 0 for none).
    #[arg(long, short = 's')]
    sessions: Option<usize>,
    #[arg(long, short = 'd', value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    warmup: Duration,
    /// Open loop at this many requests per second (latency corrected for coordinated
    /// omission); closed loop when absent.
    #[arg(long, short = 'r')]
    rate: Option<f64>,
    /// Request mix as weights, e.g. call=98,list=1,ping=1.
    #[arg(long, value_parser = Mix::parse, default_value = "call=1")]
    mix: Mix,
    /// The tool to call (a gateway's `server__` prefix is found by listing tools).
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Size of the call's `text` argument.
    #[arg(long, default_value_t = 64)]
    argument_bytes: usize,
    /// Ask for progress notifications.
    #[arg(long)]
    progress: bool,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    timeout: Duration,
    /// Also write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::MockUpstream(options) => mock::run(options),
        Command::Load(options) => runtime().and_then(|rt| rt.block_on(load(options))),
        Command::Compare(options) => runtime().and_then(|rt| rt.block_on(compare::run(options))),
        Command::Plot { results } => compare::redraw(&results),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The load generator's runtime: as many workers as cores, like the processes it measures.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

async fn load(o: LoadOptions) -> Result<()> {
    if let Some(rate) = o.rate
        && !(rate > 0.0 && rate.is_finite())
    {
        anyhow::bail!("--rate must be a positive number of requests per second");
    }
    let target = client::Target::new(&o.url, o.bearer.as_deref())?;
    let spec = LoadSpec {
        connections: o.connections,
        sessions: o.sessions.unwrap_or(o.connections),
        rate: o.rate,
        mix: o.mix,
        tool: o.tool,
        argument_bytes: o.argument_bytes,
        progress: o.progress,
        timeout: o.timeout,
    };
    let mut prepared = Prepared::connect(&target, &spec).await?;
    eprintln!(
        "{} sessions opened in {:.0} ms ({} with an id){}",
        spec.sessions,
        prepared.session_setup.as_secs_f64() * 1e3,
        prepared.stateful_sessions(),
        prepared
            .tool
            .as_deref()
            .map(|t| format!("; calling {t}"))
            .unwrap_or_default()
    );
    if !o.warmup.is_zero() {
        prepared.run(o.warmup, None).await?;
    }
    let live = Arc::new(progress::Live::default());
    let bar = progress::Bar::start("load".into(), o.duration, live.clone());
    let run = prepared.run(o.duration, Some(live)).await;
    bar.finish();
    let summary = Summary::of(&run?);
    print!("{}", summary.table(&target.authority));
    if let Some(path) = o.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
