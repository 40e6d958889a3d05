//! The unpacked-layer cache: `<store root>/lade/layers/<diff_id hex>`, one directory per layer in overlay form
//! (ready to be an overlay lower dir), verified against its diff_id, made in a temp dir and renamed into place.

use super::digest::HashingReader;
use super::unpack::{UnpackOptions, WhiteoutMode, unpack_tar};
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Unpacked layers, keyed by diff_id.
#[derive(Clone, Debug)]
pub struct LayerCache {
    dir: PathBuf,
}

/// `sha256:<64 hex>` → the hex, refusing anything else (it becomes a directory name).
fn diff_id_hex(diff_id: &str) -> Result<&str> {
    let hex = diff_id.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        bail!("bad diff_id {diff_id:?}: expected sha256:<64 lowercase hex digits>");
    }
    Ok(hex)
}

impl LayerCache {
    /// The cache of the store at `store_root`.
    pub fn new(store_root: &Path) -> Self {
        LayerCache {
            dir: store_root.join("lade").join("layers"),
        }
    }

    /// The cache directory itself (temp dirs for unpacking live here too, to be renamed in place).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The unpacked directory of a layer, if it is cached.
    pub fn get(&self, diff_id: &str) -> Result<Option<PathBuf>> {
        let p = self.dir.join(diff_id_hex(diff_id)?);
        Ok(p.is_dir().then_some(p))
    }

    /// The unpacked directory of a layer, unpacking it from `open()` (a compressed or plain layer blob) first if
    /// it is not cached. The uncompressed stream must hash to `diff_id`, else nothing is kept.
    pub fn get_or_unpack(
        &self,
        diff_id: &str,
        open: impl FnOnce() -> Result<Box<dyn Read>>,
    ) -> Result<PathBuf> {
        if let Some(p) = self.get(diff_id)? {
            return Ok(p);
        }
        let hex = diff_id_hex(diff_id)?;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".tmp-{}-", &hex[..12]))
            .tempdir_in(&self.dir)
            .with_context(|| format!("creating a temp dir in {}", self.dir.display()))?;
        let opts = UnpackOptions {
            whiteouts: WhiteoutMode::Overlay {
                user_xattr: crate::paths::rootless(),
            },
            ..Default::default()
        };
        let mut hashing = HashingReader::new(super::decompressor(open()?)?);
        unpack_tar(&mut hashing, tmp.path(), &opts)
            .with_context(|| format!("unpacking layer {diff_id}"))?;
        let (got, _) = hashing
            .finish()
            .with_context(|| format!("reading the rest of layer {diff_id}"))?;
        if got != diff_id {
            bail!(
                "layer content does not match its diff_id: expected {diff_id}, got {got}; the blob is corrupt"
            );
        }
        let dest = self.dir.join(hex);
        let tmp = tmp.keep();
        match std::fs::rename(&tmp, &dest) {
            Ok(()) => Ok(dest),
            // Another process unpacked the same layer meanwhile: keep theirs.
            Err(_) if dest.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dest)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e).with_context(|| format!("moving the unpacked layer into {}", dest.display()))
            }
        }
    }

    /// Put an already-unpacked directory in overlay form (a step's upper dir) into the cache under `diff_id`,
    /// by rename (it must be on the same filesystem). Returns the cached path.
    pub fn adopt(&self, diff_id: &str, dir: &Path) -> Result<PathBuf> {
        let dest = self.dir.join(diff_id_hex(diff_id)?);
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        if dest.is_dir() {
            return Ok(dest);
        }
        match std::fs::rename(dir, &dest) {
            Ok(()) => Ok(dest),
            Err(_) if dest.is_dir() => Ok(dest),
            Err(e) => {
                Err(e).with_context(|| format!("moving {} into the layer cache", dir.display()))
            }
        }
    }
}
