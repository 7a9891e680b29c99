//! Sandboxes: one network namespace per sandbox, named from the agent's prefix and the
//! sandbox id, with `lo` up; one sandbox per container name.

use super::{Core, now_ms};
use crate::crash;
use tracing::{info, warn};
use weft_os::{CommandSpec, NsName, NsRef, StdioMode};
use weft_types::api::{CreateSandboxRequest, ProcessInfo, SandboxInfo, StartProcessRequest};
use weft_types::{EndpointId, Error, ErrorKind, Lifecycle, SandboxId, SandboxRecord};

/// The kernel's failures as users see them.
pub(crate) fn kernel_error(what: impl std::fmt::Display, e: weft_os::Error) -> Error {
    Error::internal(format!("{what}: {e}"))
}

impl Core {
    /// The namespace of a sandbox: `<prefix>sb-<first 12 hex digits of its id>`.
    pub(crate) fn sandbox_netns(&self, id: &SandboxId) -> Result<NsName, Error> {
        NsName::new(format!("{}sb-{}", self.netns_prefix, id.short()))
            .map_err(|e| Error::internal(format!("namespace name for sandbox {}: {e}", id.short())))
    }

    /// The prefix every sandbox namespace of this agent starts with.
    pub(crate) fn sandbox_netns_prefix(&self) -> String {
        format!("{}sb-", self.netns_prefix)
    }

    /// Creates a sandbox and its namespace; the name must be unused.
    pub async fn create_sandbox(
        &mut self,
        req: CreateSandboxRequest,
    ) -> Result<SandboxInfo, Error> {
        let ids = self.sandboxes.keys().map(SandboxId::as_str);
        super::resolve::check_name_not_an_id(req.name.as_str(), ids, "sandbox")?;
        if let Some(s) = self.sandboxes.values().find(|s| s.record.name == req.name) {
            return Err(Error::already_exists(format!(
                "sandbox {} (id {})",
                req.name,
                s.record.id.short()
            )));
        }
        let mut record = SandboxRecord {
            id: SandboxId::random(),
            name: req.name,
            hostname: req.hostname,
            created_ms: now_ms(),
            lifecycle: Lifecycle::Creating,
        };
        let netns = self.sandbox_netns(&record.id)?;
        self.save(record.clone()).await?;
        crash::point(crash::SANDBOX_CREATE_INTENT);
        if let Err(e) = self.kernel.create_netns(&netns).await {
            self.undo_sandbox_create(&record, &netns).await;
            return Err(kernel_error(
                format!("cannot create the namespace of sandbox {}", record.name),
                e,
            ));
        }
        record.lifecycle = Lifecycle::Ready;
        if let Err(e) = self.save(record.clone()).await {
            self.undo_sandbox_create(&record, &netns).await;
            return Err(e);
        }
        crash::point(crash::SANDBOX_CREATE_DONE);
        info!(sandbox = %record.name, id = %record.id.short(), %netns, "created sandbox");
        self.sandbox_info(&record.id)
    }

    /// Undoes a create whose intent was persisted; what fails stays `creating` and the
    /// next start removes it.
    async fn undo_sandbox_create(&mut self, record: &SandboxRecord, netns: &NsName) {
        if let Err(e) = self.kernel.delete_netns(netns).await {
            warn!(sandbox = %record.name, error = %e, "rollback: failed to delete namespace");
            return;
        }
        if let Err(e) = self.erase::<SandboxRecord>(&record.id).await {
            warn!(sandbox = %record.name, error = %e, "rollback: failed to delete sandbox record");
        }
    }

    /// Deletes a sandbox. Joined endpoints make this fail unless `force`, which makes
    /// them leave (the endpoints themselves remain). Processes inside are killed.
    pub async fn delete_sandbox(&mut self, reference: &str, force: bool) -> Result<(), Error> {
        let sandbox = self.find_sandbox(reference)?.clone();
        self.delete_sandbox_record(sandbox, force).await
    }

