//! The lossy-UDP cases: the course's server drops a share of datagrams on
//! purpose and answers the rest with `ACK: <payload>`, to the sender.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::{Ctx, Planned, Probe as ServerProbe};
use crate::check::case::{Case, Finding, Group, Level};
use crate::check::grade::Share;
use crate::check::program::Running;
use crate::check::show::{self, SHOWN};
use crate::check::wire;
use crate::udp::ACK_PREFIX;

/// What a lossy-UDP case does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// One payload, resent until acknowledged; the ACK's bytes judged.
    Format,
    /// One payload; where the ACK comes from judged.
    ReplyPort,
    /// `count` numbered datagrams; the share answered judged.
    LossRate {
        /// How many.
        count: usize,
    },
    /// Two clients in turns.
    TwoClients,
    /// A payload that is not UTF-8, then a normal one.
    Binary,
    /// A payload of `size` bytes.
    Large {
        /// How many bytes.
        size: usize,
    },
}

/// The cases.
pub const CASES: [(Case, Probe); 6] = [
    (
        Case::required(
            "udp-ack.format",
            Group::Correct,
            "a datagram is acknowledged with 'ACK: ' and its payload",
            "the datagram b'hello 1', sent again until something comes back",
            "the datagram b'ACK: hello 1'",
            "The course's server answers each datagram it keeps with b'ACK: ' followed by exactly the \
             payload it received; that is how the client knows which message was acknowledged.",
            "lossy-udp",
        ),
        Probe::Format,
    ),
    (
        Case::required(
            "udp-ack.reply-port",
            Group::Correct,
            "the ACK comes from the port the client sent to",
            "a datagram from an unconnected socket",
            "a reply whose source is the server's own address and port",
            "Answer with the socket that received the datagram: server_socket.sendto(reply, addr). A \
             reply sent from another socket comes from another port, and a client that connect()ed \
             its UDP socket (or a firewall) drops it.",
            "udp-reply-address",
        ),
        Probe::ReplyPort,
    ),
    (
        Case::required(
            "udp-ack.loss-rate",
            Group::Correct,
            "the share of datagrams answered matches --expect-loss",
            "200 numbered datagrams, 20 at a time",
            "the share answered, with its 99% interval, holding 1 - loss (only reported without --expect-loss)",
            "A server told to drop a share P of datagrams should answer about 1 - P of them. Far fewer \
             means it loses more than it says (a slow loop, a full buffer, a wrong test such as \
             random.random() > P); far more means the loss is not applied. Decide once per datagram.",
            "lossy-udp",
        ),
        Probe::LossRate { count: 200 },
    ),
    (
        Case::required(
            "udp-ack.two-clients",
            Group::Concurrent,
            "two clients at once each get their own ACKs",
            "clients A and B send 20 numbered datagrams each, in turns",
            "every ACK reaches the client whose payload it carries",
            "Reply to the address recvfrom() returned with this datagram. A server that remembers the \
             first client's address, or replies to a fixed port, sends B's ACKs to A.",
            "udp-reply-address",
        ),
        Probe::TwoClients,
    ),
    (
        Case::required(
            "udp-ack.binary",
            Group::Robust,
            "a payload that is not UTF-8 does not stop the server",
            "b'\\xff\\xfe\\x00 not utf-8 \\x80', then b'still there?'",
            "an ACK for b'still there?'",
            "data.decode() raises UnicodeDecodeError on bytes that are not UTF-8, and an exception in \
             the receive loop ends the server. Build the reply from bytes (b'ACK: ' + data) and decode \
             only to print, with errors='replace'.",
            "bytes-not-text",
        ),
        Probe::Binary,
    ),
    (
        Case {
            level: Level::Advisory,
            ..Case::required(
                "udp-ack.large",
                Group::Robust,
                "a 2,000-byte datagram is acknowledged whole",
                "a datagram of 2,000 bytes",
                "an ACK carrying all 2,000 bytes (a warning when it does not)",
                "recvfrom(1024) cuts a longer datagram and the rest is lost for good, so the ACK carries \
                 the first 1024 bytes only. Receive with recvfrom(65535).",
                "udp-datagrams",
            )
        },
        Probe::Large { size: 2000 },
    ),
];

/// The cases, in order.
pub fn plan() -> Vec<Planned> {
    CASES.iter().map(|&(case, probe)| Planned::new(case, ServerProbe::UdpAck(probe))).collect()
}

/// How the grader resends: how long it waits for each ACK, and how many
/// times it sends before giving up (enough that a server losing a share P
/// answers at least once but for one time in a million).
#[derive(Clone, Copy, Debug)]
struct Patience<'a> {
    wait: Duration,
    tries: usize,
    program: Option<&'a Running>,
}

