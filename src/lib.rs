//! socketeer: the classic socket-programming curriculum as real, hardened tools.
//!
//! The crate is layered. Each row of this table is a layer, from the bottom
//! up; a module uses only its own layer and the ones above it here, and no
//! two top-level modules use each other. `tests/layers.rs` reads this table
//! and checks every path in the code against it, so the table is the rule.
//!
//! | layer | modules | touches |
//! |---|---|---|
//! | foundations (pure) | [`units`], [`rtt`] (RFC 6298's estimator, for the transfer sender and the scanner), [`text`], [`stats`], [`services`], [`plot`], [`bpf`] | nothing: values in, values out |
//! | wire formats and models (pure) | [`chat::protocol`], [`chat::flood`], [`chat::irc::wire`], [`chat::irc::render`], [`chat::web::http`], [`chat::web::frames`], [`chat::web::json`], [`impair::model`], [`impair::options`], [`transfer`] (its root: protocols and errors), [`transfer::packet`], [`transfer::seq`], [`transfer::name`], [`sniff`] (its root: frames and link types), [`sniff::decode`], [`sniff::filter`], [`sniff::pcap`], [`sniff::stats`], [`scan::ports`], [`scan::targets`], [`scan::packet`], `scan::payloads`, [`net::Transport`], [`net::Endpoint`], [`net::MAX_UDP_PAYLOAD`] | nothing: bytes, numbers and seeds in, values out |
//! | engines (sans-IO) | [`impair::link`], [`chat::hub`], [`chat::delivery`], [`transfer::window`], [`transfer::stop_and_wait`], [`transfer::go_back_n`], [`transfer::selective_repeat`], [`transfer::sender`], [`transfer::receiver`], [`transfer::endpoint`], `transfer::sim` (their tests), [`scan::schedule`], [`scan::report`] | nothing: time is passed in |
//! | shared plumbing | [`net`], [`netns`], [`batch`], [`poll`], [`shutdown`], [`server`], [`client`], [`process`], `rawsock` (raw IP sockets through safe wrappers) | sockets, the clock, signals, `/proc`, network namespaces |
//! | servers, clients and drivers | [`echo`], [`daytime`], [`udp`], [`chat`], [`impair`], [`transfer::driver`], [`transfer::session`], [`scan`], [`sniff::capture`] | sockets, threads, files |
//! | load generators | [`bench`](mod@bench) | sockets |
//! | the lab | [`lab`] | threads, child processes, sockets on loopback, and (as root) network namespaces of its own |
//! | the grader | [`check`] | sockets, the programs it grades (child processes), `/proc` |
//!
//! `unsafe` code is denied everywhere (the binary forbids it outright); a
//! module that needs it for an OS interface no crate wraps safely is listed
//! in `tests/layers.rs`, which also requires a `// SAFETY:` comment over each
//! block.
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
pub mod bpf;
pub mod chat;
pub mod check;
pub mod client;
pub mod daytime;
pub mod echo;
pub mod impair;
pub mod lab;
pub mod net;
pub mod netns;
pub mod plot;
pub mod poll;
pub mod process;
mod rawsock;
pub mod rtt;
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
