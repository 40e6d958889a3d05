//! The offline vulnerability database: OSV records imported from OSV's per-ecosystem `all.zip` exports (or
//! a directory of OSV JSON files) into an indexed, read-only directory the `vuln` plugin is granted.
//! `import` writes a whole new database beside the old one and swaps it in, so readers never see a half.

mod import;
pub mod layout;

pub use import::{Imported, import};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The data directory name the `vuln` plugin asks for.
pub const DATA_DIR_NAME: &str = "vuln-db";
/// The version of the layout below; a reader refuses another.
pub const SCHEMA: u32 = 1;

/// The default database: `<cache dir>/vuln-db`.
pub fn default_dir() -> PathBuf {
    crate::paths::cache_dir().join(DATA_DIR_NAME)
}

/// `metadata.json`: what was imported, from where, when, and how many records per ecosystem.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Metadata {
    pub schema: u32,
    /// When the last import finished (RFC 3339, UTC).
    pub updated: String,
    pub sources: Vec<Source>,
    /// Records per full ecosystem name (`Debian:12`), over every source.
    pub ecosystems: BTreeMap<String, u64>,
}

/// One imported file or directory, replacing the ecosystems it holds.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Source {
    /// The path given to `lade db import`.
    pub path: String,
    /// sha256 of the zip file (directories have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub imported: String,
    /// Records read (withdrawn ones included).
    pub records: u64,
    /// The newest `modified` among them: how fresh the source is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_modified: Option<String>,
    /// The base ecosystems (`Debian`, `PyPI`) this source provides.
    pub ecosystems: Vec<String>,
}

/// Reads a database's metadata, with an error that says how to make one.
pub fn info(db: &Path) -> Result<Metadata> {
    let file = db.join(layout::METADATA);
    let text = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no vulnerability database at {}: import OSV data with `lade db import all.zip` (from \
             https://osv-vulnerabilities.storage.googleapis.com/<ECOSYSTEM>/all.zip)",
            db.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let meta: Metadata = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not lade's database metadata", file.display()))?;
    anyhow::ensure!(
        meta.schema == SCHEMA,
        "{} has database schema {}, this lade reads {SCHEMA}: import the data again",
        file.display(),
        meta.schema
    );
    Ok(meta)
}
