//! `weft exec SANDBOX -- CMD [ARG...]`: runs CMD inside a sandbox's network namespace,
//! with this terminal's stdio, and exits with CMD's exit code.

use super::{Ctx, seg};
use crate::client::CallError;
use std::path::PathBuf;
use std::process::Command;
use weft_types::api::SandboxInfo;

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The sandbox's name or id.
    #[arg(value_parser = super::reference)]
    sandbox: String,
    /// The command and its arguments (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

pub async fn run(args: ExecArgs, ctx: &Ctx) -> Result<(), CallError> {
    let info: SandboxInfo = ctx
        .client
        .get(&format!("/sandboxes/{}", seg(&args.sandbox)))
        .await?;
    let code = run_in(&info, &args.command)?;
    exit_with(code)
}

/// Runs `command` in the sandbox's namespace with this terminal's stdio; its exit code.
/// A command that cannot start is reported here and is an error of code 127 or 126.
pub fn run_in(sandbox: &SandboxInfo, command: &[String]) -> Result<i32, CallError> {
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| CallError::Transport(anyhow::anyhow!("no command given")))?;
    let mut cmd = Command::new(program);
    cmd.args(rest);
    let netns = PathBuf::from(&sandbox.netns);
    let mut child = weft_os::exec::spawn_in_netns_blocking(Some(netns), cmd).map_err(|e| {
        // Shells' conventions: 127 not found, 126 not executable.
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        };
        eprintln!(
            "error: cannot run {program} in sandbox {}: {e}",
            sandbox.name
        );
        CallError::Exit(code)
    })?;
    let status = child
        .wait()
        .map_err(|e| CallError::Transport(anyhow::anyhow!("waiting for {program}: {e}")))?;
    Ok(weft_os::exec::exit_code(status))
}

/// Success for 0, else the code as this process's exit status.
pub fn exit_with(code: i32) -> Result<(), CallError> {
    match code {
        0 => Ok(()),
        c => Err(CallError::Exit(u8::try_from(c).unwrap_or(1))),
    }
}
