//! `containers-storage:` — the store podman and buildah use (the overlay driver only), read and written
//! in place with containers/storage's own locks, so podman sees what lade writes at once and nothing is
//! corrupted while podman runs. `[DRIVER@GRAPHROOT+RUNROOT]IMAGE` names a store explicitly (`config`).
//!
//! Writing: blobs are spooled to a temporary directory; at commit, under `layers.lock` then `images.lock`
//! (containers/storage's order), each layer is added as `layerStore.create` adds one (`store::add_layer`:
//! chain IDs as containers/image computes them, the tar unpacked into `overlay/<id>/diff` with overlay
//! whiteouts, a tar-split kept so podman can rebuild the exact tar), then the image record with the
//! config and manifest as big-data items, named as containers/image names it (image ID = config digest).
//!
//! Reading: the image's stored manifest and config; layers are rebuilt from their tar-split and diff
//! directory, uncompressed (as containers/image reads this store); when the stored manifest named compressed
//! layers, the manifest handed out names the uncompressed ones instead (so its digest differs, as with skopeo).

pub mod config;
mod lock;
mod store;
mod tarsplit;

pub use config::{CsRef, StoreConfig};

use super::{BlobStream, Descriptor, Digest, ImageDestination, ImageSource, media};
use crate::reference;
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde_json::Value;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use store::{Dirs, str_of};

/// The name containers/image gives `image` (`app` → `docker.io/library/app:latest`), or None for an ID.
pub fn normalized_name(image: &str) -> Result<Option<String>> {
    if looks_like_id(image) {
        return Ok(None);
    }
    let name = image.strip_suffix('@').unwrap_or(image);
    let r = reference::parse(name)
        .with_context(|| format!("containers-storage:{image}: not an image name or ID"))?;
    let r = if r.digest.is_some() {
        r
    } else {
        r.with_default_tag()
    };
    Ok(Some(r.to_string()))
}

