//! Client checks: the student's client runs against an instrumented server
//! of ours, which misbehaves on purpose (drops a datagram, sends a reply in
//! pieces, talks while the client waits for its user) and records what the
//! client does. One run of the client (a session) answers every case; the
//! cases are still data, and each is judged from the session's record.

mod chat;
mod stream;
mod udp_ack;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::case::{Case, Finding, Group, Level, Outcome, Report};
use super::program::{Launch, Running, free_port};
use super::runner::Event;
use super::{CheckError, Options};

pub use udp_ack::{Role, Script, Seen};

/// Which client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCheck {
    /// The lossy-UDP client: numbered messages, timeouts, resends.
    UdpAck,
    /// A TCP echo client.
    Echo,
    /// A TCP daytime client.
    Daytime,
    /// A chat client (full duplex).
    Chat,
}

impl ClientCheck {
    /// The check's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ClientCheck::UdpAck => "client udp-ack",
            ClientCheck::Echo => "client echo",
            ClientCheck::Daytime => "client daytime",
            ClientCheck::Chat => "client chat",
        }
    }

    /// Its cases, in the order they are reported.
    pub fn cases(self) -> &'static [Case] {
        match self {
            ClientCheck::UdpAck => &udp_ack::CASES,
            ClientCheck::Echo => &stream::ECHO_CASES,
            ClientCheck::Daytime => &stream::DAYTIME_CASES,
            ClientCheck::Chat => &chat::CASES,
        }
    }
}

/// A client started against our server, with what it did.
#[derive(Debug)]
pub(crate) struct Client {
    running: Running,
    /// When it was started.
    pub started: Instant,
}

impl Client {
    /// Starts `launch` with `{host}` and `{port}` of `server`.
    fn start(launch: &Launch, server: SocketAddr, stdin: bool) -> Result<Client, CheckError> {
        let vars = [("host", server.ip().to_string()), ("port", server.port().to_string())];
        Ok(Client { running: Running::start(launch, &vars, stdin)?, started: Instant::now() })
    }

    /// Whether it has ended by itself.
    pub fn ended(&mut self) -> bool {
        self.running.crashed().is_some()
    }

    /// Types a line into its stdin.
    pub async fn type_line(&mut self, line: &str) -> std::io::Result<()> {
        self.running.type_line(line).await
    }

    /// What it printed so far.
    pub fn stdout(&self) -> String {
        self.running.stdout.text()
    }

    /// Waits up to `limit` for it to end by itself; whether it did.
    pub async fn wait_exit(&mut self, limit: Duration) -> bool {
        self.running.wait_exit(limit).await.is_some()
    }

    /// Stops it; what it printed, and how it ended if it ended by itself.
    async fn finish(mut self) -> Ending {
        let exit = self.running.ended().await;
        let stdout = self.running.stdout.text();
        let stderr = self.running.stderr_tail();
        self.running.stop().await;
        Ending { exit, stdout, stderr }
    }
}

/// How a client's session ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ending {
    /// How it ended when it ended by itself (`None`: it was still running and was stopped).
    pub exit: Option<super::Crash>,
    /// What it printed on stdout.
    pub stdout: String,
    /// The end of what it printed on stderr.
    pub stderr: String,
}

impl Ending {
    /// The client ended with an error: an exception nobody caught (a
    /// traceback on stderr) or a signal. An exit status that is not 0 is not
    /// one by itself: a client may say so when it gave up on a message,
    /// which is right when the server went silent.
    pub fn error(&self) -> Option<super::Crash> {
        let traceback = self.stderr.contains("Traceback (most recent call last)");
        match &self.exit {
            Some(crash) if traceback || crash.status.starts_with("killed") => Some(crash.clone()),
            None if traceback => {
                Some(super::Crash { status: "still running".into(), stderr: self.stderr.clone() })
            }
            _ => None,
        }
    }
}

/// The case every client check ends with: no error.
const fn no_error(id: &'static str) -> Case {
    Case {
        id,
        title: "the client does not end with an error",
        group: Group::Robust,
        level: Level::Required,
        sends: "(the whole session)",
        expects: "no traceback on stderr, and no death by a signal",
        explanation: "An exception nobody catches ends the program with a traceback. Network errors are \
                      part of the job (the server closes, resets, goes silent): catch OSError and \
                      socket.timeout where they can happen and decide what to do.",
        anchor: "clients",
    }
}

/// Judges the no-error case from how the session ended.
fn judge_no_error(ending: &Ending) -> (Finding, Option<super::Crash>) {
    match ending.error() {
        None => (Finding::pass(), None),
        Some(crash) => {
            (Finding::fail(format!("the client ended with an error ({})", crash.status)), Some(crash))
        }
    }
}

/// Runs `check` against the client started by `launch`.
///
/// # Errors
/// When the options select no case, or the client or our server cannot be started.
pub async fn check_client(
    check: ClientCheck,
    launch: &Launch,
    options: &Options,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<Report, CheckError> {
    let cases: Vec<&Case> = check.cases().iter().filter(|c| options.selects(c.id)).collect();
    if cases.is_empty() {
        return Err(CheckError::NoCase(options.only.join(",")));
    }
    on_event(Event::Planned(cases.len()));
    let started = Instant::now();
    if let Some(first) = cases.first() {
        on_event(Event::Started(first));
    }
    let port = free_port(options.host)?;
    let server = SocketAddr::new(options.host, port);
    let (findings, ending) = match check {
        ClientCheck::UdpAck => udp_ack::session(launch, server, options).await?,
        ClientCheck::Echo => stream::echo_session(launch, server, options).await?,
        ClientCheck::Daytime => stream::daytime_session(launch, server, options).await?,
        ClientCheck::Chat => chat::session(launch, server, options).await?,
    };
    let took = started.elapsed() / check.cases().len() as u32;
    let (no_error, crash) = judge_no_error(&ending);
    let mut outcomes = Vec::new();
    for (case, finding) in check.cases().iter().zip(findings.into_iter().chain([no_error])) {
        if !options.selects(case.id) {
            continue;
        }
        let crash = if case.id.ends_with(".no-error") { crash.clone() } else { None };
        let outcome = Outcome::new(*case, finding, took, crash);
        on_event(Event::Finished(&outcome));
        outcomes.push(outcome);
    }
    Ok(Report::new(check.name(), launch.display(), outcomes))
}
