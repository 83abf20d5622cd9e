//! `lab threads`: two threads count to N with a pause after each number.
//!
//! One thread gets its work as a closure, the other as a value of a type that
//! implements [`Runnable`] (the Rust spelling of subclassing Python's
//! `threading.Thread` and overriding `run`). The main thread checks whether
//! they have finished right after starting them, forwards their lines as they
//! come, and joins them, which hands back what each thread's work returned.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{LabError, Lesson, Took, join, spawn};
use crate::process::os_thread_id;
use crate::stats::as_millis;

/// How far each worker counts and how long it pauses after each number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CountConfig {
    /// Numbers per worker (1 to `count`).
    pub count: u32,
    /// The pause after each number.
    #[serde(rename = "delay_ms", serialize_with = "as_millis")]
    pub delay: Duration,
}

/// One number counted by one worker, with who counted it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// When the experiment's main thread saw it, since the start.
    #[serde(rename = "at_ms", serialize_with = "as_millis", skip_deserializing)]
    pub at: Duration,
    /// The worker's name (also its thread's name).
    pub worker: String,
    /// The number.
    pub n: u32,
    /// The process it ran in.
    pub pid: u32,
    /// The kernel's id of its thread, when known.
    pub tid: Option<u64>,
    /// Rust's id of its thread (`ThreadId(N)`), unique within its process.
    pub thread: String,
}

impl Tick {
    /// A tick of `worker` for `n`, from the calling thread.
    fn here(worker: &str, n: u32) -> Tick {
        Tick {
            at: Duration::ZERO,
            worker: worker.to_owned(),
            n,
            pid: std::process::id(),
            tid: os_thread_id(),
            thread: format!("{:?}", thread::current().id()),
        }
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tid = self.tid.map_or_else(|| "?".to_owned(), |t| t.to_string());
        write!(
            f,
            "{:>8.3} s  {}  pid {}  tid {}  {}: {}",
            self.at.as_secs_f64(),
            self.worker,
            self.pid,
            tid,
            self.thread,
            self.n
        )
    }
}

/// Counts 1 to `config.count`, handing each number to `tick` and then
/// sleeping `config.delay`; returns how many numbers it counted. The work of
/// every worker, in a thread or in a child process.
pub fn count_to(worker: &str, config: CountConfig, mut tick: impl FnMut(Tick)) -> u32 {
    for n in 1..=config.count {
        tick(Tick::here(worker, n));
        thread::sleep(config.delay);
    }
    config.count
}

/// Work for a thread, given as a value whose type says how to run it.
pub trait Runnable: Send + 'static {
    /// What the work hands back to whoever joins the thread.
    type Output: Send + 'static;
    /// Does the work, on the new thread.
    fn run(self) -> Self::Output;
}

/// Starts a thread named `name` that runs `task`.
///
/// # Errors
/// When the operating system cannot start another thread.
pub fn spawn_runnable<R: Runnable>(name: &str, task: R) -> Result<JoinHandle<R::Output>, LabError> {
    spawn(name, move || task.run())
}

/// A counting worker as a [`Runnable`] value.
struct Counter {
    name: String,
    config: CountConfig,
    ticks: mpsc::Sender<Tick>,
}

impl Runnable for Counter {
    type Output = u32;

    fn run(self) -> u32 {
        count_to(&self.name, self.config, |tick| {
            // The receiver only goes away if the main thread is gone, and then no one listens.
            let _ = self.ticks.send(tick);
        })
    }
}

/// What one worker thread did.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerReport {
    /// Its name.
    pub name: String,
    /// How it got its work: `closure` or `Runnable`.
    pub given_as: &'static str,
    /// What `JoinHandle::is_finished` said right after it was started.
    pub finished_right_after_start: bool,
    /// What `join` handed back: the count of numbers it counted.
    pub joined_result: u32,
}

