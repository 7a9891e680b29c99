//! `weft exec SANDBOX -- CMD [ARG...]`: runs CMD inside a sandbox's network namespace,
//! with this terminal's stdio, and exits with CMD's exit code.

use super::{Ctx, seg};
use crate::client::CallError;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use weft_types::api::SandboxInfo;

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The sandbox's name or id.
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
    let code = run_in(&info, &args.command, Detach::No)?;
    exit_with(code)
}

/// Whether the command outlives this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detach {
    No,
    /// In its own process group, stdio on /dev/null, not waited for.
    Yes,
}

/// Runs `command` in the sandbox's namespace; its exit code, or 0 when detached.
pub fn run_in(sandbox: &SandboxInfo, command: &[String], detach: Detach) -> Result<i32, CallError> {
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| CallError::Transport(anyhow::anyhow!("no command given")))?;
    let mut cmd = Command::new(program);
    cmd.args(rest);
    if detach == Detach::Yes {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
    }
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
    if detach == Detach::Yes {
        return Ok(0);
    }
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
