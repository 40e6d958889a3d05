//! Mount helpers for the step's setup: mountpoints created inside the rootfs without ever following a symlink
//! out of it (openat2 RESOLVE_IN_ROOT), recorded so they can be removed from the layer afterwards.

use anyhow::{Context, Result, bail};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The rootfs being set up.
pub(crate) struct Root {
    fd: OwnedFd,
    /// The root's real path, to turn what was created into paths relative to it.
    real: PathBuf,
    /// Paths (relative, as they really are: symlinks on the way resolved) this setup created.
    pub created: Vec<PathBuf>,
}

fn rel_components(p: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(PathBuf::from(n)),
            Component::RootDir | Component::CurDir => {}
            _ => bail!("mount target {p:?} must be an absolute path without `..`"),
        }
    }
    Ok(out)
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening rootfs {}", path.display()))?;
        let real = std::fs::read_link(fd_path(&fd))
            .with_context(|| format!("locating rootfs {}", path.display()))?;
        Ok(Root {
            fd,
            real,
            created: Vec::new(),
        })
    }

    /// Record `fd` (just created at the logical path `logical`) by where it really is inside the root: a
    /// symlink on the way (`/var/run` -> `/run`) must not hide it from the cleanup.
    fn record_created(&mut self, fd: &OwnedFd, logical: &Path) {
        let real = std::fs::read_link(fd_path(fd))
            .ok()
            .and_then(|p| p.strip_prefix(&self.real).ok().map(Path::to_path_buf));
        self.created
            .push(real.unwrap_or_else(|| logical.to_path_buf()));
    }

    fn open_in(&self, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let rel: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        rustix::fs::openat2(
            &self.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Make sure the directory `target` exists inside the root (mkdir -p, 0755); an O_PATH fd to it.
    pub fn ensure_dir(&mut self, target: &str) -> Result<OwnedFd> {
        let comps = rel_components(target)?;
        let mut cur = PathBuf::new();
        let mut fd = self.open_in(&cur, OFlags::PATH | OFlags::DIRECTORY)?;
        for c in comps {
            let next = cur.join(&c);
            fd = match self.open_in(&next, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    rustix::fs::mkdirat(&fd, &c, Mode::from_raw_mode(0o755))
                        .with_context(|| format!("creating mountpoint {}", next.display()))?;
                    let new = self.open_in(&next, OFlags::PATH | OFlags::DIRECTORY)?;
                    self.record_created(&new, &next);
                    new
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("opening {} in the rootfs", next.display()));
                }
            };
            cur = next;
        }
        Ok(fd)
    }

    /// Bind `src` on the mountpoint `fd` (at `target` inside the root); read-only when asked. The remount goes
    /// through a fresh open of `target`, which now resolves to the new mount rather than the file under it.
    /// Only `recursive` binds carry the mounts below `src` along; the read-only flag applies to the top mount
    /// only, so a read-only bind of a host directory is flat: nothing mounted inside it becomes writable.
    pub fn bind_at(
        &self,
        src: &Path,
        target: &str,
        fd: &OwnedFd,
        readonly: bool,
        recursive: bool,
    ) -> Result<()> {
        bind_with(src, &fd_path(fd), recursive)?;
        if readonly {
            let rel: PathBuf = rel_components(target)?.into_iter().collect();
            let now = self
                .open_in(&rel, OFlags::PATH)
                .with_context(|| format!("reopening mount {target}"))?;
            mount(
                None,
                &fd_path(&now),
                None,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                None,
            )
            .with_context(|| format!("making {target} read-only"))?;
        }
        Ok(())
    }

    /// Open an existing path inside the root (O_PATH), a final symlink resolved inside the root too.
    pub fn open_path(&self, target: &str) -> Result<OwnedFd> {
        let rel: PathBuf = rel_components(target)?.into_iter().collect();
        self.open_in(&rel, OFlags::PATH)
            .with_context(|| format!("opening {target}"))
    }

    /// Open an existing directory inside the root (O_PATH).
    pub fn open_dir(&self, target: &str) -> Result<OwnedFd> {
        let rel: PathBuf = rel_components(target)?.into_iter().collect();
        self.open_in(&rel, OFlags::PATH | OFlags::DIRECTORY)
            .with_context(|| format!("opening {target} in the rootfs"))
    }

    /// Make sure the file `target` exists inside the root (an empty one is created); an O_PATH fd to it.
    pub fn ensure_file(&mut self, target: &str) -> Result<OwnedFd> {
        let comps = rel_components(target)?;
        let Some((name, parents)) = comps.split_last() else {
            bail!("mount target {target:?} is the root")
        };
        let parent_str: PathBuf = parents.iter().collect();
        let parent = self.ensure_dir(&format!("/{}", parent_str.display()))?;
        let rel = parent_str.join(name);
        match self.open_in(&rel, OFlags::PATH) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("opening {} in the rootfs", rel.display()));
            }
        }
        // A dangling symlink at the target: replace it (inside the root) rather than follow it.
        if rustix::fs::statat(&parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            rustix::fs::unlinkat(&parent, name, rustix::fs::AtFlags::empty())?;
        }
        let f = rustix::fs::openat(
            &parent,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .with_context(|| format!("creating mountpoint {}", rel.display()))?;
        drop(f);
        let new = self.open_in(&rel, OFlags::PATH)?;
        self.record_created(&new, &rel);
        Ok(new)
    }
}

