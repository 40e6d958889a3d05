//! Compression: detection by magic bytes, decompressing readers, and compressing writers that use every core.

use crate::oci::Compression;
use anyhow::{Context, Result};
use std::io::{self, BufRead, BufReader, Read, Write};

/// A reader that decompresses `reader` as `c` says.
pub fn decoder<'a>(c: Compression, reader: impl BufRead + 'a) -> Result<Box<dyn Read + 'a>> {
    Ok(match c {
        // Readers of tars ask for 512-byte headers and skip contents in 8 KiB reads; inflating into
        // buffers that small costs zlib a window copy of everything and its slow path. It fills 256 KiB.
        Compression::Gzip => Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::bufread::MultiGzDecoder::new(reader),
        )),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(reader).context("starting zstd decoder")?,
        ),
        Compression::None => Box::new(reader),
    })
}

/// Wrap `reader` in the decompressor its magic bytes call for.
pub fn decompressor<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let head = buf
        .fill_buf()
        .context("reading the first bytes of a layer")?;
    let c = Compression::detect(head);
    decoder(c, buf)
}

/// Threads to compress with: every core.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A compressing writer over `out`; `finish` must be called to flush the trailer.
pub enum Compressor<W: Write + Send + 'static> {
    Gzip(super::pargzip::ParGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    None(W),
}

impl<W: Write + Send + 'static> Compressor<W> {
    /// A compressor with `threads` workers at `level` (gzip 1-9, default 6; zstd 1-19, default 3).
    pub fn with_level(
        format: Compression,
        out: W,
        threads: usize,
        level: Option<u32>,
    ) -> Result<Self> {
        let threads = threads.max(1);
        Ok(match format {
            // Parallel gzip whose output depends only on the input and the level, never on the thread
            // count: a layer digest must not depend on the machine's core count.
            Compression::Gzip => Compressor::Gzip(
                super::pargzip::ParGzip::new(out, threads, level.unwrap_or(6).clamp(1, 9))
                    .context("starting gzip")?,
            ),
            Compression::Zstd => {
                let mut e =
                    zstd::stream::write::Encoder::new(out, level.unwrap_or(3).clamp(1, 19) as i32)
                        .context("starting zstd encoder")?;
                // Always multi-threaded mode (even with one worker): zstd's output is then the same for any
                // number of workers, but differs from the single-threaded mode.
                e.multithread(threads as u32)
                    .context("enabling multi-threaded zstd")?;
                Compressor::Zstd(e)
            }
            Compression::None => Compressor::None(out),
        })
    }

    /// Flush everything, write the trailer, flush the output and return it.
    pub fn finish(self) -> Result<W> {
        let mut w = match self {
            Compressor::Gzip(z) => z.finish().context("gzip compression failed")?,
            Compressor::Zstd(e) => e.finish().context("finishing zstd stream")?,
            Compressor::None(w) => w,
        };
        w.flush().context("flushing the compressed layer")?;
        Ok(w)
    }
}

impl<W: Write + Send + 'static> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(z) => z.write(buf),
            Compressor::Zstd(e) => e.write(buf),
            Compressor::None(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(z) => z.flush(),
            Compressor::Zstd(e) => e.flush(),
            Compressor::None(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn detects_and_round_trips_every_format() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for format in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let mut c = Compressor::with_level(format, Vec::new(), threads(), None).unwrap();
            c.write_all(&data).unwrap();
            let out = c.finish().unwrap();
            assert_eq!(Compression::detect(&out), format);
            let mut back = Vec::new();
            decompressor(&out[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{format:?}");
        }
        assert!("lz4".parse::<Compression>().is_err());
    }

    #[test]
    fn output_does_not_depend_on_the_thread_count() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i.wrapping_mul(7919) % 65521).to_le_bytes())
            .collect();
        for format in [Compression::Gzip, Compression::Zstd] {
            let outs: Vec<Vec<u8>> = [1, 2, 4]
                .iter()
                .map(|n| {
                    let mut c = Compressor::with_level(format, Vec::new(), *n, None).unwrap();
                    c.write_all(&data).unwrap();
                    c.finish().unwrap()
                })
                .collect();
            let eq: Vec<bool> = outs.windows(2).map(|w| w[0] == w[1]).collect();
            assert!(
                eq.iter().all(|e| *e),
                "{format:?} output changes with the thread count: {eq:?}"
            );
        }
    }
}
