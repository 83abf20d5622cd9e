//! What a grading case is (data), and what running one found.
//!
//! A [`Case`] is a row of a table: an id such as `echo.tcp.1mib`, a title,
//! what it sends, what it expects, and the explanation a student reads when
//! it fails, with the section of `docs/check.md` that teaches the idea. The
//! drivers that run cases return a [`Finding`]; the runner pairs the two into
//! an [`Outcome`].

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Where `docs/check.md` lives, for links in reports.
pub const DOC: &str = "docs/check.md";

/// How a case groups in the report card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Does it do the protocol right, one client at a time?
    Correct,
    /// Does it serve many clients at once?
    Concurrent,
    /// Does it survive clients that misbehave, and clean up after them?
    Robust,
}

impl Group {
    /// Every group, in report order.
    pub const ALL: [Group; 3] = [Group::Correct, Group::Concurrent, Group::Robust];

    /// The group's name.
    pub fn name(self) -> &'static str {
        match self {
            Group::Correct => "correct",
            Group::Concurrent => "concurrent",
            Group::Robust => "robust",
        }
    }
}

/// Whether failing a case fails the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A failure is a failure: exit status 1.
    Required,
    /// A failure is reported as a warning (the RFC says "should", say).
    Advisory,
}

/// One grading case: data only. The driver that runs it is chosen by the
/// table it sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Case {
    /// A stable id: `PROTOCOL.TRANSPORT.WHAT`, such as `echo.tcp.1mib`.
    pub id: &'static str,
    /// One line saying what is checked.
    pub title: &'static str,
    /// Which part of the report card it belongs to.
    pub group: Group,
    /// Whether a failure fails the check or warns.
    pub level: Level,
    /// What the case sends, in words.
    pub sends: &'static str,
    /// What it expects back, in words.
    pub expects: &'static str,
    /// Shown when it fails: the concept missed, in a student's words.
    pub explanation: &'static str,
    /// The section of `docs/check.md` that teaches it (the part after `#`).
    pub anchor: &'static str,
}

impl Case {
    /// A case whose failure fails the check: the one constructor the case
    /// tables use (each module fixes the arguments its cases share).
    pub const fn required(
        id: &'static str,
        group: Group,
        title: &'static str,
        sends: &'static str,
        expects: &'static str,
        explanation: &'static str,
        anchor: &'static str,
    ) -> Case {
        Case { id, title, group, level: Level::Required, sends, expects, explanation, anchor }
    }

    /// The link to the section that explains this case.
    pub fn doc_link(&self) -> String {
        format!("{DOC}#{}", self.anchor)
    }
}

/// What a case concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// It behaved as the protocol asks.
    Pass,
    /// It did not (and the case is required).
    Fail,
    /// It did not, but the case is advisory; or it passed with a caveat.
    Warn,
    /// The case could not run here (it needs the program's PID, say).
    Skip,
}

impl Verdict {
    /// The verdict's name in capitals, as the report card shows it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Warn => "WARN",
            Verdict::Skip => "SKIP",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What running a case found, before it is paired with its [`Case`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `None` means it passed.
    pub problem: Option<Problem>,
    /// Why it was skipped, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What was sent, shown escaped and trimmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// What came back, shown escaped and trimmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub got: Option<String>,
    /// Facts measured on the way, worth showing even when it passed
    /// ("the sender hears itself: no", "answered 71% ± 9%").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// How a case went wrong, in one sentence about this run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What happened, such as "got 1024 of 1048576 bytes back, then the connection closed".
    pub what: String,
    /// When set, a failure of a required case counts only as a warning
    /// (a missing CRLF, say).
    pub minor: bool,
}

impl Finding {
    /// It passed.
    pub fn pass() -> Self {
        Finding::default()
    }

    /// It failed: `what` says how.
    pub fn fail(what: impl Into<String>) -> Self {
        Finding { problem: Some(Problem { what: what.into(), minor: false }), ..Finding::default() }
    }

    /// It did something the protocol only recommends against: a warning.
    pub fn warn(what: impl Into<String>) -> Self {
        Finding { problem: Some(Problem { what: what.into(), minor: true }), ..Finding::default() }
    }

    /// It could not run: `why`.
    pub fn skip(why: impl Into<String>) -> Self {
        Finding { skipped: Some(why.into()), ..Finding::default() }
    }

    /// Records what was sent.
    #[must_use]
    pub fn sent(mut self, sent: impl Into<String>) -> Self {
        self.sent = Some(sent.into());
        self
    }

    /// Records what came back.
    #[must_use]
    pub fn got(mut self, got: impl Into<String>) -> Self {
        self.got = Some(got.into());
        self
    }

    /// Adds a measured fact.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Marks it failed with `what`, keeping what was recorded.
    #[must_use]
    pub fn failing(mut self, what: impl Into<String>) -> Self {
        self.problem = Some(Problem { what: what.into(), minor: false });
        self
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.problem.is_none() && self.skipped.is_none()
    }
}

/// A case, what it found, and the verdict they make together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The case that ran.
    #[serde(flatten)]
    pub case: Case,
    /// What it concluded.
    pub verdict: Verdict,
    /// What it found.
    #[serde(flatten)]
    pub finding: Finding,
    /// How long it took.
    #[serde(serialize_with = "crate::stats::as_millis", rename = "ms")]
    pub took: Duration,
    /// What the program under test printed on stderr, when it stopped
    /// during this case (the traceback of a crash, usually).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash: Option<Crash>,
    /// A traceback the program printed during a failing case while it kept
    /// running (a thread of it died).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceback: Option<Traceback>,
}

