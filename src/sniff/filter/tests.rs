use etherparse::PacketBuilder;

use super::*;
use crate::sniff::LinkType;

fn parse(text: &str) -> Filter {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Names a test can count on: one host, a TCP-only and a both-ways service.
struct TestNames;

impl Names for TestNames {
    fn host(&self, name: &str) -> Vec<IpAddr> {
        match name {
            "localhost" => vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            _ => Vec::new(),
        }
    }

    fn service(&self, name: &str) -> ServicePorts {
        Services::parse("http 80/tcp www\ndomain 53/tcp\ndomain 53/udp\nsyslog 514/udp\n").lookup(name)
    }
}

#[test]
fn the_grammar_and_its_canonical_form() {
    for (text, canonical) in [
        ("tcp", "tcp"),
        ("TCP and port 80", "tcp and port 80"),
        ("port 80 or 443", "port 80 or port 443"),
        ("src host 10.0.0.1 or 10.0.0.2", "src host 10.0.0.1 or src host 10.0.0.2"),
        ("not (icmp or arp) && ip6", "not (icmp or arp) and ip6"),
        ("!udp||less 100", "not udp or less 100"),
        ("src or dst net 10.0.0.0/8", "net 10.0.0.0/8"),
        ("src and dst portrange 7000-7010", "src and dst portrange 7000-7010"),
        ("portrange 7010-7000", "portrange 7000-7010"),
        ("dst 127.0.0.1", "dst host 127.0.0.1"),
        ("src fd00::/8", "src net fd00::/8"),
        ("tcp and port 1 or udp", "tcp and port 1 or udp"),
        ("tcp and (port 1 or udp)", "tcp and (port 1 or udp)"),
        // libpcap: `and` and `or` bind equally, from the left; `not` tightest.
        ("icmp or udp and port 9", "icmp or udp and port 9"),
        ("ip host 127.0.0.1", "ip host 127.0.0.1"),
        ("ip6 src host ::1 or ::2", "ip6 src host ::1 or ip6 src host ::2"),
        ("arp net 10.0.0.0/8", "arp net 10.0.0.0/8"),
        // libpcap's short forms.
        ("net 10", "net 10.0.0.0/8"),
        ("host 10.1", "net 10.1.0.0/16"),
        ("net 172.16.0.0 mask 255.240.0.0", "net 172.16.0.0/12"),
        // Byte offsets, arithmetic and named constants.
        ("tcp[13] & 2 != 0", "tcp[13] & 2 != 0"),
        ("tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "tcp[13] & (2 | 16) = 2"),
        ("ip[6:2] & 0x1fff = 0", "ip[6:2] & 8191 = 0"),
        ("(tcp[12] & 0xf0) >> 2 > 20", "(tcp[12] & 240) >> 2 > 20"),
        ("icmp[icmptype] = icmp-echo", "icmp[0] = 8"),
        ("len - 1 ^ 2 = 0", "len - (1 ^ 2) = 0"),
        ("len % 2 * 3 = 0", "len % (2 * 3) = 0"),
        ("-len * 2 < 4", "(-len) * 2 < 4"),
        ("ip[0] = 010", "ip[0] = 8"),
        ("not tcp[13] & 2 = 0 and udp", "not tcp[13] & 2 = 0 and udp"),
        // Protocols and link-layer words.
        ("ip proto \\udp", "ip proto 17"),
        ("proto 132 or ip6 proto 58", "proto 132 or ip6 proto 58"),
        ("ether proto \\arp", "ether proto 2054"),
        ("ether src 2:0:0:0:0:a", "ether src host 02:00:00:00:00:0a"),
        ("vlan 100 and vlan", "vlan 100 and vlan"),
        (
            "broadcast or ether multicast or ip multicast",
            "ether broadcast or ether multicast or ip multicast",
        ),
        ("sctp or igmp or rarp", "sctp or igmp or rarp"),
        ("greater 0x10", "greater 16"),
    ] {
        let filter = parse(text);
        assert_eq!(filter.to_string(), canonical, "{text}");
        assert_eq!(parse(canonical), filter, "{canonical}");
    }
}

#[test]
fn names_come_from_the_database_with_their_transports() {
    let parse = |text: &str| Filter::parse(text, &TestNames).map(|f| f.to_string());
    assert_eq!(parse("port www").unwrap(), "tcp port 80", "TCP only in the database");
    assert_eq!(parse("port domain").unwrap(), "port 53", "TCP and UDP alike: any transport");
    assert_eq!(parse("port syslog").unwrap(), "udp port 514");
    assert_eq!(parse("host localhost").unwrap(), "host 127.0.0.1 or host ::1");
    assert_eq!(parse("ip6 host localhost").unwrap(), "ip6 host ::1");
    assert!(parse("udp port http").unwrap_err().to_string().contains("port 'http' is tcp only"));
    assert!(parse("host nowhere").unwrap_err().to_string().contains("unknown host"));
}

#[test]
fn errors_point_at_the_offending_word() {
    for (text, message) in [
        ("tcp and prot 80", "bad filter at 'prot' (character 9): expected a primitive"),
        ("port 70000", "bad filter at '70000' (character 6): port 70000 is over 65535"),
        ("port nosuchservice", "expected a port number or a service name from /etc/services"),
        ("tcp and", "bad filter at the end: expected a filter after 'and'"),
        ("port 7007 and and tcp", "bad filter at 'and' (character 15): expected a filter after 'and'"),
        ("tcp or )", "bad filter at ')' (character 8): expected a filter after 'or'"),
        ("not", "bad filter at the end: expected a filter after 'not'"),
        ("ip host ::1", "expected an IPv4 address after 'ip'"),
        ("ip6 net 10.0.0.0/8", "expected an IPv6 address after 'ip6'"),
        ("ip port 80", "bad filter at 'port' (character 4): expected 'and', 'or'"),
        ("(tcp or udp", "bad filter at the end: expected ')'"),
        ("tcp)", "bad filter at ')' (character 4): expected '(' before it"),
        ("host example.com", "unknown host"),
        ("net 10.0.0.1/8", "expected a network address without host bits: 10.0.0.0/8"),
        ("tcp port", "bad filter at the end: expected a port number"),
        ("udp udp", "bad filter at 'udp' (character 5): expected 'and', 'or' or the end"),
        ("", "bad filter at the end"),
        ("tcp src host 1.2.3.4", "expected 'port' or 'portrange' after 'tcp'"),
        ("tcp[1:3] = 1", "data size must be 1, 2, or 4"),
        ("len / 0 = 1", "division by zero"),
        ("len << 32 = 1", "a shift by more than 31 bits"),
        ("tcp[13] & 2", "expected a comparison after the expression"),
        ("(len) and tcp", "expected a comparison after the expression"),
        ("tcp[13 = 1", "expected ']'"),
        ("vlan 4096", "VLAN id 4096 is greater than the maximum 4095"),
        ("gateway foo", "'gateway' is in pcap-filter(7) but not supported"),
        ("ether proto \\stp", "expected an EtherType"),
        ("ip proto \\nosuch", "expected a protocol number (0 to 255) or name"),
        ("net 10.0.0.0 mask 255.0.255.0", "an IPv4 netmask of contiguous bits"),
        ("tcp @", "bad filter at '@'"),
    ] {
        let error = text.parse::<Filter>().unwrap_err().to_string();
        assert!(error.contains(message), "{text}: {error}");
    }
}

fn tcp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 100)
        .syn()
        .write(&mut frame, &[])
        .unwrap();
    frame
}

