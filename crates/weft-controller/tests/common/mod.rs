//! Shared set-up for the controller tests: a store in a temporary directory, the null
//! driver and a fake driver, and predefined pools inside 198.19.0.0/16.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use weft_controller::{ControllerConfig, Core};
use weft_drivers::PassiveDriver;
use weft_drivers::fake::FakeDriver;
use weft_drivers::{Capability, DriverRegistry};
use weft_ipam::{IpamConfig, PredefinedPool};
use weft_os::FakeKernel;
use weft_store::Store;
use weft_types::api::{
    CreateEndpointRequest, CreateNetworkRequest, CreateSandboxRequest, SubnetRequest,
};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub fake: FakeDriver,
    /// Stands in for the host driver: its sandboxes use the host's namespace.
    pub fake_host: FakeDriver,
    /// The kernel as the controller sees it; survives "restarts" like a real one.
    pub kernel: Arc<FakeKernel>,
}

impl Harness {
    pub fn new() -> Self {
        let host = Capability {
            scope: weft_types::Scope::Local,
            ipam: false,
            host_namespace: true,
        };
        Harness {
            dir: tempfile::tempdir().unwrap(),
            fake: FakeDriver::new("fake".parse().unwrap()),
            fake_host: FakeDriver::with_capability("fakehost".parse().unwrap(), host),
            kernel: Arc::new(FakeKernel::new()),
        }
    }

    pub fn config() -> ControllerConfig {
        ControllerConfig {
            ipam: IpamConfig {
                local: vec![PredefinedPool::new("198.19.0.0/18".parse().unwrap(), 24).unwrap()],
                global: vec![PredefinedPool::new("198.19.128.0/17".parse().unwrap(), 24).unwrap()],
            },
            netns_prefix: "t-".to_owned(),
            ..ControllerConfig::default()
        }
    }

    /// Opens (or reopens, as after a restart) the controller on the harness's store.
    pub async fn open(&self) -> Result<Core, weft_types::Error> {
        self.open_in(Self::config(), Vec::new()).await
    }

    /// Opens the controller with `config` and `extra` drivers besides the usual ones.
    pub async fn open_in(
        &self,
        config: ControllerConfig,
        extra: Vec<Arc<dyn weft_drivers::Driver>>,
    ) -> Result<Core, weft_types::Error> {
        let store = Store::open(self.dir.path()).unwrap();
        let mut drivers = DriverRegistry::new();
        drivers.register(Arc::new(PassiveDriver::null()));
        drivers.register(Arc::new(self.fake.clone()));
        drivers.register(Arc::new(self.fake_host.clone()));
        // The gateway network of sandboxes on global networks is a bridge network.
        drivers.register(Arc::new(weft_drivers::BridgeDriver::new(
            self.kernel.clone(),
        )));
        for driver in extra {
            drivers.register(driver);
        }
        Core::open(config, store, drivers, self.kernel.clone()).await
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
        owner: None,
    }
}

pub fn sandbox(name: &str) -> CreateSandboxRequest {
    CreateSandboxRequest {
        name: name.parse().unwrap(),
        hostname: None,
    }
}
