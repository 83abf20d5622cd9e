//! The meaning of a datagram: [`Repr`], parsed from a checked [`Packet`]
//! and written back by [`Repr::emit`].

use std::fmt;

use super::{ErrorCode, FinStatus, Kind, Packet, PacketError, Protocol};
use super::{HEADER_LEN, MAX_MESSAGE, MAX_NAME, MAX_SACK_RANGES, MAX_TOKEN, UNKNOWN_SIZE, VERSION};
use super::{numbered, u16_at, u32_at, u64_at};

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
    /// The token of the receiver's RETRY (empty on the first HELLO).
    pub token: &'a [u8],
}

/// What an ACK echoes: the latest DATA the receiver got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// Its sequence number.
    pub seq: u32,
    /// Its stamp.
    pub stamp: u16,
    /// First echo of this DATA: its round trip can be timed (a repeated
    /// echo would time the wait for the next DATA too).
    pub fresh: bool,
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
        /// The sender's count of DATA sends, this one included (wrapping).
        stamp: u16,
        /// Its bytes.
        payload: &'a [u8],
    },
    /// What the receiver has.
    Ack {
        /// The next block expected in order.
        cumulative: u32,
        /// The latest DATA received, if any.
        echo: Option<Echo>,
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
    /// Say HELLO again with this token.
    Retry {
        /// Proof that the sender receives at its address.
        token: &'a [u8],
    },
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
                let token = match body.get(17 + name_len..) {
                    None | Some([]) => &[][..],
                    Some(rest) => token(rest)?,
                };
                Repr::Hello(Hello {
                    protocol,
                    seq_bits: body[1],
                    window: u32_at(body, 2),
                    block: u16_at(body, 6),
                    size: (size != UNKNOWN_SIZE).then_some(size),
                    name: text(&body[17..17 + name_len])?,
                    token,
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
            Kind::Data => Repr::Data { seq: packet.seq(), stamp: packet.stamp(), payload: body },
            Kind::Ack => {
                need(body, 8)?;
                let echo = match body[0] {
                    0 => None,
                    flag @ (1 | 2) => {
                        Some(Echo { seq: u32_at(body, 1), stamp: u16_at(body, 5), fresh: flag == 1 })
                    }
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
            Kind::Retry => Repr::Retry { token: token(body)? },
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
            Repr::Retry { .. } => Kind::Retry,
        }
    }

    /// Writes the datagram for `session` into `out` (cleared first). Names
    /// and messages longer than the protocol allows are cut at a character
    /// boundary; SACK ranges beyond [`MAX_SACK_RANGES`] are left out.
    pub fn emit(&self, session: u32, out: &mut Vec<u8>) {
        out.clear();
        let (seq, stamp) = match self {
            Repr::Data { seq, stamp, .. } => (*seq, *stamp),
            Repr::Ack { cumulative, .. } => (*cumulative, 0),
            _ => (0, 0),
        };
        out.extend_from_slice(&[VERSION, self.kind() as u8]);
        out.extend_from_slice(&stamp.to_be_bytes());
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
                if !h.token.is_empty() {
                    emit_token(h.token, out);
                }
            }
            Repr::HelloAck { window, block, timeout_ms } => {
                out.extend_from_slice(&window.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(&timeout_ms.to_be_bytes());
            }
            Repr::Data { payload, .. } => out.extend_from_slice(payload),
            Repr::Ack { echo, sack, .. } => {
                let flag = echo.map_or(0, |e| if e.fresh { 1 } else { 2 });
                let (seq, stamp) = echo.map_or((0, 0), |e| (e.seq, e.stamp));
                out.push(flag);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&stamp.to_be_bytes());
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
            Repr::Retry { token } => emit_token(token, out),
        }
        Packet::seal(out);
    }
}

/// A length-prefixed token, no longer than [`MAX_TOKEN`], and nothing after it.
fn token(bytes: &[u8]) -> Result<&[u8], PacketError> {
    let len = usize::from(*bytes.first().ok_or(PacketError::Malformed("token"))?);
    match bytes.get(1..) {
        Some(token) if len <= MAX_TOKEN && token.len() == len => Ok(token),
        _ => Err(PacketError::Malformed("token")),
    }
}

fn emit_token(token: &[u8], out: &mut Vec<u8>) {
    let token = &token[..token.len().min(MAX_TOKEN)];
    out.push(token.len() as u8);
    out.extend_from_slice(token);
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
            Repr::Data { seq, stamp, payload } => {
                write!(f, "DATA seq {seq} stamp {stamp} ({} bytes)", payload.len())
            }
            Repr::Ack { cumulative, echo, sack } => write!(f, "ACK {cumulative} echo {echo:?} sack {sack:?}"),
            Repr::Fin { total_bytes, total_blocks, .. } => {
                write!(f, "FIN {total_bytes} bytes in {total_blocks} blocks")
            }
            Repr::FinAck { status, message } => write!(f, "FIN-ACK {status:?} {message}"),
            Repr::Error { code, message } => write!(f, "ERROR {code:?} {message}"),
            Repr::Ping => f.write_str("PING"),
            Repr::Retry { token } => write!(f, "RETRY token of {} bytes", token.len()),
        }
    }
}
