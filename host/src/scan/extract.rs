//! The scan cache: what a scanner's file selection takes from one layer, kept uncompressed, so that a later
//! scan of any image with that layer streams a few files instead of inflating and walking the whole layer
//! (trivy keeps per-layer results for the same reason). One file per (layer blob digest, selection), under
//! `<cache dir>/scan/extracts/`. An extract is written while the layer is streamed the first time and
//! published only after the whole layer was read and its blob digest checked, so the key always names
//! the bytes it came from; a file that is damaged anyway (a full disk, an edit) is a miss, never a result.
//!
//! Format (lade's own): the magic line, then per selected entry a u32 LE length and that much JSON
//! ([`Record`]), a u64 LE content length and the content; a final u32 of `u32::MAX` ends the file.

use crate::fsutil::writeback::WritebackFile;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"lade-scan-extract 1\n";
const END: u32 = u32::MAX;
/// Largest record header read back (a path and a link target).
const MAX_RECORD: u32 = 1 << 20;

/// A selected entry of a layer, as the tar gave it (its layer and visibility come from the image).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Record {
    /// Cleaned: relative, no leading `/`.
    pub path: String,
    pub kind: u8,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub link_target: Option<String>,
}

/// Where the extracts of one selection live.
pub struct Cache {
    dir: PathBuf,
    selection: String,
}

impl Cache {
    /// The cache for selection `key` (see [`super::select::Selection::key`]); None when the cache
    /// directory cannot be made (a read-only home): scans then simply read layers.
    pub fn open(selection: &str) -> Option<Cache> {
        let dir = crate::paths::cache_dir().join("scan/extracts");
        std::fs::create_dir_all(&dir).ok()?;
        Some(Cache {
            dir,
            selection: selection.to_string(),
        })
    }

    fn path(&self, blob: &str) -> PathBuf {
        let key =
            crate::oci::verify::sha256_digest(format!("{blob}\n{}", self.selection).as_bytes());
        self.dir.join(key.digest())
    }

    /// The extract of layer blob `blob`, if one was published and is whole.
    pub fn hit(&self, blob: &str) -> Option<Reader> {
        Reader::open(&self.path(blob)).ok()
    }

    /// A writer for the extract of `blob`, published later with [`Written::publish`].
    pub fn writer(&self, blob: &str) -> Option<Writer> {
        let file = tempfile::Builder::new()
            .prefix(".extract-")
            .tempfile_in(&self.dir)
            .ok()?;
        // Written back as it grows, so the fsync before publishing waits for the tail alone.
        let out = BufWriter::with_capacity(
            1 << 20,
            WritebackFile::new(file.as_file().try_clone().ok()?),
        );
        let mut w = Writer {
            file,
            out,
            dest: self.path(blob),
            remaining: 0,
        };
        w.out.write_all(MAGIC).ok()?;
        Some(w)
    }
}

/// An extract being written. Every call returns an error once the disk refuses; the caller then drops it.
pub struct Writer {
    file: tempfile::NamedTempFile,
    out: BufWriter<WritebackFile>,
    dest: PathBuf,
    /// Content bytes the current record still owes.
    remaining: u64,
}

impl Writer {
    pub fn record(&mut self, r: &Record) -> Result<()> {
        if self.remaining != 0 {
            bail!("the previous entry's content is incomplete");
        }
        let meta = serde_json::to_vec(r)?;
        self.out.write_all(&(meta.len() as u32).to_le_bytes())?;
        self.out.write_all(&meta)?;
        self.out.write_all(&r.size.to_le_bytes())?;
        self.remaining = r.size;
        Ok(())
    }

    pub fn content(&mut self, chunk: &[u8]) -> Result<()> {
        if chunk.len() as u64 > self.remaining {
            bail!("more content than the entry's size");
        }
        self.remaining -= chunk.len() as u64;
        self.out.write_all(chunk)?;
        Ok(())
    }

    /// The whole layer was read: end the file (not yet visible).
    pub fn finish(mut self) -> Result<Written> {
        if self.remaining != 0 {
            bail!("the last entry's content is incomplete");
        }
        self.out.write_all(&END.to_le_bytes())?;
        self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(Written {
            file: self.file,
            dest: self.dest,
        })
    }
}

