//! `chat serve`: the real binary over loopback, driven by raw TCP clients and
//! by `nc` (hostile clients and limits: `chat_limits`; `chat join` and
//! `bench chat`: `chat_join`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::util::{Daemon, require, run_command};

/// How long any one expected line may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A chat server on a free port, with `extra` flags.
pub fn server(extra: &[&str]) -> Daemon {
    let mut args = vec!["chat", "serve", "--port", "0"];
    args.extend_from_slice(extra);
    // A status line per port: the chat's, and the web page's with --http.
    Daemon::start(&args, 1 + usize::from(extra.contains(&"--http")))
}

/// A chat client on a raw TCP socket, reading line by line.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub nick: String,
    /// The nickname the server gave it.
    pub guest: String,
    /// What came before the welcome: the room's history.
    pub history: Vec<String>,
}

impl Client {
    /// Connects and reads the welcome, which names the client.
    pub fn connect(server: &Daemon) -> Client {
        Client::from_stream(TcpStream::connect(server.addr("chat", "tcp")).unwrap())
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut client =
            Client { reader, writer: stream, nick: String::new(), guest: String::new(), history: Vec::new() };
        let mut welcome = client.line();
        while welcome.starts_with('[') {
            let next = client.line();
            client.history.push(std::mem::replace(&mut welcome, next));
        }
        let nick = welcome.strip_prefix("*** welcome, ").and_then(|w| w.split(':').next());
        client.nick = nick.unwrap_or_else(|| panic!("not a welcome: {welcome:?}")).to_owned();
        client.guest = client.nick.clone();
        client
    }

    /// Connects and takes the nickname `nick`.
    pub fn named(server: &Daemon, nick: &str) -> Client {
        let mut client = Client::connect(server);
        client.send(&format!("/nick {nick}"));
        client.expect(&format!("*** {} is now known as {nick}", client.nick));
        client.nick = nick.to_owned();
        client
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Another handle on its connection, to write to from another thread.
    pub fn raw(&self) -> TcpStream {
        self.writer.try_clone().unwrap()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Reads one raw line into `line`: its length (0 at the end), or `None`
    /// when the connection failed (it was reset).
    pub fn reader_line(&mut self, line: &mut String) -> Option<usize> {
        self.reader.read_line(line).ok()
    }

    /// The next line, without its newline.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("{}: the server closed the connection", self.nick),
            Ok(_) => {
                line.strip_suffix('\n').unwrap_or_else(|| panic!("unterminated line {line:?}")).to_owned()
            }
            Err(e) => panic!("{}: no line within {WAIT:?}: {e}", self.nick),
        }
    }

    /// Reads until a line equal to `wanted`; returns the lines before it.
    pub fn expect(&mut self, wanted: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let line = self.line();
            if line == wanted {
                return before;
            }
            before.push(line);
        }
    }

    /// Reads until the server closes the connection; returns what came.
    pub fn until_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return lines,
                Ok(_) => lines.push(line.trim_end_matches('\n').to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return lines,
                Err(e) => panic!("{}: still open after {WAIT:?} ({e}); got {lines:?}", self.nick),
            }
        }
    }
}

#[test]
fn a_message_reaches_everyone_else_and_not_its_sender() {
    let server = server(&[]);
    let mut alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    let mut carol = Client::named(&server, "carol");
    alice.send("hello, everyone");
    assert_eq!(bob.expect("<alice> hello, everyone").iter().filter(|l| l.starts_with('<')).count(), 0);
    carol.expect("<alice> hello, everyone");
    alice.send("/who");
    let before_who = alice.expect("*** in lobby (3): alice bob carol");
    assert!(
        !before_who.iter().any(|l| l.contains("hello, everyone")),
        "echoed to its sender: {before_who:?}"
    );
    alice.send("/me waves");
    bob.expect("* alice waves");
    alice.send("//slash at the start");
    carol.expect("<alice> /slash at the start");
}

