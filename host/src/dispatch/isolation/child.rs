//! `lade __run-step SPEC`: the process that runs one step. It starts single-threaded, unshares the namespaces,
//! forks the step's pid 1 (which mounts the rootfs, pivots into it, drops privileges and execs the command),
//! waits for it and writes a [`ChildResult`] next to the spec.

use super::mounts::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY, Root, bind, fd_path, loopback_up, mount, set_attr_fd,
};
use super::snapshot::RootfsSpec;
use super::{ChildResult, ChildSpec, Emulator, Isolation, MountKind, Network, StepMount, user};
use anyhow::{Context, Result, bail};
use rustix::fs::{Mode, OFlags};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Entry point of the hidden subcommand.
pub fn main(spec_path: &Path) -> Result<()> {
    // The step dies with the lade that started it (a `lade run` or a build killed with -9), as its pid 1 dies
    // with this process: nothing keeps writing into a rootfs whose lock is gone.
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let bytes = std::fs::read(spec_path)
        .with_context(|| format!("reading step spec {}", spec_path.display()))?;
    let cs: ChildSpec = serde_json::from_slice(&bytes).context("parsing the step spec")?;
    let mut result = ChildResult::default();
    if let Err(e) = run(&cs, &mut result) {
        result.setup_error = Some(format!("{e:#}"));
    }
    let tmp = cs.result.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&result)?).context("writing the step result")?;
    std::fs::rename(&tmp, &cs.result).context("writing the step result")?;
    Ok(())
}

/// Files bound at /etc/resolv.conf, /etc/hosts and /etc/hostname: copies, so the step cannot change the host's.
fn prepare_etc_files(cs: &ChildSpec) -> Result<[(PathBuf, &'static str); 3]> {
    let step = &cs.step;
    let resolv = cs.scratch.join("resolv.conf");
    let src = step
        .resolv_conf
        .clone()
        .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf"));
    let mut content = std::fs::read(&src).unwrap_or_default();
    if step.network == Network::None {
        content.clear();
    }
    std::fs::write(&resolv, content)?;
    let hosts = cs.scratch.join("hosts");
    let mut h = match &step.hosts {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string(),
    };
    h.push_str(&format!("127.0.1.1\t{}\n", step.hostname));
    std::fs::write(&hosts, h)?;
    let hostname = cs.scratch.join("hostname");
    std::fs::write(&hostname, format!("{}\n", step.hostname))?;
    Ok([
        (resolv, "/etc/resolv.conf"),
        (hosts, "/etc/hosts"),
        (hostname, "/etc/hostname"),
    ])
}

fn run(cs: &ChildSpec, result: &mut ChildResult) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        // Both isolations mount the rootfs here first, which needs CAP_SYS_ADMIN (in this user namespace:
        // `lade build` re-runs itself in one when started without root).
        bail!(
            "RUN needs root or lade's rootless user namespace: run it through `lade build` (which sets one up from /etc/subuid), or as root"
        );
    }
    let etc = prepare_etc_files(cs)?;
    if cs.step.isolation == Isolation::Oci {
        return super::oci::run(cs, &etc, result);
    }
    // Made first: the helper that creates it must not become the new pid namespace's pid 1.
    let userns = match &cs.step.security.userns {
        Some(maps) => Some(super::idmap::create_userns(maps)?),
        None => None,
    };
    let mut flags = libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if cs.step.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: unshare has no memory-safety preconditions.
    if unsafe { libc::unshare(flags) } != 0 {
        bail!(
            "unshare(pid, ipc, uts{}): {}",
            if flags & libc::CLONE_NEWNET != 0 {
                ", net"
            } else {
                ""
            },
            std::io::Error::last_os_error()
        );
    }
    // Errors of the step's pid 1 before exec come back through this pipe; exec closes it.
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // With `init`, pid 1 reports the command's status through this pipe (it cannot die of its signal).
    let (status_rd, status_wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let artifacts_file = cs.scratch.join("artifacts.json");
    // SAFETY: this process is single-threaded (the hidden subcommand runs no other threads), so the child may
    // allocate and take locks freely.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(rd);
        drop(status_rd);
        let err = step_pid1(cs, &etc, &artifacts_file, status_wr, userns.as_ref()).unwrap_err();
        let mut f = std::fs::File::from(wr);
        let _ = f.write_all(format!("{err:#}").as_bytes());
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(125) };
    }
    drop(wr);
    drop(status_wr);
    let mut msg = String::new();
    std::fs::File::from(rd).read_to_string(&mut msg).ok();
    let mut reported = String::new();
    std::fs::File::from(status_rd)
        .read_to_string(&mut reported)
        .ok();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            bail!("waitpid: {}", std::io::Error::last_os_error());
        }
    }
    if let Ok(b) = std::fs::read(&artifacts_file) {
        result.artifacts = serde_json::from_slice(&b).unwrap_or_default();
    }
    if !msg.is_empty() {
        bail!("{msg}");
    }
    if !reported.is_empty() {
        status = reported
            .trim()
            .parse()
            .with_context(|| format!("the step's init reported {reported:?}"))?;
    }
    if libc::WIFEXITED(status) {
        result.exit_code = Some(libc::WEXITSTATUS(status));
    } else if libc::WIFSIGNALED(status) {
        result.signal = Some(libc::WTERMSIG(status));
    }
    Ok(())
}

