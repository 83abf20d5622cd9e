//! `lab race`: N threads each add 1 to one shared counter M times, three ways.
//!
//! - `load-then-store`: read the counter, then write the read value plus one,
//!   as two separate atomic operations. No undefined behaviour (each access is
//!   atomic), but the read-modify-write is not: another thread can store in
//!   between, and its update is overwritten. Updates are lost.
//! - `fetch_add`: the read-modify-write as one indivisible instruction.
//! - `mutex`: a plain integer that one thread at a time may touch.
//!
//! The threads start together (they wait for one flag), so they really race.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::python::{PythonRun, run_script};
use super::table::Table;
use super::{LabError, Lesson, Took, thousands};
use crate::stats::as_millis;

/// The Python side, run with `python3 -c`.
const PYTHON_SCRIPT: &str = include_str!("race.py");
/// Python is about a hundred times slower per increment: it does at most this many per thread.
const PYTHON_MAX_INCREMENTS: u64 = 200_000;
/// How long the Python side may run before it is killed.
const PYTHON_LIMIT: Duration = Duration::from_secs(60);

/// How many threads, and how many increments each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RaceConfig {
    /// Threads incrementing at once.
    pub threads: usize,
    /// Increments per thread.
    pub increments: u64,
    /// Also run the race in CPython.
    pub python: bool,
}

/// The three ways to increment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// An atomic load, then an atomic store: a race that loses updates.
    LoadThenStore,
    /// One atomic read-modify-write.
    #[serde(rename = "fetch_add")]
    FetchAdd,
    /// A `Mutex<u64>`.
    Mutex,
}

impl Variant {
    /// Every variant, in the order they run.
    pub const ALL: [Variant; 3] = [Variant::LoadThenStore, Variant::FetchAdd, Variant::Mutex];
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::LoadThenStore => "load-then-store",
            Variant::FetchAdd => "fetch_add",
            Variant::Mutex => "mutex",
        })
    }
}

/// Below this, a variant's time is mostly spawning threads, and comparing
/// costs per increment would mislead.
const MEANINGFUL_RUN: Duration = Duration::from_millis(5);

/// One variant's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RaceRow {
    /// How it incremented.
    pub variant: Variant,
    /// The counter at the end.
    pub got: u64,
    /// Increments that left no trace: expected minus got.
    pub lost: u64,
    /// From the common start until every thread was done.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
    /// Elapsed time per increment, over all threads.
    pub ns_per_increment: f64,
}

/// One variant of the race in CPython.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PythonRaceRow {
    /// `+=`, `read, call, write` or `with lock`.
    pub variant: String,
    /// The interpreter's switch interval during the run (`sys.setswitchinterval`), in microseconds.
    pub switch_interval_us: f64,
    /// threads × increments.
    pub expected: u64,
    /// The counter at the end.
    pub got: u64,
    /// Increments that left no trace.
    pub lost: u64,
    /// Wall time.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
}

/// What `lab race` measured.
#[derive(Clone, Debug, Serialize)]
pub struct RaceReport {
    /// The load.
    pub config: RaceConfig,
    /// threads × increments: what every variant should get.
    pub expected: u64,
    /// One row per variant.
    pub rows: Vec<RaceRow>,
    /// How the Python race went.
    pub python: PythonRun,
    /// Increments per thread in Python (fewer than in Rust: it is slower).
    pub python_increments: u64,
    /// The Python variants.
    pub python_rows: Vec<PythonRaceRow>,
}

/// A line of the Python script's output.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum PythonLine {
    Interpreter { version: String, gil: bool },
    Variant { variant: String, switch_interval: f64, got: u64, seconds: f64 },
}

/// Runs the race in CPython.
fn python(config: RaceConfig, increments: u64) -> (PythonRun, Vec<PythonRaceRow>) {
    let args = [config.threads.to_string(), increments.to_string()];
    let lines = match run_script::<PythonLine>(PYTHON_SCRIPT, &args, PYTHON_LIMIT) {
        Ok(lines) => lines,
        Err(not_run) => return (not_run, Vec::new()),
    };
    let expected = config.threads as u64 * increments;
    let (mut interpreter, mut rows) = (None, Vec::new());
    for line in lines {
        match line {
            PythonLine::Interpreter { version, gil } => interpreter = Some(PythonRun::Ran { version, gil }),
            PythonLine::Variant { variant, switch_interval, got, seconds } => rows.push(PythonRaceRow {
                variant,
                switch_interval_us: switch_interval * 1e6,
                expected,
                got,
                lost: expected.saturating_sub(got),
                elapsed: Duration::try_from_secs_f64(seconds).unwrap_or_default(),
            }),
        }
    }
    match interpreter {
        Some(ran) => (ran, rows),
        None => (PythonRun::Failed { error: "python3 printed nothing".to_owned() }, Vec::new()),
    }
}

