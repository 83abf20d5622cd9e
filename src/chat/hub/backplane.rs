//! The boundary between a hub and the other servers of a cluster.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{ClientId, HubError};

/// Where a hub's traffic meets other servers'. A standalone server has none
/// ([`Standalone`]); a cluster's backplane (such as
/// [`RedisBackplane`](crate::chat::cluster::RedisBackplane)) forwards what it is
/// given to the other nodes, and the engine behind it applies what they send
/// through the hub's `remote_*` methods. Every method is called with the
/// hub's lock held and must not block.
pub trait Backplane {
    /// `line` was broadcast in the room whose folded name is `room` and
    /// appended to the room's log here: messages, actions, and join, leave
    /// and rename notices. `kept` when the room's history keeps it.
    fn published(&self, room: &Arc<str>, line: &Bytes, kept: bool);
    /// Client `id` goes by `nick` in `room` (its display name) from now on;
    /// or, with `None`, no longer goes by `nick` (it left, or took another).
    fn present(&self, id: ClientId, nick: &str, room: Option<&str>);
    /// `line` is for `nick`, a client of node `node`.
    fn tell(&self, node: &str, nick: &str, line: &Bytes);
    /// Reserves `nick` for client `id` among the other servers, before the
    /// hub renames it; `None` when there is no one to ask. The claim is
    /// awaited without the hub's lock.
    fn claim(&self, id: ClientId, nick: &str) -> Option<Claim>;
}

/// A nickname being reserved among the other servers: see [`Backplane::claim`].
pub type Claim = BoxFuture<'static, Result<(), HubError>>;

/// No other servers: nothing to forward.
#[derive(Clone, Copy, Debug, Default)]
pub struct Standalone;

impl Backplane for Standalone {
    fn published(&self, _room: &Arc<str>, _line: &Bytes, _kept: bool) {}
    fn present(&self, _id: ClientId, _nick: &str, _room: Option<&str>) {}
    fn tell(&self, _node: &str, _nick: &str, _line: &Bytes) {}
    fn claim(&self, _id: ClientId, _nick: &str) -> Option<Claim> {
        None
    }
}
