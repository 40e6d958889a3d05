//! One OCI image layout on disk (`oci-layout`, `index.json`, `blobs/<algo>/<hex>`): atomic blob writes and
//! index updates under an exclusive `flock` on the layout directory, so concurrent writers never lose a tag.
//! Used by the `oci:` transport and by the local store.

use crate::fsutil::{Staged, sync_dir, write_atomic, write_new};
use crate::oci::document::{self, Desc, Index};
use crate::oci::verify::{DigestingReader, Hasher};
use crate::oci::{BlobStream, Descriptor, Digest};
use anyhow::{Context, Result, bail};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The annotation that names a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout rooted at a directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

/// An exclusive lock on a layout, released on drop.
pub struct LayoutLock {
    _fd: File,
}

impl Layout {
    /// Open a layout, creating the directory, `oci-layout`, `index.json` and `blobs/sha256` when missing.
    pub fn create(root: &Path) -> Result<Layout> {
        fs::create_dir_all(root.join("blobs/sha256"))
            .with_context(|| format!("creating the OCI layout at {}", root.display()))?;
        let l = Layout {
            root: root.to_path_buf(),
        };
        let marker = root.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !l.index_path().exists() {
            let _lock = l.lock()?;
            if !l.index_path().exists() {
                l.write_index(&Index::empty(None))?;
            }
        }
        Ok(l)
    }

    /// Open an existing layout (an error naming the directory when it is not one).
    pub fn open(root: &Path) -> Result<Layout> {
        if !root.join("index.json").is_file() {
            bail!(
                "{} is not an OCI image layout (no index.json)",
                root.display()
            );
        }
        Ok(Layout {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Path of a blob (it may not exist).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().as_ref())
            .join(d.digest())
    }

    pub fn has_blob(&self, d: &Digest, size: Option<u64>) -> bool {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => m.is_file() && size.is_none_or(|s| s == m.len()),
            Err(_) => false,
        }
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        fs::read(&p).with_context(|| format!("reading blob {d} from {}", self.root.display()))
    }

    /// Open a blob for streaming.
    pub async fn open_blob(&self, d: &Digest) -> Result<BlobStream> {
        let p = self.blob_path(d);
        let f = tokio::fs::File::open(&p)
            .await
            .with_context(|| format!("blob {d} is missing from {}", self.root.display()))?;
        Ok(Box::new(f))
    }

    /// Stream a blob into the layout. With `verify`, the stream is hashed here; without, the caller
    /// guarantees it is a `DigestingReader` (see the transport contract). The blob becomes visible only
    /// after a clean EOF, fsync and rename.
    pub async fn put_blob(
        &self,
        digest: &Digest,
        size: Option<u64>,
        data: BlobStream,
        verify: bool,
    ) -> Result<()> {
        if self.has_blob(digest, size) {
            return Ok(());
        }
        let mut data: BlobStream = if verify {
            Box::new(DigestingReader::new(data, digest, size)?)
        } else {
            data
        };
        let dir = self
            .blob_path(digest)
            .parent()
            .expect("blob path has a parent")
            .to_path_buf();
        let staged = write_temp(&dir, &mut data, |_| {})
            .await
            .with_context(|| format!("writing blob {digest} into {}", self.root.display()))?;
        staged
            .publish_new(&self.blob_path(digest))
            .with_context(|| format!("publishing blob {digest} in {}", self.root.display()))
    }

    /// Move a finished, fsynced temp file (on the same filesystem) into place as blob `digest`. The caller has
    /// computed the digest while writing it (a layer the build produced).
    pub fn adopt_blob(&self, digest: &Digest, file: tempfile::NamedTempFile) -> Result<()> {
        if self.has_blob(digest, None) {
            return Ok(());
        }
        let dest = self.blob_path(digest);
        let dir = dest.parent().expect("blob path has a parent").to_path_buf();
        fs::create_dir_all(&dir)?;
        file.persist(&dest)
            .with_context(|| format!("publishing blob {digest} in {}", self.root.display()))?;
        sync_dir(&dir);
        Ok(())
    }

