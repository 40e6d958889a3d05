//! `lade fsck`: check the store (what `podman system check` does) and, with `repair`, remove what is damaged.
//!
//! Four passes, all under the exclusive GC lock and the index lock (so no writer is mid-way and temp files
//! found are leftovers of a killed process):
//! 1. every blob is re-hashed (streamed, in parallel across blobs);
//! 2. every `index.json` entry is walked index → manifest → config/layers: each blob present with the
//!    descriptor's size and the right digest, JSON where JSON is expected, as many diff_ids as layers, and
//!    the diff_id lade recorded for a layer blob equal to the config's;
//! 3. the unpacked-layer cache: boot markers, entries no image uses, leftovers of interrupted unpacks;
//! 4. lade's metadata beside the layout (diff_id map, build cache records) and temp files anywhere.
//!
//! *Problems* (damage: a corrupt or missing blob, a broken manifest, a wrong record) make the store unclean.
//! *Leftovers* (temp files of killed writers, stale cache entries, records of pruned blobs) are harmless, as
//! every reader skips them; they are listed and `repair` removes them. Unreferenced blobs are `lade prune`'s.

use super::Store;
use super::layout::{REF_NAME, ref_of};
use crate::oci::verify::Hasher;
use crate::oci::{Descriptor, Digest, media};
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One thing fsck found (or, under `removed`, one thing `repair` removed).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// e.g. `corrupt-blob`, `missing-blob`, `temp-file` (see [`Report`]).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The images (names, or the digest of an unnamed entry) that need the damaged thing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    pub message: String,
}

/// What was looked at.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    pub blobs: usize,
    pub bytes: u64,
    pub images: usize,
    pub layer_dirs: usize,
}

/// Blobs no image reaches (`lade prune` removes them; fsck leaves them).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Unreferenced {
    pub blobs: usize,
    pub bytes: u64,
}

/// The outcome of [`Store::fsck`]. Problem kinds: `corrupt-blob`, `missing-blob`, `size-mismatch`,
/// `bad-json`, `bad-image` (diff_ids and layers disagree), `diff-id-mismatch`, `bad-index-entry`,
/// `damaged-metadata`. Leftover kinds: `temp-file`, `stale-layer-dir`, `orphan-marker`, `unused-layer-dir`,
/// `stale-metadata`, `unknown-file` (reported, never removed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub root: String,
    /// No problems left (after a repair: none that could not be repaired).
    pub clean: bool,
    pub checked: Checked,
    pub problems: Vec<Finding>,
    pub leftovers: Vec<Finding>,
    pub unreferenced: Unreferenced,
    /// With `repair`: blobs, images and leftovers removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<Vec<Finding>>,
}

fn finding(
    kind: &'static str,
    digest: Option<String>,
    path: Option<&Path>,
    msg: String,
) -> Finding {
    Finding {
        kind,
        digest,
        path: path.map(|p| p.display().to_string()),
        images: vec![],
        message: msg,
    }
}

/// What hashing one blob file found.
struct BlobState {
    size: u64,
    /// The digest its content hashes to, when that differs from its name (None: intact or unverifiable).
    actual: Option<String>,
}

/// The state shared by the passes.
#[derive(Default)]
struct Scan {
    blobs: HashMap<String, BlobState>,
    problems: Vec<Finding>,
    /// Blob-level problems by digest, so each blob is reported once with every image that needs it.
    by_digest: HashMap<String, usize>,
    leftovers: Vec<Finding>,
    reached: HashSet<String>,
    diff_ids: HashSet<String>,
    /// index.json entries (by position) that need something damaged.
    broken: BTreeSet<usize>,
    /// Set when the image being walked needs something damaged.
    hit: bool,
    checked: Checked,
}

