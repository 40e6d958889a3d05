//! The `data-dirs` import (0.2.0 scanners): directories the user grants by name (`--plugin-data NAME=DIR`),
//! read-only and confined to the directory by cap-std (no `..` out, no absolute path, no symlink out). A
//! scanner can open a name only when the user granted it and the plugin declared it in its needs.

use super::state::State;
use super::v0_2_0::scanner_world::lade::plugin::data_dirs as wit;
use super::v0_2_0::types::{DirEntry, FileKind, FileStat, Needs, PluginError};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Resource;

/// Largest file `read-file` hands over; `read-at` reads bigger ones in pieces.
const MAX_READ: u64 = 64 << 20;
/// Largest piece one `read-at` hands over.
const MAX_CHUNK: u32 = 1 << 20;

/// One granted directory, opened once.
#[derive(Debug)]
pub struct DataDir {
    name: String,
    path: PathBuf,
    root: Dir,
}

/// The data directories the user granted for this run, by name.
#[derive(Debug, Default, Clone)]
pub struct DataGrants {
    dirs: BTreeMap<String, Arc<DataDir>>,
}

/// A data directory name, as plugins declare and users grant them: `[a-z0-9-]{1,64}`.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    anyhow::ensure!(
        ok,
        "`{name}` is not a valid data directory name: use 1 to 64 lower-case ASCII letters, digits and `-`"
    );
    Ok(())
}

impl DataGrants {
    /// From `--plugin-data NAME=DIR` values; each directory is opened now, so a typo fails before any plugin
    /// runs.
    pub fn parse(specs: &[String]) -> anyhow::Result<DataGrants> {
        let mut grants = DataGrants::default();
        for spec in specs {
            let Some((name, dir)) = spec.split_once('=') else {
                anyhow::bail!(
                    "--plugin-data `{spec}`: expected NAME=DIR (for example vulndb=/var/lib/osv)"
                );
            };
            grants
                .grant(name, Path::new(dir))
                .map_err(|e| e.context(format!("--plugin-data `{spec}`")))?;
        }
        Ok(grants)
    }

    /// Grant `dir` under `name`; granting one name twice is an error.
    pub fn grant(&mut self, name: &str, dir: &Path) -> anyhow::Result<()> {
        check_name(name)?;
        anyhow::ensure!(
            !self.dirs.contains_key(name),
            "the data directory `{name}` is granted twice"
        );
        let root = Dir::open_ambient_dir(dir, cap_std::ambient_authority())
            .map_err(|e| anyhow::anyhow!("cannot open directory {}: {e}", dir.display()))?;
        self.dirs.insert(
            name.to_string(),
            Arc::new(DataDir {
                name: name.to_string(),
                path: dir.to_path_buf(),
                root,
            }),
        );
        Ok(())
    }

    /// The granted names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.dirs.keys().map(String::as_str).collect()
    }
}

/// What one plugin may open in one call: the granted directories it declared.
#[derive(Default)]
pub(crate) struct DataAccess {
    plugin: String,
    open: BTreeMap<String, Arc<DataDir>>,
    declared: Vec<String>,
}

impl DataAccess {
    /// Refuse to start when a required directory is not granted; keep only declared grants.
    pub fn for_plugin(
        plugin: &str,
        needs: &Needs,
        grants: &DataGrants,
    ) -> anyhow::Result<DataAccess> {
        let mut open = BTreeMap::new();
        for need in &needs.data_dirs {
            match grants.dirs.get(&need.name) {
                Some(dir) => {
                    tracing::debug!(target: "lade", "plugin {plugin} may read data directory {} ({})", need.name, dir.path.display());
                    open.insert(need.name.clone(), dir.clone());
                }
                None if need.required => anyhow::bail!(
                    "plugin `{plugin}` needs the data directory `{}` ({}); grant it with --plugin-data {}=DIR",
                    need.name,
                    need.description,
                    need.name
                ),
                None => {}
            }
        }
        Ok(DataAccess {
            plugin: plugin.to_string(),
            open,
            declared: needs.data_dirs.iter().map(|n| n.name.clone()).collect(),
        })
    }

