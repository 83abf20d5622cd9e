//! What a connection speaks, and the few places where that matters to its
//! session: how its input becomes requests, how chat lines are rendered
//! for it, how it is refused and how it is told goodbye. Everything else
//! (limits, timers, delivery) is the same for every client.

use bytes::{Bytes, BytesMut};

use crate::chat::hub::HubError;
use crate::chat::irc::Irc;
use crate::chat::protocol;
use crate::chat::web::Web;
use crate::text::sanitize;

/// The protocol of one connection.
#[derive(Debug)]
pub(in crate::chat) enum Dialect {
    /// The chat's own line protocol (`nc`, `chat join`).
    Lines,
    /// IRC, recognised by the connection's first line.
    Irc(Box<Irc>),
    /// A browser, over the WebSocket of the web page's port.
    Web(Box<Web>),
}

impl Dialect {
    /// Whether chat lines are rendered into another form for this client.
    pub fn translates(&self) -> bool {
        !matches!(self, Dialect::Lines)
    }

    /// Renders chat lines (each ending in `\n`) into what the client is sent.
    pub fn render(&mut self, raw: &[u8], out: &mut BytesMut) {
        match self {
            Dialect::Lines => out.extend_from_slice(raw),
            Dialect::Irc(irc) => irc.view.render(raw, out),
            Dialect::Web(web) => web.render(raw, out),
        }
    }

    /// Whether the client has yet to finish registering (IRC): its room
    /// does not hear of it before.
    pub fn registering(&self) -> bool {
        match self {
            Dialect::Lines | Dialect::Web(_) => false,
            Dialect::Irc(irc) => irc.registering(),
        }
    }

    /// A request refused by the hub, as the client is told.
    pub fn refusal(&self, e: &HubError) -> Bytes {
        match self {
            Dialect::Lines | Dialect::Web(_) => protocol::error(sanitize(&e.to_string())),
            Dialect::Irc(irc) => irc.refusal(e),
        }
    }

    /// The client's last line from the server, from the chat line that says it.
    pub fn goodbye(&self, line: Bytes) -> Bytes {
        match self {
            Dialect::Lines => line,
            Dialect::Web(web) => web.goodbye(&line),
            Dialect::Irc(irc) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                irc.goodbye(text.strip_prefix("*** ").or_else(|| text.strip_prefix("! ")).unwrap_or(text))
            }
        }
    }
}
