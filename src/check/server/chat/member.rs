//! A grader's chat client: a connection whose every received byte is kept
//! (read by a task of its own, so the server never waits on the grader),
//! and a room of them that waits until the server has taken everyone in.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Greeting;
use crate::check::Options;
use crate::check::grade::chat::{Token, tokens_since};
use crate::check::server::Ctx;
use crate::check::wire::{self, wait_until};

/// The client number of the room's synchronising lines (no real client has it).
const SYNC_CLIENT: u8 = 99;

/// How long the first client waits for a greeting before deciding the server sends none.
const GREETING_WAIT: Duration = Duration::from_secs(1);

/// What a client has received, shared with its reading task.
#[derive(Debug, Default)]
pub struct Inbox {
    received: Mutex<Received>,
    arrived: Notify,
    ended: AtomicBool,
    paused: AtomicBool,
    resume: Notify,
}

/// The bytes received, and the tokens found in them so far (cases look
/// for tokens every few milliseconds in inboxes of megabytes).
#[derive(Debug, Default)]
struct Received {
    bytes: Vec<u8>,
    tokens: Vec<Token>,
    scanned: usize,
}

impl Received {
    fn catch_up(&mut self) {
        let (more, scanned) = tokens_since(&self.bytes, self.scanned);
        self.tokens.extend(more);
        self.scanned = scanned;
    }
}

impl Inbox {
    /// Everything received so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.received.lock().map(|r| r.bytes.clone()).unwrap_or_default()
    }

    /// How many bytes have arrived.
    pub fn len(&self) -> usize {
        self.received.lock().map(|r| r.bytes.len()).unwrap_or_default()
    }

    /// The tokens received so far.
    pub fn tokens(&self) -> Vec<Token> {
        self.received.lock().map(|r| r.tokens.clone()).unwrap_or_default()
    }

    /// Whether `token` has arrived.
    pub fn has(&self, token: &Token) -> bool {
        self.received.lock().is_ok_and(|r| r.tokens.contains(token))
    }

    /// Whether the server closed or reset the connection.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

/// One grader client in the chat.
#[derive(Debug)]
pub struct Member {
    /// Its number, from 1.
    pub id: u8,
    /// What it received.
    pub inbox: Arc<Inbox>,
    writer: Option<OwnedWriteHalf>,
    reader: JoinHandle<()>,
    next_seq: u16,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The local address for client `id`: on IPv4 loopback a different address
/// for each (127.0.0.2, 127.0.0.3, ...), so that a server's limit of
/// connections per address (socketeer's chat allows 16) sees many users.
fn source_for(id: u8, server: SocketAddr) -> Option<IpAddr> {
    match server.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => {
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, id.saturating_add(1))))
        }
        _ => None,
    }
}

/// How grader clients join a server: where, with what settings, and how
/// the server greets (learned by the first client of the check).
#[derive(Clone, Copy, Debug)]
pub struct Door<'a> {
    addr: SocketAddr,
    options: &'a Options,
    greeting: Greeting,
}

impl<'a> Door<'a> {
    /// Lets client 1 in, learning how the server greets when no earlier
    /// case did.
    pub async fn open(ctx: &mut Ctx<'a>, small_buffer: bool) -> Result<(Door<'a>, Member), String> {
        let (addr, options) = (ctx.addr, ctx.options);
        let stream = connect(addr, options, 1, small_buffer).await?;
        let mut first = Member::start(1, stream);
        let greeting = match ctx.memo.chat {
            Some(greeting) => greeting,
            None => {
                let greeting = first.learn_greeting().await;
                ctx.memo.chat = Some(greeting);
                greeting
            }
        };
        let door = Door { addr, options, greeting };
        door.introduce(&mut first).await?;
        Ok((door, first))
    }

    /// Lets client `id` in.
    pub async fn enter(&self, id: u8, small_buffer: bool) -> Result<Member, String> {
        let stream = connect(self.addr, self.options, id, small_buffer).await?;
        let mut member = Member::start(id, stream);
        self.introduce(&mut member).await?;
        Ok(member)
    }

    /// Reads a new client's greeting (so that it is not taken for a reply)
    /// and answers a name prompt, or sends `--login`.
    async fn introduce(&self, member: &mut Member) -> Result<(), String> {
        if self.greeting.greets {
            member.wait_bytes(1, self.options.reply_timeout).await;
        }
        let nick = format!("grader{}", member.id);
        match (&self.options.login, self.greeting.asks_name) {
            (Some(login), _) => member.say(&login.replace("{nick}", &nick)).await,
            (None, true) => member.say(&nick).await,
            (None, false) => Ok(()),
        }
    }
}

