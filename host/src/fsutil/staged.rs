//! Files written before they have a name: `O_TMPFILE` in the destination directory, given their name by
//! `linkat` only once complete and fsynced. A writer killed mid-way (`kill -9`, a full disk) leaves
//! nothing behind, not even a temp file. Where the filesystem has no `O_TMPFILE` (or /proc is not mounted),
//! a named `.tmp-*` file is the fallback, removed on any error (a kill still leaves it; `lade fsck` finds it).

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use std::fs::File;
use std::path::{Path, PathBuf};

/// A file being written in a directory, not yet visible under its final name.
pub struct Staged {
    file: File,
    dir: PathBuf,
    /// The fallback's temp path (None: an unnamed `O_TMPFILE` file).
    named: Option<tempfile::TempPath>,
}

fn proc_fd(file: &File) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", file.as_raw_fd())
}

impl Staged {
    /// A new staged file in `dir` (which must exist).
    pub fn new_in(dir: &Path) -> Result<Staged> {
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        if Path::new("/proc/self/fd").is_dir()
            && let Ok(fd) = rustix::fs::openat(CWD, dir, flags, Mode::from_raw_mode(0o644))
        {
            return Ok(Staged {
                file: File::from(fd),
                dir: dir.to_path_buf(),
                named: None,
            });
        }
        let (file, path) = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?
            .into_parts();
        Ok(Staged {
            file,
            dir: dir.to_path_buf(),
            named: Some(path),
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Give the finished file the name `dest` (in the same directory) unless `dest` exists already (content
    /// addressed: the same bytes). The caller has fsynced it; the directory is fsynced here.
    pub fn publish_new(self, dest: &Path) -> Result<()> {
        let r = match &self.named {
            None => match rustix::fs::linkat(
                CWD,
                proc_fd(&self.file).as_str(),
                CWD,
                dest,
                AtFlags::SYMLINK_FOLLOW,
            ) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
                Err(e) => Err(std::io::Error::from(e)),
            },
            Some(p) => std::fs::rename(p, dest),
        };
        r.with_context(|| format!("publishing {}", dest.display()))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Give the finished file the name `dest`, replacing what is there (a link under a temp name, then a
    /// rename: only that instant can leave a temp file behind).
    pub fn publish_replace(mut self, dest: &Path) -> Result<()> {
        let r = match self.named.take() {
            Some(p) => p.persist(dest).map(|_| ()).map_err(|e| e.error),
            None => {
                let tmp = self
                    .dir
                    .join(format!(".tmp-{}-{}", std::process::id(), rand_suffix()));
                rustix::fs::linkat(
                    CWD,
                    proc_fd(&self.file).as_str(),
                    CWD,
                    &tmp,
                    AtFlags::SYMLINK_FOLLOW,
                )
                .map_err(std::io::Error::from)
                .and_then(|()| {
                    std::fs::rename(&tmp, dest).inspect_err(|_| {
                        let _ = std::fs::remove_file(&tmp);
                    })
                })
            }
        };
        r.with_context(|| format!("renaming into {}", dest.display()))?;
        sync_dir(&self.dir);
        Ok(())
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Whether an error comes from a full disk or quota (ENOSPC, EDQUOT): retrying will not help, freeing
/// space will.
pub fn disk_full(e: &anyhow::Error) -> bool {
    let full = |n: i32| n == libc_enospc() || n == libc_edquot();
    e.chain().any(|c| {
        let typed = c
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(full);
        // Errors that crossed a thread as text (a build step's) keep only the OS error's message.
        let text = c.to_string();
        typed
            || [libc_enospc(), libc_edquot()]
                .iter()
                .any(|n| text.contains(&format!("(os error {n})")))
    })
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

fn libc_edquot() -> i32 {
    rustix::io::Errno::DQUOT.raw_os_error()
}

/// fsync a directory (best effort: some filesystems refuse).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn nothing_is_visible_before_publish_and_publish_keeps_an_existing_blob() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Staged::new_in(dir.path()).unwrap();
        s.file.write_all(b"abc").unwrap();
        if s.named.is_none() {
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
        let dest = dir.path().join("blob");
        s.publish_new(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        let mut again = Staged::new_in(dir.path()).unwrap();
        again.file.write_all(b"xyz").unwrap();
        again.publish_new(&dest).unwrap();
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            b"abc",
            "an existing blob stays"
        );
        let mut r = Staged::new_in(dir.path()).unwrap();
        r.file.write_all(b"new").unwrap();
        r.publish_replace(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
