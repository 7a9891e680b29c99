//! `weft cluster token worker|manager`: the join token of a role, printed by a manager.

use super::Ctx;
use crate::client::CallError;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Print the join token of a role (on a manager). It is a secret.
    Token {
        #[arg(value_parser = ["worker", "manager"])]
        role: String,
    },
}

pub async fn run(cmd: ClusterCmd, ctx: &Ctx) -> Result<(), CallError> {
    match cmd {
        ClusterCmd::Token { role } => {
            let token: String = ctx.client.get(&format!("/cluster/token/{role}")).await?;
            println!("{token}");
            Ok(())
        }
    }
}
