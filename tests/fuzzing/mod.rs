//! Stable-Rust fuzzing of berth's readers of untrusted input: es.xml, the HCL configuration,
//! saved plan files and the state file.
//!
//! There is no coverage feedback (that needs nightly and cargo-fuzz); instead the mutations
//! know the syntax of each input (see [`mutate`]), start from real inputs (the examples, the
//! OEDA fixtures, plans and states made by berth itself), and inputs a reader accepts join the
//! pool that later mutations start from, so mutations pile up past the first checks.
//!
//! The oracle, per input: no panic (each call runs under `catch_unwind`; the input is saved
//! for replay), no hang (a watchdog thread; inputs slower than the limit are saved and
//! counted), and errors that are proper errors (each target checks that its errors name the
//! file and, where the reader promises one, a location inside the input).
//!
//! Used by `tests/fuzz.rs` (a short deterministic run in `cargo test`) and `benches/fuzz.rs`
//! (the long run: `cargo bench --bench fuzz -- --execs N --seed S`).

#![allow(dead_code)]

pub mod mutate;
pub mod rng;
pub mod targets;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use mutate::{Dictionary, Syntax};
use rng::Rng;

/// What a reader made of one input, as the oracle judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted. The input joins the pool of starting points.
    Accepted,
    /// Refused with a proper error; the label (error kind) feeds the outcome histogram.
    Refused(String),
    /// Refused, but the error breaks a promise of the reader (no location, wrong file, a
    /// location outside the input): a bug.
    BadError(String),
}

/// One reader under test.
pub trait Target {
    /// Short name (`esxml`, `config`, `plan`, `state`), used on the command line and in file
    /// names of saved findings.
    fn name(&self) -> &'static str;
    fn syntax(&self) -> Syntax;
    /// The starting inputs. Never empty.
    fn seeds(&self) -> Vec<Vec<u8>>;
    /// Feeds one input to the reader and judges the result. Must not keep state between calls
    /// (beyond scratch files), so that a saved input replays the same way.
    fn run(&mut self, input: &[u8]) -> Verdict;
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub execs: u64,
    /// An input slower than this is a hang.
    pub time_limit: Duration,
    /// Where findings are saved (created on the first finding).
    pub findings_dir: PathBuf,
    /// Print a progress line at most this often (`None`: quiet).
    pub progress: Option<Duration>,
    /// Stop after this long even if fewer than `execs` inputs ran (`None`: no limit).
    pub max_time: Option<Duration>,
}

/// One saved finding.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: &'static str,
    pub message: String,
    pub file: PathBuf,
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub target: &'static str,
    pub execs: u64,
    pub elapsed: Duration,
    pub panics: u64,
    pub hangs: u64,
    /// Inputs over the time limit once but not when run again (the machine was busy).
    pub slow_once: u64,
    pub bad_errors: u64,
    pub slowest: Duration,
    /// Verdict label → count ("accepted", or the error kind).
    pub outcomes: BTreeMap<String, u64>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn clean(&self) -> bool {
        self.panics == 0 && self.hangs == 0 && self.bad_errors == 0
    }

    pub fn summary(&self) -> String {
        format!(
            "{:<7} execs={} time={:.1}s execs/s={:.0} panics={} hangs={} bad_errors={} slowest={:.1}ms slow_once={} accepted={} distinct_outcomes={}",
            self.target,
            self.execs,
            self.elapsed.as_secs_f64(),
            self.execs_per_sec(),
            self.panics,
            self.hangs,
            self.bad_errors,
            self.slowest.as_secs_f64() * 1e3,
            self.slow_once,
            self.outcomes.get("accepted").copied().unwrap_or(0),
            self.outcomes.len(),
        )
    }
}

thread_local! {
    /// Set while a fuzz input runs on this thread: its panics are recorded, not printed.
    static FUZZING: Cell<bool> = const { Cell::new(false) };
}

static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);
static HOOK: Once = Once::new();

