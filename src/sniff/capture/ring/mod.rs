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

use frames::{frames_of, restore};

mod frames;

/// ETH_P_ALL: every protocol.
const ETH_P_ALL: u16 = 0x0003;
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

#[cfg(test)]
mod tests;
