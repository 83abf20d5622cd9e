//! The chat probes: gather clients, let them talk, judge who got what.

use std::time::Duration;

use futures::future::join_all;

use super::Probe;
use super::member::{Door, Member, settle};
use crate::check::case::Finding;
use crate::check::grade::chat::{SelfEcho, Token, Traffic, judge, tokens, tokens_per_line};
use crate::check::server::{Ctx, judge_quiet};
use crate::check::show::{self, SHOWN};
use crate::check::wire::wait_until;

/// Text that is not ASCII, for the UTF-8 case.
const UTF8_TEXT: &str = "héllo wörld ✓ 日本語 🎉";

/// The split case's line (after its token), and the character of two bytes cut in the middle.
const SPLIT_TEXT: &str = "this line was sent in three pieces, cut inside the ö of wörld";
const SPLIT_CHAR: char = 'ö';

/// How many lines without a token, after a client left, make a flood.
const FLOOD_LINES: usize = 100;

/// How long the slow-reader case waits for the probe: a server that gives
/// up on a slow client after a send timeout (students pick 1 to 5 s) may
/// first wait out that timeout once for the flood and once for the probe,
/// on a busy machine.
const SLOW_READER_LIMIT: Duration = Duration::from_secs(10);

/// How long client 3 must get nothing more for the flood to count as stalled.
const STALLED: Duration = Duration::from_millis(1500);

/// How many flood lines the talker sends before waiting for client 3 to catch up.
const FLOOD_BATCH: usize = 64;

/// How far client 3 may lag behind the flood and still count as caught up
/// (a server that queues lines per client holds a few hundred of them).
const FLOOD_SLACK: usize = 8 * 1024;

/// The size of the slow-reader case's flood lines.
const FLOOD_LINE: usize = 1000;

pub(super) async fn run(probe: Probe, ctx: &mut Ctx<'_>) -> Result<Finding, String> {
    match probe {
        Probe::Pair => pair(ctx).await,
        Probe::SelfEcho => self_echo(ctx).await,
        Probe::Order { lines } => order(ctx, lines).await,
        Probe::Utf8 => utf8(ctx).await,
        Probe::Split => split(ctx).await,
        Probe::Coalesced => coalesced(ctx).await,
        Probe::Crowd { clients, lines } => crowd(ctx, clients, lines).await,
        Probe::LateJoin => late_join(ctx).await,
        Probe::Leave { reset } => leave(ctx, reset).await,
        Probe::SlowReader => slow_reader(ctx).await,
        Probe::IdleCpu => idle_cpu(ctx).await,
    }
}

/// Lets `count` clients in (client 1 with a small buffer when asked) and
/// waits until the server relays client 1's lines to all the others.
async fn gather<'a>(
    ctx: &mut Ctx<'a>,
    count: u8,
    slow_first: bool,
) -> Result<(Door<'a>, Vec<Member>), String> {
    let (door, first) = Door::open(ctx, slow_first).await?;
    let others = join_all((2..=count).map(|id| door.enter(id, false))).await;
    let mut members = vec![first];
    for other in others {
        members.push(other?);
    }
    let (speaker, listeners) = members.split_first_mut().ok_or("no clients")?;
    let listeners: Vec<&Member> = listeners.iter().collect();
    settle(speaker, &listeners, ctx.options.reply_timeout).await?;
    Ok((door, members))
}

/// How long to wait for lines to arrive: longer with more clients.
fn patience(ctx: &Ctx<'_>, clients: usize) -> Duration {
    ctx.options.reply_timeout * 2 + Duration::from_millis(40) * clients as u32
}

/// Waits until each of `receivers` holds every token of `sent` but its own.
async fn delivered(receivers: &[&Member], sent: &[Traffic], limit: Duration) -> bool {
    wait_until(limit, || {
        receivers.iter().all(|r| {
            let got = r.inbox.tokens();
            sent.iter().filter(|s| s.client != r.id).flat_map(|s| &s.tokens).all(|t| got.contains(t))
        })
    })
    .await
}