/// The counter every variant increments.
#[derive(Default)]
struct Counter {
    atomic: AtomicU64,
    locked: Mutex<u64>,
}

impl Counter {
    fn increment(&self, variant: Variant) {
        match variant {
            Variant::LoadThenStore => {
                let seen = self.atomic.load(Ordering::Relaxed);
                self.atomic.store(seen + 1, Ordering::Relaxed);
            }
            Variant::FetchAdd => {
                self.atomic.fetch_add(1, Ordering::Relaxed);
            }
            // A panicking incrementer cannot leave a u64 half-written: ignore poisoning.
            Variant::Mutex => *self.locked.lock().unwrap_or_else(PoisonError::into_inner) += 1,
        }
    }

    fn value(self, variant: Variant) -> u64 {
        match variant {
            Variant::LoadThenStore | Variant::FetchAdd => self.atomic.into_inner(),
            Variant::Mutex => self.locked.into_inner().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

/// Runs every variant.
///
/// # Errors
/// When a thread cannot be started or panics.
pub fn run(config: RaceConfig) -> Result<RaceReport, LabError> {
    let expected = config.threads as u64 * config.increments;
    let rows = Variant::ALL.into_iter().map(|v| race(config, v)).collect::<Result<_, _>>()?;
    let python_increments = config.increments.min(PYTHON_MAX_INCREMENTS);
    let (python, python_rows) =
        if config.python { python(config, python_increments) } else { (PythonRun::NotAsked, Vec::new()) };
    Ok(RaceReport { config, expected, rows, python, python_increments, python_rows })
}

fn race(config: RaceConfig, variant: Variant) -> Result<RaceRow, LabError> {
    let counter = Counter::default();
    let go = AtomicBool::new(false);
    let mut elapsed = Duration::ZERO;
    thread::scope(|scope| {
        let mut spawned = Ok(Vec::new());
        for i in 1..=config.threads {
            let name = format!("racer-{i}");
            let work = || {
                while !go.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                for _ in 0..config.increments {
                    counter.increment(variant);
                }
            };
            match thread::Builder::new().name(name.clone()).spawn_scoped(scope, work) {
                Ok(handle) => {
                    if let Ok(handles) = &mut spawned {
                        handles.push((name, handle));
                    }
                }
                Err(source) => {
                    spawned = Err(LabError::Thread { name, error: source });
                    break;
                }
            }
        }
        // Release the threads even after a failed spawn, or the scope would wait forever.
        let started = Instant::now();
        go.store(true, Ordering::Release);
        let handles = spawned?;
        for (name, handle) in handles {
            handle.join().map_err(|_| LabError::Panicked { name })?;
        }
        elapsed = started.elapsed();
        Ok::<_, LabError>(())
    })?;
    let got = counter.value(variant);
    let expected = config.threads as u64 * config.increments;
    Ok(RaceRow {
        variant,
        got,
        lost: expected.saturating_sub(got),
        elapsed,
        ns_per_increment: elapsed.as_nanos() as f64 / expected.max(1) as f64,
    })
}

impl RaceReport {
    fn row(&self, variant: Variant) -> Option<&RaceRow> {
        self.rows.iter().find(|r| r.variant == variant)
    }
}

impl fmt::Display for RaceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} threads × {} increments = {} expected",
            self.config.threads,
            thousands(self.config.increments),
            thousands(self.expected)
        )?;
        let mut table = Table::new(&["variant", "got", "lost", "lost %", "time", "ns/increment"]);
        for r in &self.rows {
            table.row([
                r.variant.to_string(),
                thousands(r.got),
                thousands(r.lost),
                format!("{:.1}%", crate::stats::percent(r.lost, self.expected)),
                Took(r.elapsed).to_string(),
                format!("{:.1}", r.ns_per_increment),
            ]);
        }
        write!(f, "{table}")?;
        if let Some(line) = self.python.describe() {
            write!(f, "\n{line}")?;
        }
        if !self.python_rows.is_empty() {
            writeln!(
                f,
                ": {} threads × {} increments",
                self.config.threads,
                thousands(self.python_increments)
            )?;
            let mut table =
                Table::new(&["python variant", "switch interval", "got", "lost", "lost %", "time"]);
            for r in &self.python_rows {
                table.row([
                    r.variant.clone(),
                    format!("{} µs", r.switch_interval_us.round()),
                    thousands(r.got),
                    thousands(r.lost),
                    format!("{:.1}%", crate::stats::percent(r.lost, r.expected)),
                    Took(r.elapsed).to_string(),
                ]);
            }
            write!(f, "{table}")?;
        }
        Ok(())
    }
}

