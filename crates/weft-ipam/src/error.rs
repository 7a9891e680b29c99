//! The one error type of the crate and its mapping to the errors users see.

use crate::{AddressSpace, PoolId};
use ipnet::IpNet;
use std::net::IpAddr;
use weft_types::ErrorKind;

/// Everything that can go wrong in configuring pools or allocating from them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// A predefined pool in the configuration is malformed.
    #[error("invalid predefined pool {base} split into /{size}: {reason}")]
    InvalidPredefinedPool {
        /// The base network as configured.
        base: IpNet,
        /// The prefix length it is split into.
        size: u8,
        /// What is wrong with it.
        reason: String,
    },
    /// An explicitly requested pool is malformed, too small or of the wrong family.
    #[error("invalid pool {pool}: {reason}")]
    InvalidPool {
        /// The pool as requested.
        pool: IpNet,
        /// What is wrong with it, and what to ask for instead where that helps.
        reason: String,
    },
    /// A sub-pool (address range) is malformed, outside its pool or given without a pool.
    #[error("invalid sub-pool {sub_pool}: {reason}")]
    InvalidSubPool {
        /// The sub-pool as requested.
        sub_pool: IpNet,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested pool overlaps a pool already allocated in the same address space.
    #[error("pool {requested} overlaps pool {existing} already allocated in address space {space}")]
    PoolOverlap {
        /// The address space both pools live in.
        space: AddressSpace,
        /// The pool that was asked for.
        requested: IpNet,
        /// The allocated pool it overlaps.
        existing: IpNet,
    },
    /// No predefined pool of the family is free and non-overlapping.
    #[error(
        "could not find an available, non-overlapping {} pool among the predefined pools of address space {space}; give a subnet or configure more pools",
        crate::addr::family(*v6)
    )]
    NoAvailablePool {
        /// The address space searched.
        space: AddressSpace,
        /// True when an IPv6 pool was asked for.
        v6: bool,
    },
    /// No pool with this id is allocated.
    #[error("pool {0} not found")]
    UnknownPool(PoolId),
    /// The specific address asked for is already handed out.
    #[error("address {ip} is already allocated in pool {pool}")]
    IpAlreadyAllocated {
        /// The address.
        ip: IpAddr,
        /// The pool it belongs to.
        pool: PoolId,
    },
    /// The address does not belong to the pool's subnet.
    #[error("address {ip} is out of range of pool {pool}")]
    IpOutOfRange {
        /// The address.
        ip: IpAddr,
        /// The pool it was asked of.
        pool: PoolId,
    },
    /// The address is the network, broadcast or subnet-router address, never handed out.
    #[error("address {ip} is the {what} of pool {pool} and is never allocated")]
    IpReserved {
        /// The address.
        ip: IpAddr,
        /// The pool it belongs to.
        pool: PoolId,
        /// Which reserved address it is.
        what: &'static str,
    },
    /// Every address the pool (or its sub-range) can hand out is taken.
    #[error("no available addresses in pool {pool}")]
    NoAvailableIps {
        /// The exhausted pool.
        pool: PoolId,
    },
    /// The address to release is not allocated.
    #[error("address {ip} is not allocated in pool {pool}")]
    NotAllocated {
        /// The address.
        ip: IpAddr,
        /// The pool it was released to.
        pool: PoolId,
    },
    /// A pool id string does not parse.
    #[error("invalid pool id {input:?}: {reason}")]
    InvalidPoolId {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An address space name does not parse.
    #[error("invalid address space {0:?}: expected local or global")]
    InvalidAddressSpace(String),
}

impl IpamError {
    /// The user-visible class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            IpamError::PoolOverlap { .. } | IpamError::IpAlreadyAllocated { .. } => {
                ErrorKind::AlreadyExists
            }
            IpamError::NoAvailablePool { .. } | IpamError::NoAvailableIps { .. } => {
                ErrorKind::Exhausted
            }
            IpamError::UnknownPool(_) | IpamError::NotAllocated { .. } => ErrorKind::NotFound,
            IpamError::InvalidPredefinedPool { .. }
            | IpamError::InvalidPool { .. }
            | IpamError::InvalidSubPool { .. }
            | IpamError::IpOutOfRange { .. }
            | IpamError::IpReserved { .. }
            | IpamError::InvalidPoolId { .. }
            | IpamError::InvalidAddressSpace(_) => ErrorKind::InvalidParameter,
        }
    }
}

impl From<IpamError> for weft_types::Error {
    fn from(e: IpamError) -> Self {
        weft_types::Error::new(e.kind(), e.to_string())
    }
}
