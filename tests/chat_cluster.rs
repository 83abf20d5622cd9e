//! `chat serve --redis`: several chat servers joined into one chat through a
//! real redis-server, each test with its own on a free loopback port. Nodes
//! are killed, and Redis is paused and restarted, in the middle of traffic.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::chat::Client;
use crate::util::{Daemon, closed_port, eventually, require, run};

/// How long the cluster may take to settle (members seen, leases run out).
const SETTLE: Duration = Duration::from_secs(15);

/// A redis-server of the test's own, stopped by its pid when dropped.
pub(crate) struct Redis {
    child: Child,
    pub(crate) port: u16,
    /// Where it keeps its append-only file, when it keeps one.
    dir: Option<tempfile::TempDir>,
    /// More settings, for every start.
    extra: Vec<&'static str>,
}

impl Redis {
    /// Without persistence: what it holds is lost if it stops (it is only ever paused).
    pub(crate) fn start() -> Redis {
        Redis::on(closed_port(), None)
    }

    /// With every write in an append-only file, so that a restart keeps the streams.
    fn persistent() -> Redis {
        Redis::on(closed_port(), Some(tempfile::tempdir().unwrap()))
    }

    fn on(port: u16, dir: Option<tempfile::TempDir>) -> Redis {
        let child = Redis::spawn(port, dir.as_ref(), &[]);
        Redis { child, port, dir, extra: Vec::new() }
    }

    /// Persistent, and holding enough data (kept in the base of its
    /// append-only file) that reading it back after a restart takes about
    /// three seconds, during which it answers every command with LOADING.
    fn loading_slowly() -> Redis {
        // Redis's own test settings: a delay per key loaded, and answering clients while loading.
        let extra = vec!["--key-load-delay", "750", "--loading-process-events-interval-bytes", "1024"];
        let (port, dir) = (closed_port(), tempfile::tempdir().unwrap());
        let child =
            Redis::spawn(port, Some(&dir), &[&extra[..], &["--enable-debug-command", "yes"]].concat());
        let redis = Redis { child, port, dir: Some(dir), extra };
        assert_eq!(redis.command("DEBUG POPULATE 4000 filler 100"), "+OK");
        redis.command("BGREWRITEAOF");
        let rewritten = eventually(SETTLE, || {
            let info = redis.command("INFO persistence");
            info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
        });
        assert!(rewritten, "redis-server did not rewrite its file");
        redis
    }

