//! Every name record this host knows, per network, indexed for the resolver's lookups.
//!
//! Names are indexed lower-cased so a query costs a few hash lookups whatever the number of
//! records; endpoint addresses are indexed for PTR. This is a read model of the
//! `endpoint_table`: it validates nothing the gossip codec already checked, and decides
//! nothing about which sandbox may see which network (that is [`crate::SandboxView`]'s job).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use weft_types::gossip::NameRecord;
use weft_types::{NetworkId, ServiceMode, ServiceRecord};

/// The `tasks.` prefix: `tasks.<service>` answers every active backend (Docker's name).
const TASKS_PREFIX: &str = "tasks.";

/// Every name record known on this host, per network.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    networks: HashMap<NetworkId, NetworkNames>,
    /// Service definitions by lower-cased name: where a service's VIPs come from.
    services: HashMap<String, ServiceRecord>,
    /// Nodes whose host is lost (the agent's host probes, weft_netdb::hosts): their records answer nothing
    /// until the host is found again.
    lost: HashSet<String>,
}

/// A backend as `weft service inspect` shows it.
#[derive(Debug, Clone, Copy)]
pub struct BackendRecord<'a> {
    pub network: &'a NetworkId,
    /// The endpoint id.
    pub key: &'a str,
    /// The node that published it.
    pub owner: &'a str,
    pub record: &'a NameRecord,
    /// Its host stopped answering probes: out of every answer until it answers again.
    pub host_lost: bool,
}

/// One stored record and the node that published it.
#[derive(Debug, Clone)]
struct Entry {
    owner: String,
    record: NameRecord,
    /// The owner's host is lost: kept, but out of every answer and pool.
    host_lost: bool,
}

/// The records of one network and their indexes. Index values are entry keys in ordered
/// sets so answers are built in a stable order before the per-query shuffle (replayable
/// with a seeded rng).
#[derive(Debug, Default, Clone)]
struct NetworkNames {
    entries: HashMap<String, Entry>,
    /// Lower-cased sandbox name or alias -> keys.
    hosts: HashMap<String, BTreeSet<String>>,
    /// Lower-cased service name -> keys of every record of the service, disabled included.
    services: HashMap<String, BTreeSet<String>>,
    /// Endpoint address -> keys (VIPs are not indexed: they have no PTR).
    addresses: HashMap<IpAddr, BTreeSet<String>>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `record` under endpoint id `key` on `network`, published by node `owner`;
    /// replaces the record already stored under that key.
    pub fn insert(&mut self, network: &NetworkId, key: &str, owner: &str, record: NameRecord) {
        let host_lost = self.lost.contains(owner);
        let names = self.networks.entry(network.clone()).or_default();
        names.remove(key);
        names.add(key, owner, record, host_lost);
    }

    /// Marks the records of node `owner` as on a lost host (out of every answer) or on a
    /// host found again; true when that changed anything.
    pub fn set_host_lost(&mut self, owner: &str, lost: bool) -> bool {
        let changed = if lost {
            self.lost.insert(owner.to_owned())
        } else {
            self.lost.remove(owner)
        };
        for names in self.networks.values_mut() {
            for entry in names.entries.values_mut().filter(|e| e.owner == owner) {
                entry.host_lost = lost;
            }
        }
        changed
    }

    /// The nodes that own records here, other than `local`: the hosts to probe.
    pub fn owners_except(&self, local: &str) -> BTreeSet<String> {
        self.networks
            .values()
            .flat_map(|names| names.entries.values())
            .map(|entry| entry.owner.clone())
            .filter(|owner| owner != local)
            .collect()
    }

    /// Removes the record stored under `key` on `network`; true if there was one.
    pub fn remove(&mut self, network: &NetworkId, key: &str) -> bool {
        let Some(names) = self.networks.get_mut(network) else {
            return false;
        };
        let removed = names.remove(key);
        if names.entries.is_empty() {
            self.networks.remove(network);
        }
        removed
    }

    /// Forgets every record of `network` (this host left it).
    pub fn remove_network(&mut self, network: &NetworkId) {
        self.networks.remove(network);
    }

    /// Forgets every record published by node `owner` (it left or was declared failed);
    /// returns how many were removed. Scans every record: a membership change, not a query.
    pub fn remove_owner(&mut self, owner: &str) -> usize {
        let mut removed = 0;
        for names in self.networks.values_mut() {
            let keys: Vec<String> = names
                .entries
                .iter()
                .filter(|(_, entry)| entry.owner == owner)
                .map(|(key, _)| key.clone())
                .collect();
            removed += keys.iter().filter(|key| names.remove(key)).count();
        }
        self.networks.retain(|_, names| !names.entries.is_empty());
        removed
    }

