//! `weft sandbox create|ls|inspect|rm`.

use super::{Ctx, for_each, seg};
use crate::client::CallError;
use crate::output::{self, Format};
use clap::Subcommand;
use weft_types::api::{CreateSandboxRequest, SandboxInfo};
use weft_types::{Hostname, Name};

#[derive(Debug, Subcommand)]
pub enum SandboxCmd {
    /// Create a sandbox.
    Create {
        #[arg(long)]
        hostname: Option<Hostname>,
        name: Name,
    },
    /// List sandboxes.
    #[command(alias = "list")]
    Ls,
    /// Show sandboxes in detail.
    Inspect {
        #[arg(required = true, value_parser = super::reference)]
        sandboxes: Vec<String>,
    },
    /// Remove sandboxes.
    #[command(alias = "remove")]
    Rm {
        /// Make joined endpoints leave first.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true, value_parser = super::reference)]
        sandboxes: Vec<String>,
    },
}

pub async fn run(cmd: SandboxCmd, ctx: &Ctx) -> Result<(), CallError> {
    match cmd {
        SandboxCmd::Create { hostname, name } => {
            let info: SandboxInfo = ctx
                .client
                .post("/sandboxes", &CreateSandboxRequest { name, hostname })
                .await?;
            if ctx.format == Format::Json {
                output::json(&info)?;
            } else {
                println!("{}", info.id);
            }
            Ok(())
        }
        SandboxCmd::Ls => {
            let sandboxes: Vec<SandboxInfo> = ctx.client.get("/sandboxes").await?;
            print_list(&sandboxes, ctx.format)?;
            Ok(())
        }
        SandboxCmd::Inspect { sandboxes } => {
            let mut infos = Vec::new();
            for s in &sandboxes {
                infos.push(
                    ctx.client
                        .get::<SandboxInfo>(&format!("/sandboxes/{}", seg(s)))
                        .await?,
                );
            }
            print_inspect(&infos, ctx.format)?;
            Ok(())
        }
        SandboxCmd::Rm { force, sandboxes } => {
            for_each(&sandboxes, |s| async move {
                ctx.client
                    .delete(&format!("/sandboxes/{}?force={force}", seg(&s)))
                    .await?;
                println!("{s}");
                Ok(())
            })
            .await
        }
    }
}

fn addresses(s: &SandboxInfo) -> String {
    let list: Vec<String> = s
        .endpoints
        .iter()
        .map(|e| format!("{}:{}", e.network, output::opt(&e.ipv4)))
        .collect();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(",")
    }
}

fn print_list(sandboxes: &[SandboxInfo], format: Format) -> Result<(), CallError> {
    if format == Format::Json {
        output::json(&sandboxes)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = sandboxes
        .iter()
        .map(|s| {
            vec![
                s.id.short().to_owned(),
                s.name.to_string(),
                output::opt(&s.hostname),
                addresses(s),
            ]
        })
        .collect();
    output::table(&["SANDBOX ID", "NAME", "HOSTNAME", "NETWORKS"], &rows);
    Ok(())
}

fn print_inspect(infos: &[SandboxInfo], format: Format) -> Result<(), CallError> {
    if format == Format::Json {
        output::json(&infos)?;
        return Ok(());
    }
    for s in infos {
        println!("Name:       {}", s.name);
        println!("Id:         {}", s.id);
        println!("Hostname:   {}", output::opt(&s.hostname));
        for e in &s.endpoints {
            println!(
                "Endpoint:   {} on {}  {}  {}",
                e.endpoint,
                e.network,
                output::opt(&e.ipv4),
                e.mac
            );
        }
    }
    Ok(())
}
