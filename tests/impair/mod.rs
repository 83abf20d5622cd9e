//! The impairment proxy, relaying real datagrams between real sockets.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::util::{Daemon, run};

mod control;
mod paths;
mod tun;

fn echo_server() -> Daemon {
    Daemon::start(&["echo", "serve", "--udp", "--port", "0"], 1)
}

/// A running proxy and its control socket (a Unix socket in a directory of its own).
struct Proxy {
    daemon: Daemon,
    control: String,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Proxy {
    type Target = Daemon;

    fn deref(&self) -> &Daemon {
        &self.daemon
    }
}

/// A proxy in front of `upstream` with `extra` options and a control socket.
fn proxy(upstream: SocketAddr, extra: &[&str]) -> Proxy {
    proxy_on("127.0.0.1:0", upstream, extra)
}

/// A proxy listening on `listen`.
fn proxy_on(listen: &str, upstream: SocketAddr, extra: &[&str]) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("impair.sock").to_str().unwrap().to_owned();
    let to = upstream.to_string();
    let mut args = vec!["impair", "--listen", listen, "--to", &to, "--control", &control];
    args.extend_from_slice(extra);
    if !extra.contains(&"--seed") {
        args.extend(["--seed", "1"]);
    }
    // Status lines: the proxy, up, down and control; in JSON, the proxy and control.
    let daemon = Daemon::start(&args, if extra.contains(&"--json") { 2 } else { 4 });
    Proxy { daemon, control, _dir: dir }
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    socket
}

/// Everything that arrives on `socket` until it is quiet for the read timeout.
fn drain(socket: &UdpSocket) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65_536];
    while let Ok(len) = socket.recv(&mut buf) {
        got.push(buf[..len].to_vec());
    }
    got
}

fn ctl(proxy: &Proxy, words: &[&str]) -> String {
    run(&[&["impair", "ctl", &proxy.control][..], words].concat(), b"").ok().trim().to_owned()
}

fn stats(proxy: &Proxy) -> serde_json::Value {
    let stats: serde_json::Value = serde_json::from_str(&ctl(proxy, &["stats"])).unwrap();
    assert_eq!(stats["type"], "stats", "typed like every JSON record: {stats}");
    stats
}

#[test]
fn relays_each_client_through_its_own_upstream_socket() {
    let echo = echo_server();
    let proxy = proxy(echo.addr("echo", "udp"), &[]);
    assert!(
        proxy.status_lines()[1..3].iter().all(|l| l.ends_with("no impairment")),
        "{:?}",
        proxy.status_lines()
    );
    let target = proxy.addr("impair", "udp");
    let (a, b) = (client(), client());
    for i in 0..20u8 {
        a.send_to(&[b'a', i], target).unwrap();
        b.send_to(&[b'b', i], target).unwrap();
    }
    let (got_a, got_b) = (drain(&a), drain(&b));
    assert_eq!(got_a.len(), 20);
    assert!(got_a.iter().enumerate().all(|(i, d)| d == &[b'a', i as u8]), "a got someone else's replies");
    assert!(got_b.iter().enumerate().all(|(i, d)| d == &[b'b', i as u8]) && got_b.len() == 20);
    let s = stats(&proxy);
    assert_eq!((s["clients"].as_u64(), s["up"]["forwarded"].as_u64()), (Some(2), Some(40)));
    // Our own echo client works through it too.
    let out = run(&["echo", "send", &target.to_string(), "--udp", "through the proxy"], b"");
    assert_eq!(out.ok(), "through the proxy\n");
}

#[test]
fn the_link_can_be_flapped_through_the_control_socket() {
    let echo = echo_server();
    let proxy = proxy(echo.addr("echo", "udp"), &[]);
    let target = proxy.addr("impair", "udp");
    let socket = client();
    assert_eq!(ctl(&proxy, &["set", "loss=100%"]), "ok up: loss 100%; down: loss 100%");
    for _ in 0..10 {
        socket.send_to(b"into the void", target).unwrap();
    }
    assert!(drain(&socket).is_empty(), "a dead link delivered");
    assert_eq!(ctl(&proxy, &["set", "loss=0%"]), "ok up: no impairment; down: no impairment");
    socket.send_to(b"back", target).unwrap();
    assert_eq!(drain(&socket), [b"back".to_vec()]);
    assert_eq!(stats(&proxy)["up"]["dropped_loss"], 10);
    assert_eq!(ctl(&proxy, &["show"]), "up: no impairment; down: no impairment");
    let refused = [
        (&["set", "loss=lots"][..], "loss: 'lots' is not a probability"),
        (&["set", "loss"], "loss needs a value, as in loss=VALUE"),
        (&["frobnicate"], "unknown command 'frobnicate'"),
    ];
    for (words, why) in refused {
        let out = run(&[&["impair", "ctl", &proxy.control][..], words].concat(), b"");
        assert_eq!(out.code(), Some(2), "{words:?}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{}", out.stderr);
    }
    assert_eq!(ctl(&proxy, &["show"]), "up: no impairment; down: no impairment", "refusals changed nothing");
    // A server that is not a control socket is called out.
    let tcp_echo = Daemon::start(&["echo", "serve", "--tcp", "--port", "0"], 1);
    let echo_tcp = tcp_echo.addr("echo", "tcp").to_string();
    let wrong = run(&["impair", "ctl", &echo_tcp, "show"], b"");
    assert_eq!(wrong.code(), Some(1));
    assert!(
        wrong.stderr.contains("it echoed the command back; is it a proxy's --control address?"),
        "{}",
        wrong.stderr
    );
}

