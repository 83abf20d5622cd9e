//! The command line: one clap command per module, each formatting what the
//! library returns.

mod args;
mod bench;
mod chat;
mod check;
mod daytime;
mod echo;
mod impair;
mod lab;
mod output;
mod run;
mod scan;
mod serve;
mod sniff;
mod transfer;
mod udp;

use std::time::Duration;

use clap::{Parser, Subcommand};

pub use args::{UsageError, Verbosity};
pub use check::ChecksFailed;
pub use scan::{Interrupted, NothingOpen, ScanFailed, nmap_style_args};
pub use sniff::tcpdump_style_args;

const EXAMPLES: &str = "\
Examples:
  socketeer serve                          # every service on 127.0.0.1
  socketeer echo send localhost:7007 hello
  socketeer echo ping localhost --count 3
  socketeer daytime get localhost --udp
  socketeer chat join localhost --nick alice
  socketeer udp send localhost --count 5 --timeout 200ms
  socketeer transfer send report.pdf localhost
  socketeer impair --listen 127.0.0.1:9000 --to 127.0.0.1:7007 --loss 5% --delay 20ms
  socketeer scan localhost -p 1-1024 --banner
  sudo socketeer sniff -i lo port 7007 -w echo.pcap
  socketeer bench echo localhost --connections 50 --duration 5s
  socketeer lab cpu --python               # threads vs processes vs the GIL, measured
  socketeer check chat -- python3 chat_server.py {port}";

/// The socket-programming curriculum as real tools: echo, daytime, lossy UDP,
/// chat, ARQ file transfer, an impairment proxy, a port scanner, a
/// concurrency lab and load generators, each hardened and measured.
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
    #[command(
        subcommand,
        after_help = "Examples:\n  socketeer echo serve --port 7007\n  socketeer echo send localhost hello world\n  socketeer echo ping localhost --count 5 --udp"
    )]
    Echo(echo::Command),
    /// RFC 867 daytime and RFC 868 time: server and client.
    #[command(
        subcommand,
        after_help = "Examples:\n  socketeer daytime serve\n  socketeer daytime get localhost\n  socketeer daytime get localhost:3737 --time --udp"
    )]
    Daytime(daytime::Command),
    /// A multi-client chat over a plain TCP line protocol: server and terminal client.
    #[command(
        subcommand,
        after_help = "Examples:\n  socketeer chat serve\n  socketeer chat join localhost --nick alice\n  nc localhost 5555                            # nc is a client too"
    )]
    Chat(chat::Command),
    /// The lossy-UDP exercise: a server that drops datagrams on purpose, a client that retries.
    #[command(
        subcommand,
        after_help = "Examples:\n  socketeer udp serve --loss 30% --seed 7\n  socketeer udp send localhost --count 20 --timeout 200ms --retries 3"
    )]
    Udp(udp::Command),
    /// Reliable file transfer over UDP: stop-and-wait, Go-Back-N, selective repeat.
    #[command(
        subcommand,
        after_help = "Examples:\n  socketeer transfer recv --dir incoming\n  socketeer transfer send report.pdf localhost\n  socketeer transfer send big.iso localhost --protocol go-back-n --window 64"
    )]
    Transfer(transfer::Command),
    /// A UDP impairment proxy: loss, bursts, delay, jitter, reordering, duplication, corruption, rate limits.
    Impair(impair::Args),
    /// Load generators that measure throughput and latency.
    #[command(
        subcommand,
        after_help = "Examples:\n  socketeer bench echo localhost --connections 50 --duration 5s\n  socketeer bench chat localhost --clients 100\n  socketeer bench impair\n  socketeer bench transfer --sweep --plot goodput.svg"
    )]
    Bench(bench::Command),
    /// The lab: threads, processes, races, queues, deadlock, server models; framing, EOF, backlogs, blocking, bytes.
    #[command(
        subcommand,
        after_help = "Examples:\n  socketeer lab threads\n  socketeer lab race --threads 4\n  socketeer lab cpu --python\n  socketeer lab servers --json\n  socketeer lab framing\n  socketeer lab backlog"
    )]
    Lab(lab::Command),
    /// Scan ports: TCP connect or SYN, UDP, banners; exact and fast.
    Scan(scan::Args),
    /// Capture packets from a raw socket: decode, filter, count, save as pcap, read pcap.
    Sniff(sniff::Args),
    /// Grade a server, client or scanner someone wrote, case by case, with explanations.
    Check(check::Args),
}

/// Runs the parsed command to completion.
///
/// # Errors
/// Whatever the command reports; a [`UsageError`] means exit code 2.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let verbose = cli.verbosity.verbose();
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Echo(command) => echo::run(command).await,
            Command::Daytime(command) => daytime::run(command).await,
            Command::Chat(command) => chat::run(command).await,
            Command::Udp(command) => udp::run(command).await,
            Command::Transfer(command) => transfer::run(command).await,
            Command::Impair(args) => impair::run(args).await,
            Command::Bench(command) => bench::run(command).await,
            Command::Lab(command) => lab::run(command).await,
            Command::Scan(args) => scan::run(args, verbose).await,
            Command::Sniff(args) => sniff::run(args).await,
            Command::Check(args) => check::run(args).await,
        }
    });
    // A thread may still be blocked reading stdin; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}