    /// The number of records, all networks together.
    pub fn len(&self) -> usize {
        self.networks.values().map(|n| n.entries.len()).sum()
    }

    /// True when no record is stored.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Learns (or replaces) a service's definition: its name then answers its VIP on each
    /// of its networks (vip mode) or its backends (dnsrr).
    pub fn define_service(&mut self, service: ServiceRecord) {
        self.services
            .insert(service.name.as_str().to_ascii_lowercase(), service);
    }

    /// Forgets a service's definition; true if it was known.
    pub fn undefine_service(&mut self, name: &str) -> bool {
        self.services.remove(&name.to_ascii_lowercase()).is_some()
    }

    /// Every known service definition, by name.
    pub fn services(&self) -> impl Iterator<Item = &ServiceRecord> {
        self.services.values()
    }

    /// The services with a VIP on `network` and their active backends there: what the
    /// load balancer of a sandbox on `network` programs.
    pub fn virtual_ips(&self, network: &NetworkId) -> Vec<(IpAddr, Vec<IpAddr>)> {
        let mut vips: Vec<(IpAddr, Vec<IpAddr>)> = self
            .services
            .values()
            .filter(|s| s.mode == ServiceMode::Vip)
            .filter_map(|s| {
                let vip = s.vip_on(network)?;
                Some((vip, self.backends(network, s.name.as_str())))
            })
            .collect();
        vips.sort();
        vips
    }

    /// The records of `service`'s backends on every network, with their owners and
    /// whether their host is lost (for `weft service inspect`), by network and key.
    pub fn backend_records(&self, service: &str) -> Vec<BackendRecord<'_>> {
        let wanted = service.to_ascii_lowercase();
        let mut out: Vec<_> = self
            .networks
            .iter()
            .flat_map(|(network, names)| {
                names
                    .records_with_keys(names.services.get(&wanted))
                    .map(move |(key, entry)| BackendRecord {
                        network,
                        key,
                        owner: &entry.owner,
                        record: &entry.record,
                        host_lost: entry.host_lost,
                    })
            })
            .collect();
        out.sort_by(|a, b| (a.network, a.key).cmp(&(b.network, b.key)));
        out
    }

    /// The addresses of `service`'s active (not disabled) backends on `network`, sorted and
    /// without duplicates: the load balancer's pool.
    pub fn backends(&self, network: &NetworkId, service: &str) -> Vec<IpAddr> {
        let Some(names) = self.networks.get(network) else {
            return Vec::new();
        };
        sorted_unique(names.backends(&service.to_ascii_lowercase()))
    }

    /// Every address `name` (lower-cased) stands for on `network`, sorted and without
    /// duplicates; empty when the name is unknown there.
    pub(crate) fn lookup(&self, network: &NetworkId, name: &str) -> Vec<IpAddr> {
        // A defined vip service answers its VIP on its networks, backends or not.
        if let Some(vip) = self.services.get(name).and_then(|s| {
            (s.mode == ServiceMode::Vip)
                .then(|| s.vip_on(network))
                .flatten()
        }) {
            let mut ips = self
                .networks
                .get(network)
                .map(|names| names.host_addresses(name))
                .unwrap_or_default();
            ips.push(vip);
            return sorted_unique(ips);
        }
        self.networks
            .get(network)
            .map(|names| sorted_unique(names.lookup(name)))
            .unwrap_or_default()
    }

    /// The sandbox names of the endpoints that hold `ip` on `network`, in key order.
    pub(crate) fn sandboxes_at(&self, network: &NetworkId, ip: IpAddr) -> Vec<&str> {
        let Some(names) = self.networks.get(network) else {
            return Vec::new();
        };
        let keys = names.addresses.get(&ip).into_iter().flatten();
        keys.filter_map(|key| names.entries.get(key))
            .filter(|entry| !entry.host_lost)
            .map(|entry| entry.record.sandbox.as_str())
            .collect()
    }
}

impl NetworkNames {
    fn add(&mut self, key: &str, owner: &str, record: NameRecord, host_lost: bool) {
        for host in host_names(&record) {
            index(&mut self.hosts, host, key);
        }
        if let Some(service) = &record.service {
            index(
                &mut self.services,
                service.as_str().to_ascii_lowercase(),
                key,
            );
        }
        for ip in &record.ips {
            index(&mut self.addresses, *ip, key);
        }
        let entry = Entry {
            owner: owner.to_owned(),
            record,
            host_lost,
        };
        self.entries.insert(key.to_owned(), entry);
    }