    /// Write in-memory bytes as a blob; returns their sha256 digest.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        let mut h = Hasher::sha256();
        h.update(data);
        let d = h.finish();
        if !self.has_blob(&d, Some(data.len() as u64)) {
            write_new(&self.blob_path(&d), data)
                .with_context(|| format!("writing blob {d} into {}", self.root.display()))?;
        }
        Ok(d)
    }

    /// Take the exclusive lock that guards `index.json` (flock on the layout directory; blocks).
    pub fn lock(&self) -> Result<LayoutLock> {
        let fd = File::open(&self.root)
            .with_context(|| format!("opening {} to lock it", self.root.display()))?;
        rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", self.root.display()))?;
        Ok(LayoutLock { _fd: fd })
    }

    /// `index.json` as JSON with its entries unchecked (for `lade fsck`, which reports and repairs broken
    /// entries; everything else reads it typed).
    pub fn read_index_raw(&self) -> Result<serde_json::Value> {
        let p = self.index_path();
        let bytes = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid JSON", p.display()))?;
        if !v.is_object() {
            bail!("{}: index.json is not a JSON object", p.display());
        }
        if !v.get("manifests").is_none_or(serde_json::Value::is_array) {
            bail!("{}: `manifests` is not an array", p.display());
        }
        Ok(v)
    }

    /// The parsed `index.json` (unknown fields kept).
    pub fn read_index(&self) -> Result<Index> {
        let p = self.index_path();
        serde_json::from_value(self.read_index_raw()?).with_context(|| {
            format!(
                "{}: not a valid index (`lade fsck --repair` removes broken entries)",
                p.display()
            )
        })
    }

    fn write_index(&self, v: &Index) -> Result<()> {
        write_atomic(&self.index_path(), &document::to_vec(v)?)
    }

    /// The descriptors in `index.json`.
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        entries_of(&self.read_index()?, &self.index_path())
    }

    /// Read-modify-write `index.json` under the lock. `f` edits the list of manifest descriptors.
    pub fn update_index<T>(&self, f: impl FnOnce(&mut Vec<Desc>) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        self.update_index_locked(f)
    }

    /// [`Layout::update_index`] for a caller that already holds [`Layout::lock`] (flock is per open file:
    /// taking it twice in one process would deadlock).
    pub fn update_index_locked<T>(&self, f: impl FnOnce(&mut Vec<Desc>) -> Result<T>) -> Result<T> {
        let mut idx = self.read_index()?;
        let out = f(&mut idx.manifests)?;
        self.write_index(&idx)?;
        Ok(out)
    }

    /// [`Layout::update_index_locked`] on the entries as JSON, unchecked (for `lade fsck --repair`).
    pub fn update_index_raw_locked<T>(
        &self,
        f: impl FnOnce(&mut Vec<serde_json::Value>) -> Result<T>,
    ) -> Result<T> {
        let mut idx = self.read_index_raw()?;
        let obj = idx
            .as_object_mut()
            .context("index.json is not a JSON object")?;
        let mut list = match obj.remove("manifests") {
            Some(serde_json::Value::Array(a)) => a,
            _ => vec![],
        };
        let out = f(&mut list)?;
        obj.insert("manifests".into(), serde_json::Value::Array(list));
        obj.entry("schemaVersion").or_insert(2.into());
        write_atomic(&self.index_path(), &serde_json::to_vec(&idx)?)?;
        Ok(out)
    }

    /// Point `name` at `desc` (replacing whatever it named before).
    pub fn set_ref(&self, name: &str, desc: &Descriptor) -> Result<()> {
        let mut v = Desc::from_spec(desc)?;
        (v.annotations.get_or_insert_default()).insert(REF_NAME.into(), name.into());
        self.update_index(|list| {
            list.retain(|e| ref_name_of(e) != Some(name));
            list.push(v);
            Ok(())
        })
    }

    /// Add an untagged entry (a referrer, an unnamed image) unless one with that digest is there.
    pub fn add_untagged(&self, desc: &Descriptor) -> Result<()> {
        let v = Desc::from_spec(desc)?;
        let digest = desc.digest().to_string();
        self.update_index(|list| {
            if !list.iter().any(|e| e.digest == digest) {
                list.push(v);
            }
            Ok(())
        })
    }

    /// Remove the entry named `name`; returns the descriptor it pointed at.
    pub fn remove_ref(&self, name: &str) -> Result<Option<Descriptor>> {
        self.update_index(|list| {
            let mut removed = None;
            list.retain(|e| {
                if ref_name_of(e) == Some(name) {
                    removed = e.spec().ok();
                    false
                } else {
                    true
                }
            });
            Ok(removed)
        })
    }

    /// The descriptor named `name`.
    pub fn find_ref(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|d| ref_of(d) == Some(name)))
    }
}

