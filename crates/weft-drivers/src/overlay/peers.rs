//! Remote endpoints on the vxlan device: per peer a permanent neighbour entry (its IP -> its
//! MAC, answered locally by the device's proxy ARP) and a permanent FDB entry (its MAC -> its
//! host's VTEP), as libnetwork's peerAdd programs them. Applied from table events, replayed
//! when a namespace is set up, and compared with the kernel by repair.

use std::collections::BTreeMap;
use std::net::IpAddr;
use weft_os::{Error as OsError, FdbEntry, IfName, MacAddr, Neighbour, NsName, NsRef};

use super::{
    NetState, OverlayDriver, OverlayNet, PEER_TABLE, PeerRecord, error_chain, network_object,
};
use crate::{DriverError, DriverOp, EventNotify};

/// Whether another peer still needs an entry for `mac`.
fn mac_used(peers: &BTreeMap<String, PeerRecord>, mac: MacAddr) -> bool {
    peers.values().any(|p| p.mac == mac)
}

/// Whether another peer still needs a neighbour entry for `ip`.
fn ip_used(peers: &BTreeMap<String, PeerRecord>, ip: IpAddr) -> bool {
    peers.values().any(|p| p.ip.addr() == ip)
}

/// FDB entries the kernel makes itself: the all-zeros default destination and flood entries.
/// weft never programs these, so repair never deletes them.
fn kernel_default(mac: MacAddr) -> bool {
    mac.0 == [0; 6] || mac.is_multicast()
}

impl OverlayDriver {
    /// event_notify for [`PEER_TABLE`]: remembers the change and, when the network's namespace
    /// is set up here, programs it. A malformed value changes nothing.
    pub(super) async fn apply_event(&self, ev: &EventNotify) -> Result<(), DriverError> {
        let new = match ev.value.as_deref().map(PeerRecord::decode).transpose() {
            Ok(new) => new,
            Err(e) => {
                return Err(self.invalid(format!(
                    "malformed {PEER_TABLE} entry {:?} of network {} from {}: {e}",
                    ev.key,
                    ev.network.short(),
                    ev.owner
                )));
            }
        };
        // Our own endpoints are reached through the local bridge: a record of ours is no
        // peer, and replaces whatever the key held as one. Told by the owner as well as by
        // the VTEP: an earlier run of this node may have advertised another address.
        let own =
            ev.owner == self.config.node_id || new.is_some_and(|p| p.vtep == self.config.vtep);
        let new = new.filter(|_| !own);
        if self.is_deleted(&ev.network) {
            // Queued before the network was deleted here: keeping it would bring the
            // network back as state that nothing frees.
            return Ok(());
        }
        let mut st = self.lock_net(&ev.network).await;
        let old = match new {
            Some(rec) => st.peers.insert(ev.key.clone(), rec),
            None => st.peers.remove(&ev.key),
        };
        let (Some(net), Some(_)) = (&st.net, st.up) else {
            // Applied when the namespace is set up.
            return Ok(());
        };
        let ns = self.netns(&ev.network);
        let result = match (ns, new, old) {
            (Err(e), _, _) => Err(e),
            (Ok(ns), Some(new), old) => {
                self.program_peer(&ns, &net.vxlan, old.as_ref(), &new, &st.peers)
                    .await
            }
            (Ok(ns), None, Some(old)) => {
                self.unprogram_peer(&ns, &net.vxlan, &old, &st.peers).await
            }
            (Ok(_), None, None) => Ok(()),
        };
        result.map_err(|e| self.os_failed(DriverOp::EventNotify, format!("peer {}", ev.key), e))
    }

    /// Programs `new` (replace semantics), first removing what `old` had that `new` does not.
    async fn program_peer(
        &self,
        ns: &NsName,
        dev: &IfName,
        old: Option<&PeerRecord>,
        new: &PeerRecord,
        peers: &BTreeMap<String, PeerRecord>,
    ) -> Result<(), OsError> {
        let (k, inside) = (&self.kernel, NsRef::named(ns));
        if let Some(old) = old {
            if old.mac != new.mac && !mac_used(peers, old.mac) {
                k.delete_fdb(&inside, dev, old.mac).await?;
            }
            let ip = old.ip.addr();
            if ip != new.ip.addr() && !ip_used(peers, ip) {
                k.delete_neighbour(&inside, dev, ip).await?;
            }
        }
        let neighbour = Neighbour {
            dev: dev.clone(),
            ip: new.ip.addr(),
            mac: new.mac,
        };
        k.replace_neighbour(&inside, &neighbour).await?;
        let fdb = FdbEntry {
            dev: dev.clone(),
            mac: new.mac,
            dst: IpAddr::V4(new.vtep),
        };
        k.replace_fdb(&inside, &fdb).await
    }

    /// Removes a deleted peer's entries (absent ones are fine), unless another peer uses them.
    async fn unprogram_peer(
        &self,
        ns: &NsName,
        dev: &IfName,
        old: &PeerRecord,
        peers: &BTreeMap<String, PeerRecord>,
    ) -> Result<(), OsError> {
        let (k, inside) = (&self.kernel, NsRef::named(ns));
        if !mac_used(peers, old.mac) {
            k.delete_fdb(&inside, dev, old.mac).await?;
        }
        if !ip_used(peers, old.ip.addr()) {
            k.delete_neighbour(&inside, dev, old.ip.addr()).await?;
        }
        Ok(())
    }

