//! Issue 15.6 and issue 14: who may control a running proxy, and a relay
//! that dies is said at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{echo_server, proxy};
use crate::util::{Daemon, require, run, run_command, socketeer};

/// The token in a TCP control socket's status line.
fn token(proxy: &Daemon) -> String {
    let line = proxy.status_lines().iter().find(|l| l.starts_with("control tcp")).unwrap();
    line.split("(token ").nth(1).unwrap().split(':').next().unwrap().to_owned()
}

/// Issue 15.6: another uid sent `set loss=100%` to the TCP control socket and got `ok`.
#[test]
fn a_stranger_cannot_control_the_proxy() {
    require("setpriv", "util-linux");
    let echo = echo_server();
    let proxy = proxy(echo.addr("echo", "udp"), &[]);
    // The socket's directory lets anyone in; the socket itself is the owner's alone.
    let dir = std::path::Path::new(&proxy.control).parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mode = std::fs::metadata(&proxy.control).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut stranger = Command::new("setpriv");
    stranger
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(socketeer().get_program())
        .args(["impair", "ctl", &proxy.control, "set", "loss=100%"]);
    let out = run_command(&mut stranger, b"");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("ermission denied"), "{}", out.stderr);
    assert_eq!(super::ctl(&proxy, &["show"]), "up: no impairment; down: no impairment");

    // Over TCP anyone can connect: without the token printed at start, nothing is obeyed.
    let tcp = Daemon::start(
        &[
            "impair",
            "--listen",
            "127.0.0.1:0",
            "--to",
            &echo.addr("echo", "udp").to_string(),
            "--control",
            "127.0.0.1:0",
        ],
        4,
    );
    let addr = tcp.addr("control", "tcp").to_string();
    let token = token(&tcp);
    for guess in [None, Some("0123456789abcdef0123456789abcdef")] {
        let mut args = vec!["impair", "ctl", &addr, "set", "loss=100%"];
        args.extend(guess.iter().flat_map(|t| ["--token", t]));
        let out = run(&args, b"");
        assert_ne!(out.code(), Some(0), "{guess:?}: {out:?}");
        assert!(out.stderr.contains("authenticate first"), "{}", out.stderr);
    }
    let owner = run(&["impair", "ctl", &addr, "--token", &token, "show"], b"");
    assert_eq!(owner.ok().trim(), "up: no impairment; down: no impairment");
    // `nc` users type the same: auth first, then commands.
    let mut raw = std::net::TcpStream::connect(&addr).unwrap();
    write!(raw, "auth {token}\nshow\n").unwrap();
    let mut reader = BufReader::new(raw);
    let mut lines = vec![String::new(), String::new()];
    for line in &mut lines {
        reader.read_line(line).unwrap();
    }
    assert_eq!(lines, ["ok\n", "up: no impairment; down: no impairment\n"]);
}

/// Issue 15.6: sixteen idle connections locked the owner out.
#[test]
fn idle_connections_never_lock_the_owner_out() {
    let echo = echo_server();
    let to = echo.addr("echo", "udp").to_string();
    let tcp =
        Daemon::start(&["impair", "--listen", "127.0.0.1:0", "--to", &to, "--control", "127.0.0.1:0"], 4);
    let addr = tcp.addr("control", "tcp");
    let idle: Vec<std::net::TcpStream> =
        (0..20).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    let owner = run(&["impair", "ctl", &addr.to_string(), "--token", &token(&tcp), "show"], b"");
    assert_eq!(owner.ok().trim(), "up: no impairment; down: no impairment");
    drop(idle);
    // On a Unix socket too, where every connection is the owner's: the one idle longest gives way.
    let proxy = proxy(echo.addr("echo", "udp"), &[]);
    let idle: Vec<std::os::unix::net::UnixStream> =
        (0..20).map(|_| std::os::unix::net::UnixStream::connect(&proxy.control).unwrap()).collect();
    assert_eq!(super::ctl(&proxy, &["show"]), "up: no impairment; down: no impairment");
    drop(idle);
}

/// Issue 14: a relay that died was learned of only at Ctrl-C; the control
/// socket answered "the proxy is shutting down".
#[test]
fn a_relay_that_dies_ends_the_proxy_at_once_saying_why() {
    let echo = echo_server();
    let mut child = socketeer()
        .env(socketeer::impair::proxy::FAULT_ENV, "panic")
        .args(["impair", "--listen", "127.0.0.1:0", "--to", &echo.addr("echo", "udp").to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its three status lines; stdout stays open (a closed pipe is a quiet exit 0).
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut status = vec![String::new(); 3];
    for line in &mut status {
        stdout.read_line(line).unwrap();
    }
    let addr: std::net::SocketAddr = status[0].split_whitespace().nth(2).unwrap().parse().unwrap();
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"the first datagram", addr).unwrap();
    let started = Instant::now();
    let code = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit.code();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "still running with a dead relay");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("the relay stopped: it panicked"), "{stderr}");
}