#[test]
fn a_proxy_that_would_forward_to_itself_is_refused() {
    let out = run(&["impair", "--listen", "127.0.0.1:9099", "--to", "localhost:9099"], b"");
    assert_eq!(out.code(), Some(2));
    assert!(out.stderr.contains("the proxy would forward to itself"), "{}", out.stderr);
}

#[test]
fn the_same_seed_gives_the_same_losses_through_the_proxy() {
    let acks = Daemon::start(&["udp", "serve", "--port", "0", "--loss", "0%"], 1);
    let upstream = acks.addr("udp", "udp");
    // Two proxies with one seed, driven side by side with the same messages.
    let attempts = || {
        let proxy = proxy(upstream, &["--up-loss", "30%", "--seed", "5"]);
        let target = proxy.addr("impair", "udp").to_string();
        let out =
            run(&["udp", "send", &target, "-c", "20", "--timeout", "500ms", "--retries", "8", "--json"], b"");
        let messages = out.json_lines().into_iter().filter(|l| l["type"] == "message");
        messages.map(|l| l["attempts"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    let (first, second) = std::thread::scope(|s| {
        let (a, b) = (s.spawn(attempts), s.spawn(attempts));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(first, second);
    assert!(first.iter().any(|&a| a > 1), "30% loss caused no retry: {first:?}");
}

#[test]
fn delay_is_never_shorter_than_asked() {
    let echo = echo_server();
    let proxy = proxy(echo.addr("echo", "udp"), &["--delay", "40ms", "--jitter", "5ms"]);
    assert_eq!(proxy.status_lines()[1], "up: delay 40ms ± 5ms");
    let target = proxy.addr("impair", "udp").to_string();
    let out = run(&["echo", "ping", &target, "--udp", "-c", "5", "-i", "10ms", "--json"], b"");
    let rtt = &out.json_of("summary")["rtt_ms"];
    // Out and back: at least twice the delay less the jitter.
    assert!(rtt["min"].as_f64().unwrap() >= 70.0, "{rtt}");
}

#[test]
fn duplication_corruption_and_reordering_show_in_what_arrives() {
    let echo = echo_server();
    let upstream = echo.addr("echo", "udp");
    let dup = proxy(upstream, &["--down-duplicate", "100%"]);
    let socket = client();
    socket.send_to(b"twice", dup.addr("impair", "udp")).unwrap();
    assert_eq!(drain(&socket), [b"twice".to_vec(), b"twice".to_vec()]);

    let corrupt = proxy(upstream, &["--up-corrupt", "100%"]);
    let sent = [0u8; 32];
    socket.send_to(&sent, corrupt.addr("impair", "udp")).unwrap();
    let got = drain(&socket);
    let flipped: u32 = got[0].iter().map(|b| b.count_ones()).sum();
    assert_eq!((got.len(), flipped), (1, 1), "exactly one bit flipped");

    let reorder = proxy(upstream, &["--up-reorder", "30%", "--up-reorder-distance", "2"]);
    let target = reorder.addr("impair", "udp");
    for i in 0..100u8 {
        socket.send_to(&[i], target).unwrap();
    }
    let order: Vec<u8> = drain(&socket).into_iter().map(|d| d[0]).collect();
    assert_eq!(
        order.iter().copied().collect::<HashSet<_>>().len(),
        100,
        "reordering lost or doubled datagrams"
    );
    assert_ne!(order, (0..100).collect::<Vec<u8>>(), "nothing was reordered");
    assert!(stats(&reorder)["up"]["reordered"].as_u64().unwrap() > 10);
}

#[test]
fn a_rate_limit_queues_and_drops_at_the_tail() {
    let echo = echo_server();
    let proxy = proxy(echo.addr("echo", "udp"), &["--up-rate", "100kB/s", "--up-queue", "10KiB"]);
    assert_eq!(proxy.status_lines()[1], "up: rate 100kB/s queue 10KiB");
    let socket = client();
    let target = proxy.addr("impair", "udp");
    for _ in 0..100 {
        socket.send_to(&[7u8; 1000], target).unwrap();
    }
    let delivered = drain(&socket).len() as u64;
    let s = stats(&proxy);
    let up = &s["up"];
    assert_eq!(up["received"], 100);
    assert_eq!(up["forwarded"].as_u64().unwrap() + up["dropped_queue"].as_u64().unwrap(), 100);
    assert_eq!(up["forwarded"].as_u64().unwrap(), delivered);
    // A 10 KiB queue holds ten 1000-byte datagrams, plus the one on the wire
    // and the few that drained while the burst was still arriving.
    assert!((10..=20).contains(&delivered), "{delivered} delivered: {s}");
}

#[test]
fn oversize_datagrams_are_counted_and_dropped_not_truncated() {
    let echo = echo_server();
    let proxy = proxy(echo.addr("echo", "udp"), &["--max-datagram", "1000"]);
    let socket = client();
    let target = proxy.addr("impair", "udp");
    socket.send_to(&[1u8; 1001], target).unwrap();
    socket.send_to(&[2u8; 1000], target).unwrap();
    assert_eq!(drain(&socket), [vec![2u8; 1000]]);
    assert_eq!(stats(&proxy)["oversize"], 1);
}

#[test]
fn an_upstream_that_is_down_does_not_stop_the_proxy() {
    // Reserve a port for a server that is not there yet.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let upstream: SocketAddr = ([127, 0, 0, 1], port).into();
    let proxy = proxy(upstream, &[]);
    let socket = client();
    let target = proxy.addr("impair", "udp");
    for _ in 0..5 {
        socket.send_to(b"anyone?", target).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(drain(&socket).is_empty());
    assert!(stats(&proxy)["unreachable"].as_u64().unwrap() > 0, "the ICMP errors were not counted");
    let late = Daemon::start(&["echo", "serve", "--udp", "--port", &port.to_string()], 1);
    socket.send_to(b"now?", target).unwrap();
    assert_eq!(drain(&socket), [b"now?".to_vec()]);
    drop(late);
}

#[test]
fn bad_options_are_refused_at_start() {
    for (args, needle) in [
        (&["--loss", "120%"][..], "'120%' is out of range"),
        (&["--queue", "1MB"], "needs a rate limit"),
        (&["--up-delay", "soon"], "'soon' is not a duration"),
        (&["--burst-loss", "1%"], "not a burst-loss model"),
        (&["--rate", "fast"], "'fast' is not a rate"),
        // Issue 14: these panicked the relay thread (Instant overflow, from_secs_f64).
        (&["--delay", "500000000000years"], "too large; the largest duration is 365d"),
        (&["--rate", "0.00000000000000000001"], "too small; the smallest rate is 1bit/s"),
    ] {
        let out =
            run(&[&["impair", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9"][..], args].concat(), b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {out:#?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    let out = run(&["impair", "--listen", "127.0.0.1:0", "--to", "localhost"], b"");
    assert_eq!(out.code(), Some(2));
    assert!(out.stderr.contains("--to localhost needs a port"), "{}", out.stderr);
}

#[test]
fn probabilities_are_echoed_in_one_form_and_counters_printed_on_exit() {
    let echo = echo_server();
    let proxy = proxy(
        echo.addr("echo", "udp"),
        &["--loss", "0.05", "--down-loss", "2.5%", "--json", "--stats", "100ms"],
    );
    let started: serde_json::Value = serde_json::from_str(&proxy.status_lines()[0]).unwrap();
    assert_eq!(started["service"], "impair");
    assert_eq!(started["up"]["loss"]["rate"], 0.05);
    assert_eq!(started["down"]["loss"]["rate"], 0.025);
    let socket = client();
    socket.send_to(b"counted", proxy.addr("impair", "udp")).unwrap();
    // The reply may be lost (5% each way); draining also gives the periodic counters time.
    drain(&socket);
    let stopped = proxy.daemon.stop_with("TERM");
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let stats: Vec<serde_json::Value> =
        stopped.stdout.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(stats.len() >= 2, "periodic and final counters: {stats:?}");
    assert!(stats.iter().all(|s| s["type"] == "stats"));
    assert_eq!(stats.last().unwrap()["up"]["received"], 1);

    let human =
        Daemon::start(&["impair", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--loss", "0.05"], 3);
    assert_eq!(human.status_lines()[1], "up: loss 5%");
}
