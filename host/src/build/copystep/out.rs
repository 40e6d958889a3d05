//! The layer directory a COPY, ADD or WORKDIR writes, reached only through file descriptors.
//!
//! Every path is walked from the directory's own fd with `O_NOFOLLOW` (or `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so a symlink that a source put in the tree is never followed:
//! a symlink where a directory is needed is an error, and metadata (owner, mode, xattrs, times) is set on
//! the entry's own fd, or `*at` its parent's fd with `AT_SYMLINK_NOFOLLOW`. Never by a host path.
//!
//! Directories are made 0755 and their real metadata is set last (writing into a directory moves its
//! mtime). [`Out`] remembers the device and inode of every directory it made, so that deferred metadata
//! lands on that very directory or nowhere: when a later source (an archive, a git tree) replaced it,
//! that source's entry stands.

use crate::layer::{Within, beneath_error, open_beneath};
use anyhow::{Context, Result, bail};
use rustix::fs::{AtFlags, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Metadata to give an entry.
pub(in crate::build) struct Meta<'a> {
    pub mode: u32,
    pub owner: (u32, u32),
    pub mtime: (i64, u32),
    pub xattrs: &'a [(String, Vec<u8>)],
}

fn timestamps((s, ns): (i64, u32)) -> Timestamps {
    let t = Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Whether ownership is set (only root may give files away).
pub(in crate::build) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Owner (root only), then mode (chown clears setuid/setgid), then xattrs (after chown, which clears
/// `security.capability`), then times, all on the open entry `fd` (a file or a directory).
pub(in crate::build) fn set_meta_fd(
    fd: BorrowedFd,
    m: &Meta,
    what: &dyn Fn() -> String,
) -> Result<()> {
    if is_root() {
        rustix::fs::fchown(
            fd,
            Some(Uid::from_raw(m.owner.0)),
            Some(Gid::from_raw(m.owner.1)),
        )
        .with_context(|| format!("setting the owner of {}", what()))?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(m.mode & 0o7777))
        .with_context(|| format!("setting the mode of {}", what()))?;
    for (k, v) in m.xattrs {
        rustix::fs::fsetxattr(fd, k.as_str(), v, rustix::fs::XattrFlags::empty())
            .with_context(|| format!("setting xattr {k} on {}", what()))?;
    }
    rustix::fs::futimens(fd, &timestamps(m.mtime))
        .with_context(|| format!("setting the times of {}", what()))
}

/// Owner (root only) and times of the symlink `name` in `dir`, not followed.
pub(in crate::build) fn set_link_meta(
    dir: BorrowedFd,
    name: &OsStr,
    owner: (u32, u32),
    mtime: (i64, u32),
    what: &dyn Fn() -> String,
) -> Result<()> {
    if is_root() {
        rustix::fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(owner.0)),
            Some(Gid::from_raw(owner.1)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("setting the owner of {}", what()))?;
    }
    rustix::fs::utimensat(dir, name, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
        .with_context(|| format!("setting the times of {}", what()))
}

/// Create the file `name` in `dir` (it must not exist; never through a link), mode 0600 until its
/// metadata is set.
pub(in crate::build) fn create_file(dir: BorrowedFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
}

/// Open the directory `name` in `dir` for its metadata (`O_RDONLY`, never through a link).
pub(in crate::build) fn open_dir_at(dir: BorrowedFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn dev_ino(fd: impl AsFd) -> Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd).context("reading a directory lade made")?;
    Ok((st.st_dev, st.st_ino))
}

/// The layer directory being written (see the module docs).
pub(in crate::build) struct Out {
    root: OwnedFd,
    display: PathBuf,
    /// The directories last walked to, each with its `O_PATH` fd: the root first, then one per component.
    stack: Vec<(String, OwnedFd)>,
    /// (device, inode) of every directory made, by root-relative path.
    made: HashMap<String, (u64, u64)>,
}

impl Out {
    /// Open the (empty) layer directory `dir`, given by lade itself.
    pub fn open(dir: &Path) -> Result<Out> {
        let root = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", dir.display()))?;
        let top = root.try_clone()?;
        Ok(Out {
            root,
            display: dir.to_path_buf(),
            stack: vec![(String::new(), top)],
            made: HashMap::new(),
        })
    }

    /// `rel` as a host path, for messages only.
    pub fn show(&self, rel: &str) -> String {
        self.display.join(rel).display().to_string()
    }

    /// Make `rel` (root-relative, normalized) a real directory, creating missing components 0755, and
    /// make it [`Out::top`]. A symlink or a file on the way is an error.
    pub fn walk(&mut self, rel: &str) -> Result<()> {
        while self.stack.len() > 1 {
            let top = &self.stack[self.stack.len() - 1].0;
            if rel == top
                || rel
                    .strip_prefix(top.as_str())
                    .is_some_and(|r| r.starts_with('/'))
            {
                break;
            }
            self.stack.pop();
        }
        let have = self.stack[self.stack.len() - 1].0.len();
        let rest = rel[have..].to_string();
        for c in rest.split('/').filter(|c| !c.is_empty()) {
            if c == "." || c == ".." {
                bail!("{}: unexpected `{c}` in a layer path", self.show(rel));
            }
            let (cur, parent) = &self.stack[self.stack.len() - 1];
            let path = super::join(cur, c);
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = match rustix::fs::openat(parent, c, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    rustix::fs::mkdirat(parent, c, Mode::from_raw_mode(0o755))
                        .with_context(|| format!("creating {}", self.show(&path)))?;
                    let fd = rustix::fs::openat(parent, c, flags, Mode::empty())
                        .with_context(|| format!("opening {}", self.show(&path)))?;
                    self.made.insert(path.clone(), dev_ino(&fd)?);
                    fd
                }
                Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                    bail!(
                        "{} is in the way of a directory (a symlink or a file; it is not followed)",
                        self.show(&path)
                    )
                }
                Err(e) => return Err(e).with_context(|| format!("opening {}", self.show(&path))),
            };
            self.stack.push((path, fd));
        }
        Ok(())
    }

    /// The `O_PATH` fd of the directory last walked to.
    pub fn top(&self) -> BorrowedFd<'_> {
        self.stack[self.stack.len() - 1].1.as_fd()
    }

    /// The directories made so far, by path.
    pub fn made(&self) -> impl Iterator<Item = &str> {
        self.made.keys().map(String::as_str)
    }

    /// An existing directory, reached without following any symlink (`O_PATH`).
    pub fn open_dir(&self, rel: &str) -> Result<OwnedFd> {
        open_beneath(
            &self.root,
            Path::new(rel),
            OFlags::PATH | OFlags::DIRECTORY,
            Within::NoSymlinks,
        )
        .map_err(|e| beneath_error(e, &format!("opening {}", self.show(rel))))
    }

    /// The directory this [`Out`] made at `rel`, opened for its metadata, if that very directory is still
    /// there (see the module docs); `None` when a later source replaced it.
    pub fn made_dir(&self, rel: &str) -> Result<Option<OwnedFd>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
        if rel.is_empty() {
            let fd = open_beneath(&self.root, Path::new(""), flags, Within::NoSymlinks)
                .map_err(|e| beneath_error(e, &format!("opening {}", self.show(rel))))?;
            return Ok(Some(fd));
        }
        let Some(id) = self.made.get(rel) else {
            return Ok(None);
        };
        match open_beneath(&self.root, Path::new(rel), flags, Within::NoSymlinks) {
            Ok(fd) if dev_ino(&fd)? == *id => Ok(Some(fd)),
            Ok(_) | Err(Errno::LOOP) | Err(Errno::NOTDIR) | Err(Errno::NOENT)
            | Err(Errno::XDEV) => {
                tracing::debug!("{} was replaced by a later source", self.show(rel));
                Ok(None)
            }
            Err(e) => Err(beneath_error(e, &format!("opening {}", self.show(rel)))),
        }
    }
}