#[test]
fn matching_frames() {
    let frame = tcp_frame([127, 0, 0, 1], 40000, [127, 0, 0, 2], 7007);
    let len = frame.len() as u32;
    let matches = |text: &str, data: &[u8], len: u32| {
        compile(&parse(text), LinkType::Ethernet, 65535).is_ok_and(|p| p.matches(data, len))
    };
    for (text, expected) in [
        ("tcp", true),
        ("udp", false),
        ("ip", true),
        ("ip6", false),
        ("port 7007", true),
        ("udp port 7007", false),
        ("src port 7007", false),
        ("dst port 7007", true),
        ("src and dst port 7007", false),
        ("portrange 7000-7010", true),
        ("host 127.0.0.2", true),
        ("src host 127.0.0.2", false),
        ("net 127.0.0.0/8", true),
        ("src and dst net 127.0.0.0/31", false),
        ("net ::/0", false),
        ("not arp and (port 1 or port 40000)", true),
        ("ip host 127.0.0.2", true),
        ("ip6 host ::1", false),
        ("udp or tcp and port 1", false),
        ("tcp and port 1 or port 7007", true),
        ("less 54", true),
        ("less 53", false),
        ("greater 55", false),
        ("tcp[13] & 2 != 0", true),
        ("tcp[tcpflags] & tcp-ack != 0", false),
        ("tcp[2:2] = 7007", true),
        ("ip[9] = 6 and len = 54", true),
        ("len + tcp[0] > 0", true),
    ] {
        assert_eq!(matches(text, &frame, len), expected, "{text}");
    }
    // A load past the captured bytes rejects the frame, whatever else holds.
    assert!(!matches("host 127.0.0.1", &frame[..20], 20));
    assert!(!matches("ip[100] = 0 or tcp", &frame, len));
    assert!(matches("tcp or ip[100] = 0", &frame, len), "tcp decides before the load");
}

