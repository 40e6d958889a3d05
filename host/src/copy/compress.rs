//! `--dest-compress-format`: recompress a layer (gzip or zstd), on every core, into a temporary file
//! whose digest is computed while it is written.

use crate::transport::media;
use crate::transport::{BlobStream, Digest};
use anyhow::{Context, Result};
use std::io::{self, Read};

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
        let (out, hashed) = crate::layer::HashingWriter::new(io::BufWriter::new(tmp.reopen()?));
        // The same compressors layers are written with: parallel, and independent of the core count.
        let format = match to {
            Compression::Gzip => crate::layer::Compression::Gzip,
            Compression::Zstd => crate::layer::Compression::Zstd,
        };
        let mut w = crate::layer::Compressor::with_level(format, out, threads, None)?;
        io::copy(&mut reader, &mut w)
            .with_context(|| format!("recompressing a layer to {format:?}"))?;
        w.finish()?;
        drop(reader);
        // Read the source to its end so its digest is verified even if the decoder stopped early.
        io::copy(&mut input, &mut io::sink()).context("verifying the source layer")?;
        tmp.as_file().sync_all()?;
        let (digest, size) = hashed.digest();
        Ok((tmp, digest.parse()?, size))
    })
    .await
    .context("the recompression task failed")?
}
