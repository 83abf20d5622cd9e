//! The echo cases over TCP.

use std::time::Duration;

use futures::future::join_all;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::Probe;
use crate::check::case::Finding;
use crate::check::grade::{compare, describe_mismatch};
use crate::check::server::{Ctx, judge_quiet, watch_quiet};
use crate::check::show::{self, SHOWN};
use crate::check::wire::{self, End, Received};

/// How long the concurrent cases wait for each connection: long enough for
/// a SYN the kernel dropped (listen queue full) to be sent again twice.
const BUSY_CONNECT: Duration = Duration::from_secs(5);

/// How much longer the concurrent cases wait for each client there is.
const PER_CLIENT: Duration = Duration::from_millis(40);

/// After this many of the sequential connections, a server started by the
/// grader is looked at for spinning.
const SPIN_LOOK_AFTER: usize = 20;

pub(super) async fn run(probe: Probe, ctx: &mut Ctx<'_>) -> Finding {
    let result = match probe {
        Probe::TcpOnce { message } => once(ctx, message).await,
        Probe::TcpLarge { size } => large(ctx, size).await,
        Probe::TcpTrickle { message, gap_ms } => trickle(ctx, message, Duration::from_millis(gap_ms)).await,
        Probe::TcpClients { count } => clients(ctx, count).await,
        Probe::TcpReset => reset(ctx).await,
        Probe::TcpHalfClose => half_close(ctx).await,
        Probe::TcpSequential { count } => sequential(ctx, count).await,
        Probe::TcpIdleCpu => idle_cpu(ctx).await,
        Probe::TcpReaps { count } => reaps(ctx, count).await,
        _ => Err(format!("{probe:?} is not a TCP probe")),
    };
    result.unwrap_or_else(Finding::fail)
}

/// Judges an echo: `sent` against what was `received`.
fn judge(sent: &[u8], received: &Received, quiet: Duration) -> Finding {
    let shown = Finding::pass().sent(show::bytes(sent, SHOWN)).got(show::bytes(&received.bytes, SHOWN));
    match compare(sent, &received.bytes) {
        None => shown,
        Some(mismatch) => {
            let what = describe_mismatch(sent, &received.bytes, mismatch);
            shown.failing(format!("{what}, {}", received.end.describe(quiet)))
        }
    }
}

async fn exchange(stream: &mut TcpStream, message: &[u8], quiet: Duration) -> Received {
    if let Err(e) = stream.write_all(message).await {
        return Received { bytes: Vec::new(), end: End::Error(crate::net::describe(&e)) };
    }
    wire::read(stream, Some(message.len()), quiet).await
}

async fn once(ctx: &Ctx<'_>, message: &[u8]) -> Result<Finding, String> {
    let quiet = ctx.options.reply_timeout;
    let mut stream = wire::connect(ctx.addr, ctx.options.startup_timeout).await?;
    let received = exchange(&mut stream, message, quiet).await;
    Ok(judge(message, &received, quiet))
}

/// Lines of text filling `size` bytes, each numbered, so that a difference
/// is easy to place.
fn text_of(size: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(size + 64);
    let mut line = 0;
    while text.len() < size {
        line += 1;
        text.extend_from_slice(
            format!("line {line:06} of a long message that TCP carries in many pieces\n").as_bytes(),
        );
    }
    text.truncate(size);
    text
}

async fn large(ctx: &Ctx<'_>, size: usize) -> Result<Finding, String> {
    let quiet = ctx.options.reply_timeout;
    let stream = wire::connect(ctx.addr, ctx.options.startup_timeout).await?;
    let message = text_of(size);
    let (mut reader, mut writer) = stream.into_split();
    // Send and receive at once: a server that echoes as it reads fills our
    // receive buffer while we send; reading later would deadlock both.
    let send = async {
        let sent = writer.write_all(&message).await;
        // Keep the writing half open: closing it would be a half-close.
        (sent, writer)
    };
    let (received, (_, _writer)) = tokio::join!(wire::read(&mut reader, Some(size), quiet), send);
    let finding = judge(&message, &received, quiet);
    // More than one read's worth, all of it right, and then the end: the
    // server loops over recv(), but stops at the first short read.
    let stopped_short = received.bytes.len() > SHORT_READ_HINT
        && message.starts_with(&received.bytes)
        && matches!(received.end, End::Closed | End::Reset);
    Ok(match finding.problem.as_ref().map(|p| p.what.clone()) {
        Some(what) if stopped_short => finding.failing(format!(
            "{what}. It did call recv() more than once, so it stops at a read that returned fewer \
             bytes than it asked for (`if len(data) < 1024: break`?): a short read does not mean the \
             message is over, only b'' means the client has closed"
        )),
        _ => finding,
    })
}

/// More bytes than a server that calls `recv()` once could echo (students'
/// buffers are 1024 to 4096 bytes; two of the largest).
const SHORT_READ_HINT: usize = 8192;

