//! The writer: the one task that writes to Redis. It sends what the hub
//! queued, in order and in batches (one round trip each); renews this node's
//! leases; notices nodes whose leases ran out; and after every (re)connect
//! first tells Redis again everything about this node, since Redis may have
//! restarted without its data.
//!
//! Nothing is dropped until Redis has acknowledged it. A batch whose reply
//! did not come is sent again on the next connection: it may have been
//! applied, and the readers skip what they have seen. A reply that says
//! Redis cannot take it now (`LOADING` while a restarted Redis reads its
//! data back, `BUSY`, `TRYAGAIN`, `MASTERDOWN`, `OOM`...) is treated the same:
//! the connection is dropped, and the batch sent again after a backoff.
//! Acknowledged lines are kept a few seconds more ([`retain`](super::retain)),
//! in case Redis dies and comes back without them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Pipeline, RedisResult, Value};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use super::entry::{self, Body};
use super::link::{Link, transient};
use super::retain::Retained;
use super::{Node, Outbound, RedisBackplane, report_dropped};
use crate::chat::hub::ClientId;
use crate::chat::protocol;
use crate::chat::server::Shared;
use crate::shutdown::Shutdown;

/// How long a reply may take before the connection counts as lost.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most items sent in one round trip.
const BATCH: usize = 512;
/// After the shutdown signal, how long the departures of local clients are
/// still forwarded before the node says goodbye.
const FAREWELL: Duration = Duration::from_millis(300);

/// The first pause after Redis could not take a batch; it doubles up to [`MOST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between tries.
const MOST_PAUSE: Duration = Duration::from_secs(1);
/// What to do with the reply to one command of a batch.
enum Reply {
    Ignore,
    /// The id of the entry added for the item at this index of the batch.
    Added(usize),
    /// A lease on client `ClientId`'s nickname (folded): 0 means another holds it.
    Lease(ClientId, String),
    /// Whether a `/nick` got its nickname: the claim at this index of the batch.
    Claim(usize),
}

/// The writer's state across connections.
struct Writer {
    node: Arc<Node>,
    shared: Arc<Shared<RedisBackplane>>,
    link: Link,
    /// The batch sent and not yet answered: sent again after a reconnect.
    in_flight: Vec<Outbound>,
    /// Lines Redis acknowledged lately, in case it loses them.
    retained: Retained,
    /// The Redis process last talked to (its `run_id`): another one may
    /// have lost what the last one acknowledged.
    redis_run: Option<String>,
    /// How long to wait before the next try, after a failure.
    pause: Duration,
}

/// Runs the writer until shutdown.
pub(super) async fn run(node: Arc<Node>, shared: Arc<Shared<RedisBackplane>>, shutdown: Shutdown) {
    let link = Link::new("writer", true, RESPONSE_TIMEOUT);
    let mut writer = Writer {
        node,
        shared,
        link,
        in_flight: Vec::new(),
        retained: Retained::default(),
        redis_run: None,
        pause: FIRST_PAUSE,
    };
    loop {
        let Some(mut connection) = writer.link.connect(&writer.node, &shutdown).await else { return };
        match writer.serve(&mut connection, &shutdown).await {
            Ok(()) => {
                let farewell = writer.farewell(&mut connection);
                if let Ok(Err(e)) = tokio::time::timeout(RESPONSE_TIMEOUT * 2, farewell).await {
                    warn!("leaving the chat cluster: {e}");
                }
                return;
            }
            Err(e) => {
                writer.node.up.store(false, Ordering::Release);
                writer.link.lost(&writer.node, &e);
                tokio::select! {
                    () = tokio::time::sleep(writer.pause) => {}
                    () = shutdown.triggered() => return,
                }
                writer.pause = (writer.pause * 2).min(MOST_PAUSE);
            }
        }
    }
}

