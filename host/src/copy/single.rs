//! Copying one single-image manifest: its config and layers in parallel (skip, mount, or stream through a
//! `DigestingReader`, with retries), optional recompression and format conversion, then the manifest.

use super::compress::{compression_of, layer_media_type, recompress};
use super::convert::{ManifestFormat, convert_manifest};
use super::{CopyOptions, Stats, Written, once};
use crate::transport::verify::{DigestingReader, sha256_digest};
use crate::transport::{Descriptor, Digest, ImageDestination, ImageSource};
use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use oci_spec::image::MediaType;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Copy the blobs of `bytes` (a manifest of type `mt`) and write the manifest (converted if needed).
/// `instance: Some` writes it as a child/untagged manifest, `None` as the destination's top manifest.
pub(crate) async fn copy_single(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
    stats: &Stats,
    bytes: &[u8],
    mt: &str,
    instance: Option<&Digest>,
) -> Result<Written> {
    let w = copy_single_blobs(src, dst, opts, stats, bytes, mt).await?;
    let inst = instance.map(|_| &w.digest);
    // A manifest written by digest goes there once (see `once`); the top one always gets its tag.
    let mut slot = match inst {
        Some(d) => once::acquire(dst.manifest_namespace(), &format!("manifest {d}")).await,
        None => None,
    };
    if !slot.as_ref().is_some_and(|s| s.done()) {
        dst.put_manifest(&w.bytes, &w.media_type, inst)
            .await
            .with_context(|| format!("writing manifest {} to {}", w.digest, dst.name()))?;
        if let Some(s) = &mut slot {
            s.mark_done();
        }
    }
    stats.images.fetch_add(1, Ordering::Relaxed);
    Ok(w)
}

/// Copy the blobs a manifest references; return the manifest as it must be written.
pub(crate) async fn copy_single_blobs(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
    stats: &Stats,
    bytes: &[u8],
    mt: &str,
) -> Result<Written> {
    let mut m: Value = serde_json::from_slice(bytes)
        .with_context(|| format!("{}: manifest is not valid JSON", src.name()))?;
    let target = super::target_format(opts, dst, mt, false)?;
    let mut changed = false;
    let mut out_mt = mt.to_string();
    if let Some(f) = target
        && ManifestFormat::of(mt) != Some(f)
    {
        m = convert_manifest(&m, f)
            .with_context(|| format!("converting the manifest of {}", src.name()))?;
        out_mt = f.manifest_type().to_string();
        changed = true;
    }
    let config: Option<Descriptor> = match m.get("config") {
        Some(c) => Some(
            serde_json::from_value(c.clone())
                .with_context(|| format!("{}: invalid config descriptor", src.name()))?,
        ),
        None => None,
    };
    let layers: Vec<Descriptor> = match m.get("layers") {
        Some(l) => serde_json::from_value(l.clone())
            .with_context(|| format!("{}: invalid layer descriptors", src.name()))?,
        None => vec![],
    };
    let mut jobs: Vec<(Option<usize>, Descriptor)> = vec![];
    if let Some(c) = config {
        jobs.push((None, c));
    }
    jobs.extend(layers.into_iter().enumerate().map(|(i, l)| (Some(i), l)));
    let out_mt_ref = out_mt.as_str();
    let results: Vec<(Option<usize>, Option<Descriptor>)> = futures::stream::iter(jobs)
        .map(|(i, d)| async move {
            let recompress_to = match (i, opts.compress) {
                (Some(_), Some(to)) => match compression_of(d.media_type().as_ref()) {
                    Some(from) if from != Some(to) => Some((from, to)),
                    _ => None,
                },
                _ => None,
            };
            match recompress_to {
                None => copy_blob(src, dst, opts, stats, &d)
                    .await
                    .map(|()| (i, None)),
                Some((from, to)) => {
                    recompress_blob(src, dst, opts, stats, &d, from, to, out_mt_ref)
                        .await
                        .map(|nd| (i, Some(nd)))
                }
            }
        })
        .buffer_unordered(opts.jobs.max(1))
        .try_collect()
        .await?;
    for (i, nd) in results {
        if let (Some(i), Some(nd)) = (i, nd) {
            m["layers"][i]["digest"] = json!(nd.digest().to_string());
            m["layers"][i]["size"] = json!(nd.size());
            m["layers"][i]["mediaType"] = json!(nd.media_type().to_string());
            changed = true;
        }
    }
    let out = if changed {
        if opts.preserve_digests {
            bail!(
                "--preserve-digests: copying {} needs a manifest change (format conversion or recompression); drop one of them",
                src.name()
            );
        }
        serde_json::to_vec(&m)?
    } else {
        bytes.to_vec()
    };
    Ok(Written {
        digest: sha256_digest(&out),
        size: out.len() as u64,
        media_type: out_mt,
        bytes: out,
    })
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.min(5))
}