/// Connects client `id`; one that will stop reading gets a small receive
/// buffer, so that it fills quickly.
async fn connect(
    addr: SocketAddr,
    options: &Options,
    id: u8,
    small_buffer: bool,
) -> Result<TcpStream, String> {
    let from = source_for(id, addr);
    if !small_buffer {
        return wire::connect_from(from, addr, options.startup_timeout)
            .await
            .map_err(|e| format!("client {id}: {e}"));
    }
    let describe = |e: std::io::Error| format!("client {id} could not connect: {}", crate::net::describe(&e));
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(describe)?;
    // The kernel doubles it and keeps a minimum; it is small either way.
    let _ = socket.set_recv_buffer_size(4096);
    if let Some(from) = from {
        socket.bind(SocketAddr::new(from, 0)).map_err(describe)?;
    }
    let stream = tokio::time::timeout(options.startup_timeout, socket.connect(addr))
        .await
        .map_err(|_| {
            format!(
                "client {id} could not connect within {}",
                humantime::format_duration(options.startup_timeout)
            )
        })?
        .map_err(describe)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

impl Member {
    fn start(id: u8, stream: TcpStream) -> Member {
        let (mut read_half, writer) = stream.into_split();
        let inbox = Arc::new(Inbox::default());
        let shared = inbox.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                while shared.paused.load(Ordering::Relaxed) {
                    shared.resume.notified().await;
                }
                match read_half.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut received) = shared.received.lock() {
                            received.bytes.extend_from_slice(&buf[..n]);
                            received.catch_up();
                        }
                        shared.arrived.notify_waiters();
                    }
                }
            }
            shared.ended.store(true, Ordering::Relaxed);
            shared.arrived.notify_waiters();
        });
        Member { id, inbox, writer: Some(writer), reader, next_seq: 1 }
    }

    async fn learn_greeting(&mut self) -> Greeting {
        if !self.wait_bytes(1, GREETING_WAIT).await {
            return Greeting { greets: false, asks_name: false };
        }
        // Let the rest of a greeting that comes in pieces arrive.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = String::from_utf8_lossy(&self.inbox.bytes()).to_lowercase();
        let prompt = text.trim_end().ends_with([':', '?', '>']);
        Greeting { greets: true, asks_name: prompt && (text.contains("name") || text.contains("nick")) }
    }

    /// Waits until at least `n` bytes have arrived, for at most `limit`.
    async fn wait_bytes(&self, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let arrived = self.inbox.arrived.notified();
            if self.inbox.len() >= n {
                return true;
            }
            if self.inbox.ended() || tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.inbox.len() >= n;
            }
        }
    }

    /// The token for this client's next message.
    pub fn next_token(&mut self) -> Token {
        let token = Token { client: self.id, seq: self.next_seq };
        self.next_seq += 1;
        token
    }

    /// Sends `line` and a newline, in one write.
    pub async fn say(&mut self, line: &str) -> Result<(), String> {
        self.send(format!("{line}\n").as_bytes()).await
    }

    /// Sends raw bytes, in one write.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let id = self.id;
        let writer = self.writer.as_mut().ok_or_else(|| format!("client {id} has left"))?;
        writer
            .write_all(bytes)
            .await
            .map_err(|e| format!("client {id} could not send: {}", crate::net::describe(&e)))
    }

    /// Sends a numbered message (`text` after its token) and returns the token.
    pub async fn say_numbered(&mut self, text: &str) -> Result<Token, String> {
        let token = self.next_token();
        self.say(&format!("{token} {text}")).await?;
        Ok(token)
    }

    /// Stops reading: what the server sends piles up in the kernel's buffers.
    pub fn stop_reading(&self) {
        self.inbox.paused.store(true, Ordering::Relaxed);
    }

    /// Leaves with a normal close (FIN).
    pub fn leave(mut self) {
        self.writer.take();
        self.reader.abort();
    }

    /// Leaves with a reset (RST), as a crashed client does: no FIN first.
    pub fn reset(mut self) {
        if let Some(writer) = self.writer.take() {
            // Linger zero makes the close send RST; forget() keeps the write
            // half from sending a FIN as it goes.
            let _ = socket2::SockRef::from(writer.as_ref()).set_linger(Some(Duration::ZERO));
            writer.forget();
        }
        self.reader.abort();
    }
}

/// Waits until the server relays client `speaker`'s lines to every one of
/// `listeners`: the speaker sends numbered synchronising lines until one
/// reaches them all. A server registers a client some time after accepting
/// it; lines sent before that are not owed to it.
///
/// # Errors
/// The listeners still missing after several tries, in words.
pub async fn settle(speaker: &mut Member, listeners: &[&Member], patience: Duration) -> Result<(), String> {
    const TRIES: u16 = 6;
    for attempt in 1..=TRIES {
        let token = Token { client: SYNC_CLIENT, seq: attempt };
        speaker.say(&format!("{token} (grader: is everyone here?)")).await?;
        let reached = || listeners.iter().all(|m| m.inbox.has(&token));
        if wait_until(patience / 2, reached).await {
            return Ok(());
        }
    }
    let deaf: Vec<String> = listeners
        .iter()
        .filter(|m| !m.inbox.tokens().iter().any(|t| t.client == SYNC_CLIENT))
        .map(|m| m.id.to_string())
        .collect();
    Err(format!(
        "none of {} lines from client {} reached client{} {} within {}",
        TRIES,
        speaker.id,
        if deaf.len() == 1 { "" } else { "s" },
        deaf.join(", "),
        humantime::format_duration(patience / 2 * u32::from(TRIES))
    ))
}
