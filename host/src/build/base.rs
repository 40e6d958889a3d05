//! FROM: a base image by name or transport reference, resolved as buildah does — the local store first (per
//! `--pull`), else pulled through the copy engine (digests verified) and tagged as `lade pull` tags it — and
//! its layers unpacked into the layer cache.
//!
//! * [`BaseResolver::resolve`]: reference + platform → [`ResolvedBase`] (memoised for one build).
//! * [`BaseResolver::image_state`]: every layer unpacked (in parallel, diff_ids verified) → [`ImageState`].
//! * [`ImageResolver`] for the frontend: Env, OnBuild and Shell of the base, so ONBUILD triggers apply.
//!
//! `--pull` governs registries: `oci:`, `oci-archive:`, `docker-archive:` and `dir:` bases are local input,
//! read into the store on every build (blobs the store already has are not copied again), whatever the
//! policy. `lade:NAME` never pulls.

use super::{ImageState, Layer};
use crate::copy::{CopyOptions, MultiArch, copy_image};
use crate::dispatch::platform::Platform;
use crate::layer::LayerCache;
use crate::oci::ImageConfig;
use crate::oci::config::{Nullable, set};
use crate::oci::document::{self, Desc, Index, Manifest};
use crate::oci::verify::check_bytes;
use crate::plugin::frontend::{BaseImage, ImageResolver};
use crate::reference::Reference;
use crate::store::{Store, names};
use crate::transport::local::LocalDestination;
use crate::transport::{
    self, Descriptor, Digest, PlatformOverride, SystemContext, TransportRef, media,
};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// `--pull`: when a base image is fetched from its registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PullPolicy {
    /// Always pull; fail if the registry cannot be reached
    Always,
    /// Pull only when the image is not in the local store
    #[default]
    Missing,
    /// Never pull; fail when the image is not in the local store
    Never,
    /// Pull when the registry has a different image than the local store (keep the local one when the
    /// registry cannot be reached)
    Newer,
}

impl std::str::FromStr for PullPolicy {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "always" | "true" => PullPolicy::Always,
            "missing" | "ifmissing" => PullPolicy::Missing,
            "never" | "false" => PullPolicy::Never,
            "newer" | "ifnewer" => PullPolicy::Newer,
            _ => bail!("unknown pull policy {s:?}: use always, missing, never or newer"),
        })
    }
}

impl std::fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PullPolicy::Always => "always",
            PullPolicy::Missing => "missing",
            PullPolicy::Never => "never",
            PullPolicy::Newer => "newer",
        })
    }
}

/// A base image in the store: one single-platform manifest, its config and its layers.
#[derive(Clone, Debug)]
pub struct ResolvedBase {
    /// The store name it was found or pulled under (`docker.io/library/alpine:3`).
    pub name: String,
    /// `sha256:<hex>` of the single-platform manifest (for an index: the chosen instance).
    pub manifest_digest: String,
    /// The whole image config (unknown fields kept).
    pub config: ImageConfig,
    /// The layer blobs, base first, as the manifest lists them.
    pub layers: Vec<Descriptor>,
    /// `rootfs.diff_ids`, one per layer.
    pub diff_ids: Vec<String>,
}

/// What a FROM reference names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    /// A bare name: the local store (short names as the store resolves them), then a registry through
    /// registries.conf short-name rules.
    Name(String),
    /// `docker://REF`: the local store under the normalised name, then that registry.
    Docker(Reference),
    /// `lade:NAME`: the local store only.
    Local(String),
    /// `oci:`, `oci-archive:`, `docker-archive:`, `dir:`, `containers-storage:`: read into the store every time.
    Files(String, TransportRef),
}

const TRANSPORTS: &[&str] = &[
    "docker",
    "oci",
    "oci-archive",
    "docker-archive",
    "dir",
    "lade",
    "containers-storage",
];

fn classify(reference: &str) -> Result<Source> {
    match transport::parse(reference) {
        Ok(TransportRef::Docker(r)) => Ok(Source::Docker(
            Reference::parse(&r).with_context(|| format!("`{reference}`"))?,
        )),
        Ok(TransportRef::Local(n)) => Ok(Source::Local(n)),
        Ok(t) => Ok(Source::Files(reference.to_string(), t)),
        Err(e)
            if reference
                .split_once(':')
                .is_some_and(|(t, _)| TRANSPORTS.contains(&t)) =>
        {
            Err(e)
        }
        // `localhost:5000/app` parses as an unknown transport `localhost`; a name it is.
        Err(_) => Ok(Source::Name(reference.to_string())),
    }
}

fn platform_override(p: &Platform) -> PlatformOverride {
    PlatformOverride {
        os: Some(p.os.clone()),
        arch: Some(p.architecture.clone()),
        variant: p.variant.clone(),
    }
}

