//! `socketeer check` (issue 12): student-like programs in Python, each with
//! one classic bug, are caught by the case meant for the bug and by no other;
//! the good ones and socketeer's own servers pass everything.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::util::{ALL_ON_FREE_PORTS, Daemon, Finished, require, run, run_command_within, socketeer};

/// How long one grading run may take (a failing chat server waits out its timeouts).
const CHECK_LIMIT: Duration = Duration::from_secs(180);

/// How long the grader waits for each reply: more than its default, because
/// the test suite runs everything at once on a small machine.
const TIMEOUT: &str = "3s";

/// How many fixtures are graded at once.
const AT_ONCE: usize = 3;

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

/// Runs `socketeer check ARGS --json`, after `--` when `command` is not empty.
pub fn grade(args: &[&str], command: &[&str]) -> Graded {
    let mut cmd = socketeer();
    cmd.arg("check").args(args).arg("--json");
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
    for chunk in table.chunks(AT_ONCE) {
        std::thread::scope(|scope| {
            for &(name, expected) in chunk {
                scope.spawn(move || {
                    let path = fixture(name);
                    let command: Vec<&str> =
                        ["python3", path.as_str()].into_iter().chain(placeholders.iter().copied()).collect();
                    let graded = grade(&[args, &["--timeout", TIMEOUT]].concat(), &command);
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
                });
            }
        });
    }
}

#[test]
fn echo_tcp_bugs_are_each_caught_by_their_own_cases() {
    assert_caught(
        &["echo"],
        &[
            ("echo_good.py", &[]),
            ("echo_recv_once.py", &[("echo.tcp.1mib", "fail"), ("echo.tcp.trickle", "fail")]),
            ("echo_one_at_a_time.py", &[("echo.tcp.clients.10", "fail"), ("echo.tcp.clients.50", "fail")]),
            ("echo_no_eof_check.py", &[("echo.tcp.half-close", "fail"), ("echo.tcp.idle-cpu", "fail")]),
            ("echo_select_no_except.py", &[("echo.tcp.reset", "fail")]),
            (
                "echo_leaks_sockets.py",
                &[("echo.tcp.half-close", "fail"), ("echo.tcp.sequential.1000", "fail")],
            ),
            ("echo_decodes_text.py", &[("echo.tcp.binary", "fail")]),
        ],
    );
}

#[test]
fn udp_echo_bugs_are_each_caught_by_their_own_cases() {
    assert_caught(
        &["echo", "--udp"],
        &[
            ("udp_echo_good.py", &[]),
            ("udp_echo_small_buffer.py", &[("echo.udp.max", "fail"), ("echo.udp.boundaries", "fail")]),
            ("udp_echo_first_client.py", &[("echo.udp.interleaved", "fail")]),
        ],
    );
}

#[test]
fn daytime_and_time_bugs_are_each_caught_by_their_own_cases() {
    assert_caught(
        &["daytime"],
        &[
            ("daytime_good.py", &[]),
            // The course's own daytime server sends no line ending: a warning, exit 0.
            ("daytime_no_crlf.py", &[("daytime.tcp.crlf", "warn")]),
            ("daytime_never_closes.py", &[("daytime.tcp.closes", "fail")]),
        ],
    );
    assert_caught(
        &["time"],
        &[
            ("time_good.py", &[]),
            ("time_unix_epoch.py", &[("time.tcp.epoch", "fail")]),
            ("time_little_endian.py", &[("time.tcp.byte-order", "fail")]),
        ],
    );
}

#[test]
fn lossy_udp_bugs_are_each_caught_by_their_own_cases() {
    assert_caught(
        &["udp-ack", "--expect-loss", "30%"],
        &[
            ("udp_ack_good.py", &[]),
            ("udp_ack_decodes.py", &[("udp-ack.binary", "fail"), ("udp-ack.large", "warn")]),
            ("udp_ack_new_socket.py", &[("udp-ack.reply-port", "fail")]),
            ("udp_ack_wrong_test.py", &[("udp-ack.loss-rate", "fail")]),
        ],
    );
}

