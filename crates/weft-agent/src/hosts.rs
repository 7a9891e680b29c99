//! Host probes: ICMP echoes to other nodes' data-path addresses, which their kernel
//! answers whether or not their agent runs; weft-netdb's [`HostProbes`] judges them.
//! Two users:
//! - the NetworkDb: every answer from the host of a silent node keeps that node's entries,
//!   so an agent crash never cuts the data path to its sandboxes;
//! - the ServiceLb: a lost host's backends leave DNS and load balancing at once.
//!
//! Probed: the nodes the ServiceLb names (owners of records here) and every silent member.

use actix::{Addr, Recipient};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};
use weft_netdb::hosts::{HostProbes, Transition, targets};
use weft_netdb::{HostAnswered, Member, NetworkDb, WatchMembers};
use weft_os::probe::EchoProber;

/// How often the task looks for probes due.
const TICK: Duration = Duration::from_millis(50);

/// What the ServiceLb asks to probe: the nodes owning its records, and every node's
/// data-path address it knows (from the `nodes` table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) owners: BTreeSet<String>,
    pub(crate) addrs: HashMap<String, IpAddr>,
}

/// A host lost or found, for the ServiceLb.
#[derive(actix::Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct HostLiveness(pub Transition);

/// Starts the task; the returned sender sets what the ServiceLb wants probed.
pub(crate) fn spawn(
    netdb: Addr<NetworkDb>,
    self_id: String,
    lost: Recipient<HostLiveness>,
) -> Option<watch::Sender<Wanted>> {
    let id = (std::process::id() & 0xffff) as u16;
    let prober = match EchoProber::new(id) {
        Ok(prober) => prober,
        Err(e) => {
            warn!(error = %e, "cannot probe other hosts (raw icmp socket): a crashed agent's entries go after the suspicion window, and a lost host is noticed only when gossip declares it dead");
            return None;
        }
    };
    let (tx, rx) = watch::channel(Wanted::default());
    tokio::spawn(async move {
        let members = match netdb.send(WatchMembers).await {
            Ok(members) => members,
            Err(e) => {
                warn!(error = %e, "cannot follow the member list: only backend owners are probed");
                watch::channel(Vec::new()).1
            }
        };
        let task = Task {
            prober,
            netdb,
            self_id,
            lost,
        };
        task.run(rx, members).await;
    });
    Some(tx)
}

struct Task {
    prober: EchoProber,
    netdb: Addr<NetworkDb>,
    self_id: String,
    lost: Recipient<HostLiveness>,
}

impl Task {
    async fn run(
        self,
        mut wanted: watch::Receiver<Wanted>,
        mut members: watch::Receiver<Vec<Member>>,
    ) {
        let mut probes = HostProbes::default();
        let mut tick = tokio::time::interval(TICK);
        // After a stall, one look for due probes, not a burst of them.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq: u16 = 0;
        loop {
            let transitions = tokio::select! {
                _ = tick.tick() => {
                    let (due, transitions) = probes.due(Instant::now().into_std());
                    for (node, addr) in due {
                        let IpAddr::V4(v4) = addr else { continue };
                        seq = seq.wrapping_add(1);
                        if let Err(e) = self.prober.send(v4, seq).await {
                            // No route while a link is down: a miss, as no answer is.
                            debug!(%node, %addr, error = %e, "probe not sent");
                        }
                    }
                    transitions
                }
                reply = self.prober.recv() => match reply {
                    Ok((from, _seq)) => {
                        let (nodes, transitions) = probes.answered(IpAddr::V4(from));
                        for node_id in nodes {
                            self.netdb.do_send(HostAnswered { node_id });
                        }
                        transitions
                    }
                    Err(e) => {
                        debug!(error = %e, "probe reply not read");
                        Vec::new()
                    }
                },
                changed = wanted.changed() => {
                    if changed.is_err() {
                        return; // the ServiceLb is gone
                    }
                    self.retarget(&mut probes, &wanted, &members)
                }
                changed = members.changed() => {
                    if changed.is_err() {
                        return; // the NetworkDb is gone
                    }
                    self.retarget(&mut probes, &wanted, &members)
                }
            };
            for transition in transitions {
                // Rare (a host lost or found), and the ServiceLb must see every one.
                self.lost.do_send(HostLiveness(transition));
            }
        }
    }

    fn retarget(
        &self,
        probes: &mut HostProbes,
        wanted: &watch::Receiver<Wanted>,
        members: &watch::Receiver<Vec<Member>>,
    ) -> Vec<Transition> {
        let nodes = {
            let wanted = wanted.borrow();
            targets(
                &wanted.owners,
                &wanted.addrs,
                &members.borrow(),
                &self.self_id,
            )
        };
        probes.watch(nodes, Instant::now().into_std())
    }
}