/// Whether an image config's os/architecture/variant is `want`. A config without a variant matches any
/// variant of its architecture (many arm64 images leave it out).
fn config_matches(config: &ImageConfig, want: &Platform) -> bool {
    let os = config.os.as_deref().unwrap_or("linux");
    let Some(arch) = config.architecture.as_deref() else {
        return true;
    };
    let have = Platform::new(os, arch, config.variant.as_deref());
    have.os == want.os
        && have.architecture == want.architecture
        && (have.variant.is_none() || want.variant.is_none() || have.variant == want.variant)
}

fn config_platform(config: &ImageConfig) -> String {
    let f = |k: &Option<String>| k.as_deref().unwrap_or("?").to_string();
    match config.variant.as_deref() {
        Some(v) => format!("{}/{}/{v}", f(&config.os), f(&config.architecture)),
        None => format!("{}/{}", f(&config.os), f(&config.architecture)),
    }
}

/// Why a local image cannot be used as it is.
enum Local {
    Found(Box<ResolvedBase>),
    /// In the store, but not for this platform (or incomplete): the message says which.
    Unusable(String),
    Absent,
}

type Slot = Arc<Mutex<Option<Arc<ResolvedBase>>>>;

/// Resolves FROM references for one build (see the module docs).
pub struct BaseResolver {
    store: Store,
    sys: SystemContext,
    pull: PullPolicy,
    handle: tokio::runtime::Handle,
    memo: Mutex<HashMap<(String, Platform), Slot>>,
    events: crate::events::Events,
}

impl BaseResolver {
    pub fn new(
        store: Store,
        sys: SystemContext,
        pull: PullPolicy,
        handle: tokio::runtime::Handle,
    ) -> Self {
        BaseResolver {
            store,
            sys,
            pull,
            handle,
            memo: Mutex::new(HashMap::new()),
            events: Default::default(),
        }
    }

    /// Send the pulls' progress events (blobs, manifests) to `events`.
    pub fn with_events(mut self, events: crate::events::Events) -> Self {
        self.events = events;
        self
    }

    pub fn pull_policy(&self) -> PullPolicy {
        self.pull
    }

    /// `reference` for `platform`, from the store or pulled into it (see the module docs). The same
    /// (reference, platform) resolves once per build, even when several stages ask at once.
    pub fn resolve(&self, reference: &str, platform: &Platform) -> Result<Arc<ResolvedBase>> {
        self.resolve_memo(reference, platform)
            .with_context(|| format!("base image `{}` for {platform}", reference.trim()))
    }

    /// [`BaseResolver::resolve`] without naming the reference in the error (the frontend's caller does).
    fn resolve_memo(&self, reference: &str, platform: &Platform) -> Result<Arc<ResolvedBase>> {
        let reference = reference.trim();
        let slot = {
            let mut memo = self
                .memo
                .lock()
                .map_err(|_| anyhow!("base image memo poisoned"))?;
            memo.entry((reference.to_string(), platform.clone()))
                .or_default()
                .clone()
        };
        let mut slot = slot
            .lock()
            .map_err(|_| anyhow!("base image memo poisoned"))?;
        if let Some(b) = &*slot {
            return Ok(b.clone());
        }
        let base = Arc::new(self.resolve_uncached(reference, platform)?);
        *slot = Some(base.clone());
        Ok(base)
    }

    fn resolve_uncached(&self, reference: &str, platform: &Platform) -> Result<ResolvedBase> {
        if reference.is_empty() {
            bail!("the reference is empty");
        }
        if reference == "scratch" {
            bail!("`scratch` is the empty image, not one in a store or registry");
        }
        match classify(reference)? {
            Source::Local(n) => match self.local(&n, platform)? {
                Local::Found(b) => Ok(*b),
                Local::Unusable(why) => bail!("{why}"),
                Local::Absent => bail!(
                    "not in the local store at {}; pull it first (`lade pull …`) or tag it there",
                    self.store.root().display()
                ),
            },
            Source::Files(full, t) => {
                let name = t.store_name();
                self.copy_in(&full, &name, false, platform)
            }
            Source::Docker(r) => {
                let r = r.with_default_tag();
                self.by_policy(&r.to_string(), &|| Ok(vec![r.clone()]), platform)
            }
            Source::Name(n) => self.by_policy(
                &n,
                &|| crate::registry::pull_candidates(&n, &self.sys),
                platform,
            ),
        }
    }

