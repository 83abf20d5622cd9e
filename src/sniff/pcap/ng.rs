//! Reading pcapng: blocks of a section header, interface descriptions and
//! packets. Only what a capture needs is read (the link type and timestamp
//! resolution of each interface, enhanced and simple packet blocks); other
//! blocks are skipped.

use std::io::{self, Read};
use std::time::Duration;

use super::{MAX_RECORD, PcapError, Record, read_exact_or, read_record_start};
use crate::sniff::{LinkType, Packet};

/// A section header block's type, the same in either byte order.
pub(super) const SECTION_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const INTERFACE: u32 = 1;
const SIMPLE_PACKET: u32 = 3;
const ENHANCED_PACKET: u32 = 6;
/// The option carrying an interface's timestamp resolution.
const IF_TSRESOL: u16 = 9;
/// Room for block headers and options around the largest frame.
const MAX_BLOCK: usize = MAX_RECORD + (64 << 10);
/// More interfaces than any capture has.
const MAX_INTERFACES: usize = 4096;

struct Interface {
    link: Result<LinkType, u32>,
    snaplen: u32,
    /// Timestamp units per second.
    units: u64,
}

pub(super) struct Reader<R> {
    input: R,
    big_endian: bool,
    interfaces: Vec<Interface>,
}

impl<R: Read> Reader<R> {
    /// Reads the first section header, whose type was already read.
    pub(super) fn new(input: R) -> Result<Self, PcapError> {
        let mut reader = Reader { input, big_endian: false, interfaces: Vec::new() };
        reader.section()?;
        Ok(reader)
    }

    fn u32_at(&self, bytes: &[u8], at: usize) -> u32 {
        let word = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if self.big_endian { u32::from_be_bytes(word) } else { u32::from_le_bytes(word) }
    }

    fn u16_at(&self, bytes: &[u8], at: usize) -> u16 {
        let word = [bytes[at], bytes[at + 1]];
        if self.big_endian { u16::from_be_bytes(word) } else { u16::from_le_bytes(word) }
    }

    /// A section header after its type: the byte order comes from its magic.
    fn section(&mut self) -> Result<(), PcapError> {
        let mut start = [0u8; 8];
        read_exact_or(&mut self.input, &mut start, "a section header")?;
        let order = [start[4], start[5], start[6], start[7]];
        self.big_endian = match (u32::from_le_bytes(order), u32::from_be_bytes(order)) {
            (BYTE_ORDER_MAGIC, _) => false,
            (_, BYTE_ORDER_MAGIC) => true,
            _ => return Err(corrupt("a section header without the byte-order magic")),
        };
        let total = self.block_len(self.u32_at(&start, 0))?;
        if total < 28 {
            return Err(corrupt(&format!("a section header of {total} bytes")));
        }
        // Version and section length, options and the trailing length: skipped.
        self.skip(total - 12)?;
        self.interfaces.clear();
        Ok(())
    }

    fn block_len(&self, total: u32) -> Result<usize, PcapError> {
        let total = total as usize;
        if total < 12 || !total.is_multiple_of(4) {
            return Err(corrupt(&format!("a block length of {total}")));
        }
        Ok(total)
    }

    fn skip(&mut self, len: usize) -> Result<(), PcapError> {
        let skipped = io::copy(&mut (&mut self.input).take(len as u64), &mut io::sink())?;
        if skipped < len as u64 {
            return Err(PcapError::Truncated { what: "a block".to_owned() });
        }
        Ok(())
    }

    /// The body of a block whose type and length were read (trailer consumed).
    fn body(&mut self, total: usize) -> Result<Vec<u8>, PcapError> {
        if total > MAX_BLOCK {
            return Err(corrupt(&format!("a block of {total} bytes (at most {MAX_BLOCK})")));
        }
        let mut body = vec![0u8; total - 8];
        read_exact_or(&mut self.input, &mut body, "a block")?;
        body.truncate(total - 12);
        Ok(body)
    }

