//! irssi, the IRC client people use, in the chat (issue 17): started in a
//! tmux session of the test's own, typed into with `send-keys` and read
//! with `capture-pane`, talking with a line client in one room.

use std::process::{Command, Output};
use std::time::Duration;

use crate::chat::{Client, server};
use crate::util::{eventually, require};

/// How long irssi may take to show something (it starts, connects, draws).
const SHOWN: Duration = Duration::from_secs(30);

/// A tmux server of the test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        require("tmux", "tmux");
        let tmux = Tmux { socket: format!("socketeer-test-{}", std::process::id()) };
        let started = tmux.run(&["new-session", "-d", "-s", "chat", "-x", "160", "-y", "40", command]);
        assert!(started.status.success(), "tmux: {}", String::from_utf8_lossy(&started.stderr));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .unwrap()
    }

    /// Types `text` and presses Enter.
    fn type_line(&self, text: &str) {
        assert!(self.run(&["send-keys", "-t", "chat", "-l", text]).status.success());
        assert!(self.run(&["send-keys", "-t", "chat", "Enter"]).status.success());
    }

    /// What the window shows now, with the recent scrollback.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "chat", "-S", "-200"]).stdout)
            .into_owned()
    }

    /// Waits until the window shows `text`.
    fn wait_for(&self, text: &str) {
        let mut screen = String::new();
        let shown = eventually(SHOWN, || {
            screen = self.screen();
            screen.contains(text)
        });
        assert!(shown, "irssi never showed {text:?}; the screen:\n{screen}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn irssi_and_a_line_user_talk_in_one_room() {
    require("irssi", "irssi");
    let server = server(&[]);
    let mut bob = Client::named(&server, "bob");
    let home = tempfile::tempdir().unwrap();
    let addr = server.addr("chat", "tcp");
    let irssi =
        format!("irssi --home={} -n alice -c {} -p {}", home.path().display(), addr.ip(), addr.port());
    let tmux = Tmux::start(&irssi);
    // Registration puts alice in #lobby: irssi opens its window.
    bob.expect("*** alice joined lobby");
    tmux.wait_for("Welcome to the socketeer chat, alice");
    tmux.type_line("/window goto #lobby");
    tmux.wait_for("[#lobby]");

    bob.send("hello irssi <script>alert(1)</script>");
    tmux.wait_for("hello irssi <script>alert(1)</script>");
    tmux.type_line("hi from irssi");
    bob.expect("<alice> hi from irssi");
    tmux.type_line("/me waves");
    bob.expect("* alice waves");
    bob.send("/me waves back");
    tmux.wait_for("bob waves back");
    tmux.type_line("/msg bob psst");
    bob.expect("*alice* psst");
    tmux.type_line("/names");
    tmux.wait_for("Total of 2 nicks");
    tmux.type_line("/nick alicia");
    bob.expect("*** alice is now known as alicia");
    tmux.type_line("/quit see you");
    bob.expect("*** alicia left lobby (see you)");
}
