//! The bytes of a block the kernel handed over: its frames, read with
//! bounds checks, and each frame put back as it was on the wire. Safe code:
//! the unsafe mapping that gives these bytes stays in the parent module.

use std::time::Duration;

use super::COOKED_V2_LEN;

/// The EtherType of an 802.1Q tag, when the kernel does not say which TPID it had.
const TPID_8021Q: u16 = 0x8100;

/// One frame in a block: its `tpacket3_hdr`, the bytes after its link
/// header's start, and the `sockaddr_ll` the kernel puts after the header.
#[derive(Clone, Copy, Debug)]
pub(super) struct RingFrame<'a> {
    /// When the kernel took it.
    pub(super) time: Duration,
    /// Its length on the wire.
    pub(super) len: u32,
    status: u32,
    vlan_tci: u16,
    vlan_tpid: u16,
    /// The sockaddr_ll (20 bytes), or less when the block is damaged.
    address: &'a [u8],
    /// The bytes captured, from the link header on.
    pub(super) data: &'a [u8],
}

impl RingFrame<'_> {
    /// The 802.1Q tag the kernel took out of the frame, as it was on the
    /// wire (TPID, then TCI), if it took one. A TCI of 0 with no flag is
    /// an old kernel's way of saying there was no tag.
    fn vlan_tag(&self) -> Option<[u8; 4]> {
        if self.status & libc::TP_STATUS_VLAN_VALID == 0 && self.vlan_tci == 0 {
            return None;
        }
        let tpid =
            if self.status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { self.vlan_tpid } else { TPID_8021Q };
        let [a, b] = tpid.to_be_bytes();
        let [c, d] = self.vlan_tci.to_be_bytes();
        Some([a, b, c, d])
    }
}

/// Bytes of a `tpacket3_hdr`, rounded up to TPACKET_ALIGNMENT: where the
/// `sockaddr_ll` starts.
const FRAME_HEADER_LEN: usize = 48;
/// Bytes of a `sockaddr_ll`.
const ADDRESS_LEN: usize = 20;

/// The frames of a block handed over by the kernel, read with bounds
/// checks: a damaged block ends the walk rather than reading past it.
pub(super) fn frames_of(block: &[u8]) -> impl Iterator<Item = RingFrame<'_>> {
    let u32_at = |at: usize| block.get(at..at + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let count = u32_at(12).unwrap_or(0);
    let mut offset = u32_at(16).map(|first| first as usize);
    (0..count).map_while(move |_| {
        let at = offset?;
        let header = block.get(at..at + FRAME_HEADER_LEN)?;
        let u32_of = |i: usize| u32::from_ne_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let u16_of = |i: usize| u16::from_ne_bytes([header[i], header[i + 1]]);
        let next = u32_of(0) as usize;
        offset = (next != 0).then_some(at + next);
        let captured = u32_of(12) as usize;
        let mac = usize::from(u16_of(24));
        Some(RingFrame {
            time: Duration::new(u64::from(u32_of(4)), u32_of(8).min(999_999_999)),
            len: u32_of(16),
            status: u32_of(20),
            vlan_tci: u32_of(32) as u16,
            vlan_tpid: u16_of(36),
            address: block
                .get(at + FRAME_HEADER_LEN..)
                .map_or(&[][..], |rest| &rest[..rest.len().min(ADDRESS_LEN)]),
            data: block.get(at + mac..at + mac + captured)?,
        })
    })
}

