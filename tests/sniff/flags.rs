//! Issue 18: the flags tcpdump users type, and lines that read like
//! tcpdump's: the same file through `tcpdump -r` and `socketeer sniff -r`
//! prints the same lines for ordinary traffic (relative TCP numbers, TCP
//! options, DNS queries and answers, ICMP, 802.1Q tags).

use std::process::Command;

use etherparse::{PacketBuilder, TcpOptionElement};

use crate::util::{require, run, run_command};

fn ether() -> etherparse::PacketBuilderStep<etherparse::Ethernet2Header> {
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x0a], [2, 0, 0, 0, 0, 0x0b])
}

/// A TCP handshake with options, data both ways, a DNS query and answer,
/// an ICMP echo: a pcap file whose frame i has timestamp i + 1 s.
fn conversation() -> Vec<u8> {
    let (client, server) = ([127, 0, 0, 1], [127, 0, 0, 2]);
    let options = [
        TcpOptionElement::MaximumSegmentSize(65495),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(7, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ];
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut push = |build: &dyn Fn(&mut Vec<u8>)| {
        let mut frame = Vec::new();
        build(&mut frame);
        frames.push(frame);
    };
    push(&|f| {
        ether()
            .ipv4(client, server, 64)
            .tcp(40000, 7007, 1000, 65495)
            .syn()
            .options(&options)
            .unwrap()
            .write(f, b"")
            .unwrap()
    });
    push(&|f| {
        ether()
            .ipv4(server, client, 64)
            .tcp(7007, 40000, 5000, 65483)
            .syn()
            .ack(1001)
            .options(&options)
            .unwrap()
            .write(f, b"")
            .unwrap()
    });
    push(&|f| ether().ipv4(client, server, 64).tcp(40000, 7007, 1001, 512).ack(5001).write(f, b"").unwrap());
    push(&|f| {
        ether()
            .ipv4(client, server, 64)
            .tcp(40000, 7007, 1001, 512)
            .ack(5001)
            .psh()
            .write(f, b"hello\n")
            .unwrap()
    });
    push(&|f| {
        ether()
            .ipv4(server, client, 64)
            .tcp(7007, 40000, 5001, 512)
            .ack(1007)
            .psh()
            .write(f, b"hello\n")
            .unwrap()
    });
    push(&|f| {
        ether().ipv4(client, server, 64).tcp(40000, 7007, 1007, 512).ack(5007).fin().write(f, b"").unwrap()
    });
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend(b"\x07example\x03com\x00\x00\x01\x00\x01");
    let mut answer = query.clone();
    answer[2..4].copy_from_slice(&[0x81, 0x80]);
    answer[7] = 1;
    answer.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 93, 184, 216, 34]);
    push(&|f| ether().ipv4(client, [127, 0, 0, 53], 64).udp(41000, 53).write(f, &query).unwrap());
    push(&|f| ether().ipv4([127, 0, 0, 53], client, 64).udp(53, 41000).write(f, &answer).unwrap());
    // Issue 18: datagrams on DNS ports too short for a DNS header
    // (`domain [length 0 < 12] (invalid)`), and messages with what tcpdump
    // marks: an EDNS record (`[1au]`), no question (`[0q]`), a question cut
    // short (`[|domain]`), an authoritative NXDomain from a server that
    // does not recurse (`*-`).
    for (sport, dport, payload) in [
        (41000, 53, &b""[..]),
        (41000, 53, b"\x12\x34\x01"),
        (53, 41000, b"abcdefghijk"),
        (5353, 5353, b"xy"),
    ] {
        push(&|f| ether().ipv4(client, [127, 0, 0, 53], 64).udp(sport, dport).write(f, payload).unwrap());
    }
    let mut edns = query.clone();
    edns[11] = 1;
    edns.extend([0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0]);
    let mut nx = query.clone();
    nx[2..4].copy_from_slice(&[0x85, 0x03]);
    let mut no_question = query[..12].to_vec();
    no_question[5] = 0;
    for message in [edns, no_question, query[..20].to_vec(), nx] {
        push(&|f| ether().ipv4(client, [127, 0, 0, 53], 64).udp(41000, 53).write(f, &message).unwrap());
    }
    push(&|f| ether().ipv4(client, server, 64).icmpv4_echo_request(1, 2).write(f, b"ping").unwrap());
    push(&|f| ether().ipv4(client, server, 64).udp(5000, 9).write(f, b"x").unwrap());
    // Tagged frames: 802.1Q, and 802.1ad around 802.1Q (QinQ).
    let vlan = |id| etherparse::VlanId::try_new(id).unwrap();
    push(&|f| ether().single_vlan(vlan(100)).ipv4(client, server, 64).udp(5000, 9).write(f, b"tag").unwrap());
    push(&|f| {
        ether()
            .double_vlan(vlan(200), vlan(100))
            .ipv4(client, server, 64)
            .udp(5000, 9)
            .write(f, b"qinq")
            .unwrap()
    });
    let mut file = [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1].map(u32::to_le_bytes).concat();
    for (i, frame) in frames.iter().enumerate() {
        let len = frame.len() as u32;
        file.extend([i as u32 + 1, 0, len, len].map(u32::to_le_bytes).concat());
        file.extend_from_slice(frame);
    }
    file
}

