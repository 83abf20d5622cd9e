//! `chat join` at a terminal: what others say is printed above the line the
//! user is typing; a lost connection is made again with backoff, under the
//! same nickname, and the half-typed line (and lines entered meanwhile)
//! wait for it.

use std::cell::RefCell;
use std::time::Duration;

use socketeer::chat::flood::RateLimit;
use socketeer::chat::protocol::ServerLine;
use socketeer::chat::{ChatClient, Ending, Received};
use socketeer::client::{ClientError, Timeouts};
use socketeer::net::Target;
use tokio::signal::unix::{SignalKind, signal};

use super::Shown;
use super::terminal::Terminal;

/// The first wait before connecting again; it doubles up to [`MOST_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between tries.
const MOST_BACKOFF: Duration = Duration::from_secs(30);

/// Runs the session at the terminal until the user leaves.
pub(super) async fn join_at_a_terminal(
    client: ChatClient,
    target: &Target,
    timeouts: Timeouts,
    nick: Option<&str>,
    pace: Option<RateLimit>,
) -> anyhow::Result<Ending> {
    let (terminal, mut input) = Terminal::start()?;
    let mut resizes = signal(SignalKind::window_change())?;
    let resized = async {
        while resizes.recv().await.is_some() {
            let _ = terminal.redraw();
        }
    };
    let session = async {
        // The nickname the user chose (with --nick or /nick), asked for again on each reconnection.
        let chosen = RefCell::new(nick.map(str::to_owned));
        let mine = RefCell::new(String::new());
        let mut client = Some(client);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let connection = match client.take() {
                Some(connection) => connection,
                None => match ChatClient::connect(target, timeouts).await {
                    Ok(connection) => connection.paced(pace),
                    Err(e) => {
                        terminal.print(&format!(
                            "(cannot reconnect: {e}; trying again in {}s)",
                            backoff.as_secs()
                        ))?;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MOST_BACKOFF);
                        continue;
                    }
                },
            };
            let wanted = chosen.borrow().clone();
            let show = |got: Received<'_>| {
                follow_own_name(&got.line, &mut mine.borrow_mut(), &mut chosen.borrow_mut());
                terminal.print(&Shown::from(got).to_string())
            };
            let lost = match connection.run(wanted.as_deref(), &mut input, show).await {
                Ok(Ending::Left) => return Ok::<Ending, anyhow::Error>(Ending::Left),
                Ok(Ending::ServerShutDown | Ending::ServerClosed) => {
                    "the server closed the connection".to_owned()
                }
                Err(ClientError::Refused { reason, .. }) => {
                    // Someone took the nickname while we were away: come back as a guest.
                    *chosen.borrow_mut() = None;
                    format!("the server refused the nickname ({reason})")
                }
                Err(ClientError::Output(e)) => return Err(e.into()),
                Err(e) => e.to_string(),
            };
            backoff = FIRST_BACKOFF;
            terminal.print(&format!("({lost}; reconnecting in {}s)", backoff.as_secs()))?;
            tokio::time::sleep(backoff).await;
        }
    };
    tokio::select! {
        ending = session => ending,
        () = resized => Ok(Ending::Left),
    }
}

/// Keeps track of our own nickname: the welcome names us, and a rename of
/// us is a name we chose.
fn follow_own_name(line: &ServerLine<'_>, mine: &mut String, chosen: &mut Option<String>) {
    let ServerLine::Notice(text) = line else { return };
    if let Some(name) = text.strip_prefix("welcome, ").and_then(|rest| rest.split(':').next()) {
        name.clone_into(mine);
    } else if let Some(new) = text.strip_prefix(&format!("{mine} is now known as ")) {
        *chosen = Some(new.to_owned());
        new.clone_into(mine);
    }
}
