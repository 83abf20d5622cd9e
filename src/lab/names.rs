//! `lab names`: the machine's name and how names become addresses, without
//! a packet leaving the machine.
//!
//! `gethostname` reads the kernel's name for the machine. `getaddrinfo`
//! (what Python's `gethostbyname` and Rust's `ToSocketAddrs` call) asks the
//! sources that `/etc/nsswitch.conf` lists for `hosts`, in order: usually
//! the file `/etc/hosts`, then DNS. The experiment only looks up names that
//! `/etc/hosts` holds, and only when the file comes before DNS, so every
//! answer comes from the file; numeric addresses need no lookup at all.

use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::table::Table;
use super::{LabError, Lesson, Took};
use crate::stats::as_millis;

const HOSTS: &str = "/etc/hosts";
const NSSWITCH: &str = "/etc/nsswitch.conf";
const RESOLV: &str = "/etc/resolv.conf";

/// One line of `/etc/hosts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostsEntry {
    /// The address.
    pub addr: IpAddr,
    /// Its names, canonical first.
    pub names: Vec<String>,
}

/// One `getaddrinfo` call, or why it was not made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lookup {
    /// The name or address looked up.
    pub name: String,
    /// The addresses it gave, in its order, without repeats.
    pub addrs: Vec<IpAddr>,
    /// The addresses `/etc/hosts` gives the name.
    pub in_hosts_file: Vec<IpAddr>,
    /// How long the call took.
    #[serde(rename = "took_ms", serialize_with = "as_millis")]
    pub took: Duration,
    /// Why it failed, or was not made.
    pub error: Option<String>,
}

/// What `lab names` found.
#[derive(Clone, Debug, Serialize)]
pub struct NamesReport {
    /// `gethostname()`.
    pub hostname: String,
    /// The `hosts:` line of `/etc/nsswitch.conf`, if there is one.
    pub nsswitch_hosts: Option<String>,
    /// Whether `files` comes before `dns` in it (or there is no DNS in it).
    pub files_first: bool,
    /// `nameserver` lines of `/etc/resolv.conf`: where DNS questions would go (none is sent).
    pub nameservers: Vec<String>,
    /// `/etc/hosts`.
    pub hosts: Vec<HostsEntry>,
    /// The lookups.
    pub lookups: Vec<Lookup>,
}

/// Reads the machine's name and files, and looks names up.
///
/// # Errors
/// When the host name cannot be read.
pub fn run() -> Result<NamesReport, LabError> {
    let hostname = nix::unistd::gethostname()
        .map_err(|e| LabError::Io { context: "reading the host name".to_owned(), error: e.into() })?
        .to_string_lossy()
        .into_owned();
    let hosts = std::fs::read_to_string(HOSTS).map(|t| parse_hosts(&t)).unwrap_or_default();
    let nsswitch_hosts = std::fs::read_to_string(NSSWITCH).ok().and_then(|t| hosts_line(&t));
    let files_first = nsswitch_hosts.as_deref().is_none_or(files_before_dns);
    let nameservers = std::fs::read_to_string(RESOLV)
        .map(|t| {
            t.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .map(|s| s.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut names = vec!["localhost".to_owned()];
    if hostname != "localhost" {
        names.push(hostname.clone());
    }
    names.extend(["127.0.0.1", "::1"].map(str::to_owned));
    let lookups = names.into_iter().map(|name| lookup(name, &hosts, files_first)).collect();
    Ok(NamesReport { hostname, nsswitch_hosts, files_first, nameservers, hosts, lookups })
}

fn lookup(name: String, hosts: &[HostsEntry], files_first: bool) -> Lookup {
    let in_hosts_file: Vec<IpAddr> = hosts
        .iter()
        .filter(|e| e.names.iter().any(|n| n.eq_ignore_ascii_case(&name)))
        .map(|e| e.addr)
        .collect();
    let numeric = name.parse::<IpAddr>().is_ok();
    let skipped = |why: &str| Lookup {
        name: name.clone(),
        addrs: Vec::new(),
        in_hosts_file: in_hosts_file.clone(),
        took: Duration::ZERO,
        error: Some(why.to_owned()),
    };
    if !numeric && in_hosts_file.is_empty() {
        return skipped(
            "not in /etc/hosts: getaddrinfo would ask DNS, and this lab sends nothing off the machine",
        );
    }
    if !numeric && !files_first {
        return skipped(
            "nsswitch.conf asks DNS before /etc/hosts, and this lab sends nothing off the machine",
        );
    }
    let started = Instant::now();
    let result = (name.as_str(), 0).to_socket_addrs();
    let took = started.elapsed();
    match result {
        Ok(addrs) => {
            let mut unique: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !unique.contains(&a.ip()) {
                    unique.push(a.ip());
                }
            }
            Lookup { name, addrs: unique, in_hosts_file, took, error: None }
        }
        Err(e) => Lookup { took, ..skipped(&crate::net::strip_os_error(&e.to_string())) },
    }
}

fn parse_hosts(text: &str) -> Vec<HostsEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?;
            let mut words = line.split_whitespace();
            let addr = words.next()?.parse().ok()?;
            let names: Vec<String> = words.map(str::to_owned).collect();
            (!names.is_empty()).then_some(HostsEntry { addr, names })
        })
        .collect()
}

