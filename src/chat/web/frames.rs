//! WebSocket frames over a session's own buffers (pure): tungstenite does
//! the protocol (masking, fragments, control frames, the closing
//! handshake, UTF-8, size caps); this only hands it the bytes the session
//! read and takes the bytes it is to write, so that a WebSocket client is
//! served by the same session, with the same timers and limits, as any other.

use std::io::{self, Read, Write};

use bytes::{Buf, BufMut, BytesMut};
use tungstenite::Message;
use tungstenite::error::{CapacityError, Error};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};

/// Bytes in, bytes out: what tungstenite reads and writes. Reading an
/// empty input "would block", which tells tungstenite to wait for more.
struct Pipe<'a> {
    input: &'a mut BytesMut,
    output: &'a mut BytesMut,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.advance(n);
        Ok(n)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.put_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What came from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message: a line of the chat's protocol.
    Text(String),
    /// An answer to a ping.
    Pong,
}

/// Why no more will come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The client closed the connection (its close is answered).
    ByClient,
    /// The client broke a rule and was sent a close frame saying which.
    Refused(String),
}

/// One connection's WebSocket, server side.
pub struct Frames {
    context: WebSocketContext,
    /// Bytes of a message have come and the message is not whole yet.
    partial: bool,
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames").field("partial", &self.partial).finish_non_exhaustive()
    }
}

impl Frames {
    /// A server's side of a WebSocket whose messages and frames hold at
    /// most `max_message` bytes.
    pub fn new(max_message: usize) -> Frames {
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        Frames { context: WebSocketContext::new(Role::Server, Some(config)), partial: false }
    }

    /// Whether part of a message has come and the rest has not.
    pub fn partial(&self) -> bool {
        self.partial
    }

