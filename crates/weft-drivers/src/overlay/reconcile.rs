//! Reconciliation at start: the wanted networks become the driver's networks; overlay
//! namespaces (and vxlans stranded in the host namespace) that no joined endpoint needs are
//! removed first, which frees their VNIs; then every network with joined endpoints gets its
//! namespace (adopting what exists) and its veths back, and veths nobody wants are deleted.

use std::collections::{BTreeMap, BTreeSet};
use weft_os::{IfName, LinkKind, NsName, NsRef};
use weft_types::{EndpointRecord, NetworkId};

use super::{NetState, OverlayDriver, OverlayNet, error_chain, names, network_object};
use crate::{DriverError, DriverOp, JoinContext, Wanted};

type Joined<'a> = BTreeMap<NetworkId, Vec<(&'a EndpointRecord, &'a JoinContext)>>;

impl OverlayDriver {
    pub(super) async fn reconcile_all(&self, wanted: &Wanted) -> Result<(), DriverError> {
        let mut errors = Vec::new();
        let nets = self.parse_wanted(wanted, &mut errors);
        let mut joined: Joined<'_> = BTreeMap::new();
        for (ep, ctx) in &wanted.endpoints {
            if let Some(ctx) = ctx
                && nets.iter().any(|n| n.id == ep.network)
            {
                joined
                    .entry(ep.network.clone())
                    .or_default()
                    .push((ep, ctx));
            }
        }
        let keep_ns: BTreeSet<NsName> =
            joined.keys().filter_map(|id| self.netns(id).ok()).collect();
        self.remove_unwanted_namespaces(&keep_ns, &mut errors).await;
        let keep_vx: BTreeSet<&IfName> = nets
            .iter()
            .filter(|n| joined.contains_key(&n.id))
            .map(|n| &n.vxlan)
            .collect();
        self.remove_stranded_vxlans(&keep_vx, &mut errors).await;
        self.forget_unwanted(&nets).await;
        for net in &nets {
            let mut st = self.lock_net(&net.id).await;
            st.net = Some(net.clone());
            match joined.get(&net.id) {
                Some(eps) => self.reconcile_joined(net, eps, &mut st, &mut errors).await,
                None => {
                    st.up = None;
                    st.joined.clear();
                }
            }
        }
        match errors.is_empty() {
            true => Ok(()),
            false => Err(self.failed(DriverOp::Reconcile, "overlay networks", errors.join("; "))),
        }
    }

    /// The valid wanted networks; the others are reported.
    fn parse_wanted(&self, wanted: &Wanted, errors: &mut Vec<String>) -> Vec<OverlayNet> {
        let mut nets = Vec::new();
        for record in &wanted.networks {
            match OverlayNet::from_record(record) {
                Ok(net) => nets.push(net),
                Err(e) => errors.push(format!("{}: {e}", network_object(&record.id))),
            }
        }
        nets
    }

    /// Networks the driver knew that are no longer wanted keep only their peers (events may
    /// still arrive for them); their namespaces are already gone.
    async fn forget_unwanted(&self, nets: &[OverlayNet]) {
        for (id, slot) in self.all_slots() {
            if nets.iter().any(|n| n.id == id) {
                continue;
            }
            let mut st = slot.lock_owned().await;
            st.net = None;
            st.up = None;
            st.joined.clear();
        }
    }

    /// Deletes every overlay namespace of this agent that is not in `keep`.
    async fn remove_unwanted_namespaces(&self, keep: &BTreeSet<NsName>, errors: &mut Vec<String>) {
        let prefix = &self.config.netns_prefix;
        let found = match self.kernel.list_netns(&names::netns_prefix(prefix)).await {
            Ok(found) => found,
            Err(e) => {
                errors.push(format!(
                    "failed to list overlay namespaces: {}",
                    error_chain(&e)
                ));
                return;
            }
        };
        let owned = found
            .into_iter()
            .filter(|n| names::is_owned_netns(prefix, n.as_str()));
        for ns in owned.filter(|n| !keep.contains(n)) {
            tracing::info!(netns = %ns, "removing an overlay namespace no joined endpoint needs");
            if let Err(e) = self.remove_namespace(&ns).await {
                errors.push(format!(
                    "failed to remove namespace {ns}: {}",
                    error_chain(&e)
                ));
            }
        }
    }

    /// Deletes vxlans of this driver's naming left in the host namespace by a crash between
    /// their creation and their move, unless a wanted network will adopt them.
    async fn remove_stranded_vxlans(&self, keep: &BTreeSet<&IfName>, errors: &mut Vec<String>) {
        let links = match self
            .kernel
            .list_links(&NsRef::Host, names::VXLAN_PREFIX)
            .await
        {
            Ok(links) => links,
            Err(e) => {
                errors.push(format!("failed to list vxlan links: {}", error_chain(&e)));
                return;
            }
        };
        for link in links {
            let ours = names::is_owned_vxlan(link.name.as_str())
                && matches!(link.kind, LinkKind::Vxlan(_));
            if !ours || keep.contains(&link.name) {
                continue;
            }
            tracing::info!(link = %link.name, "removing a vxlan stranded in the host namespace");
            if let Err(e) = self.kernel.delete_link(&NsRef::Host, &link.name).await {
                errors.push(format!(
                    "failed to delete {}: {}",
                    link.name,
                    error_chain(&e)
                ));
            }
        }
    }

    /// The namespace (adopted or made), veths nobody wants removed, the wanted ones attached.
    async fn reconcile_joined(
        &self,
        net: &OverlayNet,
        eps: &[(&EndpointRecord, &JoinContext)],
        st: &mut NetState,
        errors: &mut Vec<String>,
    ) {
        let op = DriverOp::Reconcile;
        // What was known before the restart is checked again, not trusted.
        st.up = None;
        st.joined.clear();
        if let Err(e) = self.ensure_up(op, st, net).await {
            errors.push(e.to_string());
            return;
        }
        let keep: BTreeSet<IfName> = eps
            .iter()
            .filter_map(|(ep, _)| names::host_veth(&ep.id).ok())
            .collect();
        if let Err(e) = self.remove_stray_veths(net, &keep).await {
            errors.push(format!("{}: {}", network_object(&net.id), error_chain(&e)));
        }
        for (ep, ctx) in eps {
            if let Err(e) = self.join_locked(op, st, net, ep, ctx).await {
                errors.push(e.to_string());
            }
        }
    }

    /// Deletes the veths in the network's namespace that belong to no wanted endpoint.
    async fn remove_stray_veths(
        &self,
        net: &OverlayNet,
        keep: &BTreeSet<IfName>,
    ) -> Result<(), weft_os::Error> {
        let inside = NsRef::named(&self.netns(&net.id)?);
        for link in self.kernel.list_links(&inside, names::VETH_PREFIX).await? {
            if names::is_owned_veth(link.name.as_str()) && !keep.contains(&link.name) {
                tracing::info!(link = %link.name, network = net.id.short(), "removing a veth no endpoint wants");
                self.kernel.delete_link(&inside, &link.name).await?;
            }
        }
        Ok(())
    }
}
