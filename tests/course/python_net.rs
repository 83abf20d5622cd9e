//! The networking examples in examples/python, run against socketeer's
//! servers and socketeer's clients run against them. Only facts that hold
//! however the bytes are split and however slow the machine is.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::background::Background;
use super::guide::root;
use crate::util::{ALL_ON_FREE_PORTS, Daemon, Finished, closed_port, require, run, run_command};

const LINE_WAIT: Duration = Duration::from_secs(10);

/// `python3 examples/python/SCRIPT ARGS`.
pub fn python_command(script: &str, args: &[&str]) -> Command {
    require("python3", "python3");
    let mut command = Command::new("python3");
    command.arg(root().join("examples/python").join(script)).args(args);
    command
}

/// Runs an example to its end, feeding it `stdin`.
pub fn python(script: &str, args: &[&str], stdin: &[u8]) -> Finished {
    run_command(&mut python_command(script, args), stdin)
}

/// Starts an example server on a free port; ready once it prints its address.
fn python_server(script: &str, args: &[&str]) -> Background {
    let mut all = args.to_vec();
    all.extend(["--port", "0"]);
    Background::start(python_command(script, &all), b"")
}

fn serve() -> Daemon {
    Daemon::start(&ALL_ON_FREE_PORTS, 10)
}

fn port(daemon: &Daemon, service: &str, transport: &str) -> String {
    daemon.addr(service, transport).port().to_string()
}

/// A line-reading TCP client for the chat servers.
struct LineClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl LineClient {
    fn connect(addr: SocketAddr) -> LineClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(LINE_WAIT)).unwrap();
        LineClient { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap_or_else(|e| panic!("no line within {LINE_WAIT:?}: {e}"));
        line.trim_end().to_owned()
    }

    /// Reads lines until one satisfies `wanted`; returns it.
    fn line_where(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self.line();
            assert!(!line.is_empty(), "the server closed the connection");
            if wanted(&line) {
                return line;
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }
}

#[test]
fn socket_basics_talks_tcp_and_udp_to_our_echo() {
    let serve = serve();
    let echo = port(&serve, "echo", "tcp");
    let out = python("socket_basics.py", &["127.0.0.1", &echo], b"");
    let text = out.ok();
    assert!(text.contains("socket: AF_INET SOCK_STREAM"), "{text}");
    assert!(text.contains("tcp: sent b'hello, echo' and got b'hello, echo' back"), "{text}");
    assert!(text.contains(&format!("udp: got b'hello, echo' back from ('127.0.0.1', {echo})")), "{text}");
}

#[test]
fn our_clients_use_the_python_echo_server() {
    let server = python_server("echo_server.py", &[]);
    let target = server.addr().to_string();
    let out = run(&["echo", "send", &target, "hello", "world"], b"");
    assert_eq!(out.ok(), "hello\nworld\n");
    // 4 KiB probes reach a server that reads 1 KiB at a time: the stream
    // carries them in pieces, and every byte comes back.
    let ping = run(&["echo", "ping", &target, "--count", "2", "--interval", "10ms", "--size", "4KiB"], b"");
    assert!(ping.ok().contains("2 sent, 2 received"), "{}", ping.stdout);
    server.expect_line("closed after 8192 bytes", LINE_WAIT);
}

#[test]
fn daytime_client_and_server_interoperate_with_ours() {
    let serve = serve();
    let day = python("daytime_client.py", &["127.0.0.1", &port(&serve, "daytime", "tcp")], b"");
    let line = day.ok().trim();
    assert!(line.split(", ").next().is_some_and(|w| w.ends_with("day")), "{line}");
    let time = python("daytime_client.py", &["127.0.0.1", &port(&serve, "time", "tcp"), "--time"], b"");
    assert_near_now(time.ok());
    let refused = python("daytime_client.py", &["127.0.0.1", &closed_port().to_string()], b"");
    assert_eq!(refused.code(), Some(1));
    assert!(refused.stderr.contains("connection refused"), "{}", refused.stderr);

    let server = python_server("daytime_server.py", &[]);
    let got = run(&["daytime", "get", &server.addr().to_string()], b"");
    assert!(got.ok().contains(", 20"), "{}", got.stdout);
    let time_server = python_server("daytime_server.py", &["--time"]);
    let got = run(&["daytime", "get", &time_server.addr().to_string(), "--time", "--json"], b"");
    let seconds = got.json_of("answer")["seconds_since_1900"].as_u64().unwrap();
    assert_near_now(&format!("= {seconds} seconds since 1900"));
}

