//! RUN isolation: one step's command in its own rootfs snapshot and namespaces (or under runc).
//!
//! The caller prepares a [`Snapshot`], fills a [`StepSpec`] and calls [`run_step`]. That spawns the lade
//! binary as `lade __run-step SPEC` ([`child::main`]), a fresh single-threaded process that unshares the
//! namespaces, forks the step's pid 1, mounts the rootfs, /proc, /dev, /sys, resolv.conf, hosts, hostname and
//! the RUN --mount mounts, pivots into the rootfs, drops to the step's user and execs the command. Afterwards
//! the mountpoints the step's setup created are removed from the snapshot, so they never reach the layer.
//!
//! Mount kinds ([`MountKind`]): host binds, tmpfs, secret files, a subdir of a host dir resolved inside it
//! (cache dirs, the context), and another [`Snapshot`]'s rootfs (`--mount from=<stage>`). Binds are flat, so
//! a read-only one never carries a writable submount. With [`StepSpec::init`] (emulated steps) the command
//! runs as pid 2 under a minimal init, since qemu-user as pid 1 cannot die of a signal. The step spec and
//! scratch files live in a [`PrivateDir`] in /dev/shm.
//!
//! Confinement ([`Security`]), at least runc's default in both isolations: the containers.conf default
//! capability set (`--cap-add`/`--cap-drop`), the containers seccomp profile (`seccomp`: compiled once and
//! loaded by the step), no_new_privs on request, runc's masked and read-only /proc and /sys paths, /sys
//! read-only with its submounts, and every mount nodev except the standard device nodes bound into /dev
//! and the step's devpts.
//!
//! `--userns=auto` ([`idmap`], lade's namespaces only): the step runs in a user namespace mapping 65536 ids
//! of the `containers` subuid/subgid range; the setup mounts as above in the host's namespace, over idmapped
//! layer dirs and binds so the layer keeps its owners, and pid 1 enters the namespace (and a mount namespace
//! of its own there, which locks every setup mount) just before pivot_root.

pub mod child;
pub mod idmap;
mod mounts;
mod oci;
mod private;
mod seccomp;
pub mod security;
mod snapshot;
pub mod user;

/// Why `--isolation oci` refuses `--userns=auto`.
pub const USERNS_OCI_UNSUPPORTED: &str = "--userns=auto works with lade's own namespaces (the default \
     --isolation chroot) only: with --isolation oci the layer's owners would need runc's idmapped mounts \
     (runc 1.2 or newer), which lade does not set up yet";

pub use private::PrivateDir;
pub use security::{Seccomp, Security};
pub use snapshot::{RootfsMode, RootfsSpec, Snapshot};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The step's network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network, as buildah does by default.
    #[default]
    Host,
    /// A new network namespace with only `lo` (up).
    None,
}

/// How the step is isolated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// lade's own namespaces.
    #[default]
    Namespaces,
    /// `runc run` with an OCI runtime config.
    Oci,
}

/// What a RUN --mount provides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountKind {
    /// A host directory or file (context, another stage's rootfs, a cache dir the caller manages).
    Bind { source: PathBuf, readonly: bool },
    /// An empty tmpfs.
    Tmpfs { size: Option<u64> },
    /// A secret file, bound read-only; the mountpoint never reaches the layer.
    Secret { source: PathBuf },
    /// `subpath` of the host directory `root`, resolved inside it by the step's setup (no symlink or `..` in
    /// it can leave `root`); created as a directory (0755) when missing and `create` is set. For cache dirs a
    /// step may have filled with symlinks, and context directories.
    Subdir {
        root: PathBuf,
        subpath: String,
        readonly: bool,
        create: bool,
    },
    /// Another root filesystem (a [`Snapshot`]'s: a stage or image for `RUN --mount type=bind,from=`),
    /// mounted privately for this step; its `subpath`, resolved inside it, is bound at the target. Writes
    /// (when not read-only) land in that snapshot's own upper and are discarded with it.
    Rootfs {
        rootfs: RootfsSpec,
        subpath: String,
        readonly: bool,
    },
}

/// One RUN --mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMount {
    /// Absolute path inside the rootfs.
    pub target: String,
    pub kind: MountKind,
}

