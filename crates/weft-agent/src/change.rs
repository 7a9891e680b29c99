//! What a NetworkDB event means for this node, decided without I/O: the
//! [`ClusterWatcher`](crate::watcher::ClusterWatcher) asks [`table_change`] and carries out
//! the answer. Every case is a unit test below, with no actor, socket or kernel.

use std::collections::BTreeSet;
use weft_drivers::{EventNotify, NodeDiscovery};
use weft_netdb::TableEvent;
use weft_types::api::NetworkInfo;
use weft_types::gossip::{NodeRecord, SchemaError, Table, decode_network};
use weft_types::{NetworkId, NetworkRecord};

/// What the watcher does with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A manager published (or republished) a global network's definition: adopt it.
    Adopt(NetworkRecord),
    /// A live manager withdrew a definition: the network is deleted.
    Forget(NetworkId),
    /// A node's data path appeared or went: node discovery for the drivers.
    Discover(NodeDiscovery),
    /// Another node changed an entry of a driver's table: for the network's driver.
    Notify(EventNotify),
    /// Nothing to do.
    Ignore(Ignored),
}

/// Why an event changes nothing. [`Ignored::is_suspicious`] ones are logged as warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// This node's own driver entry: its driver already knows its endpoints.
    OwnEntry,
    /// A value that does not decode, or sits under another key.
    Refused(SchemaError),
    /// A definition vanished because its manager is dead or left, not because the manager
    /// deleted it: the network stays.
    WithdrawnByAbsentManager { network: NetworkId, owner: String },
    /// The delete of a `networks` key that is not a network id.
    NotANetworkId { key: String },
    /// A node record changed but not its presence (an update): discovery is unchanged.
    NodeUpdated,
    /// A node record without a data-path address: nothing to discover.
    NoDataPath,
    /// A table another actor reads (`endpoint_table` and `services` are the ServiceLb's).
    NotForDrivers,
}

impl Ignored {
    /// True for what only a buggy or hostile writer produces.
    pub fn is_suspicious(&self) -> bool {
        matches!(self, Ignored::Refused(_) | Ignored::NotANetworkId { .. })
    }
}

/// The nodes NetworkDB sees alive. Consulted only for withdrawn definitions: when it is
/// unknown, no one is alive and nothing is forgotten.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    alive: BTreeSet<String>,
}

impl Members {
    /// The members seen alive.
    pub fn alive<I: IntoIterator<Item = S>, S: Into<String>>(nodes: I) -> Self {
        Members {
            alive: nodes.into_iter().map(Into::into).collect(),
        }
    }

    fn is_alive(&self, node: &str) -> bool {
        self.alive.contains(node)
    }
}

/// True when [`table_change`] needs the current members to decide `event`: the delete of
/// a network definition (so that the watcher asks NetworkDB only then).
pub fn needs_members(event: &TableEvent) -> bool {
    event.key.table.as_str() == Table::Networks.name() && event.value.is_none()
}

/// What `event` means on node `local_node`, with `members` as NetworkDB sees them.
pub fn table_change(event: &TableEvent, local_node: &str, members: &Members) -> Change {
    let key = event.key.key.as_str();
    match Table::from_name(event.key.table.as_str()) {
        Some(Table::Networks) => network_change(event, key, members),
        Some(Table::Nodes) => node_change(event, key),
        Some(Table::Endpoints | Table::Services) => Change::Ignore(Ignored::NotForDrivers),
        // Driver tables: the overlay's and any a driver declares.
        Some(Table::OverlayPeers) | None => driver_change(event, local_node),
    }
}