impl<'a> Patience<'a> {
    fn of(ctx: &Ctx<'a>) -> Patience<'a> {
        let loss = ctx.options.expect_loss.map_or(0.3, |p| p.fraction()).clamp(0.3, 0.95);
        let tries = ((1e-6f64).ln() / loss.ln()).ceil() as usize;
        Patience {
            wait: (ctx.options.reply_timeout / 4).max(Duration::from_millis(100)),
            tries: tries.clamp(20, 300),
            program: ctx.program,
        }
    }

    /// Whether another try makes sense: not when the program has died.
    fn worth_trying(&self) -> bool {
        self.program.is_none_or(Running::alive)
    }
}

/// The ACK for `payload`.
fn ack(payload: &[u8]) -> Vec<u8> {
    [ACK_PREFIX, payload].concat()
}

/// Sends `payload` until something comes back; the first reply and where it came from.
async fn until_answered(
    socket: &UdpSocket,
    payload: &[u8],
    to: SocketAddr,
    patience: Patience<'_>,
) -> Result<Option<(Vec<u8>, SocketAddr)>, String> {
    for _ in 0..patience.tries {
        if !patience.worth_trying() {
            break;
        }
        socket.send_to(payload, to).await.map_err(|e| crate::net::describe(&e))?;
        if let Some(reply) = wire::recv_from(socket, patience.wait).await {
            return Ok(Some(reply));
        }
    }
    Ok(None)
}

fn silent(payload: &[u8], patience: Patience<'_>) -> Finding {
    Finding::fail(format!(
        "no reply to {} sent {} times, {} apart",
        show::bytes(payload, SHOWN),
        patience.tries,
        humantime::format_duration(patience.wait)
    ))
}

/// Runs one lossy-UDP probe.
pub async fn run(probe: Probe, ctx: &mut Ctx<'_>) -> Finding {
    let result = async {
        let socket = wire::udp_for(ctx.addr).await.map_err(|e| crate::net::describe(&e))?;
        let patience = Patience::of(ctx);
        match probe {
            Probe::Format => format(&socket, ctx.addr, patience).await,
            Probe::ReplyPort => reply_port(&socket, ctx.addr, patience).await,
            Probe::LossRate { count } => loss_rate(ctx, &socket, count, patience).await,
            Probe::TwoClients => two_clients(ctx, socket, patience).await,
            Probe::Binary => binary(&socket, ctx.addr, patience).await,
            Probe::Large { size } => large(&socket, ctx.addr, size, patience).await,
        }
    };
    result.await.unwrap_or_else(Finding::fail)
}

async fn format(socket: &UdpSocket, to: SocketAddr, patience: Patience<'_>) -> Result<Finding, String> {
    let payload = b"hello 1";
    let Some((reply, _)) = until_answered(socket, payload, to, patience).await? else {
        return Ok(silent(payload, patience));
    };
    let shown = Finding::pass().sent(show::bytes(payload, SHOWN)).got(show::bytes(&reply, SHOWN));
    Ok(if reply == ack(payload) {
        shown
    } else {
        shown.failing("the reply is not b'ACK: ' followed by the payload")
    })
}

async fn reply_port(socket: &UdpSocket, to: SocketAddr, patience: Patience<'_>) -> Result<Finding, String> {
    let payload = b"where do you answer from?";
    let Some((_, from)) = until_answered(socket, payload, to, patience).await? else {
        return Ok(silent(payload, patience));
    };
    Ok(if from == to {
        Finding::pass()
    } else {
        Finding::fail(format!("the reply came from {from}, not from {to} where the datagram was sent"))
    })
}

async fn loss_rate(
    ctx: &Ctx<'_>,
    socket: &UdpSocket,
    count: usize,
    patience: Patience<'_>,
) -> Result<Finding, String> {
    // Each batch ends by waiting out the silence after the last ACK: few
    // batches, but small enough that no socket buffer overflows (a drop
    // there would count as the server's loss).
    const BATCH: usize = 50;
    let mut answered = HashSet::new();
    for batch in (0..count).collect::<Vec<_>>().chunks(BATCH) {
        let payloads: Vec<Vec<u8>> = batch.iter().map(|i| format!("loss test {i:03}").into_bytes()).collect();
        for payload in &payloads {
            socket.send_to(payload, ctx.addr).await.map_err(|e| crate::net::describe(&e))?;
        }
        let mut seen = 0;
        while seen < payloads.len() {
            let Some((reply, _)) = wire::recv_from(socket, patience.wait).await else { break };
            if let Some(i) = payloads.iter().position(|p| reply == ack(p)) {
                seen += usize::from(answered.insert(batch[i]));
            }
        }
    }
    let share = Share::of(answered.len() as u64, count as u64);
    let note = format!("{} of {count} answered: {share}", answered.len());
    if answered.is_empty() {
        return Ok(Finding::fail(format!("none of {count} datagrams was acknowledged")));
    }
    let Some(loss) = ctx.options.expect_loss else {
        return Ok(Finding::pass().note(format!("{note}; give --expect-loss to judge it")));
    };
    let expected = 1.0 - loss.fraction();
    Ok(if share.admits(expected) {
        Finding::pass().note(note)
    } else {
        let way = if share.estimate < expected { "fewer" } else { "more" };
        Finding::fail(format!("{note}: {way} than the {:.0}% expected with {loss} loss", expected * 100.0))
    })
}

async fn two_clients(ctx: &Ctx<'_>, a: UdpSocket, patience: Patience<'_>) -> Result<Finding, String> {
    const EACH: usize = 20;
    let b = wire::udp_for(ctx.addr).await.map_err(|e| crate::net::describe(&e))?;
    let payload = |who: char, i: usize| format!("client {who} datagram {i:02}").into_bytes();
    for i in 0..EACH {
        for (who, socket) in [('A', &a), ('B', &b)] {
            socket.send_to(&payload(who, i), ctx.addr).await.map_err(|e| crate::net::describe(&e))?;
        }
    }
    let (got_a, got_b) = tokio::join!(collect(&a, patience.wait), collect(&b, patience.wait));
    let mut problems = Vec::new();
    for (who, other, got) in [('A', 'B', &got_a), ('B', 'A', &got_b)] {
        let mine = (0..EACH).filter(|&i| got.contains(&ack(&payload(who, i)))).count();
        let theirs = (0..EACH).filter(|&i| got.contains(&ack(&payload(other, i)))).count();
        if theirs > 0 {
            problems.push(format!("client {who} got {theirs} ACKs meant for client {other}"));
        }
        if mine == 0 {
            problems.push(format!("client {who} got none of its {EACH} ACKs"));
        }
    }
    Ok(if problems.is_empty() {
        Finding::pass().note(format!(
            "A got {} and B {} of their own ACKs, none of the other's",
            got_a.len(),
            got_b.len()
        ))
    } else {
        Finding::fail(problems.join("; "))
    })
}

/// Every datagram that arrives until none has for `quiet`.
async fn collect(socket: &UdpSocket, quiet: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Some((reply, _)) = wire::recv_from(socket, quiet).await {
        got.push(reply);
    }
    got
}

async fn binary(socket: &UdpSocket, to: SocketAddr, patience: Patience<'_>) -> Result<Finding, String> {
    let payload = b"\xff\xfe\x00 not utf-8 \x80";
    socket.send_to(payload, to).await.map_err(|e| crate::net::describe(&e))?;
    let first = wire::recv_from(socket, patience.wait).await;
    let check = b"still there?";
    let mut acked = false;
    for _ in 0..patience.tries {
        if !patience.worth_trying() {
            break;
        }
        socket.send_to(check, to).await.map_err(|e| crate::net::describe(&e))?;
        if let Some((reply, _)) = wire::recv_from(socket, patience.wait).await
            && reply == ack(check)
        {
            acked = true;
            break;
        }
    }
    let first = match first {
        Some((reply, _)) if reply == ack(payload) => {
            "the binary payload was acknowledged byte for byte".to_owned()
        }
        Some((reply, _)) => format!("the binary payload got {}", show::bytes(&reply, SHOWN)),
        None => "the binary payload got no reply (dropped, or not understood)".to_owned(),
    };
    Ok(if acked {
        Finding::pass().note(first)
    } else {
        Finding::fail("after a datagram that is not UTF-8, the server stopped answering").note(first)
    }
    .sent(show::bytes(payload, SHOWN)))
}

async fn large(
    socket: &UdpSocket,
    to: SocketAddr,
    size: usize,
    patience: Patience<'_>,
) -> Result<Finding, String> {
    let payload: Vec<u8> = b"0123456789".iter().copied().cycle().take(size).collect();
    let Some((reply, _)) = until_answered(socket, &payload, to, patience).await? else {
        return Ok(silent(&payload, patience));
    };
    Ok(if reply == ack(&payload) {
        Finding::pass()
    } else {
        let carried = reply.len().saturating_sub(ACK_PREFIX.len());
        Finding::fail(format!(
            "the ACK is {} long: it carries {carried} of the {size} bytes",
            show::count(reply.len())
        ))
        .got(show::bytes(&reply, SHOWN))
    })
}
