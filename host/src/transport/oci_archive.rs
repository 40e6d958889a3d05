//! `oci-archive:FILE[:REF]`: an OCI image layout in a tar file. Reading unpacks it (safely) into a
//! temporary directory; writing builds a layout in a temporary directory and renames the finished tar
//! into place at `commit`.

use super::oci::{OciDestination, OciSource};
use super::{BlobStream, Descriptor, Digest, ImageDestination, ImageSource};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A temporary directory beside `file` (same filesystem, so the final rename is atomic).
pub(crate) fn temp_dir_beside(file: &Path) -> Result<tempfile::TempDir> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(".lade-archive-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))
}

/// Unpack a tar archive into `dir`. Entries that would land outside `dir` (absolute paths, `..`) and
/// links are refused by the tar crate's `unpack_in`; only files and directories are accepted.
pub(crate) fn unpack_tar(file: &Path, dir: &Path) -> Result<()> {
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut a = tar::Archive::new(std::io::BufReader::new(f));
    for e in a
        .entries()
        .with_context(|| format!("reading {} as a tar archive", file.display()))?
    {
        let mut e = e.with_context(|| format!("reading {}", file.display()))?;
        let kind = e.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        let path = e.path()?.into_owned();
        if !e
            .unpack_in(dir)
            .with_context(|| format!("unpacking {} from {}", path.display(), file.display()))?
        {
            bail!(
                "{}: entry {} would be written outside the archive directory",
                file.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// Write the files under `dir` (relative names, sorted) into a tar at `file`, atomically.
pub(crate) fn write_tar_of_dir(dir: &Path, file: &Path) -> Result<()> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".lade-tar-")
        .tempfile_in(&parent)?;
    {
        let mut b = tar::Builder::new(BufWriter::new(tmp.as_file()));
        b.mode(tar::HeaderMode::Deterministic);
        let mut files = vec![];
        collect(dir, Path::new(""), &mut files)?;
        files.sort();
        for rel in files {
            let full = dir.join(&rel);
            if full.is_dir() {
                b.append_dir(&rel, &full)?;
            } else {
                b.append_path_with_name(&full, &rel)
                    .with_context(|| format!("adding {} to {}", rel.display(), file.display()))?;
            }
        }
        b.into_inner()?.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(file)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(root.join(rel))? {
        let e = e?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        let r = rel.join(&name);
        let ft = e.file_type()?;
        if ft.is_dir() {
            out.push(r.clone());
            collect(root, &r, out)?;
        } else if ft.is_file() {
            out.push(r);
        }
    }
    Ok(())
}

/// Read side: the unpacked layout and the temporary directory holding it.
pub struct OciArchiveSource {
    inner: OciSource,
    _dir: tempfile::TempDir,
    name: String,
}

impl OciArchiveSource {
    pub fn open(file: &Path, reference: Option<&str>) -> Result<OciArchiveSource> {
        let dir = tempfile::Builder::new()
            .prefix("lade-oci-archive-")
            .tempdir()?;
        unpack_tar(file, dir.path())?;
        let inner = OciSource::open(dir.path(), reference)
            .with_context(|| format!("oci-archive:{}", file.display()))?;
        let name = match reference {
            Some(r) => format!("oci-archive:{}:{r}", file.display()),
            None => format!("oci-archive:{}", file.display()),
        };
        Ok(OciArchiveSource {
            inner,
            _dir: dir,
            name,
        })
    }
}

#[async_trait]
impl ImageSource for OciArchiveSource {
    fn name(&self) -> String {
        self.name.clone()
    }
    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
        self.inner.manifest(instance).await
    }
    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        self.inner.blob(desc).await
    }
    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        self.inner.referrers(subject).await
    }
    async fn tagged_manifest(&self, tag: &str) -> Result<Option<(Vec<u8>, String)>> {
        self.inner.tagged_manifest(tag).await
    }
}

/// Write side: a layout in a temporary directory, tarred into place at `commit`.
pub struct OciArchiveDestination {
    inner: OciDestination,
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl OciArchiveDestination {
    pub fn create(file: &Path, reference: Option<&str>) -> Result<OciArchiveDestination> {
        let dir = temp_dir_beside(file)?;
        let inner = OciDestination::open(dir.path(), reference)?;
        Ok(OciArchiveDestination {
            inner,
            dir,
            file: file.to_path_buf(),
        })
    }
}

#[async_trait]
impl ImageDestination for OciArchiveDestination {
    fn name(&self) -> String {
        format!("oci-archive:{}", self.file.display())
    }
    fn supported_manifest_types(&self) -> Vec<&'static str> {
        self.inner.supported_manifest_types()
    }
    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        self.inner.has_blob(desc).await
    }
    async fn put_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()> {
        self.inner.put_blob(desc, data).await
    }
    async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<()> {
        self.inner.put_manifest(bytes, media_type, instance).await
    }
    async fn put_tagged_manifest(&self, bytes: &[u8], media_type: &str, tag: &str) -> Result<bool> {
        self.inner.put_tagged_manifest(bytes, media_type, tag).await
    }
    async fn commit(&self) -> Result<()> {
        self.inner.commit().await?;
        let (dir, file) = (self.dir.path().to_path_buf(), self.file.clone());
        tokio::task::spawn_blocking(move || write_tar_of_dir(&dir, &file)).await?
    }
}
