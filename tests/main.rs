//! Integration tests: the real binary over loopback, and real peers (nc, inetd).
#![allow(clippy::unwrap_used, missing_docs)]

mod bench;
mod chat;
mod chat_cluster;
mod chat_cluster_edges;
mod chat_irc;
mod chat_irssi;
mod chat_join;
mod chat_limits;
mod chat_terminal;
mod cli;
mod course;
mod daytime;
mod echo;
mod impair;
mod lab;
mod lab_net;
mod layers;
mod peer_text;
mod peers;
mod scan;
mod serve;
mod sniff;
mod transfer;
mod udp;
mod util;
