//! A class: a roster (TOML) of submissions, each a name and either the
//! address of a running server or a command, graded one or two at a time,
//! each within a time limit, into one report.
//!
//! ```toml
//! title = "Lab 3: the broadcast server"
//! check = "chat"            # for everyone unless a student says otherwise
//! jobs = 2                  # how many are graded at once (1 to 4)
//! time_limit = "3m"         # per submission
//!
//! [[student]]
//! name = "Ana"
//! command = "python3 ana/chat_server.py {port}"   # run in the roster's directory
//!
//! [[student]]
//! name = "Ben"
//! command = ["python3", "ben/my server.py", "{port}"]
//! expect_self = true
//!
//! [[student]]
//! name = "Chloé"
//! address = "127.0.0.1:6000"
//! ```
//!
//! Every setting can be given once at the top, for everyone, or per
//! student: `check` (`echo`, `daytime`, `time`, `udp-ack`, `chat`,
//! `client udp-ack`, `client echo`, `client daytime`, `client chat`,
//! `scanner`), `tcp` and `udp` (for echo, daytime and time; for a scanner
//! `udp` scans UDP), `expect_loss`, `expect_self` and `login`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;

use super::case::Report;
use super::client::ClientCheck;
use super::program::Launch;
use super::server::ServerCheck;
use super::{CheckError, Options, Subject};
use crate::impair::Probability;
use crate::net::{Target, Transport, Transports};

/// The most submissions graded at once.
const MAX_JOBS: usize = 4;

/// What a roster check string names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A server check.
    Server(ServerCheck),
    /// A client check.
    Client(ClientCheck),
    /// A scanner check, over this transport.
    Scanner(Transport),
}

impl Kind {
    /// Reads `echo`, `client udp-ack`, `scanner`...; `tcp` and `udp` pick
    /// the transports where a check has a choice.
    ///
    /// # Errors
    /// The name, when it is not a check.
    pub fn parse(name: &str, tcp: bool, udp: bool) -> Result<Kind, String> {
        let transports = Transports { tcp: tcp || !udp, udp };
        let words: Vec<&str> = name.split_whitespace().collect();
        Ok(match words[..] {
            ["echo"] => Kind::Server(ServerCheck::Echo(transports)),
            ["daytime"] => Kind::Server(ServerCheck::Daytime(transports)),
            ["time"] => Kind::Server(ServerCheck::Time(transports)),
            ["udp-ack"] => Kind::Server(ServerCheck::UdpAck),
            ["chat"] => Kind::Server(ServerCheck::Chat),
            ["client", "udp-ack"] => Kind::Client(ClientCheck::UdpAck),
            ["client", "echo"] => Kind::Client(ClientCheck::Echo),
            ["client", "daytime"] => Kind::Client(ClientCheck::Daytime),
            ["client", "chat"] => Kind::Client(ClientCheck::Chat),
            ["scanner"] => Kind::Scanner(if udp { Transport::Udp } else { Transport::Tcp }),
            _ => {
                return Err(format!(
                    "'{name}' is not a check; use echo, daytime, time, udp-ack, chat, client udp-ack, \
                     client echo, client daytime, client chat or scanner"
                ));
            }
        })
    }

    /// The placeholders a command for this check must mention.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            Kind::Server(_) | Kind::Client(_) => &["{port}"],
            Kind::Scanner(_) => &["{ports}", "{first}", "{host}"],
        }
    }

    /// The usual port of a server check, for an address without one.
    pub fn default_port(self) -> u16 {
        match self {
            Kind::Server(ServerCheck::Echo(_)) => crate::echo::DEFAULT_PORT,
            Kind::Server(ServerCheck::Daytime(_)) => crate::daytime::Protocol::Daytime.default_port(),
            Kind::Server(ServerCheck::Time(_)) => crate::daytime::Protocol::Time.default_port(),
            Kind::Server(ServerCheck::UdpAck) => crate::udp::DEFAULT_PORT,
            _ => 5555,
        }
    }
}

