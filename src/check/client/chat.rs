//! The chat client: our server talks while the client waits for its user,
//! sends a line in pieces, and closes; the client's user (us, on its stdin)
//! types lines that must reach the server whole.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Client, Ending, no_error};
use crate::chat::protocol;
use crate::check::case::{Case, Finding, Group, Level};
use crate::check::program::Launch;
use crate::check::show::{self, SHOWN};
use crate::check::wire::wait_until;
use crate::check::{CheckError, Options};

/// How long each step waits for the client to show or send something.
const STEP: Duration = Duration::from_secs(3);
/// How long the client waits with nothing typed before the server talks.
const IDLE: Duration = Duration::from_millis(500);
/// How many lines the user types, at most, while waiting for the split line.
const LATE_TURNS: usize = 3;

/// The pause between the two pieces of a line.
const PIECE_GAP: Duration = Duration::from_millis(200);

const fn case(
    id: &'static str,
    title: &'static str,
    sends: &'static str,
    expects: &'static str,
    explanation: &'static str,
) -> Case {
    Case::required(id, Group::Correct, title, sends, expects, explanation, "client-chat")
}

/// The cases.
pub const CASES: [Case; 6] = [
    case(
        "client.chat.connects",
        "the client connects to the server it is given",
        "(our server listens on {host}:{port})",
        "a connection within the start-up time",
        "The client must connect to the host and port it is given on its \
         command line (sys.argv).",
    ),
    case(
        "client.chat.hears-while-idle",
        "a line from another user shows while nobody types",
        "a welcome, then '<bob> ...' while the client's user types nothing",
        "the line printed within 3 s",
        "In a chat, others talk whenever they like. A client that only reads after its user pressed Enter \
         (input(), send, recv, print, in turn) shows their lines late. Read the socket in a thread of its \
         own, threading.Thread(target=receive, daemon=True), while the main thread waits for input().",
    ),
    case(
        "client.chat.sends-lines",
        "a typed line reaches the server as one line, ending in \\n",
        "a line typed on the client's stdin",
        "that line, ending in b'\\n', within 3 s",
        "The chat protocol is a line protocol: the server knows a message is complete when it sees \\n. \
         input() returns the line without its newline: send (line + '\\n').encode().",
    ),
    case(
        "client.chat.pieces",
        "a line that arrives in two pieces is printed whole",
        "'<bob> ...' in two pieces 200 ms apart",
        "the whole line printed",
        "TCP is a stream: one recv() can hold part of a line, or two lines. Buffer what arrives and \
         print complete lines (or read with sock.makefile('r').readline()).",
    ),
    Case {
        level: Level::Advisory,
        ..case(
            "client.chat.server-closes",
            "the client ends when the server closes",
            "the server closes the connection",
            "the client exits within 3 s (a warning otherwise)",
            "recv() returns b'' when the server has closed. The receiving thread can say so and end the \
             program (os._exit(0) ends it even while the main thread waits in input()); otherwise the \
             user types into a dead connection.",
        )
    },
    no_error("client.chat.no-error"),
];

/// Runs the session; the findings in [`CASES`] order, except the last.
pub(super) async fn session(
    launch: &Launch,
    server: SocketAddr,
    options: &Options,
) -> Result<(Vec<Finding>, Ending), CheckError> {
    let listener = TcpListener::bind(server).await?;
    let mut client = Client::start(launch, server, true)?;
    let accepted =
        tokio::time::timeout(options.startup_timeout, listener.accept()).await.ok().and_then(Result::ok);
    let Some((stream, _)) = accepted else {
        let ending = client.finish().await;
        let none = Finding::fail(format!(
            "no connection to {server} within {}",
            humantime::format_duration(options.startup_timeout)
        ));
        let skip = || Finding::skip("the client did not connect");
        return Ok((vec![none, skip(), skip(), skip(), skip()], ending));
    };
    let _ = stream.set_nodelay(true);
    let (mut from_client, mut to_client) = stream.into_split();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = received.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = from_client.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if let Ok(mut all) = sink.lock() {
                all.extend_from_slice(&buf[..n]);
            }
        }
    });
    let got = || received.lock().map(|b| b.clone()).unwrap_or_default();
    let _ = to_client.write_all(&protocol::notice("welcome, grader: you are in lobby with bob")).await;

    // 1. Bob talks while the user types nothing.
    tokio::time::sleep(IDLE).await;
    let heard = "~bob1~ hello from bob, while you were quiet";
    let _ = to_client.write_all(&protocol::message("bob", heard)).await;
    let idle = match wait_until(STEP, || client.stdout().contains("~bob1~")).await {
        true => Finding::pass(),
        false => Finding::fail(format!(
            "nothing was printed within {} of the line's arrival: the client reads only after its user types",
            humantime::format_duration(STEP)
        ))
        .got(show::text(&client.stdout(), SHOWN)),
    };

    // 2. The user types a line.
    let typed = "~me1~ hello from the grader";
    let typing = client.type_line(typed).await;
    let whole = [typed.as_bytes(), b"\n"].concat();
    let sends = if typing.is_err() {
        Finding::fail("the client does not read its stdin (it closed it)")
    } else if wait_until(STEP, || contains(&got(), &whole)).await {
        Finding::pass()
    } else if contains(&got(), typed.as_bytes()) {
        Finding::fail(
            "the line reached the server without its \\n: the server cannot tell that it is complete",
        )
        .got(show::bytes(&got(), SHOWN))
    } else {
        Finding::fail(format!(
            "the typed line did not reach the server within {}",
            humantime::format_duration(STEP)
        ))
        .got(show::bytes(&got(), SHOWN))
    };

    // 3. A line in two pieces; the user types again, so a client that reads only then gets its chance.
    let split = "~bob2~ this line came in two pieces";
    let line = protocol::message("bob", split);
    let half = line.len() / 2;
    let _ = to_client.write_all(&line[..half]).await;
    tokio::time::sleep(PIECE_GAP).await;
    let _ = to_client.write_all(&line[half..]).await;
    // A client that reads one line per line typed is behind by then: it is
    // given a few more lines, so that this case judges what it prints.
    let mut shown = false;
    for more in 2..=LATE_TURNS + 1 {
        let _ = client.type_line(&format!("~me{more}~ and another")).await;
        shown = wait_until(STEP / LATE_TURNS as u32, || client.stdout().contains(split)).await;
        if shown {
            break;
        }
    }
    let pieces = match shown {
        true => Finding::pass(),
        false if client.stdout().contains("~bob2~") => {
            Finding::fail("the line was printed cut in two: the client printed each piece as it came")
                .got(show::text(&client.stdout(), SHOWN * 2))
        }
        false => Finding::fail("the line was not printed").got(show::text(&client.stdout(), SHOWN * 2)),
    };

    // 4. The server closes.
    drop(to_client);
    reader.abort();
    let closes = match client.wait_exit(STEP).await {
        true => Finding::pass(),
        false => Finding::fail(format!(
            "the client was still running {} after the server closed the connection",
            humantime::format_duration(STEP)
        )),
    };
    let ending = client.finish().await;
    Ok((vec![Finding::pass(), idle, sends, pieces, closes], ending))
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