    fn remove(&mut self, key: &str) -> bool {
        let Some(entry) = self.entries.remove(key) else {
            return false;
        };
        for host in host_names(&entry.record) {
            unindex(&mut self.hosts, &host, key);
        }
        if let Some(service) = &entry.record.service {
            unindex(
                &mut self.services,
                &service.as_str().to_ascii_lowercase(),
                key,
            );
        }
        for ip in &entry.record.ips {
            unindex(&mut self.addresses, ip, key);
        }
        true
    }

    /// The addresses of `name` (lower-cased), duplicates possible. One namespace for
    /// sandbox names, aliases, services and `tasks.` names, as Docker's single svcRecords
    /// map: a name that is several of these answers the union.
    /// The addresses of the sandboxes and aliases called `name` (lower-cased).
    fn host_addresses(&self, name: &str) -> Vec<IpAddr> {
        self.records(self.hosts.get(name))
            .flat_map(|record| record.ips.iter().copied())
            .collect()
    }

    fn lookup(&self, name: &str) -> Vec<IpAddr> {
        let mut ips = self.host_addresses(name);
        ips.extend(self.service_addresses(name));
        if let Some(service) = name.strip_prefix(TASKS_PREFIX) {
            ips.extend(self.backends(service));
        }
        ips
    }

    /// A service name answers its VIP; without one (dnsrr mode) its active backends. A
    /// disabled backend's record still carries the VIP: Docker keeps the VIP record until
    /// the last backend is removed.
    fn service_addresses(&self, service: &str) -> Vec<IpAddr> {
        let vips: Vec<IpAddr> = self
            .records(self.services.get(service))
            .filter_map(|record| record.vip)
            .collect();
        if vips.is_empty() {
            self.backends(service)
        } else {
            vips
        }
    }

    /// The addresses of the service's backends that are not disabled.
    fn backends(&self, service: &str) -> Vec<IpAddr> {
        self.records(self.services.get(service))
            .filter(|record| !record.disabled)
            .flat_map(|record| record.ips.iter().copied())
            .collect()
    }

    fn records_with_keys<'a>(
        &'a self,
        keys: Option<&'a BTreeSet<String>>,
    ) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
        let keys = keys.into_iter().flatten();
        keys.filter_map(|key| Some((key.as_str(), self.entries.get(key)?)))
    }

    fn records<'a>(
        &'a self,
        keys: Option<&'a BTreeSet<String>>,
    ) -> impl Iterator<Item = &'a NameRecord> + 'a {
        let keys = keys.into_iter().flatten();
        keys.filter_map(|key| self.entries.get(key))
            .filter(|entry| !entry.host_lost)
            .map(|entry| &entry.record)
    }
}

/// The lower-cased names a record answers to as a host: its sandbox name and aliases.
fn host_names(record: &NameRecord) -> BTreeSet<String> {
    std::iter::once(&record.sandbox)
        .chain(&record.aliases)
        .map(|name| name.as_str().to_ascii_lowercase())
        .collect()
}

fn index<K: std::hash::Hash + Eq>(map: &mut HashMap<K, BTreeSet<String>>, k: K, key: &str) {
    map.entry(k).or_default().insert(key.to_owned());
}

fn unindex<K: std::hash::Hash + Eq>(map: &mut HashMap<K, BTreeSet<String>>, k: &K, key: &str) {
    if let Some(keys) = map.get_mut(k) {
        keys.remove(key);
        if keys.is_empty() {
            map.remove(k);
        }
    }
}

