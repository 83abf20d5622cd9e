//! Chat: a multi-client broadcast server over a plain TCP line protocol (so
//! `nc` is a full client), its terminal client, and the pieces between.
//!
//! | module | layer | what |
//! |---|---|---|
//! | [`protocol`] | pure | parsing client lines, rendering server lines, sanitizing text |
//! | [`flood`] | pure | the per-client token bucket (time passed in) |
//! | [`hub`] | pure | nicknames, rooms and routing: which lines go to whom |
//! | [`outbox`] | shared state | a client's bounded outbound queue |
//! | `server`, `session` | driver | the accept loop, and one task per client that owns its socket |
//! | [`client`] | driver | the full-duplex client behind `chat join` |
//!
//! How a message travels: the sender's task decodes the line, takes the hub's
//! lock, renders `<nick> text` once into a `Bytes`, and pushes a reference to
//! it into the outbox of every other member of the room (no copies, no socket
//! writes under the lock). Each recipient's task wakes, takes everything its
//! outbox holds and writes it with as few `writev` calls as the socket
//! allows. A client that does not read fills its own outbox and is dropped;
//! the others never wait for it.

pub mod client;
pub mod flood;
pub mod hub;
pub mod outbox;
pub mod protocol;
mod server;
mod session;

pub use client::{ChatClient, Ending};
pub use server::{ChatConfig, ChatServer};

/// The default port of `chat serve`.
pub const DEFAULT_PORT: u16 = 5555;
