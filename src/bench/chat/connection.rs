//! One connection of a chat load: it connects, joins, reports in, then
//! sends, receives, or (stalled) never reads.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::tally::Tally;
use super::wire::{Role, Stamp, Wire};
use super::{Joined, LoadError, MAX_BATCH, Outcome, READ_BUFFER, Run, TICK};
use crate::client::ClientError;
use crate::net;

/// One connection: connects, joins, reports in, then plays its role.
pub(super) async fn connection(
    role: Role,
    index: usize,
    addr: SocketAddr,
    run: Arc<Run>,
    joined: mpsc::UnboundedSender<Joined>,
) -> Result<Outcome, ClientError> {
    let wire = run.load.wire;
    let connected = async {
        let _turn = run.connecting.acquire().await;
        let mut stream = net::connect_tcp(&[addr], run.load.timeouts.connect).await?;
        stream.write_all(&wire.hello(role, index)).await.map_err(|e| ClientError::io(addr, e))?;
        Ok::<TcpStream, ClientError>(stream)
    };
    let failed = |e: LoadError| {
        let detail = e.to_string();
        let _ = joined.send(Err(e));
        ClientError::Unexpected { addr, detail }
    };
    let stream = connected.await.map_err(|e| failed(e.into()))?;
    if role == Role::Stalled {
        // It never reads, so it cannot wait for its welcome: it speaks at once.
        let mut stream = stream;
        let _ = stream.write_all(wire.after_joining()).await;
        let _ = joined.send(Ok(None));
        return Ok(Outcome::Stalled { dropped: stalled(stream, &run).await });
    }
    let (read, mut write) = stream.into_split();
    let mut receiver = Receiver::new(read, addr, &run, role);
    if !wire.ready_at_once(role) {
        receiver.until_joined().await.map_err(failed)?;
        write.write_all(wire.after_joining()).await.map_err(|e| failed(ClientError::io(addr, e).into()))?;
    }
    let (sender, write) = match role {
        Role::Sender(k) => (Some(tokio::spawn(send(k, addr, write, run.clone()))), None),
        // Kept open: dropping the half would close the connection.
        _ => (None, Some(write)),
    };
    let _ = joined.send(Ok(sender));
    let outcome = receiver.run().await;
    drop(write);
    outcome
}

/// A connection that never reads: once the run is over, whether the server
/// closed it (reading then reaches the end, or a reset, within the reply timeout).
async fn stalled(mut stream: TcpStream, run: &Run) -> bool {
    run.done.cancelled().await;
    let mut sink = vec![0u8; READ_BUFFER];
    let until = Instant::now() + run.load.timeouts.reply;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut sink)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Sends sender `k`'s messages from the start to the end of the run, at its
/// share of the rate, as fast as its window allows, or (a burst) back to
/// back as fast as the socket takes them, and returns the
/// connection's writing half (still open).
async fn send(
    k: usize,
    addr: SocketAddr,
    write: OwnedWriteHalf,
    run: Arc<Run>,
) -> Result<OwnedWriteHalf, ClientError> {
    let load = &run.load;
    let Ok(times) = run.start.subscribe().wait_for(Option::is_some).await.map(|t| *t) else {
        return Ok(write);
    };
    let Some((start, until)) = times else { return Ok(write) };
    let mut out = Outbox { k, addr, write, seq: 0, batch: Vec::new(), payload: String::new() };
    if let Some(burst) = load.burst {
        // Back to back, as fast as the socket takes them.
        while out.seq < burst {
            out.send(&run, (burst - out.seq).min(MAX_BATCH)).await?;
        }
        return Ok(out.write);
    }
    let rate = load.rate.map(|rate| rate / load.senders as f64);
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while Instant::now() < until {
        let count = match rate {
            None => tokio::select! {
                room = run.windows[k].wait_for_room(out.seq) => room.min(MAX_BATCH),
                () = tokio::time::sleep_until(until) => break,
            },
            Some(rate) => {
                // Messages due by now: message n is due n / rate after the start.
                let due = ((Instant::now() - start).as_secs_f64() * rate) as u64 + 1;
                if due <= out.seq {
                    ticks.tick().await;
                    continue;
                }
                (due - out.seq).min(MAX_BATCH)
            }
        };
        out.send(&run, count).await?;
    }
    Ok(out.write)
}

/// Sender `k`'s writing half and the numbering of its messages.
struct Outbox {
    k: usize,
    /// The server it writes to.
    addr: SocketAddr,
    write: OwnedWriteHalf,
    /// The next message's number.
    seq: u64,
    batch: Vec<u8>,
    payload: String,
}

impl Outbox {
    /// Writes the next `count` messages, stamped with the time, in one go.
    async fn send(&mut self, run: &Run, count: u64) -> Result<(), ClientError> {
        let load = &run.load;
        self.batch.clear();
        let nanos = u64::try_from((Instant::now() - run.base).as_nanos()).unwrap_or(u64::MAX);
        for _ in 0..count {
            Stamp { sender: self.k, seq: self.seq, nanos }.payload(load.size, &mut self.payload);
            load.wire.message(self.payload.as_bytes(), &mut self.batch);
            self.seq += 1;
        }
        let (addr, patience) = (self.addr, load.timeouts.reply);
        tokio::time::timeout(patience, self.write.write_all(&self.batch))
            .await
            .map_err(|_| ClientError::Timeout { addr, after: patience })?
            .map_err(|e| ClientError::io(addr, e))?;
        run.sent[self.k].store(self.seq, Ordering::Release);
        Ok(())
    }
}

