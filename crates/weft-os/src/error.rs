//! The weft-os error type: one variant per kernel operation, carrying the object it was about.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::model::MacAddr;
use crate::names::{IfName, NsName, NsRef};

/// Result alias for weft-os.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed `nft` invocation.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The binary could not be started or talked to.
    #[error("failed to run {program}")]
    Spawn {
        /// Program path.
        program: String,
        /// Underlying error.
        source: io::Error,
    },
    /// `nft` exited with an error.
    #[error("nft exited with {status}: {stderr}")]
    Failed {
        /// Exit status as printed by the OS.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The ruleset could not be encoded, or `nft`'s output not decoded, as JSON.
    #[error("invalid nftables json")]
    Json(#[source] serde_json::Error),
}

/// A netlink request refused by the kernel (or a malformed answer), reduced to what callers
/// need: the errno, when there is one, and the message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct NetlinkError {
    errno: Option<i32>,
    message: String,
}

impl NetlinkError {
    /// The positive errno the kernel answered with (e.g. 17 for EEXIST), if any.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// A failure on the way to a request (e.g. opening a namespace file), as `context: err`.
    pub(crate) fn from_io(context: &str, err: &io::Error) -> Self {
        Self {
            errno: err.raw_os_error(),
            message: format!("{context}: {err}"),
        }
    }
}

impl From<rtnetlink::Error> for NetlinkError {
    fn from(err: rtnetlink::Error) -> Self {
        let errno = errno(&err);
        let message = match &err {
            rtnetlink::Error::NetlinkError(msg) => msg.to_io().to_string(),
            other => other.to_string(),
        };
        Self { errno, message }
    }
}

