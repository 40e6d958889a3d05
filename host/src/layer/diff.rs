//! Producing a layer: walk a source tree in sorted order, write a deterministic tar, compress it and hash both
//! streams in one pass into a temp file.

use super::compress::Compressor;
use super::digest::{HashHandle, HashingWriter};
use super::tarwrite::{EntryMeta, Kind, TarWriter};
use super::{OPAQUE_MARKER, OVERLAY_OPAQUE_USER_XATTR, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::oci::{BlobProgress, Compression};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

/// Where the changes come from.
#[derive(Clone, Copy, Debug)]
pub enum DiffSource<'a> {
    /// An overlayfs upper directory: char 0/0 devices become `.wh.` entries, opaque dirs get `.wh..wh..opq`.
    OverlayUpper(&'a Path),
    /// Every file under a plain directory is added (COPY layers).
    Tree(&'a Path),
    /// The changes that turn `lower` into `upper`, two plain trees (the copy-mode fallback). Entries are
    /// compared by type, mode, owner, size, mtime, link target and xattrs.
    Compare { lower: &'a Path, upper: &'a Path },
}

/// How to write the layer.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    pub compression: Compression,
    /// Compression level (None: the format's default, gzip 6, zstd 3).
    pub level: Option<u32>,
    /// Clamp every timestamp to this (seconds since the epoch): `--timestamp` / SOURCE_DATE_EPOCH.
    pub epoch: Option<i64>,
    /// Who also gets the compressed bytes as they are written.
    pub tee: Tee,
}

/// Followers of a layer's compressed blob as it is written (registry uploads running beside the build):
/// each is told the file, how far it is written after every write, then [`BlobProgress::End`]. The first
/// [`write_diff`] given these options takes them; a failed write drops them without `End`. Nothing waits
/// for a follower: a slow one reads the file later.
#[derive(Clone, Debug, Default)]
pub struct Tee(Arc<Mutex<Vec<UnboundedSender<BlobProgress>>>>);

impl Tee {
    pub fn new(to: Vec<UnboundedSender<BlobProgress>>) -> Tee {
        Tee(Arc::new(Mutex::new(to)))
    }

    fn take(&self) -> Vec<UnboundedSender<BlobProgress>> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

/// A writer that tells the followers how far the file is written.
struct TeeWriter<W> {
    inner: W,
    to: Vec<UnboundedSender<BlobProgress>>,
    written: u64,
}

impl<W: Write> Write for TeeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        // A follower that went away (its upload failed) is dropped; the build goes on.
        self.to
            .retain(|s| s.send(BlobProgress::Written(self.written)).is_ok());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A finished layer blob in a temp file, with both digests.
#[derive(Debug)]
pub struct LayerBlob {
    /// The compressed blob; deleted when dropped unless persisted (`file.persist(dest)`).
    pub file: tempfile::NamedTempFile,
    /// sha256 of the uncompressed tar, `sha256:<hex>` (the config's rootfs.diff_ids entry).
    pub diff_id: String,
    /// sha256 of the blob as stored, `sha256:<hex>`.
    pub digest: String,
    /// Size of the blob as stored.
    pub size: u64,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    pub compression: Compression,
}

impl LayerBlob {
    pub fn path(&self) -> &Path {
        self.file.path()
    }
    /// The OCI media type of the blob.
    pub fn media_type(&self) -> &'static str {
        self.compression.oci_media_type()
    }
}

/// Write the layer described by `source` into a new temp file inside `tmp_dir` (same filesystem as the store,
/// so it can be renamed into place). The file is fsynced.
pub fn write_diff(source: DiffSource<'_>, tmp_dir: &Path, opts: &DiffOptions) -> Result<LayerBlob> {
    let file = tempfile::Builder::new()
        .prefix(".layer-")
        .tempfile_in(tmp_dir)
        .with_context(|| format!("creating a temp file for a layer in {}", tmp_dir.display()))?;
    let out = file
        .as_file()
        .try_clone()
        .context("duplicating the layer file handle")?;
    let mut to = opts.tee.take();
    if !to.is_empty() {
        let follow = Arc::new(
            file.as_file()
                .try_clone()
                .context("duplicating the layer file handle")?,
        );
        to.retain(|s| s.send(BlobProgress::Started(follow.clone())).is_ok());
    }
    let (compressed, blob_hash) = HashingWriter::new(BufWriter::with_capacity(
        1 << 20,
        TeeWriter {
            inner: crate::fsutil::writeback::WritebackFile::new(out),
            to: to.clone(),
            written: 0,
        },
    ));
    let compressor = Compressor::with_level(
        opts.compression,
        compressed,
        super::compress::threads(),
        opts.level,
    )?;
    let (uncompressed, tar_hash): (HashingWriter<Compressor<_>>, HashHandle) =
        HashingWriter::new(compressor);
    let hashing = write_tar(source, uncompressed, opts.epoch)?;
    hashing.inner.finish()?;
    let (diff_id, uncompressed_size) = tar_hash.digest();
    let (digest, size) = blob_hash.digest();
    file.as_file()
        .sync_all()
        .context("syncing the layer file")?;
    if let Ok(d) = digest.parse::<crate::oci::Digest>() {
        for s in to {
            let _ = s.send(BlobProgress::End(size, d.clone()));
        }
    }
    Ok(LayerBlob {
        file,
        diff_id,
        digest,
        size,
        uncompressed_size,
        compression: opts.compression,
    })
}

/// Write the uncompressed tar of `source` into `out` and return it.
pub fn write_tar<W: Write>(source: DiffSource<'_>, out: W, epoch: Option<i64>) -> Result<W> {
    let mut w = Walker {
        tar: TarWriter::new(out, epoch),
        links: HashMap::new(),
        pending: Vec::new(),
    };
    match source {
        DiffSource::OverlayUpper(dir) => w.tree(dir, Path::new(""), true),
        DiffSource::Tree(dir) => w.tree(dir, Path::new(""), false),
        DiffSource::Compare { lower, upper } => w.compare(lower, upper, Path::new("")),
    }
    .with_context(|| format!("writing a layer from {source:?}"))?;
    w.tar.finish()
}

struct Walker<W: Write> {
    tar: TarWriter<W>,
    /// (dev, ino) of files with several links → the first path written.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Compare mode: unchanged parent directories written only when something below them changed.
    pending: Vec<(PathBuf, PathBuf)>,
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn is_overlay_xattr(k: &[u8]) -> bool {
    k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay.")
}

/// All xattrs of `path` (not followed), sorted; overlay's own ones left out.
pub(crate) fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut list = vec![0u8; 64 * 1024];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::OPNOTSUPP) | Err(rustix::io::Errno::PERM) => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing xattrs of {}", path.display())),
    };
    let mut out = Vec::new();
    for k in list[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        if is_overlay_xattr(k) {
            continue;
        }
        let mut val = vec![0u8; 64 * 1024];
        match rustix::fs::lgetxattr(path, OsStr::from_bytes(k), &mut val[..]) {
            Ok(len) => out.push((k.to_vec(), val[..len].to_vec())),
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "reading xattr {} of {}",
                        String::from_utf8_lossy(k),
                        path.display()
                    )
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

fn overlay_opaque(path: &Path) -> bool {
    let mut v = [0u8; 4];
    [OVERLAY_OPAQUE_XATTR, OVERLAY_OPAQUE_USER_XATTR]
        .iter()
        .any(|k| matches!(rustix::fs::lgetxattr(path, *k, &mut v[..]), Ok(1) if v[0] == b'y'))
}

fn entry_meta(md: &Metadata, xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> EntryMeta {
    EntryMeta {
        mode: md.mode() & 0o7777,
        uid: md.uid() as u64,
        gid: md.gid() as u64,
        mtime: md.mtime(),
        xattrs,
    }
}

impl<W: Write> Walker<W> {
    fn flush_pending(&mut self) -> Result<()> {
        for (full, rel) in std::mem::take(&mut self.pending) {
            let md = std::fs::symlink_metadata(&full)
                .with_context(|| format!("reading {}", full.display()))?;
            self.tar.append(
                rel.as_os_str().as_bytes(),
                Kind::Dir,
                &entry_meta(&md, read_xattrs(&full)?),
            )?;
        }
        Ok(())
    }

    /// Write one entry (not recursing).
    fn one(&mut self, full: &Path, rel: &Path, md: &Metadata, overlay: bool) -> Result<()> {
        self.flush_pending()?;
        let relb = rel.as_os_str().as_bytes();
        let ft = md.file_type();
        if overlay && ft.is_char_device() && md.rdev() == 0 {
            let wh = whiteout_path(rel, WHITEOUT_PREFIX.as_bytes());
            let meta = EntryMeta {
                mode: 0,
                uid: 0,
                gid: 0,
                mtime: md.mtime(),
                xattrs: Vec::new(),
            };
            return self.tar.append(
                &wh,
                Kind::File {
                    size: 0,
                    data: &mut std::io::empty(),
                },
                &meta,
            );
        }
        let meta = entry_meta(md, read_xattrs(full)?);
        if ft.is_dir() {
            self.tar.append(relb, Kind::Dir, &meta)?;
            if overlay && overlay_opaque(full) {
                let mut p = relb.to_vec();
                p.push(b'/');
                p.extend_from_slice(OPAQUE_MARKER.as_bytes());
                let m = EntryMeta {
                    mode: 0,
                    uid: 0,
                    gid: 0,
                    mtime: md.mtime(),
                    xattrs: Vec::new(),
                };
                self.tar.append(
                    &p,
                    Kind::File {
                        size: 0,
                        data: &mut std::io::empty(),
                    },
                    &m,
                )?;
            }
        } else if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                    let first = first.clone();
                    return self.tar.append(relb, Kind::Hardlink(&first), &meta);
                }
                self.links.insert((md.dev(), md.ino()), relb.to_vec());
            }
            let mut f =
                std::fs::File::open(full).with_context(|| format!("opening {}", full.display()))?;
            self.tar.append(
                relb,
                Kind::File {
                    size: md.len(),
                    data: &mut f,
                },
                &meta,
            )?;
        } else if ft.is_symlink() {
            let t = std::fs::read_link(full)
                .with_context(|| format!("reading link {}", full.display()))?;
            self.tar
                .append(relb, Kind::Symlink(t.as_os_str().as_bytes()), &meta)?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let (ma, mi) = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
            let k = if ft.is_char_device() {
                Kind::Char(ma, mi)
            } else {
                Kind::Block(ma, mi)
            };
            self.tar.append(relb, k, &meta)?;
        } else if ft.is_fifo() {
            self.tar.append(relb, Kind::Fifo, &meta)?;
        } else {
            tracing::debug!("skipping socket {}", full.display());
        }
        Ok(())
    }

    /// Every entry under `dir` (recursively), `rel` being its path inside the layer.
    fn tree(&mut self, dir: &Path, rel: &Path, overlay: bool) -> Result<()> {
        for name in sorted_names(dir)? {
            let full = dir.join(&name);
            let r = rel.join(&name);
            let md = std::fs::symlink_metadata(&full)
                .with_context(|| format!("reading {}", full.display()))?;
            self.one(&full, &r, &md, overlay)?;
            if md.is_dir() {
                self.tree(&full, &r, overlay)?;
            }
        }
        Ok(())
    }

    fn compare(&mut self, lower: &Path, upper: &Path, rel: &Path) -> Result<()> {
        let up = sorted_names(upper)?;
        let low = sorted_names(lower)?;
        let mut all: Vec<&OsString> = up.iter().chain(low.iter()).collect();
        all.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        all.dedup();
        for name in all {
            let (u, l) = (upper.join(name), lower.join(name));
            let r = rel.join(name);
            let umd = std::fs::symlink_metadata(&u).ok();
            let lmd = std::fs::symlink_metadata(&l).ok();
            match (umd, lmd) {
                (Some(umd), None) => {
                    self.one(&u, &r, &umd, false)?;
                    if umd.is_dir() {
                        self.tree(&u, &r, false)?;
                    }
                }
                (None, Some(lmd)) => {
                    self.flush_pending()?;
                    let pmd = std::fs::symlink_metadata(upper)?;
                    let wh = whiteout_path(&r, WHITEOUT_PREFIX.as_bytes());
                    let _ = lmd;
                    let meta = EntryMeta {
                        mode: 0,
                        uid: 0,
                        gid: 0,
                        mtime: pmd.mtime(),
                        xattrs: Vec::new(),
                    };
                    self.tar.append(
                        &wh,
                        Kind::File {
                            size: 0,
                            data: &mut std::io::empty(),
                        },
                        &meta,
                    )?;
                }
                (Some(umd), Some(lmd)) => {
                    let same = same_entry(&u, &umd, &l, &lmd)?;
                    if umd.is_dir() && lmd.is_dir() {
                        if same {
                            self.pending.push((u.clone(), r.clone()));
                        } else {
                            self.one(&u, &r, &umd, false)?;
                        }
                        self.compare(&l, &u, &r)?;
                        if same && self.pending.last().is_some_and(|(_, p)| p == &r) {
                            self.pending.pop();
                        }
                    } else if !same {
                        self.one(&u, &r, &umd, false)?;
                        if umd.is_dir() {
                            self.tree(&u, &r, false)?;
                        }
                    }
                }
                (None, None) => {}
            }
        }
        Ok(())
    }
}

