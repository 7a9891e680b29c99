//! The [`crate::ops`] traits on the fake model.

use std::net::IpAddr;
use std::path::PathBuf;

use async_trait::async_trait;
use ipnet::IpNet;
use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables};
use nftables::types::NfFamily;

use super::{
    FakeKernel, addr_object, adopt, existing_of_kind, ip_object, ns_object, route_object,
    table_object,
};
use crate::error::{Error, NetlinkError, NftError, Result};
use crate::exec::Process;
use crate::model::{
    BridgeSpec, CommandSpec, FdbEntry, LinkInfo, LinkKind, MacAddr, Neighbour, NftTable, Route,
    VethSpec, VxlanInfo, VxlanSpec,
};
use crate::names::{IfName, NsName, NsRef, SysctlKey};
use crate::ops::{AddrOps, ExecOps, FirewallOps, LinkOps, NeighOps, NetnsOps, SysctlOps};

#[async_trait]
impl NetnsOps for FakeKernel {
    async fn create_netns(&self, name: &NsName) -> Result<()> {
        let (ns, obj) = ns_object(name);
        self.enter("create_netns", &ns, obj)?
            .world()
            .create_netns(name);
        Ok(())
    }

    async fn delete_netns(&self, name: &NsName) -> Result<()> {
        let (ns, obj) = ns_object(name);
        self.enter("delete_netns", &ns, obj)?
            .world()
            .delete_netns(name);
        Ok(())
    }

    async fn netns_exists(&self, name: &NsName) -> Result<bool> {
        let (ns, obj) = ns_object(name);
        Ok(self
            .enter("netns_exists", &ns, obj)?
            .world()
            .spaces
            .contains_key(&ns))
    }

    async fn list_netns(&self, prefix: &str) -> Result<Vec<NsName>> {
        let mut g = self.enter("list_netns", &NsRef::Host, prefix)?;
        Ok(g.world()
            .spaces
            .keys()
            .filter_map(|ns| match ns {
                NsRef::Named(n) if n.as_str().starts_with(prefix) => Some(n.clone()),
                _ => None,
            })
            .collect())
    }

    fn netns_path(&self, name: &NsName) -> PathBuf {
        PathBuf::from("/fake/netns").join(name.as_str())
    }
}

#[async_trait]
impl LinkOps for FakeKernel {
    async fn create_veth(&self, ns: &NsRef, spec: &VethSpec) -> Result<()> {
        let mut g = self.enter("create_veth", ns, spec.name.as_str())?;
        let w = g.world();
        let peer_ns = spec.peer_ns.clone().unwrap_or_else(|| ns.clone());
        w.space(&peer_ns)?;
        if existing_of_kind(w, ns, &spec.name, "veth")?.is_some() {
            if peer_ns == *ns {
                return adopt(w, ns, &spec.name, spec.mtu, spec.mac);
            }
            let wanted = Some((peer_ns.clone(), spec.peer.clone()));
            if w.link(ns, &spec.name)?.peer == wanted {
                adopt(w, ns, &spec.name, spec.mtu, spec.mac)?;
                return adopt(w, &peer_ns, &spec.peer, spec.mtu, spec.peer_mac);
            }
            // Its peer is elsewhere: deleted (the peer with it) and made again, as the kernel.
            w.remove_link(ns, &spec.name);
        }
        if let Some(taken) = w.space(&peer_ns)?.links.get(&spec.peer) {
            // The kernel answers EEXIST for the peer name; the fake names the holder's kind.
            return Err(Error::LinkKindMismatch {
                name: spec.peer.clone(),
                expected: "veth",
                found: taken.info.kind.name().to_owned(),
                ns: peer_ns,
            });
        }
        let mut a = w.new_link(spec.name.clone(), LinkKind::Veth, spec.mtu, spec.mac);
        let mut b = w.new_link(spec.peer.clone(), LinkKind::Veth, spec.mtu, spec.peer_mac);
        a.peer = Some((peer_ns.clone(), spec.peer.clone()));
        b.peer = Some((ns.clone(), spec.name.clone()));
        w.space_mut(ns)?.links.insert(spec.name.clone(), a);
        w.space_mut(&peer_ns)?.links.insert(spec.peer.clone(), b);
        Ok(())
    }

