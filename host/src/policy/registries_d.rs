//! registries.d (containers-registries.d(5)): where signatures of registry images are stored. Every
//! `*.yaml` file of the directory is merged (a namespace or `default-docker` defined twice is an error);
//! the directory is `--registries.d DIR`, else `$HOME/.config/containers/registries.d` when it exists,
//! else `/etc/containers/registries.d`.

use super::scope;
use crate::reference::Reference;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One namespace's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Namespace {
    /// Where signatures are read (and written, without `lookaside-staging`).
    pub lookaside: Option<String>,
    #[serde(rename = "lookaside-staging")]
    pub lookaside_staging: Option<String>,
    /// The old names of the two above.
    pub sigstore: Option<String>,
    #[serde(rename = "sigstore-staging")]
    pub sigstore_staging: Option<String>,
    #[serde(rename = "use-sigstore-attachments")]
    pub use_sigstore_attachments: Option<bool>,
    /// Keys containers/image does not know are ignored, as there; they are kept to warn about them.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

impl Namespace {
    /// The lookaside URL this namespace gives for reading (`write: false`) or writing.
    pub fn top_level(&self, write: bool) -> Option<&str> {
        let staging = [&self.lookaside_staging, &self.sigstore_staging];
        let read = [&self.lookaside, &self.sigstore];
        let order: Vec<&Option<String>> = if write {
            staging.into_iter().chain(read).collect()
        } else {
            read.into_iter().collect()
        };
        order
            .into_iter()
            .find_map(|s| s.as_deref().filter(|s| !s.is_empty()))
    }
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(rename = "default-docker")]
    default_docker: Option<Namespace>,
    docker: Option<BTreeMap<String, Namespace>>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// The merged configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesD {
    pub default_docker: Option<Namespace>,
    pub docker: BTreeMap<String, Namespace>,
}

/// The registries.d directory to read: `explicit`, else the user's when it exists, else the system's.
pub fn dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_path_buf();
    }
    if let Some(home) = dirs::home_dir() {
        let user = home.join(".config/containers/registries.d");
        if user.exists() {
            return user;
        }
    }
    PathBuf::from("/etc/containers/registries.d")
}

impl RegistriesD {
    /// Read and merge every `*.yaml` in `dir` (a missing directory is an empty configuration).
    pub fn load(dir: &Path) -> Result<RegistriesD> {
        let mut out = RegistriesD::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        let mut default_from: Option<PathBuf> = None;
        let mut ns_from: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let file: File = if text.trim().is_empty() {
                File::default()
            } else {
                serde_yaml_ng::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            };
            warn_unknown(&path, "", &file.other);
            if let Some(d) = file.default_docker {
                if let Some(prev) = &default_from {
                    bail!(
                        "registries.d: \"default-docker\" is defined both in {} and {}",
                        prev.display(),
                        path.display()
                    );
                }
                warn_unknown(&path, "default-docker.", &d.other);
                out.default_docker = Some(d);
                default_from = Some(path.clone());
            }
            for (name, ns) in file.docker.unwrap_or_default() {
                if let Some(prev) = ns_from.get(&name) {
                    bail!(
                        "registries.d: \"docker\" namespace {name:?} is defined both in {} and {}",
                        prev.display(),
                        path.display()
                    );
                }
                warn_unknown(&path, &format!("docker.{name}."), &ns.other);
                ns_from.insert(name.clone(), path.clone());
                out.docker.insert(name, ns);
            }
        }
        Ok(out)
    }

    /// The namespaces that apply to `r`, most specific first, then `default-docker`.
    fn chain(&self, r: &Reference) -> impl Iterator<Item = &Namespace> {
        let mut names = vec![scope::docker_identity(r)];
        names.extend(scope::docker_namespaces(r));
        names
            .into_iter()
            .filter_map(|n| self.docker.get(&n))
            .chain(self.default_docker.iter())
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// The lookaside base configured for `r` (None: nothing configured).
    pub fn top_level(&self, r: &Reference, write: bool) -> Option<String> {
        self.chain(r)
            .find_map(|ns| ns.top_level(write))
            .map(str::to_string)
    }

    /// Whether sigstore attachments (`sha256-<hex>.sig`) are read and written for `r`.
    pub fn use_sigstore_attachments(&self, r: &Reference) -> bool {
        self.chain(r)
            .find_map(|ns| ns.use_sigstore_attachments)
            .unwrap_or(false)
    }

    /// The lookaside URL of `r`'s repository: the configured base (or the built-in default,
    /// `/var/lib/containers/sigstore` for root, `$HOME/.local/share/containers/sigstore` otherwise), plus
    /// `/` and the repository path without the registry.
    pub fn lookaside_url(&self, r: &Reference, write: bool) -> Result<url::Url> {
        let mut base = match self.top_level(r, write) {
            Some(s) => url::Url::parse(&s)
                .with_context(|| format!("registries.d: invalid lookaside URL {s:?}"))?,
            None => {
                let dir = if rustix::process::geteuid().is_root() {
                    PathBuf::from("/var/lib/containers/sigstore")
                } else {
                    dirs::home_dir()
                        .unwrap_or_default()
                        .join(".local/share/containers/sigstore")
                };
                url::Url::from_directory_path(&dir)
                    .map_err(|_| anyhow::anyhow!("{} is not an absolute path", dir.display()))?
            }
        };
        let path = format!("{}/{}", base.path().trim_end_matches('/'), r.repository);
        base.set_path(&path);
        Ok(base)
    }

    /// The URL of signature `index` (0-based) of the manifest `digest` under `base`.
    pub fn signature_url(base: &url::Url, digest: &str, index: usize) -> Result<url::Url> {
        let (alg, hex) = digest
            .split_once(':')
            .filter(|_| super::signature::valid_digest(digest))
            .with_context(|| format!("invalid manifest digest {digest:?}"))?;
        let mut u = base.clone();
        let path = format!("{}@{alg}={hex}/signature-{}", base.path(), index + 1);
        u.set_path(&path);
        Ok(u)
    }

    /// podman's lookup for `trust show`: the scope itself, then its parents by path, then `default-docker`.
    pub fn for_scope(&self, scope: &str) -> Option<&Namespace> {
        let mut key = scope;
        loop {
            if let Some(ns) = self.docker.get(key) {
                return Some(ns);
            }
            match key.rfind('/') {
                Some(i) => key = &key[..i],
                None => break,
            }
        }
        self.default_docker.as_ref()
    }
}