impl Root {
    /// Set and clear `MOUNT_ATTR_*` flags on the root's mount (and every mount below it when `recursive`).
    pub fn set_attr(&self, recursive: bool, set: u64, clear: u64) -> Result<()> {
        set_attr_fd(&self.fd, recursive, set, clear)
    }
}

/// `MOUNT_ATTR_*` (linux/mount.h; libc has no constants for them).
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;

/// mount_setattr(2) on the mount `fd` is the root of (an O_PATH fd opened after the mount): set and clear
/// per-mount flags, on the whole subtree when `recursive`. Linux 5.12+.
pub(crate) fn set_attr_fd(fd: &OwnedFd, recursive: bool, set: u64, clear: u64) -> Result<()> {
    mount_setattr(fd, recursive, set, clear, 0)
}

/// mount_setattr(2) with a user namespace fd for `MOUNT_ATTR_IDMAP` (0 otherwise).
pub(crate) fn mount_setattr(
    fd: &OwnedFd,
    recursive: bool,
    set: u64,
    clear: u64,
    userns_fd: u64,
) -> Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= 0x8000; // AT_RECURSIVE
    }
    let empty = c"";
    // SAFETY: a valid fd, an empty C string and a mount_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            bail!("mount_setattr is not available: RUN steps need Linux 5.12 or newer");
        }
        bail!("mount_setattr: {e}");
    }
    Ok(())
}

/// `/proc/self/fd/N`: a mount target that is exactly the opened file.
pub(crate) fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn cstr(s: &[u8]) -> Result<CString> {
    CString::new(s).context("a NUL byte in a mount argument")
}

/// mount(2).
pub(crate) fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let s = src.map(|s| cstr(s.as_bytes())).transpose()?;
    let t = cstr(target.as_bytes())?;
    let f = fstype.map(|s| cstr(s.as_bytes())).transpose()?;
    let d = data.map(|s| cstr(s.as_bytes())).transpose()?;
    // SAFETY: all pointers are valid NUL-terminated strings or null, alive for the call.
    let rc = unsafe {
        libc::mount(
            s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags,
            d.as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr() as *const libc::c_void),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        bail!(
            "mount {} on {target} ({}): {e}",
            src.unwrap_or("none"),
            fstype.unwrap_or("bind")
        );
    }
    Ok(())
}

/// A bind mount, with the mounts below `src` when `recursive`.
fn bind_with(src: &Path, target: &str, recursive: bool) -> Result<()> {
    let s = src.as_os_str().as_bytes();
    let src_s = std::str::from_utf8(s).context("a non-UTF-8 mount source")?;
    let rec = if recursive { libc::MS_REC } else { 0 };
    mount(Some(src_s), target, None, libc::MS_BIND | rec, None)
}

/// A bind mount (recursive), made read-only when asked.
pub(crate) fn bind(src: &Path, target: &str, readonly: bool) -> Result<()> {
    bind_with(src, target, true)?;
    if readonly {
        mount(
            None,
            target,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
            None,
        )?;
    }
    Ok(())
}

/// Bring the loopback interface up in a new network namespace.
pub(crate) fn loopback_up() -> Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq naming "lo".
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            bail!(
                "socket for configuring lo: {}",
                std::io::Error::last_os_error()
            );
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            let e = std::io::Error::last_os_error();
            libc::close(sock);
            bail!("reading lo flags: {e}");
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let rc = libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req);
        let e = std::io::Error::last_os_error();
        libc::close(sock);
        if rc < 0 {
            bail!("bringing lo up: {e}");
        }
    }
    Ok(())
}