/// Judges the lines of `sent` as received by `receivers`.
fn verdict(sent: &[Traffic], receivers: &[&Member]) -> Finding {
    let received: Vec<Traffic> =
        receivers.iter().map(|m| Traffic { client: m.id, tokens: m.inbox.tokens() }).collect();
    let delivery = judge(sent, &received);
    let note =
        format!("{} of {} lines delivered to the other clients", delivery.delivered, delivery.expected);
    if delivery.problems.is_empty() {
        Finding::pass().note(note)
    } else {
        Finding::fail(delivery.summary(3)).note(note)
    }
}

async fn pair(ctx: &mut Ctx<'_>) -> Result<Finding, String> {
    let limit = patience(ctx, 2);
    let (_, mut members) = gather(ctx, 2, false).await?;
    let first = members[0].say_numbered("hello from client 1").await?;
    let sent_first = [Traffic { client: 1, tokens: vec![first] }];
    delivered(&[&members[1]], &sent_first, limit).await;
    let second = members[1].say_numbered("hello from client 2").await?;
    let sent = [sent_first[0].clone(), Traffic { client: 2, tokens: vec![second] }];
    delivered(&[&members[0], &members[1]], &sent, limit).await;
    Ok(verdict(&sent, &[&members[0], &members[1]]))
}

async fn self_echo(ctx: &mut Ctx<'_>) -> Result<Finding, String> {
    let limit = patience(ctx, 2);
    let (expect, ctx_reply) = (ctx.options.expect_self, ctx.options.reply_timeout);
    let (_, mut members) = gather(ctx, 2, false).await?;
    let mut tokens = Vec::new();
    for line in 1..=3 {
        tokens.push(members[0].say_numbered(&format!("line {line} of 3")).await?);
    }
    let sent = [Traffic { client: 1, tokens: tokens.clone() }];
    delivered(&[&members[1]], &sent, limit).await;
    // The sender's own copy, if it gets one, is sent at about the same time.
    let speaker = &members[0];
    wait_until(ctx_reply / 2, || tokens.iter().all(|t| speaker.inbox.has(t))).await;
    let received = [
        Traffic { client: 1, tokens: speaker.inbox.tokens() },
        Traffic { client: 2, tokens: members[1].inbox.tokens() },
    ];
    let delivery = judge(&sent, &received);
    if !delivery.problems.is_empty() {
        return Ok(Finding::fail(delivery.summary(3)));
    }
    let (hears, word) = match delivery.self_echo {
        SelfEcho::Yes => (true, "yes"),
        SelfEcho::No => (false, "no"),
        SelfEcho::Partly { heard, sent } => {
            return Ok(Finding::fail(format!(
                "client 1 heard {heard} of its own {sent} lines back: all or none, not some"
            )));
        }
        SelfEcho::Unknown => return Ok(Finding::skip("nothing was sent")),
    };
    let note = format!("the sender hears its own lines: {word}");
    Ok(match expect {
        Some(wanted) if wanted != hears => Finding::fail(format!(
            "{note}, but --expect-self {} asks that it {}",
            if wanted { "yes" } else { "no" },
            if wanted { "does" } else { "does not" }
        )),
        _ => Finding::pass().note(note),
    })
}

async fn order(ctx: &mut Ctx<'_>, lines: usize) -> Result<Finding, String> {
    let limit = patience(ctx, 3);
    let (_, mut members) = gather(ctx, 3, false).await?;
    let mut tokens = Vec::new();
    for line in 1..=lines {
        tokens.push(members[0].say_numbered(&format!("line {line} of {lines}")).await?);
    }
    let sent = [Traffic { client: 1, tokens }];
    let receivers = [&members[1], &members[2]];
    delivered(&receivers, &sent, limit).await;
    Ok(verdict(&sent, &receivers))
}