/// A traceback printed by a program that kept running, and what it means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Traceback {
    /// The traceback, as printed.
    pub text: String,
    /// What its exception means, when it is a classic one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading: Option<&'static str>,
}

/// A program under test that stopped when it should have kept serving.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Crash {
    /// How it ended: "exit status 1", "killed by signal 11".
    pub status: String,
    /// The end of what it printed on stderr.
    pub stderr: String,
}

impl Outcome {
    /// Pairs a case with what it found; a crash of the program under test
    /// fails the case whatever else it found.
    pub fn new(case: Case, mut finding: Finding, took: Duration, crash: Option<Crash>) -> Self {
        if let Some(crash) = &crash
            && finding.problem.as_ref().is_none_or(|p| p.minor)
        {
            finding.problem =
                Some(Problem { what: format!("the program stopped ({})", crash.status), minor: false });
        }
        let verdict = match (&finding.problem, &finding.skipped) {
            (_, Some(_)) => Verdict::Skip,
            (None, None) => Verdict::Pass,
            (Some(p), None) if p.minor || case.level == Level::Advisory => Verdict::Warn,
            (Some(_), None) => Verdict::Fail,
        };
        Outcome { case, verdict, finding, took, crash, traceback: None }
    }

    /// Keeps the telling traceback of `stderr`, when the case failed and the
    /// program did not stop (a crash shows its stderr already).
    #[must_use]
    pub fn with_traceback_from(mut self, stderr: &str) -> Self {
        if self.verdict == Verdict::Fail && self.crash.is_none() {
            self.traceback = super::grade::traceback::telling(stderr).map(|text| Traceback {
                text: text.to_owned(),
                reading: super::grade::traceback::reading(text),
            });
        }
        self
    }
}

/// How many cases ended each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Warned.
    pub warned: usize,
    /// Skipped.
    pub skipped: usize,
}

impl Tally {
    /// Counts `outcomes`.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Tally {
        let mut tally = Tally::default();
        for outcome in outcomes {
            match outcome.verdict {
                Verdict::Pass => tally.passed += 1,
                Verdict::Fail => tally.failed += 1,
                Verdict::Warn => tally.warned += 1,
                Verdict::Skip => tally.skipped += 1,
            }
        }
        tally
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.warned > 0 {
            write!(f, ", {} {}", self.warned, if self.warned == 1 { "warning" } else { "warnings" })?;
        }
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        Ok(())
    }
}

/// Everything one check found about one program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What was checked: `echo`, `client udp-ack`, `scanner`.
    pub check: String,
    /// The program or address: `127.0.0.1:7007`, `python3 server.py {port}`.
    pub subject: String,
    /// Each case, in the order they ran.
    pub outcomes: Vec<Outcome>,
    /// The counts.
    pub tally: Tally,
    /// Why the check could not run at all (the program never listened, say);
    /// then `outcomes` is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
}

impl Report {
    /// A report of `outcomes`.
    pub fn new(check: impl Into<String>, subject: impl Into<String>, outcomes: Vec<Outcome>) -> Self {
        let tally = Tally::of(&outcomes);
        Report { check: check.into(), subject: subject.into(), outcomes, tally, aborted: None }
    }

    /// A check that could not start: `why`.
    pub fn aborted(check: impl Into<String>, subject: impl Into<String>, why: impl Into<String>) -> Self {
        Report { aborted: Some(why.into()), ..Report::new(check, subject, Vec::new()) }
    }

    /// Whether every required case passed (warnings and skips do not count).
    pub fn passed(&self) -> bool {
        self.aborted.is_none() && self.tally.failed == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASE: Case = Case {
        id: "echo.tcp.test",
        title: "a test",
        group: Group::Correct,
        level: Level::Required,
        sends: "x",
        expects: "x",
        explanation: "y",
        anchor: "z",
    };

    #[test]
    fn verdicts_follow_the_problem_and_the_level() {
        let took = Duration::ZERO;
        assert_eq!(Outcome::new(CASE, Finding::pass(), took, None).verdict, Verdict::Pass);
        assert_eq!(Outcome::new(CASE, Finding::fail("no"), took, None).verdict, Verdict::Fail);
        assert_eq!(Outcome::new(CASE, Finding::warn("meh"), took, None).verdict, Verdict::Warn);
        assert_eq!(Outcome::new(CASE, Finding::skip("no pid"), took, None).verdict, Verdict::Skip);
        let advisory = Case { level: Level::Advisory, ..CASE };
        assert_eq!(Outcome::new(advisory, Finding::fail("no"), took, None).verdict, Verdict::Warn);
    }

    #[test]
    fn a_crash_fails_even_a_passing_case() {
        let crash = Crash { status: "exit status 1".into(), stderr: "Traceback".into() };
        let outcome = Outcome::new(CASE, Finding::pass(), Duration::ZERO, Some(crash));
        assert_eq!(outcome.verdict, Verdict::Fail);
        assert!(outcome.finding.problem.unwrap().what.contains("exit status 1"));
    }

    #[test]
    fn the_tally_counts_and_reads() {
        let took = Duration::ZERO;
        let outcomes = [
            Outcome::new(CASE, Finding::pass(), took, None),
            Outcome::new(CASE, Finding::fail("x"), took, None),
            Outcome::new(CASE, Finding::warn("x"), took, None),
        ];
        let tally = Tally::of(&outcomes);
        assert_eq!(tally.to_string(), "1 passed, 1 failed, 1 warning");
        let report = Report::new("echo", "x", outcomes.to_vec());
        assert!(!report.passed());
    }
}
