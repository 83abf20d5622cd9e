//! Issue 18: live captures through the TPACKET_V3 ring, in network
//! namespaces of their own: 802.1Q tags that the kernel takes out of frames
//! are put back (files hold frames as they were on the wire, lines and JSON
//! show the VLAN id), and `-i any` captures every interface with Linux
//! cooked headers that tcpdump reads.

use std::net::UdpSocket;
use std::process::Command;

use serde_json::Value;

use crate::scan::fixture::in_private_netns;
use crate::util::{Daemon, require, run, run_command};

/// Runs `ip` with `args` (space-separated), which must succeed.
fn ip(args: &str) {
    let status = Command::new("ip").args(args.split(' ')).status().unwrap();
    assert!(status.success(), "ip {args} failed");
}

/// Starts `socketeer sniff --json ARGS` and waits for its `listening` line.
fn capture(args: &[&str]) -> Daemon {
    let mut all = vec!["sniff", "--json"];
    all.extend_from_slice(args);
    let capture = Daemon::start(&all, 1);
    let listening: Value = serde_json::from_str(&capture.status_lines()[0]).unwrap();
    assert_eq!(listening["type"], "listening", "{listening}");
    capture
}

/// The packets a capture printed before it stopped by itself (`-c`).
fn packets_of(capture: Daemon) -> Vec<Value> {
    let lines =
        capture.wait_for("the capture's summary", |lines| lines.iter().any(|l| l.contains("\"summary\"")));
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "packet")
        .collect()
}

/// Sends one Ethernet frame (hex) out of `interface` through a packet socket.
fn inject(interface: &str, frame_hex: &str) {
    require("python3", "python3");
    let script = "import socket, sys\n\
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
        s.bind((sys.argv[1], 0))\n\
        s.send(bytes.fromhex(sys.argv[2]))\n";
    let mut python = Command::new("python3");
    python.args(["-c", script, interface, frame_hex]);
    run_command(&mut python, b"").ok();
}

#[test]
fn vlan_tags_are_kept_in_files_and_shown() {
    require("tcpdump", "tcpdump");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tagged.pcap");
    let any_file = dir.path().join("tagged-any.pcap");
    in_private_netns(|| {
        // A veth pair: a tagged frame sent into one end reaches the other
        // end's sockets with its tag taken out (the kernel keeps it in the
        // frame's metadata, as NICs that strip tags do).
        ip("link add sniff0 type veth peer name sniff1");
        for link in ["sniff0", "sniff1"] {
            ip(&format!("link set {link} up"));
        }
        let on_sniff1 = capture(&[
            "-i",
            "sniff1",
            "-c",
            "1",
            "--print",
            "-w",
            file.to_str().unwrap(),
            "vlan 100 and arp",
        ]);
        // And on every interface: the frame leaving sniff0 with its tag in
        // its bytes, and arriving on sniff1 with its tag taken out.
        let everywhere = capture(&[
            "-i",
            "any",
            "-c",
            "2",
            "--print",
            "-w",
            any_file.to_str().unwrap(),
            "vlan 100 and arp",
        ]);
        // An ARP request for 10.18.0.2 from 10.18.0.1, broadcast on VLAN 100.
        let frame = concat!(
            "ffffffffffff",
            "02000000000a",
            "8100",
            "0064",
            "0806",
            "0001080006040001",
            "02000000000a",
            "0a120001",
            "000000000000",
            "0a120002"
        );
        inject("sniff0", frame);
        let packets = packets_of(on_sniff1);
        assert_eq!(packets.len(), 1, "{packets:?}");
        assert_eq!(packets[0]["vlan"], serde_json::json!([100]), "{}", packets[0]);
        assert_eq!((packets[0]["proto"].as_str(), packets[0]["len"].as_u64()), (Some("arp"), Some(46)));
        let packets = packets_of(everywhere);
        let seen: Vec<(&str, &str, &Value)> = packets
            .iter()
            .map(|p| (p["interface"].as_str().unwrap(), p["direction"].as_str().unwrap(), &p["vlan"]))
            .collect();
        let tagged = serde_json::json!([100]);
        assert_eq!(seen, [("sniff0", "Out", &tagged), ("sniff1", "B", &tagged)], "{packets:?}");
    });
    // tcpdump reads the tag where it was put back (it has no `vlan` filter
    // for cooked captures), and our lines are its, -e or not. (Names are
    // this namespace's for the other's indexes, in both.)
    for flags in [&["-nn", "-t"][..], &["-nn", "-t", "-e"], &["-nn", "-t", "-e", "-q"], &["-nn", "-t", "-q"]]
    {
        let mut tcpdump = Command::new("tcpdump");
        tcpdump.args(flags).arg("-r").arg(&any_file);
        let theirs = run_command(&mut tcpdump, b"");
        let lines: Vec<&str> = theirs.ok().lines().collect();
        assert!(lines.len() == 2 && lines.iter().all(|l| l.contains("Request who-has")), "{theirs:?}");
        let mut args = vec!["sniff", "-r", any_file.to_str().unwrap()];
        args.extend_from_slice(flags);
        assert_eq!(run(&args, b"").ok(), theirs.ok(), "sniff {flags:?} against tcpdump");
    }
    let mut tcpdump = Command::new("tcpdump");
    tcpdump.args(["-nn", "-e", "-t", "-r"]).arg(&file);
    let theirs = run_command(&mut tcpdump, b"");
    assert!(
        theirs.ok().contains("ethertype 802.1Q (0x8100), length 46: vlan 100, p 0, ethertype ARP"),
        "{theirs:?}"
    );
    let ours = run(&["sniff", "-nn", "-e", "-t", "-r", file.to_str().unwrap()], b"");
    assert_eq!(ours.ok(), theirs.ok(), "the same line as tcpdump -e");
}

