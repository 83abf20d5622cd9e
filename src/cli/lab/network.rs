//! The networking experiments of `socketeer lab`: framing, EOF,
//! SO_REUSEADDR, backlogs, bind addresses, blocking, bytes and text, names,
//! TCP against UDP under loss, ARQ timelines, and a process's memory.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use clap::Subcommand;
use socketeer::impair::Probability;
use socketeer::lab::backlog::{self, BacklogConfig};
use socketeer::lab::blocking::{self, BlockingConfig};
use socketeer::lab::eof::{self, EofConfig};
use socketeer::lab::framing::{self, FramingConfig};
use socketeer::lab::tcp_vs_udp::{self, TcpUdpConfig};
use socketeer::lab::{anatomy, arq, bind, encoding, names, reuseaddr};

use super::super::args::{UsageError, duration, positive_duration, random_seed, size_in};
use super::super::output::{Output, check_writable, write_replacing};
use super::conclude;

/// The networking experiments.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Several sends against what recv returns (joined, split), then newline and length-prefix framing.
    #[command(after_help = "Examples:\n  socketeer lab framing\n  \
                            socketeer lab framing --message hi --message there --chunk 2 --json")]
    Framing(FramingArgs),
    /// recv returning 0 on an orderly close, an error on a reset, and a loop that ignores the 0.
    #[command(after_help = "Examples:\n  socketeer lab eof\n  socketeer lab eof --spin 1s --json")]
    Eof(EofArgs),
    /// Restart a listener while its old connection sits in TIME_WAIT, with and without SO_REUSEADDR.
    #[command(after_help = "Examples:\n  socketeer lab reuseaddr\n  socketeer lab reuseaddr --json")]
    Reuseaddr(JsonArgs),
    /// accept when nobody connects; connects to a server that listens but never accepts.
    #[command(after_help = "Examples:\n  socketeer lab backlog\n  \
                            socketeer lab backlog --backlog 2 --clients 6 --wait 200ms --json")]
    Backlog(BacklogArgs),
    /// Waiting for late data: blocking recv, a timeout, non-blocking EAGAIN, and poll.
    #[command(after_help = "Examples:\n  socketeer lab blocking\n  \
                            socketeer lab blocking --delay 1s --timeout 300ms --json")]
    Blocking(BlockingArgs),
    /// Text vs bytes: UTF-8, a character split across two recvs, invalid bytes, Latin-1 vs UTF-8.
    #[command(
        after_help = "Examples:\n  socketeer lab bytes\n  socketeer lab bytes --text 'naïve 日本' --json"
    )]
    Bytes(BytesArgs),
    /// 127.0.0.1 vs 127.0.0.2 vs 0.0.0.0 vs :: : who reaches which listener; privileged and ephemeral ports.
    #[command(
        after_help = "Examples:\n  socketeer lab bind\n  sudo socketeer lab bind     # also from another host (a private network namespace)\n  socketeer lab bind --json"
    )]
    Bind(JsonArgs),
    /// Stop-and-wait, Go-Back-N and selective repeat, datagram by datagram, for the same losses; vs the bounds.
    #[command(
        after_help = "Examples:\n  socketeer lab arq\n  socketeer lab arq --lose 2,3 --lose-ack 6 --plot arq.svg\n  \
                            socketeer lab arq --blocks 20 --window 8 --delay 5ms --json"
    )]
    Arq(ArqArgs),
    /// The same messages over TCP and UDP through the same loss and delay: UDP shows the loss, TCP turns it into delay.
    #[command(after_help = "Examples:\n  sudo socketeer lab tcp-vs-udp\n  \
                            sudo socketeer lab tcp-vs-udp --loss 10% --plot tcp-vs-udp.svg\n  \
                            sudo socketeer lab tcp-vs-udp --delay 50ms --loss 2% --seed 7\n  \
                            sudo socketeer lab tcp-vs-udp --messages 100 --interval 20ms --json")]
    TcpVsUdp(TcpVsUdpArgs),
    /// The host's name and how names resolve (gethostname, getaddrinfo, /etc/hosts), with no traffic.
    #[command(after_help = "Examples:\n  socketeer lab names\n  socketeer lab names --json")]
    Names(JsonArgs),
    /// A process's memory (code, data, bss, heap, stacks, libraries), its threads, and its PCB.
    #[command(after_help = "Examples:\n  socketeer lab anatomy\n  socketeer lab anatomy --work 500ms --json")]
    Anatomy(AnatomyArgs),
}

