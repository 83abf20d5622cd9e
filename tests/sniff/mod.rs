//! `socketeer sniff` on loopback (as root), its pcap files as tshark reads
//! them, and files tshark wrote as we read them.
//!
//! Every capture filters on the ports its own test opened, so other tests'
//! traffic on `lo` is never counted.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Daemon, Finished, eventually, require, run, run_command, socketeer};

/// Starts a capture and waits until its socket is open (the `listening` line).
fn sniff(args: &[&str]) -> Daemon {
    let mut all = vec!["sniff", "--json"];
    all.extend_from_slice(args);
    let capture = Daemon::start(&all, 1);
    let listening: Value = serde_json::from_str(&capture.status_lines()[0]).unwrap();
    assert_eq!(listening["type"], "listening", "{listening}");
    // Every filter here compiles to BPF, so the kernel drops other tests' traffic.
    assert_eq!(listening["kernel_filter"], true, "{listening}");
    capture
}

fn objects(lines: &[String], kind: &str) -> Vec<Value> {
    lines.iter().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|v| v["type"] == kind).collect()
}

/// (sport, dport, flags, payload length) of each TCP packet.
fn tcp_view(packets: &[Value]) -> Vec<(u64, u64, String, u64)> {
    packets
        .iter()
        .map(|p| {
            (
                p["sport"].as_u64().unwrap(),
                p["dport"].as_u64().unwrap(),
                p["tcp"]["flags"].as_str().unwrap().to_owned(),
                p["payload_len"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// tshark's view of a capture file: one line of the given fields per packet.
fn tshark_fields(path: &Path, fields: &[&str]) -> Vec<String> {
    require("tshark", "tshark");
    let mut command = Command::new("tshark");
    command.args(["-n", "-r"]).arg(path).args(["-T", "fields", "-E", "separator=,"]);
    for field in fields {
        command.args(["-e", field]);
    }
    let out = run_command(&mut command, b"");
    out.ok().lines().map(str::to_owned).collect()
}

#[test]
fn a_capture_shows_an_echo_conversation_and_tshark_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("echo.pcap");
    let server = Daemon::start(&["echo", "serve", "--port", "0", "--tcp"], 1);
    let port = server.addr("echo", "tcp").port().to_string();
    let capture = sniff(&["-w", pcap.to_str().unwrap(), "--nano", "--print", "-A", "tcp", "port", &port]);
    let sent = run(&["echo", "send", &format!("127.0.0.1:{port}"), "hello"], b"");
    assert_eq!(sent.ok().trim(), "hello");
    // The connection is closed once `send` returns; its last segments may still be in flight.
    capture.wait_for("both echoes and a FIN", |lines| {
        let packets = objects(lines, "packet");
        packets.iter().filter(|p| p["payload_len"] != 0).count() == 2
            && tcp_view(&packets).iter().any(|v| v.2.contains('F'))
    });
    let stopped = capture.stop_with("INT");
    assert!(stopped.status.success(), "{stopped:?}");

    let packets = objects(&stopped.stdout, "packet");
    let view = tcp_view(&packets);
    let port: u64 = port.parse().unwrap();
    let client = view[0].0;
    // The handshake, in order, and the data both ways.
    assert_eq!(view[0], (client, port, "S".to_owned(), 0), "{view:?}");
    assert_eq!(view[1], (port, client, "S.".to_owned(), 0), "{view:?}");
    assert_eq!(view[2], (client, port, ".".to_owned(), 0), "{view:?}");
    let data: Vec<_> = packets.iter().filter(|p| p["payload_len"] != 0).collect();
    assert_eq!(data.len(), 2, "{view:?}");
    assert_eq!((data[0]["sport"].as_u64(), data[0]["text"].as_str()), (Some(client), Some("hello\n")));
    assert!(packets.iter().filter(|p| p["payload_len"] == 0).all(|p| p.get("text").is_none()));
    assert_eq!((data[1]["sport"].as_u64(), data[1]["text"].as_str()), (Some(port), Some("hello\n")));
    assert!(view.iter().any(|v| v.2.contains('F')), "no FIN: {view:?}");
    assert!(
        packets.iter().all(|p| p["proto"] == "tcp" && p["src"] == "127.0.0.1" && p["dst"] == "127.0.0.1")
    );

    let summary = &objects(&stopped.stdout, "summary")[0];
    assert_eq!(summary["matched"].as_u64(), Some(packets.len() as u64), "{summary}");
    assert_eq!(summary["received"], summary["matched"], "the kernel filter let others through: {summary}");
    assert!(summary["dropped"].is_u64(), "{summary}");

    // tshark reads the file, and sees the same packets: ports, flags and lengths.
    let theirs =
        tshark_fields(&pcap, &["tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack", "tcp.len"]);
    let ours: Vec<String> = view
        .iter()
        .map(|(s, d, flags, len)| {
            format!("{s},{d},{},{},{len}", u8::from(flags.contains('S')), u8::from(flags.contains('.')))
        })
        .collect();
    assert_eq!(theirs, ours);
    let protocols = tshark_fields(&pcap, &["frame.protocols"]);
    assert_eq!(protocols.len(), view.len());
    assert!(protocols.iter().all(|p| p.starts_with("eth:ethertype:ip:tcp")), "{protocols:?}");

    // Reading the file back prints what the capture printed.
    let read = run(&["sniff", "-r", pcap.to_str().unwrap(), "--json", "-A"], b"");
    let again = read.json_lines().into_iter().filter(|v| v["type"] == "packet").collect::<Vec<_>>();
    assert_eq!(again, packets);
}

/// tshark rewrites `ours` as `format`; reading its file gives our packets.
fn read_as_rewritten_by_tshark(ours: &Path, format: &str) -> Vec<Value> {
    let theirs = ours.with_extension(format);
    let mut command = Command::new("tshark");
    command.args(["-n", "-r"]).arg(ours).args(["-F", format, "-w"]).arg(&theirs);
    run_command(&mut command, b"").ok();
    let read = run(&["sniff", "-r", theirs.to_str().unwrap(), "--json"], b"");
    read.json_lines().into_iter().filter(|v| v["type"] == "packet").collect()
}

#[test]
fn files_tshark_writes_read_back_the_same_and_count_stops_a_capture() {
    require("tshark", "tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("udp.pcap");
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port().to_string();
    let capture = sniff(&["-c", "3", "-w", pcap.to_str().unwrap(), "--nano", "udp", "dst", "port", &port]);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for message in ["one", "two", "three", "four", "five"] {
        sender.send_to(message.as_bytes(), receiver.local_addr().unwrap()).unwrap();
    }
    // -c 3: it ends by itself.
    let stopped = capture.stop_with("0");
    assert!(stopped.status.success(), "{stopped:?}");
    let summary = &objects(&stopped.stdout, "summary")[0];
    assert_eq!(summary["matched"], 3, "{summary}");

    let ours = run(&["sniff", "-r", pcap.to_str().unwrap(), "--json"], b"").json_lines();
    let ours: Vec<Value> = ours.into_iter().filter(|v| v["type"] == "packet").collect();
    let lengths: Vec<_> = ours.iter().map(|p| p["payload_len"].as_u64().unwrap()).collect();
    assert_eq!(lengths, [3, 3, 5]);
    assert!(ours.iter().all(|p| p["dport"].as_u64() == Some(port.parse().unwrap())));
    assert_eq!(tshark_fields(&pcap, &["udp.dstport"]), [port.as_str(); 3]);
    // Nanosecond timestamps survive: tshark prints all nine digits.
    let stamps = tshark_fields(&pcap, &["frame.time_epoch"]);
    assert!(stamps.iter().all(|s| s.split('.').nth(1).is_some_and(|f| f.len() == 9)), "{stamps:?}");

    for format in ["pcapng", "nsecpcap"] {
        assert_eq!(read_as_rewritten_by_tshark(&pcap, format), ours, "{format}");
    }
    // Classic pcap keeps microseconds only.
    let without_time = |packets: Vec<Value>| {
        packets
            .into_iter()
            .map(|mut p| p.as_object_mut().unwrap().remove("time").map(|_| p).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(without_time(read_as_rewritten_by_tshark(&pcap, "pcap")), without_time(ours));
}

#[test]
fn a_live_dumpcap_capture_reads_back() {
    require("dumpcap", "tshark");
    let dir = tempfile::tempdir().unwrap();
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    for (name, format) in [("dumpcap.pcapng", None), ("dumpcap.pcap", Some("-P"))] {
        let path = dir.path().join(name);
        let mut dumpcap = Command::new("dumpcap");
        dumpcap.args(["-q", "-i", "lo", "-f", &format!("udp dst port {port}"), "-c", "3", "-w"]).arg(&path);
        let mut child = dumpcap.args(format).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // dumpcap says nothing reliable about when its capture starts: send
        // numbered datagrams until it has its three.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut sent = 0u32;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("dumpcap captured fewer than 3 of {sent} datagrams");
            }
            receiver.send_to(sent.to_string().as_bytes(), ("127.0.0.1", port)).unwrap();
            sent += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        let read = run(&["sniff", "-r", path.to_str().unwrap(), "--json", "-A"], b"");
        let packets: Vec<Value> = read.json_lines().into_iter().filter(|v| v["type"] == "packet").collect();
        assert_eq!(packets.len(), 3, "{name}: {packets:?}");
        assert!(packets.iter().all(|p| p["dport"] == port && p["proto"] == "udp"), "{name}");
        let numbers: Vec<u32> =
            packets.iter().map(|p| p["text"].as_str().unwrap().parse().unwrap()).collect();
        assert_eq!(numbers, [numbers[0], numbers[0] + 1, numbers[0] + 2], "{name}");
    }
}

#[test]
fn stats_count_protocols_ports_and_talkers() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("mixed.pcap");
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let capture = sniff(&["-c", "4", "-w", pcap.to_str().unwrap(), "udp", "port", &port.to_string()]);
    let sender = UdpSocket::bind("127.0.0.2:0").unwrap();
    for _ in 0..4 {
        sender.send_to(b"datagram", ("127.0.0.1", port)).unwrap();
    }
    assert!(capture.stop_with("0").status.success());
    let out = run(&["sniff", "-r", pcap.to_str().unwrap(), "--stats", "--json"], b"");
    let stats = out.json_of("stats");
    assert_eq!(stats["protocols"][0]["proto"], "udp");
    assert_eq!(stats["protocols"][0]["packets"], 4);
    let ports = stats["ports"].as_array().unwrap();
    assert!(ports.iter().any(|p| p["port"] == port && p["packets"] == 4), "{ports:?}");
    assert_eq!(stats["talkers"][0]["addr"], "127.0.0.2");
    assert_eq!(stats["talkers"][0]["bytes"], 4 * (14 + 20 + 8 + 8));
    let human = run(
        &["sniff", "-r", pcap.to_str().unwrap(), "--stats", "udp", "and", "src", "host", "127.0.0.2"],
        b"",
    );
    assert!(human.ok().contains("TOP TALKER"), "{human:?}");
    assert!(human.stderr.contains("4 packets read from"), "{human:?}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = run(&["sniff", "tcp", "and", "prot", "80"], b"");
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("bad filter at 'prot' (character 9)"), "{}", out.stderr);

    let out = run(&["sniff", "-i", "nosuch0"], b"");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("no interface named 'nosuch0'"), "{}", out.stderr);

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file").unwrap();
    let out = run(&["sniff", "-r", junk.to_str().unwrap()], b"");
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("not a pcap or pcapng file"), "{}", out.stderr);
}

#[test]
fn a_file_cut_short_prints_what_it_holds_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("cut.pcap");
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port().to_string();
    let capture = sniff(&["-c", "2", "-w", pcap.to_str().unwrap(), "udp", "port", &port]);
    for _ in 0..2 {
        receiver.send_to(b"x", receiver.local_addr().unwrap()).unwrap();
    }
    assert!(capture.stop_with("0").status.success());
    let bytes = std::fs::read(&pcap).unwrap();
    std::fs::write(&pcap, &bytes[..bytes.len() - 3]).unwrap();
    let out = run(&["sniff", "-r", pcap.to_str().unwrap()], b"");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("the file is cut short"), "{}", out.stderr);
}

#[test]
fn without_cap_net_raw_it_says_so() {
    require("setpriv", "util-linux");
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(socketeer().get_program())
        .args(["sniff", "-c", "1"]);
    let out: Finished = run_command(&mut command, b"");
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("raw sockets need CAP_NET_RAW: run as root"), "{}", out.stderr);
}

