//! Building the API's views of networks, endpoints and sandboxes from the records.
//! Only `ready` objects are shown; endpoints are listed in name order.

use super::Core;
use weft_types::api::{
    EndpointInfo, NetworkEndpoint, NetworkInfo, SandboxEndpoint, SandboxInfo, SubnetInfo,
};
use weft_types::{Attachment, EndpointId, EndpointRecord, Error, Lifecycle, NetworkId, SandboxId};

impl Core {
    /// Every ready network, by name.
    pub fn list_networks(&self) -> Vec<NetworkInfo> {
        let mut out: Vec<NetworkInfo> = self
            .networks
            .values()
            .filter(|s| s.record.lifecycle == Lifecycle::Ready)
            .filter_map(|s| self.network_info(&s.record.id).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn inspect_network(&self, reference: &str) -> Result<NetworkInfo, Error> {
        let id = self.find_network(reference)?.id.clone();
        self.network_info(&id)
    }

    /// Ready endpoints, of one network or of all, by network then name.
    pub fn list_endpoints(&self, network: Option<&str>) -> Result<Vec<EndpointInfo>, Error> {
        let filter = network
            .map(|n| self.find_network(n).map(|n| n.id.clone()))
            .transpose()?;
        let mut out: Vec<EndpointInfo> = self
            .ready_endpoints()
            .filter(|e| filter.as_ref().is_none_or(|n| &e.network == n))
            .filter_map(|e| self.endpoint_info(&e.id).ok())
            .collect();
        out.sort_by(|a, b| (&a.network, &a.name).cmp(&(&b.network, &b.name)));
        Ok(out)
    }

    /// Every ready sandbox, by name.
    pub fn list_sandboxes(&self) -> Vec<SandboxInfo> {
        let mut out: Vec<SandboxInfo> = self
            .sandboxes
            .values()
            .filter(|s| s.record.lifecycle == Lifecycle::Ready)
            .filter_map(|s| self.sandbox_info(&s.record.id).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn inspect_sandbox(&self, reference: &str) -> Result<SandboxInfo, Error> {
        let id = self.find_sandbox(reference)?.id.clone();
        self.sandbox_info(&id)
    }

    pub(crate) fn network_info(&self, id: &NetworkId) -> Result<NetworkInfo, Error> {
        let n = &self
            .networks
            .get(id)
            .ok_or_else(|| Error::not_found(format!("network {}", id.short())))?
            .record;
        let mut endpoints: Vec<NetworkEndpoint> = self
            .ready_endpoints()
            .filter(|e| &e.network == id)
            .map(|e| NetworkEndpoint {
                id: e.id.clone(),
                name: e.name.clone(),
                ipv4: e.ipv4,
                ipv6: e.ipv6,
                mac: e.mac,
                sandbox: self.joined_sandbox_name(e),
            })
            .collect();
        endpoints.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(NetworkInfo {
            id: n.id.clone(),
            name: n.name.clone(),
            driver: n.driver.clone(),
            scope: n.scope,
            subnets: n
                .subnets
                .iter()
                .map(|s| SubnetInfo {
                    subnet: s.subnet,
                    gateway: s.gateway,
                    ip_range: s.ip_range,
                })
                .collect(),
            ipv6: n.ipv6,
            internal: n.internal,
            attachable: n.attachable,
            options: n.options.clone(),
            labels: n.labels.clone(),
            created_ms: n.created_ms,
            endpoints,
            peers: None,
        })
    }

    pub(crate) fn endpoint_info(&self, id: &EndpointId) -> Result<EndpointInfo, Error> {
        let e = &self
            .endpoints
            .get(id)
            .ok_or_else(|| Error::not_found(format!("endpoint {}", id.short())))?
            .record;
        let network = &self
            .networks
            .get(&e.network)
            .ok_or_else(|| Error::not_found(format!("network {}", e.network.short())))?
            .record;
        Ok(EndpointInfo {
            id: e.id.clone(),
            name: e.name.clone(),
            network_id: network.id.clone(),
            network: network.name.clone(),
            ipv4: e.ipv4,
            ipv6: e.ipv6,
            mac: e.mac,
            aliases: e.aliases.clone(),
            service: e.service.clone(),
            sandbox: self.joined_sandbox_name(e),
            created_ms: e.created_ms,
        })
    }

    pub(crate) fn sandbox_info(&self, id: &SandboxId) -> Result<SandboxInfo, Error> {
        let s = &self
            .sandboxes
            .get(id)
            .ok_or_else(|| Error::not_found(format!("sandbox {}", id.short())))?
            .record;
        let mut endpoints: Vec<SandboxEndpoint> = self
            .ready_endpoints()
            .filter(|e| e.attachment == Attachment::Joined(id.clone()))
            .filter_map(|e| {
                let network = self.networks.get(&e.network)?;
                Some(SandboxEndpoint {
                    interface: e.interface.as_ref().map(|i| i.name.clone()),
                    endpoint_id: e.id.clone(),
                    endpoint: e.name.clone(),
                    network: network.record.name.clone(),
                    ipv4: e.ipv4,
                    ipv6: e.ipv6,
                    mac: e.mac,
                })
            })
            .collect();
        endpoints.sort_by(|a, b| a.network.cmp(&b.network));
        Ok(SandboxInfo {
            netns: self.sandbox_netns_path(id)?,
            id: s.id.clone(),
            name: s.name.clone(),
            hostname: s.hostname.clone(),
            created_ms: s.created_ms,
            endpoints,
        })
    }

    /// The namespace to enter to run in the sandbox: the agent's own when the sandbox is
    /// on a host network, else the sandbox's.
    fn sandbox_netns_path(&self, id: &SandboxId) -> Result<String, Error> {
        if self.sandbox_on_host(id) {
            return Ok(format!("/proc/{}/ns/net", std::process::id()));
        }
        let netns = self.sandbox_netns(id)?;
        Ok(self.kernel.netns_path(&netns).display().to_string())
    }

    /// Whether the sandbox joined a network whose driver runs it in the host's namespace.
    pub(crate) fn sandbox_on_host(&self, id: &SandboxId) -> bool {
        self.ready_endpoints()
            .filter(|e| e.attachment == Attachment::Joined(id.clone()))
            .any(|e| {
                self.networks
                    .get(&e.network)
                    .and_then(|n| self.network_driver(&n.record).ok())
                    .is_some_and(|d| d.capability().host_namespace)
            })
    }

    fn ready_endpoints(&self) -> impl Iterator<Item = &EndpointRecord> {
        self.endpoints
            .values()
            .map(|s| &s.record)
            .filter(|e| e.lifecycle == Lifecycle::Ready)
    }

    fn joined_sandbox_name(&self, e: &EndpointRecord) -> Option<weft_types::Name> {
        match &e.attachment {
            Attachment::Joined(s) => self.sandboxes.get(s).map(|s| s.record.name.clone()),
            _ => None,
        }
    }
}