    async fn create_bridge(&self, ns: &NsRef, spec: &BridgeSpec) -> Result<()> {
        let mut g = self.enter("create_bridge", ns, spec.name.as_str())?;
        let w = g.world();
        if existing_of_kind(w, ns, &spec.name, "bridge")?.is_some() {
            return adopt(w, ns, &spec.name, spec.mtu, spec.mac);
        }
        let link = w.new_link(spec.name.clone(), LinkKind::Bridge, spec.mtu, spec.mac);
        w.space_mut(ns)?.links.insert(spec.name.clone(), link);
        Ok(())
    }

    async fn create_vxlan(&self, ns: &NsRef, spec: &VxlanSpec) -> Result<()> {
        let mut g = self.enter("create_vxlan", ns, spec.name.as_str())?;
        let w = g.world();
        let underlay_index = match &spec.underlay {
            Some(dev) => Some(w.link(ns, dev)?.info.index),
            None => None,
        };
        let wanted = VxlanInfo {
            vni: spec.vni.get(),
            port: spec.port,
            local: spec.local,
            underlay_index,
            learning: spec.learning,
            proxy: spec.proxy,
        };
        // Made in `home`, its socket in `ns` (see VxlanSpec::netns).
        let home = spec.netns.as_ref().unwrap_or(ns);
        if let Some(link) = existing_of_kind(w, home, &spec.name, "vxlan")? {
            if link.kind == LinkKind::Vxlan(wanted.clone()) {
                return adopt(w, home, &spec.name, spec.mtu, spec.mac);
            }
            w.remove_link(home, &spec.name);
        }
        let holder = w
            .space(ns)?
            .links
            .values()
            .find_map(|l| match &l.info.kind {
                LinkKind::Vxlan(v) if v.vni == wanted.vni => Some(l.info.name.to_string()),
                _ => None,
            });
        if let Some(holder) = holder {
            return Err(Error::VniInUse {
                name: spec.name.clone(),
                vni: wanted.vni,
                holder,
                ns: ns.clone(),
            });
        }
        if moved_vni_holder(w, ns, &wanted) {
            // The kernel answers EEXIST and the holder cannot be named from here.
            return Err(Error::CreateLink {
                kind: "vxlan",
                name: spec.name.clone(),
                ns: ns.clone(),
                source: NetlinkError::from_io("vxlan", &std::io::Error::from_raw_os_error(17)),
            });
        }
        let mut link = w.new_link(
            spec.name.clone(),
            LinkKind::Vxlan(wanted),
            spec.mtu,
            spec.mac,
        );
        link.origin = Some(ns.clone());
        w.space_mut(home)?.links.insert(spec.name.clone(), link);
        Ok(())
    }

    async fn set_link_up(&self, ns: &NsRef, name: &IfName) -> Result<()> {
        let mut g = self.enter("set_link_up", ns, name.as_str())?;
        g.world().link_mut(ns, name)?.info.up = true;
        Ok(())
    }

    async fn set_link_down(&self, ns: &NsRef, name: &IfName) -> Result<()> {
        let mut g = self.enter("set_link_down", ns, name.as_str())?;
        g.world().link_mut(ns, name)?.info.up = false;
        Ok(())
    }

    async fn set_mtu(&self, ns: &NsRef, name: &IfName, mtu: u32) -> Result<()> {
        let mut g = self.enter("set_mtu", ns, name.as_str())?;
        g.world().link_mut(ns, name)?.info.mtu = mtu;
        Ok(())
    }

    async fn set_mac(&self, ns: &NsRef, name: &IfName, mac: MacAddr) -> Result<()> {
        let mut g = self.enter("set_mac", ns, name.as_str())?;
        g.world().link_mut(ns, name)?.info.mac = Some(mac);
        Ok(())
    }

    async fn set_master(&self, ns: &NsRef, name: &IfName, master: Option<&IfName>) -> Result<()> {
        let mut g = self.enter("set_master", ns, name.as_str())?;
        let w = g.world();
        if let Some(m) = master {
            w.link(ns, m)?;
        }
        w.link_mut(ns, name)?.info.master = master.cloned();
        Ok(())
    }

