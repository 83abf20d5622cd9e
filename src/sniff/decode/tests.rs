use etherparse::PacketBuilder;

use super::*;

/// A SYN from 127.0.0.1:45678 to 127.0.0.1:7007 as it crosses Linux
/// loopback (zero MACs), written out byte by byte.
#[rustfmt::skip]
const SYN: [u8; 74] = [
    // Ethernet: dst, src, type IPv4
    0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0,  0x08, 0x00,
    // IPv4: version 4, IHL 5, tos 0, total 60, id 0x1c46, DF, ttl 64, TCP, checksum, src, dst
    0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x20, 0x74,
    127, 0, 0, 1,  127, 0, 0, 1,
    // TCP: ports 45678 > 7007, seq 1000, ack 0, offset 10 words, SYN, win 65495
    0xb2, 0x6e, 0x1b, 0x5f,  0x00, 0x00, 0x03, 0xe8,  0, 0, 0, 0,  0xa0, 0x02, 0xff, 0xd7,
    0xfe, 0x30, 0x00, 0x00,
    // options: mss 65495, sackOK, TS val 1 ecr 0, nop, wscale 7
    0x02, 0x04, 0xff, 0xd7,  0x04, 0x02,  0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0,  0x01,  0x03, 0x03, 0x07,
];

fn ether() -> etherparse::PacketBuilderStep<etherparse::Ethernet2Header> {
    PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
}

fn build(builder: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut frame = Vec::new();
    builder(&mut frame);
    frame
}

#[test]
fn a_syn_reads_like_tcpdump() {
    let s = decode(LinkType::Ethernet, &SYN);
    assert_eq!(
        s.to_string(),
        "IP 127.0.0.1.45678 > 127.0.0.1.7007: Flags [S], seq 1000, win 65495, \
         options [mss 65495,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0"
    );
    assert_eq!((s.proto, s.sport, s.dport, s.ttl), (Proto::Tcp, Some(45678), Some(7007), Some(64)));
    assert_eq!(s.problem, None);
    let details = details(LinkType::Ethernet, &SYN);
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(
        details[1].contains("ttl 64, id 7238, offset 0, flags [DF], proto TCP (6), length 60"),
        "{details:?}"
    );
    assert!(details[2].ends_with("options [mss 65495,sackOK,TS val 1 ecr 0,nop,wscale 7]"), "{details:?}");
}

#[test]
fn tcp_data_shows_the_sequence_range_and_payload() {
    let frame = build(|out| {
        ether()
            .ipv6(
                [0; 15].iter().copied().chain([1]).collect::<Vec<_>>().try_into().unwrap(),
                {
                    let mut a = [0u8; 16];
                    a[15] = 1;
                    a
                },
                64,
            )
            .tcp(1000, 2000, 41, 512)
            .psh()
            .ack(7)
            .write(out, b"hello")
            .unwrap();
    });
    let s = decode(LinkType::Ethernet, &frame);
    assert_eq!(s.to_string(), "IP6 ::1.1000 > ::1.2000: Flags [P.], seq 41:46, ack 7, win 512, length 5");
    assert_eq!(s.payload(&frame), b"hello");
}

#[test]
fn udp_icmp_and_raw_ip() {
    let udp = build(|out| {
        ether().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 9).udp(5000, 53).write(out, b"query").unwrap()
    });
    let s = decode(LinkType::Ethernet, &udp);
    // Too short for a DNS header, on DNS's port: tcpdump's words for it.
    assert_eq!(s.to_string(), "IP 10.0.0.1.5000 > 10.0.0.2.53: domain [length 5 < 12] (invalid)");
    assert_eq!(s.payload(&udp), b"query");
    assert_eq!(s.mac_src, Some(Mac([1, 2, 3, 4, 5, 6])));

    let ping = build(|out| {
        ether().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 9).icmpv4_echo_request(7, 1).write(out, &[0; 56]).unwrap()
    });
    let s = decode(LinkType::Ethernet, &ping);
    assert_eq!(s.to_string(), "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 1, length 64");

    let raw =
        build(|out| PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 9).udp(1, 2).write(out, b"x").unwrap());
    assert_eq!(decode(LinkType::RawIp, &raw).to_string(), "IP 10.0.0.1.1 > 10.0.0.2.2: UDP, length 1");
}

#[test]
fn icmp6_echo_reply() {
    let mut one = [0u8; 16];
    one[15] = 1;
    let frame = build(|out| ether().ipv6(one, one, 64).icmpv6_echo_reply(3, 9).write(out, b"abcd").unwrap());
    assert_eq!(
        decode(LinkType::Ethernet, &frame).to_string(),
        "IP6 ::1 > ::1: ICMP6, echo reply, id 3, seq 9, length 12"
    );
}