fn network_change(event: &TableEvent, key: &str, members: &Members) -> Change {
    if let Some(value) = &event.value {
        return match decode_network(key, value) {
            Ok(record) => Change::Adopt(record),
            Err(e) => Change::Ignore(Ignored::Refused(e)),
        };
    }
    let Ok(network) = key.parse::<NetworkId>() else {
        return Change::Ignore(Ignored::NotANetworkId {
            key: key.to_owned(),
        });
    };
    // A delete counts only when the manager made it: a dead or departed manager's
    // definitions vanish from NetworkDB, not from the cluster.
    if members.is_alive(&event.owner) {
        Change::Forget(network)
    } else {
        Change::Ignore(Ignored::WithdrawnByAbsentManager {
            network,
            owner: event.owner.to_string(),
        })
    }
}

fn node_change(event: &TableEvent, key: &str) -> Change {
    if event.prev.is_some() && event.value.is_some() {
        return Change::Ignore(Ignored::NodeUpdated);
    }
    let Some(value) = event.value.as_ref().or(event.prev.as_ref()) else {
        return Change::Ignore(Ignored::NodeUpdated);
    };
    let record = match NodeRecord::decode(key, value) {
        Ok(record) => record,
        Err(e) => return Change::Ignore(Ignored::Refused(e)),
    };
    let Some(address) = record.data_addr else {
        return Change::Ignore(Ignored::NoDataPath);
    };
    Change::Discover(NodeDiscovery {
        node: record.name,
        address,
        joined: event.value.is_some(),
    })
}

fn driver_change(event: &TableEvent, local_node: &str) -> Change {
    if *event.owner == *local_node {
        return Change::Ignore(Ignored::OwnEntry);
    }
    Change::Notify(EventNotify {
        network: event.key.network.clone(),
        table: event.key.table.as_str().to_owned(),
        key: event.key.key.as_str().to_owned(),
        owner: event.owner.to_string(),
        prev: event.prev.as_ref().map(|v| v.to_vec()),
        value: event.value.as_ref().map(|v| v.to_vec()),
    })
}

/// A node's entries in a network's driver tables appeared or all went: what an operator
/// wants to read in the log ("network N lost its peers on node X").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The node has entries in the network again (`again`: it had some before).
    Appeared {
        network: NetworkId,
        node: String,
        again: bool,
    },
    /// The node's last entry in the network went.
    Gone { network: NetworkId, node: String },
}

/// How many driver-table entries each other node has per network, to turn single entry
/// events into [`Presence`] changes. Bounded by networks x nodes.
#[derive(Debug, Default)]
pub struct PeerCounts {
    counts: std::collections::BTreeMap<(NetworkId, String), usize>,
    /// (network, node) pairs seen with entries once, so a return reads as a restore.
    seen: BTreeSet<(NetworkId, String)>,
}

impl PeerCounts {
    /// Counts `notify`; the presence change it makes, if any.
    pub fn apply(&mut self, notify: &EventNotify) -> Option<Presence> {
        let slot = (notify.network.clone(), notify.owner.clone());
        match (&notify.prev, &notify.value) {
            (None, Some(_)) => {
                let count = self.counts.entry(slot.clone()).or_default();
                *count += 1;
                if *count > 1 {
                    return None;
                }
                let again = !self.seen.insert(slot.clone());
                Some(Presence::Appeared {
                    network: slot.0,
                    node: slot.1,
                    again,
                })
            }
            (Some(_), None) => {
                let count = self.counts.get_mut(&slot)?;
                *count = count.saturating_sub(1);
                if *count > 0 {
                    return None;
                }
                self.counts.remove(&slot);
                Some(Presence::Gone {
                    network: slot.0,
                    node: slot.1,
                })
            }
            _ => None,
        }
    }

    /// Forgets a network that is gone from this node.
    pub fn forget_network(&mut self, network: &NetworkId) {
        self.counts.retain(|(n, _), _| n != network);
        self.seen.retain(|(n, _)| n != network);
    }
}

/// What an operator's log line says about a node whose entries all went, from its status.
pub fn gone_reason(status: Option<weft_netdb::MemberStatus>) -> &'static str {
    use weft_netdb::MemberStatus;
    match status {
        Some(MemberStatus::Alive) => "its endpoints on the network left",
        Some(MemberStatus::Suspect) | Some(MemberStatus::Dead) => {
            "the node is dead: silent past the suspicion window"
        }
        Some(MemberStatus::Left) => "the node left the cluster",
        None => "the node is no longer a member",
    }
}