fn sorted_unique(mut ips: Vec<IpAddr>) -> Vec<IpAddr> {
    ips.sort_unstable();
    ips.dedup();
    ips
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::tests::{net, record};

    #[test]
    fn insert_replaces_the_record_under_the_same_key() {
        let mut dir = Directory::new();
        let n = net(1);
        dir.insert(&n, "ep1", "node-a", record("web-1", &["10.0.0.2"]));
        dir.insert(&n, "ep1", "node-a", record("web-2", &["10.0.0.3"]));
        assert_eq!(dir.len(), 1);
        assert!(
            dir.lookup(&n, "web-1").is_empty(),
            "the old name is unindexed"
        );
        assert_eq!(
            dir.lookup(&n, "web-2"),
            vec!["10.0.0.3".parse::<IpAddr>().unwrap()]
        );
        assert!(dir.sandboxes_at(&n, "10.0.0.2".parse().unwrap()).is_empty());
    }

    #[test]
    fn remove_drops_the_indexes_and_empty_networks() {
        let mut dir = Directory::new();
        let n = net(1);
        dir.insert(&n, "ep1", "node-a", record("web-1", &["10.0.0.2"]));
        assert!(dir.remove(&n, "ep1"));
        assert!(!dir.remove(&n, "ep1"));
        assert!(dir.is_empty());
        assert!(dir.lookup(&n, "web-1").is_empty());
    }

    #[test]
    fn remove_owner_forgets_only_that_nodes_records() {
        let mut dir = Directory::new();
        dir.insert(&net(1), "ep1", "node-a", record("a", &["10.0.0.2"]));
        dir.insert(&net(2), "ep2", "node-a", record("b", &["10.0.1.2"]));
        dir.insert(&net(1), "ep3", "node-b", record("c", &["10.0.0.3"]));
        assert_eq!(dir.remove_owner("node-a"), 2);
        assert_eq!(dir.len(), 1);
        assert!(dir.lookup(&net(1), "a").is_empty());
        assert!(!dir.lookup(&net(1), "c").is_empty());
    }

    #[test]
    fn remove_network_forgets_its_records() {
        let mut dir = Directory::new();
        dir.insert(&net(1), "ep1", "node-a", record("a", &["10.0.0.2"]));
        dir.insert(&net(2), "ep2", "node-a", record("b", &["10.0.1.2"]));
        dir.remove_network(&net(1));
        assert_eq!(dir.len(), 1);
    }

    #[test]
    fn backends_exclude_disabled_records_and_are_sorted() {
        let mut dir = Directory::new();
        let n = net(1);
        let service = |name: &str, ip: &str, disabled: bool| {
            let mut r = record(name, &[ip]);
            r.service = Some("Web".parse().unwrap());
            r.disabled = disabled;
            r
        };
        dir.insert(&n, "e1", "a", service("web-1", "10.0.0.9", false));
        dir.insert(&n, "e2", "a", service("web-2", "10.0.0.3", false));
        dir.insert(&n, "e3", "a", service("web-3", "10.0.0.5", true));
        let want: Vec<IpAddr> = vec!["10.0.0.3".parse().unwrap(), "10.0.0.9".parse().unwrap()];
        assert_eq!(dir.backends(&n, "web"), want);
        assert_eq!(dir.backends(&n, "WEB"), want);
        assert!(dir.backends(&net(2), "web").is_empty());
    }

    #[test]
    fn a_defined_vip_service_answers_its_vip_with_or_without_backends() {
        let mut dir = Directory::new();
        let n = net(1);
        let vip: IpAddr = "10.0.0.250".parse().unwrap();
        dir.define_service(ServiceRecord {
            name: "Web".parse().unwrap(),
            mode: ServiceMode::Vip,
            networks: vec![weft_types::ServiceNetwork {
                network: n.clone(),
                vip: Some(vip),
            }],
        });
        assert_eq!(dir.lookup(&n, "web"), vec![vip]);
        assert!(dir.lookup(&net(2), "web").is_empty(), "not on network 2");
        let mut backend = record("web-1", &["10.0.0.2"]);
        backend.service = Some("web".parse().unwrap());
        dir.insert(&n, "e1", "a", backend);
        assert_eq!(dir.lookup(&n, "web"), vec![vip]);
        assert_eq!(
            dir.virtual_ips(&n),
            vec![(vip, vec!["10.0.0.2".parse().unwrap()])]
        );
        assert_eq!(dir.backend_records("WEB").len(), 1);
        assert!(!dir.backend_records("web")[0].host_lost);
        assert!(dir.undefine_service("web"));
        assert_eq!(
            dir.lookup(&n, "web"),
            vec!["10.0.0.2".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn records_of_a_lost_host_answer_nothing_until_it_is_found() {
        let mut dir = Directory::new();
        let n = net(1);
        let mut backend = record("web-3", &["10.0.0.3"]);
        backend.service = Some("web".parse().unwrap());
        dir.insert(&n, "e3", "h3", backend.clone());
        assert!(dir.set_host_lost("h3", true));
        assert!(dir.lookup(&n, "web-3").is_empty());
        assert!(dir.backends(&n, "web").is_empty());
        // A record the lost node (re)publishes meanwhile stays out too.
        dir.insert(&n, "e4", "h3", record("web-4", &["10.0.0.4"]));
        assert!(dir.lookup(&n, "web-4").is_empty());
        assert!(dir.set_host_lost("h3", false));
        assert_eq!(dir.backends(&n, "web").len(), 1);
        assert_eq!(dir.lookup(&n, "web-4").len(), 1);
        assert_eq!(
            dir.owners_except("h1").into_iter().collect::<Vec<_>>(),
            ["h3"]
        );
    }
}