async fn trickle(ctx: &Ctx<'_>, message: &[u8], gap: Duration) -> Result<Finding, String> {
    let quiet = ctx.options.reply_timeout;
    let stream = wire::connect(ctx.addr, ctx.options.startup_timeout).await?;
    let (mut reader, mut writer) = stream.into_split();
    let send = async {
        for byte in message {
            if writer.write_all(std::slice::from_ref(byte)).await.is_err() {
                break;
            }
            tokio::time::sleep(gap).await;
        }
        writer
    };
    let (received, _writer) =
        tokio::join!(wire::read(&mut reader, Some(message.len()), quiet + gap * 30), send);
    Ok(judge(message, &received, quiet))
}

async fn clients(ctx: &Ctx<'_>, count: usize) -> Result<Finding, String> {
    // A server with a thread per client starts many threads at once here:
    // on a busy machine that takes a while, and is not what is judged.
    let quiet = ctx.options.reply_timeout + PER_CLIENT * count as u32;
    let connects = join_all((0..count).map(|_| wire::connect(ctx.addr, BUSY_CONNECT))).await;
    let refused: Vec<String> = connects.iter().filter_map(|c| c.as_ref().err().cloned()).collect();
    let mut streams: Vec<(usize, TcpStream)> =
        connects.into_iter().enumerate().filter_map(|(i, c)| c.ok().map(|s| (i + 1, s))).collect();
    // The last to connect asks first: a server still busy with client 1 cannot answer it.
    streams.reverse();
    let messages: Vec<Vec<u8>> =
        streams.iter().map(|(i, _)| format!("client {i} of {count}\n").into_bytes()).collect();
    let replies = join_all(
        streams.iter_mut().zip(&messages).map(|((_, stream), message)| exchange(stream, message, quiet)),
    )
    .await;
    let mut unserved: Vec<usize> = streams
        .iter()
        .zip(&messages)
        .zip(&replies)
        .filter(|((_, sent), got)| got.bytes != **sent)
        .map(|(((i, _), _), _)| *i)
        .collect();
    unserved.sort_unstable();
    let served = streams.len() - unserved.len();
    let note = format!("{served} of {count} clients got their echo");
    if unserved.is_empty() && refused.is_empty() {
        return Ok(Finding::pass().note(note));
    }
    let mut what = note.clone();
    if !unserved.is_empty() {
        what.push_str(&format!(
            "; {} got nothing back within {} while the others stayed connected ({})",
            crate::text::plural(unserved.len() as u64, "client"),
            humantime::format_duration(quiet),
            list(&unserved)
        ));
    }
    if let Some(first) = refused.first() {
        what.push_str(&format!(
            "; {} could not connect: {first}",
            crate::text::plural(refused.len() as u64, "client")
        ));
    }
    if served == 1 {
        what.push_str("; one client was served and the rest waited: one client at a time");
    }
    Ok(Finding::fail(what))
}

