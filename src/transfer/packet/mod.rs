//! The transfer protocol's datagrams: a checked view over the bytes
//! ([`Packet`]) and their parsed form ([`Repr`]).
//!
//! Every datagram starts with a 16-byte header:
//!
//! ```text
//!  0        1        2        3        4                 8                 12                16
//! +--------+--------+--------+--------+-----------------+-----------------+-----------------+---
//! |version |  kind  |      stamp      |   session id    |    sequence     |  CRC-32C        | body
//! +--------+--------+--------+--------+-----------------+-----------------+-----------------+---
//! ```
//!
//! The CRC-32C covers the whole datagram (with the CRC field itself taken as
//! zero), so a flipped bit anywhere is caught. The sequence field holds a
//! block's sequence number in DATA, the cumulative acknowledgement (the next
//! block expected) in ACK, and zero elsewhere. The stamp field of a DATA
//! counts the sender's DATA sends (modulo 2^16), and an ACK echoes the
//! sequence and stamp of the latest DATA received. Like TCP's timestamps
//! (RFC 7323), a stamp does two jobs: it says which send an acknowledgement
//! answers, so a round trip can be timed even for a resent block without
//! breaking Karn's rule; and it tells a stale datagram, delayed while the
//! sequence numbers wrapped, from a new one with the same number (PAWS,
//! protection against wrapped sequences), which small sequence spaces need
//! on a path that reorders or duplicates. Bodies:
//!
//! | kind | body |
//! |---|---|
//! | HELLO | protocol u8, sequence bits u8, window u32, block size u16, file size u64 (all ones: unknown), name length u8, name, then optionally token length u8, token (the receiver's RETRY token) |
//! | RETRY | token length u8, token: the receiver asks the sender to prove its address by saying HELLO again with this token (as QUIC's Retry) |
//! | HELLO-ACK | window u32, block size u16 (what the receiver accepted), idle timeout in ms u32 |
//! | DATA | the block's bytes |
//! | ACK | echo flag u8 (0: none; 1: the echo is new, time it; 2: it was echoed before), echoed sequence u32, echoed stamp u16, range count u8, then that many (first u32, end u32) ranges received beyond the cumulative point |
//! | FIN | total bytes u64, total blocks u64, SHA-256 of the content (32 bytes) |
//! | FIN-ACK | status u8 (0 stored, 1 digest mismatch, 2 storage failed), message |
//! | ERROR | code u8, message |
//! | PING | nothing: the sender is alive but has nothing to send (the receiver answers with an ACK) |
//!
//! All numbers are big-endian. Decoding never panics and never trusts a
//! length it has not checked.

use super::Protocol;

mod repr;
#[cfg(test)]
mod tests;

pub use repr::{Echo, Hello, Repr};

/// The protocol version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes before the body.
pub const HEADER_LEN: usize = 16;
/// The longest file name a HELLO carries.
pub const MAX_NAME: usize = 255;
/// The most SACK ranges one ACK carries: enough for a window of 256 at 30%
/// loss (about 77 holes) in one 1 KiB acknowledgement.
pub const MAX_SACK_RANGES: usize = 128;
/// The longest message in FIN-ACK and ERROR.
pub const MAX_MESSAGE: usize = 200;
/// The longest RETRY token.
pub const MAX_TOKEN: usize = 32;
/// A file size of "unknown" (stdin).
const UNKNOWN_SIZE: u64 = u64::MAX;

/// What a datagram is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Sender asks to start a session.
    Hello = 1,
    /// Receiver accepts it.
    HelloAck = 2,
    /// A block of content.
    Data = 3,
    /// Receiver reports what it has.
    Ack = 4,
    /// Sender says it is done, with the content's digest.
    Fin = 5,
    /// Receiver says whether the content was stored.
    FinAck = 6,
    /// Either side gives up.
    Error = 7,
    /// Sender keeps an idle session alive.
    Ping = 8,
    /// Receiver asks for the HELLO again, with a token.
    Retry = 9,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Hello,
            2 => Kind::HelloAck,
            3 => Kind::Data,
            4 => Kind::Ack,
            5 => Kind::Fin,
            6 => Kind::FinAck,
            7 => Kind::Error,
            8 => Kind::Ping,
            9 => Kind::Retry,
            _ => return None,
        })
    }
}

