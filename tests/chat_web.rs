//! The chat in a real browser (issue 17): headless Chromium, driven over
//! the DevTools protocol, opens the page that `chat serve --http` serves;
//! two browser users and one `nc` user talk, hostile text stays text, the
//! page reconnects under its nickname, and a screenshot is taken.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::chat::{WAIT, server};
use crate::chat_cluster::{Redis, node};
use crate::chat_irc::PyIrc;
use crate::util::{Daemon, eventually, require};

/// How long the browser may take to start, load or show something.
const SHOWN: Duration = Duration::from_secs(30);

/// Headless Chromium with its DevTools endpoint, killed when dropped.
struct Browser {
    child: Child,
    devtools: WebSocket<TcpStream>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        require("chromium", "chromium");
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx.recv_timeout(SHOWN).expect("chromium did not open its DevTools endpoint");
        let addr: SocketAddr = url.trim_start_matches("ws://").split('/').next().unwrap().parse().unwrap();
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(SHOWN)).unwrap();
        let (devtools, _) = tungstenite::client(url.as_str(), stream).unwrap();
        Browser { child, devtools, next_id: 0, _profile: profile }
    }

    /// Sends a DevTools command (to a page's session, if given) and returns its result.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let mut command = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        self.devtools.send(Message::text(command.to_string())).unwrap();
        loop {
            let Message::Text(text) = self.devtools.read().unwrap() else { continue };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == self.next_id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// A new tab, in a browser context of its own (its own storage: another user), at `url`.
    fn open(&mut self, url: &str) -> Tab {
        let context = self.call(None, "Target.createBrowserContext", json!({}))["browserContextId"].clone();
        let target = self.call(None, "Target.createTarget", json!({"url": url, "browserContextId": context}));
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        Tab { session: attached["sessionId"].as_str().unwrap().to_owned() }
    }

    /// Evaluates `expression` in `tab` and returns its value.
    fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        let result = self.call(Some(&tab.session), "Runtime.evaluate", params);
        assert!(result.get("exceptionDetails").is_none(), "{expression}: {result}");
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in `tab` (an expression that throws,
    /// on a page still loading, is not true yet).
    fn wait_until(&mut self, tab: &Tab, expression: &str) {
        let guarded = format!(
            "(() => {{ try {{ return ({expression}) === true; }} catch (_) {{ return false; }} }})()"
        );
        let shown = eventually(SHOWN, || self.eval(tab, &guarded) == json!(true));
        let log = self.lines(tab);
        assert!(shown, "never true: {expression}; the page shows {log:#?}");
    }

    /// Types `text` into the message box and presses Enter, as a user does.
    fn type_line(&mut self, tab: &Tab, text: &str) {
        self.eval(tab, "document.getElementById('line').focus(), true");
        self.call(Some(&tab.session), "Input.insertText", json!({"text": text}));
        for kind in ["keyDown", "keyUp"] {
            let key = json!({"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"});
            self.call(Some(&tab.session), "Input.dispatchKeyEvent", key);
        }
    }

    /// The lines the page shows, as text.
    fn lines(&mut self, tab: &Tab) -> Vec<String> {
        let lines = self.eval(tab, "[...document.querySelectorAll('#log li')].map((li) => li.textContent)");
        lines
            .as_array()
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// Waits until the page shows a line with every one of `parts`.
    fn wait_for_line(&mut self, tab: &Tab, parts: &[&str]) {
        let parts = serde_json::to_string(parts).unwrap();
        let expression = format!(
            "[...document.querySelectorAll('#log li')].some((li) => {parts}.every((p) => li.textContent.includes(p)))"
        );
        self.wait_until(tab, &expression);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page, in its own tab.
struct Tab {
    session: String,
}

/// `nc` as a chat client: lines in, lines out.
struct Nc {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Nc {
    fn connect(addr: SocketAddr) -> Nc {
        require("nc", "netcat-openbsd");
        let mut child = Command::new("nc")
            .args([&addr.ip().to_string(), &addr.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Nc { child, stdin, lines }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
    }

    fn expect(&mut self, wanted: &str) {
        self.expect_matching(|line| line == wanted);
    }

    fn expect_matching(&mut self, wanted: impl Fn(&str) -> bool) {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) if wanted(&line) => return,
                Ok(line) => seen.push(line),
                Err(_) => panic!("nc: not what was expected; got {seen:#?}"),
            }
        }
    }
}

impl Drop for Nc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn page_url(server: &Daemon) -> String {
    format!("http://{}/", server.addr("chat-web", "tcp"))
}

#[test]
fn two_browser_users_and_an_nc_user_talk_and_hostile_text_stays_text() {
    let server = server(&["--http", "0"]);
    let mut carol = Nc::connect(server.addr("chat", "tcp"));
    carol.send("/nick carol");
    carol.expect("*** guest1 is now known as carol");
    let mut browser = Browser::start();
    let (alice, bob) = (browser.open(&page_url(&server)), browser.open(&page_url(&server)));
    for (tab, nick) in [(&alice, "alice"), (&bob, "bob")] {
        browser.wait_until(tab, "document.getElementById('status').textContent === 'connected'");
        browser.type_line(tab, &format!("/nick {nick}"));
        // The page joins as a guest at once (it asks who is here), then takes its name.
        carol.expect_matching(|line| {
            line.starts_with("*** guest") && line.ends_with(&format!(" is now known as {nick}"))
        });
    }
    browser.wait_until(&alice, "[...document.querySelectorAll('#people li')].map((li) => li.textContent).join(' ') === 'alice bob carol'");

    browser.type_line(&alice, "hello from alice");
    carol.expect("<alice> hello from alice");
    browser.wait_for_line(&bob, &["alice", "hello from alice"]);
    carol.send("hi browsers");
    browser.wait_for_line(&alice, &["carol", "hi browsers"]);
    browser.wait_for_line(&bob, &["carol", "hi browsers"]);
    browser.type_line(&bob, "/msg alice psst");
    browser.wait_for_line(&alice, &["*bob*", "psst"]);
    browser.type_line(&bob, "/me waves");
    carol.expect("* bob waves");

    // An IRC user in the same room.
    let mut dave = PyIrc::connect(&server, "dave");
    carol.expect("*** dave joined lobby");
    browser.type_line(&alice, "hello dave");
    dave.expect_text("pubmsg", "alice", "hello dave");
    dave.send("privmsg #lobby hello browsers");
    browser.wait_for_line(&alice, &["dave", "hello browsers"]);
    carol.expect("<dave> hello browsers");
    dave.send("quit");
    carol.expect("*** dave left lobby");

    // Markup and a right-to-left override from nc arrive as the characters they are.
    let hostile = "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\"> abc\u{202e}fed";
    carol.send(hostile);
    browser.wait_for_line(&bob, &["<script>window.pwned = 1</script><img src=x onerror=", "abc<U+202E>fed"]);
    assert_eq!(browser.eval(&bob, "typeof window.pwned"), json!("undefined"));
    assert_eq!(browser.eval(&bob, "document.querySelectorAll('#log img, #log script').length"), json!(0));
    assert_eq!(browser.eval(&bob, "document.body.innerText.includes('\\u202e')"), json!(false));

    // A dropped connection comes back under the same nickname.
    browser.eval(&alice, "socket.close(), true");
    browser.wait_until(&alice, "document.getElementById('status').textContent.startsWith('disconnected')");
    browser.wait_until(
        &alice,
        "document.getElementById('status').textContent === 'connected' && me === 'alice'",
    );
    carol.send("/who");
    carol.expect("*** in lobby (3): alice bob carol");

    let shot = browser.call(Some(&alice.session), "Page.captureScreenshot", json!({"format": "png"}));
    let png = data_encoding::BASE64.decode(shot["data"].as_str().unwrap().as_bytes()).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/chat-web.png");
    std::fs::write(target, png).unwrap();
}

#[test]
fn the_page_is_self_contained_and_foreign_pages_may_not_use_the_socket() {
    let server = server(&["--http", "0", "--max-line", "100"]);
    let addr = server.addr("chat-web", "tcp");
    let get = |request: &str| {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = std::io::Read::read_to_string(&mut stream, &mut response);
        response
    };
    let page = get("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("Content-Security-Policy: default-src 'none'; script-src 'sha256-"), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("src=\""),
        "fetches nothing"
    );
    let upgrade = |origin: &str| {
        format!(
            "GET /chat HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n\r\n"
        )
    };
    assert!(get(&upgrade("https://evil.example")).starts_with("HTTP/1.1 403"));
    assert!(get("GET /nothing HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));

    // The page's own origin gets the chat; a message over --max-line is refused with 1009.
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let request = tungstenite::http::Request::builder()
        .uri(format!("ws://{addr}/chat"))
        .header("Host", addr.to_string())
        .header("Origin", format!("http://{addr}"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", tungstenite::handshake::client::generate_key())
        .body(())
        .unwrap();
    let (mut socket, _) = tungstenite::client(request, stream).unwrap();
    let Message::Text(welcome) = socket.read().unwrap() else { panic!("no welcome") };
    let welcome: Value = serde_json::from_str(welcome.as_str()).unwrap();
    assert_eq!(welcome["type"], "welcome");
    socket.send(Message::text("x".repeat(101))).unwrap();
    let closed = loop {
        match socket.read() {
            Ok(Message::Close(frame)) => break frame,
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    let frame = closed.unwrap();
    assert_eq!(u16::from(frame.code), 1009, "{frame:?}");
}

#[test]
fn a_browser_an_irc_user_and_an_nc_user_on_two_nodes_of_a_cluster() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a", &["--http", "0"]), node(&redis, "b", &[]));
    let mut carol = Nc::connect(b.addr("chat", "tcp"));
    carol.send("/nick carol");
    carol.expect("*** guest1.b is now known as carol");
    let mut dave = PyIrc::connect(&b, "dave");
    dave.expect("endofnames", |_| true);
    let mut browser = Browser::start();
    let alice = browser.open(&page_url(&a));
    browser.wait_until(&alice, "document.getElementById('status').textContent === 'connected'");
    browser.type_line(&alice, "/nick alice");
    carol.expect_matching(|line| line.ends_with(" is now known as alice"));
    browser.type_line(&alice, "hello from node a");
    carol.expect("<alice> hello from node a");
    dave.expect_text("pubmsg", "alice", "hello from node a");
    carol.send("hello from node b");
    browser.wait_for_line(&alice, &["carol", "hello from node b"]);
    dave.send("privmsg alice psst from irc");
    browser.wait_for_line(&alice, &["*dave*", "psst from irc"]);
    browser.wait_until(&alice, "document.querySelectorAll('#people li').length === 3");
}
