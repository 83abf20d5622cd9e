//! Batched UDP I/O: many datagrams per system call, through quinn-udp (so
//! no unsafe code lives here). Receiving uses `recvmmsg` (and GRO where the
//! sender used GSO); sending packs runs of equal-sized datagrams to one
//! destination into GSO sends, which the kernel splits back into datagrams.
//!
//! On loopback a datagram's cost is mostly the system call, so batching is
//! what lets a single thread relay hundreds of thousands of datagrams a second.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};

/// Receive slots per system call: a receive that fills them all may have
/// left more waiting.
pub const SLOTS: usize = quinn_udp::BATCH_SIZE;

/// Each slot holds a whole datagram, or a GRO train of them (up to 64
/// segments of a 1500-byte path), whatever their size.
const SLOT_BYTES: usize = 128 << 10;

/// The most bytes one GSO send may carry.
const MAX_GSO_BYTES: usize = 65_000;

/// Socket buffers asked for: a window of datagrams sent in one burst must
/// fit in the receiver's buffer, or the kernel drops what does not.
const SOCKET_BUFFER: usize = 4 << 20;

/// A non-blocking UDP socket that sends and receives in batches.
#[derive(Debug)]
pub struct BatchSocket {
    socket: UdpSocket,
    state: UdpSocketState,
}

/// Buffers for receiving one batch, shared by every socket of a loop.
pub struct RecvBuffers {
    slots: Vec<Box<[u8]>>,
    meta: Vec<RecvMeta>,
}

impl Default for RecvBuffers {
    fn default() -> Self {
        RecvBuffers {
            slots: (0..SLOTS).map(|_| vec![0u8; SLOT_BYTES].into_boxed_slice()).collect(),
            meta: vec![RecvMeta::default(); SLOTS],
        }
    }
}

/// One received datagram.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    /// Its sender.
    pub from: SocketAddr,
    /// Its bytes.
    pub data: &'a [u8],
    /// When the kernel received it, as time since the Unix epoch
    /// (`SO_TIMESTAMPNS`), unaffected by how late the receiver looked.
    pub kernel_time: Option<Duration>,
}

/// Collects datagrams for one destination and sends them in GSO batches.
#[derive(Default)]
pub struct SendBuffer {
    contents: Vec<u8>,
    /// The size of every datagram in `contents` but perhaps the last.
    segment: usize,
    count: usize,
}

impl SendBuffer {
    /// Datagrams waiting to be sent: the ones a failed flush would lose.
    pub fn queued(&self) -> usize {
        self.count
    }
}

