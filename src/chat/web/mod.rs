//! The chat in a browser: `chat serve --http PORT` serves one page and,
//! at `/chat`, a WebSocket into the same rooms as every other client.
//!
//! The page (`page.html`, compiled in) is plain HTML, CSS and JavaScript
//! with nothing to fetch from elsewhere, so it works offline; it speaks the
//! chat's line protocol (what the user types, `/` commands included) in
//! text messages, and reads JSON ([`json`]). Everything from the server is
//! put in the page as text, never as markup, and the page's
//! Content-Security-Policy allows no script but its own.
//!
//! Once the upgrade is answered, the connection is an ordinary chat
//! session with a [`Web`] dialect: the same limits (message size, flood,
//! connections per address, pings, slow readers) apply, and a WebSocket
//! message larger than `--max-line` is refused with a close frame.
//!
//! | module | layer | what |
//! |---|---|---|
//! | [`http`] | pure | request heads, routes, the origin check, responses |
//! | [`frames`] | pure | WebSocket frames (tungstenite) over the session's buffers |
//! | [`json`] | pure | chat lines as the page reads them |
//! | this one | servers | the front door of the HTTP port, and the page |

pub mod frames;
pub mod http;
pub mod json;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use self::frames::{Closed, Frames, Incoming};
use self::http::Route;
use super::admission::Ticket;
use super::hub::Backplane;
use super::server::Shared;
use super::session::{self, Dialect};
use crate::chat::protocol::ServerLine;
use crate::shutdown::Shutdown;

/// The default port of the chat's web page: the chat's 55, and HTTP's 80.
pub const DEFAULT_PORT: u16 = 5580;
/// The name its endpoints are listed under (`chat-web tcp 127.0.0.1:5580`).
pub const SERVICE: &str = "chat-web";
/// How long a browser may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The page, with the header that lets only its own script and style run.
struct Page {
    html: &'static str,
    policy: String,
}

fn page() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| {
        let html = include_str!("page.html");
        let hash = |open: &str, close: &str| {
            let inline =
                html.split_once(open).and_then(|(_, rest)| rest.split_once(close)).map_or("", |(s, _)| s);
            data_encoding::BASE64.encode(&Sha256::digest(inline.as_bytes()))
        };
        let policy = format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash("<script>", "</script>"),
            hash("<style>", "</style>")
        );
        Page { html, policy }
    })
}

/// Who may use the chat from a page on another origin (`--http-origin`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebConfig {
    /// Origins allowed besides the page's own (`*`: any).
    pub origins: Vec<String>,
}

/// A browser's side of a session: WebSocket frames, chat lines as JSON.
#[derive(Debug)]
pub struct Web {
    frames: Frames,
    /// Bytes that came with the request, after its head.
    early: BytesMut,
}

impl Web {
    /// A WebSocket whose messages hold at most `max_message` bytes; `early`
    /// came right after the request.
    pub fn new(max_message: usize, early: BytesMut) -> Web {
        Web { frames: Frames::new(max_message), early }
    }

    /// The next message from the client (see [`Frames::next`]).
    ///
    /// # Errors
    /// When the client closed or broke the protocol.
    pub fn next(&mut self, input: &mut BytesMut, output: &mut BytesMut) -> Result<Option<Incoming>, Closed> {
        if !self.early.is_empty() {
            let later = std::mem::take(input);
            *input = std::mem::take(&mut self.early);
            input.extend_from_slice(&later);
        }
        self.frames.next(input, output)
    }

    /// Whether part of a message has come and the rest has not.
    pub fn partial(&self) -> bool {
        self.frames.partial()
    }

    /// Renders chat lines (each ending in `\n`) as frames into `out`: a
    /// JSON text message each, a ping for `PING`. Lines rendered already
    /// (JSON, starting with `{`) go as they are; the goodbye (`bye`) is
    /// followed by the close frame.
    pub fn render(&mut self, raw: &[u8], out: &mut BytesMut) {
        for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            // Chat lines are UTF-8: the server checked them when they came in.
            let line = String::from_utf8_lossy(line);
            if line.starts_with('{') {
                self.frames.text(&line, out);
                if json::is_bye(&line) {
                    self.frames.close("goodbye", out);
                }
                continue;
            }
            if let ServerLine::Ping(token) = ServerLine::parse(&line) {
                self.frames.ping(token, out);
            } else if let Some(event) = json::event(&line) {
                self.frames.text(&event.to_string(), out);
            }
        }
    }

    /// The client's last message, from the chat line that says it.
    pub fn goodbye(&self, line: &[u8]) -> Bytes {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        let text = match ServerLine::parse(text) {
            ServerLine::Notice(text) | ServerLine::Error(text) => text,
            _ => text,
        };
        Bytes::from(json::bye(text) + "\n")
    }
}

/// Serves one connection to the HTTP port: the page, or the chat over a
/// WebSocket (then it is a session like any other), or a refusal.
pub(super) async fn front<B: Backplane>(
    mut stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    shared: Arc<Shared<B>>,
    shutdown: Shutdown,
    config: Arc<WebConfig>,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(1024);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        loop {
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(None);
            }
            match http::parse(&buf) {
                Ok(Some(parsed)) => return Ok(Some(Ok(parsed))),
                Ok(None) => {}
                Err(e) => return Ok(Some(Err(e))),
            }
        }
    });
    let (head, used) = match read.await {
        Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(Err(why)))) => return respond(stream, http::refusal(400, &why)).await,
        Ok(Ok(Some(Ok(parsed)))) => parsed,
    };
    match http::route(&head, &config.origins) {
        Route::Page => {
            let page = page();
            let headers = [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Security-Policy", page.policy.as_str()),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
                ("Cache-Control", "no-cache"),
            ];
            respond(stream, http::response(200, &headers, page.html.as_bytes(), head.head_only())).await
        }
        Route::Refused(status, why) => {
            debug!(%peer, status, "refusing a web request: {why}");
            respond(stream, http::refusal(status, &why)).await
        }
        Route::Chat { key } => {
            stream.write_all(&http::upgrade(&key)).await?;
            let early = buf.split_off(used);
            let web = Web::new(shared.config.max_line, early);
            session::serve(stream, peer, ticket, shared, shutdown, Dialect::Web(Box::new(web))).await
        }
    }
}

async fn respond(mut stream: TcpStream, response: Vec<u8>) -> io::Result<()> {
    stream.write_all(&response).await?;
    stream.shutdown().await
}