impl Writer {
    /// Sends and renews until the connection fails (an error) or the server
    /// shuts down (`Ok`).
    async fn serve(
        &mut self,
        connection: &mut MultiplexedConnection,
        shutdown: &Shutdown,
    ) -> RedisResult<()> {
        self.recover(connection).await?;
        self.reassert(connection).await?;
        self.node.up.store(true, Ordering::Release);
        self.pause = FIRST_PAUSE;
        let lease = self.node.config.lease;
        let connected = Instant::now();
        let mut ticks = tokio::time::interval(lease / 3);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.flush(connection).await?;
            tokio::select! {
                biased;
                () = shutdown.triggered() => return Ok(()),
                () = self.node.ready.notified() => {}
                // Others' leases are judged only once ours have had time to be renewed
                // after an outage: theirs were not renewed while Redis was away either.
                _ = ticks.tick() => self.keep(connection, connected.elapsed() > lease).await?,
            }
        }
    }

    /// Sends everything queued, a batch per round trip.
    async fn flush(&mut self, connection: &mut MultiplexedConnection) -> RedisResult<()> {
        loop {
            if self.node.backlog.lock().stale {
                // Presence changes were dropped: tell the others all of it again.
                self.reassert(connection).await?;
            }
            if self.in_flight.is_empty() {
                let mut backlog = self.node.backlog.lock();
                let n = backlog.items.len().min(BATCH);
                let batch: Vec<Outbound> = backlog.items.drain(..n).collect();
                backlog.bytes -= batch.iter().map(Outbound::cost).sum::<usize>();
                self.in_flight = batch;
            }
            if self.in_flight.is_empty() {
                report_dropped(&self.node, &self.shared);
                return Ok(());
            }
            self.send(connection).await?;
        }
    }

    /// Sends the batch in flight as one pipeline.
    async fn send(&mut self, connection: &mut MultiplexedConnection) -> RedisResult<()> {
        let node = self.node.clone();
        let (me, len) = (&node.config.node, node.config.stream_len);
        let lease_ms = lease_ms(&node);
        let members = entry::members_key(me);
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut replies = Vec::new();
        let writer = |seq| entry::Writer { node: me.clone(), boot: node.boot, seq };
        for (at, item) in self.in_flight.iter().enumerate() {
            match item {
                Outbound::Line { room, line, kept, seq } => {
                    let body = Body::Line { line: line.clone(), kept: *kept };
                    pipe.add_command(entry::xadd(&entry::room_key(room), len, &writer(*seq), &body));
                    replies.push(Reply::Added(at));
                }
                Outbound::Tell { node: to_node, to, line, seq } => {
                    let body = Body::Tell { to: to.clone(), line: line.clone() };
                    pipe.add_command(entry::xadd(&entry::inbox_key(to_node), len, &writer(*seq), &body));
                    replies.push(Reply::Added(at));
                }
                Outbound::Present { client, nick, room, seq } => {
                    let key = protocol::fold(nick);
                    let lease = entry::nick_key(&key);
                    let value = node.lease_value(*client);
                    match room {
                        Some(room) => {
                            pipe.add_command(claim(&[(&lease, &value)], lease_ms));
                            pipe.cmd("HSET").arg(&members).arg(&key).arg(entry::member_value(room, nick));
                            replies.extend([Reply::Lease(*client, key), Reply::Ignore]);
                        }
                        None => {
                            pipe.cmd("EVAL").arg(entry::RELEASE).arg(1).arg(&lease).arg(&value);
                            pipe.cmd("HDEL").arg(&members).arg(&key);
                            replies.extend([Reply::Ignore, Reply::Ignore]);
                        }
                    }
                    let body = Body::Present { nick: nick.clone(), room: room.clone() };
                    pipe.add_command(entry::xadd(&entry::presence_key(), len, &writer(*seq), &body));
                    replies.push(Reply::Ignore);
                }
                Outbound::Claim { client, nick, reply } => {
                    if reply.is_closed() {
                        continue;
                    }
                    let lease = entry::nick_key(&protocol::fold(nick));
                    pipe.add_command(claim(&[(&lease, &node.lease_value(*client))], lease_ms));
                    replies.push(Reply::Claim(at));
                }
            }
        }
        // Unanswered, or refused for now, the batch stays in flight, to be sent again.
        let answers = query(&pipe, connection).await?;
        transient(&answers)?;
        let batch = std::mem::take(&mut self.in_flight);
        self.settle(batch, replies, answers);
        Ok(())
    }

    /// After a (re)connection to a Redis process other than the last one:
    /// the lines the last one acknowledged and this one lacks go first.
    async fn recover(&mut self, connection: &mut MultiplexedConnection) -> RedisResult<()> {
        let info: String = redis::cmd("INFO").arg("server").query_async(connection).await?;
        let run = info.lines().find_map(|line| line.strip_prefix("run_id:")).map(|id| id.trim().to_owned());
        let restarted = self.redis_run.is_some() && run != self.redis_run;
        if !restarted {
            self.redis_run = run;
            return Ok(());
        }
        let checks = self.retained.checks();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        checks.into_iter().for_each(|check| {
            pipe.add_command(check);
        });
        let answers = match pipe.cmd_iter().next() {
            Some(_) => query(&pipe, connection).await?,
            None => Vec::new(),
        };
        transient(&answers)?;
        self.redis_run = run;
        let lost = self.retained.lost(&answers);
        if !lost.resend.is_empty() {
            warn!(
                lines = lost.resend.len(),
                "Redis restarted without lines it had acknowledged; sending them again"
            );
        }
        if lost.maybe_more {
            warn!("Redis restarted without lines older than this node keeps; some may be lost");
            self.shared.hub.lock().notice_local(
                "the chat servers' Redis restarted and lost recent lines: some lines between servers may be missing",
            );
        }
        let unanswered = std::mem::take(&mut self.in_flight);
        self.in_flight = lost.resend;
        self.in_flight.extend(unanswered);
        Ok(())
    }

    /// Acts on the answers to a batch: claims answered, leases lost, errors
    /// logged, lines kept a while.
    fn settle(&mut self, batch: Vec<Outbound>, replies: Vec<Reply>, answers: Vec<Value>) {
        let mut batch: Vec<Option<Outbound>> = batch.into_iter().map(Some).collect();
        let mut lost = Vec::new();
        let mut errors = answers.iter().filter(|a| matches!(a, Value::ServerError(_)));
        if let Some(first) = errors.next() {
            warn!(errors = 1 + errors.count(), "Redis refused some of what this node sent: {first:?}");
        }
        let now = Instant::now();
        self.retained.expire(now);
        for (reply, answer) in replies.into_iter().zip(answers) {
            match reply {
                Reply::Ignore => {}
                Reply::Added(at) => {
                    let key = match batch.get(at) {
                        Some(Some(Outbound::Line { room, .. })) => entry::room_key(room),
                        Some(Some(Outbound::Tell { node, .. })) => entry::inbox_key(node),
                        _ => continue,
                    };
                    if let (Value::BulkString(id), Some(item)) =
                        (answer, batch.get_mut(at).and_then(Option::take))
                    {
                        self.retained.keep(now, key, id, item);
                    }
                }
                Reply::Lease(client, nick) if !granted(&answer) => lost.push((client, nick)),
                Reply::Lease(..) => {}
                Reply::Claim(at) => {
                    if let Some(Outbound::Claim { reply, .. }) = batch.get_mut(at).and_then(Option::take) {
                        // The client may have given up waiting.
                        let _ = reply.send(granted(&answer));
                    }
                }
            }
        }
        self.lose(lost);
    }

    /// Clients whose nicknames another node's clients hold lose them.
    fn lose(&self, lost: Vec<(ClientId, String)>) {
        if lost.is_empty() {
            return;
        }
        let mut hub = self.shared.hub.lock();
        for (client, nick) in lost {
            info!(nick, "a client of another node holds this nickname; its client here is renamed");
            hub.lose_nick(client, &nick);
        }
    }

    /// Tells Redis everything about this node again: its lease, its members
    /// (what the queue said about them before now is superseded), their
    /// nickname leases, and a hello that makes the others re-read them.
    async fn reassert(&mut self, connection: &mut MultiplexedConnection) -> RedisResult<()> {
        let node = self.node.clone();
        let me = &node.config.node;
        self.in_flight.retain(|item| !matches!(item, Outbound::Present { .. }));
        let (members, seq) = {
            let hub = self.shared.hub.lock();
            let mut backlog = node.backlog.lock();
            let before = backlog.items.len();
            backlog.items.retain(|item| !matches!(item, Outbound::Present { .. }));
            backlog.bytes -= (before - backlog.items.len()) * super::ITEM_OVERHEAD;
            backlog.stale = false;
            backlog.seq += 1;
            let members = hub.local_members();
            *node.held.lock() = members.iter().map(|(id, nick, _)| (protocol::fold(nick), *id)).collect();
            (members, backlog.seq)
        };
        let mut pipe = self.heartbeat();
        let hash = entry::members_key(me);
        pipe.cmd("DEL").arg(&hash);
        let leases: Vec<(String, String)> = members
            .iter()
            .map(|(id, nick, _)| (entry::nick_key(&protocol::fold(nick)), node.lease_value(*id)))
            .collect();
        if !members.is_empty() {
            let mut hset = redis::cmd("HSET");
            hset.arg(&hash);
            for (_, nick, room) in &members {
                hset.arg(protocol::fold(nick)).arg(entry::member_value(room, nick));
            }
            pipe.add_command(hset);
            let pairs: Vec<(&str, &str)> = leases.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            pipe.add_command(claim(&pairs, lease_ms(&node)));
        }
        let writer = entry::Writer { node: me.clone(), boot: node.boot, seq };
        pipe.add_command(entry::xadd(&entry::presence_key(), node.config.stream_len, &writer, &Body::Hello));
        let answers = query(&pipe, connection).await?;
        transient(&answers)?;
        // The claim's answer comes after SET, SADD, DEL and HSET.
        let held = answers.get(4).filter(|_| !members.is_empty());
        self.lose(lost_leases(held, members.iter().map(|(id, nick, _)| (*id, protocol::fold(nick)))));
        Ok(())
    }

    /// A pipeline that starts with this node's own lease and its place in the set of nodes.
    fn heartbeat(&self) -> Pipeline {
        let node = &self.node;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        // GET: the lease's value before, gone when it ran out (the others then judged us dead).
        pipe.cmd("SET")
            .arg(entry::alive_key(&node.config.node))
            .arg(node.boot)
            .arg("PX")
            .arg(lease_ms(node))
            .arg("GET");
        pipe.cmd("SADD").arg(entry::nodes_key()).arg(&node.config.node);
        pipe
    }

    /// Renews this node's leases and, with `judge`, looks for nodes whose
    /// lease ran out: their members are gone.
    async fn keep(&mut self, connection: &mut MultiplexedConnection, judge: bool) -> RedisResult<()> {
        let held: Vec<(String, ClientId)> =
            self.node.held.lock().iter().map(|(nick, &id)| (nick.clone(), id)).collect();
        let others: Vec<String> = match judge {
            true => self.shared.hub.lock().remote_nodes().into_iter().collect(),
            false => Vec::new(),
        };
        let mut pipe = self.heartbeat();
        let leases: Vec<(String, String)> =
            held.iter().map(|(nick, id)| (entry::nick_key(nick), self.node.lease_value(*id))).collect();
        if !held.is_empty() {
            let pairs: Vec<(&str, &str)> = leases.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            pipe.add_command(claim(&pairs, lease_ms(&self.node)));
        }
        for other in &others {
            pipe.cmd("EXISTS").arg(entry::alive_key(other));
        }
        let answers = query(&pipe, connection).await?;
        transient(&answers)?;
        if matches!(answers.first(), Some(Value::Nil)) {
            // Our lease ran out (this process was paused, or cut off, longer than it): the others
            // said our clients left and stopped hearing us. Tell them all of it again.
            warn!("this node's lease ran out before it was renewed; saying hello to the other nodes again");
            self.shared.hub.lock().notice_local(
                "this server was out of touch with the others for longer than its lease: they saw everyone \
                 here leave, and lines said meanwhile may not have reached them",
            );
            return self.reassert(connection).await;
        }
        let renewed = answers.get(2).filter(|_| !held.is_empty());
        self.lose(lost_leases(renewed, held.into_iter().map(|(nick, id)| (id, nick))));
        let judged = answers.iter().skip(if leases.is_empty() { 2 } else { 3 });
        let dead: Vec<&String> = others
            .iter()
            .zip(judged)
            .filter(|(_, alive)| matches!(alive, Value::Int(0)))
            .map(|(n, _)| n)
            .collect();
        for gone in dead {
            let members = self.shared.hub.lock().remote_gone(gone);
            info!(node = %gone, members, "a chat node stopped renewing its lease; its clients are gone");
            let mut cleanup = redis::pipe();
            cleanup.cmd("DEL").arg(entry::members_key(gone));
            cleanup.cmd("SREM").arg(entry::nodes_key()).arg(gone);
            query(&cleanup, connection).await?;
        }
        Ok(())
    }

    /// On shutdown: forwards the departures of local clients for a moment,
    /// then takes this node out of Redis.
    async fn farewell(&mut self, connection: &mut MultiplexedConnection) -> RedisResult<()> {
        let until = Instant::now() + FAREWELL;
        loop {
            self.flush(connection).await?;
            tokio::select! {
                () = self.node.ready.notified() => {}
                () = tokio::time::sleep_until(until) => break,
            }
        }
        let node = &self.node;
        let me = &node.config.node;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (nick, id) in node.held.lock().drain() {
            pipe.cmd("EVAL").arg(entry::RELEASE).arg(1).arg(entry::nick_key(&nick)).arg(node.lease_value(id));
        }
        pipe.cmd("DEL").arg(entry::members_key(me)).arg(entry::alive_key(me));
        pipe.cmd("SREM").arg(entry::nodes_key()).arg(me);
        query(&pipe, connection).await?;
        Ok(())
    }
}

