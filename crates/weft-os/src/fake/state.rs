//! The in-memory model behind [`super::FakeKernel`]: namespaces holding links, addresses,
//! routes, neighbour and FDB entries, sysctls and nftables tables, with the kernel's
//! side effects that drivers rely on (a veth dies with its peer, a moved link arrives down and
//! without addresses, a deleted namespace takes its links along, a moved vxlan keeps its VNI
//! taken in the namespace it was created in).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::model::{FdbEntry, LinkInfo, LinkKind, MacAddr, Neighbour, Route};
use crate::names::{IfName, NsName, NsRef};

/// One fake link and what hangs off it.
#[derive(Clone, Debug)]
pub(super) struct FakeLink {
    pub info: LinkInfo,
    pub addrs: Vec<IpNet>,
    pub neigh: BTreeMap<IpAddr, MacAddr>,
    pub fdb: BTreeMap<MacAddr, IpAddr>,
    /// The other end of a veth: its namespace and name.
    pub peer: Option<(NsRef, IfName)>,
    /// For a vxlan: the namespace it was created in. Its UDP socket, and with it its claim on
    /// the VNI and port, stays there when the device is moved elsewhere.
    pub origin: Option<NsRef>,
    /// A bridge port's `isolated` flag.
    pub isolated: bool,
}

/// One fake namespace.
#[derive(Clone, Debug, Default)]
pub(super) struct Space {
    pub links: BTreeMap<IfName, FakeLink>,
    pub routes: Vec<Route>,
    pub sysctls: BTreeMap<String, String>,
    pub tables: Vec<crate::model::NftTable>,
    pub rulesets: Vec<String>,
}

/// All fake namespaces; the host one always exists.
#[derive(Debug)]
pub(super) struct World {
    pub spaces: BTreeMap<NsRef, Space>,
    next_index: u32,
}

impl World {
    pub fn new() -> Self {
        let mut w = Self {
            spaces: BTreeMap::new(),
            next_index: 1,
        };
        w.spaces.insert(NsRef::Host, Space::default());
        w.add_loopback(&NsRef::Host);
        w
    }

    fn add_loopback(&mut self, ns: &NsRef) {
        if let Ok(lo) = IfName::new("lo") {
            let mut link = self.new_link(lo, LinkKind::Loopback, Some(65536), None);
            link.info.up = true;
            link.info.mac = None;
            if let Some(space) = self.spaces.get_mut(ns) {
                space.links.insert(link.info.name.clone(), link);
            }
        }
    }

    /// A fresh link (not inserted), with a MAC derived from its index when none is given.
    pub fn new_link(
        &mut self,
        name: IfName,
        kind: LinkKind,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
    ) -> FakeLink {
        let index = self.next_index;
        self.next_index += 1;
        let [_, _, a, b] = index.to_be_bytes();
        let default_mtu = if matches!(kind, LinkKind::Vxlan(_)) {
            1450
        } else {
            1500
        };
        FakeLink {
            info: LinkInfo {
                name,
                index,
                kind,
                mtu: mtu.unwrap_or(default_mtu),
                mac: Some(mac.unwrap_or(MacAddr([0x02, 0xfa, 0x4b, 0x00, a, b]))),
                up: false,
                master: None,
            },
            addrs: Vec::new(),
            neigh: BTreeMap::new(),
            fdb: BTreeMap::new(),
            peer: None,
            origin: None,
            isolated: false,
        }
    }

    pub fn space(&self, ns: &NsRef) -> Result<&Space> {
        self.spaces.get(ns).ok_or_else(|| not_found(ns))
    }

    pub fn space_mut(&mut self, ns: &NsRef) -> Result<&mut Space> {
        self.spaces.get_mut(ns).ok_or_else(|| not_found(ns))
    }

    pub fn link(&self, ns: &NsRef, name: &IfName) -> Result<&FakeLink> {
        self.space(ns)?
            .links
            .get(name)
            .ok_or_else(|| link_not_found(ns, name))
    }

    pub fn link_mut(&mut self, ns: &NsRef, name: &IfName) -> Result<&mut FakeLink> {
        self.space_mut(ns)?
            .links
            .get_mut(name)
            .ok_or_else(|| link_not_found(ns, name))
    }