/// Installs (once) a panic hook that records the message and place of panics raised under
/// [`run_one`], and leaves every other panic to the previous hook (test assertions still
/// print as usual).
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if FUZZING.with(Cell::get) {
                let place = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic payload)".to_string());
                *PANIC_MESSAGE.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("{payload}{place}"));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `target` on one input: `Err(message)` when it panicked.
pub fn run_one(target: &mut dyn Target, input: &[u8]) -> Result<Verdict, String> {
    install_panic_hook();
    FUZZING.with(|f| f.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| target.run(input)));
    FUZZING.with(|f| f.set(false));
    result.map_err(|_| {
        PANIC_MESSAGE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| "panic".to_string())
    })
}

/// Saves `input` as `<dir>/<target>-<kind>-<hash>.bin` and returns the path.
pub fn save_finding(dir: &Path, target: &str, kind: &str, input: &[u8]) -> PathBuf {
    // FNV-1a: a stable name, so the same input found twice is one file.
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let path = dir.join(format!("{target}-{kind}-{hash:016x}.bin"));
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, input)) {
        eprintln!("fuzz: cannot save {}: {e}", path.display());
    }
    path
}

/// The watchdog: while an input runs, `started_ms` holds when it started (ms since `epoch`,
/// plus one); the thread saves the input and ends the process if it runs for ten time
/// limits, since a hung call cannot be cancelled from outside.
struct Watchdog {
    started_ms: Arc<AtomicU64>,
    current: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(target: &'static str, options: &Options) -> Watchdog {
        let started_ms = Arc::new(AtomicU64::new(0));
        let current = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let hard_limit = options.time_limit * 10;
        let dir = options.findings_dir.clone();
        let thread = {
            let (started_ms, current, stop) = (started_ms.clone(), current.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(200));
                    let started = started_ms.load(Ordering::Relaxed);
                    if started == 0 {
                        continue;
                    }
                    let now = epoch.elapsed().as_millis() as u64 + 1;
                    if now.saturating_sub(started) > hard_limit.as_millis() as u64 {
                        let input = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        let file = save_finding(&dir, target, "hang", &input);
                        eprintln!(
                            "fuzz {target}: HANG: one input ran longer than {:?}; saved as {}; stopping",
                            hard_limit,
                            file.display()
                        );
                        std::process::exit(3);
                    }
                }
            })
        };
        Watchdog {
            started_ms,
            current,
            stop,
            epoch,
            thread: Some(thread),
        }
    }

    fn begin(&self, input: &[u8]) {
        {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            current.clear();
            current.extend_from_slice(input);
        }
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.started_ms.store(now, Ordering::Relaxed);
    }

    fn end(&self) {
        self.started_ms.store(0, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Most inputs the pool keeps (inputs a reader accepted, beyond the seeds).
const POOL_LIMIT: usize = 256;
/// Largest input the pool keeps: big accepted inputs would slow every later input down.
const POOL_INPUT_LIMIT: usize = 64 << 10;

/// Fuzzes `target` for `options.execs` inputs.
pub fn fuzz(target: &mut dyn Target, options: &Options) -> Report {
    let name = target.name();
    let syntax = target.syntax();
    let seeds = target.seeds();
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let dict = Dictionary::from_seeds(seeds.iter().map(Vec::as_slice));
    // Smaller seeds are picked more often: a mutated 1 MB es.xml costs as much as hundreds of
    // mutated small ones, and most of the checks are reached by both.
    let weights: Vec<f64> = seeds
        .iter()
        .map(|s| 1.0 / (1.0 + s.len() as f64 / 4096.0))
        .collect();
    let total_weight: f64 = weights.iter().sum();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut rng = Rng::new(options.seed);
    let mut report = Report {
        target: name,
        ..Report::default()
    };
    let watchdog = Watchdog::start(name, options);
    let started = Instant::now();
    let mut last_progress = started;
    let mut input = Vec::new();

    for exec in 0..options.execs {
        // The first inputs are the seeds as they are: a seed that fails is worth knowing.
        let base: &[u8] = if (exec as usize) < seeds.len() {
            &seeds[exec as usize]
        } else if !pool.is_empty() && rng.one_in(3) {
            &pool[rng.below(pool.len())]
        } else {
            &seeds[weighted(&weights, total_weight, &mut rng)]
        };
        input.clear();
        input.extend_from_slice(base);
        if exec as usize >= seeds.len() {
            // The donor is picked like a base: scanning a 1 MB donor for one element to
            // splice in would cost more than the rest of the input.
            let donor = weighted(&weights, total_weight, &mut rng);
            mutate::mutate(&mut input, syntax, &dict, &seeds[donor], &mut rng);
        }

        watchdog.begin(&input);
        let t0 = Instant::now();
        let result = run_one(target, &input);
        let took = t0.elapsed();
        watchdog.end();
        report.execs += 1;
        report.slowest = report.slowest.max(took);

        if took > options.time_limit {
            // On a shared machine one input can wait for a CPU longer than it runs: an input
            // is a hang when it is over the limit a second time too.
            watchdog.begin(&input);
            let t1 = Instant::now();
            let _ = run_one(target, &input);
            let again = t1.elapsed();
            watchdog.end();
            if again > options.time_limit {
                report.hangs += 1;
                let file = save_finding(&options.findings_dir, name, "slow", &input);
                report.findings.push(Finding {
                    kind: "hang",
                    message: format!(
                        "took {took:?}, then {again:?} (limit {:?})",
                        options.time_limit
                    ),
                    file,
                });
            } else {
                report.slow_once += 1;
                eprintln!(
                    "fuzz {name}: one input took {took:?} once, {again:?} when run again ({} bytes)",
                    input.len()
                );
            }
        }
        match result {
            Err(message) => {
                report.panics += 1;
                let file = save_finding(&options.findings_dir, name, "panic", &input);
                eprintln!(
                    "fuzz {name}: PANIC {message}; input saved as {}",
                    file.display()
                );
                report.findings.push(Finding {
                    kind: "panic",
                    message,
                    file,
                });
                *report.outcomes.entry("PANIC".to_string()).or_default() += 1;
            }
            Ok(Verdict::Accepted) => {
                *report.outcomes.entry("accepted".to_string()).or_default() += 1;
                if exec as usize >= seeds.len() && input.len() < POOL_INPUT_LIMIT {
                    if pool.len() < POOL_LIMIT {
                        pool.push(input.clone());
                    } else {
                        let slot = rng.below(POOL_LIMIT);
                        pool[slot].clone_from(&input);
                    }
                }
            }
            Ok(Verdict::Refused(label)) => {
                *report.outcomes.entry(label).or_default() += 1;
            }
            Ok(Verdict::BadError(message)) => {
                report.bad_errors += 1;
                let file = save_finding(&options.findings_dir, name, "bad-error", &input);
                eprintln!(
                    "fuzz {name}: BAD ERROR {message}; input saved as {}",
                    file.display()
                );
                report.findings.push(Finding {
                    kind: "bad-error",
                    message,
                    file,
                });
                *report.outcomes.entry("BAD_ERROR".to_string()).or_default() += 1;
            }
        }

        if options.max_time.is_some_and(|max| started.elapsed() >= max) {
            break;
        }
        if let Some(every) = options.progress
            && last_progress.elapsed() >= every
        {
            last_progress = Instant::now();
            report.elapsed = started.elapsed();
            eprintln!("fuzz progress: {}", report.summary());
        }
    }
    report.elapsed = started.elapsed();
    drop(watchdog);
    report
}

/// An index into `weights`, picked with probability proportional to its weight.
fn weighted(weights: &[f64], total: f64, rng: &mut Rng) -> usize {
    let mut x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Runs `target` on one saved input and describes what happened.
pub fn replay(target: &mut dyn Target, input: &[u8]) -> String {
    let t0 = Instant::now();
    let result = run_one(target, input);
    let took = t0.elapsed();
    match result {
        Err(message) => format!("PANIC after {took:?}: {message}"),
        Ok(verdict) => format!("{verdict:?} after {took:?}"),
    }
}
