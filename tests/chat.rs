//! `chat serve`, `chat join` and `bench chat`: the real binary over loopback,
//! driven by raw TCP clients, by `nc`, by `chat join` through a pipe, and
//! measured against redis-server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::util::{Daemon, closed_port, eventually, require, run, run_command, socketeer};

/// How long any one expected line may take.
const WAIT: Duration = Duration::from_secs(10);

/// A chat server on a free port, with `extra` flags.
fn server(extra: &[&str]) -> Daemon {
    let mut args = vec!["chat", "serve", "--port", "0"];
    args.extend_from_slice(extra);
    Daemon::start(&args, 1)
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
        while welcome.starts_with('<') {
            let next = client.line();
            client.history.push(std::mem::replace(&mut welcome, next));
        }
        let nick = welcome.strip_prefix("* welcome, ").and_then(|w| w.split(':').next());
        client.nick = nick.unwrap_or_else(|| panic!("not a welcome: {welcome:?}")).to_owned();
        client.guest = client.nick.clone();
        client
    }

    /// Connects and takes the nickname `nick`.
    pub fn named(server: &Daemon, nick: &str) -> Client {
        let mut client = Client::connect(server);
        client.send(&format!("/nick {nick}"));
        client.expect(&format!("* {} is now known as {nick}", client.nick));
        client.nick = nick.to_owned();
        client
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
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
    fn until_closed(&mut self) -> Vec<String> {
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
    let before_who = alice.expect("* in lobby (3): alice bob carol");
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
    bob.expect("* you are in rust with no one else");
    alice.expect("* bob left lobby");
    carol.send("/join RUST");
    carol.expect("* you are in rust with 1 other");
    bob.expect("* carol joined rust");
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
    alice.expect("* bye");
    assert_eq!(alice.until_closed(), Vec::<String>::new());
    other.expect("* Alice left lobby (gone fishing)");
    other.send("/nick alice");
    other.expect(&format!("* {} is now known as alice", other.nick));
}

#[test]
fn bye_ends_the_session_and_a_dropped_connection_is_noticed() {
    let server = server(&[]);
    let mut alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    bob.send("BYE");
    assert_eq!(bob.until_closed(), ["* bye"]);
    alice.expect("* bob left lobby");
    // A client that vanishes without a word.
    let carol = Client::named(&server, "carol");
    alice.expect(&format!("* {} is now known as carol", carol.guest));
    drop(carol);
    alice.expect("* carol left lobby");
    let mut again = Client::connect(&server);
    again.send("/nick carol");
    again.expect(&format!("* {} is now known as carol", again.nick));
}

#[test]
fn an_overlong_line_is_refused_and_skipped_and_the_connection_goes_on() {
    let server = server(&["--max-line", "100"]);
    let mut alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    // Longer than the limit, and arriving in two pieces.
    alice.send_raw(&[b'x'; 300]);
    thread::sleep(Duration::from_millis(100));
    alice.send_raw(&[b'x'; 300]);
    alice.send_raw(b"\nstill here\n");
    alice.expect("! line too long (the limit is 100 bytes); skipped to its end");
    let before = bob.expect("<alice> still here");
    assert!(!before.iter().any(|l| l.contains("xxx")), "{before:?}");
    alice.send(&"y".repeat(100));
    bob.expect(&format!("<alice> {}", "y".repeat(100)));
}

#[test]
fn invalid_utf8_is_refused_and_relays_nothing() {
    let server = server(&[]);
    let mut alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    alice.send_raw(b"bad \xff\xfe bytes\nfine\n");
    alice.expect("! invalid UTF-8 at byte 4; line not relayed");
    let before = bob.expect("<alice> fine");
    assert!(before.iter().all(|l| !l.contains("bad")), "{before:?}");
}

#[test]
fn escape_sequences_and_control_characters_arrive_visible_not_obeyed() {
    let server = server(&[]);
    let mut alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    // A title change, a bell, clear screen, colour, backspace, carriage return, and a C1 CSI.
    alice.send("\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x08\rhi \u{9b}1m");
    let line = bob.line();
    assert_eq!(line, "<alice> ^[]0;pwned^G^[[2J^[[31mred^H^Mhi <U+009B>1m");
    assert!(!line.chars().any(char::is_control), "{line:?}");
}

#[test]
fn a_flood_is_cut_to_the_rate_with_one_notice() {
    let server = server(&["--rate-limit", "5/s", "--burst", "5"]);
    let mut alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    let flood: String = (0..40).map(|n| format!("flood {n}\n")).collect();
    alice.send_raw(flood.as_bytes());
    alice.expect("! slow down: at most 5 lines/s (bursts of 5); lines are dropped until you do");
    // The bucket refills: a line a second later goes through.
    thread::sleep(Duration::from_millis(1200));
    alice.send("after the flood");
    let got = bob.expect("<alice> after the flood");
    let relayed: Vec<_> = got.iter().filter(|l| l.starts_with("<alice> flood ")).collect();
    // The burst of 5, less the /nick, and perhaps a token refilled meanwhile.
    assert!((4..=6).contains(&relayed.len()), "{relayed:?}");
    assert_eq!(relayed[0], "<alice> flood 0");
    alice.send("/who");
    let notices = alice.expect("* in lobby (2): alice bob");
    assert!(notices.is_empty(), "one notice for the whole flood: {notices:?}");
}

#[test]
fn connections_over_the_caps_are_turned_away_with_a_reason() {
    let server = server(&["--max-clients", "2", "--max-per-ip", "off"]);
    let first = Client::connect(&server);
    let _second = Client::connect(&server);
    let mut third = TcpStream::connect(server.addr("chat", "tcp")).unwrap();
    third.set_read_timeout(Some(WAIT)).unwrap();
    let mut refusal = String::new();
    third.read_to_string(&mut refusal).unwrap();
    assert_eq!(refusal, "! the server is full (2 clients); try again later\n");
    drop(first);
    assert!(eventually(WAIT, || {
        let mut probe = BufReader::new(TcpStream::connect(server.addr("chat", "tcp")).unwrap());
        let mut line = String::new();
        probe.read_line(&mut line).is_ok() && line.starts_with("* welcome")
    }));

    let server = self::server(&["--max-per-ip", "2"]);
    let _a = Client::connect(&server);
    let _b = Client::connect(&server);
    let mut refused = String::new();
    TcpStream::connect(server.addr("chat", "tcp")).unwrap().read_to_string(&mut refused).unwrap();
    assert!(refused.starts_with("! too many connections from your address (at most 2)"), "{refused:?}");
    // Another loopback address is another client.
    let elsewhere = from_address("127.0.0.2", server.addr("chat", "tcp"));
    assert!(elsewhere.nick.starts_with("guest"));
    assert!(eventually(WAIT, || server.stderr().contains("refusing connection")), "{}", server.stderr());
}

/// A client whose connection comes from `source` (a loopback address).
fn from_address(source: &str, to: SocketAddr) -> Client {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.connect(&to.into()).unwrap();
    Client::from_stream(socket.into())
}

#[test]
fn a_client_that_never_reads_is_dropped_and_the_others_get_everything() {
    let server = server(&["--rate-limit", "off", "--queue", "64KiB", "--max-per-ip", "off"]);
    let target = server.addr("chat", "tcp").to_string();
    let out = run(
        &[
            "bench",
            "chat",
            &target,
            "--clients",
            "4",
            "--stalled",
            "1",
            "-d",
            "2s",
            "--size",
            "1000",
            "--window",
            "16",
            "--json",
        ],
        b"",
    );
    let report = out.json_of("report");
    assert_eq!(report["stalled_dropped"], 1, "{report}");
    assert_eq!(report["receivers_dropped"], 0, "{report}");
    assert_eq!(report["exactly_once_in_order"], true, "{report}");
    assert!(report["deliveries"].as_u64().unwrap() > 1000, "{report}");
    assert!(eventually(WAIT, || server
        .stderr()
        .contains("disconnecting a client: more than 64KiB waited for it")));
}

#[test]
fn history_is_replayed_to_newcomers() {
    let server = server(&["--history", "2"]);
    let mut alice = Client::named(&server, "alice");
    for text in ["one", "two", "three"] {
        alice.send(text);
    }
    alice.send("/who");
    alice.expect("* in lobby (1): alice");
    let stream = TcpStream::connect(server.addr("chat", "tcp")).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut late = BufReader::new(stream);
    let mut lines = vec![String::new(); 3];
    for line in &mut lines {
        late.read_line(line).unwrap();
    }
    assert_eq!(lines[..2], ["<alice> two\n", "<alice> three\n"]);
    assert!(lines[2].starts_with("* welcome, guest"), "{lines:?}");
}

#[test]
fn a_silent_client_is_closed_after_the_idle_timeout() {
    let server = server(&["--idle-timeout", "1s"]);
    let mut silent = Client::connect(&server);
    assert_eq!(silent.until_closed(), ["! nothing received for 1s; closing"]);
}

#[test]
fn shutdown_tells_every_client_and_exits_promptly() {
    let server = server(&[]);
    let mut alice = Client::named(&server, "alice");
    let mut joined = Joined::start(&server, &["--nick", "bob"]);
    alice.expect("* guest2 is now known as bob");
    let stopped = server.stop_with("TERM");
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.stderr);
    assert!(stopped.took < Duration::from_secs(4), "{:?}", stopped.took);
    assert_eq!(alice.until_closed(), ["* server shutting down"]);
    joined.expect("* server shutting down");
    let (status, stderr) = joined.wait();
    assert_eq!(status, Some(1));
    assert!(stderr.contains("the server at 127.0.0.1:") && stderr.contains("shut down"), "{stderr}");
}

