//! Records and helpers shared by the integration tests.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use weft_store::{Expect, Store, StoreError, Txn};
use weft_types::record::Record;
use weft_types::*;

pub fn endpoint(name: &str) -> EndpointRecord {
    EndpointRecord {
        id: EndpointId::random(),
        name: name.parse().unwrap(),
        network: NetworkId::random(),
        ipv4: Some("198.19.0.2/24".parse().unwrap()),
        ipv6: None,
        mac: MacAddr::from_ipv4("198.19.0.2".parse().unwrap()),
        aliases: vec![],
        service: None,
        attachment: Attachment::Detached,
        interface: None,
        owner: None,
        created_ms: 1_700_000_000_000,
        lifecycle: Lifecycle::Ready,
    }
}

pub fn sandbox(name: &str) -> SandboxRecord {
    SandboxRecord {
        id: SandboxId::random(),
        name: name.parse().unwrap(),
        hostname: None,
        created_ms: 1_700_000_000_000,
        lifecycle: Lifecycle::Ready,
    }
}

pub fn put<R: Record>(store: &Store, record: &R, expect: Expect) -> Result<u64, StoreError> {
    let mut txn = Txn::new();
    txn.put(record, expect)?;
    Ok(store.commit(txn)?[0])
}
