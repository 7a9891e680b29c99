//! Named network namespaces, as `ip netns` keeps them: a bind mount of a namespace file on an
//! empty file under a directory (default `/run/netns`), created without forking.
//!
//! Creation: a fresh thread `unshare(CLONE_NEWNET)`s (which affects only that thread) and
//! bind-mounts `/proc/thread-self/ns/net` (not `/proc/self/...`, which is the main thread's) on
//! the file. The directory is made a shared mount first, as `ip netns add` does, so that the
//! mounts propagate to mount namespaces created later. Not here: namespaces of other kinds.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::statfs::{NSFS_MAGIC, statfs};

use crate::error::{Error, Result};
use crate::names::NsName;
use crate::nsthread;

/// The directory `ip netns` uses.
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";

/// Creates, deletes and lists named namespaces under one directory. Blocking but fast (a
/// thread spawn and a mount); async callers run it on `spawn_blocking`.
#[derive(Clone, Debug)]
pub struct NetnsDir {
    root: PathBuf,
}

impl Default for NetnsDir {
    fn default() -> Self {
        Self::new(DEFAULT_NETNS_DIR)
    }
}

impl NetnsDir {
    /// Namespaces live under `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory holding the namespace files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of namespace `name` (which may not exist).
    pub fn path(&self, name: &NsName) -> PathBuf {
        self.root.join(name.as_str())
    }

    /// Whether `name` exists and is a mounted namespace.
    pub fn exists(&self, name: &NsName) -> bool {
        is_netns_mount(&self.path(name))
    }

    /// Creates namespace `name`; an existing one is success.
    pub fn create(&self, name: &NsName) -> Result<()> {
        let err = |source| Error::CreateNetns {
            name: name.clone(),
            source,
        };
        let path = self.path(name);
        if is_netns_mount(&path) {
            return Ok(());
        }
        self.ensure_shared_root().map_err(err)?;
        // A file left by a crash between this step and the mount is reused.
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(err)?;
        let target = path.clone();
        let mounted = nsthread::in_netns_blocking(None, move || {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
            Ok(())
        });
        if let Err(e) = mounted {
            let _ = fs::remove_file(&path);
            return Err(err(e));
        }
        Ok(())
    }

    /// Deletes namespace `name`; an absent one is success. The namespace itself lives on while
    /// a process or socket still holds it; its name is gone at once.
    pub fn delete(&self, name: &NsName) -> Result<()> {
        let err = |source| Error::DeleteNetns {
            name: name.clone(),
            source,
        };
        let path = self.path(name);
        match umount2(&path, MntFlags::MNT_DETACH) {
            // EINVAL: a file that is not a mount point (left by a crash during create).
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(err(e.into())),
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    /// Namespaces whose name starts with `prefix`, sorted; a missing directory is empty.
    pub fn list(&self, prefix: &str) -> Result<Vec<NsName>> {
        let err = |source| Error::ListNetns {
            dir: self.root.clone(),
            source,
        };
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(err)?;
            let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if file.starts_with(prefix)
                && let Ok(name) = NsName::new(file)
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Makes the root directory a shared mount point, like `ip netns add`.
    fn ensure_shared_root(&self) -> io::Result<()> {
        // Serialised so that two concurrent first creates do not stack two self-binds.
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        fs::create_dir_all(&self.root)?;
        let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
        match mount(None::<&str>, &self.root, None::<&str>, shared, None::<&str>) {
            Ok(()) => Ok(()),
            // Not a mount point yet: bind it onto itself, then share it.
            Err(Errno::EINVAL) => {
                let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
                mount(
                    Some(&self.root),
                    &self.root,
                    None::<&str>,
                    bind,
                    None::<&str>,
                )?;
                mount(None::<&str>, &self.root, None::<&str>, shared, None::<&str>)?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether `path` is a mounted namespace file (nsfs), not just an empty placeholder.
pub(crate) fn is_netns_mount(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// The inode of the namespace mounted at `path`: it identifies the namespace, so a name that
/// was deleted and re-created is noticed.
pub(crate) fn netns_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    if !is_netns_mount(path) {
        return None;
    }
    fs::metadata(path).ok().map(|m| m.ino())
}
