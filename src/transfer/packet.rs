//! The transfer protocol's datagrams: a checked view over the bytes
//! ([`Packet`]) and their parsed form ([`Repr`]).
//!
//! Every datagram starts with a 16-byte header:
//!
//! ```text
//!  0        1        2        3        4                 8                 12                16
//! +--------+--------+--------+--------+-----------------+-----------------+-----------------+---
//! |version |  kind  |  transmission   |   session id    |    sequence     |  CRC-32C        | body
//! +--------+--------+--------+--------+-----------------+-----------------+-----------------+---
//! ```
//!
//! The CRC-32C covers the whole datagram (with the CRC field itself taken as
//! zero), so a flipped bit anywhere is caught. The sequence field holds a
//! block's sequence number in DATA, the cumulative acknowledgement (the next
//! block expected) in ACK, and zero elsewhere. The transmission field counts
//! the sends of a DATA block (1 for the first, modulo 2^16), and an ACK
//! echoes the sequence and transmission of the DATA that triggered it: like
//! TCP's timestamps, this says which send an acknowledgement answers, so a
//! round trip can be timed even for a resent block without breaking Karn's
//! rule. Bodies:
//!
//! | kind | body |
//! |---|---|
//! | HELLO | protocol u8, sequence bits u8, window u32, block size u16, file size u64 (all ones: unknown), name length u8, name |
//! | HELLO-ACK | window u32, block size u16 (what the receiver accepted), idle timeout in ms u32 |
//! | DATA | the block's bytes |
//! | ACK | echo flag u8 (1: an echo follows), echoed sequence u32, echoed transmission u16, range count u8, then that many (first u32, end u32) ranges received beyond the cumulative point |
//! | FIN | total bytes u64, total blocks u64, SHA-256 of the content (32 bytes) |
//! | FIN-ACK | status u8 (0 stored, 1 digest mismatch, 2 storage failed), message |
//! | ERROR | code u8, message |
//! | PING | nothing: the sender is alive but has nothing to send (the receiver answers with an ACK) |
//!
//! All numbers are big-endian. Decoding never panics and never trusts a
//! length it has not checked.

use std::fmt;

use super::Protocol;

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

    /// The transmission field.
    pub fn transmission(&self) -> u16 {
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

/// The start of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The ARQ protocol.
    pub protocol: Protocol,
    /// Sequence numbers have this many bits and wrap after 2^bits blocks.
    pub seq_bits: u8,
    /// Blocks in flight.
    pub window: u32,
    /// Bytes per block.
    pub block: u16,
    /// The content's size, when known in advance.
    pub size: Option<u64>,
    /// The file's name, as the sender gives it (never trusted as a path).
    pub name: &'a str,
}

/// A datagram, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repr<'a> {
    /// See [`Hello`].
    Hello(Hello<'a>),
    /// The receiver accepts, maybe with a smaller window or block.
    HelloAck {
        /// Blocks in flight.
        window: u32,
        /// Bytes per block.
        block: u16,
        /// The receiver gives up after this many milliseconds of silence.
        timeout_ms: u32,
    },
    /// A block.
    Data {
        /// Its sequence number.
        seq: u32,
        /// Which send of the block this is, from 1 (wrapping).
        transmission: u16,
        /// Its bytes.
        payload: &'a [u8],
    },
    /// What the receiver has.
    Ack {
        /// The next block expected in order.
        cumulative: u32,
        /// The sequence and transmission of the DATA that triggered it.
        echo: Option<(u32, u16)>,
        /// Ranges `[first, end)` received beyond it (selective repeat).
        sack: Vec<(u32, u32)>,
    },
    /// The sender is done.
    Fin {
        /// Bytes of content.
        total_bytes: u64,
        /// Blocks of content.
        total_blocks: u64,
        /// SHA-256 of the content.
        sha256: [u8; 32],
    },
    /// The receiver's verdict.
    FinAck {
        /// What became of the content.
        status: FinStatus,
        /// Details, for a person.
        message: &'a str,
    },
    /// Giving up.
    Error {
        /// Why, for a program.
        code: ErrorCode,
        /// Why, for a person.
        message: &'a str,
    },
    /// Still here.
    Ping,
}