fn looks_like_id(s: &str) -> bool {
    let s = s.strip_prefix('@').unwrap_or(s);
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// The transport string lade shows for an image here.
fn display(c: &StoreConfig, image: &str) -> String {
    format!(
        "containers-storage:[{}@{}+{}]{image}",
        c.driver,
        c.graphroot.display(),
        c.runroot.display()
    )
}

/// Find `image` (a name, `NAME@ID`, an ID or an ID prefix of ≥ 3, or `NAME@DIGEST`) in images.json.
fn find_image(list: &[Value], image: &str) -> Result<Value> {
    let (name, id) = match image.rsplit_once('@') {
        Some((n, i)) if !i.contains(':') => (n, Some(i)),
        _ => (image, None),
    };
    let id = id.or_else(|| {
        (name.len() >= 3
            && !name.contains([':', '/', '@'])
            && name.bytes().all(|c| c.is_ascii_hexdigit()))
        .then_some(name)
    });
    if let Some(id) = id {
        let hits: Vec<&Value> = list
            .iter()
            .filter(|i| str_of(i, "id").is_some_and(|x| x.starts_with(id)))
            .collect();
        match hits.as_slice() {
            [one] => return Ok((*one).clone()),
            [] if image.contains('@') => bail!("no image with ID {id} in this store"),
            [] => {}
            _ => bail!("image ID prefix {id} is ambiguous here: give more of it"),
        }
    }
    let full = normalized_name(name)?.unwrap_or_default();
    let (base, digest) = match full.split_once('@') {
        Some((b, d)) => (b.to_string(), Some(d.to_string())),
        None => (full.clone(), None),
    };
    let by_name = list.iter().find(|i| {
        let names = i.get("names").and_then(Value::as_array);
        match &digest {
            None => names.is_some_and(|n| n.iter().any(|x| x == &base)),
            Some(d) => {
                let repo = reference::parse(&base)
                    .map(|r| r.name())
                    .unwrap_or_default();
                names.is_some_and(|n| {
                    n.iter().any(|x| {
                        x.as_str()
                            .and_then(|s| reference::parse(s).ok())
                            .is_some_and(|r| r.name() == repo)
                    })
                }) && (str_of(i, "digest") == Some(d)
                    || i.get("big-data-names")
                        .and_then(Value::as_array)
                        .is_some_and(|k| k.iter().any(|k| k == &format!("manifest-{d}"))))
            }
        }
    });
    by_name
        .cloned()
        .with_context(|| format!("image `{full}` is not in this containers-storage store"))
}

/// Read an image from the store.
pub struct CsSource {
    name: String,
    dirs: Dirs,
    manifest: Vec<u8>,
    media_type: String,
    config_digest: String,
    config: Vec<u8>,
    /// diff digest → layer ID.
    layers: Vec<(String, String)>,
    spool: PathBuf,
}

impl CsSource {
    pub fn open(rest: &str) -> Result<CsSource> {
        let r = CsRef::parse(rest)?;
        let cfg = r.store()?;
        let dirs = Dirs::new(&cfg);
        if !dirs.images_json().exists() {
            bail!(
                "{}: no containers-storage store there ({} is missing)",
                display(&cfg, &r.image),
                dirs.images_json().display()
            );
        }
        // containers/storage's order: the layer store, then the image store.
        let _layers_lock = lock::shared(&dirs.layers_lock())?;
        let images_lock = lock::shared(&dirs.images_lock())?;
        let images = store::read_list(&dirs.images_json())?;
        let image = find_image(&images, &r.image).with_context(|| display(&cfg, &r.image))?;
        let id = str_of(&image, "id").unwrap_or_default().to_string();
        let manifest_key = match r.image.rsplit_once('@') {
            Some((_, d)) if d.contains(':') => format!("manifest-{d}"),
            _ => "manifest".to_string(),
        };
        let manifest = store::read_big_data(&dirs, &image, &manifest_key)?;
        let m: Value = serde_json::from_slice(&manifest)
            .with_context(|| format!("image {id}: parsing its manifest"))?;
        let config_digest = m
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .with_context(|| format!("image {id}: its manifest names no config"))?
            .to_string();
        let config = store::read_big_data(&dirs, &image, &config_digest)?;
        drop(images_lock);
        let all = store::layers(&dirs)?;
        let mut chain = vec![];
        let mut next = str_of(&image, "layer").map(String::from);
        while let Some(lid) = next {
            let l = all
                .iter()
                .find(|l| str_of(l, "id") == Some(&lid))
                .with_context(|| format!("image {id}: layer {lid} is missing from the store"))?;
            chain.push(l.clone());
            next = str_of(l, "parent").map(String::from);
        }
        chain.reverse();
        let layers: Vec<(String, String)> = chain
            .iter()
            .map(|l| {
                (
                    str_of(l, "diff-digest").unwrap_or_default().to_string(),
                    str_of(l, "id").unwrap_or_default().to_string(),
                )
            })
            .collect();
        let (manifest, media_type) = uncompressed_manifest(manifest, m, &chain)?;
        let spool = tempfile::Builder::new()
            .prefix("lade-cs-")
            .tempdir_in(spool_dir())?
            .keep();
        Ok(CsSource {
            name: display(&cfg, &r.image),
            dirs,
            manifest,
            media_type,
            config_digest,
            config,
            layers,
            spool,
        })
    }
}

impl Drop for CsSource {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

fn spool_dir() -> PathBuf {
    let var_tmp = Path::new("/var/tmp");
    if var_tmp.is_dir() {
        var_tmp.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The manifest to hand out: the stored one when its layers are the stored (uncompressed) diffs, else the
/// same manifest naming each layer's diff digest, size and uncompressed media type.
fn uncompressed_manifest(
    bytes: Vec<u8>,
    mut m: Value,
    chain: &[Value],
) -> Result<(Vec<u8>, String)> {
    let docker = m.pointer("/config/mediaType").and_then(Value::as_str)
        == Some(media::DOCKER_CONFIG)
        || m.get("mediaType").and_then(Value::as_str) == Some(media::DOCKER_MANIFEST);
    let media_type = if docker {
        media::DOCKER_MANIFEST
    } else {
        media::OCI_MANIFEST
    };
    let layers = m
        .get_mut("layers")
        .and_then(Value::as_array_mut)
        .context("the stored manifest has no layers list")?;
    if layers.len() != chain.len() {
        bail!(
            "the stored manifest lists {} layers, the store holds {} for this image",
            layers.len(),
            chain.len()
        );
    }
    let mut same = true;
    for (l, rec) in layers.iter_mut().zip(chain) {
        let diff = str_of(rec, "diff-digest").context("a layer without diff-digest")?;
        if str_of(l, "digest") == Some(diff) {
            continue;
        }
        same = false;
        l["digest"] = Value::from(diff);
        l["size"] = rec.get("diff-size").cloned().unwrap_or(Value::from(-1));
        l["mediaType"] = Value::from(if docker {
            media::DOCKER_LAYER
        } else {
            media::OCI_LAYER
        });
    }
    if same {
        return Ok((bytes, media_type.to_string()));
    }
    Ok((serde_json::to_vec(&m)?, media_type.to_string()))
}

#[async_trait]
impl ImageSource for CsSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
        if let Some(d) = instance {
            bail!(
                "{}: holds one image, not an index (asked for instance {d})",
                self.name
            );
        }
        Ok((self.manifest.clone(), self.media_type.clone()))
    }

    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let digest = desc.digest().to_string();
        if digest == self.config_digest {
            return Ok(Box::new(std::io::Cursor::new(self.config.clone())));
        }
        let Some((_, id)) = self.layers.iter().find(|(d, _)| *d == digest) else {
            bail!("{}: no layer {digest} in this image", self.name);
        };
        let (id, root) = (id.clone(), self.dirs.root.clone());
        let path = self.spool.join(id.clone());
        let p = path.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let dirs = Dirs { root };
            let _held = lock::shared(&dirs.layers_lock())?;
            let out = std::fs::File::create(&p)?;
            let mut w = std::io::BufWriter::new(out);
            store::layer_tar(&dirs, &id, &mut w)?;
            std::io::Write::flush(&mut w)?;
            Ok(())
        })
        .await?
        .with_context(|| format!("{}: rebuilding layer {digest}", self.name))?;
        let f = tokio::fs::File::open(&path).await?;
        // The spool file is unlinked now: the open descriptor keeps it readable.
        let _ = std::fs::remove_file(&path);
        Ok(Box::new(f))
    }
}

