//! The filter language's parser: words and parentheses, recursive descent.
//! As in libpcap, `and` and `or` bind equally and group from the left
//! (`icmp or udp and port 9` is `(icmp or udp) and port 9`); `not` binds
//! tightest.

use std::net::IpAddr;

use super::{Dir, Filter, Primitive, ProtoName};
use crate::services;

/// A filter that does not parse, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad filter at {}: {problem}", at(.word, *.position))]
pub struct FilterError {
    /// The offending word; `None` at the end of the filter.
    pub word: Option<String>,
    /// Its byte offset in the filter text.
    pub position: usize,
    /// What is wrong: usually "expected" what would have been right there.
    pub problem: String,
}

fn at(word: &Option<String>, position: usize) -> String {
    match word {
        Some(word) => format!("'{word}' (character {})", position + 1),
        None => "the end".to_owned(),
    }
}

const PRIMITIVES: &str =
    "tcp, udp, icmp, icmp6, arp, ip, ip6, host, net, port, portrange, src, dst, less, greater, not or '('";

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    text: &'a str,
    position: usize,
}

/// What a bare value repeats: `port 80 or 443`.
#[derive(Clone, Copy, Debug)]
enum Template {
    /// With the address family qualifier (`ip host A`), if any.
    Host(Dir, Option<ProtoName>),
    Net(Dir, Option<ProtoName>),
    Port(Dir, Option<ProtoName>),
    PortRange(Dir, Option<ProtoName>),
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    next: usize,
    last: Option<Template>,
    /// Parentheses and `not`s open around the current position.
    nesting: usize,
    /// `and`s and `or`s so far, in the whole filter.
    joins: usize,
}

/// The deepest nesting of parentheses and `not` a filter may have. Every
/// level is a level of recursion here, in matching and in compiling; a
/// crafted filter 100,000 levels deep would overflow the stack.
pub const MAX_NESTING: usize = 100;

/// The most primitives one filter may join. Joined terms form a tree as deep
/// as the chain is long; real filters have a handful.
pub const MAX_TERMS: usize = 1000;