/// pid 1 when `init` is set: run the command as pid 2, reap every process until it exits, and report its raw
/// wait status through `status`. A pid 1 can never die of a signal sent from inside its namespace, which
/// makes qemu-user (as pid 1) hang forever when the emulated program should die of one.
fn init_and_exec(
    exec: impl FnOnce() -> Result<std::convert::Infallible>,
    status: OwnedFd,
) -> Result<std::convert::Infallible> {
    // SAFETY: single-threaded; the child only execs (or reports an error and exits).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(status);
        return exec();
    }
    let mut st = 0;
    loop {
        // SAFETY: reaping children of this process.
        let w = unsafe { libc::waitpid(-1, &mut st, 0) };
        if w == pid {
            break;
        }
        if w < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            bail!("waitpid: {}", std::io::Error::last_os_error());
        }
    }
    let mut f = std::fs::File::from(status);
    let _ = f.write_all(st.to_string().as_bytes());
    drop(f);
    // SAFETY: leaving without running destructors, as after a failed exec.
    unsafe { libc::_exit(0) }
}

/// Mount the rootfs at its mountpoint and return the path to pivot into.
pub(crate) fn mount_rootfs(spec: &RootfsSpec) -> Result<PathBuf> {
    match spec {
        RootfsSpec::Overlay {
            lowers,
            upper,
            work,
            merged,
            user_xattr,
        } => {
            // A snapshot mounted again (several steps on one snapshot) finds the marker its last volatile
            // mount left, which the kernel refuses; that mount is gone and the upper dir is ours, so clear it.
            let _ = std::fs::remove_dir_all(work.join("work/incompat/volatile"));
            // The new mount API takes one lower dir per call ("lowerdir+", Linux 6.8+): no limit on the number
            // of layers and no escaping of ':' or ','. Older kernels get the classic option string.
            match mount_overlay_fsconfig(lowers, upper, work, merged, *user_xattr) {
                Ok(()) => return Ok(merged.clone()),
                Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::INVAL => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e)).context(
                        "mounting the overlay rootfs (set LADE_NO_OVERLAY=1 to use the copy fallback)",
                    );
                }
            }
            let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
            let mut data = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                upper.display(),
                work.display()
            );
            if *user_xattr {
                data.push_str(",userxattr");
            }
            if data.len() >= 4000 {
                bail!(
                    "too many layers for one overlay mount ({} lower dirs); use the copy fallback (LADE_NO_OVERLAY=1)",
                    lowers.len()
                );
            }
            let target = merged.display().to_string();
            // `volatile` (Linux 5.10+; see mount_overlay_fsconfig) first, then without it for older kernels.
            let with_volatile = format!("{data},volatile");
            if mount(
                Some("overlay"),
                &target,
                Some("overlay"),
                0,
                Some(&with_volatile),
            )
            .is_err()
            {
                mount(Some("overlay"), &target, Some("overlay"), 0, Some(&data)).context(
                    "mounting the overlay rootfs (set LADE_NO_OVERLAY=1 to use the copy fallback)",
                )?;
            }
            Ok(merged.clone())
        }
        RootfsSpec::Dir { path } => {
            bind(path, &path.display().to_string(), false)?;
            Ok(path.clone())
        }
    }
}

