//! `lab cpu`: one CPU-bound job (the sum of `sqrt(n²)` for `n` below a
//! count) run several times: one after the other, in as many threads, and in
//! as many child processes; optionally the same in Python, whose threads share
//! one interpreter lock (the GIL) and so cannot compute in parallel.
//!
//! Every `sqrt(n²)` is exactly `n` in `f64` while `n²` stays below 2^53, so
//! every variant must return exactly `count·(count−1)/2`: a check that the
//! work really was done, by everyone.

use std::fmt;
use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::python::run_script;
use super::table::Table;
use super::{ChildTask, LabError, Lesson, SelfExec, Took, cores, join, spawn, thousands};
use crate::plot::{self, Bar};
use crate::stats::as_millis;

/// The Python side, run with `python3 -c`.
const PYTHON_SCRIPT: &str = include_str!("cpu.py");

/// How long a child (ours or Python) may compute before it is killed.
const CHILD_LIMIT: Duration = Duration::from_secs(300);

/// The largest count whose sum is still exact in `f64` (`n²` below 2^53).
pub const MAX_COUNT: u64 = 94_906_265;

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuConfig {
    /// Each job sums over `0..count`.
    pub count: u64,
    /// How many jobs; also the number of threads and of processes.
    pub jobs: usize,
    /// Rust variants run this many times and keep their fastest run, to
    /// see past the noise of a shared machine (Python runs once: it is slow).
    pub rounds: usize,
    /// Also run the Python variants.
    pub python: bool,
}

/// The job: the sum of `sqrt(n²)` for `n` in `0..count`.
pub fn job(count: u64) -> f64 {
    // black_box keeps the compiler from proving sqrt(n²) = n and skipping the work.
    (0..count).map(|n| black_box(n as f64)).map(|x| (x * x).sqrt()).sum()
}

/// What [`job`] returns for `count` (exact up to [`MAX_COUNT`]).
pub fn expected_sum(count: u64) -> f64 {
    (u128::from(count) * u128::from(count.saturating_sub(1)) / 2) as f64
}

/// What a child process running one job prints.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The job's sum.
    pub sum: f64,
}

impl fmt::Display for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sum {}", self.sum)
    }
}

/// The language a variant ran in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// This program.
    Rust,
    /// `python3`.
    Python,
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Language::Rust => "rust",
            Language::Python => "python",
        })
    }
}

/// One variant's measurement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuRow {
    /// Rust or Python.
    pub language: Language,
    /// `sequential`, `threads` or `processes`.
    pub variant: String,
    /// Threads or processes working at once.
    pub workers: usize,
    /// Wall time for all the jobs.
    #[serde(rename = "wall_ms", serialize_with = "as_millis")]
    pub wall: Duration,
    /// The same language's sequential time divided by this one.
    pub speedup: f64,
    /// Every job returned the exact sum.
    pub correct: bool,
}

pub use super::python::PythonRun;

/// What `lab cpu` measured.
#[derive(Clone, Debug, Serialize)]
pub struct CpuReport {
    /// Cores available to this process.
    pub cores: usize,
    /// Each job's size.
    pub count: u64,
    /// Jobs per variant.
    pub jobs: usize,
    /// The sum every job must return.
    pub expected_sum: f64,
    /// One row per variant, Rust first.
    pub rows: Vec<CpuRow>,
    /// The Python comparison.
    pub python: PythonRun,
}

/// Runs every variant, calling `on_step` with the name of each before it starts.
///
/// # Errors
/// When a thread or a child process of the Rust variants fails. A missing or
/// failing `python3` is reported in [`CpuReport::python`] instead.
pub fn run(exec: &SelfExec, config: CpuConfig, mut on_step: impl FnMut(&str)) -> Result<CpuReport, LabError> {
    let CpuConfig { count, jobs, rounds, .. } = config;
    let expected = expected_sum(count);
    let mut rows = Vec::new();
    let mut measure = |variant: &str, workers: usize, sums: &dyn Fn() -> Result<Vec<f64>, LabError>| {
        on_step(&format!("rust {variant}"));
        let (mut fastest, mut correct) = (Duration::MAX, true);
        for _ in 0..rounds.max(1) {
            let started = Instant::now();
            let sums = sums()?;
            fastest = fastest.min(started.elapsed());
            correct &= exact(&sums, jobs, expected);
        }
        rows.push(row(Language::Rust, variant, workers, fastest, correct));
        Ok::<_, LabError>(())
    };
    measure("sequential", 1, &|| Ok((0..jobs).map(|_| job(count)).collect()))?;
    measure("threads", jobs, &|| in_threads(count, jobs))?;
    measure("processes", jobs, &|| in_processes(exec, count, jobs))?;
    let python = if config.python {
        on_step("python");
        python(count, jobs, expected, &mut rows)
    } else {
        PythonRun::NotAsked
    };
    fill_speedups(&mut rows);
    Ok(CpuReport { cores: cores(), count, jobs, expected_sum: expected, rows, python })
}

