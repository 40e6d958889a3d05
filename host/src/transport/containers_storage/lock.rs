//! containers/storage's lock files (`storage.lock`, `overlay-layers/layers.lock`, `overlay-images/images.lock`),
//! taken as its `pkg/lockfile` takes them: a POSIX record lock on the whole file (`F_RDLCK` to read,
//! `F_WRLCK` to write; they conflict with podman's `F_SETLKW` locks), and a writer that changes what the lock
//! guards first writes a fresh 64-byte "last writer" value at offset 0 (nanoseconds, a counter, the pid,
//! random bytes), which tells every other process to reload.
//!
//! The locks here are open-file-description locks (`F_OFD_SETLKW`): the same conflicts as podman's, but
//! owned by the descriptor, so two lock holders in this process exclude each other too, and closing
//! another descriptor of the file never drops a lock (a classic `fcntl` lock would).

use anyhow::{Context, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A held lock; released when dropped (the descriptor is closed).
pub struct Held {
    file: File,
    path: PathBuf,
    exclusive: bool,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn lock(path: &Path, exclusive: bool) -> Result<Held> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the lock directory {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if exclusive {
        libc::F_WRLCK
    } else {
        libc::F_RDLCK
    } as _;
    fl.l_whence = libc::SEEK_SET as _;
    loop {
        // SAFETY: a valid descriptor and a fully initialised flock struct.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLKW, &fl) };
        if r == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(Held {
        file,
        path: path.to_path_buf(),
        exclusive,
    })
}

/// Wait for the lock shared (readers).
pub fn shared(path: &Path) -> Result<Held> {
    lock(path, false)
}

/// Wait for the lock exclusive (a writer).
pub fn exclusive(path: &Path) -> Result<Held> {
    lock(path, true)
}

impl Held {
    /// Record that this process changed what the lock guards, before writing it (as containers/storage's
    /// `RecordWrite`: a process killed after the write but before this would leave readers stale).
    pub fn record_write(&self) -> Result<()> {
        assert!(self.exclusive, "record_write needs the lock held exclusive");
        let mut id = [0u8; 64];
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        id[0..8].copy_from_slice(&nanos.to_le_bytes());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        id[8..16].copy_from_slice(&n.to_le_bytes());
        id[16..20].copy_from_slice(&std::process::id().to_le_bytes());
        let rest = &mut id[20..];
        // SAFETY: the buffer is valid for its length. Short or failed reads leave zeros: the time, counter
        // and pid already make the value unique.
        unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        self.file
            .write_all_at(&id, 0)
            .with_context(|| format!("recording the write in {}", self.path.display()))
    }
}
