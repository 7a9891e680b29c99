//! `weft`: the agent daemon and the command line that talks to it.

mod client;
mod cmd;
mod config;
mod output;

use clap::{Parser, Subcommand};
use client::{CallError, Client};
use cmd::Ctx;
use output::Format;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "weft", version, about = "A multi-host container network")]
struct Cli {
    /// The agent's API socket.
    #[arg(
        long,
        global = true,
        env = "WEFT_HOST",
        default_value = "unix:///run/weft/weft.sock"
    )]
    host: String,
    /// Output format of listings and inspections.
    #[arg(long, global = true, value_enum, default_value = "table")]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent.
    Agent(Box<cmd::agent::AgentArgs>),
    /// Manage networks.
    #[command(subcommand)]
    Network(cmd::network::NetworkCmd),
    /// Manage endpoints.
    #[command(subcommand)]
    Endpoint(cmd::endpoint::EndpointCmd),
    /// Manage sandboxes.
    #[command(subcommand)]
    Sandbox(cmd::sandbox::SandboxCmd),
    /// Manage services: a name with a VIP per network, load-balanced over its backends.
    #[command(subcommand)]
    Service(cmd::service::ServiceCmd),
    /// The cluster: join tokens.
    #[command(subcommand)]
    Cluster(cmd::cluster::ClusterCmd),
    /// This node's keyrings (ids, roles, ages; never key material).
    #[command(subcommand)]
    Keys(cmd::keys::KeysCmd),
    /// The cluster's nodes.
    #[command(subcommand)]
    Node(cmd::node::NodeCmd),
    /// What this node's gossip holds.
    #[command(subcommand)]
    Diag(cmd::diag::DiagCmd),
    /// Create a sandbox on networks and run a command in it.
    Run(cmd::run::RunArgs),
    /// Run a command inside a sandbox.
    Exec(cmd::exec::ExecArgs),
    /// Show the client's and the agent's versions.
    Version,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A well-formed command with a bad value is bad input (exit 1, one line);
        // anything else clap rejects is a usage error (exit 2, with usage).
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            eprintln!("error: {first}");
            return ExitCode::from(1);
        }
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Agent(args) => cmd::agent::run(*args).map_err(CallError::Transport),
        command => run_client(command, &cli.host, cli.format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CallError::Exit(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

fn run_client(command: Command, host: &str, format: Format) -> Result<(), CallError> {
    let client = Client::from_host(host)?;
    let ctx = Ctx { client, format };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CallError::Transport(e.into()))?;
    runtime.block_on(async {
        match command {
            Command::Network(c) => cmd::network::run(c, &ctx).await,
            Command::Service(c) => cmd::service::run(c, &ctx).await,
            Command::Endpoint(c) => cmd::endpoint::run(c, &ctx).await,
            Command::Sandbox(c) => cmd::sandbox::run(c, &ctx).await,
            Command::Cluster(c) => cmd::cluster::run(c, &ctx).await,
            Command::Keys(c) => cmd::keys::run(c, &ctx).await,
            Command::Node(c) => cmd::node::run(c, &ctx).await,
            Command::Diag(c) => cmd::diag::run(c, &ctx).await,
            Command::Run(a) => cmd::run::run(a, &ctx).await,
            Command::Exec(a) => cmd::exec::run(a, &ctx).await,
            Command::Version => cmd::version::run(&ctx).await,
            Command::Agent(_) => Ok(()),
        }
    })
}

/// The error and its causes on one line.
fn one_line(e: &CallError) -> String {
    match e {
        CallError::Api(e) => e.message.clone(),
        CallError::Transport(e) => format!("{e:#}").replace('\n', " "),
        CallError::Exit(code) => format!("exit status {code}"),
    }
}
