//! The load generators, briefly, against our own servers.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::chat_cluster::Redis;
use crate::util::{Daemon, closed_port, established_on, eventually, run, socketeer};

#[test]
fn bench_echo_reports_throughput_and_latency_over_tcp_and_udp() {
    let server = Daemon::start(&["echo", "serve", "--port", "0"], 2);
    for (transport, extra) in [("tcp", &["--pipeline", "4"][..]), ("udp", &[][..])] {
        let target = server.addr("echo", transport).to_string();
        let mut args = vec!["bench", "echo", &target, "-c", "4", "-d", "500ms", "-s", "32", "--json"];
        args.extend_from_slice(extra);
        if transport == "udp" {
            args.push("--udp");
        }
        let report = run(&args, b"").json_of("report");
        assert_eq!(report["transport"], transport);
        assert_eq!(report["connections"], 4);
        assert_eq!(report["request_bytes"], 32);
        assert_eq!(report["errors"], 0, "{report}");
        assert!(report["requests"].as_u64().unwrap() > 100, "{report}");
        let latency = &report["latency"];
        assert!(latency["p50_us"].as_u64() <= latency["p99_us"].as_u64());
        assert!(latency["p99_us"].as_u64() <= latency["max_us"].as_u64());
    }
}

#[test]
fn bench_echo_fails_when_the_server_is_not_an_echo_server() {
    // A daytime server answers, but not with an echo of the request: the
    // numbers, then an error that says so, exit 1.
    let server = Daemon::start(&["daytime", "serve", "--port", "0", "--time-port", "0", "--udp"], 2);
    let target = server.addr("time", "udp").to_string();
    let out = run(&["bench", "echo", &target, "--udp", "-c", "1", "-d", "300ms", "-s", "4", "--json"], b"");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let report = out.json_of("report");
    assert_eq!(report["requests"], 0);
    let mismatched = report["mismatched"].as_u64().unwrap();
    assert!(mismatched > 0 && mismatched == report["errors"].as_u64().unwrap(), "{report}");
    let expected = format!(
        "error: no reply matched its request ({mismatched} mismatched); is {target} an echo server?\n"
    );
    assert_eq!(out.stderr, expected);

    // A real server of another protocol over TCP: redis-server without --redis.
    let redis = Redis::start();
    let target = format!("127.0.0.1:{}", redis.port);
    let out = run(&["bench", "echo", &target, "-c", "2", "-d", "300ms"], b"");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stdout.contains("requests: 0 "), "{}", out.stdout);
    assert!(out.stderr.contains("mismatched); is 127.0.0.1:"), "{}", out.stderr);
    assert!(out.stderr.contains(" an echo server?"), "{}", out.stderr);
}

#[test]
fn bench_echo_over_udp_fails_when_nothing_answers() {
    // Nothing listens: the kernel's ICMP refusal, in one line, no empty report.
    let target = format!("127.0.0.1:{}", closed_port());
    let out = run(&["bench", "echo", &target, "--udp", "-c", "2", "-d", "300ms"], b"");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        format!("error: connection refused by {target}; is the server running on that port?\n")
    );

    // Something listens and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let out = run(&["bench", "echo", &target, "--udp", "-c", "1", "-d", "300ms", "--timeout", "100ms"], b"");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("got a reply within 100ms; is "), "{}", out.stderr);
}

