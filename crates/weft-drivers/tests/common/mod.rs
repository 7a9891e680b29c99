//! Harness for the bridge driver's root tests: every test gets its own "host" namespace
//! and runs the driver inside it, so the real host's links and nftables are never touched.
//!
//! `RealKernel` treats the namespace of the thread that builds it as the host. So the test
//! body runs on a dedicated thread that `setns`es into the test's host namespace first and
//! then builds a current-thread tokio runtime and the kernel there; every thread the runtime
//! or weft-os spawns from it inherits that namespace. A guard on the test's own thread
//! deletes every namespace the test registered, also after a panic (deleting the host
//! namespace takes its bridges, veths and nft table along).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use tokio::io::AsyncReadExt;
use weft_os::{
    CommandSpec, Kernel, NetnsDir, NetnsOps, NsName, NsRef, RealKernel, StdioMode, nsthread,
};

/// Fails (never skips) when not root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the bridge driver's kernel tests need root (they create namespaces, bridges and \
         nftables rules); run them as root, e.g. `sudo -E cargo test -p weft-drivers`"
    );
}

/// Fails when a binary the tests run is missing.
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

/// The namespaces of one test, named `wdt-<pid>-<n>-<suffix>`; shared with the test thread.
#[derive(Clone)]
pub struct Names {
    prefix: String,
    names: Arc<Mutex<Vec<NsName>>>,
}

impl Names {
    /// Registers (before it is created, so a half-done create is cleaned too) a namespace.
    pub fn ns(&self, suffix: &str) -> NsName {
        let name = NsName::new(format!("{}{suffix}", self.prefix)).unwrap();
        self.names.lock().unwrap().push(name.clone());
        name
    }
}

/// Deletes the test's namespaces when dropped.
struct Cleanup(Names);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let dir = NetnsDir::default();
        let names = std::mem::take(&mut *self.0.names.lock().unwrap_or_else(|e| e.into_inner()));
        for name in names.iter().rev() {
            if let Err(e) = dir.delete(name) {
                eprintln!("cleanup of {name}: {e}");
            }
        }
    }
}

/// What a test body gets: the kernel (whose host is the test's host namespace) and names.
pub struct Ctx {
    pub kernel: Arc<RealKernel>,
    pub names: Names,
}

/// Runs `body` inside a fresh host namespace, then checks that nothing leaked: no namespace
/// with the test's prefix, and the real host's weft links and tables unchanged.
pub fn run<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    require_root();
    require_tools(&["ping", "nft", "ip"]);
    static N: AtomicU32 = AtomicU32::new(0);
    let prefix = format!(
        "wdt-{}-{}-",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let names = Names {
        prefix: prefix.clone(),
        names: Arc::default(),
    };
    let before = real_host_weft_state();
    {
        let cleanup = Cleanup(names.clone());
        let host = names.ns("host");
        NetnsDir::default().create(&host).unwrap();
        let path = NetnsDir::default().path(&host);
        let thread_names = cleanup.0.clone();
        let thread = std::thread::spawn(move || {
            setns(File::open(path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let kernel = Arc::new(RealKernel::new().unwrap());
                body(Ctx {
                    kernel,
                    names: thread_names,
                })
                .await;
            });
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
    let left = NetnsDir::default().list(&prefix).unwrap();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    assert_eq!(
        real_host_weft_state(),
        before,
        "the real host's weft links or tables changed"
    );
}

/// The real host's links named wb-/wv-/wp- and whether it has a weft-bridge table.
fn real_host_weft_state() -> (Vec<String>, bool) {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        })
        .filter(|n| ["wb-", "wv-", "wp-"].iter().any(|p| n.starts_with(p)))
        .collect();
    let tables = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    (
        links,
        String::from_utf8_lossy(&tables.stdout).contains("weft-bridge"),
    )
}

/// One `ping -c1 -W1` from inside `ns`; true when it got an answer.
pub async fn ping(k: &dyn Kernel, ns: &NsName, ip: &str) -> bool {
    let cmd = CommandSpec::new("ping", ["-c1", "-W1", "-n", "-q", ip]).stdio(StdioMode::Null);
    let process = k.spawn(&NsRef::named(ns), &cmd).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(5), process.wait()).await;
    waited.expect("ping did not exit within 5 s").unwrap() == 0
}