/// Write an image into the store.
pub struct CsDestination {
    name: String,
    cfg: StoreConfig,
    image_name: Option<String>,
    spool: tempfile::TempDir,
    manifest: Mutex<Option<Vec<u8>>>,
}

impl CsDestination {
    pub fn open(rest: &str) -> Result<CsDestination> {
        let r = CsRef::parse(rest)?;
        let cfg = r.store()?;
        let image_name = normalized_name(&r.image)?;
        if image_name.as_ref().is_some_and(|n| n.contains('@')) {
            bail!("containers-storage:{rest}: a destination is named by NAME[:TAG], not a digest");
        }
        let spool = tempfile::Builder::new()
            .prefix("lade-cs-")
            .tempdir_in(spool_dir())?;
        Ok(CsDestination {
            name: display(&cfg, image_name.as_deref().unwrap_or(&r.image)),
            cfg,
            image_name,
            spool,
            manifest: Mutex::new(None),
        })
    }

    fn blob_path(&self, d: &str) -> PathBuf {
        self.spool.path().join(d.replace(':', "-"))
    }
}

#[async_trait]
impl ImageDestination for CsDestination {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn supported_manifest_types(&self) -> Vec<&'static str> {
        vec![media::OCI_MANIFEST, media::DOCKER_MANIFEST]
    }
    fn supports_index(&self) -> bool {
        false
    }
    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.blob_path(desc.digest().as_ref()).exists())
    }
    async fn put_blob(&self, desc: &Descriptor, mut data: BlobStream) -> Result<()> {
        let target = self.blob_path(desc.digest().as_ref());
        let (f, tmp) = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(self.spool.path())?
            .into_parts();
        let mut f = tokio::fs::File::from_std(f);
        tokio::io::copy(&mut data, &mut f)
            .await
            .with_context(|| format!("spooling blob {} for {}", desc.digest(), self.name))?;
        drop(f);
        tmp.persist(&target)?;
        Ok(())
    }
    async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<()> {
        if instance.is_some() {
            // Referrers and index children have no place in this store; the image itself is complete without.
            return Ok(());
        }
        if !media::is_manifest(media_type) || media::is_index(media_type) {
            bail!("{}: takes an image manifest, not {media_type}", self.name);
        }
        *self.manifest.lock().expect("not poisoned") = Some(bytes.to_vec());
        Ok(())
    }
    async fn commit(&self) -> Result<()> {
        let manifest = self
            .manifest
            .lock()
            .expect("not poisoned")
            .clone()
            .with_context(|| format!("{}: no manifest was written", self.name))?;
        let job = Commit {
            dirs: Dirs::new(&self.cfg),
            spool: self.spool.path().to_path_buf(),
            manifest,
            name: self.image_name.clone(),
        };
        tokio::task::spawn_blocking(move || job.run())
            .await?
            .with_context(|| format!("writing {}", self.name))
    }
}

