//! `sluice-fuzz`: runs the fuzz targets on the stable toolchain (see `fuzz/README.md`).
//!
//! ```text
//! sluice-fuzz run TARGET|all [--corpus fuzz/corpus] [--seconds N | --iterations N] [--seed S]
//!                  [--artifacts fuzz/artifacts] [--timeout-ms 10000]
//! sluice-fuzz run jsonrpc_envelope --corpus fuzz/artifacts/jsonrpc_envelope/crash-…   # reproduce
//! sluice-fuzz list
//! ```
//!
//! Exits 1 when a target crashed (its input is in `--artifacts`), 2 on a usage or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice_fuzz::runner::{Budget, Options, run_target};
use sluice_fuzz::{TARGETS, Target, target};

#[derive(Parser)]
#[command(
    name = "sluice-fuzz",
    about = "Fuzz Sluice's parsers on the stable toolchain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one target, or `all`: the corpus, then seeded mutations within the budget.
    Run {
        /// A target name (see `list`) or `all`.
        target: String,
        /// The corpus root (one directory per target), or one input file to run alone.
        #[arg(long, default_value = "fuzz/corpus")]
        corpus: PathBuf,
        /// Where crashing inputs are written (`<dir>/<target>/crash-<hash>`).
        #[arg(long, default_value = "fuzz/artifacts")]
        artifacts: PathBuf,
        /// Mutate for this many seconds per target.
        #[arg(long, conflicts_with = "iterations")]
        seconds: Option<f64>,
        /// Mutate this many inputs per target (default 10000).
        #[arg(long)]
        iterations: Option<u64>,
        /// The mutation seed; with --iterations a run is reproducible.
        #[arg(long, default_value_t = 0x5eed)]
        seed: u64,
        /// An execution slower than this many milliseconds is a finding (`slow-<hash>`).
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// List the targets.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::List => {
            for t in TARGETS {
                println!("{:<17} {}", t.name, t.about);
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            target: name,
            corpus,
            artifacts,
            seconds,
            iterations,
            seed,
            timeout_ms,
        } => {
            let targets: Vec<&'static Target> = if name == "all" {
                TARGETS.iter().collect()
            } else if let Some(t) = target(&name) {
                vec![t]
            } else {
                eprintln!("unknown target {name:?}; `sluice-fuzz list` shows them");
                return ExitCode::from(2);
            };
            let budget = match (seconds, iterations) {
                (Some(s), _) => Budget::Seconds(s),
                (None, Some(n)) => Budget::Iterations(n),
                (None, None) => Budget::Iterations(10_000),
            };
            let options = Options {
                corpus,
                artifacts: Some(artifacts),
                budget,
                seed,
                timeout: Duration::from_millis(timeout_ms),
            };
            println!("seed {seed}, budget {budget:?} per target");
            let mut crashed = false;
            let mut total = 0;
            for t in targets {
                let report = match run_target(t, &options) {
                    Ok(report) => report,
                    Err(e) => {
                        eprintln!("{}: cannot read the corpus: {e}", t.name);
                        return ExitCode::from(2);
                    }
                };
                println!("{report}");
                total += report.executions;
                for crash in &report.crashes {
                    crashed = true;
                    let from = crash
                        .corpus_file
                        .as_deref()
                        .map_or_else(|| "a mutation".to_owned(), |f| format!("corpus file {f}"));
                    println!("  CRASH ({from}): {}", crash.message);
                    match &crash.artifact {
                        Some(path) => println!("  input written to {}", path.display()),
                        None => println!("  input: {:?}", String::from_utf8_lossy(&crash.input)),
                    }
                }
            }
            println!("{total} executions in all");
            if crashed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