impl Scan {
    /// Record a problem about blob `digest` needed by `image` (merged with an earlier one on the same blob).
    fn blob_problem(
        &mut self,
        kind: &'static str,
        digest: &str,
        path: &Path,
        image: &str,
        msg: String,
    ) {
        let i = match self.by_digest.get(digest) {
            Some(&i) => i,
            None => {
                self.problems
                    .push(finding(kind, Some(digest.into()), Some(path), msg));
                self.by_digest
                    .insert(digest.to_string(), self.problems.len() - 1);
                self.problems.len() - 1
            }
        };
        self.hit |= !image.is_empty();
        let images = &mut self.problems[i].images;
        if !image.is_empty() && !images.iter().any(|n| n == image) {
            images.push(image.to_string());
        }
    }
}

/// Names of files that writers create and rename: what a killed writer leaves behind.
fn is_temp(name: &str) -> bool {
    name.starts_with(".tmp-") || name.starts_with(".recompress-") || name.starts_with(".stale-")
}

/// The digest a file's content hashes to (`None` for an algorithm lade does not verify).
fn hash_file(path: &Path, expected: &Digest) -> Result<Option<String>> {
    let Ok(h) = Hasher::for_digest(expected) else {
        return Ok(None);
    };
    Ok(Some(crate::oci::verify::hash_file(path, h)?.0.to_string()))
}

impl Store {
    /// Check the store; with `repair`, remove corrupt blobs, the images that need them or any missing blob,
    /// and the leftovers. Safe against concurrent lade processes (it takes the store's locks, and waits).
    pub fn fsck(&self, repair: bool) -> Result<Report> {
        let _gc = self.gc_lock(true)?;
        let _idx = self.layout.lock()?;
        let mut scan = Scan::default();
        self.scan_blobs(&mut scan)?;
        let entries = self.index_entries(&mut scan)?;
        for (i, (image, desc)) in entries.iter().enumerate() {
            if let Some(desc) = desc {
                scan.checked.images += 1;
                scan.hit = false;
                self.walk(&mut scan, desc, image);
                if scan.hit {
                    scan.broken.insert(i);
                }
            } else {
                scan.broken.insert(i);
            }
        }
        self.check_layer_cache(&mut scan);
        self.check_metadata(&mut scan);
        self.find_temp_files(&mut scan);
        let mut unreferenced = Unreferenced::default();
        for (d, b) in &scan.blobs {
            if !scan.reached.contains(d) {
                unreferenced.blobs += 1;
                unreferenced.bytes += b.size;
            }
        }
        let mut report = Report {
            root: self.root().display().to_string(),
            clean: scan.problems.is_empty(),
            checked: scan.checked.clone(),
            problems: std::mem::take(&mut scan.problems),
            leftovers: std::mem::take(&mut scan.leftovers),
            unreferenced,
            removed: None,
        };
        if repair {
            let (removed, complete) = self.repair(&report, &entries, &scan.broken)?;
            report.clean = complete;
            report.removed = Some(removed);
        }
        Ok(report)
    }