/// Copy one blob: skip it if present, mount it if possible, else stream it through a `DigestingReader`.
pub(crate) async fn copy_blob(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
    stats: &Stats,
    d: &Descriptor,
) -> Result<()> {
    // One copy at a time writes this blob into this destination; the others find it done.
    let mut slot = once::acquire(dst.blob_namespace(), d.digest().as_ref()).await;
    if slot.as_ref().is_some_and(|s| s.done()) {
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let r = copy_blob_unshared(src, dst, opts, stats, d).await;
    if r.is_ok()
        && let Some(s) = &mut slot
    {
        s.mark_done();
    }
    r
}

/// [`copy_blob`] without the per-destination lock.
async fn copy_blob_unshared(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
    stats: &Stats,
    d: &Descriptor,
) -> Result<()> {
    if dst
        .has_blob(d)
        .await
        .with_context(|| format!("checking {} for blob {}", dst.name(), d.digest()))?
    {
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    if dst
        .try_reuse_blob(d, src.reuse_hint().as_ref())
        .await
        .unwrap_or(false)
    {
        stats.mounted.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let mut attempt = 0;
    loop {
        let r = async {
            let s = src.blob(d).await?;
            let v = DigestingReader::new(s, d.digest(), Some(d.size()))?;
            dst.put_blob(d, Box::new(v)).await
        }
        .await;
        match r {
            Ok(()) => {
                stats.copied.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(d.size(), Ordering::Relaxed);
                return Ok(());
            }
            Err(e) if attempt < opts.retry_times => {
                tracing::warn!("copying blob {} failed ({e:#}); retrying", d.digest());
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => {
                return Err(e.context(format!(
                    "copying blob {} from {} to {}",
                    d.digest(),
                    src.name(),
                    dst.name()
                )));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn recompress_blob(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
    stats: &Stats,
    d: &Descriptor,
    from: Option<super::Compression>,
    to: super::Compression,
    manifest_mt: &str,
) -> Result<Descriptor> {
    let s = src
        .blob(d)
        .await
        .with_context(|| format!("reading layer {} from {}", d.digest(), src.name()))?;
    let v = DigestingReader::new(s, d.digest(), Some(d.size()))?;
    let (tmp, digest, size) = recompress(Box::new(v), from, to, opts.tmp_dir.clone())
        .await
        .with_context(|| format!("recompressing layer {} from {}", d.digest(), src.name()))?;
    let mut nd = d.clone();
    nd.set_digest(digest.clone());
    nd.set_size(size);
    nd.set_media_type(MediaType::from(layer_media_type(manifest_mt, to)));
    let mut slot = once::acquire(dst.blob_namespace(), digest.as_ref()).await;
    if slot.as_ref().is_some_and(|s| s.done()) || dst.has_blob(&nd).await? {
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        return Ok(nd);
    }
    let f = tokio::fs::File::open(tmp.path()).await?;
    let v = DigestingReader::new(f, &digest, Some(size))?;
    dst.put_blob(&nd, Box::new(v))
        .await
        .with_context(|| format!("writing layer {digest} to {}", dst.name()))?;
    if let Some(s) = &mut slot {
        s.mark_done();
    }
    stats.copied.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(size, Ordering::Relaxed);
    Ok(nd)
}
