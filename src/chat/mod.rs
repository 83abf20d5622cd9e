//! Chat: a multi-client broadcast server over a plain TCP line protocol (so
//! `nc` is a full client), its terminal client, and the pieces between.
//!
//! | module | layer | what |
//! |---|---|---|
//! | [`protocol`] | pure | parsing client lines, rendering server lines, sanitizing text |
//! | [`flood`] | pure | the per-client token bucket (time passed in) |
//! | [`hub`] | pure | nicknames, rooms and routing: which lines go to whom |
//! | [`delivery`] | shared state | room logs, private outboxes, and each client's mailbox |
//! | `server`, `session` | driver | the accept loop, and one task per client that owns its socket |
//! | [`irc`] | driver (its `wire` and `render`: pure) | IRC clients in the same rooms |
//! | [`web`] | driver (its `http`, `frames` and `json`: pure) | the web page and its WebSocket (`chat serve --http`) |
//! | [`cluster`] | driver | several servers as one chat, through Redis (`chat serve --redis`) |
//! | [`client`] | driver | the full-duplex client behind `chat join` |
//!
//! How a message travels: the sender's task decodes the line, takes the hub's
//! lock, renders `<nick> text` once, and appends it to the room's log (one
//! append, whatever the room's size; no socket is written under a lock).
//! The append wakes the members that were waiting; each member's task copies
//! the new lines from the log into its write buffer and writes them with one
//! system call. A client that does not read falls behind the log and is
//! dropped; the others never wait for it, and it costs no memory meanwhile.

mod admission;
pub mod client;
pub mod cluster;
pub mod delivery;
pub mod flood;
pub mod hub;
pub mod irc;
pub mod protocol;
mod server;
mod session;
pub mod web;

pub use admission::{CONNECT_RATE, address_key};
pub use client::{ChatClient, Ending, Received};
pub use cluster::ClusterConfig;
pub use server::{ChatConfig, ChatServer};
pub use web::WebConfig;

/// The default port of `chat serve`.
pub const DEFAULT_PORT: u16 = 5555;
