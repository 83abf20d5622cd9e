//! `socketeer check`: grade a server, a client or a scanner someone wrote,
//! or a whole class of them.

mod card;
mod class;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use socketeer::check::program::Launch;
use socketeer::check::roster::{self, Kind};
use socketeer::check::server::ServerCheck;
use socketeer::check::{self, ClientCheck, Event, Options, Report, Subject};
use socketeer::impair::Probability;
use socketeer::net::{Target, Transport, Transports};

use super::args::{UsageError, positive_duration};
use super::output::{Output, check_writable, write_replacing};

/// The check found a failure: exit status 1, the report already said why.
#[derive(Debug, thiserror::Error)]
#[error("a required case failed")]
pub struct ChecksFailed;

const EXAMPLES: &str = "\
Examples:
  socketeer check echo localhost:7007
  socketeer check echo --udp -- python3 echo_server.py {port}
  socketeer check chat -- python3 chat_server.py {port}
  socketeer check udp-ack --expect-loss 30% -- python3 lossy.py {port}
  socketeer check client udp-ack -- python3 client.py {host} {port}
  socketeer check scanner -- python3 scan.py {host} {ports}
  socketeer check --class roster.toml --html class.html";

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Grade every submission of a roster (TOML; see docs/check.md) into one report.
    #[arg(long, value_name = "ROSTER")]
    class: Option<PathBuf>,
    #[command(flatten)]
    report: ReportArgs,
}

/// Where the report goes.
#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// One JSON object per case (and a summary) instead of the report card.
    #[arg(long, global = true)]
    json: bool,
    /// Also write a self-contained HTML report to FILE.
    #[arg(long, value_name = "FILE", global = true)]
    html: Option<PathBuf>,
    /// Run only cases whose id starts with ID (`*` matches anything); repeatable.
    #[arg(long = "case", value_name = "ID", global = true)]
    cases: Vec<String>,
    /// List the cases (with what they send and expect) instead of running them.
    #[arg(long, global = true)]
    list: bool,
    /// How long to wait for each reply.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = positive_duration, global = true)]
    timeout: Duration,
    /// How long a started program may take to listen.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration, global = true)]
    startup_timeout: Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Grade an RFC 862 echo server (TCP by default; --udp, or both).
    #[command(after_help = "Examples:\n  socketeer check echo localhost:7007\n  \
                            socketeer check echo --tcp --udp -- python3 echo.py {port}")]
    Echo(ServerArgs),
    /// Grade an RFC 867 daytime server.
    #[command(after_help = "Examples:\n  socketeer check daytime localhost:1313\n  \
                            socketeer check daytime -- python3 daytime.py {port}")]
    Daytime(ServerArgs),
    /// Grade an RFC 868 time server (4 bytes, seconds since 1900).
    #[command(after_help = "Examples:\n  socketeer check time localhost:3737 --udp\n  \
                            socketeer check time -- python3 time_server.py {port}")]
    Time(ServerArgs),
    /// Grade the course's lossy UDP server (ACK: <payload>).
    #[command(
        name = "udp-ack",
        after_help = "Examples:\n  socketeer check udp-ack localhost:12345\n  \
                            socketeer check udp-ack --expect-loss 30% -- python3 server.py {port}"
    )]
    UdpAck(UdpAckArgs),
    /// Grade a broadcast chat server (the course's closing challenge).
    #[command(after_help = "Examples:\n  socketeer check chat localhost:5555\n  \
                            socketeer check chat --expect-self no -- python3 chat_server.py {port}")]
    Chat(ChatArgs),
    /// Grade a client: it runs against an instrumented server that drops, splits and talks first.
    #[command(
        after_help = "Examples:\n  socketeer check client udp-ack -- python3 client.py {host} {port}\n  \
                            socketeer check client chat -- python3 chat_client.py {host} {port}"
    )]
    Client(ClientArgs),
    /// Grade a port scanner against a known, random set of open ports.
    #[command(after_help = "Examples:\n  socketeer check scanner -- python3 scan.py {host} {ports}\n  \
                            socketeer check scanner -- python3 scan.py {host} {first} {last}")]
    Scanner(ScannerArgs),
}

/// Which client.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ClientKind {
    /// The lossy-UDP client: numbered messages, timeouts, resends.
    UdpAck,
    /// An echo client over TCP.
    Echo,
    /// A daytime client over TCP.
    Daytime,
    /// A chat client.
    Chat,
}