    fn get(&self, name: &str) -> Result<Arc<DataDir>, PluginError> {
        if let Some(dir) = self.open.get(name) {
            return Ok(dir.clone());
        }
        Err(PluginError::Host(
            if self.declared.iter().any(|d| d == name) {
                format!(
                    "the data directory `{name}` was not granted; the user grants it with --plugin-data {name}=DIR"
                )
            } else {
                format!(
                    "plugin `{}` did not declare the data directory `{name}` in its needs, so it cannot be granted \
                 (declared: {})",
                    self.plugin,
                    if self.declared.is_empty() {
                        "none".to_string()
                    } else {
                        self.declared.join(", ")
                    }
                )
            },
        ))
    }
}

/// The host value behind a `data-dir` handle.
pub struct DataDirHandle(Arc<DataDir>);

/// A path relative to the directory, checked lexically (the kernel-level confinement is cap-std's).
fn relative(path: &str) -> Result<PathBuf, String> {
    if path.starts_with('/') {
        return Err("absolute paths are refused: paths are relative to the data directory".into());
    }
    if path.contains('\0') {
        return Err("a path cannot contain NUL".into());
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("the path leaves the data directory".into());
                }
            }
            p => parts.push(p),
        }
    }
    Ok(if parts.is_empty() {
        PathBuf::from(".")
    } else {
        parts.iter().collect()
    })
}

fn kind(ft: cap_std::fs::FileType) -> FileKind {
    if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Directory
    } else if ft.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

