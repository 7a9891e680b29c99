//! The probing task of the ServiceLb: ICMP echoes to the data-path address of every node
//! that owns records here, judged by weft-services' [`Liveness`]; each change (a host
//! lost, a host found) is handed to the actor, which takes the host's records out of DNS
//! and the load balancers or puts them back.

use super::{HostLiveness, ServiceLb};
use actix::Addr;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};
use weft_os::probe::EchoProber;
use weft_services::liveness::Liveness;

/// How often the task looks for probes due.
const TICK: Duration = Duration::from_millis(50);

/// Starts the task; the returned sender sets which nodes it probes (node -> address).
pub(crate) fn spawn(actor: Addr<ServiceLb>) -> Option<watch::Sender<HashMap<String, IpAddr>>> {
    let id = (std::process::id() & 0xffff) as u16;
    let prober = match EchoProber::new(id) {
        Ok(prober) => prober,
        Err(e) => {
            warn!(error = %e, "cannot probe other hosts (raw icmp socket): a lost host is noticed only when gossip declares it dead");
            return None;
        }
    };
    let (tx, rx) = watch::channel(HashMap::new());
    tokio::spawn(run(prober, rx, actor));
    Some(tx)
}

async fn run(
    prober: EchoProber,
    mut wanted: watch::Receiver<HashMap<String, IpAddr>>,
    actor: Addr<ServiceLb>,
) {
    let mut liveness = Liveness::default();
    let mut tick = tokio::time::interval(TICK);
    // After a stall, one look for due probes, not a burst of them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u16 = 0;
    loop {
        let transitions = tokio::select! {
            _ = tick.tick() => {
                let (probes, transitions) = liveness.due(Instant::now().into_std());
                for (node, addr) in probes {
                    let IpAddr::V4(v4) = addr else { continue };
                    seq = seq.wrapping_add(1);
                    if let Err(e) = prober.send(v4, seq).await {
                        // No route while a link is down: a miss, as no answer is.
                        debug!(%node, %addr, error = %e, "probe not sent");
                    }
                }
                transitions
            }
            reply = prober.recv() => match reply {
                Ok((from, _seq)) => liveness.answered(IpAddr::V4(from)),
                Err(e) => {
                    debug!(error = %e, "probe reply not read");
                    Vec::new()
                }
            },
            changed = wanted.changed() => {
                if changed.is_err() {
                    return; // the actor is gone
                }
                let nodes = wanted.borrow_and_update().clone();
                liveness.watch(nodes, Instant::now().into_std())
            }
        };
        for transition in transitions {
            // Rare (a host lost or found), and the actor must see every one.
            actor.do_send(HostLiveness(transition));
        }
    }
}
