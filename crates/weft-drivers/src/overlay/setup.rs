//! The overlay driver's kernel steps: a network's namespace with its bridge and vxlan, an
//! endpoint's veth pair and its configuration inside the sandbox, and their removal. Each step
//! is idempotent (weft-os adopts what exists, and leftovers of a crash are adopted or moved
//! into place), so a retry finishes the job; a join that fails midway undoes what it made.

use std::net::{IpAddr, Ipv4Addr};
use weft_os::{
    BridgeSpec, Error as OsError, IfName, LinkKind, NsName, NsRef, Route, SysctlKey, VethSpec,
    VxlanSpec,
};
use weft_types::{EndpointId, EndpointRecord, NetworkId};

use super::{
    NetState, OverlayDriver, OverlayNet, VXLAN_OVERHEAD, endpoint_object, error_chain, names,
    network_object,
};
use crate::{DriverError, DriverOp, Failures, JoinContext};

const HOST: NsRef = NsRef::Host;
/// How often a sandbox on an overlay retries an unanswered ARP request, in milliseconds.
const NEIGH_RETRANS_MS: &str = "20";
/// "No such file": a sysctl key the kernel does not have.
const ENOENT: i32 = 2;
/// IPv4's minimum MTU (RFC 791).
const MIN_MTU: u32 = 68;
/// The underlay MTU assumed for a loopback VTEP (a single node): Ethernet's.
const LOOPBACK_UNDERLAY_MTU: u32 = 1500;

/// Why setting up a network's namespace failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum SetupError {
    #[error(transparent)]
    Os(#[from] OsError),
    /// The overlay MTU is derived from the link holding the VTEP address.
    #[error(
        "no link in the host namespace holds the vtep address {vtep}, so the overlay mtu \
         cannot be derived (check that --advertise-addr is this host's underlay address)"
    )]
    NoUnderlay { vtep: Ipv4Addr },
    #[error("underlay {dev} has mtu {mtu}, too small for the {VXLAN_OVERHEAD}-byte vxlan overhead")]
    UnderlayTooSmall { dev: IfName, mtu: u32 },
}

