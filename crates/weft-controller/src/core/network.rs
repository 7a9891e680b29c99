//! Network creation and deletion, in libnetwork's order: validate, allocate addresses,
//! persist intent, driver, persist outcome; and on delete: mark `deleting` (the point of
//! no return), driver, release addresses, delete the record.

use super::{Core, now_ms};
use crate::crash;
use ipnet::IpNet;
use std::sync::Arc;
use tracing::{info, warn};
use weft_drivers::{Driver, NetworkRequest};
use weft_ipam::{AddressRequest, AddressSpace, PoolId, PoolRequest};
use weft_types::api::{CreateNetworkRequest, NetworkInfo, SubnetRequest};
use weft_types::{
    DriverName, Error, ErrorKind, Lifecycle, NetworkId, NetworkRecord, Scope, SubnetConfig,
};

impl Core {
    /// Creates a network; on any failure nothing of it remains.
    pub async fn create_network(
        &mut self,
        req: CreateNetworkRequest,
    ) -> Result<NetworkInfo, Error> {
        let driver_name = req.driver.clone().unwrap_or_else(DriverName::bridge);
        let driver = self.drivers.get(&driver_name)?;
        self.check_network_name_free(&req)?;
        self.check_single_host_network(driver.as_ref())?;
        let capability = driver.capability();
        if capability.scope == Scope::Global {
            return self.create_global_network(req, driver).await;
        }
        let requests = if capability.ipam {
            subnet_requests(&req)?
        } else if req.subnets.is_empty() && !req.ipv6 {
            Vec::new()
        } else {
            return Err(Error::invalid(format!(
                "driver {driver_name} gives no addresses: --subnet, --gateway, --ip-range and --ipv6 do not apply"
            )));
        };
        self.check_host_subnets(&requests).await?;
        // The driver refuses what it cannot realise before anything is allocated.
        driver
            .validate(&network_request(&req, &driver_name))
            .map_err(Error::from)?;
        let scope = capability.scope;
        let space = match scope {
            Scope::Local => AddressSpace::Local,
            Scope::Global => AddressSpace::Global,
        };
        let (subnets, pools) = self.allocate_subnets(space, &requests)?;
        let record = NetworkRecord {
            id: NetworkId::random(),
            name: req.name,
            driver: driver_name,
            scope,
            auto_subnet: requests.iter().any(|r| r.subnet.is_none()),
            subnets,
            ipv6: req.ipv6,
            internal: req.internal,
            attachable: req.attachable,
            options: req.options,
            labels: req.labels,
            created_ms: now_ms(),
            lifecycle: Lifecycle::Creating,
        };
        self.pools.insert(record.id.clone(), pools);
        self.realise_network(record.clone(), driver).await?;
        info!(network = %record.name, id = %record.id.short(), driver = %record.driver, "created network");
        self.network_info(&record.id)
    }

    /// The steps after allocation, for local networks and adopted global ones: intent,
    /// driver, outcome, then the driver's events start. On a failure nothing remains (the
    /// network's pools, if any, are released).
    pub(crate) async fn realise_network(
        &mut self,
        mut record: NetworkRecord,
        driver: Arc<dyn Driver>,
    ) -> Result<(), Error> {
        record.lifecycle = Lifecycle::Creating;
        if let Err(e) = self.save(record.clone()).await {
            self.release_network_pools(&record.id);
            return Err(e);
        }
        crash::point(crash::NETWORK_CREATE_INTENT);
        if let Err(e) = driver.create_network(&record).await {
            self.undo_network_create(&record, driver.as_ref()).await;
            return Err(self.with_rollback_note(e.into(), &record));
        }
        crash::point(crash::NETWORK_CREATE_DRIVER);
        record.lifecycle = Lifecycle::Ready;
        if let Err(e) = self.save(record.clone()).await {
            self.undo_network_create(&record, driver.as_ref()).await;
            return Err(self.with_rollback_note(e, &record));
        }
        crash::point(crash::NETWORK_CREATE_DONE);
        self.cluster.network_up(&record, driver);
        Ok(())
    }

