//! `--dest-compress-format`: recompress a layer (gzip or zstd), on every core, into a temporary file
//! whose digest is computed while it is written.

use crate::oci::{BlobStream, Compression, Digest};
use anyhow::{Context, Result};
use std::io;

/// Decompress `src` (a verified stream of a layer compressed with `from`) and compress it with `to` into a
/// temporary file in `tmp_dir`. Returns the file, its digest and its size.
pub async fn recompress(
    src: BlobStream,
    from: Compression,
    to: Compression,
    tmp_dir: std::path::PathBuf,
) -> Result<(tempfile::NamedTempFile, Digest, u64)> {
    tokio::task::spawn_blocking(move || -> Result<_> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut input = tokio_util::io::SyncIoBridge::new(src);
        let mut reader = crate::layer::decoder(from, io::BufReader::new(&mut input))?;
        std::fs::create_dir_all(&tmp_dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".recompress-")
            .tempfile_in(&tmp_dir)?;
        // Held while the file exists, so `lade fsck --repair` does not take it for a leftover.
        rustix::fs::flock(tmp.as_file(), rustix::fs::FlockOperation::LockShared)?;
        let (out, hashed) = crate::layer::HashingWriter::new(io::BufWriter::new(tmp.reopen()?));
        // The same compressors layers are written with: parallel, and independent of the core count.
        let mut w = crate::layer::Compressor::with_level(to, out, threads, None)?;
        io::copy(&mut reader, &mut w)
            .with_context(|| format!("recompressing a layer to {to:?}"))?;
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
