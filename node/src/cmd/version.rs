//! `weft version`: this binary's version, and the agent's if one answers.

use super::Ctx;
use crate::client::CallError;
use crate::output::{self, Format};
use serde::Serialize;
use weft_types::api::VersionInfo;

#[derive(Serialize)]
struct Versions {
    client: String,
    agent: Option<VersionInfo>,
}

pub async fn run(ctx: &Ctx) -> Result<(), CallError> {
    // The client's version is printed even when no agent is running.
    let agent = match ctx.client.get::<VersionInfo>("/version").await {
        Ok(v) => Some(v),
        Err(CallError::Transport(_)) => None,
        Err(e) => return Err(e),
    };
    let versions = Versions {
        client: env!("CARGO_PKG_VERSION").to_owned(),
        agent,
    };
    if ctx.format == Format::Json {
        output::json(&versions)?;
        return Ok(());
    }
    println!("weft {}", versions.client);
    match &versions.agent {
        Some(a) => println!(
            "agent {} on node {} (api {})",
            a.version, a.node_name, a.api
        ),
        None => println!("agent: not reachable"),
    }
    Ok(())
}
