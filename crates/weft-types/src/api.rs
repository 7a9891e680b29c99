//! The messages of the local HTTP/JSON API, shared by the agent and the CLI.
//!
//! Requests deserialise straight into validated types, so a malformed name or CIDR is
//! refused at the edge with a message naming the field.

use crate::{
    DriverName, EndpointId, Hostname, Labels, MacAddr, Name, NetworkId, Options, SandboxId, Scope,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Path prefix of every API route, versioned so the CLI and agent can evolve apart.
pub const API_PREFIX: &str = "/v1";

/// One subnet asked for at network creation. With no subnet, one is picked from the
/// predefined pools; gateway and range must lie inside the subnet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetRequest {
    #[serde(default)]
    pub subnet: Option<IpNet>,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub ip_range: Option<IpNet>,
}

/// `POST /v1/networks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNetworkRequest {
    pub name: Name,
    /// Defaults to `bridge`, as Docker does.
    #[serde(default)]
    pub driver: Option<DriverName>,
    #[serde(default)]
    pub subnets: Vec<SubnetRequest>,
    #[serde(default)]
    pub ipv6: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub options: Options,
    #[serde(default)]
    pub labels: Labels,
}

/// A subnet as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetInfo {
    pub subnet: IpNet,
    pub gateway: IpAddr,
    pub ip_range: Option<IpNet>,
}

/// An endpoint as listed inside a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkEndpoint {
    pub id: EndpointId,
    pub name: Name,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub mac: MacAddr,
    pub sandbox: Option<Name>,
}

/// A network as reported by `ls` and `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub id: NetworkId,
    pub name: Name,
    pub driver: DriverName,
    pub scope: Scope,
    pub subnets: Vec<SubnetInfo>,
    pub ipv6: bool,
    pub internal: bool,
    pub attachable: bool,
    pub options: Options,
    pub labels: Labels,
    pub created_ms: u64,
    /// Local endpoints, sorted by name.
    pub endpoints: Vec<NetworkEndpoint>,
    /// The nodes with entries in the network's tables (`inspect --verbose` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<NodeInfo>>,
}

/// `POST /v1/networks/{network}/endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    pub name: Name,
    /// A specific IPv4 address; otherwise the next free one.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// A specific IPv6 address on an IPv6 network.
    #[serde(default)]
    pub ipv6: Option<IpAddr>,
    /// A specific MAC; otherwise derived from the IPv4 address.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    #[serde(default)]
    pub aliases: Vec<Name>,
    #[serde(default)]
    pub service: Option<Name>,
    /// A sandbox (name or id) this endpoint is created for: it is deleted with it.
    #[serde(default)]
    pub owner: Option<String>,
}

/// An endpoint as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub id: EndpointId,
    pub name: Name,
    pub network_id: NetworkId,
    pub network: Name,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub mac: MacAddr,
    pub aliases: Vec<Name>,
    pub service: Option<Name>,
    pub sandbox: Option<Name>,
    pub created_ms: u64,
}

/// `POST /v1/networks/{network}/endpoints/{endpoint}/join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The sandbox's name or id.
    pub sandbox: String,
}

/// `POST /v1/sandboxes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSandboxRequest {
    pub name: Name,
    #[serde(default)]
    pub hostname: Option<Hostname>,
}

/// One endpoint joined to a sandbox, in join order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxEndpoint {
    /// Interface name inside the sandbox.
    pub interface: Option<String>,
    pub endpoint_id: EndpointId,
    pub endpoint: Name,
    pub network: Name,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub mac: MacAddr,
}

/// A sandbox as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    pub id: SandboxId,
    pub name: Name,
    pub hostname: Option<Hostname>,
    /// The network namespace to enter to run something in the sandbox (the host's when
    /// the sandbox is on a `host` network).
    pub netns: String,
    pub created_ms: u64,
    pub endpoints: Vec<SandboxEndpoint>,
}

/// Most arguments (program included) and environment variables a process start takes.
pub const MAX_PROCESS_ARGS: usize = 4096;
/// Most bytes of arguments, environment and working directory together.
pub const MAX_PROCESS_BYTES: usize = 1 << 20;

/// `POST /v1/sandboxes/{sandbox}/processes`: a command the agent starts detached in the
/// sandbox (stdio on /dev/null) and reaps when it exits. Checked when decoded: a command,
/// no NUL byte (no exec could take it), bounded sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StartProcessFields")]
pub struct StartProcessRequest {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The environment of the process, as `(name, value)` pairs.
    pub env: Vec<(String, String)>,
    /// Its working directory; the agent's when absent.
    pub cwd: Option<String>,
}

/// The fields of a [`StartProcessRequest`] before their checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartProcessFields {
    command: Vec<String>,
    #[serde(default)]
    env: Vec<(String, String)>,
    #[serde(default)]
    cwd: Option<String>,
}

