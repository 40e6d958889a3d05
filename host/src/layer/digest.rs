//! sha256 while streaming: readers and writers that hash what passes through them.

use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

/// A reader that hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// Read the rest of the stream (so trailing padding is hashed too), then return `sha256:<hex>` and the size.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes what is written before passing it on.
pub struct HashingWriter<W> {
    pub inner: W,
    state: Arc<Mutex<(Sha256, u64)>>,
}

/// A handle to read the digest of a [`HashingWriter`] after the writer has been moved away.
#[derive(Clone)]
pub struct HashHandle(Arc<Mutex<(Sha256, u64)>>);

impl HashHandle {
    pub fn digest(&self) -> (String, u64) {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (
            format!("sha256:{}", hex::encode(g.0.clone().finalize())),
            g.1,
        )
    }
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> (Self, HashHandle) {
        let state = Arc::new(Mutex::new((Sha256::new(), 0)));
        (
            HashingWriter {
                inner,
                state: state.clone(),
            },
            HashHandle(state),
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.0.update(&buf[..n]);
        g.1 += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `sha256:<hex>` of a byte slice.
pub fn sha256_hex(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}
