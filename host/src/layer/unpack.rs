//! Safe unpacking of a layer tar into a directory.
//!
//! Every parent directory is opened with `openat2(RESOLVE_IN_ROOT)` on the destination, so `..`, absolute
//! symlinks and symlinked parents resolve inside the destination and can never reach outside it; the final
//! component is always created with `*at` calls relative to that parent, never followed. Entries whose path
//! contains `..` are refused outright. Hardlink targets are resolved the same way (contained). Metadata is
//! set on the entry's own fd, or `*at` its parent with `AT_SYMLINK_NOFOLLOW`; a directory's mtime, set
//! last, only when the same directory (device and inode) is still at its path.

use super::{
    OPAQUE_MARKER, OVERLAY_OPAQUE_USER_XATTR, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX, Within,
    beneath_error, chmod_nofollow, open_beneath,
};
use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// What to do with whiteout entries (`.wh.name`, `.wh..wh..opq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Unpacking onto lower content (copy mode): delete the named entries, empty opaque directories.
    Apply,
    /// Producing an overlay lower dir: a char device 0/0 for a whiteout, the overlay opaque xattr on an
    /// opaque directory (`user.overlay.opaque` when `user_xattr`, for unprivileged `userxattr` mounts).
    Overlay { user_xattr: bool },
}

/// How to unpack.
#[derive(Clone, Debug)]
pub struct UnpackOptions {
    pub whiteouts: WhiteoutMode,
    /// Create block and character device nodes (otherwise they are skipped and counted).
    pub devices: bool,
    /// Set ownership as recorded (needs root, possibly in a user namespace).
    pub chown: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        UnpackOptions {
            whiteouts: WhiteoutMode::Apply,
            // uid 0 of a user namespace may chown (within its map) but not make device nodes.
            devices: !crate::paths::rootless(),
            chown: root,
        }
    }
}

/// What an unpack did.
#[derive(Clone, Debug, Default)]
pub struct UnpackStats {
    pub entries: u64,
    pub skipped_devices: u64,
}

/// Unpack a layer, compressed with gzip or zstd or not at all (detected by magic), into `dest`.
pub fn unpack(reader: impl Read, dest: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    unpack_tar(super::decompressor(reader)?, dest, opts)
}

/// Unpack an uncompressed tar stream into `dest` (which must exist).
pub fn unpack_tar(reader: impl Read, dest: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    let root = rustix::fs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening unpack destination {}", dest.display()))?;
    unpack_tar_at(reader, root, dest, opts)
}

/// Unpack an uncompressed tar stream into the directory `root` (an fd, `O_PATH` is enough); `dest` names
/// it in messages only.
pub(crate) fn unpack_tar_at(
    reader: impl Read,
    root: OwnedFd,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats> {
    let mut u = Unpacker {
        root,
        dest,
        opts,
        written: HashSet::new(),
        dir_times: Vec::new(),
        stats: UnpackStats::default(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().context("reading layer tar")? {
        let entry = entry.context("reading layer tar entry header")?;
        let raw = entry.path_bytes().into_owned();
        u.entry(entry).with_context(|| {
            format!(
                "unpacking layer entry {:?} into {}",
                String::from_utf8_lossy(&raw),
                dest.display()
            )
        })?;
    }
    u.finish_dir_times()?;
    Ok(u.stats)
}

/// `a/./b/` → `a/b`; leading `/` dropped; `..` refused.
pub(crate) fn clean_entry_path(raw: &[u8]) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                bail!("refusing a path with `..`: a layer may not write outside its root")
            }
            Component::Prefix(_) => bail!("unexpected path prefix"),
        }
    }
    Ok(out)
}

