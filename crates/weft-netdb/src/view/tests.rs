use super::*;
use crate::membership::Liveness;
use weft_types::NetworkId;

const W: Duration = Duration::from_secs(10);

fn id(node: &str, generation: u64) -> ChitchatId {
    ChitchatId::new(node, generation, ([127, 0, 0, 1], 7946).into())
}

fn key(k: &str) -> TableKey {
    // A fixed network so keys compare the same across calls.
    let nid: NetworkId = "ab".repeat(32).parse().unwrap();
    TableKey::new("t", nid, k).unwrap()
}

fn content(entries: &[(&str, &str)], ready: bool, leaving: bool) -> NodeContent {
    NodeContent {
        entries: entries
            .iter()
            .map(|(k, v)| (key(k), Value::from(v.as_bytes())))
            .collect(),
        ready,
        leaving,
        ..NodeContent::default()
    }
}

fn entry(owner: &str, v: &str) -> Entry {
    Entry {
        owner: owner.into(),
        value: v.as_bytes().into(),
    }
}

fn alive() -> Liveness {
    Liveness::Alive
}

fn dead(secs: u64) -> Liveness {
    Liveness::DeadFor(Duration::from_secs(secs))
}

/// Builds the view and the member list from scratch (what [`Tables`] keeps up to date).
fn materialise(nodes: &[NodeInput<'_>], window: Duration) -> (View, Vec<Member>) {
    let (members, shown) = membership(nodes, window);
    let mut tables = Tables::default();
    let mut batch = tables.batch();
    for node in nodes {
        if shown.get(&node.id.node_id) == Some(node.id) {
            batch.show(&node.id.node_id, node.content);
        }
    }
    batch.finish();
    (tables.view, members)
}

fn view_of(inputs: &[(ChitchatId, Liveness, NodeContent)]) -> (View, Vec<Member>) {
    let nodes: Vec<NodeInput<'_>> = inputs
        .iter()
        .map(|(id, liveness, content)| NodeInput {
            id,
            liveness: *liveness,
            content,
        })
        .collect();
    materialise(&nodes, W)
}

#[test]
fn parse_node_reads_entries_markers_and_keys() {
    let k = key("ep1");
    let gk = k.gossip_key();
    let bad_value = key("ep2").gossip_key();
    let kvs = [
        (gk.as_str(), "dmFsdWU="),
        (bad_value.as_str(), "!!"),
        ("e:BAD:x:y", "dmFsdWU="),
        ("m:ready", "1"),
        ("m:keys", "1,2;2"),
        ("unrelated", "x"),
    ];
    let parsed = parse_node(kvs.into_iter());
    assert_eq!(parsed.entries.get(&k).map(|v| &v[..]), Some(&b"value"[..]));
    assert_eq!(parsed.entries.len(), 1);
    assert!(parsed.ready && !parsed.leaving);
    assert_eq!(parsed.keys, Some((vec![KeyId(1), KeyId(2)], KeyId(2))));
    assert_eq!(parsed.malformed.len(), 2);
    assert!(parse_node([("m:leaving", "1")].into_iter()).leaving);
}

#[test]
fn alive_and_suspect_entries_are_visible_dead_and_left_are_not() {
    let (view, members) = view_of(&[
        (id("a", 1), alive(), content(&[("a", "1")], true, false)),
        (id("b", 1), dead(3), content(&[("b", "1")], true, false)),
        (id("c", 1), dead(30), content(&[("c", "1")], true, false)),
        (id("d", 1), alive(), content(&[("d", "1")], true, true)),
    ]);
    assert_eq!(
        view.keys().cloned().collect::<Vec<_>>(),
        vec![key("a"), key("b")]
    );
    let statuses: Vec<_> = members
        .iter()
        .map(|m| (m.node_id.as_str(), m.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("a", MemberStatus::Alive),
            ("b", MemberStatus::Suspect),
            ("c", MemberStatus::Dead),
            ("d", MemberStatus::Left),
        ]
    );
    assert_eq!(members[2].entries, 1);
}

#[test]
fn newest_ready_generation_wins_and_the_old_one_is_forgotten() {
    let (view, members) = view_of(&[
        (
            id("a", 1),
            dead(2),
            content(&[("x", "old"), ("gone", "1")], true, false),
        ),
        (id("a", 2), alive(), content(&[("x", "new")], true, false)),
    ]);
    assert_eq!(view.get(&key("x")), Some(&entry("a", "new")));
    assert!(!view.contains_key(&key("gone")));
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].generation, members[0].status),
        (2, MemberStatus::Alive)
    );
}

#[test]
fn a_new_generation_that_is_not_ready_does_not_replace_the_old_one() {
    let inputs = [
        (id("a", 1), dead(2), content(&[("x", "old")], true, false)),
        (id("a", 2), alive(), content(&[], false, false)),
    ];
    let (view, members) = view_of(&inputs);
    assert_eq!(view.get(&key("x")), Some(&entry("a", "old")));
    assert_eq!(
        (members[0].generation, members[0].status),
        (1, MemberStatus::Suspect)
    );
}

