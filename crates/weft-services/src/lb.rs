//! The load balancer's desired state in one sandbox, as nft scripts: connections the
//! sandbox opens to a service's VIP are DNATed to one of the service's active backends,
//! picked at random per connection (this kernel has no IPVS; Docker uses IPVS in a
//! per-network `lb-` sandbox instead).
//!
//! Table `ip weft-lb` in the sandbox's namespace, all state in two maps:
//! - map `vips`: VIP -> `jump n-N`, N being its number of active backends (a VIP with none
//!   is absent: its traffic goes where it would without weft, nowhere);
//! - map `backends`: (VIP, slot) -> backend, slots 0..N;
//! - chain `output` (nat, hook output, priority -100, i.e. dstnat): `ip daddr vmap @vips`;
//! - chains `n-N`, shared by every VIP with N backends:
//!   `dnat ip to ip daddr . numgen random mod N map @backends`.
//!
//! A new connection costs two hash lookups whatever the number of services (established
//! ones never reach a NAT chain). A change is element additions and deletions in the maps,
//! so a transaction's cost does not grow with the table: with one chain per service, nft
//! listed every chain and the kernel revalidated every jump on each change (40-135 ms at
//! 5,000 services, docs/benchmarks.md). Conntrack keeps an established connection on its
//! backend: a drained backend leaves the maps and gets no new connection while its open
//! ones finish.
//!
//! Written in nft's own syntax rather than JSON: nft 1.0.6 cannot declare the
//! `typeof ip daddr . numgen` key in JSON, and a JSON transaction makes it read more of the
//! ruleset first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

/// The table's name in each sandbox.
pub const LB_TABLE: &str = "weft-lb";
/// The `n-N` chains every table starts with; larger ones are made when needed.
pub const PREMADE_CHAINS: usize = 32;
/// Elements per `add element` or `delete element` statement (keeps lines sane).
const ELEMENTS_PER_STATEMENT: usize = 1024;

/// VIP -> active backends: one sandbox's load balancer.
pub type LbServices = [(IpAddr, Vec<IpAddr>)];

type V4 = BTreeMap<Ipv4Addr, Vec<Ipv4Addr>>;

/// The IPv4 VIPs and their IPv4 backends, sorted (this table is IPv4; the rest is ignored).
fn v4(services: &LbServices) -> V4 {
    services
        .iter()
        .filter_map(|(vip, backends)| {
            let IpAddr::V4(vip) = vip else { return None };
            let mut backends: Vec<Ipv4Addr> = backends
                .iter()
                .filter_map(|b| match b {
                    IpAddr::V4(b) => Some(*b),
                    IpAddr::V6(_) => None,
                })
                .collect();
            // Usually sorted and unique already (the directory's pools are).
            if !backends.windows(2).all(|w| w[0] < w[1]) {
                backends.sort_unstable();
                backends.dedup();
            }
            Some((*vip, backends))
        })
        .collect()
}

/// `n-N`'s definition: its chain and its one rule, the chain flushed first when it may
/// already exist (made by an earlier transaction) so it never holds the rule twice.
fn spread_chain(out: &mut String, n: usize, flush: bool) {
    let _ = writeln!(out, "add chain ip {LB_TABLE} n-{n}");
    if flush {
        let _ = writeln!(out, "flush chain ip {LB_TABLE} n-{n}");
    }
    let _ = writeln!(
        out,
        "add rule ip {LB_TABLE} n-{n} dnat ip to ip daddr . numgen random mod {n} map @backends"
    );
}

/// `VERB element ip weft-lb MAP { ... }` statements, chunked; nothing for no item.
fn elements(out: &mut String, verb: &str, map: &str, items: &[String]) {
    for chunk in items.chunks(ELEMENTS_PER_STATEMENT) {
        let _ = writeln!(
            out,
            "{verb} element ip {LB_TABLE} {map} {{ {} }}",
            chunk.join(", ")
        );
    }
}

fn slot(vip: Ipv4Addr, slot: usize) -> String {
    format!("{vip} . {slot}")
}