    /// Sends one inline command and returns the reply (a bulk reply's contents).
    fn command(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(SETTLE)).unwrap();
        stream.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        let first = first.trim_end().to_owned();
        match first.strip_prefix('$').and_then(|len| len.parse::<usize>().ok()) {
            Some(len) => {
                let mut body = vec![0; len + 2];
                reader.read_exact(&mut body).unwrap();
                String::from_utf8_lossy(&body).into_owned()
            }
            None => first,
        }
    }

    /// Starts redis-server on `port` (keeping its file in `dir`, if any) and waits until it listens.
    fn spawn(port: u16, dir: Option<&tempfile::TempDir>, extra: &[&str]) -> Child {
        require("redis-server", "redis-server");
        let mut command = Command::new("redis-server");
        command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        match dir {
            Some(dir) => {
                command.args(["--appendonly", "yes", "--appendfsync", "always"]).arg("--dir").arg(dir.path())
            }
            None => command.args(["--appendonly", "no"]),
        };
        command.args(extra);
        let child = command.stdout(Stdio::null()).spawn().unwrap();
        let addr = format!("127.0.0.1:{port}");
        assert!(
            eventually(SETTLE, || TcpStream::connect(&addr).is_ok()),
            "redis-server did not start on {addr}"
        );
        child
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Stops it with `signal` (`-TERM`: it writes its file on the way out;
    /// `-KILL`: no chance to), and starts it again on the same port with the
    /// same file after `pause`.
    fn restart_after(&mut self, signal: &str, pause: Duration) {
        self.signal(signal);
        self.child.wait().unwrap();
        thread::sleep(pause);
        self.child = Redis::spawn(self.port, self.dir.as_ref(), &self.extra);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A chat node of the cluster at `redis`, once it has joined.
pub(crate) fn node(redis: &Redis, id: &str, extra: &[&str]) -> Daemon {
    let url = redis.url();
    let mut args =
        vec!["chat", "serve", "--port", "0", "--rate-limit", "off", "--redis", &url, "--node-id", id];
    args.extend_from_slice(extra);
    let node = Daemon::start(&args, 1 + usize::from(extra.contains(&"--http")));
    assert!(node.status_lines()[0].contains(&format!("(node {id} of the cluster at redis://127.0.0.1:")));
    assert!(eventually(SETTLE, || node.stderr().contains("joined the chat cluster")), "{}", node.stderr());
    node
}

/// `/who`'s answer for the lobby with `nicks` in it.
pub(crate) fn lobby(nicks: &[&str]) -> String {
    let mut nicks = nicks.to_vec();
    nicks.sort_by_key(|nick| nick.to_lowercase());
    format!("*** in lobby ({}): {}", nicks.len(), nicks.join(" "))
}

/// Asks `/who` until the room's list is `wanted` (the others' joins take a moment to arrive).
pub(crate) fn until_who(client: &mut Client, wanted: &str) {
    let mut last = String::new();
    let seen = eventually(SETTLE, || {
        client.send("/who");
        last = loop {
            let line = client.line();
            if line.starts_with("*** in ") {
                break line;
            }
        };
        last == wanted
    });
    assert!(seen, "{}: /who says {last:?}, not {wanted:?}", client.nick);
}

/// Sends `count` numbered messages, `gap` apart, then `done`.
fn send_numbered(mut client: Client, count: usize, gap: Duration) -> thread::JoinHandle<Client> {
    thread::spawn(move || {
        for n in 0..count {
            client.send(&format!("{} {n}", client.nick));
            thread::sleep(gap);
        }
        client.send("done");
        client
    })
}

/// Reads until `done` from each of `senders`, and checks that each one's
/// numbered messages came exactly once and in order, `count` of them.
/// Returns the other lines that came meanwhile.
fn expect_numbered(client: &mut Client, senders: &[&str], count: usize) -> Vec<String> {
    let mut next: HashMap<&str, usize> = senders.iter().map(|s| (*s, 0)).collect();
    let (mut done, mut others) = (0, Vec::new());
    while done < senders.len() {
        let line = client.line();
        let Some((from, text)) = line.strip_prefix('<').and_then(|l| l.split_once("> ")) else {
            others.push(line);
            continue;
        };
        assert_ne!(from, client.nick, "{}: its own message came back: {line}", client.nick);
        let Some(expected) = next.get_mut(from) else {
            others.push(line);
            continue;
        };
        if text == "done" {
            assert_eq!(*expected, count, "{}: {from} said done after {expected} messages", client.nick);
            done += 1;
            continue;
        }
        assert_eq!(text, format!("{from} {expected}"), "{}: out of order, lost or repeated", client.nick);
        *expected += 1;
    }
    others
}

#[test]
fn every_message_reaches_every_node_once_and_in_order() {
    let redis = Redis::start();
    let nodes: Vec<Daemon> = ["n1", "n2", "n3"].iter().map(|id| node(&redis, id, &[])).collect();
    let mut clients: Vec<Client> = [("a1", 0), ("a2", 0), ("b1", 1), ("c1", 2), ("c2", 2)]
        .iter()
        .map(|(nick, at)| Client::named(&nodes[*at], nick))
        .collect();
    let everyone = lobby(&["a1", "a2", "b1", "c1", "c2"]);
    for client in &mut clients {
        until_who(client, &everyone);
    }
    // Private messages and actions cross nodes too.
    clients[0].send("/msg C2 psst");
    clients[4].expect("*a1* psst");
    clients[3].send("/me waves");
    clients[2].expect("* c1 waves");
    let (senders, mut readers): (Vec<Client>, Vec<Client>) =
        clients.into_iter().partition(|c| ["a1", "b1", "c1"].contains(&c.nick.as_str()));
    let sending: Vec<_> = senders.into_iter().map(|c| send_numbered(c, 200, Duration::ZERO)).collect();
    for reader in &mut readers {
        expect_numbered(reader, &["a1", "b1", "c1"], 200);
    }
    let mut senders: Vec<Client> = sending.into_iter().map(|t| t.join().unwrap()).collect();
    for sender in &mut senders {
        let others: Vec<&str> = ["a1", "b1", "c1"].into_iter().filter(|n| *n != sender.nick).collect();
        expect_numbered(sender, &others, 200);
    }
    // Nothing more came: the next line anyone gets is the answer to /who.
    for reader in &mut readers {
        reader.send("/who");
        assert_eq!(reader.line(), everyone);
    }
}

#[test]
fn nicknames_are_unique_across_nodes_and_freed_when_their_owner_goes() {
    let redis = Redis::start();
    let n1 = node(&redis, "n1", &["--lease", "1s"]);
    let n2 = node(&redis, "n2", &["--lease", "1s"]);
    let n3 = node(&redis, "n3", &["--lease", "1s"]);
    let mut alice = Client::named(&n1, "alice");
    let carol = Client::named(&n3, "carol");
    let mut bob = Client::connect(&n2);
    assert!(bob.guest.ends_with(".n2"), "guest names carry their node: {}", bob.guest);
    let everyone = lobby(&["alice", &bob.guest, "carol"]);
    until_who(&mut bob, &everyone);
    bob.send("/nick ALICE");
    bob.expect("! the nickname ALICE is taken; pick another");
    // Leaving frees the nickname at once...
    alice.send("/quit");
    alice.expect("*** bye");
    let taken = eventually(SETTLE, || {
        bob.send("/nick alice");
        let answer = bob.line();
        answer == format!("*** {} is now known as alice", bob.guest)
    });
    assert!(taken, "alice was never free again");
    // ...and a node that dies frees its clients' once its lease runs out.
    drop(n3);
    bob.expect("*** carol left lobby (server gone)");
    let taken = eventually(SETTLE, || {
        bob.send("/nick carol");
        bob.line() == "*** alice is now known as carol"
    });
    assert!(taken, "carol was never free again");
    let mut dave = Client::connect(&n1);
    let both = lobby(&["carol", &dave.guest]);
    until_who(&mut dave, &both);
    drop(carol);
}

#[test]
fn a_node_killed_mid_run_leaves_the_others_working() {
    let redis = Redis::start();
    let (n1, n2) = (node(&redis, "n1", &["--lease", "1s"]), node(&redis, "n2", &["--lease", "1s"]));
    let n3 = node(&redis, "n3", &["--lease", "1s"]);
    let mut a = Client::named(&n1, "a");
    let mut b = Client::named(&n2, "b");
    let mut c = Client::named(&n3, "c");
    until_who(&mut b, &lobby(&["a", "b", "c"]));
    until_who(&mut c, &lobby(&["a", "b", "c"]));
    let sending = send_numbered(a, 150, Duration::from_millis(10));
    c.expect("<a> a 20");
    drop(n3); // SIGKILL
    let mut others = expect_numbered(&mut b, &["a"], 150);
    while !others.iter().any(|line| line == "*** c left lobby (server gone)") {
        others.push(b.line());
    }
    a = sending.join().unwrap();
    until_who(&mut a, &lobby(&["a", "b"]));
    a.send("still here");
    b.expect("<a> still here");
    drop(n1);
}

/// One node sends numbered messages while `disturb` runs; readers on another
/// node and on its own get every one exactly once, in order. Returns the
/// other lines each reader got meanwhile (notices).
fn survives(
    redis: &mut Redis,
    disturb: impl FnOnce(&mut Redis, &Daemon, &mut Client, &mut Client),
    last_notice: Option<&str>,
) -> [Vec<String>; 2] {
    let (n1, n2) = (node(redis, "n1", &[]), node(redis, "n2", &[]));
    let sender = Client::named(&n1, "sender");
    let mut near = Client::named(&n1, "near");
    let mut far = Client::named(&n2, "far");
    until_who(&mut far, &lobby(&["far", "near", "sender"]));
    let (mut x, mut y) = (Client::named(&n1, "x"), Client::named(&n1, "y"));
    let sending = send_numbered(sender, 300, Duration::from_millis(10));
    thread::sleep(Duration::from_millis(500));
    disturb(redis, &n1, &mut x, &mut y);
    let mut seen =
        [expect_numbered(&mut far, &["sender"], 300), expect_numbered(&mut near, &["sender"], 300)];
    let _sender = sending.join().unwrap();
    assert!(eventually(SETTLE, || n1.stderr().contains("reconnected to Redis")), "{}", n1.stderr());
    let everyone = lobby(&["far", "near", "sender", "x", "y"]);
    for (reader, saw) in [&mut far, &mut near].into_iter().zip(&mut seen) {
        while let Some(last) = last_notice.filter(|last| !saw.iter().any(|l| l.starts_with(last))) {
            let line = reader.line();
            assert!(line.starts_with("*** "), "{}: {line} came while waiting for {last:?}", reader.nick);
            saw.push(line);
        }
        // Nothing more came.
        reader.send("/who");
        let before = reader.expect(&everyone);
        assert!(before.iter().all(|l| l.starts_with("*** ")), "nothing more came but notices: {before:?}");
        saw.extend(before);
    }
    seen
}

#[test]
fn redis_paused_for_two_seconds_loses_and_repeats_nothing() {
    survives(
        &mut Redis::start(),
        |redis, n1, x, y| {
            redis.signal("-STOP");
            // Clients of one node keep talking to each other meanwhile.
            x.send("while redis is away");
            y.expect("<x> while redis is away");
            assert!(eventually(SETTLE, || n1.stderr().contains("lost Redis")), "{}", n1.stderr());
            thread::sleep(Duration::from_secs(2));
            redis.signal("-CONT");
        },
        None,
    );
}

#[test]
fn redis_restarted_with_its_data_loses_and_repeats_nothing() {
    survives(
        &mut Redis::persistent(),
        |redis, _, _, _| redis.restart_after("-TERM", Duration::from_secs(2)),
        None,
    );
}

#[test]
fn redis_killed_and_restarted_with_its_data_loses_and_repeats_nothing() {
    survives(
        &mut Redis::persistent(),
        |redis, _, _, _| redis.restart_after("-KILL", Duration::from_millis(500)),
        None,
    );
}

#[test]
fn redis_loading_its_data_for_seconds_after_a_restart_loses_nothing_and_users_are_told() {
    let resumed = "*** the other chat servers are reachable again";
    let restart = |redis: &mut Redis, _: &Daemon, _: &mut Client, _: &mut Client| {
        redis.restart_after("-TERM", Duration::ZERO)
    };
    let seen = survives(&mut Redis::loading_slowly(), restart, Some(resumed));
    for lines in seen {
        let delayed =
            lines.iter().position(|l| l.starts_with("*** the other chat servers cannot be reached"));
        let resumed =
            lines.iter().position(|l| l.starts_with("*** the other chat servers are reachable again"));
        assert!(delayed.is_some() && delayed < resumed, "{lines:?}");
    }
}

#[test]
fn history_is_replayed_across_nodes() {
    let redis = Redis::start();
    let n1 = node(&redis, "n1", &["--history", "3"]);
    let early = node(&redis, "early", &["--history", "3"]);
    let mut alice = Client::named(&n1, "alice");
    let mut watcher = Client::named(&early, "watcher");
    until_who(&mut watcher, &lobby(&["alice", "watcher"]));
    for text in ["one", "two", "three", "four"] {
        alice.send(text);
    }
    watcher.expect("<alice> four");
    // A node that was there heard it; one that starts later reads it from Redis.
    let late = node(&redis, "late", &["--history", "3"]);
    for server in [&early, &late] {
        let stream = TcpStream::connect(server.addr("chat", "tcp")).unwrap();
        stream.set_read_timeout(Some(SETTLE)).unwrap();
        let mut newcomer = Client::from_stream(stream);
        let history: Vec<&str> = newcomer.history.iter().map(|l| l.split_once("] ").unwrap().1).collect();
        assert_eq!(history, ["<alice> two", "<alice> three", "<alice> four"]);
        let everyone = lobby(&["alice", &newcomer.guest, "watcher"]);
        until_who(&mut newcomer, &everyone);
    }
}

#[test]
fn redis_down_at_start_is_a_retry_and_local_chat_goes_on() {
    let port = closed_port();
    let url = format!("redis://127.0.0.1:{port}");
    let n1 = Daemon::start(&["chat", "serve", "--port", "0", "--redis", &url, "--node-id", "n1"], 1);
    let cannot = format!("cannot reach Redis at redis://127.0.0.1:{port}/0");
    assert!(eventually(SETTLE, || n1.stderr().contains(&cannot)), "{}", n1.stderr());
    let (mut x, mut y) = (Client::connect(&n1), Client::connect(&n1));
    x.send("anyone?");
    y.expect(&format!("<{}> anyone?", x.guest));
    x.send("/nick xavier");
    x.expect("! nicknames cannot change while the other chat servers are out of reach; try again shortly");
    let redis = Redis::on(port, None);
    assert!(eventually(SETTLE, || n1.stderr().contains("reached Redis")), "{}", n1.stderr());
    let n2 = node(&redis, "n2", &[]);
    let mut z = Client::connect(&n2);
    let everyone = lobby(&[&x.guest, &y.guest, &z.guest]);
    until_who(&mut z, &everyone);
    x.send("now everyone");
    z.expect(&format!("<{}> now everyone", x.guest));
}

#[test]
fn bench_chat_spreads_its_clients_over_the_nodes() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a", &[]), node(&redis, "b", &[]));
    let (a, b) = (a.addr("chat", "tcp").to_string(), b.addr("chat", "tcp").to_string());
    let args = ["bench", "chat", &a, &b, "--clients", "10", "--rate", "200", "-d", "500ms", "--json"];
    let report = run(&args, b"").json_of("report");
    assert_eq!(report["exactly_once_in_order"], true, "{report}");
    let (sent, deliveries) = (report["sent"].as_u64().unwrap(), report["deliveries"].as_u64().unwrap());
    assert!(sent > 10, "{report}");
    assert_eq!(deliveries, sent * 9, "each message to the 9 other clients, on both nodes: {report}");
    assert_eq!(report["servers"], serde_json::json!([a, b]), "{report}");
    let by_server = report["latency_by_server"].as_array().unwrap();
    let servers: Vec<&str> = by_server.iter().map(|s| s["server"].as_str().unwrap()).collect();
    assert_eq!(servers, [a.as_str(), b.as_str()], "{report}");
}

#[test]
fn a_node_stopped_says_goodbye_for_its_clients_and_frees_their_nicknames() {
    let redis = Redis::start();
    // A lease longer than the test waits: only the node's goodbye can free its nicknames.
    let (n1, n2) = (node(&redis, "n1", &[]), node(&redis, "n2", &["--lease", "60s"]));
    let mut a = Client::named(&n1, "a");
    let mut b = Client::named(&n2, "b");
    until_who(&mut a, &lobby(&["a", "b"]));
    let stopped = n2.stop_with("TERM");
    assert!(stopped.status.success(), "{}", stopped.stderr);
    b.expect("*** server shutting down");
    a.expect("*** b left lobby (server shutting down)");
    until_who(&mut a, &lobby(&["a"]));
    a.send("/nick b");
    a.expect("*** a is now known as b");
}

#[test]
fn a_bad_redis_url_is_a_usage_error_in_plain_words() {
    let url = run(&["chat", "serve", "--port", "0", "--redis", "http://localhost"], b"");
    assert_eq!(url.code(), Some(2), "{url:?}");
    assert_eq!(
        url.stderr.trim(),
        "error: --redis http://localhost: not a Redis URL (expected redis://HOST:PORT[/DB])"
    );
}
