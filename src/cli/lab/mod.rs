//! `socketeer lab`: the lab. Each experiment prints what it measured, then
//! what the numbers mean. The concurrency experiments are here; the
//! networking ones in [`network`].

mod network;

use std::fmt::Display;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use socketeer::lab::cpu::{self, CpuConfig, JobResult};
use socketeer::lab::deadlock::{self, DeadlockConfig};
use socketeer::lab::producer_consumer::{self, PcConfig};
use socketeer::lab::race::{self, RaceConfig};
use socketeer::lab::servers::{self, ServersConfig};
use socketeer::lab::threads::{self, CountConfig, Tick};
use socketeer::lab::{ChildTask, Lesson, SelfExec, processes};
use tokio::io::AsyncReadExt;

use super::args::{self, UsageError, duration, positive_duration};
use super::output::{Output, check_writable, wrap, write_replacing};

/// The concurrency lab.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Two threads count with pauses: names and ids, join, is_finished, overlapping waits.
    #[command(after_help = "Examples:\n  socketeer lab threads\n  \
                            socketeer lab threads --count 3 --delay 200ms --json")]
    Threads(CountArgs),
    /// The same counting in two child processes, side by side with two threads.
    #[command(after_help = "Examples:\n  socketeer lab processes\n  \
                            socketeer lab processes --count 3 --delay 100ms --json")]
    Processes(CountArgs),
    /// CPU-bound jobs one after another, in threads and in processes (and in Python).
    #[command(after_help = "Examples:\n  socketeer lab cpu\n  \
                            socketeer lab cpu --python --plot cpu.svg\n  \
                            socketeer lab cpu --count 1000000 --jobs 4 --json")]
    Cpu(CpuArgs),
    /// Threads incrementing one counter: a lost-update race, fetch_add, a Mutex.
    #[command(after_help = "Examples:\n  socketeer lab race\n  \
                            socketeer lab race --python\n  \
                            socketeer lab race --threads 8 --count 100000 --json")]
    Race(RaceArgs),
    /// Producers and consumers over a bounded queue: waits, throughput, exactly once.
    #[command(after_help = "Examples:\n  socketeer lab producer-consumer\n  \
                            socketeer lab producer-consumer --producers 4 --consumers 1 --capacity 10 --json")]
    ProducerConsumer(PcArgs),
    /// Two threads take two locks in opposite orders; a watchdog finds the deadlock; one order cures it.
    #[command(after_help = "Examples:\n  socketeer lab deadlock\n  \
                            socketeer lab deadlock --rounds 50 --hold 5ms --timeout 300ms --json")]
    Deadlock(DeadlockArgs),
    /// Thread-per-connection against async echo servers at rising connection counts.
    #[command(after_help = "Examples:\n  socketeer lab servers\n  \
                            socketeer lab servers --connections 10,100,1000,10000 --duration 2s --json")]
    Servers(ServersArgs),
    #[command(flatten)]
    Network(network::Command),
    /// Runs one task of an experiment; the lab starts its child processes with it.
    #[command(hide = true)]
    Child(ChildArgs),
}

/// Arguments of `lab threads` and `lab processes`.
#[derive(Debug, clap::Args)]
pub struct CountArgs {
    /// How far each worker counts.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    count: u32,
    /// The pause after each number.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    delay: Duration,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab cpu`.
#[derive(Debug, clap::Args)]
pub struct CpuArgs {
    /// Each job sums sqrt(n²) for n below this.
    #[arg(long, value_name = "N", default_value_t = 5_000_000,
          value_parser = clap::value_parser!(u64).range(1..=cpu::MAX_COUNT))]
    count: u64,
    /// Jobs per variant: also the number of threads and of processes.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Run each Rust variant this many times and keep its fastest run.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Also run the jobs in Python (threads and multiprocessing), if python3 is installed.
    #[arg(long)]
    python: bool,
    /// Draw the wall times as a bar chart into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab race`.
