//! The bounded fuzz run CI does with `cargo test`: every target over its corpus in
//! `fuzz/corpus/<target>/`, then a short seeded mutation run. A crash fails the test and leaves
//! its input in `fuzz/artifacts/<target>/`; `cargo run -p sluice-fuzz -- run <target> --corpus
//! <that file>` reproduces it.

use std::path::Path;

use sluice_fuzz::runner::{Budget, DEFAULT_TIMEOUT, Options, run_target};
use sluice_fuzz::{TARGETS, target};

/// Mutations per target: a few seconds for all of them in a debug build.
const ITERATIONS: u64 = 10_000;
const SEED: u64 = 0x5eed;

fn fuzz(name: &str) {
    let t = target(name).unwrap_or_else(|| panic!("no target {name}"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let options = Options {
        corpus: dir.join("corpus"),
        artifacts: Some(dir.join("artifacts")),
        budget: Budget::Iterations(ITERATIONS),
        seed: SEED,
        timeout: DEFAULT_TIMEOUT,
    };
    let report = run_target(t, &options).expect("the corpus is readable");
    eprintln!("{report}");
    assert!(report.corpus_files > 0, "{name} has no corpus");
    if let Some(crash) = report.crashes.first() {
        panic!(
            "{name} crashed on {}: {}\ninput {:?} (written to {:?})",
            crash.corpus_file.as_deref().unwrap_or("a mutation"),
            crash.message,
            String::from_utf8_lossy(&crash.input),
            crash.artifact
        );
    }
    assert_eq!(report.executions, report.corpus_files as u64 + ITERATIONS);
}

#[test]
fn jsonrpc_envelope() {
    fuzz("jsonrpc_envelope");
}

#[test]
fn session_token() {
    fuzz("session_token");
}

#[test]
fn relayed_id() {
    fuzz("relayed_id");
}

#[test]
fn event_cursor() {
    fuzz("event_cursor");
}

#[test]
fn sse() {
    fuzz("sse");
}

#[test]
fn jwt() {
    fuzz("jwt");
}

#[test]
fn config() {
    fuzz("config");
}

#[test]
fn header_values() {
    fuzz("header_values");
}

#[test]
fn modern_envelope() {
    fuzz("modern_envelope");
}

#[test]
fn every_target_is_run_here() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "jsonrpc_envelope",
            "session_token",
            "relayed_id",
            "event_cursor",
            "sse",
            "jwt",
            "config",
            "header_values",
            "modern_envelope"
        ],
        "add a test above for a new target"
    );
}

#[test]
fn the_corpus_stays_small() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut total = 0;
    for t in TARGETS {
        let files = sluice_fuzz::runner::load_corpus(&root, t.name).expect("readable");
        assert!(files.len() <= 64, "{}: {} files", t.name, files.len());
        total += files.iter().map(|(_, data)| data.len()).sum::<usize>();
    }
    assert!(total < 200 * 1024, "the corpus holds {total} bytes");
}

#[test]
fn a_run_is_deterministic_given_the_seed() {
    let t = target("header_values").expect("target");
    let options = Options {
        corpus: Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        artifacts: None,
        budget: Budget::Iterations(300),
        seed: 42,
        timeout: DEFAULT_TIMEOUT,
    };
    let a = run_target(t, &options).expect("run");
    let b = run_target(t, &options).expect("run");
    assert_eq!((a.pool, a.shapes), (b.pool, b.shapes));
}