/// Arguments of experiments that take nothing but `--json`.
#[derive(Debug, clap::Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab framing`.
#[derive(Debug, clap::Args)]
pub struct FramingArgs {
    /// A message to send (repeat for several); default: hello, world, how are you?
    #[arg(long = "message", value_name = "TEXT")]
    messages: Vec<String>,
    /// The size of the one large send.
    #[arg(long, value_name = "SIZE", default_value = "256KiB", value_parser = size_in::<u32>(1, 64 << 20))]
    size: u32,
    /// The framed runs write their bytes in pieces this small.
    #[arg(long, value_name = "BYTES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    chunk: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab eof`.
#[derive(Debug, clap::Args)]
pub struct EofArgs {
    /// How long the loop that ignores 0 may spin.
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = bounded(Duration::from_secs(10)))]
    spin: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab backlog`.
#[derive(Debug, clap::Args)]
pub struct BacklogArgs {
    /// The listener's backlog.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    backlog: u32,
    /// Clients that connect to the server that does not accept.
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=256))]
    clients: u32,
    /// How long accept waits for nobody, and a client for its connection before it counts as waiting.
    #[arg(long, value_name = "DURATION", default_value = "300ms", value_parser = bounded(Duration::from_secs(5)))]
    wait: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab blocking`.
#[derive(Debug, clap::Args)]
pub struct BlockingArgs {
    /// How long the peer waits before it sends.
    #[arg(long, value_name = "DURATION", default_value = "300ms", value_parser = bounded(Duration::from_secs(5)))]
    delay: Duration,
    /// The receive timeout of the timeout case.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = bounded(Duration::from_secs(5)))]
    timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab bytes`.
#[derive(Debug, clap::Args)]
pub struct BytesArgs {
    /// The text to send.
    #[arg(long, value_name = "TEXT", default_value = "héllo wörld ✓ 🦀")]
    text: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab arq`.
#[derive(Debug, clap::Args)]
pub struct ArqArgs {
    /// Blocks of 1000 bytes to move.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=200))]
    blocks: u32,
    /// The window of Go-Back-N and selective repeat.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    window: u32,
    /// One-way delay of the link.
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = bounded(Duration::from_secs(1)))]
    delay: Duration,
    /// The time one block takes to put on the wire (sets the link's rate).
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = bounded(Duration::from_secs(1)))]
    block_time: Duration,
    /// DATA blocks (numbered from 0) whose first send is lost.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', default_value = "2,6")]
    lose: Vec<u32>,
    /// Blocks whose first send's acknowledgement is lost.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', default_value = "4")]
    lose_ack: Vec<u32>,
    /// Draw the timelines as a sequence diagram into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab tcp-vs-udp`.
#[derive(Debug, clap::Args)]
pub struct TcpVsUdpArgs {
    /// Messages sent over each transport.
    #[arg(long, value_name = "N", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=5000))]
    messages: u32,
    /// Bytes per message (at least 8).
    #[arg(long, value_name = "BYTES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(8..=1400))]
    size: u32,
    /// The pause between two messages.
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = bounded(Duration::from_secs(1)))]
    interval: Duration,
    /// The share of packets lost, each way (10% or 0.1).
    #[arg(long, value_name = "P", default_value = "10%")]
    loss: Probability,
    /// The delay added to every packet, each way (the round trip is twice this).
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = bounded_or_zero(Duration::from_secs(1)))]
    delay: Duration,
    /// Seed of the path's decisions: the same seed drops the same packets
    /// (random when not given, and printed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Draw each message's latency, TCP and UDP, into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lab anatomy`.
#[derive(Debug, clap::Args)]
pub struct AnatomyArgs {
    /// How long the waiting thread and the computing thread each run.
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = bounded(Duration::from_secs(5)))]
    work: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn arq(a: ArqArgs) -> anyhow::Result<()> {
    if let Some(plot) = &a.plot {
        check_writable(plot)?;
    }
    let link =
        arq::Link { delay: a.delay, block_time: a.block_time, lose_data: a.lose, lose_ack_of: a.lose_ack };
    let report = arq::run(arq::ArqConfig { blocks: a.blocks, window: a.window, link });
    if let Some(path) = &a.plot {
        write_replacing(path, &report.plot())
            .with_context(|| format!("writing the plot to {}", path.display()))?;
    }
    let out = Output::new(a.json);
    conclude(out, "arq", &report)?;
    match &a.plot {
        Some(path) => out.note(format!("plot: {}", path.display())).map_err(Into::into),
        None => Ok(()),
    }
}

