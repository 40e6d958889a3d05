//! Which store a `containers-storage:` reference names, and how: `[DRIVER@GRAPHROOT+RUNROOT:OPTIONS]IMAGE` as
//! containers/image parses it, else storage.conf as containers/storage reads it (`$CONTAINERS_STORAGE_CONF`;
//! as root /etc/containers/storage.conf, else /usr/share/containers/storage.conf; rootless
//! `$XDG_CONFIG_HOME/containers/storage.conf` first), else its defaults (root: /var/lib/containers/storage and
//! /run/containers/storage; rootless: `$XDG_DATA_HOME/containers/storage` (~/.local/share/containers/storage)
//! and `$XDG_RUNTIME_DIR/containers`).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The store: its driver and directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub driver: String,
    pub graphroot: PathBuf,
    pub runroot: PathBuf,
}

/// A parsed `containers-storage:` reference (the part after the transport name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsRef {
    /// The `[…]` store specifier's parts, when given: driver, graph root, run root, options.
    pub driver: Option<String>,
    pub graphroot: Option<PathBuf>,
    pub runroot: Option<PathBuf>,
    pub options: Vec<String>,
    /// The image part: `NAME[:TAG][@DIGEST]`, `[NAME]@ID`, an ID or an ID prefix (≥ 3 characters).
    pub image: String,
}

impl CsRef {
    pub fn parse(rest: &str) -> Result<CsRef> {
        let mut r = CsRef {
            driver: None,
            graphroot: None,
            runroot: None,
            options: vec![],
            image: rest.to_string(),
        };
        if let Some(spec) = rest.strip_prefix('[') {
            let Some((spec, image)) = spec.split_once(']') else {
                bail!("containers-storage:{rest}: the store specifier `[` has no closing `]`");
            };
            r.image = image.to_string();
            let spec = match spec.split_once('@') {
                Some((d, s)) => {
                    if d.is_empty() || s.is_empty() {
                        bail!("containers-storage:{rest}: write [DRIVER@GRAPHROOT+RUNROOT]IMAGE");
                    }
                    r.driver = Some(d.to_string());
                    s
                }
                None if spec.is_empty() => {
                    bail!("containers-storage:{rest}: the store specifier is empty")
                }
                None => spec,
            };
            let spec = match spec.split_once(':') {
                Some((s, o)) => {
                    r.options = o.split(',').map(String::from).collect();
                    s
                }
                None => spec,
            };
            let (root, run) = spec.split_once('+').unwrap_or((spec, ""));
            for p in [root, run] {
                if !p.is_empty() && !p.starts_with('/') {
                    bail!("containers-storage:{rest}: `{p}` is not an absolute path");
                }
            }
            r.graphroot = (!root.is_empty()).then(|| PathBuf::from(root));
            r.runroot = (!run.is_empty()).then(|| PathBuf::from(run));
        }
        if r.image.is_empty() {
            bail!("containers-storage:{rest}: name an image (NAME[:TAG], or an image ID)");
        }
        Ok(r)
    }

    /// The store this reference names: the specifier's parts over storage.conf over the defaults. Only the
    /// overlay driver is supported; any other is refused here, before anything is read or written.
    pub fn store(&self) -> Result<StoreConfig> {
        let conf = read_conf()?;
        let graphroot = self
            .graphroot
            .clone()
            .or(conf.graphroot)
            .unwrap_or_else(default_graphroot);
        let runroot = self
            .runroot
            .clone()
            .or(conf.runroot)
            .unwrap_or_else(default_runroot);
        let driver = self
            .driver
            .clone()
            .or(conf.driver)
            .filter(|d| !d.is_empty())
            .or_else(|| existing_driver(&graphroot))
            .unwrap_or_else(|| "overlay".into());
        let driver = if driver == "overlay2" {
            "overlay".to_string()
        } else {
            driver
        };
        if driver != "overlay" {
            bail!(
                "containers-storage at {} uses the `{driver}` driver; lade reads and writes only the overlay \
                 driver's store (use podman or skopeo for this one, or an overlay store)",
                graphroot.display()
            );
        }
        if let Some(o) = self.options.iter().find(|o| !o.is_empty()) {
            bail!(
                "containers-storage: driver option `{o}` is not supported by lade; name the store without options"
            );
        }
        if let Some(m) = &conf.force_mask {
            bail!(
                "storage.conf sets force_mask = {m:?}: lade does not write such stores (file modes move to xattrs)"
            );
        }
        Ok(StoreConfig {
            driver,
            graphroot,
            runroot,
        })
    }
}

