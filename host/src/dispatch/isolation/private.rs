//! Private scratch directories (0700) for one step, in RAM when the host has /dev/shm. Each holds a `.lock`
//! that stays locked while it is in use, so one left behind by a killed lade (with secret values or a step
//! spec in it) is recognised and removed by the next one made with the same prefix.

use anyhow::{Context, Result};
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A private directory, removed when dropped (or by a later sweep if this process dies first).
pub struct PrivateDir {
    // Field order: the lock is released only after the directory is gone.
    dir: tempfile::TempDir,
    _lock: File,
}

impl PrivateDir {
    /// A new private directory named `<prefix>…` in `parent`; stale ones with that prefix there are removed.
    pub fn new(parent: &Path, prefix: &str) -> Result<PrivateDir> {
        sweep(parent, prefix);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .with_context(|| format!("creating a private dir in {}", parent.display()))?;
        let lock = lock(&dir.path().join(".lock"), true)?
            .context("locking a private dir that was just made")?;
        Ok(PrivateDir { dir, _lock: lock })
    }

    /// [`PrivateDir::new`] in `/dev/shm`, so nothing written there reaches a disk; in `fallback` where the
    /// host has no such tmpfs.
    pub fn in_ram(prefix: &str, fallback: &Path) -> Result<PrivateDir> {
        let shm = Path::new("/dev/shm");
        if shm.is_dir()
            && let Ok(d) = PrivateDir::new(shm, prefix)
        {
            return Ok(d);
        }
        PrivateDir::new(fallback, prefix)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Lock `path` exclusively (waiting when `create`, else only trying, and only if it exists).
fn lock(path: &Path, create: bool) -> Result<Option<File>> {
    use rustix::fs::FlockOperation as Op;
    let f = match std::fs::OpenOptions::new()
        .create(create)
        .truncate(false)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let op = if create {
        Op::LockExclusive
    } else {
        Op::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Remove `<parent>/<prefix>*` directories whose `.lock` no one holds. One without a `.lock` is being set
/// up right now (or is not ours) and is left alone.
fn sweep(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix)
            || !e.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        if let Ok(Some(_held)) = lock(&e.path().join(".lock"), false) {
            tracing::debug!(
                "removing {} (left by a lade that was killed)",
                e.path().display()
            );
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_dirs_are_swept_and_live_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        let live = PrivateDir::new(parent.path(), "p-").unwrap();
        std::fs::write(live.path().join("secret"), "x").unwrap();
        // A dir left by a killed process: its lock file exists but no one holds it.
        let stale = parent.path().join("p-stale");
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join(".lock"), "").unwrap();
        std::fs::write(stale.join("secret"), "x").unwrap();
        // One being set up (no lock yet) and one with another prefix are left alone.
        let young = parent.path().join("p-young");
        std::fs::create_dir(&young).unwrap();
        let other = parent.path().join("q-other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(".lock"), "").unwrap();
        let second = PrivateDir::new(parent.path(), "p-").unwrap();
        assert!(!stale.exists(), "the stale dir was not swept");
        assert!(live.path().join("secret").exists(), "a live dir was swept");
        assert!(young.exists() && other.exists());
        let (a, b) = (live.path().to_path_buf(), second.path().to_path_buf());
        assert_eq!(
            std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o700
        );
        drop(live);
        drop(second);
        assert!(!a.exists() && !b.exists());
    }
}