impl StepMount {
    pub fn bind(source: impl Into<PathBuf>, target: &str, readonly: bool) -> Self {
        StepMount {
            target: target.into(),
            kind: MountKind::Bind {
                source: source.into(),
                readonly,
            },
        }
    }
    pub fn tmpfs(target: &str) -> Self {
        StepMount {
            target: target.into(),
            kind: MountKind::Tmpfs { size: None },
        }
    }
    /// `subpath` of `root` (resolved inside it) at `target`; see [`MountKind::Subdir`].
    pub fn subdir(
        root: impl Into<PathBuf>,
        subpath: &str,
        target: &str,
        readonly: bool,
        create: bool,
    ) -> Self {
        StepMount {
            target: target.into(),
            kind: MountKind::Subdir {
                root: root.into(),
                subpath: subpath.into(),
                readonly,
                create,
            },
        }
    }
    /// `subpath` of the snapshot `snap`'s root filesystem at `target`; `snap` must outlive the step.
    pub fn rootfs(snap: &Snapshot, subpath: &str, target: &str, readonly: bool) -> Self {
        StepMount {
            target: target.into(),
            kind: MountKind::Rootfs {
                rootfs: snap.rootfs_spec(),
                subpath: subpath.into(),
                readonly,
            },
        }
    }
    /// A secret at `/run/secrets/<id>`.
    pub fn secret(source: impl Into<PathBuf>, id: &str) -> Self {
        StepMount {
            target: format!("/run/secrets/{id}"),
            kind: MountKind::Secret {
                source: source.into(),
            },
        }
    }
}

/// Everything about one RUN step except its rootfs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepSpec {
    /// The command; shell form already turned into argv by the caller (SHELL + the line).
    pub argv: Vec<String>,
    /// `KEY=value`; PATH gets the usual default and HOME the user's home when missing.
    pub env: Vec<String>,
    /// `name`, `uid`, `uid:gid`, `name:group`; empty means root.
    pub user: String,
    /// Created if missing; empty means `/`.
    pub workdir: String,
    pub hostname: String,
    pub network: Network,
    pub isolation: Isolation,
    pub mounts: Vec<StepMount>,
    /// Files to bind at /etc/resolv.conf and /etc/hosts (copies are made); the host's by default.
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    /// A qemu-user-static binary to run the command under (the `Inject` runner), or a binfmt interpreter
    /// without the F flag to make reachable inside the rootfs at the same path.
    pub emulator: Option<Emulator>,
    /// Run the command as pid 2 under a minimal init that reaps and reports its status, instead of as pid 1.
    /// Needed under qemu-user: as pid 1 it cannot die of a signal, so a crashing emulated program would hang
    /// the step. Native steps leave it off, so the command is pid 1 as in buildah and Docker. lade's own
    /// namespaces only (runc always makes the command pid 1).
    #[serde(default)]
    pub init: bool,
    /// Capabilities, seccomp and no_new_privs of the step.
    #[serde(default)]
    pub security: Security,
    /// The binary to re-exec for the step (default: this executable, through /proc/self/exe).
    #[serde(skip)]
    pub helper: Option<PathBuf>,
    /// The command's stdin and stdout are lade's own (`lade run`), instead of no input and its output copied
    /// to lade's stderr (a build's RUN).
    #[serde(skip)]
    pub attach: bool,
}

/// Emulation inside the step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Emulator {
    /// Bind this host binary at the same path inside the rootfs (binfmt handler without F).
    Interpreter(PathBuf),
    /// No binfmt handler: bind this host qemu-user-static binary at [`INJECTED_QEMU`] inside the rootfs and run
    /// the command under it. Only the step's own program is emulated; programs it executes are not (that
    /// needs a binfmt handler), so this suits exec-form steps and shell builtins.
    Inject(PathBuf),
}

/// Where an injected qemu-user-static appears inside the rootfs during a step (never committed).
pub const INJECTED_QEMU: &str = "/.lade-qemu-static";

impl StepSpec {
    pub fn new(argv: Vec<String>) -> Self {
        StepSpec {
            argv,
            env: Vec::new(),
            user: String::new(),
            workdir: String::new(),
            hostname: "lade".into(),
            network: Network::Host,
            isolation: Isolation::Namespaces,
            mounts: Vec::new(),
            resolv_conf: None,
            hosts: None,
            emulator: None,
            init: false,
            security: Security::default(),
            helper: None,
            attach: false,
        }
    }
}

/// How the step ended.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepOutcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The last lines of the step's stderr (up to 4 KiB).
    pub stderr_tail: String,
}

