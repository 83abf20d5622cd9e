//! The hub's behaviour, read through real mailboxes.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::BytesMut;

use super::*;

/// Records what the hub hands to its backplane: "room: line" for lines
/// (a `+` after the room when the history keeps it), and the other calls
/// as words. Claims are granted at once.
#[derive(Clone, Default)]
struct Published(Rc<RefCell<Vec<String>>>);

impl Published {
    fn lines(&self) -> Vec<String> {
        self.0
            .borrow()
            .iter()
            .filter(|l| !l.starts_with("present ") && !l.starts_with("tell "))
            .cloned()
            .collect()
    }

    fn others(&self) -> Vec<String> {
        self.0
            .borrow()
            .iter()
            .filter(|l| l.starts_with("present ") || l.starts_with("tell "))
            .cloned()
            .collect()
    }
}

impl Backplane for Published {
    fn published(&self, room: &Arc<str>, line: &Bytes, kept: bool) {
        let kept = if kept { "+" } else { "" };
        self.0.borrow_mut().push(format!("{room}{kept}: {}", String::from_utf8_lossy(line)));
    }

    fn present(&self, id: ClientId, nick: &str, room: Option<&str>) {
        self.0.borrow_mut().push(format!("present {id} {nick} {}", room.unwrap_or("-")));
    }

    fn tell(&self, node: &str, nick: &str, line: &Bytes) {
        self.0.borrow_mut().push(format!("tell {node} {nick} {}", String::from_utf8_lossy(line)));
    }

    fn claim(&self, _id: ClientId, _nick: &str) -> Option<Claim> {
        Some(Box::pin(std::future::ready(Ok(()))))
    }
}

/// When the tests' lines are said.
fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T18:46:00Z").unwrap().with_timezone(&Utc)
}

/// Everything a mailbox has for its client, line by line.
fn take(mailbox: &mut Mailbox) -> Vec<String> {
    let mut buf = BytesMut::new();
    mailbox.collect(&mut buf, usize::MAX).unwrap();
    String::from_utf8(buf.to_vec()).unwrap().split_inclusive('\n').map(str::to_owned).collect()
}

struct Fixture {
    hub: Hub<Published>,
    mailboxes: Vec<Mailbox>,
    published: Published,
    /// What a move to another room already collected, per client.
    pending: HashMap<ClientId, String>,
}

impl Fixture {
    /// Connects client `id`, and announces it.
    fn connect(&mut self, id: ClientId) -> Mailbox {
        let mailbox = self.hub.connect(id, Arc::new(Outbox::new(1 << 20)));
        self.hub.announce(id);
        mailbox
    }

    fn join(&mut self, id: ClientId, room: &str) -> Result<(), HubError> {
        let seat = self.hub.join(id, room)?;
        let mut buf = BytesMut::new();
        self.mailboxes[id as usize].move_to(seat.log, seat.cursor, &mut buf).unwrap();
        // Lines due from the old room come before the new room's.
        let mut rest = BytesMut::new();
        self.mailboxes[id as usize].collect(&mut rest, usize::MAX).unwrap();
        buf.extend_from_slice(&rest);
        let left_over = String::from_utf8(buf.to_vec()).unwrap();
        self.pending.insert(id, left_over);
        Ok(())
    }

    fn take(&mut self, id: ClientId) -> Vec<String> {
        let mut lines: Vec<String> =
            self.pending.remove(&id).unwrap_or_default().split_inclusive('\n').map(str::to_owned).collect();
        lines.extend(take(&mut self.mailboxes[id as usize]));
        lines
    }

    fn clear(&mut self) {
        for id in 0..self.mailboxes.len() as u64 {
            self.take(id);
        }
        self.published.0.borrow_mut().clear();
    }
}

/// A hub with `n` clients (ids 0..n) in the lobby, everything so far read.
fn hub_with(n: u64, history: usize) -> Fixture {
    let published = Published::default();
    let config = HubConfig { history, ..HubConfig::default() };
    let hub = Hub::new(config, published.clone());
    let mut f = Fixture { hub, mailboxes: Vec::new(), published, pending: HashMap::new() };
    for id in 0..n {
        let mailbox = f.connect(id);
        f.mailboxes.push(mailbox);
    }
    f.clear();
    f
}

