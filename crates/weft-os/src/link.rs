//! Links over rtnetlink: read back, create (veth, bridge, vxlan), modify, move, delete.
//!
//! Idempotency (CONVENTIONS rule 9): creating a link whose name exists with the same kind
//! adopts it, bringing MTU and MAC to the requested values in place; a vxlan whose immutable
//! attributes (VNI, port, local, underlay, learning, proxy) differ is deleted and re-created; a
//! link of another kind is an error (never delete what may not be ours). Deleting an absent link
//! succeeds.

use std::collections::HashMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags,
    LinkInfo as NlInfo, LinkLayerType, LinkMessage,
};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan};

use crate::error::{Error, NetlinkError, Result, errno, to_io};
use crate::model::{BridgeSpec, LinkInfo, LinkKind, MacAddr, VethSpec, VxlanInfo, VxlanSpec};
use crate::names::{IfName, NsRef};

const ENODEV: i32 = 19;
const EEXIST: i32 = 17;

/// An rtnetlink handle plus the namespace it talks to (for error messages).
#[derive(Clone, Copy)]
pub(crate) struct Nl<'a> {
    pub h: &'a rtnetlink::Handle,
    pub ns: &'a NsRef,
}

impl Nl<'_> {
    async fn raw_by_name(&self, name: &IfName) -> Result<Option<LinkMessage>> {
        let mut req = std::pin::pin!(self.h.link().get().match_name(name.as_str()).execute());
        match req.try_next().await {
            Ok(msg) => Ok(msg),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(source) => Err(self.list_err(source)),
        }
    }

    async fn dump(&self) -> Result<Vec<LinkMessage>> {
        let req = self.h.link().get().execute();
        req.try_collect().await.map_err(|e| self.list_err(e))
    }

    fn list_err(&self, source: rtnetlink::Error) -> Error {
        Error::ListLinks {
            ns: self.ns.clone(),
            source: source.into(),
        }
    }

    /// The index of `name`, or `LinkNotFound`.
    pub async fn index_of(&self, name: &IfName) -> Result<u32> {
        match self.raw_by_name(name).await? {
            Some(msg) => Ok(msg.header.index),
            None => Err(Error::LinkNotFound {
                name: name.clone(),
                ns: self.ns.clone(),
            }),
        }
    }

    /// Name of every link by index (to resolve masters and route devices).
    pub async fn names_by_index(&self) -> Result<HashMap<u32, IfName>> {
        let msgs = self.dump().await?;
        Ok(msgs
            .iter()
            .filter_map(|m| Some((m.header.index, IfName::new(msg_name(m)?).ok()?)))
            .collect())
    }

    /// The link called `name`, if any.
    pub async fn get(&self, name: &IfName) -> Result<Option<LinkInfo>> {
        let Some(msg) = self.raw_by_name(name).await? else {
            return Ok(None);
        };
        let master = match msg_master(&msg) {
            Some(idx) => self.names_by_index().await?.remove(&idx),
            None => None,
        };
        Ok(parse_link(&msg, master))
    }

    /// Links whose name starts with `prefix`, sorted by name.
    pub async fn list(&self, prefix: &str) -> Result<Vec<LinkInfo>> {
        let msgs = self.dump().await?;
        let names: HashMap<u32, IfName> = msgs
            .iter()
            .filter_map(|m| Some((m.header.index, IfName::new(msg_name(m)?).ok()?)))
            .collect();
        let mut links: Vec<LinkInfo> = msgs
            .iter()
            .filter(|m| msg_name(m).is_some_and(|n| n.starts_with(prefix)))
            .filter_map(|m| parse_link(m, msg_master(m).and_then(|i| names.get(&i).cloned())))
            .collect();
        links.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(links)
    }

    /// Returns the existing link if it has kind `kind`, `None` if absent, an error otherwise.
    async fn existing(&self, name: &IfName, kind: &'static str) -> Result<Option<LinkInfo>> {
        match self.get(name).await? {
            Some(link) if link.kind.name() == kind => Ok(Some(link)),
            Some(link) => Err(Error::LinkKindMismatch {
                name: name.clone(),
                expected: kind,
                found: link.kind.name().to_owned(),
                ns: self.ns.clone(),
            }),
            None => Ok(None),
        }
    }

    async fn add(&self, kind: &'static str, name: &IfName, msg: LinkMessage) -> Result<()> {
        self.h
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|source| Error::CreateLink {
                kind,
                name: name.clone(),
                ns: self.ns.clone(),
                source: source.into(),
            })
    }

    /// Brings MTU and MAC of an adopted link to the requested values.
    async fn adopt(&self, link: &LinkInfo, mtu: Option<u32>, mac: Option<MacAddr>) -> Result<()> {
        if let Some(mtu) = mtu.filter(|m| *m != link.mtu) {
            self.set_mtu(&link.name, mtu).await?;
        }
        if let Some(mac) = mac.filter(|m| Some(*m) != link.mac) {
            self.set_mac(&link.name, mac).await?;
        }
        Ok(())
    }

    /// Creates a veth pair, or adopts an existing veth called `spec.name`.
    pub async fn create_veth(&self, spec: &VethSpec) -> Result<()> {
        if let Some(link) = self.existing(&spec.name, "veth").await? {
            return self.adopt(&link, spec.mtu, spec.mac).await;
        }
        self.add("veth", &spec.name, veth_message(spec, None)).await
    }

    /// Creates a veth pair whose peer is created directly in another namespace (`there`, open
    /// as `there_fd`) under its final name, in one `RTM_NEWLINK`. An existing veth called
    /// `spec.name` is adopted if its peer is the veth `spec.peer` in `there`, and deleted and
    /// re-created if its peer is anywhere else.
    pub async fn create_veth_across(
        &self,
        spec: &VethSpec,
        there: &Nl<'_>,
        there_fd: &File,
    ) -> Result<()> {
        if let Some(msg) = self.raw_by_name(&spec.name).await? {
            let Some(link) = parse_link(&msg, None).filter(|l| l.kind == LinkKind::Veth) else {
                return Err(Error::LinkKindMismatch {
                    name: spec.name.clone(),
                    expected: "veth",
                    found: parse_kind(&msg).name().to_owned(),
                    ns: self.ns.clone(),
                });
            };
            if let Some(peer) = peer_of(&msg, there, &spec.peer).await? {
                self.adopt(&link, spec.mtu, spec.mac).await?;
                return there.adopt(&peer, spec.mtu, spec.peer_mac).await;
            }
            tracing::info!(
                name = %spec.name, ns = %self.ns, peer = %spec.peer, peer_ns = %there.ns,
                "replacing a veth whose peer is not where it is wanted"
            );
            self.delete(&spec.name).await?;
        }
        let msg = veth_message(spec, Some(there_fd.as_raw_fd()));
        match self.add("veth", &spec.name, msg).await {
            // Most likely the peer's name is taken in the other namespace: say by what.
            Err(Error::CreateLink { source, .. }) if source.errno() == Some(EEXIST) => {
                match there.get(&spec.peer).await {
                    Ok(Some(taken)) => Err(Error::LinkKindMismatch {
                        name: spec.peer.clone(),
                        expected: "veth",
                        found: taken.kind.name().to_owned(),
                        ns: there.ns.clone(),
                    }),
                    _ => Err(Error::CreateLink {
                        kind: "veth",
                        name: spec.name.clone(),
                        ns: self.ns.clone(),
                        source,
                    }),
                }
            }
            other => other,
        }
    }

    /// Creates a bridge (down), or adopts an existing bridge called `spec.name`.
    pub async fn create_bridge(&self, spec: &BridgeSpec) -> Result<()> {
        if let Some(link) = self.existing(&spec.name, "bridge").await? {
            return self.adopt(&link, spec.mtu, spec.mac).await;
        }
        let mut b = LinkMessageBuilder::<LinkBridge>::new(spec.name.as_str());
        if let Some(mtu) = spec.mtu {
            b = b.mtu(mtu);
        }
        if let Some(mac) = spec.mac {
            b = b.address(mac.0.to_vec());
        }
        self.add("bridge", &spec.name, b.build()).await
    }

    /// Creates a vxlan device (down); adopts a matching one, replaces one that differs.
    /// With `there` (the namespace `spec.netns` names, and a descriptor of it open for the
    /// request), the device is made and looked for there, and its UDP socket is here.
    pub async fn create_vxlan(
        &self,
        spec: &VxlanSpec,
        there: Option<(&Nl<'_>, &File)>,
    ) -> Result<()> {
        // The kernel resolves the underlay where the socket is.
        let underlay_index = match &spec.underlay {
            Some(dev) => Some(self.index_of(dev).await?),
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
        let home = there.map_or(self, |(nl, _)| nl);
        if let Some(link) = home.existing(&spec.name, "vxlan").await? {
            if link.kind == LinkKind::Vxlan(wanted) {
                return home.adopt(&link, spec.mtu, spec.mac).await;
            }
            tracing::info!(name = %spec.name, ns = %home.ns, "replacing vxlan with other attributes");
            home.delete(&spec.name).await?;
        }
        let msg = vxlan_message(spec, underlay_index, there.map(|(_, fd)| fd.as_raw_fd()));
        match self.add("vxlan", &spec.name, msg).await {
            Err(Error::CreateLink { source, .. }) if source.errno() == Some(EEXIST) => {
                Err(self.vni_conflict(spec, source).await)
            }
            other => other,
        }
    }

    /// Names the device holding the VNI, so that the error says what to remove.
    async fn vni_conflict(&self, spec: &VxlanSpec, source: NetlinkError) -> Error {
        let holder = self.list("").await.ok().and_then(|links| {
            links.into_iter().find_map(|l| match l.kind {
                LinkKind::Vxlan(v) if v.vni == spec.vni.get() => Some(l.name.to_string()),
                _ => None,
            })
        });
        match holder {
            Some(holder) => Error::VniInUse {
                name: spec.name.clone(),
                vni: spec.vni.get(),
                holder,
                ns: self.ns.clone(),
            },
            None => Error::CreateLink {
                kind: "vxlan",
                name: spec.name.clone(),
                ns: self.ns.clone(),
                source,
            },
        }
    }

    async fn modify(&self, name: &IfName, change: String, edit: LinkEdit) -> Result<()> {
        let err = |source: rtnetlink::Error| Error::ModifyLink {
            change: change.clone(),
            name: name.clone(),
            ns: self.ns.clone(),
            source: source.into(),
        };
        let index = self.index_of(name).await?;
        let b = edit(LinkUnspec::new_with_index(index));
        self.h.link().set(b.build()).execute().await.map_err(err)
    }

    /// Sets the link administratively up or down.
    pub async fn set_up(&self, name: &IfName, up: bool) -> Result<()> {
        let change = if up { "set up" } else { "set down" };
        let edit: LinkEdit = if up {
            Box::new(|b| b.up())
        } else {
            Box::new(|b| b.down())
        };
        self.modify(name, change.into(), edit).await
    }

    /// Sets the MTU.
    pub async fn set_mtu(&self, name: &IfName, mtu: u32) -> Result<()> {
        self.modify(
            name,
            format!("set mtu {mtu}"),
            Box::new(move |b| b.mtu(mtu)),
        )
        .await
    }

    /// Sets the hardware address.
    pub async fn set_mac(&self, name: &IfName, mac: MacAddr) -> Result<()> {
        let edit: LinkEdit = Box::new(move |b| b.address(mac.0.to_vec()));
        self.modify(name, format!("set address {mac}"), edit).await
    }

    /// Renames the link (it must be down).
    pub async fn set_name(&self, name: &IfName, new_name: &IfName) -> Result<()> {
        let to = new_name.clone();
        let edit: LinkEdit = Box::new(move |b| b.name(to.as_str()));
        self.modify(name, format!("rename to {new_name}"), edit)
            .await
    }

    /// Enslaves the link to `master`, or releases it when `None`.
    pub async fn set_master(&self, name: &IfName, master: Option<&IfName>) -> Result<()> {
        let Some(master) = master else {
            return self
                .modify(
                    name,
                    "release master".into(),
                    Box::new(|b| b.nocontroller()),
                )
                .await;
        };
        let idx = self.index_of(master).await?;
        let edit: LinkEdit = Box::new(move |b| b.controller(idx));
        self.modify(name, format!("set master {master}"), edit)
            .await
    }

    /// Sets the bridge port flag `isolated` (`ip link set NAME type bridge_slave isolated`).
    pub async fn set_port_isolated(&self, name: &IfName, isolated: bool) -> Result<()> {
        let err = |source: rtnetlink::Error| Error::ModifyLink {
            change: format!("set bridge port isolated {isolated}"),
            name: name.clone(),
            ns: self.ns.clone(),
            source: source.into(),
        };
        let index = self.index_of(name).await?;
        let b = LinkBridgePort::new(index).append_info_data(InfoBridgePort::Isolated(isolated));
        // Port settings are read from RTM_NEWLINK only; RTM_SETLINK ignores them silently.
        self.h
            .link()
            .set_port(b.build())
            .execute()
            .await
            .map_err(err)
    }

    /// Moves the link into the namespace open as `target_fd`, renaming it to `new_name`.
    pub async fn move_to(
        &self,
        name: &IfName,
        target_fd: &std::fs::File,
        new_name: Option<&IfName>,
    ) -> std::io::Result<()> {
        let index = match self.index_of(name).await {
            Ok(i) => i,
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::NotFound, e)),
        };
        let mut b = LinkUnspec::new_with_index(index).setns_by_fd(target_fd.as_raw_fd());
        if let Some(new_name) = new_name {
            // One RTM_SETLINK moves and renames, so the old name never exists in the target.
            b = b.name(new_name.as_str());
        }
        self.h.link().set(b.build()).execute().await.map_err(to_io)
    }

    /// Deletes the link; an absent one is success.
    pub async fn delete(&self, name: &IfName) -> Result<()> {
        let Some(msg) = self.raw_by_name(name).await? else {
            return Ok(());
        };
        match self.h.link().del(msg.header.index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(source) => Err(Error::DeleteLink {
                name: name.clone(),
                ns: self.ns.clone(),
                source: source.into(),
            }),
        }
    }
}

