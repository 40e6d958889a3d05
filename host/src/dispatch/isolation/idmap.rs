//! `--userns=auto`: RUN steps of a root build in their own user namespace, as buildah does.
//!
//! The ids come from the `containers` entry of /etc/subuid and /etc/subgid (the first 65536 of them, in
//! file order): inside ids 0..65535 map to those host ids. The step runner makes a user namespace with that
//! mapping ([`create_userns`]) before anything else, then mounts everything as today in the host's user
//! namespace, with the rootfs and the step's bind mounts idmapped through it ([`idmapped_clone`]): an on-disk
//! owner N appears as N inside, and a file the step writes as its uid N lands on disk owned by N, so the layer
//! is the same as without a user namespace. Just before pivoting, the step's pid 1 enters the namespace and
//! takes a mount namespace of its own there ([`enter`]): every mount the setup made is locked beneath it, so the
//! masks and read-only mounts cannot be undone. The pid, ipc, uts and network namespaces stay owned by the
//! host's user namespace (the step cannot change the hostname or the network; stricter than buildah).

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

/// How many ids a step's namespace maps (buildah's auto size without an image hint).
pub const AUTO_SIZE: u32 = 65536;

/// One line of a uid_map/gid_map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The uid and gid mappings of a step's user namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMaps {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

impl IdMaps {
    /// `--userns=auto`: [`AUTO_SIZE`] ids from the `containers` entries of /etc/subuid and /etc/subgid.
    pub fn auto() -> Result<IdMaps> {
        Ok(IdMaps {
            uids: from_file("/etc/subuid")?,
            gids: from_file("/etc/subgid")?,
        })
    }

    /// Where inside uid 0 is on the host.
    pub fn root_uid(&self) -> u32 {
        self.uids[0].outside
    }
    pub fn root_gid(&self) -> u32 {
        self.gids[0].outside
    }
}

fn from_file(file: &str) -> Result<Vec<IdRange>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {file}")),
    };
    let map =
        ranges_for(&text, "containers", AUTO_SIZE).with_context(|| format!("reading {file}"))?;
    if map.is_empty() {
        bail!(
            "--userns=auto takes its ids from the `containers` entry of {file}, and there is none \
             (or it has fewer than {AUTO_SIZE} ids); add one as root, e.g. the line \
             `containers:2147483647:2147483648` (any range of at least {AUTO_SIZE} ids not used by a user)"
        );
    }
    Ok(map)
}

/// The first `want` subordinate ids of `name` in an /etc/subuid-style text, in file order, as map lines.
/// Empty when there are fewer.
fn ranges_for(text: &str, name: &str, want: u32) -> Result<Vec<IdRange>> {
    let mut out = Vec::new();
    let mut inside = 0u32;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 3 || f[0] != name {
            continue;
        }
        let (Ok(start), Ok(count)) = (f[1].parse::<u32>(), f[2].parse::<u32>()) else {
            bail!("line {}: {line:?} is not NAME:START:COUNT", n + 1);
        };
        if start.checked_add(count).is_none() {
            bail!("line {}: {line:?} goes past the largest id", n + 1);
        }
        let take = count.min(want - inside);
        if take == 0 {
            continue;
        }
        out.push(IdRange {
            inside,
            outside: start,
            count: take,
        });
        inside += take;
        if inside == want {
            return Ok(out);
        }
    }
    Ok(Vec::new())
}

