use etherparse::PacketBuilder;

use super::*;
use crate::sniff::LinkType;
use crate::sniff::decode::decode;

fn parse(text: &str) -> Filter {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn the_grammar_and_its_canonical_form() {
    for (text, canonical) in [
        ("tcp", "tcp"),
        ("TCP and port 80", "tcp and port 80"),
        ("tcp dst port http", "tcp dst port 80"),
        ("port 80 or 443", "port 80 or port 443"),
        ("src host 10.0.0.1 or 10.0.0.2", "src host 10.0.0.1 or src host 10.0.0.2"),
        ("not (icmp or arp) && ip6", "not (icmp or arp) and ip6"),
        ("!udp||less 100", "not udp or less 100"),
        ("src or dst net 10.0.0.0/8", "net 10.0.0.0/8"),
        ("src and dst portrange 7000-7010", "src and dst portrange 7000-7010"),
        ("dst 127.0.0.1", "dst host 127.0.0.1"),
        ("src fd00::/8", "src net fd00::/8"),
        (
            "a or b".replace("a", "udp port 53").replace("b", "greater 1000").as_str(),
            "udp port 53 or greater 1000",
        ),
        ("tcp and port 1 or udp", "tcp and port 1 or udp"),
        ("tcp and (port 1 or udp)", "tcp and (port 1 or udp)"),
        ("not (tcp and udp) or icmp", "not (tcp and udp) or icmp"),
        // libpcap: `and` and `or` bind equally, from the left; `not` tightest.
        ("icmp or udp and port 9", "icmp or udp and port 9"),
        ("udp or tcp and not port 22 or icmp", "udp or tcp and not port 22 or icmp"),
        ("not tcp or udp", "not tcp or udp"),
        ("ip host 127.0.0.1", "ip and host 127.0.0.1"),
        ("ip6 src host ::1 or ::2", "ip6 and src host ::1 or (ip6 and src host ::2)"),
        ("arp net 10.0.0.0/8", "arp and net 10.0.0.0/8"),
    ] {
        let filter = parse(text);
        assert_eq!(filter.to_string(), canonical, "{text}");
        assert_eq!(parse(canonical), filter, "{canonical}");
    }
}

#[test]
fn errors_point_at_the_offending_word() {
    for (text, message) in [
        ("tcp and prot 80", "bad filter at 'prot' (character 9): expected tcp, udp"),
        ("port 70000", "bad filter at '70000' (character 6): expected a port number or service name"),
        ("tcp and", "bad filter at the end: expected a filter after 'and'"),
        ("port 7007 and and tcp", "bad filter at 'and' (character 15): expected a filter after 'and'"),
        ("tcp or )", "bad filter at ')' (character 8): expected a filter after 'or'"),
        ("not", "bad filter at the end: expected a filter after 'not'"),
        ("tcp[13] & 2 != 0", "bad filter at 'tcp[13]' (character 1): byte-offset expressions"),
        ("ip host ::1", "expected an IPv4 address after 'ip'"),
        ("ip6 net 10.0.0.0/8", "expected an IPv6 address after 'ip6'"),
        ("ip port 80", "bad filter at 'port' (character 4): expected 'and', 'or'"),
        ("(tcp or udp", "bad filter at the end: expected ')'"),
        ("tcp)", "bad filter at ')' (character 4): expected '(' before it"),
        ("host example.com", "names are not looked up"),
        ("net 10.0.0.1/8", "expected a network address without host bits: 10.0.0.0/8"),
        ("portrange 90-80", "expected a port range such as 8000-8100"),
        ("tcp port", "bad filter at the end: expected a port number"),
        ("udp udp", "bad filter at 'udp' (character 5): expected 'and', 'or' or the end"),
        ("", "bad filter at the end"),
        ("tcp src host 1.2.3.4", "expected 'port' or 'portrange' after 'tcp'"),
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
fn matching_decoded_frames() {
    let frame = tcp_frame([127, 0, 0, 1], 40000, [127, 0, 0, 2], 7007);
    let s = decode(LinkType::Ethernet, &frame);
    let len = frame.len() as u32;
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
    ] {
        assert_eq!(parse(text).matches(&s, len), expected, "{text}");
    }
    assert!(!parse("host 127.0.0.1").matches(&decode(LinkType::Ethernet, &frame[..20]), 20));
}

/// Issue 14: a crafted filter cannot overflow the stack of the parser, the
/// matcher or the compiler; it gets a clear error instead.
#[test]
fn depth_and_length_are_bounded() {
    let deep = format!("{}tcp{}", "(".repeat(100_000), ")".repeat(100_000));
    let error = deep.parse::<Filter>().unwrap_err().to_string();
    assert!(error.contains("at most 100 deep"), "{error}");
    let nots = format!("{}tcp", "not ".repeat(100_000));
    assert!(nots.parse::<Filter>().unwrap_err().to_string().contains("at most 100 deep"));
    let long = vec!["tcp"; 100_000].join(" or ");
    assert!(long.parse::<Filter>().unwrap_err().to_string().contains("at most 1000 terms"));
    let nested_chains = format!("{}tcp{}", "(tcp or ".repeat(99), ")".repeat(99));
    assert!(nested_chains.parse::<Filter>().is_ok());
    let allowed = format!("{}tcp{}", "(".repeat(100), ")".repeat(100));
    assert!(allowed.parse::<Filter>().is_ok());
    assert!(format!("{}tcp{}", "(".repeat(101), ")".repeat(101)).parse::<Filter>().is_err());
}