fn tcp_vs_udp(a: TcpVsUdpArgs) -> anyhow::Result<()> {
    if let Some(plot) = &a.plot {
        check_writable(plot)?;
    }
    if a.messages as u64 * a.interval.as_millis() as u64 > 15_000 {
        return Err(UsageError(
            "--messages × --interval is over 15 s; the lab keeps experiments short".to_owned(),
        )
        .into());
    }
    let config = TcpUdpConfig {
        messages: a.messages,
        size: a.size as usize,
        interval: a.interval,
        loss: a.loss,
        delay: a.delay,
        seed: a.seed.unwrap_or_else(random_seed),
    };
    let report = tcp_vs_udp::run(config)?;
    let out = Output::new(a.json);
    conclude(out, "tcp_vs_udp", &report)?;
    if !report.ran {
        anyhow::bail!("lab tcp-vs-udp did not run: {}", report.impairment.trim_start_matches("not run: "));
    }
    if let Some(path) = &a.plot {
        write_replacing(path, &report.plot())
            .with_context(|| format!("writing the plot to {}", path.display()))?;
        out.note(format!("plot: {}", path.display()))?;
    }
    Ok(())
}

/// A positive duration of at most `max`, so that an experiment stays short.
fn bounded(max: Duration) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |s| within(positive_duration(s)?, max)
}

/// As [`bounded`], zero allowed (no delay at all).
fn bounded_or_zero(max: Duration) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |s| within(duration(s)?, max)
}

fn within(d: Duration, max: Duration) -> Result<Duration, String> {
    if d > max {
        return Err(format!("at most {} (the lab keeps experiments short)", humantime::format_duration(max)));
    }
    Ok(d)
}

/// Runs a networking experiment.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        // On the main thread, whose stack is the one /proc/self/maps calls [stack].
        Command::Anatomy(a) => conclude(Output::new(a.json), "anatomy", &anatomy::run(a.work)?),
        // The others block on plain sockets and threads: keep them off the async workers.
        command => tokio::task::spawn_blocking(move || run_blocking(command)).await?,
    }
}

fn run_blocking(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Framing(a) => {
            let defaults = FramingConfig::default();
            let messages = if a.messages.is_empty() { defaults.messages } else { a.messages };
            if let Some(bad) = messages.iter().find(|m| m.contains('\n')) {
                return Err(UsageError(format!(
                    "--message {bad:?} holds a newline, which newline framing cannot carry; send it as two messages"
                ))
                .into());
            }
            let config = FramingConfig { messages, large: a.size as usize, chunk: a.chunk as usize };
            conclude(Output::new(a.json), "framing", &framing::run(config)?)
        }
        Command::Eof(a) => conclude(Output::new(a.json), "eof", &eof::run(EofConfig { spin: a.spin })?),
        Command::Reuseaddr(a) => conclude(Output::new(a.json), "reuseaddr", &reuseaddr::run()?),
        Command::Backlog(a) => {
            let config = BacklogConfig { backlog: a.backlog, clients: a.clients, wait: a.wait };
            conclude(Output::new(a.json), "backlog", &backlog::run(config)?)
        }
        Command::Blocking(a) => {
            let config = BlockingConfig { delay: a.delay, timeout: a.timeout };
            conclude(Output::new(a.json), "blocking", &blocking::run(config)?)
        }
        Command::Bytes(a) => conclude(Output::new(a.json), "bytes", &encoding::run(&a.text)?),
        Command::Bind(a) => conclude(Output::new(a.json), "bind", &bind::run(&super::self_exec()?)?),
        Command::Arq(a) => arq(a),
        Command::TcpVsUdp(a) => tcp_vs_udp(a),
        Command::Names(a) => conclude(Output::new(a.json), "names", &names::run()?),
        Command::Anatomy(a) => conclude(Output::new(a.json), "anatomy", &anatomy::run(a.work)?),
    }
}