#[test]
fn chat_framing_bugs_are_each_caught_by_their_own_cases() {
    assert_caught(
        &["chat"],
        &[
            ("chat_good.py", &[]),
            // A server that asks for a name first is graded like any other.
            ("chat_asks_name.py", &[]),
            // Hearing oneself is a property, not a failure, unless asked for.
            ("chat_echoes_everyone.py", &[]),
            ("chat_no_framing.py", &[("chat.split", "fail"), ("chat.coalesced", "fail")]),
            ("chat_no_newline.py", &[("chat.coalesced", "fail")]),
        ],
    );
}

#[test]
fn chat_robustness_bugs_are_each_caught_by_their_own_cases() {
    assert_caught(
        &["chat"],
        &[
            ("chat_keeps_dead_clients.py", &[("chat.leave", "fail"), ("chat.reset", "fail")]),
            ("chat_blocks_on_slow_client.py", &[("chat.slow-reader", "fail")]),
            ("chat_no_eof_check.py", &[("chat.idle-cpu", "fail")]),
        ],
    );
}

#[test]
fn hearing_oneself_is_judged_only_when_asked() {
    let echoes = fixture("chat_echoes_everyone.py");
    let good = fixture("chat_good.py");
    for (path, expect, verdict) in [(&echoes, "no", "fail"), (&echoes, "yes", "pass"), (&good, "yes", "fail")]
    {
        let graded =
            grade(&["chat", "--case", "chat.self", "--expect-self", expect], &["python3", path, "{port}"]);
        assert_eq!(
            graded.verdict("chat.self"),
            verdict,
            "{path} --expect-self {expect}: {:#?}",
            graded.finished
        );
    }
    let graded = grade(&["chat", "--case", "chat.self"], &["python3", &echoes, "{port}"]);
    let notes = graded.cases[0]["notes"].to_string();
    assert!(notes.contains("the sender hears its own lines: yes"), "{notes}");
}

#[test]
fn socketeers_own_servers_pass_everything() {
    let serve = Daemon::start(&ALL_ON_FREE_PORTS, 9);
    let at = |service: &str, transport: &str| serve.addr(service, transport).to_string();
    for (args, addr) in [
        (&["echo", "--tcp", "--udp"][..], at("echo", "tcp")),
        (&["daytime", "--tcp", "--udp"], at("daytime", "tcp")),
        (&["time", "--tcp", "--udp"], at("time", "tcp")),
        (&["udp-ack", "--expect-loss", "0%"], at("udp", "udp")),
        (&["chat", "--expect-self", "no"], at("chat", "tcp")),
    ] {
        let graded = grade(&[args, &[addr.as_str()]].concat(), &[]);
        assert_eq!(graded.troubled(), BTreeSet::new(), "{args:?}: {:#?}", graded.finished);
        assert_eq!(graded.finished.code(), Some(0));
        // Without the server's PID only the CPU cases are skipped.
        let skipped: Vec<&str> = graded
            .cases
            .iter()
            .filter(|c| c["verdict"] == "skip")
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert!(skipped.iter().all(|id| id.ends_with("idle-cpu")), "{skipped:?}");
    }
    // Started by the check, they are measured from /proc too.
    let bin = env!("CARGO_BIN_EXE_socketeer");
    for (args, command) in [
        (&["echo", "--tcp", "--udp"][..], &[bin, "echo", "serve", "--port", "{port}"][..]),
        (&["chat"], &[bin, "chat", "serve", "--port", "{port}"]),
    ] {
        let graded = grade(args, command);
        assert_eq!(graded.troubled(), BTreeSet::new(), "{args:?}: {:#?}", graded.finished);
        assert!(graded.cases.iter().all(|c| c["verdict"] == "pass"), "{:#?}", graded.cases);
    }
}