    /// Deletes a network; with `force`, its endpoints first (leaving their sandboxes).
    pub async fn delete_network(&mut self, reference: &str, force: bool) -> Result<(), Error> {
        let network = self.find_network(reference)?.clone();
        // Endpoints already being deleted (e.g. a create whose addresses the manager could
        // not take back then) are not in the way: finish them first.
        let unfinished: Vec<_> = self
            .endpoints_of(&network.id)
            .filter(|e| e.lifecycle == Lifecycle::Deleting)
            .map(|e| e.id.clone())
            .collect();
        for endpoint in unfinished {
            self.delete_endpoint_record(endpoint, true).await?;
        }
        self.check_no_local_services(&network)?;
        let endpoints: Vec<_> = self.endpoints_of(&network.id).cloned().collect();
        if !endpoints.is_empty() && !force {
            let mut names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
            names.sort_unstable();
            return Err(Error::new(
                ErrorKind::ActiveEndpoints,
                format!(
                    "network {} has {} endpoint(s) ({}): remove them first or use --force",
                    network.name,
                    names.len(),
                    names.join(", ")
                ),
            ));
        }
        for endpoint in &endpoints {
            self.delete_endpoint_record(endpoint.id.clone(), true)
                .await?;
        }
        if network.scope == Scope::Global {
            // The manager refuses while other hosts have endpoints on it; its deletion
            // then reaches the other hosts through NetworkDB.
            let deleted = match force {
                true => self.cluster.force_delete_network(&network.id).await,
                false => self.cluster.delete_network(&network.id).await,
            };
            deleted.map_err(|e| e.context(format!("cannot delete network {}", network.name)))?;
        }
        self.finish_network_delete(network).await
    }

    /// The steps after the endpoint check; also run at start for networks left `deleting`.
    pub(crate) async fn finish_network_delete(
        &mut self,
        mut network: NetworkRecord,
    ) -> Result<(), Error> {
        let driver = self.driver_for(&network)?;
        if network.lifecycle != Lifecycle::Deleting {
            network.lifecycle = Lifecycle::Deleting;
            self.save(network.clone()).await?;
        }
        crash::point(crash::NETWORK_DELETE_MARK);
        self.cluster.network_down(&network.id);
        driver.delete_network(&network.id).await?;
        crash::point(crash::NETWORK_DELETE_DRIVER);
        // From here to the final delete, nothing is written: the record keeps describing
        // the pools, so a crash here makes the next start release them again.
        self.release_network_pools(&network.id);
        crash::point(crash::NETWORK_DELETE_RELEASE);
        self.erase::<NetworkRecord>(&network.id).await?;
        crash::point(crash::NETWORK_DELETE_DONE);
        info!(network = %network.name, id = %network.id.short(), "deleted network");
        Ok(())
    }

    /// Undoes a create that failed after its intent was persisted. When the driver cannot
    /// delete what it made, the record is marked `deleting` (pools still reserved, as the
    /// kernel may still use them): `weft network rm` then finishes the cleanup, instead of
    /// a `creating` record that hides the network and blocks its name until a restart.
    pub(crate) async fn undo_network_create(
        &mut self,
        network: &NetworkRecord,
        driver: &dyn Driver,
    ) {
        if let Err(e) = driver.delete_network(&network.id).await {
            warn!(network = %network.name, error = %e, "rollback: driver failed to delete network; run weft network rm to finish");
            let mut deleting = network.clone();
            deleting.lifecycle = Lifecycle::Deleting;
            if let Err(e) = self.save(deleting).await {
                warn!(network = %network.name, error = %e, "rollback: failed to mark the network deleting");
            }
            return;
        }
        self.release_network_pools(&network.id);
        if let Err(e) = self.erase::<NetworkRecord>(&network.id).await {
            warn!(network = %network.name, error = %e, "rollback: failed to delete network record");
        }
    }

