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
    // Every command and subcommand, found by walking the help itself.
    let mut pending = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(command) = pending.pop() {
        let args: Vec<&str> = command.iter().map(String::as_str).chain(["--help"]).collect();
        let help = run(&args, b"").ok().to_owned();
        let (_, examples) =
            help.split_once("Examples:\n").unwrap_or_else(|| panic!("{command:?}: no examples"));
        let examples = examples.split("\n\n").next().unwrap_or_default();
        for line in examples.lines() {
            // A line without a command is an example wrapped by clap: too wide.
            assert!(
                line.contains("socketeer") || line.contains("nc "),
                "{command:?}: wrapped example {line:?}"
            );
        }
        if let Some((_, commands)) = help.split_once("Commands:\n") {
            for line in commands.lines().take_while(|l| !l.is_empty()) {
                match line.split_whitespace().next() {
                    Some(name) if line.starts_with("  ") && !line.starts_with("   ") && name != "help" => {
                        pending.push([command.clone(), vec![name.to_owned()]].concat());
                    }
                    _ => {}
                }
            }
        }
        seen += 1;
    }
    assert!(seen > 25, "only {seen} commands found");
}

#[test]
fn usage_errors_exit_2_and_name_the_bad_input() {
    for (args, needle) in [
        (&["echo", "serve", "--port", "70000"][..], "70000"),
        (&["echo", "serve", "--bind", "example.com"], "'example.com' is not an IP address"),
        (&["echo", "send", "host:0", "hi"], "invalid port '0'"),
        (&["echo", "send", "[::1", "hi"], "[::1"),
        (&["echo", "ping", "localhost", "--size", "4"], "4"),
        (&["udp", "serve", "--loss", "150%"], "'150%' is out of range"),
        (&["udp", "serve", "--loss", "often"], "'often' is not a probability"),
        (&["udp", "send", "localhost", "--timeout", "soon"], "'soon' is not a duration"),
        (&["serve", "--only", "gopher"], "gopher"),
        (&["serve", "--except", "echo,daytime,time,udp,transfer,chat"], "no service"),
        (
            &["serve", "--echo-port", "7100", "--chat-port", "7100"],
            "--echo-port and --chat-port are both 7100",
        ),
        (
            &["daytime", "serve", "--port", "7101", "--time-port", "7101"],
            "--port and --time-port are both 7101",
        ),
        (&["chat", "serve", "--rate-limit", "lots"], "'lots' is not a rate of lines"),
        (&["chat", "serve", "--max-per-ip", "0"], "'0' is not a number of connections"),
        (&["chat", "serve", "--queue", "0"], "'0' is 0 bytes; give at least 1"),
        (&["frobnicate"], "frobnicate"),
        // Issue 14: quantities beyond what a clock or a rate can hold are refused, not a panic later.
        (
            &["impair", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--delay", "500000000000years"],
            "'500000000000years' is too large; the largest duration is 365d",
        ),
        (
            &["impair", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--rate", "0.00000000000000000001"],
            "is too small; the smallest rate is 1bit/s",
        ),
        (&["transfer", "recv", "--timeout", "300000000000y"], "'300000000000y' is too large"),
        (&["echo", "ping", "localhost", "--interval", "inf"], "'inf' is not a duration"),
        (&["bench", "echo", "localhost", "--size", "99999999999999999999GB"], "the largest size is 1PiB"),
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
        let expected = match transport {
            "--udp" => "1 of 1 messages got no reply within 300ms".to_owned(),
            _ => format!("no reply from {addr} within 300ms"),
        };
        assert!(out.stderr.contains(&expected), "{}", out.stderr);
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
    // Connect until one attempt gets no answer: from then on the queue is full.
    let mut fillers = Vec::new();
    loop {
        let filler = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        if filler.connect_timeout(&addr.into(), Duration::from_millis(200)).is_err() {
            break;
        }
        fillers.push(filler);
    }
    let target = addr.to_string();
    let out = run(&["echo", "send", &target, "hi", "--connect-timeout", "500ms"], b"");
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains(&format!("no answer from {addr} within 500ms")), "{}", out.stderr);
    // Issue 13: on loopback the host is surely reachable; say what is going on.
    assert!(out.stderr.contains("not accepting connections"), "{}", out.stderr);
    assert!(!out.stderr.contains("reachable"), "{}", out.stderr);
    drop(fillers);
}

#[test]
fn a_closed_stdout_pipe_is_not_an_error() {
    let echo = Daemon::start(&["echo", "serve", "--port", "0"], 2);
    let chat = Daemon::start(&["chat", "serve", "--port", "0"], 1);
    let (echo, chat) = (echo.addr("echo", "tcp").to_string(), chat.addr("chat", "tcp").to_string());
    // Each keeps writing after its first line, as `... | head -1` sees it.
    let commands: [(&[&str], &[u8]); 3] = [
        (&["echo", "ping", &echo, "--count", "0", "--interval", "10ms"], b""),
        (&["scan", "127.0.0.1", "-p", "1-2000", "--all"], b""),
        (&["chat", "join", &chat], b"/who\n/who\n/who\n/help\n"),
    ];
    for (args, input) in commands {
        let mut child = socketeer()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "{args:?} printed nothing");
        drop(stdout);
        // Stdin stays open until the output is gone, so chat join is still talking.
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, input).unwrap();
        drop(stdin);
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: stderr: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn quiet_and_rust_log_control_logging() {
    let server = Daemon::start(&["udp", "serve", "--port", "0", "--loss", "100%", "-q"], 1);
    let target = server.addr("udp", "udp").to_string();
    let lost = run(&["udp", "send", &target, "--count", "1", "--retries", "0", "--timeout", "100ms"], b"");
    assert_eq!(lost.code(), Some(1), "every message was dropped");
    let stopped = server.stop_with("TERM");
    assert!(stopped.status.success());
    assert!(!stopped.stderr.contains("dropped"), "-q still logged drops: {}", stopped.stderr);

    let server = Daemon::start(&["udp", "serve", "--port", "0", "--loss", "100%"], 1);
    let target = server.addr("udp", "udp").to_string();
    run(&["udp", "send", &target, "--count", "1", "--retries", "0", "--timeout", "100ms"], b"");
    assert!(crate::util::eventually(Duration::from_secs(5), || server.stderr().contains("dropped datagram")));
}

#[test]
fn verbose_logging_shows_our_traces_not_our_libraries() {
    // -vv once let mio log every socket it registered with the poller.
    let echo = Daemon::start(&["echo", "serve", "--udp", "--port", "0"], 1);
    let upstream = echo.addr("echo", "udp").to_string();
    let proxy = Daemon::start(&["-vv", "impair", "--listen", "127.0.0.1:0", "--to", &upstream], 3);
    let target = proxy.addr("impair", "udp").to_string();
    let pinged = run(&["-vv", "echo", "ping", &target, "--udp", "-c", "1"], b"");
    pinged.ok();
    let stopped = proxy.stop_with("TERM");
    assert!(stopped.stderr.contains("new client"), "our own debug lines are shown: {}", stopped.stderr);
    for stderr in [&stopped.stderr, &pinged.stderr] {
        assert!(!stderr.contains("event source"), "mio's traces are not: {stderr}");
    }
}

#[test]
fn servers_listen_on_localhost_by_name() {
    let echo = Daemon::start(&["echo", "serve", "--bind", "localhost", "--port", "0"], 2);
    assert!(echo.addr("echo", "tcp").ip().is_loopback());
    let proxy = Daemon::start(
        &["impair", "--listen", "localhost:0", "--to", "localhost:7", "--control", "localhost:0"],
        2,
    );
    assert!(proxy.addr("impair", "udp").ip().is_loopback());
}

/// Issue 14: the nmap and tcpdump habits (`-sS`, `-v` after `sniff`) are
/// rewritten only inside `scan` and `sniff`; the same words elsewhere, such as
/// text to echo, are left alone.
#[test]
fn scan_and_sniff_habits_apply_to_their_own_commands_only() {
    let server = Daemon::start(&["echo", "serve", "--tcp", "--port", "0"], 1);
    let addr = server.addr("echo", "tcp").to_string();
    let sent = run(&["echo", "send", &addr, "sniff", "-v", "--", "-v"], b"");
    assert_eq!(sent.ok(), "sniff\n-v\n", "{sent:#?}");
    let sent = run(&["-v", "echo", "send", &addr, "scan", "--", "-sS"], b"");
    assert_eq!(sent.ok(), "scan\n-sS\n", "{sent:#?}");
}

/// Issue 14: the command line and the proxy's control socket read quantities
/// with one parser: a bare number is seconds in both, and values that would
/// overflow the proxy's clock or divide by a vanishing rate are refused while
/// the proxy keeps working.
#[test]
fn flags_and_the_control_socket_share_one_bounded_parser() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("impair.sock").to_str().unwrap().to_owned();
    let _proxy = Daemon::start(
        &["impair", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--control", &control, "--delay", "5"],
        4,
    );
    let show = run(&["impair", "ctl", &control, "show"], b"");
    assert!(show.ok().contains("delay 5s"), "{show:#?}");
    for (setting, needle) in [
        ("rate=0.00000000000000000001", "too small; the smallest rate is 1bit/s"),
        ("delay=300000000000y", "too large; the largest duration is 365d"),
    ] {
        let refused = run(&["impair", "ctl", &control, "set", setting], b"");
        assert_eq!(refused.code(), Some(2), "{setting}: {refused:#?}");
        assert!(refused.stderr.contains(needle), "{setting}: {refused:#?}");
    }
    let set = run(&["impair", "ctl", &control, "set", "up-delay=1.5"], b"");
    set.ok();
    let show = run(&["impair", "ctl", &control, "show"], b"");
    assert!(show.ok().contains("up: delay 1s 500ms"), "{show:#?}");
}
