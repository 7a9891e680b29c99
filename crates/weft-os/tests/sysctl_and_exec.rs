//! sysctls and processes are per namespace: a value set in one namespace is not seen in
//! another or in the host, and a command spawned "in" a namespace sees only its devices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;

use common::{NsGuard, ifname, require_root, require_tools};
use weft_os::{
    BridgeSpec, CommandSpec, ExecOps, LinkOps, NetnsOps, NsRef, RealKernel, StdioMode, SysctlKey,
    SysctlOps,
};

#[tokio::test]
async fn sysctl_is_per_namespace() {
    require_root();
    require_tools(&["ip", "sh"]);
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let (na, nb) = (guard.name("a"), guard.name("b"));
    let (a, b) = (NsRef::named(&na), NsRef::named(&nb));
    k.create_netns(&na).await.unwrap();
    k.create_netns(&nb).await.unwrap();
    let fwd = SysctlKey::parse("net.ipv4.ip_forward").unwrap();
    let host_before = k.get_sysctl(&NsRef::Host, &fwd).await.unwrap();

    k.set_sysctl(&a, &fwd, "1").await.unwrap();
    assert_eq!(k.get_sysctl(&a, &fwd).await.unwrap(), "1");
    assert_eq!(k.get_sysctl(&b, &fwd).await.unwrap(), "0");
    assert_eq!(k.get_sysctl(&NsRef::Host, &fwd).await.unwrap(), host_before);
    guard.finish();
}

#[tokio::test]
async fn spawned_command_runs_inside_the_namespace() {
    require_root();
    require_tools(&["ip", "sh"]);
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let name = guard.name("x");
    let ns = NsRef::named(&name);
    k.create_netns(&name).await.unwrap();
    k.create_bridge(&ns, &BridgeSpec::new(ifname("wtbr7")))
        .await
        .unwrap();

    let mut cmd = CommandSpec::new("ip", ["-o", "link", "show"]).stdio(StdioMode::Null);
    cmd.stdout = StdioMode::Piped;
    let mut proc = k.spawn(&ns, &cmd).await.unwrap();
    let mut out = String::new();
    let child = proc.child_mut().unwrap();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(proc.wait().await.unwrap(), 0);
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim())
        .collect();
    assert_eq!(names, ["lo", "wtbr7"]);

    let fail = CommandSpec::new("sh", ["-c", "exit 7"]);
    assert_eq!(k.spawn(&ns, &fail).await.unwrap().wait().await.unwrap(), 7);
    guard.finish();
}

#[tokio::test]
async fn kill_all_ends_every_process_of_the_namespace_and_no_other() {
    require_root();
    require_tools(&["sleep"]);
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let (na, nb) = (guard.name("ka"), guard.name("kb"));
    k.create_netns(&na).await.unwrap();
    k.create_netns(&nb).await.unwrap();
    let sleep = CommandSpec::new("sleep", ["30"]).stdio(StdioMode::Null);
    let mut inside = Vec::new();
    for _ in 0..3 {
        inside.push(k.spawn(&NsRef::named(&na), &sleep).await.unwrap());
    }
    let mut outside = k.spawn(&NsRef::named(&nb), &sleep).await.unwrap();

    assert_eq!(k.kill_all(&na).await.unwrap(), 3);
    for p in inside {
        assert_eq!(p.wait().await.unwrap(), 128 + 9, "killed by SIGKILL");
    }
    let other = outside.child_mut().unwrap().try_wait().unwrap();
    assert!(other.is_none(), "a process of another namespace was killed");
    assert_eq!(k.kill_all(&na).await.unwrap(), 0, "nothing left to kill");
    k.kill_all(&nb).await.unwrap();
    outside.wait().await.unwrap();
    guard.finish();
}
