//! The echo server and clients, against each other over IPv4 and IPv6 loopback.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use crate::util::{Daemon, binary, run};

fn echo_server(extra: &[&str]) -> Daemon {
    let mut args = vec!["echo", "serve", "--port", "0", "--bind", "127.0.0.1,::1"];
    args.extend_from_slice(extra);
    Daemon::start(&args, 4)
}

fn addr_of(server: &Daemon, transport: &str, v6: bool) -> String {
    server
        .listening
        .iter()
        .find(|l| l.transport == transport && l.addr.is_ipv6() == v6)
        .map(|l| l.addr.to_string())
        .unwrap()
}

#[test]
fn send_echoes_arguments_and_stdin_lines_over_both_transports_and_families() {
    let server = echo_server(&[]);
    let tcp_v4 = addr_of(&server, "tcp", false);
    let tcp_v6 = addr_of(&server, "tcp", true);
    let udp_v4 = addr_of(&server, "udp", false);
    let udp_v6 = addr_of(&server, "udp", true);
    assert_eq!(tcp_v4.rsplit(':').next(), udp_v6.rsplit(':').next(), "one port for all");
    for target in [&tcp_v4, &tcp_v6] {
        assert_eq!(run(&["echo", "send", target, "hello", "wide world"], b"").ok(), "hello\nwide world\n");
        assert_eq!(run(&["echo", "send", target], b"one\ntwo\r\nthree").ok(), "one\ntwo\nthree\n");
    }
    for target in [&udp_v4, &udp_v6] {
        assert_eq!(run(&["echo", "send", target, "--udp", "dgram"], b"").ok(), "dgram\n");
        assert_eq!(run(&["echo", "send", target, "--udp"], b"a\nb\n").ok(), "a\nb\n");
    }
    let json = run(&["echo", "send", &tcp_v4, "hi", "--json"], b"").json_of("reply");
    assert_eq!((json["message"].as_str(), json["reply"].as_str()), (Some("hi"), Some("hi")));
}

/// Runs `socketeer args` with `input` on stdin and returns its stdout bytes.
fn raw_round_trip(args: &[&str], input: Vec<u8>) -> Vec<u8> {
    let mut child = crate::util::socketeer()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let mut output = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut output).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    output
}

#[test]
fn raw_mode_is_binary_safe() {
    let server = echo_server(&[]);
    let stream = binary(3 * 1024 * 1024 + 17);
    let echoed = raw_round_trip(&["echo", "send", &addr_of(&server, "tcp", true), "--raw"], stream.clone());
    assert!(echoed == stream, "got {} bytes back of {}", echoed.len(), stream.len());
    let datagram = binary(60_000);
    let echoed = raw_round_trip(
        &["echo", "send", &addr_of(&server, "udp", false), "--udp", "--raw"],
        datagram.clone(),
    );
    assert!(echoed == datagram, "UDP raw reply differs");
}

#[test]
fn the_largest_datagram_is_echoed_and_a_larger_message_refused() {
    let server = echo_server(&[]);
    let addr: SocketAddr = addr_of(&server, "udp", false).parse().unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let largest = binary(65_507);
    socket.send_to(&largest, addr).unwrap();
    let mut buf = vec![0; 70_000];
    let (len, from) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(from, addr);
    assert!(buf[..len] == largest[..], "echo of {len} bytes differs");

    let too_big = "x".repeat(65_508);
    let out = run(&["echo", "send", &addr.to_string(), "--udp", &too_big], b"");
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("a message of 65508 bytes does not fit in one UDP datagram (at most 65507 bytes)")
    );
}

#[test]
fn ping_reports_every_probe_and_a_summary() {
    let server = echo_server(&[]);
    for (target, udp) in [(addr_of(&server, "tcp", false), false), (addr_of(&server, "udp", true), true)] {
        let mut args = vec!["echo", "ping", &target, "-c", "4", "-i", "20ms", "-s", "100", "--json"];
        if udp {
            args.push("--udp");
        }
        let out = run(&args, b"");
        let lines = out.json_lines();
        let probes: Vec<_> = lines.iter().filter(|l| l["type"] == "probe").collect();
        assert_eq!(probes.len(), 4);
        for (i, probe) in probes.iter().enumerate() {
            assert_eq!(probe["seq"], i as u64 + 1);
            assert_eq!(probe["bytes"], 100);
            assert!(probe["rtt_ms"].as_f64().unwrap() > 0.0);
        }
        let summary = out.json_of("summary");
        assert_eq!((summary["sent"].as_u64(), summary["received"].as_u64()), (Some(4), Some(4)));
        assert_eq!(summary["loss_percent"], 0.0);
        let rtt = &summary["rtt_ms"];
        assert!(rtt["min"].as_f64() <= rtt["p99"].as_f64() && rtt["p99"].as_f64() <= rtt["max"].as_f64());
    }
    let human = run(&["echo", "ping", &addr_of(&server, "tcp", true), "-c", "2", "-i", "10ms"], b"");
    let text = human.ok();
    assert!(text.contains("2 sent, 2 received, 0.0% loss"), "{text}");
    assert!(text.contains("rtt min/avg/max/p99 = "), "{text}");
}

/// `echo ping --udp` through the real `socketeer impair` (seeded) in front
/// of an echo server: the summary's JSON and the exit code.
fn ping_through_impair(impairment: &[&str], timeout: &str) -> crate::util::Finished {
    let server = Daemon::start(&["echo", "serve", "--udp", "--port", "0"], 1);
    let upstream = server.addr("echo", "udp").to_string();
    let mut args = vec!["impair", "--listen", "127.0.0.1:0", "--to", &upstream, "--seed", "3"];
    args.extend_from_slice(impairment);
    let proxy = Daemon::start(&args, 3);
    let target = proxy.addr("impair", "udp").to_string();
    run(&["echo", "ping", &target, "--udp", "-c", "20", "-i", "5ms", "--timeout", timeout, "--json"], b"")
}

