//! `lab bytes`: sockets carry bytes; text is an encoding of characters into
//! bytes that both sides must agree on.
//!
//! - The text's characters against its UTF-8 bytes.
//! - The UTF-8 sent over loopback in two writes split inside a multi-byte
//!   character, read with two `recv`s: each chunk decoded alone breaks the
//!   character; a decoder that keeps an unfinished character for the next
//!   chunk rebuilds the text.
//! - Bytes that are not UTF-8 at all: a strict decoder refuses them, a lossy
//!   one puts U+FFFD in their place.
//! - A Latin-1 sender and a UTF-8 reader, and the other way round.

use std::fmt;
use std::io::{Read, Write};

use serde::Serialize;

use super::sock::loopback_pair;
use super::{LabError, Lesson};

/// Bytes that are not UTF-8: `0xFF` and `0xFE` never appear in it.
const INVALID: &[u8] = b"caf\xff\xfe!";
/// A word Latin-1 and UTF-8 encode differently.
const WORD: &str = "café";

/// How one character is encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CharBytes {
    /// The character.
    pub char: String,
    /// Its code point, `U+00E9`.
    pub code_point: String,
    /// Its UTF-8 bytes in hex.
    pub utf8: String,
}

/// The text sent over loopback, split inside a character.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SplitRead {
    /// The byte offset of the split.
    pub split_at: usize,
    /// The character the split cuts.
    pub cut_char: String,
    /// What each of the two `recv`s returned, in bytes.
    pub recv_sizes: Vec<usize>,
    /// Each chunk decoded on its own, lossily.
    pub chunk_by_chunk: String,
    /// Why a strict decode of the first chunk alone fails.
    pub first_chunk_error: Option<String>,
    /// Decoded with a decoder that carries an unfinished character over.
    pub carried_over: String,
    /// `carried_over` equals the text sent.
    pub intact: bool,
}

/// One decoding of some bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decoding {
    /// The bytes, in hex.
    pub bytes: String,
    /// How they were read.
    pub read_as: String,
    /// The result (lossy where the bytes do not fit).
    pub text: String,
    /// The strict decoder's error, if any.
    pub error: Option<String>,
}

/// What `lab bytes` observed.
#[derive(Clone, Debug, Serialize)]
pub struct BytesReport {
    /// The text.
    pub text: String,
    /// Its characters.
    pub chars: usize,
    /// Its UTF-8 bytes.
    pub utf8_bytes: usize,
    /// The characters that take more than one byte.
    pub multi_byte: Vec<CharBytes>,
    /// The split read, when the text has a multi-byte character to split.
    pub split: Option<SplitRead>,
    /// Bytes that are not UTF-8, and Latin-1 against UTF-8.
    pub decodings: Vec<Decoding>,
}

/// Runs the experiment on `text`.
///
/// # Errors
/// When loopback sockets cannot be made or used.
pub fn run(text: &str) -> Result<BytesReport, LabError> {
    let multi_byte = text
        .chars()
        .filter(|c| c.len_utf8() > 1)
        .map(|c| CharBytes {
            char: c.to_string(),
            code_point: format!("U+{:04X}", u32::from(c)),
            utf8: hex(c.to_string().as_bytes()),
        })
        .collect();
    let split = match text.char_indices().find(|(_, c)| c.len_utf8() > 1) {
        Some((at, c)) => Some(split_read(text, at + 1, c)?),
        None => None,
    };
    let latin1 = latin1_encode(WORD);
    let decodings = vec![
        utf8_decoding(INVALID, "UTF-8"),
        utf8_decoding(&latin1, "UTF-8 (sent as Latin-1)"),
        Decoding {
            bytes: hex(WORD.as_bytes()),
            read_as: "Latin-1 (sent as UTF-8)".to_owned(),
            text: latin1_decode(WORD.as_bytes()),
            error: None,
        },
    ];
    Ok(BytesReport {
        text: text.to_owned(),
        chars: text.chars().count(),
        utf8_bytes: text.len(),
        multi_byte,
        split,
        decodings,
    })
}

fn split_read(text: &str, split_at: usize, cut: char) -> Result<SplitRead, LabError> {
    let (mut client, mut server) = loopback_pair()?;
    let bytes = text.as_bytes();
    client.write_all(&bytes[..split_at]).map_err(LabError::io("sending"))?;
    client.write_all(&bytes[split_at..]).map_err(LabError::io("sending"))?;
    drop(client);
    // The first recv asks for exactly the first write's bytes, as a reader
    // with a buffer of that size would; the second takes the rest.
    let mut first = vec![0u8; split_at];
    server.read_exact(&mut first).map_err(LabError::io("receiving"))?;
    let mut second = Vec::new();
    server.read_to_end(&mut second).map_err(LabError::io("receiving"))?;
    let chunk_by_chunk = format!("{}{}", String::from_utf8_lossy(&first), String::from_utf8_lossy(&second));
    let first_chunk_error = std::str::from_utf8(&first).err().map(|e| e.to_string());
    let mut decoder = Utf8Stream::default();
    let mut carried_over = decoder.push(&first);
    carried_over.push_str(&decoder.push(&second));
    carried_over.push_str(&decoder.finish());
    Ok(SplitRead {
        split_at,
        cut_char: cut.to_string(),
        recv_sizes: vec![first.len(), second.len()],
        chunk_by_chunk,
        first_chunk_error,
        intact: carried_over == text,
        carried_over,
    })
}