#[derive(Debug, clap::Args)]
pub struct RaceArgs {
    /// Threads incrementing at once.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,
    /// Increments per thread.
    #[arg(long, value_name = "N", default_value_t = 5_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    count: u64,
    /// Also run the race in CPython (at most 200,000 increments per thread), if python3 is installed.
    #[arg(long)]
    python: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab producer-consumer`.
#[derive(Debug, clap::Args)]
pub struct PcArgs {
    /// Producer threads.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    producers: u32,
    /// Consumer threads.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    consumers: u32,
    /// Items the queue holds at most.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    capacity: u32,
    /// Items each producer makes.
    #[arg(long, value_name = "N", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    count: u64,
    /// Time the slow side spends on each item.
    #[arg(long, value_name = "DURATION", default_value = "50us", value_parser = duration)]
    work: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab deadlock`.
#[derive(Debug, clap::Args)]
pub struct DeadlockArgs {
    /// Rounds each thread does (take both locks, bump a counter, let go).
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rounds: u32,
    /// How long a thread holds its first lock before reaching for the second.
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = duration)]
    hold: Duration,
    /// How long without progress before the watchdog looks for a deadlock.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = positive_duration)]
    timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab servers`.
#[derive(Debug, clap::Args)]
pub struct ServersArgs {
    /// Connection counts to measure, comma-separated.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', default_value = "10,100,1000,5000",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    connections: Vec<u32>,
    /// How long each load runs.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = positive_duration)]
    duration: Duration,
    /// Request size in bytes.
    #[arg(long, value_name = "SIZE", default_value = "64", value_parser = args::size_in::<u32>(1, 65_536))]
    size: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of the hidden `lab child`.
#[derive(Debug, clap::Args)]
pub struct ChildArgs {
    /// The task, as JSON.
    task: String,
}

/// Runs a `lab` command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Threads(args) => {
            let out = Output::new(args.json);
            out.note("worker-1 gets a closure, worker-2 a value whose type implements Runnable")?;
            let mut live = Live::new(out);
            let report = threads::run(count_config(&args), |tick| live.emit("tick", tick))?;
            live.finish()?;
            conclude(out, "threads", &report)
        }
        Command::Processes(args) => {
            let out = Output::new(args.json);
            out.note("two child processes count; then two threads do the same, for comparison")?;
            let mut live = Live::new(out);
            let report = processes::run(&self_exec()?, count_config(&args), |tick| live.emit("tick", tick))?;
            live.finish()?;
            conclude(out, "processes", &report)
        }
        Command::Cpu(args) => cpu(args),
        Command::Race(args) => {
            let config =
                RaceConfig { threads: args.threads as usize, increments: args.count, python: args.python };
            conclude(Output::new(args.json), "race", &race::run(config)?)
        }
        Command::ProducerConsumer(args) => {
            let config = PcConfig {
                producers: args.producers as usize,
                consumers: args.consumers as usize,
                capacity: args.capacity as usize,
                items: args.count,
                work: args.work,
            };
            conclude(Output::new(args.json), "producer_consumer", &producer_consumer::run(config)?)
        }
        Command::Deadlock(args) => {
            let config = DeadlockConfig { rounds: args.rounds, hold: args.hold, timeout: args.timeout };
            conclude(Output::new(args.json), "deadlock", &deadlock::run(config)?)
        }
        Command::Servers(args) => servers(args).await,
        Command::Network(command) => network::run(command).await,
        Command::Child(args) => child(args).await,
    }
}

fn count_config(args: &CountArgs) -> CountConfig {
    CountConfig { count: args.count, delay: args.delay }
}

fn cpu(args: CpuArgs) -> anyhow::Result<()> {
    if let Some(plot) = &args.plot {
        check_writable(plot)?;
    }
    let config = CpuConfig {
        count: args.count,
        jobs: args.jobs as usize,
        rounds: args.rounds as usize,
        python: args.python,
    };
    let bar = spinner();
    let report = cpu::run(&self_exec()?, config, |step| bar.set_message(format!("running {step}")));
    bar.finish_and_clear();
    let report = report?;
    if let Some(path) = &args.plot {
        write_replacing(path, &report.plot())
            .with_context(|| format!("writing the plot to {}", path.display()))?;
    }
    let out = Output::new(args.json);
    conclude(out, "cpu", &report)?;
    match &args.plot {
        Some(path) => out.note(format!("plot: {}", path.display())).map_err(Into::into),
        None => Ok(()),
    }
}

async fn servers(args: ServersArgs) -> anyhow::Result<()> {
    let config = ServersConfig {
        connections: args.connections.iter().map(|&n| n as usize).collect(),
        duration: args.duration,
        size: args.size as usize,
    };
    let bar = ProgressBar::new(config.connections.len() as u64 * 2);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = servers::run(&self_exec()?, config, |model, connections| {
        bar.set_message(format!("{model} server, {connections} connections"));
        bar.inc(1);
    })
    .await;
    bar.finish_and_clear();
    conclude(Output::new(args.json), "servers", &report?)
}

/// Runs one task of an experiment in this (child) process, printing JSON lines.
async fn child(args: ChildArgs) -> anyhow::Result<()> {
    let task: ChildTask = serde_json::from_str(&args.task)
        .map_err(|e| UsageError(format!("lab child: '{}' is not a task: {e}", args.task)))?;
    let out = Output::new(true);
    match task {
        ChildTask::Count { worker, count, delay } => {
            let mut live = Live::new(out);
            threads::count_to(&worker, CountConfig { count, delay }, |tick: Tick| live.emit("tick", &tick));
            live.finish()?;
        }
        ChildTask::CpuJob { count } => out.emit("sum", &JobResult { sum: cpu::job(count) })?,
        ChildTask::BindPort { port } => out.emit("bind", &socketeer::lab::bind::try_bind(port))?,
        ChildTask::EchoServer { model, max_connections } => {
            servers::serve(
                model,
                max_connections,
                |listening| out.emit("listening", &listening),
                stdin_closed(),
            )
            .await?;
        }
    }
    Ok(())
}

/// Completes when stdin reaches its end (the parent closed it, or died).
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// How the lab runs its child processes: this binary, `lab child TASK`.
fn self_exec() -> anyhow::Result<SelfExec> {
    let program = std::env::current_exe().context("finding this program's path to start child processes")?;
    Ok(SelfExec::new(program, ["lab", "child"]))
}

/// Prints the report, then (for people) what it means.
fn conclude<R: Serialize + Display + Lesson>(
    out: Output,
    kind: &'static str,
    report: &R,
) -> anyhow::Result<()> {
    out.emit(kind, report)?;
    out.note("")?;
    out.note(wrap(&report.lesson(), LESSON_WIDTH))?;
    Ok(())
}

/// The width lessons are wrapped to.
const LESSON_WIDTH: usize = 100;

/// Prints events as an experiment produces them, from inside its callback;
/// keeps the first write error (a closed pipe) to report at the end.
struct Live {
    out: Output,
    error: Option<io::Error>,
}

impl Live {
    fn new(out: Output) -> Live {
        Live { out, error: None }
    }

    fn emit<T: Serialize + Display>(&mut self, kind: &'static str, value: &T) {
        if self.error.is_none()
            && let Err(e) = self.out.emit(kind, value)
        {
            self.error = Some(e);
        }
    }

    fn finish(self) -> io::Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

/// A spinner on stderr (hidden when stderr is not a terminal).
fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