    pub(crate) async fn delete_sandbox_record(
        &mut self,
        mut sandbox: SandboxRecord,
        force: bool,
    ) -> Result<(), Error> {
        let joined: Vec<_> = self
            .endpoints
            .values()
            .filter(|s| s.record.attachment.sandbox() == Some(&sandbox.id))
            .map(|s| (s.record.id.clone(), s.record.name.to_string()))
            .collect();
        if !joined.is_empty() && !force {
            let mut names: Vec<&str> = joined.iter().map(|(_, n)| n.as_str()).collect();
            names.sort_unstable();
            return Err(Error::new(
                ErrorKind::ActiveEndpoints,
                format!(
                    "sandbox {} has joined endpoint(s) ({}): make them leave or use --force",
                    sandbox.name,
                    names.join(", ")
                ),
            ));
        }
        let netns = self.sandbox_netns(&sandbox.id)?;
        if sandbox.lifecycle != Lifecycle::Deleting {
            sandbox.lifecycle = Lifecycle::Deleting;
            self.save(sandbox.clone()).await?;
        }
        crash::point(crash::SANDBOX_DELETE_MARK);
        for (endpoint, _) in joined {
            self.detach(endpoint).await?;
        }
        // The gateway endpoint last: a delete that fails on the way (a global network's
        // manager away) then leaves the sandbox's way out in place for the retry.
        let mut owned: Vec<(bool, EndpointId)> = self
            .endpoints
            .values()
            .filter(|s| s.record.owner.as_ref() == Some(&sandbox.id))
            .map(|s| {
                let gateway = self
                    .networks
                    .get(&s.record.network)
                    .is_some_and(|n| Core::is_gateway_network(&n.record));
                (gateway, s.record.id.clone())
            })
            .collect();
        owned.sort();
        let owned = owned.into_iter().map(|(_, id)| id);
        for endpoint in owned {
            self.delete_endpoint_record(endpoint, true).await?;
        }
        self.names.sandbox_gone(&sandbox.id);
        self.remove_netns(&netns).await?;
        self.erase::<SandboxRecord>(&sandbox.id).await?;
        crash::point(crash::SANDBOX_DELETE_DONE);
        info!(sandbox = %sandbox.name, id = %sandbox.id.short(), "deleted sandbox");
        Ok(())
    }

    /// Starts a command detached in a sandbox (stdio on /dev/null, its own process
    /// group) and reaps it when it exits, so that a process `sandbox rm` kills does not
    /// stay a zombie. The agent, not the CLI, is its parent: the CLI exits at once.
    pub async fn start_process(
        &mut self,
        reference: &str,
        req: StartProcessRequest,
    ) -> Result<ProcessInfo, Error> {
        let sandbox = self.find_sandbox(reference)?.clone();
        if sandbox.lifecycle != Lifecycle::Ready {
            return Err(Error::forbidden(format!(
                "sandbox {} is being deleted: nothing can start in it",
                sandbox.name
            )));
        }
        let ns = match self.sandbox_on_host(&sandbox.id) {
            true => NsRef::Host,
            false => NsRef::named(&self.sandbox_netns(&sandbox.id)?),
        };
        let (program, args) = req
            .command
            .split_first()
            .ok_or_else(|| Error::invalid("the command is empty".to_owned()))?;
        let mut spec = CommandSpec::new(program, args).stdio(StdioMode::Null);
        spec.env = req
            .env
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        spec.cwd = req.cwd.map(Into::into);
        spec.own_process_group = true;
        let process = self.kernel.spawn(&ns, &spec).await.map_err(|e| {
            // The io error (e.g. "No such file or directory") is what the user needs.
            let cause =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
            Error::invalid(format!(
                "cannot run {program} in sandbox {}: {cause}",
                sandbox.name
            ))
        })?;
        let pid = process.pid();
        info!(sandbox = %sandbox.name, pid, program = %program, "started detached process");
        let name = sandbox.name.clone();
        process.reap_in_background(move |exit| match exit {
            Ok(code) => info!(sandbox = %name, pid, code, "detached process exited"),
            Err(e) => warn!(sandbox = %name, pid, error = %e, "cannot reap detached process"),
        });
        Ok(ProcessInfo { pid })
    }

    /// Kills what runs in a namespace, then deletes it. Absent is fine.
    pub(crate) async fn remove_netns(&self, netns: &NsName) -> Result<(), Error> {
        let killed = self
            .kernel
            .kill_all(netns)
            .await
            .map_err(|e| kernel_error(format!("cannot stop the processes in {netns}"), e))?;
        if killed > 0 {
            info!(%netns, killed, "stopped processes of sandbox");
        }
        self.kernel
            .delete_netns(netns)
            .await
            .map_err(|e| kernel_error(format!("cannot delete namespace {netns}"), e))
    }
}
