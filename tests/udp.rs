//! The lossy-UDP exercise: seeded drops, retries, and reports.

use std::time::Duration;

use crate::util::{Daemon, run};

fn ack_server(loss: &str, seed: &str) -> Daemon {
    Daemon::start(&["udp", "serve", "--port", "0", "--loss", loss, "--seed", seed], 1)
}

fn send(server: &Daemon, extra: &[&str]) -> crate::util::Finished {
    let target = server.addr("udp", "udp").to_string();
    let mut args = vec!["udp", "send", &target, "--json"];
    args.extend_from_slice(extra);
    run(&args, b"")
}

#[test]
fn the_status_line_echoes_loss_and_seed() {
    let server = ack_server("0.25", "99");
    assert!(server.status_lines()[0].ends_with("(loss 25%, seed 99)"), "{:?}", server.status_lines());
}

#[test]
fn without_loss_every_message_is_acked_first_time() {
    let server = ack_server("0%", "1");
    let out = send(&server, &["--count", "25"]);
    let summary = out.json_of("summary");
    assert_eq!(summary["messages"], 25);
    assert_eq!(summary["first_try"], 25);
    assert_eq!(summary["datagrams"], 25);
    assert!(summary["rtt_ms"]["max"].as_f64().unwrap() > 0.0);
}

#[test]
fn total_loss_gives_up_after_the_retries() {
    let server = ack_server("100%", "1");
    let out = send(&server, &["--count", "3", "--retries", "2", "--timeout", "50ms"]);
    assert_eq!(out.code(), Some(1), "losing messages is a failure");
    assert!(out.stderr.contains("3 of 3 messages were never acknowledged"), "{}", out.stderr);
    let summary = out.json_of("summary");
    assert_eq!((summary["lost"].as_u64(), summary["datagrams"].as_u64()), (Some(3), Some(9)));
    assert!(summary["rtt_ms"].is_null());
    let first = out.json_of("message");
    assert_eq!((first["acked"].as_bool(), first["attempts"].as_u64()), (Some(false), Some(3)));
    let human = run(
        &[
            "udp",
            "send",
            &server.addr("udp", "udp").to_string(),
            "-c",
            "1",
            "--retries",
            "0",
            "--timeout",
            "50ms",
        ],
        b"",
    );
    assert!(human.stdout.starts_with("message 1: lost after 1 try\n"), "{}", human.stdout);
}

#[test]
fn the_same_seed_drops_the_same_datagrams() {
    // Two servers with one seed, driven side by side with the same messages:
    // the drops, and so every retry, must match exactly.
    let (a, b) = (ack_server("30%", "7"), ack_server("30%", "7"));
    let args = ["--count", "30", "--timeout", "1s", "--retries", "8"];
    let (out_a, out_b) = std::thread::scope(|s| {
        let a = s.spawn(|| send(&a, &args));
        let b = s.spawn(|| send(&b, &args));
        (a.join().unwrap(), b.join().unwrap())
    });
    let attempts = |out: &crate::util::Finished| -> Vec<u64> {
        out.json_lines()
            .iter()
            .filter(|l| l["type"] == "message")
            .map(|l| l["attempts"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(attempts(&out_a), attempts(&out_b));
    let summary = out_a.json_of("summary");
    assert_eq!(summary["lost"], 0);
    assert!(summary["retried"].as_u64().unwrap() > 0, "30% loss retried nothing: {summary}");
    assert!(summary["first_try"].as_u64().unwrap() > 0);
}

#[test]
fn stdin_lines_are_numbered_and_acknowledged() {
    let server = ack_server("0%", "1");
    let target = server.addr("udp", "udp").to_string();
    let out = run(&["udp", "send", &target, "--stdin"], b"alpha\nbeta\n");
    let text = out.ok();
    assert!(text.starts_with("message 1: acked after 1 try, rtt "), "{text}");
    assert!(text.contains("2 messages in 2 datagrams: 2 acked on the first try, 0 after retries, 0 lost"));
}

#[test]
fn a_datagram_too_large_to_acknowledge_does_not_stop_the_server() {
    let server = ack_server("0%", "1");
    let addr = server.addr("udp", "udp");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(&vec![b'x'; 65_507], addr).unwrap();
    let out = send(&server, &["--count", "2"]);
    assert_eq!(out.json_of("summary")["first_try"], 2);
    let logged = crate::util::eventually(Duration::from_secs(5), || {
        server.stderr().contains("too large to acknowledge")
    });
    assert!(logged, "{}", server.stderr());
}