#[test]
fn ping_counts_corrupted_replies_and_goes_on() {
    // A corrupted probe or echo leaves its probe unanswered: each costs the timeout.
    let out = ping_through_impair(&["--corrupt", "10%"], "500ms");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let summary = out.json_of("summary");
    assert_eq!(summary["sent"], 20, "{summary}");
    let (received, mismatched) =
        (summary["received"].as_u64().unwrap(), summary["mismatched"].as_u64().unwrap());
    assert!(mismatched > 0 && received > 0 && received < 20, "{summary}");
}

#[test]
fn ping_counts_duplicated_replies_as_duplicates_not_late() {
    let out = ping_through_impair(&["--duplicate", "30%"], "5s");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let summary = out.json_of("summary");
    assert_eq!((summary["sent"].as_u64(), summary["received"].as_u64()), (Some(20), Some(20)), "{summary}");
    assert!(summary["duplicates"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["late"], 0, "{summary}");
    assert_eq!(summary["mismatched"], 0, "{summary}");
}

#[test]
fn ping_over_udp_fails_when_no_reply_matches_a_probe() {
    // A daytime server answers every datagram, never with an echo.
    let server = Daemon::start(&["daytime", "serve", "--port", "0", "--time-port", "0", "--udp"], 2);
    let target = server.addr("daytime", "udp").to_string();
    let out = run(&["echo", "ping", &target, "--udp", "-c", "3", "-i", "10ms", "--timeout", "100ms"], b"");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stdout.contains("3 sent, 0 received, 100.0% loss, 3 mismatched"), "{}", out.stdout);
    assert_eq!(
        out.stderr,
        format!("error: no reply from {target} matched a probe (3 mismatched); is it an echo server?\n")
    );
}

#[test]
fn ping_without_echoes_reports_total_loss_and_fails() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let out = run(&["echo", "ping", &target, "--udp", "-c", "2", "-i", "10ms", "--timeout", "100ms"], b"");
    assert_eq!(out.code(), Some(1));
    assert!(out.stdout.contains("2 sent, 0 received, 100.0% loss"), "{}", out.stdout);
    assert!(out.stderr.contains("no echo from"));
}

#[test]
fn a_client_that_vanishes_mid_write_harms_no_one() {
    let server = echo_server(&[]);
    let addr: SocketAddr = addr_of(&server, "tcp", false).parse().unwrap();
    for _ in 0..5 {
        let mut rude = TcpStream::connect(addr).unwrap();
        // Unread data on close makes the kernel send RST mid-exchange.
        let _ = rude.write_all(&binary(1 << 20));
        drop(rude);
    }
    assert_eq!(run(&["echo", "send", &addr.to_string(), "still here"], b"").ok(), "still here\n");
}

#[test]
fn a_client_that_never_reads_cannot_grow_the_server() {
    let server = echo_server(&[]);
    let addr: SocketAddr = addr_of(&server, "tcp", false).parse().unwrap();
    let mut hog = TcpStream::connect(addr).unwrap();
    hog.set_nonblocking(true).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut written = 0usize;
    let mut stalled_for = 0;
    // Write until the kernel refuses for a whole second: the server stopped reading.
    while stalled_for < 50 && written < 512 << 20 {
        match hog.write(&chunk) {
            Ok(n) => {
                written += n;
                stalled_for = 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                stalled_for += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
    // What got in is bounded by socket buffers plus one server buffer, far
    // below what a server that buffers without bound would have taken.
    assert!(written < 64 << 20, "server took {written} bytes from a client that never reads");
    assert_eq!(run(&["echo", "send", &addr.to_string(), "others fine"], b"").ok(), "others fine\n");
}

#[test]
fn silent_connections_are_closed_after_the_idle_timeout() {
    let server = echo_server(&["--idle-timeout", "300ms"]);
    let mut silent = TcpStream::connect(addr_of(&server, "tcp", false)).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).unwrap(), 0, "expected the server to close");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn connections_over_the_cap_are_closed_at_once() {
    let server = echo_server(&["--max-connections", "2"]);
    let addr = addr_of(&server, "tcp", false);
    let mut held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    for conn in &mut held {
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }
    let mut extra = TcpStream::connect(&addr).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(extra.read(&mut buf).unwrap_or(0), 0, "the third connection should be closed");
    // The log line may trail the close by a moment.
    let logged =
        crate::util::eventually(Duration::from_secs(5), || server.stderr().contains("refusing connection"));
    assert!(logged, "{}", server.stderr());
    drop(held.pop());
    assert!(crate::util::eventually(Duration::from_secs(5), || {
        run(&["echo", "send", &addr, "freed", "--timeout", "500ms"], b"").stdout == "freed\n"
    }));
}

/// Issue 13: `echo send` to a server that does not echo (the daytime port)
/// printed the first bytes of its answer and exited 0. It must show what
/// came back, say it is not an echo, and exit 1.
#[test]
fn send_to_a_server_that_does_not_echo_says_so() {
    let daytime = Daemon::start(&["daytime", "serve", "--port", "0", "--time-port", "0", "--tcp"], 2);
    let target = daytime.addr("daytime", "tcp").to_string();
    let out = run(&["echo", "send", &target, "hello"], b"");
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert_eq!(out.stdout, "");
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(out.stderr.contains("answered \"hello\" with \""), "{out:#?}");
    assert!(out.stderr.contains(&year), "the whole answer is shown: {out:#?}");
    assert!(out.stderr.contains("it is not an echo server"), "{out:#?}");
}