/// Pings until an answer comes, at most five times (about five seconds).
pub async fn reaches(k: &dyn Kernel, ns: &NsName, ip: &str) -> bool {
    for _ in 0..5 {
        if ping(k, ns, ip).await {
            return true;
        }
    }
    false
}

/// Whether a TCP connection from `client` to a listener on `server` (inside `server_ns`)
/// carries a few bytes, within about three seconds.
pub async fn tcp_works(
    k: &RealKernel,
    server_ns: &NsName,
    server: SocketAddr,
    client: &NsName,
) -> bool {
    let path = k.netns_path(server_ns);
    let listener = nsthread::in_netns(Some(path), move || {
        let l = std::net::TcpListener::bind(server)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let connect = nsthread::in_netns(Some(k.netns_path(client)), move || {
        let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(2))?;
        s.write_all(b"weft")
    });
    let accept = async {
        let (mut s, _) = listener.accept().await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let (sent, got) = tokio::join!(
        connect,
        tokio::time::timeout(Duration::from_secs(3), accept)
    );
    sent.is_ok() && matches!(got, Ok(Ok(buf)) if &buf == b"weft")
}

/// `nft list ruleset` in the test's host namespace.
pub async fn nft_ruleset(k: &dyn Kernel) -> String {
    let mut cmd = CommandSpec::new("nft", ["list", "ruleset"]).stdio(StdioMode::Null);
    cmd.stdout = StdioMode::Piped;
    let process = k.spawn(&NsRef::Host, &cmd).await.unwrap();
    let child = process.into_child().unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Records the controller would hand the driver.
pub mod records {
    use std::net::Ipv4Addr;
    use weft_drivers::JoinContext;
    use weft_os::{IfName, NsName};
    use weft_types::{
        Attachment, DriverName, EndpointId, EndpointRecord, Lifecycle, MacAddr, NetworkId,
        NetworkRecord, SandboxId, SandboxRecord, Scope, SubnetConfig,
    };

    /// A bridge network on 198.19.`n`.0/24, gateway 198.19.`n`.1.
    pub fn network(n: u8, internal: bool) -> NetworkRecord {
        NetworkRecord {
            id: NetworkId::random(),
            name: format!("net{n}").parse().unwrap(),
            driver: DriverName::bridge(),
            scope: Scope::Local,
            subnets: vec![SubnetConfig {
                subnet: format!("198.19.{n}.0/24").parse().unwrap(),
                gateway: Ipv4Addr::new(198, 19, n, 1).into(),
                ip_range: None,
            }],
            auto_subnet: false,
            ipv6: false,
            internal,
            attachable: false,
            options: Default::default(),
            labels: Default::default(),
            created_ms: 0,
            lifecycle: Lifecycle::Ready,
        }
    }

    /// An endpoint of network 198.19.`n`.0/24 at 198.19.`n`.`host`.
    pub fn endpoint(net: &NetworkRecord, n: u8, host: u8) -> EndpointRecord {
        let ip = Ipv4Addr::new(198, 19, n, host);
        EndpointRecord {
            id: EndpointId::random(),
            name: format!("ep{n}x{host}").parse().unwrap(),
            network: net.id.clone(),
            ipv4: Some(format!("{ip}/24").parse().unwrap()),
            ipv6: None,
            mac: MacAddr::from_ipv4(ip),
            aliases: vec![],
            service: None,
            attachment: Attachment::Detached,
            interface: None,
            owner: None,
            created_ms: 0,
            lifecycle: Lifecycle::Ready,
        }
    }

    pub fn sandbox() -> SandboxRecord {
        SandboxRecord {
            id: SandboxId::random(),
            name: "sb".parse().unwrap(),
            hostname: None,
            created_ms: 0,
            lifecycle: Lifecycle::Ready,
        }
    }

    pub fn ctx(ns: &NsName, ifname: &str, default_route: bool) -> JoinContext {
        JoinContext {
            netns: ns.clone(),
            ifname: IfName::new(ifname).unwrap(),
            default_route,
        }
    }
}