#[test]
fn a_newcomer_is_welcomed_and_announced() {
    let mut f = hub_with(2, 0);
    let mut newcomer = f.connect(7);
    assert_eq!(f.hub.nick(7), Some("guest7"));
    assert_eq!(
        take(&mut newcomer),
        ["*** welcome, guest7: you are in lobby with 2 others; /help lists the commands\n"]
    );
    assert_eq!(f.take(0), ["*** guest7 joined lobby\n"]);
    assert_eq!(f.take(1), ["*** guest7 joined lobby\n"]);
    assert_eq!(f.published.lines(), ["lobby: *** guest7 joined lobby\n"]);
    assert_eq!(f.published.others(), ["present 7 guest7 lobby"]);
}

#[test]
fn a_message_reaches_everyone_else_once() {
    let mut f = hub_with(3, 0);
    f.hub.say(0, "hello", at());
    assert_eq!(f.take(0), Vec::<String>::new(), "not echoed to the sender");
    assert_eq!(f.take(1), ["<guest0> hello\n"]);
    assert_eq!(f.take(2), ["<guest0> hello\n"]);
    assert_eq!(f.take(2), Vec::<String>::new(), "once");
    assert_eq!(f.published.lines(), ["lobby+: <guest0> hello\n"]);
}

#[test]
fn nicknames_are_unique_up_to_case_and_freed_on_disconnect() {
    let mut f = hub_with(3, 0);
    f.hub.rename(0, "Alice").unwrap();
    assert_eq!(f.take(0), ["*** guest0 is now known as Alice\n"]);
    assert_eq!(f.take(1), ["*** guest0 is now known as Alice\n"]);
    assert_eq!(f.hub.rename(1, "aLICE"), Err(HubError::NickTaken("aLICE".to_owned())));
    f.hub.rename(0, "alice").expect("a client may change the case of its own nickname");
    assert!(matches!(f.hub.rename(1, "bad nick"), Err(HubError::BadName(_))));
    f.hub.disconnect(0, Some("gone"), true);
    assert_eq!(f.take(1).last().unwrap(), "*** alice left lobby (gone)\n");
    f.hub.rename(1, "ALICE").expect("free again once its owner left");
    assert_eq!(f.hub.nick(1), Some("ALICE"));
    // A guest name someone took by hand is skipped.
    f.hub.rename(2, "guest9").unwrap();
    f.connect(9);
    assert_eq!(f.hub.nick(9), Some("guest9-1"));
}

#[test]
fn rooms_keep_their_traffic_to_themselves() {
    let mut f = hub_with(4, 0);
    f.join(0, "#rust").unwrap();
    assert_eq!(f.take(0), ["*** you are in rust with no one else\n"]);
    assert_eq!(f.take(1), ["*** guest0 left lobby\n"]);
    f.join(1, "RUST").unwrap();
    assert_eq!(f.take(0), ["*** guest1 joined rust\n"]);
    assert_eq!(f.take(1), ["*** you are in rust with 1 other\n"]);
    f.hub.say(0, "in rust", at());
    f.hub.say(2, "in the lobby", at());
    assert_eq!(f.take(1), ["<guest0> in rust\n"]);
    assert_eq!(f.take(3), ["*** guest0 left lobby\n", "*** guest1 left lobby\n", "<guest2> in the lobby\n"]);
    assert_eq!(f.hub.join(1, "rust").unwrap_err(), HubError::AlreadyThere("rust".to_owned()));
    // The room goes when its last member leaves; the lobby stays.
    f.hub.disconnect(0, None, true);
    f.hub.disconnect(1, None, true);
    assert!(!f.hub.rooms.contains_key("rust"));
    f.hub.disconnect(2, None, true);
    f.hub.disconnect(3, None, true);
    assert!(f.hub.rooms.contains_key("lobby") && f.hub.clients.is_empty());
}

#[test]
fn lines_sent_before_a_move_still_arrive_first() {
    let mut f = hub_with(2, 0);
    f.hub.say(1, "last words in the lobby", at());
    f.join(0, "elsewhere").unwrap();
    assert_eq!(
        f.take(0),
        ["<guest1> last words in the lobby\n", "*** you are in elsewhere with no one else\n"]
    );
}

