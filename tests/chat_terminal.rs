//! `chat join` at a real terminal: a pseudo-terminal stands in for the user's,
//! so raw mode, the line editor's keys and the restored terminal are what a
//! person at a keyboard gets.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use nix::pty::openpty;
use nix::sys::termios::{LocalFlags, tcgetattr};

use crate::util::{Daemon, eventually, socketeer};

const WAIT: Duration = Duration::from_secs(10);

/// Reads lines from a raw TCP chat client until one equals `wanted`.
fn expect(reader: &mut BufReader<TcpStream>, wanted: &str) {
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "closed before {wanted:?}; got {seen:?}");
        if line.trim_end() == wanted {
            return;
        }
        seen.push(line);
    }
}

#[test]
fn chat_join_at_a_terminal_edits_lines_recalls_history_and_restores_the_terminal() {
    let server = Daemon::start(&["chat", "serve", "--port", "0"], 1);
    let addr = server.addr("chat", "tcp");
    let bob = TcpStream::connect(addr).unwrap();
    bob.set_read_timeout(Some(WAIT)).unwrap();
    let mut bob = BufReader::new(bob);

    let pty = openpty(None, None).unwrap();
    let before = tcgetattr(&pty.slave).unwrap();
    let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut child = socketeer()
        .args(["chat", "join", &addr.to_string(), "--nick", "alice"])
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave))
        .spawn()
        .unwrap();
    // What the client draws, gathered so the terminal never fills up.
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut master = File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    let drawn = screen.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            drawn.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let shown = |text: &str| String::from_utf8_lossy(&screen.lock().unwrap()).contains(text);
    assert!(eventually(WAIT, || shown("is now known as alice")), "alice never got her name");

    // "helo", Left, "l", Enter: the letter goes in where the cursor is.
    master.write_all(b"helo\x1b[Dl\r").unwrap();
    expect(&mut bob, "<alice> hello");
    // Ctrl-A, a word, Ctrl-E, Ctrl-W deletes the last word, Enter.
    master.write_all(b"world\x01, \x01big \x05 gone\x17\r").unwrap();
    expect(&mut bob, "<alice> big , world");
    // Up twice recalls "hello"; End and one more letter; Enter.
    master.write_all(b"\x1b[A\x1b[A\x1b[F!\r").unwrap();
    expect(&mut bob, "<alice> hello!");
    // Ctrl-D on an empty line leaves.
    master.write_all(b"\x04").unwrap();
    expect(&mut bob, "*** alice left lobby");
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "chat join: {status}; screen: {:?}",
        String::from_utf8_lossy(&screen.lock().unwrap())
    );

    let after = tcgetattr(&pty.slave).unwrap();
    for flag in [LocalFlags::ICANON, LocalFlags::ECHO, LocalFlags::ISIG] {
        assert_eq!(
            after.local_flags.contains(flag),
            before.local_flags.contains(flag),
            "{flag:?} not restored"
        );
    }
}

#[test]
fn chat_join_at_a_terminal_reconnects_under_its_nick_and_keeps_the_half_typed_line() {
    let port = crate::util::closed_port().to_string();
    let server = Daemon::start(&["chat", "serve", "--port", &port], 1);
    let addr = server.addr("chat", "tcp");
    let pty = openpty(None, None).unwrap();
    let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut child = socketeer()
        .args(["chat", "join", &addr.to_string(), "--nick", "alice"])
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave))
        .spawn()
        .unwrap();
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut master = File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    let drawn = screen.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            drawn.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let shown = |text: &str| String::from_utf8_lossy(&screen.lock().unwrap()).contains(text);
    assert!(eventually(WAIT, || shown("is now known as alice")), "alice never got her name");
    master.write_all(b"half").unwrap();
    // The server dies and another takes its place.
    drop(server);
    assert!(eventually(WAIT, || shown("reconnecting")), "no word of the lost connection");
    let again = Daemon::start(&["chat", "serve", "--port", &port], 1);
    let bob = TcpStream::connect(again.addr("chat", "tcp")).unwrap();
    bob.set_read_timeout(Some(WAIT)).unwrap();
    let mut bob = BufReader::new(bob);
    bob.get_mut().write_all(b"/nick bob\n").unwrap();
    // Back under its name, whenever its backoff lets it.
    // (Polled at 5 /who a second: under the server's flood limit.)
    let back = (0..50).any(|_| {
        thread::sleep(Duration::from_millis(200));
        bob.get_mut().write_all(b"/who\n").unwrap();
        loop {
            let mut line = String::new();
            assert!(bob.read_line(&mut line).unwrap() > 0);
            if line.starts_with("*** in lobby") {
                return line.trim_end().ends_with(": alice bob");
            }
        }
    });
    assert!(back, "alice did not come back");
    master.write_all(b" done\r").unwrap();
    expect(&mut bob, "<alice> half done");
    master.write_all(b"\x04").unwrap();
    assert!(child.wait().unwrap().success());
}
