//! `lade db import`: OSV records from a zip export or a directory of JSON files, grouped per ecosystem and
//! package into a new database directory that replaces the old one in one rename. A new source replaces
//! every base ecosystem (`Debian` for `Debian:12`) it holds; the others are kept from the old database.

use super::{Metadata, SCHEMA, Source, layout};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest single OSV record read (the biggest real ones are a few MiB).
const RECORD_CAP: u64 = 32 << 20;

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    pub records: u64,
    pub withdrawn: u64,
    pub packages: u64,
    pub ecosystems: Vec<String>,
}

/// Records grouped for writing.
#[derive(Default)]
struct Grouped {
    /// (full ecosystem, package) → compact JSON lines.
    packages: BTreeMap<(String, String), Vec<String>>,
    /// Full ecosystem → records.
    counts: BTreeMap<String, u64>,
    records: u64,
    withdrawn: u64,
    newest_modified: Option<String>,
}

impl Grouped {
    fn add(&mut self, where_: &str, bytes: &[u8]) -> Result<()> {
        let record: Value =
            serde_json::from_slice(bytes).with_context(|| format!("{where_} is not JSON"))?;
        let id = record.get("id").and_then(Value::as_str);
        let modified = record.get("modified").and_then(Value::as_str);
        let (Some(_), Some(modified)) = (id, modified) else {
            bail!(
                "{where_} is not an OSV record: it needs the string fields \"id\" and \"modified\""
            );
        };
        if self.newest_modified.as_deref().is_none_or(|n| n < modified) {
            self.newest_modified = Some(modified.to_string());
        }
        self.records += 1;
        if record.get("withdrawn").is_some_and(|w| !w.is_null()) {
            self.withdrawn += 1;
        }
        let line = serde_json::to_string(&record)?;
        let mut seen = BTreeSet::new();
        for affected in record
            .get("affected")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let package = affected.get("package");
            let ecosystem = package
                .and_then(|p| p.get("ecosystem"))
                .and_then(Value::as_str);
            let name = package.and_then(|p| p.get("name")).and_then(Value::as_str);
            if let (Some(ecosystem), Some(name)) = (ecosystem, name) {
                seen.insert((ecosystem.to_string(), name.to_string()));
            }
        }
        let ecosystems: BTreeSet<&String> = seen.iter().map(|(e, _)| e).collect();
        for e in ecosystems {
            *self.counts.entry(e.clone()).or_default() += 1;
        }
        for key in seen {
            self.packages.entry(key).or_default().push(line.clone());
        }
        Ok(())
    }
}

fn base(ecosystem: &str) -> &str {
    ecosystem.split(':').next().unwrap_or(ecosystem)
}

/// Imports `source` (an OSV `all.zip` or a directory of OSV `.json` files) into the database at `db`.
pub fn import(source: &Path, db: &Path) -> Result<Imported> {
    let meta = fs::metadata(source).with_context(|| format!("reading {}", source.display()))?;
    let mut grouped = Grouped::default();
    let sha256 = if meta.is_dir() {
        read_dir_records(source, &mut grouped)?;
        None
    } else {
        Some(read_zip_records(source, &mut grouped)?)
    };
    let old = db
        .join(layout::METADATA)
        .exists()
        .then(|| super::info(db))
        .transpose()?;
    let bases: BTreeSet<String> = grouped.counts.keys().map(|e| base(e).to_string()).collect();
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();

    let parent = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let result = (|| {
        fs::create_dir_all(staging.join(layout::ECOSYSTEMS))?;
        let mut metadata = Metadata {
            schema: SCHEMA,
            updated: now.clone(),
            ..Default::default()
        };
        if let Some(old) = &old {
            keep_old(db, &staging, old, &bases, &mut metadata)?;
        }
        for ((ecosystem, package), lines) in &grouped.packages {
            let file = staging.join(layout::package_file(ecosystem, package));
            fs::create_dir_all(file.parent().expect("a package file has a directory"))?;
            fs::write(&file, lines.join("\n") + "\n")
                .with_context(|| format!("writing {}", file.display()))?;
        }
        metadata.ecosystems.extend(grouped.counts.clone());
        metadata.sources.push(Source {
            path: source.display().to_string(),
            sha256,
            imported: now.clone(),
            records: grouped.records,
            newest_modified: grouped.newest_modified.clone(),
            ecosystems: bases.iter().cloned().collect(),
        });
        fs::write(
            staging.join(layout::METADATA),
            serde_json::to_vec_pretty(&metadata)?,
        )?;
        swap_in(&staging, db)
    })();
    let _ = fs::remove_dir_all(&staging);
    result.with_context(|| format!("writing the vulnerability database {}", db.display()))?;
    Ok(Imported {
        records: grouped.records,
        withdrawn: grouped.withdrawn,
        packages: grouped.packages.len() as u64,
        ecosystems: bases.into_iter().collect(),
    })
}