/// The reading side of a connection: lines in, tallied.
struct Receiver<'a> {
    read: OwnedReadHalf,
    /// The server it reads from.
    addr: SocketAddr,
    run: &'a Run,
    role: Role,
    buf: Box<[u8]>,
    /// The bytes of `buf` read and not yet taken as lines.
    unread: std::ops::Range<usize>,
    joined: bool,
    tally: Tally,
    /// The last line before the connection joined (why it was refused, say).
    last_line: String,
}

impl<'a> Receiver<'a> {
    fn new(read: OwnedReadHalf, addr: SocketAddr, run: &'a Run, role: Role) -> Receiver<'a> {
        Receiver {
            read,
            addr,
            run,
            role,
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            unread: 0..0,
            joined: false,
            tally: Tally::new(run.load.senders),
            last_line: String::new(),
        }
    }

    /// Reads until the server says this connection joined, for at most the
    /// reply timeout (a server of another kind may never say it).
    async fn until_joined(&mut self) -> Result<(), LoadError> {
        let addr = self.addr;
        let patience = self.run.load.timeouts.reply;
        let deadline = Instant::now() + patience;
        while !self.joined {
            let Ok(filled) = tokio::time::timeout_at(deadline, self.fill()).await else {
                let said = match self.last_line.as_str() {
                    "" => "nothing".to_owned(),
                    line => format!("last {line:?}"),
                };
                let wire = self.run.load.wire;
                let hint = match wire {
                    Wire::Chat => "; is it a socketeer chat server? (for redis-server, add --redis)",
                    Wire::Redis | Wire::Irc => "",
                };
                return Err(ClientError::Unexpected {
                    addr,
                    detail: format!(
                        "waited {} for {} and got {said}{hint}",
                        humantime::format_duration(patience),
                        wire.joined_line()
                    ),
                }
                .into());
            };
            if !filled.map_err(|e| ClientError::io(addr, e))? {
                if self.run.load.wire.is_limit(self.last_line.as_bytes()) {
                    return Err(LoadError::Limited { addr, notice: std::mem::take(&mut self.last_line) });
                }
                let said = match self.last_line.as_str() {
                    "" => String::new(),
                    line => format!(": {line}"),
                };
                return Err(ClientError::Unexpected {
                    addr,
                    detail: format!("closed the connection before it joined{said}"),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Reads until everything sent has arrived (after the senders stopped),
    /// the drain time is over, or the server closes the connection.
    async fn run(mut self) -> Result<Outcome, ClientError> {
        let wire = self.run.load.wire;
        let except = match (wire, self.role) {
            // Neither the chat nor IRC sends senders their own messages.
            (Wire::Chat | Wire::Irc, Role::Sender(k)) => Some(k),
            _ => None,
        };
        let expects = !(wire == Wire::Redis && matches!(self.role, Role::Sender(_)));
        let mut draining = pin!(self.run.draining.cancelled());
        let mut closed_early = false;
        loop {
            let read = tokio::select! {
                read = self.fill() => read,
                () = &mut draining => break,
            };
            if !read.unwrap_or(false) {
                closed_early = true;
                break;
            }
        }
        let until = self.run.drain_until.get().copied().unwrap_or_else(Instant::now);
        let sent = self.run.sent();
        while !closed_early && expects && !self.tally.complete(&sent, except) {
            match tokio::time::timeout_at(until, self.fill()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false) | Err(_)) => closed_early = true,
                Err(_) => break,
            }
        }
        Ok(Outcome::Receiver {
            tally: Box::new(self.tally),
            server: self.addr,
            except,
            expects,
            closed_early,
        })
    }

    /// Reads once and takes every whole line; false at the end of the stream.
    /// Cancel-safe: bytes read are kept in `buf` until taken.
    async fn fill(&mut self) -> std::io::Result<bool> {
        if self.unread.end == self.buf.len() {
            self.buf.copy_within(self.unread.clone(), 0);
            self.unread = 0..self.unread.len();
        }
        let n = self.read.read(&mut self.buf[self.unread.end..]).await?;
        if n == 0 {
            return Ok(false);
        }
        self.unread.end += n;
        self.take_lines();
        Ok(true)
    }

    fn take_lines(&mut self) {
        let Receiver { run, buf, unread, joined, tally, last_line, .. } = self;
        let wire = run.load.wire;
        let now = Instant::now();
        let since_base = now - run.base;
        let before = tally.deliveries;
        while let Some(end) = memchr::memchr(b'\n', &buf[unread.clone()]) {
            let raw = &buf[unread.start..unread.start + end];
            unread.start += end + 1;
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if let Some(payload) = wire.delivery(line) {
                match Stamp::parse(payload) {
                    Some(stamp) => {
                        tally.delivered(stamp, now, since_base);
                        if let Some(window) = run.windows.get(stamp.sender) {
                            window.delivered(stamp.seq);
                        }
                    }
                    None => tally.garbled += 1,
                }
            } else if !*joined {
                *joined = wire.joined(line);
                *last_line = String::from_utf8_lossy(line).into_owned();
            } else if wire.is_error(line) {
                tally.error(line);
                tally.limited += u64::from(wire.is_limit(line));
            }
        }
        if unread.start == unread.end {
            *unread = 0..0;
        }
        run.delivered.fetch_add(tally.deliveries - before, Ordering::Relaxed);
    }
}
