use std::net::IpAddr;

use etherparse::PacketBuilder;
use proptest::prelude::*;

use super::*;
use crate::sniff::decode::decode;

/// Runs a program the way the kernel does: a load past the end rejects.
fn run(program: &[Instruction], frame: &[u8], wire_len: u32) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let load = |at: u32, width: usize| -> Option<u32> {
        let at = at as usize;
        let bytes = frame.get(at..at.checked_add(width)?)?;
        Some(bytes.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
    };
    loop {
        let i = program[pc];
        pc += 1;
        let jump = |taken: bool| if taken { usize::from(i.jt) } else { usize::from(i.jf) };
        match i.code {
            op::LD_W_ABS => {
                a = match load(i.k, 4) {
                    Some(v) => v,
                    None => return 0,
                }
            }
            op::LD_H_ABS => {
                a = match load(i.k, 2) {
                    Some(v) => v,
                    None => return 0,
                }
            }
            op::LD_B_ABS => {
                a = match load(i.k, 1) {
                    Some(v) => v,
                    None => return 0,
                }
            }
            op::LD_H_IND => {
                a = match load(x.wrapping_add(i.k), 2) {
                    Some(v) => v,
                    None => return 0,
                }
            }
            op::LD_W_LEN => a = wire_len,
            op::LDX_B_MSH => {
                x = match load(i.k, 1) {
                    Some(v) => 4 * (v & 0xf),
                    None => return 0,
                }
            }
            op::AND_K => a &= i.k,
            op::JA => pc += i.k as usize,
            op::JEQ_K => pc += jump(a == i.k),
            op::JGT_K => pc += jump(a > i.k),
            op::JGE_K => pc += jump(a >= i.k),
            op::JSET_K => pc += jump(a & i.k != 0),
            op::RET_K => return i.k,
            code => panic!("unknown opcode {code:#x}"),
        }
    }
}

fn ether() -> etherparse::PacketBuilderStep<etherparse::Ethernet2Header> {
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = if last == 1 { 0 } else { 0xfd };
    a[15] = last;
    a
}

fn frames() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut add = |build: &dyn Fn(&mut Vec<u8>)| {
        let mut frame = Vec::new();
        build(&mut frame);
        frames.push(frame);
    };
    for (src, dst) in [([127, 0, 0, 1], [127, 0, 0, 2]), ([10, 0, 0, 1], [127, 0, 0, 1])] {
        for (sport, dport) in [(40000, 7007), (53, 40000), (80, 80)] {
            add(&|f| ether().ipv4(src, dst, 64).tcp(sport, dport, 1, 100).syn().write(f, b"").unwrap());
            add(&|f| ether().ipv4(src, dst, 64).udp(sport, dport).write(f, b"payload").unwrap());
        }
        add(&|f| ether().ipv4(src, dst, 64).icmpv4_echo_request(1, 2).write(f, &[0; 40]).unwrap());
    }
    for (src, dst) in [(1, 1), (1, 2), (3, 2)] {
        add(&|f| ether().ipv6(v6(src), v6(dst), 64).tcp(40000, 80, 1, 100).write(f, b"x").unwrap());
        add(&|f| ether().ipv6(v6(src), v6(dst), 64).udp(53, 7007).write(f, b"").unwrap());
        add(&|f| ether().ipv6(v6(src), v6(dst), 64).icmpv6_echo_request(1, 1).write(f, b"").unwrap());
    }
    frames
}

/// An IPv4 fragment of a UDP datagram (more fragments follow).
fn fragment() -> Vec<u8> {
    let mut frame = Vec::new();
    ether().ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64).udp(53, 80).write(&mut frame, b"first part").unwrap();
    frame[20] |= 0x20;
    frame
}

/// ARP request: 10.0.0.1 asks for 127.0.0.2.
fn arp() -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
    frame.extend([0, 0, 0, 0, 0, 0, 127, 0, 0, 2]);
    frame
}

/// IPv6 UDP to port 7007 behind a hop-by-hop options header.
fn with_extension_header() -> Vec<u8> {
    let mut frame = Vec::new();
    ether().ipv6(v6(1), v6(1), 64).udp(53, 7007).write(&mut frame, b"data").unwrap();
    let payload_len = u16::from_be_bytes([frame[18], frame[19]]) + 8;
    frame[18..20].copy_from_slice(&payload_len.to_be_bytes());
    frame[20] = 0;
    frame.splice(54..54, [17, 0, 1, 4, 0, 0, 0, 0]);
    frame
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop::sample::select(vec!["127.0.0.1", "127.0.0.2", "10.0.0.1", "::1", "fd00::2", "fd00::3"])
        .prop_map(|a| a.parse().unwrap())
}

