//! The load balancers of this host's sandboxes: which VIPs each one DNATs to which
//! backends (weft-services computes the rules), applied one sandbox at a time, only when
//! its desired state changed: the whole table the first time (or after a failure), then
//! one transaction with only the difference. A round starts at the actor's next turn
//! ([`BATCH`]), so changes already waiting in its mailbox go with it; a sandbox being
//! programmed is programmed again after, if something changed meanwhile.

use super::Names;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use tracing::warn;
use weft_os::{Kernel, NsName, NsRef};
use weft_types::{NetworkId, SandboxId};

/// How long changes are gathered before the load balancers are programmed: no longer than
/// the actor's next turn. A 2 ms wait added 2 ms to every change; the changes that come
/// while a round runs (one `nft` process, about 5 ms) are gathered by it anyway.
pub(crate) const BATCH: Duration = Duration::ZERO;
/// How long after a failed program the next try comes.
pub(crate) const RETRY: Duration = Duration::from_secs(1);

/// VIP -> active backends, sorted: one sandbox's desired state.
type Desired = Vec<(IpAddr, Vec<IpAddr>)>;

/// What the load balancers did, for `weft diag stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LbStats {
    /// Sandboxes with a load balancer to keep.
    pub sandboxes: usize,
    /// Transactions applied.
    pub programs: u64,
    /// Transactions the kernel refused (retried at the next change).
    pub failures: u64,
    /// How long the last one took, in microseconds.
    pub last_program_us: u64,
    /// The longest one, in microseconds.
    pub max_program_us: u64,
}

#[derive(Debug)]
struct Sandbox {
    ns: NsName,
    /// What its table holds; `None` until programmed once (a restarted agent finds
    /// whatever its previous life left, so the first program always runs).
    applied: Option<Desired>,
    busy: bool,
    dirty: bool,
}

/// Every sandbox's load balancer.
#[derive(Debug, Default)]
pub(crate) struct Balancers {
    sandboxes: HashMap<SandboxId, Sandbox>,
    scheduled: bool,
    stats: LbStats,
}

/// One sandbox's program to apply.
#[derive(Debug)]
pub(crate) struct Job {
    pub sandbox: SandboxId,
    ns: NsName,
    desired: Desired,
    /// What the table holds now, when known: then only the difference is applied.
    before: Option<Desired>,
    /// (VIP, backend) pairs the sandbox's table led to and no longer does.
    removed: Vec<(IpAddr, IpAddr)>,
}

impl Job {
    /// Applies the sandbox's table (or removes it when no VIP is left), then forgets the
    /// UDP flows to backends that left: conntrack would otherwise keep sending a flow's
    /// datagrams to a backend that is gone (TCP connections to it fail and reconnect).
    pub async fn apply(&self, kernel: &dyn Kernel) -> Result<(), weft_os::Error> {
        let ns = NsRef::named(&self.ns);
        // An empty "before" may mean no table at all (a first program that found no VIP
        // removes it): then the whole table, never an update of one that is not there.
        let script = match &self.before {
            Some(before) if !before.is_empty() => weft_services::lb_update(before, &self.desired),
            _ if self.desired.is_empty() => Some(weft_services::lb_removal()),
            _ => Some(weft_services::lb_ruleset(&self.desired)),
        };
        if let Some(script) = script {
            kernel.apply_script(&ns, &script).await?;
        }
        for (vip, backend) in &self.removed {
            if let Err(e) = kernel.forget_udp_flows(&ns, *vip, *backend).await {
                warn!(sandbox = %self.sandbox.short(), %vip, %backend, error = %e, "cannot forget udp flows to a removed backend");
            }
        }
        Ok(())
    }
}

/// The (VIP, backend) pairs of `before` that `after` no longer has. Both are sorted by
/// VIP (see [`Balancers::desired`]): a lookup is a binary search, not a scan, since with
/// thousands of services a scan per VIP costs tens of milliseconds per sandbox.
fn removed_backends(before: &Desired, after: &Desired) -> Vec<(IpAddr, IpAddr)> {
    before
        .iter()
        .flat_map(|(vip, backends)| {
            let kept = after
                .binary_search_by(|(v, _)| v.cmp(vip))
                .map(|at| after[at].1.as_slice())
                .unwrap_or_default();
            backends
                .iter()
                .filter(move |b| !kept.contains(b))
                .map(move |b| (*vip, *b))
        })
        .collect()
}

impl Balancers {
    /// A sandbox on a network with names: its load balancer is kept from now on.
    pub fn track(&mut self, id: SandboxId, ns: NsName) {
        self.sandboxes.entry(id).or_insert(Sandbox {
            ns,
            applied: None,
            busy: false,
            dirty: true,
        });
    }

    /// The sandbox is gone, or on no network with names any more.
    pub fn forget(&mut self, id: &SandboxId) {
        self.sandboxes.remove(id);
    }

    /// Marks every sandbox for a look; true when the caller must schedule a program.
    pub fn mark_all_dirty(&mut self) -> bool {
        for sandbox in self.sandboxes.values_mut() {
            sandbox.dirty = true;
        }
        !std::mem::replace(&mut self.scheduled, true)
    }