impl TryFrom<StartProcessFields> for StartProcessRequest {
    type Error = crate::Error;
    fn try_from(f: StartProcessFields) -> Result<Self, Self::Error> {
        let invalid = |m: &str| Err(crate::Error::invalid(m.to_owned()));
        if f.command.first().is_none_or(String::is_empty) {
            return invalid("the command is empty: give a program to run");
        }
        if f.command.len() + f.env.len() > MAX_PROCESS_ARGS {
            return invalid("too many arguments and environment variables");
        }
        let strings = f
            .command
            .iter()
            .chain(f.env.iter().flat_map(|(k, v)| [k, v]))
            .chain(&f.cwd);
        let (mut bytes, mut nul) = (0usize, false);
        for s in strings {
            bytes += s.len();
            nul |= s.contains('\0');
        }
        if nul {
            return invalid("the command, its environment or its directory holds a NUL byte");
        }
        if bytes > MAX_PROCESS_BYTES {
            return invalid("the command and its environment are larger than 1 MiB");
        }
        if f.env.iter().any(|(k, _)| k.is_empty() || k.contains('=')) {
            return invalid("an environment variable name is empty or holds '='");
        }
        Ok(StartProcessRequest {
            command: f.command,
            env: f.env,
            cwd: f.cwd,
        })
    }
}

/// A process started in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
}

/// A cluster member as this node sees it (`GET /v1/nodes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id in the cluster (its node name).
    pub id: String,
    /// The name the node published; absent once its records are gone.
    pub name: Option<String>,
    /// Its gossip address.
    pub address: String,
    /// `manager` for the node that started the cluster, `worker` otherwise.
    pub role: Option<String>,
    /// `alive`, `suspect`, `dead` or `left`.
    pub status: String,
    /// Its incarnation: a restarted node comes back with a larger one.
    pub generation: u64,
    /// Entries it owns in the gossip tables.
    pub entries: usize,
    /// Whether this is the node answering.
    pub local: bool,
}

/// One entry of a gossip table (`GET /v1/diag/table/{table}/{network}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntryInfo {
    pub key: String,
    pub owner: String,
    /// The value as text when it is UTF-8, else hex.
    pub value: String,
}

/// One key of a keyring, never its material (`GET /v1/keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// `gossip` or `datapath`.
    pub subsystem: String,
    pub id: u32,
    /// The primary seals; every key of the ring opens.
    pub primary: bool,
    /// Seconds since the key was made, when known.
    pub age_s: Option<u64>,
}

/// `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: String,
    pub api: String,
    pub node_name: String,
}

/// The body of every error answer.
pub type ErrorBody = crate::Error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_network_defaults_and_validation() {
        let req: CreateNetworkRequest = serde_json::from_str(r#"{"name":"n1"}"#).unwrap();
        assert!(req.subnets.is_empty() && req.driver.is_none());
        let bad = serde_json::from_str::<CreateNetworkRequest>(r#"{"name":""}"#).unwrap_err();
        assert!(bad.to_string().contains("empty"), "{bad}");
        let bad_cidr = serde_json::from_str::<CreateNetworkRequest>(
            r#"{"name":"n","subnets":[{"subnet":"198.19.0.0/33"}]}"#,
        );
        assert!(bad_cidr.is_err());
        let unknown = serde_json::from_str::<CreateNetworkRequest>(r#"{"name":"n","colour":1}"#);
        assert!(unknown.unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn start_process_requests_are_checked_when_decoded() {
        let ok: StartProcessRequest =
            serde_json::from_str(r#"{"command":["sleep","1"],"env":[["PATH","/bin"]]}"#).unwrap();
        assert_eq!(ok.command, ["sleep", "1"]);
        assert_eq!(ok.cwd, None);
        for (bad, says) in [
            (r#"{"command":[]}"#, "command is empty"),
            (r#"{"command":[""]}"#, "command is empty"),
            (r#"{"command":["a\u0000b"]}"#, "NUL byte"),
            (r#"{"command":["x"],"env":[["A=B","c"]]}"#, "holds '='"),
            (r#"{"command":["x"],"tty":true}"#, "tty"),
        ] {
            let e = serde_json::from_str::<StartProcessRequest>(bad).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        let huge = serde_json::json!({ "command": ["x", "y".repeat(MAX_PROCESS_BYTES)] });
        let e = serde_json::from_value::<StartProcessRequest>(huge).unwrap_err();
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
    }
}

/// `POST /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceRequest {
    pub name: Name,
    #[serde(default)]
    pub mode: crate::ServiceMode,
    /// Names or ids of the service's networks.
    pub networks: Vec<String>,
}

/// A service as reported: its VIP per network and its backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: Name,
    pub mode: crate::ServiceMode,
    pub networks: Vec<ServiceNetworkInfo>,
    /// Every backend this node knows of, on every host.
    pub backends: Vec<BackendInfo>,
}

/// A service on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNetworkInfo {
    pub network: String,
    pub network_id: String,
    pub vip: Option<IpAddr>,
}

/// One backend of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub endpoint: String,
    pub sandbox: String,
    pub network_id: String,
    pub ips: Vec<IpAddr>,
    /// The node that published it.
    pub host: String,
    /// `active`, `draining` while it leaves, or `host-lost` while its host does not answer.
    pub state: String,
}