    pub fn create_netns(&mut self, name: &NsName) {
        let ns = NsRef::named(name);
        if !self.spaces.contains_key(&ns) {
            self.spaces.insert(ns.clone(), Space::default());
            self.add_loopback(&ns);
        }
    }

    /// Removes the namespace; veths inside take their peers elsewhere along.
    pub fn delete_netns(&mut self, name: &NsName) {
        let ns = NsRef::named(name);
        let Some(space) = self.spaces.remove(&ns) else {
            return;
        };
        for link in space.links.values() {
            if let Some((peer_ns, peer)) = &link.peer {
                self.remove_link(peer_ns, peer);
            }
        }
    }

    /// Removes a link and what depends on it (its veth peer, routes through it, enslavement).
    pub fn remove_link(&mut self, ns: &NsRef, name: &IfName) -> Option<FakeLink> {
        let space = self.spaces.get_mut(ns)?;
        let link = space.links.remove(name)?;
        space.routes.retain(|r| r.dev.as_ref() != Some(name));
        for other in space.links.values_mut() {
            if other.info.master.as_ref() == Some(name) {
                other.info.master = None;
            }
        }
        if let Some((peer_ns, peer)) = &link.peer {
            self.remove_link(&peer_ns.clone(), &peer.clone());
        }
        Some(link)
    }

    /// Moves a link between namespaces as the kernel does: down, no addresses, no master.
    pub fn move_link(&mut self, ns: &NsRef, name: &IfName, target: &NsRef, new: &IfName) {
        let Some(space) = self.spaces.get_mut(ns) else {
            return;
        };
        let Some(mut link) = space.links.remove(name) else {
            return;
        };
        space.routes.retain(|r| r.dev.as_ref() != Some(name));
        link.info.name = new.clone();
        link.info.up = false;
        link.info.master = None;
        link.addrs.clear();
        link.neigh.clear();
        link.fdb.clear();
        if let Some((peer_ns, peer)) = link.peer.clone()
            && let Some(p) = self
                .spaces
                .get_mut(&peer_ns)
                .and_then(|s| s.links.get_mut(&peer))
        {
            p.peer = Some((target.clone(), new.clone()));
        }
        if let Some(t) = self.spaces.get_mut(target) {
            t.links.insert(new.clone(), link);
        }
    }

    pub fn replace_route(&mut self, ns: &NsRef, route: &Route) -> Result<()> {
        if let Some(dev) = &route.dev {
            self.link(ns, dev)?;
        }
        let space = self.space_mut(ns)?;
        space.routes.retain(|r| r.destination != route.destination);
        space.routes.push(route.clone());
        Ok(())
    }

    pub fn delete_route(&mut self, ns: &NsRef, route: &Route) -> Result<()> {
        let space = self.space_mut(ns)?;
        space.routes.retain(|r| {
            let matches = r.destination == route.destination
                && (route.gateway.is_none() || r.gateway == route.gateway)
                && (route.dev.is_none() || r.dev == route.dev);
            !matches
        });
        Ok(())
    }

    pub fn neighbours(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<Neighbour>> {
        let link = self.link(ns, dev)?;
        Ok(link
            .neigh
            .iter()
            .map(|(ip, mac)| Neighbour {
                dev: dev.clone(),
                ip: *ip,
                mac: *mac,
            })
            .collect())
    }

    pub fn fdb(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<FdbEntry>> {
        let link = self.link(ns, dev)?;
        Ok(link
            .fdb
            .iter()
            .map(|(mac, dst)| FdbEntry {
                dev: dev.clone(),
                mac: *mac,
                dst: *dst,
            })
            .collect())
    }
}

fn not_found(ns: &NsRef) -> Error {
    match ns {
        NsRef::Named(name) => Error::NetnsNotFound { name: name.clone() },
        // The host namespace always exists; this is unreachable in practice.
        NsRef::Host => Error::InvalidName {
            kind: "namespace",
            value: "host".into(),
            reason: "missing from the fake",
        },
    }
}

fn link_not_found(ns: &NsRef, name: &IfName) -> Error {
    Error::LinkNotFound {
        name: name.clone(),
        ns: ns.clone(),
    }
}
