//! The bridge driver's kernel steps: a network's bridge, an endpoint's veth pair and its
//! configuration inside the sandbox, and reconciliation at start. Each step is idempotent
//! (weft-os adopts what exists), so a retry after a crash finishes the job; a step that
//! fails midway undoes what its call made and reports every error.

use std::collections::BTreeSet;
use weft_os::{BridgeSpec, IfName, NsRef, Route, SysctlKey, VethSpec};
use weft_types::{EndpointId, EndpointRecord};

use super::{BridgeDriver, BridgeNet, endpoint_object, error_chain, names, network_object};
use crate::{DriverError, DriverOp, JoinContext, Wanted};

const HOST: NsRef = NsRef::Host;

impl BridgeDriver {
    /// create_network: the bridge, then the ruleset. A bridge this call made is removed
    /// again if a later step fails.
    pub(super) async fn create_bridge_network(&self, net: BridgeNet) -> Result<(), DriverError> {
        let (op, object) = (DriverOp::CreateNetwork, network_object(&net.id));
        let existed = self.kernel.get_link(&HOST, &net.bridge).await;
        let existed = existed
            .map_err(|e| self.os_failed(op, &object, e))?
            .is_some();
        if let Err(e) = self.ensure_bridge(&net).await {
            let err = self.os_failed(op, &object, e);
            return Err(self.undo_bridge(&net, existed, err).await);
        }
        let known = self.remember(net.clone());
        if let Err(e) = self.sync_ruleset().await {
            if !known {
                self.forget(&net.id);
            }
            let err = self.os_failed(op, &object, e);
            return Err(self.undo_bridge(&net, existed, err).await);
        }
        Ok(())
    }

    /// Deletes the bridge unless it existed before the failed call; the error notes an
    /// undo that failed too.
    async fn undo_bridge(&self, net: &BridgeNet, existed: bool, err: DriverError) -> DriverError {
        match existed {
            true => err,
            false => match self.kernel.delete_link(&HOST, &net.bridge).await {
                Ok(()) => err,
                Err(e) => err.also(format!(
                    "undo failed to delete bridge {}: {}",
                    net.bridge,
                    error_chain(&e)
                )),
            },
        }
    }

    /// The bridge, up, with its MTU and gateway addresses; forwarding on unless internal.
    pub(super) async fn ensure_bridge(&self, net: &BridgeNet) -> Result<(), weft_os::Error> {
        let k = &self.kernel;
        let spec = BridgeSpec {
            mtu: Some(net.mtu),
            ..BridgeSpec::new(net.bridge.clone())
        };
        k.create_bridge(&HOST, &spec).await?;
        for addr in net.gateway_addrs() {
            k.add_address(&HOST, &net.bridge, addr).await?;
        }
        k.set_link_up(&HOST, &net.bridge).await?;
        if !net.internal {
            k.set_sysctl(&HOST, &SysctlKey::parse("net.ipv4.ip_forward")?, "1")
                .await?;
        }
        Ok(())
    }

    /// join: the veth pair and its sandbox end. On failure the pair is deleted again.
    pub(super) async fn attach(
        &self,
        op: DriverOp,
        net: &BridgeNet,
        ep: &EndpointRecord,
        ctx: &JoinContext,
    ) -> Result<(), DriverError> {
        let object = endpoint_object(&ep.id);
        let host = names::host_veth(&ep.id).map_err(|e| self.os_failed(op, &object, e))?;
        let Err(e) = self.attach_steps(net, ep, ctx, &host).await else {
            return Ok(());
        };
        let err = self.os_failed(op, object, e);
        Err(match self.kernel.delete_link(&HOST, &host).await {
            Ok(()) => err,
            Err(undo) => err.also(format!(
                "undo failed to delete {host}: {}",
                error_chain(&undo)
            )),
        })
    }

    async fn attach_steps(
        &self,
        net: &BridgeNet,
        ep: &EndpointRecord,
        ctx: &JoinContext,
        host: &IfName,
    ) -> Result<(), weft_os::Error> {
        let k = &self.kernel;
        let sandbox = NsRef::named(&ctx.netns);
        // The sandbox end is created in the sandbox under its final name, with its MAC and
        // MTU: moving it there afterwards would wait out the kernel's RCU grace periods.
        let spec = VethSpec {
            mtu: Some(net.mtu),
            peer_mac: Some(ep.mac),
            ..VethSpec::new(host.clone(), ctx.ifname.clone()).peer_in(sandbox.clone())
        };
        // An existing pair is adopted (MTU and MACs corrected): a retry after a crash at any
        // later step. A wv- end whose peer is elsewhere is made again.
        k.create_veth(&HOST, &spec).await?;
        k.set_master(&HOST, host, Some(&net.bridge)).await?;
        // Without icc, every port is isolated: sandboxes reach the bridge (the host, the
        // way out), not each other. A new port is not isolated, and icc never changes after
        // the network is made, so the other networks' joins skip the call.
        if !net.icc {
            k.set_port_isolated(&HOST, host, true).await?;
        }
        k.set_link_up(&HOST, host).await?;
        self.configure_inside(net, ep, ctx, &sandbox).await
    }

