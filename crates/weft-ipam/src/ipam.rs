//! The allocator: address spaces of non-overlapping pools, and addresses inside them.

use crate::addr::{family, is_canonical, is_v6, net_end, net_start};
use crate::candidates::Candidates;
use crate::pool::{Pool, PoolInfo, any_window};
use crate::snapshot::IpamSnapshot;
use crate::{AddressSpace, IpamConfig, IpamError, PoolId};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What pool to allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRequest {
    /// The address space to allocate in.
    pub space: AddressSpace,
    /// An explicit subnet, or `None` for the next free predefined pool.
    pub pool: Option<IpNet>,
    /// A sub-range of `pool` that `AddressRequest::Any` will pick from.
    pub sub_pool: Option<IpNet>,
    /// The family wanted; must match `pool` when one is given.
    pub v6: bool,
}

impl PoolRequest {
    /// The next free predefined pool of the family.
    pub fn auto(space: AddressSpace, v6: bool) -> Self {
        PoolRequest {
            space,
            pool: None,
            sub_pool: None,
            v6,
        }
    }

    /// Exactly `pool`, with no sub-range.
    pub fn explicit(space: AddressSpace, pool: IpNet) -> Self {
        PoolRequest {
            space,
            pool: Some(pool),
            sub_pool: None,
            v6: is_v6(&pool),
        }
    }

    /// The same request with a sub-range.
    pub fn with_sub_pool(self, sub_pool: IpNet) -> Self {
        PoolRequest {
            sub_pool: Some(sub_pool),
            ..self
        }
    }
}

/// What address to allocate.
///
/// Every successful allocation, `Specific` ones included, moves the pool's serial cursor to
/// just after the address handed out. Replaying addresses as `Specific` in the order they were
/// first allocated therefore restores the cursor exactly; in any other order it ends after the
/// last address replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRequest {
    /// This address, anywhere in the pool's subnet (also outside its sub-range).
    Specific(IpAddr),
    /// Any free address of the sub-range (or subnet): the next after the last one handed out
    /// when `serial`, else the lowest.
    Any {
        /// Next-fit instead of lowest-free, so a just-released address is not reused at once.
        serial: bool,
    },
}

/// Key of a pool inside a space: family, then first address. Pools of a space never
/// overlap, so sorting by start also sorts by end.
type PoolKey = (bool, u128);

/// The pools of one address space and where its predefined search resumes.
#[derive(Debug, Clone)]
struct Space {
    pools: BTreeMap<PoolKey, Pool>,
    v4: Candidates,
    v6: Candidates,
    next_v4: u128,
    next_v6: u128,
}

impl Space {
    fn new(predefined: &[crate::PredefinedPool]) -> Self {
        Space {
            pools: BTreeMap::new(),
            v4: Candidates::new(predefined, false),
            v6: Candidates::new(predefined, true),
            next_v4: 0,
            next_v6: 0,
        }
    }

    /// The allocated pool overlapping `net`, if any.
    fn overlapping(&self, net: &IpNet) -> Option<&Pool> {
        let v6 = is_v6(net);
        let (_, pool) = self.pools.range(..=(v6, net_end(net))).next_back()?;
        let subnet = &pool.id().subnet;
        (is_v6(subnet) == v6 && net_end(subnet) >= net_start(net)).then_some(pool)
    }

    fn insert(&mut self, pool: Pool) {
        let subnet = pool.id().subnet;
        self.pools
            .insert((is_v6(&subnet), net_start(&subnet)), pool);
    }
}

/// The IPAM allocator of one host (or of the cluster manager, for the global space).
#[derive(Debug, Clone)]
pub struct Ipam {
    config: IpamConfig,
    local: Space,
    global: Space,
}

impl Ipam {
    /// An allocator with no pools, picking automatic pools from `config`.
    pub fn new(config: IpamConfig) -> Result<Self, IpamError> {
        config.validate()?;
        Ok(Ipam::build(config))
    }