#[test]
fn private_messages_cross_rooms_and_unknown_nicks_are_errors() {
    let mut f = hub_with(2, 0);
    f.join(1, "elsewhere").unwrap();
    f.clear();
    f.hub.tell(0, "GUEST1", "psst").unwrap();
    assert_eq!(f.take(1), ["*guest0* psst\n"]);
    assert_eq!(f.take(0), ["-> *guest1* psst\n"]);
    assert_eq!(f.hub.tell(0, "nobody", "x"), Err(HubError::NoSuchNick("nobody".to_owned())));
    assert!(f.published.0.borrow().is_empty(), "private lines to local clients stay local");
}

#[test]
fn private_lines_keep_their_order_with_room_lines() {
    let mut f = hub_with(3, 0);
    f.hub.say(0, "to the room", at());
    f.hub.tell(0, "guest1", "then to you").unwrap();
    f.hub.say(0, "then the room again", at());
    assert_eq!(
        f.take(1),
        ["<guest0> to the room\n", "*guest0* then to you\n", "<guest0> then the room again\n"]
    );
}

#[test]
fn history_is_replayed_to_whoever_joins() {
    let mut f = hub_with(1, 2);
    for text in ["one", "two", "three"] {
        f.hub.say(0, text, at());
    }
    f.hub.act(0, "waves", at());
    let mut late = f.connect(5);
    let got = take(&mut late);
    assert_eq!(
        got[..2],
        ["[2026-11-22T18:46:00Z] <guest0> three\n", "[2026-11-22T18:46:00Z] * guest0 waves\n"]
    );
    assert!(got[2].starts_with("*** welcome, guest5"));
    assert_eq!(got.len(), 3);
}

#[test]
fn who_lists_the_room_sorted_and_wraps_long_lists() {
    let mut f = hub_with(3, 0);
    f.hub.rename(2, "Adam").unwrap();
    f.clear();
    f.hub.who(0);
    assert_eq!(f.take(0), ["*** in lobby (3): Adam guest0 guest1\n"]);
    let mut f = hub_with(200, 0);
    f.hub.who(0);
    let lines = f.take(0);
    assert!(
        lines.len() > 1 && lines.iter().all(|l| l.len() < crate::chat::protocol::notices::LIST_LINE + 50),
        "{lines:?}"
    );
    let names = lines.iter().flat_map(|l| l.trim_end().split(' ').skip(4)).count();
    assert_eq!(names, 200);
}

#[test]
fn disconnects_keep_the_member_lists_consistent() {
    let mut f = hub_with(6, 0);
    for id in [1, 4, 0] {
        f.hub.disconnect(id, None, false);
    }
    f.clear();
    f.hub.say(5, "still here?", at());
    // Those gone no longer read; those here hear it once, but the sender.
    let heard: Vec<_> = [2, 3, 5].into_iter().map(|id| f.take(id).len()).collect();
    assert_eq!(heard, [1, 1, 0]);
    assert_eq!(f.hub.clients.len(), 3);
    for (id, client) in &f.hub.clients {
        assert_eq!(f.hub.rooms[&client.room].members[client.slot], *id);
    }
}

#[test]
fn the_backplane_hears_every_change_of_nickname_and_room() {
    let mut f = hub_with(1, 0);
    assert!(f.hub.claim(0, "alice").unwrap().is_some(), "a new name is claimed");
    f.hub.rename(0, "alice").unwrap();
    assert!(f.hub.claim(0, "ALICE").unwrap().is_none(), "a change of case needs no claim");
    f.hub.rename(0, "ALICE").unwrap();
    f.join(0, "rust").unwrap();
    f.hub.act(0, "waves", at());
    f.hub.disconnect(0, None, true);
    assert_eq!(
        f.published.others(),
        [
            "present 0 guest0 -",
            "present 0 alice lobby",
            "present 0 ALICE lobby",
            "present 0 ALICE rust",
            "present 0 ALICE -",
        ]
    );
    assert_eq!(
        f.published.lines(),
        [
            "lobby: *** guest0 is now known as alice\n",
            "lobby: *** alice is now known as ALICE\n",
            "lobby: *** ALICE left lobby\n",
            "rust: *** ALICE joined rust\n",
            "rust+: * ALICE waves\n",
            "rust: *** ALICE left rust\n",
        ]
    );
}

