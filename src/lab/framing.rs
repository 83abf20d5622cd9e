//! `lab framing`: TCP carries a stream of bytes, not messages.
//!
//! Four runs over one loopback connection each:
//! - several small `send`s, then `recv` once everything has arrived: the
//!   messages come back joined;
//! - one large `send` read while it arrives: it comes back split;
//! - the messages with a newline after each, and with a length before each
//!   (tokio-util's `LinesCodec` and `LengthDelimitedCodec`), written in
//!   small chunks that cut through messages: the reader rebuilds every one.
//!
//! Each run counts the data segments the kernel sent (`TCP_INFO`) and
//! checks that the bytes received are the bytes sent.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::BytesMut;
use serde::Serialize;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LinesCodec};

use super::sock::loopback_pair;
use super::table::Table;
use super::tcp_info::TcpCounters;
use super::{LabError, Lesson, join, spawn, thousands};

/// What to send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FramingConfig {
    /// The messages of the small-sends and framed runs.
    pub messages: Vec<String>,
    /// The size of the one large send.
    pub large: usize,
    /// The framed runs write their bytes in chunks of this size.
    pub chunk: usize,
}

impl Default for FramingConfig {
    fn default() -> Self {
        FramingConfig {
            messages: ["hello", "world", "how are you?"].map(str::to_owned).to_vec(),
            large: 256 * 1024,
            chunk: 5,
        }
    }
}

/// The reader's buffer for the large send (what `recv(65536)` asks for).
const RECV_BUFFER: usize = 64 * 1024;
/// The longest line or frame the framed readers accept.
const MAX_FRAME: usize = 1 << 20;

/// Which run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Run {
    /// Small sends, one read after they all arrived.
    SmallSends,
    /// One large send, read as it arrives.
    LargeSend,
    /// Newline after each message.
    Newline,
    /// A 4-byte big-endian length before each message.
    LengthPrefix,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Run::SmallSends => "small sends, recv later",
            Run::LargeSend => "one large send",
            Run::Newline => "newline framing",
            Run::LengthPrefix => "length-prefix framing",
        })
    }
}

/// One run's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FramingRow {
    /// Which run.
    pub run: Run,
    /// The sizes of the writes, in order.
    pub send_sizes: Vec<usize>,
    /// Segments with data the kernel sent for them (`TCP_INFO`).
    pub data_segments: u32,
    /// What each `recv` returned, in order.
    pub recv_sizes: Vec<usize>,
    /// Bytes written.
    pub bytes_sent: usize,
    /// Bytes read.
    pub bytes_received: usize,
    /// The bytes read are the bytes written, in order.
    pub intact: bool,
    /// Framed runs: messages sent.
    pub messages_sent: Option<usize>,
    /// Framed runs: messages the reader rebuilt that equal the ones sent, in order.
    pub messages_recovered: Option<usize>,
}

/// What `lab framing` measured.
#[derive(Clone, Debug, Serialize)]
pub struct FramingReport {
    /// What was sent.
    pub config: FramingConfig,
    /// One row per run.
    pub rows: Vec<FramingRow>,
}

/// Runs the four runs.
///
/// # Errors
/// When loopback sockets cannot be made or used.
pub fn run(config: FramingConfig) -> Result<FramingReport, LabError> {
    let chunk = config.chunk.max(1);
    let small: Vec<Vec<u8>> = config.messages.iter().map(|m| m.as_bytes().to_vec()).collect();
    let large: Vec<u8> = (0..config.large).map(|i| (i % 251) as u8).collect();
    let mut rows = vec![small_sends(&small)?, large_send(large)?];
    let mut lines = LinesCodec::new_with_max_length(MAX_FRAME);
    let mut newline = BytesMut::new();
    for m in &config.messages {
        lines.encode(m.as_str(), &mut newline).map_err(|e| codec_error("framing a line", e))?;
    }
    rows.push(framed(Run::Newline, newline.to_vec(), chunk, &config.messages, |buf| {
        lines.decode(buf).map_err(|e| e.to_string())
    })?);
    let mut prefix = LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec();
    let mut prefixed = BytesMut::new();
    for m in &config.messages {
        prefix
            .encode(bytes::Bytes::copy_from_slice(m.as_bytes()), &mut prefixed)
            .map_err(|e| codec_error("framing with a length", e))?;
    }
    rows.push(framed(Run::LengthPrefix, prefixed.to_vec(), chunk, &config.messages, |buf| {
        match prefix.decode(buf) {
            Ok(frame) => Ok(frame.map(|f| String::from_utf8_lossy(&f).into_owned())),
            Err(e) => Err(e.to_string()),
        }
    })?);
    Ok(FramingReport { config, rows })
}

