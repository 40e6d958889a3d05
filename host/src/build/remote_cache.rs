//! The layer cache shared through a registry or an OCI layout directory (`--cache-to`, `--cache-from`).
//!
//! A cache is one OCI artifact: an image manifest with artifactType [`ARTIFACT_TYPE`] whose config blob is a
//! [`CacheMap`] (step cache key → the layer it made; cache-mount id → a compressed tar of its contents) and
//! whose layers list every blob the map names, so the registry keeps them and shares them with the images
//! (blobs are mounted across repositories when pushed). A hit needs nothing but the map entry: the config and
//! history of a step are made again from its instruction, as for a local hit. Importing reads the manifest
//! and the map only; a layer is downloaded when a later step reads its files or the image is committed.
//!
//! buildah's plain form (`--cache-to REPO`, `--cache-from REPO`) is a repository where each step is pushed
//! on its own, tagged with its key's hex, and looked up one step at a time.

use super::cache::LayerRecord;
use crate::layer::{DiffOptions, DiffSource, UnpackOptions, unpack_tar, write_diff};
use crate::oci::Compression;
use crate::oci::document::{self, Desc, Manifest};
use crate::reference::Reference;
use crate::registry::{Repo, SystemContext, open_repo};
use crate::store::Store;
use crate::store::layout::Layout;
use crate::transport::{Descriptor, Digest};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The artifactType of a cache manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.lade.cache.v1+json";
/// The media type of the map (the manifest's config blob).
pub const MAP_MEDIA_TYPE: &str = "application/vnd.lade.cache.map.v1+json";
/// A cache mount's contents: a tar, zstd-compressed.
pub const MOUNT_MEDIA_TYPE: &str = "application/vnd.lade.cache.mount.v1.tar+zstd";
const MANIFEST_MT: &str = "application/vnd.oci.image.manifest.v1+json";
/// The name a cache gets in an OCI layout when `tag=` is not given.
pub const DEFAULT_OCI_TAG: &str = "lade-cache";
/// Maps larger than this are refused.
const MAP_MAX: u64 = 64 << 20;

/// Where a cache is, as `--cache-to`/`--cache-from` name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `type=registry,ref=R`: one artifact under R's tag.
    Registry(Reference),
    /// `type=oci,dest=DIR` / `src=DIR`: one artifact named `tag` in an OCI layout.
    Oci { dir: PathBuf, tag: String },
    /// buildah's plain `REPO`: each step its own artifact, tagged with its key.
    PerStep(Reference),
}

/// One `--cache-to` or `--cache-from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSpec {
    pub target: Target,
    /// `mode=max`: steps of stages the image does not contain are exported too.
    pub max: bool,
    /// `mounts=true`: `RUN --mount=type=cache` contents are exported.
    pub mounts: bool,
    /// `ignore-error=true`: a failed export is a warning.
    pub ignore_error: bool,
}