    /// The next message from the bytes in `input` (which it takes), or
    /// `None` until more come; anything due to the client (the answer to a
    /// ping or a close) goes into `output`.
    ///
    /// # Errors
    /// When the client closed, or broke the protocol (then `output` holds
    /// the close frame that says so).
    pub fn next(&mut self, input: &mut BytesMut, output: &mut BytesMut) -> Result<Option<Incoming>, Closed> {
        if !input.is_empty() {
            self.partial = true;
        }
        let mut pipe = Pipe { input, output };
        loop {
            let read = self.context.read(&mut pipe);
            if !matches!(read, Err(Error::Io(_))) {
                // A message (or a refusal) ends what was partial.
                self.partial = false;
            }
            let message = match read {
                Ok(message) => message,
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Answers to pings wait in tungstenite until written.
                    let _ = self.context.flush(&mut pipe);
                    return Ok(None);
                }
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => return Err(Closed::ByClient),
                Err(Error::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                    let why = format!("message of {size} bytes; the limit is {max_size}");
                    return Err(self.refuse(&mut pipe, CloseCode::Size, why));
                }
                Err(e) => return Err(self.refuse(&mut pipe, CloseCode::Protocol, e.to_string())),
            };
            match message {
                Message::Text(text) => return Ok(Some(Incoming::Text(text.as_str().to_owned()))),
                Message::Pong(_) => return Ok(Some(Incoming::Pong)),
                Message::Binary(_) => {
                    let why = "binary messages are not chat; send text".to_owned();
                    return Err(self.refuse(&mut pipe, CloseCode::Unsupported, why));
                }
                Message::Close(_) => {
                    // Answering the close frame is tungstenite's; it is written now.
                    let _ = self.context.flush(&mut pipe);
                    return Err(Closed::ByClient);
                }
                Message::Ping(_) | Message::Frame(_) => {}
            }
        }
    }

    fn refuse(&mut self, pipe: &mut Pipe<'_>, code: CloseCode, why: String) -> Closed {
        let reason: String = why.chars().take(100).collect();
        let _ = self.context.close(pipe, Some(CloseFrame { code, reason: reason.clone().into() }));
        let _ = self.context.flush(pipe);
        Closed::Refused(reason)
    }

    /// Writes `text` as a text message to `output`.
    pub fn text(&mut self, text: &str, output: &mut BytesMut) {
        self.send(Message::text(text), output);
    }

    /// Writes a ping carrying `token` to `output`.
    pub fn ping(&mut self, token: &str, output: &mut BytesMut) {
        self.send(Message::Ping(token.as_bytes().to_vec().into()), output);
    }

    /// Writes a close frame (normal closure, with `reason`) to `output`.
    pub fn close(&mut self, reason: &str, output: &mut BytesMut) {
        let reason: String = reason.chars().take(100).collect();
        let mut input = BytesMut::new();
        let mut pipe = Pipe { input: &mut input, output };
        let _ = self
            .context
            .close(&mut pipe, Some(CloseFrame { code: CloseCode::Normal, reason: reason.into() }));
        let _ = self.context.flush(&mut pipe);
    }

    fn send(&mut self, message: Message, output: &mut BytesMut) {
        let mut input = BytesMut::new();
        let mut pipe = Pipe { input: &mut input, output };
        // Writing into a buffer cannot block; after a close, nothing more is sent.
        let _ = self.context.write(&mut pipe, message);
        let _ = self.context.flush(&mut pipe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's side, to make and read frames as a browser would.
    fn client() -> WebSocketContext {
        WebSocketContext::new(Role::Client, None)
    }

    fn from_client(client: &mut WebSocketContext, message: Message) -> BytesMut {
        let (mut input, mut output) = (BytesMut::new(), BytesMut::new());
        let mut pipe = Pipe { input: &mut input, output: &mut output };
        client.write(&mut pipe, message).unwrap();
        client.flush(&mut pipe).unwrap();
        output
    }

    fn read_as_client(client: &mut WebSocketContext, bytes: &mut BytesMut) -> Message {
        let mut sink = BytesMut::new();
        client.read(&mut Pipe { input: bytes, output: &mut sink }).unwrap()
    }

    #[test]
    fn text_messages_come_whole_however_the_bytes_arrive() {
        let (mut server, mut browser) = (Frames::new(4096), client());
        let bytes = from_client(&mut browser, Message::text("hello, 世界"));
        let mut out = BytesMut::new();
        let mut input = BytesMut::new();
        for (i, b) in bytes.iter().enumerate() {
            input.put_u8(*b);
            let got = server.next(&mut input, &mut out).unwrap();
            if i + 1 < bytes.len() {
                assert_eq!(got, None);
                assert!(server.partial());
            } else {
                assert_eq!(got, Some(Incoming::Text("hello, 世界".to_owned())));
                assert!(!server.partial());
            }
        }
        server.text("{\"type\":\"notice\"}", &mut out);
        assert_eq!(read_as_client(&mut browser, &mut out), Message::text("{\"type\":\"notice\"}"));
    }

    #[test]
    fn a_message_over_the_cap_is_refused_with_a_close_frame() {
        let (mut server, mut browser) = (Frames::new(100), client());
        let mut input = from_client(&mut browser, Message::text("x".repeat(101)));
        let mut out = BytesMut::new();
        let refused = server.next(&mut input, &mut out).unwrap_err();
        assert_eq!(refused, Closed::Refused("message of 101 bytes; the limit is 100".to_owned()));
        let Message::Close(Some(frame)) = read_as_client(&mut browser, &mut out) else {
            panic!("no close frame")
        };
        assert_eq!(frame.code, CloseCode::Size);
    }

    #[test]
    fn pings_are_answered_and_a_close_is_returned() {
        let (mut server, mut browser) = (Frames::new(100), client());
        let mut input = from_client(&mut browser, Message::Ping(b"7".to_vec().into()));
        let mut out = BytesMut::new();
        assert_eq!(server.next(&mut input, &mut out), Ok(None));
        assert_eq!(read_as_client(&mut browser, &mut out), Message::Pong(b"7".to_vec().into()));
        let mut input = from_client(&mut browser, Message::Close(None));
        assert_eq!(server.next(&mut input, &mut out), Err(Closed::ByClient));
        assert!(matches!(read_as_client(&mut browser, &mut out), Message::Close(_)));
        // A new connection: binary is not chat.
        let (mut server, mut browser) = (Frames::new(100), client());
        let mut input = from_client(&mut browser, Message::binary(vec![1, 2]));
        assert!(matches!(server.next(&mut input, &mut out), Err(Closed::Refused(_))));
    }
}
