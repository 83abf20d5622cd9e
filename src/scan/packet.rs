//! TCP segments for the SYN scan: building a SYN and reading the answer,
//! over IPv4 (the raw socket hands us the IP header too) and IPv6 (it does
//! not). Both directions go through etherparse, the crate's one TCP/IP
//! parser (the capture code decodes with it too). Pure: bytes in, values
//! out; parsing never panics on any input.

use std::net::IpAddr;

use etherparse::{IpNumber, Ipv4Slice, TcpHeader, TcpHeaderSlice, TcpOptionElement};

/// The length of the SYN we send: a 20-byte header and an MSS option.
pub const SYN_LEN: usize = 24;

/// The window our SYNs advertise, and the segment size they offer.
const WINDOW: u16 = 1024;
const MSS: u16 = 1460;

/// What a probe's answer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpReply {
    /// The port that answered (the probed port).
    pub src_port: u16,
    /// The port it answered to (our source port).
    pub dst_port: u16,
    /// The acknowledgement number: our sequence number plus one.
    pub ack: u32,
    /// SYN and ACK both set: the port is open.
    pub syn_ack: bool,
    /// RST set: the port is closed.
    pub rst: bool,
}

/// Writes a SYN from `src:src_port` to `dst:dst_port` with sequence number
/// `seq` into `buf`, checksum included.
pub fn build_syn(buf: &mut [u8; SYN_LEN], src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16, seq: u32) {
    let mut syn = TcpHeader::new(src_port, dst_port, seq, WINDOW);
    syn.syn = true;
    // One option of four bytes always fits the forty the header allows.
    let _ = syn.set_options(&[TcpOptionElement::MaximumSegmentSize(MSS)]);
    // An empty payload always fits the length field.
    syn.checksum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => syn.calc_checksum_ipv4_raw(s.octets(), d.octets(), &[]),
        _ => syn.calc_checksum_ipv6_raw(v6_octets(src), v6_octets(dst), &[]),
    }
    .unwrap_or(0);
    buf.copy_from_slice(&syn.to_bytes()[..SYN_LEN]);
}

fn v6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(v6) => v6.octets(),
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
    }
}

/// Reads an IPv4 packet carrying TCP: the sender's address and the TCP header.
pub fn parse_ipv4(packet: &[u8]) -> Option<(IpAddr, TcpReply)> {
    let ip = Ipv4Slice::from_slice(packet).ok()?;
    if ip.payload_ip_number() != IpNumber::TCP || ip.payload().fragmented {
        return None;
    }
    Some((IpAddr::V4(ip.header().source_addr()), parse_tcp(ip.payload().payload)?))
}

/// Reads a TCP header (as an IPv6 raw socket hands it over).
pub fn parse_tcp(segment: &[u8]) -> Option<TcpReply> {
    let tcp = TcpHeaderSlice::from_slice(segment).ok()?;
    Some(TcpReply {
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        ack: tcp.acknowledgment_number(),
        syn_ack: tcp.syn() && tcp.ack(),
        rst: tcp.rst(),
    })
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    /// The TCP checksum over the pseudo header and `segment`, as a receiver checks it.
    fn verify(src: IpAddr, dst: IpAddr, segment: &[u8]) -> bool {
        let Ok(header) = TcpHeaderSlice::from_slice(segment) else { return false };
        let header = header.to_header();
        let sum = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => header.calc_checksum_ipv4_raw(s.octets(), d.octets(), &[]),
            _ => header.calc_checksum_ipv6_raw(v6_octets(src), v6_octets(dst), &[]),
        };
        sum == Ok(header.checksum)
    }

    #[test]
    fn a_syn_checks_out_and_reads_back() {
        let (src, dst) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
        let mut syn = [0u8; SYN_LEN];
        build_syn(&mut syn, src, dst, 40000, 22, 0xdead_beef);
        assert!(verify(src, dst, &syn));
        assert!(!verify(src, IpAddr::from([127, 0, 0, 3]), &syn), "the checksum covers the addresses");
        let header = TcpHeaderSlice::from_slice(&syn).unwrap();
        assert!(header.syn() && !header.ack() && !header.rst());
        assert_eq!((header.source_port(), header.destination_port()), (40000, 22));
        assert_eq!(header.sequence_number(), 0xdead_beef);
        assert_eq!(header.options(), [2, 4, 0x05, 0xb4], "MSS 1460");

        let v6 = IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1u16]);
        build_syn(&mut syn, v6, v6, 40000, 22, 7);
        assert!(verify(v6, v6, &syn));
    }

    #[test]
    fn answers_are_read_from_ipv4_packets_and_bare_segments() {
        let mut packet = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 9], [127, 0, 0, 1], 64)
            .tcp(443, 40000, 77, 1024)
            .syn()
            .ack(8)
            .write(&mut packet, &[])
            .unwrap();
        let (from, reply) = parse_ipv4(&packet).unwrap();
        assert_eq!(from, IpAddr::from([10, 0, 0, 9]));
        assert_eq!(reply, TcpReply { src_port: 443, dst_port: 40000, ack: 8, syn_ack: true, rst: false });
        assert_eq!(parse_tcp(&packet[20..]), Some(reply), "an IPv6 raw socket hands over the segment");
        assert_eq!(parse_ipv4(&packet[..30]), None, "truncated");
        assert_eq!(parse_ipv4(&[0x45]), None);
        assert_eq!(parse_ipv4(&[0x42; 40]), None, "bad header length");

        let mut udp = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 9], [127, 0, 0, 1], 64)
            .udp(53, 40000)
            .write(&mut udp, &[0; 20])
            .unwrap();
        assert_eq!(parse_ipv4(&udp), None, "not TCP");

        let mut reset = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 9], [127, 0, 0, 1], 64)
            .tcp(22, 40000, 0, 0)
            .rst()
            .ack(5)
            .write(&mut reset, &[])
            .unwrap();
        let (_, reply) = parse_ipv4(&reset).unwrap();
        assert!(reply.rst && !reply.syn_ack);
    }

    #[test]
    fn ipv4_options_are_skipped() {
        // IHL 6: one word of options (four no-ops) between the header and TCP.
        let mut packet = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 9], [127, 0, 0, 1], 64)
            .tcp(80, 40000, 1, 1024)
            .rst()
            .write(&mut packet, &[])
            .unwrap();
        let mut with_options = vec![0x46];
        with_options.extend_from_slice(&packet[1..20]);
        with_options.extend_from_slice(&[1, 1, 1, 1]);
        with_options.extend_from_slice(&packet[20..]);
        with_options[3] += 4; // total length
        let (_, reply) = parse_ipv4(&with_options).unwrap();
        assert_eq!((reply.src_port, reply.rst), (80, true));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let _ = parse_ipv4(&bytes);
            let _ = parse_tcp(&bytes);
        }
    }
}
