//! What goes into a working container: `from` (an image resolved as a build's FROM is), `run` (a build's RUN
//! step, same confinement and mounts, in the container's rootfs) and `cp`/`add` (a build's COPY/ADD, written
//! into the rootfs).

use super::{Container, Containers, rootfs};
use crate::build::base::BaseResolver;
use crate::build::copystep::{self, CopyRequest, CopySource};
use crate::build::rootview::RootView;
use crate::build::run::{self, RunRequest, Secrets};
use crate::build::statcache::StatCache;
use crate::build::{ImageState, config};
use crate::context::{BuildContext, IgnoreMatcher};
use crate::dispatch::isolation::{Isolation, Network, Security, StepOutcome};
use crate::dispatch::platform::Platform;
use crate::layer::{DiffSource, LayerCache, UnpackOptions, unpack_tar, write_tar};
use crate::oci::document::{self, Manifest};
use crate::plugin::frontend::{Command, CopyStep, Mount, NetworkMode, RunStep, SecurityMode};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// `lade from`: a new container over `reference` (`scratch` for none), pulled per the resolver's policy.
pub fn from(
    cs: &Containers,
    resolver: &BaseResolver,
    reference: &str,
    platform: &Platform,
    name: Option<&str>,
) -> Result<Container> {
    let store = cs.store();
    // Blobs pulled here must outlive a concurrent `lade prune` until the container pins them.
    let _guard = store.writer_guard()?;
    if reference == "scratch" {
        let state = ImageState {
            layers: vec![],
            config: config::initial(None, platform, false),
        };
        return cs.create(name, "scratch", "", None, &state);
    }
    let base = resolver.resolve(reference, platform)?;
    let mut state = resolver.image_state(&base, &LayerCache::new(store.root()))?;
    // As a FROM, but ONBUILD triggers are kept for the image this container commits (buildah does too).
    let on_build = state.config.container().and_then(|c| c.on_build.clone());
    state.config = config::initial(Some(&state.config), platform, true);
    state.config.container_mut().on_build = on_build;
    let digest: crate::transport::Digest = base.manifest_digest.parse()?;
    let bytes = store.layout().read_blob(&digest)?;
    let manifest: Manifest =
        document::parse(&bytes).with_context(|| format!("reading the manifest of {reference}"))?;
    let mt = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
    let desc = crate::oci::manifest_descriptor(digest, bytes.len() as u64, &mt)?;
    cs.create(
        name,
        &base.name,
        &manifest.config.digest,
        Some(&desc),
        &state,
    )
}

/// `lade run`'s choices beyond the command.
pub struct RunOptions {
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// `KEY=value` added to the container's Env for this run.
    pub env: Vec<(String, String)>,
    /// `--mount`, as a build's `RUN --mount` takes them (bind sources are host paths).
    pub mounts: Vec<Mount>,
    pub network: Option<Network>,
    pub isolation: Isolation,
    pub security: Security,
}