#[test]
fn netcat_is_a_full_client() {
    require("nc", "netcat-openbsd");
    let server = server(&[]);
    let mut alice = Client::named(&server, "alice");
    alice.send("/join nc");
    alice.expect("* you are in nc with no one else");
    let port = server.addr("chat", "tcp").port().to_string();
    let nc = run_command(
        Command::new("nc").args(["-N", "127.0.0.1", &port]),
        b"/nick ncuser\n/join nc\nhello from nc\n",
    );
    alice.expect("<ncuser> hello from nc");
    assert!(nc.stdout.starts_with("* welcome, guest"), "{}", nc.stdout);
    assert!(nc.stdout.contains("is now known as ncuser\n* you are in nc with 1 other\n"), "{}", nc.stdout);
}

/// `chat join` running with its stdin and stdout piped to the test.
struct Joined {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Joined {
    fn start(server: &Daemon, extra: &[&str]) -> Joined {
        let target = server.addr("chat", "tcp").to_string();
        let mut child = socketeer()
            .args(["chat", "join", &target])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Joined { stdin: child.stdin.take(), child, lines }
    }

    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    /// Reads its output until `wanted`; returns the lines before.
    pub fn expect(&mut self, wanted: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) if line == wanted => return before,
                Ok(line) => before.push(line),
                Err(_) => panic!("chat join did not print {wanted:?}; it printed {before:?}"),
            }
        }
    }

    /// Closes its stdin and waits for it to exit: the status and stderr.
    fn wait(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let exited = eventually(WAIT, || self.child.try_wait().unwrap().is_some());
        assert!(exited, "chat join did not exit");
        let mut stderr = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        (self.child.wait().unwrap().code(), stderr)
    }
}

