//! RUN --mount kinds turned into isolation mounts: cache dirs (persistent, with sharing locks and from=
//! seeds), binds from the context (what the ignore file lets through) or another stage or image, tmpfs,
//! and secrets (files with their mode and owner, or environment variables).

use super::key::link_target;
use super::{Held, RunRequest};
use crate::context::{BuildContext, FileKind, Stat, confine};
use crate::dispatch::isolation::{MountKind, RootfsMode, Snapshot, StepMount, StepSpec};
use crate::layer::{DiffSource, UnpackOptions, unpack_tar, write_tar};
use crate::plugin::frontend::{CacheSharing, Mount, MountType, SourceRef};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub(super) fn mount_type_name(k: MountType) -> &'static str {
    match k {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    }
}

/// The mount's target, absolute: a relative one is under the config's WorkingDir, as BuildKit does it.
fn target_of(req: &RunRequest, m: &Mount) -> Result<String> {
    let t = m
        .target
        .as_deref()
        .context("the mount needs a target (target=/path)")?;
    Ok(absolute_target(
        t,
        crate::build::config::workdir_as_set(&req.image.config),
    ))
}

fn absolute_target(t: &str, workdir: &str) -> String {
    if t.starts_with('/') {
        t.to_string()
    } else {
        let w = workdir.trim_end_matches('/');
        let w = if w.starts_with('/') {
            w.to_string()
        } else {
            format!("/{w}")
        };
        format!("{}/{t}", w.trim_end_matches('/'))
    }
}

pub(super) fn add_mount(
    req: &RunRequest,
    m: &Mount,
    spec: &mut StepSpec,
    held: &mut Held,
) -> Result<()> {
    match m.kind {
        MountType::Ssh => bail!(
            "RUN --mount type=ssh is not supported yet by lade; fetch with a secret mount (type=secret) instead"
        ),
        MountType::Tmpfs => spec.mounts.push(StepMount {
            target: target_of(req, m)?,
            kind: MountKind::Tmpfs { size: m.size },
        }),
        MountType::Secret => add_secret(req, m, spec, held)?,
        MountType::Cache => add_cache(req, m, spec, held)?,
        MountType::Bind => add_bind(req, m, spec, held)?,
    }
    Ok(())
}

fn add_secret(req: &RunRequest, m: &Mount, spec: &mut StepSpec, held: &mut Held) -> Result<()> {
    let id = match (&m.id, &m.target) {
        (Some(id), _) => id.clone(),
        (None, Some(t)) => t.rsplit('/').next().unwrap_or_default().to_string(),
        (None, None) => bail!("a secret mount needs id= or target="),
    };
    let Some(value) = req.secrets.value(&id)? else {
        if m.required {
            bail!(
                "the secret {id:?} is required but was not given: pass --secret id={id},src=FILE (or env=VAR)"
            );
        }
        tracing::debug!("secret {id:?} not given and not required: not mounted");
        return Ok(());
    };
    if let Some(var) = &m.env {
        let text = String::from_utf8(value.clone()).map_err(|_| {
            anyhow::anyhow!(
                "the secret {id:?} is not UTF-8 text, so it cannot be the variable {var}"
            )
        })?;
        if text.contains('\0') {
            bail!("the secret {id:?} contains a NUL byte, so it cannot be the variable {var}");
        }
        spec.env
            .retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != var);
        spec.env.push(format!("{var}={text}"));
        if m.target.is_none() {
            return Ok(()); // env only, as BuildKit does when env= is given without target=
        }
    }
    let target = match &m.target {
        Some(_) => target_of(req, m)?,
        None => format!("/run/secrets/{id}"),
    };
    let p = held.next_private("secret");
    write_private(
        &p,
        &value,
        m.mode.unwrap_or(0o400) & 0o7777,
        m.uid.unwrap_or(0),
        m.gid.unwrap_or(0),
    )?;
    spec.mounts.push(StepMount {
        target,
        kind: MountKind::Secret { source: p },
    });
    Ok(())
}