    /// The `--pull` decision for a registry image known locally as `local_name`; `candidates` (where to
    /// pull from) is only worked out when the registry is asked.
    fn by_policy(
        &self,
        local_name: &str,
        candidates: &dyn Fn() -> Result<Vec<Reference>>,
        platform: &Platform,
    ) -> Result<ResolvedBase> {
        let local = if self.pull == PullPolicy::Always {
            Local::Absent
        } else {
            self.local(local_name, platform)?
        };
        match (self.pull, local) {
            (PullPolicy::Missing, Local::Found(b)) => Ok(*b),
            (PullPolicy::Never, Local::Found(b)) => Ok(*b),
            (PullPolicy::Never, Local::Unusable(why)) => {
                bail!(
                    "{why}, and --pull=never forbids pulling it; pull it with `lade pull` or use --pull=missing"
                )
            }
            (PullPolicy::Never, Local::Absent) => bail!(
                "not in the local store at {}, and --pull=never forbids pulling it; pull it first \
                 (`lade pull {local_name}`) or use --pull=missing",
                self.store.root().display()
            ),
            (PullPolicy::Newer, Local::Found(b)) => match candidates().and_then(|c| self.remote_digest(&c, platform))
            {
                Ok(Some(d)) if d == b.manifest_digest => Ok(*b),
                Ok(_) => self.pull_any(&candidates()?, platform),
                Err(e) => {
                    tracing::warn!(
                        "--pull=newer: cannot reach the registry for `{local_name}` ({e:#}); using the local image {}",
                        b.manifest_digest
                    );
                    Ok(*b)
                }
            },
            (_, Local::Unusable(why)) => {
                tracing::info!("{why}; pulling it");
                self.pull_any(&candidates()?, platform)
            }
            (PullPolicy::Always, _) => self.pull_any(&candidates()?, platform).map_err(|e| {
                match self.local(local_name, platform) {
                    Ok(Local::Found(b)) => e.context(format!(
                        "--pull=always: it is in the local store as {}; use --pull=missing to build from that",
                        b.name
                    )),
                    _ => e,
                }
            }),
            _ => self.pull_any(&candidates()?, platform),
        }
    }

