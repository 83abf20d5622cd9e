//! What a check reports: JSON, the report card, crashes, programs that do
//! not listen, usage errors, the case list, the HTML page, the doc.

use super::{CHECK_LIMIT, fixture, grade};
use crate::util::{require, run, run_command_within, socketeer};

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
    // It is noticed as soon as it listens, not after the startup timeout
    // (the run would be stopped at CHECK_LIMIT, long before 10 minutes).
    let graded = grade(&["echo", "--startup-timeout", "10m"], &["python3", "-c", script, "{port}"]);
    let summary = graded.summary();
    let why = summary["aborted"].as_str().unwrap();
    assert!(why.contains("it listens on tcp 127.0.0.1:") && why.contains("instead (port "), "{why}");
    assert_eq!(graded.finished.code(), Some(1));
    // A traceback at startup keeps its indentation on the card.
    let script =
        "import sys\ndef listen(port):\n    raise OSError('cannot bind ' + port)\nlisten(sys.argv[1])";
    let out = run(&["check", "echo", "--", "python3", "-c", script, "{port}"], b"");
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stdout.contains("\n      File \"<string>\", line 3, in listen"), "{}", out.stdout);
    // One that dies at once is reported with what it printed.
    let graded =
        grade(&["echo"], &["python3", "-c", "import sys; sys.exit('no port ' + sys.argv[1])", "{port}"]);
    let why = graded.summary()["aborted"].as_str().unwrap().to_owned();
    assert!(why.contains("stopped first (exit status 1)") && why.contains("no port"), "{why}");
}

#[test]
fn a_thread_that_died_is_explained_from_its_traceback() {
    let cases = [
        // settimeout() meant for sends also times out the recv() of a client that only listens.
        ("chat_recv_times_out.py", "chat.slow-reader", "TimeoutError", "settimeout() applies to every"),
        // A character cut between two recv()s, decoded piece by piece.
        ("chat_decodes_pieces.py", "chat.split", "UnicodeDecodeError", "decode a line only once it is whole"),
    ];
    std::thread::scope(|scope| {
        for (name, case, exception, reading) in cases {
            scope.spawn(move || {
                let path = fixture(name);
                let graded = grade(&["chat", "--case", case], &["python3", &path, "{port}"]);
                let outcome = &graded.cases[0];
                assert_eq!(outcome["verdict"], "fail", "{name}: {outcome}");
                let traceback = &outcome["traceback"];
                assert!(traceback["text"].as_str().unwrap().contains(exception), "{name}: {outcome}");
                assert!(traceback["reading"].as_str().unwrap().contains(reading), "{name}: {outcome}");
            });
        }
    });
}

#[test]
fn a_loop_that_stops_at_a_short_read_is_told_so() {
    let path = fixture("echo_short_read_ends.py");
    let graded = grade(&["echo", "--case", "echo.tcp.1mib"], &["python3", &path, "{port}"]);
    let what = graded.cases[0]["problem"]["what"].as_str().unwrap().to_owned();
    assert!(what.contains("a short read does not mean the message is over, only b''"), "{what}");
    // recv() once is told apart: it is the loop that is missing there.
    let path = fixture("echo_recv_once.py");
    let graded = grade(&["echo", "--case", "echo.tcp.1mib"], &["python3", &path, "{port}"]);
    let what = graded.cases[0]["problem"]["what"].as_str().unwrap().to_owned();
    assert!(!what.contains("short read"), "{what}");
}

#[test]
fn a_first_case_that_fails_says_what_happened_and_the_rest_are_skipped() {
    let path = fixture("daytime_waits_for_request.py");
    let graded = grade(&["daytime"], &["python3", &path, "{port}"]);
    let answer = graded.cases.iter().find(|c| c["id"] == "daytime.tcp.answer").unwrap();
    let what = answer["problem"]["what"].as_str().unwrap();
    assert!(
        what.contains("answered only once the client sent a line") && what.contains("waits for a request"),
        "{what}"
    );
    let others: Vec<_> = graded.cases.iter().filter(|c| c["id"] != "daytime.tcp.answer").collect();
    assert!(!others.is_empty());
    for case in others {
        assert_eq!(case["verdict"], "skip", "{case}");
        assert_eq!(case["skipped"], "daytime.tcp.answer did not pass", "{case}");
    }
    assert_eq!(graded.finished.code(), Some(1));
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
    // Each case says what it sends and what it expects.
    assert!(out.stdout.contains("sends:   one line in three send() calls"), "{}", out.stdout);
    assert!(out.stdout.contains("expects: client 2 gets it as one line"), "{}", out.stdout);
    let json = run(&["check", "echo", "--udp", "--list", "--json"], b"");
    assert!(json.json_lines().iter().all(|c| c["id"].as_str().unwrap().starts_with("echo.udp.")));
    // Clients and scanners are listed without a program to run, too.
    let scanner = run(&["check", "scanner", "--list"], b"");
    assert!(scanner.ok().contains("scanner.range-ends"), "{scanner:#?}");
    let client = run(&["check", "client", "chat", "--list"], b"");
    assert!(client.ok().contains("client.chat."), "{client:#?}");
    // And without one, the usage error shows a command of their kind.
    let bare = run(&["check", "client", "udp-ack"], b"");
    assert_eq!(bare.code(), Some(2), "{bare:#?}");
    assert!(bare.stderr.contains("python3 client.py {host} {port}"), "{}", bare.stderr);
    let bare = run(&["check", "scanner"], b"");
    assert_eq!(bare.code(), Some(2), "{bare:#?}");
    assert!(bare.stderr.contains("python3 scanner.py {host} {ports}"), "{}", bare.stderr);
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
fn an_address_where_nothing_listens_is_said_once() {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Named as the user wrote it, not as it resolved.
    let target = format!("localhost:{port}");
    let out = run(&["check", "echo", &target], b"");
    assert_eq!(out.code(), Some(1), "{out:#?}");
    let said = format!(
        "could not connect to {target}: connection refused \u{2014} is the server running, on this port?"
    );
    // On one line, whole: a message is not wrapped like the card's explanations.
    assert_eq!(out.stdout.lines().filter(|line| line.trim() == said).count(), 1, "{out:#?}");
    assert!(!out.stdout.contains("FAIL  echo.tcp"), "{out:#?}");
}
