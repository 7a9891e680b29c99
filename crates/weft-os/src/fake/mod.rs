//! [`FakeKernel`]: an in-memory, recording implementation of the [`crate::ops`] traits for
//! tests of the layers above, without root. Not chosen by `cfg(test)`: it is injected through
//! constructors like the real one.
//!
//! It keeps a model of namespaces, links and what hangs off them, honours the same idempotency
//! rules as [`crate::RealKernel`], records every call in order, and fails on request
//! ([`FakeKernel::fail`], [`FakeKernel::fail_once`], [`FakeKernel::fail_on`]) with
//! [`Error::Injected`], leaving the model untouched, so rollback paths can be tested. Not
//! modelled: traffic, kernel-made routes, learned neighbours, nftables beyond tables.

mod ops;
mod state;

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::model::{LinkInfo, LinkKind, MacAddr, NftTable, Route};
use crate::names::{IfName, NsName, NsRef};
use state::World;

/// One recorded call on the fake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The trait method, e.g. `"create_vxlan"`.
    pub op: &'static str,
    /// The namespace it targeted.
    pub ns: NsRef,
    /// The object, e.g. the link name or `"dev ip"`.
    pub object: String,
}

#[derive(Clone, Debug)]
struct FailRule {
    op: String,
    object: Option<String>,
    remaining: Option<u32>,
}

#[derive(Debug)]
struct Inner {
    world: World,
    calls: Vec<Call>,
    failures: Vec<FailRule>,
    next_pid: u32,
    exit_code: i32,
}

/// The in-memory kernel. Cheap to create; share it behind an `Arc`.
#[derive(Debug)]
pub struct FakeKernel {
    inner: Mutex<Inner>,
}

impl Default for FakeKernel {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeKernel {
    /// A kernel whose host namespace holds only `lo`.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                world: World::new(),
                calls: Vec::new(),
                failures: Vec::new(),
                next_pid: 1000,
                exit_code: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock left a model that is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every later call of `op` fail (until [`FakeKernel::clear_failures`]).
    pub fn fail(&self, op: &str) {
        self.add_rule(op, None, None);
    }

    /// Makes the next call of `op` fail.
    pub fn fail_once(&self, op: &str) {
        self.add_rule(op, None, Some(1));
    }

    /// Makes every later call of `op` on `object` (as recorded in [`Call::object`]) fail.
    pub fn fail_on(&self, op: &str, object: &str) {
        self.add_rule(op, Some(object.to_owned()), None);
    }

    fn add_rule(&self, op: &str, object: Option<String>, remaining: Option<u32>) {
        self.lock().failures.push(FailRule {
            op: op.to_owned(),
            object,
            remaining,
        });
    }

    /// Removes all injected failures.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    /// Every call so far, in order (including the ones that failed).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The operation names of every call so far, in order.
    pub fn call_ops(&self) -> Vec<&'static str> {
        self.lock().calls.iter().map(|c| c.op).collect()
    }

    /// Forgets the recorded calls (the model stays).
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Sets the exit code of processes "run" by [`crate::ExecOps::spawn`].
    pub fn set_exit_code(&self, code: i32) {
        self.lock().exit_code = code;
    }

    /// Adds a device the fake cannot create (e.g. the host's underlay `eth0`), up.
    pub fn seed_link(&self, ns: &NsRef, name: &IfName, mtu: u32) -> Result<()> {
        let mut inner = self.lock();
        let mut link = inner.world.new_link(
            name.clone(),
            LinkKind::Other(String::new()),
            Some(mtu),
            None,
        );
        link.info.up = true;
        inner.world.space_mut(ns)?.links.insert(name.clone(), link);
        Ok(())
    }

    /// Whether the bridge port `name` in `ns` is isolated (false for no such link).
    pub fn port_isolated(&self, ns: &NsRef, name: &IfName) -> bool {
        let inner = self.lock();
        let space = inner.world.spaces.get(ns);
        space
            .and_then(|s| s.links.get(name))
            .is_some_and(|l| l.isolated)
    }

    /// The JSON of every ruleset applied in `ns`, in order.
    pub fn rulesets(&self, ns: &NsRef) -> Vec<String> {
        let inner = self.lock();
        inner
            .world
            .spaces
            .get(ns)
            .map(|s| s.rulesets.clone())
            .unwrap_or_default()
    }

    /// Records the call, then fails it if a rule says so.
    fn enter(
        &self,
        op: &'static str,
        ns: &NsRef,
        object: impl Into<String>,
    ) -> Result<FakeGuard<'_>> {
        let mut inner = self.lock();
        let object = object.into();
        inner.calls.push(Call {
            op,
            ns: ns.clone(),
            object: object.clone(),
        });
        let hit = inner.failures.iter_mut().position(|r| {
            r.op == op && r.object.as_ref().is_none_or(|o| *o == object) && r.remaining != Some(0)
        });
        if let Some(i) = hit {
            if let Some(n) = inner.failures[i].remaining.as_mut() {
                *n -= 1;
            }
            return Err(Error::Injected {
                op: op.to_owned(),
                object,
            });
        }
        Ok(FakeGuard { inner })
    }
}

/// The locked model, handed to an operation after its call was recorded and allowed.
struct FakeGuard<'a> {
    inner: MutexGuard<'a, Inner>,
}

impl FakeGuard<'_> {
    fn world(&mut self) -> &mut World {
        &mut self.inner.world
    }

    fn next_pid(&mut self) -> (u32, i32) {
        self.inner.next_pid += 1;
        (self.inner.next_pid, self.inner.exit_code)
    }
}

/// The link called `name` if it has kind `kind`; an error if another kind has the name.
fn existing_of_kind(
    world: &World,
    ns: &NsRef,
    name: &IfName,
    kind: &'static str,
) -> Result<Option<LinkInfo>> {
    match world.space(ns)?.links.get(name) {
        Some(l) if l.info.kind.name() == kind => Ok(Some(l.info.clone())),
        Some(l) => Err(Error::LinkKindMismatch {
            name: name.clone(),
            expected: kind,
            found: l.info.kind.name().to_owned(),
            ns: ns.clone(),
        }),
        None => Ok(None),
    }
}

/// Brings MTU and MAC of an adopted link to the requested values.
fn adopt(
    world: &mut World,
    ns: &NsRef,
    name: &IfName,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
) -> Result<()> {
    let link = world.link_mut(ns, name)?;
    if let Some(mtu) = mtu {
        link.info.mtu = mtu;
    }
    if let Some(mac) = mac {
        link.info.mac = Some(mac);
    }
    Ok(())
}

fn ns_object(name: &NsName) -> (NsRef, String) {
    (NsRef::named(name), name.to_string())
}

fn addr_object(dev: &IfName, addr: &IpNet) -> String {
    format!("{dev} {addr}")
}

fn ip_object(dev: &IfName, ip: &IpAddr) -> String {
    format!("{dev} {ip}")
}

fn route_object(route: &Route) -> String {
    route.to_string()
}

fn table_object(table: &NftTable) -> String {
    format!("{:?} {}", table.family, table.name)
}
