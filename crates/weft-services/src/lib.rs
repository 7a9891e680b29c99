//! The sans-IO core of weft's embedded DNS resolver: the one each sandbox queries at
//! 127.0.0.11:53, modelled on Docker's (libnetwork `resolver.go`).
//!
//! Bytes in, decisions and bytes out: [`resolve`] turns a query into a local answer, a
//! "forward it upstream" or a drop; [`judge_reply`] decides whether an upstream's reply is
//! relayed or the next server is tried; [`parse_resolv_conf`] and
//! [`render_sandbox_resolv_conf`] read the host's resolv.conf and write the sandbox's.
//!
//! It is not the server: it owns no socket, no timer and no task. The resolver actor owns
//! the UDP and TCP sockets, the upstream deadlines and the [`InFlight`] counter, and feeds
//! this crate the names it learns from the `endpoint_table` through [`Directory`].
#![forbid(unsafe_code)]

mod directory;
mod forward;
mod lb;
mod resolvconf;
mod resolve;
mod reverse;
mod wire;

#[cfg(test)]
mod tests;

pub use directory::{BackendRecord, Directory};
pub use forward::{InFlight, MAX_IN_FLIGHT, Skip, Verdict, judge_reply, refused, servfail};
pub use lb::{LB_TABLE, LbServices, lb_removal, lb_ruleset, lb_update};
pub use resolvconf::{
    EMBEDDED_RESOLVER, MAX_NAMESERVERS, ResolvConf, parse_resolv_conf, render_sandbox_resolv_conf,
};
pub use resolve::{Action, NetworkView, Outcome, Resolution, SandboxView, resolve};
pub use wire::{ANSWER_TTL, REPLY_UDP_PAYLOAD, TCP_MAX_REPLY, UDP_MIN_REPLY};

/// How a query reached the resolver, which bounds the size of its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Transport {
    /// A datagram: replies are cut to max(512, the query's EDNS size) with TC set.
    Udp,
    /// A stream: replies may use a whole 16-bit length-prefixed message.
    Tcp,
}

/// Why the resolver could not produce bytes it meant to send (never caused by the input).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Encoding a reply failed: a bug in building the message, not in the query.
    #[error("failed to encode the reply to query {id}")]
    Encode {
        id: u16,
        #[source]
        source: hickory_proto::ProtoError,
    },
}
