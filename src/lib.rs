//! socketeer: the classic socket-programming curriculum as real, hardened tools.
//!
//! The crate is layered; each layer uses only the ones above it in this list.
//!
//! | layer | modules | touches |
//! |---|---|---|
//! | wire formats and models (pure) | [`chat::protocol`], [`chat::flood`], [`daytime`]'s formats, [`impair::model`], [`impair::options`], [`transfer::packet`], [`stats`] | nothing: bytes, numbers and seeds in, values out |
//! | shared plumbing | [`net`], [`batch`], [`poll`], [`shutdown`], [`server`], [`client`] | sockets, the clock, signals |
//! | engines (sans-IO) | [`impair::link`], [`chat::hub`] (routing), [`transfer`]'s senders and receivers | nothing: time is passed in |
//! | servers, clients and drivers | [`echo`], [`daytime`], [`udp`], [`chat`], [`impair::proxy`], [`transfer::driver`] | sockets |
//! | load generators | [`bench`](mod@bench) | sockets |
//! | the concurrency lab | [`lab`] | threads, child processes, and (for `lab servers`) sockets |
//! | port scanner | [`scan`]: pure port and target syntax, a sans-IO probe scheduler, one epoll reactor per core | sockets, raw sockets (`rawsock`, safe wrappers, no `unsafe`) |
//! | packet capture | [`sniff`]: pure decoding, filters (and their BPF compiler) and pcap formats; one capture loop | an `AF_PACKET` socket (`rawsock`, still no `unsafe`), files |
//!
//! The binary's `cli` module sits on top: it parses arguments, calls the
//! library and formats what it returns. The library never prints; it returns
//! values, logs through `tracing`, and reports failures as typed errors.
//!
//! Every server takes sockets bound by [`net::bind`], implements
//! [`server::Service`] and stops when its [`shutdown::Shutdown`] is triggered,
//! which is how `socketeer serve` runs them all in one process.

pub mod batch;
pub mod bench;
pub mod chat;
pub mod client;
pub mod daytime;
pub mod echo;
pub mod impair;
pub mod lab;
pub mod net;
pub mod plot;
pub mod poll;
mod rawsock;
pub mod scan;
pub mod server;
pub mod services;
pub mod shutdown;
pub mod sniff;
pub mod stats;
pub mod text;
pub mod transfer;
pub mod udp;
pub mod units;
