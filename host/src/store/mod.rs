//! The local store: an OCI image layout at `--root` that skopeo and umoci read as `oci:<root>:<name>`,
//! with fully qualified names (`localhost/app:1`) as `org.opencontainers.image.ref.name`.
//!
//! # API for the rest of lade (the build engine, push/pull, plugins)
//! * [`Store::open`]`(root)`: open or create the store.
//! * [`Store::resolve`]`(name)`: a name, a short name (`app:1` → `localhost/app:1`, then docker.io), a
//!   `name@digest` or an image ID prefix → its name and top descriptor. [`Store::image`] also loads the
//!   manifest and config (for an index: the host platform's image).
//! * [`Store::put_blob`]`(stream, media_type)`: stream a blob in (hashed while written) → its descriptor;
//!   [`Store::put_blob_verified`]`(desc, stream)` checks an expected digest. Nothing half-written is visible.
//! * [`Store::put_manifest`]`(bytes, media_type)` → descriptor; [`Store::tag`]`(name, desc)` names it.
//! * [`Store::list`], [`Store::untag`], [`Store::gc`] (what `lade prune` runs).
//! * Layer ↔ diff_id: [`Store::record_diff_id`], [`Store::diff_id_of`], [`Store::blobs_for_diff_id`]
//!   (`<root>/lade/diffids/`, rebuildable from the manifests and configs with [`Store::rebuild_diff_ids`]);
//!   a layer's uncompressed size: [`Store::record_uncompressed_size`], [`Store::uncompressed_size_of`]
//!   (`<root>/lade/sizes/`, a cache).
//! * [`Store::fsck`]`(repair)`: re-hash every blob, check every image and lade's metadata (`lade fsck`).
//! * [`Store::writer_guard`]: hold it while writing blobs that are not yet tagged, so a concurrent
//!   `lade prune` does not collect them.

pub mod fsck;
pub mod layout;
pub mod names;

/// A working container's pin, `<root>/lade/containers/<id>/pin`: its image's manifest descriptor (JSON).
/// [`Store::gc`] keeps everything a pin reaches, as it keeps named images.
pub const PIN_FILE: &str = "pin";

use crate::fsutil::write_atomic;
use crate::oci::document::{self, Manifest};
use crate::oci::verify::{DigestingReader, Hasher};
use crate::oci::{BlobStream, Descriptor, Digest, ImageConfig, Index, media};
use anyhow::{Context, Result, bail};
use layout::{Layout, ref_of};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// The local image store.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
}

/// A shared (writer) or exclusive (prune) hold on the store's GC lock; released on drop.
pub struct GcGuard {
    _fd: File,
}

/// One image in the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageInfo {
    /// Fully qualified names pointing at it.
    pub names: Vec<String>,
    /// The image ID: the config digest (for an index, the index digest).
    pub id: String,
    /// The top manifest's digest.
    pub digest: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The config's `created`, when set.
    pub created: Option<String>,
    /// Bytes of config and layers (compressed, as stored).
    pub size: u64,
}

/// A resolved image with its manifest and config.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    /// The top descriptor (maybe an index).
    pub descriptor: Descriptor,
    /// The single-image manifest (for an index: the host platform's instance).
    pub manifest: Vec<u8>,
    pub manifest_media_type: String,
    pub config: Vec<u8>,
}

