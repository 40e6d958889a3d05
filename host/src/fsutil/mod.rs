//! Small filesystem utilities below everything else: files that appear whole or not at all ([`staged`]),
//! atomic writes, and early writeback.

pub mod staged;
pub mod writeback;

pub use staged::{Staged, disk_full, sync_dir};

use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Write `data` to `path` atomically: an unnamed file in the same directory, fsync, then it replaces `path`
/// (see [`Staged`]), directory fsynced.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let staged = stage(path, data)?;
    staged.publish_replace(path)
}

/// Write `data` as `path` unless it exists (a blob: the name is the content's digest).
pub fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    let staged = stage(path, data)?;
    staged.publish_new(path)
}

fn stage(path: &Path, data: &[u8]) -> Result<Staged> {
    let dir = path
        .parent()
        .context("a file path has a parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let staged = Staged::new_in(dir)?;
    write_all_synced(staged.file(), data).with_context(|| format!("writing {}", path.display()))?;
    Ok(staged)
}

fn write_all_synced(mut f: &File, data: &[u8]) -> std::io::Result<()> {
    f.write_all(data)?;
    f.sync_all()
}