impl OverlayDriver {
    /// The configured MTU, else the MTU of the host link holding the VTEP address minus the
    /// VXLAN overhead, so that encapsulated frames fit the underlay without fragmenting.
    pub(super) async fn overlay_mtu(&self) -> Result<u32, SetupError> {
        if let Some(mtu) = self.config.mtu {
            return Ok(mtu);
        }
        // A single node advertising a loopback address (`weft agent` with no flags): no
        // frame ever leaves the host, and lo's 64 KiB would make odd sandboxes; take the
        // MTU of the usual 1500-byte link.
        if self.config.vtep.is_loopback() {
            return Ok(LOOPBACK_UNDERLAY_MTU - VXLAN_OVERHEAD);
        }
        let vtep = IpAddr::V4(self.config.vtep);
        for link in self.kernel.list_links(&HOST, "").await? {
            let addrs = match self.kernel.list_addresses(&HOST, &link.name).await {
                Ok(addrs) => addrs,
                // Gone since the listing: it cannot be the underlay.
                Err(OsError::LinkNotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            if addrs.iter().any(|a| a.addr() == vtep) {
                return link
                    .mtu
                    .checked_sub(VXLAN_OVERHEAD)
                    .filter(|m| *m >= MIN_MTU)
                    .ok_or(SetupError::UnderlayTooSmall {
                        dev: link.name,
                        mtu: link.mtu,
                    });
            }
        }
        Err(SetupError::NoUnderlay {
            vtep: self.config.vtep,
        })
    }

    /// Makes sure the network's namespace is set up, programming every known peer when it
    /// was not; returns whether this call made the namespace, and the MTU. A namespace this
    /// call made is removed again if a step fails.
    pub(super) async fn ensure_up(
        &self,
        op: DriverOp,
        st: &mut NetState,
        net: &OverlayNet,
    ) -> Result<(bool, u32), DriverError> {
        let object = network_object(&net.id);
        let ns = self
            .netns(&net.id)
            .map_err(|e| self.os_failed(op, &object, e))?;
        let existed = self.kernel.netns_exists(&ns).await;
        let existed = existed.map_err(|e| self.os_failed(op, &object, e))?;
        if let Some(mtu) = st.up.filter(|_| existed) {
            return Ok((false, mtu));
        }
        st.up = None;
        let mtu = match net.mtu {
            Some(mtu) => mtu,
            None => self.overlay_mtu().await.map_err(|e| match e {
                SetupError::Os(e) => self.os_failed(op, &object, e),
                other => self.failed(op, &object, other.to_string()),
            })?,
        };
        if let Err(e) = self.build(&ns, net, mtu).await {
            let err = self.os_failed(op, object, e);
            return Err(match existed {
                true => err,
                false => self.undo_build(&ns, net, err).await,
            });
        }
        st.up = Some(mtu);
        self.program_all(&ns, net, st).await;
        Ok((!existed, mtu))
    }

    /// The namespace, its bridge (gateway address, up) and its vxlan (on the bridge, up).
    async fn build(&self, ns: &NsName, net: &OverlayNet, mtu: u32) -> Result<(), OsError> {
        let k = &self.kernel;
        k.create_netns(ns).await?;
        let inside = NsRef::named(ns);
        self.bridge_netfilter_off(&inside).await?;
        let bridge = BridgeSpec {
            mtu: Some(mtu),
            ..BridgeSpec::new(net.bridge.clone())
        };
        k.create_bridge(&inside, &bridge).await?;
        k.add_address(&inside, &net.bridge, net.gateway_addr())
            .await?;
        k.set_link_up(&inside, &net.bridge).await?;
        self.ensure_vxlan(&inside, net, mtu).await?;
        k.set_master(&inside, &net.vxlan, Some(&net.bridge)).await?;
        k.set_link_up(&inside, &net.vxlan).await
    }

    /// A new namespace starts with br_netfilter on (where the kernel has it): every frame
    /// bridged in it would go through netfilter's IP hooks, which hold no rule of weft's
    /// here. Off, the overlay carries 2.6% more (median of 5 paired rounds,
    /// scripts/bench/overlay-layouts.sh, path C against A). Without br_netfilter the keys
    /// are absent and there is nothing to turn off.
    async fn bridge_netfilter_off(&self, inside: &NsRef) -> Result<(), OsError> {
        for table in ["iptables", "ip6tables", "arptables"] {
            let key = SysctlKey::from_parts(["net", "bridge", &format!("bridge-nf-call-{table}")])?;
            match self.kernel.set_sysctl(inside, &key, "0").await {
                Err(e) if e.errno() == Some(ENOENT) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Removes what a failed build made; the error notes every undo failure.
    async fn undo_build(&self, ns: &NsName, net: &OverlayNet, mut err: DriverError) -> DriverError {
        if let Err(e) = self.remove_namespace(ns).await {
            err = err.also(format!(
                "undo failed to remove namespace {ns}: {}",
                error_chain(&e)
            ));
        }
        // Made in the host namespace, and the move failed.
        if let Err(e) = self.kernel.delete_link(&HOST, &net.vxlan).await {
            err = err.also(format!(
                "undo failed to delete {} in the host namespace: {}",
                net.vxlan,
                error_chain(&e)
            ));
        }
        err
    }

    fn vxlan_spec(&self, net: &OverlayNet, mtu: u32) -> VxlanSpec {
        VxlanSpec {
            port: self.config.port,
            local: Some(self.config.vtep),
            learning: false,
            proxy: true,
            mtu: Some(mtu),
            ..VxlanSpec::new(net.vxlan.clone(), net.vni)
        }
    }

    /// The vxlan inside the namespace, made there directly, its UDP socket in the host
    /// namespace (which holds the underlay): what libnetwork gets by making it in the host
    /// and moving it, without the move, which waits for an RCU grace period (19 ms of a
    /// 24 ms first join here). One already inside is adopted, or replaced if its attributes
    /// differ. If the VNI is taken, the holders this driver made are leftovers (the manager
    /// never gives one VNI to two live networks; one stranded in the host by a crash of an
    /// earlier version between its create and its move is one): they are removed and the
    /// create retried once, so a crash never leaves "File exists" behind.
    async fn ensure_vxlan(
        &self,
        inside: &NsRef,
        net: &OverlayNet,
        mtu: u32,
    ) -> Result<(), OsError> {
        let spec = VxlanSpec {
            netns: Some(inside.clone()),
            ..self.vxlan_spec(net, mtu)
        };
        match self.kernel.create_vxlan(&HOST, &spec).await {
            Err(e) if e.is_vni_in_use() => {
                tracing::warn!(
                    vni = spec.vni.get(), link = %spec.name, error = %error_chain(&e),
                    "vni in use: removing leftover vxlan devices and retrying"
                );
                self.remove_vni_holders(&spec).await?;
                self.kernel.create_vxlan(&HOST, &spec).await
            }
            other => other,
        }
    }

    /// Deletes every vxlan of this driver's naming with `spec`'s VNI other than `spec.name`,
    /// in the host namespace and in this agent's overlay namespaces.
    async fn remove_vni_holders(&self, spec: &VxlanSpec) -> Result<(), OsError> {
        let k = &self.kernel;
        let mut spaces = vec![HOST];
        let prefix = names::netns_prefix(&self.config.netns_prefix);
        for ns in k.list_netns(&prefix).await? {
            if names::is_owned_netns(&self.config.netns_prefix, ns.as_str()) {
                spaces.push(NsRef::named(&ns));
            }
        }
        for ns in &spaces {
            for link in k.list_links(ns, names::VXLAN_PREFIX).await? {
                let holds = matches!(&link.kind, LinkKind::Vxlan(v) if v.vni == spec.vni.get());
                let stale = !(Some(ns) == spec.netns.as_ref() && link.name == spec.name);
                if holds && stale && names::is_owned_vxlan(link.name.as_str()) {
                    tracing::info!(link = %link.name, %ns, vni = spec.vni.get(), "deleting a leftover vxlan holding the vni");
                    k.delete_link(ns, &link.name).await?;
                }
            }
        }
        Ok(())
    }

    /// join with the state locked: the namespace, then the veth pair. On failure the pair is
    /// deleted, and the namespace too if this join made it and no other endpoint uses it.
    pub(super) async fn join_locked(
        &self,
        op: DriverOp,
        st: &mut NetState,
        net: &OverlayNet,
        ep: &EndpointRecord,
        ctx: &JoinContext,
    ) -> Result<(), DriverError> {
        let (made, mtu) = self.ensure_up(op, st, net).await?;
        let object = endpoint_object(&ep.id);
        let named = self
            .netns(&net.id)
            .and_then(|ns| Ok((ns, names::host_veth(&ep.id)?)));
        let (ns, host) = named.map_err(|e| self.os_failed(op, &object, e))?;
        let inside = NsRef::named(&ns);
        let Err(e) = self.attach_steps(net, mtu, ep, ctx).await else {
            st.joined.insert(ep.id.clone());
            return Ok(());
        };
        let mut err = self.os_failed(op, object, e);
        if let Err(undo) = self.kernel.delete_link(&inside, &host).await {
            err = err.also(format!(
                "undo failed to delete {host}: {}",
                error_chain(&undo)
            ));
        }
        if made && st.joined.is_empty() {
            st.up = None;
            if let Err(undo) = self.remove_namespace(&ns).await {
                err = err.also(format!(
                    "undo failed to remove namespace {ns}: {}",
                    error_chain(&undo)
                ));
            }
        }
        Err(err)
    }

    /// The veth pair (the sandbox end created in the sandbox under its final name, with the
    /// endpoint's MAC), its bridge end on the bridge, the sandbox end's address and route.
    async fn attach_steps(
        &self,
        net: &OverlayNet,
        mtu: u32,
        ep: &EndpointRecord,
        ctx: &JoinContext,
    ) -> Result<(), OsError> {
        let k = &self.kernel;
        let inside = NsRef::named(&self.netns(&net.id)?);
        let host = names::host_veth(&ep.id)?;
        let sandbox = NsRef::named(&ctx.netns);
        let spec = VethSpec {
            mtu: Some(mtu),
            peer_mac: Some(ep.mac),
            ..VethSpec::new(host.clone(), ctx.ifname.clone()).peer_in(sandbox.clone())
        };
        // An existing pair is adopted (a retry after a crash); one whose peer is elsewhere is
        // made again.
        k.create_veth(&inside, &spec).await?;
        k.set_master(&inside, &host, Some(&net.bridge)).await?;
        k.set_link_up(&inside, &host).await?;
        let dev = &ctx.ifname;
        if let Some(addr) = ep.ipv4 {
            k.add_address(&sandbox, dev, addr).await?;
        }
        k.set_link_up(&sandbox, dev).await?;
        // Neighbours on an overlay are answered on this host (the vxlan's proxy ARP, from the
        // peer table, never across the wire): retrying an unanswered resolution every 20 ms
        // instead of every second lets the sandbox reach a new peer as soon as its entry
        // is programmed.
        let retrans =
            SysctlKey::from_parts(["net", "ipv4", "neigh", dev.as_str(), "retrans_time_ms"])?;
        k.set_sysctl(&sandbox, &retrans, NEIGH_RETRANS_MS).await?;
        if ctx.default_route {
            let route = Route {
                dev: Some(dev.clone()),
                ..Route::default_via(IpAddr::V4(net.gateway))
            };
            k.replace_route(&sandbox, &route).await?;
        }
        Ok(())
    }

    /// leave and delete_endpoint: deletes the endpoint's veth (absent is success), and the
    /// namespace when no endpoint's veth is left in it. The kernel, not the in-memory set,
    /// decides "last", so a restart without a reconcile never removes a used namespace.
    pub(super) async fn detach(
        &self,
        op: DriverOp,
        network: &NetworkId,
        endpoint: &EndpointId,
        st: &mut NetState,
    ) -> Result<(), DriverError> {
        let object = endpoint_object(endpoint);
        st.joined.remove(endpoint);
        let fail = |e: OsError| self.os_failed(op, &object, e);
        let ns = self.netns(network).map_err(fail)?;
        let host = names::host_veth(endpoint).map_err(fail)?;
        if !self.kernel.netns_exists(&ns).await.map_err(fail)? {
            // The veth went with the namespace.
            st.up = None;
            return Ok(());
        }
        let inside = NsRef::named(&ns);
        // Deleting the bridge end takes the sandbox end along.
        self.kernel
            .delete_link(&inside, &host)
            .await
            .map_err(fail)?;
        let left = self.kernel.list_links(&inside, names::VETH_PREFIX).await;
        let left = left.map_err(fail)?;
        if left.iter().any(|l| names::is_owned_veth(l.name.as_str())) {
            return Ok(());
        }
        st.up = None;
        st.joined.clear();
        self.remove_namespace(&ns).await.map_err(fail)
    }

    /// Deletes a network's namespace, its vxlan devices first: a vxlan's VNI is freed when
    /// the device is deleted, while a namespace is torn down asynchronously, so a vxlan made
    /// right after could still find the VNI taken (libnetwork removes interfaces first too).
    pub(super) async fn remove_namespace(&self, ns: &NsName) -> Result<(), OsError> {
        let k = &self.kernel;
        if !k.netns_exists(ns).await? {
            return Ok(());
        }
        let inside = NsRef::named(ns);
        for link in k.list_links(&inside, names::VXLAN_PREFIX).await? {
            if matches!(link.kind, LinkKind::Vxlan(_)) {
                k.delete_link(&inside, &link.name).await?;
            }
        }
        k.delete_netns(ns).await?;
        tracing::debug!(netns = %ns, "overlay namespace removed");
        Ok(())
    }

    /// delete_network: the namespace, and a vxlan a crash stranded in the host namespace.
    pub(super) async fn remove_network(
        &self,
        id: &NetworkId,
        st: &NetState,
    ) -> Result<(), DriverError> {
        let (op, object) = (DriverOp::DeleteNetwork, network_object(id));
        let ns = self.netns(id).map_err(|e| self.os_failed(op, &object, e))?;
        let mut failures = Failures::new(&self.name, op, object);
        if let Err(e) = self.remove_namespace(&ns).await {
            failures.push(format_args!("failed to remove namespace {ns}"), e);
        }
        if let Some(net) = &st.net
            && let Err(e) = self.kernel.delete_link(&HOST, &net.vxlan).await
        {
            failures.push(
                format_args!("failed to delete {} in the host namespace", net.vxlan),
                e,
            );
        }
        failures.into_result()
    }
}
