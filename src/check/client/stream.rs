//! The TCP clients of the course's request/response services, echo and
//! daytime: our server sends every reply in two pieces, a moment apart, as
//! TCP may deliver it, and the client must print it whole.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Client, Ending, no_error};
use crate::check::case::{Case, Finding, Group};
use crate::check::program::Launch;
use crate::check::show::{self, SHOWN};
use crate::check::{CheckError, Options};

/// The pause between the two pieces of a reply.
const PIECE_GAP: Duration = Duration::from_millis(200);
/// How long the client may take to end after its answer is complete.
const EXIT_WITHIN: Duration = Duration::from_secs(5);
/// How long the echo server waits for more from the client.
const CLIENT_QUIET: Duration = Duration::from_secs(5);

const fn case(
    id: &'static str,
    title: &'static str,
    sends: &'static str,
    expects: &'static str,
    explanation: &'static str,
) -> Case {
    Case::required(id, Group::Correct, title, sends, expects, explanation, "client-pieces")
}

const CONNECTS: &str = "The client must connect to the host and port it is given on its command line \
                        (sys.argv), not to ones written into the program.";
const WHOLE: &str = "TCP is a stream: a reply can arrive in pieces, and one recv(1024) returns only \
                     what has arrived so far. Keep calling recv() until you have the whole reply \
                     (as many bytes as you sent, for echo) or until it returns b'' (the server closed, \
                     for daytime).";

/// The echo client's cases.
pub const ECHO_CASES: [Case; 5] = [
    case(
        "client.echo.connects",
        "the client connects to the server it is given",
        "(our server listens on {host}:{port})",
        "a connection within the start-up time",
        CONNECTS,
    ),
    case(
        "client.echo.sends",
        "the client sends a message",
        "(a connection)",
        "some bytes",
        "An echo client sends a message and reads the same bytes back.",
    ),
    case(
        "client.echo.whole-reply",
        "the client prints the whole reply, which arrives in two pieces",
        "the echo, in two pieces 200 ms apart",
        "everything it sent, printed",
        WHOLE,
    ),
    case(
        "client.echo.exits",
        "the client ends once it has its echo",
        "the echo, then a close after the client's",
        "the client exits within 5 s",
        "An echo server closes only after its client does, so a client that \
         reads until recv() returns b'' waits forever. Read as many bytes as you sent, or call \
         sock.shutdown(socket.SHUT_WR) first (\"I have finished sending\") and then read to the end.",
    ),
    no_error("client.echo.no-error"),
];

/// The daytime client's cases.
pub const DAYTIME_CASES: [Case; 4] = [
    case(
        "client.daytime.connects",
        "the client connects to the server it is given",
        "(our server listens on {host}:{port})",
        "a connection within the start-up time",
        CONNECTS,
    ),
    case(
        "client.daytime.whole-line",
        "the client prints the whole line, which arrives in two pieces",
        "the date and time in two pieces 200 ms apart, then a close",
        "the whole line, printed",
        WHOLE,
    ),
    case(
        "client.daytime.exits",
        "the client ends after the server closes",
        "a close after the line",
        "the client exits within 5 s",
        "recv() returns b'' once the server has closed: that is the end of the \
         answer. A loop that does not stop there spins forever.",
    ),
    no_error("client.daytime.no-error"),
];

/// The findings of a client that never connected: the first case fails,
/// the other `cases - 1` cannot be judged.
fn never_connected(server: SocketAddr, options: &Options, cases: usize) -> Vec<Finding> {
    let none = Finding::fail(format!(
        "no connection to {server} within {}",
        humantime::format_duration(options.startup_timeout)
    ));
    std::iter::once(none)
        .chain(std::iter::repeat_with(|| Finding::skip("the client did not connect")).take(cases - 1))
        .collect()
}

/// Accepts the client's connection, for at most the start-up time.
async fn accept(listener: &TcpListener, options: &Options) -> Option<TcpStream> {
    let (stream, _) = tokio::time::timeout(options.startup_timeout, listener.accept()).await.ok()?.ok()?;
    let _ = stream.set_nodelay(true);
    Some(stream)
}

/// Writes `bytes` in two pieces, [`PIECE_GAP`] apart.
async fn in_two_pieces(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let half = bytes.len().div_ceil(2);
    stream.write_all(&bytes[..half]).await?;
    if half < bytes.len() {
        tokio::time::sleep(PIECE_GAP).await;
        stream.write_all(&bytes[half..]).await?;
    }
    Ok(())
}

