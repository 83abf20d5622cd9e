//! The values of host, net, port and portrange primitives: addresses (with
//! libpcap's short forms), host names, port numbers and service names.

use std::net::{IpAddr, Ipv4Addr};

use super::super::Layer;
use super::super::lex::Token;
use super::super::names::{ServicePorts, dotted_ipv4, number};
use super::primitive::{fits, mask_prefix, masked};
use super::{FilterError, Parser};

impl Parser<'_, '_> {
    /// The networks a `host` or `net` value names, with their prefixes. A
    /// full address is a host; libpcap's short forms keep the bits given
    /// (`host 10.1` and `net 10.1` are 10.1.0.0/16), a plain number is an
    /// address for `host` and a short network for `net` (`net 10` is
    /// 10.0.0.0/8); `/LEN` and `mask MASK` may follow; a name is looked up.
    pub(super) fn addresses(
        &mut self,
        token: Option<Token<'_>>,
        family: Option<Layer>,
        net: bool,
    ) -> Result<Vec<(IpAddr, u8)>, FilterError> {
        let text = token.map_or("", |t| t.text);
        let lower = text.to_ascii_lowercase();
        let literal: Option<(IpAddr, u8)> = if let Ok(addr) = text.parse::<IpAddr>() {
            Some((addr, if addr.is_ipv4() { 32 } else { 128 }))
        } else if let Some((value, bits)) = dotted_ipv4(&lower) {
            Some((Ipv4Addr::from(value).into(), bits))
        } else if let Some(mut value) = number(&lower) {
            let mut bits = 32u8;
            if net {
                // libpcap promotes a short network number: 10 is 10.0.0.0/8.
                while value != 0 && value & 0xff00_0000 == 0 {
                    value <<= 8;
                    bits -= 8;
                }
            }
            Some((Ipv4Addr::from(value).into(), bits))
        } else {
            None
        };
        let Some((addr, mut bits)) = literal else {
            return self.host_name(token, family, net);
        };
        if self.peek_is(&["/"]) {
            self.bump();
            let length = self.bump();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            bits = length
                .and_then(|t| t.text.parse::<u8>().ok())
                .filter(|&b| b <= max)
                .ok_or_else(|| self.error(length, &format!("a prefix length from 0 to {max} after '/'")))?;
        } else if self.peek_is(&["mask"]) {
            self.bump();
            let mask = self.bump();
            let prefix = match (addr, mask.and_then(|t| t.text.parse::<Ipv4Addr>().ok())) {
                (IpAddr::V4(_), Some(mask)) => mask_prefix(mask),
                _ => None,
            };
            bits = prefix.ok_or_else(|| {
                self.error(mask, "an IPv4 netmask of contiguous bits such as 255.255.0.0 after 'mask'")
            })?;
        }
        if masked(addr, bits) != addr {
            let hint = format!("a network address without host bits: {}/{bits}", masked(addr, bits));
            return Err(self.error(token, &hint));
        }
        if !fits(family, addr) {
            let (kind, name) = match family {
                Some(Layer::Ip6) => ("IPv6", "ip6"),
                Some(layer) => ("IPv4", layer.name()),
                None => ("IP", ""),
            };
            return Err(self.error(token, &format!("an {kind} address after '{name}'")));
        }
        Ok(vec![(addr, bits)])
    }

    /// A host name's addresses of `family`, as libpcap's `host NAME` takes
    /// all of them.
    fn host_name(
        &mut self,
        token: Option<Token<'_>>,
        family: Option<Layer>,
        net: bool,
    ) -> Result<Vec<(IpAddr, u8)>, FilterError> {
        let text = token.map_or("", |t| t.text);
        let name_like = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            && text.bytes().any(|b| b.is_ascii_alphabetic());
        if net || !name_like {
            let expected = if net {
                "a network such as 10.0.0.0/8, 10.1 or fd00::/64"
            } else {
                "an IPv4 or IPv6 address, or a host name"
            };
            return Err(self.error(token, expected));
        }
        let addresses: Vec<(IpAddr, u8)> = self
            .names
            .host(text)
            .into_iter()
            .filter(|&addr| fits(family, addr))
            .map(|addr| (addr, if addr.is_ipv4() { 32 } else { 128 }))
            .collect();
        if addresses.is_empty() {
            return Err(self.fail(token, "unknown host (no address of that kind in /etc/hosts or DNS)"));
        }
        Ok(addresses)
    }

    /// A port number or service name, and the transport it narrows to, by
    /// libpcap's rule: a name the database lists for TCP and UDP alike is
    /// any transport's; for one of them, that one's; `udp port NAME` of a
    /// TCP-only name is an error.
    pub(super) fn port(
        &self,
        token: Option<Token<'_>>,
        text: &str,
        proto: Option<Layer>,
    ) -> Result<(Option<Layer>, u16), FilterError> {
        if let Some(n) = number(&text.to_ascii_lowercase()) {
            let port = u16::try_from(n).map_err(|_| self.fail(token, &format!("port {n} is over 65535")))?;
            return Ok((proto, port));
        }
        let ServicePorts { tcp, udp, sctp } = self.names.service(text);
        let unknown = || self.error(token, "a port number or a service name from /etc/services");
        let listed = |layer: Layer| {
            self.fail(token, &format!("port '{text}' is {} only in the services database", layer.name()))
        };
        match proto {
            Some(Layer::Tcp) => tcp
                .map(|p| (proto, p))
                .ok_or_else(|| if udp.is_some() { listed(Layer::Udp) } else { unknown() }),
            Some(Layer::Udp) => udp
                .map(|p| (proto, p))
                .ok_or_else(|| if tcp.is_some() { listed(Layer::Tcp) } else { unknown() }),
            Some(_) => sctp.map(|p| (proto, p)).ok_or_else(unknown),
            None => match (tcp, udp) {
                (Some(t), Some(u)) if t == u => Ok((None, t)),
                (Some(t), _) => Ok((Some(Layer::Tcp), t)),
                (None, Some(u)) => Ok((Some(Layer::Udp), u)),
                (None, None) => sctp.map(|p| (Some(Layer::Sctp), p)).ok_or_else(unknown),
            },
        }
    }

    /// `FIRST-LAST`, numbers or names, in either order (libpcap swaps them).
    pub(super) fn port_range(
        &self,
        token: Option<Token<'_>>,
        text: &str,
        proto: Option<Layer>,
    ) -> Result<(Option<Layer>, u16, u16), FilterError> {
        let bad = || self.error(token, "a port range such as 8000-8100");
        // Service names may hold dashes: try each split.
        for (at, _) in text.match_indices('-') {
            let (a, b) = (&text[..at], &text[at + 1..]);
            if a.is_empty() || b.is_empty() {
                continue;
            }
            if let (Ok((pa, first)), Ok((pb, last))) =
                (self.port(token, a, proto), self.port(token, b, proto))
            {
                let proto = if pa == pb { pa } else { proto };
                return Ok((proto, first.min(last), first.max(last)));
            }
        }
        Err(bad())
    }
}
