//! The system's names for `sniff`: for filters, service names from
//! `/etc/services` (the built-in table when it is missing, as on a minimal
//! container) and host names through the resolver (`/etc/hosts`, then DNS);
//! for lines of `-i any` captures, interface names by index.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};

use socketeer::sniff::filter::{BuiltinNames, Names, ServicePorts, Services};

/// Where the services database is.
const SERVICES: &str = "/etc/services";

pub(super) struct SystemNames {
    services: Option<Services>,
}

impl SystemNames {
    pub(super) fn load() -> Self {
        let services = std::fs::read_to_string(SERVICES).ok().map(|text| Services::parse(&text));
        SystemNames { services: services.filter(|s| !s.is_empty()) }
    }
}

impl Names for SystemNames {
    fn host(&self, name: &str) -> Vec<IpAddr> {
        match (name, 0).to_socket_addrs() {
            Ok(addresses) => {
                let mut all: Vec<IpAddr> = Vec::new();
                for address in addresses {
                    if !all.contains(&address.ip()) {
                        all.push(address.ip());
                    }
                }
                all
            }
            Err(e) => {
                tracing::debug!("looking up {name}: {e}");
                Vec::new()
            }
        }
    }

    fn service(&self, name: &str) -> ServicePorts {
        match &self.services {
            Some(services) => services.lookup(name),
            None => BuiltinNames.service(name),
        }
    }
}

/// Interface names by index, as this machine names them now: what tcpdump
/// shows for an `-i any` frame, live or read from a file (a file from
/// another machine may then show the wrong names, or `?`, as in tcpdump).
#[derive(Debug, Default)]
pub(super) struct InterfaceNames {
    known: HashMap<u32, String>,
}

impl InterfaceNames {
    /// The name of interface `index`, or `?`; the system is asked again
    /// only for an index not seen before (an interface added since).
    pub(super) fn name(&mut self, index: u32) -> &str {
        if !self.known.contains_key(&index) {
            match nix::net::if_::if_nameindex() {
                Ok(all) => {
                    for interface in all.iter() {
                        let name = interface.name().to_string_lossy().into_owned();
                        self.known.insert(interface.index(), name);
                    }
                }
                Err(e) => tracing::debug!("listing the interfaces: {e}"),
            }
        }
        self.known.entry(index).or_insert_with(|| "?".to_owned())
    }
}