/// Every one of the `jobs` sums is exactly `expected`.
fn exact(sums: &[f64], jobs: usize, expected: f64) -> bool {
    sums.len() == jobs && sums.iter().all(|&s| s == expected)
}

/// A row whose speedup [`fill_speedups`] fills in later.
fn row(language: Language, variant: &str, workers: usize, wall: Duration, correct: bool) -> CpuRow {
    CpuRow { language, variant: variant.to_owned(), workers, wall, speedup: 1.0, correct }
}

fn fill_speedups(rows: &mut [CpuRow]) {
    let baseline: Vec<_> =
        rows.iter().filter(|r| r.variant == "sequential").map(|r| (r.language, r.wall)).collect();
    for row in rows {
        if let Some((_, sequential)) = baseline.iter().find(|(l, _)| *l == row.language) {
            row.speedup = sequential.as_secs_f64() / row.wall.as_secs_f64().max(1e-9);
        }
    }
}

fn in_threads(count: u64, jobs: usize) -> Result<Vec<f64>, LabError> {
    let handles = (1..=jobs)
        .map(|i| spawn(&format!("cpu-{i}"), move || job(count)).map(|h| (i, h)))
        .collect::<Result<Vec<_>, _>>()?;
    handles.into_iter().map(|(i, h)| join(&format!("cpu-{i}"), h)).collect()
}

fn in_processes(exec: &SelfExec, count: u64, jobs: usize) -> Result<Vec<f64>, LabError> {
    let mut children = (1..=jobs)
        .map(|i| exec.spawn(format!("cpu child process {i}"), &ChildTask::CpuJob { count }))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sums = Vec::with_capacity(jobs);
    for child in &mut children {
        let result: JobResult = child.lines().next().transpose()?.ok_or_else(|| LabError::Child {
            what: "a cpu child process".to_owned(),
            detail: "exited without printing its sum".to_owned(),
        })?;
        sums.push(result.sum);
    }
    for child in children {
        child.finish(CHILD_LIMIT)?;
    }
    Ok(sums)
}

/// A line of the Python script's output.
#[derive(Deserialize)]
#[serde(untagged)]
enum PythonLine {
    Interpreter { version: String, gil: bool },
    Variant { variant: String, workers: usize, seconds: f64, sums: Vec<f64> },
}

/// Runs the Python variants, adding their rows to `rows`.
fn python(count: u64, jobs: usize, expected: f64, rows: &mut Vec<CpuRow>) -> PythonRun {
    let lines =
        match run_script::<PythonLine>(PYTHON_SCRIPT, &[count.to_string(), jobs.to_string()], CHILD_LIMIT) {
            Ok(lines) => lines,
            Err(not_run) => return not_run,
        };
    let mut interpreter = None;
    let mut new_rows = Vec::new();
    for line in lines {
        match line {
            PythonLine::Interpreter { version, gil } => interpreter = Some((version, gil)),
            PythonLine::Variant { variant, workers, seconds, sums } => {
                let wall = Duration::try_from_secs_f64(seconds).unwrap_or_default();
                new_rows.push(row(Language::Python, &variant, workers, wall, exact(&sums, jobs, expected)));
            }
        }
    }
    match interpreter {
        Some((version, gil)) => {
            rows.extend(new_rows);
            PythonRun::Ran { version, gil }
        }
        None => PythonRun::Failed { error: "python3 printed nothing".to_owned() },
    }
}

impl CpuReport {
    fn find(&self, language: Language, variant: &str) -> Option<&CpuRow> {
        self.rows.iter().find(|r| r.language == language && r.variant == variant)
    }