#[test]
fn unreachable_messages_name_the_quoted_destination() {
    use etherparse::{Icmpv4Type, Icmpv6Type, icmpv4, icmpv6};
    let quoted = build(|out| {
        PacketBuilder::ipv4([127, 0, 0, 2], [127, 0, 0, 3], 64).udp(40000, 9).write(out, b"abc").unwrap()
    });
    let port = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port);
    let frame = build(|out| {
        ether().ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64).icmpv4(port).write(out, &quoted).unwrap()
    });
    assert_eq!(
        decode(LinkType::Ethernet, &frame).to_string(),
        "IP 127.0.0.1 > 127.0.0.2: ICMP 127.0.0.3 udp port 9 unreachable, length 39"
    );
    let host = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Host);
    let frame = build(|out| {
        ether().ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64).icmpv4(host).write(out, &quoted[..20]).unwrap()
    });
    assert!(decode(LinkType::Ethernet, &frame).to_string().contains("ICMP host 127.0.0.3 unreachable"));

    let mut one = [0u8; 16];
    one[15] = 1;
    let quoted = build(|out| PacketBuilder::ipv6(one, one, 64).udp(40000, 9).write(out, b"abc").unwrap());
    let port = Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port);
    let frame = build(|out| ether().ipv6(one, one, 64).icmpv6(port).write(out, &quoted).unwrap());
    assert_eq!(
        decode(LinkType::Ethernet, &frame).to_string(),
        "IP6 ::1 > ::1: ICMP6, destination unreachable, unreachable port, ::1 udp port 9, length 59"
    );
}

#[rustfmt::skip]
const ARP_REQUEST: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  2, 0, 0, 0, 0, 1,  0x08, 0x06,
    0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
    2, 0, 0, 0, 0, 1,  10, 0, 0, 1,
    0, 0, 0, 0, 0, 0,  10, 0, 0, 2,
];

#[test]
fn arp_request_and_reply() {
    let s = decode(LinkType::Ethernet, &ARP_REQUEST);
    assert_eq!(s.to_string(), "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28");
    let mut reply = ARP_REQUEST;
    reply[21] = 2;
    assert_eq!(
        decode(LinkType::Ethernet, &reply).to_string(),
        "ARP, Reply 10.0.0.1 is-at 02:00:00:00:00:01, length 28"
    );
}

#[test]
fn every_truncation_of_a_frame_decodes_and_says_so() {
    for len in 0..SYN.len() {
        let s = decode(LinkType::Ethernet, &SYN[..len]);
        let problem = s.problem.clone().unwrap_or_else(|| panic!("{len} bytes: no problem in {s:?}"));
        assert!(problem.contains("truncated") || problem.contains("Not enough"), "{len}: {problem}");
        let _ = s.to_string();
        let _ = details(LinkType::Ethernet, &SYN[..len]);
    }
    let s = decode(LinkType::Ethernet, &SYN[..40]);
    assert_eq!(s.proto, Proto::Ip);
    assert!(s.to_string().ends_with("[truncated TCP header: 6 of 20 bytes]"), "{s}");
}

#[test]
fn a_snap_length_that_cuts_tcp_options_keeps_the_fixed_header() {
    // `-s 64`: 30 of the SYN's 40 TCP header bytes.
    let s = decode(LinkType::Ethernet, &SYN[..64]);
    assert_eq!(
        s.to_string(),
        "IP 127.0.0.1.45678 > 127.0.0.1.7007: Flags [S], seq 1000, win 65495, length 0 \
         [truncated TCP options: 30 of 40 header bytes]"
    );
    assert_eq!((s.proto, s.sport, s.dport), (Proto::Tcp, Some(45678), Some(7007)));
    let filter: crate::sniff::filter::Filter = "tcp dst port 7007 and tcp".parse().unwrap();
    let program = crate::sniff::filter::compile(&filter, LinkType::Ethernet, 65535).unwrap();
    assert!(program.matches(&SYN[..64], 74));
    // Exactly the fixed header, no options: still TCP.
    assert_eq!(decode(LinkType::Ethernet, &SYN[..54]).proto, Proto::Tcp);
    // A cut UDP datagram keeps its ports too.
    let udp = build(|out| {
        ether().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 9).udp(5000, 53).write(out, &[7; 100]).unwrap()
    });
    let s = decode(LinkType::Ethernet, &udp[..64]);
    assert_eq!((s.proto, s.sport, s.dport, s.payload_len), (Proto::Udp, Some(5000), Some(53), 100));
}