/// Facts about a set of workers, computed from their ticks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    /// Workers that counted.
    pub workers: usize,
    /// Distinct process ids among them.
    pub processes: usize,
    /// Distinct kernel thread ids among them.
    pub threads: usize,
    /// Numbers counted in all.
    pub lines: usize,
    /// From start to the last worker's end.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
    /// From start to the first number seen: what starting a worker costs.
    #[serde(rename = "first_line_ms", serialize_with = "as_millis")]
    pub first_line: Duration,
}

impl RunSummary {
    pub(crate) fn of(ticks: &[Tick], elapsed: Duration) -> RunSummary {
        let distinct = |key: fn(&Tick) -> String| ticks.iter().map(key).collect::<BTreeSet<_>>().len();
        RunSummary {
            workers: distinct(|t| t.worker.clone()),
            processes: distinct(|t| t.pid.to_string()),
            threads: distinct(|t| format!("{}/{:?}", t.pid, t.tid)),
            lines: ticks.len(),
            elapsed,
            first_line: ticks.iter().map(|t| t.at).min().unwrap_or(elapsed),
        }
    }
}

/// What `lab threads` measured.
#[derive(Clone, Debug, Serialize)]
pub struct ThreadsReport {
    /// The work each worker did.
    pub config: CountConfig,
    /// The process all the threads share.
    pub pid: u32,
    /// The main thread's kernel id.
    pub main_tid: Option<u64>,
    /// Each worker, in start order.
    pub workers: Vec<WorkerReport>,
    /// Counts and times over all the ticks.
    pub summary: RunSummary,
    /// How long the same work would take one worker after the other.
    #[serde(rename = "one_after_another_ms", serialize_with = "as_millis")]
    pub one_after_another: Duration,
}

/// Runs two counting threads, calling `on_tick` (on the calling thread) for
/// each number as it is counted.
///
/// # Errors
/// When a thread cannot be started or panics.
pub fn run(config: CountConfig, mut on_tick: impl FnMut(&Tick)) -> Result<ThreadsReport, LabError> {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let closure_tx = tx.clone();
    let first = spawn("worker-1", move || {
        count_to("worker-1", config, |tick| {
            let _ = closure_tx.send(tick);
        })
    })?;
    let second = spawn_runnable("worker-2", Counter { name: "worker-2".to_owned(), config, ticks: tx })?;
    let finished_right_after_start = [first.is_finished(), second.is_finished()];
    // The channel ends when both workers have returned and dropped their senders.
    let mut ticks = Vec::new();
    for mut tick in rx {
        tick.at = started.elapsed();
        on_tick(&tick);
        ticks.push(tick);
    }
    let joined = [join("worker-1", first)?, join("worker-2", second)?];
    let elapsed = started.elapsed();
    let workers = [("worker-1", "closure"), ("worker-2", "Runnable")]
        .into_iter()
        .zip(finished_right_after_start.into_iter().zip(joined))
        .map(|((name, given_as), (finished, joined_result))| WorkerReport {
            name: name.to_owned(),
            given_as,
            finished_right_after_start: finished,
            joined_result,
        })
        .collect();
    Ok(ThreadsReport {
        config,
        pid: std::process::id(),
        main_tid: os_thread_id(),
        workers,
        summary: RunSummary::of(&ticks, elapsed),
        one_after_another: config.delay * config.count * 2,
    })
}

impl fmt::Display for ThreadsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        for w in &self.workers {
            writeln!(
                f,
                "{} ({}): finished right after start? {}; join returned {}",
                w.name,
                w.given_as,
                yes_no(w.finished_right_after_start),
                w.joined_result
            )?;
        }
        write!(
            f,
            "{} threads in {} process, {} lines in {} (one after the other: {})",
            self.summary.threads,
            self.summary.processes,
            self.summary.lines,
            Took(self.summary.elapsed),
            Took(self.one_after_another)
        )
    }
}

impl Lesson for ThreadsReport {
    fn lesson(&self) -> String {
        format!(
            "Both threads slept at the same time, so {} lines took {} instead of {}: threads overlap their \
             waiting even on one core. They share process {} but each has its own thread id, and join both \
             waits for a thread and hands back what its work returned.",
            self.summary.lines,
            Took(self.summary.elapsed),
            Took(self.one_after_another),
            self.pid
        )
    }
}
