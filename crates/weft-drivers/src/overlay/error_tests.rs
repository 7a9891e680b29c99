//! Kernel failures cross the driver boundary typed: callers match on the kept weft-os error
//! (a VNI another device holds, an injected failure) while the message still says it all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use weft_os::{LinkOps, NetnsOps, NsRef, VxlanSpec};

use super::tests::{ctx, endpoint, ifn, link, make_sandbox, network, ov, sandbox, setup};
use crate::{Driver, DriverError, DriverOp};

#[tokio::test]
async fn a_vni_held_by_a_foreign_vxlan_is_recognised_through_the_source() {
    let (k, d) = setup().await;
    let net = network(30);
    let (ns, _, o) = ov(&net);
    // Not of this driver's naming: the driver must not delete it, so the create fails.
    let foreign = ifn("vxlan-other");
    k.create_vxlan(&NsRef::Host, &VxlanSpec::new(foreign.clone(), o.vni))
        .await
        .unwrap();
    let (sb, _) = make_sandbox(&k, "sb-vni").await;
    let err = d
        .join(
            &net,
            &endpoint(&net, 2),
            &sandbox(),
            &ctx(&sb, "eth0", true),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(&err, DriverError::Kernel(k) if k.op == DriverOp::Join),
        "{err:?}"
    );
    match err.os_error() {
        Some(weft_os::Error::VniInUse { vni, holder, .. }) => {
            assert_eq!((*vni, holder.as_str()), (o.vni.get(), "vxlan-other"));
        }
        other => panic!("not a vni conflict: {other:?}"),
    }
    // Through the standard chain too, as a generic caller would look.
    let source = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<weft_os::Error>());
    assert!(
        source.is_some_and(weft_os::Error::is_vni_in_use),
        "{source:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("driver overlay failed to join network")
            && msg.contains(&format!("vni {} is already used by vxlan-other", o.vni)),
        "{msg}"
    );
    assert!(link(&k, &NsRef::Host, &foreign).await.is_some());
    assert!(!k.netns_exists(&ns).await.unwrap(), "namespace left");
}

#[tokio::test]
async fn a_failed_step_is_the_source_and_a_failed_undo_is_noted() {
    let (k, d) = setup().await;
    let net = network(31);
    let (sb, _) = make_sandbox(&k, "sb-undo").await;
    let ep = endpoint(&net, 2);
    let host = super::names::host_veth(&ep.id).unwrap();
    k.fail_on("set_link_up", "eth0");
    k.fail_on("delete_link", host.as_str());
    let err = d
        .join(&net, &ep, &sandbox(), &ctx(&sb, "eth0", true))
        .await
        .unwrap_err();
    match err.os_error() {
        Some(weft_os::Error::Injected { op, object }) => {
            assert_eq!((op.as_str(), object.as_str()), ("set_link_up", "eth0"));
        }
        other => panic!("the failed step is not the source: {other:?}"),
    }
    let DriverError::Kernel(failure) = &err else {
        panic!("{err:?}")
    };
    let also = &failure.also;
    assert_eq!(also.len(), 1, "{also:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("injected failure in set_link_up")
            && msg.contains(&format!("; undo failed to delete {host}")),
        "{msg}"
    );
}

#[tokio::test]
async fn a_delete_reports_its_first_failure_as_the_source_and_notes_the_rest() {
    // Both the vxlan inside the namespace and the one a crash may strand in the host
    // namespace are deleted: both fail here.
    let (k, d) = setup().await;
    let net = network(32);
    let (sb, _) = make_sandbox(&k, "sb-del").await;
    d.join(
        &net,
        &endpoint(&net, 2),
        &sandbox(),
        &ctx(&sb, "eth0", true),
    )
    .await
    .unwrap();
    let (_, _, o) = ov(&net);
    k.fail_on("delete_link", o.vxlan.as_str());
    let err = d.delete_network(&net.id).await.unwrap_err();
    assert!(
        matches!(
            err.os_error(),
            Some(weft_os::Error::Injected { op, .. }) if op == "delete_link"
        ),
        "{err:?}"
    );
    let DriverError::Kernel(failure) = &err else {
        panic!("{err:?}")
    };
    let also = &failure.also;
    assert_eq!(also.len(), 1, "{also:?}");
    assert!(also[0].contains("in the host namespace"), "{also:?}");
}
