//! Client, scanner and class checks: buggy clients and scanners are caught
//! by their own cases; a roster is graded into one report.

use super::{CHECK_LIMIT, assert_caught_with, fixture, grade};
use crate::util::{ALL_ON_FREE_PORTS, Daemon, require, run, run_command_within, socketeer};

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
fn a_lost_message_is_named_by_what_the_client_sent() {
    // The fixture counts from 0: its second message is b'Message 1', not "message 2".
    let path = fixture("udp_client_no_timeout.py");
    let graded = grade(
        &["client", "udp-ack", "--case", "client.udp-ack.resends-lost"],
        &["python3", &path, "{host}", "{port}"],
    );
    let what = graded.cases[0]["problem"]["what"].as_str().unwrap().to_owned();
    assert!(what.starts_with("the client's second message, b'Message 1', was lost"), "{what}");
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
            // After its first connection the socket is connected: every later open port is missed.
            // (With a timeout set, Python also takes the next port's EISCONN for success; whether
            // that port is closed depends on the random layout, so the fixture sets none.)
            ("scanner_one_socket.py", &[("scanner.finds-open", "fail")]),
            // range(first, last): the last port, always open, is never tried.
            ("scanner_misses_last_port.py", &[("scanner.range-ends", "fail")]),
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
        // The last line the program printed, not a cut-off "it printed:".
        "No such file or directory",
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