/// Everything that can go wrong in weft-os.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name or number failed validation before reaching the kernel.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidName {
        /// What was being validated.
        kind: &'static str,
        /// The rejected value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A route is incomplete or inconsistent.
    #[error("invalid route {route}: {reason}")]
    InvalidRoute {
        /// The route as text.
        route: String,
        /// Why.
        reason: &'static str,
    },
    /// Creating a named namespace failed.
    #[error("failed to create network namespace {name}")]
    CreateNetns {
        /// Namespace.
        name: NsName,
        /// Underlying error.
        source: io::Error,
    },
    /// Deleting a named namespace failed.
    #[error("failed to delete network namespace {name}")]
    DeleteNetns {
        /// Namespace.
        name: NsName,
        /// Underlying error.
        source: io::Error,
    },
    /// Reading the netns directory failed.
    #[error("failed to list network namespaces in {dir}")]
    ListNetns {
        /// Directory.
        dir: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// The named namespace does not exist (or is not mounted).
    #[error("network namespace {name} does not exist")]
    NetnsNotFound {
        /// Namespace.
        name: NsName,
    },
    /// Entering a namespace or opening a netlink socket there failed.
    #[error("failed to open a netlink socket in {ns}")]
    OpenNetlink {
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: io::Error,
    },
    /// Creating a link failed.
    #[error("failed to create {kind} {name} in {ns}")]
    CreateLink {
        /// Link kind.
        kind: &'static str,
        /// Device name.
        name: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// A VXLAN with this VNI already exists in the namespace under another name.
    #[error("failed to create vxlan {name} in {ns}: vni {vni} is already used by {holder}")]
    VniInUse {
        /// Requested device name.
        name: IfName,
        /// The VNI.
        vni: u32,
        /// The device holding it.
        holder: String,
        /// Namespace.
        ns: NsRef,
    },
    /// A link with the requested name exists but is of another kind.
    #[error("failed to create {expected} {name} in {ns}: a {found} link has that name")]
    LinkKindMismatch {
        /// Device name.
        name: IfName,
        /// Requested kind.
        expected: &'static str,
        /// Kind found.
        found: String,
        /// Namespace.
        ns: NsRef,
    },
    /// A link that must exist does not.
    #[error("link {name} not found in {ns}")]
    LinkNotFound {
        /// Device name.
        name: IfName,
        /// Namespace.
        ns: NsRef,
    },
    /// Changing an attribute of a link failed.
    #[error("failed to {change} on link {name} in {ns}")]
    ModifyLink {
        /// What was being changed ("set up", "set mtu 1450", ...).
        change: String,
        /// Device name.
        name: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Moving a link to another namespace failed.
    #[error("failed to move link {name} from {ns} to {target}")]
    MoveLink {
        /// Device name.
        name: IfName,
        /// Source namespace.
        ns: NsRef,
        /// Target namespace.
        target: NsRef,
        /// Underlying error.
        source: io::Error,
    },
    /// Deleting a link failed.
    #[error("failed to delete link {name} in {ns}")]
    DeleteLink {
        /// Device name.
        name: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Reading links failed.
    #[error("failed to list links in {ns}")]
    ListLinks {
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Adding an address failed.
    #[error("failed to add address {addr} to {dev} in {ns}")]
    AddAddress {
        /// Address with prefix.
        addr: ipnet::IpNet,
        /// Device.
        dev: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Deleting an address failed.
    #[error("failed to delete address {addr} from {dev} in {ns}")]
    DeleteAddress {
        /// Address with prefix.
        addr: ipnet::IpNet,
        /// Device.
        dev: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Reading addresses failed.
    #[error("failed to list addresses of {dev} in {ns}")]
    ListAddresses {
        /// Device.
        dev: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Replacing a route failed.
    #[error("failed to replace route {route} in {ns}")]
    ReplaceRoute {
        /// The route as text.
        route: String,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Deleting a route failed.
    #[error("failed to delete route {route} in {ns}")]
    DeleteRoute {
        /// The route as text.
        route: String,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Reading routes failed.
    #[error("failed to list routes in {ns}")]
    ListRoutes {
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Replacing a neighbour entry failed.
    #[error("failed to replace neighbour {ip} -> {mac} on {dev} in {ns}")]
    ReplaceNeighbour {
        /// Protocol address.
        ip: IpAddr,
        /// Hardware address.
        mac: MacAddr,
        /// Device.
        dev: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Deleting a neighbour entry failed.
    #[error("failed to delete neighbour {ip} on {dev} in {ns}")]
    DeleteNeighbour {
        /// Protocol address.
        ip: IpAddr,
        /// Device.
        dev: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Replacing an FDB entry failed.
    #[error("failed to add fdb entry for {mac} on {dev} in {ns}")]
    ReplaceFdb {
        /// Destination MAC.
        mac: MacAddr,
        /// Device.
        dev: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Deleting an FDB entry failed.
    #[error("failed to delete fdb entry for {mac} on {dev} in {ns}")]
    DeleteFdb {
        /// Destination MAC.
        mac: MacAddr,
        /// Device.
        dev: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Reading neighbour or FDB entries failed.
    #[error("failed to list {what} of {dev} in {ns}")]
    ListNeighbours {
        /// "neighbours" or "fdb entries".
        what: &'static str,
        /// Device.
        dev: IfName,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NetlinkError,
    },
    /// Writing a sysctl failed.
    #[error("failed to set sysctl {key} to {value:?} in {ns}")]
    SetSysctl {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: io::Error,
    },
    /// Reading a sysctl failed.
    #[error("failed to read sysctl {key} in {ns}")]
    GetSysctl {
        /// Key.
        key: String,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: io::Error,
    },
    /// Applying an nftables ruleset failed; nothing of it was applied.
    #[error("failed to apply nftables ruleset in {ns}")]
    ApplyRuleset {
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NftError,
    },
    /// Deleting an nftables table failed.
    #[error("failed to delete nftables table {table} in {ns}")]
    DeleteTable {
        /// `family name`.
        table: String,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NftError,
    },
    /// Listing nftables tables failed.
    #[error("failed to list nftables tables in {ns}")]
    ListTables {
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: NftError,
    },
    /// Running an `nft` process in a namespace failed before it could report.
    #[error("failed to run nft in {ns}")]
    RunNft {
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: io::Error,
    },
    /// `conntrack` ended with an error.
    #[error("conntrack failed in {ns} (exit {status}): {stderr}")]
    Conntrack {
        /// Namespace.
        ns: NsRef,
        /// Its exit code.
        status: i32,
        /// What it said.
        stderr: String,
    },
    /// Spawning a command in a namespace failed.
    #[error("failed to kill the processes of network namespace {name}")]
    KillProcesses {
        /// Namespace.
        name: NsName,
        /// Underlying error.
        source: io::Error,
    },
    /// Starting a process inside a namespace failed.
    #[error("failed to spawn {program} in {ns}")]
    SpawnCommand {
        /// Program.
        program: String,
        /// Namespace.
        ns: NsRef,
        /// Underlying error.
        source: io::Error,
    },
    /// Waiting for a spawned command failed.
    #[error("failed to wait for process {pid}")]
    WaitCommand {
        /// Process id.
        pid: u32,
        /// Underlying error.
        source: io::Error,
    },
    /// A failure injected into the fake kernel by a test.
    #[error("injected failure in {op} on {object}")]
    Injected {
        /// Operation name (the trait method).
        op: String,
        /// Object the operation was about.
        object: String,
    },
}

/// The errno of "already exists", which the kernel answers a vxlan whose VNI is taken with.
const EEXIST: i32 = 17;

impl Error {
    /// The positive errno the failure carries (the kernel's netlink answer, or the OS error
    /// of a namespace, sysctl or process step), if any: for callers that must tell kernel
    /// answers apart without parsing messages.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::CreateLink { source, .. }
            | Error::ModifyLink { source, .. }
            | Error::DeleteLink { source, .. }
            | Error::ListLinks { source, .. }
            | Error::AddAddress { source, .. }
            | Error::DeleteAddress { source, .. }
            | Error::ListAddresses { source, .. }
            | Error::ReplaceRoute { source, .. }
            | Error::DeleteRoute { source, .. }
            | Error::ListRoutes { source, .. }
            | Error::ReplaceNeighbour { source, .. }
            | Error::DeleteNeighbour { source, .. }
            | Error::ReplaceFdb { source, .. }
            | Error::DeleteFdb { source, .. }
            | Error::ListNeighbours { source, .. } => source.errno(),
            Error::CreateNetns { source, .. }
            | Error::DeleteNetns { source, .. }
            | Error::ListNetns { source, .. }
            | Error::OpenNetlink { source, .. }
            | Error::MoveLink { source, .. }
            | Error::SetSysctl { source, .. }
            | Error::GetSysctl { source, .. }
            | Error::RunNft { source, .. }
            | Error::KillProcesses { source, .. }
            | Error::SpawnCommand { source, .. }
            | Error::WaitCommand { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether a vxlan was refused because its VNI is taken in the namespace: by a device
    /// there ([`Error::VniInUse`]), or, answered EEXIST, by one created there and moved to
    /// another namespace (its UDP socket stays behind, so the holder cannot be named).
    pub fn is_vni_in_use(&self) -> bool {
        match self {
            Error::VniInUse { .. } => true,
            Error::CreateLink { kind, source, .. } => {
                *kind == "vxlan" && source.errno() == Some(EEXIST)
            }
            _ => false,
        }
    }
}

/// The positive errno carried by a netlink error, if any.
pub(crate) fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

/// Turns a netlink error into an `io::Error` (for variants that carry one).
pub(crate) fn to_io(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vxlan_create_failed(errno: i32) -> Error {
        Error::CreateLink {
            kind: "vxlan",
            name: IfName::new("vx-test").unwrap(),
            ns: NsRef::Host,
            source: NetlinkError::from_io("vxlan", &io::Error::from_raw_os_error(errno)),
        }
    }

    #[test]
    fn a_taken_vni_is_recognised_by_its_variant_or_its_errno() {
        let named = Error::VniInUse {
            name: IfName::new("vx-test").unwrap(),
            vni: 4096,
            holder: "vx-other".into(),
            ns: NsRef::Host,
        };
        assert!(named.is_vni_in_use());
        assert!(vxlan_create_failed(EEXIST).is_vni_in_use());
        assert_eq!(vxlan_create_failed(EEXIST).errno(), Some(EEXIST));
        // Another refusal of the create, or EEXIST for another kind, is not a VNI conflict.
        assert!(!vxlan_create_failed(1).is_vni_in_use());
        let bridge = match vxlan_create_failed(EEXIST) {
            Error::CreateLink {
                name, ns, source, ..
            } => Error::CreateLink {
                kind: "bridge",
                name,
                ns,
                source,
            },
            other => other,
        };
        assert!(!bridge.is_vni_in_use());
        assert_eq!(named.errno(), None);
    }
}