#[test]
fn any_captures_every_interface_with_cooked_headers() {
    require("tcpdump", "tcpdump");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("any.pcap");
    in_private_netns(|| {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = receiver.local_addr().unwrap().port();
        let filter = format!("udp port {port}");
        let capture =
            capture(&["-i", "any", "-c", "2", "--print", "-v", "-w", file.to_str().unwrap(), &filter]);
        receiver.send_to(b"everywhere", receiver.local_addr().unwrap()).unwrap();
        receiver.send_to(b"everywhere", receiver.local_addr().unwrap()).unwrap();
        let packets = packets_of(capture);
        // Loopback shows each frame leaving and arriving; as libpcap does on
        // `any` too, only the arriving copy is kept.
        let details: Vec<&str> = packets.iter().map(|p| p["details"][0].as_str().unwrap()).collect();
        assert!(details.len() == 2 && details.iter().all(|d| d.starts_with("cooked v2 In")), "{details:?}");
        assert!(packets.iter().all(|p| p["dport"] == port), "{packets:?}");
        assert!(packets.iter().all(|p| p["interface"] == "lo" && p["direction"] == "In"), "{packets:?}");
    });
    // Each line starts with the interface and the direction, as tcpdump's
    // do (issue 18): `lo    In  IP 127.0.0.1.X > ...`, and with -e the
    // cooked header's index, address and EtherType.
    for flags in [&["-nn"][..], &["-nn", "-e"], &["-nn", "-e", "-q"]] {
        let mut tcpdump = Command::new("tcpdump");
        tcpdump.args(flags).arg("-r").arg(&file);
        let theirs = run_command(&mut tcpdump, b"");
        let lines: Vec<&str> = theirs.ok().lines().collect();
        assert_eq!(lines.len(), 2, "{theirs:?}");
        assert!(
            lines.iter().all(|l| l.contains(" lo    In  ") && l.ends_with("UDP, length 10")),
            "{lines:?}"
        );
        let mut args = vec!["sniff", "-r", file.to_str().unwrap()];
        args.extend_from_slice(flags);
        assert_eq!(run(&args, b"").ok(), theirs.ok(), "sniff {flags:?} against tcpdump");
    }
}
