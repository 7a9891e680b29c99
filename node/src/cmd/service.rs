//! `weft service create|ls|inspect|rm`.

use super::{Ctx, for_each, seg};
use crate::client::CallError;
use crate::output::{self, Format};
use clap::{Args, Subcommand};
use weft_types::api::{CreateServiceRequest, ServiceInfo};
use weft_types::{Name, ServiceMode};

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Define a service; its backends are endpoints made with --service NAME.
    Create(CreateArgs),
    /// List services.
    #[command(alias = "list")]
    Ls,
    /// Show services: the VIP per network and the backends with their state.
    Inspect {
        #[arg(required = true, value_parser = super::reference)]
        services: Vec<String>,
    },
    /// Remove services (refused while they have backends).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_parser = super::reference)]
        services: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// vip (default: one virtual IP per network, load-balanced) or dnsrr (the name
    /// resolves to the backends).
    #[arg(long, default_value = "vip")]
    mode: ServiceMode,
    /// A network of the service (overlay); repeat for several.
    #[arg(long = "network", required = true, value_parser = super::reference)]
    networks: Vec<String>,
    name: Name,
}

pub async fn run(cmd: ServiceCmd, ctx: &Ctx) -> Result<(), CallError> {
    match cmd {
        ServiceCmd::Create(args) => {
            let request = CreateServiceRequest {
                name: args.name,
                mode: args.mode,
                networks: args.networks,
            };
            let info: ServiceInfo = ctx.client.post("/services", &request).await?;
            match ctx.format {
                Format::Json => output::json(&info)?,
                _ => println!("{}", info.name),
            }
            Ok(())
        }
        ServiceCmd::Ls => {
            let services: Vec<ServiceInfo> = ctx.client.get("/services").await?;
            print_list(&services, ctx.format)
        }
        ServiceCmd::Inspect { services } => {
            let mut infos = Vec::new();
            for s in &services {
                infos.push(
                    ctx.client
                        .get::<ServiceInfo>(&format!("/services/{}", seg(s)))
                        .await?,
                );
            }
            print_inspect(&infos, ctx.format)
        }
        ServiceCmd::Rm { services } => {
            for_each(&services, |s| async move {
                ctx.client.delete(&format!("/services/{}", seg(&s))).await?;
                println!("{s}");
                Ok(())
            })
            .await
        }
    }
}

fn active(s: &ServiceInfo) -> usize {
    s.backends.iter().filter(|b| b.state == "active").count()
}

fn print_list(services: &[ServiceInfo], format: Format) -> Result<(), CallError> {
    if format == Format::Json {
        output::json(&services)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let networks: Vec<&str> = s.networks.iter().map(|n| n.network.as_str()).collect();
            vec![
                s.name.to_string(),
                s.mode.to_string(),
                networks.join(","),
                format!("{}/{}", active(s), s.backends.len()),
            ]
        })
        .collect();
    output::table(&["NAME", "MODE", "NETWORKS", "BACKENDS"], &rows);
    Ok(())
}

fn print_inspect(infos: &[ServiceInfo], format: Format) -> Result<(), CallError> {
    if format == Format::Json {
        output::json(&infos)?;
        return Ok(());
    }
    for s in infos {
        println!("Name:       {}", s.name);
        println!("Mode:       {}", s.mode);
        for n in &s.networks {
            println!("Network:    {}  vip {}", n.network, output::opt(&n.vip));
        }
        println!("Backends:   {}", s.backends.len());
        for b in &s.backends {
            let ips: Vec<String> = b.ips.iter().map(ToString::to_string).collect();
            println!(
                "  {}  {}  {}  host {}  {}",
                b.sandbox,
                b.endpoint,
                ips.join(","),
                b.host,
                b.state
            );
        }
    }
    Ok(())
}