impl DataDir {
    /// Open a regular file for reading (non-blocking, so a FIFO swapped in cannot hang the host).
    fn open_file(&self, path: &str) -> Result<(std::fs::File, u64), String> {
        let rel = relative(path)?;
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(libc::O_NONBLOCK);
        let file = self
            .root
            .open_with(&rel, &options)
            .map_err(|e| e.to_string())?;
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        Ok((file.into_std(), meta.len()))
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, String> {
        let (file, size) = self.open_file(path)?;
        if size > MAX_READ {
            return Err(format!(
                "it is {size} bytes; read-file hands over at most {MAX_READ}, read larger files with read-at"
            ));
        }
        let mut out = Vec::with_capacity(size as usize);
        file.take(MAX_READ + 1)
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn read_at(&self, path: &str, offset: u64, max: u32) -> Result<Vec<u8>, String> {
        let (file, size) = self.open_file(path)?;
        let len = size
            .saturating_sub(offset)
            .min(u64::from(max.min(MAX_CHUNK))) as usize;
        let mut out = vec![0; len];
        let mut done = 0;
        while done < len {
            match file.read_at(&mut out[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => return Err(e.to_string()),
            }
        }
        out.truncate(done);
        Ok(out)
    }

    fn stat(&self, path: &str) -> Result<Option<FileStat>, String> {
        let rel = relative(path)?;
        match self.root.symlink_metadata(&rel) {
            Ok(md) => Ok(Some(FileStat {
                kind: kind(md.file_type()),
                size: md.len(),
                mode: cap_std::fs::PermissionsExt::mode(&md.permissions()) & 0o7777,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn list_dir(&self, path: &str) -> Result<Vec<DirEntry>, String> {
        let rel = relative(path)?;
        let mut out = Vec::new();
        for entry in self.root.read_dir(&rel).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            out.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind: kind(entry.file_type().map_err(|e| e.to_string())?),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn error(&self, what: &str, path: &str, e: String) -> PluginError {
        PluginError::Host(format!(
            "{what} `{path}` in data directory `{}`: {e}",
            self.name
        ))
    }
}

impl State {
    fn data_dir(&self, handle: &Resource<DataDirHandle>) -> wasmtime::Result<Arc<DataDir>> {
        Ok(self.table.get(handle)?.0.clone())
    }
}

impl wit::Host for State {
    fn open(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<DataDirHandle>, PluginError>> {
        match self.data_dirs.get(&name) {
            Ok(dir) => Ok(Ok(self.table.push(DataDirHandle(dir))?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl wit::HostDataDir for State {
    fn read_file(
        &mut self,
        this: Resource<DataDirHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, PluginError>> {
        let dir = self.data_dir(&this)?;
        Ok(dir
            .read_file(&path)
            .map_err(|e| dir.error("reading", &path, e)))
    }

    fn read_at(
        &mut self,
        this: Resource<DataDirHandle>,
        path: String,
        offset: u64,
        max_bytes: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, PluginError>> {
        let dir = self.data_dir(&this)?;
        Ok(dir
            .read_at(&path, offset, max_bytes)
            .map_err(|e| dir.error("reading", &path, e)))
    }

    fn stat(
        &mut self,
        this: Resource<DataDirHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Option<FileStat>, PluginError>> {
        let dir = self.data_dir(&this)?;
        Ok(dir
            .stat(&path)
            .map_err(|e| dir.error("examining", &path, e)))
    }

    fn list_dir(
        &mut self,
        this: Resource<DataDirHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<DirEntry>, PluginError>> {
        let dir = self.data_dir(&this)?;
        Ok(dir
            .list_dir(&path)
            .map_err(|e| dir.error("listing", &path, e)))
    }

    fn drop(&mut self, this: Resource<DataDirHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> (tempfile::TempDir, DataGrants) {
        let tmp = tempfile::tempdir().unwrap();
        for (p, c) in files {
            std::fs::write(tmp.path().join(p), c).unwrap();
        }
        let mut g = DataGrants::default();
        g.grant("db", tmp.path()).unwrap();
        (tmp, g)
    }

    #[test]
    fn paths_stay_inside_and_reads_are_bounded() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "no").unwrap();
        let (tmp, g) = dir_with(&[("a.txt", "hello world")]);
        std::os::unix::fs::symlink(outside.path().join("secret"), tmp.path().join("out")).unwrap();
        std::os::unix::fs::symlink("a.txt", tmp.path().join("in")).unwrap();
        let d = &g.dirs["db"];
        assert_eq!(d.read_file("a.txt").unwrap(), b"hello world");
        assert_eq!(d.read_file("./x/../a.txt").unwrap(), b"hello world");
        assert_eq!(d.read_file("in").unwrap(), b"hello world");
        assert_eq!(d.read_at("a.txt", 6, 3).unwrap(), b"wor");
        assert!(d.read_at("a.txt", 100, 3).unwrap().is_empty());
        for bad in ["../secret", "/etc/passwd", "out", "."] {
            assert!(d.read_file(bad).is_err(), "{bad} was readable");
        }
        assert!(d.list_dir("..").is_err());
        assert_eq!(d.stat("out").unwrap().unwrap().kind, FileKind::Symlink);
        assert!(d.stat("missing").unwrap().is_none());
        let names: Vec<String> = d
            .list_dir("")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a.txt", "in", "out"]);
    }

    #[test]
    fn grants_are_parsed_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = format!("vulndb={}", tmp.path().display());
        assert_eq!(
            DataGrants::parse(std::slice::from_ref(&spec))
                .unwrap()
                .names(),
            ["vulndb"]
        );
        for (bad, want) in [
            ("nodir".to_string(), "expected NAME=DIR"),
            (
                format!("Bad_Name={}", tmp.path().display()),
                "not a valid data directory name",
            ),
            (
                "x=/no/such/dir".to_string(),
                "cannot open directory /no/such/dir",
            ),
        ] {
            let e = format!("{:#}", DataGrants::parse(&[bad]).unwrap_err());
            assert!(e.contains(want), "{e}");
        }
        let e = DataGrants::parse(&[spec.clone(), spec]).unwrap_err();
        assert!(format!("{e:#}").contains("granted twice"));
    }
}