fn text(bytes: &[u8]) -> Result<&str, PacketError> {
    std::str::from_utf8(bytes).map_err(|_| PacketError::Malformed("text"))
}

/// A FIN-ACK's or ERROR's message, no longer than [`MAX_MESSAGE`].
fn message(bytes: &[u8]) -> Result<&str, PacketError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(PacketError::Malformed("message too long"));
    }
    text(bytes)
}

fn need(body: &[u8], len: usize) -> Result<(), PacketError> {
    if body.len() < len { Err(PacketError::TooShort(HEADER_LEN + body.len())) } else { Ok(()) }
}

impl<'a> Repr<'a> {
    /// Parses a checked packet.
    ///
    /// # Errors
    /// When the body does not fit its kind.
    pub fn parse(packet: &Packet<'a>) -> Result<Self, PacketError> {
        let body = packet.body();
        Ok(match packet.kind() {
            Kind::Hello => {
                need(body, 17)?;
                let protocol = Protocol::from_u8(body[0]).ok_or(PacketError::Malformed("protocol"))?;
                let name_len = usize::from(body[16]);
                need(body, 17 + name_len)?;
                let size = u64_at(body, 8);
                Repr::Hello(Hello {
                    protocol,
                    seq_bits: body[1],
                    window: u32_at(body, 2),
                    block: u16_at(body, 6),
                    size: (size != UNKNOWN_SIZE).then_some(size),
                    name: text(&body[17..17 + name_len])?,
                })
            }
            Kind::HelloAck => {
                need(body, 10)?;
                Repr::HelloAck {
                    window: u32_at(body, 0),
                    block: u16_at(body, 4),
                    timeout_ms: u32_at(body, 6),
                }
            }
            Kind::Data => {
                Repr::Data { seq: packet.seq(), transmission: packet.transmission(), payload: body }
            }
            Kind::Ack => {
                need(body, 8)?;
                let echo = match body[0] {
                    0 => None,
                    1 => Some((u32_at(body, 1), u16_at(body, 5))),
                    _ => return Err(PacketError::Malformed("ACK echo flag")),
                };
                let count = usize::from(body[7]);
                if count > MAX_SACK_RANGES {
                    return Err(PacketError::Malformed("SACK range count"));
                }
                need(body, 8 + count * 8)?;
                let sack = (0..count).map(|i| (u32_at(body, 8 + i * 8), u32_at(body, 12 + i * 8))).collect();
                Repr::Ack { cumulative: packet.seq(), echo, sack }
            }
            Kind::Fin => {
                need(body, 48)?;
                let mut sha256 = [0u8; 32];
                sha256.copy_from_slice(&body[16..48]);
                Repr::Fin { total_bytes: u64_at(body, 0), total_blocks: u64_at(body, 8), sha256 }
            }
            Kind::FinAck => {
                need(body, 1)?;
                let status = numbered(body[0], FinStatus::ALL, "FIN-ACK status")?;
                Repr::FinAck { status, message: message(&body[1..])? }
            }
            Kind::Error => {
                need(body, 1)?;
                let code = numbered(body[0], ErrorCode::ALL, "error code")?;
                Repr::Error { code, message: message(&body[1..])? }
            }
            Kind::Ping => Repr::Ping,
        })
    }

    fn kind(&self) -> Kind {
        match self {
            Repr::Hello(_) => Kind::Hello,
            Repr::HelloAck { .. } => Kind::HelloAck,
            Repr::Data { .. } => Kind::Data,
            Repr::Ack { .. } => Kind::Ack,
            Repr::Fin { .. } => Kind::Fin,
            Repr::FinAck { .. } => Kind::FinAck,
            Repr::Error { .. } => Kind::Error,
            Repr::Ping => Kind::Ping,
        }
    }