fn whiteout_path(rel: &Path, prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(p) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        out.extend_from_slice(p.as_os_str().as_bytes());
        out.push(b'/');
    }
    out.extend_from_slice(prefix);
    out.extend_from_slice(rel.file_name().unwrap_or_default().as_bytes());
    out
}

fn same_entry(u: &Path, umd: &Metadata, l: &Path, lmd: &Metadata) -> Result<bool> {
    let uf = umd.file_type();
    if umd.mode() != lmd.mode() || umd.uid() != lmd.uid() || umd.gid() != lmd.gid() {
        return Ok(false);
    }
    if !uf.is_dir()
        && (umd.mtime() != lmd.mtime()
            || umd.mtime_nsec() != lmd.mtime_nsec()
            || umd.len() != lmd.len())
    {
        return Ok(false);
    }
    if (uf.is_char_device() || uf.is_block_device()) && umd.rdev() != lmd.rdev() {
        return Ok(false);
    }
    if uf.is_symlink() && std::fs::read_link(u)? != std::fs::read_link(l)? {
        return Ok(false);
    }
    Ok(read_xattrs(u)? == read_xattrs(l)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::UnboundedReceiver;

    /// What a tee's follower can read: the file's bytes up to the last size it was told, and `End`'s size
    /// and digest (None: closed without it).
    fn follow(rx: &mut UnboundedReceiver<BlobProgress>) -> (Vec<u8>, Option<(u64, String)>) {
        use std::os::unix::fs::FileExt;
        let (mut file, mut written) = (None, 0);
        while let Some(c) = rx.blocking_recv() {
            match c {
                BlobProgress::Started(f) => file = Some(f),
                BlobProgress::Written(n) => {
                    assert!(n >= written, "sizes only grow");
                    written = n;
                }
                BlobProgress::End(n, d) => {
                    let mut buf = vec![0; n as usize];
                    file.expect("Started comes first")
                        .read_exact_at(&mut buf, 0)
                        .unwrap();
                    return (buf, Some((n, d.to_string())));
                }
            }
        }
        (Vec::new(), None)
    }

    #[test]
    fn a_tee_gets_the_blob_as_written_then_its_digest() {
        let src = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(src.path().join(format!("f{i}")), vec![i as u8; 100_000]).unwrap();
        }
        let tmp = tempfile::tempdir().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let opts = DiffOptions {
            tee: Tee::new(vec![tx]),
            ..Default::default()
        };
        let blob = write_diff(DiffSource::Tree(src.path()), tmp.path(), &opts).unwrap();
        let (bytes, end) = follow(&mut rx);
        assert_eq!(bytes, std::fs::read(blob.path()).unwrap());
        assert_eq!(end, Some((blob.size, blob.digest.clone())));
        // The options' tee was taken: a second layer written with them is not sent.
        write_diff(DiffSource::Tree(src.path()), tmp.path(), &opts).unwrap();
        assert!(rx.blocking_recv().is_none());
    }

    #[test]
    fn a_failed_layer_closes_the_tee_without_an_end() {
        let tmp = tempfile::tempdir().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let opts = DiffOptions {
            tee: Tee::new(vec![tx]),
            ..Default::default()
        };
        let missing = tmp.path().join("no-such-dir");
        assert!(write_diff(DiffSource::Tree(&missing), tmp.path(), &opts).is_err());
        assert_eq!(follow(&mut rx).1, None);
    }
}
