//! `weft network create|ls|inspect|rm`.

use super::{Ctx, for_each, seg};
use crate::client::CallError;
use crate::output::{self, Format};
use clap::{Args, Subcommand};
use ipnet::IpNet;
use std::net::IpAddr;
use weft_types::api::{CreateNetworkRequest, NetworkInfo, SubnetRequest};
use weft_types::{DriverName, Labels, Name, Options};

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls,
    /// Show networks in detail.
    Inspect {
        /// Also the nodes with entries in each network's tables (its peers).
        #[arg(short, long)]
        verbose: bool,
        #[arg(required = true, value_parser = super::reference)]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Remove the networks' endpoints too (they leave their sandboxes).
        #[arg(short, long)]
        force: bool,
        #[arg(required = true, value_parser = super::reference)]
        networks: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver: bridge (default), host, null, or overlay (global: the network spans the cluster).
    #[arg(short, long)]
    driver: Option<DriverName>,
    /// Subnet in CIDR form; repeat for several. Default: the next free predefined pool.
    #[arg(long, value_parser = parse_cidr)]
    subnet: Vec<IpNet>,
    /// Gateway of the subnet that contains it.
    #[arg(long)]
    gateway: Vec<IpAddr>,
    /// Sub-range endpoint addresses are picked from, inside a subnet.
    #[arg(long = "ip-range", value_parser = parse_cidr)]
    ip_range: Vec<IpNet>,
    /// Enable IPv6 (needs an IPv6 --subnet).
    #[arg(long)]
    ipv6: bool,
    /// No route off the network.
    #[arg(long)]
    internal: bool,
    /// Standalone sandboxes may attach.
    #[arg(long)]
    attachable: bool,
    /// Encrypt traffic (same as -o encrypted).
    #[arg(long)]
    encrypted: bool,
    /// Driver option KEY=VALUE; repeat for several.
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// Label KEY=VALUE; repeat for several.
    #[arg(long)]
    label: Vec<String>,
    name: Name,
}

pub async fn run(cmd: NetworkCmd, ctx: &Ctx) -> Result<(), CallError> {
    match cmd {
        NetworkCmd::Create(args) => {
            let request = create_request(args)?;
            let info: NetworkInfo = ctx.client.post("/networks", &request).await?;
            if ctx.format == Format::Json {
                output::json(&info)?;
            } else {
                println!("{}", info.id);
            }
            Ok(())
        }
        NetworkCmd::Ls => {
            let networks: Vec<NetworkInfo> = ctx.client.get("/networks").await?;
            print_list(&networks, ctx.format)?;
            Ok(())
        }
        NetworkCmd::Inspect { verbose, networks } => {
            let mut infos = Vec::new();
            for n in &networks {
                let mut info = ctx
                    .client
                    .get::<NetworkInfo>(&format!("/networks/{}", seg(n)))
                    .await?;
                if verbose {
                    let path = format!("/diag/network-peers/{}", info.id);
                    info.peers = Some(ctx.client.get(&path).await?);
                }
                infos.push(info);
            }
            print_inspect(&infos, ctx.format)?;
            Ok(())
        }
        NetworkCmd::Rm { force, networks } => {
            for_each(&networks, |n| async move {
                ctx.client
                    .delete(&format!("/networks/{}?force={force}", seg(&n)))
                    .await?;
                println!("{n}");
                Ok(())
            })
            .await
        }
    }
}

/// A CIDR, with a message that shows the expected form.
fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse().map_err(|_| "expected ADDRESS/PREFIX such as 198.19.0.0/24 or 2001:db8::/64 (prefix at most 32 for IPv4, 128 for IPv6)".to_owned())
}

/// Pairs each gateway and range with the subnet that contains it.
fn create_request(args: CreateArgs) -> Result<CreateNetworkRequest, CallError> {
    let invalid = |m: String| CallError::Api(weft_types::Error::invalid(m));
    let mut subnets: Vec<SubnetRequest> = args
        .subnet
        .iter()
        .map(|s| SubnetRequest {
            subnet: Some(*s),
            ..Default::default()
        })
        .collect();
    for gw in args.gateway {
        let slot = subnets
            .iter_mut()
            .find(|s| s.subnet.is_some_and(|n| n.contains(&gw)))
            .ok_or_else(|| invalid(format!("gateway {gw} is outside every --subnet given")))?;
        if slot.gateway.replace(gw).is_some() {
            return Err(invalid(format!(
                "two gateways given for subnet {}",
                slot.subnet.map_or_else(String::new, |s| s.to_string())
            )));
        }
    }
    for range in args.ip_range {
        let slot = subnets
            .iter_mut()
            .find(|s| s.subnet.is_some_and(|n| n.contains(&range)))
            .ok_or_else(|| invalid(format!("ip range {range} is outside every --subnet given")))?;
        slot.ip_range = Some(range);
    }
    let mut opts: Vec<&str> = args.opt.iter().map(String::as_str).collect();
    if args.encrypted
        && !opts
            .iter()
            .any(|o| o.split('=').next() == Some("encrypted"))
    {
        opts.push("encrypted");
    }
    Ok(CreateNetworkRequest {
        name: args.name,
        driver: args.driver,
        subnets,
        ipv6: args.ipv6,
        internal: args.internal,
        attachable: args.attachable,
        options: Options::from_pairs(opts).map_err(CallError::Api)?,
        labels: Labels::from_pairs(args.label.iter().map(String::as_str))
            .map_err(CallError::Api)?,
    })
}

fn subnets(n: &NetworkInfo) -> String {
    let list: Vec<String> = n.subnets.iter().map(|s| s.subnet.to_string()).collect();
    list.join(",")
}

fn print_list(networks: &[NetworkInfo], format: Format) -> Result<(), CallError> {
    if format == Format::Json {
        output::json(&networks)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = networks
        .iter()
        .map(|n| {
            vec![
                n.id.short().to_owned(),
                n.name.to_string(),
                n.driver.to_string(),
                n.scope.to_string(),
                subnets(n),
            ]
        })
        .collect();
    output::table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNETS"], &rows);
    Ok(())
}

fn print_inspect(infos: &[NetworkInfo], format: Format) -> Result<(), CallError> {
    if format == Format::Json {
        output::json(&infos)?;
        return Ok(());
    }
    for n in infos {
        println!("Name:       {}", n.name);
        println!("Id:         {}", n.id);
        println!("Driver:     {}  (scope {})", n.driver, n.scope);
        for s in &n.subnets {
            println!(
                "Subnet:     {}  gateway {}  range {}",
                s.subnet,
                s.gateway,
                output::opt(&s.ip_range)
            );
        }
        println!(
            "Flags:      internal={} attachable={} ipv6={}",
            n.internal, n.attachable, n.ipv6
        );
        for (k, v) in n.options.iter() {
            println!("Option:     {k}={v}");
        }
        for (k, v) in n.labels.iter() {
            println!("Label:      {k}={v}");
        }
        if let Some(peers) = &n.peers {
            println!("Peers:      {}", peers.len());
            for p in peers {
                println!("  {}  {}  {}", p.id, p.address, output::opt(&p.role));
            }
        }
        println!("Endpoints:  {}", n.endpoints.len());
        for e in &n.endpoints {
            println!(
                "  {}  {}  {}  sandbox {}",
                e.name,
                output::opt(&e.ipv4),
                e.mac,
                output::opt(&e.sandbox)
            );
        }
    }
    Ok(())
}