/// The text holds `= N seconds since 1900` with N within a minute of the
/// test's own clock (both read the same clock; a minute covers a slow run).
fn assert_near_now(text: &str) {
    let n: i64 = text
        .split(" seconds since 1900")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seconds since 1900 in {text}"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 + 2_208_988_800;
    assert!((n - now).abs() < 60, "{n} is not now ({now}): {text}");
}

#[test]
fn stream_gotchas_show_joined_split_closed_and_reset_streams() {
    let serve = serve();
    let echo = port(&serve, "echo", "tcp");
    let daytime = port(&serve, "daytime", "tcp");
    let out =
        python("stream_gotchas.py", &["127.0.0.1", "--echo-port", &echo, "--daytime-port", &daytime], b"");
    let text = out.ok();
    assert!(text.contains("the bytes are all there in order: True"), "{text}");
    let pieces: Vec<usize> = text
        .lines()
        .find_map(|l| l.split_once("calls: [").map(|(_, rest)| rest.trim_end_matches(']').to_owned()))
        .unwrap()
        .split(", ")
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(pieces.iter().sum::<usize>(), 4096, "{text}");
    assert!(pieces.iter().all(|&n| (1..=1024).contains(&n)), "{text}");
    assert!(text.contains("then recv() returned b'': the server closed"), "{text}");
    assert!(text.contains("recv() after the close keeps returning b''"), "{text}");
    assert!(text.contains("after a reset recv() raised ConnectionResetError"), "{text}");
    assert!(text.contains("an incremental decoder gives 'caf' then 'é au lait'"), "{text}");
}

#[test]
fn framing_puts_lines_and_frames_back_together() {
    let out = python("framing.py", &[], b"");
    assert_eq!(
        out.ok(),
        "lines: [b'one', b'two', b'three']\nframe: b'\\x00binary\\nwith a newline\\xff' then None\n"
    );
}

#[test]
fn the_two_way_chat_client_talks_to_our_chat_without_lock_step() {
    let serve = serve();
    let chat = serve.addr("chat", "tcp");
    let mut observer = LineClient::connect(chat);
    observer.line_where(|l| l.starts_with("*** welcome"));
    let out = python(
        "two_way_chat.py",
        &["client", "127.0.0.1", &chat.port().to_string()],
        b"hello from python\nbye\n",
    );
    // The server greets first: a lock-step client would take the greeting
    // for the answer to its first line.
    assert!(out.ok().contains("server: *** welcome"), "{}", out.stdout);
    assert!(out.stdout.contains("server closed the connection"), "{}", out.stdout);
    let relayed = observer.line_where(|l| l.starts_with('<'));
    assert!(relayed.ends_with("> hello from python"), "{relayed}");
}

#[test]
fn the_two_way_chat_server_reads_lines_whole_and_speaks_first() {
    let command = python_command("two_way_chat.py", &["server", "--port", "0"]);
    let server = Background::start(command, b"hello client\n");
    let mut client = LineClient::connect(server.addr());
    assert_eq!(client.line(), "hello client");
    // One line in two pieces, then two lines in one piece.
    client.send(b"hello ");
    client.send(b"server\nsecond\nbye\n");
    client.writer.shutdown(std::net::Shutdown::Write).unwrap();
    server.expect_line("client: hello server", LINE_WAIT);
    server.expect_line("client: second", LINE_WAIT);
    assert_eq!(client.line(), "", "the server closes once the client is done");
}

#[test]
fn the_broadcast_server_relays_each_line_to_the_others() {
    let server = python_server("broadcast_server.py", &[]);
    let mut alice = LineClient::connect(server.addr());
    assert!(alice.line().starts_with("*** welcome"));
    let mut bob = LineClient::connect(server.addr());
    assert!(bob.line().starts_with("*** welcome"));
    alice.line_where(|l| l.ends_with(" joined"));
    bob.send(b"hel");
    bob.send(b"lo\nsecond line\n");
    assert!(alice.line().ends_with("> hello"));
    assert!(alice.line().ends_with("> second line"));
    let joined = run(&["chat", "join", &server.addr().to_string()], b"from socketeer\n");
    assert!(joined.ok().contains("*** welcome"), "{}", joined.stdout);
    alice.line_where(|l| l.ends_with("> from socketeer"));
    bob.send(b"bye\n");
    alice.line_where(|l| l.ends_with(" left"));
}

