//! The `null` driver: networks with addresses but no connectivity. A sandbox on a null
//! network has only its loopback interface.

use crate::{Capability, Driver, DriverError, JoinContext, JoinInfo};
use async_trait::async_trait;
use weft_types::{
    DriverName, EndpointId, EndpointRecord, NetworkId, NetworkRecord, SandboxId, SandboxRecord,
};

#[derive(Debug)]
pub struct NullDriver {
    name: DriverName,
}

impl NullDriver {
    pub fn new() -> Self {
        NullDriver {
            name: DriverName::null(),
        }
    }
}

impl Default for NullDriver {
    fn default() -> Self {
        NullDriver::new()
    }
}

#[async_trait]
impl Driver for NullDriver {
    fn name(&self) -> &DriverName {
        &self.name
    }

    fn capability(&self) -> Capability {
        Capability::LOCAL
    }

    fn validate_network(&self, network: &NetworkRecord) -> Result<(), DriverError> {
        if let Some((key, _)) = network.options.iter().next() {
            return Err(DriverError::InvalidParameter {
                driver: self.name.clone(),
                message: format!("the null driver takes no options, got {key:?}"),
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
