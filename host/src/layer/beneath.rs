//! Opening a path under a directory fd without ever leaving it: the one `openat2` resolution the unpacker
//! and COPY/ADD share. `Within::Root` resolves symlinks as a chroot at that directory would (`..` and
//! absolute targets stop at it); `Within::NoSymlinks` refuses any symlink on the way (`ELOOP`), for trees
//! lade writes itself, where a symlink can only be something a later source put in the way.

use anyhow::{Result, bail};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// How [`open_beneath`] treats symlinks on the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Within {
    /// Followed, but resolved inside the directory (`RESOLVE_IN_ROOT`).
    Root,
    /// Refused anywhere on the path, the last component included (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`).
    NoSymlinks,
}

/// `openat2(dir, rel, flags | O_CLOEXEC)` confined as `within` says; an empty `rel` is `dir` itself.
pub(crate) fn open_beneath(
    dir: impl AsFd,
    rel: &Path,
    flags: OFlags,
    within: Within,
) -> rustix::io::Result<OwnedFd> {
    let rel: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = match within {
        Within::Root => ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        Within::NoSymlinks => {
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
        }
    };
    rustix::fs::openat2(dir, rel, flags | OFlags::CLOEXEC, Mode::empty(), how)
}

/// An error for a failed [`open_beneath`], with a hint for kernels without `openat2`.
pub(crate) fn beneath_error(e: Errno, what: &str) -> anyhow::Error {
    if e == Errno::NOSYS {
        return anyhow::anyhow!(
            "{what}: the kernel lacks openat2 (Linux 5.6+), needed to write layers safely"
        );
    }
    anyhow::Error::new(std::io::Error::from(e)).context(what.to_string())
}

/// `chmod` of the entry `name` in `dir`, never through a symlink: the entry is opened `O_PATH|O_NOFOLLOW`
/// and changed through its `/proc/self/fd` link (fchmod does not take an `O_PATH` fd, and Linux before 6.6
/// has no `fchmodat(AT_SYMLINK_NOFOLLOW)`). A symlink is left alone (its mode means nothing).
pub(crate) fn chmod_nofollow(dir: impl AsFd, name: &std::ffi::OsStr, mode: u32) -> Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
        return Ok(());
    }
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    match rustix::fs::chmod(link.as_str(), Mode::from_raw_mode(mode & 0o7777)) {
        Ok(()) => Ok(()),
        Err(Errno::NOENT) => bail!("changing a mode needs /proc mounted (/proc/self/fd)"),
        Err(e) => Err(e.into()),
    }
}
