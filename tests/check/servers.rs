//! Server checks: each buggy student server is caught by the cases meant
//! for its bug and by no other; the good ones and socketeer's own pass.

use std::collections::BTreeSet;

use super::{assert_caught, fixture, grade};
use crate::util::{ALL_ON_FREE_PORTS, Daemon};

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
            // It loops over recv(), but stops at the first short read.
            ("echo_short_read_ends.py", &[("echo.tcp.1mib", "fail"), ("echo.tcp.trickle", "fail")]),
            // A child per client, never waited for: zombies.
            ("echo_forks_no_wait.py", &[("echo.tcp.reaps", "fail")]),
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
            // Only the first case fails; the others are skipped because of it.
            ("daytime_waits_for_request.py", &[("daytime.tcp.answer", "fail")]),
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
            // Decoding each recv(): the character cut in two kills the sender's thread.
            ("chat_decodes_pieces.py", &[("chat.split", "fail")]),
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
    // Four short gradings, all at once.
    std::thread::scope(|scope| {
        for (path, expect, verdict) in
            [(&echoes, "no", "fail"), (&echoes, "yes", "pass"), (&good, "yes", "fail")]
        {
            scope.spawn(move || {
                let graded = grade(
                    &["chat", "--case", "chat.self", "--expect-self", expect],
                    &["python3", path, "{port}"],
                );
                assert_eq!(
                    graded.verdict("chat.self"),
                    verdict,
                    "{path} --expect-self {expect}: {:#?}",
                    graded.finished
                );
            });
        }
        scope.spawn(|| {
            let graded = grade(&["chat", "--case", "chat.self"], &["python3", &echoes, "{port}"]);
            let notes = graded.cases[0]["notes"].to_string();
            assert!(notes.contains("the sender hears its own lines: yes"), "{notes}");
        });
    });
}

#[test]
fn socketeers_own_servers_pass_everything() {
    let serve = Daemon::start(&ALL_ON_FREE_PORTS, 9);
    let at = |service: &str, transport: &str| serve.addr(service, transport).to_string();
    let running = [
        (&["echo", "--tcp", "--udp"][..], at("echo", "tcp")),
        (&["daytime", "--tcp", "--udp"], at("daytime", "tcp")),
        (&["time", "--tcp", "--udp"], at("time", "tcp")),
        (&["udp-ack", "--expect-loss", "0%"], at("udp", "udp")),
        (&["chat", "--expect-self", "no"], at("chat", "tcp")),
    ];
    // Started by the check, they are measured from /proc too.
    let bin = env!("CARGO_BIN_EXE_socketeer");
    let started = [
        (&["echo", "--tcp", "--udp"][..], &[bin, "echo", "serve", "--port", "{port}"][..]),
        (&["chat"], &[bin, "chat", "serve", "--port", "{port}"]),
    ];
    // Each grading waits on the network far more than it computes: all at once.
    std::thread::scope(|scope| {
        for (args, addr) in &running {
            scope.spawn(move || {
                let graded = grade(&[*args, &[addr.as_str()]].concat(), &[]);
                assert_eq!(graded.troubled(), BTreeSet::new(), "{args:?}: {:#?}", graded.finished);
                assert_eq!(graded.finished.code(), Some(0));
                // Without the server's PID only the cases that look at its processes are skipped.
                let skipped: Vec<&str> = graded
                    .cases
                    .iter()
                    .filter(|c| c["verdict"] == "skip")
                    .map(|c| c["id"].as_str().unwrap())
                    .collect();
                assert!(
                    skipped.iter().all(|id| id.ends_with("idle-cpu") || id.ends_with("reaps")),
                    "{skipped:?}"
                );
            });
        }
        for (args, command) in started {
            scope.spawn(move || {
                let graded = grade(args, command);
                assert_eq!(graded.troubled(), BTreeSet::new(), "{args:?}: {:#?}", graded.finished);
                assert!(graded.cases.iter().all(|c| c["verdict"] == "pass"), "{:#?}", graded.cases);
            });
        }
    });
}