struct Commit {
    dirs: Dirs,
    spool: PathBuf,
    manifest: Vec<u8>,
    name: Option<String>,
}

impl Commit {
    fn blob(&self, d: &str) -> PathBuf {
        self.spool.join(d.replace(':', "-"))
    }

    fn run(self) -> Result<()> {
        let m: Value = serde_json::from_slice(&self.manifest).context("parsing the manifest")?;
        let config_digest = m
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .context("the manifest names no config")?
            .to_string();
        let config = std::fs::read(self.blob(&config_digest)).context("reading the config")?;
        let c: Value = serde_json::from_slice(&config).context("parsing the config")?;
        let diff_ids: Vec<String> = c
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let blobs: Vec<(String, u64)> = m
            .get("layers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|l| {
                        (
                            str_of(l, "digest").unwrap_or_default().to_string(),
                            l.get("size").and_then(Value::as_u64).unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if blobs.len() != diff_ids.len() {
            bail!(
                "the manifest lists {} layers, the config {} diff_ids",
                blobs.len(),
                diff_ids.len()
            );
        }
        let manifest_digest = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&self.manifest))
        );
        let image_id = config_digest
            .strip_prefix("sha256:")
            .context("a config digest that is not sha256")?
            .to_string();
        let held_layers = lock::exclusive(&self.dirs.layers_lock())?;
        let mut parent: Option<String> = None;
        for ((blob, size), diff_id) in blobs.iter().zip(&diff_ids) {
            let hex = diff_id
                .strip_prefix("sha256:")
                .context("a diff_id that is not sha256")?;
            let id = match &parent {
                None => hex.to_string(),
                Some(p) => hex::encode(sha2::Sha256::digest(format!("{p}+{hex}").as_bytes())),
            };
            let existing = store::layers(&self.dirs)?;
            if !existing.iter().any(|l| str_of(l, "id") == Some(&id)) {
                self.add_layer(&held_layers, &id, parent.clone(), blob, *size, diff_id)?;
            }
            parent = Some(id);
        }
        let held_images = lock::exclusive(&self.dirs.images_lock())?;
        store::put_image(
            &self.dirs,
            &held_images,
            &store::NewImage {
                id: image_id,
                top_layer: parent,
                name: self.name.clone(),
                manifest: self.manifest.clone(),
                manifest_digest,
                config: config.clone(),
                config_digest,
                created: str_of(&c, "created").map(String::from),
            },
        )
    }

    fn add_layer(
        &self,
        held: &lock::Held,
        id: &str,
        parent: Option<String>,
        blob: &str,
        size: u64,
        diff_id: &str,
    ) -> Result<()> {
        let path = self.blob(blob);
        let mut head = [0u8; 4];
        let n = std::io::Read::read(&mut std::fs::File::open(&path)?, &mut head)?;
        let compression = match crate::oci::Compression::detect(&head[..n]) {
            crate::oci::Compression::Gzip => 2,
            crate::oci::Compression::Zstd => 4,
            crate::oci::Compression::None => 0,
        };
        let tar = self.spool.join(format!("{id}.tar"));
        let mut reader = crate::layer::decompressor(std::fs::File::open(&path)?)?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tar)?);
        let (mut hasher, handle) = crate::layer::HashingWriter::new(&mut out);
        std::io::copy(&mut reader, &mut hasher)
            .with_context(|| format!("decompressing layer {blob}"))?;
        drop(hasher);
        let (got, diff_size) = handle.digest();
        std::io::Write::flush(&mut out)?;
        drop(out);
        if got != diff_id {
            bail!("layer {blob} uncompresses to {got}, the config says {diff_id}");
        }
        let r = store::add_layer(
            &self.dirs,
            held,
            &store::NewLayer {
                id: id.to_string(),
                parent,
                tar: &tar,
                diff_digest: diff_id.to_string(),
                diff_size,
                compressed_digest: blob.to_string(),
                compressed_size: size,
                compression,
            },
        );
        let _ = std::fs::remove_file(&tar);
        let _ = std::fs::remove_file(&path);
        r
    }
}