    /// `e`, saying how to finish if the rollback left the network behind.
    fn with_rollback_note(&self, e: Error, network: &NetworkRecord) -> Error {
        match self.networks.contains_key(&network.id) {
            false => e,
            true => Error::new(
                e.kind,
                format!(
                    "{}; undoing it failed too: run weft network rm {} to finish",
                    e.message, network.name
                ),
            ),
        }
    }

    fn check_network_name_free(&self, req: &CreateNetworkRequest) -> Result<(), Error> {
        let ids = self.networks.keys().map(NetworkId::as_str);
        super::resolve::check_name_not_an_id(req.name.as_str(), ids, "network")?;
        match self.networks.values().find(|s| s.record.name == req.name) {
            None => Ok(()),
            Some(s) if s.record.lifecycle == Lifecycle::Deleting => Err(Error::forbidden(format!(
                "network {} is being deleted: run weft network rm {} to finish, then create it again",
                req.name, req.name
            ))),
            Some(s) => Err(Error::already_exists(format!(
                "network {} (id {})",
                req.name,
                s.record.id.short()
            ))),
        }
    }

    /// Requests a pool and reserves the gateway for each subnet; all or nothing.
    fn allocate_subnets(
        &mut self,
        space: AddressSpace,
        requests: &[SubnetRequest],
    ) -> Result<(Vec<SubnetConfig>, Vec<PoolId>), Error> {
        let mut subnets = Vec::with_capacity(requests.len());
        let mut pools = Vec::with_capacity(requests.len());
        for request in requests {
            match self.allocate_subnet(space, request) {
                Ok((subnet, pool)) => {
                    subnets.push(subnet);
                    pools.push(pool);
                }
                Err(e) => {
                    self.release_pools(&pools);
                    return Err(e);
                }
            }
        }
        Ok((subnets, pools))
    }

    fn allocate_subnet(
        &mut self,
        space: AddressSpace,
        request: &SubnetRequest,
    ) -> Result<(SubnetConfig, PoolId), Error> {
        let v6 = request.subnet.is_some_and(|s| matches!(s, IpNet::V6(_)));
        let pool = self.ipam.request_pool(&PoolRequest {
            space,
            pool: request.subnet,
            sub_pool: request.ip_range,
            v6,
        })?;
        let gateway = request
            .gateway
            .unwrap_or_else(|| self.ipam.default_gateway(&pool));
        if let Err(e) = self
            .ipam
            .request_address(&pool, AddressRequest::Specific(gateway))
        {
            self.release_pools(std::slice::from_ref(&pool));
            return Err(Error::from(e).context(format!("gateway {gateway}")));
        }
        let subnet = SubnetConfig {
            subnet: pool.subnet,
            gateway,
            ip_range: request.ip_range,
        };
        Ok((subnet, pool))
    }

    /// Reserves, at start, the pools and gateways of a stored network.
    pub(crate) fn reserve_network(&mut self, network: &NetworkRecord) -> Result<(), Error> {
        let space = match network.scope {
            Scope::Local => AddressSpace::Local,
            Scope::Global => AddressSpace::Global,
        };
        let mut pools = Vec::with_capacity(network.subnets.len());
        for subnet in &network.subnets {
            let request = SubnetRequest {
                subnet: Some(subnet.subnet),
                gateway: Some(subnet.gateway),
                ip_range: subnet.ip_range,
            };
            match self.allocate_subnet(space, &request) {
                Ok((_, pool)) => pools.push(pool),
                Err(e) => {
                    self.release_pools(&pools);
                    return Err(e.context(format!(
                        "stored network {} ({})",
                        network.name,
                        network.id.short()
                    )));
                }
            }
        }
        self.pools.insert(network.id.clone(), pools);
        Ok(())
    }

    fn release_network_pools(&mut self, network: &NetworkId) {
        if let Some(pools) = self.pools.remove(network) {
            self.release_pools(&pools);
        }
    }