impl BatchSocket {
    /// Wraps `socket`, making it non-blocking and asking for large buffers.
    ///
    /// # Errors
    /// When the socket's options cannot be read or set.
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&socket).into())?;
        // Best effort: the kernel caps these at net.core.[rw]mem_max.
        let _ = state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER);
        let _ = state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER);
        // quinn-udp asks for a timestamp and the TOS byte with every datagram;
        // only a measuring sink wants them (see `with_kernel_times`), and each
        // costs a control message per datagram.
        let _ = setsockopt(&socket, sockopt::ReceiveTimestampns, &false);
        let _ = setsockopt(&socket, sockopt::IpRecvTos, &false);
        Ok(BatchSocket { socket, state })
    }

    /// Asks the kernel to stamp every datagram with its arrival time
    /// ([`Received::kernel_time`]).
    ///
    /// # Errors
    /// When the kernel refuses.
    pub fn with_kernel_times(self) -> io::Result<Self> {
        setsockopt(&self.socket, sockopt::ReceiveTimestampns, &true)?;
        Ok(self)
    }

    /// Asks the kernel to report ICMP errors (a port unreachable, a packet
    /// too big) even though the socket is not connected: they wait in its
    /// error queue, which [`BatchSocket::take_errors`] empties.
    ///
    /// # Errors
    /// When the kernel refuses.
    pub fn with_transport_errors(self) -> io::Result<Self> {
        self.state.enable_transport_errors((&self.socket).into())?;
        Ok(self)
    }

    /// Empties the error queue ([`BatchSocket::with_transport_errors`]);
    /// returns how many errors were in it. A socket with errors waiting
    /// reads as ready, so a loop that polls it must take them.
    pub fn take_errors(&self) -> usize {
        let mut taken = 0;
        while let Ok(Some(_)) = self.state.recv_transport_error((&self.socket).into()) {
            taken += 1;
        }
        taken
    }

    /// The socket itself.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Receives what is queued, up to [`SLOTS`] messages, calling `each` with
    /// every datagram and its sender; returns how many messages there were
    /// (0 when none was waiting; fewer than [`SLOTS`] means the queue is
    /// empty, and asking again would only cost a system call).
    ///
    /// # Errors
    /// Socket errors (on a connected socket, a refusal from the peer).
    pub fn recv(&self, bufs: &mut RecvBuffers, mut each: impl FnMut(Received<'_>)) -> io::Result<usize> {
        let mut slices: Vec<IoSliceMut<'_>> = bufs.slots.iter_mut().map(|s| IoSliceMut::new(s)).collect();
        let messages = match self.state.recv((&self.socket).into(), &mut slices, &mut bufs.meta) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        for (meta, slot) in bufs.meta.iter().zip(&slices).take(messages) {
            let received = |data| Received { from: meta.addr, data, kernel_time: meta.timestamp };
            if meta.len == 0 {
                each(received(&[]));
                continue;
            }
            // A GRO train is several datagrams of `stride` bytes (the last may be shorter).
            for datagram in slot[..meta.len].chunks(meta.stride.max(1)) {
                each(received(datagram));
            }
        }
        Ok(messages)
    }

    /// Receives until the queue is empty or `rounds` full batches were
    /// taken; returns how many messages in all.
    ///
    /// # Errors
    /// As [`BatchSocket::recv`]; messages received before the error were handled.
    pub fn drain(
        &self,
        bufs: &mut RecvBuffers,
        rounds: usize,
        mut each: impl FnMut(Received<'_>),
    ) -> io::Result<usize> {
        let mut total = 0;
        for _ in 0..rounds {
            let messages = self.recv(bufs, &mut each)?;
            total += messages;
            if messages < SLOTS {
                break;
            }
        }
        Ok(total)
    }

    /// Sends what `buffer` holds to `destination`, emptying it.
    ///
    /// # Errors
    /// Socket errors; the datagrams are dropped either way.
    pub fn flush(&self, buffer: &mut SendBuffer, destination: SocketAddr) -> io::Result<()> {
        if buffer.count == 0 {
            return Ok(());
        }
        let transmit = Transmit {
            destination,
            ecn: None,
            contents: &buffer.contents,
            segment_size: (buffer.count > 1).then_some(buffer.segment),
            src_ip: None,
        };
        let sent = self.state.try_send((&self.socket).into(), &transmit);
        buffer.contents.clear();
        buffer.count = 0;
        sent
    }

    /// Adds `datagram` to `buffer` for `destination`, first sending what the
    /// buffer holds if the datagram cannot join it in one GSO send.
    ///
    /// # Errors
    /// As [`BatchSocket::flush`].
    pub fn push(&self, buffer: &mut SendBuffer, destination: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        // A train is equal segments and at most one shorter one at its end;
        // an empty datagram always travels alone.
        let joins = buffer.count > 0
            && buffer.segment > 0
            && !datagram.is_empty()
            && datagram.len() <= buffer.segment
            && buffer.contents.len().is_multiple_of(buffer.segment)
            && buffer.count < self.state.max_gso_segments()
            && buffer.contents.len() + datagram.len() <= MAX_GSO_BYTES;
        let result = if buffer.count > 0 && !joins { self.flush(buffer, destination) } else { Ok(()) };
        if buffer.count == 0 {
            buffer.segment = datagram.len();
        }
        buffer.contents.extend_from_slice(datagram);
        buffer.count += 1;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (BatchSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        (BatchSocket::new(a).unwrap(), b)
    }

    #[test]
    fn batches_keep_every_datagram_and_its_boundaries() {
        let (sender, receiver) = pair();
        let to = receiver.local_addr().unwrap();
        let mut buffer = SendBuffer::default();
        let sizes = [1400, 1400, 1400, 700, 1400, 1400, 10, 0, 1400];
        for (i, &size) in sizes.iter().enumerate() {
            sender.push(&mut buffer, to, &vec![i as u8; size]).unwrap();
        }
        sender.flush(&mut buffer, to).unwrap();
        let batch = BatchSocket::new(receiver).unwrap();
        let mut bufs = RecvBuffers::default();
        let mut got = Vec::new();
        while got.len() < sizes.len() {
            batch.recv(&mut bufs, |r| got.push((r.from, r.data.to_vec()))).unwrap();
        }
        for (i, (from, datagram)) in got.iter().enumerate() {
            assert_eq!(*from, sender.socket().local_addr().unwrap());
            assert_eq!(datagram.len(), sizes[i], "datagram {i}");
            assert!(datagram.iter().all(|&b| b == i as u8));
        }
        assert_eq!(batch.drain(&mut bufs, 4, |_| {}).unwrap(), 0, "nothing more");
    }
}
