//! `weft node ls|inspect`: the cluster's members as this node sees them.

use super::{Ctx, seg};
use crate::client::CallError;
use crate::output::{self, Format};
use clap::Subcommand;
use weft_types::api::NodeInfo;

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// List the cluster's nodes.
    #[command(alias = "list")]
    Ls,
    /// Show one node.
    Inspect { node: String },
}

pub async fn run(cmd: NodeCmd, ctx: &Ctx) -> Result<(), CallError> {
    match cmd {
        NodeCmd::Ls => {
            let nodes: Vec<NodeInfo> = ctx.client.get("/nodes").await?;
            print_nodes(&nodes, ctx.format)?;
        }
        NodeCmd::Inspect { node } => {
            let info: NodeInfo = ctx.client.get(&format!("/nodes/{}", seg(&node))).await?;
            if ctx.format == Format::Json {
                output::json(&info)?;
            } else {
                print_nodes(std::slice::from_ref(&info), Format::Table)?;
            }
        }
    }
    Ok(())
}

/// The node table shared with `weft diag peers`.
pub fn print_nodes(nodes: &[NodeInfo], format: Format) -> Result<(), CallError> {
    if format == Format::Json {
        output::json(&nodes)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let id = if n.local {
                format!("{} *", n.id)
            } else {
                n.id.clone()
            };
            vec![
                id,
                output::opt(&n.name),
                n.address.clone(),
                output::opt(&n.role),
                n.status.clone(),
            ]
        })
        .collect();
    output::table(&["ID", "NAME", "ADDRESS", "ROLE", "STATUS"], &rows);
    Ok(())
}
