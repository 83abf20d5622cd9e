//! The server checks: one table of cases per protocol, and the drivers that
//! run their probes.
//!
//! | check | cases | driver |
//! |---|---|---|
//! | `echo` | [`echo`]: TCP and UDP | streams and datagrams, many clients, resets, half-closes |
//! | `daytime`, `time` | [`daytime`]: RFC 867 and 868, TCP and UDP | one answer per connection or datagram |
//! | `udp-ack` | [`udp_ack`]: the course's lossy server | numbered datagrams, counted |
//! | `chat` | [`chat`]: the broadcast challenge | many clients, tokens in every line |

pub mod chat;
pub mod daytime;
pub mod echo;
pub mod udp_ack;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::Options;
use super::case::{Case, Finding};
use super::grade::Quiet;
use super::program::Running;
use crate::net::{Transport, Transports};

/// A server check: which protocol, over which transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCheck {
    /// RFC 862 echo.
    Echo(Transports),
    /// RFC 867 daytime.
    Daytime(Transports),
    /// RFC 868 time.
    Time(Transports),
    /// The course's lossy UDP server that answers `ACK: <payload>`.
    UdpAck,
    /// The broadcast chat of the course's closing challenge.
    Chat,
}

impl ServerCheck {
    /// The check's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServerCheck::Echo(_) => "echo",
            ServerCheck::Daytime(_) => "daytime",
            ServerCheck::Time(_) => "time",
            ServerCheck::UdpAck => "udp-ack",
            ServerCheck::Chat => "chat",
        }
    }

    /// Its cases, in the order they run, each depending on the first case
    /// of its transport (one answer at all) when it is not that case.
    pub fn plan(self) -> Vec<Planned> {
        let mut plan = match self {
            ServerCheck::Echo(t) => echo::plan(t),
            ServerCheck::Daytime(t) => daytime::plan(daytime::Service::Daytime, t),
            ServerCheck::Time(t) => daytime::plan(daytime::Service::Time, t),
            ServerCheck::UdpAck => udp_ack::plan(),
            ServerCheck::Chat => chat::plan(),
        };
        depend_on_the_first(&mut plan);
        plan
    }
}

/// Makes every case depend on the first case of its transport: when a
/// server does not answer the simplest exchange, every other case would only
/// repeat that it did not answer.
fn depend_on_the_first(plan: &mut [Planned]) {
    let mut first: Vec<(Transport, &'static str)> = Vec::new();
    for planned in plan {
        let transport = planned.probe.transport();
        match first.iter().find(|(t, _)| *t == transport) {
            Some(&(_, id)) => planned.needs = Some(id),
            None => first.push((transport, planned.case.id)),
        }
    }
}

/// A case and the probe that runs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Planned {
    /// The case (data).
    pub case: Case,
    /// What the driver does.
    pub probe: Probe,
    /// The case that must pass for this one to mean anything (its id).
    pub needs: Option<&'static str>,
}

impl Planned {
    /// `case`, run by `probe`, depending on nothing (yet).
    pub fn new(case: Case, probe: Probe) -> Planned {
        Planned { case, probe, needs: None }
    }
}

/// What a driver does for one case; each protocol's probes are its own enum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Probe {
    /// An echo probe.
    Echo(echo::Probe),
    /// A daytime or time probe.
    Daytime(daytime::Probe),
    /// A lossy-UDP probe.
    UdpAck(udp_ack::Probe),
    /// A chat probe.
    Chat(chat::Probe),
}

impl Probe {
    /// The transport the server must listen on for this probe.
    pub fn transport(&self) -> Transport {
        match self {
            Probe::Echo(p) => p.transport(),
            Probe::Daytime(p) => p.transport,
            Probe::UdpAck(_) => Transport::Udp,
            Probe::Chat(_) => Transport::Tcp,
        }
    }

    /// Runs the probe against `ctx`'s server.
    pub async fn run(&self, ctx: &mut Ctx<'_>) -> Finding {
        match self {
            Probe::Echo(p) => echo::run(*p, ctx).await,
            Probe::Daytime(p) => daytime::run(*p, ctx).await,
            Probe::UdpAck(p) => udp_ack::run(*p, ctx).await,
            Probe::Chat(p) => chat::run(*p, ctx).await,
        }
    }
}

/// What a probe runs against.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The server's address.
    pub addr: SocketAddr,
    /// The server's process, when the grader started it.
    pub program: Option<&'a Running>,
    /// The check's settings.
    pub options: &'a Options,
    /// What earlier cases of this check learned about the server.
    pub memo: &'a mut Memo,
}

/// What one case learns that later ones use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memo {
    /// How the chat server greets a new client, once seen.
    pub chat: Option<chat::Greeting>,
}

impl Memo {
    /// Keeps what a case learned, when it learned something.
    pub fn learn(&mut self, learned: Option<Memo>) {
        if let Some(Memo { chat: Some(greeting) }) = learned {
            self.chat.get_or_insert(greeting);
        }
    }
}

/// How long a server is watched for spinning after its clients left.
const QUIET_WINDOW: Duration = Duration::from_secs(1);

/// How often its threads are looked at meanwhile.
const QUIET_LOOK: Duration = Duration::from_millis(50);

/// Watches `program` for a second in which no client talks to it: its CPU
/// time and how often a thread of it was running.
pub async fn watch_quiet(program: &Running) -> Quiet {
    let before = program.sample();
    let started = Instant::now();
    let (mut samples, mut busy_samples) = (0, 0);
    while started.elapsed() < QUIET_WINDOW {
        tokio::time::sleep(QUIET_LOOK).await;
        samples += 1;
        busy_samples += u32::from(program.sample().running > 0);
    }
    let after = program.sample();
    Quiet {
        window_ms: started.elapsed().as_millis() as u64,
        // USER_HZ is 100 on Linux: a tick is 10 ms.
        cpu_ms: after.ticks.saturating_sub(before.ticks) * 10,
        samples,
        busy_samples,
    }
}

/// The spin finding: a skip without the PID, else the judgement of a quiet second.
pub async fn judge_quiet(ctx: &Ctx<'_>, after: &str) -> Finding {
    let Some(program) = ctx.program else {
        return Finding::skip("needs the server's PID: give the command that starts it after --");
    };
    let quiet = watch_quiet(program).await;
    let measured = format!(
        "{} ms of CPU in {} ms {after}; a thread was running at {} of {} looks",
        quiet.cpu_ms, quiet.window_ms, quiet.busy_samples, quiet.samples
    );
    if quiet.spinning() {
        Finding::fail(format!("the server kept a CPU busy {after}")).note(measured)
    } else {
        Finding::pass().note(measured)
    }
}
