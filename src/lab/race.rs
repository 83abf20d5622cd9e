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

use super::table::Table;
use super::{LabError, Lesson, Took, thousands};
use crate::stats::as_millis;

/// How many threads, and how many increments each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RaceConfig {
    /// Threads incrementing at once.
    pub threads: usize,
    /// Increments per thread.
    pub increments: u64,
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

/// What `lab race` measured.
#[derive(Clone, Debug, Serialize)]
pub struct RaceReport {
    /// The load.
    pub config: RaceConfig,
    /// threads × increments: what every variant should get.
    pub expected: u64,
    /// One row per variant.
    pub rows: Vec<RaceRow>,
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
    Ok(RaceReport { config, expected, rows })
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
        write!(f, "{table}")
    }
}

impl Lesson for RaceReport {
    fn lesson(&self) -> String {
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
        let report = run(RaceConfig { threads: 4, increments: 10_000 }).unwrap();
        assert_eq!(report.expected, 40_000);
        for r in &report.rows {
            assert_eq!(r.got + r.lost, 40_000, "{r:?}");
            if r.variant != Variant::LoadThenStore {
                assert_eq!(r.lost, 0, "{r:?}");
            }
        }
    }
}
