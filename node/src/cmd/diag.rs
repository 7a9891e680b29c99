//! `weft diag peers|network-peers|table|stats`: what this node's gossip holds.

use super::node::print_nodes;
use super::{Ctx, seg};
use crate::client::CallError;
use crate::output::{self, Format};
use clap::Subcommand;
use weft_types::api::{NodeInfo, TableEntryInfo};

#[derive(Debug, Subcommand)]
pub enum DiagCmd {
    /// Cluster peers as this node sees them.
    Peers,
    /// Nodes holding entries of a network (a name, an id, or `cluster`).
    NetworkPeers {
        #[arg(value_parser = super::reference)]
        network: String,
    },
    /// Entries of a table of a network, with their owners.
    Table {
        #[arg(value_parser = super::reference)]
        table: String,
        #[arg(value_parser = super::reference)]
        network: String,
    },
    /// Gossip statistics: members, tables, datagram counters, keys (JSON).
    Stats,
}

pub async fn run(cmd: DiagCmd, ctx: &Ctx) -> Result<(), CallError> {
    match cmd {
        DiagCmd::Peers => {
            let nodes: Vec<NodeInfo> = ctx.client.get("/diag/peers").await?;
            print_nodes(&nodes, ctx.format)?;
        }
        DiagCmd::NetworkPeers { network } => {
            let nodes: Vec<NodeInfo> = ctx
                .client
                .get(&format!("/diag/network-peers/{}", seg(&network)))
                .await?;
            print_nodes(&nodes, ctx.format)?;
        }
        DiagCmd::Table { table, network } => {
            let path = format!("/diag/table/{}/{}", seg(&table), seg(&network));
            let entries: Vec<TableEntryInfo> = ctx.client.get(&path).await?;
            if ctx.format == Format::Json {
                output::json(&entries)?;
            } else {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| vec![e.key.clone(), e.owner.clone(), e.value.clone()])
                    .collect();
                output::table(&["KEY", "OWNER", "VALUE"], &rows);
            }
        }
        DiagCmd::Stats => {
            // A nested snapshot: JSON is its only honest form.
            let stats: serde_json::Value = ctx.client.get("/diag/stats").await?;
            output::json(&stats)?;
        }
    }
    Ok(())
}