fn net() -> impl Strategy<Value = (IpAddr, u8)> {
    prop::sample::select(vec![
        ("127.0.0.0", 8),
        ("127.0.0.2", 31),
        ("10.0.0.0", 24),
        ("0.0.0.0", 0),
        ("fd00::", 8),
        ("::", 0),
        ("::", 127),
        ("fd00::2", 127),
    ])
    .prop_map(|(a, p)| (a.parse().unwrap(), p))
}

fn primitive() -> impl Strategy<Value = Primitive> {
    let dir = prop::sample::select(vec![Dir::Src, Dir::Dst, Dir::Either, Dir::Both]);
    let name = prop::sample::select(vec![
        ProtoName::Tcp,
        ProtoName::Udp,
        ProtoName::Icmp,
        ProtoName::Icmp6,
        ProtoName::Arp,
        ProtoName::Ip,
        ProtoName::Ip6,
    ]);
    let port = prop::sample::select(vec![53u16, 80, 7007, 40000]);
    let transport = prop::sample::select(vec![None, Some(ProtoName::Tcp), Some(ProtoName::Udp)]);
    prop_oneof![
        name.prop_map(Primitive::Proto),
        (dir.clone(), addr()).prop_map(|(dir, addr)| Primitive::Host { dir, addr }),
        (dir.clone(), net()).prop_map(|(dir, (net, prefix))| Primitive::Net { dir, net, prefix }),
        (dir, transport, port.clone(), port).prop_map(|(dir, proto, a, b)| Primitive::Port {
            dir,
            proto,
            first: a.min(b),
            last: a.max(b)
        }),
        (60u32..90).prop_map(Primitive::Less),
        (60u32..90).prop_map(Primitive::Greater),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    primitive().prop_map(Filter::Is).prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_kernel_program_agrees_with_the_filter(filter in filter()) {
        let program = compile(&filter, LinkType::Ethernet, 65535).expect("compiles");
        let mut exact = frames();
        exact.push(fragment());
        exact.push(arp());
        for frame in &exact {
            prop_assert!(!uncertain(frame));
            let expected = filter.matches(&decode(LinkType::Ethernet, frame), frame.len() as u32);
            let kept = run(&program, frame, frame.len() as u32) != 0;
            prop_assert_eq!(kept, expected, "{} on {:02x?}", filter, frame);
        }
        // Where it cannot know, the program keeps the frame for the exact filter to judge.
        let frame = with_extension_header();
        let expected = filter.matches(&decode(LinkType::Ethernet, &frame), frame.len() as u32);
        let kept = run(&program, &frame, frame.len() as u32) != 0;
        prop_assert!(uncertain(&frame));
        prop_assert!(kept || !expected, "{}", filter);
    }
}

#[test]
fn a_port_filter_compiles_to_a_short_program() {
    let filter: Filter = "tcp port 7007".parse().unwrap();
    let program = compile(&filter, LinkType::Ethernet, 262_144).unwrap();
    assert!(program.len() < 100, "{} instructions", program.len());
    assert_eq!(program.last().map(|i| (i.code, i.k)), Some((op::RET_K, 0)));
    assert!(compile(&filter, LinkType::RawIp, 262_144).is_none());
    // Behind an extension header the program cannot see the transport: it
    // keeps the frame, and the exact filter decides.
    let frame = with_extension_header();
    assert_ne!(run(&program, &frame, frame.len() as u32), 0);
    assert!(!filter.matches(&decode(LinkType::Ethernet, &frame), 0));
    let not_udp: Filter = "not udp".parse().unwrap();
    assert_eq!(run(&compile(&not_udp, LinkType::Ethernet, 100).unwrap(), &frame, 0), 100);
    assert!(!not_udp.matches(&decode(LinkType::Ethernet, &frame), 0));
}

#[test]
fn only_hidden_headers_are_uncertain() {
    assert!(uncertain(&with_extension_header()));
    let mut odd_arp = arp();
    odd_arp[18] = 8; // 8-byte hardware addresses
    assert!(uncertain(&odd_arp));
    assert!(!uncertain(&arp()) && !uncertain(&fragment()) && !uncertain(&[]));
    assert!(frames().iter().all(|f| !uncertain(f)));
}

#[test]
fn a_huge_filter_is_left_to_userspace() {
    let text = (0..400).map(|p| format!("port {p}")).collect::<Vec<_>>().join(" or ");
    assert!(compile(&text.parse().unwrap(), LinkType::Ethernet, 100).is_none());
}
