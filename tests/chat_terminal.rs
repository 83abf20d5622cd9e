//! `chat join` at a real terminal: a pseudo-terminal stands in for the user's,
//! so raw mode, the line editor's keys and the restored terminal are what a
//! person at a keyboard gets.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use nix::pty::openpty;
use nix::sys::termios::{LocalFlags, Termios, tcgetattr};

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

/// `chat join --nick alice` on a pseudo-terminal: what it draws is
/// gathered (so the terminal never fills up), and keys are typed at it.
struct AtTerminal {
    child: Child,
    keys: File,
    screen: Arc<Mutex<Vec<u8>>>,
    /// The terminal's own end, to read its modes.
    slave: OwnedFd,
    /// Its modes before `chat join` started.
    before: Termios,
}

impl AtTerminal {
    fn join(addr: SocketAddr) -> AtTerminal {
        let pty = openpty(None, None).unwrap();
        let before = tcgetattr(&pty.slave).unwrap();
        let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        let child = socketeer()
            .args(["chat", "join", &addr.to_string(), "--nick", "alice"])
            .stdin(slave(&pty.slave))
            .stdout(slave(&pty.slave))
            .stderr(slave(&pty.slave))
            .spawn()
            .unwrap();
        let screen = Arc::new(Mutex::new(Vec::new()));
        let keys = File::from(pty.master);
        let mut reader = keys.try_clone().unwrap();
        let drawn = screen.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                drawn.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let joined = AtTerminal { child, keys, screen, slave: pty.slave, before };
        assert!(eventually(WAIT, || joined.shows("is now known as alice")), "alice never got her name");
        joined
    }

    fn shows(&self, text: &str) -> bool {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).contains(text)
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.keys.write_all(keys).unwrap();
    }

    /// Waits for it to exit; whether it succeeded, with the screen if not.
    fn exited_ok(&mut self) {
        let status = self.child.wait().unwrap();
        let screen = String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned();
        assert!(status.success(), "chat join: {status}; screen: {screen:?}");
    }
}

#[test]
fn chat_join_at_a_terminal_edits_lines_recalls_history_and_restores_the_terminal() {
    let server = Daemon::start(&["chat", "serve", "--port", "0"], 1);
    let addr = server.addr("chat", "tcp");
    let bob = TcpStream::connect(addr).unwrap();
    bob.set_read_timeout(Some(WAIT)).unwrap();
    let mut bob = BufReader::new(bob);

    let mut alice = AtTerminal::join(addr);

    // "helo", Left, "l", Enter: the letter goes in where the cursor is.
    alice.type_keys(b"helo\x1b[Dl\r");
    expect(&mut bob, "<alice> hello");
    // Ctrl-A, a word, Ctrl-E, Ctrl-W deletes the last word, Enter.
    alice.type_keys(b"world\x01, \x01big \x05 gone\x17\r");
    expect(&mut bob, "<alice> big , world");
    // Up twice recalls "hello"; End and one more letter; Enter.
    alice.type_keys(b"\x1b[A\x1b[A\x1b[F!\r");
    expect(&mut bob, "<alice> hello!");
    // Ctrl-D on an empty line leaves.
    alice.type_keys(b"\x04");
    expect(&mut bob, "*** alice left lobby");
    alice.exited_ok();

    let after = tcgetattr(&alice.slave).unwrap();
    for flag in [LocalFlags::ICANON, LocalFlags::ECHO, LocalFlags::ISIG] {
        assert_eq!(
            after.local_flags.contains(flag),
            alice.before.local_flags.contains(flag),
            "{flag:?} not restored"
        );
    }
}

#[test]
fn chat_join_at_a_terminal_reconnects_under_its_nick_and_keeps_the_half_typed_line() {
    let port = crate::util::closed_port().to_string();
    let server = Daemon::start(&["chat", "serve", "--port", &port], 1);
    let addr = server.addr("chat", "tcp");
    let mut alice = AtTerminal::join(addr);
    alice.type_keys(b"half");
    // The server dies and another takes its place.
    drop(server);
    assert!(eventually(WAIT, || alice.shows("reconnecting")), "no word of the lost connection");
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
    alice.type_keys(b" done\r");
    expect(&mut bob, "<alice> half done");
    alice.type_keys(b"\x04");
    alice.exited_ok();
}
