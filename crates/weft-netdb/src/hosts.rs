//! A lost host versus a lost agent. Gossip only says that a node's agent is silent; a host
//! whose agent crashed still runs its sandboxes and forwards their traffic. So a host
//! probes the data-path address of other nodes with an ICMP echo, which the kernel
//! answers without the agent, and judges the answers here:
//! - every answer is a sign of life of the host: a silent node whose host answers keeps
//!   its entries (the NetworkDb is told, [`crate::HostAnswered`]), so an agent crash never
//!   cuts the data path;
//! - a node that answered once and then misses [`MISSES_TO_LOSE`] probes in a row is
//!   **lost**: its records leave DNS answers and load balancers at once;
//! - a lost node that answers one probe is **found** again, at once;
//! - a node that never answered (ICMP filtered between hosts, say) is never declared lost
//!   by probing: gossip's suspicion window alone decides.
//!
//! Sans-IO: the caller sends the probes [`HostProbes::due`] asks for, feeds back replies
//! and the time, and applies the [`Transition`]s it gets.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::{Member, MemberStatus};

/// How often a node is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// Consecutive unanswered probes that make an answering node lost (about 1 s).
pub const MISSES_TO_LOSE: u32 = 4;

/// A change of a node's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The node's host stopped answering.
    Lost(String),
    /// The node's host answers again.
    Found(String),
}

#[derive(Debug, Clone)]
struct Probed {
    addr: IpAddr,
    /// Whether it ever answered: only then can it be lost.
    answered: bool,
    /// Probes sent since the last answer.
    outstanding: u32,
    lost: bool,
    next: Instant,
}

/// The probing state of every node probed from here.
#[derive(Debug, Default)]
pub struct HostProbes {
    nodes: HashMap<String, Probed>,
}

impl HostProbes {
    /// The nodes to probe now (`node`, `addr`), as of `now`; each is counted as sent.
    /// A node due that has [`MISSES_TO_LOSE`] probes unanswered turns lost.
    pub fn due(&mut self, now: Instant) -> (Vec<(String, IpAddr)>, Vec<Transition>) {
        let mut probes = Vec::new();
        let mut transitions = Vec::new();
        for (node, p) in &mut self.nodes {
            if p.next > now {
                continue;
            }
            if p.answered && !p.lost && p.outstanding >= MISSES_TO_LOSE {
                p.lost = true;
                transitions.push(Transition::Lost(node.clone()));
            }
            p.outstanding = p.outstanding.saturating_add(1);
            p.next = now + PROBE_INTERVAL;
            probes.push((node.clone(), p.addr));
        }
        (probes, transitions)
    }

    /// An echo reply from `addr`: the nodes at that address, and the transitions.
    pub fn answered(&mut self, addr: IpAddr) -> (Vec<String>, Vec<Transition>) {
        let (mut nodes, mut transitions) = (Vec::new(), Vec::new());
        for (node, p) in self.nodes.iter_mut().filter(|(_, p)| p.addr == addr) {
            p.answered = true;
            p.outstanding = 0;
            nodes.push(node.clone());
            if std::mem::replace(&mut p.lost, false) {
                transitions.push(Transition::Found(node.clone()));
            }
        }
        (nodes, transitions)
    }

    /// The nodes to probe from now on, with their data-path addresses; others are
    /// forgotten (a forgotten lost node is found: its records are gone anyway).
    pub fn watch(&mut self, wanted: HashMap<String, IpAddr>, now: Instant) -> Vec<Transition> {
        let mut transitions = Vec::new();
        self.nodes.retain(|node, p| {
            let keep = wanted.get(node) == Some(&p.addr);
            if !keep && p.lost {
                transitions.push(Transition::Found(node.clone()));
            }
            keep
        });
        for (node, addr) in wanted {
            self.nodes.entry(node).or_insert(Probed {
                addr,
                answered: false,
                outstanding: 0,
                lost: false,
                next: now,
            });
        }
        transitions
    }

    /// Whether `node` is lost.
    #[cfg(test)]
    fn is_lost(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|p| p.lost)
    }
}