fn warn_unknown(path: &Path, prefix: &str, other: &BTreeMap<String, serde_yaml_ng::Value>) {
    for k in other.keys() {
        tracing::warn!("{}: unknown key {prefix}{k} ignored", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(files: &[(&str, &str)]) -> Result<RegistriesD> {
        let t = tempfile::tempdir().unwrap();
        for (n, c) in files {
            std::fs::write(t.path().join(n), c).unwrap();
        }
        RegistriesD::load(t.path())
    }

    #[test]
    fn merges_and_looks_up_by_scope() {
        let c = conf(&[
            ("a.yaml", "default-docker:\n  lookaside: file:///var/sigs\n"),
            (
                "b.yaml",
                "docker:\n  quay.io:\n    lookaside: https://sigs.example/q\n    lookaside-staging: file:///stage\n  quay.io/team/app:\n    use-sigstore-attachments: true\n  '*.example.com':\n    sigstore: https://wild.example/s\n",
            ),
            ("ignored.txt", "not yaml: ["),
        ])
        .unwrap();
        let r = |s: &str| crate::reference::parse(s).unwrap();
        assert_eq!(
            c.top_level(&r("quay.io/team/app:1"), false).unwrap(),
            "https://sigs.example/q"
        );
        assert_eq!(
            c.top_level(&r("quay.io/team/app:1"), true).unwrap(),
            "file:///stage"
        );
        assert_eq!(
            c.top_level(&r("docker.io/library/x"), false).unwrap(),
            "file:///var/sigs"
        );
        assert_eq!(
            c.top_level(&r("reg.example.com/x"), false).unwrap(),
            "https://wild.example/s"
        );
        assert!(c.use_sigstore_attachments(&r("quay.io/team/app:1")));
        assert!(!c.use_sigstore_attachments(&r("quay.io/team/other:1")));
        let base = c.lookaside_url(&r("quay.io/team/app:1"), false).unwrap();
        assert_eq!(base.as_str(), "https://sigs.example/q/team/app");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            RegistriesD::signature_url(&base, &d, 0).unwrap().as_str(),
            format!(
                "https://sigs.example/q/team/app@sha256={}/signature-1",
                "a".repeat(64)
            )
        );
        assert_eq!(
            c.for_scope("quay.io/team/x").unwrap().lookaside.as_deref(),
            Some("https://sigs.example/q")
        );
        assert_eq!(
            c.for_scope("other.io").unwrap().lookaside.as_deref(),
            Some("file:///var/sigs")
        );
    }

    #[test]
    fn refuses_duplicates_across_files() {
        let e = conf(&[
            ("a.yaml", "docker:\n  quay.io:\n    lookaside: file:///a\n"),
            ("b.yaml", "docker:\n  quay.io:\n    lookaside: file:///b\n"),
        ])
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("namespace \"quay.io\" is defined both"),
            "{e:#}"
        );
        let e = conf(&[
            ("a.yaml", "default-docker:\n  lookaside: file:///a\n"),
            ("b.yaml", "default-docker:\n  lookaside: file:///b\n"),
        ])
        .unwrap_err();
        assert!(format!("{e:#}").contains("\"default-docker\" is defined both"));
        assert!(conf(&[("a.yaml", "docker: [")]).is_err());
        assert_eq!(conf(&[("empty.yaml", "")]).unwrap(), RegistriesD::default());
    }
}