    async fn set_port_isolated(&self, ns: &NsRef, name: &IfName, isolated: bool) -> Result<()> {
        let mut g = self.enter("set_port_isolated", ns, name.as_str())?;
        let link = g.world().link_mut(ns, name)?;
        if link.info.master.is_none() {
            // The kernel refuses port flags on a link that is on no bridge.
            return Err(Error::ModifyLink {
                change: format!("set bridge port isolated {isolated}"),
                name: name.clone(),
                ns: ns.clone(),
                source: NetlinkError::from_io(
                    "bridge port",
                    &std::io::Error::from_raw_os_error(95),
                ),
            });
        }
        link.isolated = isolated;
        Ok(())
    }

    async fn move_link(
        &self,
        ns: &NsRef,
        name: &IfName,
        target: &NsRef,
        new_name: Option<&IfName>,
    ) -> Result<()> {
        let mut g = self.enter("move_link", ns, name.as_str())?;
        let w = g.world();
        let final_name = new_name.unwrap_or(name);
        w.space(target)?;
        if !w.space(ns)?.links.contains_key(name) {
            return match w.space(target)?.links.contains_key(final_name) {
                true => Ok(()),
                false => Err(Error::LinkNotFound {
                    name: name.clone(),
                    ns: ns.clone(),
                }),
            };
        }
        if (ns != target || final_name != name) && w.space(target)?.links.contains_key(final_name) {
            return Err(Error::MoveLink {
                name: name.clone(),
                ns: ns.clone(),
                target: target.clone(),
                source: std::io::Error::from_raw_os_error(17),
            });
        }
        w.move_link(ns, name, target, final_name);
        Ok(())
    }

    async fn delete_link(&self, ns: &NsRef, name: &IfName) -> Result<()> {
        let mut g = self.enter("delete_link", ns, name.as_str())?;
        let w = g.world();
        w.space(ns)?;
        w.remove_link(ns, name);
        Ok(())
    }

    async fn get_link(&self, ns: &NsRef, name: &IfName) -> Result<Option<LinkInfo>> {
        let mut g = self.enter("get_link", ns, name.as_str())?;
        let links = &g.world().space(ns)?.links;
        Ok(links.get(name).map(|l| l.info.clone()))
    }

    async fn list_links(&self, ns: &NsRef, prefix: &str) -> Result<Vec<LinkInfo>> {
        let mut g = self.enter("list_links", ns, prefix)?;
        let links = &g.world().space(ns)?.links;
        Ok(links
            .values()
            .filter(|l| l.info.name.as_str().starts_with(prefix))
            .map(|l| l.info.clone())
            .collect())
    }
}

/// Whether a vxlan created in `ns` and moved to another namespace holds `wanted`'s VNI and
/// port: the kernel checks VNIs among the devices whose socket is in `ns`, wherever they are.
fn moved_vni_holder(w: &super::state::World, ns: &NsRef, wanted: &VxlanInfo) -> bool {
    w.spaces
        .iter()
        .filter(|(space, _)| *space != ns)
        .flat_map(|(_, s)| s.links.values())
        .any(|l| match &l.info.kind {
            LinkKind::Vxlan(v) => {
                l.origin.as_ref() == Some(ns) && v.vni == wanted.vni && v.port == wanted.port
            }
            _ => false,
        })
}

#[async_trait]
impl AddrOps for FakeKernel {
    async fn add_address(&self, ns: &NsRef, dev: &IfName, addr: IpNet) -> Result<()> {
        let mut g = self.enter("add_address", ns, addr_object(dev, &addr))?;
        let link = g.world().link_mut(ns, dev)?;
        if !link.addrs.contains(&addr) {
            link.addrs.push(addr);
        }
        Ok(())
    }

    async fn delete_address(&self, ns: &NsRef, dev: &IfName, addr: IpNet) -> Result<()> {
        let mut g = self.enter("delete_address", ns, addr_object(dev, &addr))?;
        g.world().link_mut(ns, dev)?.addrs.retain(|a| *a != addr);
        Ok(())
    }