/// The nodes to probe, with where: the `owners` a caller asks for (at their data-path
/// address in `addrs`) and every silent (suspect) member but `self_id`, at its data-path
/// address when known, else at its gossip address.
pub fn targets(
    owners: &BTreeSet<String>,
    addrs: &HashMap<String, IpAddr>,
    members: &[Member],
    self_id: &str,
) -> HashMap<String, IpAddr> {
    let mut wanted: HashMap<String, IpAddr> = owners
        .iter()
        .filter(|node| node.as_str() != self_id)
        .filter_map(|node| Some((node.clone(), *addrs.get(node)?)))
        .collect();
    for m in members {
        if m.node_id == self_id || m.status != MemberStatus::Suspect {
            continue;
        }
        let addr = addrs.get(&m.node_id).copied().unwrap_or(m.addr.ip());
        wanted.insert(m.node_id.clone(), addr);
    }
    wanted
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn one(node: &str, addr: &str) -> HashMap<String, IpAddr> {
        HashMap::from([(node.to_owned(), addr.parse().unwrap())])
    }

    /// Runs probing rounds until `until`, answering while `answer` says so.
    fn rounds(l: &mut HostProbes, start: Instant, n: u32, answer: bool) -> Vec<Transition> {
        let mut all = Vec::new();
        for i in 0..n {
            let now = start + PROBE_INTERVAL * i;
            let (probes, t) = l.due(now);
            all.extend(t);
            if answer {
                for (_, addr) in probes {
                    all.extend(l.answered(addr).1);
                }
            }
        }
        all
    }

    #[test]
    fn an_answering_host_that_goes_silent_is_lost_in_about_a_second_and_found_at_once() {
        let mut l = HostProbes::default();
        let t0 = Instant::now();
        l.watch(one("h3", "198.18.0.3"), t0);
        assert!(rounds(&mut l, t0, 4, true).is_empty());
        let t1 = t0 + PROBE_INTERVAL * 4;
        let lost = rounds(&mut l, t1, MISSES_TO_LOSE + 1, false);
        assert_eq!(lost, vec![Transition::Lost("h3".into())]);
        assert!(l.is_lost("h3"));
        assert_eq!(
            l.answered("198.18.0.3".parse().unwrap()),
            (vec!["h3".into()], vec![Transition::Found("h3".into())])
        );
        assert!(!l.is_lost("h3"));
    }

    #[test]
    fn a_host_that_never_answered_is_never_lost_by_probing() {
        let mut l = HostProbes::default();
        let t0 = Instant::now();
        l.watch(one("h3", "198.18.0.3"), t0);
        assert!(rounds(&mut l, t0, 40, false).is_empty());
        assert!(!l.is_lost("h3"));
    }

    #[test]
    fn a_lost_host_no_longer_watched_is_found() {
        let mut l = HostProbes::default();
        let t0 = Instant::now();
        l.watch(one("h3", "198.18.0.3"), t0);
        rounds(&mut l, t0, 1, true);
        rounds(&mut l, t0 + PROBE_INTERVAL, MISSES_TO_LOSE + 1, false);
        assert!(l.is_lost("h3"));
        let t = l.watch(HashMap::new(), t0);
        assert_eq!(t, vec![Transition::Found("h3".into())]);
    }

    fn member(node: &str, status: MemberStatus) -> Member {
        Member {
            node_id: node.to_owned(),
            generation: 1,
            addr: "198.18.1.9:7946".parse().unwrap(),
            status,
            entries: 0,
            key_ids: Vec::new(),
            primary_key: None,
        }
    }

    #[test]
    fn targets_are_the_owners_asked_for_and_every_silent_member() {
        let owners = BTreeSet::from(["h2".to_owned(), "h9".to_owned(), "me".to_owned()]);
        let addrs = HashMap::from([
            ("h2".to_owned(), "198.18.0.2".parse().unwrap()),
            ("h3".to_owned(), "198.18.0.3".parse().unwrap()),
            ("me".to_owned(), "198.18.0.1".parse().unwrap()),
        ]);
        let members = [
            member("me", MemberStatus::Suspect),
            member("h2", MemberStatus::Alive),
            member("h3", MemberStatus::Suspect),
            member("h4", MemberStatus::Suspect),
            member("h5", MemberStatus::Dead),
        ];
        let t = targets(&owners, &addrs, &members, "me");
        let want: HashMap<String, IpAddr> = HashMap::from([
            // An owner, at its data-path address; h9 has none and is not probed.
            ("h2".to_owned(), "198.18.0.2".parse().unwrap()),
            // Silent: at its data-path address, else its gossip address.
            ("h3".to_owned(), "198.18.0.3".parse().unwrap()),
            ("h4".to_owned(), "198.18.1.9".parse().unwrap()),
        ]);
        assert_eq!(t, want);
    }
}