#[test]
fn the_udp_loop_gets_every_reply_from_our_echo_and_its_own_server() {
    let serve = serve();
    let echo = port(&serve, "echo", "udp");
    let out = python("udp_loop.py", &["client", "127.0.0.1", &echo, "one", "two", "three"], b"");
    assert!(out.ok().contains("message 2: 'two' from 127.0.0.1"), "{}", out.stdout);
    assert!(out.stdout.contains("3 of 3 messages answered"));
    let server = python_server("udp_loop.py", &["server"]);
    let server_port = server.addr().port().to_string();
    let out = python("udp_loop.py", &["client", "127.0.0.1", &server_port, "ping"], b"");
    assert!(out.ok().contains("'Acknowledged: ping'"), "{}", out.stdout);
    server.expect_line("4 bytes from 127.0.0.1:", LINE_WAIT);
}

#[test]
fn the_lossy_udp_client_and_server_interoperate_with_ours() {
    let ours = Daemon::start(&["udp", "serve", "--port", "0", "--loss", "30%", "--seed", "7"], 1);
    let port = ours.addr("udp", "udp").port().to_string();
    let out = python("lossy_udp.py", &["client", "127.0.0.1", &port, "--count", "10", "--timeout", "1"], b"");
    let text = out.ok();
    assert!(text.contains("10 messages in "), "{text}");
    assert!(text.contains(", 0 lost"), "{text}");

    let theirs = python_server("lossy_udp.py", &["server", "--loss", "0.3", "--seed", "7"]);
    let target = theirs.addr().to_string();
    let sent = run(&["udp", "send", &target, "--count", "10", "--timeout", "1s", "--json"], b"");
    let summary = sent.json_of("summary");
    assert_eq!(summary["lost"], 0, "{summary}");
    let datagrams = summary["datagrams"].as_u64().unwrap();
    // Every datagram the server did not drop was acknowledged: each resend
    // stands for one datagram dropped on purpose.
    let ended = theirs.stop();
    let dropped = ended.output.lines().filter(|l| l.contains("on purpose")).count() as u64;
    assert_eq!(datagrams - 10, dropped, "{summary}\n{}", ended.output);
}

#[test]
fn the_port_scanner_finds_what_socketeer_scan_finds() {
    let serve = serve();
    let mut ports: Vec<u16> =
        serve.listening.iter().filter(|l| l.transport == "tcp").map(|l| l.addr.port()).collect();
    ports.extend([closed_port(), closed_port()]);
    let spec = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    let theirs = python("port_scanner.py", &["127.0.0.1", &spec], b"");
    let ours = run(&["scan", "127.0.0.1", "-p", &spec, "-o", "list"], b"");
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(theirs.ok()), sorted(ours.ok()));
    assert_eq!(sorted(&theirs.stdout).len(), 5, "echo, daytime, time, chat and its web page listen on TCP");
    assert!(theirs.stderr.contains("2 closed"), "{}", theirs.stderr);
}

#[test]
fn blocking_shows_timeouts_eagain_and_readiness() {
    let serve = serve();
    let out = python("blocking.py", &["127.0.0.1", &port(&serve, "echo", "tcp")], b"");
    let text = out.ok();
    assert!(text.contains("a new socket's timeout: None"), "{text}");
    assert!(text.contains("socket.timeout after"), "{text}");
    assert!(text.contains("BlockingIOError at once (errno 11"), "{text}");
    assert!(text.contains("before sending, ready to read: False"), "{text}");
    assert!(text.contains("after sending, ready to read: True; recv() gives b'ping'"), "{text}");
}

#[test]
fn backlog_shows_that_queued_connections_wait_without_accept() {
    let out = python("backlog.py", &["--timeout", "0.5"], b"");
    let text = out.ok();
    assert!(text.contains("accept() with no client: gave up after"), "{text}");
    assert!(text.contains("non-blocking accept() with no client: BlockingIOError"), "{text}");
    let number_before = |marker: &str| -> usize {
        let line = text.lines().find(|l| l.contains(marker)).unwrap_or_else(|| panic!("{marker}: {text}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| marker.starts_with(w)).unwrap();
        words[at - 1].parse().unwrap_or_else(|_| panic!("{line}"))
    };
    let connected = number_before("clients connected");
    assert!(connected >= 1, "{text}");
    assert_eq!(number_before("of them at once"), connected, "{text}");
}

#[test]
fn reuseaddr_shows_time_wait_blocking_a_restart_without_it() {
    let out = python("reuseaddr.py", &[], b"");
    let text = out.ok();
    assert!(
        text.contains("restart without SO_REUSEADDR: OSError [Errno 98] Address already in use"),
        "{text}"
    );
    assert!(text.contains("restart with SO_REUSEADDR: bound port"), "{text}");
    assert!(text.contains("TIME_WAIT entries on that port: 1"), "{text}");
}