    /// Programs every known peer into a namespace just set up. Best effort: a failure is
    /// logged and left to [`Self::repair_all`], because the join itself has succeeded.
    pub(super) async fn program_all(&self, ns: &NsName, net: &OverlayNet, st: &NetState) {
        for (key, peer) in &st.peers {
            if let Err(e) = self
                .program_peer(ns, &net.vxlan, None, peer, &st.peers)
                .await
            {
                tracing::warn!(
                    network = net.id.short(), peer = %key, error = %error_chain(&e),
                    "failed to program a peer; repair will retry"
                );
            }
        }
    }

    /// repair: every set-up network in turn, each under its own lock.
    pub(super) async fn repair_all(&self) -> Result<usize, DriverError> {
        let (mut repaired, mut errors) = (0, Vec::new());
        let prune = self.started.elapsed() >= self.config.stray_grace;
        for (id, slot) in self.all_slots() {
            let st = slot.lock_owned().await;
            let (Some(net), Some(_), false) = (&st.net, st.up, st.gone) else {
                continue;
            };
            match self.repair_net(net, &st.peers, prune).await {
                Ok(n) => repaired += n,
                Err(e) => errors.push(format!("{}: {}", network_object(&id), error_chain(&e))),
            }
        }
        match errors.is_empty() {
            true => Ok(repaired),
            false => Err(self.failed(DriverOp::Repair, "overlay networks", errors.join("; "))),
        }
    }

    /// Makes the vxlan's FDB and neighbour entries match the peers; returns how many changed.
    async fn repair_net(
        &self,
        net: &OverlayNet,
        peers: &BTreeMap<String, PeerRecord>,
        prune: bool,
    ) -> Result<usize, OsError> {
        let inside = NsRef::named(&self.netns(&net.id)?);
        let n = self.repair_fdb(&inside, net, peers, prune).await?;
        Ok(n + self.repair_neighbours(&inside, net, peers, prune).await?)
    }

    async fn repair_fdb(
        &self,
        inside: &NsRef,
        net: &OverlayNet,
        peers: &BTreeMap<String, PeerRecord>,
        prune: bool,
    ) -> Result<usize, OsError> {
        let (k, dev) = (&self.kernel, &net.vxlan);
        let want: BTreeMap<MacAddr, IpAddr> = peers
            .values()
            .map(|p| (p.mac, IpAddr::V4(p.vtep)))
            .collect();
        let have = k.list_fdb(inside, dev).await?;
        let mut repaired = 0;
        for stray in have.iter().filter(|e| prune && !want.contains_key(&e.mac)) {
            if kernel_default(stray.mac) {
                continue;
            }
            tracing::info!(network = net.id.short(), mac = %stray.mac, dst = %stray.dst, "removing an fdb entry no peer wants");
            k.delete_fdb(inside, dev, stray.mac).await?;
            repaired += 1;
        }
        for (mac, dst) in &want {
            let held: Vec<_> = have.iter().filter(|e| e.mac == *mac).collect();
            if held.len() == 1 && held[0].dst == *dst {
                continue;
            }
            tracing::info!(network = net.id.short(), %mac, %dst, "restoring a peer's fdb entry");
            if !held.is_empty() {
                // Several destinations for one MAC: replace would change only the first.
                k.delete_fdb(inside, dev, *mac).await?;
            }
            let entry = FdbEntry {
                dev: dev.clone(),
                mac: *mac,
                dst: *dst,
            };
            k.replace_fdb(inside, &entry).await?;
            repaired += 1;
        }
        Ok(repaired)
    }

    async fn repair_neighbours(
        &self,
        inside: &NsRef,
        net: &OverlayNet,
        peers: &BTreeMap<String, PeerRecord>,
        prune: bool,
    ) -> Result<usize, OsError> {
        let (k, dev) = (&self.kernel, &net.vxlan);
        let want: BTreeMap<IpAddr, MacAddr> =
            peers.values().map(|p| (p.ip.addr(), p.mac)).collect();
        let have = k.list_neighbours(inside, dev).await?;
        let mut repaired = 0;
        for stray in have.iter().filter(|n| prune && !want.contains_key(&n.ip)) {
            tracing::info!(network = net.id.short(), ip = %stray.ip, "removing a neighbour no peer wants");
            k.delete_neighbour(inside, dev, stray.ip).await?;
            repaired += 1;
        }
        for (ip, mac) in &want {
            if have.iter().any(|n| n.ip == *ip && n.mac == *mac) {
                continue;
            }
            tracing::info!(network = net.id.short(), %ip, %mac, "restoring a peer's neighbour entry");
            let neighbour = Neighbour {
                dev: dev.clone(),
                ip: *ip,
                mac: *mac,
            };
            k.replace_neighbour(inside, &neighbour).await?;
            repaired += 1;
        }
        Ok(repaired)
    }
}