/// Why a datagram was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than its header, or than its kind's body.
    #[error("datagram too short ({0} bytes)")]
    TooShort(usize),
    /// Another version of the protocol.
    #[error("unsupported version {0}")]
    Version(u8),
    /// An unknown kind.
    #[error("unknown kind {0}")]
    Kind(u8),
    /// The CRC-32C does not match: corrupted on the way.
    #[error("checksum mismatch")]
    Checksum,
    /// A field holds a value its kind does not allow.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// A checked view over a datagram: once [`Packet::new_checked`] succeeded,
/// the accessors cannot panic.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    bytes: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    (u64::from(u32_at(b, at)) << 32) | u64::from(u32_at(b, at + 4))
}

fn checksum(bytes: &[u8]) -> u32 {
    let head = crc32c::crc32c(&bytes[..12]);
    let zeroed = crc32c::crc32c_append(head, &[0; 4]);
    crc32c::crc32c_append(zeroed, &bytes[HEADER_LEN..])
}

impl<'a> Packet<'a> {
    /// Checks the header, the version, the kind and the checksum.
    ///
    /// # Errors
    /// What is wrong with the datagram.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, PacketError> {
        if bytes.len() < HEADER_LEN {
            return Err(PacketError::TooShort(bytes.len()));
        }
        if bytes[0] != VERSION {
            return Err(PacketError::Version(bytes[0]));
        }
        Kind::from_u8(bytes[1]).ok_or(PacketError::Kind(bytes[1]))?;
        if checksum(bytes) != u32_at(bytes, 12) {
            return Err(PacketError::Checksum);
        }
        Ok(Packet { bytes })
    }

    /// Writes the checksum of `bytes` (at least a header long) into its
    /// header: what [`Repr::emit`] does last, for tools and tests that build
    /// datagrams by hand.
    pub fn seal(bytes: &mut [u8]) {
        if bytes.len() >= HEADER_LEN {
            let crc = checksum(bytes);
            bytes[12..16].copy_from_slice(&crc.to_be_bytes());
        }
    }

    /// What it is.
    pub fn kind(&self) -> Kind {
        Kind::from_u8(self.bytes[1]).unwrap_or(Kind::Error)
    }

    /// The session it belongs to.
    pub fn session(&self) -> u32 {
        u32_at(self.bytes, 4)
    }

    /// The sequence field.
    pub fn seq(&self) -> u32 {
        u32_at(self.bytes, 8)
    }

    /// The stamp field.
    pub fn stamp(&self) -> u16 {
        u16_at(self.bytes, 2)
    }

    /// The body.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }
}

/// How a FIN was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinStatus {
    /// Verified and stored under its final name.
    Stored = 0,
    /// The content's SHA-256 differs from the sender's.
    DigestMismatch = 1,
    /// Verified, but it could not be stored.
    StorageFailed = 2,
}

impl FinStatus {
    const ALL: [FinStatus; 3] = [FinStatus::Stored, FinStatus::DigestMismatch, FinStatus::StorageFailed];
}

/// Why a side gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The receiver will not take this file (name, size, exists, busy).
    Refused = 1,
    /// The other side broke the protocol.
    Protocol = 2,
    /// The side stopped (Ctrl-C, timeout).
    Aborted = 3,
}

impl ErrorCode {
    const ALL: [ErrorCode; 3] = [ErrorCode::Refused, ErrorCode::Protocol, ErrorCode::Aborted];
}

/// The member of `all` whose number is `value`.
fn numbered<T: Copy + Into<u8>>(value: u8, all: [T; 3], what: &'static str) -> Result<T, PacketError> {
    all.into_iter().find(|t| (*t).into() == value).ok_or(PacketError::Malformed(what))
}

impl From<FinStatus> for u8 {
    fn from(s: FinStatus) -> u8 {
        s as u8
    }
}

impl From<ErrorCode> for u8 {
    fn from(c: ErrorCode) -> u8 {
        c as u8
    }
}
