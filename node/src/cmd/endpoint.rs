//! `weft endpoint create|join|leave|ls|rm`.

use super::{Ctx, seg};
use crate::client::CallError;
use crate::output::{self, Format};
use clap::Subcommand;
use std::net::IpAddr;
use weft_types::api::{CreateEndpointRequest, EndpointInfo, JoinRequest};
use weft_types::{MacAddr, Name};

#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Create an endpoint on a network.
    Create {
        /// A specific IPv4 address.
        #[arg(long)]
        ip: Option<IpAddr>,
        /// A specific IPv6 address (IPv6 networks).
        #[arg(long)]
        ipv6: Option<IpAddr>,
        /// A specific MAC address (default: derived from the IPv4 address).
        #[arg(long)]
        mac: Option<MacAddr>,
        /// A DNS alias; repeat for several.
        #[arg(long)]
        alias: Vec<Name>,
        /// The service this endpoint is a backend of.
        #[arg(long)]
        service: Option<Name>,
        #[arg(value_parser = super::reference)]
        network: String,
        name: Name,
    },
    /// Join an endpoint to a sandbox.
    Join {
        #[arg(value_parser = super::reference)]
        network: String,
        #[arg(value_parser = super::reference)]
        endpoint: String,
        #[arg(value_parser = super::reference)]
        sandbox: String,
    },
    /// Make an endpoint leave its sandbox.
    Leave {
        #[arg(value_parser = super::reference)]
        network: String,
        #[arg(value_parser = super::reference)]
        endpoint: String,
    },
    /// List endpoints, of one network or all.
    #[command(alias = "list")]
    Ls {
        #[arg(value_parser = super::reference)]
        network: Option<String>,
    },
    /// Remove an endpoint.
    #[command(alias = "remove")]
    Rm {
        /// Leave the sandbox first if joined.
        #[arg(short, long)]
        force: bool,
        #[arg(value_parser = super::reference)]
        network: String,
        #[arg(value_parser = super::reference)]
        endpoint: String,
    },
}

pub async fn run(cmd: EndpointCmd, ctx: &Ctx) -> Result<(), CallError> {
    match cmd {
        EndpointCmd::Create {
            ip,
            ipv6,
            mac,
            alias,
            service,
            network,
            name,
        } => {
            let request = CreateEndpointRequest {
                name,
                ip,
                ipv6,
                mac,
                aliases: alias,
                service,
                owner: None,
            };
            let info: EndpointInfo = ctx
                .client
                .post(&format!("/networks/{}/endpoints", seg(&network)), &request)
                .await?;
            if ctx.format == Format::Json {
                output::json(&info)?;
            } else {
                println!("{}", info.id);
            }
            Ok(())
        }
        EndpointCmd::Join {
            network,
            endpoint,
            sandbox,
        } => {
            let path = format!(
                "/networks/{}/endpoints/{}/join",
                seg(&network),
                seg(&endpoint)
            );
            ctx.client
                .post::<_, serde::de::IgnoredAny>(&path, &JoinRequest { sandbox })
                .await?;
            Ok(())
        }
        EndpointCmd::Leave { network, endpoint } => {
            let path = format!(
                "/networks/{}/endpoints/{}/leave",
                seg(&network),
                seg(&endpoint)
            );
            ctx.client
                .post::<_, serde::de::IgnoredAny>(&path, &())
                .await?;
            Ok(())
        }
        EndpointCmd::Ls { network } => {
            let path = match &network {
                Some(n) => format!("/networks/{}/endpoints", seg(n)),
                None => "/endpoints".to_owned(),
            };
            let endpoints: Vec<EndpointInfo> = ctx.client.get(&path).await?;
            print_list(&endpoints, ctx.format)?;
            Ok(())
        }
        EndpointCmd::Rm {
            force,
            network,
            endpoint,
        } => {
            ctx.client
                .delete(&format!(
                    "/networks/{}/endpoints/{}?force={force}",
                    seg(&network),
                    seg(&endpoint)
                ))
                .await?;
            println!("{endpoint}");
            Ok(())
        }
    }
}

fn print_list(endpoints: &[EndpointInfo], format: Format) -> Result<(), CallError> {
    if format == Format::Json {
        output::json(&endpoints)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|e| {
            vec![
                e.id.short().to_owned(),
                e.name.to_string(),
                e.network.to_string(),
                output::opt(&e.ipv4),
                e.mac.to_string(),
                output::opt(&e.sandbox),
            ]
        })
        .collect();
    output::table(
        &["ENDPOINT ID", "NAME", "NETWORK", "IPV4", "MAC", "SANDBOX"],
        &rows,
    );
    Ok(())
}
