//! Endpoints: creation with addresses from the network's pools, deletion, and joining
//! and leaving sandboxes. An endpoint joins at most one sandbox; a sandbox has at most
//! one endpoint per network.

use super::{Core, now_ms};
use crate::crash;
use ipnet::IpNet;
use std::net::IpAddr;
use tracing::{info, warn};
use weft_drivers::JoinContext;
use weft_ipam::{AddressRequest, PoolId};
use weft_os::IfName;
use weft_types::api::{CreateEndpointRequest, EndpointInfo};
use weft_types::{
    Attachment, EndpointId, EndpointRecord, Error, ErrorKind, Lifecycle, MacAddr, NetworkRecord,
    SandboxId, SandboxInterface, SandboxRecord, Scope,
};

impl Core {
    /// Creates an endpoint on a network; on any failure nothing of it remains.
    pub async fn create_endpoint(
        &mut self,
        network_ref: &str,
        req: CreateEndpointRequest,
    ) -> Result<EndpointInfo, Error> {
        let network = self.find_or_fetch_network(network_ref).await?;
        let ids = self.endpoints_of(&network.id).map(|e| e.id.as_str());
        super::resolve::check_name_not_an_id(req.name.as_str(), ids, "endpoint")?;
        if let Some(e) = self.endpoints_of(&network.id).find(|e| e.name == req.name) {
            return Err(Error::already_exists(format!(
                "endpoint {} on network {} (id {})",
                req.name,
                network.name,
                e.id.short()
            )));
        }
        let driver = self.network_driver(&network)?;
        if let Some(service) = &req.service {
            self.check_endpoint_service(&network, service).await?;
        }
        let owner = req
            .owner
            .as_deref()
            .map(|s| self.find_sandbox(s).map(|s| s.id.clone()))
            .transpose()?;
        let id = EndpointId::random();
        // A global network's addresses come from the manager after the intent is stored:
        // an answer lost or a crash after it then leaves a record that releases them.
        let (ipv4, ipv6) = match network.scope {
            Scope::Local => self.allocate_endpoint_addresses(&network, &req)?,
            Scope::Global => {
                Core::check_global_address_request(&network, req.ip, req.ipv6)?;
                (None, None)
            }
        };
        let mut record = EndpointRecord {
            id,
            name: req.name.clone(),
            network: network.id.clone(),
            ipv4,
            ipv6,
            mac: endpoint_mac(&req, ipv4),
            aliases: req.aliases.clone(),
            service: req.service.clone(),
            attachment: Attachment::Detached,
            interface: None,
            owner,
            created_ms: now_ms(),
            lifecycle: Lifecycle::Creating,
        };
        if let Err(e) = self.save(record.clone()).await {
            self.release_endpoint_addresses(&record);
            return Err(e);
        }
        crash::point(crash::ENDPOINT_CREATE_INTENT);
        if network.scope == Scope::Global {
            let asked = self
                .allocate_global_addresses(&network, &record.id, req.ip)
                .await;
            match asked {
                Ok((v4, v6)) => {
                    (record.ipv4, record.ipv6) = (v4, v6);
                    record.mac = endpoint_mac(&req, v4);
                }
                Err(e) => {
                    // The manager may have allocated and its answer been lost: release by id.
                    self.abandon_endpoint_intent(&record).await;
                    return Err(e);
                }
            }
            crash::point(crash::ENDPOINT_CREATE_ALLOCATED);
            if let Err(e) = self.save(record.clone()).await {
                self.abandon_endpoint_intent(&record).await;
                return Err(e);
            }
        } else {
            crash::point(crash::ENDPOINT_CREATE_ALLOCATED);
        }
        if let Err(e) = driver.create_endpoint(&network, &record).await {
            self.undo_endpoint_create(&record).await;
            return Err(e.into());
        }
        crash::point(crash::ENDPOINT_CREATE_DRIVER);
        record.lifecycle = Lifecycle::Ready;
        if let Err(e) = self.save(record.clone()).await {
            self.undo_endpoint_create(&record).await;
            return Err(e);
        }
        crash::point(crash::ENDPOINT_CREATE_DONE);
        info!(endpoint = %record.name, network = %network.name, ip = ?record.ipv4, "created endpoint");
        self.endpoint_info(&record.id)
    }

