//! `docker-archive:FILE[:REF]`: the `docker save` / `podman save` format (`manifest.json`, `<id>.json`
//! configs, uncompressed `<diff_id>.tar` layers). Reading synthesizes a Docker v2s2 manifest; writing
//! decompresses each layer (verifying the source digest on the way) and can hold several images.

use super::oci_archive::{temp_dir_beside, unpack_tar, write_tar_of_dir};
use super::{BlobStream, Descriptor, Digest, ImageDestination, ImageSource, media};
use crate::fsutil::write_atomic;
use crate::oci::Compression;
use crate::oci::document::{self, Desc, Manifest};
use crate::oci::verify::{Hasher, sha256_digest};
use crate::store::names;
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One entry of `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// An unpacked docker-archive.
pub struct DockerArchive {
    dir: tempfile::TempDir,
    file: PathBuf,
    pub entries: Vec<ArchiveEntry>,
}

impl DockerArchive {
    pub fn open(file: &Path) -> Result<Arc<DockerArchive>> {
        let dir = tempfile::Builder::new()
            .prefix("lade-docker-archive-")
            .tempdir()?;
        unpack_tar(file, dir.path())?;
        let mf = dir.path().join("manifest.json");
        let bytes = std::fs::read(&mf).with_context(|| {
            format!(
                "{} has no manifest.json: not a docker-archive",
                file.display()
            )
        })?;
        let entries: Vec<ArchiveEntry> = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{}: manifest.json is not a docker-archive manifest",
                file.display()
            )
        })?;
        Ok(Arc::new(DockerArchive {
            dir,
            file: file.to_path_buf(),
            entries,
        }))
    }

    /// The entry `reference` names: `@N`, a RepoTag, or the only one.
    pub fn select(&self, reference: Option<&str>) -> Result<usize> {
        let file = self.file.display();
        match reference {
            None if self.entries.len() == 1 => Ok(0),
            None => bail!(
                "docker-archive:{file} holds {} images; name one as docker-archive:{file}:NAME or :@N",
                self.entries.len()
            ),
            Some(r) if r.starts_with('@') => {
                let n: usize = r[1..]
                    .parse()
                    .with_context(|| format!("`{r}`: write @N with a number"))?;
                if n >= self.entries.len() {
                    bail!(
                        "docker-archive:{file} has {} images; @{n} is out of range",
                        self.entries.len()
                    );
                }
                Ok(n)
            }
            Some(r) => {
                let want = names::qualify_remote(r);
                self.entries
                    .iter()
                    .position(|e| {
                        e.repo_tags
                            .iter()
                            .flatten()
                            .any(|t| t == r || names::qualify_remote(t) == want)
                    })
                    .with_context(|| format!("docker-archive:{file} holds no image tagged `{r}`"))
            }
        }
    }

    fn path_of(&self, rel: &str) -> Result<PathBuf> {
        let p = Path::new(rel);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            bail!(
                "docker-archive:{}: manifest.json names `{rel}` outside the archive",
                self.file.display()
            );
        }
        Ok(self.dir.path().join(p))
    }
}

fn file_digest(path: &Path) -> Result<(Digest, u64, [u8; 4])> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Hasher::sha256();
    let mut buf = vec![0u8; 1 << 20];
    let (mut size, mut magic) = (0u64, [0u8; 4]);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if size == 0 {
            let k = n.min(4);
            magic[..k].copy_from_slice(&buf[..k]);
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((h.finish(), size, magic))
}

/// Read side: one image of a docker-archive, with a synthesized v2s2 manifest.
pub struct DockerArchiveSource {
    archive: Arc<DockerArchive>,
    manifest: Vec<u8>,
    blobs: HashMap<String, PathBuf>,
    name: String,
}

impl DockerArchiveSource {
    pub fn open(file: &Path, reference: Option<&str>) -> Result<DockerArchiveSource> {
        let a = DockerArchive::open(file)?;
        let i = a.select(reference)?;
        Self::from_archive(a, i)
    }

    /// The `i`-th image of an opened archive.
    pub fn from_archive(archive: Arc<DockerArchive>, i: usize) -> Result<DockerArchiveSource> {
        let e = archive
            .entries
            .get(i)
            .context("no such image in the archive")?
            .clone();
        let mut blobs = HashMap::new();
        let cfg_path = archive.path_of(&e.config)?;
        let cfg =
            std::fs::read(&cfg_path).with_context(|| format!("reading config {}", e.config))?;
        let cfg_digest = sha256_digest(&cfg);
        blobs.insert(cfg_digest.to_string(), cfg_path);
        let mut layers = vec![];
        for l in &e.layers {
            let p = archive.path_of(l)?;
            let (d, size, magic) = file_digest(&p)?;
            let mt = if magic[..2] == [0x1f, 0x8b] {
                media::DOCKER_LAYER_GZIP
            } else {
                media::DOCKER_LAYER
            };
            layers.push(Desc::new(mt, &d, size));
            blobs.insert(d.to_string(), p);
        }
        let manifest = document::to_vec(&Manifest {
            schema_version: 2,
            media_type: Some(media::DOCKER_MANIFEST.into()),
            config: Desc::new(media::DOCKER_CONFIG, &cfg_digest, cfg.len() as u64),
            layers,
            ..Manifest::default()
        })?;
        let name = format!("docker-archive:{}:@{i}", archive.file.display());
        Ok(DockerArchiveSource {
            archive,
            manifest,
            blobs,
            name,
        })
    }
}

#[async_trait]
impl ImageSource for DockerArchiveSource {
    fn name(&self) -> String {
        self.name.clone()
    }
    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
        if instance.is_some() {
            bail!("{}: a docker-archive image has no index", self.name);
        }
        Ok((self.manifest.clone(), media::DOCKER_MANIFEST.to_string()))
    }
    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let p = self
            .blobs
            .get(&desc.digest().to_string())
            .with_context(|| {
                format!(
                    "{}: no blob {} in the archive ({})",
                    self.name,
                    desc.digest(),
                    self.archive.dir.path().display()
                )
            })?;
        Ok(Box::new(tokio::fs::File::open(p).await?))
    }
}

/// A docker-archive being written: layers and configs in a temporary directory, images in order.
pub struct DockerArchiveWriter {
    dir: tempfile::TempDir,
    file: PathBuf,
    /// Source blob digest → file name in the archive.
    files: Mutex<HashMap<String, String>>,
    entries: Mutex<Vec<ArchiveEntry>>,
}

impl DockerArchiveWriter {
    pub fn create(file: &Path) -> Result<Arc<DockerArchiveWriter>> {
        Ok(Arc::new(DockerArchiveWriter {
            dir: temp_dir_beside(file)?,
            file: file.to_path_buf(),
            files: Mutex::new(HashMap::new()),
            entries: Mutex::new(vec![]),
        }))
    }

    /// Write `manifest.json` and `repositories`, and tar everything into place.
    pub fn finish(&self) -> Result<()> {
        let entries = self.entries.lock().expect("lock").clone();
        if entries.is_empty() {
            bail!("{}: no image was written", self.file.display());
        }
        write_atomic(
            &self.dir.path().join("manifest.json"),
            &serde_json::to_vec(&entries)?,
        )?;
        // `repositories`: repository → tag → top layer id.
        let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for e in &entries {
            let top = e
                .layers
                .last()
                .map(|l| l.trim_end_matches(".tar").to_string())
                .unwrap_or_default();
            for t in e.repo_tags.iter().flatten() {
                let (repo, tag, _) = names::split(t);
                let r = repos.entry(repo.to_string()).or_default();
                r.insert(tag.unwrap_or("latest").to_string(), top.clone());
            }
        }
        write_atomic(
            &self.dir.path().join("repositories"),
            &serde_json::to_vec(&repos)?,
        )?;
        write_tar_of_dir(self.dir.path(), &self.file)
    }
}

/// Write side for one image into a [`DockerArchiveWriter`]. Standalone (`create`), `commit` finishes the
/// archive; from [`DockerArchiveDestination::for_writer`] (save), the caller finishes it.
pub struct DockerArchiveDestination {
    writer: Arc<DockerArchiveWriter>,
    tags: Vec<String>,
    finish_on_commit: bool,
    pending: Mutex<Option<ArchiveEntry>>,
}

impl DockerArchiveDestination {
    pub fn create(file: &Path, reference: Option<&str>) -> Result<DockerArchiveDestination> {
        let tags = match reference {
            Some(r) if !r.starts_with('@') => vec![r.to_string()],
            _ => vec![],
        };
        Ok(DockerArchiveDestination {
            writer: DockerArchiveWriter::create(file)?,
            tags,
            finish_on_commit: true,
            pending: Mutex::new(None),
        })
    }

    pub fn for_writer(
        writer: Arc<DockerArchiveWriter>,
        tags: Vec<String>,
    ) -> DockerArchiveDestination {
        DockerArchiveDestination {
            writer,
            tags,
            finish_on_commit: false,
            pending: Mutex::new(None),
        }
    }
}

#[async_trait]
impl ImageDestination for DockerArchiveDestination {
    fn name(&self) -> String {
        format!("docker-archive:{}", self.writer.file.display())
    }

    fn supported_manifest_types(&self) -> Vec<&'static str> {
        vec![media::DOCKER_MANIFEST]
    }

    fn supports_index(&self) -> bool {
        false
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self
            .writer
            .files
            .lock()
            .expect("lock")
            .contains_key(&desc.digest().to_string()))
    }

    async fn put_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()> {
        let mt = desc.media_type().to_string();
        let dir = self.writer.dir.path().to_path_buf();
        let key = desc.digest().to_string();
        let name = match Compression::of_media_type(&mt) {
            None => {
                // A config (or another small blob): stored as `<hex>.json`.
                let name = format!("{}.json", desc.digest().digest());
                let (f, tmp) = tempfile::Builder::new()
                    .prefix(".tmp-")
                    .tempfile_in(&dir)?
                    .into_parts();
                let mut f = tokio::fs::File::from_std(f);
                let mut data = data;
                tokio::io::copy(&mut data, &mut f)
                    .await
                    .with_context(|| format!("writing {key} to {}", self.name()))?;
                f.sync_all().await?;
                tmp.persist(dir.join(&name))?;
                name
            }
            Some(compression) => tokio::task::spawn_blocking(move || -> Result<String> {
                let mut input = tokio_util::io::SyncIoBridge::new(data);
                let (tmp_file, tmp) = tempfile::Builder::new()
                    .prefix(".tmp-")
                    .tempfile_in(&dir)?
                    .into_parts();
                let mut out = std::io::BufWriter::new(tmp_file);
                let mut h = Hasher::sha256();
                {
                    let mut r =
                        crate::layer::decoder(compression, std::io::BufReader::new(&mut input))?;
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = r.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                        out.write_all(&buf[..n])?;
                    }
                }
                std::io::copy(&mut input, &mut std::io::sink()).context("verifying the layer")?;
                out.flush()?;
                out.get_ref().sync_all()?;
                let name = format!("{}.tar", h.finish().digest());
                tmp.persist(dir.join(&name))?;
                Ok(name)
            })
            .await?
            .with_context(|| format!("writing layer {key} to {}", self.name()))?,
        };
        self.writer.files.lock().expect("lock").insert(key, name);
        Ok(())
    }

    async fn put_manifest(
        &self,
        bytes: &[u8],
        _media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<()> {
        if instance.is_some() {
            // Referrers and index children have no place in a docker-archive.
            return Ok(());
        }
        let m: Manifest = document::parse(bytes)
            .with_context(|| format!("{}: the manifest is not valid", self.name()))?;
        let files = self.writer.files.lock().expect("lock").clone();
        let lookup = |d: &str| -> Result<String> {
            files
                .get(d)
                .cloned()
                .with_context(|| format!("{}: blob {d} was not written", self.name()))
        };
        let config = lookup(&m.config.digest)?;
        let mut layers = vec![];
        for l in &m.layers {
            layers.push(lookup(&l.digest)?);
        }
        let repo_tags = if self.tags.is_empty() {
            None
        } else {
            Some(self.tags.clone())
        };
        *self.pending.lock().expect("lock") = Some(ArchiveEntry {
            config,
            repo_tags,
            layers,
        });
        Ok(())
    }

    async fn commit(&self) -> Result<()> {
        let e = self
            .pending
            .lock()
            .expect("lock")
            .take()
            .with_context(|| format!("{}: no manifest was written", self.name()))?;
        self.writer.entries.lock().expect("lock").push(e);
        if self.finish_on_commit {
            let w = self.writer.clone();
            tokio::task::spawn_blocking(move || w.finish()).await??;
        }
        Ok(())
    }
}