/// Run `argv` in the container (the caller holds its lock), attached to lade's stdin and stdout.
pub fn run(
    cs: &Containers,
    c: &Container,
    argv: Vec<String>,
    opts: &RunOptions,
) -> Result<StepOutcome> {
    let mut state = cs.state(c)?;
    let section = state.config.container_mut();
    if let Some(u) = &opts.user {
        section.user = Some(Some(u.clone()));
    }
    if let Some(w) = &opts.workdir {
        let abs = config::absolute(&config::workdir(&state.config), w);
        state.config.container_mut().working_dir = Some(Some(abs));
    }
    for (k, v) in &opts.env {
        config::set_env(&mut state.config, k, v);
    }
    let step = RunStep {
        command: Command::Exec(argv),
        files: vec![],
        mounts: opts.mounts.clone(),
        network: NetworkMode::Default,
        security: SecurityMode::Sandbox,
    };
    // Bind mounts name host paths: the "context" is the host's root, read-only unless `rw`.
    let host = BuildContext::with_ignore(Path::new("/"), IgnoreMatcher::parse("", None)?)?;
    let meta = cs.store().root().join("lade");
    // Not the builds' steps dir: a build starting alone there sweeps it, this run's mount scratch included.
    let steps_dir = meta.join("containers").join(".steps");
    let cache_mounts = meta.join("cache-mounts");
    std::fs::create_dir_all(&cache_mounts)?;
    let secrets = Secrets::parse(&[])?;
    let no_stage = |_: u32| -> Result<ImageState> { bail!("`lade run` has no build stages") };
    let no_image = |r: &str| -> Result<ImageState> {
        bail!("--mount from={r}: `lade run` mounts host paths only")
    };
    let location = format!("lade run {}", c.name);
    let req = RunRequest {
        step: &step,
        image: &state,
        build_args: &[],
        context: &host,
        stage: &no_stage,
        image_from: &no_image,
        secrets: &secrets,
        steps_dir: &steps_dir,
        cache_mounts_dir: &cache_mounts,
        network: opts.network,
        isolation: opts.isolation,
        security: &opts.security,
        emulator: None,
        location: &location,
        mount_cache: None,
    };
    let snap = rootfs::snapshot(cs, c, &state.lowers())?;
    run::run_in(&req, &snap, true)
}

/// `lade cp` / `lade add`: `sources` (host paths, relative to the working directory; for `add` also URLs
/// and archives to extract) to `dest` in the container, with the build's COPY/ADD rules.
#[allow(clippy::too_many_arguments)]
pub fn copy(
    cs: &Containers,
    c: &Container,
    add: bool,
    sources: &[String],
    dest: &str,
    chown: Option<String>,
    chmod: Option<String>,
) -> Result<()> {
    let cwd = std::env::current_dir().context("finding the working directory")?;
    let rel: Vec<String> = sources
        .iter()
        .map(|s| {
            if add && (s.contains("://") || s.starts_with("git@")) {
                s.clone()
            } else {
                let abs = cwd.join(s);
                abs.to_string_lossy().trim_start_matches('/').to_string()
            }
        })
        .collect();
    let step = CopyStep {
        sources: rel,
        inline_sources: vec![],
        destination: dest.to_string(),
        from: None,
        chown,
        chmod,
        link: false,
        parents: false,
        exclude: vec![],
        checksum: None,
        keep_git_dir: false,
    };
    let host = BuildContext::with_ignore(Path::new("/"), IgnoreMatcher::parse("", None)?)?;
    let state = cs.state(c)?;
    // The container as it is now: its layers and its upper on top (overlay form, whiteouts included).
    let mut lowers = state.lowers();
    lowers.push(rootfs::upper(cs, c));
    let view = RootView::new(lowers);
    let meta = cs.store().root().join("lade");
    let tmp = meta.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let stat = StatCache::open(&tmp.join("container-statcache.json"));
    let workdir = config::workdir(&c.config);
    let location = format!("lade {} {}", if add { "add" } else { "cp" }, c.name);
    let req = CopyRequest {
        step: &step,
        add,
        source: CopySource::Context(&host),
        dest: &view,
        users: &view,
        workdir: &workdir,
        statcache: &stat,
        tmp_dir: &tmp,
        location: &location,
    };
    let prepared = copystep::prepare(&req)?;
    let tree = tempfile::Builder::new()
        .prefix("copy-")
        .tempdir_in(&tmp)
        .context("creating a dir for the copied files")?;
    let out: PathBuf = tree.path().join("tree");
    std::fs::create_dir(&out)?;
    prepared.apply(&req, &out)?;
    // Through the safe unpacker into the mounted rootfs: overlay sees every change as a write would.
    let mut file = tempfile::tempfile_in(&tmp)?;
    write_tar(DiffSource::Tree(&out), &mut file, None)?;
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0))?;
    rootfs::with_mounted(cs, c, |root| {
        unpack_tar(&mut file, root, &UnpackOptions::default())
            .with_context(|| format!("writing the files into working container {}", c.name))?;
        Ok(())
    })
}
