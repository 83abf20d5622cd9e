//! `lab deadlock`: two threads, two locks, taken in opposite orders; then the
//! cure, one global order.
//!
//! Each round a worker takes its first lock, holds it a moment (so the other
//! worker has time to take its own first lock), takes its second, bumps a
//! counter and lets both go. Every lock records who holds it and who waits for
//! it, and every worker counts its finished rounds.
//!
//! The main thread is the watchdog. When no worker has finished a round for
//! the timeout, it reads the lock records; if the waits form a cycle (each
//! thread waits for a lock the next one holds) it reports a deadlock and sets
//! a give-up flag. The workers wait for locks with `try_lock_for` in short
//! slices and check that flag between slices, so they let go and end, and the
//! process exits on its own. Should a worker still not end, it is left
//! detached: it cannot keep the process alive once the main thread returns.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{LabError, Lesson, Took, spawn};
use crate::stats::as_millis;

/// The locks' names, by index.
const LOCKS: [&str; 2] = ["A", "B"];
/// The workers' names, by index.
const WORKERS: [&str; 2] = ["worker-1", "worker-2"];
/// How long a waiting worker blocks before it checks whether to give up.
const LOCK_SLICE: Duration = Duration::from_millis(5);
/// How often the watchdog looks.
const WATCH_EVERY: Duration = Duration::from_millis(10);
/// How long the watchdog waits for told-to-give-up workers to end.
const EXIT_LIMIT: Duration = Duration::from_secs(2);

/// The shape of each run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DeadlockConfig {
    /// Rounds each worker does.
    pub rounds: u32,
    /// How long a worker holds its first lock before reaching for the second.
    #[serde(rename = "hold_ms", serialize_with = "as_millis")]
    pub hold: Duration,
    /// How long without progress before the watchdog looks for a deadlock.
    #[serde(rename = "timeout_ms", serialize_with = "as_millis")]
    pub timeout: Duration,
}

/// What one thread held and waited for when the watchdog looked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadState {
    /// The thread.
    pub thread: &'static str,
    /// The locks it held.
    pub holds: Vec<&'static str>,
    /// The lock it was waiting for.
    pub waits_for: Option<&'static str>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every worker did every round.
    Completed,
    /// The watchdog found a cycle of waits and told the workers to give up.
    Deadlocked {
        /// How long nobody had made progress when it acted.
        #[serde(rename = "stalled_ms", serialize_with = "as_millis")]
        stalled_for: Duration,
        /// Who held and waited for what.
        threads: Vec<ThreadState>,
        /// The cycle: thread, the lock it waits for, the thread holding it, ...
        cycle: Vec<&'static str>,
    },
}

/// One run of the two workers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    /// Each worker's lock order, as lock names.
    pub orders: Vec<[&'static str; 2]>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Rounds each worker finished.
    pub rounds_done: Vec<u32>,
    /// The counter both workers bump under both locks.
    pub counter: u64,
    /// From start until the end (or the watchdog's verdict).
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
    /// Every worker thread ended and was joined.
    pub threads_exited: bool,
}

/// What `lab deadlock` measured.
#[derive(Clone, Debug, Serialize)]
pub struct DeadlockReport {
    /// The shape of both runs.
    pub config: DeadlockConfig,
    /// worker-1 takes A then B, worker-2 B then A.
    pub opposite_order: Run,
    /// Both take A then B.
    pub global_order: Run,
}

/// Who holds each lock and what each worker waits for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Records {
    holder: [Option<usize>; 2],
    waiting_for: [Option<usize>; 2],
}

/// What the workers share.
#[derive(Default)]
struct Shared {
    locks: [parking_lot::Mutex<()>; 2],
    records: std::sync::Mutex<Records>,
    rounds_done: [AtomicU32; 2],
    counter: AtomicU64,
    give_up: AtomicBool,
}

/// A lock held by a worker; letting go clears the record.
struct Held<'a> {
    shared: &'a Shared,
    lock: usize,
    _guard: parking_lot::MutexGuard<'a, ()>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.shared.record(|r| r.holder[self.lock] = None);
    }
}

