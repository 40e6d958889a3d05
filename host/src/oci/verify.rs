//! Digest verification while streaming: a reader that hashes what passes through it and fails at EOF on a
//! short read, an overlong read or a digest mismatch. Every blob the copy engine moves goes through one.

use anyhow::{Result, bail};
use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256, Sha512};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// A running hash for one of the algorithms OCI allows.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for `digest`'s algorithm; an algorithm other than sha256/sha512 is an error.
    pub fn for_digest(digest: &Digest) -> Result<Hasher> {
        Ok(match digest.algorithm() {
            DigestAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
            other => bail!(
                "digest {digest}: unsupported algorithm `{other}` (lade verifies sha256 and sha512)"
            ),
        })
    }

    pub fn sha256() -> Hasher {
        Hasher::Sha256(Sha256::new())
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The finished digest as `algo:hex`.
    pub fn finish(self) -> Digest {
        let s = match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        };
        s.parse().expect("a freshly computed digest is well-formed")
    }
}

/// A file hashed with `hasher`: the digest and the number of bytes read.
pub fn hash_file(path: &std::path::Path, mut hasher: Hasher) -> Result<(Digest, u64)> {
    use anyhow::Context as _;
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok((hasher.finish(), size));
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
}

/// sha256 of some bytes, as a `Digest`.
pub fn sha256_digest(data: &[u8]) -> Digest {
    let mut h = Hasher::sha256();
    h.update(data);
    h.finish()
}

/// Check in-memory bytes (a manifest, a config) against a digest and, when known, a size.
pub fn check_bytes(data: &[u8], digest: &Digest, size: Option<u64>) -> Result<()> {
    if let Some(size) = size
        && size != data.len() as u64
    {
        bail!(
            "content for {digest} is {} bytes, expected {size}",
            data.len()
        );
    }
    let mut h = Hasher::for_digest(digest)?;
    h.update(data);
    let got = h.finish();
    if &got != digest {
        bail!("content digest mismatch: expected {digest}, got {got}");
    }
    Ok(())
}

/// An `AsyncRead` that verifies its contents against an expected digest (and size, when `Some`).
/// Errors are `io::ErrorKind::InvalidData` and name the digest.
pub struct DigestingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    size: Option<u64>,
    read: u64,
    done: bool,
}

impl<R> DigestingReader<R> {
    pub fn new(inner: R, expected: &Digest, size: Option<u64>) -> Result<Self> {
        Ok(DigestingReader {
            inner,
            hasher: Some(Hasher::for_digest(expected)?),
            expected: expected.clone(),
            size,
            read: 0,
            done: false,
        })
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<R: AsyncRead + Unpin> AsyncRead for DigestingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if new.is_empty() {
                    this.done = true;
                    if let Some(size) = this.size
                        && this.read != size
                    {
                        return Poll::Ready(Err(invalid(format!(
                            "blob {} ended after {} of {size} bytes (truncated)",
                            this.expected, this.read
                        ))));
                    }
                    let got = this
                        .hasher
                        .take()
                        .expect("hasher present until EOF")
                        .finish();
                    if got != this.expected {
                        return Poll::Ready(Err(invalid(format!(
                            "blob digest mismatch: expected {}, got {got}",
                            this.expected
                        ))));
                    }
                    return Poll::Ready(Ok(()));
                }
                this.read += new.len() as u64;
                if let Some(size) = this.size
                    && this.read > size
                {
                    this.done = true;
                    // An error hands the caller no bytes: take back what this read put in.
                    buf.set_filled(before);
                    return Poll::Ready(Err(invalid(format!(
                        "blob {} is longer than its declared {size} bytes",
                        this.expected
                    ))));
                }
                if let Some(h) = this.hasher.as_mut() {
                    h.update(new);
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn read_all(data: &'static [u8], d: &Digest, size: Option<u64>) -> io::Result<Vec<u8>> {
        let mut r = DigestingReader::new(data, d, size).unwrap();
        let mut out = vec![];
        r.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn verifies_digest_and_size() {
        let d = sha256_digest(b"hello");
        assert_eq!(read_all(b"hello", &d, Some(5)).await.unwrap(), b"hello");
        assert!(
            read_all(b"hellO", &d, Some(5))
                .await
                .unwrap_err()
                .to_string()
                .contains("mismatch")
        );
        assert!(
            read_all(b"hell", &d, Some(5))
                .await
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        assert!(
            read_all(b"hello!", &d, Some(5))
                .await
                .unwrap_err()
                .to_string()
                .contains("longer")
        );
        assert!(read_all(b"hello", &d, None).await.is_ok());
        assert!(check_bytes(b"hello", &d, Some(5)).is_ok());
        assert!(check_bytes(b"hello", &d, Some(4)).is_err());
    }
}
