//! IRC clients (irssi, weechat, hexchat...) in the chat's rooms.
//!
//! A connection to the chat port whose first line is an IRC client's
//! registration (`CAP`, `PASS`, `NICK`, `USER`: see
//! [`identify`](crate::chat::protocol::identify)) is served as IRC from then
//! on, by the same session that serves line clients, with the same limits:
//!
//! - what the client sends is read here ([`Irc::read`]): a command either
//!   becomes the chat request it stands for (`PRIVMSG #lobby` is a message,
//!   `NICK` is `/nick`, `JOIN` is `/join`, `NAMES` is `/who`...), and goes
//!   through the same code as a line client's, or it is answered here (WHOIS,
//!   PING, CAP...), or refused with a numeric that says why;
//! - what it is sent is rendered from chat lines by [`render::View`].
//!
//! A room is a channel (`lobby` is `#lobby`), and, as in the chat, a client
//! is always in exactly one: registration puts it in the default room, and
//! `JOIN` of another moves it there (it is told it parted the old one).
//!
//! | module | layer | what |
//! |---|---|---|
//! | [`wire`] | pure | reading and writing IRC lines, numerics |
//! | [`render`] | pure | chat lines into IRC, and what the client has been told |
//! | this one | servers | reading commands into chat requests and replies |

pub mod render;
pub mod wire;

use bytes::Bytes;

use self::render::{Awaited, SERVER, View, channel};
use self::wire::{Message, numeric};
use crate::chat::hub::{Backplane, ClientId, Hub, HubError};
use crate::chat::protocol::{self, NameError, Request, notices};
use crate::text::sanitize;

/// The capabilities offered in `CAP LS` (IRCv3); `multi-prefix` costs
/// nothing (no one here has a channel prefix).
const CAPABILITIES: [&str; 2] = ["multi-prefix", "server-time"];

/// What a command from the client comes to.
#[derive(Debug)]
pub enum Step<'a> {
    /// Whatever this chat request does for a line client.
    Request(Request<'a>),
    /// These lines, already rendered, for the client (none: nothing to say).
    Reply(Vec<Bytes>),
    /// `/join` of the default room: `PART` of any other.
    Home,
}

/// One IRC client's state: see the module docs.
#[derive(Debug, Default)]
pub struct Irc {
    /// What the client has been told.
    pub view: View,
    /// The nickname it last asked for.
    wanted: Option<String>,
    /// `USER` was given.
    user: bool,
    /// Capability negotiation is open (registration waits for `CAP END`).
    negotiating: bool,
    /// The command being handled, for the numeric of a refusal.
    command: String,
    /// Its argument (a nickname, a channel).
    argument: String,
    /// Lines for the client after the command's own.
    after: Vec<Bytes>,
}

impl Irc {
    /// A client whose first line has just identified it as IRC.
    pub fn new() -> Irc {
        Irc::default()
    }

    fn target(&self) -> &str {
        &self.view.nick
    }

    fn numeric(&self, code: u16, middle: &[&str], text: &str) -> Bytes {
        numeric(SERVER, code, self.target(), middle, text)
    }