impl StepOutcome {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
    /// "exit code 2" / "killed by signal 11 (SIGSEGV)".
    pub fn describe(&self) -> String {
        match (self.exit_code, self.signal) {
            (_, Some(s)) => format!("killed by signal {s} ({})", signal_name(s)),
            (Some(c), None) => format!("exit code {c}"),
            (None, None) => "no exit status".into(),
        }
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGILL => "SIGILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}

/// The file handed to `lade __run-step`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChildSpec {
    pub step: StepSpec,
    pub rootfs: snapshot::RootfsSpec,
    /// Scratch dir for this run (copies of resolv.conf/hosts/hostname, runc bundle).
    pub scratch: PathBuf,
    /// Where the child writes [`ChildResult`].
    pub result: PathBuf,
    /// The compiled seccomp program to load (lade's namespaces; runc compiles the profile itself).
    #[serde(default)]
    pub seccomp_bpf: Option<PathBuf>,
}

/// What `lade __run-step` reports back.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ChildResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Paths (relative to the rootfs) the setup created for mountpoints.
    pub artifacts: Vec<PathBuf>,
    /// The setup failed before the command ran.
    pub setup_error: Option<String>,
}

const TAIL: usize = 4096;

/// Run one step in `snap`. Err when the step could not be set up; a command that fails is an `Ok` outcome.
/// The command's stdout and stderr are copied to lade's stderr as they come.
pub fn run_step(snap: &Snapshot, spec: &StepSpec) -> Result<StepOutcome> {
    if spec.argv.is_empty() {
        bail!("RUN with an empty command");
    }
    // The spec holds the step's environment, secrets given as variables included: keep it in RAM.
    let scratch =
        PrivateDir::in_ram("lade-run-", snap.dir()).context("creating the step scratch dir")?;
    let mut child = ChildSpec {
        step: spec.clone(),
        rootfs: snap.rootfs_spec(),
        scratch: scratch.path().to_path_buf(),
        result: scratch.path().join("result.json"),
        seccomp_bpf: None,
    };
    if spec.isolation == Isolation::Namespaces
        && let Some(bpf) = seccomp::compiled_bpf(&spec.security)?
    {
        let p = scratch.path().join("seccomp.bpf");
        std::fs::write(&p, &*bpf).context("writing the step's seccomp program")?;
        child.seccomp_bpf = Some(p);
    }
    let spec_path = scratch.path().join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&child)?).context("writing the step spec")?;
    let helper = match &spec.helper {
        Some(h) => h.clone(),
        // This very binary, even when its file was replaced or deleted since lade started (an upgrade or a
        // rebuild during a long build): /proc/self/exe in the child names the inode it was forked from.
        None => PathBuf::from("/proc/self/exe"),
    };
    let (stdin, stdout) = if spec.attach {
        (Stdio::inherit(), Stdio::inherit())
    } else {
        (Stdio::null(), Stdio::piped())
    };
    let mut proc = Command::new(&helper)
        .arg("__run-step")
        .arg(&spec_path)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} __run-step", helper.display()))?;
    let out = proc.stdout.take();
    let mut err = proc.stderr.take().expect("piped stderr");
    let fwd = std::thread::spawn(move || {
        let Some(mut out) = out else { return };
        let mut buf = [0u8; 8192];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = std::io::stderr().write_all(&buf[..n]);
        }
    });
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = err.read(&mut buf) {
        if n == 0 {
            break;
        }
        let _ = std::io::stderr().write_all(&buf[..n]);
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * TAIL {
            tail.drain(..tail.len() - TAIL);
        }
    }
    let _ = fwd.join();
    let status = proc.wait().context("waiting for the step")?;
    if tail.len() > TAIL {
        tail.drain(..tail.len() - TAIL);
    }
    let stderr_tail = String::from_utf8_lossy(&tail).into_owned();
    let result: ChildResult = match std::fs::read(&child.result) {
        Ok(b) => serde_json::from_slice(&b).context("reading the step result")?,
        Err(_) => bail!(
            "the step runner ({} __run-step) failed ({status}) before reporting:\n{stderr_tail}",
            helper.display()
        ),
    };
    snap.remove_artifacts(&result.artifacts)?;
    if let Some(e) = result.setup_error {
        bail!("setting up the RUN step failed: {e}");
    }
    Ok(StepOutcome {
        exit_code: result.exit_code,
        signal: result.signal,
        stderr_tail,
    })
}

/// Read an absolute path inside `root` (symlinks resolved inside it), e.g. the image's /etc/passwd.
pub fn read_in_root(root: &Path, path: &str) -> std::io::Result<Vec<u8>> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = rustix::fs::openat2(
        &dir,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    let mut v = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut v)?;
    Ok(v)
}