/// A complete extract, published once its layer's blob is known to be sound.
pub struct Written {
    file: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Written {
    /// Make it visible under its key (fsynced first: a cache must not turn into zeros after a crash).
    pub fn publish(self) -> Result<()> {
        self.file.as_file().sync_data()?;
        self.file.persist(&self.dest)?;
        Ok(())
    }
}

/// Reading an extract back, entry by entry.
pub struct Reader {
    input: BufReader<File>,
    path: PathBuf,
    /// Content bytes of the current record not read yet.
    remaining: u64,
}

impl Reader {
    fn open(path: &Path) -> Result<Reader> {
        use std::io::{Seek, SeekFrom};
        let mut file = File::open(path)?;
        // A file cut short (a crash before the fsync reached the disk) lacks the end marker: a miss.
        let mut end = [0u8; 4];
        file.seek(SeekFrom::End(-4))?;
        file.read_exact(&mut end)?;
        if u32::from_le_bytes(end) != END {
            bail!("no end marker");
        }
        file.seek(SeekFrom::Start(0))?;
        let mut input = BufReader::with_capacity(1 << 20, file);
        let mut magic = vec![0; MAGIC.len()];
        input.read_exact(&mut magic)?;
        if magic != MAGIC {
            bail!("not a scan extract");
        }
        Ok(Reader {
            input,
            path: path.to_path_buf(),
            remaining: 0,
        })
    }

    /// The next record (after skipping what is left of the current one's content), None at the end.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        self.next_inner().with_context(|| {
            format!(
                "the scan cache file {} is damaged: remove it",
                self.path.display()
            )
        })
    }

    fn next_inner(&mut self) -> Result<Option<Record>> {
        std::io::copy(
            &mut (&mut self.input).take(self.remaining),
            &mut std::io::sink(),
        )?;
        self.remaining = 0;
        let mut n = [0u8; 4];
        self.input.read_exact(&mut n)?;
        let n = u32::from_le_bytes(n);
        if n == END {
            return Ok(None);
        }
        if n > MAX_RECORD {
            bail!("a record claims {n} bytes");
        }
        let mut meta = vec![0; n as usize];
        self.input.read_exact(&mut meta)?;
        let r: Record = serde_json::from_slice(&meta)?;
        let mut size = [0u8; 8];
        self.input.read_exact(&mut size)?;
        if u64::from_le_bytes(size) != r.size {
            bail!("{}: content length differs from the entry's size", r.path);
        }
        self.remaining = r.size;
        Ok(Some(r))
    }

    /// The current record's content.
    pub fn content(&mut self) -> impl Read + '_ {
        let n = std::mem::take(&mut self.remaining);
        (&mut self.input).take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, size: u64) -> Record {
        Record {
            path: path.into(),
            kind: 0,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            link_target: None,
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache {
            dir: dir.path().to_path_buf(),
            selection: "sel".into(),
        };
        assert!(cache.hit("sha256:a").is_none());
        let mut w = cache.writer("sha256:a").unwrap();
        w.record(&rec("etc/a", 3)).unwrap();
        w.content(b"ab").unwrap();
        assert!(w.content(b"cd").is_err(), "more than the size is refused");
        w.content(b"c").unwrap();
        w.record(&rec("etc/b", 2)).unwrap();
        w.content(b"xy").unwrap();
        w.finish().unwrap().publish().unwrap();
        assert!(cache.hit("sha256:other").is_none());
        let mut r = cache.hit("sha256:a").unwrap();
        assert_eq!(r.next_record().unwrap(), Some(rec("etc/a", 3)));
        // The first entry's content is skipped unread.
        assert_eq!(r.next_record().unwrap(), Some(rec("etc/b", 2)));
        let mut body = vec![];
        r.content().read_to_end(&mut body).unwrap();
        assert_eq!(body, b"xy");
        assert_eq!(r.next_record().unwrap(), None);

        // Cut short: a miss. Damaged inside: the reader says which file, instead of inventing an end.
        let path = cache.path("sha256:a");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 6]).unwrap();
        assert!(cache.hit("sha256:a").is_none());
        let mut damaged = bytes.clone();
        let at = MAGIC.len() + 4 + 2;
        damaged[at] = b'!';
        std::fs::write(&path, &damaged).unwrap();
        let err = cache.hit("sha256:a").unwrap().next_record().unwrap_err();
        assert!(format!("{err:#}").contains("damaged"), "{err:#}");
        // An unfinished writer leaves nothing visible under the key.
        let mut w = cache.writer("sha256:b").unwrap();
        w.record(&rec("etc/c", 5)).unwrap();
        assert!(w.finish().is_err());
        assert!(cache.hit("sha256:b").is_none());
    }
}
