//! `chat serve` against hostile and broken clients, and its limits: long and
//! slow lines, floods, caps per address, silent connections, slow readers,
//! look-alike names, forged notices and IRC clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use crate::chat::{Client, WAIT, server};
use crate::util::{eventually, run};

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
    let notices = alice.expect("*** in lobby (2): alice bob");
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
        probe.read_line(&mut line).is_ok() && line.starts_with("*** welcome")
    }));

    let server = self::server(&["--max-per-ip", "2"]);
    let _a = Client::named(&server, "a");
    let _b = Client::named(&server, "b");
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
    Client::from_stream(connect_from(source, to))
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
fn a_connection_that_never_sends_a_whole_line_is_closed_after_the_registration_timeout() {
    let server = server(&["--register-timeout", "1s"]);
    let mut silent = Client::connect(&server);
    // Bytes that are not a whole line do not count.
    silent.send_raw(b"h");
    assert_eq!(silent.until_closed(), ["! no whole line received within 1s of connecting; closing"]);
}

#[test]
fn a_line_trickled_a_byte_at_a_time_is_cut_off_slowloris() {
    let server = server(&["--line-timeout", "1s"]);
    let mut slow = Client::named(&server, "slow");
    let mut watcher = Client::named(&server, "watcher");
    // One byte every 100 ms, never a newline: each byte used to reset the idle timer.
    let mut raw = slow.raw();
    thread::spawn(move || {
        for _ in 0..200 {
            if raw.write_all(b"x").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let last = slow.until_closed().pop();
    assert_eq!(last.as_deref(), Some("! a line took more than 1s to arrive whole; closing"));
    watcher.expect("*** slow left lobby (line too slow)");
}

#[test]
fn a_reader_that_never_speaks_again_stays_and_is_pinged() {
    let server = server(&["--ping-interval", "300ms"]);
    let mut reader = Client::named(&server, "reader");
    let mut talker = Client::named(&server, "talker");
    // A person at nc ignores the pings: they come, and the connection stays.
    for n in 1..=3 {
        reader.expect(&format!("PING {n}"));
    }
    talker.send("still there?");
    reader.expect("<talker> still there?");
}

#[test]
fn silent_connections_are_counted_per_address() {
    let server = server(&["--max-per-ip", "4"]);
    let addr = server.addr("chat", "tcp");
    let mut first = Client::connect(&server);
    let _second = Client::connect(&server);
    let mut refused = String::new();
    TcpStream::connect(addr).unwrap().read_to_string(&mut refused).unwrap();
    assert_eq!(
        refused,
        "! too many connections from your address have not sent a line yet (at most 2); try again later\n"
    );
    // Once one has spoken, another may come.
    first.send("/who");
    first.expect(&format!("*** in lobby (2): {} {}", first.nick, _second.nick).replace("  ", " "));
    Client::connect(&server);
}

#[test]
fn connections_come_and_go_unannounced_and_refusals_are_summed_up_in_the_log() {
    let server = server(&["--max-clients", "30"]);
    let addr = server.addr("chat", "tcp");
    let mut alice = Client::named(&server, "alice");
    // Connect and close at once, from another address, more often than it may.
    let mut turned_away = Vec::new();
    for _ in 0..25 {
        let mut quick = connect_from("127.0.0.3", addr);
        let mut first = String::new();
        BufReader::new(&mut quick).read_line(&mut first).unwrap();
        if first.starts_with('!') {
            turned_away.push(first);
        }
    }
    assert_eq!(turned_away.len(), 5, "a burst of 20, then 10 a second: {turned_away:?}");
    assert!(turned_away[0].starts_with("! too many new connections from your address (at most 10 a second)"));
    // A connection that stays silent is announced after a grace, and pinged then.
    let mut lurker = Client::connect(&server);
    alice.expect(&format!("*** {} joined lobby", lurker.nick));
    lurker.expect("PING 1");
    alice.send("/who");
    let before = alice.expect(&format!("*** in lobby (2): alice {}", lurker.nick));
    assert!(before.is_empty(), "no joins or leaves for the ones that came and went: {before:?}");
    let stopped = server.stop_with("TERM");
    assert_eq!(stopped.stderr.matches("refusing connection").count(), 1, "{}", stopped.stderr);
    assert!(stopped.stderr.contains("refused 4 more connections in"), "{}", stopped.stderr);
}

#[test]
fn a_full_server_names_the_flag_that_raises_it() {
    let server = server(&["--max-clients", "1"]);
    let _only = Client::named(&server, "only");
    let mut refused = String::new();
    TcpStream::connect(server.addr("chat", "tcp")).unwrap().read_to_string(&mut refused).unwrap();
    assert_eq!(refused, "! the server is full (1 clients); try again later\n");
    assert!(eventually(WAIT, || server.stderr().contains("(raise --max-clients)")), "{}", server.stderr());
    assert!(!server.stderr().contains("--max-connections"), "{}", server.stderr());
}

#[test]
fn actions_cannot_pass_for_server_notices() {
    let server = server(&[]);
    let mut impostor = Client::named(&server, "server");
    let mut bob = Client::named(&server, "bob");
    impostor.send("/me shutting down");
    bob.expect("* server shutting down");
    impostor.send("/me is now known as alice");
    bob.expect("* server is now known as alice");
    impostor.send("/nick carol");
    bob.expect("*** server is now known as carol");
}

#[test]
fn look_alike_nicknames_are_refused() {
    let server = server(&[]);
    let _alice = Client::named(&server, "alice");
    let mut mallory = Client::connect(&server);
    for lookalike in [
        "\u{430}lice",
        "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
        "\u{1d41a}\u{1d425}\u{1d422}\u{1d41c}\u{1d41e}",
    ] {
        mallory.send(&format!("/nick {lookalike}"));
        mallory.expect(&format!("! the nickname {lookalike} is taken; pick another"));
    }
}

#[test]
fn a_crlf_line_may_be_as_long_as_the_limit_and_a_note_to_oneself_comes_once() {
    let server = server(&["--max-line", "16"]);
    let mut alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    alice.send_raw(b"0123456789abcdef\r\n0123456789abcdefg\r\n");
    bob.expect("<alice> 0123456789abcdef");
    alice.expect("! line too long (the limit is 16 bytes); skipped to its end");
    alice.send("/msg alice note");
    alice.send("/who");
    assert_eq!(alice.expect("*** in lobby (2): alice bob"), ["*alice* note"]);
}

/// A raw connection from `source` (a loopback address).
pub fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

#[test]
fn a_burst_bigger_than_the_old_queue_reaches_every_reader() {
    let server = server(&["--rate-limit", "off", "--max-per-ip", "off"]);
    let target = server.addr("chat", "tcp").to_string();
    // 20,000 lines of 100 bytes from one sender: about 2.4 MB, ten times the old 256 KiB queue.
    let args = ["bench", "chat", &target, "--clients", "5", "--burst", "20000", "--size", "100", "--json"];
    let report = run(&args, b"").json_of("report");
    assert_eq!(report["receivers_dropped"], 0, "{report}");
    assert_eq!(report["exactly_once_in_order"], true, "{report}");
    assert_eq!(report["deliveries"], 20_000 * 4, "{report}");
}

#[test]
fn a_reader_that_falls_behind_is_told_why_and_nothing_piles_up_in_the_kernel_for_it() {
    crate::util::require("ss", "iproute2");
    let server = server(&["--rate-limit", "off", "--queue", "1MiB"]);
    let mut flooder = Client::named(&server, "flooder");
    // A reader with a small receive buffer, reading slowly.
    let slow = {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&server.addr("chat", "tcp").into()).unwrap();
        Client::from_stream(socket.into())
    };
    let mut slow = slow;
    slow.send("/nick slow");
    let port = server.addr("chat", "tcp").port();
    let line = format!("{}\n", "x".repeat(1000));
    let flood: String = line.repeat(4000);
    let mut raw = flooder.raw();
    let flooding = thread::spawn(move || raw.write_all(flood.as_bytes()));
    // While it floods, the server's send buffer for each client stays small.
    let skmem = std::process::Command::new("ss")
        .args(["-tmnH", "state", "established", &format!("( sport = :{port} )")])
        .output()
        .unwrap();
    let skmem = String::from_utf8_lossy(&skmem.stdout).into_owned();
    assert_eq!(skmem.matches(",tb").count(), 2, "both clients' sockets: {skmem}");
    for tb in skmem.split(",tb").skip(1).map(|rest| rest.split(',').next().unwrap().parse::<u64>().unwrap()) {
        assert!(tb <= 128 * 1024, "a send buffer of {tb} bytes: {skmem}");
    }
    let mut lines = 0;
    let told = loop {
        let mut got = String::new();
        match slow.reader_line(&mut got) {
            Some(0) | None => break None,
            Some(_) if got.starts_with("! ") => break Some(got),
            Some(_) => lines += 1,
        }
        if lines % 64 == 0 {
            thread::sleep(Duration::from_millis(2));
        }
    };
    let told = told.unwrap_or_else(|| panic!("closed after {lines} lines without a reason"));
    assert!(told.starts_with("! you read too slowly: more than 1MiB waited for it"), "{told}");
    flooding.join().unwrap().unwrap();
    flooder.send("/who");
    flooder.expect("*** in lobby (1): flooder");
    // The log line is read from the server's stderr by another thread: wait for it.
    let logged =
        eventually(WAIT, || server.stderr().contains("disconnecting a client: more than 1MiB waited"));
    assert!(logged, "{}", server.stderr());
}