/// What a node does to match a manager's list of global networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Global networks here that the manager no longer has: deleted while this node
    /// did not hear of it.
    pub forget: Vec<NetworkInfo>,
    /// The manager's networks this node does not have.
    pub adopt: Vec<NetworkRecord>,
}

/// Compares this node's networks (`local`, listed before the manager's) with the
/// manager's authoritative `wanted` list. Local networks are never touched.
pub fn catch_up(local: &[NetworkInfo], wanted: Vec<NetworkRecord>) -> CatchUp {
    let forget = local
        .iter()
        .filter(|n| n.scope == weft_types::Scope::Global)
        .filter(|n| !wanted.iter().any(|w| w.id == n.id))
        .cloned()
        .collect();
    let adopt = wanted
        .into_iter()
        .filter(|w| !local.iter().any(|n| n.id == w.id))
        .collect();
    CatchUp { forget, adopt }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weft_netdb::{TableKey, WatchId};
    use weft_types::gossip::encode_network;
    use weft_types::{DriverName, Labels, Lifecycle, Scope};

    const ME: &str = "host-1";

    fn event(table: &str, network: NetworkId, key: &str, owner: &str) -> TableEvent {
        TableEvent {
            watch: WatchId(1),
            key: TableKey::new(table, network, key).unwrap(),
            owner: Arc::from(owner),
            prev: None,
            value: None,
            snapshot: false,
        }
    }

    fn with(mut e: TableEvent, prev: Option<&[u8]>, value: Option<&[u8]>) -> TableEvent {
        e.prev = prev.map(Arc::from);
        e.value = value.map(Arc::from);
        e
    }

    fn network() -> NetworkRecord {
        NetworkRecord {
            id: NetworkId::random(),
            name: "ov".parse().unwrap(),
            driver: DriverName::overlay(),
            scope: Scope::Global,
            auto_subnet: true,
            subnets: Vec::new(),
            ipv6: false,
            internal: false,
            attachable: false,
            options: Default::default(),
            labels: Labels::default(),
            created_ms: 1,
            lifecycle: Lifecycle::Ready,
        }
    }

    fn info(r: &NetworkRecord) -> NetworkInfo {
        serde_json::from_value(serde_json::json!({
            "id": r.id, "name": r.name, "driver": r.driver, "scope": r.scope,
            "subnets": [], "ipv6": false, "internal": false, "attachable": false,
            "options": {}, "labels": {}, "created_ms": 1, "endpoints": [],
        }))
        .unwrap()
    }

    fn node(name: &str, data: Option<&str>) -> Vec<u8> {
        NodeRecord {
            name: name.into(),
            role: "worker".into(),
            version: "0".into(),
            data_addr: data.map(|a| a.parse().unwrap()),
        }
        .encode()
    }

    fn definition_event(key: &str, owner: &str) -> TableEvent {
        event("networks", NetworkId::cluster(), key, owner)
    }

    #[test]
    fn a_published_definition_is_adopted_whether_new_or_republished() {
        let record = network();
        let bytes = encode_network(&record);
        let base = definition_event(record.id.as_str(), "mgr");
        for (prev, value) in [
            (None, Some(&bytes[..])),
            (Some(&bytes[..]), Some(&bytes[..])),
        ] {
            let e = with(base.clone(), prev, value);
            assert!(!needs_members(&e));
            assert_eq!(
                table_change(&e, ME, &Members::default()),
                Change::Adopt(record.clone())
            );
        }
    }

    #[test]
    fn a_definition_under_another_id_or_garbage_is_refused() {
        let record = network();
        let other = NetworkId::random();
        let bytes = encode_network(&record);
        let e = with(definition_event(other.as_str(), "mgr"), None, Some(&bytes));
        let Change::Ignore(why) = table_change(&e, ME, &Members::default()) else {
            panic!("adopted a definition under a foreign key");
        };
        assert!(why.is_suspicious());
        assert!(matches!(
            why,
            Ignored::Refused(SchemaError::WrongKey { .. })
        ));
        let e = with(
            definition_event(record.id.as_str(), "mgr"),
            None,
            Some(b"{not json"),
        );
        assert!(matches!(
            table_change(&e, ME, &Members::default()),
            Change::Ignore(Ignored::Refused(SchemaError::Malformed { .. }))
        ));
    }

    #[test]
    fn a_withdrawn_definition_is_forgotten_only_when_its_manager_is_alive() {
        let record = network();
        let bytes = encode_network(&record);
        let e = with(
            definition_event(record.id.as_str(), "mgr"),
            Some(&bytes),
            None,
        );
        assert!(needs_members(&e));
        assert_eq!(
            table_change(&e, ME, &Members::alive(["mgr", ME])),
            Change::Forget(record.id.clone())
        );
        for members in [Members::default(), Members::alive([ME])] {
            let change = table_change(&e, ME, &members);
            assert_eq!(
                change,
                Change::Ignore(Ignored::WithdrawnByAbsentManager {
                    network: record.id.clone(),
                    owner: "mgr".into()
                })
            );
        }
        let bad = with(
            event("networks", NetworkId::cluster(), "not-an-id", "mgr"),
            Some(&bytes),
            None,
        );
        let change = table_change(&bad, ME, &Members::alive(["mgr"]));
        assert!(matches!(
            change,
            Change::Ignore(Ignored::NotANetworkId { .. })
        ));
    }

    #[test]
    fn nodes_are_discovered_when_they_appear_and_lost_when_they_go() {
        let value = node("host-2", Some("198.18.0.2"));
        let base = event("nodes", NetworkId::cluster(), "host-2", "host-2");
        let discovery = |joined| {
            Change::Discover(NodeDiscovery {
                node: "host-2".into(),
                address: "198.18.0.2".parse().unwrap(),
                joined,
            })
        };
        let created = with(base.clone(), None, Some(&value));
        assert_eq!(
            table_change(&created, ME, &Members::default()),
            discovery(true)
        );
        let deleted = with(base.clone(), Some(&value), None);
        assert!(!needs_members(&deleted));
        assert_eq!(
            table_change(&deleted, ME, &Members::default()),
            discovery(false)
        );
        let updated = with(base.clone(), Some(&value), Some(&value));
        assert_eq!(
            table_change(&updated, ME, &Members::default()),
            Change::Ignore(Ignored::NodeUpdated)
        );
    }

    #[test]
    fn node_records_without_a_data_path_or_under_another_name_change_nothing() {
        let base = event("nodes", NetworkId::cluster(), "host-2", "host-2");
        let old = with(base.clone(), None, Some(&node("host-2", None)));
        assert_eq!(
            table_change(&old, ME, &Members::default()),
            Change::Ignore(Ignored::NoDataPath)
        );
        let forged = with(base, None, Some(&node("host-3", Some("198.18.0.3"))));
        let Change::Ignore(why) = table_change(&forged, ME, &Members::default()) else {
            panic!("discovered a node from a record under another name");
        };
        assert!(why.is_suspicious());
    }

    #[test]
    fn driver_entries_of_other_nodes_go_to_the_driver_and_own_ones_do_not() {
        let net = NetworkId::random();
        for table in ["overlay_peer_table", "some_driver_table"] {
            let theirs = with(event(table, net.clone(), "ep1", "host-2"), None, Some(b"v"));
            assert_eq!(
                table_change(&theirs, ME, &Members::default()),
                Change::Notify(EventNotify {
                    network: net.clone(),
                    table: table.into(),
                    key: "ep1".into(),
                    owner: "host-2".into(),
                    prev: None,
                    value: Some(b"v".to_vec()),
                })
            );
            let gone = with(event(table, net.clone(), "ep1", "host-2"), Some(b"v"), None);
            let Change::Notify(notify) = table_change(&gone, ME, &Members::default()) else {
                panic!("a withdrawn peer entry did not reach the driver");
            };
            assert_eq!(
                (notify.prev.as_deref(), notify.value),
                (Some(&b"v"[..]), None)
            );
            let mine = with(event(table, net.clone(), "ep2", ME), None, Some(b"v"));
            let change = table_change(&mine, ME, &Members::default());
            assert_eq!(change, Change::Ignore(Ignored::OwnEntry));
            assert!(!Ignored::OwnEntry.is_suspicious());
        }
    }

    #[test]
    fn catching_up_forgets_deleted_global_networks_and_adopts_missed_ones_only() {
        let kept = network();
        let deleted = network();
        let missed = network();
        let local_net = NetworkRecord {
            scope: Scope::Local,
            ..network()
        };
        let local: Vec<NetworkInfo> = [&kept, &deleted, &local_net]
            .into_iter()
            .map(info)
            .collect();
        let plan = catch_up(&local, vec![kept.clone(), missed.clone()]);
        let ids: Vec<_> = plan.forget.iter().map(|n| n.id.clone()).collect();
        assert_eq!(ids, vec![deleted.id.clone()]);
        assert_eq!(plan.adopt, vec![missed]);
        // In step: nothing to do; an empty manager list forgets every global network.
        let same = catch_up(&local[..1], vec![kept.clone()]);
        assert_eq!(same, CatchUp::default());
        assert_eq!(catch_up(&local[..1], Vec::new()).forget[0].id, kept.id);
    }

    #[test]
    fn peers_of_a_node_appear_once_go_with_the_last_entry_and_come_back_as_restored() {
        let net = NetworkId::random();
        let notify = |key: &str, owner: &str, prev: bool, value: bool| EventNotify {
            network: net.clone(),
            table: "overlay_peer_table".into(),
            key: key.into(),
            owner: owner.into(),
            prev: prev.then(|| b"p".to_vec()),
            value: value.then(|| b"v".to_vec()),
        };
        let mut counts = PeerCounts::default();
        let appeared = |again| Presence::Appeared {
            network: net.clone(),
            node: "host-2".into(),
            again,
        };
        assert_eq!(
            counts.apply(&notify("a", "host-2", false, true)),
            Some(appeared(false))
        );
        assert_eq!(counts.apply(&notify("b", "host-2", false, true)), None);
        // Updates and other nodes' entries do not change host-2's presence.
        assert_eq!(counts.apply(&notify("a", "host-2", true, true)), None);
        assert!(counts.apply(&notify("c", "host-3", false, true)).is_some());
        assert_eq!(counts.apply(&notify("a", "host-2", true, false)), None);
        let gone = Presence::Gone {
            network: net.clone(),
            node: "host-2".into(),
        };
        assert_eq!(
            counts.apply(&notify("b", "host-2", true, false)),
            Some(gone)
        );
        // A delete of an entry never counted changes nothing.
        assert_eq!(counts.apply(&notify("z", "host-2", true, false)), None);
        assert_eq!(
            counts.apply(&notify("a", "host-2", false, true)),
            Some(appeared(true))
        );
        counts.forget_network(&net);
        assert_eq!(
            counts.apply(&notify("a", "host-2", false, true)),
            Some(appeared(false))
        );
    }

    #[test]
    fn the_reason_a_node_s_peers_went_follows_its_status() {
        use weft_netdb::MemberStatus;
        assert!(gone_reason(Some(MemberStatus::Alive)).contains("endpoints"));
        assert!(gone_reason(Some(MemberStatus::Dead)).contains("dead"));
        assert!(gone_reason(Some(MemberStatus::Left)).contains("left"));
        assert!(gone_reason(None).contains("no longer"));
    }
}
