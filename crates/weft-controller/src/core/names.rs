//! The names of joined endpoints: the record the embedded DNS answers from, reported to
//! the [`NamePlane`] for this host's sandboxes and published in `endpoint_table` for the
//! other hosts of a global network. Only networks whose driver answers names take part
//! (bridge and overlay; not `null` or `host`).

use super::Core;
use crate::names::{NamedAttachment, SandboxNames};
use tracing::warn;
use weft_drivers::TableEntry;
use weft_types::gossip::{NameRecord, Table};
use weft_types::{Attachment, EndpointRecord, NetworkRecord, SandboxId, Scope};

impl Core {
    /// What `endpoint` answers to, if its network has names and it is (being) joined.
    pub(crate) fn name_record(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Option<NameRecord> {
        let driver = self.driver_for(network).ok()?;
        // The gateway network is a way out, not a network of sandboxes: like Docker's
        // docker_gwbridge, it answers no names.
        if !driver.answers_names() || Core::is_gateway_network(network) {
            return None;
        }
        let sandbox = self.sandboxes.get(endpoint.attachment.sandbox()?)?;
        let ips = endpoint
            .ipv4
            .iter()
            .chain(endpoint.ipv6.iter())
            .map(|net| net.addr())
            .collect::<Vec<_>>();
        // A backend that is leaving drains: still a name, no longer a backend.
        let disabled = matches!(endpoint.attachment, Attachment::Leaving(_));
        (!ips.is_empty()).then(|| NameRecord {
            sandbox: sandbox.record.name.clone(),
            endpoint: endpoint.name.clone(),
            ips,
            aliases: endpoint.aliases.clone(),
            service: endpoint.service.clone(),
            vip: None,
            disabled,
        })
    }

    /// The `endpoint_table` entry of an endpoint on a global network with names.
    pub(crate) fn name_entry(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Option<TableEntry> {
        if network.scope != Scope::Global {
            return None;
        }
        let record = self.name_record(network, endpoint)?;
        match record.encode() {
            Ok(value) => Some(TableEntry {
                table: Table::Endpoints.name().to_owned(),
                key: endpoint.id.to_string(),
                value,
            }),
            Err(e) => {
                warn!(endpoint = %endpoint.name, error = %e, "cannot encode the endpoint's names");
                None
            }
        }
    }

    /// Tells the embedded DNS which networks with names `sandbox` is on now.
    pub(crate) fn report_names(&self, sandbox: &SandboxId) {
        let Some(stored) = self.sandboxes.get(sandbox) else {
            return;
        };
        let Ok(netns) = self.sandbox_netns(sandbox) else {
            return;
        };
        let mut joined: Vec<&EndpointRecord> = self
            .endpoints
            .values()
            .map(|s| &s.record)
            .filter(|e| {
                e.attachment == Attachment::Joined(sandbox.clone())
                    || e.attachment == Attachment::Leaving(sandbox.clone())
            })
            .collect();
        joined.sort_by_key(|e| (e.created_ms, e.id.clone()));
        let attachments = joined
            .into_iter()
            .filter_map(|endpoint| {
                let network = &self.networks.get(&endpoint.network)?.record;
                Some(NamedAttachment {
                    network: network.id.clone(),
                    network_name: network.name.clone(),
                    internal: network.internal,
                    endpoint: endpoint.id.clone(),
                    record: self.name_record(network, endpoint)?,
                })
            })
            .collect();
        self.names.sandbox_names(SandboxNames {
            sandbox: sandbox.clone(),
            name: stored.record.name.clone(),
            netns: self.kernel.netns_path(&netns),
            ns_name: netns,
            attachments,
        });
    }

    /// Before a backend leaves: tells every host it is draining (no new connections
    /// through the VIP, out of `tasks.` answers) and waits for that to take effect, while
    /// its open connections go on. The endpoint is already marked `leaving`.
    pub(crate) async fn drain(&self, endpoint: &EndpointRecord, sandbox: &SandboxId) {
        if endpoint.service.is_none() {
            return;
        }
        self.report_names(sandbox);
        if let Some(network) = self.networks.get(&endpoint.network)
            && let Some(entry) = self.name_entry(&network.record, endpoint)
            && let Err(e) = self.cluster.publish(&endpoint.network, &[entry]).await
        {
            warn!(endpoint = %endpoint.name, error = %e, "cannot announce the backend's drain");
        }
        tokio::time::sleep(DRAIN).await;
    }
}

/// How long a leaving backend drains: a gossip round or two to reach every host, and
/// their load balancers' next program.
pub const DRAIN: std::time::Duration = std::time::Duration::from_millis(1500);
