//! Which entry of which layer is still visible in the final filesystem. Only the layers above the lowest
//! are read ahead (their tar headers, once); the stream then decides each entry of layer N from the changes
//! of the layers above N. An entry is hidden by an entry at its path in a higher layer, by a whiteout of it
//! or of a parent (`.wh.NAME`), by an opaque parent (`.wh..wh..opq`) or by a non-directory that replaces a
//! parent. (A path written twice within one layer counts as visible both times.)

use super::image::OpenedImage;
use super::select::clean;
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::path::Path;

/// What each layer changes, for the layers below it.
pub struct Masks {
    /// Index N: the changes of layer N (empty for layer 0, which hides nothing).
    layers: Vec<Changes>,
}

impl Masks {
    pub fn read(img: &OpenedImage) -> Result<Masks> {
        let mut layers = vec![Changes::default()];
        for l in img.layers.iter().skip(1) {
            layers.push(
                Changes::read(&l.file)
                    .with_context(|| format!("reading the headers of layer {}", l.diff_id))?,
            );
        }
        Ok(Masks { layers })
    }

    /// Whether a layer above `layer` hides `path`.
    pub fn hidden(&self, layer: usize, path: &str) -> bool {
        self.layers
            .get(layer + 1..)
            .unwrap_or_default()
            .iter()
            .any(|c| c.hides(path))
    }
}

/// One layer's changes.
#[derive(Default)]
struct Changes {
    /// Every path it has an entry at.
    exact: HashSet<String>,
    /// Whiteouts: the path and everything below it are gone.
    gone: HashSet<String>,
    /// Opaque directories: everything below them from lower layers is gone.
    opaque: HashSet<String>,
    /// Non-directories: whatever lower layers had below that path is gone.
    nondir: HashSet<String>,
}

impl Changes {
    fn read(file: &Path) -> Result<Changes> {
        let mut c = Changes::default();
        for_each_entry(file, |_, entry| {
            let Some(path) = entry_path(entry)? else {
                return Ok(());
            };
            match whiteout(&path) {
                Some(Whiteout::Opaque(dir)) => {
                    c.opaque.insert(dir);
                }
                Some(Whiteout::Gone(p)) => {
                    c.gone.insert(p);
                }
                None => {
                    if !entry.header().entry_type().is_dir() {
                        c.nondir.insert(path.clone());
                    }
                    c.exact.insert(path);
                }
            }
            Ok(())
        })?;
        Ok(c)
    }

    fn hides(&self, path: &str) -> bool {
        if self.exact.contains(path) || self.gone.contains(path) {
            return true;
        }
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if self.gone.contains(parent)
                || self.opaque.contains(parent)
                || self.nondir.contains(parent)
            {
                return true;
            }
            p = parent;
        }
        false
    }
}

pub enum Whiteout {
    /// `.wh..wh..opq` in this directory.
    Opaque(String),
    /// `.wh.NAME`: this path.
    Gone(String),
}

/// Whether the (cleaned) path is a whiteout marker, and what it removes.
pub fn whiteout(path: &str) -> Option<Whiteout> {
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    if name == crate::layer::OPAQUE_MARKER {
        return Some(Whiteout::Opaque(parent.to_string()));
    }
    let hidden = name.strip_prefix(crate::layer::WHITEOUT_PREFIX)?;
    Some(Whiteout::Gone(if parent.is_empty() {
        hidden.to_string()
    } else {
        format!("{parent}/{hidden}")
    }))
}

/// A regular file with an execute bit set.
pub fn is_exec_file(kind: tar::EntryType, mode: u32) -> bool {
    (kind.is_file() || kind == tar::EntryType::Continuous) && mode & 0o111 != 0
}

/// An entry's path, cleaned; None for the root.
pub fn entry_path<R: std::io::Read>(entry: &tar::Entry<R>) -> Result<Option<String>> {
    let raw = entry.path_bytes();
    Ok(clean(&String::from_utf8_lossy(&raw)))
}

/// Call `f` with every entry of the (possibly compressed) tar in `file`, with its ordinal.
pub fn for_each_entry(
    file: &Path,
    mut f: impl FnMut(u64, &mut tar::Entry<'_, Box<dyn std::io::Read>>) -> Result<()>,
) -> Result<()> {
    let handle =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let reader = crate::layer::decompressor(handle)?;
    let mut archive = tar::Archive::new(reader);
    for (ordinal, entry) in archive
        .entries()
        .context("reading the layer's tar")?
        .enumerate()
    {
        let mut entry = entry.context("reading the layer's tar")?;
        f(ordinal as u64, &mut entry)?;
    }
    Ok(())
}
