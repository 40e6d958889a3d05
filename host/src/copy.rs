//! The one copy engine that push, pull, copy, save, load and sync go through, for every pair of transports.
//!
//! [`copy_image`] reads the top manifest; an index goes to [`multiple`] (`--multi-arch`: every instance and
//! nested index, the host's one, or the index alone), a single manifest to [`single`]. Blobs move in parallel,
//! each through a `DigestingReader`, skipping those the destination has or can mount. Referrers (OCI 1.1
//! `subject` and cosign `sha256-<hex>.sig/.att/.sbom` tags) follow unless disabled.

pub mod compress;
pub mod convert;
mod multiple;
mod once;
mod single;
pub mod sync;

use crate::oci::Compression;
use crate::oci::verify::{check_bytes, sha256_digest};
use crate::transport::{
    Descriptor, Digest, ImageDestination, ImageSource, PlatformOverride, media,
};
use anyhow::{Context, Result, bail};
pub use convert::ManifestFormat;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// `--multi-arch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultiArch {
    /// Only the image for the host platform (or the `--override-*` one).
    #[default]
    System,
    /// The index and every image in it.
    All,
    /// The index alone (its images must already be at the destination).
    IndexOnly,
}

impl std::str::FromStr for MultiArch {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "system" => MultiArch::System,
            "all" => MultiArch::All,
            "index-only" => MultiArch::IndexOnly,
            _ => anyhow::bail!("unknown --multi-arch {s:?}: use system, all or index-only"),
        })
    }
}

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub multi_arch: MultiArch,
    /// Fail rather than change any manifest digest.
    pub preserve_digests: bool,
    /// Manifest format to write (None: keep, unless the destination cannot store it).
    pub format: Option<ManifestFormat>,
    /// Layer compression to write (None: keep).
    pub compress: Option<Compression>,
    /// Carry OCI referrers and cosign tags.
    pub referrers: bool,
    /// Carry signatures among them (cosign `.sig` tags, sigstore bundle referrers); false is
    /// `--remove-signatures`.
    pub signatures: bool,
    /// Platform overrides for `--multi-arch system`.
    pub platform: PlatformOverride,
    /// Blobs moved at once.
    pub jobs: usize,
    /// Retries for one blob after a transient failure.
    pub retry_times: u32,
    /// Where recompressed layers are staged (same filesystem as a local destination is best).
    pub tmp_dir: std::path::PathBuf,
    /// Where progress events go (blob started/done, manifest written, done).
    pub events: crate::events::Events,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            multi_arch: MultiArch::System,
            preserve_digests: false,
            format: None,
            compress: None,
            referrers: true,
            signatures: true,
            platform: PlatformOverride::default(),
            jobs: 6,
            retry_times: 3,
            tmp_dir: std::env::temp_dir(),
            events: Default::default(),
        }
    }
}

/// What a copy did (`--format json`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct CopyReport {
    pub source: String,
    pub destination: String,
    /// Digest of the manifest written under the destination reference.
    pub digest: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Single-image manifests written.
    pub images: usize,
    pub blobs_copied: usize,
    pub blobs_skipped: usize,
    pub blobs_mounted: usize,
    pub bytes_copied: u64,
    pub referrers: usize,
}

/// Counters shared by the parallel blob copies.
#[derive(Default)]
pub(crate) struct Stats {
    pub copied: AtomicUsize,
    pub skipped: AtomicUsize,
    pub mounted: AtomicUsize,
    pub bytes: AtomicU64,
    pub images: AtomicUsize,
    pub referrers: AtomicUsize,
}

/// The result of copying one manifest: what was written.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// One copy in progress: its two sides, its options and the counters every part of it adds to. The engine's
/// steps (one image, one blob, an index, referrers) are its methods.
#[derive(Clone, Copy)]
pub(crate) struct Copier<'a> {
    pub src: &'a dyn ImageSource,
    pub dst: &'a dyn ImageDestination,
    pub opts: &'a CopyOptions,
    pub stats: &'a Stats,
}

/// Copy the image `src` names to `dst`, then commit `dst`.
pub async fn copy_image(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    let r = copy_image_inner(src, dst, opts).await;
    // Where blobs were seen, for later cross-repository mounts: written once per image.
    let _ = tokio::task::spawn_blocking(crate::registry::locations::flush).await;
    r
}

async fn copy_image_inner(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    let stats = Stats::default();
    let (bytes, mt) = src
        .manifest(None)
        .await
        .with_context(|| format!("reading the manifest of {}", src.name()))?;
    let c = Copier {
        src,
        dst,
        opts,
        stats: &stats,
    };
    let written = if media::is_index(&mt) {
        c.copy_index(bytes, &mt).await?
    } else if media::is_manifest(&mt) {
        let w = c.copy_single(&bytes, &mt, None).await?;
        if opts.referrers {
            c.copy_referrers(&sha256_digest(&bytes), bytes.len() as u64, &mt, &w, 0)
                .await?;
        }
        w
    } else {
        bail!("{}: unsupported manifest type `{mt}`", src.name());
    };
    dst.commit()
        .await
        .with_context(|| format!("committing {}", dst.name()))?;
    let report = CopyReport {
        source: src.name(),
        destination: dst.name(),
        digest: written.digest.to_string(),
        media_type: written.media_type,
        images: stats.images.load(Ordering::Relaxed),
        blobs_copied: stats.copied.load(Ordering::Relaxed),
        blobs_skipped: stats.skipped.load(Ordering::Relaxed),
        blobs_mounted: stats.mounted.load(Ordering::Relaxed),
        bytes_copied: stats.bytes.load(Ordering::Relaxed),
        referrers: stats.referrers.load(Ordering::Relaxed),
    };
    opts.events.emit(crate::events::Event::Done {
        source: report.source.clone(),
        destination: report.destination.clone(),
        digest: report.digest.clone(),
        blobs_copied: report.blobs_copied,
        blobs_skipped: report.blobs_skipped,
        blobs_mounted: report.blobs_mounted,
        bytes_copied: report.bytes_copied,
    });
    Ok(report)
}