fn write_conversation() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conversation.pcap");
    std::fs::write(&path, conversation()).unwrap();
    (dir, path)
}

fn ours(args: &[&str]) -> Vec<String> {
    let out = run(args, b"");
    out.ok().lines().map(str::to_owned).collect()
}

#[test]
fn lines_read_as_tcpdump_prints_them() {
    require("tcpdump", "tcpdump");
    let (_dir, path) = write_conversation();
    let file = path.to_str().unwrap();
    for flags in [
        &["-nn", "-tt"][..],
        &["-nn", "-tt", "-S"],
        &["-nn", "-ttt"],
        &["-nn", "-ttttt"],
        &["-nn", "-tt", "-e"],
        &["-nn", "-tt", "-q"],
        &["-nn", "-tt", "-e", "-q"],
    ] {
        let mut command = Command::new("tcpdump");
        command.args(flags).args(["-r", file]);
        let theirs = run_command(&mut command, b"");
        let theirs: Vec<&str> = theirs.ok().lines().collect();
        let mut args = vec!["sniff"];
        args.extend_from_slice(flags);
        args.extend(["-r", file]);
        let ours = ours(&args);
        assert_eq!(ours.len(), theirs.len(), "{flags:?}: {ours:#?} {theirs:#?}");
        for (ours, theirs) in ours.iter().zip(&theirs) {
            assert_eq!(ours, theirs, "{flags:?}");
        }
    }
}

#[test]
fn hex_and_ascii_from_the_network_layer_or_the_link_layer() {
    let (_dir, path) = write_conversation();
    let file = path.to_str().unwrap();
    let x = ours(&["sniff", "-X", "-r", file, "-c", "1"]);
    assert!(x[1].starts_with("\t0x0000:  4500 "), "-X starts at the IP header: {x:?}");
    let xx = ours(&["sniff", "-XX", "-r", file, "-c", "1"]);
    assert!(xx[1].starts_with("\t0x0000:  0200 0000 000b 0200"), "-XX starts at the MACs: {xx:?}");
}

#[test]
fn a_filter_from_a_file_and_the_interface_list() {
    let (dir, path) = write_conversation();
    let file = path.to_str().unwrap();
    let filter = dir.path().join("filter");
    std::fs::write(&filter, "udp # name lookups only\n  and port 53\n").unwrap();
    let lines = ours(&["sniff", "-F", filter.to_str().unwrap(), "-r", file, "-t"]);
    assert_eq!(lines.len(), 9, "{lines:?}");
    assert!(lines[0].contains("A? example.com."), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("5353")), "{lines:?}");
    let both = run(&["sniff", "-F", filter.to_str().unwrap(), "-r", file, "tcp"], b"");
    assert_eq!(both.code(), Some(2), "{both:?}");
    let interfaces = ours(&["sniff", "-D"]);
    assert!(interfaces.iter().any(|l| l.contains(".lo [") && l.contains("Loopback")), "{interfaces:?}");
    // On `-i any`, for its Linux cooked v2 frames, as tcpdump -i any -d.
    let cooked = ours(&["sniff", "-i", "any", "-d", "ip"]);
    assert_eq!(cooked.first().map(String::as_str), Some("(000) ldh      [0]"), "{cooked:?}");
    let program = ours(&["sniff", "-d", "tcp[tcpflags] & tcp-syn != 0"]);
    assert!(program.iter().any(|l| l.contains("ldb      [x + 14]")), "{program:?}");
    assert!(program.last().is_some_and(|l| l.ends_with("ret      #0")), "{program:?}");
}
