//! The system's names for `sniff` filters: service names from
//! `/etc/services` (the built-in table when it is missing, as on a minimal
//! container), host names through the resolver (`/etc/hosts`, then DNS).

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