#[test]
fn bench_echo_reports_what_it_measured_when_stopped_or_when_the_server_goes() {
    let server = Daemon::start(&["echo", "serve", "--tcp", "--port", "0"], 1);
    let target = server.addr("echo", "tcp").to_string();
    let long_run = ["bench", "echo", &target, "-c", "2", "-d", "60s", "--json"].map(str::to_owned);

    // Ctrl-C: the numbers so far, and success.
    let port = server.addr("echo", "tcp").port();
    let both_connected = || eventually(Duration::from_secs(30), || established_on(port) == 2);
    let child = socketeer().args(&long_run).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(both_connected(), "the load never connected");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stopped_early"], true);
    assert!(report["seconds"].as_f64().unwrap() < 30.0, "{report}");
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");

    // The server goes away: the numbers so far, then the error, exit 1.
    assert!(eventually(Duration::from_secs(30), || established_on(port) == 0), "the first load stayed");
    let measuring = std::thread::spawn(move || run(&long_run.each_ref().map(String::as_str), b""));
    assert!(both_connected(), "the load never connected");
    server.stop_with("TERM");
    let out = measuring.join().unwrap();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.matches("2 of 2 clients failed mid-run").count(), 1, "{}", out.stderr);
    let report = out.json_of("report");
    assert_eq!(report["failed_clients"], 2);
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn bench_chat_fails_when_not_every_message_arrived_and_says_how_to_start_the_server() {
    // The default flood limit drops most of a flat-out sender's lines.
    let server = Daemon::start(&["chat", "serve", "--port", "0"], 1);
    let target = server.addr("chat", "tcp").to_string();
    let out = run(&["bench", "chat", &target, "-c", "3", "-d", "300ms", "--timeout", "300ms"], b"");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stdout.contains(": 3 clients, 1 sender, 0 stalled"), "{}", out.stdout);
    assert!(out.stdout.contains("exactly once, in order: NO"), "{}", out.stdout);
    let stderr = out.stderr.trim_end();
    assert!(!stderr.contains('\n'), "{stderr}");
    assert!(stderr.starts_with("error: not every message reached every recipient exactly once"), "{stderr}");
    assert!(stderr.contains("the server held the load back (! slow down"), "{stderr}");
    assert!(stderr.ends_with("`socketeer chat serve --rate-limit off --max-per-ip off`"), "{stderr}");

    // The per-address cap turns connections away before the run starts.
    let server =
        Daemon::start(&["chat", "serve", "--port", "0", "--rate-limit", "off", "--max-per-ip", "2"], 1);
    let target = server.addr("chat", "tcp").to_string();
    let out = run(&["bench", "chat", &target, "-c", "4", "-d", "300ms"], b"");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("turned a connection away: ! too many connections from your address"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--rate-limit off --max-per-ip off"), "{}", out.stderr);

    // And the server's help shows the flags for benchmarks.
    let help = run(&["chat", "serve", "--help"], b"");
    assert!(help.ok().contains("chat serve --rate-limit off --max-per-ip off"), "{}", help.stdout);
}

#[test]
fn the_readme_bench_chat_examples_name_a_server_they_pass_against() {
    // The README's bench section starts its own chat server for bench chat
    // (`socketeer serve`'s chat keeps the limits a benchmark runs into).
    let readme = include_str!("../README.md");
    let section = readme.split("## bench: load generators").nth(1).unwrap().split("\n## ").next().unwrap();
    let command = |line: &str| -> Vec<String> {
        let line = line.split(" #").next().unwrap().trim().trim_end_matches('&').trim();
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    };
    let serve =
        section.lines().find(|l| l.starts_with("socketeer chat serve")).expect("a chat server to start");
    let mut serve = command(serve);
    let port = serve.iter().position(|a| a == "--port").unwrap() + 1;
    let readme_port = std::mem::replace(&mut serve[port], "0".to_owned());
    let server = Daemon::start(&serve.iter().map(String::as_str).collect::<Vec<_>>(), 1);
    let ours = server.addr("chat", "tcp").to_string();
    let examples: Vec<_> = section
        .lines()
        .filter(|l| l.starts_with(&format!("socketeer bench chat localhost:{readme_port} --")))
        .collect();
    assert!(examples.len() >= 2, "{section}");
    for example in examples {
        let mut args = command(example);
        args[2] = ours.clone();
        args.extend(["--duration", "300ms"].map(str::to_owned));
        let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), b"");
        assert_eq!(out.code(), Some(0), "{example}: {}", out.stderr);
        assert!(out.stdout.contains("exactly once, in order: yes"), "{example}: {}", out.stdout);
    }
}

#[test]
fn size_flags_take_units_like_the_other_size_flags() {
    let server = Daemon::start(&["echo", "serve", "--port", "0"], 2);
    let tcp = server.addr("echo", "tcp").to_string();
    let report = run(&["bench", "echo", &tcp, "-c", "1", "-d", "200ms", "--size", "1KiB", "--json"], b"")
        .json_of("report");
    assert_eq!(report["request_bytes"], 1024, "{report}");
    let udp = server.addr("echo", "udp").to_string();
    let ping = run(&["echo", "ping", &udp, "--udp", "-c", "1", "--size", "2KiB", "--json"], b"");
    assert_eq!(ping.json_of("probe")["bytes"], 2048);
    let too_big = run(&["bench", "echo", &tcp, "--size", "1MiB"], b"");
    assert_eq!(too_big.code(), Some(2));
    assert!(too_big.stderr.contains("'1MiB' is 1048576 bytes; give 1 to 65507"), "{}", too_big.stderr);
}