#[test]
fn the_json_has_one_object_per_case_and_a_summary() {
    let path = fixture("echo_recv_once.py");
    let graded = grade(
        &["echo", "--case", "echo.tcp.1mib", "--case", "echo.tcp.roundtrip"],
        &["python3", &path, "{port}"],
    );
    assert_eq!(graded.cases.len(), 2);
    let failed = graded.cases.iter().find(|c| c["id"] == "echo.tcp.1mib").unwrap();
    for field in ["title", "group", "sends", "expects", "explanation", "anchor", "verdict", "problem", "ms"] {
        assert!(!failed[field].is_null(), "no {field}: {failed}");
    }
    assert_eq!(failed["verdict"], "fail");
    assert!(failed["problem"]["what"].as_str().unwrap().contains("got only 1,024 back"), "{failed}");
    assert!(failed["explanation"].as_str().unwrap().contains("TCP is a stream"), "{failed}");
    let summary = graded.summary();
    assert_eq!((summary["passed"].as_u64(), summary["failed"].as_u64()), (Some(1), Some(1)), "{summary}");
    assert_eq!(graded.finished.code(), Some(1));
}

#[test]
fn the_report_card_explains_each_failure() {
    let path = fixture("echo_recv_once.py");
    let out = run_command_within(
        socketeer().args(["check", "echo", "--case", "echo.tcp.trickle", "--", "python3", &path, "{port}"]),
        b"",
        CHECK_LIMIT,
    );
    assert_eq!(out.code(), Some(1), "{out:#?}");
    for needle in [
        "correct",
        "FAIL  echo.tcp.trickle",
        "sent 28 bytes, got only",
        "got:\n    b't",
        "A message can arrive in pieces",
        "docs/check.md#tcp-is-a-stream",
        "0 passed, 1 failed",
    ] {
        assert!(out.stdout.contains(needle), "no {needle:?} in:\n{}", out.stdout);
    }
}

#[test]
fn a_crash_is_reported_with_the_programs_stderr() {
    let path = fixture("echo_select_no_except.py");
    let graded = grade(&["echo", "--case", "echo.tcp.reset"], &["python3", &path, "{port}"]);
    let case = &graded.cases[0];
    assert_eq!(case["verdict"], "fail");
    assert!(case["crash"]["status"].as_str().unwrap().starts_with("exit status"), "{case}");
    assert!(case["crash"]["stderr"].as_str().unwrap().contains("ConnectionResetError"), "{case}");
}

#[test]
fn a_program_that_does_not_listen_where_told_is_explained() {
    // Listens on a port of its own choosing, not on {port}.
    let script = "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(sys.argv[1]); s.accept()";
    let graded = grade(&["echo", "--startup-timeout", "3s"], &["python3", "-c", script, "{port}"]);
    let summary = graded.summary();
    let why = summary["aborted"].as_str().unwrap();
    assert!(why.contains("it listens on tcp 127.0.0.1:") && why.contains("instead"), "{why}");
    assert_eq!(graded.finished.code(), Some(1));
    // One that dies at once is reported with what it printed.
    let graded =
        grade(&["echo"], &["python3", "-c", "import sys; sys.exit('no port ' + sys.argv[1])", "{port}"]);
    let why = graded.summary()["aborted"].as_str().unwrap().to_owned();
    assert!(why.contains("stopped first (exit status 1)") && why.contains("no port"), "{why}");
}

