//! Issue 14: text from the other side is shown, never obeyed by the
//! terminal. A hostile server answers every client with escape sequences
//! (retitle the window, clear the screen, ring the bell, a C1 CSI); what the
//! clients print must hold none of them, only their visible forms. `--raw`
//! stays byte-exact (tests/echo.rs, `raw_mode_is_binary_safe`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::thread;
use std::time::Duration;

use socketeer::transfer::packet::{ErrorCode, Packet, Repr};

use crate::util::{Daemon, Finished, run};

/// What a hostile peer sends: a window title, a screen clear, a bell, a C1 CSI.
const HOSTILE: &str = "\x1b]0;pwned\x07Monday\x1b[2J\u{9b}31m";
/// How [`HOSTILE`] must look once shown.
const SHOWN: &str = "^[]0;pwned^GMonday^[[2J<U+009B>31m";

/// Fails when anything the command printed could drive a terminal.
fn assert_inert(out: &Finished) {
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let bad = text.chars().find(|&c| c.is_control() && c != '\n');
        assert_eq!(bad, None, "{name} holds a control character: {out:#?}");
    }
}

/// A TCP server that answers each connection with `reply` once it has read
/// `wait_for` bytes, then closes.
fn hostile_tcp(reply: &'static [u8], wait_for: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut got = vec![0; wait_for];
            if stream.read_exact(&mut got).is_ok() {
                let _ = stream.write_all(reply);
            }
        }
    });
    addr
}

#[test]
fn daytime_answers_are_shown_not_obeyed() {
    let tcp = hostile_tcp(b"\x1b]0;pwned\x07Monday\x1b[2J\xc2\x9b31m\r\n", 0);
    let out = run(&["daytime", "get", &tcp.to_string()], b"");
    assert_inert(&out);
    assert!(out.stdout.contains(SHOWN), "{out:#?}");

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0; 64];
        while let Ok((_, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(HOSTILE.as_bytes(), from);
        }
    });
    let out = run(&["daytime", "get", &addr.to_string(), "--udp"], b"");
    assert_inert(&out);
    assert!(out.stdout.contains(SHOWN), "{out:#?}");
}

#[test]
fn echo_replies_are_shown_not_obeyed() {
    // A real echo server returns the escape sequence it was sent: shown.
    let echo = Daemon::start(&["echo", "serve", "--port", "0", "--tcp"], 1);
    let target = echo.addr("echo", "tcp").to_string();
    let out = run(&["echo", "send", &target, "\x1b[31mred"], b"");
    assert_inert(&out);
    assert_eq!(out.ok(), "^[[31mred\n");

    // A server that answers with something else is not an echo server, and
    // what it said is shown in the error.
    let hostile = hostile_tcp(b"\x1b]0;pwned\x07Monday\x1b[2J\xc2\x9b31m\r\n", 3);
    let out = run(&["echo", "send", &hostile.to_string(), "hi"], b"");
    assert_inert(&out);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains(SHOWN), "{out:#?}");
}

#[test]
fn impair_ctl_replies_are_shown_not_obeyed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut line).is_ok() {
                let _ = (&stream).write_all(format!("ok {HOSTILE}\n").as_bytes());
            }
        }
    });
    let out = run(&["impair", "ctl", &addr.to_string(), "show"], b"");
    assert_inert(&out);
    assert!(out.ok().contains(SHOWN), "{out:#?}");
}

#[test]
fn a_receivers_error_message_is_shown_not_obeyed() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let addr = receiver.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0; 2048];
        let Ok((n, from)) = receiver.recv_from(&mut buf) else { return };
        let session = Packet::new_checked(&buf[..n]).unwrap().session();
        let mut reply = Vec::new();
        Repr::Error { code: ErrorCode::Refused, message: HOSTILE }.emit(session, &mut reply);
        receiver.send_to(&reply, from).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("note.txt");
    std::fs::write(&file, b"hello").unwrap();
    let out = run(&["transfer", "send", file.to_str().unwrap(), &addr.to_string()], b"");
    assert_inert(&out);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains(SHOWN), "{out:#?}");
}
