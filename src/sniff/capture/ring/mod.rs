//! A TPACKET_V3 receive ring: the kernel writes captured frames into blocks
//! of memory it shares with us, and hands a block over when it is full or
//! when its timeout expires. Reading a frame is then a look at memory, not
//! a system call and a copy per frame; one `poll` waits for a whole block.
//!
//! This is the crate's one module that talks to the packet socket's ring
//! interface, which no well-kept crate wraps: the `setsockopt`s, `mmap` and
//! `bind` of a `sockaddr_ll` are done here with `libc`, each `unsafe` block
//! with the reason it is sound.
//!
//! Each frame's header also says what the kernel took out of it: an 802.1Q
//! tag that the driver (or the kernel) moved to the frame's metadata goes
//! back where it was on the wire, as libpcap puts it back, so files and
//! filters see frames as they travelled. On a socket of every interface
//! (`-i any`) frames come without their link header; a Linux cooked v2
//! header, as `tcpdump -i any` writes, is built from the frame's address.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, SockFilter, Socket, Type};

/// ETH_P_ALL: every protocol.
const ETH_P_ALL: u16 = 0x0003;
/// The EtherType of an 802.1Q tag, when the kernel does not say which TPID it had.
const TPID_8021Q: u16 = 0x8100;
/// Bytes of a Linux cooked v2 header (LINKTYPE_LINUX_SLL2).
const COOKED_V2_LEN: usize = 20;
/// How long a block that is not full waits before the kernel hands it
/// over: the longest a quiet capture delays a frame.
const BLOCK_TIMEOUT_MS: u32 = 10;
/// The smallest ring, in blocks: one being filled while we read another.
const MIN_BLOCKS: usize = 2;

/// Which frames a ring sees, and how they start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// One interface, frames from their link header on.
    Interface(u32),
    /// Every interface, frames from their network header on (a cooked
    /// header is put before each).
    Any,
}

/// A packet socket with a TPACKET_V3 ring mapped into our memory.
///
/// Call order: [`Ring::open`], then [`Ring::read_block`] whenever the
/// socket is readable (or in a loop until it returns `None`).
#[derive(Debug)]
pub(crate) struct Ring {
    socket: Socket,
    /// The start of the mapping: `blocks * block_size` bytes.
    map: NonNull<u8>,
    block_size: usize,
    blocks: usize,
    /// The block to read next; the kernel fills blocks in order.
    next: usize,
    snaplen: usize,
    cooked: bool,
    /// Frames whose bytes we rebuild (a tag put back, a cooked header).
    scratch: Vec<u8>,
    /// The kernel's drop count, summed (reading it resets the kernel's).
    dropped: Cell<u64>,
}

impl Ring {
    /// Opens a ring of about `buffer` bytes that keeps `snaplen` bytes of
    /// each frame of `source`. `program` runs in the kernel on each frame
    /// and returns how many bytes to keep (0: drop it).
    ///
    /// The socket receives nothing until it is bound, after the filter is
    /// attached: no frame from before the filter can reach the ring.
    ///
    /// # Errors
    /// When the socket cannot be opened (`PermissionDenied` without
    /// CAP_NET_RAW) or the ring cannot be set up or mapped.
    pub(crate) fn open(
        source: Source,
        snaplen: usize,
        buffer: usize,
        program: &[SockFilter],
    ) -> io::Result<Ring> {
        let cooked = source == Source::Any;
        let kind = if cooked { Type::DGRAM } else { Type::RAW };
        let socket = Socket::new(Domain::PACKET, kind.nonblocking(), Some(Protocol::from(0)))?;
        socket.attach_filter(program)?;
        set_option(&socket, libc::PACKET_VERSION, &(libc::tpacket_versions::TPACKET_V3 as libc::c_int))?;
        let (block_size, blocks) = geometry(snaplen, buffer);
        let request = libc::tpacket_req3 {
            tp_block_size: block_size as u32,
            tp_block_nr: blocks as u32,
            // Frames are packed in V3's blocks; these only satisfy the
            // kernel's checks (a frame size dividing the block size).
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: (block_size / FRAME_SIZE * blocks) as u32,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_option(&socket, libc::PACKET_RX_RING, &request)?;
        let length = block_size * blocks;
        // SAFETY: a fresh shared mapping of the socket's ring, whose length
        // is the ring's; the kernel checks the length against the ring and
        // fails the call otherwise. Nothing else aliases it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                length,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                socket.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(map.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let ring = Ring {
            socket,
            map,
            block_size,
            blocks,
            next: 0,
            snaplen,
            cooked,
            scratch: Vec::with_capacity(snaplen + COOKED_V2_LEN + 4),
            dropped: Cell::new(0),
        };
        ring.bind(match source {
            Source::Interface(ifindex) => ifindex,
            Source::Any => 0,
        })?;
        Ok(ring)
    }

