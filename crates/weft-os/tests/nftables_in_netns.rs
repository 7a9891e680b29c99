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
