//! The cluster allocator: a deterministic state machine from [`Command`] to [`Outcome`].
//!
//! It is pure: no I/O, no clock, no randomness (ids come in the commands), so replaying the
//! same commands always rebuilds the same state, which is what persistence
//! ([`crate::ManagerStore`]) and, later, Raft replication rely on. A refused command changes
//! nothing, hidden cursors included: each command runs on a copy that replaces the state
//! only on success (a clone per command, linear in the state; cheap next to the fsync that
//! persists it).
//!
//! Services live in the `services` submodule: they hold virtual IPs on networks, so a network is not
//! deleted under one.

use crate::command::{
    AllocatorConfig, Command, GlobalSubnet, Grant, NetworkDef, NetworkMeta, Outcome,
};
use crate::vni::Vnis;
use crate::{AllocError, Vni};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use weft_ipam::{
    AddressRequest, AddressSpace, Ipam, IpamConfig, IpamSnapshot, PoolId, PoolRequest,
};
use weft_types::api::SubnetRequest;
use weft_types::{Name, NetworkId, ServiceRecord, SubnetConfig};

mod services;

/// A network's allocations.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Network {
    def: NetworkDef,
    /// The IPAM pool of each subnet, in the order of `def.subnets`.
    pools: Vec<PoolId>,
    endpoints: BTreeMap<String, Vec<IpNet>>,
    vips: BTreeMap<Name, Vec<IpNet>>,
}

/// The cluster allocator's state.
#[derive(Debug, Clone)]
pub struct Allocator {
    config: AllocatorConfig,
    ipam: Ipam,
    vnis: Vnis,
    networks: BTreeMap<NetworkId, Network>,
    names: BTreeMap<Name, NetworkId>,
    services: BTreeMap<Name, ServiceRecord>,
}

/// A comparable picture of everything the allocator has handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorSnapshot {
    /// Every network, by id.
    pub networks: Vec<NetworkSnapshot>,
    /// The VNIs in use, sorted.
    pub vnis: Vec<Vni>,
    /// Where the serial VNI search resumes.
    pub vni_cursor: u32,
    /// IPAM's pools and addresses (gateways, endpoints and VIPs).
    pub ipam: IpamSnapshot,
    /// Every service, sorted by name.
    pub services: Vec<ServiceRecord>,
}

/// One network in an [`AllocatorSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSnapshot {
    /// Its definition.
    pub def: NetworkDef,
    /// Endpoint keys and their addresses, sorted by key.
    pub endpoints: Vec<(String, Vec<IpNet>)>,
    /// Services and their virtual IPs, sorted by service.
    pub vips: Vec<(Name, Vec<IpNet>)>,
}

impl PartialEq for Allocator {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.snapshot() == other.snapshot()
    }
}

impl Default for Allocator {
    fn default() -> Self {
        let config = AllocatorConfig::default();
        Allocator {
            ipam: Ipam::default(),
            vnis: Vnis::new(config.vnis),
            networks: BTreeMap::new(),
            names: BTreeMap::new(),
            services: BTreeMap::new(),
            config,
        }
    }
}