#[test]
fn without_any_ready_generation_the_newest_stands() {
    let (view, members) = view_of(&[
        (id("a", 1), dead(2), content(&[("x", "1")], false, false)),
        (id("a", 5), alive(), content(&[("y", "2")], false, false)),
    ]);
    assert_eq!(members[0].generation, 5);
    assert!(view.contains_key(&key("y")) && !view.contains_key(&key("x")));
}

#[test]
fn a_ready_old_generation_beats_a_newer_unready_one_only_until_ready() {
    let mut inputs = vec![
        (id("a", 1), alive(), content(&[("x", "1")], true, false)),
        (id("a", 2), alive(), content(&[("x", "2")], false, false)),
    ];
    assert_eq!(view_of(&inputs).0.get(&key("x")), Some(&entry("a", "1")));
    inputs[1].2.ready = true;
    assert_eq!(view_of(&inputs).0.get(&key("x")), Some(&entry("a", "2")));
}

#[test]
fn conflicting_owners_resolve_to_the_smallest_node_id() {
    let inputs = [
        (
            id("b", 1),
            alive(),
            content(&[("k", "from-b")], true, false),
        ),
        (
            id("a", 1),
            alive(),
            content(&[("k", "from-a")], true, false),
        ),
    ];
    assert_eq!(
        view_of(&inputs).0.get(&key("k")),
        Some(&entry("a", "from-a"))
    );
    let inputs = [
        (
            id("b", 1),
            alive(),
            content(&[("k", "from-b")], true, false),
        ),
        (id("a", 1), alive(), content(&[], true, false)),
    ];
    assert_eq!(
        view_of(&inputs).0.get(&key("k")),
        Some(&entry("b", "from-b"))
    );
}

#[test]
fn members_report_their_keys() {
    let mut c = content(&[], true, false);
    c.keys = Some((vec![KeyId(3)], KeyId(3)));
    let (_, members) = view_of(&[(id("a", 1), alive(), c)]);
    assert_eq!(members[0].key_ids, vec![KeyId(3)]);
    assert_eq!(members[0].primary_key, Some(KeyId(3)));
}

/// The changes that turn `old` into `new`, in key order; equal entries give none. The
/// reference [`Batch`] is checked against.
fn diff(old: &View, new: &View) -> Vec<Change> {
    let keys: BTreeSet<&TableKey> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (prev, next) = (old.get(key).cloned(), new.get(key).cloned());
            (prev != next).then(|| Change {
                key: key.clone(),
                prev,
                next,
            })
        })
        .collect()
}

fn view(entries: &[(&str, &str, &str)]) -> View {
    entries
        .iter()
        .map(|(k, owner, v)| (key(k), entry(owner, v)))
        .collect()
}

#[test]
fn diff_of_equal_views_is_empty() {
    let v = view(&[("a", "n1", "1"), ("b", "n2", "2")]);
    assert!(diff(&v, &v).is_empty());
    assert!(diff(&View::new(), &View::new()).is_empty());
}

#[test]
fn diff_finds_creates_updates_and_deletes_in_key_order() {
    let old = view(&[
        ("a", "n1", "1"),
        ("b", "n1", "2"),
        ("c", "n1", "3"),
        ("e", "n1", "5"),
    ]);
    let new = view(&[
        ("b", "n1", "2"),
        ("c", "n1", "33"),
        ("d", "n1", "4"),
        ("e", "n2", "5"),
    ]);
    let got: Vec<_> = diff(&old, &new)
        .into_iter()
        .map(|c| (c.key.key.clone(), c.prev.is_some(), c.next.is_some()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".to_owned(), true, false),
            ("c".to_owned(), true, true),
            ("d".to_owned(), false, true),
            ("e".to_owned(), true, true),
        ]
    );
    let update = &diff(&old, &new)[1];
    assert_eq!(update.prev, Some(entry("n1", "3")));
    assert_eq!(update.next, Some(entry("n1", "33")));
}

#[test]
fn diff_from_and_to_empty() {
    let v = view(&[("a", "n1", "1"), ("b", "n1", "2")]);
    assert!(
        diff(&View::new(), &v)
            .iter()
            .all(|c| c.prev.is_none() && c.next.is_some())
    );
    assert!(
        diff(&v, &View::new())
            .iter()
            .all(|c| c.prev.is_some() && c.next.is_none())
    );
    assert_eq!(diff(&v, &View::new()).len(), 2);
}

#[test]
fn applying_a_diff_gives_the_new_view() {
    let old = view(&[("a", "n1", "1"), ("b", "n1", "2"), ("z", "n3", "9")]);
    let new = view(&[("a", "n2", "1"), ("c", "n1", "3")]);
    let mut applied = old.clone();
    for change in diff(&old, &new) {
        match change.next {
            Some(e) => applied.insert(change.key, e),
            None => applied.remove(&change.key),
        };
    }
    assert_eq!(applied, new);
}