/// Write a file only this process can reach (its dir is 0700), with the mode and owner the step sees.
pub(super) fn write_private(
    path: &Path,
    content: &[u8],
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(content)?;
    std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
        .with_context(|| format!("chown {uid}:{gid} {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The cache dir's name for an id: readable, and unique through a short hash.
fn cache_dir_name(id: &str) -> String {
    let readable: String = id
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    let h = hex::encode(Sha256::digest(id.as_bytes()));
    format!("{}-{}", readable.trim_start_matches('.'), &h[..16])
}

/// Lock `lock` shared or exclusive; `wait` false returns None when it is busy.
fn lock_file(lock: &Path, exclusive: bool, wait: bool) -> Result<Option<File>> {
    use rustix::fs::FlockOperation as Op;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .with_context(|| format!("opening lock {}", lock.display()))?;
    let op = match (exclusive, wait) {
        (true, true) => Op::LockExclusive,
        (true, false) => Op::NonBlockingLockExclusive,
        (false, true) => Op::LockShared,
        (false, false) => Op::NonBlockingLockShared,
    };
    match rustix::fs::flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
        Err(e) => Err(e).with_context(|| format!("locking {}", lock.display())),
    }
}

/// `<path>.<ext>` (Path::with_extension would cut a name that has a dot).
fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Create the cache dir with the mount's mode and owner when it does not exist yet, filled by `seed` first;
/// it is made under a temp name and renamed, so no one sees it half set up.
fn ensure_cache_dir(dir: &Path, m: &Mount, seed: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(md) if md.is_dir() => return Ok(()),
        Ok(_) => bail!("{} is not a directory", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("stat {}", dir.display())),
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".new-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a dir in {}", parent.display()))?;
    seed(tmp.path())?;
    std::os::unix::fs::chown(
        tmp.path(),
        Some(m.uid.unwrap_or(0)),
        Some(m.gid.unwrap_or(0)),
    )?;
    std::fs::set_permissions(
        tmp.path(),
        std::fs::Permissions::from_mode(m.mode.unwrap_or(0o755) & 0o7777),
    )?;
    // NOREPLACE: a plain rename would replace an empty dir another shared user just made and mounted.
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        tmp.path(),
        rustix::fs::CWD,
        dir,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        // Another build made it first (a shared user): theirs stands, ours is removed with `tmp`.
        Err(rustix::io::Errno::EXIST) if dir.is_dir() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
    }
}

/// Fill a new cache dir `dest` from `source` (a subpath) of a stage or image: its layers are merged in a
/// scratch dir under `scratch`, then the subpath, resolved inside that root, is copied with its metadata.
fn seed_cache(
    req: &RunRequest,
    from: &SourceRef,
    source: &str,
    dest: &Path,
    scratch: &Path,
) -> Result<()> {
    let lowers = match from {
        SourceRef::Stage(n) => (req.stage)(*n)?.lowers(),
        SourceRef::Image(r) => (req.image_from)(r)?.lowers(),
    };
    let merged = tempfile::tempdir_in(scratch).context("creating a scratch dir")?;
    for l in &lowers {
        through_tar(DiffSource::OverlayUpper(l), merged.path(), scratch)
            .with_context(|| format!("merging layer {}", l.display()))?;
    }
    let sub = confine(source)?;
    let real = resolve_in(merged.path(), &sub)
        .with_context(|| format!("source={source} is not in the from= filesystem"))?;
    if !real.is_dir() {
        bail!("source={source} is not a directory in the from= filesystem");
    }
    through_tar(DiffSource::Tree(&real), dest, scratch)
}