/// Arguments of `check client`.
#[derive(Debug, clap::Args)]
struct ClientArgs {
    /// Which kind of client.
    kind: ClientKind,
    /// The command that starts the client; {host} and {port} are filled in.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Arguments of `check scanner`.
#[derive(Debug, clap::Args)]
struct ScannerArgs {
    /// Open UDP ports instead of TCP ones (for a UDP scanner).
    #[arg(long)]
    udp: bool,
    /// The command that starts the scanner; {host}, {ports} (FIRST-LAST), {first} and {last} are filled in.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Where the server is: an address, or a command that starts it.
#[derive(Debug, clap::Args)]
struct Where {
    /// A running server, as HOST:PORT (or HOST, for the usual port).
    target: Option<Target>,
    /// The command that starts the server; {port} (and {host}) are filled in.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Arguments of the echo, daytime and time checks.
#[derive(Debug, clap::Args)]
struct ServerArgs {
    #[command(flatten)]
    at: Where,
    /// Grade the TCP side (the default).
    #[arg(long)]
    tcp: bool,
    /// Grade the UDP side (with --tcp too, both).
    #[arg(long)]
    udp: bool,
}

impl ServerArgs {
    fn transports(&self) -> Transports {
        Transports { tcp: self.tcp || !self.udp, udp: self.udp }
    }
}

/// Arguments of the lossy-UDP check.
#[derive(Debug, clap::Args)]
struct UdpAckArgs {
    #[command(flatten)]
    at: Where,
    /// The share of datagrams the server drops on purpose (30% or 0.3); without it the share answered is only reported.
    #[arg(long, value_name = "P")]
    expect_loss: Option<Probability>,
}

/// Yes or no.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum YesNo {
    Yes,
    No,
}

/// Arguments of the chat check.
#[derive(Debug, clap::Args)]
struct ChatArgs {
    #[command(flatten)]
    at: Where,
    /// Require that a sender hears its own lines (yes) or does not (no); reported either way.
    #[arg(long, value_name = "yes|no")]
    expect_self: Option<YesNo>,
    /// A line each grader client sends first, for servers that wait for a name ({nick} is replaced).
    #[arg(long, value_name = "LINE")]
    login: Option<String>,
}

/// Runs `check`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let out = Output::new(args.report.json);
    if let Some(path) = &args.report.html {
        check_writable(path)?;
    }
    let mut options = Options {
        reply_timeout: args.report.timeout,
        startup_timeout: args.report.startup_timeout,
        only: args.report.cases.clone(),
        ..Options::default()
    };
    if let Some(path) = &args.class {
        return class::run(path, &options, &out, args.report.html.as_deref()).await;
    }
    let (kind, at) = match args.command {
        None => {
            return Err(UsageError(
                "give a check (echo, daytime, time, udp-ack, chat, client, scanner) or --class ROSTER".into(),
            )
            .into());
        }
        Some(Command::Echo(a)) => (Kind::Server(ServerCheck::Echo(a.transports())), a.at),
        Some(Command::Daytime(a)) => (Kind::Server(ServerCheck::Daytime(a.transports())), a.at),
        Some(Command::Time(a)) => (Kind::Server(ServerCheck::Time(a.transports())), a.at),
        Some(Command::UdpAck(a)) => {
            options.expect_loss = a.expect_loss;
            (Kind::Server(ServerCheck::UdpAck), a.at)
        }
        Some(Command::Chat(a)) => {
            options.expect_self = a.expect_self.map(|y| matches!(y, YesNo::Yes));
            options.login = a.login;
            (Kind::Server(ServerCheck::Chat), a.at)
        }
        Some(Command::Client(a)) => {
            let check = match a.kind {
                ClientKind::UdpAck => ClientCheck::UdpAck,
                ClientKind::Echo => ClientCheck::Echo,
                ClientKind::Daytime => ClientCheck::Daytime,
                ClientKind::Chat => ClientCheck::Chat,
            };
            (Kind::Client(check), Where { target: None, command: a.command })
        }
        Some(Command::Scanner(a)) => {
            let transport = if a.udp { Transport::Udp } else { Transport::Tcp };
            (Kind::Scanner(transport), Where { target: None, command: a.command })
        }
    };
    if args.report.list {
        let cases: Vec<check::Case> = match kind {
            Kind::Server(check) => check.plan().iter().map(|p| p.case).collect(),
            Kind::Client(check) => check.cases().to_vec(),
            Kind::Scanner(_) => check::scanner::CASES.to_vec(),
        };
        return list(&out, cases.into_iter().filter(|c| options.selects(c.id)));
    }
    let subject = subject(kind, at).await?;
    let progress = Progress::start();
    let report = roster::run_kind(kind, &subject, &options, &mut progress.callback()).await;
    progress.finish();
    let report = report.map_err(usage_or_runtime)?;
    finish(&out, args.report.html.as_deref(), &report)
}

/// The program to check: an address, or a command to start.
async fn subject(kind: Kind, at: Where) -> anyhow::Result<Subject> {
    // (`--list` needs no program: it is answered before this.)
    let missing = match kind {
        Kind::Server(check) => format!(
            "say which server to check: HOST:PORT of a running one, or -- COMMAND to start it (e.g. socketeer check {} -- python3 server.py {{port}})",
            check.name()
        ),
        Kind::Client(check) => format!(
            "say which client to check: -- COMMAND to start it (e.g. socketeer check {} -- python3 client.py {{host}} {{port}})",
            check.name()
        ),
        Kind::Scanner(_) => "say which scanner to check: -- COMMAND to start it (e.g. socketeer check scanner -- python3 scanner.py {host} {ports})".to_owned(),
    };
    match (at.target, at.command.is_empty()) {
        (Some(_), false) => Err(UsageError("give either HOST:PORT or -- COMMAND, not both".into()).into()),
        (None, true) => Err(UsageError(missing).into()),
        (Some(target), true) => {
            let addrs = target.resolve(kind.default_port()).await?;
            let addr = addrs.first().copied().context("the name resolved to no address")?;
            let name = socketeer::net::Target { port: Some(addr.port()), ..target }.to_string();
            Ok(Subject::Address { addr, name })
        }
        (None, false) => Ok(Subject::Program(
            Launch::new(at.command, kind.placeholders()).map_err(|e| UsageError(e.to_string()))?,
        )),
    }
}

/// Prints the cases.
fn list(out: &Output, cases: impl Iterator<Item = check::Case>) -> anyhow::Result<()> {
    for case in cases {
        if out.is_json() {
            out.emit("case", &Json(case))?;
        } else {
            out.note(format!(
                "{:28} {:10} {}\n{:39} sends:   {}\n{:39} expects: {}",
                case.id,
                case.group.name(),
                case.title,
                "",
                case.sends,
                "",
                case.expects
            ))?;
        }
    }
    Ok(())
}

/// A progress bar on stderr (hidden when stderr is not a terminal),
/// moved along by the check's events.
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn start() -> Progress {
        let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress { bar }
    }

