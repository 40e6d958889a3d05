//! RUN: a plan's [`RunStep`] turned into an isolated step in a fresh [`Snapshot`] of the image.
//!
//! * [`Secrets::parse`]: `--secret id=ID,src=PATH` / `id=ID,env=VAR` as buildah takes them.
//! * [`key_inputs`]: what a RUN's cache key needs beyond the instruction text (bind-mount contents, build args).
//! * [`run`]: argv through SHELL, the environment (image Env, then build args it does not define), user and
//!   workdir from the config, every `--mount` kind, heredoc files; a failing step is an error that names the
//!   Containerfile location, the exit status and the stderr tail.
//!
//! Secrets, tmpfs, cache and bind mountpoints are never committed: the isolation layer removes the
//! mountpoints it created, and secret values only ever live in a private dir in RAM (/dev/shm, when the host
//! has it) or the step's environment.

use crate::build::ImageState;
use crate::build::statcache::StatCache;
use crate::context::{BuildContext, FileKind, Stat, confine};
use crate::dispatch::isolation::{
    Emulator, Isolation, MountKind, Network, RootfsMode, Snapshot, StepMount, StepOutcome,
    StepSpec, private_ram_dir, run_step,
};
use crate::dispatch::platform::Platform;
use crate::layer::{DiffSource, UnpackOptions, unpack_tar, write_tar};
use crate::plugin::frontend::{
    CacheSharing, Command, KeyValue, Mount, MountType, NetworkMode, RunStep, SecurityMode,
    SourceRef,
};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The PATH a step gets when neither the image nor a build arg sets one (as buildah and Docker).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ------------------------------------------------------------------------------------------------ secrets

/// Where a secret's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A host file, read when a step mounts it.
    File(PathBuf),
    /// A host environment variable (of the lade process), read when a step uses it.
    Env(String),
}

/// The `--secret` values of a build, by id. Holds where each value is, never the value itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    by_id: BTreeMap<String, SecretSource>,
}

impl Secrets {
    /// Parse `--secret` values: `id=ID[,type=file|env][,src=PATH|source=PATH][,env=VAR]`. Without `src`
    /// the id names the source too; without `type`, `env=` means env, a `src` or an existing file means file,
    /// and a bare id that names a set environment variable means env (as buildah and buildx decide).
    /// A file must exist and an environment variable must be set now, so mistakes show before any step runs.
    pub fn parse(specs: &[String]) -> Result<Secrets> {
        let mut by_id = BTreeMap::new();
        for spec in specs {
            let (id, source) = parse_one(spec, |v| std::env::var_os(v).is_some())
                .with_context(|| format!("--secret {spec:?}"))?;
            match &source {
                SecretSource::File(p) => {
                    let md = std::fs::metadata(p).with_context(|| {
                        format!("--secret {spec:?}: cannot read {}", p.display())
                    })?;
                    if !md.is_file() {
                        bail!("--secret {spec:?}: {} is not a regular file", p.display());
                    }
                }
                SecretSource::Env(v) => {
                    if std::env::var_os(v).is_none() {
                        bail!("--secret {spec:?}: the environment variable {v} is not set");
                    }
                }
            }
            by_id.insert(id, source);
        }
        Ok(Secrets { by_id })
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The ids given, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    pub fn source(&self, id: &str) -> Option<&SecretSource> {
        self.by_id.get(id)
    }

    /// The value of `id` now; None when no such secret was given.
    fn value(&self, id: &str) -> Result<Option<Vec<u8>>> {
        match self.by_id.get(id) {
            None => Ok(None),
            Some(SecretSource::File(p)) => std::fs::read(p)
                .map(Some)
                .with_context(|| format!("reading secret {id:?} from {}", p.display())),
            Some(SecretSource::Env(v)) => match std::env::var_os(v) {
                Some(val) => Ok(Some(std::os::unix::ffi::OsStringExt::into_vec(val))),
                None => bail!("secret {id:?}: the environment variable {v} is no longer set"),
            },
        }
    }
}

/// One `--secret` value; `env_set` says whether a host environment variable exists.
fn parse_one(spec: &str, env_set: impl Fn(&str) -> bool) -> Result<(String, SecretSource)> {
    let (mut id, mut typ, mut src, mut env) = (None, None, None, None);
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').with_context(|| {
            format!("{field:?} is not key=value (expected id=ID,src=PATH or id=ID,env=VAR)")
        })?;
        if v.is_empty() {
            bail!("{k}= needs a value");
        }
        match k.trim() {
            "id" => id = Some(v.to_string()),
            "type" => match v {
                "file" | "env" => typ = Some(v.to_string()),
                _ => bail!("type={v}: expected file or env"),
            },
            "src" | "source" => src = Some(v.to_string()),
            "env" => env = Some(v.to_string()),
            other => bail!("unknown key {other:?} (expected id, type, src or env)"),
        }
    }
    let id = id.context("missing id= (expected id=ID,src=PATH or id=ID,env=VAR)")?;
    if src.is_some() && env.is_some() {
        bail!("give either src= or env=, not both");
    }
    let typ = match (typ, &src, &env) {
        (Some(t), _, _) => t,
        (None, _, Some(_)) => "env".to_string(),
        (None, Some(_), None) => "file".to_string(),
        (None, None, None) => {
            if !Path::new(&id).is_file() && env_set(&id) {
                "env".to_string()
            } else {
                "file".to_string()
            }
        }
    };
    let name = env.or(src).unwrap_or_else(|| id.clone());
    let source = if typ == "env" {
        SecretSource::Env(name)
    } else {
        SecretSource::File(PathBuf::from(name))
    };
    Ok((id, source))
}