    /// The manifest digest the registry would give for `platform` (first candidate that has it).
    fn remote_digest(
        &self,
        candidates: &[Reference],
        platform: &Platform,
    ) -> Result<Option<String>> {
        let mut errors = vec![];
        for r in candidates {
            let src = format!("docker://{r}");
            let got = self.block_on(async {
                let s = transport::open_source(&src, &self.sys).await?;
                let (bytes, mt) = s.manifest(None).await?;
                if !media::is_index(&mt) {
                    return Ok::<_, anyhow::Error>(
                        crate::oci::verify::sha256_digest(&bytes).to_string(),
                    );
                }
                let idx: Index = document::parse(&bytes)
                    .with_context(|| format!("{src}: the index is not valid"))?;
                let i = crate::oci::platform::choose(&idx, &platform_override(platform))?;
                Ok(idx.manifests[i].digest.clone())
            });
            match got {
                Ok(d) => return Ok(Some(d)),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        bail!("{}", errors.join("; "))
    }

    /// Pull from the first candidate that has the image.
    fn pull_any(&self, candidates: &[Reference], platform: &Platform) -> Result<ResolvedBase> {
        let mut errors = vec![];
        for r in candidates {
            let src = format!("docker://{r}");
            match self.copy_in(&src, &r.to_string(), true, platform) {
                Ok(b) => return Ok(b),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        match errors.len() {
            0 => bail!("no registry to pull it from"),
            1 => bail!("pulling it: {}", errors[0]),
            _ => bail!(
                "pulling it from every candidate failed: {}",
                errors.join("; ")
            ),
        }
    }

    /// Copy `src` (a transport string) into the store under `name` (qualified as a pulled name when
    /// `remote`), choosing `platform` from an index, and load it.
    fn copy_in(
        &self,
        src: &str,
        name: &str,
        remote: bool,
        platform: &Platform,
    ) -> Result<ResolvedBase> {
        tracing::info!("pulling {src} for {platform}");
        let root = self.store.root().to_path_buf();
        let opts = CopyOptions {
            multi_arch: MultiArch::System,
            referrers: false,
            platform: platform_override(platform),
            retry_times: self.sys.retry_times,
            tmp_dir: root.join("lade").join("tmp"),
            events: self.events.clone(),
            ..CopyOptions::default()
        };
        let report = self.block_on(async {
            let source = transport::open_source(src, &self.sys)
                .await
                .with_context(|| format!("opening {src}"))?;
            // The signature policy, before a single layer is read.
            let source = crate::policy::check(src, source, &self.sys).await?;
            let dst = LocalDestination::open_named(&root, name, remote)?;
            // A digest-pinned index is kept (only its chosen instance is copied, and that is what the store
            // names), so the next build finds the pinned digest locally instead of asking the registry.
            if let Some(pinned) = pinned_digest(name) {
                let (bytes, mt) = source.manifest(None).await?;
                check_bytes(&bytes, &pinned, None).with_context(|| src.to_string())?;
                if media::is_index(&mt) {
                    self.store.put_manifest(&bytes, &mt)?;
                }
            }
            copy_image(source.as_ref(), &dst, &opts).await
        })?;
        let digest: Digest = report.digest.parse()?;
        let full = LocalDestination::stored_name(name, remote);
        let desc = crate::oci::manifest_descriptor(digest, 0, &report.media_type)?;
        match self.load(&full, &desc, platform)? {
            Local::Found(b) => Ok(*b),
            Local::Unusable(why) => bail!("{why} (after reading it from {src})"),
            Local::Absent => bail!("{src}: the copied image is missing from the store"),
        }
    }

    /// The image `name` names in the store, if present and usable for `platform`.
    fn local(&self, name: &str, platform: &Platform) -> Result<Local> {
        let (_, _, digest) = names::split(name);
        let (full, desc) = match self.store.resolve(name) {
            Ok(hit) => hit,
            Err(_) => {
                // A digest-pinned manifest whose blob is in the store is that image, whatever it is named.
                if let Some(Ok(d)) = digest.map(str::parse::<Digest>)
                    && self.store.layout().has_blob(&d, None)
                {
                    let bytes = self.store.layout().read_blob(&d)?;
                    let mt = media::sniff(&bytes);
                    let desc = crate::oci::manifest_descriptor(d, bytes.len() as u64, &mt)?;
                    return self.load(name, &desc, platform);
                }
                return Ok(Local::Absent);
            }
        };
        self.load(&full, &desc, platform)
    }

    /// Load the image under `top` (a manifest, or an index to choose `platform` from) from the store.
    fn load(&self, name: &str, top: &Descriptor, platform: &Platform) -> Result<Local> {
        let layout = self.store.layout();
        let mut bytes = layout.read_blob(top.digest())?;
        check_bytes(&bytes, top.digest(), None)
            .with_context(|| format!("manifest of `{name}` in the store"))?;
        let mut digest = top.digest().clone();
        if media::is_index(&media::sniff(&bytes)) {
            let idx: Index = document::parse(&bytes)
                .with_context(|| format!("`{name}`: the stored index is not valid"))?;
            let i = match crate::oci::platform::choose(&idx, &platform_override(platform)) {
                Ok(i) => i,
                Err(e) => {
                    return Ok(Local::Unusable(format!(
                        "`{name}` in the local store: {e:#}"
                    )));
                }
            };
            let child: Descriptor = (idx.manifests[i].spec())
                .with_context(|| format!("`{name}`: index entry {i} is not a descriptor"))?;
            if !layout.has_blob(child.digest(), None) {
                return Ok(Local::Unusable(format!(
                    "`{name}` in the local store lacks its {platform} image {}",
                    child.digest()
                )));
            }
            bytes = layout.read_blob(child.digest())?;
            check_bytes(&bytes, child.digest(), Some(child.size()))
                .with_context(|| format!("`{name}`: stored manifest {}", child.digest()))?;
            digest = child.digest().clone();
        }
        let manifest: Manifest = document::parse(&bytes).with_context(|| {
            format!("`{name}`: manifest {digest} is not a valid image manifest")
        })?;
        let cfg_desc: Descriptor = (manifest.config.spec())
            .with_context(|| format!("`{name}`: manifest {digest} has a bad config descriptor"))?;
        if !layout.has_blob(cfg_desc.digest(), None) {
            return Ok(Local::Unusable(format!(
                "`{name}` in the local store lacks its config {}",
                cfg_desc.digest()
            )));
        }
        let cfg_bytes = layout.read_blob(cfg_desc.digest())?;
        check_bytes(&cfg_bytes, cfg_desc.digest(), Some(cfg_desc.size()))
            .with_context(|| format!("`{name}`: stored config"))?;
        let config: ImageConfig = document::parse(&cfg_bytes)
            .with_context(|| format!("`{name}`: config {} is not valid", cfg_desc.digest()))?;
        if !config_matches(&config, platform) {
            return Ok(Local::Unusable(format!(
                "`{name}` in the local store is for {}, not {platform}",
                config_platform(&config)
            )));
        }
        let layers: Vec<Descriptor> = (manifest.layers.iter().map(Desc::spec))
            .collect::<Result<_>>()
            .with_context(|| format!("`{name}`: manifest {digest} has a bad layer descriptor"))?;
        let diff_ids: Vec<String> = config.diff_ids().to_vec();
        if diff_ids.len() != layers.len() {
            bail!(
                "`{name}`: manifest {digest} lists {} layers but its config has {} diff_ids; the image is damaged",
                layers.len(),
                diff_ids.len()
            );
        }
        for l in &layers {
            // The blob, not just its unpacked dir: the built image references it.
            if !layout.has_blob(l.digest(), Some(l.size())) {
                return Ok(Local::Unusable(format!(
                    "`{name}` in the local store lacks layer {}",
                    l.digest()
                )));
            }
        }
        Ok(Local::Found(Box::new(ResolvedBase {
            name: name.to_string(),
            manifest_digest: digest.to_string(),
            config,
            layers,
            diff_ids,
        })))
    }

    /// Every layer of `base` unpacked into `cache` (in parallel; each verified against its diff_id, which
    /// is recorded in the store), as an [`ImageState`]. Layers already unpacked cost a stat.
    pub fn image_state(&self, base: &ResolvedBase, cache: &LayerCache) -> Result<ImageState> {
        let state = Self::lazy_state(base, cache)?;
        self.unpack_layers(&state.layers, cache)
            .with_context(|| format!("base image `{}`", base.name))?;
        Ok(state)
    }

    /// `base` as an [`ImageState`] whose layer dirs are where [`BaseResolver::unpack_layers`] puts them,
    /// unpacked or not yet: the build unpacks a layer only when a step reads files.
    pub fn lazy_state(base: &ResolvedBase, cache: &LayerCache) -> Result<ImageState> {
        let layers = base
            .layers
            .iter()
            .zip(&base.diff_ids)
            .map(|(blob, diff_id)| {
                Ok(Layer {
                    diff_id: diff_id.clone(),
                    blob: blob.clone(),
                    dir: cache.path_of(diff_id)?,
                })
            })
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("base image `{}`", base.name))?;
        Ok(ImageState {
            layers,
            config: base.config.clone(),
        })
    }

    /// Unpack every layer of `layers` not unpacked yet from its blob in the store (in parallel; each
    /// verified against its diff_id, which is recorded in the store). A layer listed twice (schema 1
    /// conversions, several empty layers) is unpacked once.
    pub fn unpack_layers(&self, layers: &[Layer], cache: &LayerCache) -> Result<()> {
        let mut todo: Vec<&Layer> = Vec::new();
        for l in layers {
            if !todo.iter().any(|t| t.diff_id == l.diff_id) && cache.get(&l.diff_id)?.is_none() {
                todo.push(l);
            }
        }
        let n = layers.len();
        let next = AtomicUsize::new(0);
        let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let work = || {
            while let Some(l) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                if let Err(e) = self.unpack_one(&l.blob, &l.diff_id, cache) {
                    let at = layers
                        .iter()
                        .position(|x| x.diff_id == l.diff_id)
                        .unwrap_or(0);
                    let e = e.context(format!("layer {} of {n} ({})", at + 1, l.blob.digest()));
                    first_error.lock().expect("lock").get_or_insert(e);
                    // The other workers stop at their next layer.
                    next.store(todo.len(), Ordering::Relaxed);
                }
            }
        };
        let workers = std::thread::available_parallelism()
            .map_or(2, |c| c.get())
            .min(todo.len());
        if workers <= 1 {
            work();
        } else {
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(work);
                }
            });
        }
        match first_error.into_inner().expect("lock") {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn unpack_one(&self, blob: &Descriptor, diff_id: &str, cache: &LayerCache) -> Result<PathBuf> {
        let path = self.store.layout().blob_path(blob.digest());
        let dir = cache.get_or_unpack(diff_id, || {
            let f = std::fs::File::open(&path).with_context(|| {
                format!("layer blob {} is missing from the store", blob.digest())
            })?;
            Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
        })?;
        if let Ok(d) = diff_id.parse::<Digest>()
            && self.store.diff_id_of(blob.digest()).as_ref() != Some(&d)
            && self.store.layout().has_blob(blob.digest(), None)
        {
            self.store.record_diff_id(blob.digest(), &d)?;
        }
        Ok(dir)
    }

    /// Run `fut` on the build's runtime from a plain thread (or from a helper thread when called inside
    /// a runtime, where blocking would panic).
    fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| match s.spawn(|| self.handle.block_on(fut)).join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            })
        } else {
            self.handle.block_on(fut)
        }
    }
}