#[test]
fn failure_lifecycle_suspends_then_deletes_and_return_loses_nothing() {
    let c = content(&[("k", "v")], true, false);
    let at = |l| view_of(&[(id("a", 1), l, c.clone())]).0;
    let before = at(alive());
    assert!(
        diff(&before, &at(dead(1))).is_empty(),
        "suspect keeps entries"
    );
    assert!(
        diff(&at(dead(1)), &at(alive())).is_empty(),
        "return loses nothing"
    );
    let deleted = diff(&at(dead(1)), &at(dead(11)));
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].next.is_none());
}

#[test]
fn leaving_deletes_at_once() {
    let stay = content(&[("k", "v")], true, false);
    let leave = content(&[("k", "v")], true, true);
    let before = view_of(&[(id("a", 1), alive(), stay)]).0;
    let after = view_of(&[(id("a", 1), alive(), leave)]).0;
    let changes = diff(&before, &after);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].prev, Some(entry("a", "v")));
}

mod incremental {
    use super::*;
    use proptest::prelude::*;

    /// The gossip keys the generated operations touch: good entry keys, a malformed
    /// one, the markers, and one that is no concern of ours.
    fn gossip_key(i: usize) -> String {
        match i {
            0..=3 => key(&format!("k{i}")).gossip_key(),
            4 => "e:BAD:x:y".to_owned(),
            5 => READY_KEY.to_owned(),
            6 => LEAVING_KEY.to_owned(),
            7 => KEYS_KEY.to_owned(),
            _ => "unrelated".to_owned(),
        }
    }

    /// Good and bad base64 values, and good and bad key lists.
    fn gossip_value(i: usize) -> &'static str {
        ["dmFsdWU=", "b3RoZXI=", "!!", "1,2;2", "1"][i]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Applying the key-values that changed, one by one, leaves the same content as
        /// parsing the node's final state, and reports exactly the entries that moved.
        #[test]
        fn applying_changes_equals_parsing_the_final_state(
            ops in prop::collection::vec((0usize..9, prop::option::of(0usize..5)), 0..40)
        ) {
            let mut state: BTreeMap<String, &str> = BTreeMap::new();
            let mut content = NodeContent::default();
            for (k, v) in ops {
                let (gk, value) = (gossip_key(k), v.map(gossip_value));
                let before = parse_node(state.iter().map(|(k, v)| (k.as_str(), *v)));
                match value {
                    Some(value) => state.insert(gk.clone(), value),
                    None => state.remove(&gk),
                };
                let after = parse_node(state.iter().map(|(k, v)| (k.as_str(), *v)));
                let change = content.apply(&gk, value);
                prop_assert_eq!(&content, &after);
                let expected = entry_changes(&before, &after);
                prop_assert_eq!(change.into_iter().collect::<Vec<_>>(), expected);
            }
        }

        /// Whatever the order of entry writes and of nodes shown and hidden, the tables
        /// equal the view built from scratch, and each batch reports its difference.
        #[test]
        fn tables_kept_up_to_date_equal_the_view_built_from_scratch(
            ops in prop::collection::vec((0usize..3, 0usize..4, 0usize..4), 0..60)
        ) {
            let owners: Vec<Arc<str>> = ["a", "b", "c"].iter().map(|o| Arc::from(*o)).collect();
            let mut contents = vec![NodeContent::default(); 3];
            let mut shown = [true; 3];
            let mut tables = Tables::default();
            for (node, what, k) in ops {
                let before = tables.view().clone();
                let mut batch = tables.batch();
                let owner = &owners[node];
                match what {
                    // Hide or show the node.
                    0 => {
                        if shown[node] {
                            batch.hide(owner, &contents[node]);
                        } else {
                            batch.show(owner, &contents[node]);
                        }
                        shown[node] = !shown[node];
                    }
                    // Set or delete one of its entries.
                    _ => {
                        let key = key(&format!("k{k}"));
                        let value = (what != 1).then(|| Value::from(format!("{node}{what}").as_bytes()));
                        match &value {
                            Some(v) => contents[node].entries.insert(key.clone(), v.clone()),
                            None => contents[node].entries.remove(&key),
                        };
                        if shown[node] {
                            batch.put(&key, owner, value.as_ref());
                        }
                    }
                }
                let changes = batch.finish();
                let mut expected = View::new();
                for (i, content) in contents.iter().enumerate() {
                    if !shown[i] {
                        continue;
                    }
                    for (key, value) in &content.entries {
                        expected.entry(key.clone()).or_insert_with(|| Entry {
                            owner: owners[i].clone(),
                            value: value.clone(),
                        });
                    }
                }
                prop_assert_eq!(tables.view(), &expected);
                prop_assert_eq!(changes, diff(&before, &expected));
            }
        }
    }
}
