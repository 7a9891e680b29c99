//! Sandboxes: one per container name. In this release a sandbox is a record; the
//! namespace behind it arrives with the kernel-backed drivers.

use super::{Core, now_ms};
use crate::crash;
use tracing::info;
use weft_types::api::{CreateSandboxRequest, SandboxInfo};
use weft_types::{Error, ErrorKind, Lifecycle, SandboxId, SandboxRecord};

impl Core {
    /// Creates a sandbox; the name must be unused.
    pub async fn create_sandbox(
        &mut self,
        req: CreateSandboxRequest,
    ) -> Result<SandboxInfo, Error> {
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
        self.save(record.clone()).await?;
        crash::point(crash::SANDBOX_CREATE_INTENT);
        record.lifecycle = Lifecycle::Ready;
        if let Err(e) = self.save(record.clone()).await {
            // Left `creating` if this fails too; the next start removes it.
            let _ = self.erase::<SandboxRecord>(&record.id).await;
            return Err(e);
        }
        crash::point(crash::SANDBOX_CREATE_DONE);
        info!(sandbox = %record.name, id = %record.id.short(), "created sandbox");
        self.sandbox_info(&record.id)
    }

    /// Deletes a sandbox. Joined endpoints make this fail unless `force`, which makes
    /// them leave (the endpoints themselves remain).
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
            let names: Vec<&str> = joined.iter().map(|(_, n)| n.as_str()).collect();
            return Err(Error::new(
                ErrorKind::ActiveEndpoints,
                format!(
                    "sandbox {} has joined endpoint(s) ({}): make them leave or use --force",
                    sandbox.name,
                    names.join(", ")
                ),
            ));
        }
        if sandbox.lifecycle != Lifecycle::Deleting {
            sandbox.lifecycle = Lifecycle::Deleting;
            self.save(sandbox.clone()).await?;
        }
        crash::point(crash::SANDBOX_DELETE_MARK);
        for (endpoint, _) in joined {
            self.detach(endpoint).await?;
        }
        self.erase::<SandboxRecord>(&sandbox.id).await?;
        crash::point(crash::SANDBOX_DELETE_DONE);
        info!(sandbox = %sandbox.name, id = %sandbox.id.short(), "deleted sandbox");
        Ok(())
    }
}