impl CacheSpec {
    /// Parse a flag value; `export` says whether it is `--cache-to` (`dest=`, `mode=`, `mounts=`) or
    /// `--cache-from` (`src=`).
    pub fn parse(s: &str, export: bool) -> Result<CacheSpec> {
        let flag = if export { "--cache-to" } else { "--cache-from" };
        if !s.contains('=') {
            // buildah: a repository; a tag is dropped (every step is tagged with its own key).
            let r = Reference::parse(s)
                .with_context(|| format!("{flag} {s:?}: not a repository name"))?;
            if r.digest.is_some() {
                bail!("{flag} {s:?}: a cache repository is named without a digest");
            }
            let r = Reference { tag: None, ..r };
            return Ok(CacheSpec {
                target: Target::PerStep(r),
                max: false,
                mounts: false,
                ignore_error: false,
            });
        }
        let mut kv = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                bail!("{flag} {s:?}: `{part}` is not KEY=VALUE");
            };
            if kv.insert(k.to_string(), v.to_string()).is_some() {
                bail!("{flag} {s:?}: `{k}` is given twice");
            }
        }
        let take_bool = |kv: &mut BTreeMap<String, String>, k: &str| -> Result<bool> {
            match kv.remove(k).as_deref() {
                None | Some("false") => Ok(false),
                Some("true") | Some("") => Ok(true),
                Some(v) => bail!("{flag} {s:?}: {k}={v} is not true or false"),
            }
        };
        let kind = kv.remove("type").unwrap_or_else(|| "registry".to_string());
        let (max, mounts) = if export {
            let max = match kv.remove("mode").as_deref() {
                None | Some("min") => false,
                Some("max") => true,
                Some(m) => bail!("{flag} {s:?}: mode={m}: expected min or max"),
            };
            (max, take_bool(&mut kv, "mounts")?)
        } else {
            (false, false)
        };
        let ignore_error = take_bool(&mut kv, "ignore-error")?;
        // buildx options lade's format has no choice about: always OCI media types, always a manifest.
        for k in ["oci-mediatypes", "image-manifest"] {
            take_bool(&mut kv, k)?;
        }
        let target = match kind.as_str() {
            "registry" => {
                let r = kv.remove("ref").with_context(|| {
                    format!("{flag} {s:?}: type=registry needs ref=REGISTRY/REPO:TAG")
                })?;
                let parsed = Reference::parse(&r)
                    .with_context(|| format!("{flag} {s:?}: ref={r} is not an image reference"))?;
                if parsed.digest.is_some() && export {
                    bail!("{flag} {s:?}: ref={r}: a cache is written under a tag, not a digest");
                }
                Target::Registry(parsed.with_default_tag())
            }
            "oci" | "local" => {
                let key = if export { "dest" } else { "src" };
                let dir = kv
                    .remove(key)
                    .with_context(|| format!("{flag} {s:?}: type={kind} needs {key}=DIR"))?;
                let tag = kv
                    .remove("tag")
                    .unwrap_or_else(|| DEFAULT_OCI_TAG.to_string());
                Target::Oci {
                    dir: PathBuf::from(dir),
                    tag,
                }
            }
            other => bail!("{flag} {s:?}: type={other} is not supported (registry, oci or local)"),
        };
        if let Some(k) = kv.keys().next() {
            bail!("{flag} {s:?}: unknown option `{k}`");
        }
        Ok(CacheSpec {
            target,
            max,
            mounts,
            ignore_error,
        })
    }

    /// The cache as shown in messages.
    pub fn display(&self) -> String {
        match &self.target {
            Target::Registry(r) => format!("{r}"),
            Target::PerStep(r) => format!("{}/{}", r.registry, r.repository),
            Target::Oci { dir, tag } => format!("oci:{}:{tag}", dir.display()),
        }
    }
}

/// A cache mount's exported contents.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountRecord {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// The config blob of a cache artifact.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CacheMap {
    pub version: u32,
    /// Step cache key → the layer the step made.
    #[serde(default)]
    pub steps: BTreeMap<String, LayerRecord>,
    /// `RUN --mount=type=cache` id → its contents.
    #[serde(default)]
    pub mounts: BTreeMap<String, MountRecord>,
    /// Keys of checks that found the image needed no change (a WORKDIR that exists), so a hit needs no
    /// layer's files. (Absent in maps of older lade: the check then reads the files.)
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub unchanged: BTreeSet<String>,
}

const MAP_VERSION: u32 = 1;

/// Where an imported cache's blobs come from.
enum Source {
    Registry(Repo),
    PerStep(Repo),
    Oci(Layout),
}

/// The caches of `--cache-from`, merged (the first one naming a key wins). Thread-safe.
pub struct RemoteCache {
    sources: Vec<(String, Source)>,
    /// Key → (source, record); per-step sources fill it one lookup at a time (None: looked up, absent).
    steps: Mutex<HashMap<String, Option<(usize, LayerRecord)>>>,
    mounts: BTreeMap<String, (usize, MountRecord)>,
    unchanged: BTreeSet<String>,
    /// Blob digest → the source that has it.
    origins: Mutex<HashMap<String, usize>>,
    /// One download per blob at a time.
    fetching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    store: Store,
    rt: tokio::runtime::Handle,
    downloads: AtomicU64,
}