#[test]
fn members_of_other_servers_count_everywhere_a_member_does() {
    let mut f = hub_with(1, 0);
    assert_eq!(f.hub.remote_present("n2", "Bob", Some("lobby")), None, "the lobby was here");
    assert_eq!(f.hub.remote_present("n2", "carol", Some("Rust")), Some("rust".to_owned()));
    f.hub.who(0);
    assert_eq!(f.take(0), ["*** in lobby (2): Bob guest0\n"]);
    assert!(matches!(f.hub.claim(0, "BOB"), Err(HubError::NickTaken(nick)) if nick == "BOB"));
    assert_eq!(f.hub.rename(0, "carol"), Err(HubError::NickTaken("carol".to_owned())));
    f.join(0, "rust").unwrap();
    assert_eq!(f.take(0), ["*** you are in Rust with 1 other\n"]);
    // Lines from elsewhere reach every local member; the history keeps messages.
    f.hub.remote_line("rust", Bytes::from_static(b"<carol> hi\n"), true, at());
    f.hub.remote_line("nowhere", Bytes::from_static(b"<x> lost\n"), true, at());
    assert_eq!(f.take(0), ["<carol> hi\n"]);
    assert_eq!(f.hub.rooms["rust"].history.len(), 0, "no history asked for");
    // Private lines go to the member's server.
    f.hub.tell(0, "bob", "psst").unwrap();
    assert_eq!(f.take(0), ["-> *Bob* psst\n"]);
    assert_eq!(f.published.others().last().unwrap(), "tell n2 bob *guest0* psst\n");
    f.hub.remote_tell(&protocol::fold("guest0"), &Bytes::from_static(b"*Bob* back\n"));
    assert_eq!(f.take(0), ["*Bob* back\n"]);
    assert!(f.published.lines().iter().all(|l| !l.contains("carol") && !l.contains("Bob")), "not sent back");
}

#[test]
fn a_room_lasts_while_anyone_anywhere_is_in_it() {
    let mut f = hub_with(1, 2);
    f.hub.remote_present("n2", "carol", Some("rust"));
    f.hub.remote_line("rust", Bytes::from_static(b"<carol> one\n"), true, at());
    f.hub.remote_present("n2", "carol", Some("go"));
    assert!(!f.hub.rooms.contains_key("rust"), "emptied by the move");
    assert!(f.hub.rooms.contains_key("go"));
    f.hub.remote_present("n3", "dave", Some("go"));
    f.hub.remote_line("go", Bytes::from_static(b"<dave> two\n"), true, at());
    f.hub.remote_present("n2", "carol", None);
    f.hub.remote_present("n2", "dave", None);
    assert!(f.hub.rooms.contains_key("go"), "dave is n3's: n2 cannot take him out");
    let mut late = f.connect(5);
    f.hub.join(5, "go").unwrap();
    let mut buf = BytesMut::new();
    late.collect(&mut buf, usize::MAX).unwrap();
    assert!(String::from_utf8_lossy(&buf).contains("<dave> two\n*** you are in go with 1 other"), "{buf:?}");
    assert_eq!(f.hub.remote_node("n3", &[]), Vec::<String>::new());
    assert_eq!(f.hub.remote_nodes().len(), 0);
}

#[test]
fn a_server_that_is_gone_takes_its_members_with_it() {
    let mut f = hub_with(1, 0);
    f.hub.remote_node("n2", &[("bob".into(), "lobby".into()), ("eve".into(), "lobby".into())]);
    f.hub.remote_node("n3", &[("carol".into(), "lobby".into())]);
    assert_eq!(f.hub.remote_nodes().into_iter().collect::<Vec<_>>(), ["n2", "n3"]);
    // A hello with fewer members: the missing one is gone, quietly.
    f.hub.remote_node("n2", &[("bob".into(), "lobby".into())]);
    assert_eq!(f.hub.remote_gone("n2"), 1);
    assert_eq!(f.take(0), ["*** bob left lobby (server gone)\n"]);
    assert!(f.published.0.borrow().is_empty(), "each server tells its own clients");
    f.hub.who(0);
    assert_eq!(f.take(0), ["*** in lobby (2): carol guest0\n"]);
}