fn codec_error(context: &str, error: impl fmt::Display) -> LabError {
    LabError::Io { context: context.to_owned(), error: std::io::Error::other(error.to_string()) }
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> LabError {
    LabError::io(context.to_owned())
}

fn connected() -> Result<(TcpStream, TcpStream), LabError> {
    let (client, server) = loopback_pair()?;
    // Without Nagle's algorithm every write leaves at once, as its own segment.
    client.set_nodelay(true).map_err(io("setting TCP_NODELAY"))?;
    Ok((client, server))
}

/// Writes each message, waits until all their bytes are in the reader's
/// queue, then reads.
fn small_sends(messages: &[Vec<u8>]) -> Result<FramingRow, LabError> {
    let (mut client, mut server) = connected()?;
    let before = TcpCounters::of(&client).map_err(io("reading TCP_INFO"))?;
    for m in messages {
        client.write_all(m).map_err(io("sending"))?;
    }
    let sent: Vec<u8> = messages.concat();
    let after = TcpCounters::of(&client).map_err(io("reading TCP_INFO"))?;
    // Wait for every byte to be queued at the reader (a peek does not consume).
    let mut buf = vec![0u8; sent.len().max(1)];
    while server.peek(&mut buf).map_err(io("peeking"))? < sent.len() {
        std::thread::yield_now();
    }
    drop(client);
    let (received, recv_sizes) = read_all(&mut server, sent.len().max(1))?;
    Ok(FramingRow {
        run: Run::SmallSends,
        send_sizes: messages.iter().map(Vec::len).collect(),
        data_segments: after.since(before).data_segments_out,
        recv_sizes,
        bytes_sent: sent.len(),
        bytes_received: received.len(),
        intact: received == sent,
        messages_sent: None,
        messages_recovered: None,
    })
}

/// One `write_all` from another thread while this one reads as bytes arrive.
fn large_send(content: Vec<u8>) -> Result<FramingRow, LabError> {
    let (client, mut server) = connected()?;
    let len = content.len();
    let writer = spawn("framing-writer", move || write_then_close(client, &[content]))?;
    let (received, recv_sizes) = read_all(&mut server, RECV_BUFFER)?;
    let (content, segments) = join("framing-writer", writer)??;
    Ok(FramingRow {
        run: Run::LargeSend,
        send_sizes: vec![len],
        data_segments: segments,
        recv_sizes,
        bytes_sent: len,
        bytes_received: received.len(),
        intact: received == content,
        messages_sent: None,
        messages_recovered: None,
    })
}

/// Writes `stream` in `chunk`-byte pieces; the reader reads small buffers and
/// feeds a decoder until the writer closes.
fn framed(
    run: Run,
    stream: Vec<u8>,
    chunk: usize,
    messages: &[String],
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<String>, String>,
) -> Result<FramingRow, LabError> {
    let (client, mut server) = connected()?;
    let pieces: Vec<Vec<u8>> = stream.chunks(chunk).map(<[u8]>::to_vec).collect();
    let send_sizes = pieces.iter().map(Vec::len).collect();
    let writer = spawn("framing-writer", move || write_then_close(client, &pieces))?;
    let (received, recv_sizes) = read_all(&mut server, chunk * 3)?;
    let (_, segments) = join("framing-writer", writer)??;
    let mut buf = BytesMut::from(&received[..]);
    let mut rebuilt = Vec::new();
    while let Ok(Some(message)) = decode(&mut buf) {
        rebuilt.push(message);
    }
    let recovered = rebuilt.iter().zip(messages).take_while(|(got, sent)| got == sent).count();
    Ok(FramingRow {
        run,
        send_sizes,
        data_segments: segments,
        recv_sizes,
        bytes_sent: stream.len(),
        bytes_received: received.len(),
        intact: received == stream,
        messages_sent: Some(messages.len()),
        messages_recovered: Some(recovered),
    })
}

/// Writes every piece with its own `write_all`, closes, and returns what was
/// written and the data segments the kernel sent for it.
fn write_then_close(mut client: TcpStream, pieces: &[Vec<u8>]) -> Result<(Vec<u8>, u32), LabError> {
    let before = TcpCounters::of(&client).map_err(io("reading TCP_INFO"))?;
    for piece in pieces {
        client.write_all(piece).map_err(io("sending"))?;
    }
    let after = TcpCounters::of(&client).map_err(io("reading TCP_INFO"))?;
    Ok((pieces.concat(), after.since(before).data_segments_out))
}

/// Reads until the other side closes, with a buffer of `size` bytes,
/// returning the bytes and what each `recv` returned.
fn read_all(stream: &mut TcpStream, size: usize) -> Result<(Vec<u8>, Vec<usize>), LabError> {
    let mut buf = vec![0u8; size];
    let (mut received, mut sizes) = (Vec::new(), Vec::new());
    loop {
        match stream.read(&mut buf).map_err(io("receiving"))? {
            0 => return Ok((received, sizes)),
            n => {
                sizes.push(n);
                received.extend_from_slice(&buf[..n]);
            }
        }
    }
}

/// `5, 5, 12` or, for long lists, the first few and a count.
fn sizes(list: &[usize]) -> String {
    const SHOWN: usize = 4;
    let head: Vec<String> = list.iter().take(SHOWN).map(|&n| thousands(n as u64)).collect();
    match list.len() {
        n if n <= SHOWN => head.join(", "),
        n => format!("{}, … ({n} in all)", head.join(", ")),
    }
}

impl FramingReport {
    fn row(&self, run: Run) -> Option<&FramingRow> {
        self.rows.iter().find(|r| r.run == run)
    }
}

impl fmt::Display for FramingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted: Vec<String> = self.config.messages.iter().map(|m| format!("{m:?}")).collect();
        writeln!(
            f,
            "messages {}; one send of {} bytes; framed runs write {}-byte chunks",
            quoted.join(", "),
            thousands(self.config.large as u64),
            self.config.chunk
        )?;
        let mut table = Table::new(&[
            "run",
            "sends",
            "data segments",
            "recvs",
            "recv sizes",
            "bytes",
            "intact",
            "messages",
        ]);
        for r in &self.rows {
            table.row([
                r.run.to_string(),
                thousands(r.send_sizes.len() as u64),
                thousands(u64::from(r.data_segments)),
                thousands(r.recv_sizes.len() as u64),
                sizes(&r.recv_sizes),
                format!("{}/{}", thousands(r.bytes_received as u64), thousands(r.bytes_sent as u64)),
                if r.intact { "yes" } else { "NO" }.to_owned(),
                match (r.messages_recovered, r.messages_sent) {
                    (Some(got), Some(sent)) => format!("{got}/{sent} rebuilt"),
                    _ => "-".to_owned(),
                },
            ]);
        }
        write!(f, "{table}")
    }
}

