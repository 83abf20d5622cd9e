//! A TUN device: a network interface whose packets a program reads and
//! writes. Every IP packet the kernel routes out of it is one `read`; every
//! `write` is one packet arriving on it.
//!
//! The only `unsafe` of the impairment code is here: the one `TUNSETIFF`
//! ioctl that turns an open `/dev/net/tun` into a named interface (no
//! system call wrapper exists for it, and the `tun` crates expose only a
//! raw descriptor, which the epoll set would have to borrow unsafely).
//! Everything else is a plain [`File`].
#![allow(unsafe_code)]

use std::ffi::c_char;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

/// The clone device that makes TUN interfaces.
const CLONE_DEVICE: &str = "/dev/net/tun";

/// Interface names are at most 15 bytes and a NUL.
pub const MAX_NAME: usize = libc::IFNAMSIZ - 1;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags, then
/// the rest of the kernel's union, zeroed. Declared here rather than taken
/// from libc so that every byte is initialised without `unsafe`.
#[repr(C)]
struct InterfaceRequest {
    name: [c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    rest: [u8; 22],
}

const _: () = assert!(size_of::<InterfaceRequest>() == size_of::<libc::ifreq>());

impl InterfaceRequest {
    /// A request for a TUN interface without packet information (each read
    /// is a bare IP packet) named `name`.
    fn tun(name: &str) -> io::Result<Self> {
        if name.is_empty() || name.len() > MAX_NAME || name.bytes().any(|b| b == 0 || b == b'/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("'{name}' cannot name an interface"),
            ));
        }
        let mut request = InterfaceRequest {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            rest: [0; 22],
        };
        for (slot, byte) in request.name.iter_mut().zip(name.bytes()) {
            *slot = byte as c_char;
        }
        Ok(request)
    }

    /// The name the kernel gave back.
    fn name(&self) -> String {
        let bytes: Vec<u8> = self.name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// An open TUN interface, non-blocking. It exists while this is open: the
/// interface vanishes (with its addresses and routes) when it is dropped.
#[derive(Debug)]
pub struct TunDevice {
    file: File,
    name: String,
}

impl TunDevice {
    /// Makes interface `name` in the calling thread's network namespace,
    /// down and without addresses.
    ///
    /// # Errors
    /// When the name is unusable, `/dev/net/tun` is missing, or the kernel
    /// refuses (without CAP_NET_ADMIN, or when the name is taken).
    pub fn create(name: &str) -> io::Result<TunDevice> {
        let mut request = InterfaceRequest::tun(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(CLONE_DEVICE)?;
        let request_ptr = &mut request as *mut InterfaceRequest;
        // SAFETY: the descriptor is open (we own `file`), TUNSETIFF reads and
        // writes one `struct ifreq`, and `request_ptr` points to a fully
        // initialised value of that size and layout (checked at compile time
        // above) that outlives the call.
        let done = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, request_ptr) };
        if done < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TunDevice { file, name: request.name() })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next packet the kernel sent out of the interface, into `buf`;
    /// `WouldBlock` when there is none.
    ///
    /// # Errors
    /// `WouldBlock`, or what the kernel said.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Hands `packet` to the kernel as if it had arrived on the interface.
    ///
    /// # Errors
    /// What the kernel said (a malformed packet, say).
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
    }
}

impl AsFd for TunDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_name_and_asks_for_bare_ip_packets() {
        let request = InterfaceRequest::tun("skt1a").unwrap();
        assert_eq!(request.name(), "skt1a");
        assert_eq!(request.flags, 0x0001 | 0x1000, "IFF_TUN | IFF_NO_PI");
        assert_eq!(InterfaceRequest::tun(&"x".repeat(15)).unwrap().name().len(), 15);
        for bad in ["", "a/b", "sixteen-chars-xx", "a\0b"] {
            assert!(InterfaceRequest::tun(bad).is_err(), "{bad:?}");
        }
    }
}