fn hosts_line(nsswitch: &str) -> Option<String> {
    nsswitch.lines().find_map(|l| l.trim().strip_prefix("hosts:")).map(|rest| rest.trim().to_owned())
}

/// Whether `files` is asked before `dns` (true when there is no `dns` at all).
fn files_before_dns(sources: &str) -> bool {
    let words: Vec<&str> = sources.split_whitespace().collect();
    let position = |name: &str| words.iter().position(|w| *w == name);
    match (position("files"), position("dns")) {
        (_, None) => true,
        (Some(files), Some(dns)) => files < dns,
        (None, Some(_)) => false,
    }
}

fn addrs(list: &[IpAddr]) -> String {
    if list.is_empty() {
        return "-".to_owned();
    }
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for NamesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "gethostname(): {}", self.hostname)?;
        writeln!(f, "{NSSWITCH}: hosts: {}", self.nsswitch_hosts.as_deref().unwrap_or("(no hosts line)"))?;
        writeln!(
            f,
            "{RESOLV}: DNS would ask {} (this lab sends it nothing)",
            if self.nameservers.is_empty() { "no server".to_owned() } else { self.nameservers.join(", ") }
        )?;
        writeln!(f, "{HOSTS}:")?;
        for e in &self.hosts {
            writeln!(f, "  {:<16} {}", e.addr, e.names.join(" "))?;
        }
        let mut table = Table::new(&["getaddrinfo", "answer", "/etc/hosts says", "took"]);
        for l in &self.lookups {
            table.row([
                l.name.clone(),
                match &l.error {
                    Some(e) => format!("(not looked up: {e})"),
                    None => addrs(&l.addrs),
                },
                addrs(&l.in_hosts_file),
                Took(l.took).to_string(),
            ]);
        }
        write!(f, "{table}")
    }
}

impl Lesson for NamesReport {
    fn lesson(&self) -> String {
        let mut text = format!("This machine calls itself \"{}\" (gethostname). ", self.hostname);
        let localhost = self.lookups.iter().find(|l| l.name == "localhost" && l.error.is_none());
        if let Some(l) = localhost {
            let loopback = l.addrs.iter().all(IpAddr::is_loopback);
            let same = l.addrs.iter().all(|a| l.in_hosts_file.contains(a))
                && l.in_hosts_file.iter().all(|a| l.addrs.contains(a));
            text.push_str(&format!(
                "getaddrinfo(\"localhost\") gave {}{}, {}. ",
                addrs(&l.addrs),
                if loopback { ", loopback only" } else { "" },
                if same {
                    "exactly what /etc/hosts says: nsswitch.conf has the file read first, and no question went out"
                        .to_owned()
                } else {
                    format!("while /etc/hosts says {}: another source of nsswitch.conf answered too", addrs(&l.in_hosts_file))
                }
            ));
        }
        if let Some(own) = self.lookups.iter().find(|l| l.name == self.hostname && l.name != "localhost") {
            text.push_str(&match &own.error {
                None => format!(
                    "Its own name resolved to {} from the file too{}. ",
                    addrs(&own.addrs),
                    if own.addrs.iter().all(IpAddr::is_loopback) {
                        ", a loopback address: a server bound to that name is not reachable from other machines"
                    } else {
                        ""
                    }
                ),
                Some(_) => {
                    "Its own name is not in /etc/hosts, so only DNS could resolve it: the lab did not ask. ".to_owned()
                }
            });
        }
        text.push_str(
            "A numeric address like 127.0.0.1 or ::1 needs no lookup at all: getaddrinfo returns it as it is.",
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hosts_and_nsswitch_lines() {
        let hosts =
            parse_hosts("# comment\n127.0.0.1 localhost\n::1 localhost ip6-localhost # x\nbad line\n");
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[1].names, ["localhost", "ip6-localhost"]);
        assert_eq!(hosts_line("passwd: files\nhosts:   files dns\n").as_deref(), Some("files dns"));
        assert!(files_before_dns("files mdns4_minimal [NOTFOUND=return] dns"));
        assert!(!files_before_dns("dns files"));
        assert!(files_before_dns("files myhostname"));
    }

    #[test]
    fn a_name_not_in_the_hosts_file_is_not_looked_up() {
        let l = lookup("example.invalid".to_owned(), &[], true);
        assert!(l.error.is_some_and(|e| e.contains("not in /etc/hosts")));
        assert!(l.addrs.is_empty());
    }
}
