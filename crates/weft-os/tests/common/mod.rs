//! Shared test helpers: the root check, unique name prefixes, a guard that removes the test's
//! namespaces even when the test panics, and a scenario run against both kernels.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use weft_os::{
    BridgeSpec, IfName, Kernel, LinkKind, NetnsDir, NsName, NsRef, VethSpec, Vni, VxlanSpec,
};

/// Fails (never skips) when not root: these tests create namespaces and devices.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "weft-os kernel tests need root (they create network namespaces and devices); \
         run them as root, e.g. `sudo -E cargo test -p weft-os`"
    );
}

/// Fails when a binary the test runs is missing (scripts/test.sh installs them).
pub fn require_tools(tools: &[&str]) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in tools {
        let found = std::env::split_paths(&path).any(|dir| dir.join(tool).is_file());
        assert!(
            found,
            "{tool} is not installed; scripts/test.sh installs it (apt-get install)"
        );
    }
}

/// A prefix no other test (or test process) uses: `wtos-<pid>-<n>-`.
pub fn unique_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "wtos-{}-{}-",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn ifname(s: &str) -> IfName {
    IfName::new(s).unwrap()
}

/// Owns the namespaces of one test; deletes them on drop, also after a panic.
pub struct NsGuard {
    pub prefix: String,
    dir: NetnsDir,
    names: Vec<NsName>,
}

impl NsGuard {
    pub fn new() -> Self {
        Self {
            prefix: unique_prefix(),
            dir: NetnsDir::default(),
            names: Vec::new(),
        }
    }

    /// Registers (before creation, so a half-done create is cleaned too) `<prefix><suffix>`.
    pub fn name(&mut self, suffix: &str) -> NsName {
        let name = NsName::new(format!("{}{suffix}", self.prefix)).unwrap();
        self.names.push(name.clone());
        name
    }

    /// Deletes everything and asserts that nothing with the prefix is left.
    pub fn finish(mut self) {
        let prefix = self.prefix.clone();
        self.cleanup();
        assert_clean(&prefix);
    }