// ------------------------------------------------------------------------------------------------ request

/// Everything [`run`] and [`key_inputs`] need for one RUN step.
pub struct RunRequest<'a> {
    pub step: &'a RunStep,
    /// The image the step runs on (its layers and config).
    pub image: &'a ImageState,
    /// Build args in scope at this step (proxy args included: they reach the environment only).
    pub build_args: &'a [KeyValue],
    pub context: &'a BuildContext,
    /// Another stage's image, for `--mount from=<stage>`.
    pub stage: &'a dyn Fn(u32) -> Result<ImageState>,
    /// An image by reference, for `--mount from=<image>`.
    pub image_from: &'a dyn Fn(&str) -> Result<ImageState>,
    pub secrets: &'a Secrets,
    /// Where step snapshots go: the same filesystem as the layer cache.
    pub steps_dir: &'a Path,
    /// Where `type=cache` mounts persist across builds.
    pub cache_mounts_dir: &'a Path,
    /// `--network` of the build; a `RUN --network` of the step wins over it.
    pub network: Option<Network>,
    pub isolation: Isolation,
    pub emulator: Option<Emulator>,
    /// `Containerfile:12`, for messages.
    pub location: &'a str,
}

/// What a RUN's cache key needs beyond the instruction text and the parent chain: the build args in scope
/// (proxy args excluded), the config the command sees (Env, User, WorkingDir, Shell), heredoc files, and the
/// content of every bind mount (context files by content digest, stages and images by their layer
/// diff_ids). Secrets, tmpfs and cache mounts never enter it. Sorted by name.
pub fn key_inputs(req: &RunRequest, statcache: &StatCache) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for kv in req.build_args {
        if !crate::build::config::is_proxy_arg(&kv.key) {
            out.push((format!("arg {}", kv.key), kv.value.clone()));
        }
    }
    let cfg = &req.image.config["config"];
    out.push(("env".into(), strings(&cfg["Env"]).join("\n")));
    out.push(("user".into(), cfg["User"].as_str().unwrap_or("").into()));
    out.push((
        "workdir".into(),
        cfg["WorkingDir"].as_str().unwrap_or("").into(),
    ));
    out.push(("shell".into(), shell(&req.image.config).join(" ")));
    for f in &req.step.files {
        out.push((
            format!("file {}", f.path),
            format!("{:o} {}", f.mode, sha256_hex(f.content.as_bytes())),
        ));
    }
    for m in &req.step.mounts {
        if m.kind != MountType::Bind {
            continue;
        }
        let target = m.target.as_deref().unwrap_or("");
        let source = m.source.as_deref().unwrap_or("");
        let value = match &m.from {
            None => format!(
                "context {}: {}",
                source,
                context_digest(req.context, source, statcache)
                    .with_context(|| format!("{}: RUN --mount source={source}", req.location))?
            ),
            Some(SourceRef::Stage(n)) => {
                let st = (req.stage)(*n)?;
                format!("stage {n} {source}: {}", diff_ids(&st))
            }
            Some(SourceRef::Image(r)) => {
                let st = (req.image_from)(r)?;
                format!("image {r} {source}: {}", diff_ids(&st))
            }
        };
        out.push((format!("bind {target}"), value));
    }
    out.sort();
    Ok(out)
}

