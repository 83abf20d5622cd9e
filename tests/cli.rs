//! The command line itself: help, version, usage errors, exit codes.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use crate::util::{Daemon, closed_port, run, socketeer};

#[test]
fn version_and_help_with_examples() {
    let version = run(&["--version"], b"");
    assert_eq!(version.ok().trim(), format!("socketeer {}", env!("CARGO_PKG_VERSION")));
    for command in [
        &["--help"][..],
        &["serve", "--help"],
        &["echo", "serve", "--help"],
        &["echo", "send", "--help"],
        &["echo", "ping", "--help"],
        &["daytime", "serve", "--help"],
        &["daytime", "get", "--help"],
        &["udp", "serve", "--help"],
        &["udp", "send", "--help"],
        &["bench", "echo", "--help"],
        &["lab", "threads", "--help"],
        &["lab", "processes", "--help"],
        &["lab", "cpu", "--help"],
        &["lab", "race", "--help"],
        &["lab", "producer-consumer", "--help"],
        &["lab", "deadlock", "--help"],
        &["lab", "servers", "--help"],
        &["scan", "--help"],
        &["sniff", "--help"],
    ] {
        let help = run(command, b"");
        assert!(help.ok().contains("Examples:\n  socketeer "), "{command:?} has no examples");
    }
}

#[test]
fn usage_errors_exit_2_and_name_the_bad_input() {
    for (args, needle) in [
        (&["echo", "serve", "--port", "70000"][..], "70000"),
        (&["echo", "serve", "--bind", "localhost"], "localhost"),
        (&["echo", "send", "host:0", "hi"], "invalid port '0'"),
        (&["echo", "send", "[::1", "hi"], "[::1"),
        (&["echo", "ping", "localhost", "--size", "4"], "4"),
        (&["udp", "serve", "--loss", "150%"], "'150%' is out of range"),
        (&["udp", "serve", "--loss", "often"], "'often' is not a probability"),
        (&["udp", "send", "localhost", "--timeout", "soon"], "'soon' is not a duration"),
        (&["serve", "--only", "gopher"], "gopher"),
        (&["serve", "--except", "echo,daytime,time,udp,transfer"], "no service"),
        (&["frobnicate"], "frobnicate"),
    ] {
        let out = run(args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {out:#?}");
        assert!(out.stderr.contains(needle), "{args:?}: stderr lacks {needle:?}: {}", out.stderr);
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(&["echo", "serve", "--port", &port], b"");
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr.trim(),
        format!("error: echo: tcp port {port} on 127.0.0.1 is already in use; pick another with --port")
    );
    let out = run(&["serve", "--echo-port", &port], b"");
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("already in use; pick another with --echo-port"), "{}", out.stderr);
}

#[test]
fn an_address_not_on_this_machine_is_a_clear_error() {
    // 192.0.2.0/24 is reserved for documentation; binding it sends nothing.
    let out = run(&["echo", "serve", "--bind", "192.0.2.77", "--port", "0"], b"");
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("192.0.2.77 is not an address of this machine; pick another with --bind"));
}

#[test]
fn a_refused_connection_says_so() {
    let port = closed_port().to_string();
    let target = format!("127.0.0.1:{port}");
    for extra in [&[][..], &["--udp"]] {
        let mut args = vec!["echo", "send", &target, "hi"];
        args.extend_from_slice(extra);
        let out = run(&args, b"");
        assert_eq!(out.code(), Some(1), "{args:?}");
        assert!(out.stderr.contains("connection refused by 127.0.0.1"), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("is the server running"));
    }
}

#[test]
fn a_silent_server_times_out_instead_of_hanging() {
    let silent_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    for (addr, transport) in
        [(silent_udp.local_addr().unwrap(), "--udp"), (silent_tcp.local_addr().unwrap(), "--tcp-is-default")]
    {
        let target = addr.to_string();
        let mut args = vec!["echo", "send", &target, "hi", "--timeout", "300ms"];
        if transport == "--udp" {
            args.push("--udp");
        }
        let out = run(&args, b"");
        assert_eq!(out.code(), Some(1), "{out:#?}");
        assert!(out.stderr.contains(&format!("no reply from {addr} within 300ms")), "{}", out.stderr);
        assert!(out.elapsed < Duration::from_secs(10));
    }
}

#[test]
fn a_connect_that_gets_no_answer_times_out() {
    use socket2::{Domain, Socket, Type};
    // A listener that never accepts and has a backlog of one: once the queue
    // is full the kernel drops new SYNs, so connecting hangs until our timeout.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let fillers: Vec<_> = (0..4)
        .map(|_| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            let _ = s.connect(&addr.into());
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let target = addr.to_string();
    let out = run(&["echo", "send", &target, "hi", "--connect-timeout", "500ms"], b"");
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains(&format!("no answer from {addr} within 500ms")), "{}", out.stderr);
    drop(fillers);
}

#[test]
fn a_closed_stdout_pipe_is_not_an_error() {
    let server = Daemon::start(&["echo", "serve", "--port", "0"], 2);
    let target = server.addr("echo", "tcp").to_string();
    let mut child = socketeer()
        .args(["echo", "ping", &target, "--count", "0", "--interval", "10ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("PING "));
    drop(stdout);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn quiet_and_rust_log_control_logging() {
    let server = Daemon::start(&["udp", "serve", "--port", "0", "--loss", "100%", "-q"], 1);
    let target = server.addr("udp", "udp").to_string();
    run(&["udp", "send", &target, "--count", "1", "--retries", "0", "--timeout", "100ms"], b"").ok();
    let stopped = server.stop_with("TERM");
    assert!(stopped.status.success());
    assert!(!stopped.stderr.contains("dropped"), "-q still logged drops: {}", stopped.stderr);

    let server = Daemon::start(&["udp", "serve", "--port", "0", "--loss", "100%"], 1);
    let target = server.addr("udp", "udp").to_string();
    run(&["udp", "send", &target, "--count", "1", "--retries", "0", "--timeout", "100ms"], b"").ok();
    assert!(crate::util::eventually(Duration::from_secs(5), || server.stderr().contains("dropped datagram")));
}