/// Copy a tree (or apply an overlay-form layer) onto `dest` through lade's layer writer and safe unpacker.
fn through_tar(source: DiffSource<'_>, dest: &Path, scratch: &Path) -> Result<()> {
    use std::io::Seek;
    let mut file = tempfile::tempfile_in(scratch).context("creating a temp file")?;
    write_tar(source, &mut file, None)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    unpack_tar(file, dest, &UnpackOptions::default())?;
    Ok(())
}

/// The real path of `rel` inside `root`, every symlink resolved inside `root` (as chroot would).
fn resolve_in(root: &Path, rel: &str) -> Result<PathBuf> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = rustix::fs::openat2(
        &dir,
        if rel.is_empty() { "." } else { rel },
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))?)
}

fn add_cache(req: &RunRequest, m: &Mount, spec: &mut StepSpec, held: &mut Held) -> Result<()> {
    let target = &target_of(req, m)?;
    let id = m.id.clone().unwrap_or_else(|| target.to_string());
    std::fs::create_dir_all(req.cache_mounts_dir)
        .with_context(|| format!("creating {}", req.cache_mounts_dir.display()))?;
    let name = cache_dir_name(&id);
    let base = req.cache_mounts_dir.join(&name);
    let lock_of = |d: &Path| sibling(d, "lock");
    let (dir, lock) = match m.sharing {
        CacheSharing::Locked => (base.clone(), lock_file(&lock_of(&base), true, true)?),
        CacheSharing::Shared => (base.clone(), lock_file(&lock_of(&base), false, true)?),
        CacheSharing::Private => {
            // The shared dir when no one else uses it, else the first free private sibling (made on demand):
            // each is used by one step at a time and persists like the shared one.
            let mut n = 0;
            loop {
                let d = if n == 0 {
                    base.clone()
                } else {
                    req.cache_mounts_dir.join(format!("{name}.private-{n}"))
                };
                if let Some(l) = lock_file(&lock_of(&d), true, false)? {
                    break (d, Some(l));
                }
                n += 1;
                if n > 256 {
                    bail!("more than 256 concurrent private users of the cache {id:?}");
                }
            }
        }
    };
    held.locks.extend(lock);
    let scratch = held.tmp.path().to_path_buf();
    ensure_cache_dir(&dir, m, |new| match (&m.from, req.mount_cache) {
        (Some(from), _) => seed_cache(req, from, m.source.as_deref().unwrap_or(""), new, &scratch),
        // A cache this machine does not have yet starts from what `--cache-from` exported.
        (None, Some(hooks)) => hooks.restore(&id, new).map(|_| ()),
        (None, None) => Ok(()),
    })
    .with_context(|| format!("preparing the cache {id:?}"))?;
    if let Some(hooks) = req.mount_cache {
        hooks.used(&id, &dir);
    }
    // With from=, source= names what seeds the cache; without, a subdir of the cache to mount.
    let sub = match (&m.from, &m.source) {
        (None, Some(s)) => confine(s)?,
        _ => String::new(),
    };
    spec.mounts
        .push(StepMount::subdir(&dir, &sub, target, !m.read_write, true));
    Ok(())
}