#[test]
fn linux_cooked_captures_of_any_hardware_type() {
    let udp = build(|out| {
        PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64).udp(5000, 53).write(out, b"q").unwrap()
    });
    // v1 (tcpdump -i any before 4.99): incoming, ARPHRD_LOOPBACK (772), 6-byte address, IPv4.
    let mut v1 = vec![0, 0, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
    v1.extend_from_slice(&udp);
    // v2 (since 4.99): IPv4, reserved, ifindex 1, ARPHRD_LOOPBACK, outgoing, 6-byte address.
    let mut v2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    v2.extend_from_slice(&udp);
    let filter: crate::sniff::filter::Filter = "udp dst port 53 and host 127.0.0.2".parse().unwrap();
    for (link, frame) in [(LinkType::LinuxSll, &v1), (LinkType::LinuxSll2, &v2)] {
        let program = crate::sniff::filter::compile(&filter, link, 65535).unwrap();
        let s = decode(link, frame);
        assert_eq!(
            s.to_string(),
            "IP 127.0.0.1.5000 > 127.0.0.2.53: domain [length 1 < 12] (invalid)",
            "{link:?}"
        );
        assert_eq!((s.ether_type, &s.problem), (Some(0x0800), &None), "{link:?}");
        assert!(program.matches(frame, frame.len() as u32), "{link:?}");
    }
    assert_eq!(
        details(LinkType::LinuxSll2, &v2)[0],
        "cooked v2 Out, hardware type 772, ifindex 1, from 02:00:00:00:00:01, type IPv4 (0x0800)"
    );
    // A Linux protocol number rather than an EtherType (802.2 LLC), and a cut header.
    let mut llc = v2.clone();
    llc[..2].copy_from_slice(&[0x00, 0x04]);
    let problem = decode(LinkType::LinuxSll2, &llc).problem.unwrap();
    assert!(problem.contains("protocol 0x0004, which is not an EtherType"), "{problem}");
    let problem = decode(LinkType::LinuxSll2, &v2[..12]).problem.unwrap();
    assert_eq!(problem, "truncated Linux cooked v2 header: 12 of 20 bytes");
    assert_eq!(LinkType::from_pcap_code(276), Some(LinkType::LinuxSll2));
}

#[test]
fn long_messages_are_cut_between_words() {
    let long = "the quick brown fox jumps over the lazy dog, ".repeat(5);
    let short = problem::shorten(long.clone());
    assert!(short.ends_with("...") && short.len() <= 123, "{short}");
    assert!(long.starts_with(short.trim_end_matches("...")), "{short}");
    let word_end = short.trim_end_matches("...");
    let next = &long[word_end.len()..];
    assert!(next.starts_with([' ', ',']), "cut mid-word: {short}");
}

#[test]
fn malformed_headers_are_named_not_trusted() {
    let mut bad_ihl = SYN;
    bad_ihl[14] = 0x43; // IHL 3: shorter than the fixed header
    let s = decode(LinkType::Ethernet, &bad_ihl);
    assert_eq!(s.proto, Proto::Ether);
    assert_eq!(s.problem.as_deref(), Some("malformed: IPv4 header length 12 bytes, under the minimum 20"));

    let mut bad_offset = SYN;
    bad_offset[46] = 0x20; // TCP data offset 2 words
    let s = decode(LinkType::Ethernet, &bad_offset);
    assert_eq!(s.problem.as_deref(), Some("malformed: TCP header length 8 bytes, under the minimum 20"));

    let mut short_total = SYN;
    short_total[16..18].copy_from_slice(&10u16.to_be_bytes()); // total length 10 < 20-byte header
    let s = decode(LinkType::Ethernet, &short_total);
    assert_eq!(
        s.to_string(),
        "IP 127.0.0.1 > 127.0.0.1: ip-proto-6 TCP, length 0 [malformed: IP bad-len 10, under its 20-byte header]"
    );
    assert_eq!((s.proto, s.sport), (Proto::Ip, None));

    let mut unknown = SYN;
    unknown[12..14].copy_from_slice(&[0x88, 0xcc]);
    let s = decode(LinkType::Ethernet, &unknown);
    assert_eq!(s.to_string(), "00:00:00:00:00:00 > 00:00:00:00:00:00, ethertype LLDP (0x88cc), length 60");
}

