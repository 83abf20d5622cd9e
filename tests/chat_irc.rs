//! IRC clients in the chat (issue 17): a client built on Python's `irc`
//! library (from PyPI) and line clients in one room, on one server and
//! across a two-node cluster; irssi itself, in tmux: `chat_irssi`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use serde_json::Value;

use crate::chat::{Client, WAIT, server};
use crate::chat_cluster::{Redis, node, until_who};
use crate::util::{Daemon, require};

/// An IRC client on Python's `irc` library (tests/irc_client.py).
pub struct PyIrc {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
    pub nick: String,
}

impl PyIrc {
    /// Connects as `nick` to the chat port of `server` and waits for the welcome.
    pub fn connect(server: &Daemon, nick: &str) -> PyIrc {
        require("python3", "python3");
        let module = Command::new("python3").args(["-c", "import irc.client"]).status().unwrap();
        assert!(module.success(), "Python's irc library is missing: pip install irc (scripts/test.sh does)");
        let addr = server.addr("chat", "tcp");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/irc_client.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([&addr.ip().to_string(), &addr.port().to_string(), nick])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, events) = mpsc::channel();
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        let mut client = PyIrc { child, stdin, events, nick: nick.to_owned() };
        client.expect("welcome", |_| true);
        client
    }

    /// Does what `command` says (see tests/irc_client.py).
    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits for an event of type `kind` that `matches`; returns it.
    pub fn expect(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let mut seen = Vec::new();
        loop {
            match self.events.recv_timeout(WAIT) {
                Ok(event) if event["type"] == kind && matches(&event) => return event,
                Ok(event) => seen.push(event),
                Err(_) => panic!("{}: no {kind} event within {WAIT:?}; got {seen:#?}", self.nick),
            }
        }
    }

    /// Waits for a message of type `kind` from `source` whose first argument is `text`.
    pub fn expect_text(&mut self, kind: &str, source: &str, text: &str) -> Value {
        self.expect(kind, |e| e["source"] == source && e["args"][0] == text)
    }
}