/// The `RTM_NEWLINK` of a veth pair; with `peer_ns_fd`, the peer's own message (inside the
/// veth `IFLA_INFO_DATA`) carries `IFLA_NET_NS_FD`, so the kernel creates it in that namespace
/// (what `ip link add A type veth peer name B netns NS` sends). The fd must stay open until
/// the request is answered.
fn veth_message(spec: &VethSpec, peer_ns_fd: Option<RawFd>) -> LinkMessage {
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new().name(spec.peer.as_str());
    if let Some(mtu) = spec.mtu {
        peer = peer.mtu(mtu);
    }
    if let Some(mac) = spec.peer_mac {
        peer = peer.address(mac.0.to_vec());
    }
    if let Some(fd) = peer_ns_fd {
        peer = peer.setns_by_fd(fd);
    }
    let mut b = LinkVeth::new(spec.name.as_str(), spec.peer.as_str())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
    if let Some(mtu) = spec.mtu {
        b = b.mtu(mtu);
    }
    if let Some(mac) = spec.mac {
        b = b.address(mac.0.to_vec());
    }
    b.build()
}

/// The peer of the veth `host` if it is the veth `peer` in `there`: `host`'s peer is in
/// another namespace (`IFLA_LINK_NETNSID`) with the index of `there`'s `peer`, whose own peer
/// is in another namespace with `host`'s index. `None` when it is anywhere else.
async fn peer_of(host: &LinkMessage, there: &Nl<'_>, peer: &IfName) -> Result<Option<LinkInfo>> {
    let Some(peer_index) = msg_link(host).filter(|_| has_link_netnsid(host)) else {
        return Ok(None);
    };
    let Some(found) = there.raw_by_name(peer).await? else {
        return Ok(None);
    };
    let paired = found.header.index == peer_index
        && msg_link(&found) == Some(host.header.index)
        && has_link_netnsid(&found);
    Ok(parse_link(&found, None).filter(|l| paired && l.kind == LinkKind::Veth))
}

