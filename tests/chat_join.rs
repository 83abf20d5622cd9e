//! `chat join` through pipes, and `bench chat`: the real binary against our
//! server, against servers that are not ours, and against redis-server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::chat::{Client, WAIT, server};
use crate::util::{Daemon, closed_port, eventually, require, run, socketeer};

#[test]
fn shutdown_tells_every_client_and_exits_promptly() {
    let server = server(&[]);
    let mut alice = Client::named(&server, "alice");
    let mut joined = Joined::start(&server, &["--nick", "bob"]);
    alice.expect("*** bob joined lobby");
    let stopped = server.stop_with("TERM");
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.stderr);
    assert!(stopped.took < Duration::from_secs(4), "{:?}", stopped.took);
    assert_eq!(alice.until_closed(), ["*** server shutting down"]);
    joined.expect("*** server shutting down");
    let (status, stderr) = joined.wait();
    assert_eq!(status, Some(1));
    assert!(stderr.contains("the server at 127.0.0.1:") && stderr.contains("shut down"), "{stderr}");
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
        self.send_raw(&format!("{line}\n"));
    }

    /// Writes `text` to its stdin in one go, as a paste or a script would.
    pub fn send_raw(&mut self, text: &str) {
        self.stdin.as_mut().unwrap().write_all(text.as_bytes()).unwrap();
    }

    /// The next line of its output.
    pub fn next_line(&mut self) -> String {
        self.lines.recv_timeout(WAIT).expect("chat join printed nothing more")
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
    bob.expect("*** alice joined lobby");
    // Bob speaks while alice has typed nothing: it shows up anyway.
    bob.send("hi alice \x1b[2J");
    alice.expect("<bob> hi alice ^[[2J");
    alice.send("hello bob");
    bob.expect("<alice> hello bob");
    bob.send("/msg alice just us");
    alice.expect("*bob* just us");
    let (status, stderr) = alice.wait();
    assert_eq!(status, Some(0), "{stderr}");
    bob.expect("*** alice left lobby");
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
fn lines_pasted_at_once_all_arrive_paced_within_the_servers_default_limit() {
    let server = server(&[]);
    let mut bob = Client::named(&server, "bob");
    let mut alice = Joined::start(&server, &["--nick", "alice"]);
    bob.expect("*** alice joined lobby");
    let paste: String = (0..30).map(|n| format!("pasted line {n}\n")).collect();
    alice.send_raw(&paste);
    let before = bob.expect("<alice> pasted line 29");
    let arrived: Vec<_> = before.iter().filter(|l| l.starts_with("<alice> pasted line ")).collect();
    assert_eq!(arrived.len(), 29, "every line but the last, in order: {before:?}");
    assert!(
        arrived.iter().enumerate().all(|(n, l)| **l == format!("<alice> pasted line {n}")),
        "{arrived:?}"
    );
    assert!(before.iter().all(|l| !l.contains("slow down")), "{before:?}");
    let (status, stderr) = alice.wait();
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn a_server_that_says_its_limit_is_lower_is_obeyed_from_then_on() {
    let server = server(&["--rate-limit", "2/s", "--burst", "2"]);
    let mut bob = Client::named(&server, "bob");
    // Unpaced, so that the first lines run into the server's limit.
    let mut alice = Joined::start(&server, &["--nick", "alice", "--pace", "off"]);
    bob.expect("*** alice joined lobby");
    alice.send_raw("one\ntwo\nthree\nfour\nfive\n");
    alice.expect("! slow down: at most 2 lines/s (bursts of 2); lines are dropped until you do");
    let after: String = (0..4).map(|n| format!("after {n}\n")).collect();
    alice.send_raw(&after);
    let before = bob.expect("<alice> after 3");
    let arrived: Vec<_> = before.iter().filter(|l| l.starts_with("<alice> after ")).collect();
    assert_eq!(arrived, ["<alice> after 0", "<alice> after 1", "<alice> after 2"], "{before:?}");
    let (status, stderr) = alice.wait();
    assert_eq!(status, Some(0), "{stderr}");
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
    let lines = bob.expect("*** in lobby (1): bob");
    assert!(!lines.iter().any(|l| l.contains("never sent")), "{lines:?}");

    let invalid = run(&["chat", "join", &target, "--nick", "bad nick!"], b"");
    assert_eq!(invalid.code(), Some(2));
    assert!(invalid.stderr.contains("nicknames may not contain ' '"), "{}", invalid.stderr);
}

#[test]
fn chat_join_answers_pings_by_itself_and_so_stays_past_the_registration_timeout() {
    let server = server(&["--register-timeout", "4s", "--ping-interval", "500ms"]);
    let mut bob = Client::named(&server, "bob");
    // It types nothing at all: only its answers to the server's pings are lines.
    let mut quiet = Joined::start(&server, &[]);
    let welcome = quiet.next_line();
    let guest = welcome.strip_prefix("*** welcome, ").and_then(|w| w.split(':').next()).unwrap().to_owned();
    bob.expect(&format!("*** {guest} joined lobby"));
    // Past the registration timeout, and several pings later, it is still there.
    thread::sleep(Duration::from_secs(5));
    bob.send("still with us?");
    let before = quiet.expect("<bob> still with us?");
    assert!(before.iter().all(|l| !l.contains("PING")), "pings are answered, not shown: {before:?}");
    bob.send("/who");
    bob.expect(&format!("*** in lobby (2): bob {guest}"));
}

#[test]
fn chat_join_shows_actions_and_history_times_in_json() {
    let server = server(&["--history", "1"]);
    let mut alice = Client::named(&server, "alice");
    alice.send("/me waves");
    alice.send("/who");
    alice.expect("*** in lobby (1): alice");
    let target = server.addr("chat", "tcp").to_string();
    let out = run(&["chat", "join", &target, "--json"], b"");
    let lines = out.json_lines();
    assert_eq!(lines[0]["type"], "action", "{lines:?}");
    assert_eq!((&lines[0]["from"], &lines[0]["text"]), (&"alice".into(), &"waves".into()), "{lines:?}");
    assert!(lines[0]["at"].as_str().unwrap().ends_with('Z'), "{lines:?}");
    assert_eq!(lines[1]["type"], "notice", "{lines:?}");
}

#[test]
fn chat_join_says_nothing_of_its_own_to_a_server_that_is_not_ours() {
    // A line server that is not socketeer's: it never greets, and keeps what it is sent.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let received = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"hello from another server\n").unwrap();
        let mut got = String::new();
        stream.read_to_string(&mut got).unwrap();
        got
    });
    let out = run(&["chat", "join", &target], b"typed line\n");
    assert_eq!(received.join().unwrap(), "typed line\n", "no /quit of ours");
    assert!(out.stdout.contains("hello from another server"), "{out:?}");
}

#[test]
fn bench_chat_times_out_on_a_server_that_never_welcomes_and_says_what_it_waited_for() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    // Accepts, says something of its own, and never welcomes anyone.
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut stream: TcpStream = stream;
            let _ = stream.write_all(b"+OK not a chat server\r\n");
            held.push(stream);
        }
    });
    let out = run(&["bench", "chat", &target, "--clients", "2", "--timeout", "1s"], b"");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("waited 1s for a welcome line"), "{}", out.stderr);
    assert!(out.stderr.contains("+OK not a chat server"), "{}", out.stderr);
    assert!(out.stderr.contains("--redis"), "{}", out.stderr);
}