    /// Binds the socket to interface `ifindex` (0: every interface), for
    /// every protocol: the moment frames start to arrive.
    fn bind(&self, ifindex: u32) -> io::Result<()> {
        let address = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: ETH_P_ALL.to_be(),
            sll_ifindex: ifindex as i32,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        // SAFETY: `address` is a valid sockaddr_ll that outlives the call,
        // and the length given is its size.
        let rc = unsafe {
            libc::bind(
                self.socket.as_raw_fd(),
                (&raw const address).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // Counted while unbound: nothing of ours.
        self.kernel_drops()?;
        Ok(())
    }

    /// Hands each frame of the next block to `each` (its time since the
    /// Unix epoch, its length on the wire, the bytes kept), then gives the
    /// block back to the kernel. `None` when the kernel has not handed over
    /// the next block yet: time to wait for the socket to be readable.
    pub(crate) fn read_block(&mut self, mut each: impl FnMut(Duration, u32, &[u8])) -> Option<usize> {
        if !self.ready() {
            return None;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut count = 0;
        for frame in frames_of(self.block_bytes(self.next)) {
            count += 1;
            match restore(&frame, self.cooked, &mut scratch) {
                Some(added) => {
                    let len = frame.len.saturating_add(added as u32);
                    each(frame.time, len, &scratch[..scratch.len().min(self.snaplen)]);
                }
                None => each(frame.time, frame.len, &frame.data[..frame.data.len().min(self.snaplen)]),
            }
        }
        self.scratch = scratch;
        // The block is the kernel's again: no slice of it lives on.
        self.status(self.next).store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.next = (self.next + 1) % self.blocks;
        Some(count)
    }

    /// Whether the next block is ours to read.
    pub(crate) fn ready(&self) -> bool {
        self.status(self.next).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Frames the kernel dropped for want of room in the ring since it opened.
    pub(crate) fn dropped(&self) -> u64 {
        // An error reading the count leaves the count so far.
        let _ = self.kernel_drops();
        self.dropped.get()
    }

    /// Adds the kernel's drops since the last call to the sum.
    fn kernel_drops(&self) -> io::Result<()> {
        let mut stats = libc::tpacket_stats_v3 { tp_packets: 0, tp_drops: 0, tp_freeze_q_cnt: 0 };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `stats`, a
        // tpacket_stats_v3 as PACKET_STATISTICS returns for a V3 socket.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast::<libc::c_void>(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.dropped.set(self.dropped.get() + u64::from(stats.tp_drops));
        Ok(())
    }
}

impl Ring {
    /// The status word of block `index`, which says whose the block is.
    /// The kernel reads and writes it while we may, so it is only ever
    /// accessed as an atomic, which lives as long as `&self` and so as
    /// long as the mapping.
    fn status(&self, index: usize) -> &AtomicU32 {
        debug_assert!(index < self.blocks);
        // SAFETY: in the mapping (index < blocks); 4-byte aligned (blocks
        // are multiples of pages, STATUS_OFFSET is 8); see above for races.
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(index * self.block_size + STATUS_OFFSET).cast()) }
    }

    /// The bytes of block `index`, which must be ours (its status says
    /// TP_STATUS_USER): the kernel does not write a block it has handed
    /// over until we give it back, which needs `&mut self`, so the bytes
    /// do not change while the slice lives.
    fn block_bytes(&self, index: usize) -> &[u8] {
        debug_assert!(self.status(index).load(Ordering::Relaxed) & libc::TP_STATUS_USER != 0);
        // SAFETY: the range is block `index` of the mapping, which lives as
        // long as `self`; the kernel leaves a user-owned block alone (see
        // above), and `read_block` gives it back only after the last use.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(index * self.block_size), self.block_size) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, with its length; no slice of
        // it outlives `&mut self`. Closing the socket afterwards frees the ring.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.block_size * self.blocks);
        }
    }
}

impl AsFd for Ring {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Where a block descriptor's `block_status` is: after `version` and
/// `offset_to_priv` (two u32s), first in the V1 block header.
const STATUS_OFFSET: usize = 8;
/// The frame size the kernel's ring checks want: a multiple of 16 that
/// divides the block size and holds a frame header.
const FRAME_SIZE: usize = 2048;
/// The smallest block: 128 KiB (a multiple of every page size Linux uses),
/// so a flood of small frames costs one wake-up per hundreds of frames.
const MIN_BLOCK: usize = 128 << 10;

/// The longest frame a packet socket is handed: the largest IP packet
/// behind an Ethernet header with two VLAN tags. A larger snap length
/// (tcpdump's default is 262144) keeps nothing more.
const LARGEST_FRAME: usize = 65_535 + 22;

/// The block size and count of a ring of about `buffer` bytes whose
/// frames keep up to `snaplen` bytes: a block holds a whole kept frame
/// with its header, and there are at least two.
///
/// Blocks are no bigger than the longest frame needs, as libpcap sizes
/// them: the kernel hands a block over only when it is full, so a ring
/// of few big blocks keeps a larger share of its memory out of reach
/// (the block being filled) and drops sooner when the reader falls
/// behind. 2 MiB is 16 blocks of 128 KiB, as tcpdump's `-B 2048` is.
fn geometry(snaplen: usize, buffer: usize) -> (usize, usize) {
    let kept = snaplen.min(LARGEST_FRAME);
    let block_size = (kept + 256).next_power_of_two().max(MIN_BLOCK);
    (block_size, (buffer / block_size).max(MIN_BLOCKS))
}

/// Sets a SOL_PACKET socket option to `value`.
fn set_option<T>(socket: &Socket, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a valid T for the call's duration and the length
    // given is its size; every option set here takes exactly a T.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            option,
            (value as *const T).cast::<libc::c_void>(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One frame in a block: its `tpacket3_hdr`, the bytes after its link
/// header's start, and the `sockaddr_ll` the kernel puts after the header.
#[derive(Clone, Copy, Debug)]
struct RingFrame<'a> {
    time: Duration,
    len: u32,
    status: u32,
    vlan_tci: u16,
    vlan_tpid: u16,
    /// The sockaddr_ll (20 bytes), or less when the block is damaged.
    address: &'a [u8],
    data: &'a [u8],
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
fn frames_of(block: &[u8]) -> impl Iterator<Item = RingFrame<'_>> {
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
fn restore(frame: &RingFrame<'_>, cooked: bool, out: &mut Vec<u8>) -> Option<usize> {
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

    #[test]
    fn blocks_hold_a_whole_kept_frame_and_there_are_at_least_two() {
        // tcpdump's default snap length needs no more than the longest frame.
        assert_eq!(geometry(262_144, 32 << 20), (128 << 10, 256));
        assert_eq!(geometry(262_144, 2 << 20), (128 << 10, 16));
        assert_eq!(geometry(96, 2 << 20), (128 << 10, 16));
        assert_eq!(geometry(65_535, 1), (128 << 10, 2));
    }

    /// The ring's system calls and its memory, on a real socket (as root,
    /// as the suite runs): a datagram sent to ourselves on loopback is read
    /// from the mapped block, whole and with its length, and the block goes
    /// back to the kernel.
    #[test]
    fn a_ring_on_loopback_sees_a_datagram_we_send() {
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Only our datagram (both of its loopback copies), so no one
        // else's traffic can fill the ring.
        let filter: crate::sniff::filter::Filter =
            format!("udp port {}", socket.local_addr().unwrap().port()).parse().unwrap();
        let compiled =
            crate::sniff::filter::compile(&filter, crate::sniff::LinkType::Ethernet, 65_535).unwrap();
        let program: Vec<SockFilter> =
            compiled.instructions().iter().map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k)).collect();
        let mut ring = match Ring::open(Source::Interface(lo), 65_535, 1 << 20, &program) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => panic!("run the tests as root: {e}"),
            other => other.unwrap(),
        };
        let payload = format!("ring test {}", std::process::id());
        socket.send_to(payload.as_bytes(), socket.local_addr().unwrap()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = None;
        while seen.is_none() && std::time::Instant::now() < deadline {
            let ready = crate::poll::wait(&[ring.as_fd()], Some(deadline)).unwrap();
            while ready[0]
                && ring
                    .read_block(|_, len, data| {
                        if data.ends_with(payload.as_bytes()) {
                            seen = Some((len, data.len()));
                        }
                    })
                    .is_some()
            {}
        }
        let expected = 14 + 20 + 8 + payload.len();
        assert_eq!(seen, Some((expected as u32, expected)));
        assert_eq!(ring.dropped(), 0);
    }
}