fn msg_link(msg: &LinkMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Link(i) if *i != 0 => Some(*i),
        _ => None,
    })
}

fn has_link_netnsid(msg: &LinkMessage) -> bool {
    msg.attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::LinkNetNsId(_)))
}

type LinkEdit =
    Box<dyn FnOnce(LinkMessageBuilder<LinkUnspec>) -> LinkMessageBuilder<LinkUnspec> + Send>;

fn vxlan_message(
    spec: &VxlanSpec,
    underlay_index: Option<u32>,
    netns_fd: Option<RawFd>,
) -> LinkMessage {
    let mut b = LinkVxlan::new(spec.name.as_str(), spec.vni.get())
        .port(spec.port)
        .learning(spec.learning)
        .proxy(spec.proxy);
    if let Some(local) = spec.local {
        b = b.local(local);
    }
    if let Some(idx) = underlay_index {
        b = b.dev(idx);
    }
    if let Some(mtu) = spec.mtu {
        b = b.mtu(mtu);
    }
    if let Some(mac) = spec.mac {
        b = b.address(mac.0.to_vec());
    }
    if let Some(fd) = netns_fd {
        b = b.setns_by_fd(fd);
    }
    b.build()
}

fn msg_name(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn msg_master(msg: &LinkMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(i) if *i != 0 => Some(*i),
        _ => None,
    })
}

