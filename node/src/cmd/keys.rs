//! `weft keys ls`: this node's keyrings, by subsystem: key id, role and age. Never the
//! key material.

use super::Ctx;
use crate::client::CallError;
use crate::output::{self, Format};
use clap::Subcommand;
use weft_types::api::KeyInfo;

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// List the keys of the gossip and data-path keyrings.
    #[command(alias = "list")]
    Ls,
}

pub async fn run(cmd: KeysCmd, ctx: &Ctx) -> Result<(), CallError> {
    match cmd {
        KeysCmd::Ls => {
            let keys: Vec<KeyInfo> = ctx.client.get("/keys").await?;
            if ctx.format == Format::Json {
                output::json(&keys)?;
                return Ok(());
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        k.subsystem.clone(),
                        k.id.to_string(),
                        if k.primary { "primary" } else { "secondary" }.to_owned(),
                        k.age_s.map_or_else(|| "-".to_owned(), age),
                    ]
                })
                .collect();
            output::table(&["SUBSYSTEM", "KEY", "ROLE", "AGE"], &rows);
            Ok(())
        }
    }
}

/// Seconds as the largest whole unit: 42s, 17m, 5h, 3d.
fn age(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}
