//! The unpacked-layer cache: `<store root>/lade/layers/<diff_id hex>`, one directory per layer in overlay form
//! (ready to be an overlay lower dir), verified against its diff_id, made in a temp dir and renamed into place.
//!
//! Entries are not fsynced (that would cost a sync per file; the layer blobs they come from are durable).
//! Instead each entry carries the boot id of the kernel that wrote it (`<hex>.boot`), and an entry from an
//! earlier boot is thrown away and made again from its blob: after a crash its files may be torn.

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

/// The running kernel's boot id ("" where /proc does not say).
fn boot_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
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

    /// Where the layer `diff_id` is (or will be) unpacked.
    pub fn path_of(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.dir.join(diff_id_hex(diff_id)?))
    }

    /// The unpacked directory of a layer, if it is cached (and was written since the machine last booted).
    pub fn get(&self, diff_id: &str) -> Result<Option<PathBuf>> {
        let hex = diff_id_hex(diff_id)?;
        let p = self.dir.join(hex);
        if !p.is_dir() {
            return Ok(None);
        }
        if self.is_current(hex) {
            return Ok(Some(p));
        }
        // Written before the last boot (or by a version of lade without markers): move it out of sight
        // first, so no other process picks it up half-deleted, then delete it.
        let stale = self
            .dir
            .join(format!(".stale-{hex}-{}", std::process::id()));
        if std::fs::rename(&p, &stale).is_ok() {
            let _ = std::fs::remove_dir_all(&stale);
        }
        Ok(None)
    }

    /// Whether the entry `hex` carries this boot's marker (else [`LayerCache::get`] discards it).
    pub fn is_current(&self, hex: &str) -> bool {
        let marker = self.dir.join(format!("{hex}.boot"));
        std::fs::read_to_string(marker).is_ok_and(|b| b == boot_id())
    }

    /// Mark the entry `hex` as written in this boot; done before the entry is renamed into place.
    fn mark(&self, hex: &str) -> Result<()> {
        let marker = self.dir.join(format!("{hex}.boot"));
        std::fs::write(&marker, boot_id()).with_context(|| format!("writing {}", marker.display()))
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
        crate::paths::create_spread_dir(&self.dir)
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
        self.mark(hex)?;
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
        let hex = diff_id_hex(diff_id)?;
        let dest = self.dir.join(hex);
        crate::paths::create_spread_dir(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        if let Some(p) = self.get(diff_id)? {
            return Ok(p);
        }
        self.mark(hex)?;
        match std::fs::rename(dir, &dest) {
            Ok(()) => Ok(dest),
            Err(_) if dest.is_dir() => Ok(dest),
            Err(e) => {
                Err(e).with_context(|| format!("moving {} into the layer cache", dir.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_from_an_earlier_boot_is_not_trusted() {
        let root = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(root.path());
        let id = format!("sha256:{}", "ab".repeat(32));
        let src = root.path().join("tree");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("f"), "x").unwrap();
        let dir = cache.adopt(&id, &src).unwrap();
        assert_eq!(cache.get(&id).unwrap(), Some(dir.clone()));
        std::fs::write(
            cache.dir().join(format!("{}.boot", "ab".repeat(32))),
            "old-boot",
        )
        .unwrap();
        assert_eq!(cache.get(&id).unwrap(), None);
        assert!(!dir.exists(), "the stale entry is removed");
        let leftovers: Vec<_> = std::fs::read_dir(cache.dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