    /// Pass 1: hash every file under `blobs/<algo>/`, in parallel.
    fn scan_blobs(&self, scan: &mut Scan) -> Result<()> {
        let mut files: Vec<(PathBuf, Digest, u64)> = vec![];
        let blobs_dir = self.root().join("blobs");
        for algo in
            fs::read_dir(&blobs_dir).with_context(|| format!("reading {}", blobs_dir.display()))?
        {
            let algo = algo?;
            if !algo.file_type()?.is_dir() {
                continue;
            }
            let a = algo.file_name().to_string_lossy().into_owned();
            for e in fs::read_dir(algo.path())? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                if is_temp(&name) {
                    scan.leftovers.push(finding(
                        "temp-file",
                        None,
                        Some(&path),
                        format!("an interrupted blob write left {size} bytes"),
                    ));
                    continue;
                }
                match format!("{a}:{name}").parse::<Digest>() {
                    Ok(d) if e.file_type()?.is_file() => files.push((path, d, size)),
                    _ => scan.leftovers.push(finding(
                        "unknown-file",
                        None,
                        Some(&path),
                        "not a blob (its name is not a digest); left alone".into(),
                    )),
                }
            }
        }
        let hashed: Vec<_> = files
            .par_iter()
            .map(|(path, d, size)| (path, d, *size, hash_file(path, d)))
            .collect();
        for (path, d, size, got) in hashed {
            scan.checked.blobs += 1;
            scan.checked.bytes += size;
            let actual = got?.filter(|g| *g != d.to_string());
            if let Some(a) = &actual {
                scan.blob_problem(
                    "corrupt-blob",
                    d.as_ref(),
                    path,
                    "",
                    format!("blob {d} hashes to {a}: its content is damaged"),
                );
            }
            scan.blobs.insert(d.to_string(), BlobState { size, actual });
        }
        Ok(())
    }

    /// index.json's entries as (image name or digest, descriptor); an entry that is not a descriptor is
    /// reported and kept as `None`.
    fn index_entries(&self, scan: &mut Scan) -> Result<Vec<(String, Option<Descriptor>)>> {
        let idx = self.layout.read_index_raw()?;
        let list = idx
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let index_path = self.root().join("index.json");
        Ok(list
            .into_iter()
            .enumerate()
            .map(
                |(i, v)| match serde_json::from_value::<Descriptor>(v.clone()) {
                    Ok(d) => {
                        let name =
                            ref_of(&d).map_or_else(|| d.digest().to_string(), str::to_string);
                        (name, Some(d))
                    }
                    Err(e) => {
                        let name = v
                            .pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                            .and_then(Value::as_str)
                            .map_or_else(|| format!("manifests[{i}]"), str::to_string);
                        scan.problems.push(Finding {
                            images: vec![name.clone()],
                            ..finding(
                                "bad-index-entry",
                                None,
                                Some(&index_path),
                                format!("manifests[{i}] is not a valid descriptor: {e}"),
                            )
                        });
                        (name, None)
                    }
                },
            )
            .collect())
    }

    /// Pass 2 for one descriptor of `image`: the blob, then what it references. Returns its JSON when it
    /// is intact JSON.
    fn walk(&self, scan: &mut Scan, d: &Descriptor, image: &str) -> Option<Value> {
        let key = d.digest().to_string();
        let path = self.layout.blob_path(d.digest());
        scan.reached.insert(key.clone());
        let Some(state) = scan.blobs.get(&key) else {
            scan.blob_problem(
                "missing-blob",
                &key,
                &path,
                image,
                format!("blob {key} ({}) is missing", d.media_type()),
            );
            return None;
        };
        if state.actual.is_some() {
            scan.blob_problem("corrupt-blob", &key, &path, image, String::new());
            return None;
        }
        if state.size != d.size() {
            let msg = format!(
                "blob {key} has {} bytes, its descriptor says {}",
                state.size,
                d.size()
            );
            scan.blob_problem("size-mismatch", &key, &path, image, msg);
            return None;
        }
        let mt = d.media_type().to_string();
        let json_expected = media::is_index(&mt) || media::is_manifest(&mt) || is_config(&mt);
        if !json_expected {
            return None;
        }
        let parsed = self
            .layout
            .read_blob(d.digest())
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let Some(v) = parsed else {
            let msg = format!("blob {key} ({mt}) is not JSON");
            scan.blob_problem("bad-json", &key, &path, image, msg);
            return None;
        };
        if media::is_index(&mt) {
            for c in children(&v, "manifests") {
                self.walk(scan, &c, image);
            }
        } else if media::is_manifest(&mt) {
            self.walk_manifest(scan, &v, &key, &path, image);
        }
        Some(v)
    }

    /// A single-image manifest: its config and layers, and the diff_ids against the layers.
    fn walk_manifest(&self, scan: &mut Scan, m: &Value, key: &str, path: &Path, image: &str) {
        let layers = children(m, "layers");
        for l in &layers {
            self.walk(scan, l, image);
        }
        let Some(cfg_desc) = m
            .get("config")
            .and_then(|c| serde_json::from_value::<Descriptor>(c.clone()).ok())
        else {
            let msg = format!("manifest {key} has no valid config descriptor");
            scan.blob_problem("bad-image", key, path, image, msg);
            return;
        };
        let cfg_mt = cfg_desc.media_type().to_string();
        let Some(cfg) = self.walk(scan, &cfg_desc, image) else {
            return;
        };
        if !is_config(&cfg_mt) {
            return; // an artifact: its config is not an image config
        }
        let ids: Vec<String> = cfg
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for id in &ids {
            scan.diff_ids
                .insert(id.trim_start_matches("sha256:").to_string());
        }
        if ids.len() != layers.len() {
            let msg = format!(
                "manifest {key} has {} layers but its config {} lists {} diff_ids",
                layers.len(),
                cfg_desc.digest(),
                ids.len()
            );
            scan.blob_problem("bad-image", key, path, image, msg);
            return;
        }
        for (l, id) in layers.iter().zip(&ids) {
            let lmt = l.media_type().to_string();
            let uncompressed = lmt.ends_with(".tar") || lmt.ends_with("tar");
            let recorded = if uncompressed {
                Some(l.digest().to_string())
            } else {
                self.diff_id_of(l.digest()).map(|d| d.to_string())
            };
            if let Some(r) = recorded
                && r != *id
            {
                let ld = l.digest().to_string();
                let msg = format!(
                    "layer {ld} decompresses to {r} (lade's diff_id record), but config {} says {id}",
                    cfg_desc.digest()
                );
                let lp = self.layout.blob_path(l.digest());
                scan.blob_problem("diff-id-mismatch", &ld, &lp, image, msg);
            }
        }
    }

    /// Pass 3: the unpacked-layer cache (`lade/layers`).
    fn check_layer_cache(&self, scan: &mut Scan) {
        let cache = crate::layer::LayerCache::new(self.root());
        let Ok(rd) = fs::read_dir(cache.dir()) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if is_temp(&name) {
                let msg = "an interrupted layer unpack or removal left this".into();
                scan.leftovers
                    .push(finding("temp-file", None, Some(&path), msg));
                continue;
            }
            if let Some(hex) = name.strip_suffix(".boot") {
                if !cache.dir().join(hex).is_dir() {
                    let msg = "a boot marker without its unpacked layer".into();
                    scan.leftovers
                        .push(finding("orphan-marker", None, Some(&path), msg));
                }
                continue;
            }
            let is_entry = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if !is_entry || !path.is_dir() {
                continue;
            }
            scan.checked.layer_dirs += 1;
            let diff_id = Some(format!("sha256:{name}"));
            if !cache.is_current(&name) {
                let msg =
                    "unpacked before the last boot (or without a marker): it may be torn, and \
                           lade unpacks the layer again instead of using it"
                        .into();
                scan.leftovers
                    .push(finding("stale-layer-dir", diff_id, Some(&path), msg));
            } else if !scan.diff_ids.contains(&name) {
                let msg = "no image in the store uses this unpacked layer".into();
                scan.leftovers
                    .push(finding("unused-layer-dir", diff_id, Some(&path), msg));
            }
        }
    }

    /// Pass 4a: the diff_id map, the layer sizes, the signature directories and the build cache records.
    fn check_metadata(&self, scan: &mut Scan) {
        let diff_dir = self.diff_dir();
        // Per-blob records: what each holds, and whether its content is sound.
        let digest: fn(&str) -> bool = |c| c.parse::<Digest>().is_ok();
        let number: fn(&str) -> bool = |c| c.parse::<u64>().is_ok();
        let records = [
            (diff_dir.clone(), "diff_id record", "a digest", digest),
            (self.size_dir(), "layer size record", "a number", number),
        ];
        for (dir, what, should_be, sound) in records {
            for (path, blob) in meta_files(&dir) {
                let content = fs::read_to_string(&path).unwrap_or_default();
                if sound(content.trim()) {
                    stale_unless_present(scan, &path, &blob, what);
                } else {
                    let msg = format!("a {what} that is not {should_be}");
                    scan.problems
                        .push(finding("damaged-metadata", None, Some(&path), msg));
                }
            }
        }
        // The GPG signatures kept with images: a directory per manifest, gone with it.
        let sigs = Store::signatures_dir(self.root());
        for e in fs::read_dir(&sigs).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) && name.contains('-') {
                let blob = name.replacen('-', ":", 1);
                stale_unless_present(scan, &e.path(), &blob, "signature directory");
            }
        }
        let by_diff = diff_dir.join("by-diff");
        for d in fs::read_dir(&by_diff).into_iter().flatten().flatten() {
            for (path, blob) in meta_files(&d.path()) {
                stale_unless_present(scan, &path, &blob, "diff_id index entry");
            }
        }
        let cache_dir = self.meta_dir().join("build-cache");
        for e in fs::read_dir(&cache_dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if is_temp(&name) {
                scan.leftovers.push(finding(
                    "temp-file",
                    None,
                    Some(&path),
                    "an interrupted cache record write".into(),
                ));
                continue;
            }
            if !name.ends_with(".json") || name.ends_with(".parts.json") {
                continue;
            }
            self.check_build_record(scan, &path);
        }
    }

    /// One `lade/build-cache/<key>.json` (the shape of `build::cache::Record`).
    fn check_build_record(&self, scan: &mut Scan, path: &Path) {
        let Some(rec) = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter(|v| v.get("key").is_some_and(Value::is_string))
        else {
            let msg = "a build cache record that is not valid JSON".into();
            scan.problems
                .push(finding("damaged-metadata", None, Some(path), msg));
            return;
        };
        let Some(layer) = rec.get("layer").filter(|l| !l.is_null()) else {
            return;
        };
        let digest = layer.get("digest").and_then(Value::as_str);
        let size = layer.get("size").and_then(Value::as_u64);
        let Some((digest, size)) = digest.zip(size) else {
            let msg = "a build cache record whose layer has no digest or size".into();
            scan.problems
                .push(finding("damaged-metadata", None, Some(path), msg));
            return;
        };
        let intact = scan
            .blobs
            .get(digest)
            .is_some_and(|b| b.actual.is_none() && b.size == size);
        if !intact {
            scan.leftovers.push(finding(
                "stale-metadata",
                Some(digest.into()),
                Some(path),
                format!("a build cache record for layer {digest}, which is gone or damaged"),
            ));
            return;
        }
        let recorded = digest
            .parse()
            .ok()
            .and_then(|d| self.diff_id_of(&d))
            .map(|d| d.to_string());
        let claimed = layer.get("diff_id").and_then(Value::as_str);
        if let (Some(r), Some(c)) = (recorded, claimed)
            && r != c
        {
            scan.problems.push(finding(
                "damaged-metadata",
                Some(digest.into()),
                Some(path),
                format!(
                    "a build cache record says layer {digest} has diff_id {c}, lade's map says {r}"
                ),
            ));
        }
    }

    /// Pass 4b: temp files lade's writers make outside `blobs/` (index.json's, metadata's, work dirs).
    fn find_temp_files(&self, scan: &mut Scan) {
        let meta = self.meta_dir();
        let mut dirs = vec![
            self.root().to_path_buf(),
            meta.clone(),
            self.diff_dir(),
            self.size_dir(),
            meta.join("build-cache").join("slots"),
        ];
        dirs.extend(
            fs::read_dir(self.diff_dir().join("by-diff"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
        for dir in dirs {
            for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                if is_temp(&e.file_name().to_string_lossy()) {
                    let msg = "an interrupted write left this".into();
                    scan.leftovers
                        .push(finding("temp-file", None, Some(&e.path()), msg));
                }
            }
        }
        // Work dirs of builds and copies: anything there outlived its process (writers hold the GC lock).
        for (dir, what) in [
            (meta.join("tmp"), "copy or build"),
            (meta.join("steps"), "build"),
        ] {
            for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == ".lock" || in_use(&e.path()) {
                    continue;
                }
                let msg = format!("a killed {what} left this work file");
                scan.leftovers
                    .push(finding("temp-file", None, Some(&e.path()), msg));
            }
        }
    }
}

