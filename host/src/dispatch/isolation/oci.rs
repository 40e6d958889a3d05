//! `--isolation oci`: the same rootfs and mountpoints, then `runc run` with an OCI runtime config.

use super::child::{MASKED, READONLY, ResolvedSource, mount_rootfs, setup_mounts};
use super::mounts::mount;
use super::{ChildResult, ChildSpec, MountKind, Network, read_in_root, user};
use anyhow::{Context, Result, bail};
use oci_spec::runtime::{
    LinuxNamespaceType, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bind_mount(dest: &str, src: &Path, ro: bool) -> Result<Mount> {
    let mut options = vec!["bind".to_string(), if ro { "ro" } else { "rw" }.to_string()];
    options.push("nosuid".into());
    options.push("nodev".into());
    Ok(MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(src)
        .options(options)
        .build()?)
}

pub(crate) fn run(
    cs: &ChildSpec,
    etc: &[(PathBuf, &'static str)],
    result: &mut ChildResult,
) -> Result<()> {
    if cs.step.security.userns.is_some() {
        bail!("{}", super::USERNS_OCI_UNSUPPORTED);
    }
    let runc = which("runc")
        .context("--isolation oci needs runc on PATH (Debian: apt-get install runc)")?;
    // SAFETY: unshare has no memory-safety preconditions; this process is single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        bail!("unshare(mount): {}", std::io::Error::last_os_error());
    }
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    let root_path = mount_rootfs(&cs.rootfs)?;
    let (root, sources) = setup_mounts(cs, &root_path, etc, true, None)?;
    result.artifacts = root.created.clone();
    let step = &cs.step;
    let passwd =
        String::from_utf8_lossy(&read_in_root(&root_path, "/etc/passwd").unwrap_or_default())
            .into_owned();
    let group =
        String::from_utf8_lossy(&read_in_root(&root_path, "/etc/group").unwrap_or_default())
            .into_owned();
    let id = user::resolve(&step.user, &passwd, &group)?;
    let workdir = if step.workdir.is_empty() {
        "/".to_string()
    } else {
        step.workdir.clone()
    };
    {
        // Created as part of the step (it belongs in the layer), inside the root.
        let mut r = super::mounts::Root::open(&root_path)?;
        r.ensure_dir(&workdir)?;
    }
    let mut env = step.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", id.home));
    }
    let sec = &step.security;
    let caps: oci_spec::runtime::Capabilities =
        serde_json::from_value(serde_json::json!(sec.caps)).context("capability names")?;
    let mut spec = Spec::default();
    let capabilities = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        // The builder's defaults would fill these with Docker's set, which may not be in the bounding set.
        .inheritable(oci_spec::runtime::Capabilities::new())
        .ambient(oci_spec::runtime::Capabilities::new())
        .build()?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(step.argv.clone())
        .env(env)
        .cwd(&workdir)
        .user(
            UserBuilder::default()
                .uid(id.uid)
                .gid(id.gid)
                .additional_gids(id.groups.clone())
                .build()?,
        )
        .no_new_privileges(sec.no_new_privileges)
        .capabilities(capabilities)
        .build()?;
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path(&root_path)
            .readonly(false)
            .build()?,
    ));
    spec.set_hostname(Some(step.hostname.clone()));
    let mounts = step_mounts(spec.mounts().clone().unwrap_or_default(), etc, cs, &sources)?;
    spec.set_mounts(Some(mounts));
    if let Some(linux) = spec.linux_mut().as_mut() {
        if let Some(ns) = linux.namespaces_mut().as_mut() {
            ns.retain(|n| n.typ() != LinuxNamespaceType::Network || step.network == Network::None);
        }
        let strings = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        linux.set_masked_paths(strings(MASKED));
        linux.set_readonly_paths(strings(READONLY));
        linux.set_seccomp(match super::seccomp::resolve(sec)? {
            Some(r) => Some(r.to_oci()?),
            None => None,
        });
    }
    let bundle = cs.scratch.join("bundle");
    std::fs::create_dir_all(&bundle)?;
    spec.save(bundle.join("config.json"))
        .context("writing the runc config")?;
    let state = cs.scratch.join("runc-state");
    let id_name = format!(
        "lade-{}",
        cs.scratch
            .file_name()
            .map(|n| n
                .to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric(), ""))
            .unwrap_or_default()
    );
    let status = Command::new(&runc)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id_name)
        .status()
        .with_context(|| format!("running {}", runc.display()))?;
    let _ = Command::new(&runc)
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", &id_name])
        .output();
    use std::os::unix::process::ExitStatusExt;
    result.exit_code = status.code();
    result.signal = status.signal();
    Ok(())
}

/// The runc config's mounts: runc's defaults (`base`), the generated /etc files, then the step's mounts
/// (their sources as `setup_mounts` resolved them).
fn step_mounts(
    mut mounts: Vec<Mount>,
    etc: &[(PathBuf, &'static str)],
    cs: &ChildSpec,
    sources: &[Option<ResolvedSource>],
) -> Result<Vec<Mount>> {
    let step = &cs.step;
    for (src, target) in etc {
        mounts.push(bind_mount(target, src, false)?);
    }
    for (m, resolved) in step.mounts.iter().zip(sources) {
        mounts.push(match &m.kind {
            MountKind::Subdir { readonly, .. } | MountKind::Rootfs { readonly, .. } => {
                let src = &resolved.as_ref().expect("resolved by setup_mounts").path;
                bind_mount(&m.target, src, *readonly)?
            }
            MountKind::Bind { source, readonly } => bind_mount(&m.target, source, *readonly)?,
            MountKind::Secret { source } => bind_mount(&m.target, source, true)?,
            MountKind::Tmpfs { size } => {
                let mut o = vec!["nosuid".to_string(), "nodev".to_string()];
                if let Some(s) = size {
                    o.push(format!("size={s}"));
                }
                MountBuilder::default()
                    .destination(&m.target)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(o)
                    .build()?
            }
        });
    }
    Ok(mounts)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
