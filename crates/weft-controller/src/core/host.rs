//! What a new network must not take from the host: the subnets of the host's own
//! interfaces (its underlay), and the one host namespace (a second `host` network).

use super::Core;
use super::sandbox::kernel_error;
use ipnet::IpNet;
use weft_drivers::Driver;
use weft_os::{Error as OsError, NsRef};
use weft_types::api::SubnetRequest;
use weft_types::{Error, Lifecycle};

/// A subnet of one of the host's interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostSubnet {
    pub dev: String,
    pub subnet: IpNet,
}

impl Core {
    /// Refuses requested subnets that overlap a subnet of the host's own interfaces: a
    /// bridge or overlay on the host's underlay subnet shadows the route to the other
    /// hosts. Subnets of this agent's own networks (its bridges' gateways) do not count.
    pub(crate) async fn check_host_subnets(&self, requests: &[SubnetRequest]) -> Result<(), Error> {
        let wanted: Vec<IpNet> = requests.iter().filter_map(|r| r.subnet).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let own: Vec<IpNet> = self
            .networks
            .values()
            .flat_map(|s| s.record.subnets.iter().map(|c| c.subnet))
            .collect();
        let host = self.host_subnets().await?;
        let foreign = host
            .iter()
            .filter(|h| !own.iter().any(|o| o.contains(&h.subnet.addr())));
        first_overlap(&wanted, foreign).map_or(Ok(()), |(subnet, h)| {
            Err(Error::invalid(format!(
                "subnet {subnet} overlaps {} of host interface {}, the host's own network: \
                 pick a subnet the host does not use",
                h.subnet, h.dev
            )))
        })
    }

    /// The subnets of the host namespace's interfaces, without loopback and link-local.
    async fn host_subnets(&self) -> Result<Vec<HostSubnet>, Error> {
        let list_error = |e| kernel_error("cannot list the host's interfaces", e);
        let links = self
            .kernel
            .list_links(&NsRef::Host, "")
            .await
            .map_err(list_error)?;
        let mut out = Vec::new();
        for link in links {
            let addrs = match self.kernel.list_addresses(&NsRef::Host, &link.name).await {
                Ok(addrs) => addrs,
                // Gone since the listing: it holds no subnet.
                Err(OsError::LinkNotFound { .. }) => continue,
                Err(e) => return Err(list_error(e)),
            };
            out.extend(addrs.into_iter().filter(is_routable).map(|a| HostSubnet {
                dev: link.name.to_string(),
                subnet: a.trunc(),
            }));
        }
        Ok(out)
    }

    /// Refuses a second network of a driver that runs sandboxes in the host's namespace:
    /// there is only one (Docker: "only one instance of \"host\" network is allowed").
    pub(crate) fn check_single_host_network(&self, driver: &dyn Driver) -> Result<(), Error> {
        if !driver.capability().host_namespace {
            return Ok(());
        }
        match self
            .networks
            .values()
            .find(|s| &s.record.driver == driver.name())
        {
            None => Ok(()),
            Some(s) => Err(Error::already_exists(format!(
                "network {} (id {}) of driver {}: the host has one network namespace, so only \
                 one {} network can exist{}",
                s.record.name,
                s.record.id.short(),
                driver.name(),
                driver.name(),
                if s.record.lifecycle == Lifecycle::Deleting {
                    " (it is being deleted: run weft network rm again to finish)"
                } else {
                    ""
                }
            ))),
        }
    }
}

fn is_routable(a: &IpNet) -> bool {
    match a {
        IpNet::V4(n) => !n.addr().is_loopback() && !n.addr().is_link_local(),
        IpNet::V6(n) => !n.addr().is_loopback() && !n.addr().is_unicast_link_local(),
    }
}

/// The first requested subnet that overlaps a host subnet, with that host subnet.
fn first_overlap<'a>(
    wanted: &[IpNet],
    host: impl Iterator<Item = &'a HostSubnet> + Clone,
) -> Option<(IpNet, &'a HostSubnet)> {
    wanted.iter().find_map(|w| {
        host.clone()
            .find(|h| w.contains(&h.subnet.network()) || h.subnet.contains(&w.network()))
            .map(|h| (*w, h))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn host(dev: &str, s: &str) -> HostSubnet {
        HostSubnet {
            dev: dev.into(),
            subnet: net(s),
        }
    }

    #[test]
    fn overlap_either_way_is_found_and_disjoint_is_not() {
        let h = [host("eth0", "198.18.0.0/24"), host("eth1", "2001:db8::/64")];
        let found = |w: &str| first_overlap(&[net(w)], h.iter()).map(|(_, h)| h.dev.clone());
        assert_eq!(found("198.18.0.0/24").as_deref(), Some("eth0"));
        assert_eq!(found("198.18.0.128/25").as_deref(), Some("eth0"));
        assert_eq!(found("198.18.0.0/16").as_deref(), Some("eth0"));
        assert_eq!(found("2001:db8::/48").as_deref(), Some("eth1"));
        assert_eq!(found("198.18.1.0/24"), None);
        assert_eq!(found("198.19.0.0/16"), None);
    }

    #[test]
    fn loopback_and_link_local_are_not_host_subnets() {
        for a in ["127.0.0.1/8", "169.254.1.1/16", "::1/128", "fe80::1/64"] {
            assert!(!is_routable(&net(a)), "{a}");
        }
        assert!(is_routable(&net("198.18.0.1/24")));
    }
}