#[test]
fn chat_join_is_full_duplex_through_pipes() {
    let server = server(&[]);
    let mut bob = Client::named(&server, "bob");
    let mut alice = Joined::start(&server, &["--nick", "alice"]);
    bob.expect("* guest2 is now known as alice");
    // Bob speaks while alice has typed nothing: it shows up anyway.
    bob.send("hi alice \x1b[2J");
    alice.expect("<bob> hi alice ^[[2J");
    alice.send("hello bob");
    bob.expect("<alice> hello bob");
    bob.send("/msg alice just us");
    alice.expect("*bob* just us");
    let (status, stderr) = alice.wait();
    assert_eq!(status, Some(0), "{stderr}");
    bob.expect("* alice left lobby");
}

#[test]
fn chat_join_from_a_script_prints_json_and_leaves_at_the_end_of_input() {
    let server = server(&[]);
    let target = server.addr("chat", "tcp").to_string();
    let out = run(&["chat", "join", &target, "--json"], b"/who\n/frob\n");
    let lines = out.json_lines();
    assert_eq!(lines[0]["type"], "notice");
    assert!(lines[0]["text"].as_str().unwrap().starts_with("welcome, guest"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "notice" && l["text"].as_str().unwrap().starts_with("in lobby (1)"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "error" && l["text"] == "unknown command /frob; /help lists the commands")
    );
    assert_eq!(lines.last().unwrap()["text"], "bye");
}

#[test]
fn chat_join_says_clearly_when_there_is_no_server() {
    let target = format!("127.0.0.1:{}", closed_port());
    let out = run(&["chat", "join", &target], b"");
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("connection refused by 127.0.0.1"), "{}", out.stderr);
}