    /// Deletes an endpoint; with `force`, leaving its sandbox first.
    pub async fn delete_endpoint(
        &mut self,
        network_ref: &str,
        endpoint_ref: &str,
        force: bool,
    ) -> Result<(), Error> {
        let network = self.find_network(network_ref)?.clone();
        let endpoint = self.find_endpoint(&network, endpoint_ref)?;
        let (id, sandbox) = (endpoint.id.clone(), endpoint.attachment.sandbox().cloned());
        self.delete_endpoint_record(id, force).await?;
        match sandbox {
            Some(sandbox) => self.settle_gateway(&sandbox).await,
            None => Ok(()),
        }
    }

    /// Deletes an endpoint by id. Also run at start for endpoints left half-done.
    pub(crate) async fn delete_endpoint_record(
        &mut self,
        id: EndpointId,
        force: bool,
    ) -> Result<(), Error> {
        let Some(mut endpoint) = self.endpoints.get(&id).map(|s| s.record.clone()) else {
            return Ok(());
        };
        if let Some(sandbox) = endpoint.attachment.sandbox() {
            if !force {
                return Err(Error::new(
                    ErrorKind::ActiveContainer,
                    format!(
                        "endpoint {} is joined to sandbox {}: leave first or use --force",
                        endpoint.name,
                        self.sandbox_name(sandbox)
                    ),
                ));
            }
            self.detach(id.clone()).await?;
            endpoint = self
                .endpoints
                .get(&id)
                .map(|s| s.record.clone())
                .unwrap_or(endpoint);
        }
        let finishing = endpoint.lifecycle == Lifecycle::Deleting;
        if !finishing {
            endpoint.lifecycle = Lifecycle::Deleting;
            self.save(endpoint.clone()).await?;
        }
        crash::point(crash::ENDPOINT_DELETE_MARK);
        if let Some(network) = self
            .networks
            .get(&endpoint.network)
            .map(|s| s.record.clone())
        {
            self.network_driver(&network)?
                .delete_endpoint(&network.id, &endpoint.id)
                .await?;
        }
        crash::point(crash::ENDPOINT_DELETE_DRIVER);
        // The manager's release is idempotent: a crash after it releases again at start.
        if let Err(e) = self.release_global_addresses(&endpoint).await {
            // A delete this call began is undone; one being finished (after a crash, or a
            // create abandoned while the manager was away) stays for the next try.
            if !finishing {
                self.undo_endpoint_delete(endpoint).await;
            }
            return Err(e);
        }
        // Nothing is written between the release and the final delete (see network.rs).
        self.release_endpoint_addresses(&endpoint);
        crash::point(crash::ENDPOINT_DELETE_RELEASE);
        self.erase::<EndpointRecord>(&endpoint.id).await?;
        crash::point(crash::ENDPOINT_DELETE_DONE);
        info!(endpoint = %endpoint.name, id = %endpoint.id.short(), "deleted endpoint");
        Ok(())
    }

    /// Joins an endpoint to a sandbox, then gives the sandbox its way out (or takes it
    /// away) as its networks now require (see [`super::gateway`]); when that fails, the
    /// endpoint leaves again and the error says why.
    pub async fn join(
        &mut self,
        network_ref: &str,
        endpoint_ref: &str,
        sandbox_ref: &str,
    ) -> Result<(), Error> {
        let (endpoint, sandbox) = self
            .join_endpoint(network_ref, endpoint_ref, sandbox_ref)
            .await?;
        let Err(e) = self.settle_gateway(&sandbox).await else {
            return Ok(());
        };
        if let Err(undo) = self.detach(endpoint).await {
            return Err(e.context(format!("and the endpoint could not leave again: {undo}")));
        }
        Err(e.context("joined, but the sandbox cannot get its way out through the gateway network, so the endpoint left again"))
    }