    /// Builds from a configuration already validated.
    fn build(config: IpamConfig) -> Self {
        Ipam {
            local: Space::new(&config.local),
            global: Space::new(&config.global),
            config,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &IpamConfig {
        &self.config
    }

    fn space(&self, space: AddressSpace) -> &Space {
        match space {
            AddressSpace::Local => &self.local,
            AddressSpace::Global => &self.global,
        }
    }

    fn space_mut(&mut self, space: AddressSpace) -> &mut Space {
        match space {
            AddressSpace::Local => &mut self.local,
            AddressSpace::Global => &mut self.global,
        }
    }

    /// Allocates a pool: the explicit one asked for, or the next free predefined one.
    pub fn request_pool(&mut self, req: &PoolRequest) -> Result<PoolId, IpamError> {
        self.request_pool_avoiding(req, &[])
    }

    /// As [`Ipam::request_pool`], but an automatic pool also avoids overlapping `avoid`
    /// (e.g. the host's routes and nameservers, as libnetwork does for local networks).
    /// Explicit pools are the user's choice and ignore `avoid`.
    pub fn request_pool_avoiding(
        &mut self,
        req: &PoolRequest,
        avoid: &[IpNet],
    ) -> Result<PoolId, IpamError> {
        let id = match req.pool {
            Some(pool) => self.explicit_pool_id(req, pool)?,
            None => self.auto_pool_id(req, avoid)?,
        };
        self.space_mut(req.space).insert(Pool::new(id));
        Ok(id)
    }

    /// Validates an explicit request and returns the id it will get.
    fn explicit_pool_id(&self, req: &PoolRequest, pool: IpNet) -> Result<PoolId, IpamError> {
        check_pool(pool, req.v6)?;
        let range = req
            .sub_pool
            .map(|sub| check_sub_pool(pool, sub))
            .transpose()?;
        if let Some(existing) = self.space(req.space).overlapping(&pool) {
            return Err(IpamError::PoolOverlap {
                space: req.space,
                requested: pool,
                existing: existing.id().subnet,
            });
        }
        Ok(PoolId {
            space: req.space,
            subnet: pool,
            range,
        })
    }

    /// Finds the next free predefined pool, moving the space's cursor past it.
    fn auto_pool_id(&mut self, req: &PoolRequest, avoid: &[IpNet]) -> Result<PoolId, IpamError> {
        if let Some(sub_pool) = req.sub_pool {
            return Err(IpamError::InvalidSubPool {
                sub_pool,
                reason: "a sub-pool needs an explicit pool".to_owned(),
            });
        }
        let space = self.space(req.space);
        let (candidates, start) = if req.v6 {
            (&space.v6, space.next_v6)
        } else {
            (&space.v4, space.next_v4)
        };
        let blocker = |net: &IpNet| {
            let pool_end = space.overlapping(net).map(|p| net_end(&p.id().subnet));
            pool_end.or_else(|| avoided_end(net, avoid))
        };
        let (index, subnet) =
            candidates
                .find(start, blocker)
                .ok_or(IpamError::NoAvailablePool {
                    space: req.space,
                    v6: req.v6,
                })?;
        let space = self.space_mut(req.space);
        let next = if req.v6 {
            &mut space.next_v6
        } else {
            &mut space.next_v4
        };
        *next = index.saturating_add(1);
        Ok(PoolId {
            space: req.space,
            subnet,
            range: None,
        })
    }

    /// Moves the automatic search of `id`'s space and family to just after `id`'s subnet,
    /// when that subnet is one of the predefined pools. Used when rebuilding from stored
    /// networks (in creation order), so that automatic pools resume after the last one
    /// handed out rather than restart from the first.
    pub fn resume_after(&mut self, id: &PoolId) {
        let v6 = is_v6(&id.subnet);
        let space = self.space_mut(id.space);
        let (candidates, next) = if v6 {
            (&space.v6, &mut space.next_v6)
        } else {
            (&space.v4, &mut space.next_v4)
        };
        if let Some(index) = candidates.index_of(&id.subnet) {
            *next = index.saturating_add(1);
        }
    }

    /// Releases a pool and every address allocated in it.
    pub fn release_pool(&mut self, id: &PoolId) -> Result<(), IpamError> {
        self.pool(id)?;
        let key = (is_v6(&id.subnet), net_start(&id.subnet));
        self.space_mut(id.space).pools.remove(&key);
        Ok(())
    }

    /// The pool named by `id`; the range must match too.
    fn pool(&self, id: &PoolId) -> Result<&Pool, IpamError> {
        let key = (is_v6(&id.subnet), net_start(&id.subnet));
        match self.space(id.space).pools.get(&key) {
            Some(pool) if pool.id() == id => Ok(pool),
            _ => Err(IpamError::UnknownPool(*id)),
        }
    }

    fn pool_mut(&mut self, id: &PoolId) -> Result<&mut Pool, IpamError> {
        self.pool(id)?;
        let key = (is_v6(&id.subnet), net_start(&id.subnet));
        self.space_mut(id.space)
            .pools
            .get_mut(&key)
            .ok_or(IpamError::UnknownPool(*id))
    }

    /// Allocates an address in the pool.
    pub fn request_address(
        &mut self,
        id: &PoolId,
        req: AddressRequest,
    ) -> Result<IpAddr, IpamError> {
        let pool = self.pool_mut(id)?;
        match req {
            AddressRequest::Specific(ip) => pool.allocate_specific(ip),
            AddressRequest::Any { serial } => pool.allocate_any(serial),
        }
    }

    /// Frees an address of the pool.
    pub fn release_address(&mut self, id: &PoolId, ip: IpAddr) -> Result<(), IpamError> {
        self.pool_mut(id)?.release(ip)
    }

    /// True when `ip` is allocated in the pool.
    pub fn is_allocated(&self, id: &PoolId, ip: IpAddr) -> Result<bool, IpamError> {
        self.pool(id)?.is_allocated(ip)
    }

    /// The default gateway of a pool: the subnet's first host address.
    pub fn default_gateway(&self, id: &PoolId) -> IpAddr {
        id.default_gateway()
    }

    /// Bounds and fill level of a pool.
    pub fn pool_info(&self, id: &PoolId) -> Result<PoolInfo, IpamError> {
        Ok(self.pool(id)?.info())
    }

    /// Every pool and its allocated addresses, sorted.
    pub fn snapshot(&self) -> IpamSnapshot {
        let mut pools: Vec<_> = [&self.local, &self.global]
            .into_iter()
            .flat_map(|space| space.pools.values().map(Pool::snapshot))
            .collect();
        pools.sort_by_key(|p| p.id);
        IpamSnapshot { pools }
    }
}

impl Default for Ipam {
    /// An allocator with Docker's predefined pools ([`IpamConfig::default`], valid by construction).
    fn default() -> Self {
        Ipam::build(IpamConfig::default())
    }
}

/// The last address of an `avoid` network overlapping `net`, if any.
fn avoided_end(net: &IpNet, avoid: &[IpNet]) -> Option<u128> {
    avoid
        .iter()
        .map(IpNet::trunc)
        .filter(|a| is_v6(a) == is_v6(net))
        .find(|a| net_start(a) <= net_end(net) && net_start(net) <= net_end(a))
        .map(|a| net_end(&a))
}

/// Smallest pools: IPv4 must leave 2 hosts (/30); IPv6 must leave 2 besides `::0` (/126).
const MAX_V4_POOL_PREFIX: u8 = 30;
const MAX_V6_POOL_PREFIX: u8 = 126;

/// Checks an explicit pool: family, network address, size.
fn check_pool(pool: IpNet, v6: bool) -> Result<(), IpamError> {
    let invalid = |reason: String| IpamError::InvalidPool { pool, reason };
    if is_v6(&pool) != v6 {
        return Err(invalid(format!(
            "it is an {} network but an {} pool was requested",
            family(is_v6(&pool)),
            family(v6)
        )));
    }
    if !is_canonical(&pool) {
        return Err(invalid(format!(
            "host bits are set; did you mean {}",
            pool.trunc()
        )));
    }
    let max = if v6 {
        MAX_V6_POOL_PREFIX
    } else {
        MAX_V4_POOL_PREFIX
    };
    if pool.prefix_len() > max {
        return Err(invalid(format!(
            "too small: an {} pool must be /{max} or larger",
            family(v6)
        )));
    }
    Ok(())
}

/// Checks a sub-pool against its pool and returns it.
fn check_sub_pool(pool: IpNet, sub_pool: IpNet) -> Result<IpNet, IpamError> {
    let invalid = |reason: String| IpamError::InvalidSubPool { sub_pool, reason };
    if !is_canonical(&sub_pool) {
        return Err(invalid(format!(
            "host bits are set; did you mean {}",
            sub_pool.trunc()
        )));
    }
    if is_v6(&sub_pool) != is_v6(&pool) || !pool.contains(&sub_pool) {
        return Err(invalid(format!("it does not lie inside pool {pool}")));
    }
    let (lo, hi) = any_window(&pool, Some(&sub_pool));
    if lo > hi {
        return Err(invalid(format!(
            "it holds no allocatable address of pool {pool}"
        )));
    }
    Ok(sub_pool)
}