/// A file another process holds a lock on (a copy staging a recompressed layer without the GC lock).
fn in_use(path: &Path) -> bool {
    use rustix::fs::{FlockOperation, flock};
    let Ok(f) = fs::File::open(path) else {
        return false;
    };
    f.metadata().is_ok_and(|m| m.is_file())
        && flock(&f, FlockOperation::NonBlockingLockExclusive).is_err()
}

/// The descriptors in `v[key]` (those that parse).
fn children(v: &Value, key: &str) -> Vec<Descriptor> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| serde_json::from_value(c.clone()).ok())
        .collect()
}

/// An image config media type (OCI or Docker).
fn is_config(mt: &str) -> bool {
    mt == media::OCI_CONFIG || mt == media::DOCKER_CONFIG
}

/// The `<algo>-<hex>` files of a metadata dir with the blob digest each names (not temp files).
fn meta_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = vec![];
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_temp(&name) {
            continue; // find_temp_files reports these
        }
        if e.file_type().is_ok_and(|t| t.is_file()) && name.contains('-') {
            out.push((e.path(), name.replacen('-', ":", 1)));
        }
    }
    out
}

/// A record about `blob` is stale when the blob is gone or damaged (readers check, so it is harmless).
fn stale_unless_present(scan: &mut Scan, path: &Path, blob: &str, what: &str) {
    if scan.blobs.get(blob).is_some_and(|b| b.actual.is_none()) {
        return;
    }
    scan.leftovers.push(finding(
        "stale-metadata",
        Some(blob.to_string()),
        Some(path),
        format!("a {what} for blob {blob}, which is gone or damaged"),
    ));
}

