//! A way out for sandboxes on overlay networks, as Docker's `docker_gwbridge` gives. An
//! overlay carries traffic between its sandboxes only, so it never holds a sandbox's
//! default route. A sandbox joined to a non-internal global network, and holding no
//! default route through a local one, also gets an endpoint `gw-<sandbox id>` on this
//! host's gateway network [`GATEWAY_NETWORK`]: a local bridge network made on first use
//! (subnet from the local pool, `icc=false` so its sandboxes reach the host and not each
//! other, masqueraded by the bridge driver). That endpoint holds the default route; it is
//! owned by the sandbox and goes when the sandbox's last such overlay leaves. A sandbox on
//! `--internal` overlays only gets none: it has no way out.
//!
//! Every step is an ordinary endpoint create, join, leave or delete, persisted as those
//! are; [`Core::settle_gateway`] works out what a sandbox needs from what is stored, so a
//! crash between an overlay's join and its gateway's is settled again at start.

use super::Core;
use tracing::{info, warn};
use weft_types::api::{CreateEndpointRequest, CreateNetworkRequest};
use weft_types::{
    Attachment, DriverName, EndpointId, Error, Lifecycle, Name, NetworkRecord, Options, SandboxId,
    Scope,
};

/// The name of each host's gateway network. An operator may create it beforehand (a local
/// bridge network, e.g. with a subnet of their choice); weft then uses that one.
pub const GATEWAY_NETWORK: &str = "weft_gwbridge";

/// What a sandbox needs of the gateway network.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// A joined gateway endpoint.
    Joined,
    /// No gateway endpoint at all.
    None,
    /// Whatever it has (its default route comes from a local network it is also on).
    Keep,
}

impl Core {
    /// Whether `network` is this host's gateway network.
    pub(crate) fn is_gateway_network(network: &NetworkRecord) -> bool {
        network.scope == Scope::Local && network.name.as_str() == GATEWAY_NETWORK
    }

    /// Gives `sandbox` its gateway endpoint, or takes it away, as its joined endpoints
    /// now require. A sandbox being deleted is left alone.
    pub(crate) async fn settle_gateway(&mut self, sandbox: &SandboxId) -> Result<(), Error> {
        let ready = self
            .sandboxes
            .get(sandbox)
            .is_some_and(|s| s.record.lifecycle == Lifecycle::Ready);
        if !ready {
            return Ok(());
        }
        let gateway = self.gateway_endpoint_of(sandbox);
        match (self.gateway_need(sandbox, gateway.as_ref()), gateway) {
            (Need::Joined, None) => {
                let network = self.gateway_network().await?;
                let name = gateway_endpoint_name(sandbox)?;
                let request = CreateEndpointRequest {
                    name: name.clone(),
                    ip: None,
                    ipv6: None,
                    mac: None,
                    aliases: Vec::new(),
                    service: None,
                    owner: Some(sandbox.to_string()),
                };
                let created = self.create_endpoint(network.id.as_str(), request).await?;
                if let Err(e) = self
                    .join_endpoint(network.id.as_str(), created.id.as_str(), sandbox.as_str())
                    .await
                {
                    // Not left half-made: an unjoined gateway endpoint would wait for the
                    // next change of this sandbox.
                    if let Err(undo) = self.delete_endpoint_record(created.id, true).await {
                        warn!(sandbox = %sandbox.short(), error = %undo, "cannot remove a gateway endpoint whose join failed");
                    }
                    return Err(e);
                }
                info!(sandbox = %sandbox.short(), endpoint = %name, network = GATEWAY_NETWORK, "gave the sandbox a way out");
            }
            (Need::Joined, Some(id)) => {
                let joined = self
                    .endpoints
                    .get(&id)
                    .is_some_and(|s| s.record.attachment == Attachment::Joined(sandbox.clone()));
                if !joined {
                    let network = self.gateway_network().await?;
                    self.join_endpoint(network.id.as_str(), id.as_str(), sandbox.as_str())
                        .await?;
                }
            }
            (Need::None, Some(id)) => {
                self.delete_endpoint_record(id, true).await?;
                info!(sandbox = %sandbox.short(), "the sandbox's last overlay left: its gateway endpoint is removed");
            }
            (Need::None | Need::Keep, _) => {}
        }
        Ok(())
    }

