//! The stable-toolchain runner: every corpus file, then seeded mutations of the corpus for a
//! bounded number of iterations or seconds. A panic is caught, its input written to
//! `<artifacts>/<target>/crash-<hash>`, and the target stops (as libFuzzer does). An input that
//! takes longer than the timeout is a finding too (`slow-<hash>`); it cannot be interrupted,
//! only reported once it returns.
//!
//! Feedback is the outcome "shape" each target returns (which result branch, which fields):
//! an input showing a shape not seen before joins the in-memory corpus. That is far coarser
//! than libFuzzer's edge coverage, which is why the nightly wrappers exist too.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::mutate::{Rng, mutate};
use crate::{Target, fnv1a};

/// How a timeout's message starts.
const SLOW: &str = "slow input";

/// Most inputs kept in memory per target; past it, new shapes are counted but not kept.
const MAX_POOL: usize = 20_000;

/// How long a mutation run lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// This many mutated inputs (after the corpus).
    Iterations(u64),
    /// Mutate until this much time has passed (the corpus always runs whole).
    Seconds(f64),
}

/// What to run and where to write findings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The corpus root (`fuzz/corpus`, holding one directory per target), or one file to run
    /// alone (to reproduce a crash).
    pub corpus: PathBuf,
    /// Where crashing inputs go (`fuzz/artifacts`); `None` writes nothing.
    pub artifacts: Option<PathBuf>,
    /// The mutation budget.
    pub budget: Budget,
    /// The seed; the same seed and budget in iterations give the same run.
    pub seed: u64,
    /// One execution taking longer than this is a finding.
    pub timeout: Duration,
}

/// The default [`Options::timeout`]: far above any input's time in a debug build.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One crashing input.
#[derive(Debug, Clone)]
pub struct Crash {
    /// The input.
    pub input: Vec<u8>,
    /// The panic message and location.
    pub message: String,
    /// Where the input was written, if it was.
    pub artifact: Option<PathBuf>,
    /// The corpus file it came from, when it was not a mutation.
    pub corpus_file: Option<String>,
}

/// The figures of one target's run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Corpus files run.
    pub corpus_files: usize,
    /// Inputs executed in all (corpus and mutations).
    pub executions: u64,
    /// Inputs in the in-memory corpus at the end (files plus kept mutations).
    pub pool: usize,
    /// Distinct outcome shapes seen.
    pub shapes: usize,
    /// The crash, if one was found (the target stops at the first).
    pub crashes: Vec<Crash>,
    /// Wall time.
    pub elapsed: Duration,
    /// The slowest single execution.
    pub slowest: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "{:<17} {:>10} execs {:>9.0}/s  corpus {:>3} files, pool {:>5}  shapes {:>5}  slowest {:>7.2} ms  crashes {}",
            self.target,
            self.executions,
            self.executions as f64 / secs.max(1e-9),
            self.corpus_files,
            self.pool,
            self.shapes,
            self.slowest.as_secs_f64() * 1e3,
            self.crashes.len()
        )
    }
}

/// The corpus of `target` under `root` (sorted by file name), or `root` itself when it is a
/// file. A missing directory is an empty corpus.
pub fn load_corpus(root: &Path, target: &str) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    if root.is_file() {
        return Ok(vec![(root.display().to_string(), std::fs::read(root)?)]);
    }
    let dir = root.join(target);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.is_file() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, std::fs::read(&path)?));
        }
    }
    files.sort();
    Ok(files)
}

thread_local! {
    /// Set while a target runs on this thread: its panics are recorded, not printed.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that records the panics of running targets and
/// leaves every other panic to the previous hook.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `target` on `data`, catching a panic: its shape, or the panic message.
pub fn execute(target: &Target, data: &[u8]) -> Result<u64, String> {
    install_hook();
    CAPTURING.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| (target.shape)(data)));
    CAPTURING.with(|c| c.set(false));
    result.map_err(|payload| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic without a message".to_owned())
    })
}

/// Writes a crashing input to `<dir>/<target>/<kind>-<hash>`.
fn save(dir: &Path, target: &str, kind: &str, data: &[u8]) -> Option<PathBuf> {
    let dir = dir.join(target);
    let path = dir.join(format!("{kind}-{:016x}", fnv1a(data)));
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, data));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            None
        }
    }
}

/// Runs one target: its corpus, then mutations within the budget.
pub fn run_target(target: &'static Target, options: &Options) -> std::io::Result<Report> {
    let started = Instant::now();
    let files = load_corpus(&options.corpus, target.name)?;
    let mut report = Report {
        target: target.name,
        corpus_files: files.len(),
        executions: 0,
        pool: 0,
        shapes: 0,
        crashes: Vec::new(),
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
    };
    let mut shapes = HashSet::new();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let crash = |report: &mut Report, data: &[u8], message: String, file: Option<String>| {
        let kind = if message.starts_with(SLOW) {
            "slow"
        } else {
            "crash"
        };
        let artifact = options
            .artifacts
            .as_deref()
            .and_then(|dir| save(dir, target.name, kind, data));
        report.crashes.push(Crash {
            input: data.to_vec(),
            message,
            artifact,
            corpus_file: file,
        });
    };
    let timed = |report: &mut Report, data: &[u8]| {
        let at = Instant::now();
        let result = execute(target, data);
        let took = at.elapsed();
        report.slowest = report.slowest.max(took);
        report.executions += 1;
        match result {
            Ok(_) if took > options.timeout => Err(format!(
                "{SLOW}: {:.0} ms, over the {:.0} ms timeout",
                took.as_secs_f64() * 1e3,
                options.timeout.as_secs_f64() * 1e3
            )),
            other => other,
        }
    };

    for (name, data) in files {
        match timed(&mut report, &data) {
            Ok(shape) => {
                shapes.insert(shape);
                pool.push(data);
            }
            Err(message) => {
                crash(&mut report, &data, message, Some(name));
                return Ok(finish(report, &pool, &shapes, started));
            }
        }
    }
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let single_file = options.corpus.is_file();
    let mut rng = Rng::new(options.seed ^ fnv1a(target.name.as_bytes()));
    let mut iteration: u64 = 0;
    loop {
        let more = match options.budget {
            _ if single_file => false,
            Budget::Iterations(n) => iteration < n,
            Budget::Seconds(s) => {
                !iteration.is_multiple_of(64) || started.elapsed().as_secs_f64() < s
            }
        };
        if !more {
            break;
        }
        iteration += 1;
        let mut data = rng.pick(&pool).clone();
        mutate(
            &mut rng,
            &mut data,
            &pool,
            target.dictionary,
            target.max_len,
        );
        match timed(&mut report, &data) {
            Ok(shape) => {
                if shapes.insert(shape) && pool.len() < MAX_POOL {
                    pool.push(data);
                }
            }
            Err(message) => {
                crash(&mut report, &data, message, None);
                break;
            }
        }
    }
    Ok(finish(report, &pool, &shapes, started))
}

fn finish(mut report: Report, pool: &[Vec<u8>], shapes: &HashSet<u64>, started: Instant) -> Report {
    report.pool = pool.len();
    report.shapes = shapes.len();
    report.elapsed = started.elapsed();
    report
}