#[test]
fn rooms_keep_their_messages_and_private_messages_cross_them() {
    let server = server(&[]);
    let mut alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    let mut carol = Client::named(&server, "carol");
    bob.send("/join #rust");
    bob.expect("*** you are in rust with no one else");
    alice.expect("*** bob left lobby");
    carol.send("/join RUST");
    carol.expect("*** you are in rust with 1 other");
    bob.expect("*** carol joined rust");
    alice.send("lobby only");
    carol.send("rust only");
    let seen_by_bob = bob.expect("<carol> rust only");
    assert!(!seen_by_bob.iter().any(|l| l.contains("lobby only")), "{seen_by_bob:?}");
    alice.send("/msg BOB psst, it is alice");
    bob.expect("*alice* psst, it is alice");
    alice.expect("-> *bob* psst, it is alice");
    alice.send("/msg nobody hello?");
    alice.expect("! no one is called nobody; /who lists who is in your room");
    bob.send("/join rust");
    bob.expect("! you are already in rust");
    bob.send("/join no spaces");
    bob.expect("! usage: /join ROOM");
}

#[test]
fn nicknames_are_unique_ignoring_case_and_freed_when_their_owner_goes() {
    let server = server(&[]);
    let mut alice = Client::named(&server, "Alice");
    let mut other = Client::connect(&server);
    other.send("/nick aLiCe");
    other.expect("! the nickname aLiCe is taken; pick another");
    other.send("/nick al ice");
    other.expect("! usage: /nick NAME");
    other.send("/nick <alice>");
    assert!(other.line().starts_with("! nicknames may not contain '<'"));
    alice.send("/quit gone fishing");
    alice.expect("*** bye");
    assert_eq!(alice.until_closed(), Vec::<String>::new());
    other.expect("*** Alice left lobby (gone fishing)");
    other.send("/nick alice");
    other.expect(&format!("*** {} is now known as alice", other.nick));
}

#[test]
fn bye_ends_the_session_and_a_dropped_connection_is_noticed() {
    let server = server(&[]);
    let mut alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    bob.send("BYE");
    assert_eq!(bob.until_closed(), ["*** bye"]);
    alice.expect("*** bob left lobby");
    // A client that vanishes without a word.
    let carol = Client::named(&server, "carol");
    alice.expect("*** carol joined lobby");
    drop(carol);
    alice.expect("*** carol left lobby");
    let mut again = Client::connect(&server);
    again.send("/nick carol");
    again.expect(&format!("*** {} is now known as carol", again.nick));
}

#[test]
fn history_is_replayed_to_newcomers() {
    let server = server(&["--history", "2"]);
    let mut alice = Client::named(&server, "alice");
    for text in ["one", "two", "three"] {
        alice.send(text);
    }
    alice.send("/who");
    alice.expect("*** in lobby (1): alice");
    let stream = TcpStream::connect(server.addr("chat", "tcp")).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut late = BufReader::new(stream);
    let mut lines = vec![String::new(); 3];
    for line in &mut lines {
        late.read_line(line).unwrap();
    }
    // Each with the time it was said.
    for (line, said) in lines[..2].iter().zip(["<alice> two\n", "<alice> three\n"]) {
        let (at, rest) = line.strip_prefix('[').unwrap().split_once("] ").unwrap();
        assert_eq!(rest, said);
        assert!(at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T', "{line:?}");
    }
    assert!(lines[2].starts_with("*** welcome, guest"), "{lines:?}");
}

#[test]
fn netcat_is_a_full_client() {
    require("nc", "netcat-openbsd");
    let server = server(&[]);
    let mut alice = Client::named(&server, "alice");
    alice.send("/join nc");
    alice.expect("*** you are in nc with no one else");
    let port = server.addr("chat", "tcp").port().to_string();
    let nc = run_command(
        Command::new("nc").args(["-N", "127.0.0.1", &port]),
        b"/nick ncuser\n/join nc\nhello from nc\n",
    );
    alice.expect("<ncuser> hello from nc");
    assert!(nc.stdout.starts_with("*** welcome, guest"), "{}", nc.stdout);
    assert!(nc.stdout.contains("is now known as ncuser\n*** you are in nc with 1 other\n"), "{}", nc.stdout);
}
