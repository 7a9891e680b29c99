//! The `host` driver: a sandbox on a host network uses the host's own network namespace, as
//! `docker run --network host` does. The driver has nothing to make: the controller sees
//! [`Capability::host_namespace`] and points the sandbox at the host namespace itself, so
//! every operation here succeeds without touching the kernel.

use crate::{Capability, Driver, DriverError, JoinContext, JoinInfo};
use async_trait::async_trait;
use weft_types::{
    DriverName, EndpointId, EndpointRecord, NetworkId, NetworkRecord, SandboxId, SandboxRecord,
    Scope,
};

/// What the host driver declares: local, no addresses, the host's namespace.
pub const HOST_CAPABILITY: Capability = Capability {
    scope: Scope::Local,
    ipam: false,
    host_namespace: true,
};

/// The host driver; every operation is a no-op.
#[derive(Debug)]
pub struct HostDriver {
    name: DriverName,
}

impl HostDriver {
    /// The driver, registered under the name `host`.
    pub fn new() -> Self {
        HostDriver {
            name: DriverName::host(),
        }
    }
}

impl Default for HostDriver {
    fn default() -> Self {
        HostDriver::new()
    }
}

#[async_trait]
impl Driver for HostDriver {
    fn name(&self) -> &DriverName {
        &self.name
    }

    fn capability(&self) -> Capability {
        HOST_CAPABILITY
    }

    fn validate_network(&self, network: &NetworkRecord) -> Result<(), DriverError> {
        if let Some((key, _)) = network.options.iter().next() {
            return Err(DriverError::InvalidParameter {
                driver: self.name.clone(),
                message: format!("the host driver takes no options, got {key:?}"),
            });
        }
        Ok(())
    }

    async fn create_network(&self, _: &NetworkRecord) -> Result<(), DriverError> {
        Ok(())
    }

    async fn delete_network(&self, _: &NetworkId) -> Result<(), DriverError> {
        Ok(())
    }

    async fn create_endpoint(
        &self,
        _: &NetworkRecord,
        _: &EndpointRecord,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    async fn delete_endpoint(&self, _: &NetworkId, _: &EndpointId) -> Result<(), DriverError> {
        Ok(())
    }

    async fn join(
        &self,
        _: &NetworkRecord,
        _: &EndpointRecord,
        _: &SandboxRecord,
        _: &JoinContext,
    ) -> Result<JoinInfo, DriverError> {
        Ok(JoinInfo::default())
    }

    async fn leave(
        &self,
        _: &NetworkRecord,
        _: &EndpointRecord,
        _: &SandboxId,
    ) -> Result<(), DriverError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_driver_uses_the_host_namespace_and_refuses_options() {
        let d = HostDriver::new();
        assert_eq!(d.name().as_str(), "host");
        let cap = d.capability();
        assert!(cap.host_namespace && !cap.ipam && cap.scope == Scope::Local);
        let mut net = crate::bridge::tests::network(1, false);
        assert!(d.validate_network(&net).is_ok());
        net.options = weft_types::Options::from_pairs(["mtu=1400"]).unwrap();
        let err = d.validate_network(&net).unwrap_err();
        assert!(err.to_string().contains("takes no options"), "{err}");
    }
}