/// `1, 2, 3, 5` or `2 to 50`.
fn list(numbers: &[usize]) -> String {
    match numbers {
        [first, .., last] if numbers.len() > 4 && last - first + 1 == numbers.len() => {
            format!("clients {first} to {last}")
        }
        _ => format!("clients {}", numbers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    }
}

async fn reset(ctx: &Ctx<'_>) -> Result<Finding, String> {
    let quiet = ctx.options.reply_timeout;
    let mut doomed = wire::connect(ctx.addr, ctx.options.startup_timeout).await?;
    doomed.write_all(b"this message is cut off by a res").await.map_err(|e| crate::net::describe(&e))?;
    wire::reset(doomed);
    for client in [2, 3] {
        let message = format!("after the reset, client {client}\n").into_bytes();
        let mut stream = match wire::connect(ctx.addr, ctx.options.startup_timeout).await {
            Ok(stream) => stream,
            Err(e) => return Ok(Finding::fail(format!("after client 1 reset its connection, {e}"))),
        };
        let received = exchange(&mut stream, &message, quiet).await;
        let finding = judge(&message, &received, quiet);
        if !finding.passed() {
            let what = finding.problem.as_ref().map(|p| p.what.clone()).unwrap_or_default();
            return Ok(
                finding.failing(format!("after client 1 reset its connection, client {client}: {what}"))
            );
        }
    }
    Ok(Finding::pass().note("clients 2 and 3 were served after client 1's reset"))
}

async fn half_close(ctx: &Ctx<'_>) -> Result<Finding, String> {
    let quiet = ctx.options.reply_timeout;
    let message = b"half-closed: no more from me, but I am listening\n";
    let mut stream = wire::connect(ctx.addr, ctx.options.startup_timeout).await?;
    stream.write_all(message).await.map_err(|e| crate::net::describe(&e))?;
    stream.shutdown().await.map_err(|e| crate::net::describe(&e))?;
    let received = wire::read(&mut stream, None, quiet).await;
    let shown = |f: Finding| f.sent(show::bytes(message, SHOWN)).got(show::bytes(&received.bytes, SHOWN));
    Ok(shown(match (&received.bytes[..] == message, &received.end) {
        (true, End::Closed) => Finding::pass(),
        (true, End::Quiet) => Finding::fail(format!(
            "the echo came back, but the server did not close its side within {} of the client's \
             half-close: the client cannot tell that the echo is complete",
            humantime::format_duration(quiet)
        )),
        (true, end) => Finding::fail(format!("the echo came back, {}", end.describe(quiet))),
        (false, end) => {
            let mismatch =
                compare(message, &received.bytes).map(|m| describe_mismatch(message, &received.bytes, m));
            Finding::fail(format!("{}, {}", mismatch.unwrap_or_default(), end.describe(quiet)))
        }
    }))
}

async fn sequential(ctx: &Ctx<'_>, count: usize) -> Result<Finding, String> {
    let quiet = ctx.options.reply_timeout;
    let before = ctx.program.map(|p| p.sample().open_files);
    for i in 1..=count {
        if i == SPIN_LOOK_AFTER + 1
            && let Some(program) = ctx.program
            && watch_quiet(program).await.spinning()
        {
            return Ok(Finding::skip(format!(
                "the server keeps a CPU busy after its first {SPIN_LOOK_AFTER} clients left \
                 (see echo.tcp.idle-cpu), so {count} connections would measure only that"
            )));
        }
        let message = format!("connection {i} of {count}\n").into_bytes();
        let mut stream = match wire::connect(ctx.addr, ctx.options.startup_timeout).await {
            Ok(stream) => stream,
            Err(e) => return Ok(Finding::fail(format!("connection {i} of {count}: {e}"))),
        };
        let received = exchange(&mut stream, &message, quiet).await;
        let finding = judge(&message, &received, quiet);
        if let Some(what) = finding.problem.as_ref().map(|p| p.what.clone()) {
            return Ok(finding.failing(format!("connection {i} of {count}: {what}")));
        }
    }
    let (Some(program), Some(before)) = (ctx.program, before) else {
        return Ok(Finding::pass().note(format!("{} connections echoed", show::grouped(count))));
    };
    // The server closes each socket when it reads our FIN: let it catch up.
    let settled = before + count / 20;
    let mut after = program.sample().open_files;
    for _ in 0..40 {
        if after <= settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = program.sample().open_files;
    }
    let note =
        format!("{} connections echoed; open files {before} before, {after} after", show::grouped(count));
    if after >= before + count / 4 {
        Ok(Finding::fail(format!(
            "the server holds {} more files open than before: it keeps the sockets of clients that left",
            after - before
        ))
        .note(note))
    } else {
        Ok(Finding::pass().note(note))
    }
}

/// How often, and how many times, the zombies are counted after the last client left.
const ZOMBIE_LOOK: Duration = Duration::from_millis(100);
const ZOMBIE_LOOKS: usize = 10;

async fn reaps(ctx: &Ctx<'_>, count: usize) -> Result<Finding, String> {
    let Some(program) = ctx.program else {
        return Ok(Finding::skip("needs the server's PID: give the command that starts it after --"));
    };
    let quiet = ctx.options.reply_timeout;
    for i in 1..=count {
        let message = format!("client {i} of {count}\n").into_bytes();
        let mut stream = wire::connect(ctx.addr, ctx.options.startup_timeout)
            .await
            .map_err(|e| format!("connection {i} of {count}: {e}"))?;
        let received = exchange(&mut stream, &message, quiet).await;
        let finding = judge(&message, &received, quiet);
        if let Some(what) = finding.problem.as_ref().map(|p| p.what.clone()) {
            return Ok(finding.failing(format!("connection {i} of {count}: {what}")));
        }
    }
    // A child ends a moment after its client closes: look a few times.
    let mut most = 0;
    for _ in 0..ZOMBIE_LOOKS {
        most = most.max(program.zombies());
        if most >= count / 2 {
            return Ok(Finding::fail(format!(
                "after {count} clients came and went, {most} of the server's processes are zombies: \
                 children that ended and were never waited for"
            )));
        }
        tokio::time::sleep(ZOMBIE_LOOK).await;
    }
    Ok(Finding::pass().note(format!("{count} connections echoed; at most {most} zombie processes after")))
}

async fn idle_cpu(ctx: &Ctx<'_>) -> Result<Finding, String> {
    let quiet = ctx.options.reply_timeout;
    for leave in 0..3 {
        let message = format!("client {} leaves next\n", leave + 1).into_bytes();
        let mut stream = wire::connect(ctx.addr, ctx.options.startup_timeout).await?;
        let received = exchange(&mut stream, &message, quiet).await;
        if received.bytes != message {
            return Ok(Finding::skip("the server did not echo, so there is nothing to measure after"));
        }
        // The last one half-closes first and waits for the server's close.
        if leave == 2 {
            let _ = stream.shutdown().await;
            let _ = wire::read(&mut stream, None, quiet).await;
        }
    }
    Ok(judge_quiet(ctx, "after its three clients left").await)
}
