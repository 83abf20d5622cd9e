//! TCP segments for the SYN scan: building a SYN and reading the answer,
//! over IPv4 (the raw socket hands us the IP header too) and IPv6 (it does
//! not). Pure: bytes in, values out; parsing never panics on any input.

use std::net::{IpAddr, Ipv4Addr};

/// TCP flags.
pub const SYN: u8 = 0x02;
/// Reset.
pub const RST: u8 = 0x04;
/// Acknowledgement.
pub const ACK: u8 = 0x10;

/// The length of the SYN we send: a 20-byte header and an MSS option.
pub const SYN_LEN: usize = 24;

const TCP_PROTOCOL: u8 = 6;

/// What a probe's answer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpReply {
    /// The port that answered (the probed port).
    pub src_port: u16,
    /// The port it answered to (our source port).
    pub dst_port: u16,
    /// The acknowledgement number: our sequence number plus one.
    pub ack: u32,
    /// The TCP flags.
    pub flags: u8,
}

/// Writes a SYN from `src:src_port` to `dst:dst_port` with sequence number
/// `seq` into `buf`, checksum included.
pub fn build_syn(buf: &mut [u8; SYN_LEN], src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16, seq: u32) {
    buf[0..2].copy_from_slice(&src_port.to_be_bytes());
    buf[2..4].copy_from_slice(&dst_port.to_be_bytes());
    buf[4..8].copy_from_slice(&seq.to_be_bytes());
    buf[8..12].fill(0);
    buf[12] = ((SYN_LEN / 4) as u8) << 4;
    buf[13] = SYN;
    buf[14..16].copy_from_slice(&1024u16.to_be_bytes());
    buf[16..20].fill(0);
    // MSS option: kind 2, length 4, 1460.
    buf[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
    let sum = checksum(src, dst, buf);
    buf[16..18].copy_from_slice(&sum.to_be_bytes());
}

/// The TCP checksum of `segment` (checksum field zero) between `src` and `dst`.
pub fn checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            sum += u32::from(word);
        }
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            add(&s.octets());
            add(&d.octets());
            add(&[0, TCP_PROTOCOL]);
            add(&(segment.len() as u16).to_be_bytes());
        }
        _ => {
            add(&v6_octets(src));
            add(&v6_octets(dst));
            add(&(segment.len() as u32).to_be_bytes());
            add(&[0, 0, 0, TCP_PROTOCOL]);
        }
    }
    add(segment);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn v6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(v6) => v6.octets(),
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
    }
}

/// Reads an IPv4 packet carrying TCP: the sender's address and the TCP header.
pub fn parse_ipv4(packet: &[u8]) -> Option<(IpAddr, TcpReply)> {
    let first = *packet.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 || *packet.get(9)? != TCP_PROTOCOL {
        return None;
    }
    let src = Ipv4Addr::new(*packet.get(12)?, *packet.get(13)?, *packet.get(14)?, *packet.get(15)?);
    Some((IpAddr::V4(src), parse_tcp(packet.get(header_len..)?)?))
}

/// Reads a TCP header (as an IPv6 raw socket hands it over).
pub fn parse_tcp(segment: &[u8]) -> Option<TcpReply> {
    let header = segment.get(..20)?;
    let u16_at = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    Some(TcpReply {
        src_port: u16_at(0),
        dst_port: u16_at(2),
        ack: u32::from_be_bytes([header[8], header[9], header[10], header[11]]),
        flags: header[13],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syn_checks_out_and_reads_back() {
        let (src, dst) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 1]));
        let mut syn = [0u8; SYN_LEN];
        build_syn(&mut syn, src, dst, 40000, 22, 0xdead_beef);
        // A correct checksum makes the sum over the segment come out as zero.
        assert_eq!(checksum(src, dst, &syn), 0);
        let read = parse_tcp(&syn).unwrap();
        assert_eq!((read.src_port, read.dst_port, read.flags), (40000, 22, SYN));
        assert_eq!(&syn[4..8], &0xdead_beef_u32.to_be_bytes());

        let v6 = IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1u16]);
        build_syn(&mut syn, v6, v6, 40000, 22, 7);
        assert_eq!(checksum(v6, v6, &syn), 0);
    }

    #[test]
    fn ipv4_packets_are_read_past_their_options() {
        // Version 4, IHL 6 (one option word), protocol TCP, from 10.0.0.9.
        let mut packet = vec![0x46, 0, 0, 44, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 9, 127, 0, 0, 1, 1, 1, 1, 1];
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&443u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40000u16.to_be_bytes());
        tcp[8..12].copy_from_slice(&8u32.to_be_bytes());
        tcp[13] = SYN | ACK;
        packet.extend_from_slice(&tcp);
        let (from, reply) = parse_ipv4(&packet).unwrap();
        assert_eq!(from, IpAddr::from([10, 0, 0, 9]));
        assert_eq!(reply, TcpReply { src_port: 443, dst_port: 40000, ack: 8, flags: SYN | ACK });
        assert_eq!(parse_ipv4(&packet[..30]), None, "truncated");
        packet[9] = 17;
        assert_eq!(parse_ipv4(&packet), None, "not TCP");
        assert_eq!(parse_ipv4(&[0x45]), None);
        assert_eq!(parse_ipv4(&[0x42; 40]), None, "bad header length");
    }
}