/// Carries over the old database's ecosystems that the new source does not replace (hard links: the
/// files are never written again).
fn keep_old(
    db: &Path,
    staging: &Path,
    old: &Metadata,
    bases: &BTreeSet<String>,
    meta: &mut Metadata,
) -> Result<()> {
    for (ecosystem, count) in &old.ecosystems {
        if bases.contains(base(ecosystem)) {
            continue;
        }
        meta.ecosystems.insert(ecosystem.clone(), *count);
        let dir = PathBuf::from(layout::ECOSYSTEMS).join(layout::escape(ecosystem));
        let (from, to) = (db.join(&dir), staging.join(&dir));
        let Ok(entries) = fs::read_dir(&from) else {
            continue;
        };
        fs::create_dir_all(&to)?;
        for entry in entries {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if fs::hard_link(entry.path(), &target).is_err() {
                fs::copy(entry.path(), &target)
                    .with_context(|| format!("copying {}", entry.path().display()))?;
            }
        }
    }
    for source in &old.sources {
        let kept: Vec<String> = source
            .ecosystems
            .iter()
            .filter(|e| !bases.contains(*e))
            .cloned()
            .collect();
        if !kept.is_empty() {
            meta.sources.push(Source {
                ecosystems: kept,
                ..source.clone()
            });
        }
    }
    Ok(())
}

/// Makes `staging` the database: flushed to disk first, then exchanged with the old one in one rename
/// (the old tree ends up at `staging` and is removed by the caller).
fn swap_in(staging: &Path, db: &Path) -> Result<()> {
    let dir = fs::File::open(staging)?;
    rustix::fs::syncfs(&dir)?;
    if db.exists() {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            staging,
            rustix::fs::CWD,
            db,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .with_context(|| format!("exchanging {} with {}", staging.display(), db.display()))?;
    } else {
        fs::rename(staging, db)?;
    }
    crate::fsutil::sync_dir(db.parent().unwrap_or(Path::new(".")));
    Ok(())
}

fn read_zip_records(path: &Path, grouped: &mut Grouped) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    let sha256 = format!("{:x}", hasher.finalize());
    let mut zip = zip::ZipArchive::new(fs::File::open(path)?).with_context(|| {
        format!(
            "{} is not a zip file (expected OSV's all.zip, or a directory of .json records)",
            path.display()
        )
    })?;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .with_context(|| format!("reading entry {i} of {}", path.display()))?;
        if !entry.is_file() || !entry.name().ends_with(".json") {
            continue;
        }
        let where_ = format!("{}:{}", path.display(), entry.name());
        if entry.size() > RECORD_CAP {
            bail!(
                "{where_} is {} bytes, over the {RECORD_CAP}-byte limit for one record",
                entry.size()
            );
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        (&mut entry)
            .take(RECORD_CAP + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {where_}"))?;
        grouped.add(&where_, &bytes)?;
    }
    Ok(sha256)
}

fn read_dir_records(dir: &Path, grouped: &mut Grouped) -> Result<()> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && entry.path().extension().is_some_and(|e| e == "json") {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    for file in files {
        let len = fs::metadata(&file)?.len();
        if len > RECORD_CAP {
            bail!(
                "{} is {len} bytes, over the {RECORD_CAP}-byte limit for one record",
                file.display()
            );
        }
        let bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        grouped.add(&file.display().to_string(), &bytes)?;
    }
    Ok(())
}
