//! The echo cases over UDP.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::Probe;
use crate::check::case::Finding;
use crate::check::grade::{compare, describe_mismatch};
use crate::check::server::Ctx;
use crate::check::show::{self, SHOWN};
use crate::check::wire;

/// How many times a datagram is sent before the server is said not to
/// answer (a datagram can be lost, even on loopback under load).
const ATTEMPTS: usize = 2;

pub(super) async fn run(probe: Probe, ctx: &mut Ctx<'_>) -> Finding {
    let result = match probe {
        Probe::UdpOnce { message, size } => once(ctx, &fill(message, size)).await,
        Probe::UdpBoundaries => boundaries(ctx).await,
        Probe::UdpBurst { count } => burst(ctx, count).await,
        Probe::UdpInterleaved => interleaved(ctx).await,
        _ => Err(format!("{probe:?} is not a UDP probe")),
    };
    result.unwrap_or_else(Finding::fail)
}

/// `message` repeated to `size` bytes (at least the message itself).
fn fill(message: &[u8], size: usize) -> Vec<u8> {
    message.iter().copied().cycle().take(size.max(message.len())).collect()
}

async fn socket(ctx: &Ctx<'_>) -> Result<UdpSocket, String> {
    wire::udp_for(ctx.addr)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {}", crate::net::describe(&e)))
}

async fn send(socket: &UdpSocket, datagram: &[u8], to: SocketAddr) -> Result<(), String> {
    socket
        .send_to(datagram, to)
        .await
        .map(drop)
        .map_err(|e| format!("cannot send: {}", crate::net::describe(&e)))
}

async fn once(ctx: &Ctx<'_>, message: &[u8]) -> Result<Finding, String> {
    let socket = socket(ctx).await?;
    let timeout = ctx.options.reply_timeout;
    for _ in 0..ATTEMPTS {
        send(&socket, message, ctx.addr).await?;
        let Some((reply, _)) = wire::recv_from(&socket, timeout).await else { continue };
        let shown = Finding::pass().sent(show::bytes(message, SHOWN)).got(show::bytes(&reply, SHOWN));
        return Ok(match compare(message, &reply) {
            None => shown,
            Some(m) => shown
                .failing(format!("the reply datagram differs: {}", describe_mismatch(message, &reply, m))),
        });
    }
    Ok(Finding::fail(format!(
        "no reply to {} datagrams of {}, each waited for {}",
        ATTEMPTS,
        show::count(message.len()),
        humantime::format_duration(timeout)
    ))
    .sent(show::bytes(message, SHOWN)))
}

/// Receives datagrams until `count` have arrived or none comes for `quiet`.
async fn collect(socket: &UdpSocket, count: usize, quiet: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    while got.len() < count {
        match wire::recv_from(socket, quiet).await {
            Some(reply) => got.push(reply),
            None => break,
        }
    }
    got
}

async fn boundaries(ctx: &Ctx<'_>) -> Result<Finding, String> {
    let socket = socket(ctx).await?;
    let sent: Vec<Vec<u8>> =
        [(10, b'a'), (300, b'b'), (1200, b'c')].iter().map(|&(size, fill)| vec![fill; size]).collect();
    for datagram in &sent {
        send(&socket, datagram, ctx.addr).await?;
    }
    let got = collect(&socket, sent.len(), ctx.options.reply_timeout).await;
    let sizes = |d: &[Vec<u8>]| d.iter().map(|d| d.len().to_string()).collect::<Vec<_>>().join(", ");
    let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
    let note = format!(
        "sent datagrams of {} bytes, got back {}",
        sizes(&sent),
        match got.len() {
            0 => "none".to_owned(),
            _ => format!("{} bytes", sizes(&got)),
        }
    );
    let missing = sent.iter().filter(|d| !got.contains(d)).count();
    if missing == 0 && got.len() == sent.len() {
        Ok(Finding::pass().note(note))
    } else {
        Ok(Finding::fail(format!("{note}: {missing} of the {} did not come back as sent", sent.len())))
    }
}

async fn burst(ctx: &Ctx<'_>, count: usize) -> Result<Finding, String> {
    let socket = socket(ctx).await?;
    let sent: Vec<Vec<u8>> =
        (0..count).map(|i| fill(format!("burst datagram {i:03} ").as_bytes(), 100)).collect();
    for datagram in &sent {
        send(&socket, datagram, ctx.addr).await?;
    }
    let got = collect(&socket, count, ctx.options.reply_timeout).await;
    let answered: HashSet<&Vec<u8>> = got.iter().map(|(d, _)| d).filter(|d| sent.contains(d)).collect();
    let what = format!("{} of {count} datagrams answered", answered.len());
    Ok(match answered.len() {
        n if n == count => Finding::pass().note(what),
        n if n * 10 >= count * 9 => {
            Finding::warn(format!("{what}: UDP may drop a few under load, but not many"))
        }
        _ => Finding::fail(what),
    })
}

async fn interleaved(ctx: &Ctx<'_>) -> Result<Finding, String> {
    const EACH: usize = 5;
    let (a, b) = (socket(ctx).await?, socket(ctx).await?);
    let message = |who: char, i: usize| format!("client {who} message {i}").into_bytes();
    for i in 1..=EACH {
        send(&a, &message('A', i), ctx.addr).await?;
        send(&b, &message('B', i), ctx.addr).await?;
    }
    let quiet = ctx.options.reply_timeout;
    let (got_a, got_b) = tokio::join!(collect(&a, EACH, quiet), collect(&b, EACH, quiet));
    let mut problems = Vec::new();
    for (who, other, got) in [('A', 'B', &got_a), ('B', 'A', &got_b)] {
        let mine = (1..=EACH).filter(|&i| got.iter().any(|(d, _)| *d == message(who, i))).count();
        let theirs = (1..=EACH).filter(|&i| got.iter().any(|(d, _)| *d == message(other, i))).count();
        if theirs > 0 {
            problems.push(format!("client {who} got {theirs} of client {other}'s replies"));
        }
        if mine < EACH {
            problems.push(format!("client {who} got {mine} of its {EACH} replies"));
        }
    }
    if problems.is_empty() {
        Ok(Finding::pass().note(format!("each client got its own {EACH} replies")))
    } else {
        Ok(Finding::fail(problems.join("; ")))
    }
}