/// Writes into `out` what the kernel took out of `frame`: the cooked
/// header of a frame of `-i any` (whose link header is not kept), and the
/// 802.1Q tag moved to the frame's metadata, put back after the MAC
/// addresses (or the cooked header). Returns the bytes added; `None` when
/// the frame is whole as it is.
pub(super) fn restore(frame: &RingFrame<'_>, cooked: bool, out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    if cooked {
        let mut header = cooked_v2_header(frame.address);
        let Some(tag) = frame.vlan_tag() else {
            out.extend_from_slice(&header);
            out.extend_from_slice(frame.data);
            return Some(COOKED_V2_LEN);
        };
        // The tag goes before the EtherType, as on Ethernet (and as a frame
        // sent with its tag in its bytes comes): the header's protocol is
        // the tag's TPID, and the payload starts with the TCI and the
        // frame's own protocol.
        let protocol = [header[0], header[1]];
        header[0..2].copy_from_slice(&tag[..2]);
        out.extend_from_slice(&header);
        out.extend_from_slice(&tag[2..]);
        out.extend_from_slice(&protocol);
        out.extend_from_slice(frame.data);
        return Some(COOKED_V2_LEN + tag.len());
    }
    let tag = frame.vlan_tag()?;
    let (macs, rest) = frame.data.split_at(frame.data.len().min(12));
    out.extend_from_slice(macs);
    out.extend_from_slice(&tag);
    out.extend_from_slice(rest);
    Some(tag.len())
}