/// The whole table for `services` (add, delete, add: the same script works whether or not
/// one is loaded).
pub fn lb_ruleset(services: &LbServices) -> String {
    let services = v4(services);
    let mut out = String::new();
    let _ = writeln!(out, "add table ip {LB_TABLE}");
    let _ = writeln!(out, "delete table ip {LB_TABLE}");
    let _ = writeln!(out, "add table ip {LB_TABLE}");
    let _ = writeln!(
        out,
        "add map ip {LB_TABLE} vips {{ type ipv4_addr : verdict; }}"
    );
    let _ = writeln!(
        out,
        "add map ip {LB_TABLE} backends {{ typeof ip daddr . numgen random mod 1 : ip daddr; }}"
    );
    let largest = services.values().map(Vec::len).max().unwrap_or(0);
    for n in 1..=largest.max(PREMADE_CHAINS) {
        spread_chain(&mut out, n, false);
    }
    let _ = writeln!(
        out,
        "add chain ip {LB_TABLE} output {{ type nat hook output priority -100; policy accept; }}"
    );
    let _ = writeln!(out, "add rule ip {LB_TABLE} output ip daddr vmap @vips");
    let backends: Vec<String> = services
        .iter()
        .flat_map(|(vip, bs)| {
            bs.iter()
                .enumerate()
                .map(move |(i, b)| format!("{} : {b}", slot(*vip, i)))
        })
        .collect();
    elements(&mut out, "add", "backends", &backends);
    let vips: Vec<String> = services
        .iter()
        .filter(|(_, bs)| !bs.is_empty())
        .map(|(vip, bs)| format!("{vip} : jump n-{}", bs.len()))
        .collect();
    elements(&mut out, "add", "vips", &vips);
    out
}

/// The transaction from `before` (loaded) to `after`; `None` when they are the same. Only
/// the elements that differ are deleted and added.
pub fn lb_update(before: &LbServices, after: &LbServices) -> Option<String> {
    let (before, after) = (v4(before), v4(after));
    if before == after {
        return None;
    }
    let had_chains = before
        .values()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(PREMADE_CHAINS);
    let mut chains = BTreeSet::new();
    let (mut del_backends, mut add_backends) = (Vec::new(), Vec::new());
    let (mut del_vips, mut add_vips) = (Vec::new(), Vec::new());
    let vips: BTreeSet<Ipv4Addr> = before.keys().chain(after.keys()).copied().collect();
    for vip in vips {
        let old = before.get(&vip).map(Vec::as_slice).unwrap_or_default();
        let new = after.get(&vip).map(Vec::as_slice).unwrap_or_default();
        if old == new {
            continue;
        }
        for i in 0..old.len().max(new.len()) {
            match (old.get(i), new.get(i)) {
                (Some(o), Some(n)) if o == n => {}
                (o, n) => {
                    if o.is_some() {
                        del_backends.push(slot(vip, i));
                    }
                    if let Some(n) = n {
                        add_backends.push(format!("{} : {n}", slot(vip, i)));
                    }
                }
            }
        }
        if old.len() != new.len() {
            if !old.is_empty() {
                del_vips.push(vip.to_string());
            }
            if !new.is_empty() {
                add_vips.push(format!("{vip} : jump n-{}", new.len()));
                if new.len() > had_chains {
                    chains.insert(new.len());
                }
            }
        }
    }
    let mut out = String::new();
    for n in chains {
        // It may exist from an earlier, larger state: flushed, then refilled.
        spread_chain(&mut out, n, true);
    }
    elements(&mut out, "delete", "vips", &del_vips);
    elements(&mut out, "delete", "backends", &del_backends);
    elements(&mut out, "add", "backends", &add_backends);
    elements(&mut out, "add", "vips", &add_vips);
    Some(out)
}

