//! A session's input: bytes into lines, and each line to the hub.

use std::io;

use bytes::BytesMut;
use tokio::time::Instant;
use tokio_util::codec::{AnyDelimiterCodecError, Decoder};
use tracing::debug;

use super::{Connection, Dialect, Ending};
use crate::chat::hub::{Backplane, ClientId};
use crate::chat::irc::{Irc, Step};
use crate::chat::protocol::{self, HELP, Request};
use crate::chat::server::Shared;
use crate::chat::web::frames::{Closed, Incoming};
use crate::text::sanitize;

/// How much a read asks for at once.
const READ_CHUNK: usize = 16 * 1024;

impl Connection {
    /// Reads what has arrived and handles every whole line in it.
    pub(super) fn receive<B: Backplane>(&mut self, shared: &Shared<B>, id: ClientId) -> Result<(), Ending> {
        self.input.reserve(READ_CHUNK);
        match self.stream.try_read_buf(&mut self.input) {
            Ok(0) => self.eof = true,
            Ok(_) => {
                // Bytes that are not yet a whole line start the line's clock.
                self.line_began.get_or_insert_with(Instant::now);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A new socket is reported readable once before any data: hold no buffer for it.
                if self.input.is_empty() {
                    self.input = BytesMut::new();
                }
                return Ok(());
            }
            Err(e) => return Err(Ending::Failed(e)),
        }
        self.decode(shared, id)
    }

    /// Handles the whole lines read, up to a `/nick` that has to wait for
    /// the other servers.
    pub(super) fn decode<B: Backplane>(&mut self, shared: &Shared<B>, id: ClientId) -> Result<(), Ending> {
        match self.dialect {
            Dialect::Web(_) => self.decode_messages(shared, id)?,
            _ => self.decode_lines(shared, id)?,
        }
        if self.eof && self.nick.is_none() {
            return Err(Ending::Closed);
        }
        if self.input.is_empty() {
            // A quiet client holds no buffer.
            self.input = BytesMut::new();
        }
        self.welcome_when_registered(shared, id);
        // Answers to what was just read go out now, not after another wake-up.
        match self.out.is_empty() {
            true => self.flush(),
            false => Ok(()),
        }
    }

    /// Handles the whole lines read (see [`decode`](Self::decode)).
    fn decode_lines<B: Backplane>(&mut self, shared: &Shared<B>, id: ClientId) -> Result<(), Ending> {
        while self.nick.is_none() {
            let decoded = match self.eof {
                false => self.codec.decode(&mut self.input),
                true => self.codec.decode_eof(&mut self.input),
            };
            let line = match decoded {
                Ok(Some(line)) => Some(line),
                Ok(None) => break,
                Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => None,
                Err(AnyDelimiterCodecError::Io(e)) => return Err(Ending::Failed(e)),
            };
            // A line ended (or an over-long one was skipped to its end).
            let now = Instant::now();
            self.heard = now;
            self.line_began = (!self.input.is_empty()).then_some(now);
            match line {
                Some(line) => self.line(&line, shared, id)?,
                None => self.too_long(shared.config.max_line),
            }
        }
        Ok(())
    }

    /// Handles the whole WebSocket messages read, each a line, up to a
    /// `/nick` that has to wait; answers to pings and the close frame of a
    /// refusal go straight into the output.
    fn decode_messages<B: Backplane>(&mut self, shared: &Shared<B>, id: ClientId) -> Result<(), Ending> {
        while self.nick.is_none() {
            let Dialect::Web(web) = &mut self.dialect else { return Ok(()) };
            let message = match web.next(&mut self.input, &mut self.out) {
                Ok(Some(message)) => message,
                Ok(None) => {
                    // A message begun and not yet whole is held to the line timeout.
                    let partial = web.partial();
                    self.line_began = partial.then(|| self.line_began.unwrap_or_else(Instant::now));
                    return Ok(());
                }
                Err(Closed::ByClient) => return Err(Ending::Closed),
                Err(Closed::Refused(why)) => {
                    debug!(nick = shared.hub.lock().nick(id), "closing a WebSocket: {why}");
                    return Err(Ending::Closed);
                }
            };
            self.heard = Instant::now();
            self.line_began = None;
            match message {
                Incoming::Text(text) => match text.trim_end_matches(['\r', '\n']) {
                    line if line.contains('\n') => {
                        self.reply(protocol::error("one line per message; nothing sent"))
                    }
                    line => self.line(line.as_bytes(), shared, id)?,
                },
                // The browser's answer to a ping is what a line client's `PONG` is.
                Incoming::Pong => self.line(b"PONG", shared, id)?,
            }
        }
        Ok(())
    }

    fn too_long(&self, max: usize) {
        self.reply(protocol::error(format_args!(
            "line too long (the limit is {max} bytes); skipped to its end"
        )));
    }

