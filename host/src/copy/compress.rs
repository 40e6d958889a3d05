//! `--dest-compress-format`: recompress a layer (gzip or zstd), on every core, into a temporary file
//! whose digest is computed while it is written.

use crate::transport::media;
use crate::transport::verify::Hasher;
use crate::transport::{BlobStream, Digest};
use anyhow::{Context, Result};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

/// A layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    Gzip,
    Zstd,
}

/// What a layer media type says about compression: `Some(None)` for a plain tar, `Some(Some(c))` for a
/// compressed one, `None` for a blob that is not a recognised layer (left untouched).
pub fn compression_of(mt: &str) -> Option<Option<Compression>> {
    match mt {
        media::OCI_LAYER | media::DOCKER_LAYER => Some(None),
        media::OCI_LAYER_GZIP | media::DOCKER_LAYER_GZIP => Some(Some(Compression::Gzip)),
        media::OCI_LAYER_ZSTD => Some(Some(Compression::Zstd)),
        _ => None,
    }
}

/// The layer media type for `c` in a manifest of type `manifest_mt`.
pub fn layer_media_type(manifest_mt: &str, c: Compression) -> &'static str {
    match (manifest_mt == media::DOCKER_MANIFEST, c) {
        (true, Compression::Gzip) => media::DOCKER_LAYER_GZIP,
        (false, Compression::Gzip) => media::OCI_LAYER_GZIP,
        (_, Compression::Zstd) => media::OCI_LAYER_ZSTD,
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Arc<Mutex<Hasher>>,
    written: Arc<Mutex<u64>>,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.lock().expect("hasher lock").update(&buf[..n]);
        *self.written.lock().expect("size lock") += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decompress `src` (a verified stream of a layer compressed with `from`) and compress it with `to` into a
/// temporary file in `tmp_dir`. Returns the file, its digest and its size.
pub async fn recompress(
    src: BlobStream,
    from: Option<Compression>,
    to: Compression,
    tmp_dir: std::path::PathBuf,
) -> Result<(tempfile::NamedTempFile, Digest, u64)> {
    tokio::task::spawn_blocking(move || -> Result<_> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut input = tokio_util::io::SyncIoBridge::new(src);
        let mut reader: Box<dyn Read + '_> = match from {
            None => Box::new(&mut input),
            Some(Compression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(&mut input)),
            Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::new(&mut input)?),
        };
        std::fs::create_dir_all(&tmp_dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".recompress-")
            .tempfile_in(&tmp_dir)?;
        let hasher = Arc::new(Mutex::new(Hasher::sha256()));
        let written = Arc::new(Mutex::new(0u64));
        let file = tmp.reopen()?;
        let out = HashingWriter {
            inner: io::BufWriter::new(file),
            hasher: hasher.clone(),
            written: written.clone(),
        };
        match to {
            Compression::Gzip => {
                use gzp::ZWriter;
                let mut w = gzp::par::compress::ParCompressBuilder::<gzp::deflate::Gzip>::new()
                    .num_threads(threads)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .from_writer(out);
                io::copy(&mut reader, &mut w).context("recompressing a layer to gzip")?;
                let mut out = w
                    .finish()
                    .map_err(|e| anyhow::anyhow!("finishing gzip: {e}"))?;
                out.flush()?;
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
                enc.multithread(threads as u32)?;
                io::copy(&mut reader, &mut enc).context("recompressing a layer to zstd")?;
                let mut out = enc.finish()?;
                out.flush()?;
            }
        }
        drop(reader);
        // Read the source to its end so its digest is verified even if the decoder stopped early.
        io::copy(&mut input, &mut io::sink()).context("verifying the source layer")?;
        tmp.as_file().sync_all()?;
        let digest = hasher.lock().expect("hasher lock").clone().finish();
        let size = *written.lock().expect("size lock");
        Ok((tmp, digest, size))
    })
    .await
    .context("the recompression task failed")?
}