#[test]
fn tcp_flags_print_like_tcpdump() {
    let f = |bits| TcpFlags(bits).to_string();
    assert_eq!(f(TcpFlags::SYN | TcpFlags::ACK), "S.");
    assert_eq!(f(TcpFlags::FIN | TcpFlags::ACK), "F.");
    assert_eq!(f(TcpFlags::RST), "R");
    assert_eq!(f(TcpFlags::PSH | TcpFlags::ACK), "P.");
    assert_eq!(f(TcpFlags::ACK), ".");
    assert_eq!(f(0), "none");
    // tcpdump's order: F S R P . U E W.
    assert_eq!(f(0xff), "FSRP.UEW");
    assert_eq!(f(TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK), "FP.");
}

#[test]
fn tcp_lines_show_seq_ack_and_urg_as_tcpdump_does() {
    let segment = |flags: u8, payload: &[u8]| {
        let mut frame = build(|out| {
            ether().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(1, 2, 3, 1).write(out, payload).unwrap()
        });
        frame[14 + 20 + 8..14 + 20 + 12].copy_from_slice(&4u32.to_be_bytes()); // ack 4
        frame[14 + 20 + 13] = flags;
        frame[14 + 20 + 18..14 + 20 + 20].copy_from_slice(&5u16.to_be_bytes()); // urg 5
        decode(LinkType::Ethernet, &frame).to_string()
    };
    let line = |rest: &str| format!("IP 10.0.0.1.1 > 10.0.0.2.2: {rest}");
    // Pure ACK: no seq.
    assert_eq!(segment(TcpFlags::ACK, b""), line("Flags [.], ack 4, win 1, length 0"));
    assert_eq!(segment(0, b""), line("Flags [none], win 1, length 0"));
    assert_eq!(segment(TcpFlags::RST, b""), line("Flags [R], seq 3, win 1, length 0"));
    assert_eq!(segment(0xff, b""), line("Flags [FSRP.UEW], seq 3, ack 4, win 1, urg 5, length 0"));
    assert_eq!(segment(TcpFlags::URG, b""), line("Flags [U], win 1, urg 5, length 0"));
    assert_eq!(
        segment(TcpFlags::PSH | TcpFlags::ACK, b"abc"),
        line("Flags [P.], seq 3:6, ack 4, win 1, length 3")
    );
}

/// Issue 18's decoding bugs, each as tcpdump shows the frame.
#[test]
fn fragments_extension_headers_and_cut_quotes_read_like_tcpdump() {
    // A first IPv4 fragment keeps its UDP ports; a later one has none.
    let mut first = build(|out| {
        ether().ipv4([127, 0, 0, 1], [10, 1, 2, 3], 64).udp(5000, 53).write(out, &[1; 24]).unwrap()
    });
    first[20] = 0x20;
    let s = decode(LinkType::Ethernet, &first);
    assert_eq!(s.to_string(), "IP 127.0.0.1.5000 > 10.1.2.3.53: UDP, length 24");
    let mut later = first.clone();
    later[20..22].copy_from_slice(&[0x00, 0x04]);
    assert_eq!(decode(LinkType::Ethernet, &later).sport, None);
    // A bare SYN behind an IPv6 hop-by-hop header has no payload.
    let mut syn6 = build(|out| {
        let (a, b) = ([0u8; 16], [1u8; 16]);
        ether().ipv6(a, b, 64).tcp(40004, 80, 1000, 65495).syn().write(out, b"").unwrap()
    });
    syn6[20] = 0;
    syn6.splice(54..54, [6, 0, 1, 4, 0, 0, 0, 0]);
    syn6[18..20].copy_from_slice(&28u16.to_be_bytes());
    let s = decode(LinkType::Ethernet, &syn6);
    assert!(s.to_string().ends_with("Flags [S], seq 1000, win 65495, length 0"), "{s}");
    // A port unreachable whose quote the snap length cut before the port,
    // and ICMP lengths as the IP header gives them, not as captured.
    let mut quoted = Vec::new();
    PacketBuilder::ipv4([10, 1, 2, 3], [127, 0, 0, 1], 64).udp(40000, 9).write(&mut quoted, b"x").unwrap();
    let unreachable = build(|out| {
        ether()
            .ipv4([127, 0, 0, 1], [10, 1, 2, 3], 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(out, &quoted)
            .unwrap()
    });
    let s = decode(LinkType::Ethernet, &unreachable[..64]);
    assert!(s.to_string().contains("ICMP 127.0.0.1 udp port (not captured) unreachable, length 37"), "{s}");
    assert!(!s.to_string().contains("protocol 17"), "{s}");
}