struct Unpacker<'a> {
    root: OwnedFd,
    dest: &'a Path,
    opts: &'a UnpackOptions,
    written: HashSet<PathBuf>,
    /// Directories whose mtime is set last: tar path, (device, inode) when created, mtime.
    dir_times: Vec<(PathBuf, (u64, u64), i64, u32)>,
    stats: UnpackStats,
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    mtime_nsec: u32,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn ts(sec: i64, nsec: u32) -> Timestamps {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Unpacker<'_> {
    fn open_in_root(&self, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        open_beneath(&self.root, rel, flags, Within::Root)
    }

    /// Open (creating missing directories, 0755) the parent directory of an entry, inside the root.
    fn parent_dir(&self, parent: &Path) -> Result<OwnedFd> {
        match self.open_in_root(parent, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(beneath_error(
                    e,
                    &format!("opening directory {}", parent.display()),
                ));
            }
        }
        let mut cur = PathBuf::new();
        let mut fd = self.open_in_root(&cur, OFlags::PATH | OFlags::DIRECTORY)?;
        for c in parent.components() {
            let next = cur.join(c);
            fd = match self.open_in_root(&next, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&fd, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        Err(Errno::EXIST) => bail!(
                            "{} is a symlink to a directory that does not exist inside the layer root; refusing to follow it",
                            next.display()
                        ),
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("creating directory {}", next.display()));
                        }
                    }
                    self.open_in_root(&next, OFlags::PATH | OFlags::DIRECTORY)
                        .with_context(|| format!("opening directory {}", next.display()))?
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("opening directory {}", next.display()));
                }
            };
            cur = next;
        }
        Ok(fd)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let path = clean_entry_path(&entry.path_bytes())?;
        let Some(name) = path.file_name().map(|n| n.to_os_string()) else {
            return Ok(()); // the root itself: its metadata belongs to the destination
        };
        let parent_rel = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let meta = self.meta(&mut entry)?;
        self.stats.entries += 1;
        let name_b = name.as_bytes();
        if let Some(target) = name_b.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            let parent = self.parent_dir(&parent_rel)?;
            return self.whiteout(
                &parent,
                &parent_rel,
                name_b == OPAQUE_MARKER.as_bytes(),
                OsStr::from_bytes(target),
                &meta,
            );
        }
        let parent = self.parent_dir(&parent_rel)?;
        self.written.insert(path.clone());
        let existing = rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_dir = existing
            .as_ref()
            .is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
        if kind == tar::EntryType::Directory {
            if existing.is_some() && !existing_dir {
                remove_all_at(&parent, &name)?;
            }
            if !existing_dir {
                rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(0o700))
                    .context("creating directory")?;
            }
            let dir = rustix::fs::openat(
                &parent,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .context("opening the new directory")?;
            self.apply_fd_meta(&dir, &meta)?;
            let st = rustix::fs::fstat(&dir).context("reading the new directory")?;
            self.dir_times
                .push((path, (st.st_dev, st.st_ino), meta.mtime, meta.mtime_nsec));
            return Ok(());
        }
        if existing.is_some() {
            remove_all_at(&parent, &name)?;
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    &parent,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .context("creating file")?;
                let mut file = std::fs::File::from(fd);
                std::io::copy(&mut entry, &mut file).context("writing file contents")?;
                self.apply_fd_meta(file.as_fd(), &meta)?;
                rustix::fs::futimens(&file, &ts(meta.mtime, meta.mtime_nsec))
                    .context("setting mtime")?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| anyhow!("symlink without a target"))?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, &name)
                    .context("creating symlink")?;
                self.apply_at_meta(&parent, &name, &meta, false)?;
            }
            tar::EntryType::Link => {
                let raw = entry
                    .link_name_bytes()
                    .ok_or_else(|| anyhow!("hardlink without a target"))?;
                let target = clean_entry_path(&raw).context("hardlink target")?;
                let (Some(tname), tparent) =
                    (target.file_name(), target.parent().unwrap_or(Path::new("")))
                else {
                    bail!("hardlink to the layer root");
                };
                let tdir = self
                    .open_in_root(tparent, OFlags::PATH | OFlags::DIRECTORY)
                    .with_context(|| {
                        format!(
                            "hardlink target {} does not exist in the layer",
                            target.display()
                        )
                    })?;
                rustix::fs::linkat(&tdir, tname, &parent, &name, AtFlags::empty())
                    .with_context(|| format!("hardlinking to {}", target.display()))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                if !self.opts.devices {
                    self.stats.skipped_devices += 1;
                    self.written.remove(&path);
                    return Ok(());
                }
                let ft = if kind == tar::EntryType::Char {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                let major = entry.header().device_major()?.unwrap_or(0);
                let minor = entry.header().device_minor()?.unwrap_or(0);
                rustix::fs::mknodat(
                    &parent,
                    &name,
                    ft,
                    Mode::from_raw_mode(meta.mode & 0o7777),
                    rustix::fs::makedev(major, minor),
                )
                .context("creating device node")?;
                self.apply_at_meta(&parent, &name, &meta, true)?;
            }
            tar::EntryType::Fifo => {
                rustix::fs::mknodat(
                    &parent,
                    &name,
                    FileType::Fifo,
                    Mode::from_raw_mode(meta.mode & 0o7777),
                    0,
                )
                .context("creating fifo")?;
                self.apply_at_meta(&parent, &name, &meta, true)?;
            }
            other => bail!("unsupported tar entry type {other:?}"),
        }
        Ok(())
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<R>) -> Result<Meta> {
        let h = entry.header();
        // Empty numeric fields read as 0, as Go's archive/tar does; garbage is an error.
        let u = h.as_ustar();
        let empty = |f: Option<&[u8]>| f.is_some_and(|f| f.iter().all(|b| *b == 0 || *b == b' '));
        let mut m = Meta {
            mode: h.mode().context("bad mode")?,
            uid: if empty(u.map(|u| &u.uid[..])) {
                0
            } else {
                h.uid().context("bad uid")? as u32
            },
            gid: if empty(u.map(|u| &u.gid[..])) {
                0
            } else {
                h.gid().context("bad gid")? as u32
            },
            mtime: if empty(u.map(|u| &u.mtime[..])) {
                0
            } else {
                h.mtime().context("bad mtime")? as i64
            },
            mtime_nsec: 0,
            xattrs: Vec::new(),
        };
        if let Some(exts) = entry.pax_extensions().context("reading PAX headers")? {
            for ext in exts {
                let ext = ext.context("reading a PAX record")?;
                let key = ext.key_bytes();
                let val = ext.value_bytes();
                if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                    m.xattrs.push((x.to_vec(), val.to_vec()));
                } else if key == b"uid" {
                    m.uid = std::str::from_utf8(val)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .context("bad PAX uid")?;
                } else if key == b"gid" {
                    m.gid = std::str::from_utf8(val)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .context("bad PAX gid")?;
                } else if key == b"mtime" {
                    let s = std::str::from_utf8(val).context("bad PAX mtime")?;
                    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
                    m.mtime = sec.parse().context("bad PAX mtime")?;
                    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
                    m.mtime_nsec = frac.parse().unwrap_or(0);
                }
            }
        }
        Ok(m)
    }

    /// Owner, then mode (chown clears setuid), then xattrs, on an open file or directory.
    fn apply_fd_meta(&self, fd: impl AsFd, m: &Meta) -> Result<()> {
        if self.opts.chown {
            rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(m.uid)),
                Some(rustix::fs::Gid::from_raw(m.gid)),
            )
            .with_context(|| format!("setting owner {}:{}", m.uid, m.gid))?;
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(m.mode & 0o7777)).context("setting mode")?;
        for (k, v) in &m.xattrs {
            set_xattr_fd(&fd, k, v)?;
        }
        Ok(())
    }

    fn apply_at_meta(&self, parent: &OwnedFd, name: &OsStr, m: &Meta, chmod: bool) -> Result<()> {
        if self.opts.chown {
            rustix::fs::chownat(
                parent,
                name,
                Some(rustix::fs::Uid::from_raw(m.uid)),
                Some(rustix::fs::Gid::from_raw(m.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .with_context(|| format!("setting owner {}:{}", m.uid, m.gid))?;
        }
        if chmod {
            chmod_nofollow(parent, name, m.mode).context("setting mode")?;
        }
        if !m.xattrs.is_empty() {
            // Symlinks and special files cannot be opened for fsetxattr; reach them through the parent's fd.
            let p = format!("/proc/self/fd/{}/", std::os::fd::AsRawFd::as_raw_fd(parent));
            let mut full = p.into_bytes();
            full.extend_from_slice(name.as_bytes());
            for (k, v) in &m.xattrs {
                match rustix::fs::lsetxattr(
                    OsStr::from_bytes(&full),
                    OsStr::from_bytes(k),
                    v,
                    rustix::fs::XattrFlags::empty(),
                ) {
                    Ok(()) | Err(Errno::PERM) | Err(Errno::OPNOTSUPP) => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("setting xattr {}", String::from_utf8_lossy(k))
                        });
                    }
                }
            }
        }
        rustix::fs::utimensat(
            parent,
            name,
            &ts(m.mtime, m.mtime_nsec),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .context("setting mtime")?;
        Ok(())
    }

    fn whiteout(
        &mut self,
        parent: &OwnedFd,
        parent_rel: &Path,
        opaque: bool,
        target: &OsStr,
        meta: &Meta,
    ) -> Result<()> {
        match (self.opts.whiteouts, opaque) {
            (WhiteoutMode::Apply, true) => {
                let dir = rustix::fs::openat(
                    parent,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                for e in rustix::fs::Dir::read_from(&dir).context("listing an opaque directory")? {
                    let e = e?;
                    let n = OsStr::from_bytes(e.file_name().to_bytes());
                    if n == "." || n == ".." || self.written.contains(&parent_rel.join(n)) {
                        continue;
                    }
                    remove_all_at(&dir, n)?;
                }
            }
            (WhiteoutMode::Apply, false) => {
                if target.is_empty()
                    || target == "."
                    || target == ".."
                    || target.as_bytes().contains(&b'/')
                {
                    bail!("bad whiteout name");
                }
                match rustix::fs::statat(parent, target, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(_) => remove_all_at(parent, target)?,
                    Err(Errno::NOENT) => {}
                    Err(e) => return Err(e).context("looking up a whited-out entry"),
                }
            }
            (WhiteoutMode::Overlay { user_xattr }, true) => {
                let dir = rustix::fs::openat(
                    parent,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let key = if user_xattr {
                    OVERLAY_OPAQUE_USER_XATTR
                } else {
                    OVERLAY_OPAQUE_XATTR
                };
                rustix::fs::fsetxattr(&dir, key, b"y", rustix::fs::XattrFlags::empty())
                    .with_context(|| {
                        format!("setting {key} (needs root, or user_xattr when rootless)")
                    })?;
            }
            (WhiteoutMode::Overlay { .. }, false) => {
                if target.is_empty() || target == "." || target == ".." {
                    bail!("bad whiteout name");
                }
                if rustix::fs::statat(parent, target, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                    remove_all_at(parent, target)?;
                }
                rustix::fs::mknodat(parent, target, FileType::CharacterDevice, Mode::empty(), 0)
                    .context("creating an overlay whiteout (char device 0/0)")?;
                // The entry's time, so that writing the upper back gives the same layer.
                rustix::fs::utimensat(
                    parent,
                    target,
                    &ts(meta.mtime, meta.mtime_nsec),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .context("setting a whiteout's mtime")?;
            }
        }
        Ok(())
    }

    /// Directory mtimes last, deepest first, since creating children changes them; only on the directory
    /// the entry made (a later entry may have replaced it, by a symlink for one), never through a link.
    fn finish_dir_times(&mut self) -> Result<()> {
        let times = std::mem::take(&mut self.dir_times);
        for (path, id, sec, nsec) in times.iter().rev() {
            let parent = path.parent().unwrap_or(Path::new(""));
            let Some(name) = path.file_name() else {
                continue;
            };
            let Ok(pfd) = self.open_in_root(parent, OFlags::PATH | OFlags::DIRECTORY) else {
                continue;
            };
            match rustix::fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st)
                    if FileType::from_raw_mode(st.st_mode) == FileType::Directory
                        && (st.st_dev, st.st_ino) == *id => {}
                _ => continue,
            }
            rustix::fs::utimensat(&pfd, name, &ts(*sec, *nsec), AtFlags::SYMLINK_NOFOLLOW)
                .with_context(|| {
                    format!(
                        "setting mtime of {} in {}",
                        path.display(),
                        self.dest.display()
                    )
                })?;
        }
        Ok(())
    }
}

fn set_xattr_fd(fd: impl AsFd, k: &[u8], v: &[u8]) -> Result<()> {
    match rustix::fs::fsetxattr(
        &fd,
        OsStr::from_bytes(k),
        v,
        rustix::fs::XattrFlags::empty(),
    ) {
        Ok(()) => Ok(()),
        // trusted.* / security.* need privileges, some filesystems lack xattrs: skip like tar --xattrs does.
        Err(Errno::PERM) | Err(Errno::OPNOTSUPP) if !k.starts_with(b"user.") => {
            tracing::debug!(
                "skipping xattr {}: not permitted here",
                String::from_utf8_lossy(k)
            );
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("setting xattr {}", String::from_utf8_lossy(k))),
    }
}

/// Remove `name` under `dir` (recursively when it is a directory), never following symlinks.
pub(crate) fn remove_all_at(dir: impl AsFd, name: &OsStr) -> Result<()> {
    let st = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("looking up {name:?} to remove it")),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {name:?} to remove it"))?;
        let mut names = Vec::new();
        for e in rustix::fs::Dir::read_from(&sub).context("listing a directory to remove")? {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
        for n in names {
            remove_all_at(&sub, OsStr::from_bytes(&n))?;
        }
        rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR)
            .with_context(|| format!("removing directory {name:?}"))?;
    } else {
        rustix::fs::unlinkat(&dir, name, AtFlags::empty())
            .with_context(|| format!("removing {name:?}"))?;
    }
    Ok(())
}
