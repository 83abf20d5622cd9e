//! `socketeer check` (issue 12): student-like programs in Python, each with
//! one classic bug, are caught by the case meant for the bug and by no other;
//! the good ones and socketeer's own servers pass everything.

mod clients;
mod reports;
mod servers;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::util::{Finished, require, run_command_within, socketeer};

/// How long one grading run may take (a failing chat server waits out its timeouts).
const CHECK_LIMIT: Duration = Duration::from_secs(180);

/// How long the grader waits for each reply: more than its default, because
/// the test suite runs everything at once on a small machine.
const TIMEOUT: &str = "3s";

/// How long a fixture may take to listen: more than the default, because on
/// a crowded machine a Python program started ahead of its case can take
/// seconds to bind.
const STARTUP: &str = "30s";

/// How many fixtures are graded at once (each check runs up to four cases
/// at once, each with its own instance of the program).
const AT_ONCE: usize = 2;

pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/students/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A grading run: its exit status and its JSON lines.
pub struct Graded {
    pub finished: Finished,
    pub cases: Vec<Value>,
}

impl Graded {
    /// `(id, verdict)` of every case that failed or warned.
    pub fn troubled(&self) -> BTreeSet<(String, String)> {
        self.cases
            .iter()
            .filter(|c| c["verdict"] == "fail" || c["verdict"] == "warn")
            .map(|c| (c["id"].as_str().unwrap().to_owned(), c["verdict"].as_str().unwrap().to_owned()))
            .collect()
    }

    pub fn verdict(&self, id: &str) -> &str {
        let case = self
            .cases
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no case {id}: {:#?}", self.finished));
        case["verdict"].as_str().unwrap()
    }

    pub fn summary(&self) -> Value {
        self.finished.json_of("summary")
    }
}

/// Runs `socketeer check ARGS --json`, after `--` when `command` is not empty,
/// with the suite's reply and startup timeouts unless `args` sets them.
pub fn grade(args: &[&str], command: &[&str]) -> Graded {
    let mut cmd = socketeer();
    cmd.arg("check").args(args).arg("--json");
    for (flag, value) in [("--timeout", TIMEOUT), ("--startup-timeout", STARTUP)] {
        if !args.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    let finished = run_command_within(&mut cmd, b"", CHECK_LIMIT);
    let cases = finished.json_lines().into_iter().filter(|v| v["type"] == "case").collect();
    Graded { finished, cases }
}

/// Grades each Python fixture with `args` and asserts that exactly the
/// listed cases fail (or warn), and that the exit status says whether any failed.
fn assert_caught(args: &[&str], table: &[(&str, &[(&str, &str)])]) {
    assert_caught_with(args, &["{port}"], table);
}

/// [`assert_caught`] for programs that take `placeholders` as their arguments.
fn assert_caught_with(args: &[&str], placeholders: &[&str], table: &[(&str, &[(&str, &str)])]) {
    require("python3", "python3");
    // A pool rather than rounds: a fixture that waits out a timeout holds up
    // only its own worker.
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..AT_ONCE {
            scope.spawn(|| {
                while let Some(&(name, expected)) = table.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let path = fixture(name);
                    let command: Vec<&str> =
                        ["python3", path.as_str()].into_iter().chain(placeholders.iter().copied()).collect();
                    let graded = grade(args, &command);
                    let expected: BTreeSet<(String, String)> =
                        expected.iter().map(|&(id, v)| (id.to_owned(), v.to_owned())).collect();
                    assert_eq!(graded.troubled(), expected, "{name}: {:#?}", graded.finished);
                    let failed = expected.iter().any(|(_, v)| v == "fail");
                    assert_eq!(
                        graded.finished.code(),
                        Some(i32::from(failed)),
                        "{name}: {:#?}",
                        graded.finished
                    );
                }
            });
        }
    });
}