    fn release_pools(&mut self, pools: &[PoolId]) {
        for pool in pools {
            // Releasing a pool we hold cannot fail; if it does, the allocator is wrong
            // and the pool stays reserved, which is the safe side.
            if let Err(e) = self.ipam.release_pool(pool) {
                warn!(%pool, error = %e, "failed to release pool");
            }
        }
    }

    pub(crate) fn network_driver(&self, network: &NetworkRecord) -> Result<Arc<dyn Driver>, Error> {
        self.driver_for(network)
    }
}

/// What is known of the network `req` asks `driver` for, before anything is allocated.
pub(super) fn network_request(req: &CreateNetworkRequest, driver: &DriverName) -> NetworkRequest {
    NetworkRequest {
        name: req.name.clone(),
        driver: driver.clone(),
        subnets: req.subnets.clone(),
        ipv6: req.ipv6,
        internal: req.internal,
        options: req.options.clone(),
        labels: req.labels.clone(),
    }
}

/// Checks the subnet requests against each other and the IPv6 flag, and adds an
/// automatic IPv4 subnet when none is given.
fn subnet_requests(req: &CreateNetworkRequest) -> Result<Vec<SubnetRequest>, Error> {
    let mut requests = req.subnets.clone();
    for r in &requests {
        validate_subnet_request(r)?;
        if let Some(IpNet::V6(s)) = r.subnet
            && !req.ipv6
        {
            return Err(Error::invalid(format!(
                "IPv6 subnet {s} given without --ipv6"
            )));
        }
    }
    let has_v4 = requests
        .iter()
        .any(|r| matches!(r.subnet, None | Some(IpNet::V4(_))));
    let has_v6 = requests
        .iter()
        .any(|r| matches!(r.subnet, Some(IpNet::V6(_))));
    if req.ipv6 && !has_v6 {
        return Err(Error::invalid(
            "--ipv6 needs an IPv6 --subnet: no IPv6 pools are predefined".to_owned(),
        ));
    }
    if !has_v4 {
        requests.insert(0, SubnetRequest::default());
    }
    // IPv4 first, as records promise.
    requests.sort_by_key(|r| matches!(r.subnet, Some(IpNet::V6(_))));
    Ok(requests)
}

pub(super) fn validate_subnet_request(r: &SubnetRequest) -> Result<(), Error> {
    let Some(subnet) = r.subnet else {
        if r.gateway.is_some() || r.ip_range.is_some() {
            return Err(Error::invalid(
                "--gateway and --ip-range need a --subnet".to_owned(),
            ));
        }
        return Ok(());
    };
    if subnet.trunc() != subnet {
        return Err(Error::invalid(format!(
            "subnet {subnet} has host bits set: did you mean {}?",
            subnet.trunc()
        )));
    }
    check_prefix_len(subnet)?;
    if let Some(gateway) = r.gateway {
        if !subnet.contains(&gateway) {
            return Err(Error::invalid(format!(
                "gateway {gateway} is outside subnet {subnet}"
            )));
        }
        if gateway == subnet.network()
            || (matches!(subnet, IpNet::V4(_)) && gateway == subnet.broadcast())
        {
            return Err(Error::invalid(format!(
                "gateway {gateway} is the network or broadcast address of subnet {subnet}"
            )));
        }
    }
    if let Some(range) = r.ip_range
        && !subnet.contains(&range)
    {
        return Err(Error::invalid(format!(
            "ip range {range} is outside subnet {subnet}"
        )));
    }
    Ok(())
}

/// The prefix lengths a network's subnet may have: short enough to hold a gateway and an
/// endpoint, long enough not to swallow other networks (a /0 takes every address, the
/// host's own included, and every later join then fails with "network is unreachable").
fn prefix_bounds(subnet: IpNet) -> (u8, u8) {
    match subnet {
        IpNet::V4(_) => (MIN_PREFIX_V4, MAX_PREFIX_V4),
        IpNet::V6(_) => (MIN_PREFIX_V6, MAX_PREFIX_V6),
    }
}