#[test]
fn usage_errors_exit_2() {
    for (args, needle) in [
        (&["check"][..], "give a check"),
        (&["check", "echo"], "HOST:PORT of a running one, or -- COMMAND"),
        (&["check", "echo", "localhost:7", "--", "python3", "x.py", "{port}"], "not both"),
        (&["check", "echo", "--", "python3", "server.py"], "{port}"),
        (&["check", "echo", "localhost:7", "--case", "nothing.like.this"], "no case matches"),
        (&["check", "udp-ack", "localhost", "--expect-loss", "often"], "'often' is not a probability"),
        (&["check", "chat", "localhost", "--expect-self", "maybe"], "maybe"),
    ] {
        let out = run(args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {out:#?}");
        assert!(out.stderr.contains(needle), "{args:?}: stderr lacks {needle:?}: {}", out.stderr);
    }
}

#[test]
fn cases_can_be_listed() {
    let out = run(&["check", "chat", "--list"], b"");
    let ids: Vec<&str> = out.ok().lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(ids.contains(&"chat.slow-reader") && ids.contains(&"chat.clients.50"), "{ids:?}");
    let json = run(&["check", "echo", "--udp", "--list", "--json"], b"");
    assert!(json.json_lines().iter().all(|c| c["id"].as_str().unwrap().starts_with("echo.udp.")));
}

#[test]
fn the_html_report_renders_in_a_browser() {
    require("chromium", "chromium");
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let path = fixture("echo_recv_once.py");
    let html_arg = html.to_str().unwrap();
    let graded = grade(
        &["echo", "--case", "echo.tcp.roundtrip", "--case", "echo.tcp.1mib", "--html", html_arg],
        &["python3", &path, "{port}"],
    );
    assert_eq!(graded.finished.code(), Some(1));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("src=") && !page.contains("href=\"http"), "the page must fetch nothing");
    let profile = dir.path().join("profile");
    let dom = crate::util::run_command(
        std::process::Command::new("chromium").args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            &format!("file://{html_arg}"),
        ]),
        b"",
    );
    let dom = dom.ok();
    // The browser parsed the page into the summary and the cases.
    for needle in [
        "<div class=\"summary\" id=\"summary\">",
        "data-passed=\"1\"",
        "data-failed=\"1\"",
        "<tr id=\"echo.tcp.1mib\">",
        "got only 1,024 back",
        "docs/check.md#tcp-is-a-stream",
    ] {
        assert!(dom.contains(needle), "the rendered page lacks {needle:?}:\n{dom}");
    }
}

#[test]
fn every_case_is_explained_in_the_doc() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/check.md")).unwrap();
    for check in [
        &["echo", "--tcp", "--udp"][..],
        &["daytime", "--tcp", "--udp"],
        &["time", "--tcp", "--udp"],
        &["udp-ack"],
        &["chat"],
        &["client", "udp-ack", "--", "x"],
        &["client", "echo", "--", "x"],
        &["client", "daytime", "--", "x"],
        &["client", "chat", "--", "x"],
        &["scanner", "--", "x"],
    ] {
        let (before, after) = check.split_at(check.iter().position(|a| *a == "--").unwrap_or(check.len()));
        let listed = run(&[&["check"], before, &["--list", "--json"], after].concat(), b"");
        for case in listed.json_lines() {
            for key in ["id", "anchor"] {
                let anchor = format!("<a id=\"{}\"></a>", case[key].as_str().unwrap());
                assert!(doc.contains(&anchor), "docs/check.md lacks {anchor}");
            }
        }
    }
}

#[test]
fn lossy_udp_client_bugs_are_each_caught_by_their_own_cases() {
    assert_caught_with(
        &["client", "udp-ack"],
        &["{host}", "{port}"],
        &[
            ("udp_client_good.py", &[]),
            ("udp_client_no_timeout.py", &[("client.udp-ack.resends-lost", "fail")]),
            ("udp_client_same_text.py", &[("client.udp-ack.numbered", "fail")]),
        ],
    );
}

#[test]
fn tcp_client_bugs_are_each_caught_by_their_own_cases() {
    assert_caught_with(
        &["client", "echo"],
        &["{host}", "{port}"],
        &[("echo_client_good.py", &[]), ("echo_client_recv_once.py", &[("client.echo.whole-reply", "fail")])],
    );
    assert_caught_with(
        &["client", "daytime"],
        &["{host}", "{port}"],
        &[
            ("daytime_client_good.py", &[]),
            // The course's daytime client reads once: the line's second piece is lost.
            ("daytime_client_recv_once.py", &[("client.daytime.whole-line", "fail")]),
        ],
    );
}

