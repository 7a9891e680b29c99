//! nftables rulesets on the real kernel: applied inside one namespace only, atomically (a
//! document with a bad command changes nothing), tables deleted idempotently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::borrow::Cow;

use common::{NsGuard, require_root, require_tools};
use weft_os::nftables::batch::Batch;
use weft_os::nftables::schema::{Chain, NfListObject, Table};
use weft_os::nftables::types::{NfChainType, NfFamily, NfHook};
use weft_os::{Error, FirewallOps, NetnsOps, NftTable, NsRef, RealKernel};

fn table(name: &str) -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: Cow::Owned(name.to_owned()),
        handle: None,
    }
}

fn nat_chain(table: &str, name: &str) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_owned()),
        name: Cow::Owned(name.to_owned()),
        _type: Some(NfChainType::NAT),
        hook: Some(NfHook::Postrouting),
        prio: Some(100),
        ..Chain::default()
    }
}

#[tokio::test]
async fn ruleset_is_atomic_and_confined_to_its_namespace() {
    require_root();
    require_tools(&["nft"]);
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let (na, nb) = (guard.name("a"), guard.name("b"));
    let (a, b) = (NsRef::named(&na), NsRef::named(&nb));
    k.create_netns(&na).await.unwrap();
    k.create_netns(&nb).await.unwrap();
    let tname = format!("{}t", guard.prefix);
    let t = NftTable {
        family: NfFamily::INet,
        name: tname.clone(),
    };

    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table(&tname)));
    batch.add(NfListObject::Chain(nat_chain(&tname, "postrouting")));
    let doc = batch.to_nftables();
    k.apply_ruleset(&a, &doc).await.unwrap();
    k.apply_ruleset(&a, &doc).await.unwrap();

    assert_eq!(k.list_tables(&a).await.unwrap(), vec![t.clone()]);
    assert!(k.list_tables(&b).await.unwrap().is_empty());
    assert!(!k.list_tables(&NsRef::Host).await.unwrap().contains(&t));

    // A second table plus a chain in a table that does not exist: nothing is applied.
    let t2 = format!("{}u", guard.prefix);
    let mut bad = Batch::new();
    bad.add(NfListObject::Table(table(&t2)));
    bad.add(NfListObject::Chain(nat_chain("no-such-table", "x")));
    let err = k.apply_ruleset(&a, &bad.to_nftables()).await.unwrap_err();
    assert!(matches!(err, Error::ApplyRuleset { .. }), "{err}");
    assert_eq!(k.list_tables(&a).await.unwrap(), vec![t.clone()]);

    k.delete_table(&a, &t).await.unwrap();
    k.delete_table(&a, &t).await.unwrap();
    assert!(k.list_tables(&a).await.unwrap().is_empty());
    guard.finish();
}

#[tokio::test]
async fn a_script_is_one_transaction_in_its_namespace() {
    require_root();
    require_tools(&["nft"]);
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let na = guard.name("s");
    let a = NsRef::named(&na);
    k.create_netns(&na).await.unwrap();
    let tname = format!("{}s", guard.prefix);
    let t = NftTable {
        family: NfFamily::IP,
        name: tname.clone(),
    };
    let script = format!(
        "add table ip {tname}\nadd map ip {tname} m {{ typeof ip daddr . numgen random mod 1 : ip daddr; }}\nadd element ip {tname} m {{ 198.18.0.1 . 0 : 198.18.0.2 }}\n"
    );
    k.apply_script(&a, &script).await.unwrap();
    assert_eq!(k.list_tables(&a).await.unwrap(), vec![t.clone()]);
    // A good line, then one naming a map that does not exist: nothing is applied, and the
    // error carries nft's words.
    let bad = format!(
        "add element ip {tname} m {{ 198.18.0.3 . 0 : 198.18.0.4 }}\nadd element ip {tname} nope {{ 198.18.0.5 }}\n"
    );
    let err = k.apply_script(&a, &bad).await.unwrap_err();
    assert!(matches!(err, Error::ApplyRuleset { .. }), "{err}");
    let listed = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            na.as_str(),
            "nft",
            "list",
            "map",
            "ip",
            &tname,
            "m",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("198.18.0.1 . 0") && !text.contains("198.18.0.3"),
        "{text}"
    );
    k.delete_table(&a, &t).await.unwrap();
    guard.finish();
}