/// Sends a pipeline; server errors come back as values, one per command.
async fn query(pipe: &Pipeline, connection: &mut MultiplexedConnection) -> RedisResult<Vec<Value>> {
    pipe.query_async(connection).await
}

/// EVAL of [`entry::CLAIM`] for (key, value) pairs.
fn claim(leases: &[(&str, &str)], lease_ms: u64) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(entry::CLAIM).arg(leases.len());
    leases.iter().for_each(|(key, _)| {
        cmd.arg(*key);
    });
    cmd.arg(lease_ms);
    leases.iter().for_each(|(_, value)| {
        cmd.arg(*value);
    });
    cmd
}

/// The lease, in milliseconds.
fn lease_ms(node: &Node) -> u64 {
    u64::try_from(node.config.lease.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a claim's answer (`[1]`) granted its one lease.
fn granted(answer: &Value) -> bool {
    matches!(answer, Value::Array(held) if matches!(held.as_slice(), [Value::Int(1)]))
}

/// The (client, nickname) pairs whose lease the answer to a claim of all of
/// them (in that order) says another holds. No answer: none lost.
fn lost_leases(
    answer: Option<&Value>,
    asked: impl Iterator<Item = (ClientId, String)>,
) -> Vec<(ClientId, String)> {
    let Some(Value::Array(held)) = answer else { return Vec::new() };
    asked.zip(held).filter(|(_, held)| matches!(held, Value::Int(0))).map(|(pair, _)| pair).collect()
}