    /// What each tracked sandbox should hold now, sorted by VIP. Each network's VIPs are
    /// computed once, however many sandboxes are on it.
    pub fn desired(&self, names: &Names) -> HashMap<SandboxId, Desired> {
        let mut per_network: HashMap<&NetworkId, Desired> = HashMap::new();
        self.sandboxes
            .keys()
            .map(|id| {
                let mut desired: Desired = Vec::new();
                for n in names.views.get(id).into_iter().flat_map(|v| &v.networks) {
                    let vips = per_network
                        .entry(&n.id)
                        .or_insert_with(|| names.directory.virtual_ips(&n.id));
                    desired.extend(vips.iter().cloned());
                }
                desired.sort();
                desired.dedup();
                (id.clone(), desired)
            })
            .collect()
    }

    /// The programs to run now: dirty, idle sandboxes whose desired state changed.
    pub fn start_jobs(&mut self, mut desired: HashMap<SandboxId, Desired>) -> Vec<Job> {
        self.scheduled = false;
        let mut jobs = Vec::new();
        for (id, sandbox) in &mut self.sandboxes {
            if sandbox.busy || !sandbox.dirty {
                continue;
            }
            sandbox.dirty = false;
            let want = desired.remove(id).unwrap_or_default();
            if sandbox.applied.as_ref() == Some(&want) {
                continue;
            }
            sandbox.busy = true;
            let removed = sandbox
                .applied
                .as_ref()
                .map(|before| removed_backends(before, &want))
                .unwrap_or_default();
            jobs.push(Job {
                sandbox: id.clone(),
                ns: sandbox.ns.clone(),
                desired: want,
                before: sandbox.applied.clone(),
                removed,
            });
        }
        jobs
    }

    /// A program ended; when the caller must run another round, if it must: soon when
    /// something changed while it ran, after [`RETRY`] when it failed (the next try
    /// rebuilds the whole table).
    pub fn finish(&mut self, job: Job, ok: bool, took: Duration) -> Option<Duration> {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.stats.last_program_us = us;
        self.stats.max_program_us = self.stats.max_program_us.max(us);
        if ok {
            self.stats.programs += 1;
        } else {
            self.stats.failures += 1;
        }
        let sandbox = self.sandboxes.get_mut(&job.sandbox)?;
        sandbox.busy = false;
        sandbox.applied = ok.then_some(job.desired);
        if !ok {
            sandbox.dirty = true;
            return Some(RETRY);
        }
        let again = sandbox.dirty;
        (again && !std::mem::replace(&mut self.scheduled, true)).then_some(BATCH)
    }

    /// The counters.
    pub fn stats(&self) -> LbStats {
        LbStats {
            sandboxes: self.sandboxes.len(),
            ..self.stats.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ns(n: &str) -> NsName {
        NsName::new(n.to_owned()).unwrap()
    }

    #[test]
    fn a_sandbox_is_programmed_once_per_change_and_again_after_a_change_while_busy() {
        let mut lb = Balancers::default();
        let id = SandboxId::random();
        lb.track(id.clone(), ns("sb-1"));
        assert!(lb.mark_all_dirty(), "the first change schedules a round");
        assert!(!lb.mark_all_dirty(), "one round is enough");
        let want: Desired = vec![("198.19.1.2".parse().unwrap(), vec![])];
        let jobs = lb.start_jobs(HashMap::from([(id.clone(), want.clone())]));
        assert_eq!(jobs.len(), 1);
        // A change while the program runs: not started twice, scheduled after.
        assert!(lb.mark_all_dirty());
        assert!(lb.start_jobs(HashMap::new()).is_empty());
        let job = jobs.into_iter().next().unwrap();
        assert_eq!(
            lb.finish(job, true, Duration::from_millis(1)),
            Some(BATCH),
            "the change that came meanwhile needs another round"
        );
        // The same desired state again: nothing to do.
        let jobs = lb.start_jobs(HashMap::from([(id.clone(), want)]));
        assert!(jobs.is_empty());
        assert_eq!(lb.stats().programs, 1);
    }

    #[test]
    fn backends_that_leave_a_vip_are_the_flows_to_forget() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let before = vec![
            (ip("198.19.1.2"), vec![ip("198.19.1.10"), ip("198.19.1.11")]),
            (ip("198.19.1.3"), vec![ip("198.19.1.12")]),
        ];
        let after = vec![(ip("198.19.1.2"), vec![ip("198.19.1.11")])];
        assert_eq!(
            removed_backends(&before, &after),
            vec![
                (ip("198.19.1.2"), ip("198.19.1.10")),
                (ip("198.19.1.3"), ip("198.19.1.12"))
            ]
        );
        assert!(removed_backends(&after, &before).is_empty());
    }

    #[test]
    fn a_failed_program_runs_again_with_the_whole_table() {
        let mut lb = Balancers::default();
        let id = SandboxId::random();
        lb.track(id.clone(), ns("sb-2"));
        lb.mark_all_dirty();
        let job = lb.start_jobs(HashMap::new()).pop().unwrap();
        assert_eq!(lb.finish(job, false, Duration::from_millis(1)), Some(RETRY));
        let retry = lb.start_jobs(HashMap::new()).pop().unwrap();
        assert!(retry.before.is_none(), "after a failure, the whole table");
        assert_eq!(lb.stats().failures, 1);
    }
}