    /// Addresses, up, and the default route when this endpoint carries it (MAC and MTU come
    /// with the veth).
    async fn configure_inside(
        &self,
        net: &BridgeNet,
        ep: &EndpointRecord,
        ctx: &JoinContext,
        sandbox: &NsRef,
    ) -> Result<(), weft_os::Error> {
        let (k, dev) = (&self.kernel, &ctx.ifname);
        let addrs: Vec<_> = [ep.ipv4, ep.ipv6].into_iter().flatten().collect();
        for addr in &addrs {
            k.add_address(sandbox, dev, *addr).await?;
        }
        k.set_link_up(sandbox, dev).await?;
        if !ctx.default_route || net.internal {
            return Ok(());
        }
        for gateway in addrs.iter().filter_map(|a| net.gateway_for(a.addr())) {
            let route = Route {
                dev: Some(dev.clone()),
                ..Route::default_via(gateway)
            };
            k.replace_route(sandbox, &route).await?;
        }
        Ok(())
    }

    /// leave and delete_endpoint: deletes the host end (absent is success).
    pub(super) async fn remove_veth(
        &self,
        op: DriverOp,
        endpoint: &EndpointId,
    ) -> Result<(), DriverError> {
        let object = endpoint_object(endpoint);
        let host = names::host_veth(endpoint).map_err(|e| self.os_failed(op, &object, e))?;
        self.kernel
            .delete_link(&HOST, &host)
            .await
            .map_err(|e| self.os_failed(op, object, e))
    }

    /// reconcile: the wanted networks become the driver's networks; owned links that are
    /// not wanted go, wanted bridges and joined veths are made, then the ruleset.
    pub(super) async fn reconcile_all(&self, wanted: &Wanted) -> Result<(), DriverError> {
        let mut errors = Vec::new();
        let nets = self.adopt_wanted(wanted, &mut errors);
        let mut keep: BTreeSet<IfName> = nets.iter().map(|n| n.bridge.clone()).collect();
        let joined = wanted.endpoints.iter().filter_map(|(ep, ctx)| {
            let net = nets.iter().find(|n| n.id == ep.network)?;
            Some((net, ep, ctx.as_ref()?))
        });
        let joined: Vec<_> = joined.collect();
        keep.extend(
            joined
                .iter()
                .filter_map(|(_, ep, _)| names::host_veth(&ep.id).ok()),
        );
        self.remove_unwanted(&keep, &mut errors).await;
        for net in &nets {
            if let Err(e) = self.ensure_bridge(net).await {
                errors.push(format!("{}: {}", network_object(&net.id), error_chain(&e)));
            }
        }
        // Isolation before any veth is (re)attached.
        if let Err(e) = self.sync_ruleset().await {
            errors.push(format!("failed to apply the ruleset: {}", error_chain(&e)));
        }
        for (net, ep, ctx) in joined {
            if let Err(e) = self.attach(DriverOp::Reconcile, net, ep, ctx).await {
                errors.push(e.to_string());
            }
        }
        match errors.is_empty() {
            true => Ok(()),
            false => Err(self.failed(DriverOp::Reconcile, "bridge networks", errors.join("; "))),
        }
    }

    /// Replaces the driver's networks with the valid wanted ones; reports the others.
    fn adopt_wanted(&self, wanted: &Wanted, errors: &mut Vec<String>) -> Vec<BridgeNet> {
        let mut nets = Vec::new();
        for record in &wanted.networks {
            match BridgeNet::from_record(record) {
                Ok(net) => nets.push(net),
                Err(e) => errors.push(format!("{}: {e}", network_object(&record.id))),
            }
        }
        let mut s = self.lock();
        s.generation += 1;
        s.networks = nets.iter().map(|n| (n.id.clone(), n.clone())).collect();
        nets
    }

    /// Deletes every owned link in the host namespace that is not in `keep`.
    async fn remove_unwanted(&self, keep: &BTreeSet<IfName>, errors: &mut Vec<String>) {
        for prefix in names::OWNED_PREFIXES {
            let links = match self.kernel.list_links(&HOST, prefix).await {
                Ok(links) => links,
                Err(e) => {
                    errors.push(format!(
                        "failed to list {prefix}* links: {}",
                        error_chain(&e)
                    ));
                    continue;
                }
            };
            let stale = links.into_iter().map(|l| l.name);
            for name in stale.filter(|n| names::is_owned(n.as_str()) && !keep.contains(n)) {
                tracing::info!(link = %name, "removing a link the store does not want");
                if let Err(e) = self.kernel.delete_link(&HOST, &name).await {
                    errors.push(format!("failed to delete {name}: {}", error_chain(&e)));
                }
            }
        }
    }
}