/// How much of `text` (from its start) appears in `printed`: all of it, or
/// the longest start that does.
fn printed_part<'a>(printed: &str, text: &'a str) -> &'a str {
    let mut end = text.len();
    while end > 0 {
        if text.is_char_boundary(end) && printed.contains(&text[..end]) {
            return &text[..end];
        }
        end -= 1;
    }
    ""
}

/// Judges whether `text` was printed whole.
fn judge_printed(printed: &str, text: &str) -> Finding {
    let part = printed_part(printed, text);
    let shown = Finding::pass().sent(show::text(text, SHOWN)).got(show::text(printed.trim_end(), SHOWN));
    if part.len() == text.len() {
        shown
    } else if part.is_empty() {
        shown.failing("the client did not print the reply")
    } else {
        shown.failing(format!(
            "the client printed only {} of it: it read the first piece and stopped",
            show::text(part, SHOWN)
        ))
    }
}

/// Runs the echo session; the findings in [`ECHO_CASES`] order, except the last.
pub(super) async fn echo_session(
    launch: &Launch,
    server: SocketAddr,
    options: &Options,
) -> Result<(Vec<Finding>, Ending), CheckError> {
    let listener = TcpListener::bind(server).await?;
    let mut client = Client::start(launch, server, false)?;
    let Some(mut stream) = accept(&listener, options).await else {
        let ending = client.finish().await;
        return Ok((never_connected(server, options, 4), ending));
    };
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut closed_by_client = false;
    loop {
        match tokio::time::timeout(CLIENT_QUIET, stream.read(&mut buf)).await {
            Ok(Ok(0)) => {
                closed_by_client = true;
                break;
            }
            Ok(Ok(n)) => {
                received.extend_from_slice(&buf[..n]);
                if in_two_pieces(&mut stream, &buf[..n]).await.is_err() {
                    break;
                }
            }
            // The client is done talking (or went away).
            Ok(Err(_)) | Err(_) => break,
        }
        if client.ended() {
            break;
        }
    }
    if closed_by_client {
        let _ = stream.shutdown().await;
    }
    let exited = client.wait_exit(EXIT_WITHIN).await;
    drop(stream);
    let ending = client.finish().await;
    let text = String::from_utf8_lossy(&received).trim().to_owned();
    let findings = vec![
        Finding::pass(),
        if received.is_empty() {
            Finding::fail("the client sent nothing")
        } else {
            Finding::pass().sent(show::bytes(&received, SHOWN))
        },
        if received.is_empty() {
            Finding::skip("the client sent nothing")
        } else {
            judge_printed(&ending.stdout, &text)
        },
        if exited {
            Finding::pass()
        } else {
            Finding::fail(format!(
                "the client was still running {} after its echo was complete",
                humantime::format_duration(EXIT_WITHIN)
            ))
        },
    ];
    Ok((findings, ending))
}

/// Runs the daytime session; the findings in [`DAYTIME_CASES`] order, except the last.
pub(super) async fn daytime_session(
    launch: &Launch,
    server: SocketAddr,
    options: &Options,
) -> Result<(Vec<Finding>, Ending), CheckError> {
    let listener = TcpListener::bind(server).await?;
    let mut client = Client::start(launch, server, false)?;
    let Some(mut stream) = accept(&listener, options).await else {
        let ending = client.finish().await;
        return Ok((never_connected(server, options, 3), ending));
    };
    let line = crate::daytime::daytime_line(&chrono::Local::now());
    let sent = in_two_pieces(&mut stream, line.as_bytes()).await.is_ok();
    drop(stream);
    let exited = client.wait_exit(EXIT_WITHIN).await;
    let ending = client.finish().await;
    let findings = vec![
        Finding::pass(),
        if sent {
            judge_printed(&ending.stdout, line.trim_end())
        } else {
            Finding::skip("the client closed before the line was sent")
        },
        if exited {
            Finding::pass()
        } else {
            Finding::fail(format!(
                "the client was still running {} after the server closed",
                humantime::format_duration(EXIT_WITHIN)
            ))
        },
    ];
    Ok((findings, ending))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_printed_in_part_is_named() {
        assert!(judge_printed("Received: hello world\n", "hello world").passed());
        let partial = judge_printed("Received: hello\n", "hello world");
        assert!(partial.problem.unwrap().what.contains("\"hello\""));
        assert!(!judge_printed("nothing\n", "hello world").passed());
        assert_eq!(printed_part("Server: Sunday, Decem", "Sunday, December 6"), "Sunday, Decem");
    }
}