/// Converts a kernel link message; `None` for names this crate cannot represent.
fn parse_link(msg: &LinkMessage, master: Option<IfName>) -> Option<LinkInfo> {
    let name = IfName::new(msg_name(msg)?).ok()?;
    let mut mtu = 0;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Mtu(m) => mtu = *m,
            LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(MacAddr),
            _ => {}
        }
    }
    Some(LinkInfo {
        name,
        index: msg.header.index,
        kind: parse_kind(msg),
        mtu,
        mac,
        up: msg.header.flags.contains(LinkFlags::Up),
        master,
    })
}

fn parse_kind(msg: &LinkMessage) -> LinkKind {
    let infos = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => Some(infos),
        _ => None,
    });
    let Some(infos) = infos else {
        return match msg.header.link_layer_type {
            LinkLayerType::Loopback => LinkKind::Loopback,
            _ => LinkKind::Other(String::new()),
        };
    };
    let kind = infos.iter().find_map(|i| match i {
        NlInfo::Kind(k) => Some(k),
        _ => None,
    });
    match kind {
        Some(InfoKind::Veth) => LinkKind::Veth,
        Some(InfoKind::Bridge) => LinkKind::Bridge,
        Some(InfoKind::Vxlan) => LinkKind::Vxlan(parse_vxlan(infos)),
        Some(other) => LinkKind::Other(other.to_string()),
        None => LinkKind::Other(String::new()),
    }
}

fn parse_vxlan(infos: &[NlInfo]) -> VxlanInfo {
    let mut v = VxlanInfo {
        vni: 0,
        port: 0,
        local: None,
        underlay_index: None,
        learning: false,
        proxy: false,
    };
    let data = infos.iter().find_map(|i| match i {
        NlInfo::Data(InfoData::Vxlan(d)) => Some(d),
        _ => None,
    });
    for attr in data.into_iter().flatten() {
        match attr {
            InfoVxlan::Id(id) => v.vni = *id,
            InfoVxlan::Port(p) => v.port = *p,
            InfoVxlan::Local(ip) if *ip != Ipv4Addr::UNSPECIFIED => v.local = Some(*ip),
            InfoVxlan::Link(i) if *i != 0 => v.underlay_index = Some(*i),
            InfoVxlan::Learning(l) => v.learning = *l,
            InfoVxlan::Proxy(p) => v.proxy = *p,
            _ => {}
        }
    }
    v
}
