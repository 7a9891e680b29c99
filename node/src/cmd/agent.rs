//! `weft agent`: settles the configuration, sets up logging and the runtime, and runs the
//! agent ([`weft_agent::run`]) until SIGTERM or SIGINT.

use crate::config::{AgentSettings, LogFormat, Resolved};
use anyhow::Context;
use std::path::PathBuf;
use tracing::info;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// TOML configuration file (keys as the long flags).
    #[arg(long, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: AgentSettings,
}

pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    let config = Resolved::resolve(args.settings, args.config.as_deref())?;
    init_logging(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // actix actors need their System; it runs on this thread, other tasks on the pool.
    let agent = weft_agent::run(config.agent, shutdown_signal());
    actix::System::with_tokio_rt(move || runtime).block_on(agent)?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the agent still stops with the process.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        _ = int.recv() => info!("SIGINT: stopping"),
    }
}

fn init_logging(config: &Resolved) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level {:?}: {e}", config.log_level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let result = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