fn ref_name_of(v: &Desc) -> Option<&str> {
    v.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
}

/// The `org.opencontainers.image.ref.name` of a descriptor.
pub fn ref_of(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

fn entries_of(idx: &Index, path: &Path) -> Result<Vec<Descriptor>> {
    (idx.manifests.iter())
        .enumerate()
        .map(|(i, e)| {
            e.spec().with_context(|| {
                format!(
                    "{}: manifests[{i}] is not a valid descriptor",
                    path.display()
                )
            })
        })
        .collect()
}

/// Stream `data` into a new unnamed file in `dir` (created if needed), passing each chunk to `seen`, with
/// early writeback, then fsync; the caller publishes the returned file under its name.
pub(crate) async fn write_temp(
    dir: &Path,
    data: &mut BlobStream,
    mut seen: impl FnMut(&[u8]),
) -> Result<Staged> {
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("creating {}", dir.display()))?;
    let staged = Staged::new_in(dir)?;
    let mut f = tokio::fs::File::from_std(staged.file().try_clone()?);
    let mut buf = vec![0u8; 1 << 20];
    let mut progress = crate::fsutil::writeback::Progress::default();
    loop {
        let n = data.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        seen(&buf[..n]);
        f.write_all(&buf[..n]).await?;
        if progress.wrote(n) {
            f.flush().await?;
            progress.start(&f);
        }
    }
    f.flush().await?;
    f.sync_all().await?;
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::verify::sha256_digest;

    #[tokio::test]
    async fn blob_writes_verify_and_refs_update() {
        let tmp = tempfile::tempdir().unwrap();
        let l = Layout::create(tmp.path()).unwrap();
        let d = sha256_digest(b"abc");
        let bad: BlobStream = Box::new(&b"abd"[..]);
        assert!(l.put_blob(&d, Some(3), bad, true).await.is_err());
        assert!(
            !l.has_blob(&d, None),
            "a mismatching blob must not become visible"
        );
        let leftovers: Vec<_> = fs::read_dir(tmp.path().join("blobs/sha256"))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty(), "no temp file left behind");
        l.put_blob(&d, Some(3), Box::new(&b"abc"[..]), true)
            .await
            .unwrap();
        assert_eq!(l.read_blob(&d).unwrap(), b"abc");
        let desc = oci_spec::image::DescriptorBuilder::default()
            .media_type("application/vnd.oci.image.manifest.v1+json")
            .digest(d.clone())
            .size(3u64)
            .build()
            .unwrap();
        l.set_ref("a:1", &desc).unwrap();
        l.set_ref("a:1", &desc).unwrap();
        l.set_ref("a:2", &desc).unwrap();
        assert_eq!(l.entries().unwrap().len(), 2);
        assert!(l.find_ref("a:1").unwrap().is_some());
        assert!(l.remove_ref("a:1").unwrap().is_some());
        assert!(l.find_ref("a:1").unwrap().is_none());
    }
}