    /// Reads one line from the client.
    pub fn read<'a, B: Backplane>(&mut self, line: &'a str, hub: &Hub<B>, id: ClientId) -> Step<'a> {
        let message = match Message::parse(line) {
            Ok(message) => message,
            Err(_) => return Step::Reply(vec![]),
        };
        self.command = message.command.to_ascii_uppercase();
        self.argument = message.param(0).unwrap_or_default().to_owned();
        let command = self.command.clone();
        match command.as_str() {
            "CAP" => Step::Reply(self.cap(&message)),
            // No passwords here; never relayed.
            "PASS" => Step::Reply(vec![]),
            "NICK" => match message.param(0).filter(|n| !n.is_empty()) {
                Some(nick) if hub.nick(id) == Some(nick) && self.view.registered => Step::Reply(vec![]),
                Some(nick) => {
                    self.wanted = Some(nick.to_owned());
                    Step::Request(Request::Nick(nick))
                }
                None => Step::Reply(vec![self.numeric(wire::ERR_NONICKNAMEGIVEN, &[], "No nickname given")]),
            },
            "USER" if self.view.registered => {
                Step::Reply(vec![self.numeric(wire::ERR_ALREADYREGISTRED, &[], "You may not reregister")])
            }
            "USER" if message.params.len() < 4 => Step::Reply(vec![self.need_more("USER")]),
            "USER" => {
                self.user = true;
                Step::Reply(vec![])
            }
            "PING" => {
                let token = message.param(0).unwrap_or(SERVER);
                Step::Reply(vec![wire::line(SERVER, "PONG", &[SERVER], Some(token))])
            }
            "PONG" => Step::Request(Request::Pong),
            "QUIT" => Step::Request(Request::Quit(message.param(0).filter(|r| !r.is_empty()))),
            _ if !self.view.registered => {
                Step::Reply(vec![self.numeric(wire::ERR_NOTREGISTERED, &[], "You have not registered")])
            }
            _ => self.registered(&command, &message, hub, id),
        }
    }

    /// A command only a registered client may send.
    fn registered<'a, B: Backplane>(
        &mut self,
        command: &str,
        message: &Message<'a>,
        hub: &Hub<B>,
        id: ClientId,
    ) -> Step<'a> {
        let here = hub.room_of(id).unwrap_or_default().to_owned();
        let reply = |lines: Vec<Bytes>| Step::Reply(lines);
        match command {
            "PRIVMSG" | "NOTICE" => self.privmsg(message, &here),
            "JOIN" => self.join(message, &here),
            "PART" => match message.param(0).map(|c| c.split(',').next().unwrap_or(c)) {
                None => reply(vec![self.need_more("PART")]),
                Some(chan) if !is_here(chan, &here) => {
                    reply(vec![self.numeric(wire::ERR_NOTONCHANNEL, &[chan], "You're not on that channel")])
                }
                Some(chan) if protocol::fold(&here) == protocol::fold(hub.default_room()) => {
                    reply(vec![self.numeric(
                        wire::ERR_CHANOPRIVSNEEDED,
                        &[chan],
                        "Everyone is in one channel at a time here: JOIN another to leave this one",
                    )])
                }
                Some(_) => {
                    self.view.expect(Awaited::Join);
                    Step::Home
                }
            },
            "NAMES" => match message.param(0) {
                Some(chan) if !is_here(chan, &here) => reply(vec![self.numeric(
                    wire::RPL_ENDOFNAMES,
                    &[chan],
                    "End of NAMES list",
                )]),
                _ => {
                    self.view.expect(Awaited::Names);
                    Step::Request(Request::Who)
                }
            },
            "WHO" => self.who(message.param(0), &here, hub),
            "WHOIS" => reply(self.whois(message.params.last().copied(), hub)),
            "WHOWAS" => reply(vec![
                self.numeric(wire::ERR_WASNOSUCHNICK, &[&self.argument], "There was no such nickname"),
                self.numeric(wire::RPL_ENDOFWHOWAS, &[&self.argument], "End of WHOWAS"),
            ]),
            "ISON" => {
                let online: Vec<String> =
                    message.params.iter().flat_map(|p| p.split(' ')).filter_map(|n| hub.find(n)).map(|f| f.nick).collect();
                reply(vec![self.numeric(wire::RPL_ISON, &[], &online.join(" "))])
            }
            "USERHOST" => {
                let found: Vec<String> = message
                    .params
                    .iter()
                    .filter_map(|n| hub.find(n))
                    .map(|f| format!("{}=+{}@chat", f.nick, f.nick))
                    .collect();
                reply(vec![self.numeric(wire::RPL_USERHOST, &[], &found.join(" "))])
            }
            "LIST" => {
                self.view.expect(Awaited::List);
                Step::Request(Request::List)
            }
            "TOPIC" => match (message.param(0), message.param(1)) {
                (None, _) => reply(vec![self.need_more("TOPIC")]),
                (Some(chan), _) if !is_here(chan, &here) => {
                    reply(vec![self.numeric(wire::ERR_NOTONCHANNEL, &[chan], "You're not on that channel")])
                }
                (Some(chan), None) => reply(vec![self.numeric(wire::RPL_NOTOPIC, &[chan], "No topic is set")]),
                (Some(chan), Some(_)) => reply(vec![self.numeric(
                    wire::ERR_CHANOPRIVSNEEDED,
                    &[chan],
                    "Topics cannot be set on this server",
                )]),
            },
            "MODE" => reply(vec![self.mode(message, &here)]),
            "MOTD" => reply(vec![self.numeric(wire::ERR_NOMOTD, &[], "MOTD File is missing")]),
            "VERSION" => reply(vec![self.numeric(
                wire::RPL_VERSION,
                &[concat!("socketeer-", env!("CARGO_PKG_VERSION")), SERVER],
                "a socketeer chat server",
            )]),
            "TIME" => {
                let now = chrono::Utc::now().to_rfc2822();
                reply(vec![self.numeric(wire::RPL_TIME, &[SERVER], &now)])
            }
            _ => reply(vec![self.numeric(
                wire::ERR_UNKNOWNCOMMAND,
                &[command],
                "Unknown command: this server speaks the IRC of a chat (JOIN, PART, PRIVMSG, NOTICE, NICK, NAMES, \
                 WHO, WHOIS, LIST, TOPIC, MODE, PING, QUIT), without operators, modes or services",
            )]),
        }
    }

    fn need_more(&self, command: &str) -> Bytes {
        self.numeric(wire::ERR_NEEDMOREPARAMS, &[command], "Not enough parameters")
    }

    fn cap(&mut self, message: &Message<'_>) -> Vec<Bytes> {
        let target = if self.view.registered { self.view.nick.clone() } else { "*".to_owned() };
        let sub = message.param(0).unwrap_or_default().to_ascii_uppercase();
        let cap = |sub: &str, caps: &str| wire::line(SERVER, "CAP", &[&target, sub], Some(caps));
        match sub.as_str() {
            "LS" => {
                self.negotiating = !self.view.registered;
                vec![cap("LS", &CAPABILITIES.join(" "))]
            }
            "REQ" => {
                self.negotiating = !self.view.registered;
                let asked = message.param(1).unwrap_or_default();
                let known = asked.split(' ').filter(|c| !c.is_empty()).all(|c| CAPABILITIES.contains(&c));
                if !known {
                    return vec![cap("NAK", asked)];
                }
                if asked.split(' ').any(|c| c == "server-time") {
                    self.view.server_time = true;
                }
                vec![cap("ACK", asked)]
            }
            "LIST" => vec![cap("LIST", if self.view.server_time { "server-time" } else { "" })],
            "END" => {
                self.negotiating = false;
                vec![]
            }
            _ => vec![self.numeric(410, &[&sub], "Invalid CAP command")],
        }
    }

    fn privmsg<'a>(&mut self, message: &Message<'a>, here: &str) -> Step<'a> {
        let notice = self.command == "NOTICE";
        let (Some(target), Some(text)) = (message.param(0), message.param(1)) else {
            return match (notice, message.param(0)) {
                (true, _) => Step::Reply(vec![]),
                (false, None) => {
                    Step::Reply(vec![self.numeric(wire::ERR_NORECIPIENT, &[], "No recipient given")])
                }
                (false, Some(_)) => {
                    Step::Reply(vec![self.numeric(wire::ERR_NOTEXTTOSEND, &[], "No text to send")])
                }
            };
        };
        // NOTICE never gets an automatic reply (RFC 1459 §4.4.2), refusals included.
        let refuse = |irc: &Irc, code: u16, text: &str| match notice {
            true => Step::Reply(vec![]),
            false => Step::Reply(vec![irc.numeric(code, &[target], text)]),
        };
        if text.is_empty() {
            return refuse(self, wire::ERR_NOTEXTTOSEND, "No text to send");
        }
        if target.contains(',') {
            return refuse(self, wire::ERR_TOOMANYTARGETS, "One target at a time");
        }
        let ctcp = wire::ctcp(text);
        if target.starts_with('#') {
            if !is_here(target, here) {
                return refuse(self, wire::ERR_CANNOTSENDTOCHAN, "You are not in that channel");
            }
            return match ctcp {
                Some(("ACTION", action)) if !action.is_empty() => Step::Request(Request::Act(action)),
                Some((kind, _)) => refuse(
                    self,
                    wire::ERR_CANNOTSENDTOCHAN,
                    &format!("CTCP {} is not supported here", sanitize(kind)),
                ),
                None => Step::Request(Request::Say(text)),
            };
        }
        match ctcp {
            Some((kind, _)) => refuse(
                self,
                wire::ERR_NOSUCHNICK,
                &format!("CTCP {} to a person is not supported here; send a plain message", sanitize(kind)),
            ),
            None => Step::Request(Request::Tell { to: target, text }),
        }
    }

    fn join<'a>(&mut self, message: &Message<'a>, here: &str) -> Step<'a> {
        let Some(channels) = message.param(0) else { return Step::Reply(vec![self.need_more("JOIN")]) };
        let mut wanted = channels.split(',').filter(|c| !c.is_empty());
        let Some(first) = wanted.next() else { return Step::Reply(vec![self.need_more("JOIN")]) };
        // The first channel is joined; the others are refused (after it).
        self.after = wanted
            .map(|extra| {
                self.numeric(wire::ERR_TOOMANYCHANNELS, &[extra], "Everyone is in one channel at a time here")
            })
            .collect();
        let Some(room) = first.strip_prefix('#') else {
            return Step::Reply(vec![self.numeric(
                wire::ERR_NOSUCHCHANNEL,
                &[first],
                "Channel names start with #",
            )]);
        };
        if is_here(first, here) {
            return Step::Reply(vec![]);
        }
        self.view.expect(Awaited::Join);
        Step::Request(Request::Join(room))
    }

    fn who<'a, B: Backplane>(&mut self, mask: Option<&str>, here: &str, hub: &Hub<B>) -> Step<'a> {
        let mask = mask.unwrap_or("*");
        if mask == "*" || is_here(mask, here) {
            self.view.expect(Awaited::Who);
            return Step::Request(Request::Who);
        }
        let mut lines = Vec::new();
        if let Some(found) = hub.find(mask) {
            let chan = channel(&found.room);
            let nick = found.nick.as_str();
            let server = found.node.as_deref().unwrap_or(SERVER);
            lines.push(self.numeric(
                wire::RPL_WHOREPLY,
                &[&chan, nick, "chat", server, nick, "H"],
                &format!("0 {nick}"),
            ));
        }
        lines.push(self.numeric(wire::RPL_ENDOFWHO, &[mask], "End of WHO list"));
        Step::Reply(lines)
    }

    fn whois<B: Backplane>(&self, nick: Option<&str>, hub: &Hub<B>) -> Vec<Bytes> {
        let Some(nick) = nick else {
            return vec![self.numeric(wire::ERR_NONICKNAMEGIVEN, &[], "No nickname given")];
        };
        let Some(found) = hub.find(nick) else {
            return vec![
                self.numeric(wire::ERR_NOSUCHNICK, &[nick], "No such nick/channel"),
                self.numeric(wire::RPL_ENDOFWHOIS, &[nick], "End of WHOIS list"),
            ];
        };
        let who = found.nick.as_str();
        let server = match &found.node {
            Some(node) => format!("node {node} of this chat"),
            None => "this chat server".to_owned(),
        };
        vec![
            self.numeric(wire::RPL_WHOISUSER, &[who, who, "chat", "*"], who),
            self.numeric(wire::RPL_WHOISSERVER, &[who, found.node.as_deref().unwrap_or(SERVER)], &server),
            self.numeric(wire::RPL_WHOISCHANNELS, &[who], &channel(&found.room)),
            self.numeric(wire::RPL_ENDOFWHOIS, &[who], "End of WHOIS list"),
        ]
    }

    fn mode(&self, message: &Message<'_>, here: &str) -> Bytes {
        let target = message.param(0).unwrap_or_default();
        let change = message.param(1);
        if !target.starts_with('#') {
            return match change {
                None => self.numeric(wire::RPL_UMODEIS, &[], "+"),
                Some(_) => self.numeric(wire::ERR_UMODEUNKNOWNFLAG, &[], "User modes are not supported here"),
            };
        }
        if !is_here(target, here) {
            return self.numeric(wire::ERR_NOTONCHANNEL, &[target], "You're not on that channel");
        }
        match change {
            None => self.numeric(wire::RPL_CHANNELMODEIS, &[target], "+nt"),
            Some("b" | "+b") if message.params.len() == 2 => {
                self.numeric(wire::RPL_ENDOFBANLIST, &[target], "End of channel ban list")
            }
            Some(_) => {
                self.numeric(wire::ERR_CHANOPRIVSNEEDED, &[target], "Channel modes cannot be changed here")
            }
        }
    }

    /// Whether registration is complete but the client not yet welcomed:
    /// it has the nickname it asked for, gave `USER`, and ended capability
    /// negotiation.
    pub fn ready<B: Backplane>(&self, hub: &Hub<B>, id: ClientId) -> bool {
        let named = match (&self.wanted, hub.nick(id)) {
            (Some(wanted), Some(nick)) => protocol::fold(wanted) == protocol::fold(nick),
            _ => false,
        };
        !self.view.registered && named && self.user && !self.negotiating
    }

    /// Lines for the client that follow what its last command did.
    pub fn take_after(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.after)
    }

    /// Whether the client is still registering.
    pub fn registering(&self) -> bool {
        !self.view.registered
    }

    /// Welcomes a client whose registration is complete: the lines that
    /// open an IRC session, ending with the chat's notice that the client
    /// is in its room (which the view renders as its `JOIN`). The caller
    /// then asks the hub for the room's names, which complete the join.
    pub fn welcome<B: Backplane>(&mut self, hub: &Hub<B>, id: ClientId) -> Vec<Bytes> {
        let nick = hub.nick(id).unwrap_or_default().to_owned();
        let (room, others) =
            hub.members(id).map_or(("", 0), |(room, nicks)| (room, nicks.len().saturating_sub(1)));
        let room = room.to_owned();
        let n = |code, middle: &[&str], text: &str| numeric(SERVER, code, &nick, middle, text);
        let support = format!(
            "CHANTYPES=# CASEMAPPING=ascii NICKLEN={0} CHANNELLEN={0} NETWORK=socketeer",
            protocol::MAX_NAME + 1
        );
        let mut lines = vec![
            n(wire::RPL_WELCOME, &[], &format!("Welcome to the socketeer chat, {nick}")),
            n(
                wire::RPL_YOURHOST,
                &[],
                &format!("Your host is {SERVER}, running socketeer {}", env!("CARGO_PKG_VERSION")),
            ),
            n(wire::RPL_CREATED, &[], "This server speaks IRC into the chat's rooms"),
            n(wire::RPL_MYINFO, &[SERVER, env!("CARGO_PKG_VERSION"), "i", "nt"], "i nt"),
        ];
        let mut params: Vec<&str> = support.split(' ').collect();
        params.push("are supported by this server");
        let (text, middle) = params.split_last().map_or(("", &[][..]), |(t, m)| (*t, m));
        lines.push(n(wire::RPL_ISUPPORT, middle, text));
        lines.push(n(wire::ERR_NOMOTD, &[], "MOTD File is missing"));
        lines.push(notices::here(&room, others));
        self.view.registered = true;
        self.view.nick = nick;
        self.view.expect(Awaited::Join);
        lines
    }

    /// A refusal of the hub's, as the numeric for the command it answers.
    pub fn refusal(&self, e: &HubError) -> Bytes {
        let text = sanitize(&e.to_string()).into_owned();
        let argument = self.argument.as_str();
        match e {
            HubError::NickTaken(_) => self.numeric(wire::ERR_NICKNAMEINUSE, &[argument], &text),
            HubError::BadName(
                NameError::BadChar { kind: "nickname", .. } | NameError::Length { kind: "nickname", .. },
            ) => self.numeric(wire::ERR_ERRONEUSNICKNAME, &[argument], &text),
            HubError::BadName(_) => self.numeric(wire::ERR_BADCHANNAME, &[argument], &text),
            HubError::NoSuchNick(nick) => self.numeric(wire::ERR_NOSUCHNICK, &[&sanitize(nick)], &text),
            HubError::Unreachable => self.numeric(wire::ERR_UNAVAILRESOURCE, &[argument], &text),
            HubError::AlreadyThere(_) | HubError::NotConnected => Bytes::new(),
        }
    }

    /// The last words to a client that is leaving, as IRC's `ERROR`.
    pub fn goodbye(&self, reason: &str) -> Bytes {
        Bytes::from(format!("ERROR :Closing link: {}\n", sanitize(reason)))
    }
}

/// Whether `chan` (`#room`) names the room `here`.
fn is_here(chan: &str, here: &str) -> bool {
    chan.strip_prefix('#').is_some_and(|room| protocol::fold(room) == protocol::fold(here))
}