    async fn list_addresses(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<IpNet>> {
        let mut g = self.enter("list_addresses", ns, dev.as_str())?;
        Ok(g.world().link(ns, dev)?.addrs.clone())
    }

    async fn replace_route(&self, ns: &NsRef, route: &Route) -> Result<()> {
        route.validate()?;
        let mut g = self.enter("replace_route", ns, route_object(route))?;
        g.world().replace_route(ns, route)
    }

    async fn delete_route(&self, ns: &NsRef, route: &Route) -> Result<()> {
        route.validate()?;
        let mut g = self.enter("delete_route", ns, route_object(route))?;
        g.world().delete_route(ns, route)
    }

    async fn list_routes(&self, ns: &NsRef) -> Result<Vec<Route>> {
        let mut g = self.enter("list_routes", ns, "")?;
        Ok(g.world().space(ns)?.routes.clone())
    }
}

#[async_trait]
impl NeighOps for FakeKernel {
    async fn replace_neighbour(&self, ns: &NsRef, n: &Neighbour) -> Result<()> {
        let mut g = self.enter("replace_neighbour", ns, ip_object(&n.dev, &n.ip))?;
        g.world().link_mut(ns, &n.dev)?.neigh.insert(n.ip, n.mac);
        Ok(())
    }

    async fn delete_neighbour(&self, ns: &NsRef, dev: &IfName, ip: IpAddr) -> Result<()> {
        let mut g = self.enter("delete_neighbour", ns, ip_object(dev, &ip))?;
        g.world().link_mut(ns, dev)?.neigh.remove(&ip);
        Ok(())
    }