    /// The join steps: intent, driver, publication, outcome.
    pub(crate) async fn join_endpoint(
        &mut self,
        network_ref: &str,
        endpoint_ref: &str,
        sandbox_ref: &str,
    ) -> Result<(EndpointId, SandboxId), Error> {
        let network = self.find_ready_network(network_ref)?.clone();
        let mut endpoint = self.find_endpoint(&network, endpoint_ref)?.clone();
        let sandbox = self.find_sandbox(sandbox_ref)?.clone();
        self.check_join(&network, &endpoint, &sandbox.id, sandbox.name.as_str())?;
        let driver = self.network_driver(&network)?;
        self.check_host_namespace(&sandbox, &network, driver.capability().host_namespace)?;
        let context = self.join_context(&network, &sandbox.id)?;
        endpoint.attachment = Attachment::Joining(sandbox.id.clone());
        endpoint.interface = Some(SandboxInterface {
            name: context.ifname.to_string(),
            default_route: context.default_route,
        });
        self.save(endpoint.clone()).await?;
        crash::point(crash::JOIN_INTENT);
        let joined = match driver.join(&network, &endpoint, &sandbox, &context).await {
            Ok(joined) => joined,
            Err(e) => {
                self.undo_join(&network, endpoint).await;
                return Err(e.into());
            }
        };
        crash::point(crash::JOIN_DRIVER);
        // Published only once the join succeeded (libnetwork's AddTableEntry); a crash
        // before the next commit loses nothing: NetworkDB is not persisted.
        let mut entries = joined.table_entries;
        entries.extend(self.name_entry(&network, &endpoint));
        if !entries.is_empty()
            && let Err(e) = self.cluster.publish(&network.id, &entries).await
        {
            self.undo_join(&network, endpoint).await;
            return Err(e.context("cannot publish the endpoint"));
        }
        endpoint.attachment = Attachment::Joined(sandbox.id.clone());
        if let Err(e) = self.save(endpoint.clone()).await {
            self.undo_join(&network, endpoint).await;
            return Err(e);
        }
        crash::point(crash::JOIN_DONE);
        self.report_names(&sandbox.id);
        info!(endpoint = %endpoint.name, sandbox = %sandbox.name, network = %network.name, "joined");
        Ok((endpoint.id, sandbox.id))
    }

    /// Detaches an endpoint from its sandbox.
    pub async fn leave(&mut self, network_ref: &str, endpoint_ref: &str) -> Result<(), Error> {
        let network = self.find_network(network_ref)?.clone();
        let endpoint = self.find_endpoint(&network, endpoint_ref)?.clone();
        if endpoint.attachment.sandbox().is_none() {
            return Err(Error::forbidden(format!(
                "endpoint {} is not joined to any sandbox",
                endpoint.name
            )));
        }
        let sandbox = endpoint.attachment.sandbox().cloned();
        self.detach(endpoint.id).await?;
        match sandbox {
            Some(sandbox) => self.settle_gateway(&sandbox).await,
            None => Ok(()),
        }
    }

    /// The leave steps: mark `leaving`, driver, mark `detached`. Also run at start for
    /// endpoints caught joining or leaving.
    pub(crate) async fn detach(&mut self, id: EndpointId) -> Result<(), Error> {
        let Some(mut endpoint) = self.endpoints.get(&id).map(|s| s.record.clone()) else {
            return Ok(());
        };
        let Some(sandbox) = endpoint.attachment.sandbox().cloned() else {
            return Ok(());
        };
        if endpoint.attachment != Attachment::Leaving(sandbox.clone()) {
            endpoint.attachment = Attachment::Leaving(sandbox.clone());
            self.save(endpoint.clone()).await?;
        }
        crash::point(crash::LEAVE_INTENT);
        self.drain(&endpoint, &sandbox).await;
        self.withdraw_entries(&endpoint).await;
        if let Some(network) = self
            .networks
            .get(&endpoint.network)
            .map(|s| s.record.clone())
        {
            self.network_driver(&network)?
                .leave(&network, &endpoint, &sandbox)
                .await?;
        }
        crash::point(crash::LEAVE_DRIVER);
        endpoint.attachment = Attachment::Detached;
        endpoint.interface = None;
        self.save(endpoint.clone()).await?;
        crash::point(crash::LEAVE_DONE);
        self.report_names(&sandbox);
        info!(endpoint = %endpoint.name, sandbox = %sandbox.short(), "left");
        Ok(())
    }