#[test]
fn chat_client_bugs_are_each_caught_by_their_own_cases() {
    assert_caught_with(
        &["client", "chat"],
        &["{host}", "{port}"],
        &[
            ("chat_client_good.py", &[]),
            // Taking turns, it neither shows others' lines nor notices the server leaving.
            (
                "chat_client_lockstep.py",
                &[("client.chat.hears-while-idle", "fail"), ("client.chat.server-closes", "warn")],
            ),
            ("chat_client_no_newline.py", &[("client.chat.sends-lines", "fail")]),
            ("chat_client_recv_chunks.py", &[("client.chat.pieces", "fail")]),
        ],
    );
}

#[test]
fn scanner_bugs_are_each_caught_by_their_own_cases() {
    assert_caught_with(
        &["scanner"],
        &["{host}", "{ports}"],
        &[
            ("scanner_good.py", &[]),
            ("scanner_inverted.py", &[("scanner.finds-open", "fail"), ("scanner.no-false-open", "fail")]),
            // After its first connection the socket is connected: later ports are misread.
            ("scanner_one_socket.py", &[("scanner.finds-open", "fail"), ("scanner.no-false-open", "fail")]),
        ],
    );
}

#[test]
fn a_class_is_graded_into_one_report() {
    require("chromium", "chromium");
    let dir = tempfile::tempdir().unwrap();
    let students = fixture("");
    let serve = Daemon::start(&ALL_ON_FREE_PORTS, 9);
    let roster = format!(
        r#"title = "Lab 3"
check = "echo"
jobs = 2
time_limit = "2m"

[[student]]
name = "Ana"
command = ["python3", "{students}echo_good.py", "{{port}}"]

[[student]]
name = "Ben"
command = "python3 {students}echo_recv_once.py {{port}}"

[[student]]
name = "Chloé"
check = "daytime"
address = "{daytime}"

[[student]]
name = "Dan"
command = "python3 {students}no_such_file.py {{port}}"
"#,
        daytime = serve.addr("daytime", "tcp"),
    );
    let path = dir.path().join("roster.toml");
    std::fs::write(&path, roster).unwrap();
    let html = dir.path().join("class.html");
    let out = run_command_within(
        socketeer().args(["check", "--class", path.to_str().unwrap(), "--html", html.to_str().unwrap()]),
        b"",
        CHECK_LIMIT,
    );
    assert_eq!(out.code(), Some(1), "{out:#?}");
    for needle in [
        "Lab 3 (4 students)",
        "PASS  Ana",
        "FAIL  Ben    echo",
        "echo.tcp.1mib, echo.tcp.trickle",
        "PASS  Chloé  daytime",
        "FAIL  Dan",
        "did not run",
        "2 of 4 students passed",
    ] {
        assert!(out.stdout.contains(needle), "no {needle:?} in:\n{}", out.stdout);
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("2 of 4 passed") && page.contains("<th><a href=\"#student-1\">Ben</a></th>"),
        "{page}"
    );
    // JSON: every case names its student; one line per student; a summary.
    let json = run_command_within(
        socketeer().args(["check", "--class", path.to_str().unwrap(), "--json"]),
        b"",
        CHECK_LIMIT,
    );
    let lines = json.json_lines();
    assert!(lines.iter().filter(|l| l["type"] == "case").all(|l| l["student"].is_string()));
    assert_eq!(lines.iter().filter(|l| l["type"] == "student").count(), 4);
    let summary = json.json_of("summary");
    assert_eq!((summary["students"].as_u64(), summary["passed"].as_u64()), (Some(4), Some(2)), "{summary}");
}

#[test]
fn a_roster_with_a_mistake_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roster.toml");
    std::fs::write(&path, "check = \"gopher\"\n[[student]]\nname = \"A\"\naddress = \"localhost:7\"\n")
        .unwrap();
    let out = run(&["check", "--class", path.to_str().unwrap()], b"");
    assert_eq!(out.code(), Some(2), "{out:#?}");
    assert!(out.stderr.contains("student 'A': 'gopher' is not a check"), "{}", out.stderr);
}