impl Shared {
    fn record(&self, change: impl FnOnce(&mut Records)) {
        change(&mut self.records.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Takes `lock` for `worker`, recording the wait; `None` if told to give up first.
    fn acquire(&self, worker: usize, lock: usize) -> Option<Held<'_>> {
        self.record(|r| r.waiting_for[worker] = Some(lock));
        // Checked before every try, so a worker that was told to give up stops
        // even when the other one's giving up has freed the lock it wanted.
        while !self.give_up.load(Ordering::Acquire) {
            if let Some(guard) = self.locks[lock].try_lock_for(LOCK_SLICE) {
                self.record(|r| {
                    r.waiting_for[worker] = None;
                    r.holder[lock] = Some(worker);
                });
                return Some(Held { shared: self, lock, _guard: guard });
            }
        }
        self.record(|r| r.waiting_for[worker] = None);
        None
    }

    fn progress(&self) -> Vec<u32> {
        self.rounds_done.iter().map(|r| r.load(Ordering::Acquire)).collect()
    }
}

/// One worker's rounds, taking the locks in `order`.
fn work(shared: &Shared, worker: usize, order: [usize; 2], config: DeadlockConfig) {
    for _ in 0..config.rounds {
        let Some(first) = shared.acquire(worker, order[0]) else { return };
        thread::sleep(config.hold);
        let Some(second) = shared.acquire(worker, order[1]) else { return };
        shared.counter.fetch_add(1, Ordering::Relaxed);
        drop(second);
        drop(first);
        shared.rounds_done[worker].fetch_add(1, Ordering::Release);
    }
}

/// The threads of a cycle of waits, each followed by the lock it waits for
/// (which the next one holds); `None` when the waits form no cycle.
fn find_cycle(records: &Records) -> Option<Vec<(usize, usize)>> {
    for start in 0..WORKERS.len() {
        let mut path = Vec::new();
        let mut thread = start;
        while let Some(lock) = records.waiting_for[thread] {
            path.push((thread, lock));
            match records.holder[lock] {
                Some(next) if next == start => return Some(path),
                Some(next) if path.len() < WORKERS.len() => thread = next,
                _ => break,
            }
        }
    }
    None
}

/// Runs both workers with these lock orders, watching them.
fn run_once(orders: [[usize; 2]; 2], config: DeadlockConfig) -> Result<Run, LabError> {
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let handles = (0..WORKERS.len())
        .map(|worker| {
            let shared = shared.clone();
            spawn(WORKERS[worker], move || work(&shared, worker, orders[worker], config))
        })
        .collect::<Result<Vec<_>, _>>();
    // A worker that did start must not wait forever for one that did not.
    let handles = handles.inspect_err(|_| shared.give_up.store(true, Ordering::Release))?;
    let outcome = watch(&shared, &handles, config.timeout);
    let elapsed = started.elapsed();
    let threads_exited = join_within(handles, EXIT_LIMIT)?;
    Ok(Run {
        orders: orders.iter().map(|o| [LOCKS[o[0]], LOCKS[o[1]]]).collect(),
        outcome,
        rounds_done: shared.progress(),
        counter: shared.counter.load(Ordering::Relaxed),
        elapsed,
        threads_exited,
    })
}

/// The watchdog: waits until every worker is done, or nobody progressed for
/// `timeout` and the lock records show a cycle (then tells them to give up).
fn watch(shared: &Shared, workers: &[JoinHandle<()>], timeout: Duration) -> Outcome {
    let mut last = shared.progress();
    let mut last_change = Instant::now();
    loop {
        if workers.iter().all(JoinHandle::is_finished) {
            return Outcome::Completed;
        }
        thread::sleep(WATCH_EVERY);
        let now = shared.progress();
        if now != last {
            (last, last_change) = (now, Instant::now());
            continue;
        }
        if last_change.elapsed() < timeout {
            continue;
        }
        let records = shared.records.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(cycle) = find_cycle(&records) {
            shared.give_up.store(true, Ordering::Release);
            return Outcome::Deadlocked {
                stalled_for: last_change.elapsed(),
                threads: (0..WORKERS.len())
                    .map(|w| ThreadState {
                        thread: WORKERS[w],
                        holds: (0..LOCKS.len())
                            .filter(|&l| records.holder[l] == Some(w))
                            .map(|l| LOCKS[l])
                            .collect(),
                        waits_for: records.waiting_for[w].map(|l| LOCKS[l]),
                    })
                    .collect(),
                cycle: cycle.iter().flat_map(|&(t, l)| [WORKERS[t], LOCKS[l]]).collect(),
            };
        }
    }
}

/// Joins the workers that end within `limit`; true if all did.
fn join_within(workers: Vec<JoinHandle<()>>, limit: Duration) -> Result<bool, LabError> {
    let deadline = Instant::now() + limit;
    while !workers.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
        thread::sleep(WATCH_EVERY);
    }
    let mut all = true;
    for (worker, handle) in workers.into_iter().enumerate() {
        if handle.is_finished() {
            handle.join().map_err(|_| LabError::Panicked { name: WORKERS[worker].to_owned() })?;
        } else {
            all = false;
        }
    }
    Ok(all)
}