    /// The wall times as a bar chart (SVG).
    pub fn plot(&self) -> String {
        let bars: Vec<Bar> = self
            .rows
            .iter()
            .map(|r| Bar {
                label: format!("{} {} ({})", r.language, r.variant, r.workers),
                value: r.wall.as_secs_f64(),
                note: format!("{}, {:.2}x", Took(r.wall), r.speedup),
                group: r.language as usize,
            })
            .collect();
        let title = format!("sum of sqrt(n²) for n < {}, {} jobs", thousands(self.count), self.jobs);
        let subtitle =
            format!("wall time (shorter is faster), {} cores; speedup against sequential", self.cores);
        plot::bars(&title, &subtitle, &bars)
    }
}

impl fmt::Display for CpuReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "job: sum of sqrt(n²) for n in 0..{}, {} times; {} cores",
            thousands(self.count),
            self.jobs,
            self.cores
        )?;
        let mut table = Table::new(&["language", "variant", "workers", "wall time", "speedup", "sums exact"]);
        for r in &self.rows {
            table.row([
                r.language.to_string(),
                r.variant.clone(),
                r.workers.to_string(),
                Took(r.wall).to_string(),
                format!("{:.2}x", r.speedup),
                if r.correct { "yes" } else { "NO" }.to_owned(),
            ]);
        }
        write!(f, "{table}")?;
        match self.python.describe() {
            Some(line) => write!(f, "\n{line}"),
            None => Ok(()),
        }
    }
}

impl Lesson for CpuReport {
    fn lesson(&self) -> String {
        let ceiling = self.jobs.min(self.cores);
        let speedup = |language, variant| self.find(language, variant).map_or(1.0, |r| r.speedup);
        let wall = |variant| self.find(Language::Rust, variant).map_or(Duration::ZERO, |r| r.wall);
        let threads = speedup(Language::Rust, "threads");
        let mut text = if threads >= 1.05 {
            format!(
                "Rust's {} threads ran the jobs at once and finished {threads:.2}x faster than one after the \
                 other ({} cores make {ceiling}x the ideal).",
                self.jobs, self.cores
            )
        } else {
            format!(
                "Rust's {} threads were no faster than one after the other ({threads:.2}x): jobs this short end \
                 before starting threads pays off; a larger --count shows them run in parallel.",
                self.jobs
            )
        };
        text.push_str(&format!(
            " Processes compute in parallel too, but each must first start a whole program and send its result \
             back through a pipe, which cost {} more than the threads here ({:.2}x).",
            Took(wall("processes").saturating_sub(wall("threads"))),
            speedup(Language::Rust, "processes"),
        ));
        // (When threads did not pay off either, the first sentence said so already.)
        if speedup(Language::Rust, "processes") < 1.0 && threads >= 1.05 {
            text.push_str(
                " For jobs this short that cost outweighs the parallelism; a larger --count shows it.",
            );
        }
        if let PythonRun::Ran { gil, .. } = self.python {
            let lock = if gil {
                "the GIL lets one thread at a time run Python code, so they took turns"
            } else {
                "this Python runs without a GIL, so they could compute at once"
            };
            text.push_str(&format!(
                " Python's threads got {:.2}x: {lock}; its processes each have their own interpreter and got {:.2}x.",
                speedup(Language::Python, "threads"),
                speedup(Language::Python, "processes"),
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_sums_exactly() {
        assert_eq!(job(0), 0.0);
        assert_eq!(job(5), 10.0);
        assert_eq!(job(100_000), expected_sum(100_000));
        assert_eq!(expected_sum(5_000_000), 12_499_997_500_000.0);
    }

    #[test]
    fn speedups_are_against_the_same_language() {
        let r = |language, variant: &str, ms| CpuRow {
            language,
            variant: variant.to_owned(),
            workers: 1,
            wall: Duration::from_millis(ms),
            speedup: 0.0,
            correct: true,
        };
        let mut rows = vec![
            r(Language::Rust, "sequential", 100),
            r(Language::Rust, "threads", 50),
            r(Language::Python, "sequential", 900),
            r(Language::Python, "threads", 1000),
        ];
        fill_speedups(&mut rows);
        let speedups: Vec<f64> = rows.iter().map(|r| r.speedup).collect();
        assert_eq!(speedups, [1.0, 2.0, 1.0, 0.9]);
    }
}