#[test]
fn a_client_that_lost_its_nickname_is_a_guest_again() {
    let mut f = hub_with(2, 0);
    f.hub.rename(0, "alice").unwrap();
    f.clear();
    f.hub.lose_nick(0, "bob");
    assert_eq!(f.hub.nick(0), Some("alice"), "not its nickname: nothing happens");
    f.hub.lose_nick(0, "alice");
    assert_eq!(f.hub.nick(0), Some("guest0"));
    let told = f.take(0);
    assert_eq!(told[0], "*** alice is now known as guest0\n");
    assert!(told[1].starts_with("! someone on another server holds the nickname alice"), "{told:?}");
    assert_eq!(f.take(1), ["*** alice is now known as guest0\n"]);
}

#[test]
fn history_from_before_a_server_followed_the_room_goes_first() {
    let mut f = hub_with(1, 3);
    f.hub.say(0, "mine", at());
    let line = |text: &'static str| Bytes::from_static(text.as_bytes());
    f.hub.seed_history(
        "lobby",
        vec![(at(), line("<x> 1\n")), (at(), line("<x> 2\n")), (at(), line("<x> 3\n"))],
    );
    let history: Vec<_> =
        f.hub.rooms["lobby"].history.iter().map(|(_, l)| String::from_utf8_lossy(l).into_owned()).collect();
    assert_eq!(history, ["<x> 2\n", "<x> 3\n", "<guest0> mine\n"]);
}

#[test]
fn cluster_guest_names_carry_the_node() {
    let config = HubConfig { guest_suffix: ".n1".to_owned(), ..HubConfig::default() };
    let mut hub = Hub::new(config, Published::default());
    hub.remote_present("n2", "guest1.n1", Some("lobby"));
    hub.connect(1, Arc::new(Outbox::new(1 << 20)));
    hub.connect(2, Arc::new(Outbox::new(1 << 20)));
    assert_eq!((hub.nick(1), hub.nick(2)), (Some("guest1.n1-1"), Some("guest2.n1")));
}

#[test]
fn a_newcomer_is_heard_of_only_once_announced() {
    let mut f = hub_with(1, 0);
    let mut quick = f.hub.connect(7, Arc::new(Outbox::new(1 << 20)));
    assert!(take(&mut quick)[0].starts_with("*** welcome, guest7"));
    f.hub.rename(7, "alice").unwrap();
    assert_eq!(take(&mut quick), ["*** guest7 is now known as alice\n"], "told only to itself");
    f.hub.disconnect(7, None, true);
    assert_eq!(f.take(0), Vec::<String>::new(), "came and went unannounced: nothing said");
    assert!(f.published.0.borrow().is_empty(), "nor told to the other servers");

    let _stays = f.hub.connect(8, Arc::new(Outbox::new(1 << 20)));
    f.hub.rename(8, "bob").unwrap();
    f.hub.announce(8);
    f.hub.announce(8);
    assert_eq!(f.take(0), ["*** bob joined lobby\n"], "once, under its name");
    assert_eq!(f.published.others(), ["present 8 bob lobby"]);
}

#[test]
fn a_private_message_to_oneself_comes_once() {
    let mut f = hub_with(2, 0);
    f.hub.rename(0, "alice").unwrap();
    f.clear();
    f.hub.tell(0, "ALICE", "note to self").unwrap();
    assert_eq!(f.take(0), ["*alice* note to self\n"]);
    assert_eq!(f.take(1), Vec::<String>::new());
}

#[test]
fn look_alike_nicknames_are_taken() {
    let mut f = hub_with(2, 0);
    f.hub.rename(0, "alice").unwrap();
    for lookalike in ["\u{430}lice", "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}", "ALICE"] {
        assert_eq!(f.hub.rename(1, lookalike), Err(HubError::NickTaken(lookalike.to_owned())), "{lookalike}");
    }
    f.hub.remote_present("n2", "b\u{43e}b", Some("lobby"));
    assert!(matches!(f.hub.claim(1, "bob"), Err(HubError::NickTaken(_))), "across servers too");
}