/// A manifest's bytes checked to be a lade cache; returns the map's descriptor.
fn cache_manifest(bytes: &[u8], what: &str) -> Result<Desc> {
    let m: Manifest = document::parse(bytes).with_context(|| format!("{what}: not a manifest"))?;
    if m.artifact_type.as_deref() != Some(ARTIFACT_TYPE) && m.config.media_type() != MAP_MEDIA_TYPE
    {
        bail!(
            "{what} is not a lade build cache (artifactType {:?}); point --cache-from at what --cache-to wrote",
            m.artifact_type.as_deref().unwrap_or("")
        );
    }
    Ok(m.config)
}

fn parse_map(bytes: &[u8], what: &str) -> Result<CacheMap> {
    let map: CacheMap = serde_json::from_slice(bytes)
        .with_context(|| format!("{what}: the cache map is damaged"))?;
    if map.version != MAP_VERSION {
        bail!(
            "{what}: cache map version {} is not one this lade reads ({MAP_VERSION})",
            map.version
        );
    }
    Ok(map)
}

/// A small blob from a registry into memory, its digest checked.
async fn get_small(repo: &Repo, desc: &Desc) -> Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    if desc.size > MAP_MAX {
        bail!(
            "the cache map of {} is {} bytes: too large",
            repo.display(),
            desc.size
        );
    }
    let d: Digest = desc.digest.parse()?;
    let spec = Descriptor::new(desc.media_type().into(), desc.size, d.clone());
    let mut r = repo.get_blob(&spec).await?;
    let mut out = Vec::new();
    (&mut r).take(MAP_MAX + 1).read_to_end(&mut out).await?;
    crate::oci::verify::check_bytes(&out, &d, Some(desc.size))
        .with_context(|| format!("the cache map from {}", repo.display()))?;
    Ok(out)
}

impl RemoteCache {
    /// Read the manifest and map of every cache in `specs` (no layer is downloaded). A cache that does not
    /// exist yet is skipped with a note (the first build of a branch has none).
    pub fn import(
        specs: &[CacheSpec],
        store: &Store,
        sys: &SystemContext,
        rt: &tokio::runtime::Handle,
        note: &dyn Fn(&str),
    ) -> Result<RemoteCache> {
        let mut rc = RemoteCache {
            sources: Vec::new(),
            steps: Mutex::new(HashMap::new()),
            mounts: BTreeMap::new(),
            unchanged: BTreeSet::new(),
            origins: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            store: store.clone(),
            rt: rt.clone(),
            downloads: AtomicU64::new(0),
        };
        for spec in specs {
            let what = spec.display();
            let (source, map) = match &spec.target {
                Target::PerStep(r) => {
                    let (repo, _) = open_repo(r, sys, false)?;
                    note(&format!("cache: steps are looked up in {what}"));
                    (Source::PerStep(repo), None)
                }
                Target::Registry(r) => {
                    let (repo, _) = open_repo(r, sys, false)?;
                    let tag = r
                        .digest
                        .clone()
                        .or(r.tag.clone())
                        .unwrap_or("latest".into());
                    let Some(m) = rt.block_on(repo.get_manifest(&tag))? else {
                        note(&format!(
                            "cache: {what} does not exist yet; building without it"
                        ));
                        continue;
                    };
                    let cfg = cache_manifest(&m.bytes, &what)?;
                    let bytes = rt.block_on(get_small(&repo, &cfg))?;
                    (Source::Registry(repo), Some(parse_map(&bytes, &what)?))
                }
                Target::Oci { dir, tag } => {
                    let Ok(layout) = Layout::open(dir) else {
                        note(&format!(
                            "cache: {what} does not exist yet; building without it"
                        ));
                        continue;
                    };
                    let Some(desc) = layout.find_ref(tag)? else {
                        note(&format!(
                            "cache: {what} does not exist yet; building without it"
                        ));
                        continue;
                    };
                    let bytes = layout.read_blob(desc.digest())?;
                    crate::oci::verify::check_bytes(&bytes, desc.digest(), Some(desc.size()))?;
                    let cfg = cache_manifest(&bytes, &what)?;
                    let d: Digest = cfg.digest.parse()?;
                    let map = layout.read_blob(&d)?;
                    crate::oci::verify::check_bytes(&map, &d, None)?;
                    (Source::Oci(layout), Some(parse_map(&map, &what)?))
                }
            };
            let i = rc.sources.len();
            if let Some(map) = map {
                note(&format!(
                    "cache: {what}: {} steps, {} cache mounts",
                    map.steps.len(),
                    map.mounts.len()
                ));
                let mut steps = rc.steps.lock().expect("lock");
                let mut origins = rc.origins.lock().expect("lock");
                for (k, rec) in map.steps {
                    origins.entry(rec.digest.clone()).or_insert(i);
                    steps.entry(k).or_insert(Some((i, rec)));
                }
                for (id, m) in map.mounts {
                    origins.entry(m.digest.clone()).or_insert(i);
                    rc.mounts.entry(id).or_insert((i, m));
                }
                rc.unchanged.extend(map.unchanged);
            }
            rc.sources.push((what, source));
        }
        Ok(rc)
    }