/// The manifest format to write for a manifest of type `mt` (None: keep it): `--format`, else the
/// destination's first supported format when it cannot store `mt`.
pub(crate) fn target_format(
    opts: &CopyOptions,
    dst: &dyn ImageDestination,
    mt: &str,
    index: bool,
) -> Result<Option<ManifestFormat>> {
    let supported = dst.supported_manifest_types();
    if let Some(f) = opts.format {
        let t = if index {
            f.index_type()
        } else {
            f.manifest_type()
        };
        if !supported.is_empty() && !supported.contains(&t) {
            bail!(
                "{} cannot store {t} manifests; drop --format or choose another destination",
                dst.name()
            );
        }
        return Ok(Some(f));
    }
    if supported.is_empty() || supported.contains(&mt) {
        return Ok(None);
    }
    Ok(supported.iter().find_map(|t| ManifestFormat::of(t)))
}

/// A child manifest by digest, verified.
pub(crate) async fn fetch_child(
    src: &dyn ImageSource,
    d: &Descriptor,
) -> Result<(Vec<u8>, String)> {
    let (b, mt) = src
        .manifest(Some(d.digest()))
        .await
        .with_context(|| format!("reading manifest {} from {}", d.digest(), src.name()))?;
    check_bytes(&b, d.digest(), Some(d.size()))
        .with_context(|| format!("manifest from {}", src.name()))?;
    Ok((b, mt))
}

/// Whether a referrer is a signature (`--remove-signatures` drops it): a sigstore bundle.
fn is_signature_referrer(r: &Descriptor) -> bool {
    r.artifact_type().as_ref().is_some_and(|t| {
        t.to_string()
            .starts_with("application/vnd.dev.sigstore.bundle")
    })
}

/// Copy what refers to the manifest `subject` (source digest) now written as `written`: OCI referrers and
/// cosign tags. Referrers of referrers follow, two levels deep.
impl Copier<'_> {
    pub(crate) async fn copy_referrers(
        &self,
        subject: &Digest,
        size: u64,
        mt: &str,
        written: &Written,
        depth: usize,
    ) -> Result<()> {
        let Copier {
            src,
            dst,
            opts,
            stats,
        } = *self;
        // Archives in docker format have no place for referrers.
        if depth > 1 || !dst.supports_index() {
            return Ok(());
        }
        let subject_desc = crate::oci::manifest_descriptor(subject.clone(), size, mt)?;
        let list = src
            .referrers(&subject_desc)
            .await
            .with_context(|| format!("listing referrers of {subject} in {}", src.name()))?;
        let list: Vec<_> = list
            .into_iter()
            .filter(|r| opts.signatures || !is_signature_referrer(r))
            .collect();
        let mut cosign = vec![];
        for suffix in ["sig", "att", "sbom"] {
            if suffix == "sig" && !opts.signatures {
                continue;
            }
            let tag = format!("{}-{}.{suffix}", subject.algorithm(), subject.digest());
            if let Some((b, tmt)) = src
                .tagged_manifest(&tag)
                .await
                .with_context(|| format!("looking up {tag} in {}", src.name()))?
                && media::is_manifest(&tmt)
            {
                cosign.push((tag, b, tmt));
            }
        }
        if list.is_empty() && cosign.is_empty() {
            return Ok(());
        }
        if written.digest != *subject {
            tracing::warn!(
                "{}: the manifest digest changed ({subject} → {}), so its {} signatures/referrers no longer apply and are not copied",
                src.name(),
                written.digest,
                list.len() + cosign.len()
            );
            return Ok(());
        }
        let ref_opts = CopyOptions {
            format: None,
            compress: None,
            ..opts.clone()
        };
        for r in list {
            let (b, rmt) = fetch_child(src, &r).await?;
            let w = if media::is_index(&rmt) {
                bail!(
                    "{}: referrer {} is an index; lade copies manifest referrers",
                    src.name(),
                    r.digest()
                );
            } else {
                Copier {
                    opts: &ref_opts,
                    ..*self
                }
                .copy_single(&b, &rmt, Some(r.digest()))
                .await?
            };
            stats.referrers.fetch_add(1, Ordering::Relaxed);
            Box::pin(self.copy_referrers(r.digest(), r.size(), &rmt, &w, depth + 1)).await?;
        }
        for (tag, b, tmt) in cosign {
            let w = Copier {
                opts: &ref_opts,
                ..*self
            }
            .copy_single_blobs(&b, &tmt)
            .await?;
            if !dst
                .put_tagged_manifest(&w.bytes, &w.media_type, &tag)
                .await?
            {
                tracing::warn!(
                    "{}: cannot store the cosign tag {tag}; it is not copied",
                    dst.name()
                );
                continue;
            }
            stats.referrers.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}