    /// Settles every ready sandbox (at start: a crash may have come between an overlay's
    /// join and its gateway's). Failures are logged; the next change retries them.
    pub(crate) async fn settle_gateways(&mut self) -> usize {
        let sandboxes: Vec<SandboxId> = self.sandboxes.keys().cloned().collect();
        let mut failed = 0;
        for sandbox in sandboxes {
            if let Err(e) = self.settle_gateway(&sandbox).await {
                warn!(sandbox = %sandbox.short(), error = %e, "cannot settle the sandbox's way out");
                failed += 1;
            }
        }
        failed
    }

    fn gateway_need(&self, sandbox: &SandboxId, gateway: Option<&EndpointId>) -> Need {
        let mut wants_out = false;
        let mut routed_elsewhere = false;
        let joined = self.endpoints.values().map(|s| &s.record).filter(|e| {
            e.attachment == Attachment::Joined(sandbox.clone()) && Some(&e.id) != gateway
        });
        for endpoint in joined {
            let Some(network) = self.networks.get(&endpoint.network).map(|s| &s.record) else {
                continue;
            };
            wants_out |= network.scope == Scope::Global && !network.internal;
            routed_elsewhere |= endpoint.interface.as_ref().is_some_and(|i| i.default_route);
        }
        match (wants_out, routed_elsewhere) {
            (false, _) => Need::None,
            (true, true) => Need::Keep,
            (true, false) => Need::Joined,
        }
    }

    /// The sandbox's gateway endpoint, if it has one.
    fn gateway_endpoint_of(&self, sandbox: &SandboxId) -> Option<EndpointId> {
        let network = self
            .networks
            .values()
            .map(|s| &s.record)
            .find(|n| Core::is_gateway_network(n))?;
        self.endpoints_of(&network.id)
            .find(|e| e.owner.as_ref() == Some(sandbox))
            .map(|e| e.id.clone())
    }

    /// The gateway network, made now if this host has none.
    async fn gateway_network(&mut self) -> Result<NetworkRecord, Error> {
        let found = self
            .networks
            .values()
            .map(|s| &s.record)
            .find(|n| n.name.as_str() == GATEWAY_NETWORK);
        if let Some(network) = found {
            return match Core::is_gateway_network(network) && network.driver == DriverName::bridge()
            {
                true if network.lifecycle == Lifecycle::Ready => Ok(network.clone()),
                true => Err(Error::forbidden(format!(
                    "network {GATEWAY_NETWORK} is being created or deleted: sandboxes on overlays have no way out until it is ready"
                ))),
                false => Err(Error::invalid(format!(
                    "network {GATEWAY_NETWORK} is not a local bridge network ({} driver, {} scope): weft needs that name for the way out of overlay networks",
                    network.driver,
                    match network.scope {
                        Scope::Local => "local",
                        Scope::Global => "global",
                    }
                ))),
            };
        }
        let request = CreateNetworkRequest {
            name: GATEWAY_NETWORK.parse()?,
            driver: Some(DriverName::bridge()),
            subnets: Vec::new(),
            ipv6: false,
            internal: false,
            attachable: false,
            options: Options::from_pairs(["icc=false"])?,
            labels: Default::default(),
        };
        let info = self
            .create_network(request)
            .await
            .map_err(|e| e.context(format!("cannot create network {GATEWAY_NETWORK}")))?;
        self.networks
            .get(&info.id)
            .map(|s| s.record.clone())
            .ok_or_else(|| Error::internal(format!("network {GATEWAY_NETWORK} vanished")))
    }
}

/// `gw-<short sandbox id>`: unique per sandbox on the gateway network.
fn gateway_endpoint_name(sandbox: &SandboxId) -> Result<Name, Error> {
    format!("gw-{}", sandbox.short()).parse()
}