impl Store {
    pub fn open(root: &Path) -> Result<Store> {
        let layout = Layout::create(root)
            .with_context(|| format!("opening the store at {}", root.display()))?;
        Ok(Store { layout })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    fn meta_dir(&self) -> PathBuf {
        self.root().join("lade")
    }

    fn gc_lock(&self, exclusive: bool) -> Result<GcGuard> {
        let dir = self.meta_dir();
        fs::create_dir_all(&dir)?;
        let p = dir.join("gc.lock");
        let fd = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(&fd, op).with_context(|| format!("locking {}", p.display()))?;
        Ok(GcGuard { _fd: fd })
    }

    /// Hold while writing untagged blobs (see the module docs).
    pub fn writer_guard(&self) -> Result<GcGuard> {
        self.gc_lock(false)
    }

    /// Stream a blob in, hashing while writing; returns its descriptor.
    pub async fn put_blob(&self, mut data: BlobStream, media_type: &str) -> Result<Descriptor> {
        let dir = self.root().join("blobs/sha256");
        let mut h = Hasher::sha256();
        let mut size = 0u64;
        let staged = layout::write_temp(&dir, &mut data, |chunk| {
            h.update(chunk);
            size += chunk.len() as u64;
        })
        .await
        .context("reading a blob to store")?;
        let digest = h.finish();
        staged
            .publish_new(&self.layout.blob_path(&digest))
            .context("publishing a blob in the store")?;
        crate::oci::manifest_descriptor(digest, size, media_type)
    }

    /// Stream a blob in, verified against `desc`.
    pub async fn put_blob_verified(&self, desc: &Descriptor, data: BlobStream) -> Result<()> {
        let v = DigestingReader::new(data, desc.digest(), Some(desc.size()))?;
        self.layout
            .put_blob(desc.digest(), Some(desc.size()), Box::new(v), false)
            .await
    }

    /// Store manifest (or config) bytes; returns the descriptor.
    pub fn put_manifest(&self, bytes: &[u8], media_type: &str) -> Result<Descriptor> {
        let d = self.layout.put_bytes(bytes)?;
        crate::oci::manifest_descriptor(d, bytes.len() as u64, media_type)
    }

    /// Name `desc` `name` (qualified with `localhost/` when it has no registry). Returns the stored name.
    pub fn tag(&self, name: &str, desc: &Descriptor) -> Result<String> {
        let full = names::qualify_local(name);
        if full.contains('@') {
            bail!("`{name}`: a tag cannot hold a digest");
        }
        self.layout.set_ref(&full, desc)?;
        Ok(full)
    }

    /// Remove a fully qualified name; returns the descriptor it named.
    pub fn untag(&self, full_name: &str) -> Result<Option<Descriptor>> {
        self.layout.remove_ref(full_name)
    }

    /// Every named entry: (name, descriptor).
    pub fn refs(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(self
            .layout
            .entries()?
            .into_iter()
            .filter_map(|d| ref_of(&d).map(|n| (n.to_string(), d.clone())))
            .collect())
    }

    /// Resolve a name, short name, `name@digest` or image ID prefix.
    pub fn resolve(&self, name: &str) -> Result<(String, Descriptor)> {
        let refs = self.refs()?;
        let (_, _, digest) = names::split(name);
        for c in names::candidates(name) {
            if let Some(d) = digest {
                let repo = names::repository(&c);
                if let Some((n, desc)) = refs
                    .iter()
                    .find(|(n, desc)| names::repository(n) == repo && desc.digest().as_ref() == d)
                {
                    return Ok((n.clone(), desc.clone()));
                }
            } else if let Some((n, desc)) = refs.iter().find(|(n, _)| *n == c) {
                return Ok((n.clone(), desc.clone()));
            }
        }
        // Any registry: a unique stored name whose path after the registry is `name`.
        if !names::has_domain(names::repository(name)) && digest.is_none() {
            let want = names::qualify_local(name);
            let want = want.trim_start_matches("localhost/");
            let hits: Vec<_> = refs
                .iter()
                .filter(|(n, _)| n.split_once('/').is_some_and(|(_, p)| p == want))
                .collect();
            if hits.len() == 1 {
                return Ok((hits[0].0.clone(), hits[0].1.clone()));
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 3 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut hits: Vec<(String, Descriptor)> = vec![];
            for (n, d) in &refs {
                let id = self.image_id(d).unwrap_or_default();
                if (id.starts_with(hex) || d.digest().digest().starts_with(hex))
                    && !hits.iter().any(|(_, h)| h.digest() == d.digest())
                {
                    hits.push((n.clone(), d.clone()));
                }
            }
            match hits.len() {
                1 => return Ok(hits.remove(0)),
                0 => {}
                _ => bail!(
                    "`{name}` matches {} images; give more of the ID",
                    hits.len()
                ),
            }
        }
        bail!(
            "image `{name}` is not in the local store at {} (see `lade images`)",
            self.root().display()
        )
    }

    /// The image ID (hex): config digest for a single image, the digest for an index.
    pub fn image_id(&self, d: &Descriptor) -> Result<String> {
        let mt = d.media_type().to_string();
        if media::is_index(&mt) {
            return Ok(d.digest().digest().to_string());
        }
        let m: Manifest = document::parse(&self.layout.read_blob(d.digest())?)?;
        let cfg = m.config.digest.as_str();
        Ok(cfg.rsplit(':').next().unwrap_or(cfg).to_string())
    }

    /// Resolve and load manifest and config (an index resolves to the host platform's image).
    pub fn image(&self, name: &str) -> Result<Image> {
        let (n, desc) = self.resolve(name)?;
        let mut bytes = self.layout.read_blob(desc.digest())?;
        let mut mt = desc.media_type().to_string();
        if media::is_index(&mt) {
            let idx: Index = document::parse(&bytes)?;
            let i = crate::oci::platform::choose(&idx, &Default::default())
                .with_context(|| n.clone())?;
            let child = idx.manifests[i].spec()?;
            bytes = self.layout.read_blob(child.digest())?;
            mt = child.media_type().to_string();
        }
        let m: Manifest = document::parse(&bytes)
            .with_context(|| format!("{n}: manifest is not a valid image manifest"))?;
        let cfg: Digest = m.config.digest.parse()?;
        let config = self.layout.read_blob(&cfg)?;
        Ok(Image {
            name: n,
            descriptor: desc,
            manifest: bytes,
            manifest_media_type: mt,
            config,
        })
    }

    /// Every named image, grouped by top digest.
    pub fn list(&self) -> Result<Vec<ImageInfo>> {
        let mut by_digest: BTreeMap<String, ImageInfo> = BTreeMap::new();
        let mut order = vec![];
        for (name, d) in self.refs()? {
            let key = d.digest().to_string();
            if let Some(i) = by_digest.get_mut(&key) {
                i.names.push(name);
                continue;
            }
            let mt = d.media_type().to_string();
            let (created, size) = self.summary(&d).unwrap_or((None, 0));
            order.push(key.clone());
            by_digest.insert(
                key.clone(),
                ImageInfo {
                    names: vec![name],
                    id: self
                        .image_id(&d)
                        .unwrap_or_else(|_| d.digest().digest().to_string()),
                    digest: key,
                    media_type: mt,
                    created,
                    size,
                },
            );
        }
        Ok(order
            .into_iter()
            .filter_map(|k| by_digest.remove(&k))
            .collect())
    }

    fn summary(&self, d: &Descriptor) -> Result<(Option<String>, u64)> {
        let bytes = self.layout.read_blob(d.digest())?;
        if media::is_index(&media::sniff(&bytes)) {
            let idx: Index = document::parse(&bytes)?;
            let mut created = None;
            let mut size = 0;
            for c in &idx.manifests {
                let cd = c.spec()?;
                if let Ok((cr, s)) = self.summary(&cd) {
                    created = created.or(cr);
                    size += s;
                }
            }
            return Ok((created, size));
        }
        let m: Manifest = document::parse(&bytes)?;
        let size = m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>();
        let created = (m.config.digest.parse::<Digest>().ok())
            .and_then(|c| self.layout.read_blob(&c).ok())
            .and_then(|b| document::parse::<ImageConfig>(&b).ok())
            .and_then(|c| c.created);
        Ok((created, size))
    }

    /// Delete every blob no index.json entry reaches (and leftover temp files). Returns (blobs, bytes).
    pub fn gc(&self) -> Result<Collected> {
        let _gc = self.gc_lock(true)?;
        let _idx = self.layout.lock()?;
        // Untagged entries are referrers (or unnamed images): they stay while their subject does.
        loop {
            let entries = self.layout.entries()?;
            let named: Vec<Descriptor> = entries
                .iter()
                .filter(|d| ref_of(d).is_some())
                .cloned()
                .collect();
            let reach = self.reachable(named);
            let mut dangling = HashSet::new();
            for d in entries.iter().filter(|d| ref_of(d).is_none()) {
                let subject = self
                    .layout
                    .read_blob(d.digest())
                    .ok()
                    .and_then(|b| document::parse::<document::Subject>(&b).ok())
                    .and_then(|v| v.subject.map(|s| s.digest));
                if let Some(s) = subject
                    && !reach.contains(&s)
                    && !entries.iter().any(|e| e.digest().to_string() == s)
                {
                    dangling.insert(d.digest().to_string());
                }
            }
            if dangling.is_empty() {
                break;
            }
            self.layout.update_index_locked(|list| {
                list.retain(|e| {
                    e.annotations
                        .as_ref()
                        .is_some_and(|a| a.contains_key(layout::REF_NAME))
                        || !dangling.contains(&e.digest)
                });
                Ok(())
            })?;
        }
        let mut roots = self.layout.entries()?;
        roots.extend(self.pinned());
        let (keep, used_diff_ids) = self.reachable_with_diff_ids(roots);
        let (mut n, mut bytes) = (0, 0);
        for algo in fs::read_dir(self.root().join("blobs"))? {
            let algo = algo?;
            let a = algo.file_name().to_string_lossy().into_owned();
            for e in fs::read_dir(algo.path())? {
                let e = e?;
                let f = e.file_name().to_string_lossy().into_owned();
                if f.starts_with(".tmp-")
                    || f.starts_with(".recompress-")
                    || !keep.contains(&format!("{a}:{f}"))
                {
                    bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                    fs::remove_file(e.path())
                        .with_context(|| format!("removing {}", e.path().display()))?;
                    // Its diff_id and size records go too (the by-diff side is swept below).
                    let _ = fs::remove_file(self.diff_dir().join(format!("{a}-{f}")));
                    let _ = fs::remove_file(self.size_dir().join(format!("{a}-{f}")));
                    let _ = fs::remove_dir_all(
                        Self::signatures_dir(self.root()).join(format!("{a}-{f}")),
                    );
                    n += 1;
                }
            }
        }
        self.gc_diff_index();
        let (layer_dirs, dir_bytes) = self.gc_layer_dirs(&used_diff_ids);
        Ok(Collected {
            blobs: n,
            layer_dirs,
            bytes: bytes + dir_bytes,
        })
    }

    /// Drop `diffids/by-diff` entries whose blob is gone (and the dirs left empty).
    fn gc_diff_index(&self) {
        let by_diff = self.diff_dir().join("by-diff");
        for d in fs::read_dir(by_diff).into_iter().flatten().flatten() {
            for e in fs::read_dir(d.path()).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().replacen('-', ":", 1);
                if name
                    .parse::<Digest>()
                    .is_ok_and(|b| !self.layout.has_blob(&b, None))
                {
                    let _ = fs::remove_file(e.path());
                }
            }
            let _ = fs::remove_dir(d.path()); // only when empty
        }
    }

    /// Remove the unpacked layer dirs (`lade/layers/<hex>`) that no image left in the store uses, with
    /// their markers and leftovers of interrupted unpacks. Runs under the exclusive gc lock, so no build
    /// (which holds the writer guard throughout) is using them. A dir that cannot be removed (a rootless
    /// layer owned by subordinate ids, outside the user namespace) is left with a warning.
    fn gc_layer_dirs(&self, used: &HashSet<String>) -> (usize, u64) {
        let dir = crate::layer::LayerCache::new(self.root())
            .dir()
            .to_path_buf();
        let Ok(entries) = fs::read_dir(&dir) else {
            return (0, 0);
        };
        let (mut n, mut bytes) = (0, 0);
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.strip_suffix(".boot").unwrap_or(&name);
            let leftover = name.starts_with(".tmp-") || name.starts_with(".stale-");
            if !leftover && (used.contains(hex) || hex.len() != 64) {
                continue;
            }
            let path = e.path();
            let size = tree_size(&path);
            let gone = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match gone {
                Ok(()) => {
                    bytes += size;
                    n += usize::from(!name.ends_with(".boot"));
                }
                Err(err) => tracing::warn!("could not remove {}: {err}", path.display()),
            }
        }
        (n, bytes)
    }

