//! `socketeer serve`: every service in one process, and clean shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::util::{ALL_ON_FREE_PORTS, Daemon, binary, run};

#[test]
fn serves_every_service_and_answers_on_each() {
    let server = Daemon::start(&ALL_ON_FREE_PORTS, 10);
    let services: Vec<_> =
        server.listening.iter().map(|l| format!("{} {}", l.service, l.transport)).collect();
    assert_eq!(
        services,
        [
            "echo tcp",
            "echo udp",
            "daytime tcp",
            "daytime udp",
            "time tcp",
            "time udp",
            "udp udp",
            "transfer udp",
            "chat tcp",
            "chat-web tcp"
        ]
    );
    assert!(server.listening.iter().all(|l| l.addr.ip().is_loopback()), "binds loopback by default");
    let target = |service, transport| server.addr(service, transport).to_string();
    assert_eq!(run(&["echo", "send", &target("echo", "tcp"), "t"], b"").ok(), "t\n");
    assert_eq!(run(&["echo", "send", &target("echo", "udp"), "u", "--udp"], b"").ok(), "u\n");
    run(&["daytime", "get", &target("daytime", "tcp")], b"").ok();
    run(&["daytime", "get", &target("daytime", "udp"), "--udp"], b"").ok();
    run(&["daytime", "get", &target("time", "tcp"), "--time"], b"").ok();
    run(&["daytime", "get", &target("time", "udp"), "--time", "--udp"], b"").ok();
    let acked = run(&["udp", "send", &target("udp", "udp"), "-c", "2", "--json"], b"").json_of("summary");
    assert_eq!(acked["first_try"], 2);
    let chatted = run(&["chat", "join", &target("chat", "tcp"), "--json"], b"/who\n").json_lines();
    assert!(chatted.iter().any(|l| l["text"].as_str().is_some_and(|t| t.starts_with("in lobby (1)"))));
}

#[test]
fn only_and_except_choose_services() {
    let only = Daemon::start(&[&ALL_ON_FREE_PORTS[..], &["--only", "echo,time"]].concat(), 4);
    let names: Vec<_> = only.listening.iter().map(|l| l.service.as_str()).collect();
    assert_eq!(names, ["echo", "echo", "time", "time"]);
    let except =
        Daemon::start(&[&ALL_ON_FREE_PORTS[..], &["--except", "echo,daytime,time,transfer"]].concat(), 3);
    let names: Vec<_> = except.listening.iter().map(|l| l.service.as_str()).collect();
    assert_eq!(names, ["udp", "chat", "chat-web"]);
    // A setting for a service that does not run is a mistake, not a no-op.
    let unused = run(&["serve", "--only", "echo", "--udp-loss", "20%"], b"");
    assert_eq!(unused.code(), Some(2));
    assert!(unused.stderr.contains("--udp-loss is for the udp service, which --only/--except leaves out"));
}

#[test]
fn status_lines_in_json() {
    let server =
        Daemon::start(&[&ALL_ON_FREE_PORTS[..], &["--json", "--only", "udp", "--udp-seed", "3"]].concat(), 1);
    let line: serde_json::Value = serde_json::from_str(&server.status_lines()[0]).unwrap();
    assert_eq!(line["type"], "listening");
    assert_eq!(line["service"], "udp");
    assert_eq!(line["transport"], "udp");
    assert_eq!(line["detail"], "loss 0%, seed 3");
    assert!(line["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
}

#[test]
fn binds_every_address_in_the_list() {
    let server =
        Daemon::start(&[&ALL_ON_FREE_PORTS[..], &["--only", "echo", "--bind", "127.0.0.1,::1"]].concat(), 4);
    let v6 = server.listening.iter().find(|l| l.addr.is_ipv6() && l.transport == "tcp").unwrap();
    assert_eq!(run(&["echo", "send", &v6.addr.to_string(), "six"], b"").ok(), "six\n");
}

#[test]
fn sigterm_and_sigint_stop_it_cleanly_and_quickly() {
    for signal in ["TERM", "INT"] {
        let server = Daemon::start(&ALL_ON_FREE_PORTS, 10);
        // An idle client must not hold the shutdown up.
        let mut idle = TcpStream::connect(server.addr("echo", "tcp")).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        idle.write_all(b"x").unwrap();
        let mut buf = [0u8; 1];
        idle.read_exact(&mut buf).unwrap();
        let crate::util::Stopped { status, took, stderr, .. } = server.stop_with(signal);
        assert_eq!(status.code(), Some(0), "SIG{signal}: {stderr}");
        assert!(took < Duration::from_secs(4), "SIG{signal} took {took:?}");
        assert!(stderr.contains(&format!("signal=\"SIG{signal}\"")), "{stderr}");
        assert!(stderr.contains("stopped"), "{stderr}");
        assert_eq!(idle.read(&mut buf).unwrap_or(0), 0, "the idle connection is closed");
    }
}

#[test]
fn an_exchange_in_flight_at_shutdown_is_answered_intact() {
    let server = Daemon::start(&["echo", "serve", "--port", "0", "--tcp"], 1);
    let mut client = TcpStream::connect(server.addr("echo", "tcp")).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Keep the server busy writing to us: we do not read until after the signal.
    let sent = binary(16 << 20);
    let mut writer = client.try_clone().unwrap();
    let payload = sent.clone();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&payload);
    });
    // Ready once echoes wait in our receive buffer: the server is mid-exchange.
    client.peek(&mut [0u8; 1]).unwrap();
    let stopping = std::thread::spawn(move || server.stop_with("TERM"));
    let mut echoed = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = client.read(&mut buf) {
        if n == 0 {
            break;
        }
        echoed.extend_from_slice(&buf[..n]);
    }
    let crate::util::Stopped { status, took, stderr, .. } = stopping.join().unwrap();
    drop(client);
    sender.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(!echoed.is_empty());
    assert!(echoed[..] == sent[..echoed.len()], "the echo is not an exact prefix of what was sent");
}

#[test]
fn serve_lifts_the_chat_limits_for_bench_chat() {
    let args =
        [&ALL_ON_FREE_PORTS[..], &["--only", "chat", "--chat-rate-limit", "off", "--chat-max-per-ip", "off"]];
    let server = Daemon::start(&args.concat(), 2);
    let target = server.addr("chat", "tcp").to_string();
    // 20 clients from one address, as fast as they go: over both default limits.
    let out = run(&["bench", "chat", &target, "--clients", "20", "-d", "300ms", "--json"], b"");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json_of("report")["exactly_once_in_order"], true);
    let unused = run(&["serve", "--only", "echo", "--chat-max-per-ip", "off"], b"");
    assert_eq!(unused.code(), Some(2));
    assert!(unused.stderr.contains("--chat-max-per-ip is for the chat service"), "{}", unused.stderr);
}