    /// Whether a cache recorded that the check `key` found nothing to change.
    pub fn unchanged(&self, key: &str) -> bool {
        self.unchanged.contains(key)
    }

    /// How many blobs this cache downloaded.
    pub fn downloads(&self) -> u64 {
        self.downloads.load(Ordering::Relaxed)
    }

    /// The layer recorded for `key`, if any cache has it. A per-step repository is asked now; a failed
    /// request is a miss (with a warning), never a failed build.
    pub fn lookup(&self, key: &str) -> Option<LayerRecord> {
        if let Some(found) = self.steps.lock().expect("lock").get(key) {
            return found.as_ref().map(|(_, r)| r.clone());
        }
        let mut found = None;
        for (i, (what, s)) in self.sources.iter().enumerate() {
            let Source::PerStep(repo) = s else { continue };
            match self.rt.block_on(per_step_lookup(repo, key)) {
                Ok(Some(rec)) => {
                    found = Some((i, rec));
                    break;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("cache {what}: looking up {key}: {e:#}"),
            }
        }
        if let Some((i, rec)) = &found {
            self.origins
                .lock()
                .expect("lock")
                .entry(rec.digest.clone())
                .or_insert(*i);
        }
        let out = found.as_ref().map(|(_, r)| r.clone());
        self.steps
            .lock()
            .expect("lock")
            .insert(key.to_string(), found);
        out
    }

    /// The imported cache mounts (for exporting them again when this build did not use them).
    pub fn mounts(&self) -> impl Iterator<Item = (&String, &MountRecord)> {
        self.mounts.iter().map(|(k, (_, m))| (k, m))
    }

    /// The registry repository a blob came from (host, repository), for cross-repository mounts.
    pub fn origin_repo(&self, digest: &str) -> Option<(String, String)> {
        let i = *self.origins.lock().expect("lock").get(digest)?;
        match &self.sources[i].1 {
            Source::Registry(r) | Source::PerStep(r) => {
                Some((r.registry.host.clone(), r.name.clone()))
            }
            Source::Oci(_) => None,
        }
    }

    /// Make sure blob `digest` is in the local store, downloading it (digest checked) from the cache that
    /// named it.
    pub fn ensure_blob(&self, digest: &str, size: u64, media_type: &str) -> Result<()> {
        let d: Digest = digest.parse()?;
        if self.store.layout().has_blob(&d, Some(size)) {
            return Ok(());
        }
        let gate = self
            .fetching
            .lock()
            .expect("lock")
            .entry(digest.to_string())
            .or_default()
            .clone();
        let _one = gate.lock().expect("lock");
        if self.store.layout().has_blob(&d, Some(size)) {
            return Ok(());
        }
        let i = *self
            .origins
            .lock()
            .expect("lock")
            .get(digest)
            .with_context(|| format!("blob {digest} is in no imported cache"))?;
        let (what, source) = &self.sources[i];
        let desc = Descriptor::new(media_type.into(), size, d.clone());
        let layout = self.store.layout();
        self.rt
            .block_on(async {
                let stream: crate::oci::BlobStream = match source {
                    Source::Registry(r) | Source::PerStep(r) => r.get_blob(&desc).await?,
                    Source::Oci(l) => l.open_blob(&d).await?,
                };
                layout.put_blob(&d, Some(size), stream, true).await
            })
            .with_context(|| format!("downloading {digest} from the cache {what}"))?;
        self.downloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Fill the new cache-mount dir `dest` with what a cache exported for `id`. Ok(false): no cache has it.
    pub fn restore_mount(&self, id: &str, dest: &Path) -> Result<bool> {
        let Some((_, m)) = self.mounts.get(id) else {
            return Ok(false);
        };
        self.ensure_blob(&m.digest, m.size, &m.media_type)
            .with_context(|| format!("restoring the cache mount {id:?}"))?;
        let d: Digest = m.digest.parse()?;
        let f = std::fs::File::open(self.store.layout().blob_path(&d))?;
        let opts = UnpackOptions {
            chown: rustix::process::geteuid().is_root(),
            ..Default::default()
        };
        unpack_tar(crate::layer::decompressor(f)?, dest, &opts)
            .with_context(|| format!("unpacking the cache mount {id:?}"))?;
        Ok(true)
    }
}

/// A per-step repository's artifact for `key` (tagged with the key's hex), if it is there.
async fn per_step_lookup(repo: &Repo, key: &str) -> Result<Option<LayerRecord>> {
    let tag = key.trim_start_matches("sha256:");
    let Some(m) = repo.get_manifest(tag).await? else {
        return Ok(None);
    };
    let what = format!("{}:{tag}", repo.display());
    let cfg = cache_manifest(&m.bytes, &what)?;
    let map = parse_map(&get_small(repo, &cfg).await?, &what)?;
    Ok(map.steps.get(key).cloned())
}

/// What a build hands to [`export`].
pub struct Exported<'a> {
    pub steps: BTreeMap<String, LayerRecord>,
    pub unchanged: BTreeSet<String>,
    /// Cache mounts this build used: id → the local dir.
    pub mounts: Vec<(String, PathBuf)>,
    pub remote: Option<&'a RemoteCache>,
    /// Repositories this build pushed the image to (same-registry blobs are mounted from them).
    pub pushed: Vec<Reference>,
}

/// Counts for the closing message.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub steps: usize,
    pub mounts: usize,
    pub uploaded: usize,
    pub mounted: usize,
    pub present: usize,
}

