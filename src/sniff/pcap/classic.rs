//! Classic pcap: a 24-byte file header, then a 16-byte header before each
//! frame. Either byte order, microsecond or nanosecond timestamps.

use std::io::{self, Read, Write};
use std::time::Duration;

use super::{PcapError, Record, read_exact_or, read_frame, read_record_start};
use crate::sniff::{Frame, LinkType, Packet};

const MICRO_MAGIC: u32 = 0xa1b2_c3d4;
const NANO_MAGIC: u32 = 0xa1b2_3c4d;

/// How precise the timestamps written are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Microseconds: what every tool reads.
    #[default]
    Micro,
    /// Nanoseconds (tcpdump's `--time-stamp-precision=nano`).
    Nano,
}

/// Writes a pcap file, one record per [`Writer::write`].
///
/// Records go to `out` whole; wrap it in a `BufWriter` and call
/// [`Writer::flush`] before exiting.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    precision: Precision,
    snaplen: u32,
}

impl<W: Write> Writer<W> {
    /// Writes the file header: little-endian, version 2.4, `link`, `snaplen`.
    ///
    /// # Errors
    /// When `out` cannot be written.
    pub fn new(mut out: W, link: LinkType, snaplen: u32, precision: Precision) -> io::Result<Self> {
        let magic = match precision {
            Precision::Micro => MICRO_MAGIC,
            Precision::Nano => NANO_MAGIC,
        };
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&magic.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes()); // timezone offset: always UTC
        header.extend_from_slice(&0u32.to_le_bytes()); // timestamp accuracy: unused
        header.extend_from_slice(&snaplen.to_le_bytes());
        header.extend_from_slice(&link.pcap_code().to_le_bytes());
        out.write_all(&header)?;
        Ok(Writer { out, precision, snaplen })
    }

    /// Appends one frame (cut to the snap length).
    ///
    /// # Errors
    /// When `out` cannot be written.
    pub fn write(&mut self, packet: Frame<'_>) -> io::Result<()> {
        let data = &packet.data[..packet.data.len().min(self.snaplen as usize)];
        let fraction = match self.precision {
            Precision::Micro => packet.time.subsec_micros(),
            Precision::Nano => packet.time.subsec_nanos(),
        };
        let mut header = [0u8; 16];
        // pcap's seconds field is 32 bits: good until 2106.
        header[0..4].copy_from_slice(&(packet.time.as_secs() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&fraction.to_le_bytes());
        header[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        header[12..16].copy_from_slice(&packet.len.max(data.len() as u32).to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(data)
    }

    /// Flushes what is buffered.
    ///
    /// # Errors
    /// When `out` cannot be written.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The output, flushed.
    ///
    /// # Errors
    /// When `out` cannot be written.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads the records of a classic pcap file.
pub(super) struct Reader<R> {
    input: R,
    big_endian: bool,
    nanos: bool,
    link: LinkType,
}

impl<R: Read> Reader<R> {
    /// Reads the rest of the file header, after its first four bytes.
    pub(super) fn new(mut input: R, magic: [u8; 4]) -> Result<Self, PcapError> {
        let (big_endian, nanos) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
            (MICRO_MAGIC, _) => (false, false),
            (NANO_MAGIC, _) => (false, true),
            (_, MICRO_MAGIC) => (true, false),
            (_, NANO_MAGIC) => (true, true),
            _ => return Err(PcapError::NotPcap { magic: magic.to_vec() }),
        };
        let mut rest = [0u8; 20];
        read_exact_or(&mut input, &mut rest, "the file header")?;
        let mut reader = Reader { input, big_endian, nanos, link: LinkType::Ethernet };
        // The low 16 bits are the link type; the high bits carry FCS flags.
        let code = reader.u32_at(&rest, 16) & 0xffff;
        reader.link = LinkType::from_pcap_code(code).ok_or(PcapError::UnsupportedLinkType { code })?;
        Ok(reader)
    }

    fn u32_at(&self, bytes: &[u8], at: usize) -> u32 {
        let mut word = [0u8; 4];
        word.copy_from_slice(&bytes[at..at + 4]);
        if self.big_endian { u32::from_be_bytes(word) } else { u32::from_le_bytes(word) }
    }

    fn read_record(&mut self) -> Result<Option<Record>, PcapError> {
        let mut header = [0u8; 16];
        if !read_record_start(&mut self.input, &mut header, "a record header")? {
            return Ok(None);
        }
        let (secs, fraction) = (self.u32_at(&header, 0), self.u32_at(&header, 4));
        let (captured, len) = (self.u32_at(&header, 8), self.u32_at(&header, 12));
        let nanos = if self.nanos { fraction } else { fraction.saturating_mul(1000) };
        if nanos >= 1_000_000_000 {
            return Err(PcapError::Corrupt { reason: format!("a timestamp fraction of {fraction}") });
        }
        let data = read_frame(&mut self.input, captured as usize, "a frame")?;
        let time = Duration::new(u64::from(secs), nanos);
        Ok(Some(Record { link: self.link, packet: Packet { time, len: len.max(captured), data } }))
    }

    pub(super) fn next(&mut self) -> Option<Result<Record, PcapError>> {
        self.read_record().transpose()
    }
}