#[test]
fn bench_chat_measures_our_server_and_redis_pub_sub_alike() {
    require("redis-server", "redis-server");
    let server = server(&["--rate-limit", "off", "--max-per-ip", "off"]);
    let port = closed_port().to_string();
    let mut redis = Command::new("redis-server")
        .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let redis_addr = format!("127.0.0.1:{port}");
    assert!(eventually(WAIT, || TcpStream::connect(&redis_addr).is_ok()), "redis-server did not start");
    let ours = server.addr("chat", "tcp").to_string();
    for (target, redis_flag) in [(ours.as_str(), None), (redis_addr.as_str(), Some("--redis"))] {
        let mut args =
            vec!["bench", "chat", target, "--clients", "10", "--senders", "2", "-d", "500ms", "--json"];
        args.extend(redis_flag);
        let report = run(&args, b"").json_of("report");
        assert_eq!(report["exactly_once_in_order"], true, "{report}");
        assert_eq!(report["out_of_order"], 0, "{report}");
        let (sent, deliveries) = (report["sent"].as_u64().unwrap(), report["deliveries"].as_u64().unwrap());
        // Ours: each message to the 9 other clients; Redis: to all 10 subscribers.
        let recipients = if redis_flag.is_some() { 10 } else { 9 };
        assert_eq!(deliveries, sent * recipients, "{report}");
        assert!(sent > 100, "{report}");
        let latency = &report["latency"];
        assert!(latency["p50_us"].as_u64() <= latency["p99_us"].as_u64(), "{report}");
    }
    let rate =
        run(&["bench", "chat", &ours, "--clients", "5", "--rate", "200", "-d", "500ms", "--json"], b"");
    let report = rate.json_of("report");
    assert_eq!(report["exactly_once_in_order"], true, "{report}");
    // 200 messages/s for half a second: never ahead of the rate.
    assert!((10..=101).contains(&report["sent"].as_u64().unwrap()), "{report}");
    let _ = redis.kill();
    let _ = redis.wait();
}

#[test]
fn chat_join_waits_for_its_nickname_and_exits_1_when_it_is_refused() {
    let server = server(&[]);
    let target = server.addr("chat", "tcp").to_string();
    let mut bob = Client::named(&server, "bob");
    // The first line goes out only once the name is granted, so it is alice's.
    let out = run(&["chat", "join", &target, "--nick", "alice"], b"first line\n");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let before = bob.expect("<alice> first line");
    assert!(!before.iter().any(|l| l.starts_with("<guest")), "sent under the guest name: {before:?}");

    let taken = run(&["chat", "join", &target, "--nick", "BOB"], b"never sent\n");
    assert_eq!(taken.code(), Some(1), "{taken:?}");
    assert!(taken.stderr.contains("refused: the nickname BOB is taken"), "{}", taken.stderr);
    bob.send("/who");
    let lines = bob.expect("* in lobby (1): bob");
    assert!(!lines.iter().any(|l| l.contains("never sent")), "{lines:?}");

    let invalid = run(&["chat", "join", &target, "--nick", "bad nick!"], b"");
    assert_eq!(invalid.code(), Some(2));
    assert!(invalid.stderr.contains("nicknames may not contain ' '"), "{}", invalid.stderr);
}
