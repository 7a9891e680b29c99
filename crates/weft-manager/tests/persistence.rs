//! The command log: restart, refusals not stored, failed writes leave memory unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::net::IpAddr;
use std::rc::Rc;
use weft_ipam::PredefinedPool;
use weft_manager::{
    AllocError, Allocator, AllocatorConfig, Command, CommandLog, ManagerError, ManagerStore,
    Outcome, VniRange,
};
use weft_store::Store;
use weft_types::{Name, NetworkId};

fn config() -> AllocatorConfig {
    AllocatorConfig {
        pools: vec![PredefinedPool {
            base: "198.19.128.0/17".parse().unwrap(),
            size: 24,
        }],
        vnis: VniRange::default(),
    }
}

fn id(n: u8) -> NetworkId {
    format!("{n:064x}").parse().unwrap()
}

fn create(n: u8) -> Command {
    Command::CreateNetwork {
        id: id(n),
        name: format!("net{n}").parse::<Name>().unwrap(),
        subnets: vec![],
        vni: None,
        meta: weft_manager::NetworkMeta {
            driver: "overlay".parse().unwrap(),
            ipv6: false,
            internal: false,
            attachable: true,
            options: Default::default(),
            labels: Default::default(),
            created_ms: u64::from(n),
        },
    }
}

fn endpoint(n: u8, ep: &str) -> Command {
    Command::AllocateAddress {
        network: id(n),
        endpoint: ep.to_owned(),
        ip: None,
    }
}

fn address(outcome: Outcome) -> IpAddr {
    match outcome {
        Outcome::AddressAllocated(g) => g.addresses[0].addr(),
        other => panic!("not an address: {other:?}"),
    }
}

/// An in-memory log whose next append can be made to fail.
#[derive(Debug, Default)]
struct MemLog {
    config: Option<AllocatorConfig>,
    entries: Vec<(u64, Command)>,
    fail_next: Rc<Cell<bool>>,
}

impl CommandLog for MemLog {
    fn load_config(&self) -> Result<Option<AllocatorConfig>, ManagerError> {
        Ok(self.config.clone())
    }
    fn save_config(&mut self, config: &AllocatorConfig) -> Result<(), ManagerError> {
        self.config = Some(config.clone());
        Ok(())
    }
    fn load(&self) -> Result<Vec<(u64, Command)>, ManagerError> {
        Ok(self.entries.clone())
    }
    fn append(&mut self, seq: u64, cmd: &Command) -> Result<(), ManagerError> {
        if self.fail_next.replace(false) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("x"), b"not a store").unwrap();
            // A genuine store error: opening a directory that is not a store.
            return Err(Store::open(dir.path()).unwrap_err().into());
        }
        self.entries.push((seq, cmd.clone()));
        Ok(())
    }
}

#[test]
fn restart_gives_the_same_state_and_the_next_allocation_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let before = {
        let mut m = ManagerStore::open(Store::open(dir.path()).unwrap(), config()).unwrap();
        m.execute(&create(1)).unwrap();
        for ep in ["a", "b", "c"] {
            seen.push(address(m.execute(&endpoint(1, ep)).unwrap()));
        }
        m.execute(&Command::ReleaseAddress {
            network: id(1),
            endpoint: "c".into(),
        })
        .unwrap();
        assert_eq!(m.last_seq(), 5);
        m.allocator().clone()
    };
    let mut m = ManagerStore::open(Store::open(dir.path()).unwrap(), config()).unwrap();
    assert_eq!(*m.allocator(), before);
    assert_eq!(m.allocator().snapshot(), before.snapshot());
    assert_eq!(m.last_seq(), 5);
    let next = address(m.execute(&endpoint(1, "d")).unwrap());
    assert!(!seen.contains(&next), "{next} handed out again");
    assert_eq!(m.last_seq(), 6);
}

#[test]
fn refused_commands_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut m = ManagerStore::open(Store::open(dir.path()).unwrap(), config()).unwrap();
        m.execute(&create(1)).unwrap();
        let err = m.execute(&create(1)).unwrap_err();
        assert!(matches!(
            err,
            ManagerError::Alloc(AllocError::NetworkExists { .. })
        ));
        assert_eq!(m.last_seq(), 1);
    }
    let m = ManagerStore::open(Store::open(dir.path()).unwrap(), config()).unwrap();
    assert_eq!(m.last_seq(), 1);
}

#[test]
fn a_failed_log_write_leaves_memory_unchanged() {
    let fail = Rc::new(Cell::new(false));
    let log = MemLog {
        fail_next: Rc::clone(&fail),
        ..MemLog::default()
    };
    let mut m = ManagerStore::with_log(log, config()).unwrap();
    m.execute(&create(1)).unwrap();
    let before = m.allocator().clone();
    fail.set(true);
    let err = m.execute(&endpoint(1, "a")).unwrap_err();
    assert!(matches!(err, ManagerError::Store(_)), "{err}");
    assert_eq!(*m.allocator(), before);
    assert_eq!(m.last_seq(), 1);
    assert_eq!(m.log().entries.len(), 1);
    // The next command goes through and gets what the failed one would have got.
    let got = address(m.execute(&endpoint(1, "a")).unwrap());
    assert_eq!(got, "198.19.128.2".parse::<IpAddr>().unwrap());
    assert_eq!(m.last_seq(), 2);
}

#[test]
fn another_configuration_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(ManagerStore::open(Store::open(dir.path()).unwrap(), config()).unwrap());
    let err = ManagerStore::open(Store::open(dir.path()).unwrap(), AllocatorConfig::default())
        .unwrap_err();
    assert!(matches!(err, ManagerError::ConfigChanged));
    ManagerStore::open(Store::open(dir.path()).unwrap(), config()).unwrap();
}

#[test]
fn a_gap_in_the_log_is_reported() {
    let log = MemLog {
        config: None,
        entries: vec![(1, create(1)), (3, create(2))],
        ..MemLog::default()
    };
    let err = ManagerStore::with_log(log, config()).unwrap_err();
    assert!(matches!(
        err,
        ManagerError::LogOrder {
            expected: 2,
            found: 3
        }
    ));
}

#[test]
fn a_stored_command_that_no_longer_applies_is_reported() {
    let log = MemLog {
        config: None,
        entries: vec![(1, create(1)), (2, create(1))],
        ..MemLog::default()
    };
    let err = ManagerStore::with_log(log, config()).unwrap_err();
    assert!(matches!(err, ManagerError::Replay { seq: 2, .. }), "{err}");
}

#[test]
fn replaying_the_store_equals_applying_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let cmds = [create(1), endpoint(1, "a"), create(2), endpoint(2, "b")];
    let mut memory = Allocator::new(config()).unwrap();
    {
        let mut m = ManagerStore::open(Store::open(dir.path()).unwrap(), config()).unwrap();
        for c in &cmds {
            assert_eq!(m.execute(c).unwrap(), memory.apply(c).unwrap());
        }
    }
    let m = ManagerStore::open(Store::open(dir.path()).unwrap(), config()).unwrap();
    assert_eq!(*m.allocator(), memory);
}