impl Lesson for FramingReport {
    fn lesson(&self) -> String {
        let mut text = String::new();
        if let Some(r) = self.row(Run::SmallSends) {
            let sends = r.send_sizes.len();
            let shown = sizes(&r.send_sizes);
            if r.recv_sizes.len() < sends {
                text.push_str(&format!(
                    "{sends} sends of {shown} bytes left as {} data segments, yet {} returned {} bytes: \
                     TCP delivers a stream of bytes and keeps no boundaries between sends. ",
                    r.data_segments,
                    match r.recv_sizes.len() {
                        1 => "one recv".to_owned(),
                        n => format!("{n} recvs"),
                    },
                    sizes(&r.recv_sizes)
                ));
            } else {
                text.push_str(&format!(
                    "This time each of the {sends} sends ({shown} bytes) came back from its own recv, by timing \
                     alone: nothing in TCP promises it, and on another run or a slower network they join. "
                ));
            }
        }
        if let Some(r) = self.row(Run::LargeSend) {
            let (min, max) = (r.recv_sizes.iter().min(), r.recv_sizes.iter().max());
            let reads = match (r.recv_sizes.len(), min, max) {
                (1, _, _) => "1 recv".to_owned(),
                (n, Some(&min), Some(&max)) => {
                    format!("{n} recvs of {} to {} bytes", thousands(min as u64), thousands(max as u64))
                }
                (n, _, _) => format!("{n} recvs"),
            };
            text.push_str(&format!(
                "One send of {} bytes took {reads}{}: recv returns what has arrived, at most its buffer. ",
                thousands(r.bytes_sent as u64),
                if r.intact { ", every byte in order" } else { ", and the bytes DIFFER" }
            ));
        }
        let framed: Vec<&FramingRow> = self.rows.iter().filter(|r| r.messages_sent.is_some()).collect();
        let all = framed.iter().all(|r| r.messages_recovered == r.messages_sent && r.intact);
        if !framed.is_empty() {
            if all {
                text.push_str(&format!(
                    "Written in pieces of {} bytes that cut through messages, the newline and the length \
                     prefix still let the reader rebuild all {} messages: the framing, not the sends, \
                     says where a message ends.",
                    self.config.chunk,
                    self.config.messages.len()
                ));
            } else {
                text.push_str("A framed run did NOT rebuild every message: see the table.");
            }
        }
        text.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_delivers_the_bytes_sent_and_framing_rebuilds_the_messages() {
        let config = FramingConfig { large: 100_000, chunk: 3, ..FramingConfig::default() };
        let report = run(config).unwrap();
        assert_eq!(report.rows.len(), 4);
        for r in &report.rows {
            assert!(r.intact, "{r:?}");
            assert_eq!(r.recv_sizes.iter().sum::<usize>(), r.bytes_sent, "{r:?}");
            if let Some(sent) = r.messages_sent {
                assert_eq!(r.messages_recovered, Some(sent), "{r:?}");
            }
        }
        assert!(report.lesson().contains("rebuild all 3 messages"), "{}", report.lesson());
    }

    #[test]
    fn long_size_lists_are_cut() {
        assert_eq!(sizes(&[5, 5, 12]), "5, 5, 12");
        assert_eq!(sizes(&[1, 2, 3, 4, 5, 6]), "1, 2, 3, 4, … (6 in all)");
    }
}