fn add_bind(req: &RunRequest, m: &Mount, spec: &mut StepSpec, held: &mut Held) -> Result<()> {
    let target = &target_of(req, m)?;
    let readonly = !m.read_write;
    let source = m.source.as_deref().unwrap_or("");
    let lowers = match &m.from {
        Some(SourceRef::Stage(n)) => Some((req.stage)(*n)?.lowers()),
        Some(SourceRef::Image(r)) => Some((req.image_from)(r)?.lowers()),
        None => None,
    };
    if let Some(lowers) = lowers {
        let sub = confine(source)?;
        let snap = Snapshot::prepare(held.tmp.path(), &lowers, RootfsMode::Auto)
            .context("preparing the mount's source filesystem")?;
        spec.mounts
            .push(StepMount::rootfs(&snap, &sub, target, readonly));
        held.snapshots.push(snap);
        return Ok(());
    }
    // The build context: exactly what the ignore file lets through.
    let ctx = req.context;
    let rel = confine(source)?;
    let top = ctx
        .stat(if rel.is_empty() { "." } else { &rel })?
        .with_context(|| {
            format!("source={source}: not in the build context (or excluded by the ignore file)")
        })?;
    let root = if ctx.ignore().rules().is_empty() {
        std::fs::canonicalize(ctx.root_path())
            .with_context(|| format!("locating {}", ctx.root_path().display()))?
    } else {
        let dest = held.next_path("context");
        filtered_copy(ctx, &rel, top, &dest)?;
        dest
    };
    if readonly {
        spec.mounts
            .push(StepMount::subdir(&root, &rel, target, true, false));
    } else {
        // Writes go to a throwaway upper, never into the context.
        let snap = Snapshot::prepare(held.tmp.path(), &[root], RootfsMode::Auto)
            .context("preparing a writable view of the build context")?;
        spec.mounts
            .push(StepMount::rootfs(&snap, &rel, target, false));
        held.snapshots.push(snap);
    }
    Ok(())
}

/// Materialise `rel` of the context (what the ignore rules let through) at the same relative path under
/// `dest`: hard links when the filesystem allows, copies otherwise.
fn filtered_copy(ctx: &BuildContext, rel: &str, top: Stat, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    let dest_dir = cap_std::fs::Dir::open_ambient_dir(dest, cap_std::ambient_authority())?;
    let parent = Path::new(rel).parent().unwrap_or(Path::new(""));
    if !parent.as_os_str().is_empty() {
        dest_dir.create_dir_all(parent)?;
    }
    let mut entries = vec![(rel.to_string(), top.kind, top.mode)];
    if top.kind == FileKind::Directory {
        entries.extend(
            ctx.walk(rel)?
                .into_iter()
                .map(|e| (e.path, e.stat.kind, e.stat.mode)),
        );
    }
    for (path, kind, mode) in entries {
        let at = if path.is_empty() { "." } else { path.as_str() };
        match kind {
            FileKind::Directory => {
                if !path.is_empty() {
                    dest_dir.create_dir(&path).or_else(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })?;
                }
                dest_dir.set_permissions(
                    at,
                    cap_std::fs::Permissions::from_std(std::fs::Permissions::from_mode(
                        mode & 0o7777,
                    )),
                )?;
            }
            FileKind::File => {
                if ctx.dir().hard_link(&path, &dest_dir, &path).is_err() {
                    let mut src = ctx.open_file(&path)?;
                    let mut dst = dest_dir.create(&path)?;
                    std::io::copy(&mut src, &mut dst)
                        .with_context(|| format!("copying {path} from the build context"))?;
                    dst.set_permissions(cap_std::fs::Permissions::from_std(
                        std::fs::Permissions::from_mode(mode & 0o7777),
                    ))?;
                }
            }
            FileKind::Symlink => {
                let t = link_target(ctx, &path)?;
                std::os::unix::fs::symlink(&t, dest.join(&path))
                    .with_context(|| format!("copying the link {path} from the build context"))?;
            }
            FileKind::Other => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_mount_targets_are_under_the_workdir() {
        assert_eq!(absolute_target("/abs", "/w"), "/abs");
        assert_eq!(absolute_target("cache", "/src/app/"), "/src/app/cache");
        assert_eq!(absolute_target("cache", ""), "/cache");
        assert_eq!(absolute_target("a/b", "/"), "/a/b");
    }

    #[test]
    fn cache_dir_names_are_safe_and_distinct() {
        let a = cache_dir_name("/root/.cache");
        let b = cache_dir_name("/root/_cache");
        assert_ne!(a, b);
        for n in [&a, &b, &cache_dir_name("../../etc"), &cache_dir_name("")] {
            assert!(
                !n.contains('/') && !n.starts_with('.') && !n.is_empty(),
                "{n}"
            );
        }
    }
}