/// Runs `kind` against `subject` with `options`.
///
/// # Errors
/// As the check does.
pub async fn run_kind(
    kind: Kind,
    subject: &Subject,
    options: &Options,
    on_event: &mut (dyn FnMut(super::Event<'_>) + Send),
) -> Result<Report, CheckError> {
    match (kind, subject) {
        (Kind::Server(check), subject) => super::check_server(check, subject, options, on_event).await,
        (Kind::Client(check), Subject::Program(launch)) => {
            super::check_client(check, launch, options, on_event).await
        }
        (Kind::Scanner(transport), Subject::Program(launch)) => {
            super::check_scanner(launch, transport, options, on_event).await
        }
        (_, Subject::Address { .. }) => {
            Err(CheckError::Command("a client or a scanner is graded by its command, not an address".into()))
        }
    }
}

/// Settings a roster gives for everyone, or a student for themselves.
#[derive(Clone, Debug, Default, Deserialize)]
struct Settings {
    check: Option<String>,
    tcp: Option<bool>,
    udp: Option<bool>,
    expect_loss: Option<String>,
    expect_self: Option<bool>,
    login: Option<String>,
}

impl Settings {
    /// These settings, with `defaults` where they say nothing.
    fn over(&self, defaults: &Settings) -> Settings {
        Settings {
            check: self.check.clone().or_else(|| defaults.check.clone()),
            tcp: self.tcp.or(defaults.tcp),
            udp: self.udp.or(defaults.udp),
            expect_loss: self.expect_loss.clone().or_else(|| defaults.expect_loss.clone()),
            expect_self: self.expect_self.or(defaults.expect_self),
            login: self.login.clone().or_else(|| defaults.login.clone()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CommandLine {
    Line(String),
    Words(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    command: Option<CommandLine>,
    address: Option<String>,
    #[serde(flatten)]
    settings: Settings,
}

#[derive(Debug, Deserialize)]
struct RosterFile {
    title: Option<String>,
    jobs: Option<usize>,
    time_limit: Option<String>,
    #[serde(default)]
    student: Vec<Entry>,
    #[serde(flatten)]
    defaults: Settings,
}

/// One submission, ready to grade.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    /// The student's name.
    pub name: String,
    /// What to check.
    pub kind: Kind,
    /// Where: an address (a `HOST:PORT` still to resolve) or a command.
    pub subject: Where,
    /// The check's settings for this submission.
    pub options: Options,
}

/// Where a submission is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Where {
    /// A running server.
    Address(Target),
    /// A command, run in the roster's directory.
    Program(Launch),
}

/// A roster, read and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Roster {
    /// The report's title.
    pub title: String,
    /// How many submissions are graded at once.
    pub jobs: usize,
    /// How long one submission may take.
    pub time_limit: Duration,
    /// The submissions, in the roster's order.
    pub submissions: Vec<Submission>,
}

impl Roster {
    /// Reads the roster at `path`; `base` gives every submission's options
    /// their starting values (the command line's `--timeout`, say).
    ///
    /// # Errors
    /// [`CheckError::Roster`] naming what is wrong, and where.
    pub fn read(path: &Path, base: &Options) -> Result<Roster, CheckError> {
        let shown = path.display().to_string();
        let bad = |detail: String| CheckError::Roster { path: shown.clone(), detail };
        let text = std::fs::read_to_string(path).map_err(|e| bad(crate::net::describe(&e)))?;
        let dir = path.parent().map(Path::to_path_buf).filter(|d| !d.as_os_str().is_empty());
        Roster::parse(&text, dir, base).map_err(bad)
    }

    /// Parses roster text; commands run in `dir`.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn parse(text: &str, dir: Option<PathBuf>, base: &Options) -> Result<Roster, String> {
        let file: RosterFile = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        if file.student.is_empty() {
            return Err("no [[student]] entries".to_owned());
        }
        let jobs = file.jobs.unwrap_or(1);
        if !(1..=MAX_JOBS).contains(&jobs) {
            return Err(format!("jobs = {jobs}: give 1 to {MAX_JOBS}"));
        }
        let time_limit = match &file.time_limit {
            Some(t) => crate::units::parse_duration(t).map_err(|e| format!("time_limit: {e}"))?,
            None => Duration::from_secs(180),
        };
        let mut submissions = Vec::new();
        for entry in file.student {
            let name = entry.name.clone();
            let at = |detail: String| format!("student '{name}': {detail}");
            let settings = entry.settings.over(&file.defaults);
            let check =
                settings.check.as_deref().ok_or_else(|| at("no check (say check = \"echo\", ...)".into()))?;
            let kind = Kind::parse(check, settings.tcp.unwrap_or(false), settings.udp.unwrap_or(false))
                .map_err(at)?;
            let subject = match (entry.command, entry.address) {
                (Some(_), Some(_)) => return Err(at("give a command or an address, not both".into())),
                (None, None) => return Err(at("give a command or an address".into())),
                (None, Some(address)) => {
                    Where::Address(address.parse().map_err(|e: crate::net::TargetError| at(e.to_string()))?)
                }
                (Some(command), None) => {
                    let words = match command {
                        CommandLine::Line(line) => line.split_whitespace().map(str::to_owned).collect(),
                        CommandLine::Words(words) => words,
                    };
                    let mut launch =
                        Launch::new(words, kind.placeholders()).map_err(|e| at(e.to_string()))?;
                    launch.dir.clone_from(&dir);
                    Where::Program(launch)
                }
            };
            let mut options = base.clone();
            if let Some(loss) = &settings.expect_loss {
                options.expect_loss = Some(loss.parse::<Probability>().map_err(|e| at(e.to_string()))?);
            }
            options.expect_self = settings.expect_self.or(options.expect_self);
            options.login = settings.login.clone().or(options.login);
            submissions.push(Submission { name: entry.name, kind, subject, options });
        }
        Ok(Roster {
            title: file.title.unwrap_or_else(|| "Class report".to_owned()),
            jobs,
            time_limit,
            submissions,
        })
    }
}

/// Grades one submission within the roster's time limit; a check that
/// cannot run becomes a report that says why.
async fn grade(submission: &Submission, time_limit: Duration) -> Report {
    let check = match submission.kind {
        Kind::Server(check) => check.name(),
        Kind::Client(check) => check.name(),
        Kind::Scanner(_) => "scanner",
    };
    let run = async {
        let subject = match &submission.subject {
            Where::Program(launch) => Subject::Program(launch.clone()),
            Where::Address(target) => {
                let addrs = target.resolve(submission.kind.default_port()).await?;
                let addr = addrs
                    .first()
                    .copied()
                    .ok_or_else(|| CheckError::Command(format!("{target} has no address")))?;
                Subject::Address { addr, name: target.to_string() }
            }
        };
        run_kind(submission.kind, &subject, &submission.options, &mut |_| {}).await
    };
    let shown = match &submission.subject {
        Where::Program(launch) => launch.display(),
        Where::Address(target) => target.to_string(),
    };
    match tokio::time::timeout(time_limit, run).await {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => Report::aborted(check, shown, e.to_string()),
        Err(_) => Report::aborted(
            check,
            shown,
            format!(
                "the check did not finish within the time limit ({})",
                humantime::format_duration(time_limit)
            ),
        ),
    }
}

/// Grades every submission of `roster`, `jobs` at a time, calling `done`
/// with each (in the roster's order) as it is ready.
pub async fn grade_class(roster: &Roster, mut done: impl FnMut(&str, &Report)) -> Vec<(String, Report)> {
    let mut graded = futures::stream::iter(&roster.submissions)
        .map(|s| async move { (s.name.clone(), grade(s, roster.time_limit).await) })
        .buffered(roster.jobs);
    let mut reports = Vec::new();
    while let Some((name, report)) = graded.next().await {
        done(&name, &report);
        reports.push((name, report));
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROSTER: &str = r#"
        title = "Lab 3"
        check = "chat"
        jobs = 2
        time_limit = "2m"

        [[student]]
        name = "Ana"
        command = "python3 ana/chat.py {port}"

        [[student]]
        name = "Ben"
        command = ["python3", "ben/my server.py", "{port}"]
        check = "echo"
        udp = true

        [[student]]
        name = "Chloé"
        address = "127.0.0.1:6000"
        expect_self = true
    "#;

    #[test]
    fn a_roster_reads_with_defaults_and_overrides() {
        let roster = Roster::parse(ROSTER, Some(PathBuf::from("/class")), &Options::default()).unwrap();
        assert_eq!(
            (roster.title.as_str(), roster.jobs, roster.time_limit),
            ("Lab 3", 2, Duration::from_secs(120))
        );
        let [ana, ben, chloe] = &roster.submissions[..] else { panic!("{roster:?}") };
        assert_eq!(ana.kind, Kind::Server(ServerCheck::Chat));
        let Where::Program(launch) = &ana.subject else { panic!() };
        assert_eq!((launch.argv.len(), launch.dir.as_deref()), (3, Some(Path::new("/class"))));
        assert_eq!(ben.kind, Kind::Server(ServerCheck::Echo(Transports::UDP)));
        let Where::Program(launch) = &ben.subject else { panic!() };
        assert_eq!(launch.argv[1], "ben/my server.py");
        assert_eq!(chloe.options.expect_self, Some(true));
        assert!(matches!(&chloe.subject, Where::Address(t) if t.port == Some(6000)));
    }

    #[test]
    fn mistakes_are_named() {
        let base = Options::default();
        for (text, needle) in [
            ("check = \"chat\"", "no [[student]]"),
            ("[[student]]\nname = \"A\"\ncommand = \"x {port}\"", "student 'A': no check"),
            (
                "check = \"gopher\"\n[[student]]\nname = \"A\"\ncommand = \"x {port}\"",
                "'gopher' is not a check",
            ),
            ("check = \"echo\"\n[[student]]\nname = \"A\"\ncommand = \"python3 x.py\"", "{port}"),
            ("check = \"echo\"\n[[student]]\nname = \"A\"", "give a command or an address"),
            ("check = \"echo\"\njobs = 9\n[[student]]\nname = \"A\"\naddress = \"h:1\"", "jobs = 9"),
            (
                "check = \"echo\"\ntime_limit = \"soon\"\n[[student]]\nname = \"A\"\naddress = \"h:1\"",
                "time_limit",
            ),
            (
                "check = \"udp-ack\"\nexpect_loss = \"lots\"\n[[student]]\nname = \"A\"\naddress = \"h:1\"",
                "lots",
            ),
        ] {
            let err = Roster::parse(text, None, &base).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn check_names_parse() {
        assert_eq!(Kind::parse("client  udp-ack", false, false), Ok(Kind::Client(ClientCheck::UdpAck)));
        assert_eq!(Kind::parse("scanner", false, true), Ok(Kind::Scanner(Transport::Udp)));
        assert_eq!(Kind::parse("time", true, true), Ok(Kind::Server(ServerCheck::Time(Transports::BOTH))));
    }
}
