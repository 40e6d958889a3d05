//! A working container's root filesystem: the overlay of its image's unpacked layers and its kept upper
//! (`<container>/upper`), mounted at `<container>/merged` by `lade mount` (in the caller's mount namespace:
//! the host's as root, `lade unshare`'s rootless), or by each `lade run` step privately when not mounted.

use super::{Container, Containers};
use crate::dispatch::isolation::Snapshot;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The container's mount point.
pub fn merged(cs: &Containers, c: &Container) -> PathBuf {
    cs.dir_of(c).join("merged")
}

/// The container's overlay upper (its changes).
pub fn upper(cs: &Containers, c: &Container) -> PathBuf {
    cs.dir_of(c).join("upper")
}

/// A mountinfo path field with its octal escapes (`\040` for a space) decoded.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(real) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| Path::new(&unescape(m)) == real)
    })
}

/// This process's mount namespace (`mnt:[4026531840]`).
fn mount_ns(pid: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The marker `lade mount` leaves: the mount namespace the rootfs is mounted in.
fn marker(cs: &Containers, c: &Container) -> PathBuf {
    cs.dir_of(c).join("mounted")
}

/// Refuse when the rootfs is mounted in another mount namespace that still has a process (a `lade unshare`
/// session): mounting the same upper twice would corrupt it. A marker of a namespace that is gone is removed.
pub(super) fn check_not_mounted_elsewhere(cs: &Containers, c: &Container) -> Result<()> {
    let Ok(ns) = std::fs::read_to_string(marker(cs, c)) else {
        return Ok(());
    };
    let ns = ns.trim();
    if Some(ns) != mount_ns("self").as_deref() {
        let alive = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.bytes().all(|b| b.is_ascii_digit()) && mount_ns(&n).as_deref() == Some(ns)
            });
        if alive {
            bail!(
                "working container {} is mounted in another mount namespace ({ns}, e.g. a `lade unshare` \
                 session): use it from there, or `lade umount {}` there first",
                c.name,
                c.name
            );
        }
    }
    let _ = std::fs::remove_file(marker(cs, c));
    Ok(())
}

/// Mount the container's rootfs at its mount point (nothing to do when it is mounted already) and return it.
pub fn mount(cs: &Containers, c: &Container) -> Result<PathBuf> {
    let m = merged(cs, c);
    if is_mounted(&m) {
        return Ok(m);
    }
    check_not_mounted_elsewhere(cs, c)?;
    let state = cs.state(c)?;
    let snap = Snapshot::kept_overlay(&cs.dir_of(c), &state.lowers())?;
    let root = snap
        .mount()
        .with_context(|| format!("mounting working container {}", c.name))?;
    if let Some(ns) = mount_ns("self") {
        crate::fsutil::write_atomic(&marker(cs, c), ns.as_bytes())?;
    }
    Ok(root)
}

/// Unmount the container's rootfs; false when it was not mounted here.
pub fn unmount(cs: &Containers, c: &Container) -> Result<bool> {
    use rustix::mount::{UnmountFlags, unmount as umount2};
    let m = merged(cs, c);
    if !is_mounted(&m) {
        return Ok(false);
    }
    if umount2(&m, UnmountFlags::empty()).is_err() {
        // Busy (a shell's working directory in it): detach, it goes when the last user leaves.
        umount2(&m, UnmountFlags::DETACH)
            .with_context(|| format!("unmounting {} ({})", m.display(), c.name))?;
    }
    let _ = std::fs::remove_file(marker(cs, c));
    Ok(true)
}

/// Run `f` on the container's mounted rootfs, mounting it for the call when it is not mounted.
pub fn with_mounted<T>(
    cs: &Containers,
    c: &Container,
    f: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    let m = merged(cs, c);
    if is_mounted(&m) {
        return f(&m);
    }
    let root = mount(cs, c)?;
    let r = f(&root);
    let u = unmount(cs, c);
    let out = r?;
    u?;
    Ok(out)
}

/// The rootfs a `lade run` step uses: the mounted one when the container is mounted here, else the overlay
/// the step mounts in its own namespace (over `lowers`, the unpacked layers).
pub fn snapshot(cs: &Containers, c: &Container, lowers: &[PathBuf]) -> Result<Snapshot> {
    let m = merged(cs, c);
    if is_mounted(&m) {
        return Ok(Snapshot::kept_dir(&cs.dir_of(c), &m));
    }
    check_not_mounted_elsewhere(cs, c)?;
    Snapshot::kept_overlay(&cs.dir_of(c), lowers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/x\\"), r"/x\\");
    }
}