    /// The manifests working containers pin (see [`PIN_FILE`]).
    fn pinned(&self) -> Vec<Descriptor> {
        let dir = self.root().join("lade").join("containers");
        let mut out = Vec::new();
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(b) = fs::read(e.path().join(PIN_FILE))
                && let Ok(d) = serde_json::from_slice::<Descriptor>(&b)
            {
                out.push(d);
            }
        }
        out
    }

    /// Every digest reachable from `roots` (indexes, manifests, configs, layers).
    fn reachable(&self, roots: Vec<Descriptor>) -> HashSet<String> {
        self.reachable_with_diff_ids(roots).0
    }

    /// [`Store::reachable`], plus the hex of every diff_id in the image configs reached.
    fn reachable_with_diff_ids(
        &self,
        roots: Vec<Descriptor>,
    ) -> (HashSet<String>, HashSet<String>) {
        let mut diff_ids = HashSet::new();
        let mut keep: HashSet<String> = HashSet::new();
        let mut todo = roots;
        while let Some(d) = todo.pop() {
            if !keep.insert(d.digest().to_string()) {
                continue;
            }
            let mt = d.media_type().to_string();
            if !(media::is_index(&mt) || media::is_manifest(&mt) || d.size() < 8 << 20) {
                continue;
            }
            let Ok(bytes) = self.layout.read_blob(d.digest()) else {
                continue;
            };
            // Any JSON blob under 8 MiB is walked leniently (a config, an artifact's document): a gc must
            // not lose a blob because a document it reaches is not quite one of the typed ones.
            let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            let ids = v.pointer("/rootfs/diff_ids").and_then(Value::as_array);
            for id in ids.into_iter().flatten().filter_map(Value::as_str) {
                diff_ids.insert(id.trim_start_matches("sha256:").to_string());
            }
            if !(media::is_index(&mt) || media::is_manifest(&mt))
                && v.get("schemaVersion").is_none()
            {
                continue;
            }
            for key in ["manifests", "layers"] {
                for c in v.get(key).and_then(Value::as_array).into_iter().flatten() {
                    if let Ok(cd) = serde_json::from_value::<Descriptor>(c.clone()) {
                        todo.push(cd);
                    }
                }
            }
            if let Some(c) = v
                .get("config")
                .and_then(|c| serde_json::from_value::<Descriptor>(c.clone()).ok())
            {
                todo.push(c);
            }
        }
        (keep, diff_ids)
    }

    /// The GPG simple signatures kept with images (a pull keeps them, a push carries them): one directory
    /// per manifest digest, `<algo>-<hex>/signature-N`, as a `dir:` image keeps its own.
    pub fn signatures_dir(root: &Path) -> PathBuf {
        root.join("lade").join("signatures")
    }

    /// The directory of the signatures of manifest `digest` in the store at `root` (checked to be a
    /// digest, so it names a directory inside).
    pub fn signatures_of(root: &Path, digest: &str) -> Result<PathBuf> {
        let d: Digest = digest
            .parse()
            .with_context(|| format!("{digest:?} is not a manifest digest"))?;
        Ok(Self::signatures_dir(root).join(format!("{}-{}", d.algorithm(), d.digest())))
    }

    fn diff_dir(&self) -> PathBuf {
        self.meta_dir().join("diffids")
    }

    /// Remember that layer blob `blob` decompresses to `diff_id`.
    pub fn record_diff_id(&self, blob: &Digest, diff_id: &Digest) -> Result<()> {
        let p = self
            .diff_dir()
            .join(format!("{}-{}", blob.algorithm(), blob.digest()));
        write_atomic(&p, diff_id.to_string().as_bytes())?;
        let q = self.diff_dir().join("by-diff").join(format!(
            "{}-{}",
            diff_id.algorithm(),
            diff_id.digest()
        ));
        fs::create_dir_all(&q)?;
        write_atomic(
            &q.join(format!("{}-{}", blob.algorithm(), blob.digest())),
            b"",
        )?;
        Ok(())
    }

    fn size_dir(&self) -> PathBuf {
        self.meta_dir().join("sizes")
    }

    /// Remember that layer blob `blob` decompresses to `size` bytes (`lade images` counts them).
    pub fn record_uncompressed_size(&self, blob: &Digest, size: u64) -> Result<()> {
        let p = self
            .size_dir()
            .join(format!("{}-{}", blob.algorithm(), blob.digest()));
        fs::create_dir_all(self.size_dir())?;
        write_atomic(&p, size.to_string().as_bytes())
    }

    /// The size layer blob `blob` decompresses to, when known.
    pub fn uncompressed_size_of(&self, blob: &Digest) -> Option<u64> {
        let p = self
            .size_dir()
            .join(format!("{}-{}", blob.algorithm(), blob.digest()));
        fs::read_to_string(p).ok()?.trim().parse().ok()
    }

    /// The diff_id a layer blob decompresses to, when known.
    pub fn diff_id_of(&self, blob: &Digest) -> Option<Digest> {
        let p = self
            .diff_dir()
            .join(format!("{}-{}", blob.algorithm(), blob.digest()));
        fs::read_to_string(p).ok()?.trim().parse().ok()
    }

    /// The stored layer blobs known to decompress to `diff_id` (present in the store).
    pub fn blobs_for_diff_id(&self, diff_id: &Digest) -> Vec<Digest> {
        let q = self.diff_dir().join("by-diff").join(format!(
            "{}-{}",
            diff_id.algorithm(),
            diff_id.digest()
        ));
        let Ok(rd) = fs::read_dir(q) else {
            return vec![];
        };
        rd.filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().replacen('-', ":", 1);
            let d: Digest = n.parse().ok()?;
            self.layout.has_blob(&d, None).then_some(d)
        })
        .collect()
    }

    /// Record the layer ↔ diff_id pairs of a single-image manifest from its config.
    pub fn record_manifest_diff_ids(&self, manifest: &[u8]) -> Result<()> {
        let m: Manifest = document::parse(manifest)?;
        let Ok(cfg_bytes) = self.layout.read_blob(&m.config.digest.parse()?) else {
            return Ok(());
        };
        let c: ImageConfig = document::parse(&cfg_bytes).unwrap_or_default();
        let diffs = c.diff_ids();
        if diffs.len() != m.layers.len() {
            return Ok(());
        }
        for (l, d) in m.layers.iter().zip(diffs) {
            self.record_diff_id(&l.digest.parse()?, &d.parse()?)?;
        }
        Ok(())
    }

    /// Rebuild `<root>/lade/diffids` from every stored manifest.
    pub fn rebuild_diff_ids(&self) -> Result<()> {
        for (_, d) in self.refs()? {
            let bytes = self.layout.read_blob(d.digest())?;
            if media::is_index(&media::sniff(&bytes)) {
                let idx: Index = document::parse(&bytes).unwrap_or_default();
                for c in &idx.manifests {
                    if let Ok(cd) = c.digest.parse::<Digest>()
                        && let Ok(b) = self.layout.read_blob(&cd)
                    {
                        self.record_manifest_diff_ids(&b)?;
                    }
                }
            } else {
                self.record_manifest_diff_ids(&bytes)?;
            }
        }
        Ok(())
    }
}

/// Bytes held by the regular files under `path` (not following symlinks).
fn tree_size(path: &std::path::Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path)
            .map(|es| es.flatten().map(|e| tree_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) if m.is_file() => m.len(),
        _ => 0,
    }
}

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Copy)]
pub struct Collected {
    pub blobs: usize,
    /// Unpacked layer dirs no image uses any more.
    pub layer_dirs: usize,
    pub bytes: u64,
}
