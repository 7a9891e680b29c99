//! Shared set-up for the controller tests: a store in a temporary directory, the null
//! driver and a fake driver, and predefined pools inside 198.19.0.0/16.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use weft_controller::{ControllerConfig, Core};
use weft_drivers::DriverRegistry;
use weft_drivers::fake::FakeDriver;
use weft_drivers::null::NullDriver;
use weft_ipam::{IpamConfig, PredefinedPool};
use weft_store::Store;
use weft_types::api::{
    CreateEndpointRequest, CreateNetworkRequest, CreateSandboxRequest, SubnetRequest,
};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub fake: FakeDriver,
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            dir: tempfile::tempdir().unwrap(),
            fake: FakeDriver::new("fake".parse().unwrap()),
        }
    }

    pub fn config() -> ControllerConfig {
        ControllerConfig {
            ipam: IpamConfig {
                local: vec![PredefinedPool::new("198.19.0.0/18".parse().unwrap(), 24).unwrap()],
                global: vec![PredefinedPool::new("198.19.128.0/17".parse().unwrap(), 24).unwrap()],
            },
        }
    }

    /// Opens (or reopens, as after a restart) the controller on the harness's store.
    pub async fn open(&self) -> Result<Core, weft_types::Error> {
        let store = Store::open(self.dir.path()).unwrap();
        let mut drivers = DriverRegistry::new();
        drivers.register(Arc::new(NullDriver::new()));
        drivers.register(Arc::new(self.fake.clone()));
        Core::open(Self::config(), store, drivers).await
    }
}

pub fn network(name: &str, driver: &str, subnet: Option<&str>) -> CreateNetworkRequest {
    CreateNetworkRequest {
        name: name.parse().unwrap(),
        driver: Some(driver.parse().unwrap()),
        subnets: subnet
            .map(|s| {
                vec![SubnetRequest {
                    subnet: Some(s.parse().unwrap()),
                    ..Default::default()
                }]
            })
            .unwrap_or_default(),
        ipv6: false,
        internal: false,
        attachable: false,
        options: Default::default(),
        labels: Default::default(),
    }
}

pub fn endpoint(name: &str) -> CreateEndpointRequest {
    CreateEndpointRequest {
        name: name.parse().unwrap(),
        ip: None,
        ipv6: None,
        mac: None,
        aliases: vec![],
        service: None,
    }
}

pub fn sandbox(name: &str) -> CreateSandboxRequest {
    CreateSandboxRequest {
        name: name.parse().unwrap(),
        hostname: None,
    }
}
