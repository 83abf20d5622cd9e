//! The command line: one clap command per module, each formatting what the
//! library returns.

mod args;
mod bench;
mod daytime;
mod echo;
mod impair;
mod lab;
mod output;
mod scan;
mod serve;
mod sniff;
mod transfer;
mod udp;

use std::time::Duration;

use clap::{Parser, Subcommand};

pub use args::{UsageError, Verbosity};
pub use scan::{NothingOpen, nmap_style_args};
pub use sniff::tcpdump_style_args;

const EXAMPLES: &str = "\
Examples:
  socketeer serve                          # every service on 127.0.0.1
  socketeer echo send localhost:7007 hello
  socketeer echo ping localhost --count 3
  socketeer daytime get localhost --udp
  socketeer udp send localhost --count 5 --timeout 200ms
  socketeer transfer send report.pdf localhost
  socketeer impair --listen 127.0.0.1:9000 --to 127.0.0.1:7007 --loss 5% --delay 20ms
  socketeer scan localhost -p 1-1024 --banner
  sudo socketeer sniff -i lo port 7007 -w echo.pcap
  socketeer bench echo localhost --connections 50 --duration 5s
  socketeer lab cpu --python               # threads vs processes vs the GIL, measured";

/// The socket-programming curriculum as real tools: echo, daytime, lossy UDP
/// and load generators, each a hardened server and client.
#[derive(Debug, Parser)]
#[command(name = "socketeer", version, about, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// How much to log.
    #[command(flatten)]
    pub verbosity: Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service at once, inetd-style, until Ctrl-C or SIGTERM.
    Serve(serve::Args),
    /// RFC 862 echo: server, client and round-trip pinger.
    #[command(subcommand)]
    Echo(echo::Command),
    /// RFC 867 daytime and RFC 868 time: server and client.
    #[command(subcommand)]
    Daytime(daytime::Command),
    /// The lossy-UDP exercise: a server that drops datagrams on purpose, a client that retries.
    #[command(subcommand)]
    Udp(udp::Command),
    /// Reliable file transfer over UDP: stop-and-wait, Go-Back-N, selective repeat.
    #[command(subcommand)]
    Transfer(transfer::Command),
    /// A UDP impairment proxy: loss, bursts, delay, jitter, reordering, duplication, corruption, rate limits.
    Impair(impair::Args),
    /// Load generators that measure throughput and latency.
    #[command(subcommand)]
    Bench(bench::Command),
    /// The concurrency lab: threads, processes, races, queues, deadlock, parallel work, server models.
    #[command(subcommand)]
    Lab(lab::Command),
    /// Scan ports: TCP connect or SYN, UDP, banners; exact and fast.
    Scan(scan::Args),
    /// Capture packets from a raw socket: decode, filter, count, save as pcap, read pcap.
    Sniff(sniff::Args),
}

/// Runs the parsed command to completion.
///
/// # Errors
/// Whatever the command reports; a [`UsageError`] means exit code 2.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Echo(command) => echo::run(command).await,
            Command::Daytime(command) => daytime::run(command).await,
            Command::Udp(command) => udp::run(command).await,
            Command::Transfer(command) => transfer::run(command).await,
            Command::Impair(args) => impair::run(args).await,
            Command::Bench(command) => bench::run(command).await,
            Command::Lab(command) => lab::run(command).await,
            Command::Scan(args) => scan::run(args).await,
            Command::Sniff(args) => sniff::run(args).await,
        }
    });
    // A thread may still be blocked reading stdin; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}
