//! An image opened for scanning: its manifest (the host platform's instance of an index), its config and
//! each layer's blob as a local file. Blobs of the local store are read in place; so are the blob files of a
//! layout directory (`oci:`, `dir:`), whose digests are checked by threads running beside the scan
//! ([`OpenedImage::verified`]); blobs of any other transport are spooled, digest-checked, into a temporary
//! directory that lives as long as the image.

use crate::oci::config::ImageConfig;
use crate::oci::document::{self, Index, Manifest};
use crate::oci::verify::{DigestingReader, Hasher, check_bytes, hash_file, sha256_digest};
use crate::plugin::scanner::{ImageInfo, Platform};
use crate::transport::{self, Descriptor, ImageSource, PlatformOverride, SystemContext, media};
use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest config read into memory, as containers/image's `MaxConfigBodySize`.
const MAX_CONFIG: u64 = 4 << 20;
/// Layers fetched at once from a remote source.
const PARALLEL_FETCHES: usize = 4;

/// One layer: its diff_id (from the config), its blob digest and the file holding that (possibly
/// compressed) tar.
pub struct Layer {
    pub diff_id: String,
    pub blob: String,
    pub file: PathBuf,
}

pub struct OpenedImage {
    pub info: ImageInfo,
    pub layers: Vec<Layer>,
    /// Where spooled blobs live; removed on drop.
    _spool: Option<tempfile::TempDir>,
    /// Digest checks of blobs read in place from outside the store, still running.
    checks: std::sync::Mutex<Vec<std::thread::JoinHandle<Result<()>>>>,
}

impl OpenedImage {
    /// Wait for the digest checks of blobs read in place: an error names the blob that does not match, and
    /// whatever was read from it must be thrown away.
    pub fn verified(&self) -> Result<()> {
        let checks = std::mem::take(&mut *self.checks.lock().expect("lock"));
        for c in checks {
            c.join()
                .map_err(|_| anyhow::anyhow!("a blob digest check panicked"))??;
        }
        Ok(())
    }
}

/// Open `name` (a transport string); `shown` is the reference as the user typed it.
pub async fn open(name: &str, shown: &str, ctx: &SystemContext) -> Result<OpenedImage> {
    let src = transport::open_source(name, ctx)
        .await
        .with_context(|| format!("opening {name}"))?;
    let (top, top_mt) = src.manifest(None).await?;
    let digest = sha256_digest(&top).to_string();
    let manifest = if media::is_index(&top_mt) {
        let idx: Index = document::parse(&top).context("the index is not valid JSON")?;
        let i = crate::oci::platform::choose(&idx, &PlatformOverride::default())
            .with_context(|| src.name())?;
        let d = idx.manifests[i].spec()?;
        let (b, _) = src.manifest(Some(d.digest())).await?;
        check_bytes(&b, d.digest(), Some(d.size()))?;
        b
    } else {
        top
    };
    let m: Manifest = document::parse(&manifest)
        .with_context(|| format!("{}: the manifest is not a valid image manifest", src.name()))?;
    let config_desc = m.config.spec()?;
    let config = read_config(src.as_ref(), &config_desc).await?;
    let c: ImageConfig = document::parse(&config)
        .with_context(|| format!("{}: the image config is not valid", src.name()))?;
    let descs: Vec<Descriptor> = m
        .layers
        .iter()
        .map(|d| d.spec())
        .collect::<Result<_>>()
        .with_context(|| format!("{}: the manifest's layers", src.name()))?;
    let diff_ids: Vec<String> = c.diff_ids().to_vec();
    if diff_ids.len() != descs.len() {
        bail!(
            "{}: the manifest lists {} layers but the config has {} diff_ids; the image is damaged",
            src.name(),
            descs.len(),
            diff_ids.len()
        );
    }
    let (files, spool, checks) = fetch_layers(src.as_ref(), name, &descs, ctx).await?;
    let layers = diff_ids
        .iter()
        .zip(files)
        .zip(&descs)
        .map(|((d, file), desc)| Layer {
            diff_id: d.clone(),
            blob: desc.digest().to_string(),
            file,
        })
        .collect();
    Ok(OpenedImage {
        info: ImageInfo {
            reference: shown.to_string(),
            digest,
            config: String::from_utf8_lossy(&config).into_owned(),
            platform: Platform {
                os: c.os.clone().unwrap_or_default(),
                architecture: c.architecture.clone().unwrap_or_default(),
                variant: c.variant.clone(),
                os_version: c.os_version.clone(),
                os_features: vec![],
            },
            layers: diff_ids,
        },
        layers,
        _spool: spool,
        checks: std::sync::Mutex::new(checks),
    })
}

