//! Drivers with nothing to make in the kernel:
//! - `null`: networks with addresses but no connectivity; a sandbox on one has only `lo`;
//! - `host`: a sandbox on a host network uses the host's own namespace, as
//!   `docker run --network host` does. The controller sees
//!   [`Capability::host_namespace`] and points the sandbox at the host namespace itself.
//!
//! Both refuse driver options; every operation succeeds without touching the kernel.

use crate::{Capability, Driver, DriverError, JoinContext, JoinInfo, NetworkRequest};
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

/// A driver whose operations are all no-ops: `null` or `host`.
#[derive(Debug)]
pub struct PassiveDriver {
    name: DriverName,
    capability: Capability,
}

impl PassiveDriver {
    /// The `null` driver.
    pub fn null() -> Self {
        PassiveDriver {
            name: DriverName::null(),
            capability: Capability::LOCAL,
        }
    }

    /// The `host` driver.
    pub fn host() -> Self {
        PassiveDriver {
            name: DriverName::host(),
            capability: HOST_CAPABILITY,
        }
    }
}

#[async_trait]
impl Driver for PassiveDriver {
    fn name(&self) -> &DriverName {
        &self.name
    }

    fn capability(&self) -> Capability {
        self.capability
    }

    fn validate(&self, request: &NetworkRequest) -> Result<(), DriverError> {
        if let Some((key, _)) = request.options.iter().next() {
            return Err(DriverError::InvalidParameter {
                driver: self.name.clone(),
                message: format!("the {} driver takes no options, got {key:?}", self.name),
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
    fn declarations_and_option_refusal() {
        let host = PassiveDriver::host();
        assert_eq!(host.name().as_str(), "host");
        let cap = host.capability();
        assert!(cap.host_namespace && !cap.ipam && cap.scope == Scope::Local);
        let null = PassiveDriver::null();
        assert_eq!(null.name().as_str(), "null");
        assert!(null.capability().ipam && !null.capability().host_namespace);
        let net = crate::bridge::tests::network(1, false);
        let mut request = NetworkRequest::from_record(&net);
        assert!(host.validate(&request).is_ok() && null.validate(&request).is_ok());
        request.options = weft_types::Options::from_pairs(["mtu=1400"]).unwrap();
        for d in [host, null] {
            let err = d.validate(&request).unwrap_err();
            assert!(err.to_string().contains("takes no options"), "{err}");
        }
    }
}