/// Parses a whole filter expression.
pub(super) fn parse(text: &str) -> Result<Filter, FilterError> {
    let mut parser = Parser { tokens: tokenize(text), next: 0, last: None, nesting: 0, joins: 0 };
    let filter = parser.binary()?;
    match parser.peek() {
        None => Ok(filter),
        Some(token) if token.text == ")" => Err(parser.error(Some(token), "'(' before it")),
        Some(token) => Err(parser.error(Some(token), "'and', 'or' or the end of the filter")),
    }
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut start = None;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let single = matches!(c, b'(' | b')') || (c == b'!' && bytes.get(i + 1) != Some(&b'='));
        let double =
            (c == b'&' && bytes.get(i + 1) == Some(&b'&')) || (c == b'|' && bytes.get(i + 1) == Some(&b'|'));
        if c.is_ascii_whitespace() || single || double {
            if let Some(s) = start.take() {
                tokens.push(Token { text: &text[s..i], position: s });
            }
            let len = if double { 2 } else { 1 };
            if single || double {
                tokens.push(Token { text: &text[i..i + len], position: i });
            }
            i += len;
        } else {
            start.get_or_insert(i);
            i += 1;
        }
    }
    if let Some(s) = start {
        tokens.push(Token { text: &text[s..], position: s });
    }
    tokens
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.next).copied()
    }

    fn peek_is(&self, words: &[&str]) -> bool {
        self.peek().is_some_and(|t| words.iter().any(|w| t.text.eq_ignore_ascii_case(w)))
    }

    fn bump(&mut self) -> Option<Token<'a>> {
        let token = self.peek();
        self.next += usize::from(token.is_some());
        token
    }

    fn error(&self, token: Option<Token<'_>>, expected: &str) -> FilterError {
        self.fail(token, &format!("expected {expected}"))
    }

    fn fail(&self, token: Option<Token<'_>>, problem: &str) -> FilterError {
        FilterError {
            word: token.map(|t| t.text.to_owned()),
            position: token
                .map_or_else(|| self.tokens.last().map_or(0, |t| t.position + t.text.len()), |t| t.position),
            problem: problem.to_owned(),
        }
    }

    /// Primitives joined by `and` and `or`, grouped from the left.
    fn binary(&mut self) -> Result<Filter, FilterError> {
        let mut filter = self.unary()?;
        loop {
            let and = self.peek_is(&["and", "&&"]);
            if !and && !self.peek_is(&["or", "||"]) {
                return Ok(filter);
            }
            let operator = self.bump();
            self.expect_operand(operator)?;
            self.joins += 1;
            if self.joins >= MAX_TERMS {
                return Err(self.fail(operator, &format!("a filter may join at most {MAX_TERMS} terms")));
            }
            let right = Box::new(self.unary()?);
            filter =
                if and { Filter::And(Box::new(filter), right) } else { Filter::Or(Box::new(filter), right) };
        }
    }

    /// After `and`, `or` or `not`, something to apply it to.
    fn expect_operand(&self, operator: Option<Token<'_>>) -> Result<(), FilterError> {
        if self.peek().is_none() || self.peek_is(&["and", "&&", "or", "||", ")"]) {
            let word = operator.map_or("", |t| t.text);
            return Err(self.error(self.peek(), &format!("a filter after '{word}'")));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        let nests = self.peek_is(&["not", "!", "("]);
        if nests {
            self.nesting += 1;
            if self.nesting > MAX_NESTING {
                let problem = format!("a filter may nest parentheses and 'not' at most {MAX_NESTING} deep");
                return Err(self.fail(self.peek(), &problem));
            }
        }
        let filter = self.nested();
        self.nesting -= usize::from(nests);
        filter
    }

    fn nested(&mut self) -> Result<Filter, FilterError> {
        if self.peek_is(&["not", "!"]) {
            let operator = self.bump();
            self.expect_operand(operator)?;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek_is(&["("]) {
            self.bump();
            let inner = self.binary()?;
            if !self.peek_is(&[")"]) {
                return Err(self.error(self.peek(), "')'"));
            }
            self.bump();
            return Ok(inner);
        }
        self.primitive()
    }

    fn primitive(&mut self) -> Result<Filter, FilterError> {
        let Some(token) = self.bump() else { return Err(self.error(None, PRIMITIVES)) };
        let word = token.text.to_ascii_lowercase();
        if word.contains('[') {
            return Err(self.fail(
                Some(token),
                "byte-offset expressions such as tcp[13] are not supported (use tcp, port, host, ...)",
            ));
        }
        let proto = match word.as_str() {
            "tcp" => Some(ProtoName::Tcp),
            "udp" => Some(ProtoName::Udp),
            "icmp" => Some(ProtoName::Icmp),
            "icmp6" => Some(ProtoName::Icmp6),
            "arp" => Some(ProtoName::Arp),
            "ip" => Some(ProtoName::Ip),
            "ip6" => Some(ProtoName::Ip6),
            _ => None,
        };
        match (word.as_str(), proto) {
            ("tcp" | "udp", Some(proto)) if self.peek_is(&["src", "dst", "port", "portrange"]) => {
                let dir = self.dir();
                let kind = self.bump();
                match kind.map(|t| t.text.to_ascii_lowercase()).as_deref() {
                    Some("port") => self.value(Template::Port(dir, Some(proto))),
                    Some("portrange") => self.value(Template::PortRange(dir, Some(proto))),
                    _ => Err(self.error(kind, &format!("'port' or 'portrange' after '{proto}'"))),
                }
            }
            // libpcap's protocol qualifier before an address: `ip host A`, `ip6 src net N`.
            ("ip" | "ip6" | "arp", Some(family)) if self.peek_is(&["src", "dst", "host", "net"]) => {
                let dir = self.dir();
                self.qualified(dir, Some(family))
            }
            (_, Some(proto)) => Ok(Filter::Is(Primitive::Proto(proto))),
            ("src" | "dst", None) => {
                self.next -= 1;
                let dir = self.dir();
                self.qualified(dir, None)
            }
            ("host" | "net" | "port" | "portrange", None) => {
                self.next -= 1;
                self.qualified(Dir::Either, None)
            }
            ("less" | "greater", None) => {
                let value = self.bump();
                let n = value
                    .and_then(|t| t.text.parse::<u32>().ok())
                    .ok_or_else(|| self.error(value, &format!("a length in bytes after '{word}'")))?;
                Ok(Filter::Is(if word == "less" { Primitive::Less(n) } else { Primitive::Greater(n) }))
            }
            _ => match self.last {
                Some(template) => {
                    self.next -= 1;
                    self.value(template)
                }
                None => Err(self.error(Some(token), PRIMITIVES)),
            },
        }
    }

    /// `src`, `dst`, `src or dst`, `src and dst`, or nothing (either).
    fn dir(&mut self) -> Dir {
        let combined = |p: &Self| {
            p.tokens
                .get(p.next + 1)
                .is_some_and(|t| t.text.eq_ignore_ascii_case("or") || t.text.eq_ignore_ascii_case("and"))
                && p.tokens.get(p.next + 2).is_some_and(|t| t.text.eq_ignore_ascii_case("dst"))
        };
        if self.peek_is(&["src"]) {
            if combined(self) {
                let and = self.tokens[self.next + 1].text.eq_ignore_ascii_case("and");
                self.next += 3;
                return if and { Dir::Both } else { Dir::Either };
            }
            self.bump();
            Dir::Src
        } else if self.peek_is(&["dst"]) {
            self.bump();
            Dir::Dst
        } else {
            Dir::Either
        }
    }

    /// After a direction: `host`, `net`, `port`, `portrange`, or an address;
    /// after a `family` (`ip`, `ip6`, `arp`) only addresses.
    fn qualified(&mut self, dir: Dir, family: Option<ProtoName>) -> Result<Filter, FilterError> {
        let template = match self.peek().map(|t| t.text.to_ascii_lowercase()).as_deref() {
            Some("host") => Template::Host(dir, family),
            Some("net") => Template::Net(dir, family),
            Some("port") if family.is_none() => Template::Port(dir, None),
            Some("portrange") if family.is_none() => Template::PortRange(dir, None),
            Some(value) if value.contains('/') => return self.value(Template::Net(dir, family)),
            Some(value) if value.parse::<IpAddr>().is_ok() => return self.value(Template::Host(dir, family)),
            _ if family.is_some() => return Err(self.error(self.peek(), "'host', 'net' or an address")),
            _ => return Err(self.error(self.peek(), "'host', 'net', 'port', 'portrange' or an address")),
        };
        self.bump();
        self.value(template)
    }

    fn value(&mut self, template: Template) -> Result<Filter, FilterError> {
        let token = self.bump();
        let text = token.map_or("", |t| t.text);
        let (primitive, family) = match template {
            Template::Host(dir, family) => {
                let addr = text.parse().map_err(|_| {
                    self.error(token, "an IPv4 or IPv6 address after 'host' (names are not looked up)")
                })?;
                self.check_family(token, family, addr)?;
                (Primitive::Host { dir, addr }, family)
            }
            Template::Net(dir, family) => {
                let (net, prefix) = cidr(text)
                    .ok_or_else(|| self.error(token, "a network such as 10.0.0.0/8 or fd00::/64"))?;
                if masked(net, prefix) != net {
                    let hint =
                        format!("a network address without host bits: {}/{prefix}", masked(net, prefix));
                    return Err(self.error(token, &hint));
                }
                self.check_family(token, family, net)?;
                (Primitive::Net { dir, net, prefix }, family)
            }
            Template::Port(dir, proto) => {
                let port = port(text).ok_or_else(|| self.error(token, "a port number or service name"))?;
                (Primitive::Port { dir, proto, first: port, last: port }, None)
            }
            Template::PortRange(dir, proto) => {
                let range = text.split_once('-').and_then(|(a, b)| Some((port(a)?, port(b)?)));
                match range {
                    Some((first, last)) if first <= last => {
                        (Primitive::Port { dir, proto, first, last }, None)
                    }
                    _ => return Err(self.error(token, "a port range such as 8000-8100")),
                }
            }
        };
        self.last = Some(template);
        Ok(match family {
            Some(family) => {
                Filter::And(Box::new(Filter::Is(Primitive::Proto(family))), Box::new(Filter::Is(primitive)))
            }
            None => Filter::Is(primitive),
        })
    }

    /// `ip` and `arp` take IPv4 addresses, `ip6` IPv6 ones.
    fn check_family(
        &self,
        token: Option<Token<'_>>,
        family: Option<ProtoName>,
        addr: IpAddr,
    ) -> Result<(), FilterError> {
        match family {
            Some(ProtoName::Ip6) if addr.is_ipv4() => Err(self.error(token, "an IPv6 address after 'ip6'")),
            Some(family) if addr.is_ipv6() && family != ProtoName::Ip6 => {
                Err(self.error(token, &format!("an IPv4 address after '{family}'")))
            }
            _ => Ok(()),
        }
    }
}

fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, prefix.parse::<u8>().ok()?),
        None => {
            let addr = text.parse::<IpAddr>().ok()?;
            (addr, if addr.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            (u32::from(a) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)).to_be_bytes().into()
        }
        IpAddr::V6(a) => {
            (u128::from(a) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)).to_be_bytes().into()
        }
    }
}

/// A port number, or a name from the scanner's service tables.
fn port(text: &str) -> Option<u16> {
    if let Ok(n) = text.parse::<u16>() {
        return Some(n);
    }
    services::TCP
        .iter()
        .chain(services::UDP)
        .find(|(_, name)| name.eq_ignore_ascii_case(text))
        .map(|&(p, _)| p)
}