async fn read_config(src: &dyn ImageSource, d: &Descriptor) -> Result<Vec<u8>> {
    if d.size() > MAX_CONFIG {
        bail!(
            "{}: the config {} claims {} bytes, more than the {MAX_CONFIG} lade reads into memory",
            src.name(),
            d.digest(),
            d.size()
        );
    }
    let mut r = DigestingReader::new(src.blob(d).await?, d.digest(), Some(d.size()))?;
    let mut out = vec![];
    r.read_to_end(&mut out)
        .await
        .with_context(|| format!("reading the config {} from {}", d.digest(), src.name()))?;
    Ok(out)
}

type Check = std::thread::JoinHandle<Result<()>>;

/// Each layer blob as a local file: in place in the local store (verified when it was stored) or in a
/// layout directory (verified by the returned checks, beside the scan), else spooled.
async fn fetch_layers(
    src: &dyn ImageSource,
    name: &str,
    descs: &[Descriptor],
    ctx: &SystemContext,
) -> Result<(Vec<PathBuf>, Option<tempfile::TempDir>, Vec<Check>)> {
    if matches!(transport::parse(name)?, transport::TransportRef::Local(_)) {
        let layout = crate::store::Store::open(&ctx.store_root)?;
        let paths: Vec<PathBuf> = descs
            .iter()
            .map(|d| layout.layout().blob_path(d.digest()))
            .collect();
        if paths.iter().all(|p| p.is_file()) {
            return Ok((paths, None, vec![]));
        }
    }
    if let Some(paths) = descs
        .iter()
        .map(|d| src.blob_file(d))
        .collect::<Option<Vec<PathBuf>>>()
    {
        let checks = descs
            .iter()
            .zip(&paths)
            .map(|(d, p)| {
                let (d, p, source) = (d.clone(), p.clone(), src.name());
                std::thread::spawn(move || {
                    check_file(&p, &d).with_context(|| format!("layer {} of {source}", d.digest()))
                })
            })
            .collect();
        return Ok((paths, None, checks));
    }
    let parent = crate::paths::cache_dir().join("scan");
    let spool = match std::fs::create_dir_all(&parent) {
        Ok(()) => tempfile::Builder::new()
            .prefix("layers-")
            .tempdir_in(&parent),
        Err(_) => tempfile::Builder::new().prefix("lade-scan-").tempdir(),
    }
    .context("making a temporary directory for the image's layers")?;
    let dir = spool.path().to_path_buf();
    let paths = futures::stream::iter(descs.iter().enumerate())
        .map(|(i, d)| {
            let path = dir.join(format!("layer-{i}"));
            async move {
                spool_blob(src, d, &path).await?;
                Ok::<_, anyhow::Error>(path)
            }
        })
        .buffered(PARALLEL_FETCHES)
        .try_collect()
        .await?;
    Ok((paths, Some(spool), vec![]))
}

/// Check a blob file against its descriptor's size and digest.
fn check_file(path: &std::path::Path, d: &Descriptor) -> Result<()> {
    let (got, size) = hash_file(path, Hasher::for_digest(d.digest())?)?;
    if size != d.size() {
        bail!(
            "{} is {size} bytes, but the manifest says {}: the layout is damaged",
            path.display(),
            d.size()
        );
    }
    if &got != d.digest() {
        bail!(
            "{} hashes to {got}, not the digest its name and the manifest give: the layout is damaged",
            path.display()
        );
    }
    Ok(())
}

async fn spool_blob(src: &dyn ImageSource, d: &Descriptor, path: &std::path::Path) -> Result<()> {
    let what = || format!("reading layer {} from {}", d.digest(), src.name());
    let mut r = DigestingReader::new(
        src.blob(d).await.with_context(what)?,
        d.digest(),
        Some(d.size()),
    )?;
    let out = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("creating {}", path.display()))?;
    // Big writes: each write of a tokio file is a trip to its blocking pool.
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, out);
    tokio::io::copy(&mut r, &mut out).await.with_context(what)?;
    out.flush().await.with_context(what)?;
    Ok(())
}
