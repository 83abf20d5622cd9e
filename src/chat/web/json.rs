//! Chat lines as the web page reads them (pure): one JSON object per line,
//! whose `type` says what it is, with the same names as `chat join --json`
//! (`message`, `private`, `private_sent`, `action`, `notice`, `error`),
//! and the notices about people and rooms in structured form (`welcome`,
//! `here`, `joined`, `left`, `renamed`, `who`, `rooms`), so the page keeps
//! its lists of rooms and people without reading English.
//!
//! Every string is the chat's own text, already sanitized; the page puts
//! it in the document as text, never as markup.

use serde_json::{Value, json};

use crate::chat::protocol::notices::Notice;
use crate::chat::protocol::{ServerLine, split_replayed};

/// The JSON object for one chat line (without its `\n`); `None` for a
/// `PING`, which is a WebSocket ping instead.
pub fn event(line: &str) -> Option<Value> {
    let (at, line) = split_replayed(line);
    let mut event = match ServerLine::parse(line) {
        ServerLine::Message { from, text } => json!({"type": "message", "from": from, "text": text}),
        ServerLine::Action { from, text } => json!({"type": "action", "from": from, "text": text}),
        ServerLine::Private { from, text } => json!({"type": "private", "from": from, "text": text}),
        ServerLine::PrivateSent { to, text } => json!({"type": "private_sent", "to": to, "text": text}),
        ServerLine::Notice(text) => notice(text),
        ServerLine::Error(text) => json!({"type": "error", "text": text}),
        ServerLine::Ping(_) => return None,
        ServerLine::Other(text) => json!({"type": "notice", "text": text}),
    };
    if let (Some(at), Some(object)) = (at, event.as_object_mut()) {
        object.insert("at".to_owned(), json!(at));
    }
    Some(event)
}

fn notice(text: &str) -> Value {
    match Notice::parse(text) {
        Notice::Welcome { nick, room, others } => {
            json!({"type": "welcome", "nick": nick, "room": room, "others": others})
        }
        Notice::Here { room, others } => json!({"type": "here", "room": room, "others": others}),
        Notice::Joined { nick, room } => json!({"type": "joined", "nick": nick, "room": room, "text": text}),
        Notice::Left { nick, room, reason } => {
            json!({"type": "left", "nick": nick, "room": room, "reason": reason, "text": text})
        }
        Notice::Renamed { old, new } => json!({"type": "renamed", "old": old, "new": new, "text": text}),
        Notice::Who { room, count, nicks } => {
            json!({"type": "who", "room": room, "count": count, "nicks": nicks})
        }
        Notice::Rooms { count, rooms } => {
            let rooms: Vec<Value> =
                rooms.iter().map(|(name, size)| json!({"name": name, "size": size})).collect();
            json!({"type": "rooms", "count": count, "rooms": rooms})
        }
        Notice::Other(text) => json!({"type": "notice", "text": text}),
    }
}

/// The page's last message: why the connection ends.
pub fn bye(text: &str) -> String {
    json!({"type": "bye", "text": text}).to_string()
}

/// Whether `line` is the page's last message (see [`bye`]).
pub fn is_bye(line: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|value| value["type"] == "bye")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::{self, notices};

    fn of(line: &bytes::Bytes) -> Value {
        event(std::str::from_utf8(line).unwrap().trim_end()).unwrap()
    }

    #[test]
    fn lines_become_typed_objects() {
        assert_eq!(
            of(&protocol::message("bob", "<script>")),
            json!({"type": "message", "from": "bob", "text": "<script>"})
        );
        assert_eq!(of(&protocol::private_sent("bob", "x"))["to"], "bob");
        assert_eq!(of(&notices::joined("bob", "lobby"))["type"], "joined");
        assert_eq!(of(&notices::left("bob", "lobby", Some("gone")))["reason"], "gone");
        assert_eq!(of(&notices::who("lobby", &["a", "b"])[0])["nicks"], json!(["a", "b"]));
        assert_eq!(of(&notices::rooms(&[("lobby", 2)])[0])["rooms"], json!([{"name": "lobby", "size": 2}]));
        assert_eq!(of(&notices::welcome("guest1", "lobby", 0))["nick"], "guest1");
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T18:46:00Z").unwrap().to_utc();
        assert_eq!(
            of(&protocol::replayed(at, &protocol::message("bob", "old")))["at"],
            "2026-11-22T18:46:00Z"
        );
        assert_eq!(event("PING 3"), None);
        assert!(is_bye(&bye("server shutting down")));
        assert!(!is_bye(r#"{"type":"message","text":"\"type\":\"bye\"}"}"#));
    }
}
