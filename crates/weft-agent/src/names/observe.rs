//! What the naming actor tells: its state for `weft diag stats` and `/metrics`, and a
//! service's backends for `weft service inspect`.

use super::{ServiceLb, lb, serve};
use actix::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// The naming actor's state, for `weft diag stats`.
#[derive(Debug, Clone, Serialize)]
pub struct NamesState {
    /// Name records known here, in every network.
    pub records: usize,
    /// Remote entries refused as malformed.
    pub refused: u64,
    /// Each resolver's counters, by sandbox id.
    pub resolvers: BTreeMap<String, serve::DnsStats>,
    /// The load balancers: programs applied and how long they took.
    pub lb: lb::LbStats,
}

/// Asks the naming actor for its state.
#[derive(Message, Debug)]
#[rtype(result = "NamesState")]
pub struct Observe;

impl Handler<Observe> for ServiceLb {
    type Result = MessageResult<Observe>;
    fn handle(&mut self, _: Observe, _: &mut Context<Self>) -> Self::Result {
        let records = self.names.read().map_or(0, |names| names.directory.len());
        MessageResult(NamesState {
            records,
            refused: self.refused,
            resolvers: self
                .resolvers
                .iter()
                .map(|(id, r)| (id.to_string(), r.counters.snapshot()))
                .collect(),
            lb: self.lb.stats(),
        })
    }
}

/// Asks for a service's backends, on every network and host this node knows.
#[derive(Message, Debug)]
#[rtype(result = "Vec<weft_types::api::BackendInfo>")]
pub struct Backends {
    pub service: String,
}

impl Handler<Backends> for ServiceLb {
    type Result = MessageResult<Backends>;
    fn handle(&mut self, msg: Backends, _: &mut Context<Self>) -> Self::Result {
        let names = self.names.read().unwrap_or_else(|p| p.into_inner());
        let backends = names
            .directory
            .backend_records(&msg.service)
            .into_iter()
            .map(|b| weft_types::api::BackendInfo {
                endpoint: b.record.endpoint.to_string(),
                sandbox: b.record.sandbox.to_string(),
                network_id: b.network.to_string(),
                ips: b.record.ips.clone(),
                host: b.owner.to_owned(),
                state: match (b.host_lost, b.record.disabled) {
                    (true, _) => "host-lost",
                    (false, true) => "draining",
                    (false, false) => "active",
                }
                .to_owned(),
            })
            .collect();
        MessageResult(backends)
    }
}
