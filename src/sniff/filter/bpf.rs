//! Compiling a [`Filter`] to classic BPF.

use socket2::SockFilter;

use super::Filter;
use crate::sniff::LinkType;

/// A program accepting `snaplen` bytes of the frames `filter` matches.
pub fn compile(_filter: &Filter, _link: LinkType, _snaplen: u32) -> Option<Vec<SockFilter>> {
    None
}