/// The digest a reference pins (`repo@sha256:…`), if any.
fn pinned_digest(name: &str) -> Option<Digest> {
    names::split(name).2.and_then(|d| d.parse().ok())
}

fn strings(field: Option<&Nullable<Vec<String>>>) -> Vec<String> {
    field.and_then(set).cloned().unwrap_or_default()
}

impl ImageResolver for BaseResolver {
    fn resolve(
        &self,
        reference: &str,
        platform: &crate::plugin::frontend::Platform,
    ) -> Result<Option<BaseImage>> {
        if reference.trim() == "scratch" {
            return Ok(None);
        }
        let p = Platform::new(
            &platform.os,
            &platform.architecture,
            platform.variant.as_deref(),
        );
        // The caller names the reference ("resolving base image `X`").
        let base = self.resolve_memo(reference, &p)?;
        Ok(Some(BaseImage {
            reference: base.name.clone(),
            env: strings(base.config.container().map(|c| &c.env)),
            on_build: strings(base.config.container().map(|c| &c.on_build)),
            shell: strings(base.config.container().map(|c| &c.shell)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_references() {
        assert_eq!(
            classify("alpine:3").unwrap(),
            Source::Name("alpine:3".into())
        );
        assert_eq!(
            classify("localhost:5000/app:1").unwrap(),
            Source::Name("localhost:5000/app:1".into())
        );
        assert!(matches!(
            classify("docker://quay.io/a/b:1").unwrap(),
            Source::Docker(r) if r.registry == "quay.io" && r.repository == "a/b"
        ));
        assert_eq!(classify("lade:app").unwrap(), Source::Local("app".into()));
        assert!(
            matches!(classify("oci:/x:tag").unwrap(), Source::Files(s, _) if s == "oci:/x:tag")
        );
        assert!(classify("docker://").is_err());
        assert!(classify("docker:alpine").is_err());
    }

    #[test]
    fn names_file_images_like_pull() {
        assert_eq!(
            transport::parse("oci:/a/base:v1").unwrap().store_name(),
            "v1"
        );
        assert_eq!(
            transport::parse("docker-archive:/a/Base.tar")
                .unwrap()
                .store_name(),
            "base"
        );
        assert_eq!(
            transport::parse("docker-archive:/a/b.tar:@1")
                .unwrap()
                .store_name(),
            "b"
        );
        assert_eq!(
            LocalDestination::stored_name("v1", false),
            "localhost/v1:latest"
        );
        assert_eq!(
            LocalDestination::stored_name("alpine@sha256:00", true),
            "docker.io/library/alpine@sha256:00"
        );
        assert_eq!(
            LocalDestination::stored_name("h:5000/a:1", true),
            "h:5000/a:1"
        );
    }

    #[test]
    fn matches_platforms() {
        let arm64: Platform = "linux/arm64".parse().unwrap();
        let amd64: Platform = "linux/amd64".parse().unwrap();
        let v7: Platform = "linux/arm/v7".parse().unwrap();
        assert!(config_matches(
            &cfg(json!({"os": "linux", "architecture": "arm64", "variant": "v8"})),
            &arm64
        ));
        assert!(config_matches(
            &cfg(json!({"os": "linux", "architecture": "aarch64"})),
            &arm64
        ));
        assert!(!config_matches(
            &cfg(json!({"os": "linux", "architecture": "amd64"})),
            &arm64
        ));
        assert!(config_matches(
            &cfg(json!({"os": "linux", "architecture": "x86_64"})),
            &amd64
        ));
        assert!(!config_matches(
            &cfg(json!({"os": "linux", "architecture": "arm", "variant": "v6"})),
            &v7
        ));
        assert!(config_matches(
            &cfg(json!({"os": "linux", "architecture": "arm"})),
            &v7
        ));
        assert!(!config_matches(
            &cfg(json!({"os": "windows", "architecture": "amd64"})),
            &amd64
        ));
        assert_eq!(
            config_platform(&cfg(
                json!({"os": "linux", "architecture": "arm", "variant": "v6"})
            )),
            "linux/arm/v6"
        );
    }

    #[test]
    fn reads_base_config_fields() {
        let c = cfg(
            json!({"config": {"Env": ["A=1", "PATH=/bin"], "OnBuild": ["RUN true"], "Shell": ["/bin/bash", "-c"]}}),
        );
        let c = c.container();
        assert_eq!(strings(c.map(|c| &c.env)), vec!["A=1", "PATH=/bin"]);
        assert_eq!(strings(c.map(|c| &c.on_build)), vec!["RUN true"]);
        assert_eq!(strings(c.map(|c| &c.shell)), vec!["/bin/bash", "-c"]);
        assert!(strings(c.map(|c| &c.cmd)).is_empty());
        assert!(strings(None).is_empty());
    }

    fn cfg(v: serde_json::Value) -> ImageConfig {
        serde_json::from_value(v).unwrap()
    }

    /// A one-layer image tagged `name` in a new store under `root`; returns (store, layer diff_id).
    fn store_image(root: &std::path::Path, name: &str, arch: &str, file: &[u8]) -> (Store, String) {
        let (store, mut diffs) = store_layers(root, name, arch, &[("etc/hello", file)]);
        (store, diffs.remove(0))
    }

    /// An image of one layer per (path, content), tagged `name`; returns the store and the diff_ids.
    fn store_layers(
        root: &std::path::Path,
        name: &str,
        arch: &str,
        files: &[(&str, &[u8])],
    ) -> (Store, Vec<String>) {
        let store = Store::open(root).unwrap();
        let (mut descs, mut diffs) = (vec![], vec![]);
        for (path, data) in files {
            let mut tar = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, path, *data).unwrap();
            let layer = tar.into_inner().unwrap();
            diffs.push(crate::oci::verify::sha256_digest(&layer).to_string());
            descs.push(store.put_manifest(&layer, media::OCI_LAYER).unwrap());
        }
        let config = json!({"architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin"], "OnBuild": ["RUN true"]},
            "rootfs": {"type": "layers", "diff_ids": diffs}});
        let cb = serde_json::to_vec(&config).unwrap();
        let c = store.put_manifest(&cb, media::OCI_CONFIG).unwrap();
        let m = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": c, "layers": descs});
        let mb = serde_json::to_vec(&m).unwrap();
        let md = store.put_manifest(&mb, media::OCI_MANIFEST).unwrap();
        store.tag(name, &md).unwrap();
        (store, diffs)
    }

    #[test]
    fn unpacks_many_layers_in_parallel_in_order() {
        let t = tempfile::tempdir().unwrap();
        let host = Platform::host();
        let files: Vec<(String, Vec<u8>)> = (0..6)
            .map(|i| (format!("d{i}/f"), format!("layer {i}\n").into_bytes()))
            .collect();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        let (store, diffs) = store_layers(t.path(), "many:1", &host.architecture, &refs);
        let rt = runtime();
        let r = resolver(&store, PullPolicy::Never, &rt);
        let b = r.resolve("many:1", &host).unwrap();
        let cache = LayerCache::new(store.root());
        let st = r.image_state(&b, &cache).unwrap();
        assert_eq!(
            st.layers
                .iter()
                .map(|l| l.diff_id.clone())
                .collect::<Vec<_>>(),
            diffs
        );
        for (i, l) in st.layers.iter().enumerate() {
            assert_eq!(
                std::fs::read(l.dir.join(format!("d{i}/f"))).unwrap(),
                format!("layer {i}\n").as_bytes()
            );
            assert_eq!(&l.blob, &b.layers[i]);
        }
        // A second call reuses the unpacked dirs.
        let again = r.image_state(&b, &cache).unwrap();
        assert_eq!(again.lowers(), st.lowers());
    }

    #[test]
    fn a_layer_listed_twice_is_unpacked_once_and_kept_in_both_places() {
        let t = tempfile::tempdir().unwrap();
        let host = Platform::host();
        let refs: [(&str, &[u8]); 3] = [("a", b"A\n"), ("b", b"B\n"), ("a", b"A\n")];
        let (store, diffs) = store_layers(t.path(), "twice:1", &host.architecture, &refs);
        assert_eq!(diffs[0], diffs[2]);
        let rt = runtime();
        let r = resolver(&store, PullPolicy::Never, &rt);
        let b = r.resolve("twice:1", &host).unwrap();
        let st = r.image_state(&b, &LayerCache::new(store.root())).unwrap();
        let ids: Vec<&str> = st.layers.iter().map(|l| l.diff_id.as_str()).collect();
        assert_eq!(ids, diffs.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(st.layers[0].dir, st.layers[2].dir);
        assert_ne!(st.layers[0].dir, st.layers[1].dir);
        assert_eq!(std::fs::read(st.layers[2].dir.join("a")).unwrap(), b"A\n");
    }

    fn resolver(store: &Store, pull: PullPolicy, rt: &tokio::runtime::Runtime) -> BaseResolver {
        let sys = SystemContext {
            store_root: store.root().to_path_buf(),
            retry_times: 0,
            ..Default::default()
        };
        BaseResolver::new(store.clone(), sys, pull, rt.handle().clone())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn never_uses_the_store_and_names_what_is_missing() {
        let t = tempfile::tempdir().unwrap();
        let host = Platform::host();
        let (store, diff_id) = store_image(t.path(), "app:1", &host.architecture, b"hi\n");
        let rt = runtime();
        let r = resolver(&store, PullPolicy::Never, &rt);
        let b = r.resolve("app:1", &host).unwrap();
        assert_eq!(b.name, "localhost/app:1");
        assert_eq!(b.diff_ids, vec![diff_id.clone()]);
        // Memoised: the same Arc.
        assert!(Arc::ptr_eq(&b, &r.resolve("app:1", &host).unwrap()));
        let e = format!("{:#}", r.resolve("nothere:2", &host).unwrap_err());
        assert!(
            e.contains("`nothere:2`") && e.contains("--pull=never"),
            "{e}"
        );
        let other: Platform = if host.architecture == "s390x" {
            "linux/amd64"
        } else {
            "linux/s390x"
        }
        .parse()
        .unwrap();
        let e = format!("{:#}", r.resolve("app:1", &other).unwrap_err());
        assert!(
            e.contains(&format!("is for linux/{}", host.architecture))
                && e.contains("--pull=never"),
            "{e}"
        );
        // The frontend sees the base's Env and OnBuild.
        let wp = crate::plugin::frontend::Platform {
            os: host.os.clone(),
            architecture: host.architecture.clone(),
            variant: host.variant.clone(),
            os_version: None,
            os_features: vec![],
        };
        let img = ImageResolver::resolve(&r, "app:1", &wp).unwrap().unwrap();
        assert_eq!(img.reference, "localhost/app:1");
        assert_eq!(img.env, vec!["PATH=/bin"]);
        assert_eq!(img.on_build, vec!["RUN true"]);
        assert!(
            ImageResolver::resolve(&r, "scratch", &wp)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn unpacks_layers_verified_and_records_diff_ids() {
        let t = tempfile::tempdir().unwrap();
        let host = Platform::host();
        let (store, diff_id) = store_image(t.path(), "app:1", &host.architecture, b"hi\n");
        let rt = runtime();
        let r = resolver(&store, PullPolicy::Missing, &rt);
        let b = r.resolve("app:1", &host).unwrap();
        let cache = LayerCache::new(store.root());
        let st = r.image_state(&b, &cache).unwrap();
        assert_eq!(st.layers.len(), 1);
        assert_eq!(
            std::fs::read(st.layers[0].dir.join("etc/hello")).unwrap(),
            b"hi\n"
        );
        assert_eq!(
            store
                .diff_id_of(b.layers[0].digest())
                .map(|d| d.to_string()),
            Some(diff_id.clone())
        );
        assert_eq!(crate::build::config::env(&st.config)[0], "PATH=/bin");

        // A layer that does not match its diff_id is refused, naming the image and the layer.
        let t2 = tempfile::tempdir().unwrap();
        let (store2, _) = store_image(t2.path(), "bad:1", &host.architecture, b"x\n");
        let r2 = resolver(&store2, PullPolicy::Never, &rt);
        let mut b2 = (*r2.resolve("bad:1", &host).unwrap()).clone();
        b2.diff_ids[0] = format!("sha256:{}", "0".repeat(64));
        let e = format!(
            "{:#}",
            r2.image_state(&b2, &LayerCache::new(store2.root()))
                .unwrap_err()
        );
        assert!(
            e.contains("localhost/bad:1") && e.contains("does not match its diff_id"),
            "{e}"
        );
    }

    #[test]
    fn newer_keeps_the_local_image_when_the_registry_is_unreachable_and_always_fails() {
        let t = tempfile::tempdir().unwrap();
        let host = Platform::host();
        // Port 1 on loopback: connection refused at once.
        let name = "127.0.0.1:1/app:1";
        let (store, _) = store_image(t.path(), name, &host.architecture, b"hi\n");
        let rt = runtime();
        let b = resolver(&store, PullPolicy::Newer, &rt)
            .resolve(name, &host)
            .unwrap();
        assert_eq!(b.name, name);
        let e = format!(
            "{:#}",
            resolver(&store, PullPolicy::Always, &rt)
                .resolve(name, &host)
                .unwrap_err()
        );
        assert!(
            e.contains(name) && e.contains("pulling it") && e.contains("--pull=missing"),
            "{e}"
        );
        let b = resolver(&store, PullPolicy::Missing, &rt)
            .resolve(name, &host)
            .unwrap();
        assert_eq!(b.name, name);
    }

    #[test]
    fn reads_file_transports_into_the_store() {
        let t = tempfile::tempdir().unwrap();
        let host = Platform::host();
        let (store, _) = store_image(&t.path().join("a"), "app:1", &host.architecture, b"hi\n");
        let rt = runtime();
        let out = t.path().join("layout");
        let spec: crate::build::output::OutputSpec =
            format!("type=oci,dest={},name=v1", out.display())
                .parse()
                .unwrap();
        let sys = SystemContext {
            store_root: store.root().to_path_buf(),
            ..Default::default()
        };
        crate::build::output::export(
            &store,
            "app:1",
            &spec,
            &sys,
            rt.handle(),
            &Default::default(),
        )
        .unwrap();
        let other = Store::open(&t.path().join("b")).unwrap();
        let r = resolver(&other, PullPolicy::Never, &rt);
        let b = r
            .resolve(&format!("oci:{}:v1", out.display()), &host)
            .unwrap();
        assert_eq!(b.name, "localhost/v1:latest");
        assert_eq!(other.resolve("v1").unwrap().0, "localhost/v1:latest");
        let st = r.image_state(&b, &LayerCache::new(other.root())).unwrap();
        assert_eq!(
            std::fs::read(st.layers[0].dir.join("etc/hello")).unwrap(),
            b"hi\n"
        );
        let e = format!(
            "{:#}",
            r.resolve(&format!("oci:{}:nope", out.display()), &host)
                .unwrap_err()
        );
        assert!(e.contains("no image named `nope`"), "{e}");
    }
}