    fn cleanup(&mut self) {
        for name in self.names.drain(..) {
            if let Err(e) = self.dir.delete(&name) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// No namespace with `prefix` exists, and the host has no link with it either.
pub fn assert_clean(prefix: &str) {
    let left = NetnsDir::default().list(prefix).unwrap();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&out.stdout);
    assert!(
        !links.contains(prefix),
        "host links left behind with prefix {prefix}"
    );
}

/// The idempotency rules every kernel must follow, run inside `ns` (which must exist).
pub async fn idempotency_scenario(k: &dyn Kernel, ns: &NsRef) {
    // veth: re-create adopts, and corrects the MTU.
    let mut veth = VethSpec::new(ifname("wtv0"), ifname("wtv1"));
    k.create_veth(ns, &veth).await.unwrap();
    let first = k.get_link(ns, &veth.name).await.unwrap().unwrap();
    assert_eq!(first.kind, LinkKind::Veth);
    veth.mtu = Some(1400);
    k.create_veth(ns, &veth).await.unwrap();
    let again = k.get_link(ns, &veth.name).await.unwrap().unwrap();
    assert_eq!((again.index, again.mtu), (first.index, 1400));

    // bridge: re-create adopts; another kind under the name is refused.
    let br = BridgeSpec::new(ifname("wtbr0"));
    k.create_bridge(ns, &br).await.unwrap();
    k.create_bridge(ns, &br).await.unwrap();
    let clash = BridgeSpec::new(ifname("wtv0"));
    let err = k.create_bridge(ns, &clash).await.unwrap_err();
    assert!(
        matches!(err, weft_os::Error::LinkKindMismatch { .. }),
        "{err}"
    );

    // vxlan: same attributes adopt, other attributes replace, a taken VNI is named.
    let vx = VxlanSpec::new(ifname("wtvx0"), Vni::new(4242).unwrap());
    k.create_vxlan(ns, &vx).await.unwrap();
    let a = k.get_link(ns, &vx.name).await.unwrap().unwrap();
    k.create_vxlan(ns, &vx).await.unwrap();
    let b = k.get_link(ns, &vx.name).await.unwrap().unwrap();
    assert_eq!(a.index, b.index, "same attributes must adopt");
    let mut other = vx.clone();
    other.vni = Vni::new(4243).unwrap();
    k.create_vxlan(ns, &other).await.unwrap();
    let c = k.get_link(ns, &vx.name).await.unwrap().unwrap();
    match c.kind {
        LinkKind::Vxlan(v) => assert_eq!(v.vni, 4243),
        kind => panic!("expected vxlan, got {kind:?}"),
    }
    let dup = VxlanSpec::new(ifname("wtvx1"), Vni::new(4243).unwrap());
    let err = k.create_vxlan(ns, &dup).await.unwrap_err();
    match err {
        weft_os::Error::VniInUse { holder, .. } => assert_eq!(holder, "wtvx0"),
        e => panic!("expected VniInUse, got {e}"),
    }

    // Deleting twice succeeds; a veth takes its peer along.
    k.delete_link(ns, &veth.name).await.unwrap();
    k.delete_link(ns, &veth.name).await.unwrap();
    assert!(k.get_link(ns, &veth.peer).await.unwrap().is_none());

    // Listing by prefix finds exactly what is left.
    let names: Vec<String> = k
        .list_links(ns, "wt")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name.to_string())
        .collect();
    assert_eq!(names, ["wtbr0", "wtvx0"]);
}

/// A veth whose peer is created in another namespace, run in `a` (first ends) with peers in
/// `b` and `c` (all must exist, and hold no `wt*`/`eth*` links): made in place under its
/// final name, adopted when re-created (MTU and MACs corrected on both ends), re-made when an
/// existing first end's peer is elsewhere, and refused when the peer's name is taken. Leaves
/// the pair `wta0` (in `a`) / `eth0` (in `b`), MTU 1450.
pub async fn peer_in_scenario(k: &dyn Kernel, a: &NsRef, b: &NsRef, c: &NsRef) {
    let eth0 = ifname("eth0");
    let mac = weft_os::MacAddr([0x02, 0x42, 0xc6, 0x12, 0x00, 0x02]);
    let mut spec = VethSpec {
        mtu: Some(1400),
        peer_mac: Some(mac),
        ..VethSpec::new(ifname("wta0"), eth0.clone()).peer_in(b.clone())
    };
    k.create_veth(a, &spec).await.unwrap();
    let host = k.get_link(a, &spec.name).await.unwrap().unwrap();
    let peer = k.get_link(b, &eth0).await.unwrap().unwrap();
    assert_eq!(host.kind, LinkKind::Veth);
    assert_eq!(
        (peer.kind.clone(), peer.mtu, peer.mac, peer.up),
        (LinkKind::Veth, 1400, Some(mac), false)
    );
    assert!(
        k.get_link(a, &eth0).await.unwrap().is_none(),
        "peer made in a"
    );

    // Re-created: both ends adopted; MTU and the peer's MAC corrected in place.
    let other_mac = weft_os::MacAddr([0x02, 0x42, 0xc6, 0x12, 0x00, 0x99]);
    k.set_mac(b, &eth0, other_mac).await.unwrap();
    spec.mtu = Some(1450);
    k.create_veth(a, &spec).await.unwrap();
    k.create_veth(a, &spec).await.unwrap();
    let host2 = k.get_link(a, &spec.name).await.unwrap().unwrap();
    let peer2 = k.get_link(b, &eth0).await.unwrap().unwrap();
    assert_eq!((host2.index, host2.mtu), (host.index, 1450));
    assert_eq!(
        (peer2.index, peer2.mtu, peer2.mac),
        (peer.index, 1450, Some(mac))
    );

    // A first end whose peer is still beside it (made, not yet moved): re-made.
    let old = VethSpec::new(ifname("wtc0"), ifname("wtc1"));
    k.create_veth(a, &old).await.unwrap();
    let eth1 = ifname("eth1");
    let across = VethSpec::new(old.name.clone(), eth1.clone()).peer_in(b.clone());
    k.create_veth(a, &across).await.unwrap();
    assert!(
        k.get_link(a, &old.peer).await.unwrap().is_none(),
        "old peer left"
    );
    assert!(k.get_link(b, &eth1).await.unwrap().is_some());

    // A first end whose peer is in another namespace: re-made, the old peer gone with it.
    let eth2 = ifname("eth2");
    let in_c = VethSpec::new(ifname("wtd0"), eth2.clone()).peer_in(c.clone());
    k.create_veth(a, &in_c).await.unwrap();
    assert!(k.get_link(c, &eth2).await.unwrap().is_some());
    let in_b = VethSpec::new(ifname("wtd0"), eth2.clone()).peer_in(b.clone());
    k.create_veth(a, &in_b).await.unwrap();
    assert!(
        k.get_link(c, &eth2).await.unwrap().is_none(),
        "peer left in c"
    );
    assert!(k.get_link(b, &eth2).await.unwrap().is_some());

    // The peer's name taken in the target: refused, nothing made.
    let clash = VethSpec::new(ifname("wte0"), eth0.clone()).peer_in(b.clone());
    let err = k.create_veth(a, &clash).await.unwrap_err();
    match &err {
        weft_os::Error::LinkKindMismatch { name, ns, .. } => {
            assert_eq!((name, ns), (&eth0, b), "{err}")
        }
        e => panic!("expected LinkKindMismatch, got {e}"),
    }
    assert!(k.get_link(a, &clash.name).await.unwrap().is_none());

    // A missing target namespace is named.
    let gone = NsRef::named(&NsName::new("wtos-no-such-ns").unwrap());
    let lost = VethSpec::new(ifname("wtf0"), ifname("eth9")).peer_in(gone);
    let err = k.create_veth(a, &lost).await.unwrap_err();
    assert!(matches!(err, weft_os::Error::NetnsNotFound { .. }), "{err}");

    // Deleting the first end takes the peer in the other namespace along.
    k.delete_link(a, &old.name).await.unwrap();
    k.delete_link(a, &in_b.name).await.unwrap();
    assert!(k.get_link(b, &eth1).await.unwrap().is_none());
    assert!(k.get_link(b, &eth2).await.unwrap().is_none());
    let left: Vec<String> = k
        .list_links(b, "eth")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name.to_string())
        .collect();
    assert_eq!(left, ["eth0"]);
}
