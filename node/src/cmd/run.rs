//! `weft run`: creates a sandbox, creates and joins one endpoint per network (each owned
//! by the sandbox, so removing the sandbox removes them), then runs a command inside it,
//! in the foreground or detached (`-d`: the agent starts and reaps it; this prints the
//! sandbox name). On a failure before the command starts (a program that cannot be
//! executed included), everything created is removed again.

use super::exec::{exit_with, run_in};
use super::{Ctx, seg};
use crate::client::CallError;
use std::net::IpAddr;
use weft_types::api::{
    CreateEndpointRequest, CreateSandboxRequest, EndpointInfo, JoinRequest, ProcessInfo,
    SandboxInfo, StartProcessRequest,
};
use weft_types::{Hostname, Name};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The sandbox's name (also its endpoints' names).
    #[arg(long)]
    name: Name,
    /// A network to join; repeat for several (the first one joined carries the default route).
    #[arg(long = "network", required = true, value_parser = super::reference)]
    networks: Vec<String>,
    /// A specific IPv4 address on the first network.
    #[arg(long)]
    ip: Option<IpAddr>,
    /// A DNS alias; repeat for several.
    #[arg(long)]
    alias: Vec<Name>,
    /// The service this sandbox is a backend of.
    #[arg(long)]
    service: Option<Name>,
    #[arg(long)]
    hostname: Option<Hostname>,
    /// Run in the background and print the sandbox's name.
    #[arg(short, long)]
    detach: bool,
    /// Remove the sandbox and its endpoints when the command exits.
    #[arg(long, conflicts_with = "detach")]
    rm: bool,
    /// The command and its arguments (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

pub async fn run(args: RunArgs, ctx: &Ctx) -> Result<(), CallError> {
    let request = CreateSandboxRequest {
        name: args.name.clone(),
        hostname: args.hostname.clone(),
    };
    let created: SandboxInfo = ctx.client.post("/sandboxes", &request).await?;
    let remove = format!("/sandboxes/{}?force=true", created.id);
    let sandbox = match attach(&args, &created, ctx).await {
        Ok(s) => s,
        Err(e) => {
            // Undo what this run created (by id): the endpoints go with their sandbox.
            let _ = ctx.client.delete(&remove).await;
            return Err(e);
        }
    };
    if args.detach {
        // The agent starts and reaps it: this process exits now.
        let start = StartProcessRequest {
            command: args.command.clone(),
            // vars() panics on a variable that is not UTF-8; such ones are left out.
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            cwd: std::env::current_dir()
                .ok()
                .map(|d| d.display().to_string()),
        };
        let path = format!("/sandboxes/{}/processes", created.id);
        if let Err(e) = ctx.client.post::<_, ProcessInfo>(&path, &start).await {
            let _ = ctx.client.delete(&remove).await;
            return Err(e);
        }
        println!("{}", sandbox.name);
        return Ok(());
    }
    let code = match run_in(&sandbox, &args.command) {
        Ok(code) => code,
        // It never started: nothing of this run may stay behind.
        Err(e) => {
            let _ = ctx.client.delete(&remove).await;
            return Err(e);
        }
    };
    if args.rm {
        ctx.client.delete(&remove).await?;
    }
    exit_with(code)
}

/// One owned endpoint per network, joined in order.
async fn attach(
    args: &RunArgs,
    created: &SandboxInfo,
    ctx: &Ctx,
) -> Result<SandboxInfo, CallError> {
    for (i, network) in args.networks.iter().enumerate() {
        let endpoint = CreateEndpointRequest {
            name: args.name.clone(),
            ip: if i == 0 { args.ip } else { None },
            ipv6: None,
            mac: None,
            aliases: args.alias.clone(),
            service: args.service.clone(),
            owner: Some(created.id.to_string()),
        };
        let path = format!("/networks/{}/endpoints", seg(network));
        let ep: EndpointInfo = ctx.client.post(&path, &endpoint).await?;
        let join = format!("/networks/{}/endpoints/{}/join", seg(network), ep.id);
        ctx.client
            .post::<_, serde::de::IgnoredAny>(
                &join,
                &JoinRequest {
                    sandbox: created.id.to_string(),
                },
            )
            .await?;
    }
    // Inspect again: joining a host network changes where commands run.
    ctx.client.get(&format!("/sandboxes/{}", created.id)).await
}