    fn interface(&mut self, body: &[u8]) -> Result<(), PcapError> {
        if body.len() < 8 {
            return Err(corrupt("an interface description shorter than 8 bytes"));
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(corrupt("more than 4096 interfaces"));
        }
        let code = u32::from(self.u16_at(body, 0));
        let snaplen = self.u32_at(body, 4);
        let mut units = 1_000_000;
        let mut at = 8;
        while at + 4 <= body.len() {
            let (option, len) = (self.u16_at(body, at), usize::from(self.u16_at(body, at + 2)));
            if option == 0 {
                break;
            }
            if option == IF_TSRESOL && len == 1 && at + 4 < body.len() {
                units = resolution(body[at + 4])?;
            }
            at += 4 + len.div_ceil(4) * 4;
        }
        let link = LinkType::from_pcap_code(code).ok_or(code);
        self.interfaces.push(Interface { link, snaplen, units });
        Ok(())
    }

    fn packet(&self, kind: u32, body: &[u8]) -> Result<Record, PcapError> {
        let (id, time, captured, len, data_at) = if kind == ENHANCED_PACKET {
            if body.len() < 20 {
                return Err(corrupt("an enhanced packet block shorter than 20 bytes"));
            }
            let stamp = (u64::from(self.u32_at(body, 4)) << 32) | u64::from(self.u32_at(body, 8));
            (
                self.u32_at(body, 0) as usize,
                Some(stamp),
                self.u32_at(body, 12) as usize,
                self.u32_at(body, 16),
                20,
            )
        } else {
            if body.len() < 4 {
                return Err(corrupt("a simple packet block shorter than 4 bytes"));
            }
            let len = self.u32_at(body, 0);
            let snaplen = self
                .interfaces
                .first()
                .map_or(u32::MAX, |i| if i.snaplen == 0 { u32::MAX } else { i.snaplen });
            let captured = (len.min(snaplen) as usize).min(body.len() - 4);
            (0, None, captured, len, 4)
        };
        let interface = self
            .interfaces
            .get(id)
            .ok_or_else(|| corrupt(&format!("a packet from undescribed interface {id}")))?;
        let link = interface.link.map_err(|code| PcapError::UnsupportedLinkType { code })?;
        let data = body
            .get(data_at..data_at + captured)
            .ok_or_else(|| corrupt(&format!("a packet of {captured} bytes in a block of {}", body.len())))?;
        let time = time.map_or(Duration::ZERO, |stamp| {
            let units = u128::from(interface.units);
            let nanos = u128::from(stamp) * 1_000_000_000 / units;
            Duration::new((nanos / 1_000_000_000) as u64, (nanos % 1_000_000_000) as u32)
        });
        let len = len.max(captured as u32);
        Ok(Record { link, packet: Packet { time, len, data: data.to_vec() } })
    }

    fn read_block(&mut self) -> Result<Option<Record>, PcapError> {
        loop {
            let mut head = [0u8; 4];
            if !read_record_start(&mut self.input, &mut head, "a block header")? {
                return Ok(None);
            }
            if head == SECTION_MAGIC {
                self.section()?;
                continue;
            }
            let kind = self.u32_at(&head, 0);
            let mut len = [0u8; 4];
            read_exact_or(&mut self.input, &mut len, "a block header")?;
            let total = self.block_len(self.u32_at(&len, 0))?;
            match kind {
                INTERFACE => {
                    let body = self.body(total)?;
                    self.interface(&body)?;
                }
                SIMPLE_PACKET | ENHANCED_PACKET => {
                    let body = self.body(total)?;
                    return self.packet(kind, &body).map(Some);
                }
                _ => self.skip(total - 8)?,
            }
        }
    }

    pub(super) fn next(&mut self) -> Option<Result<Record, PcapError>> {
        self.read_block().transpose()
    }
}

/// Units per second of an `if_tsresol` value: 10^v, or 2^v with the top bit set.
fn resolution(value: u8) -> Result<u64, PcapError> {
    let exponent = u32::from(value & 0x7f);
    let units = if value & 0x80 == 0 { 10u64.checked_pow(exponent) } else { 2u64.checked_pow(exponent) };
    units.ok_or_else(|| corrupt(&format!("a timestamp resolution of {value:#04x}")))
}

fn corrupt(reason: &str) -> PcapError {
    PcapError::Corrupt { reason: reason.to_owned() }
}
