//! The kernel's own counters of one TCP connection (`getsockopt(TCP_INFO)`),
//! which no safe wrapper in our dependencies exposes: the one place in the
//! lab that needs `unsafe`.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

use serde::Serialize;

/// What the kernel counted on one TCP socket so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TcpCounters {
    /// Segments sent that carried data (Linux 4.6 and later).
    pub data_segments_out: u32,
    /// Segments received that carried data.
    pub data_segments_in: u32,
    /// Every segment sent, pure ACKs and SYN/FIN included.
    pub segments_out: u32,
    /// Every segment received.
    pub segments_in: u32,
    /// Retransmissions over the connection's life.
    pub retransmissions: u32,
    /// The smoothed round-trip time, in microseconds.
    pub rtt_us: u32,
}

impl TcpCounters {
    /// The counters of `socket`'s connection.
    ///
    /// # Errors
    /// When the socket is not a TCP socket, or the kernel refuses.
    pub fn of(socket: &impl AsRawFd) -> io::Result<TcpCounters> {
        // SAFETY: all-zero bytes are a valid `tcp_info` (plain integers only).
        let mut info: libc::tcp_info = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: `info` is a live, writable `tcp_info` and `len` says its size,
        // so the kernel writes at most that many bytes into it (and sets `len`
        // to how many it wrote); the fd is borrowed from a live socket.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&raw mut info).cast::<libc::c_void>(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TcpCounters {
            data_segments_out: info.tcpi_data_segs_out,
            data_segments_in: info.tcpi_data_segs_in,
            segments_out: info.tcpi_segs_out,
            segments_in: info.tcpi_segs_in,
            retransmissions: info.tcpi_total_retrans,
            rtt_us: info.tcpi_rtt,
        })
    }

    /// What was counted since `earlier`.
    pub fn since(self, earlier: TcpCounters) -> TcpCounters {
        TcpCounters {
            data_segments_out: self.data_segments_out.wrapping_sub(earlier.data_segments_out),
            data_segments_in: self.data_segments_in.wrapping_sub(earlier.data_segments_in),
            segments_out: self.segments_out.wrapping_sub(earlier.segments_out),
            segments_in: self.segments_in.wrapping_sub(earlier.segments_in),
            retransmissions: self.retransmissions.wrapping_sub(earlier.retransmissions),
            rtt_us: self.rtt_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn counts_the_data_segments_of_a_loopback_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.set_nodelay(true).unwrap();
        let before = TcpCounters::of(&client).unwrap();
        client.write_all(b"one").unwrap();
        let sent = TcpCounters::of(&client).unwrap().since(before);
        assert_eq!(sent.data_segments_out, 1, "{sent:?}");
        assert!(TcpCounters::of(&server).unwrap().segments_in >= 1);
    }

    #[test]
    fn a_udp_socket_has_no_tcp_counters() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(TcpCounters::of(&udp).is_err());
    }
}