#[test]
fn a_short_snap_length_keeps_tcp_headers_and_real_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("snap.pcap");
    let server = Daemon::start(&["echo", "serve", "--port", "0", "--tcp"], 1);
    let port = server.addr("echo", "tcp").port().to_string();
    let capture = sniff(&["-s", "64", "-w", pcap.to_str().unwrap(), "--print", "tcp", "port", &port]);
    let message = "x".repeat(300);
    let sent = run(&["echo", "send", &format!("127.0.0.1:{port}"), &message], b"");
    assert_eq!(sent.ok().trim(), message);
    capture.wait_for("both 301-byte segments", |lines| {
        objects(lines, "packet").iter().filter(|p| p["payload_len"] == 301).count() == 2
    });
    assert!(capture.stop_with("INT").status.success());

    // Read back with a port filter: every frame was cut to 64 bytes, inside
    // the TCP options, and still decodes and matches as TCP.
    let read = run(&["sniff", "-r", pcap.to_str().unwrap(), "--json", "tcp", "port", &port], b"");
    let packets: Vec<Value> = read.json_lines().into_iter().filter(|v| v["type"] == "packet").collect();
    let view = tcp_view(&packets);
    let port: u64 = port.parse().unwrap();
    assert_eq!((view[0].1, view[0].2.as_str()), (port, "S"), "{view:?}");
    assert_eq!((view[1].0, view[1].2.as_str()), (port, "S."), "{view:?}");
    assert!(packets.iter().all(|p| p["caplen"] == 64), "{packets:?}");
    // The file keeps each frame's real length, as tshark also reads it.
    let data: Vec<_> = packets.iter().filter(|p| p["payload_len"] == 301).collect();
    assert_eq!(data.len(), 2, "{view:?}");
    assert!(data.iter().all(|p| p["len"].as_u64().unwrap() > 14 + 20 + 20 + 301), "{data:?}");
    let lengths: Vec<String> = packets.iter().map(|p| p["len"].to_string()).collect();
    assert_eq!(tshark_fields(&pcap, &["frame.len"]), lengths);
}

#[test]
fn written_packets_reach_the_file_while_capturing_and_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("live.pcap");
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port().to_string();
    let capture = sniff(&["-w", pcap.to_str().unwrap(), "udp", "port", &port]);
    let packets_in_file = || {
        let read = run(&["sniff", "-r", pcap.to_str().unwrap(), "--json"], b"");
        read.json_lines().into_iter().filter(|v| v["type"] == "packet").count()
    };
    for sent in 1..=2 {
        receiver.send_to(b"live", receiver.local_addr().unwrap()).unwrap();
        // Readable while the capture runs (nothing is buffered until exit).
        assert!(eventually(Duration::from_secs(10), || packets_in_file() == sent), "{sent} datagrams");
    }
    let killed = capture.stop_with("KILL");
    assert!(!killed.status.success());
    assert_eq!(packets_in_file(), 2);
}

mod corpus;
mod differential;
mod files;
mod flags;
mod live;
