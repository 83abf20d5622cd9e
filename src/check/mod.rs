//! `check`: grades programs someone else wrote (a student's echo, daytime,
//! time, lossy-UDP or broadcast-chat server, a UDP, echo, daytime or chat
//! client, a port scanner) the way Autobahn|Testsuite grades WebSocket
//! servers: named cases, each failure explained by the concept it misses.
//!
//! | module | role | touches |
//! |---|---|---|
//! | [`case`] | what a case is (data) and what running one found | nothing |
//! | [`grade`] | the judging, pure: bytes, times, shares, chat deliveries, CPU samples | nothing |
//! | [`show`] | peer bytes made safe to print | nothing |
//! | [`server`] | the case tables of the server checks and their drivers | sockets |
//! | [`client`] | client checks: an instrumented server, the student's client run against it | sockets, processes |
//! | [`scanner`] | scanner checks: known open ports, the student's scanner, the comparison | sockets, processes |
//! | [`program`] | the program under test: started, watched in `/proc`, stopped with its group | processes |
//! | [`roster`] | a class: many submissions, one report | files |
//! | [`html`] | the self-contained HTML report | nothing |
//!
//! Cases are data ([`case::Case`]: id, title, what it sends, what it
//! expects, the explanation and the section of `docs/check.md` that teaches
//! it), each paired in its table with a small probe value that its
//! protocol's driver knows how to run. Adding a case is one table entry
//! (and a probe variant, when it does something new).
//!
//! When the program under test is given as a command, every case gets a
//! fresh start of it on a free loopback port, so one bug does not hide the
//! next: a server that crashes on a reset fails the reset case only. Its
//! PID lets cases look at it from `/proc` (CPU, threads, open files).

pub mod case;
pub mod client;
pub mod grade;
pub mod html;
pub mod program;
pub mod roster;
mod runner;
pub mod scanner;
pub mod server;
pub mod show;
mod wire;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use case::{Case, Crash, Finding, Group, Level, Outcome, Report, Tally, Verdict};
pub use client::{ClientCheck, check_client};
pub use runner::{Event, check_server};
pub use scanner::check_scanner;

use crate::impair::Probability;
use crate::net::{ConnectError, Transport, describe};
use program::Launch;

/// A check that could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The command to test is unusable.
    #[error("{0}")]
    Command(String),
    /// The program could not be started.
    #[error("cannot start {program}: {}", describe(.source))]
    Spawn {
        /// The program's name.
        program: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The program did not start serving where it was told to.
    #[error("the program did not listen on {transport} {addr}: {why}")]
    NotListening {
        /// TCP or UDP.
        transport: Transport,
        /// Where it should have listened.
        addr: SocketAddr,
        /// What happened instead.
        why: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The address of a running server did not resolve.
    #[error(transparent)]
    Resolve(#[from] ConnectError),
    /// No case matches a `--case` filter.
    #[error("no case matches '{0}'; the cases are listed by --list")]
    NoCase(String),
    /// A roster could not be read.
    #[error("{path}: {detail}")]
    Roster {
        /// The roster's path.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A socket the grader needs could not be set up.
    #[error("cannot set up the grader's own sockets: {}", describe(.0))]
    Io(#[from] io::Error),
}

/// What is being checked: a program that is already running, or a command
/// that starts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A server running at `addr`, which the user named `name` (`localhost:7007`).
    Address {
        /// Where it is.
        addr: SocketAddr,
        /// How the user wrote it, for the report.
        name: String,
    },
    /// A command to start, with placeholders.
    Program(Launch),
}

impl Subject {
    /// The subject in a report: the address, or the command line.
    pub fn display(&self) -> String {
        match self {
            Subject::Address { name, .. } => name.clone(),
            Subject::Program(launch) => launch.display(),
        }
    }
}

/// Settings shared by every check.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// How long to wait for each expected reply.
    pub reply_timeout: Duration,
    /// How long a started program may take to listen (or a client to connect).
    pub startup_timeout: Duration,
    /// Run only cases whose id starts with one of these (`*` matches anything).
    pub only: Vec<String>,
    /// Chat: require that a sender hears its own lines (`Some(true)`), or
    /// that it does not (`Some(false)`); `None` reports it either way.
    pub expect_self: Option<bool>,
    /// Lossy UDP: the share of datagrams the server drops on purpose.
    pub expect_loss: Option<Probability>,
    /// Chat: a line every grader client sends first (a name, for servers
    /// that ask for one); `{nick}` is replaced by the client's name.
    pub login: Option<String>,
    /// The loopback address started programs listen on.
    pub host: IpAddr,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reply_timeout: Duration::from_secs(2),
            startup_timeout: Duration::from_secs(10),
            only: Vec::new(),
            expect_self: None,
            expect_loss: None,
            login: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

impl Options {
    /// Whether the case `id` is selected by [`Options::only`].
    pub fn selects(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|pattern| matches_pattern(pattern, id))
    }
}

/// Whether `id` starts with `pattern`, where `*` in the pattern matches any run of characters.
fn matches_pattern(pattern: &str, id: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else { return true };
    let Some(mut rest) = id.strip_prefix(first) else { return false };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_filters_take_prefixes_and_stars() {
        let only =
            |p: &[&str]| Options { only: p.iter().map(|s| s.to_string()).collect(), ..Options::default() };
        assert!(only(&[]).selects("echo.tcp.1mib"));
        assert!(only(&["echo.tcp"]).selects("echo.tcp.1mib"));
        assert!(!only(&["echo.udp"]).selects("echo.tcp.1mib"));
        assert!(only(&["*.clients.*"]).selects("echo.tcp.clients.50"));
        assert!(only(&["echo.udp", "*1mib"]).selects("echo.tcp.1mib"));
        assert!(!only(&["chat.*.50"]).selects("chat.clients.10"));
    }
}
