//! The space reserve: a file of [`RESERVE_BYTES`] kept in the store's directory and
//! deleted when the filesystem is full, so that removals can still be committed (sled is
//! log-structured: a delete appends too), then written again once space is back.
//!
//! It is not a quota: it only guarantees that the space it holds exists when the reserve
//! is released. Files are written with data, not made sparse, so that the space is
//! really allocated.

use std::io::Write;
use std::path::Path;

/// Size of the reserve, and the free space demanded before reopening a failed store.
/// sled needs a new 512 KiB segment now and then, and room for a snapshot to reopen.
/// Measured with cluster-tests full_disk.rs on a full tmpfs: 80 network removals (two
/// commits each) went through on two MiB.
pub(crate) const RESERVE_BYTES: usize = 2 * 1024 * 1024;
/// The reserve file.
const RESERVE_FILE: &str = "space-reserve";
/// Where the reserve is written before it is renamed into place, so that a reserve file
/// is always whole.
const RESERVE_TMP: &str = "space-reserve.tmp";
/// The file written to find out whether there is room beside the reserve.
const PROBE_FILE: &str = "space-probe.tmp";

/// Makes sure the reserve is in place, writing it if missing. False when it cannot be
/// written (the disk is still full, or the directory refuses it).
pub(crate) fn ensure(dir: &Path) -> bool {
    let file = dir.join(RESERVE_FILE);
    let whole = std::fs::metadata(&file).is_ok_and(|m| m.len() >= RESERVE_BYTES as u64);
    if whole {
        return true;
    }
    let tmp = dir.join(RESERVE_TMP);
    let written = write_zeros(&tmp).and_then(|()| std::fs::rename(&tmp, &file));
    match written {
        Ok(()) => true,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(dir = %dir.display(), error = %e, "cannot write the space reserve");
            false
        }
    }
}

/// True when [`RESERVE_BYTES`] can be written beside the reserve: there is room to
/// reopen the database and write again. The probe file is removed at once.
pub(crate) fn probe(dir: &Path) -> bool {
    let file = dir.join(PROBE_FILE);
    let room = write_zeros(&file).is_ok();
    let _ = std::fs::remove_file(&file);
    room
}

/// Deletes the reserve; true if there was one to free.
pub(crate) fn release(dir: &Path) -> bool {
    std::fs::remove_file(dir.join(RESERVE_FILE)).is_ok()
}

fn write_zeros(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..RESERVE_BYTES / chunk.len() {
        file.write_all(&chunk)?;
    }
    // Delayed allocation may only find out at writeback that there is no room.
    file.sync_all()
}
