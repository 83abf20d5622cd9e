//! A corpus of capture files, built here: ordinary traffic and the unusual
//! frames where filters go wrong (fragments, IP options, IPv6 extension
//! headers, VLAN tags, ARP and RARP, SCTP and IGMP, 802.3 LLC, multicast and
//! broadcast, frames cut by a snap length, lying lengths, tiny frames), as
//! Ethernet, as a 64-byte snap length, as Linux cooked v1 and v2, as raw
//! IP and as BSD loopback. Frame `i` of every file has the timestamp
//! `i + 1` seconds, which is how the tests tell frames apart in output.

use std::path::{Path, PathBuf};

use etherparse::{IpNumber, Ipv4Header, Ipv6FragmentHeader, PacketBuilder, TcpOptionElement};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const BROADCAST: [u8; 6] = [0xff; 6];
const MULTICAST: [u8; 6] = [0x01, 0x00, 0x5e, 0, 0, 0x01];

fn ether(dst: [u8; 6]) -> etherparse::PacketBuilderStep<etherparse::Ethernet2Header> {
    PacketBuilder::ethernet2(MAC_A, dst)
}

fn v6(last: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    if last == 1 {
        a[15] = 1;
    } else {
        a[0] = 0xfd;
        a[14..].copy_from_slice(&last.to_be_bytes());
    }
    a
}

/// An IPv4 packet with `proto` and a raw payload after the IP header.
fn ipv4_raw(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8], frag: (bool, u16)) -> Vec<u8> {
    let mut header = Ipv4Header::new(payload.len() as u16, 64, IpNumber(proto), src, dst).unwrap();
    header.more_fragments = frag.0;
    header.fragment_offset = etherparse::IpFragOffset::try_new(frag.1).unwrap();
    let mut out = Vec::new();
    header.write(&mut out).unwrap();
    out.extend_from_slice(payload);
    out
}

