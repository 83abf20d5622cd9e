//! Transport headers etherparse leaves alone but tcpdump reads: a TCP
//! header whose options the snap length cut off, and the TCP or UDP header
//! at the start of a first IPv4 fragment.

use etherparse::{IpNumber, LaxSlicedPacket};

use super::{Proto, Summary, Tcp, TcpFlags, set_payload};

/// Reads what etherparse did not: a cut TCP header, or a first fragment's
/// ports.
pub(super) fn read(summary: &mut Summary, packet: &LaxSlicedPacket<'_>, frame: &[u8]) {
    let Some(ip) = packet.ip_payload() else { return };
    if ip.fragmented && !summary.first_fragment {
        return;
    }
    match ip.ip_number {
        IpNumber::TCP => tcp(summary, ip.payload, frame, ip.fragmented),
        IpNumber::UDP if ip.fragmented => {
            let Some(&[s0, s1, d0, d1, l0, l1, ..]) = ip.payload.get(..8) else { return };
            summary.proto = Proto::Udp;
            summary.sport = Some(u16::from_be_bytes([s0, s1]));
            summary.dport = Some(u16::from_be_bytes([d0, d1]));
            set_payload(summary, frame, &ip.payload[8..]);
            summary.payload_len = usize::from(u16::from_be_bytes([l0, l1])).saturating_sub(8);
        }
        _ => {}
    }
}

/// The fixed 20 bytes of a TCP header (ports, flags, numbers, window),
/// when the options were cut off (tcpdump shows the rest as `[|tcp]`) or
/// when this is a first fragment.
fn tcp(summary: &mut Summary, payload: &[u8], frame: &[u8], fragment: bool) {
    let Some(
        &[sport0, sport1, dport0, dport1, s0, s1, s2, s3, a0, a1, a2, a3, offset, flags, w0, w1, u0, u1, ..],
    ) = payload.get(..20)
    else {
        return;
    };
    let header = usize::from(offset >> 4) * 4;
    if header < 20 || (!fragment && payload.len() >= header) {
        // Malformed, or whole (and then etherparse stopped for another reason).
        return;
    }
    summary.proto = Proto::Tcp;
    summary.sport = Some(u16::from_be_bytes([sport0, sport1]));
    summary.dport = Some(u16::from_be_bytes([dport0, dport1]));
    summary.tcp = Some(Tcp {
        flags: TcpFlags(flags),
        seq: u32::from_be_bytes([s0, s1, s2, s3]),
        ack: u32::from_be_bytes([a0, a1, a2, a3]),
        win: u16::from_be_bytes([w0, w1]),
        urg: u16::from_be_bytes([u0, u1]),
    });
    let announced = summary.payload_len.saturating_sub(header);
    set_payload(summary, frame, payload.get(header..).unwrap_or(&frame[frame.len()..]));
    summary.payload_len = announced;
    if payload.len() < header {
        summary.problem = Some(format!("truncated TCP options: {} of {header} header bytes", payload.len()));
    }
}