impl Allocator {
    /// An empty allocator; fails if a pool or the VNI range is malformed.
    pub fn new(config: AllocatorConfig) -> Result<Self, AllocError> {
        if config.vnis.first > config.vnis.last {
            return Err(AllocError::InvalidConfig {
                reason: format!(
                    "vni range {}-{} is empty",
                    config.vnis.first, config.vnis.last
                ),
            });
        }
        let ipam = Ipam::new(IpamConfig {
            local: Vec::new(),
            global: config.pools.clone(),
        })
        .map_err(|e| AllocError::InvalidConfig {
            reason: e.to_string(),
        })?;
        Ok(Allocator {
            ipam,
            vnis: Vnis::new(config.vnis),
            networks: BTreeMap::new(),
            names: BTreeMap::new(),
            services: BTreeMap::new(),
            config,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &AllocatorConfig {
        &self.config
    }

    /// Applies `cmd`: on success the state moves on and the outcome says what was
    /// allocated; on a refusal nothing changes.
    pub fn apply(&mut self, cmd: &Command) -> Result<Outcome, AllocError> {
        let (next, outcome) = self.plan(cmd)?;
        *self = next;
        Ok(outcome)
    }

    /// The state `cmd` would lead to and its outcome, leaving `self` as it is: lets a
    /// caller persist the command before it commits the new state.
    pub fn plan(&self, cmd: &Command) -> Result<(Allocator, Outcome), AllocError> {
        let mut next = self.clone();
        let outcome = next.apply_in_place(cmd)?;
        Ok((next, outcome))
    }

    /// Applies `cmd` to `self`; may leave `self` half-changed on an error.
    fn apply_in_place(&mut self, cmd: &Command) -> Result<Outcome, AllocError> {
        match cmd {
            Command::CreateNetwork {
                id,
                name,
                subnets,
                vni,
                meta,
            } => self.create_network(id, name, subnets, *vni, meta),
            Command::DeleteNetwork { id } => self.delete_network(id),
            Command::AllocateAddress {
                network,
                endpoint,
                ip,
            } => self.allocate_address(network, endpoint, *ip),
            Command::ReleaseAddress { network, endpoint } => {
                self.release_address(network, endpoint)
            }
            Command::AllocateVip { network, service } => self.allocate_vip(network, service),
            Command::ReleaseVip { network, service } => self.release_vip(network, service),
            Command::CreateService {
                name,
                mode,
                networks,
            } => self.create_service(name, *mode, networks),
            Command::DeleteService { name } => self.delete_service(name),
        }
    }

    /// The definition of network `id`.
    pub fn network(&self, id: &NetworkId) -> Option<&NetworkDef> {
        self.networks.get(id).map(|n| &n.def)
    }

    /// The network named `name`.
    pub fn network_by_name(&self, name: &Name) -> Option<&NetworkDef> {
        self.names.get(name).and_then(|id| self.network(id))
    }

    /// Every network definition, by id.
    pub fn networks(&self) -> impl Iterator<Item = &NetworkDef> {
        self.networks.values().map(|n| &n.def)
    }

    /// Everything handed out, comparable.
    pub fn snapshot(&self) -> AllocatorSnapshot {
        AllocatorSnapshot {
            networks: self
                .networks
                .values()
                .map(|n| NetworkSnapshot {
                    def: n.def.clone(),
                    endpoints: n.endpoints.clone().into_iter().collect(),
                    vips: n.vips.clone().into_iter().collect(),
                })
                .collect(),
            vnis: self.vnis.used(),
            vni_cursor: self.vnis.cursor(),
            ipam: self.ipam.snapshot(),
            services: self.services.values().cloned().collect(),
        }
    }

    fn create_network(
        &mut self,
        id: &NetworkId,
        name: &Name,
        requests: &[SubnetRequest],
        vni: Option<Vni>,
        meta: &NetworkMeta,
    ) -> Result<Outcome, AllocError> {
        if self.networks.contains_key(id) {
            return Err(AllocError::NetworkExists { id: id.clone() });
        }
        if let Some(holder) = self.names.get(name) {
            return Err(AllocError::NameTaken {
                name: name.clone(),
                id: holder.clone(),
            });
        }
        let auto = [SubnetRequest::default()];
        let requests = if requests.is_empty() { &auto } else { requests };
        let mut subnets = requests
            .iter()
            .map(|req| self.allocate_subnet(req))
            .collect::<Result<Vec<_>, _>>()?;
        // IPv4 subnets first; the sort is stable, so each family keeps the order asked for.
        subnets.sort_by_key(|(config, _)| config.subnet.addr().is_ipv6());
        let subnets = self.assign_vnis(subnets, vni)?;
        let def = NetworkDef {
            id: id.clone(),
            name: name.clone(),
            auto_subnet: requests.iter().all(|r| r.subnet.is_none()),
            subnets: subnets.iter().map(|(s, _)| s.clone()).collect(),
            meta: meta.clone(),
        };
        self.networks.insert(
            id.clone(),
            Network {
                def: def.clone(),
                pools: subnets.into_iter().map(|(_, pool)| pool).collect(),
                endpoints: BTreeMap::new(),
                vips: BTreeMap::new(),
            },
        );
        self.names.insert(name.clone(), id.clone());
        Ok(Outcome::NetworkCreated(def))
    }

    /// Allocates the pool of one subnet request and reserves its gateway.
    fn allocate_subnet(
        &mut self,
        req: &SubnetRequest,
    ) -> Result<(SubnetConfig, PoolId), AllocError> {
        let pool_req = match req.subnet {
            Some(subnet) => {
                let explicit = PoolRequest::explicit(AddressSpace::Global, subnet);
                match req.ip_range {
                    Some(range) => explicit.with_sub_pool(range),
                    None => explicit,
                }
            }
            None if req.gateway.is_some() || req.ip_range.is_some() => {
                return Err(AllocError::InvalidSubnet {
                    reason: "a gateway or ip range needs a subnet".to_owned(),
                });
            }
            None => PoolRequest::auto(AddressSpace::Global, false),
        };
        let pool = self
            .ipam
            .request_pool(&pool_req)
            .map_err(AllocError::ipam("allocate a subnet"))?;
        let gateway = req.gateway.unwrap_or_else(|| pool.default_gateway());
        self.ipam
            .request_address(&pool, AddressRequest::Specific(gateway))
            .map_err(AllocError::ipam("reserve the gateway"))?;
        let config = SubnetConfig {
            subnet: pool.subnet,
            gateway,
            ip_range: pool.range,
        };
        Ok((config, pool))
    }

    /// Gives each IPv4 subnet a VNI: the first the one given, if any, the others serial.
    fn assign_vnis(
        &mut self,
        subnets: Vec<(SubnetConfig, PoolId)>,
        given: Option<Vni>,
    ) -> Result<Vec<(GlobalSubnet, PoolId)>, AllocError> {
        let mut given = given;
        let mut out = Vec::with_capacity(subnets.len());
        for (config, pool) in subnets {
            let vni = if config.subnet.addr().is_ipv6() {
                None
            } else if let Some(vni) = given.take() {
                self.vnis.take(vni)?;
                Some(vni)
            } else {
                Some(self.vnis.allocate()?)
            };
            out.push((GlobalSubnet { config, vni }, pool));
        }
        match given {
            Some(vni) => Err(AllocError::VniWithoutIpv4 { vni }),
            None => Ok(out),
        }
    }

    fn delete_network(&mut self, id: &NetworkId) -> Result<Outcome, AllocError> {
        self.ensure_no_services(id)?;
        let network = self
            .networks
            .remove(id)
            .ok_or_else(|| AllocError::UnknownNetwork { id: id.clone() })?;
        self.names.remove(&network.def.name);
        for pool in &network.pools {
            self.ipam
                .release_pool(pool)
                .map_err(AllocError::ipam("release a subnet"))?;
        }
        for vni in network.def.subnets.iter().filter_map(|s| s.vni) {
            self.vnis.release(vni);
        }
        Ok(Outcome::NetworkDeleted(network.def))
    }

    fn network_state(&self, id: &NetworkId) -> Result<&Network, AllocError> {
        self.networks
            .get(id)
            .ok_or_else(|| AllocError::UnknownNetwork { id: id.clone() })
    }

    fn network_mut(&mut self, id: &NetworkId) -> Result<&mut Network, AllocError> {
        self.networks
            .get_mut(id)
            .ok_or_else(|| AllocError::UnknownNetwork { id: id.clone() })
    }

    fn allocate_address(
        &mut self,
        id: &NetworkId,
        endpoint: &str,
        ip: Option<IpAddr>,
    ) -> Result<Outcome, AllocError> {
        if endpoint.is_empty() {
            return Err(AllocError::EmptyEndpoint);
        }
        let network = self.network_state(id)?;
        if let Some(held) = network.endpoints.get(endpoint) {
            return match ip {
                Some(asked) if !held.iter().any(|a| a.addr() == asked) => {
                    Err(AllocError::EndpointHasOtherAddress {
                        network: id.clone(),
                        endpoint: endpoint.to_owned(),
                        held: held.clone(),
                        asked,
                    })
                }
                _ => Ok(Outcome::AddressAllocated(grant(id, held))),
            };
        }
        let pools = network.pools.clone();
        let addresses = self.allocate_in(id, &pools, ip)?;
        self.network_mut(id)?
            .endpoints
            .insert(endpoint.to_owned(), addresses.clone());
        Ok(Outcome::AddressAllocated(grant(id, &addresses)))
    }

    fn allocate_vip(&mut self, id: &NetworkId, service: &Name) -> Result<Outcome, AllocError> {
        let addresses = self.vip_addresses(id, service)?;
        Ok(Outcome::VipAllocated(grant(id, &addresses)))
    }

    /// The virtual IPs `service` holds on network `id`, taken now if it holds none.
    fn vip_addresses(&mut self, id: &NetworkId, service: &Name) -> Result<Vec<IpNet>, AllocError> {
        let network = self.network_state(id)?;
        if let Some(held) = network.vips.get(service) {
            return Ok(held.clone());
        }
        let pools = network.pools.clone();
        let addresses = self.allocate_in(id, &pools, None)?;
        self.network_mut(id)?
            .vips
            .insert(service.clone(), addresses.clone());
        Ok(addresses)
    }

    /// One address per family present in `pools`: `ip` in the pool holding it, the others
    /// the next free one (serially) of the first pool of their family that has one.
    fn allocate_in(
        &mut self,
        id: &NetworkId,
        pools: &[PoolId],
        ip: Option<IpAddr>,
    ) -> Result<Vec<IpNet>, AllocError> {
        let specific = match ip {
            Some(ip) => Some(
                pools
                    .iter()
                    .find(|p| p.subnet.contains(&ip))
                    .map(|p| (*p, ip))
                    .ok_or_else(|| AllocError::AddressNotInNetwork {
                        network: id.clone(),
                        ip,
                    })?,
            ),
            None => None,
        };
        let mut out = Vec::new();
        for v6 in [false, true] {
            let family: Vec<&PoolId> = pools
                .iter()
                .filter(|p| p.subnet.addr().is_ipv6() == v6)
                .collect();
            if family.is_empty() {
                continue;
            }
            let (pool, addr) = match specific {
                Some((pool, ip)) if ip.is_ipv6() == v6 => {
                    let addr = self
                        .ipam
                        .request_address(&pool, AddressRequest::Specific(ip))
                        .map_err(AllocError::ipam("allocate the address"))?;
                    (pool, addr)
                }
                _ => self.allocate_any(&family)?,
            };
            out.push(with_prefix(addr, &pool));
        }
        Ok(out)
    }

    /// The next free address of the first pool that has one.
    fn allocate_any(&mut self, pools: &[&PoolId]) -> Result<(PoolId, IpAddr), AllocError> {
        let mut last = None;
        for pool in pools {
            match self
                .ipam
                .request_address(pool, AddressRequest::Any { serial: true })
            {
                Ok(addr) => return Ok((**pool, addr)),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(source) => AllocError::Ipam {
                op: "allocate an address",
                source,
            },
            None => AllocError::InvalidConfig {
                reason: "network has no subnet of the family".to_owned(),
            },
        })
    }

    fn release_address(&mut self, id: &NetworkId, endpoint: &str) -> Result<Outcome, AllocError> {
        let network = self.network_mut(id)?;
        let held =
            network
                .endpoints
                .remove(endpoint)
                .ok_or_else(|| AllocError::UnknownEndpoint {
                    network: id.clone(),
                    endpoint: endpoint.to_owned(),
                })?;
        let pools = network.pools.clone();
        self.release_in(&pools, &held)?;
        Ok(Outcome::AddressReleased(grant(id, &held)))
    }

    fn release_vip(&mut self, id: &NetworkId, service: &Name) -> Result<Outcome, AllocError> {
        if self
            .services
            .get(service)
            .is_some_and(|s| s.vip_on(id).is_some())
        {
            return Err(AllocError::VipOfService {
                network: id.clone(),
                service: service.clone(),
            });
        }
        self.release_vip_unchecked(id, service)
    }

    /// Releases a service's virtual IPs on `id`, defined service or not.
    fn release_vip_unchecked(
        &mut self,
        id: &NetworkId,
        service: &Name,
    ) -> Result<Outcome, AllocError> {
        let network = self.network_mut(id)?;
        let held = network
            .vips
            .remove(service)
            .ok_or_else(|| AllocError::UnknownVip {
                network: id.clone(),
                service: service.clone(),
            })?;
        let pools = network.pools.clone();
        self.release_in(&pools, &held)?;
        Ok(Outcome::VipReleased(grant(id, &held)))
    }

    /// Frees addresses in the pools holding them.
    fn release_in(&mut self, pools: &[PoolId], addresses: &[IpNet]) -> Result<(), AllocError> {
        for addr in addresses {
            if let Some(pool) = pools.iter().find(|p| p.subnet.contains(&addr.addr())) {
                self.ipam
                    .release_address(pool, addr.addr())
                    .map_err(AllocError::ipam("release the address"))?;
            }
        }
        Ok(())
    }
}

fn grant(network: &NetworkId, addresses: &[IpNet]) -> Grant {
    Grant {
        network: network.clone(),
        addresses: addresses.to_vec(),
    }
}

/// `addr` with the prefix length of `pool`'s subnet.
fn with_prefix(addr: IpAddr, pool: &PoolId) -> IpNet {
    // The prefix length comes from a valid subnet of the same family, so this cannot fail;
    // fall back to the subnet itself rather than panic.
    IpNet::new(addr, pool.subnet.prefix_len()).unwrap_or(pool.subnet)
}