    /// Writes the datagram for `session` into `out` (cleared first). Names
    /// and messages longer than the protocol allows are cut at a character
    /// boundary; SACK ranges beyond [`MAX_SACK_RANGES`] are left out.
    pub fn emit(&self, session: u32, out: &mut Vec<u8>) {
        out.clear();
        let (seq, transmission) = match self {
            Repr::Data { seq, transmission, .. } => (*seq, *transmission),
            Repr::Ack { cumulative, .. } => (*cumulative, 0),
            _ => (0, 0),
        };
        out.extend_from_slice(&[VERSION, self.kind() as u8]);
        out.extend_from_slice(&transmission.to_be_bytes());
        out.extend_from_slice(&session.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        match self {
            Repr::Hello(h) => {
                let name = truncate(h.name, MAX_NAME);
                out.extend_from_slice(&[h.protocol as u8, h.seq_bits]);
                out.extend_from_slice(&h.window.to_be_bytes());
                out.extend_from_slice(&h.block.to_be_bytes());
                out.extend_from_slice(&h.size.unwrap_or(UNKNOWN_SIZE).to_be_bytes());
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
            }
            Repr::HelloAck { window, block, timeout_ms } => {
                out.extend_from_slice(&window.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(&timeout_ms.to_be_bytes());
            }
            Repr::Data { payload, .. } => out.extend_from_slice(payload),
            Repr::Ack { echo, sack, .. } => {
                let (seq, transmission) = echo.unwrap_or_default();
                out.push(u8::from(echo.is_some()));
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&transmission.to_be_bytes());
                let ranges = &sack[..sack.len().min(MAX_SACK_RANGES)];
                out.push(ranges.len() as u8);
                for (first, end) in ranges {
                    out.extend_from_slice(&first.to_be_bytes());
                    out.extend_from_slice(&end.to_be_bytes());
                }
            }
            Repr::Fin { total_bytes, total_blocks, sha256 } => {
                out.extend_from_slice(&total_bytes.to_be_bytes());
                out.extend_from_slice(&total_blocks.to_be_bytes());
                out.extend_from_slice(sha256);
            }
            Repr::FinAck { status, message } => {
                out.push(*status as u8);
                out.extend_from_slice(truncate(message, MAX_MESSAGE).as_bytes());
            }
            Repr::Error { code, message } => {
                out.push(*code as u8);
                out.extend_from_slice(truncate(message, MAX_MESSAGE).as_bytes());
            }
            Repr::Ping => {}
        }
        Packet::seal(out);
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repr::Hello(h) => {
                write!(f, "HELLO {} window {} block {} name {:?}", h.protocol, h.window, h.block, h.name)
            }
            Repr::HelloAck { window, block, timeout_ms } => {
                write!(f, "HELLO-ACK window {window} block {block} timeout {timeout_ms} ms")
            }
            Repr::Data { seq, transmission, payload } => {
                write!(f, "DATA seq {seq} send {transmission} ({} bytes)", payload.len())
            }
            Repr::Ack { cumulative, echo, sack } => write!(f, "ACK {cumulative} echo {echo:?} sack {sack:?}"),
            Repr::Fin { total_bytes, total_blocks, .. } => {
                write!(f, "FIN {total_bytes} bytes in {total_blocks} blocks")
            }
            Repr::FinAck { status, message } => write!(f, "FIN-ACK {status:?} {message}"),
            Repr::Error { code, message } => write!(f, "ERROR {code:?} {message}"),
            Repr::Ping => f.write_str("PING"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(repr: &Repr<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        repr.emit(0xdead_beef, &mut out);
        let packet = Packet::new_checked(&out).unwrap();
        assert_eq!(packet.session(), 0xdead_beef);
        assert_eq!(&Repr::parse(&packet).unwrap(), repr);
        out
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(&Repr::Hello(Hello {
            protocol: Protocol::SelectiveRepeat,
            seq_bits: 16,
            window: 256,
            block: 1400,
            size: Some(50 << 20),
            name: "report.pdf",
        }));
        round_trip(&Repr::Hello(Hello {
            protocol: Protocol::StopAndWait,
            seq_bits: 1,
            window: 1,
            block: 512,
            size: None,
            name: "",
        }));
        round_trip(&Repr::HelloAck { window: 64, block: 1400, timeout_ms: 10_000 });
        round_trip(&Repr::Ping);
        round_trip(&Repr::Data { seq: 65_535, transmission: 3, payload: b"block" });
        round_trip(&Repr::Ack { cumulative: 7, echo: Some((8, 2)), sack: vec![(9, 12), (20, 21)] });
        round_trip(&Repr::Ack { cumulative: 7, echo: None, sack: vec![] });
        round_trip(&Repr::Fin { total_bytes: 10, total_blocks: 1, sha256: [7; 32] });
        round_trip(&Repr::FinAck { status: FinStatus::DigestMismatch, message: "digest differs" });
        round_trip(&Repr::Error { code: ErrorCode::Refused, message: "file exists" });
    }

    #[test]
    fn the_header_is_laid_out_as_documented() {
        let bytes = round_trip(&Repr::Data { seq: 0x0102_0304, transmission: 2, payload: &[0xaa] });
        assert_eq!(&bytes[..12], &[1, 3, 0, 2, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
        assert_eq!(bytes.len(), HEADER_LEN + 1);
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let mut bytes = Vec::new();
        Repr::Data { seq: 42, transmission: 1, payload: b"some content" }.emit(1, &mut bytes);
        for bit in 0..bytes.len() * 8 {
            let mut corrupt = bytes.clone();
            corrupt[bit / 8] ^= 1 << (bit % 8);
            assert!(Packet::new_checked(&corrupt).is_err(), "bit {bit} went unnoticed");
        }
    }

    #[test]
    fn malformed_datagrams_are_rejected_without_panicking() {
        assert_eq!(Packet::new_checked(&[1, 3, 0]).unwrap_err(), PacketError::TooShort(3));
        let mut bytes = Vec::new();
        Repr::HelloAck { window: 1, block: 1, timeout_ms: 1 }.emit(1, &mut bytes);
        let mut other_version = bytes.clone();
        other_version[0] = 9;
        assert_eq!(Packet::new_checked(&other_version).unwrap_err(), PacketError::Version(9));
        // A body cut short, with a valid checksum over what is there.
        let mut short = bytes[..HEADER_LEN + 3].to_vec();
        Packet::seal(&mut short);
        let packet = Packet::new_checked(&short).unwrap();
        assert!(matches!(Repr::parse(&packet), Err(PacketError::TooShort(_))));
        // A name length pointing past the end.
        let mut hello = Vec::new();
        Repr::Hello(Hello {
            protocol: Protocol::GoBackN,
            seq_bits: 8,
            window: 8,
            block: 8,
            size: None,
            name: "ab",
        })
        .emit(1, &mut hello);
        hello[HEADER_LEN + 16] = 200;
        Packet::seal(&mut hello);
        assert!(Repr::parse(&Packet::new_checked(&hello).unwrap()).is_err());
    }

    #[test]
    fn messages_longer_than_any_sender_writes_are_refused() {
        // Found by the fuzzer: the parser took what the encoder would cut.
        let mut bytes = Vec::new();
        Repr::FinAck { status: FinStatus::Stored, message: "" }.emit(1, &mut bytes);
        bytes.extend_from_slice(&[b'x'; MAX_MESSAGE + 1]);
        Packet::seal(&mut bytes);
        let packet = Packet::new_checked(&bytes).unwrap();
        assert_eq!(Repr::parse(&packet), Err(PacketError::Malformed("message too long")));
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        let name = "é".repeat(200);
        let mut out = Vec::new();
        Repr::Hello(Hello {
            protocol: Protocol::GoBackN,
            seq_bits: 8,
            window: 8,
            block: 8,
            size: None,
            name: &name,
        })
        .emit(1, &mut out);
        let packet = Packet::new_checked(&out).unwrap();
        let Repr::Hello(h) = Repr::parse(&packet).unwrap() else { panic!() };
        assert_eq!(h.name.len(), 254);
    }
}