    fn check_join(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
        sandbox: &SandboxId,
        sandbox_name: &str,
    ) -> Result<(), Error> {
        if let Some(current) = endpoint.attachment.sandbox() {
            return Err(Error::forbidden(format!(
                "endpoint {} is already joined to sandbox {}",
                endpoint.name,
                self.sandbox_name(current)
            )));
        }
        if let Some(other) = self
            .endpoints_of(&network.id)
            .find(|e| e.attachment.sandbox() == Some(sandbox))
        {
            return Err(Error::forbidden(format!(
                "sandbox {sandbox_name} is already on network {} through endpoint {}",
                network.name, other.name
            )));
        }
        Ok(())
    }

    /// Endpoints joined (or being joined) to `sandbox`, other than `except`.
    fn joined_to<'a>(
        &'a self,
        sandbox: &'a SandboxId,
        except: Option<&'a EndpointId>,
    ) -> impl Iterator<Item = &'a EndpointRecord> {
        self.endpoints
            .values()
            .map(|s| &s.record)
            .filter(move |e| e.attachment.sandbox() == Some(sandbox) && Some(&e.id) != except)
    }

    /// A sandbox on a `host` network uses the host's namespace, so it can be on no
    /// other network, and a sandbox on other networks cannot move to the host's.
    fn check_host_namespace(
        &self,
        sandbox: &SandboxRecord,
        network: &NetworkRecord,
        host_namespace: bool,
    ) -> Result<(), Error> {
        for other in self.joined_to(&sandbox.id, None) {
            let Some(other_net) = self.networks.get(&other.network) else {
                continue;
            };
            let other_host = self
                .network_driver(&other_net.record)
                .is_ok_and(|d| d.capability().host_namespace);
            if host_namespace || other_host {
                return Err(Error::forbidden(format!(
                    "sandbox {} cannot be on both network {} and network {}: a sandbox on a host network uses the host's namespace and can be on no other network",
                    sandbox.name, other_net.record.name, network.name
                )));
            }
        }
        Ok(())
    }

    /// Where the endpoint goes in the sandbox: the first free ethN, and the default
    /// route when this is the first non-internal local network joined. A global network
    /// (an overlay) never holds it: it leads nowhere off the cluster; the gateway network
    /// does (see [`super::gateway`]).
    pub(crate) fn join_context(
        &self,
        network: &NetworkRecord,
        sandbox: &SandboxId,
    ) -> Result<JoinContext, Error> {
        let others: Vec<&EndpointRecord> = self.joined_to(sandbox, None).collect();
        let used: Vec<&str> = others
            .iter()
            .filter_map(|e| e.interface.as_ref())
            .map(|i| i.name.as_str())
            .collect();
        let name = (0..)
            .map(|n| format!("eth{n}"))
            .find(|n| !used.contains(&n.as_str()))
            .unwrap_or_else(|| "eth0".to_owned());
        let has_default = others
            .iter()
            .any(|e| e.interface.as_ref().is_some_and(|i| i.default_route));
        Ok(JoinContext {
            netns: self.sandbox_netns(sandbox)?,
            ifname: IfName::new(name)
                .map_err(|e| Error::internal(format!("interface name: {e}")))?,
            default_route: network.scope == Scope::Local && !network.internal && !has_default,
        })
    }

    /// The context of an endpoint already joined, rebuilt from its record (at start).
    pub(crate) fn stored_join_context(&self, endpoint: &EndpointRecord) -> Option<JoinContext> {
        let sandbox = match &endpoint.attachment {
            Attachment::Joined(s) => s,
            _ => return None,
        };
        let interface = endpoint.interface.as_ref()?;
        Some(JoinContext {
            netns: self.sandbox_netns(sandbox).ok()?,
            ifname: IfName::new(interface.name.clone()).ok()?,
            default_route: interface.default_route,
        })
    }

    /// Undoes a join whose intent was persisted; failures leave it `joining`, which the
    /// next start detaches.
    async fn undo_join(&mut self, network: &NetworkRecord, mut endpoint: EndpointRecord) {
        let Some(sandbox) = endpoint.attachment.sandbox().cloned() else {
            return;
        };
        self.withdraw_entries(&endpoint).await;
        let result = match self.network_driver(network) {
            Ok(driver) => driver
                .leave(network, &endpoint, &sandbox)
                .await
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            warn!(endpoint = %endpoint.name, error = %e, "rollback: driver failed to undo join");
            return;
        }
        endpoint.attachment = Attachment::Detached;
        endpoint.interface = None;
        if let Err(e) = self.save(endpoint.clone()).await {
            warn!(endpoint = %endpoint.name, error = %e, "rollback: failed to persist detached endpoint");
        }
    }

    /// Brings back an endpoint whose addresses the manager could not take back, so that a
    /// missing manager leaves it usable rather than half-deleted. If this fails too, it
    /// stays `deleting` and the next delete or start finishes.
    async fn undo_endpoint_delete(&mut self, mut endpoint: EndpointRecord) {
        let Some(network) = self
            .networks
            .get(&endpoint.network)
            .map(|s| s.record.clone())
        else {
            return;
        };
        let recreated = match self.network_driver(&network) {
            Ok(d) => d
                .create_endpoint(&network, &endpoint)
                .await
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = recreated {
            warn!(endpoint = %endpoint.name, error = %e, "rollback: driver failed to recreate endpoint");
            return;
        }
        endpoint.lifecycle = Lifecycle::Ready;
        if let Err(e) = self.save(endpoint.clone()).await {
            warn!(endpoint = %endpoint.name, error = %e, "rollback: failed to persist the endpoint");
        }
    }

    async fn undo_endpoint_create(&mut self, endpoint: &EndpointRecord) {
        if let Some(network) = self
            .networks
            .get(&endpoint.network)
            .map(|s| s.record.clone())
        {
            let deleted = match self.network_driver(&network) {
                Ok(d) => d
                    .delete_endpoint(&network.id, &endpoint.id)
                    .await
                    .map_err(Error::from),
                Err(e) => Err(e),
            };
            if let Err(e) = deleted {
                warn!(endpoint = %endpoint.name, error = %e, "rollback: driver failed to delete endpoint");
                return;
            }
        }
        self.abandon_endpoint_intent(endpoint).await;
    }

    /// Undoes a create the driver has not seen: its addresses go back (locally, and to the
    /// manager by endpoint id), then its record. A manager that cannot be told leaves the
    /// record `deleting`: recovery, `weft endpoint rm` or `weft network rm` finish it.
    async fn abandon_endpoint_intent(&mut self, endpoint: &EndpointRecord) {
        self.release_endpoint_addresses(endpoint);
        if let Err(e) = self.release_global_addresses(endpoint).await {
            // Kept as `deleting`: recovery, or weft endpoint rm, releases them later.
            warn!(endpoint = %endpoint.name, error = %e, "rollback: the manager did not release the addresses; kept for a retry");
            let mut deleting = endpoint.clone();
            deleting.lifecycle = Lifecycle::Deleting;
            if let Err(e) = self.save(deleting).await {
                warn!(endpoint = %endpoint.name, error = %e, "rollback: failed to mark the endpoint deleting");
            }
            return;
        }
        if let Err(e) = self.erase::<EndpointRecord>(&endpoint.id).await {
            warn!(endpoint = %endpoint.name, error = %e, "rollback: failed to delete endpoint record");
        }
    }

    /// Picks the endpoint's addresses: the requested ones, or the next free ones.
    fn allocate_endpoint_addresses(
        &mut self,
        network: &NetworkRecord,
        req: &CreateEndpointRequest,
    ) -> Result<(Option<IpNet>, Option<IpNet>), Error> {
        if matches!(req.ip, Some(IpAddr::V6(_))) {
            return Err(Error::invalid(
                "--ip takes an IPv4 address; use --ipv6 for IPv6".to_owned(),
            ));
        }
        if matches!(req.ipv6, Some(IpAddr::V4(_))) {
            return Err(Error::invalid("--ipv6 takes an IPv6 address".to_owned()));
        }
        if req.ipv6.is_some() && !network.ipv6 {
            return Err(Error::invalid(format!(
                "network {} has no IPv6 subnet",
                network.name
            )));
        }
        let ipv4 = self.allocate_address(network, false, req.ip)?;
        let ipv6 = if network.ipv6 {
            match self.allocate_address(network, true, req.ipv6) {
                Ok(a) => a,
                Err(e) => {
                    if let Some(v4) = ipv4 {
                        self.release_address(network, v4);
                    }
                    return Err(e);
                }
            }
        } else {
            None
        };
        Ok((ipv4, ipv6))
    }

    /// One address of the given family: `wanted` from the subnet that holds it, or the
    /// next free one from the first subnet that has one.
    pub(super) fn allocate_address(
        &mut self,
        network: &NetworkRecord,
        v6: bool,
        wanted: Option<IpAddr>,
    ) -> Result<Option<IpNet>, Error> {
        let candidates: Vec<(PoolId, u8)> = self
            .network_pools(network)
            .filter(|(pool, _)| pool.subnet.addr().is_ipv6() == v6)
            .collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        if let Some(ip) = wanted {
            let (pool, prefix) = candidates
                .iter()
                .find(|(pool, _)| pool.subnet.contains(&ip))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "address {ip} is not in any subnet of network {}",
                        network.name
                    ))
                })?;
            self.ipam
                .request_address(pool, AddressRequest::Specific(ip))?;
            return Ok(Some(host_net(ip, *prefix)));
        }
        let mut last = None;
        for (pool, prefix) in &candidates {
            // Serial: a just-released address is not handed out again at once, so stale
            // ARP entries and DNS answers elsewhere do not reach the wrong endpoint.
            match self
                .ipam
                .request_address(pool, AddressRequest::Any { serial: true })
            {
                Ok(ip) => return Ok(Some(host_net(ip, *prefix))),
                Err(e) => {
                    let e = Error::from(e);
                    if e.kind != ErrorKind::Exhausted {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last
            .unwrap_or_else(|| Error::internal("no pool answered".to_owned()))
            .context(format!("network {}", network.name)))
    }

    /// The network's pools with their prefix lengths.
    fn network_pools(&self, network: &NetworkRecord) -> impl Iterator<Item = (PoolId, u8)> + '_ {
        self.pools
            .get(&network.id)
            .into_iter()
            .flatten()
            .map(|p| (*p, p.subnet.prefix_len()))
    }

    /// Reserves, at start, the addresses of a stored endpoint.
    pub(crate) fn reserve_endpoint(&mut self, endpoint: &EndpointRecord) -> Result<(), Error> {
        let Some(network) = self
            .networks
            .get(&endpoint.network)
            .map(|s| s.record.clone())
        else {
            return Ok(());
        };
        let mut reserved = Vec::new();
        for addr in [endpoint.ipv4, endpoint.ipv6].into_iter().flatten() {
            match self.allocate_address(&network, addr.addr().is_ipv6(), Some(addr.addr())) {
                Ok(_) => reserved.push(addr),
                Err(e) => {
                    for r in reserved {
                        self.release_address(&network, r);
                    }
                    return Err(e.context(format!(
                        "stored endpoint {} ({})",
                        endpoint.name,
                        endpoint.id.short()
                    )));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn release_endpoint_addresses(&mut self, endpoint: &EndpointRecord) {
        let Some(network) = self
            .networks
            .get(&endpoint.network)
            .map(|s| s.record.clone())
        else {
            return;
        };
        for addr in [endpoint.ipv4, endpoint.ipv6].into_iter().flatten() {
            self.release_address(&network, addr);
        }
    }

    pub(super) fn release_address(&mut self, network: &NetworkRecord, addr: IpNet) {
        let pool = self
            .network_pools(network)
            .find(|(p, _)| p.subnet.contains(&addr.addr()));
        if let Some((pool, _)) = pool
            && let Err(e) = self.ipam.release_address(&pool, addr.addr())
        {
            warn!(%addr, %pool, error = %e, "failed to release address");
        }
    }

    pub(crate) fn sandbox_name(&self, id: &SandboxId) -> String {
        self.sandboxes
            .get(id)
            .map_or_else(|| id.short().to_owned(), |s| s.record.name.to_string())
    }
}

fn host_net(ip: IpAddr, prefix: u8) -> IpNet {
    // The prefix comes from a valid pool of the same family, so this cannot fail; fall
    // back to a host route rather than panic.
    IpNet::new(ip, prefix).unwrap_or_else(|_| IpNet::from(ip))
}

/// The MAC given, else one derived from the IPv4 address (Docker's 02:42 + address), else
/// a random one.
fn endpoint_mac(req: &CreateEndpointRequest, ipv4: Option<IpNet>) -> MacAddr {
    req.mac.unwrap_or_else(|| match ipv4 {
        Some(IpNet::V4(v4)) => MacAddr::from_ipv4(v4.addr()),
        _ => MacAddr::random(),
    })
}