/// Shortest IPv4 prefix accepted for a network: one former class A.
const MIN_PREFIX_V4: u8 = 8;
/// Longest IPv4 prefix: a /30 holds the gateway and one endpoint.
const MAX_PREFIX_V4: u8 = 30;
/// Shortest IPv6 prefix accepted for a network.
const MIN_PREFIX_V6: u8 = 16;
/// Longest IPv6 prefix: a /126 holds the gateway and a few endpoints.
const MAX_PREFIX_V6: u8 = 126;

fn check_prefix_len(subnet: IpNet) -> Result<(), Error> {
    let (min, max) = prefix_bounds(subnet);
    let len = subnet.prefix_len();
    if len < min {
        return Err(Error::invalid(format!(
            "subnet {subnet} is too large for a network: it would cover addresses of the host and of \
             other networks; use a prefix of /{min} to /{max}"
        )));
    }
    if len > max {
        return Err(Error::invalid(format!(
            "subnet {subnet} is too small for a network: it cannot hold a gateway and an endpoint; \
             use a prefix of /{min} to /{max}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(subnets: Vec<SubnetRequest>, ipv6: bool) -> CreateNetworkRequest {
        CreateNetworkRequest {
            name: "n".parse().unwrap(),
            driver: None,
            subnets,
            ipv6,
            internal: false,
            attachable: false,
            options: Default::default(),
            labels: Default::default(),
        }
    }

    fn sub(s: &str) -> SubnetRequest {
        SubnetRequest {
            subnet: Some(s.parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn adds_an_automatic_ipv4_subnet_when_none_is_given() {
        let r = subnet_requests(&req(vec![], false)).unwrap();
        assert_eq!(r, vec![SubnetRequest::default()]);
        let r = subnet_requests(&req(vec![sub("2001:db8::/64")], true)).unwrap();
        assert_eq!(r[0], SubnetRequest::default());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn ipv6_needs_the_flag_and_a_subnet() {
        assert!(subnet_requests(&req(vec![sub("2001:db8::/64")], false)).is_err());
        assert!(subnet_requests(&req(vec![], true)).is_err());
    }

    #[test]
    fn subnets_that_cannot_hold_a_network_are_refused() {
        for (bad, says) in [
            ("0.0.0.0/0", "too large"),
            ("128.0.0.0/1", "too large"),
            ("198.0.0.0/7", "too large"),
            ("::/0", "too large"),
            ("2000::/15", "too large"),
            ("198.19.1.0/31", "too small"),
            ("198.19.1.1/32", "too small"),
            ("2001:db8::/127", "too small"),
        ] {
            let e = validate_subnet_request(&sub(bad)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParameter, "{bad}");
            assert!(e.message.contains(says), "{bad}: {}", e.message);
            assert!(e.message.contains(bad), "{bad}: {}", e.message);
        }
        for good in ["10.0.0.0/8", "198.19.1.0/30", "2001::/16", "2001:db8::/126"] {
            validate_subnet_request(&sub(good)).unwrap();
        }
    }

    #[test]
    fn gateway_and_range_must_lie_in_the_subnet() {
        let mut r = sub("198.19.1.0/24");
        r.gateway = Some("198.19.2.1".parse().unwrap());
        let e = validate_subnet_request(&r).unwrap_err();
        assert!(e.message.contains("outside subnet"), "{}", e.message);
        r.gateway = Some("198.19.1.255".parse().unwrap());
        assert!(validate_subnet_request(&r).is_err());
        r.gateway = None;
        r.ip_range = Some("198.19.0.0/25".parse().unwrap());
        assert!(validate_subnet_request(&r).is_err());
        let host_bits = sub("198.19.1.7/24");
        assert!(
            validate_subnet_request(&host_bits)
                .unwrap_err()
                .message
                .contains("198.19.1.0/24")
        );
    }
}