/// Write the cache `spec` names from what the build recorded.
pub fn export(
    spec: &CacheSpec,
    store: &Store,
    what: Exported<'_>,
    sys: &SystemContext,
    rt: &tokio::runtime::Handle,
) -> Result<ExportStats> {
    let mut map = CacheMap {
        version: MAP_VERSION,
        steps: what.steps,
        mounts: BTreeMap::new(),
        unchanged: what.unchanged,
    };
    if spec.mounts {
        if let Some(r) = what.remote {
            for (id, m) in r.mounts() {
                map.mounts.insert(id.clone(), m.clone());
            }
        }
        for (id, dir) in &what.mounts {
            map.mounts.insert(id.clone(), pack_mount(store, dir)?);
        }
    }
    let mut stats = ExportStats {
        steps: map.steps.len(),
        mounts: map.mounts.len(),
        ..Default::default()
    };
    let ctx = Ctx {
        store,
        remote: what.remote,
        pushed: &what.pushed,
        rt,
    };
    match &spec.target {
        Target::Registry(r) => {
            let (repo, _) = open_repo(r, sys, true)?;
            let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
            ctx.push_artifact(&repo, &tag, &map, &mut stats)?;
        }
        Target::PerStep(r) => {
            let (repo, _) = open_repo(r, sys, true)?;
            for (key, rec) in &map.steps {
                let one = CacheMap {
                    version: MAP_VERSION,
                    steps: BTreeMap::from([(key.clone(), rec.clone())]),
                    mounts: BTreeMap::new(),
                    // Per-step caches are looked up by layer step only: a WORKDIR check reads the files.
                    unchanged: BTreeSet::new(),
                };
                let tag = key.trim_start_matches("sha256:");
                ctx.push_artifact(&repo, tag, &one, &mut stats)?;
            }
        }
        Target::Oci { dir, tag } => {
            let layout = Layout::create(dir)?;
            let (manifest, config, blobs) = artifact(&map)?;
            for b in &blobs {
                ctx.local_blob(b)?;
                let d: Digest = b.digest.parse()?;
                if layout.has_blob(&d, Some(b.size)) {
                    stats.present += 1;
                    continue;
                }
                let src = store.layout().open_blob(&d);
                rt.block_on(async { layout.put_blob(&d, Some(b.size), src.await?, true).await })?;
                stats.uploaded += 1;
            }
            layout.put_bytes(&config)?;
            let md = layout.put_bytes(&manifest)?;
            let desc = Descriptor::new(MANIFEST_MT.into(), manifest.len() as u64, md);
            layout.set_ref(tag, &desc)?;
        }
    }
    Ok(stats)
}