    /// Handles one line from the client.
    fn line<B: Backplane>(&mut self, raw: &[u8], shared: &Shared<B>, id: ClientId) -> Result<(), Ending> {
        if raw.strip_suffix(b"\r").unwrap_or(raw).len() > shared.config.max_line {
            self.too_long(shared.config.max_line);
            return Ok(());
        }
        let first = !self.registered;
        if first {
            self.registered = true;
            self.ticket.spoke();
        }
        if let Some(bucket) = &mut self.flood {
            if !bucket.take(Instant::now().into_std()) {
                self.refused += 1;
                if let (1, Some(limit)) = (self.refused, shared.config.rate_limit) {
                    self.reply(protocol::error(limit.refusal()));
                }
                return Ok(());
            }
            self.refused = 0;
        }
        let text = match protocol::decode(raw) {
            Ok(text) => text,
            Err(e) => {
                self.reply(protocol::error(e));
                return Ok(());
            }
        };
        let lines = matches!(self.dialect, Dialect::Lines);
        if first && lines && protocol::identify(text) == protocol::Dialect::Irc {
            self.dialect = Dialect::Irc(Box::new(Irc::new()));
        }
        let home;
        let request = match &mut self.dialect {
            Dialect::Irc(irc) => {
                let step = irc.read(text, &shared.hub.lock(), id);
                match step {
                    Step::Request(request) => request,
                    Step::Home => {
                        home = shared.hub.lock().default_room().to_owned();
                        Request::Join(&home)
                    }
                    Step::Reply(lines) => {
                        lines.into_iter().for_each(|line| self.reply(line));
                        return Ok(());
                    }
                }
            }
            Dialect::Lines | Dialect::Web(_) => match protocol::parse(text) {
                Ok(Some(request)) => request,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.reply(protocol::error(sanitize(&e.to_string())));
                    return Ok(());
                }
            },
        };
        let mut hub = shared.hub.lock();
        // The room hears a newcomer joined before it hears from it; a first
        // /nick or /join names the client or the room the join is told in;
        // a first /quit is never announced.
        let announce_after = matches!(request, Request::Nick(_) | Request::Join(_));
        if !matches!(request, Request::Quit(_)) && !announce_after {
            self.announce(&mut hub, id);
        }
        let refused = match request {
            Request::Say(text) => {
                hub.say(id, &sanitize(text), chrono::Utc::now());
                Ok(())
            }
            Request::Act(text) => {
                hub.act(id, &sanitize(text), chrono::Utc::now());
                Ok(())
            }
            Request::Nick(name) => match hub.claim(id, name) {
                Ok(None) => hub.rename(id, name),
                Ok(Some(claim)) => {
                    // Announced once the claim is answered, under whichever name it leaves.
                    self.nick = Some((name.to_owned(), claim));
                    return Ok(());
                }
                Err(e) => Err(e),
            },
            Request::Who => {
                hub.who(id);
                Ok(())
            }
            Request::List => {
                hub.list(id);
                Ok(())
            }
            Request::Tell { to, text } => hub.tell(id, to, &sanitize(text)),
            Request::Join(room) => match hub.join(id, room) {
                Ok(seat) => {
                    self.announce(&mut hub, id);
                    if self.dialect.translates() {
                        // The names that complete an IRC client's JOIN.
                        hub.who(id);
                    }
                    // Publishing takes the hub's lock: this is exactly where the client left.
                    let left = self.mailbox.mark();
                    drop(hub);
                    self.mailbox.stop_at(left);
                    let mut raw = BytesMut::new();
                    let moved = self.mailbox.move_to(seat.log, seat.cursor, &mut raw);
                    self.dialect.render(&raw, &mut self.out);
                    return moved.map_err(|overflow| Ending::TooSlow(overflow.into()));
                }
                Err(e) => Err(e),
            },
            Request::Help => {
                drop(hub);
                HELP.iter().for_each(|line| self.reply(protocol::notice(line)));
                return Ok(());
            }
            Request::Pong => Ok(()),
            Request::Quit(reason) => return Err(Ending::Quit(reason.map(|r| sanitize(r).into_owned()))),
        };
        if announce_after {
            self.announce(&mut hub, id);
        }
        drop(hub);
        if let Err(e) = refused {
            self.refuse(&e);
        }
        if let Dialect::Irc(irc) = &mut self.dialect {
            irc.take_after().into_iter().for_each(|line| self.reply(line));
        }
        Ok(())
    }

    /// Welcomes an IRC client once its registration is complete: the
    /// opening numerics, its channel and the names in it; and its room
    /// hears that it joined.
    fn welcome_when_registered<B: Backplane>(&mut self, shared: &Shared<B>, id: ClientId) {
        let Dialect::Irc(irc) = &mut self.dialect else { return };
        let mut hub = shared.hub.lock();
        if !irc.ready(&hub, id) {
            return;
        }
        let lines = irc.welcome(&hub, id);
        lines.into_iter().for_each(|line| self.reply(line));
        hub.who(id);
        self.announce(&mut hub, id);
    }
}