/// A UTF-8 decoder for a stream that arrives in chunks: an unfinished
/// character at the end of a chunk waits for the next one.
#[derive(Debug, Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Decodes what can be decoded; invalid bytes become U+FFFD.
    fn push(&mut self, chunk: &[u8]) -> String {
        self.pending.extend_from_slice(chunk);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // Unfinished at the end: keep it for the next chunk.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// The end of the stream: an unfinished character is an error now.
    fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

fn utf8_decoding(bytes: &[u8], read_as: &str) -> Decoding {
    Decoding {
        bytes: hex(bytes),
        read_as: read_as.to_owned(),
        text: String::from_utf8_lossy(bytes).into_owned(),
        error: std::str::from_utf8(bytes).err().map(|e| e.to_string()),
    }
}

/// Latin-1 maps code points 0 to 255 to one byte each; anything else becomes `?`.
fn latin1_encode(text: &str) -> Vec<u8> {
    text.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect()
}

fn latin1_decode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

impl fmt::Display for BytesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "text {:?}: {} characters, {} bytes in UTF-8", self.text, self.chars, self.utf8_bytes)?;
        for c in &self.multi_byte {
            writeln!(f, "  {} {} -> {}", c.char, c.code_point, c.utf8)?;
        }
        if let Some(s) = &self.split {
            writeln!(
                f,
                "sent in two writes split inside {:?} (after byte {}); two recvs got {} and {} bytes",
                s.cut_char,
                s.split_at,
                s.recv_sizes.first().copied().unwrap_or(0),
                s.recv_sizes.get(1).copied().unwrap_or(0)
            )?;
            writeln!(f, "  each recv decoded alone: {:?}", s.chunk_by_chunk)?;
            if let Some(e) = &s.first_chunk_error {
                writeln!(f, "    (the first alone, strictly: {e})")?;
            }
            writeln!(f, "  decoded as one stream:   {:?}", s.carried_over)?;
        }
        for (i, d) in self.decodings.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{} read as {}: {:?}", d.bytes, d.read_as, d.text)?;
            if let Some(e) = &d.error {
                write!(f, " (strictly: {e})")?;
            }
        }
        Ok(())
    }
}

impl Lesson for BytesReport {
    fn lesson(&self) -> String {
        let mut text = if self.chars == self.utf8_bytes {
            format!(
                "Every character of {:?} is ASCII, one byte each, so bytes and characters count the same here; \
                 try a --text with é or 🦀. ",
                self.text
            )
        } else {
            format!(
                "{:?} is {} characters but {} bytes: in UTF-8 a character takes 1 to 4 bytes, and a socket \
                 only carries the bytes. ",
                self.text, self.chars, self.utf8_bytes
            )
        };
        if let Some(s) = &self.split {
            let broken = s.chunk_by_chunk.contains(char::REPLACEMENT_CHARACTER);
            text.push_str(&format!(
                "Split inside {:?}, each recv decoded on its own {}; a decoder that keeps the unfinished bytes \
                 for the next chunk {}. ",
                s.cut_char,
                if broken { "turned it into two U+FFFD marks" } else { "still decoded" },
                if s.intact { "got the text back exactly" } else { "did NOT get the text back" }
            ));
        }
        let invalid = self.decodings.first();
        let mixed = self.decodings.get(1).zip(self.decodings.get(2));
        if let (Some(invalid), Some((latin_as_utf8, utf8_as_latin))) = (invalid, mixed) {
            text.push_str(&format!(
                "Bytes that are not UTF-8 fail a strict decode ({}) and become U+FFFD in a lossy one; \"{WORD}\" \
                 sent as Latin-1 reads as {:?} in UTF-8, and sent as UTF-8 reads as {:?} in Latin-1: both ends \
                 must agree on the encoding.",
                invalid.error.as_deref().unwrap_or("no error"),
                latin_as_utf8.text,
                utf8_as_latin.text
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_decoder_rebuilds_characters_split_anywhere() {
        let text = "héllo ✓ 🦀";
        for split in 0..=text.len() {
            let mut decoder = Utf8Stream::default();
            let mut out = decoder.push(&text.as_bytes()[..split]);
            out.push_str(&decoder.push(&text.as_bytes()[split..]));
            out.push_str(&decoder.finish());
            assert_eq!(out, text, "split at {split}");
        }
        let mut decoder = Utf8Stream::default();
        assert_eq!(decoder.push(b"a\xffb\xe2\x9c"), "a\u{FFFD}b");
        assert_eq!(decoder.finish(), "\u{FFFD}");
    }

    #[test]
    fn latin1_and_utf8_disagree_on_cafe() {
        assert_eq!(latin1_encode("café"), b"caf\xe9");
        assert_eq!(latin1_decode("café".as_bytes()), "cafÃ©");
        let report = run("héllo").unwrap();
        let split = report.split.unwrap();
        assert_eq!((split.split_at, split.recv_sizes.as_slice()), (2, &[2, 4][..]));
        assert!(split.intact && split.chunk_by_chunk.contains('\u{FFFD}'));
        assert_eq!(report.decodings[1].text, "caf\u{FFFD}");
    }
}
