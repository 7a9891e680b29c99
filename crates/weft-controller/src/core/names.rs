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
        if !driver.answers_names() {
            return None;
        }
        let sandbox = self.sandboxes.get(endpoint.attachment.sandbox()?)?;
        let ips = endpoint
            .ipv4
            .iter()
            .chain(endpoint.ipv6.iter())
            .map(|net| net.addr())
            .collect::<Vec<_>>();
        (!ips.is_empty()).then(|| NameRecord {
            sandbox: sandbox.record.name.clone(),
            endpoint: endpoint.name.clone(),
            ips,
            aliases: endpoint.aliases.clone(),
            service: endpoint.service.clone(),
            vip: None,
            disabled: false,
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
            .filter(|e| e.attachment == Attachment::Joined(sandbox.clone()))
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
            attachments,
        });
    }
}