impl Store {
    /// Remove what `report` found: damaged blobs, the index.json entries in `broken`, the leftovers (not
    /// unknown files), damaged records. Returns what was removed and whether every problem is gone. The
    /// caller holds both locks.
    fn repair(
        &self,
        report: &Report,
        entries: &[(String, Option<Descriptor>)],
        broken: &BTreeSet<usize>,
    ) -> Result<(Vec<Finding>, bool)> {
        let mut removed = vec![];
        if !broken.is_empty() {
            let mut position = 0;
            self.layout.update_index_raw_locked(|list| {
                list.retain(|_| {
                    position += 1;
                    !broken.contains(&(position - 1))
                });
                Ok(())
            })?;
            let mut seen = BTreeMap::new();
            for &i in broken {
                let (name, d) = &entries[i];
                seen.entry(name.clone()).or_insert_with(|| Finding {
                    images: vec![name.clone()],
                    ..finding(
                        "image",
                        d.as_ref().map(|d| d.digest().to_string()),
                        None,
                        format!(
                            "{} needed a damaged or missing blob",
                            d.as_ref()
                                .map_or("it".to_string(), |d| d.digest().to_string())
                        ),
                    )
                });
            }
            removed.extend(seen.into_values());
        }
        let mut complete = true;
        for p in &report.problems {
            let target = match (p.kind, &p.path, &p.digest) {
                ("corrupt-blob", Some(path), _) => Some(("blob", PathBuf::from(path))),
                ("damaged-metadata", Some(path), _) => Some(("metadata", PathBuf::from(path))),
                // The record disagrees with the config: drop it (a later pull or build writes it again).
                ("diff-id-mismatch", _, Some(d)) => {
                    Some(("metadata", self.diff_dir().join(d.replacen(':', "-", 1))))
                }
                _ => None,
            };
            if let Some((kind, path)) = target {
                if remove_path(&path) {
                    removed.push(Finding {
                        kind,
                        path: Some(path.display().to_string()),
                        ..p.clone()
                    });
                } else {
                    complete = false;
                }
            }
        }
        for l in &report.leftovers {
            if l.kind == "unknown-file" {
                continue;
            }
            if let Some(path) = &l.path
                && remove_path(Path::new(path))
            {
                removed.push(l.clone());
            }
        }
        self.remove_empty_diff_dirs();
        Ok((removed, complete))
    }

    fn remove_empty_diff_dirs(&self) {
        for e in fs::read_dir(self.diff_dir().join("by-diff"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = fs::remove_dir(e.path()); // fails unless empty
        }
    }
}

/// Remove a file or a tree; false (with a warning) when it cannot be removed.
fn remove_path(p: &Path) -> bool {
    let r = match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(e) => Err(e),
    };
    if let Err(e) = &r {
        tracing::warn!("could not remove {}: {e}", p.display());
    }
    r.is_ok()
}