    fn callback(&self) -> impl FnMut(Event<'_>) + Send + use<> {
        let bar = self.bar.clone();
        move |event| match event {
            Event::Planned(n) => bar.set_length(n as u64),
            Event::Started(case) => bar.set_message(case.id),
            Event::Finished(_) => bar.inc(1),
        }
    }

    fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// A check's error as the binary reports it: a bad filter or command is a usage error.
fn usage_or_runtime(e: check::CheckError) -> anyhow::Error {
    match e {
        check::CheckError::NoCase(_) | check::CheckError::Command(_) | check::CheckError::Roster { .. } => {
            UsageError(e.to_string()).into()
        }
        e => e.into(),
    }
}

/// Prints the report (card or JSON), writes the HTML, and turns a failure
/// into exit status 1.
fn finish(out: &Output, html: Option<&std::path::Path>, report: &Report) -> anyhow::Result<()> {
    if out.is_json() {
        for outcome in &report.outcomes {
            out.emit("case", &Json(outcome))?;
        }
        out.emit("summary", &Json(&Summary::of(report)))?;
    } else {
        out.note(card::render(report).trim_end())?;
    }
    if let Some(path) = html {
        write_replacing(path, &check::html::report(report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if report.passed() { Ok(()) } else { Err(ChecksFailed.into()) }
}

/// What a JSON summary says.
#[derive(serde::Serialize)]
struct Summary<'a> {
    check: &'a str,
    subject: &'a str,
    /// Every required case passed.
    ok: bool,
    #[serde(flatten)]
    tally: check::Tally,
    #[serde(skip_serializing_if = "Option::is_none")]
    aborted: Option<&'a str>,
}

impl<'a> Summary<'a> {
    fn of(report: &'a Report) -> Self {
        Summary {
            check: &report.check,
            subject: &report.subject,
            ok: report.passed(),
            tally: report.tally,
            aborted: report.aborted.as_deref(),
        }
    }
}

/// A record that is only ever written as JSON.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Json<T>(T);

impl<T> std::fmt::Display for Json<T> {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}