/// A Linux cooked v2 header (LINKTYPE_LINUX_SLL2) for a frame that came
/// with this `sockaddr_ll`: protocol, reserved, interface index, hardware
/// type, packet type, address length and address, as tcpdump -i any writes.
fn cooked_v2_header(address: &[u8]) -> [u8; COOKED_V2_LEN] {
    let mut sll = [0u8; ADDRESS_LEN];
    sll[..address.len()].copy_from_slice(address);
    let ifindex = i32::from_ne_bytes([sll[4], sll[5], sll[6], sll[7]]) as u32;
    let hatype = u16::from_ne_bytes([sll[8], sll[9]]);
    let mut header = [0u8; COOKED_V2_LEN];
    // sll_protocol is already in network byte order.
    header[0..2].copy_from_slice(&sll[2..4]);
    header[4..8].copy_from_slice(&ifindex.to_be_bytes());
    header[8..10].copy_from_slice(&hatype.to_be_bytes());
    header[10] = sll[10];
    header[11] = sll[11].min(8);
    header[12..20].copy_from_slice(&sll[12..20]);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a test frame holds: its status word, its bytes, its VLAN TCI.
    struct Made<'a> {
        status: u32,
        data: &'a [u8],
        tci: u16,
    }

    /// A 4 KiB block as the kernel hands it over, holding `frames`, each
    /// with the `sockaddr_ll` of a loopback frame leaving ifindex 1.
    fn block_with(frames: &[Made<'_>]) -> Vec<u8> {
        let mut block = vec![0u8; 4096];
        let first = 48;
        block[12..16].copy_from_slice(&(frames.len() as u32).to_ne_bytes());
        block[16..20].copy_from_slice(&(first as u32).to_ne_bytes());
        let mut at = first;
        for (i, made) in frames.iter().enumerate() {
            let mac = FRAME_HEADER_LEN + ADDRESS_LEN + 12;
            let size = (mac + made.data.len()).next_multiple_of(16);
            let next = if i + 1 == frames.len() { 0 } else { size as u32 };
            let put = |block: &mut Vec<u8>, offset: usize, bytes: &[u8]| {
                block[at + offset..at + offset + bytes.len()].copy_from_slice(bytes);
            };
            put(&mut block, 0, &next.to_ne_bytes());
            put(&mut block, 4, &(7 + i as u32).to_ne_bytes());
            put(&mut block, 8, &9u32.to_ne_bytes());
            put(&mut block, 12, &(made.data.len() as u32).to_ne_bytes());
            put(&mut block, 16, &(made.data.len() as u32 + 100).to_ne_bytes());
            put(&mut block, 20, &made.status.to_ne_bytes());
            put(&mut block, 24, &(mac as u16).to_ne_bytes());
            put(&mut block, 32, &u32::from(made.tci).to_ne_bytes());
            put(&mut block, 36, &0x88a8u16.to_ne_bytes());
            let mut address = Vec::new();
            address.extend((libc::AF_PACKET as u16).to_ne_bytes());
            address.extend(0x0800u16.to_be_bytes());
            address.extend(1i32.to_ne_bytes());
            address.extend(772u16.to_ne_bytes());
            address.extend([4, 6, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 0]);
            put(&mut block, FRAME_HEADER_LEN, &address);
            put(&mut block, mac, made.data);
            at += size;
        }
        block
    }

    const FRAME: &[u8] = &[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x08, 0x00, 0x45];

    #[test]
    fn frames_are_read_with_their_times_lengths_and_bytes() {
        let block = block_with(&[
            Made { status: libc::TP_STATUS_USER, data: FRAME, tci: 0 },
            Made { status: libc::TP_STATUS_USER, data: &FRAME[..3], tci: 0 },
        ]);
        let frames: Vec<RingFrame<'_>> = frames_of(&block).collect();
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].time, frames[0].len, frames[0].data), (Duration::new(7, 9), 115, FRAME));
        assert_eq!((frames[1].time, frames[1].len, frames[1].data), (Duration::new(8, 9), 103, &FRAME[..3]));
        assert_eq!(frames[0].vlan_tag(), None);
    }

    #[test]
    fn a_damaged_block_ends_the_walk_instead_of_reading_past_it() {
        let mut block = block_with(&[Made { status: 0, data: FRAME, tci: 0 }]);
        // Three frames announced, one there: the walk stops at its end.
        block[12..16].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(frames_of(&block).count(), 1);
        // A frame whose bytes would run past the block is not read.
        block[48 + 12..48 + 16].copy_from_slice(&5000u32.to_ne_bytes());
        assert_eq!(frames_of(&block).count(), 0);
        // Nor is a first frame past the block.
        block[16..20].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(frames_of(&block).count(), 0);
        assert_eq!(frames_of(&[0u8; 10]).count(), 0);
    }

    #[test]
    fn a_tag_the_kernel_took_out_goes_back_after_the_macs() {
        let tagged = Made { status: libc::TP_STATUS_VLAN_VALID, data: FRAME, tci: 100 };
        let block = block_with(&[tagged]);
        let frame = frames_of(&block).next().unwrap();
        let mut out = Vec::new();
        assert_eq!(restore(&frame, false, &mut out), Some(4));
        assert_eq!(out, [&FRAME[..12], &[0x81, 0x00, 0, 100], &FRAME[12..]].concat());
        // With the TPID the kernel reports (802.1ad here), and priority bits kept.
        let ad = Made {
            status: libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_VLAN_TPID_VALID,
            data: FRAME,
            tci: 0x6064,
        };
        let block = block_with(&[ad]);
        let frame = frames_of(&block).next().unwrap();
        restore(&frame, false, &mut out);
        assert_eq!(out[12..16], [0x88, 0xa8, 0x60, 0x64]);
        // VLAN 0 (priority tagging) is still a tag when the kernel says so.
        let zero = block_with(&[Made { status: libc::TP_STATUS_VLAN_VALID, data: FRAME, tci: 0 }]);
        assert!(frames_of(&zero).next().unwrap().vlan_tag().is_some());
        let untagged = block_with(&[Made { status: libc::TP_STATUS_USER, data: FRAME, tci: 0 }]);
        assert_eq!(restore(&frames_of(&untagged).next().unwrap(), false, &mut out), None);
    }

    #[test]
    fn frames_of_every_interface_get_a_cooked_v2_header() {
        let block = block_with(&[Made { status: 0, data: &FRAME[14..], tci: 0 }]);
        let frame = frames_of(&block).next().unwrap();
        let mut out = Vec::new();
        assert_eq!(restore(&frame, true, &mut out), Some(COOKED_V2_LEN));
        let header =
            [0x08, 0x00, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 4, 6, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 0];
        assert_eq!(out, [&header[..], &FRAME[14..]].concat());
        // A tag the kernel took out: the protocol field says 802.1Q, the
        // payload starts with the TCI and the frame's own protocol.
        let tagged = Made { status: libc::TP_STATUS_VLAN_VALID, data: &FRAME[14..], tci: 100 };
        let block = block_with(&[tagged]);
        let frame = frames_of(&block).next().unwrap();
        assert_eq!(restore(&frame, true, &mut out), Some(COOKED_V2_LEN + 4));
        assert_eq!(out[..2], [0x81, 0x00]);
        assert_eq!(out[2..COOKED_V2_LEN], header[2..]);
        assert_eq!(out[COOKED_V2_LEN..], [&[0, 100, 0x08, 0x00][..], &FRAME[14..]].concat());
    }
}
