//! `lab processes`: the counting work of [`super::threads`] in two child
//! processes (the binary run again with a [`ChildTask::Count`]), then in two
//! threads, side by side.
//!
//! The children print their ticks as JSON lines; the parent reads each pipe
//! on its own thread and stamps the ticks with its own clock as they arrive.

use std::fmt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::table::Table;
use super::threads::{self, CountConfig, RunSummary, Tick};
use super::{ChildTask, LabError, Lesson, SelfExec, Took, spawn};

/// How long a child may take beyond its own counting before it is killed.
const SLACK: Duration = Duration::from_secs(10);

/// What `lab processes` measured.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessesReport {
    /// The work each worker did.
    pub config: CountConfig,
    /// The parent's process id.
    pub parent_pid: u32,
    /// The workers as child processes.
    pub processes: RunSummary,
    /// The same workers as threads of this process.
    pub threads: RunSummary,
}

/// Runs two counting child processes through `exec`, calling `on_tick` for
/// each number as it arrives; then the same work in two threads.
///
/// # Errors
/// When a child cannot be started, fails, prints nonsense or hangs.
pub fn run(
    exec: &SelfExec,
    config: CountConfig,
    mut on_tick: impl FnMut(&Tick),
) -> Result<ProcessesReport, LabError> {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    for worker in ["worker-1", "worker-2"] {
        let task = ChildTask::Count { worker: worker.to_owned(), count: config.count, delay: config.delay };
        let mut child = exec.spawn(format!("child process {worker}"), &task)?;
        let lines = child.lines::<Tick>();
        let tx = tx.clone();
        spawn(&format!("read-{worker}"), move || {
            for line in lines {
                if tx.send(line).is_err() {
                    break;
                }
            }
        })?;
        children.push(child);
    }
    drop(tx);
    let mut ticks = Vec::new();
    for line in rx {
        let mut tick = line?;
        tick.at = started.elapsed();
        on_tick(&tick);
        ticks.push(tick);
    }
    let limit = config.delay * config.count + SLACK;
    for child in children {
        child.finish(limit)?;
    }
    let processes = RunSummary::of(&ticks, started.elapsed());
    let threads = threads::run(config, |_| {})?.summary;
    Ok(ProcessesReport { config, parent_pid: std::process::id(), processes, threads })
}

impl fmt::Display for ProcessesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table =
            Table::new(&["", "workers", "processes", "threads", "lines", "elapsed", "first line after"]);
        for (name, run) in [("threads", &self.threads), ("processes", &self.processes)] {
            table.row([
                name.to_owned(),
                run.workers.to_string(),
                run.processes.to_string(),
                run.threads.to_string(),
                run.lines.to_string(),
                Took(run.elapsed).to_string(),
                Took(run.first_line).to_string(),
            ]);
        }
        write!(f, "{table}")
    }
}

impl Lesson for ProcessesReport {
    fn lesson(&self) -> String {
        format!(
            "Each child is a whole new process with its own id and memory, started by running the binary \
             again, so its first line came after {} against {} for a thread. The waiting overlaps just the \
             same ({} in all), but processes share nothing: their lines reached this one only through a pipe.",
            Took(self.processes.first_line),
            Took(self.threads.first_line),
            Took(self.processes.elapsed)
        )
    }
}