impl RaceReport {
    /// What the Python rows show, in a few sentences.
    fn python_lesson(&self) -> Option<String> {
        let version = match &self.python {
            PythonRun::Ran { version, .. } => version,
            _ => return None,
        };
        let find = |variant: &str, default_interval: bool| {
            let mut rows = self.python_rows.iter().filter(|r| r.variant == variant);
            if default_interval { rows.next() } else { rows.nth(1) }
        };
        let (plain, fast, call, locked) = (
            find("+=", true)?,
            find("+=", false)?,
            find("read, call, write", true)?,
            find("with lock", true)?,
        );
        let mut text = if plain.lost == 0 && fast.lost == 0 {
            format!(
                "In CPython {version} `counter += 1` lost nothing, even with the switch interval cut from {} µs to \
                 {} µs: the interpreter lets another thread run only at certain points (a call, a loop's jump \
                 back), and none falls between the read and the write of `+=`. That is how this interpreter \
                 happens to work, not a promise: ",
                plain.switch_interval_us.round(),
                fast.switch_interval_us.round()
            )
        } else {
            format!(
                "In CPython {version} `counter += 1` lost {} of {} updates ({} with a {} µs switch interval): ",
                thousands(plain.lost),
                thousands(plain.expected),
                thousands(fast.lost),
                fast.switch_interval_us.round()
            )
        };
        if call.lost > 0 {
            text.push_str(&format!(
                "the same read-modify-write with a function call in the middle lost {} ({:.1}%), because every \
                 switch that came between a read and its write threw away what the other threads counted \
                 meanwhile. ",
                thousands(call.lost),
                crate::stats::percent(call.lost, call.expected)
            ));
        } else {
            text.push_str(
                "with a call between the read and the write it lost nothing this time either, by luck. ",
            );
        }
        text.push_str(&if locked.lost == 0 {
            "With a Lock around it nothing was lost: the GIL protects the interpreter, a lock protects your data.".to_owned()
        } else {
            format!("With a Lock it still lost {}: that is a bug.", thousands(locked.lost))
        });
        Some(text)
    }
}

impl Lesson for RaceReport {
    fn lesson(&self) -> String {
        match self.python_lesson() {
            Some(python) => format!("{} {python}", self.rust_lesson()),
            None => self.rust_lesson(),
        }
    }
}

impl RaceReport {
    fn rust_lesson(&self) -> String {
        let lost = self.row(Variant::LoadThenStore).map_or(0, |r| r.lost);
        let first = if lost > 0 {
            format!(
                "The load-then-store counter lost {} of {} updates: between one thread's load and its store, \
                 others stored, and it overwrote their work.",
                thousands(lost),
                thousands(self.expected)
            )
        } else {
            "This time the load-then-store counter lost nothing, by luck of scheduling; with more threads \
             or more increments it loses updates, because another thread can store between a load and its \
             store."
                .to_owned()
        };
        let ns = |v| self.row(v).map_or(0.0, |r| r.ns_per_increment);
        let exact = "fetch_add makes the read-modify-write one indivisible step and the mutex lets one thread \
                     at a time do it, so both count exactly";
        if self.rows.iter().any(|r| r.elapsed < MEANINGFUL_RUN) {
            return format!(
                "{first} {exact}. Runs this short measure mostly how long threads take to start, not the increments; \
                 try --count 1000000 to compare what each way costs."
            );
        }
        format!(
            "{first} {exact}; here the mutex cost {:.1} ns per increment against {:.1} for fetch_add.",
            ns(Variant::Mutex),
            ns(Variant::FetchAdd)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synchronized_variants_count_exactly() {
        let report = run(RaceConfig { threads: 4, increments: 10_000, python: false }).unwrap();
        assert_eq!(report.expected, 40_000);
        for r in &report.rows {
            assert_eq!(r.got + r.lost, 40_000, "{r:?}");
            if r.variant != Variant::LoadThenStore {
                assert_eq!(r.lost, 0, "{r:?}");
            }
        }
    }
}