/// A cache mount's dir as a zstd tar blob in the store.
fn pack_mount(store: &Store, dir: &Path) -> Result<MountRecord> {
    let tmp = store.root().join("lade").join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let opts = DiffOptions {
        compression: Compression::Zstd,
        ..Default::default()
    };
    let blob = write_diff(DiffSource::Tree(dir), &tmp, &opts)
        .with_context(|| format!("packing the cache mount {}", dir.display()))?;
    let d: Digest = blob.digest.parse()?;
    store.layout().adopt_blob(&d, blob.file)?;
    Ok(MountRecord {
        digest: blob.digest,
        size: blob.size,
        media_type: MOUNT_MEDIA_TYPE.into(),
    })
}

/// The manifest and config bytes of a cache artifact for `map`, and the blobs it lists.
fn artifact(map: &CacheMap) -> Result<(Vec<u8>, Vec<u8>, Vec<Desc>)> {
    let config = serde_json::to_vec(map)?;
    let mut layers: Vec<Desc> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for l in map.steps.values() {
        if seen.insert(l.digest.clone()) {
            layers.push(Desc::new(&l.media_type, &l.digest.parse()?, l.size));
        }
    }
    for m in map.mounts.values() {
        if seen.insert(m.digest.clone()) {
            layers.push(Desc::new(&m.media_type, &m.digest.parse()?, m.size));
        }
    }
    let cd = crate::oci::verify::sha256_digest(&config);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MT.into()),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        config: Desc::new(MAP_MEDIA_TYPE, &cd, config.len() as u64),
        layers: layers.clone(),
        ..Manifest::default()
    };
    Ok((document::to_vec(&manifest)?, config, layers))
}

struct Ctx<'a> {
    store: &'a Store,
    remote: Option<&'a RemoteCache>,
    pushed: &'a [Reference],
    rt: &'a tokio::runtime::Handle,
}

impl Ctx<'_> {
    /// Make sure a blob the map names is in the local store (a lazily imported layer is downloaded now).
    fn local_blob(&self, b: &Desc) -> Result<()> {
        let d: Digest = b.digest.parse()?;
        if self.store.layout().has_blob(&d, Some(b.size)) {
            return Ok(());
        }
        match self.remote {
            Some(r) => r.ensure_blob(&b.digest, b.size, b.media_type()),
            None => bail!("blob {} is missing from the store", b.digest),
        }
    }

    /// Push a cache artifact for `map` under `tag`: each blob is skipped when there, else mounted from a
    /// repository of the same registry that has it, else uploaded.
    fn push_artifact(
        &self,
        repo: &Repo,
        tag: &str,
        map: &CacheMap,
        stats: &mut ExportStats,
    ) -> Result<()> {
        let (manifest, config, blobs) = artifact(map)?;
        for o in super::four_at_a_time(&blobs, |b| self.push_blob(repo, b))? {
            match o {
                Pushed::Present => stats.present += 1,
                Pushed::Mounted => stats.mounted += 1,
                Pushed::Uploaded => stats.uploaded += 1,
            }
        }
        let cd = crate::oci::verify::sha256_digest(&config);
        self.rt.block_on(async {
            if !repo.has_blob(&cd).await? {
                let desc = Descriptor::new(MAP_MEDIA_TYPE.into(), config.len() as u64, cd.clone());
                let body: crate::oci::BlobStream = Box::new(std::io::Cursor::new(config.clone()));
                repo.put_blob(&desc, body).await?;
            }
            repo.put_manifest(tag, &manifest, MANIFEST_MT).await
        })?;
        Ok(())
    }

    fn push_blob(&self, repo: &Repo, b: &Desc) -> Result<Pushed> {
        let d: Digest = b.digest.parse()?;
        if self.rt.block_on(repo.has_blob(&d))? {
            return Ok(Pushed::Present);
        }
        let host = &repo.registry.host;
        let mut from: Vec<String> = self
            .pushed
            .iter()
            .filter(|r| &r.registry == host && r.repository != repo.name)
            .map(|r| r.repository.clone())
            .collect();
        if let Some((h, name)) = self.remote.and_then(|r| r.origin_repo(&b.digest))
            && &h == host
            && name != repo.name
        {
            from.insert(0, name);
        }
        for name in from {
            if self.rt.block_on(repo.mount_blob(&d, &name))? {
                return Ok(Pushed::Mounted);
            }
        }
        self.local_blob(b)?;
        let desc = Descriptor::new(b.media_type().into(), b.size, d.clone());
        let layout = self.store.layout();
        self.rt
            .block_on(async { repo.put_blob(&desc, layout.open_blob(&d).await?).await })
            .with_context(|| format!("uploading {} to {}", b.digest, repo.display()))?;
        Ok(Pushed::Uploaded)
    }
}