    async fn list_neighbours(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<Neighbour>> {
        let mut g = self.enter("list_neighbours", ns, dev.as_str())?;
        g.world().neighbours(ns, dev)
    }

    async fn replace_fdb(&self, ns: &NsRef, e: &FdbEntry) -> Result<()> {
        let mut g = self.enter("replace_fdb", ns, format!("{} {}", e.dev, e.mac))?;
        g.world().link_mut(ns, &e.dev)?.fdb.insert(e.mac, e.dst);
        Ok(())
    }

    async fn delete_fdb(&self, ns: &NsRef, dev: &IfName, mac: MacAddr) -> Result<()> {
        let mut g = self.enter("delete_fdb", ns, format!("{dev} {mac}"))?;
        g.world().link_mut(ns, dev)?.fdb.remove(&mac);
        Ok(())
    }

    async fn list_fdb(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<FdbEntry>> {
        let mut g = self.enter("list_fdb", ns, dev.as_str())?;
        g.world().fdb(ns, dev)
    }
}

#[async_trait]
impl SysctlOps for FakeKernel {
    async fn set_sysctl(&self, ns: &NsRef, key: &SysctlKey, value: &str) -> Result<()> {
        let mut g = self.enter("set_sysctl", ns, key.to_string())?;
        let space = g.world().space_mut(ns)?;
        space.sysctls.insert(key.to_string(), value.to_owned());
        Ok(())
    }

    /// Keys never set read as not found (the fake has no defaults).
    async fn get_sysctl(&self, ns: &NsRef, key: &SysctlKey) -> Result<String> {
        let mut g = self.enter("get_sysctl", ns, key.to_string())?;
        let value = g.world().space(ns)?.sysctls.get(&key.to_string()).cloned();
        value.ok_or_else(|| Error::GetSysctl {
            key: key.to_string(),
            ns: ns.clone(),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }
}

/// Applies the table-level effects of `doc` to `tables`, all or nothing, as nft would.
fn apply_tables(tables: &mut Vec<NftTable>, doc: &Nftables<'_>) -> Result<(), NftError> {
    let mut next = tables.clone();
    let fail = |what: String| NftError::Failed {
        status: "exit status: 1".into(),
        stderr: what,
    };
    for obj in doc.objects.iter() {
        let NfObject::CmdObject(cmd) = obj else {
            continue;
        };
        match cmd {
            NfCmd::Add(NfListObject::Table(t)) | NfCmd::Create(NfListObject::Table(t)) => {
                let t = NftTable {
                    family: t.family,
                    name: t.name.to_string(),
                };
                if next.contains(&t) && matches!(cmd, NfCmd::Create(_)) {
                    return Err(fail(format!("table {} exists", t.name)));
                }
                if !next.contains(&t) {
                    next.push(t);
                }
            }
            NfCmd::Delete(NfListObject::Table(t)) => {
                let t = NftTable {
                    family: t.family,
                    name: t.name.to_string(),
                };
                if !next.contains(&t) {
                    return Err(fail(format!("no such table {}", t.name)));
                }
                next.retain(|x| *x != t);
            }
            NfCmd::Add(NfListObject::Chain(c)) => {
                let t = NftTable {
                    family: c.family,
                    name: c.table.to_string(),
                };
                if !next.contains(&t) {
                    return Err(fail(format!("no such table {}", t.name)));
                }
            }
            _ => {}
        }
    }
    *tables = next;
    Ok(())
}

/// The tables a script's `add table` and `delete table` lines leave (nothing else is
/// modelled): all of it or, on a missing table, nothing.
fn apply_script_tables(
    tables: &mut Vec<NftTable>,
    script: &str,
) -> std::result::Result<(), NftError> {
    let mut next = tables.clone();
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (verb, family, name) = match words.as_slice() {
            [verb, "table", family, name, ..] => (*verb, *family, *name),
            _ => continue,
        };
        let family = match family {
            "ip" => NfFamily::IP,
            "ip6" => NfFamily::IP6,
            "inet" => NfFamily::INet,
            other => {
                return Err(NftError::Failed {
                    status: "exit status: 1".into(),
                    stderr: format!("family {other} is not modelled"),
                });
            }
        };
        let t = NftTable {
            family,
            name: name.trim_end_matches(['{', ' ']).to_owned(),
        };
        match verb {
            "add" if !next.contains(&t) => next.push(t),
            "delete" if !next.contains(&t) => {
                return Err(NftError::Failed {
                    status: "exit status: 1".into(),
                    stderr: format!("no such table {}", t.name),
                });
            }
            "delete" => next.retain(|x| *x != t),
            _ => {}
        }
    }
    *tables = next;
    Ok(())
}

#[async_trait]
impl FirewallOps for FakeKernel {
    async fn apply_ruleset(&self, ns: &NsRef, ruleset: &Nftables<'_>) -> Result<()> {
        let mut g = self.enter("apply_ruleset", ns, "")?;
        let space = g.world().space_mut(ns)?;
        let err = |source| Error::ApplyRuleset {
            ns: ns.clone(),
            source,
        };
        let json = serde_json::to_string(ruleset).map_err(|e| err(NftError::Json(e)))?;
        apply_tables(&mut space.tables, ruleset).map_err(err)?;
        space.rulesets.push(json);
        Ok(())
    }

    async fn apply_script(&self, ns: &NsRef, script: &str) -> Result<()> {
        let mut g = self.enter("apply_script", ns, "")?;
        let space = g.world().space_mut(ns)?;
        apply_script_tables(&mut space.tables, script).map_err(|source| Error::ApplyRuleset {
            ns: ns.clone(),
            source,
        })?;
        space.rulesets.push(script.to_owned());
        Ok(())
    }

    async fn delete_table(&self, ns: &NsRef, table: &NftTable) -> Result<()> {
        let mut g = self.enter("delete_table", ns, table_object(table))?;
        g.world().space_mut(ns)?.tables.retain(|t| t != table);
        Ok(())
    }

    async fn list_tables(&self, ns: &NsRef) -> Result<Vec<NftTable>> {
        let mut g = self.enter("list_tables", ns, "")?;
        Ok(g.world().space(ns)?.tables.clone())
    }

    async fn forget_udp_flows(&self, ns: &NsRef, to: IpAddr, via: IpAddr) -> Result<()> {
        // Recorded as a call; the fake keeps no flows.
        self.enter("forget_udp_flows", ns, format!("{to} via {via}"))?;
        Ok(())
    }
}

#[async_trait]
impl ExecOps for FakeKernel {
    async fn kill_all(&self, ns: &NsName) -> Result<usize> {
        let (r, obj) = ns_object(ns);
        self.enter("kill_all", &r, obj)?;
        Ok(0)
    }

    async fn spawn(&self, ns: &NsRef, cmd: &CommandSpec) -> Result<Process> {
        let program = cmd.program.to_string_lossy().into_owned();
        let mut g = self.enter("spawn", ns, program)?;
        g.world().space(ns)?;
        let (pid, code) = g.next_pid();
        Ok(Process::fake(pid, code))
    }
}