fn diff_ids(st: &ImageState) -> String {
    st.layers
        .iter()
        .map(|l| l.diff_id.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn sha256_hex(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A digest over a context path and everything under it: relative paths, kinds, modes, link targets and
/// file contents (through the stat cache, so unchanged files are not read).
fn context_digest(ctx: &BuildContext, source: &str, statcache: &StatCache) -> Result<String> {
    let rel = confine(source)?;
    let top = ctx
        .stat(if rel.is_empty() { "." } else { &rel })?
        .with_context(|| {
            format!("{source:?} is not in the build context (or is excluded by the ignore file)")
        })?;
    let mut h = Sha256::new();
    let mut add = |path: &str, kind: FileKind, mode: u32, extra: &str| {
        for part in [
            path,
            &format!("{kind:?}"),
            &format!("{:o}", mode & 0o7777),
            extra,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    };
    let entry = |path: &str, kind: FileKind| -> Result<String> {
        Ok(match kind {
            FileKind::File => statcache.digest(ctx, path)?,
            FileKind::Symlink => link_target(ctx, path)?.display().to_string(),
            _ => String::new(),
        })
    };
    if top.kind == FileKind::Directory {
        add("", top.kind, top.mode, "");
        for e in ctx.walk(&rel)? {
            let sub = e.path.strip_prefix(&rel).unwrap_or(&e.path);
            add(
                sub.trim_start_matches('/'),
                e.stat.kind,
                e.stat.mode,
                &entry(&e.path, e.stat.kind)?,
            );
        }
    } else {
        add("", top.kind, top.mode, &entry(&rel, top.kind)?);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

// ------------------------------------------------------------------------------------------------ argv, env

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The config's `Shell`, or `/bin/sh -c`.
pub fn shell(config: &serde_json::Value) -> Vec<String> {
    let s = strings(&config["config"]["Shell"]);
    if s.is_empty() {
        vec!["/bin/sh".into(), "-c".into()]
    } else {
        s
    }
}

/// The step's argv: SHELL + the script for the shell form, the list itself for the exec form.
pub fn argv(command: &Command, config: &serde_json::Value) -> Vec<String> {
    match command {
        Command::Shell(script) => {
            let mut a = shell(config);
            a.push(script.clone());
            a
        }
        Command::Exec(list) => list.clone(),
    }
}

/// The step's environment: the image's Env, then each build arg in scope the Env does not define (the
/// image's ENV wins, as in Docker), then PATH when neither set it.
pub fn environment(config: &serde_json::Value, build_args: &[KeyValue]) -> Vec<String> {
    let mut env = strings(&config["config"]["Env"]);
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut defined: std::collections::HashSet<String> = env.iter().map(|e| key(e)).collect();
    for kv in build_args {
        if defined.insert(kv.key.clone()) {
            env.push(format!("{}={}", kv.key, kv.value));
        }
    }
    if !defined.contains("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env
}

// ------------------------------------------------------------------------------------------------ run

/// What must stay alive while the step runs: nested snapshots, cache locks, the private temp dir (dropped in
/// that order).
struct Held {
    snapshots: Vec<Snapshot>,
    locks: Vec<File>,
    tmp: tempfile::TempDir,
    /// Secret values and heredoc files, in RAM when the host has /dev/shm.
    private: tempfile::TempDir,
    counter: usize,
}

impl Held {
    fn next_path(&mut self, prefix: &str) -> PathBuf {
        self.counter += 1;
        self.tmp.path().join(format!("{prefix}-{}", self.counter))
    }

    fn next_private(&mut self, prefix: &str) -> PathBuf {
        self.counter += 1;
        self.private
            .path()
            .join(format!("{prefix}-{}", self.counter))
    }
}

/// Run the step on a fresh snapshot of `req.image`. The returned snapshot holds the step's changes,
/// uncommitted. A step that fails, or cannot be set up, is an error naming `req.location`.
pub fn run(req: &RunRequest) -> Result<Snapshot> {
    let loc = req.location;
    let step = req.step;
    if step.security == SecurityMode::Insecure {
        bail!(
            "{loc}: RUN --security=insecure is not supported by lade (steps always run with the default capability set)"
        );
    }
    let config = &req.image.config;
    let mut spec = StepSpec::new(argv(&step.command, config));
    if spec.argv.is_empty() {
        bail!("{loc}: RUN with an empty command");
    }
    spec.env = environment(config, req.build_args);
    spec.user = config["config"]["User"].as_str().unwrap_or("").to_string();
    spec.workdir = config["config"]["WorkingDir"]
        .as_str()
        .unwrap_or("")
        .to_string();
    spec.network = match step.network {
        NetworkMode::None => Network::None,
        NetworkMode::Host => Network::Host,
        NetworkMode::Default => req.network.unwrap_or_default(),
    };
    spec.isolation = req.isolation;
    spec.emulator = req.emulator.clone();
    std::fs::create_dir_all(req.steps_dir)
        .with_context(|| format!("creating {}", req.steps_dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("run-mounts-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(req.steps_dir)
        .context("creating the step's private temp dir")?;
    let mut held = Held {
        snapshots: Vec::new(),
        locks: Vec::new(),
        tmp,
        private: private_ram_dir("lade-secrets-", req.steps_dir)?,
        counter: 0,
    };
    for m in &step.mounts {
        add_mount(req, m, &mut spec, &mut held)
            .with_context(|| format!("{loc}: RUN --mount type={}", mount_type_name(m.kind)))?;
    }
    for f in &step.files {
        let p = held.next_private("file");
        write_private(&p, f.content.as_bytes(), f.mode & 0o7777, 0, 0)
            .with_context(|| format!("{loc}: writing the heredoc file {}", f.path))?;
        spec.mounts.push(StepMount::bind(&p, &f.path, true));
    }
    let snap = Snapshot::prepare(req.steps_dir, &req.image.lowers(), RootfsMode::Auto)
        .with_context(|| format!("{loc}: preparing the RUN step's root filesystem"))?;
    let outcome = run_step(&snap, &spec).with_context(|| format!("{loc}: RUN could not start"))?;
    drop(held);
    if !outcome.success() {
        bail!("{}", failure_message(req, &spec, &outcome));
    }
    Ok(snap)
}

fn mount_type_name(k: MountType) -> &'static str {
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
        req.image.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or(""),
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

fn add_mount(req: &RunRequest, m: &Mount, spec: &mut StepSpec, held: &mut Held) -> Result<()> {
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
fn write_private(path: &Path, content: &[u8], mode: u32, uid: u32, gid: u32) -> Result<()> {
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
    ensure_cache_dir(&dir, m, |new| match &m.from {
        Some(from) => seed_cache(req, from, m.source.as_deref().unwrap_or(""), new, &scratch),
        None => Ok(()),
    })
    .with_context(|| format!("preparing the cache {id:?}"))?;
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

/// A context symlink's target as written (absolute ones included; it is never followed here).
fn link_target(ctx: &BuildContext, rel: &str) -> Result<PathBuf> {
    let t = rustix::fs::readlinkat(ctx.dir(), rel, Vec::new())
        .with_context(|| format!("reading link {rel} in the build context"))?;
    let bytes = t.into_bytes();
    Ok(PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes),
    ))
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

/// "Containerfile:7: RUN make: exit code 2", a hint for a crash under CPU emulation, and the stderr tail.
fn failure_message(req: &RunRequest, spec: &StepSpec, out: &StepOutcome) -> String {
    let arch = req.image.config["architecture"].as_str().unwrap_or("");
    let emulated = spec.emulator.is_some()
        || (!arch.is_empty()
            && crate::dispatch::platform::normalize_arch(arch, None).0
                != Platform::host().architecture);
    describe_failure(req.location, &req.step.command, arch, emulated, out)
}

fn describe_failure(
    location: &str,
    command: &Command,
    arch: &str,
    emulated: bool,
    out: &StepOutcome,
) -> String {
    let shown = match command {
        Command::Shell(s) => s.clone(),
        Command::Exec(a) => serde_json::to_string(a).unwrap_or_default(),
    };
    let mut short: String = shown
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect();
    if short.len() < shown.len() {
        short.push('…');
    }
    let mut msg = format!("{location}: RUN {short}: {}", out.describe());
    // Killed by the signal, or a shell reporting its child was (exit code 128 + signal).
    let crash_signals = [libc::SIGSEGV, libc::SIGILL, libc::SIGBUS];
    let crash = out.signal.is_some_and(|s| crash_signals.contains(&s))
        || out
            .exit_code
            .is_some_and(|c| crash_signals.iter().any(|s| c == 128 + s));
    if crash && emulated {
        msg.push_str(&format!(
            "\nhint: the command crashed while running under CPU emulation ({arch} on {}): some programs do not \
             work under qemu-user; try a newer qemu-user-static, or build on a native {arch} machine",
            Platform::host().architecture
        ));
    }
    let tail = out.stderr_tail.trim_end();
    if !tail.is_empty() {
        msg.push_str("\nstderr (last lines):\n");
        let lines: Vec<&str> = tail.lines().collect();
        let from = lines.len().saturating_sub(20);
        msg.push_str(&lines[from..].join("\n"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn secret_specs_parse_like_buildah() {
        let none = |_: &str| false;
        assert_eq!(
            parse_one("id=tok,src=/run/tok", none).unwrap(),
            ("tok".into(), SecretSource::File("/run/tok".into()))
        );
        assert_eq!(
            parse_one("id=tok,source=f.txt", none).unwrap(),
            ("tok".into(), SecretSource::File("f.txt".into()))
        );
        assert_eq!(
            parse_one("id=tok,env=TOKEN", none).unwrap(),
            ("tok".into(), SecretSource::Env("TOKEN".into()))
        );
        assert_eq!(
            parse_one("type=env,id=TOKEN", none).unwrap(),
            ("TOKEN".into(), SecretSource::Env("TOKEN".into()))
        );
        assert_eq!(
            parse_one("id=tok,type=env,src=TOKEN", none).unwrap(),
            ("tok".into(), SecretSource::Env("TOKEN".into()))
        );
        // A bare id: env when such a variable is set, else a file of that name.
        assert_eq!(
            parse_one("id=GITHUB_TOKEN", |v| v == "GITHUB_TOKEN").unwrap(),
            (
                "GITHUB_TOKEN".into(),
                SecretSource::Env("GITHUB_TOKEN".into())
            )
        );
        assert_eq!(
            parse_one("id=GITHUB_TOKEN", none).unwrap(),
            (
                "GITHUB_TOKEN".into(),
                SecretSource::File("GITHUB_TOKEN".into())
            )
        );
        for bad in [
            "src=/x",
            "id=a,type=ssh",
            "id=a,src=/x,env=Y",
            "id=a,color=red",
            "id=a,src=",
            "tok",
        ] {
            assert!(parse_one(bad, none).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn secrets_parse_checks_sources_exist() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "v").unwrap();
        let s = Secrets::parse(&[format!("id=a,src={}", f.display())]).unwrap();
        assert_eq!(s.ids().collect::<Vec<_>>(), ["a"]);
        assert_eq!(s.value("a").unwrap().unwrap(), b"v");
        assert_eq!(s.value("b").unwrap(), None);
        let err =
            Secrets::parse(&[format!("id=a,src={}/missing", dir.path().display())]).unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
        let err = Secrets::parse(&["id=a,env=LADE_TEST_SURELY_UNSET_VAR".into()]).unwrap_err();
        assert!(
            format!("{err:#}").contains("LADE_TEST_SURELY_UNSET_VAR"),
            "{err:#}"
        );
    }

    #[test]
    fn argv_uses_shell_or_exec_form() {
        let plain = json!({"config": {}});
        assert_eq!(
            argv(&Command::Shell("echo hi".into()), &plain),
            ["/bin/sh", "-c", "echo hi"]
        );
        let bash = json!({"config": {"Shell": ["/bin/bash", "-eo", "pipefail", "-c"]}});
        assert_eq!(
            argv(&Command::Shell("make".into()), &bash),
            ["/bin/bash", "-eo", "pipefail", "-c", "make"]
        );
        assert_eq!(
            argv(&Command::Exec(vec!["/bin/true".into(), "x".into()]), &bash),
            ["/bin/true", "x"]
        );
    }

    #[test]
    fn environment_image_env_wins_and_path_defaults() {
        let cfg = json!({"config": {"Env": ["A=image", "PATH=/opt/bin"]}});
        let args = [
            kv("A", "arg"),
            kv("B", "2"),
            kv("HTTP_PROXY", "http://p:3128"),
        ];
        assert_eq!(
            environment(&cfg, &args),
            [
                "A=image",
                "PATH=/opt/bin",
                "B=2",
                "HTTP_PROXY=http://p:3128"
            ]
        );
        let bare = json!({"config": {}});
        assert_eq!(
            environment(&bare, &[kv("X", "1")]),
            ["X=1".to_string(), format!("PATH={DEFAULT_PATH}")]
        );
        // A build arg named PATH is a PATH.
        assert_eq!(environment(&bare, &[kv("PATH", "/a")]), ["PATH=/a"]);
    }

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

    #[test]
    fn failure_messages_name_location_status_tail_and_emulation() {
        let out = StepOutcome {
            exit_code: Some(2),
            signal: None,
            stderr_tail: (1..=30).map(|i| format!("line {i}\n")).collect(),
        };
        let m = describe_failure(
            "Containerfile:7",
            &Command::Shell("make all\nmore".into()),
            "amd64",
            false,
            &out,
        );
        assert!(
            m.starts_with("Containerfile:7: RUN make all…: exit code 2\n"),
            "{m}"
        );
        assert!(
            m.contains("line 30") && m.contains("line 11") && !m.contains("line 10\n"),
            "{m}"
        );
        assert!(!m.contains("hint"), "{m}");
        let segv = StepOutcome {
            exit_code: None,
            signal: Some(libc::SIGSEGV),
            stderr_tail: String::new(),
        };
        let exec = Command::Exec(vec!["/bin/app".into()]);
        let m = describe_failure("Containerfile:3", &exec, "arm64", true, &segv);
        assert!(
            m.contains("SIGSEGV") && m.contains("hint:") && m.contains("arm64"),
            "{m}"
        );
        assert!(
            m.starts_with("Containerfile:3: RUN [\"/bin/app\"]: killed by signal 11"),
            "{m}"
        );
        // A native crash is the program's own bug: no emulation hint.
        assert!(!describe_failure("F:1", &exec, "amd64", false, &segv).contains("hint"));
        // A shell reports its child's SIGILL as exit code 132.
        let sh = StepOutcome {
            exit_code: Some(132),
            signal: None,
            stderr_tail: "Illegal instruction".into(),
        };
        let m = describe_failure("F:2", &Command::Shell("./app".into()), "arm64", true, &sh);
        assert!(m.contains("exit code 132") && m.contains("hint:"), "{m}");
    }
}