/// Issue 14: a crafted filter cannot overflow the stack of the parser or
/// the compiler; it gets a clear error instead.
#[test]
fn depth_and_length_are_bounded() {
    let deep = format!("{}tcp{}", "(".repeat(100_000), ")".repeat(100_000));
    let error = deep.parse::<Filter>().unwrap_err().to_string();
    assert!(error.contains("at most 100 deep"), "{error}");
    let nots = format!("{}tcp", "not ".repeat(100_000));
    assert!(nots.parse::<Filter>().unwrap_err().to_string().contains("at most 100 deep"));
    let long = vec!["tcp"; 100_000].join(" or ");
    assert!(long.parse::<Filter>().unwrap_err().to_string().contains("at most 1000 terms"));
    let sums = format!("len{} > 0", " + 1".repeat(100_000));
    assert!(sums.parse::<Filter>().unwrap_err().to_string().contains("at most 1000 terms"));
    let loads = format!("{}0{} = 0", "ip[".repeat(1000), "]".repeat(1000));
    assert!(loads.parse::<Filter>().unwrap_err().to_string().contains("at most 100 deep"));
    let nested_chains = format!("{}tcp{}", "(tcp or ".repeat(99), ")".repeat(99));
    assert!(nested_chains.parse::<Filter>().is_ok());
    let allowed = format!("{}tcp{}", "(".repeat(100), ")".repeat(100));
    assert!(allowed.parse::<Filter>().is_ok());
    assert!(format!("{}tcp{}", "(".repeat(101), ")".repeat(101)).parse::<Filter>().is_err());
}

/// Found by the fuzzer: what parses prints in a form that parses back,
/// however many minus signs it has, and '%' (which, having no precedence
/// in libpcap's grammar, groups to the right and prints parenthesized)
/// cannot print deeper than a filter may nest.
#[test]
fn what_parses_prints_within_the_nesting_limit() {
    let minus = format!("{}2012%2+42%242%01%4=02022", "-".repeat(105));
    let filter = minus.parse::<Filter>().unwrap();
    assert_eq!(filter.to_string().parse::<Filter>(), Ok(filter));
    let chain = |n: usize| format!("len{} = 0", " % 3".repeat(n));
    let filter = chain(99).parse::<Filter>().unwrap();
    assert_eq!(filter.to_string().parse::<Filter>(), Ok(filter));
    let error = chain(150).parse::<Filter>().unwrap_err().to_string();
    assert!(error.contains("at most 100 deep"), "{error}");
}