/// Runs the opposite-order pair, then the global-order pair.
///
/// # Errors
/// When a thread cannot be started or panics.
pub fn run(config: DeadlockConfig) -> Result<DeadlockReport, LabError> {
    Ok(DeadlockReport {
        config,
        opposite_order: run_once([[0, 1], [1, 0]], config)?,
        global_order: run_once([[0, 1], [0, 1]], config)?,
    })
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let orders: Vec<String> = WORKERS
            .iter()
            .zip(&self.orders)
            .map(|(w, [first, second])| format!("{w} takes {first} then {second}"))
            .collect();
        writeln!(f, "{}", orders.join(", "))?;
        let rounds: Vec<String> =
            WORKERS.iter().zip(&self.rounds_done).map(|(w, r)| format!("{w} {r}")).collect();
        match &self.outcome {
            Outcome::Completed => write!(
                f,
                "  completed in {}: rounds {}; counter {}",
                Took(self.elapsed),
                rounds.join(", "),
                self.counter
            ),
            Outcome::Deadlocked { stalled_for, threads, cycle } => {
                writeln!(
                    f,
                    "  watchdog: no progress for {} (rounds {})",
                    Took(*stalled_for),
                    rounds.join(", ")
                )?;
                for t in threads {
                    let holds = if t.holds.is_empty() { "nothing".to_owned() } else { t.holds.join(", ") };
                    let waits = t.waits_for.unwrap_or("nothing");
                    writeln!(f, "  {} holds {holds} and waits for {waits}", t.thread)?;
                }
                let first = cycle.first().copied().unwrap_or("?");
                write!(
                    f,
                    "  cycle: {} → {first}: deadlock; told both to give up; threads ended: {}",
                    cycle.join(" → "),
                    if self.threads_exited { "yes" } else { "no (left detached)" }
                )
            }
        }
    }
}

impl fmt::Display for DeadlockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} rounds per worker, first lock held {}, watchdog timeout {}",
            self.config.rounds,
            Took(self.config.hold),
            Took(self.config.timeout)
        )?;
        writeln!(f, "opposite orders: {}", self.opposite_order)?;
        write!(f, "one global order: {}", self.global_order)
    }
}

impl Lesson for DeadlockReport {
    fn lesson(&self) -> String {
        let first = match &self.opposite_order.outcome {
            Outcome::Deadlocked { stalled_for, .. } => format!(
                "With opposite orders each thread ended up holding one lock and waiting for the other's: a \
                 cycle no amount of waiting breaks, found by the watchdog after {} without progress.",
                Took(*stalled_for)
            ),
            Outcome::Completed => {
                "This time the opposite orders finished without a deadlock: whether the bad \
                                   interleaving happens is a matter of timing, which is what makes deadlocks \
                                   hard to find (raise --hold to make it likelier)."
                    .to_owned()
            }
        };
        let second = match self.global_order.outcome {
            Outcome::Completed => format!(
                "With one global order (A before B) whoever holds A can always get B, so no cycle can form: \
                 all {} rounds of both threads completed.",
                self.config.rounds
            ),
            Outcome::Deadlocked { .. } => {
                "Even one global order stalled, which should be impossible: that is a bug to report."
                    .to_owned()
            }
        };
        format!("{first} {second} Ordering locks prevents deadlock; timeouts and watchdogs only detect it.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cycle_of_waits_and_only_a_cycle() {
        let crossed = Records { holder: [Some(0), Some(1)], waiting_for: [Some(1), Some(0)] };
        assert_eq!(find_cycle(&crossed), Some(vec![(0, 1), (1, 0)]));
        let queued = Records { holder: [Some(0), None], waiting_for: [None, Some(0)] };
        assert_eq!(find_cycle(&queued), None);
        let chain = Records { holder: [Some(0), Some(1)], waiting_for: [Some(1), None] };
        assert_eq!(find_cycle(&chain), None);
        assert_eq!(find_cycle(&Records::default()), None);
    }
}