/// The line of `stream` that holds `token`, if any.
fn line_with(stream: &[u8], token: Token) -> Option<Vec<u8>> {
    stream.split(|&b| b == b'\n').find(|line| tokens(line).contains(&token)).map(<[u8]>::to_vec)
}

async fn utf8(ctx: &mut Ctx<'_>) -> Result<Finding, String> {
    let limit = patience(ctx, 2);
    let (_, mut members) = gather(ctx, 2, false).await?;
    let token = members[0].say_numbered(UTF8_TEXT).await?;
    let sent = [Traffic { client: 1, tokens: vec![token] }];
    delivered(&[&members[1]], &sent, limit).await;
    let Some(line) = line_with(&members[1].inbox.bytes(), token) else {
        return Ok(verdict(&sent, &[&members[1]]));
    };
    let shown = Finding::pass().sent(show::bytes(UTF8_TEXT.as_bytes(), SHOWN)).got(show::bytes(&line, SHOWN));
    let intact = line.windows(UTF8_TEXT.len()).any(|w| w == UTF8_TEXT.as_bytes());
    Ok(if intact {
        shown
    } else {
        shown.failing("the line arrived, but its non-ASCII characters did not arrive intact")
    })
}

async fn split(ctx: &mut Ctx<'_>) -> Result<Finding, String> {
    let limit = patience(ctx, 2);
    let (_, mut members) = gather(ctx, 2, false).await?;
    let token = members[0].next_token();
    let whole = format!("{token} {SPLIT_TEXT}");
    // The first cut falls between words, the second inside a character
    // of two bytes: a server that decodes each piece on its own breaks there.
    let inside = whole.find(SPLIT_CHAR).ok_or("the split text lost its character")? + 1;
    let cut = [token.to_string().len() + 10, inside];
    let bytes = whole.as_bytes();
    let pieces = [&bytes[..cut[0]], &bytes[cut[0]..cut[1]], &bytes[cut[1]..]];
    for (i, piece) in pieces.iter().enumerate() {
        let last = i == pieces.len() - 1;
        let end: &[u8] = if last { b"\n" } else { b"" };
        members[0].send(&[*piece, end].concat()).await?;
        if !last {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let listener = &members[1];
    let rest = &whole[token.to_string().len()..];
    let arrived = || {
        line_with(&listener.inbox.bytes(), token).is_some_and(|l| String::from_utf8_lossy(&l).contains(rest))
    };
    if wait_until(limit, arrived).await {
        return Ok(Finding::pass());
    }
    let got = listener.inbox.bytes();
    let at = got.windows(3).position(|w| w == b"~c0").unwrap_or(0).saturating_sub(20);
    Ok(Finding::fail(
        "the line did not arrive whole: the pieces were relayed as separate messages, or lost (the second \
         piece ended in the middle of the ö, b'\\xc3' in one piece and b'\\xb6' in the next)",
    )
    .sent(show::text(&whole, SHOWN))
    .got(show::bytes(&got[at..], SHOWN * 2)))
}

async fn coalesced(ctx: &mut Ctx<'_>) -> Result<Finding, String> {
    let limit = patience(ctx, 2);
    let (_, mut members) = gather(ctx, 2, false).await?;
    let (one, two) = (members[0].next_token(), members[0].next_token());
    let both = format!("{one} first of two in one segment\n{two} second of two in one segment\n");
    members[0].send(both.as_bytes()).await?;
    let first_two = [Traffic { client: 1, tokens: vec![one, two] }];
    delivered(&[&members[1]], &first_two, limit).await;
    let three = members[0].say_numbered("third, on its own").await?;
    let sent = [Traffic { client: 1, tokens: vec![one, two, three] }];
    delivered(&[&members[1]], &sent, limit).await;
    let finding = verdict(&sent, &[&members[1]]);
    if !finding.passed() {
        return Ok(finding);
    }
    let stream = members[1].inbox.bytes();
    let shown = |f: Finding| {
        f.sent(show::text(&both, SHOWN))
            .got(show::bytes(&stream[stream.len().saturating_sub(SHOWN * 2)..], SHOWN * 2))
    };
    let ours = [one, two, three];
    let glued = tokens_per_line(&stream)
        .into_iter()
        .map(|line| line.iter().filter(|t| ours.contains(t)).count())
        .max();
    if let Some(glued @ 2..) = glued {
        return Ok(shown(Finding::fail(format!("{glued} messages arrived run together on one line"))));
    }
    // The text before each token is how the server marks its sender.
    let marks: Vec<Vec<u8>> = ours
        .iter()
        .filter_map(|&t| {
            let line = line_with(&stream, t)?;
            let at = line.windows(9).position(|w| tokens(w).contains(&t))?;
            Some(line[..at].to_vec())
        })
        .collect();
    if marks.windows(2).any(|w| w[0] != w[1]) {
        let marks: Vec<String> = marks.iter().map(|m| show::bytes(m, 40)).collect();
        return Ok(shown(Finding::fail(format!(
            "the lines arrived marked differently ({}): the second line of the segment was relayed as part of the first",
            marks.join(", ")
        ))));
    }
    Ok(finding)
}

async fn crowd(ctx: &mut Ctx<'_>, clients: u8, lines: usize) -> Result<Finding, String> {
    let limit = patience(ctx, usize::from(clients));
    let (_, mut members) = gather(ctx, clients, false).await?;
    let said = join_all(members.iter_mut().map(|m| async move {
        let mut tokens = Vec::new();
        for line in 1..=lines {
            tokens.push(m.say_numbered(&format!("line {line} from client {}", m.id)).await?);
        }
        Ok::<_, String>(Traffic { client: m.id, tokens })
    }))
    .await;
    let sent: Vec<Traffic> = said.into_iter().collect::<Result<_, _>>()?;
    let receivers: Vec<&Member> = members.iter().collect();
    delivered(&receivers, &sent, limit).await;
    Ok(verdict(&sent, &receivers))
}

async fn late_join(ctx: &mut Ctx<'_>) -> Result<Finding, String> {
    let limit = patience(ctx, 3);
    let (door, mut members) = gather(ctx, 2, false).await?;
    let mut before = Vec::new();
    for member in &mut members {
        let token = member.say_numbered("before client 3 joined").await?;
        before.push(Traffic { client: member.id, tokens: vec![token] });
    }
    delivered(&[&members[0], &members[1]], &before, limit).await;
    let late = door.enter(3, false).await?;
    members.push(late);
    let (speaker, listeners) = members.split_first_mut().ok_or("no clients")?;
    settle(speaker, &listeners.iter().collect::<Vec<_>>(), ctx.options.reply_timeout).await?;
    let mut after = Vec::new();
    for member in &mut members {
        let token = member.say_numbered("after client 3 joined").await?;
        after.push(Traffic { client: member.id, tokens: vec![token] });
    }
    let all: Vec<&Member> = members.iter().collect();
    delivered(&all, &after, limit).await;
    let early = verdict(&before, &all[..2]);
    let late = verdict(&after, &all);
    Ok(match (early.passed(), late.passed()) {
        (true, _) => late,
        (false, _) => early,
    })
}

async fn leave(ctx: &mut Ctx<'_>, reset: bool) -> Result<Finding, String> {
    let limit = patience(ctx, 3);
    let (_, mut members) = gather(ctx, 3, false).await?;
    let leaver = members.remove(0);
    let mark = members[1].inbox.len();
    if reset {
        leaver.reset()
    } else {
        leaver.leave()
    }
    let mut tokens = Vec::new();
    let mut wait = limit;
    for line in 1..=3 {
        let token = members[0].say_numbered(&format!("line {line} after client 1 left")).await?;
        tokens.push(token);
        let listener = &members[1];
        if !wait_until(wait, || listener.inbox.has(&token)).await {
            // One line is lost already; the next ones need not wait as long.
            wait = ctx.options.reply_timeout / 2;
        }
    }
    let sent = [Traffic { client: 2, tokens }];
    let finding = verdict(&sent, &[&members[1]]);
    let since = members[1].inbox.bytes().split_off(mark);
    let junk = since.split(|&b| b == b'\n').filter(|line| tokens_per_line(line).is_empty()).count();
    if junk > FLOOD_LINES {
        return Ok(Finding::fail(format!(
            "after client 1 left, client 3 got {junk} lines that nobody sent: the server relays the empty \
             reads of a closed connection"
        ))
        .got(show::bytes(&since, SHOWN)));
    }
    Ok(finding)
}

/// How many bytes fill the buffers between a server and a client that does
/// not read: the most the kernel lets a socket queue for sending
/// (`tcp_wmem`'s maximum) and a little for what the client's side holds.
fn flood_size() -> usize {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    wmem_max + (1 << 20)
}

async fn slow_reader(ctx: &mut Ctx<'_>) -> Result<Finding, String> {
    let limit = patience(ctx, 4).max(SLOW_READER_LIMIT);
    let (_, mut members) = gather(ctx, 4, true).await?;
    members[0].stop_reading();
    let size = flood_size();
    let line = format!("flood {} keeps the room busy\n", "x".repeat(FLOOD_LINE - 30));
    // members: [1 (not reading), 2 (talker), 3 (listener), 4 (prober)]. The
    // flood goes at the pace client 3 reads it, so that only client 1 falls
    // behind; it ends when it is all sent, or when client 3 stops getting it.
    let (mut sent, mut stalled) = (0, false);
    let before = members[2].inbox.len();
    while sent < size && !stalled {
        let batch = line.repeat(FLOOD_BATCH);
        stalled = tokio::time::timeout(STALLED, members[1].send(batch.as_bytes()))
            .await
            .map_or(true, |r| r.is_err());
        sent += batch.len();
        let listener = &members[2];
        let caught_up = || listener.inbox.len() - before + FLOOD_SLACK >= sent || listener.inbox.ended();
        stalled |= !wait_until(STALLED, caught_up).await;
    }
    let listener = &members[2];
    if listener.inbox.ended() {
        return Ok(Finding::fail(
            "the server disconnected client 3, which was reading all along but had sent nothing for a while: \
             either a timeout on client 3's socket (settimeout() covers recv() too) ended its thread, or the \
             queue for client 3 could not hold a burst that client 3 was reading",
        ));
    }
    let token = members[3].say_numbered("is anyone still there?").await?;
    let listener = &members[2];
    let arrived = wait_until(limit, || listener.inbox.has(&token)).await;
    let note = format!(
        "client 2 sent {} MB; client 3 had received {} MB when client 4 spoke",
        sent >> 20,
        listener.inbox.len() >> 20
    );
    Ok(if arrived {
        Finding::pass().note(note)
    } else {
        Finding::fail(format!(
            "one stalled client froze the room: client 4's line did not reach client 3 within {} while \
             client 1 was not reading",
            humantime::format_duration(limit)
        ))
        .note(note)
    })
}

async fn idle_cpu(ctx: &mut Ctx<'_>) -> Result<Finding, String> {
    let limit = patience(ctx, 2);
    let (_, mut members) = gather(ctx, 2, false).await?;
    let mut sent = Vec::new();
    for member in &mut members {
        let token = member.say_numbered("leaving after this").await?;
        sent.push(Traffic { client: member.id, tokens: vec![token] });
    }
    delivered(&[&members[0], &members[1]], &sent, limit).await;
    let second = members.pop().ok_or("no clients")?;
    let first = members.pop().ok_or("no clients")?;
    first.leave();
    second.reset();
    Ok(judge_quiet(ctx, "after its two clients left").await)
}
