//! How a session ends: the goodbye its ending calls for, what is still due
//! written for a bounded time, and the connection closed.

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use socket2::SockRef;
use tokio::io::AsyncWriteExt;

use super::{Connection, Ending};
use crate::chat::ChatConfig;
use crate::chat::delivery::Mark;
use crate::chat::protocol;

/// How long a leaving client's last lines may take to be written.
const FLUSH_LIMIT: Duration = Duration::from_secs(1);
/// How long a client dropped for reading too slowly has to read what its
/// kernel buffers still hold and then the reason, before its connection is reset.
const REASON_LIMIT: Duration = Duration::from_secs(5);
/// How long to read and drop a leaving client's input after saying goodbye,
/// so that closing the socket does not reset it and lose the goodbye.
const LINGER: Duration = Duration::from_millis(300);

impl Connection {
    /// Says goodbye as the ending asks, writes what is still due (for a
    /// bounded time), and closes. A client dropped for reading too slowly
    /// gets only the reason, not its backlog, and its connection is reset
    /// at the end so that nothing waits for it in the kernel.
    pub(super) async fn finish(mut self, ending: Ending, config: &ChatConfig) -> io::Result<()> {
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        let goodbye = match &ending {
            Ending::Quit(_) => protocol::notice("bye"),
            Ending::Shutdown => protocol::notice("server shutting down"),
            Ending::Silent if self.registered => protocol::error(format_args!(
                "registration not completed within {} of connecting; closing",
                duration(config.register_timeout)
            )),
            Ending::Silent => protocol::error(format_args!(
                "no whole line received within {} of connecting; closing",
                duration(config.register_timeout)
            )),
            Ending::SlowLine => protocol::error(format_args!(
                "a line took more than {} to arrive whole; closing",
                duration(config.line_timeout)
            )),
            Ending::TooSlow(slow) => protocol::error(format_args!("you read too slowly: {slow}; closing")),
            Ending::Closed => Bytes::new(),
            Ending::Failed(e) => return Err(io::Error::new(e.kind(), e.to_string())),
        };
        let goodbye = match goodbye.is_empty() {
            true => goodbye,
            false => self.dialect.goodbye(goodbye),
        };
        let too_slow = matches!(ending, Ending::TooSlow(_));
        if too_slow {
            // Its backlog is dropped: only the reason goes, after what the kernel already holds.
            self.out = BytesMut::new();
            self.dialect.render(&goodbye, &mut self.out);
            self.mailbox.stop_at(Mark::LAST);
        } else if !goodbye.is_empty() {
            self.mailbox.outbox().push(Mark::LAST, &goodbye);
        }
        let limit = if too_slow { REASON_LIMIT } else { FLUSH_LIMIT };
        let flushed = tokio::time::timeout(limit, async {
            loop {
                let done = match too_slow {
                    true => self.write_out(),
                    false => self.flush().is_err() || (self.out.is_empty() && !self.mailbox.pending()),
                };
                if done || self.stream.writable().await.is_err() {
                    return;
                }
            }
        });
        flushed.await.ok();
        self.stream.shutdown().await?;
        let drained = tokio::time::timeout(LINGER, async {
            loop {
                if self.stream.readable().await.is_err() {
                    return;
                }
                self.input.clear();
                self.input.reserve(16 * 1024);
                match self.stream.try_read_buf(&mut self.input) {
                    Ok(0) => return,
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return,
                    _ => {}
                }
            }
        });
        drained.await.ok();
        if too_slow {
            // Close with a reset: whatever is still unsent is dropped now, not kept for minutes.
            let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
        Ok(())
    }

    /// Writes `out` directly; true once it is all written or cannot be.
    fn write_out(&mut self) -> bool {
        while !self.out.is_empty() {
            match self.stream.try_write(&self.out) {
                Ok(n) => self.out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
        true
    }
}