fn mount_overlay_fsconfig(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    merged: &Path,
    user_xattr: bool,
) -> rustix::io::Result<()> {
    use rustix::mount::{
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, fsconfig_create,
        fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for l in lowers {
        fsconfig_set_string(&fs, "lowerdir+", l)?;
    }
    fsconfig_set_string(&fs, "upperdir", upper)?;
    fsconfig_set_string(&fs, "workdir", work)?;
    if user_xattr {
        fsconfig_set_flag(&fs, "userxattr")?;
    }
    // No fsync of every copied-up file: a step's upper dir is scratch until the step succeeds, then becomes
    // an unpacked-layer cache entry, which is trusted only within the boot that wrote it (layer::cache), and
    // the layer blob made from it is fsynced. Copy-up fsyncs made `chown -R` over a big tree several times
    // slower. Kernels before 5.10 do not know the flag; the mount goes on without it.
    let _ = fsconfig_set_flag(&fs, "volatile");
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        merged,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// The mountpoints of a step inside its rootfs (O_PATH fds).
struct Targets {
    /// /proc, /dev, /sys.
    standard: Vec<(OwnedFd, &'static str)>,
    /// resolv.conf, hosts, hostname with the files bound there.
    etc: Vec<(OwnedFd, PathBuf)>,
    /// One per step mount, in order.
    step: Vec<OwnedFd>,
    /// The emulator's mountpoint, the host binary and the target.
    emu: Option<(OwnedFd, PathBuf, String)>,
}

/// Create (or, a second time, just open) every mountpoint.
fn make_targets(
    root: &mut Root,
    cs: &ChildSpec,
    etc: &[(PathBuf, &'static str)],
    is_dir: &[bool],
) -> Result<Targets> {
    let mut standard = Vec::new();
    for d in ["/proc", "/dev", "/sys"] {
        standard.push((root.ensure_dir(d)?, d));
    }
    let mut etc_fds = Vec::new();
    for (src, target) in etc {
        etc_fds.push((root.ensure_file(target)?, src.clone()));
    }
    let mut step = Vec::new();
    for (m, dir) in cs.step.mounts.iter().zip(is_dir) {
        step.push(if *dir {
            root.ensure_dir(&m.target)?
        } else {
            root.ensure_file(&m.target)?
        });
    }
    let emu = match &cs.step.emulator {
        Some(Emulator::Interpreter(p)) => {
            let target = p.display().to_string();
            Some((root.ensure_file(&target)?, p.clone(), target))
        }
        Some(Emulator::Inject(p)) => {
            let target = super::INJECTED_QEMU.to_string();
            Some((root.ensure_file(&target)?, p.clone(), target))
        }
        None => None,
    };
    Ok(Targets {
        standard,
        etc: etc_fds,
        step,
        emu,
    })
}

/// Create every mountpoint the step needs and mount the standard filesystems and the step's own mounts.
/// Returns the root with the list of what it created. With `userns` (lade's namespaces only), the rootfs and
/// the binds are idmapped through it.
pub(crate) fn setup_mounts(
    cs: &ChildSpec,
    root_path: &Path,
    etc: &[(PathBuf, &'static str)],
    oci: bool,
    userns: Option<&OwnedFd>,
) -> Result<(Root, Vec<Option<ResolvedSource>>)> {
    let mut root = Root::open(root_path)?;
    let owner = cs
        .step
        .security
        .userns
        .as_ref()
        .filter(|_| userns.is_some() && !oci)
        .map(|m| (m.root_uid(), m.root_gid()));
    let mut mapper = match (userns, owner) {
        (Some(ns), Some(owner)) => Some(Mapper {
            ns,
            owner,
            done: Vec::new(),
        }),
        _ => None,
    };
    let mut sources = Vec::new();
    let mut is_dir = Vec::new();
    let mut mounted = Vec::new();
    for m in &cs.step.mounts {
        let resolved = resolve_source(m, &mut mounted, mapper.as_mut())?;
        is_dir.push(match (&m.kind, &resolved) {
            (_, Some(r)) => r.is_dir,
            (MountKind::Bind { source, .. }, _) => source.is_dir(),
            (MountKind::Tmpfs { .. }, _) => true,
            _ => false,
        });
        sources.push(resolved);
    }
    let mut targets = make_targets(&mut root, cs, etc, &is_dir)?;
    // The upper of an overlay holds everything the setup created or copied up; all of it is removed later
    // when it is still empty.
    if let RootfsSpec::Overlay { upper, .. } = &cs.rootfs {
        list_tree(upper, Path::new(""), &mut root.created)?;
    }
    if oci {
        // runc mounts /proc, /dev and /sys itself from the config; the rest too. Its rbind of the rootfs
        // keeps the rootfs mount's nodev.
        root.set_attr(true, MOUNT_ATTR_NODEV, 0)
            .context("making the rootfs nodev")?;
        return Ok((root, sources));
    }
    if let Some(mapper) = mapper.as_mut() {
        // The mountpoints exist now (host root cannot create files through the idmapped mount: its uid has
        // no mapping there); open them again on the rootfs mounted anew over idmapped layers.
        // Nothing may hold the plain mount open: it is unmounted and its upper reused.
        let created = std::mem::take(&mut root.created);
        drop(targets);
        drop(root);
        remount_idmapped(&cs.rootfs, root_path, mapper)
            .context("idmapping the rootfs for --userns=auto")?;
        root = Root::open(root_path)?;
        root.created = created;
        targets = make_targets(&mut root, cs, etc, &is_dir)?;
    }
    mount_standard(&mut root, &targets.standard, owner)?;
    for ((fd, src), (_, target)) in targets.etc.iter().zip(etc) {
        bind_mapped(&root, src, target, fd, false, userns)?;
    }
    for ((fd, m), resolved) in targets.step.iter().zip(&cs.step.mounts).zip(&sources) {
        let src = resolved.as_ref().map(|r| fd_path(&r.fd));
        mount_step_mount(&root, fd, m, src.as_deref(), userns, owner)?;
    }
    if let Some((fd, p, target)) = &targets.emu {
        root.bind_at(p, target, fd, true, false)?;
    }
    confine_mounts(&root)?;
    Ok((root, sources))
}

/// Mounts seen through a user namespace's idmapping. overlayfs cannot be idmapped itself, but its layers can:
/// the lower dirs and the step dir (upper and work) are idmapped in place (in this step's private mount
/// namespace, each once) and the overlay mounted over them.
struct Mapper<'a> {
    ns: &'a OwnedFd,
    /// The namespace's root as host ids.
    owner: (u32, u32),
    /// Directories already idmapped in place.
    done: Vec<PathBuf>,
}

impl Mapper<'_> {
    fn idmap_dir(&mut self, dir: &Path) -> Result<()> {
        if self.done.iter().any(|d| dir.starts_with(d)) {
            return Ok(());
        }
        super::idmap::idmap_in_place(&dir.display().to_string(), self.ns, false)?;
        self.done.push(dir.to_path_buf());
        Ok(())
    }

    /// [`mount_rootfs`] over idmapped layers.
    fn mount_rootfs(&mut self, spec: &RootfsSpec) -> Result<PathBuf> {
        match spec {
            RootfsSpec::Overlay { lowers, upper, .. } => {
                let dir = upper
                    .parent()
                    .context("the overlay upper dir has no parent")?;
                self.idmap_dir(dir)?;
                for l in lowers {
                    self.idmap_dir(l)?;
                }
                // overlayfs does its own work in the upper (work dir, copy-up, whiteouts) with the mounter's
                // credentials, through the idmapped mount: they must be the namespace's root there.
                super::idmap::as_mapped_root(self.owner, || mount_rootfs(spec))
            }
            RootfsSpec::Dir { path } => {
                self.idmap_dir(path)?;
                mount_rootfs(spec)
            }
        }
    }
}

/// Mount the rootfs again over idmapped layers (the plain mount made the mountpoints: host root cannot create
/// files through an idmapped mount, its uid has no mapping there).
fn remount_idmapped(spec: &RootfsSpec, root_path: &Path, mapper: &mut Mapper) -> Result<()> {
    let target = CString::new(root_path.as_os_str().as_bytes())?;
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(target.as_ptr(), 0) } != 0 {
        bail!(
            "unmounting {}: {}",
            root_path.display(),
            std::io::Error::last_os_error()
        );
    }
    mapper.mount_rootfs(spec)?;
    Ok(())
}

/// A flat bind of `src` on the mountpoint `fd` (at `target` inside the root), idmapped through `userns`
/// when there is one. Where the source's filesystem cannot be idmapped, the bind is made read-only instead
/// (its files show up as owned by nobody, and the step's root has no capability over them).
fn bind_mapped(
    root: &Root,
    src: &Path,
    target: &str,
    fd: &OwnedFd,
    readonly: bool,
    userns: Option<&OwnedFd>,
) -> Result<()> {
    let Some(ns) = userns else {
        return root.bind_at(src, target, fd, readonly, false);
    };
    match super::idmap::idmapped_clone(&src.display().to_string(), ns, false) {
        Ok(tree) => {
            super::idmap::attach(&tree, fd).with_context(|| format!("mounting on {target}"))?;
            if readonly {
                // A fresh lookup reaches the new mount.
                let now = root.open_path(target)?;
                set_attr_fd(&now, false, MOUNT_ATTR_RDONLY, 0)
                    .with_context(|| format!("making {target} read-only"))?;
            }
            Ok(())
        }
        Err(_) => root.bind_at(src, target, fd, true, false),
    }
}

/// /proc, a tmpfs /dev with devpts, shm and the usual links, and a read-only /sys.
fn mount_standard(
    root: &mut Root,
    targets: &[(OwnedFd, &str)],
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let with_owner = |o: &str| match owner_opts(owner) {
        Some(x) => format!("{o},{x}"),
        None => o.to_string(),
    };
    let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(
        Some("proc"),
        &fd_path(&targets[0].0),
        Some("proc"),
        nosuid_nodev_noexec,
        None,
    )?;
    mount(
        Some("tmpfs"),
        &fd_path(&targets[1].0),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_STRICTATIME,
        Some(&with_owner("mode=755,size=65536k")),
    )?;
    // Everything below /dev goes through the new tmpfs's fd: nothing from the image can redirect it.
    let dev_fd = root.open_dir("/dev")?;
    let dev = PathBuf::from(fd_path(&dev_fd));
    for name in DEVICES {
        let p = dev.join(name);
        std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
    }
    std::fs::create_dir(dev.join("pts"))?;
    mount(
        Some("devpts"),
        &dev.join("pts").display().to_string(),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"))?;
    std::fs::create_dir(dev.join("shm"))?;
    mount(
        Some("shm"),
        &dev.join("shm").display().to_string(),
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some(&with_owner("mode=1777,size=65536k")),
    )?;
    for (l, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(t, dev.join(l))?;
    }
    let sys = fd_path(&targets[2].0);
    if mount(
        Some("sysfs"),
        &sys,
        Some("sysfs"),
        nosuid_nodev_noexec | libc::MS_RDONLY,
        None,
    )
    .is_err()
    {
        root.bind_at(Path::new("/sys"), "/sys", &targets[2].0, true, true)?;
    }
    Ok(())
}

fn mount_step_mount(
    root: &Root,
    fd: &OwnedFd,
    m: &StepMount,
    resolved: Option<&str>,
    userns: Option<&OwnedFd>,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    match &m.kind {
        MountKind::Subdir { readonly, .. } => {
            let src = resolved.expect("resolved above");
            bind_mapped(root, Path::new(src), &m.target, fd, *readonly, userns)
        }
        // Mounted over idmapped layers already (resolve_source).
        MountKind::Rootfs { readonly, .. } => {
            let src = resolved.expect("resolved above");
            root.bind_at(Path::new(src), &m.target, fd, *readonly, false)
        }
        MountKind::Bind { source, readonly } => {
            bind_mapped(root, source, &m.target, fd, *readonly, userns)
        }
        MountKind::Tmpfs { size } => {
            let mut data: Vec<String> = size.map(|s| format!("size={s}")).into_iter().collect();
            data.extend(owner_opts(owner));
            let data = (!data.is_empty()).then(|| data.join(","));
            mount(
                Some("tmpfs"),
                &fd_path(fd),
                Some("tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_deref(),
            )
        }
        MountKind::Secret { source } => bind_mapped(root, source, &m.target, fd, true, userns),
    }
}

/// tmpfs options that make its root owned by the step's root (a user namespace's uid 0 on the host).
fn owner_opts(owner: Option<(u32, u32)>) -> Option<String> {
    owner.map(|(u, g)| format!("uid={u},gid={g}"))
}

/// The device nodes a step gets, bound from the host's /dev.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// What runc (through the containers tools' defaults) masks: files get /dev/null, directories an empty
/// read-only tmpfs.
pub(crate) const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/dev/block",
];
/// What runc makes read-only below /proc.
pub(crate) const READONLY: &[&str] = &[
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// runc's default confinement of the mount tree: everything nodev but the standard device nodes (and the
/// step's own devpts), /sys read-only with its submounts, the masked and read-only paths.
pub(crate) fn confine_mounts(root: &Root) -> Result<()> {
    root.set_attr(true, MOUNT_ATTR_NODEV, 0)
        .context("making the step's mounts nodev")?;
    let sys = root.open_dir("/sys")?;
    set_attr_fd(&sys, true, MOUNT_ATTR_RDONLY, 0).context("making /sys read-only")?;
    let pts = root.open_dir("/dev/pts")?;
    set_attr_fd(&pts, false, 0, MOUNT_ATTR_NODEV).context("allowing the step's ptys")?;
    let dev = root.open_dir("/dev")?;
    for name in DEVICES {
        let node = rustix::fs::openat(
            &dev,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        bind(&Path::new("/dev").join(name), &fd_path(&node), false)?;
    }
    for p in MASKED {
        let Ok(fd) = root.open_path(p) else {
            continue;
        };
        let st = rustix::fs::fstat(&fd)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
            mount(
                Some("tmpfs"),
                &fd_path(&fd),
                Some("tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some("size=0"),
            )
        } else {
            bind(Path::new("/dev/null"), &fd_path(&fd), false)
        }
        .with_context(|| format!("masking {p}"))?;
    }
    for p in READONLY {
        let Ok(fd) = root.open_path(p) else {
            continue;
        };
        bind(Path::new(&fd_path(&fd)), &fd_path(&fd), false)?;
        // The new mount, reached by a fresh lookup.
        let now = root.open_path(p)?;
        set_attr_fd(&now, true, MOUNT_ATTR_RDONLY, 0)
            .with_context(|| format!("making {p} read-only"))?;
    }
    Ok(())
}

/// The source of a [`MountKind::Subdir`] or [`MountKind::Rootfs`] mount, resolved inside its own root.
pub(crate) struct ResolvedSource {
    /// O_PATH fd of the source; binding `/proc/self/fd/N` binds exactly what was resolved.
    pub fd: std::os::fd::OwnedFd,
    pub is_dir: bool,
    /// The source's real path (for runc, which takes paths).
    pub path: PathBuf,
}

/// Mount a nested rootfs if the mount has one (once per rootfs: `mounted` remembers them), then resolve the
/// mount's subpath inside its root (creating it for `create`). None for the other kinds.
fn resolve_source(
    m: &StepMount,
    mounted: &mut Vec<(RootfsSpec, PathBuf)>,
    mapper: Option<&mut Mapper>,
) -> Result<Option<ResolvedSource>> {
    let (root_path, subpath, create) = match &m.kind {
        MountKind::Subdir {
            root,
            subpath,
            create,
            ..
        } => (root.clone(), subpath, *create),
        MountKind::Rootfs {
            rootfs, subpath, ..
        } => {
            let path = match mounted.iter().find(|(r, _)| r == rootfs) {
                Some((_, p)) => p.clone(),
                None => {
                    let p = match mapper {
                        Some(mapper) => mapper.mount_rootfs(rootfs),
                        None => mount_rootfs(rootfs),
                    }
                    .with_context(|| format!("mounting the source filesystem of {}", m.target))?;
                    mounted.push((rootfs.clone(), p.clone()));
                    p
                }
            };
            (path, subpath, false)
        }
        _ => return Ok(None),
    };
    let mut r = Root::open(&root_path)?;
    let abs = format!("/{}", subpath.trim_start_matches('/'));
    let fd = if create {
        r.ensure_dir(&abs)?
    } else {
        r.open_path(&abs).with_context(|| {
            format!(
                "the mount source {abs} for {} is not there in its filesystem",
                m.target
            )
        })?
    };
    let st = rustix::fs::fstat(&fd).with_context(|| format!("stat of mount source {abs}"))?;
    let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
    let path =
        std::fs::read_link(fd_path(&fd)).with_context(|| format!("locating mount source {abs}"))?;
    Ok(Some(ResolvedSource { fd, is_dir, path }))
}

fn list_tree(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let r = rel.join(e.file_name());
        out.push(r.clone());
        if e.file_type()?.is_dir() {
            list_tree(&e.path(), &r, out)?;
        }
    }
    Ok(())
}

/// The step's pid 1: returns only on error.
fn step_pid1(
    cs: &ChildSpec,
    etc: &[(PathBuf, &'static str)],
    artifacts_file: &Path,
    status: OwnedFd,
    userns: Option<&OwnedFd>,
) -> Result<std::convert::Infallible> {
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    // The step's own mount namespace: pivot_root there must not move the waiting parent's root.
    // SAFETY: unshare has no memory-safety preconditions.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        bail!("unshare(mount): {}", std::io::Error::last_os_error());
    }
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    let root_path = mount_rootfs(&cs.rootfs)?;
    let (root, _sources) = setup_mounts(cs, &root_path, etc, false, userns)?;
    std::fs::write(artifacts_file, serde_json::to_vec(&root.created)?)?;
    // Read before pivoting: the scratch dir is not reachable from inside the rootfs.
    let seccomp_bpf = match &cs.seccomp_bpf {
        Some(p) => Some(
            std::fs::read(p)
                .with_context(|| format!("reading the seccomp program {}", p.display()))?,
        ),
        None => None,
    };
    let cap_last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let hostname = &cs.step.hostname;
    // SAFETY: sethostname reads exactly len bytes of the string.
    if unsafe { libc::sethostname(hostname.as_ptr() as *const libc::c_char, hostname.len()) } != 0 {
        bail!("sethostname: {}", std::io::Error::last_os_error());
    }
    if cs.step.network == Network::None {
        loopback_up()?;
    }
    drop(root);
    if let Some(ns) = userns {
        // Last, after everything that needs the host's user namespace (mounts, hostname, lo).
        super::idmap::enter(ns, &root_path.display().to_string())?;
    }
    pivot_into(&root_path)?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let id = user::resolve(&cs.step.user, &passwd, &group)?;
    let workdir = if cs.step.workdir.is_empty() {
        "/".to_string()
    } else {
        cs.step.workdir.clone()
    };
    std::fs::create_dir_all(&workdir).with_context(|| format!("creating workdir {workdir}"))?;
    std::env::set_current_dir(&workdir).with_context(|| format!("entering workdir {workdir}"))?;
    let (env, path_var) = step_env(&cs.step.env, &id.home);
    let exe = find_executable(&cs.step.argv[0], &path_var)?;
    become_step_user(&cs.step.security, seccomp_bpf.as_deref(), cap_last, &id)?;
    // An injected qemu runs the program: `qemu -0 ARGV0 PROGRAM ARGS...`.
    let (exe, argv) = match &cs.step.emulator {
        Some(Emulator::Inject(_)) => {
            let mut a = vec![
                super::INJECTED_QEMU.to_string(),
                "-0".into(),
                cs.step.argv[0].clone(),
                exe.display().to_string(),
            ];
            a.extend(cs.step.argv[1..].iter().cloned());
            (PathBuf::from(super::INJECTED_QEMU), a)
        }
        _ => (exe, cs.step.argv.clone()),
    };
    let argv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .context("a NUL byte in the command")?;
    let envp: Vec<CString> = env
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .context("a NUL byte in the environment")?;
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let exe_c = CString::new(exe.as_os_str().as_bytes())?;
    let exec = || -> Result<std::convert::Infallible> {
        // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::execve(exe_c.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
        bail!(
            "executing {}: {}",
            exe.display(),
            std::io::Error::last_os_error()
        )
    };
    if cs.step.init {
        return init_and_exec(exec, status);
    }
    drop(status);
    exec()
}

/// Make `root_path` the root: pivot_root(".", ".") stacks the old root on the new one; detaching it leaves
/// only the rootfs.
fn pivot_into(root_path: &Path) -> Result<()> {
    std::env::set_current_dir(root_path)?;
    let dot = CString::new(".")?;
    // SAFETY: valid C strings.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        bail!(
            "pivot_root into {}: {}",
            root_path.display(),
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: valid C string.
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        bail!(
            "detaching the old root: {}",
            std::io::Error::last_os_error()
        );
    }
    std::env::set_current_dir("/")?;
    Ok(())
}

/// The step's environment with PATH and HOME defaulted, and the PATH to look the command up in.
fn step_env(given: &[String], home: &str) -> (Vec<String>, String) {
    let mut env = given.to_vec();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    (env, path_var)
}

/// The last steps as root: no_new_privs when asked, the seccomp program, the bounding set, the step's ids and
/// (for root) its capabilities.
fn become_step_user(
    security: &super::Security,
    seccomp_bpf: Option<&[u8]>,
    cap_last: u32,
    id: &user::Identity,
) -> Result<()> {
    if security.no_new_privileges {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            bail!("setting no_new_privs: {}", std::io::Error::last_os_error());
        }
    }
    // Loaded while the step still has CAP_SYS_ADMIN (no_new_privs is off by default, as in buildah); the
    // profile allows what is left to do (capset, setgroups, setresuid, execve).
    if let Some(bpf) = seccomp_bpf {
        super::seccomp::load_bpf(bpf)?;
    }
    let keep = security.cap_numbers();
    drop_bounding(&keep, cap_last)?;
    // Ids change with every capability still effective (SETUID and SETGID may be dropped below); a step with
    // another user than root loses its permitted and effective sets here, as in buildah.
    // SAFETY: plain id syscalls with valid pointers.
    unsafe {
        let groups: Vec<libc::gid_t> = id.groups.clone();
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            bail!("setgroups: {}", std::io::Error::last_os_error());
        }
        if libc::setresgid(id.gid, id.gid, id.gid) != 0 {
            bail!("setgid {}: {}", id.gid, std::io::Error::last_os_error());
        }
        if libc::setresuid(id.uid, id.uid, id.uid) != 0 {
            bail!("setuid {}: {}", id.uid, std::io::Error::last_os_error());
        }
    }
    if id.uid == 0 {
        set_capabilities(&keep)?;
    }
    Ok(())
}

fn find_executable(cmd: &str, path_var: &str) -> Result<PathBuf> {
    if cmd.contains('/') {
        return Ok(PathBuf::from(cmd));
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(cmd);
        if let Ok(md) = std::fs::metadata(&p) {
            use std::os::unix::fs::PermissionsExt;
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
        }
    }
    bail!("{cmd:?}: executable file not found in $PATH ({path_var}) inside the image")
}

/// Drop every capability but `keep` from the bounding set.
fn drop_bounding(keep: &[u32], cap_last: u32) -> Result<()> {
    for cap in 0..=cap_last {
        if !keep.contains(&cap) {
            // SAFETY: prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
                bail!(
                    "dropping capability {cap}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    Ok(())
}

/// Keep only `keep` in the permitted and effective sets; clear the inheritable and ambient sets.
fn set_capabilities(keep: &[u32]) -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    } != 0
    {
        bail!(
            "clearing the ambient capabilities: {}",
            std::io::Error::last_os_error()
        );
    }
    let mut mask = [0u32; 2];
    for c in keep.iter().filter(|c| **c < 64) {
        mask[(*c / 32) as usize] |= 1 << (c % 32);
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let h = Header {
        version: 0x20080522,
        pid: 0,
    };
    let d = [
        Data {
            effective: mask[0],
            permitted: mask[0],
            inheritable: 0,
        },
        Data {
            effective: mask[1],
            permitted: mask[1],
            inheritable: 0,
        },
    ];
    // SAFETY: capset with a v3 header and two data structs, as the ABI requires.
    if unsafe { libc::syscall(libc::SYS_capset, &h as *const Header, d.as_ptr()) } != 0 {
        bail!("capset: {}", std::io::Error::last_os_error());
    }
    Ok(())
}
