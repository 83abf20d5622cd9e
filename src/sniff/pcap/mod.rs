//! The pcap capture file format (what tcpdump writes and Wireshark reads),
//! and reading pcapng (what Wireshark, tshark and dumpcap write by default).
//!
//! Files are untrusted input: every length is checked before anything is
//! allocated, and a file cut short ends with [`PcapError::Truncated`] after
//! the records that were whole.

mod classic;
mod ng;

use std::io::{self, Read};

pub use classic::{Precision, Writer};

use super::{LinkType, Packet};

/// The largest record read from a file; bigger ones mean a corrupt file.
/// (Linux frames stay under 256 KiB; tcpdump's own limit is the same.)
pub const MAX_RECORD: usize = 256 << 10;

/// What went wrong reading a capture file.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file starts with neither pcap's nor pcapng's magic number.
    #[error("not a pcap or pcapng file (it starts with {magic:02x?})")]
    NotPcap {
        /// The first bytes found.
        magic: Vec<u8>,
    },
    /// The file's link-layer type is not one decoded here.
    #[error(
        "link-layer type {code} is not supported (socketeer reads Ethernet, raw IP and Linux cooked captures)"
    )]
    UnsupportedLinkType {
        /// The LINKTYPE number.
        code: u32,
    },
    /// The file ends in the middle of something.
    #[error("the file is cut short: {what}")]
    Truncated {
        /// What was being read.
        what: String,
    },
    /// A length or field that cannot be right.
    #[error("corrupt capture file: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
}

/// One packet read from a file, with the link type of the interface it was
/// captured on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// How the frame starts.
    pub link: LinkType,
    /// The frame.
    pub packet: Packet,
}

/// Reads pcap or pcapng, whichever the file is.
pub struct Reader<R> {
    inner: Format<R>,
}

enum Format<R> {
    Classic(classic::Reader<R>),
    Ng(ng::Reader<R>),
}

impl<R: Read> Reader<R> {
    /// Reads the file header.
    ///
    /// # Errors
    /// When the input is not a capture file, or its header is cut short.
    pub fn new(mut input: R) -> Result<Self, PcapError> {
        let mut magic = [0u8; 4];
        read_exact_or(&mut input, &mut magic, "the file header")?;
        let inner = if magic == ng::SECTION_MAGIC {
            Format::Ng(ng::Reader::new(input)?)
        } else {
            Format::Classic(classic::Reader::new(input, magic)?)
        };
        Ok(Reader { inner })
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Record, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Format::Classic(reader) => reader.next(),
            Format::Ng(reader) => reader.next(),
        }
    }
}

/// Fills `buf`, naming `what` if the input ends first.
fn read_exact_or(input: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), PcapError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => PcapError::Truncated { what: what.to_owned() },
        _ => PcapError::Io(e),
    })
}

/// Fills `buf` at a record boundary: `Ok(false)` when the input ended
/// cleanly before the first byte.
fn read_record_start(input: &mut impl Read, buf: &mut [u8], what: &str) -> Result<bool, PcapError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(PcapError::Truncated {
                    what: format!("{what}: {filled} of {} bytes", buf.len()),
                });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// A frame whose declared length is checked against [`MAX_RECORD`] before
/// anything is allocated.
fn read_frame(input: &mut impl Read, len: usize, what: &str) -> Result<Vec<u8>, PcapError> {
    if len > MAX_RECORD {
        return Err(PcapError::Corrupt { reason: format!("{what} of {len} bytes (at most {MAX_RECORD})") });
    }
    let mut data = vec![0u8; len];
    read_exact_or(input, &mut data, what)?;
    Ok(data)
}

#[cfg(test)]
mod tests;
