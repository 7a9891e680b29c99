//! Neighbour (ARP/ND) and bridge FDB entries over rtnetlink, as the overlay driver programs
//! them on its vxlan device: a permanent `IP -> MAC` neighbour and a permanent `MAC -> VTEP`
//! FDB entry per remote endpoint. Both are written with NLM_F_REPLACE, so they succeed over an
//! existing (or learned) entry; deleting an absent entry succeeds.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};

use crate::error::{Error, Result, errno};
use crate::link::Nl;
use crate::model::{FdbEntry, MacAddr, Neighbour};
use crate::names::IfName;

const ENOENT: i32 = 2;

impl Nl<'_> {
    /// Adds or replaces the permanent neighbour entry.
    pub async fn replace_neighbour(&self, n: &Neighbour) -> Result<()> {
        let index = self.index_of(&n.dev).await?;
        let req = self
            .h
            .neighbours()
            .add(index, n.ip)
            .link_layer_address(&n.mac.0)
            .state(NeighbourState::Permanent)
            .replace();
        req.execute()
            .await
            .map_err(|source| Error::ReplaceNeighbour {
                ip: n.ip,
                mac: n.mac,
                dev: n.dev.clone(),
                ns: self.ns.clone(),
                source: source.into(),
            })
    }

    /// Deletes the neighbour entry for `ip` on `dev`; an absent one is success.
    pub async fn delete_neighbour(&self, dev: &IfName, ip: IpAddr) -> Result<()> {
        let index = self.index_of(dev).await?;
        let mut msg = NeighbourMessage::default();
        msg.header.family = family_of(ip);
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(ip)));
        match self.h.neighbours().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENOENT) => Ok(()),
            Err(source) => Err(Error::DeleteNeighbour {
                ip,
                dev: dev.clone(),
                ns: self.ns.clone(),
                source: source.into(),
            }),
        }
    }

    /// Permanent neighbour entries on `dev`.
    pub async fn list_neighbours(&self, dev: &IfName) -> Result<Vec<Neighbour>> {
        let (index, msgs) = self.dump_neighbours(dev, "neighbours", None).await?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == index && m.header.state == NeighbourState::Permanent)
            .filter(|m| matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6))
            .filter_map(|m| {
                Some(Neighbour {
                    dev: dev.clone(),
                    ip: msg_dst(m)?,
                    mac: msg_mac(m)?,
                })
            })
            .collect())
    }

    /// Adds or replaces `mac -> dst` on `dev` (`self permanent`).
    pub async fn replace_fdb(&self, e: &FdbEntry) -> Result<()> {
        let index = self.index_of(&e.dev).await?;
        let req = self
            .h
            .neighbours()
            .add_bridge(index, &e.mac.0)
            .destination(e.dst)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .replace();
        req.execute().await.map_err(|source| Error::ReplaceFdb {
            mac: e.mac,
            dev: e.dev.clone(),
            ns: self.ns.clone(),
            source: source.into(),
        })
    }

    /// Deletes every FDB entry for `mac` on `dev`; none is success.
    pub async fn delete_fdb(&self, dev: &IfName, mac: MacAddr) -> Result<()> {
        let index = self.index_of(dev).await?;
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        match self.h.neighbours().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENOENT) => Ok(()),
            Err(source) => Err(Error::DeleteFdb {
                mac,
                dev: dev.clone(),
                ns: self.ns.clone(),
                source: source.into(),
            }),
        }
    }

    /// FDB entries of `dev` that point at a remote tunnel endpoint.
    pub async fn list_fdb(&self, dev: &IfName) -> Result<Vec<FdbEntry>> {
        let family = Some(AddressFamily::Bridge);
        let (index, msgs) = self.dump_neighbours(dev, "fdb entries", family).await?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == index && m.header.family == AddressFamily::Bridge)
            .filter_map(|m| {
                Some(FdbEntry {
                    dev: dev.clone(),
                    mac: msg_mac(m)?,
                    dst: msg_dst(m)?,
                })
            })
            .collect())
    }

    async fn dump_neighbours(
        &self,
        dev: &IfName,
        what: &'static str,
        family: Option<AddressFamily>,
    ) -> Result<(u32, Vec<NeighbourMessage>)> {
        let index = self.index_of(dev).await?;
        let mut req = self.h.neighbours().get();
        if let Some(family) = family {
            req = req.set_address_family(family);
        }
        let msgs = req
            .execute()
            .try_collect()
            .await
            .map_err(|source| Error::ListNeighbours {
                what,
                dev: dev.clone(),
                ns: self.ns.clone(),
                source: source.into(),
            })?;
        Ok((index, msgs))
    }
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn neigh_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

fn msg_dst(msg: &NeighbourMessage) -> Option<IpAddr> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(addr) => addr_ip(addr),
        _ => None,
    })
}

/// The IP of a neighbour address. In AF_BRIDGE (FDB) messages the decoder cannot know the
/// VTEP's family and leaves the raw bytes: 4 for IPv4, 16 for IPv6.
fn addr_ip(addr: &NeighbourAddress) -> Option<IpAddr> {
    match addr {
        NeighbourAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        NeighbourAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        NeighbourAddress::Other(raw) => match raw.len() {
            4 => <[u8; 4]>::try_from(raw.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(raw.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

fn msg_mac(msg: &NeighbourMessage) -> Option<MacAddr> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => {
            <[u8; 6]>::try_from(b.as_slice()).ok().map(MacAddr)
        }
        _ => None,
    })
}