fn map_text(m: &[IdRange]) -> String {
    m.iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// A user namespace with `maps`, held by the returned fd (`/proc/PID/ns/user` of a helper process that is gone
/// by then). Call while single-threaded, before unsharing the pid namespace (the helper would become its
/// pid 1).
pub(crate) fn create_userns(maps: &IdMaps) -> Result<OwnedFd> {
    use rustix::pipe::{PipeFlags, pipe_with};
    let (ready_rd, ready_wr) = pipe_with(PipeFlags::CLOEXEC)?;
    let (done_rd, done_wr) = pipe_with(PipeFlags::CLOEXEC)?;
    // SAFETY: single-threaded (the step runner runs no threads); the child only makes syscalls and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(ready_rd);
        drop(done_wr);
        // SAFETY: unshare, write, read and _exit on valid fds and buffers.
        unsafe {
            let ok: u8 = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                b'1'
            } else {
                b'0'
            };
            libc::write(ready_wr.as_raw_fd(), (&ok as *const u8).cast(), 1);
            let mut b = 0u8;
            libc::read(done_rd.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_wr);
    drop(done_rd);
    let result = (|| -> Result<OwnedFd> {
        let mut b = [0u8; 1];
        std::fs::File::from(ready_rd)
            .read_exact(&mut b)
            .context("waiting for the user namespace helper")?;
        if b[0] != b'1' {
            bail!(
                "creating a user namespace for --userns=auto failed (is user.max_user_namespaces 0, or \
                 is lade itself confined?)"
            );
        }
        let proc = format!("/proc/{pid}");
        std::fs::write(format!("{proc}/uid_map"), map_text(&maps.uids))
            .context("writing the step's uid_map")?;
        std::fs::write(format!("{proc}/gid_map"), map_text(&maps.gids))
            .context("writing the step's gid_map")?;
        let fd = rustix::fs::open(
            format!("{proc}/ns/user").as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .context("opening the step's user namespace")?;
        Ok(fd)
    })();
    drop(done_wr); // the helper's read returns and it exits
    let mut st = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    result
}

/// `MOUNT_ATTR_IDMAP` (linux/mount.h).
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// A detached copy of the mount at `path` (with the mounts below it when `recursive`), idmapped through
/// `userns`. Attach it with [`attach`].
pub(crate) fn idmapped_clone(path: &str, userns: &OwnedFd, recursive: bool) -> Result<OwnedFd> {
    use rustix::mount::{OpenTreeFlags, open_tree};
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = open_tree(rustix::fs::CWD, path, flags)
        .with_context(|| format!("cloning the mount {path}"))?;
    super::mounts::mount_setattr(
        &tree,
        recursive,
        MOUNT_ATTR_IDMAP,
        0,
        userns.as_raw_fd() as u64,
    )
    .with_context(|| format!("idmapping {path}"))?;
    Ok(tree)
}

/// Mount the detached `tree` on the mountpoint `target` (an O_PATH fd).
pub(crate) fn attach(tree: &OwnedFd, target: &OwnedFd) -> Result<()> {
    use rustix::mount::{MoveMountFlags, move_mount};
    move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .context("mounting an idmapped tree")
}

/// Idmap the mount at `path` in place: an idmapped clone mounted on top of it.
pub(crate) fn idmap_in_place(path: &str, userns: &OwnedFd, recursive: bool) -> Result<()> {
    let tree = idmapped_clone(path, userns, recursive)?;
    let target = rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {path}"))?;
    attach(&tree, &target).with_context(|| format!("idmapping {path} in place"))
}

/// Run `f` with the filesystem ids of the namespace's root (`owner`, host ids) and every permitted capability
/// still effective (changing the fsuid away from 0 drops the file capabilities), then go back to 0.
pub(crate) fn as_mapped_root<T>(owner: (u32, u32), f: impl FnOnce() -> Result<T>) -> Result<T> {
    use caps::CapSet;
    let permitted = caps::read(None, CapSet::Permitted).context("reading the capabilities")?;
    // SAFETY: setfsuid/setfsgid take plain integers.
    unsafe {
        libc::setfsgid(owner.1);
        libc::setfsuid(owner.0);
    }
    let r = caps::set(None, CapSet::Effective, &permitted)
        .context("restoring the capabilities")
        .and_then(|_| f());
    // SAFETY: as above.
    unsafe {
        libc::setfsuid(0);
        libc::setfsgid(0);
    }
    caps::set(None, CapSet::Effective, &permitted).context("restoring the capabilities")?;
    r
}

/// Enter `userns` (root there, with every capability in it) and take a mount namespace owned by it. The
/// mounts copied into it are locked: the step cannot unmount or remount what the setup made. `rootfs` is bound
/// onto itself so the new root is a mount of this namespace, which pivot_root needs.
pub(crate) fn enter(userns: &OwnedFd, rootfs: &str) -> Result<()> {
    // SAFETY: setns and unshare on a valid fd; this process is single-threaded.
    unsafe {
        if libc::setns(userns.as_raw_fd(), libc::CLONE_NEWUSER) != 0 {
            bail!(
                "entering the step's user namespace: {}",
                std::io::Error::last_os_error()
            );
        }
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            bail!(
                "unshare(mount) in the step's user namespace: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    super::mounts::mount(
        Some(rootfs),
        rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .context("binding the rootfs in the step's user namespace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_first_ids_of_containers_in_file_order() {
        let t = "alice:100000:65536\ncontainers:200000:1000\n# c\ncontainers:300000:100000\n";
        let m = ranges_for(t, "containers", 65536).unwrap();
        assert_eq!(
            m,
            vec![
                IdRange {
                    inside: 0,
                    outside: 200000,
                    count: 1000
                },
                IdRange {
                    inside: 1000,
                    outside: 300000,
                    count: 64536
                },
            ]
        );
        assert!(ranges_for(t, "bob", 65536).unwrap().is_empty());
        assert!(
            ranges_for("containers:1:10\n", "containers", 65536)
                .unwrap()
                .is_empty()
        );
        assert!(ranges_for("containers:x:10\n", "containers", 65536).is_err());
        assert_eq!(
            ranges_for("containers:2147483647:2147483648\n", "containers", 65536).unwrap()[0]
                .outside,
            2147483647
        );
    }
}