/// How a blob reached the cache's repository.
enum Pushed {
    Present,
    Mounted,
    Uploaded,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_and_buildah_forms() {
        let s = CacheSpec::parse(
            "type=registry,ref=localhost:5000/app:cache,mode=max,mounts=true",
            true,
        )
        .unwrap();
        assert!(s.max && s.mounts);
        match &s.target {
            Target::Registry(r) => {
                assert_eq!(r.registry, "localhost:5000");
                assert_eq!(r.repository, "app");
                assert_eq!(r.tag.as_deref(), Some("cache"));
            }
            t => panic!("{t:?}"),
        }
        let s = CacheSpec::parse("type=oci,src=/tmp/c", false).unwrap();
        assert_eq!(
            s.target,
            Target::Oci {
                dir: "/tmp/c".into(),
                tag: DEFAULT_OCI_TAG.into()
            }
        );
        let s = CacheSpec::parse("localhost:5000/myapp:cache", false).unwrap();
        match &s.target {
            Target::PerStep(r) => {
                assert_eq!(r.repository, "myapp");
                assert_eq!(r.tag, None);
            }
            t => panic!("{t:?}"),
        }
        for bad in [
            "type=registry",
            "type=s3,ref=x",
            "type=registry,ref=a/b,mode=most",
            "type=oci,src=/x",
            "type=registry,ref=a/b,colour=red",
            "type=registry,ref=a/b,mounts=maybe",
        ] {
            assert!(CacheSpec::parse(bad, true).is_err(), "{bad}");
        }
        assert!(CacheSpec::parse("type=oci,dest=/x", false).is_err());
        assert!(CacheSpec::parse("type=registry,ref=a/b,mode=max", false).is_err());
    }

    #[test]
    fn the_artifact_lists_every_blob_once() {
        let rec = LayerRecord {
            diff_id: format!("sha256:{}", "1".repeat(64)),
            digest: format!("sha256:{}", "2".repeat(64)),
            size: 3,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        };
        let map = CacheMap {
            version: MAP_VERSION,
            steps: BTreeMap::from([("sha256:a".into(), rec.clone()), ("sha256:b".into(), rec)]),
            mounts: BTreeMap::new(),
            unchanged: BTreeSet::from(["sha256:c".to_string()]),
        };
        let (m, c, blobs) = artifact(&map).unwrap();
        assert_eq!(blobs.len(), 1);
        let back = cache_manifest(&m, "test").unwrap();
        assert_eq!(back.size, c.len() as u64);
        let read = parse_map(&c, "test").unwrap();
        assert_eq!(read.steps.len(), 2);
        assert!(read.unchanged.contains("sha256:c"));
        // A map without the field (an older lade's) reads as having no unchanged checks.
        let old = br#"{"version":1,"steps":{},"mounts":{}}"#;
        assert!(parse_map(old, "test").unwrap().unchanged.is_empty());
    }
}