fn with_ether(dst: [u8; 6], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = [dst, MAC_A].concat();
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A TCP or UDP header (8 or 20 bytes) with these ports, then `data`.
fn ports(sport: u16, dport: u16, tcp: bool, data: &[u8]) -> Vec<u8> {
    let mut out = [sport.to_be_bytes(), dport.to_be_bytes()].concat();
    if tcp {
        out.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        out.extend(((8 + data.len()) as u16).to_be_bytes());
        out.extend([0, 0]);
    }
    out.extend_from_slice(data);
    out
}

/// Every frame of the corpus, as Ethernet frames.
pub fn ethernet_frames() -> Vec<Vec<u8>> {
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let a4 = [127, 0, 0, 1];
    let b4 = [10, 1, 2, 3];
    // TCP over IPv4: a handshake's worth of flags, ports and options.
    for (flags, sport, dport, data) in [
        ("S", 40000u16, 80u16, &b""[..]),
        ("SA", 80, 40000, b""),
        ("A", 40000, 80, b""),
        ("PA", 40000, 80, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("FA", 443, 51000, b""),
        ("R", 22, 33333, b""),
        ("SEW", 7007, 5555, b""),
        ("UA", 23, 1024, b"x"),
    ] {
        let mut tcp = ether(MAC_B).ipv4(a4, b4, 64).tcp(sport, dport, 1000, 65000);
        for flag in flags.chars() {
            tcp = match flag {
                'S' => tcp.syn(),
                'A' => tcp.ack(5000),
                'P' => tcp.psh(),
                'F' => tcp.fin(),
                'R' => tcp.rst(),
                'E' => tcp.ece(),
                'W' => tcp.cwr(),
                'U' => tcp.urg(7),
                _ => tcp,
            };
        }
        if flags == "S" {
            tcp = tcp
                .options(&[
                    TcpOptionElement::MaximumSegmentSize(65495),
                    TcpOptionElement::SelectiveAcknowledgementPermitted,
                    TcpOptionElement::Timestamp(1, 0),
                    TcpOptionElement::Noop,
                    TcpOptionElement::WindowScale(7),
                ])
                .unwrap();
        }
        let mut frame = Vec::new();
        tcp.write(&mut frame, data).unwrap();
        frames.push(frame);
    }
    // UDP over IPv4 and IPv6: DNS, mDNS, echo, a high port.
    for (sport, dport) in [(53000u16, 53u16), (53, 53000), (5353, 5353), (7, 40001), (12345, 9)] {
        let mut frame = Vec::new();
        ether(MAC_B).ipv4(b4, a4, 64).udp(sport, dport).write(&mut frame, b"hello").unwrap();
        frames.push(frame);
        let mut frame = Vec::new();
        ether(MAC_B).ipv6(v6(1), v6(2), 64).udp(sport, dport).write(&mut frame, b"hello").unwrap();
        frames.push(frame);
    }
    // TCP over IPv6.
    for (sport, dport) in [(40000u16, 80u16), (443, 40002)] {
        let mut frame = Vec::new();
        ether(MAC_B).ipv6(v6(2), v6(1), 64).tcp(sport, dport, 1, 100).syn().write(&mut frame, b"").unwrap();
        frames.push(frame);
    }
    // ICMP: echo, port unreachable quoting UDP, ICMPv6 echo and a neighbour solicitation.
    let mut frame = Vec::new();
    ether(MAC_B).ipv4(a4, b4, 64).icmpv4_echo_request(1, 2).write(&mut frame, b"ping").unwrap();
    frames.push(frame);
    let quoted = ipv4_raw(b4, a4, 17, &ports(40000, 9, false, b"x"), (false, 0));
    let mut frame = Vec::new();
    ether(MAC_B)
        .ipv4(a4, b4, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut frame, &quoted)
        .unwrap();
    frames.push(frame);
    let mut frame = Vec::new();
    ether(MAC_B).ipv6(v6(1), v6(2), 64).icmpv6_echo_request(3, 4).write(&mut frame, b"ping6").unwrap();
    frames.push(frame);
    let mut frame = Vec::new();
    ether(MULTICAST)
        .ipv6(v6(2), [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1], 255)
        .icmpv6(etherparse::Icmpv6Type::NeighborSolicitation)
        .write(&mut frame, &[0; 20])
        .unwrap();
    frames.push(frame);
    // IGMP to a multicast group, SCTP with ports, GRE.
    frames.push(with_ether(
        MULTICAST,
        0x0800,
        &ipv4_raw(b4, [224, 0, 0, 1], 2, &[0x11, 0, 0, 0, 0, 0, 0, 0], (false, 0)),
    ));
    frames.push(with_ether(
        MAC_B,
        0x0800,
        &ipv4_raw(a4, b4, 132, &[0x0b, 0x59, 0x0b, 0x59, 0, 0, 0, 1, 0, 0, 0, 0], (false, 0)),
    ));
    frames.push(with_ether(MAC_B, 0x0800, &ipv4_raw(a4, b4, 47, &[0, 0, 0x08, 0], (false, 0))));
    // IPv4 fragments: a first one with its UDP ports, a later one.
    frames.push(with_ether(
        MAC_B,
        0x0800,
        &ipv4_raw(a4, b4, 17, &ports(5000, 53, false, &[1; 24]), (true, 0)),
    ));
    frames.push(with_ether(
        MAC_B,
        0x0800,
        &ipv4_raw(a4, b4, 17, &[0x00, 0x35, 0, 0x35, 9, 9, 9, 9], (false, 4)),
    ));
    frames.push(with_ether(MAC_B, 0x0800, &ipv4_raw(a4, b4, 6, &ports(80, 40000, true, b""), (true, 0))));
    // IPv4 with options (IHL 6): the ports are 4 bytes further.
    let mut with_options = ipv4_raw(a4, b4, 6, &ports(40003, 8080, true, b""), (false, 0));
    with_options[0] = 0x46;
    with_options.splice(20..20, [1, 1, 1, 0]);
    let total = (with_options.len() as u16).to_be_bytes();
    with_options[2..4].copy_from_slice(&total);
    frames.push(with_ether(MAC_B, 0x0800, &with_options));
    // IPv6 with a hop-by-hop header, and with a fragment header (first and later).
    let mut frame = Vec::new();
    ether(MAC_B).ipv6(v6(1), v6(2), 64).tcp(40004, 80, 9, 100).syn().write(&mut frame, b"").unwrap();
    let hop_by_hop = [6u8, 0, 1, 4, 0, 0, 0, 0];
    frame[20] = 0;
    frame.splice(54..54, hop_by_hop);
    let plen = ((frame.len() - 54) as u16).to_be_bytes();
    frame[18..20].copy_from_slice(&plen);
    frames.push(frame);
    for (offset, more) in [(0u16, true), (8, false)] {
        let mut frame = Vec::new();
        ether(MAC_B).ipv6(v6(2), v6(1), 64).tcp(40005, 443, 9, 100).syn().write(&mut frame, b"").unwrap();
        frame[20] = 44;
        let fragment = Ipv6FragmentHeader::new(
            IpNumber::TCP,
            etherparse::IpFragOffset::try_new(offset).unwrap(),
            more,
            7,
        );
        frame.splice(54..54, fragment.to_bytes());
        let plen = ((frame.len() - 54) as u16).to_be_bytes();
        frame[18..20].copy_from_slice(&plen);
        frames.push(frame);
    }
    // ARP request (broadcast) and reply, a RARP request.
    let arp = |op: u8, sender: [u8; 4], target: [u8; 4]| {
        let mut body = vec![0, 1, 8, 0, 6, 4, 0, op];
        body.extend(MAC_A);
        body.extend(sender);
        body.extend([0; 6]);
        body.extend(target);
        body
    };
    frames.push(with_ether(BROADCAST, 0x0806, &arp(1, b4, a4)));
    frames.push(with_ether(MAC_B, 0x0806, &arp(2, a4, b4)));
    frames.push(with_ether(BROADCAST, 0x8035, &arp(3, [0; 4], [0; 4])));
    // 802.1Q and 802.1ad (QinQ) tagged frames.
    let mut inner = Vec::new();
    PacketBuilder::ipv4(a4, b4, 64).tcp(40006, 80, 1, 100).syn().write(&mut inner, b"").unwrap();
    frames.push(with_ether(MAC_B, 0x8100, &[&[0x00, 0x64, 0x08, 0x00][..], &inner].concat()));
    frames.push(with_ether(
        MAC_B,
        0x88a8,
        &[&[0x00, 0xc8, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00][..], &inner].concat(),
    ));
    let mut udp6 = Vec::new();
    PacketBuilder::ipv6(v6(1), v6(2), 64).udp(53, 40007).write(&mut udp6, b"v").unwrap();
    frames.push(with_ether(MAC_B, 0x8100, &[&[0x20, 0x07, 0x86, 0xdd][..], &udp6].concat()));
    // 802.3 with LLC (STP's SAP 0x42), LLDP, a runt and a frame of 10 bytes.
    let llc = [0x42u8, 0x42, 0x03, 0, 0, 0, 0, 0];
    frames.push(with_ether([0x01, 0x80, 0xc2, 0, 0, 0], llc.len() as u16, &llc));
    frames.push(with_ether([0x01, 0x80, 0xc2, 0, 0, 0x0e], 0x88cc, &[2, 7, 4, 2, 0, 0, 0, 0, 0x0a]));
    frames.push(with_ether(MAC_B, 0x0800, &[0x45, 0]));
    frames.push(vec![0xff; 10]);
    // Lying lengths: IHL under 5, a total length under the header, a TCP data offset under 5.
    let mut bad_ihl = ipv4_raw(a4, b4, 6, &ports(1, 2, true, b""), (false, 0));
    bad_ihl[0] = 0x44;
    frames.push(with_ether(MAC_B, 0x0800, &bad_ihl));
    let mut bad_len = ipv4_raw(a4, b4, 17, &ports(53, 53, false, b"q"), (false, 0));
    bad_len[2..4].copy_from_slice(&10u16.to_be_bytes());
    frames.push(with_ether(MAC_B, 0x0800, &bad_len));
    let mut bad_offset = ipv4_raw(a4, b4, 6, &ports(80, 80, true, b""), (false, 0));
    bad_offset[32] = 0x20;
    frames.push(with_ether(MAC_B, 0x0800, &bad_offset));
    // Broadcast IPv4 and a big frame for len, less and greater.
    let mut frame = Vec::new();
    ether(BROADCAST).ipv4(b4, [255, 255, 255, 255], 1).udp(68, 67).write(&mut frame, &[0; 300]).unwrap();
    frames.push(frame);
    let mut frame = Vec::new();
    ether(MAC_B)
        .ipv4(a4, b4, 64)
        .tcp(40008, 7007, 5, 100)
        .ack(1)
        .psh()
        .write(&mut frame, &[b'z'; 1400])
        .unwrap();
    frames.push(frame);
    frames
}

/// How the corpus is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Ethernet,
    Snap64,
    Cooked1,
    Cooked2,
    RawIp,
    BsdLoopback,
}

impl Variant {
    pub const ALL: [Variant; 6] = [
        Variant::Ethernet,
        Variant::Snap64,
        Variant::Cooked1,
        Variant::Cooked2,
        Variant::RawIp,
        Variant::BsdLoopback,
    ];

    fn link(self) -> u32 {
        match self {
            Variant::Ethernet | Variant::Snap64 => 1,
            Variant::Cooked1 => 113,
            Variant::Cooked2 => 276,
            Variant::RawIp => 101,
            Variant::BsdLoopback => 0,
        }
    }

    /// The frame as this variant holds it; `None` when it has no such frame.
    fn frame(self, ethernet: &[u8]) -> Option<Vec<u8>> {
        let (Some(header), Some(payload)) = (ethernet.get(..14), ethernet.get(14..)) else {
            return (self == Variant::Ethernet || self == Variant::Snap64).then(|| ethernet.to_vec());
        };
        let ether_type = [header[12], header[13]];
        let is_ip = matches!(ether_type, [0x08, 0x00] | [0x86, 0xdd]);
        Some(match self {
            Variant::Ethernet | Variant::Snap64 => ethernet.to_vec(),
            Variant::Cooked1 => {
                let mut out = vec![0, 0, 0, 1, 0, 6];
                out.extend(&header[6..12]);
                out.extend([0, 0]);
                out.extend(ether_type);
                out.extend(payload);
                out
            }
            Variant::Cooked2 => {
                let mut out = ether_type.to_vec();
                out.extend([0, 0, 0, 0, 0, 2, 0, 1, 0, 6]);
                out.extend(&header[6..12]);
                out.extend([0, 0]);
                out.extend(payload);
                out
            }
            Variant::RawIp if is_ip => payload.to_vec(),
            Variant::BsdLoopback if is_ip => {
                let family: u32 = if ether_type == [0x08, 0x00] { 2 } else { 30 };
                [&family.to_le_bytes()[..], payload].concat()
            }
            Variant::RawIp | Variant::BsdLoopback => return None,
        })
    }
}

/// Writes the corpus as `variant` into `dir`; its path and frame count.
pub fn write(dir: &Path, variant: Variant) -> (PathBuf, usize) {
    let snaplen: usize = if variant == Variant::Snap64 { 64 } else { 65535 };
    let mut file =
        [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, snaplen as u32, variant.link()].map(u32::to_le_bytes).concat();
    let mut count = 0;
    for frame in ethernet_frames().iter().filter_map(|f| variant.frame(f)) {
        count += 1;
        let kept = &frame[..frame.len().min(snaplen)];
        let header = [count as u32, 0, kept.len() as u32, frame.len() as u32].map(u32::to_le_bytes).concat();
        file.extend(header);
        file.extend_from_slice(kept);
    }
    let path = dir.join(format!("{variant:?}.pcap").to_lowercase());
    std::fs::write(&path, file).unwrap();
    (path, count)
}