#[derive(Default)]
struct Conf {
    driver: Option<String>,
    graphroot: Option<PathBuf>,
    runroot: Option<PathBuf>,
    force_mask: Option<String>,
}

fn rootless() -> bool {
    !rustix::process::geteuid().is_root()
}

fn conf_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CONTAINERS_STORAGE_CONF") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = vec![];
    if let Some(c) = dirs::config_dir().filter(|_| rootless()) {
        candidates.push(c.join("containers/storage.conf"));
    }
    candidates.push(PathBuf::from("/etc/containers/storage.conf"));
    candidates.push(PathBuf::from("/usr/share/containers/storage.conf"));
    candidates.into_iter().find(|p| p.is_file())
}

fn read_conf() -> Result<Conf> {
    let Some(path) = conf_path() else {
        return Ok(Conf::default());
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let s = v.get("storage");
    let get = |k: &str| {
        s.and_then(|s| s.get(k))
            .and_then(|x| x.as_str())
            .filter(|x| !x.is_empty())
            .map(String::from)
    };
    let overlay = s
        .and_then(|s| s.get("options"))
        .and_then(|o| o.get("overlay"));
    let system = path.starts_with("/etc") || path.starts_with("/usr/share");
    // A rootless user reading the system file gets its `rootless_storage_path`, never root's directories.
    let (graphroot, runroot) = if rootless() && system {
        let rootless_path = s
            .and_then(|s| s.get("options"))
            .and_then(|o| o.get("rootless_storage_path"))
            .and_then(|x| x.as_str())
            .map(expand);
        (rootless_path.map(PathBuf::from), None)
    } else {
        (
            get("graphroot").map(|g| PathBuf::from(expand(&g))),
            get("runroot").map(|g| PathBuf::from(expand(&g))),
        )
    };
    Ok(Conf {
        driver: get("driver"),
        graphroot,
        runroot,
        force_mask: overlay
            .and_then(|o| o.get("force_mask"))
            .and_then(|x| x.as_str())
            .filter(|x| !x.is_empty())
            .map(String::from),
    })
}

/// `$HOME`, `$UID`, `$USER` in storage.conf paths, as containers/storage expands them.
fn expand(s: &str) -> String {
    let home = dirs::home_dir().unwrap_or_default();
    s.replace("$HOME", &home.to_string_lossy())
        .replace("$UID", &rustix::process::geteuid().as_raw().to_string())
        .replace("$USER", &std::env::var("USER").unwrap_or_default())
}

fn default_graphroot() -> PathBuf {
    if rootless() {
        dirs::data_dir()
            .unwrap_or_else(|| dirs::home_dir().unwrap_or_default().join(".local/share"))
            .join("containers/storage")
    } else {
        PathBuf::from("/var/lib/containers/storage")
    }
}

fn default_runroot() -> PathBuf {
    if rootless() {
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) => PathBuf::from(d).join("containers"),
            None => PathBuf::from(format!(
                "/tmp/containers-user-{}/containers",
                rustix::process::geteuid().as_raw()
            )),
        }
    } else {
        PathBuf::from("/run/containers/storage")
    }
}

/// The driver a store already uses, by the `DRIVER-layers` directory it has (as containers/storage picks
/// one that has data when none is configured).
fn existing_driver(root: &Path) -> Option<String> {
    let rd = std::fs::read_dir(root).ok()?;
    let mut found: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix("-layers")
                .map(String::from)
        })
        .collect();
    found.sort();
    if found.iter().any(|d| d == "overlay") {
        return Some("overlay".into());
    }
    found.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_specifiers() {
        let r = CsRef::parse("[overlay@/a/root+/a/run]localhost/app:1").unwrap();
        assert_eq!(r.driver.as_deref(), Some("overlay"));
        assert_eq!(r.graphroot, Some(PathBuf::from("/a/root")));
        assert_eq!(r.runroot, Some(PathBuf::from("/a/run")));
        assert_eq!(r.image, "localhost/app:1");
        let r = CsRef::parse("[/a/root]app").unwrap();
        assert_eq!(r.driver, None);
        assert_eq!(r.graphroot, Some(PathBuf::from("/a/root")));
        assert_eq!(r.runroot, None);
        assert_eq!(CsRef::parse("app").unwrap().image, "app");
        assert!(CsRef::parse("[overlay@rel]app").is_err());
        assert!(CsRef::parse("[/a]").is_err());
        assert!(CsRef::parse("[/a").is_err());
        let vfs = CsRef::parse("[vfs@/nonexistent-root]app").unwrap();
        assert!(format!("{:#}", vfs.store().unwrap_err()).contains("vfs"));
    }
}
