//! Copying one single-image manifest: its config and layers in parallel (skip, mount, or stream through a
//! `DigestingReader`, with retries), optional recompression and format conversion, then the manifest.

use super::compress::recompress;
use super::convert::{ManifestFormat, convert_manifest};
use super::{Copier, Written, once};
use crate::events::{BlobHow, Event, Events};
use crate::oci::Compression;
use crate::oci::document::{self, Desc, Manifest};
use crate::oci::verify::{DigestingReader, sha256_digest};
use crate::transport::{Descriptor, Digest};
use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use oci_spec::image::MediaType;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Copy the blobs of `bytes` (a manifest of type `mt`) and write the manifest (converted if needed).
/// `instance: Some` writes it as a child/untagged manifest, `None` as the destination's top manifest.
impl Copier<'_> {
    pub(crate) async fn copy_single(
        &self,
        bytes: &[u8],
        mt: &str,
        instance: Option<&Digest>,
    ) -> Result<Written> {
        let Copier { dst, stats, .. } = *self;
        let w = self.copy_single_blobs(bytes, mt).await?;
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
            self.opts.events.emit(Event::ManifestWritten {
                digest: w.digest.to_string(),
                media_type: w.media_type.clone(),
                destination: dst.name(),
            });
        }
        stats.images.fetch_add(1, Ordering::Relaxed);
        Ok(w)
    }
}

/// Copy the blobs a manifest references; return the manifest as it must be written.
impl Copier<'_> {
    pub(crate) async fn copy_single_blobs(&self, bytes: &[u8], mt: &str) -> Result<Written> {
        let Copier { src, dst, opts, .. } = *self;
        let mut m: Manifest = document::parse(bytes)
            .with_context(|| format!("{}: manifest is not a valid image manifest", src.name()))?;
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
        let config = (m.config.spec())
            .with_context(|| format!("{}: invalid config descriptor", src.name()))?;
        let layers = (m.layers.iter().map(Desc::spec))
            .collect::<Result<Vec<Descriptor>>>()
            .with_context(|| format!("{}: invalid layer descriptors", src.name()))?;
        let mut jobs: Vec<(Option<usize>, Descriptor)> = vec![(None, config)];
        jobs.extend(layers.into_iter().enumerate().map(|(i, l)| (Some(i), l)));
        let out_mt_ref = out_mt.as_str();
        let results: Vec<(Option<usize>, Option<Descriptor>)> = futures::stream::iter(jobs)
            .map(|(i, d)| async move {
                let recompress_to = match (i, opts.compress) {
                    (Some(_), Some(to)) => {
                        match Compression::of_media_type(d.media_type().as_ref()) {
                            Some(from) if from != to => Some((from, to)),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                match recompress_to {
                    None => self.copy_blob(&d).await.map(|()| (i, None)),
                    Some((from, to)) => self
                        .recompress_blob(&d, from, to, out_mt_ref)
                        .await
                        .map(|nd| (i, Some(nd))),
                }
            })
            .buffer_unordered(opts.jobs.max(1))
            .try_collect()
            .await?;
        for (i, nd) in results {
            if let (Some(i), Some(nd)) = (i, nd) {
                let l = &mut m.layers[i];
                l.digest = nd.digest().to_string();
                l.size = nd.size();
                l.media_type = Some(nd.media_type().to_string());
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
            document::to_vec(&m)?
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
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.min(5))
}

/// Copy one blob: skip it if present, mount it if possible, else stream it through a `DigestingReader`.
impl Copier<'_> {
    pub(crate) async fn copy_blob(&self, d: &Descriptor) -> Result<()> {
        let Copier { dst, stats, .. } = *self;
        // One copy at a time writes this blob into this destination; the others find it done.
        let mut slot = once::acquire(dst.blob_namespace(), d.digest().as_ref()).await;
        if slot.as_ref().is_some_and(|s| s.done()) {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            self.blob_done(d, BlobHow::Skipped);
            return Ok(());
        }
        let r = self.copy_blob_unshared(d).await;
        if r.is_ok()
            && let Some(s) = &mut slot
        {
            s.mark_done();
        }
        r
    }
}

/// [`copy_blob`] without the per-destination lock.
impl Copier<'_> {
    pub(crate) async fn copy_blob_unshared(&self, d: &Descriptor) -> Result<()> {
        let Copier {
            src,
            dst,
            opts,
            stats,
        } = *self;
        if dst
            .has_blob(d)
            .await
            .with_context(|| format!("checking {} for blob {}", dst.name(), d.digest()))?
        {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            self.blob_done(d, BlobHow::Skipped);
            return Ok(());
        }
        if dst
            .try_reuse_blob(d, src.reuse_hint().as_ref())
            .await
            .unwrap_or(false)
        {
            stats.mounted.fetch_add(1, Ordering::Relaxed);
            self.blob_done(d, BlobHow::Mounted);
            return Ok(());
        }
        opts.events.emit(Event::BlobStarted {
            digest: d.digest().to_string(),
            size: d.size(),
            media_type: d.media_type().to_string(),
        });
        let mut attempt = 0;
        loop {
            let r = async {
                let s = src.blob(d).await?;
                let s: crate::oci::BlobStream = if opts.events.on() {
                    Box::new(Counting {
                        inner: s,
                        digest: d.digest().to_string(),
                        events: opts.events.clone(),
                    })
                } else {
                    s
                };
                let v = DigestingReader::new(s, d.digest(), Some(d.size()))?;
                dst.put_blob(d, Box::new(v)).await
            }
            .await;
            match r {
                Ok(()) => {
                    stats.copied.fetch_add(1, Ordering::Relaxed);
                    stats.bytes.fetch_add(d.size(), Ordering::Relaxed);
                    self.blob_done(d, BlobHow::Copied);
                    return Ok(());
                }
                Err(e) if attempt < opts.retry_times && !crate::fsutil::disk_full(&e) => {
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
}

impl Copier<'_> {
    pub(crate) async fn recompress_blob(
        &self,
        d: &Descriptor,
        from: Compression,
        to: Compression,
        manifest_mt: &str,
    ) -> Result<Descriptor> {
        let Copier {
            src,
            dst,
            opts,
            stats,
        } = *self;
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
        nd.set_media_type(MediaType::from(to.media_type_in(manifest_mt)));
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
        self.blob_done(&nd, BlobHow::Copied);
        Ok(nd)
    }

    fn blob_done(&self, d: &Descriptor, how: BlobHow) {
        self.opts.events.emit(Event::BlobDone {
            digest: d.digest().to_string(),
            size: d.size(),
            how,
        });
    }
}

/// A blob stream that reports the bytes read through it (live byte counts and rates).
struct Counting {
    inner: crate::oci::BlobStream,
    digest: String,
    events: Events,
}

impl tokio::io::AsyncRead for Counting {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.events.bytes(&self.digest, n);
        }
        r
    }
}