/// The script that removes the table (a sandbox with no VIP left).
pub fn lb_removal() -> String {
    format!("add table ip {LB_TABLE}\ndelete table ip {LB_TABLE}\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ips(texts: &[&str]) -> Vec<IpAddr> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    fn ip(t: &str) -> IpAddr {
        t.parse().unwrap()
    }

    #[test]
    fn the_whole_table_holds_two_maps_and_the_spread_chains() {
        let script = lb_ruleset(&[
            (ip("198.19.1.2"), ips(&["198.19.1.11", "198.19.1.10"])),
            (ip("198.19.1.3"), ips(&[])),
            (ip("198.19.1.66"), ips(&["198.19.1.12"])),
        ]);
        // Backends sorted into slots; a VIP with none gets no element.
        assert!(
            script.contains(
                "add element ip weft-lb backends { 198.19.1.2 . 0 : 198.19.1.10, 198.19.1.2 . 1 : 198.19.1.11, 198.19.1.66 . 0 : 198.19.1.12 }"
            ),
            "{script}"
        );
        assert!(
            script.contains(
                "add element ip weft-lb vips { 198.19.1.2 : jump n-2, 198.19.1.66 : jump n-1 }"
            ),
            "{script}"
        );
        assert_eq!(
            script.matches("numgen random mod").count(),
            PREMADE_CHAINS + 1,
            "{script}"
        );
        assert!(script.starts_with("add table ip weft-lb\ndelete table ip weft-lb\n"));
    }

    #[test]
    fn an_update_touches_only_the_elements_that_changed() {
        let before = [
            (ip("198.19.1.2"), ips(&["198.19.1.10", "198.19.1.11"])),
            (ip("198.19.1.3"), ips(&["198.19.1.12"])),
        ];
        assert!(lb_update(&before, &before).is_none());
        // One backend leaves: its slot and the VIP's chain change, nothing of the other VIP.
        let after = [
            (ip("198.19.1.2"), ips(&["198.19.1.10"])),
            (ip("198.19.1.3"), ips(&["198.19.1.12"])),
        ];
        let script = lb_update(&before, &after).unwrap();
        assert_eq!(
            script,
            "delete element ip weft-lb vips { 198.19.1.2 }\n\
             delete element ip weft-lb backends { 198.19.1.2 . 1 }\n\
             add element ip weft-lb vips { 198.19.1.2 : jump n-1 }\n"
        );
        // A replaced backend keeps the count: one slot, no chain change.
        let swapped = [
            (ip("198.19.1.2"), ips(&["198.19.1.10", "198.19.1.13"])),
            (ip("198.19.1.3"), ips(&["198.19.1.12"])),
        ];
        let script = lb_update(&before, &swapped).unwrap();
        assert_eq!(
            script,
            "delete element ip weft-lb backends { 198.19.1.2 . 1 }\n\
             add element ip weft-lb backends { 198.19.1.2 . 1 : 198.19.1.13 }\n"
        );
        // A VIP goes: its elements go.
        let script = lb_update(&before, &before[..1]).unwrap();
        assert_eq!(
            script,
            "delete element ip weft-lb vips { 198.19.1.3 }\n\
             delete element ip weft-lb backends { 198.19.1.3 . 0 }\n"
        );
    }

    #[test]
    fn a_vip_with_more_backends_than_premade_chains_gets_its_chain() {
        let many: Vec<IpAddr> = (0..40u8)
            .map(|i| IpAddr::V4(Ipv4Addr::new(198, 19, 2, i)))
            .collect();
        let before = [(ip("198.19.1.2"), ips(&["198.19.1.10"]))];
        let after = [(ip("198.19.1.2"), many)];
        let script = lb_update(&before, &after).unwrap();
        assert!(
            script.starts_with(
                "add chain ip weft-lb n-40\nflush chain ip weft-lb n-40\nadd rule ip weft-lb n-40 dnat ip to ip daddr . numgen random mod 40 map @backends\n"
            ),
            "{script}"
        );
        assert!(script.contains("198.19.1.2 : jump n-40"), "{script}");
        let full = lb_ruleset(&after);
        assert!(full.contains("add chain ip weft-lb n-40\n"), "{full}");
        assert!(!full.contains("add chain ip weft-lb n-41\n"), "{full}");
    }

    #[test]
    fn thousands_of_elements_are_chunked() {
        let services: Vec<(IpAddr, Vec<IpAddr>)> = (0..3000u32)
            .map(|i| {
                let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 128, 0)) + i);
                (IpAddr::V4(vip), ips(&["198.19.1.10"]))
            })
            .collect();
        let script = lb_ruleset(&services);
        assert_eq!(script.matches("add element ip weft-lb backends").count(), 3);
        assert_eq!(script.matches("add element ip weft-lb vips").count(), 3);
    }
}