impl Drop for PyIrc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn args(event: &Value) -> Vec<String> {
    event["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn an_irc_user_and_a_line_user_talk_in_one_room() {
    let server = server(&[]);
    let mut bob = Client::named(&server, "bob");
    let mut alice = PyIrc::connect(&server, "alice");
    // Registration puts alice in the lobby, as a channel, with its names.
    alice.expect("join", |e| e["source"] == "alice" && e["target"] == "#lobby");
    let names = alice.expect("namreply", |_| true);
    assert_eq!(args(&names)[1..], ["#lobby", "alice bob"]);
    bob.expect("*** alice joined lobby");

    alice.send("privmsg #lobby hello bob");
    bob.expect("<alice> hello bob");
    bob.send("hi alice");
    alice.expect_text("pubmsg", "bob", "hi alice");
    alice.send("action #lobby waves");
    bob.expect("* alice waves");
    bob.send("/me nods");
    alice.expect_text("action", "bob", "nods");
    alice.send("privmsg bob psst");
    bob.expect("*alice* psst");
    bob.send("/msg alice back at you");
    alice.expect_text("privmsg", "bob", "back at you");

    // Text is text: escape sequences are shown, not obeyed, for IRC users too.
    bob.send("\x1b[2J\x1b]0;pwned\x07 <b>bold</b>");
    alice.expect_text("pubmsg", "bob", "^[[2J^[]0;pwned^G <b>bold</b>");

    // Renames, both ways.
    alice.send("nick alicia");
    alice.expect("nick", |e| e["source"] == "alice" && e["target"] == "alicia");
    bob.expect("*** alice is now known as alicia");
    bob.send("/nick robert");
    alice.expect("nick", |e| e["source"] == "bob" && e["target"] == "robert");

    // Who is here, and who is who.
    alice.send("whois robert");
    let whois = alice.expect("whoischannels", |_| true);
    assert_eq!(args(&whois), ["robert", "#lobby"]);
    alice.send("who #lobby");
    let who = alice.expect("whoreply", |e| args(e).contains(&"robert".to_owned()));
    assert_eq!(args(&who)[0], "#lobby");
    alice.send("list");
    let listed = alice.expect("list", |_| true);
    assert_eq!(args(&listed)[..2], ["#lobby", "2"]);

    // Another room is another channel; parting it goes back to the lobby.
    alice.send("join #rust");
    alice.expect("part", |e| e["target"] == "#lobby");
    alice.expect("join", |e| e["target"] == "#rust");
    bob.expect("*** alicia left lobby");
    bob.send("/join rust");
    alice.expect("join", |e| e["source"] == "robert" && e["target"] == "#rust");
    bob.send("in rust now");
    alice.expect_text("pubmsg", "robert", "in rust now");
    alice.send("part #rust");
    alice.expect("join", |e| e["source"] == "alicia" && e["target"] == "#lobby");
    bob.expect("*** alicia left rust");

    alice.send("quit see you");
    alice.expect("disconnect", |_| true);
    bob.send("/join lobby");
    bob.send("/who");
    bob.expect("*** in lobby (1): robert");
}

#[test]
fn what_irc_asks_and_this_chat_cannot_do_is_refused_with_numerics() {
    let server = server(&[]);
    let _taken = Client::named(&server, "carol");
    let mut dave = PyIrc::connect(&server, "dave");
    dave.expect("endofnames", |_| true);
    dave.send("nick carol");
    assert_eq!(args(&dave.expect("nicknameinuse", |_| true))[0], "carol");
    dave.send("nick no<html>");
    dave.expect("erroneusnickname", |_| true);
    dave.send("privmsg nobody hello?");
    assert_eq!(args(&dave.expect("nosuchnick", |_| true))[0], "nobody");
    dave.send("privmsg #elsewhere hello?");
    dave.expect("cannotsendtochan", |_| true);
    dave.send("part #lobby");
    let refusal = dave.expect("chanoprivsneeded", |_| true);
    assert!(args(&refusal)[1].contains("one channel at a time"), "{refusal}");
    dave.send("topic #lobby");
    dave.expect("notopic", |_| true);
    dave.send("privmsg carol \x01VERSION\x01");
    let ctcp = dave.expect("nosuchnick", |_| true);
    assert!(args(&ctcp)[1].contains("CTCP VERSION"), "{ctcp}");
}

#[test]
fn an_irc_login_is_never_relayed_and_a_registration_must_end() {
    let server = server(&["--register-timeout", "2s"]);
    let mut alice = Client::named(&server, "alice");
    let mut irc = TcpStream::connect(server.addr("chat", "tcp")).unwrap();
    irc.set_read_timeout(Some(WAIT)).unwrap();
    irc.write_all(b"PASS s3cret-password\r\nNICK ii\r\nUSER ii localhost 127.0.0.1 :Real Name\r\n").unwrap();
    let mut reader = BufReader::new(irc.try_clone().unwrap());
    let mut line = String::new();
    while !line.contains(" 001 ii ") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "closed before the welcome");
    }
    irc.write_all(b"QUIT :done here\r\n").unwrap();
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(rest.contains("ERROR :Closing link: bye"), "{rest}");
    let seen = alice.expect("*** ii left lobby (done here)");
    assert_eq!(seen, ["*** ii joined lobby"]);

    // A client that starts registering and never ends is closed like a silent one.
    let mut stalled = TcpStream::connect(server.addr("chat", "tcp")).unwrap();
    stalled.set_read_timeout(Some(WAIT)).unwrap();
    stalled.write_all(b"CAP LS 302\r\nNICK stalled\r\n").unwrap();
    let mut said = String::new();
    let _ = stalled.read_to_string(&mut said);
    assert!(said.contains("ERROR :Closing link: registration not completed within 2s"), "{said}");
    alice.send("/who");
    assert!(alice.expect("*** in lobby (1): alice").is_empty());
}

#[test]
fn an_irc_user_and_a_line_user_on_two_nodes_of_a_cluster() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a", &[]), node(&redis, "b", &[]));
    let mut bob = Client::named(&b, "bob");
    let mut alice = PyIrc::connect(&a, "alice");
    alice.expect("endofnames", |_| true);
    until_who(&mut bob, "*** in lobby (2): alice bob");
    alice.send("privmsg #lobby hello from node a");
    bob.expect("<alice> hello from node a");
    bob.send("hello from node b");
    alice.expect_text("pubmsg", "bob", "hello from node b");
    alice.send("privmsg bob across");
    bob.expect("*alice* across");
    alice.send("whois bob");
    let server = alice.expect("whoisserver", |_| true);
    assert_eq!(args(&server)[1], "b", "bob is on node b: {server}");
    alice.send("nick bob");
    alice.expect("nicknameinuse", |_| true);
}
