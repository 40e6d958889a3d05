//! registries.conf (v2 format) and its drop-in directories, read from the same places and with the same
//! precedence as containers/image: `--registries-conf`/`$CONTAINERS_REGISTRIES_CONF` alone, else
//! `~/.config/containers/registries.conf` (+ its `.d`), else `/etc/containers/registries.conf` plus
//! `/etc/containers/registries.conf.d` and `~/.config/containers/registries.conf.d`.
//! Gives, per reference: the endpoints to pull from (mirrors, then the location), `insecure` and `blocked`.

use crate::reference::{Reference, ShortNameConfig, ShortNameMode};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct File {
    unqualified_search_registries: Option<Vec<String>>,
    short_name_mode: Option<String>,
    #[serde(default)]
    registry: Vec<RegistryEntry>,
    aliases: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(rename_all = "kebab-case")]
struct RegistryEntry {
    prefix: Option<String>,
    location: Option<String>,
    insecure: Option<bool>,
    blocked: Option<bool>,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<MirrorEntry>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(rename_all = "kebab-case")]
struct MirrorEntry {
    location: String,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<String>,
}

/// One `[[registry]]` table after merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConf {
    pub prefix: String,
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Mirror>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
    /// `all`, `digest-only` or `tag-only`.
    pub pull_from_mirror: String,
}

/// The merged configuration.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConf {
    pub registries: Vec<RegistryConf>,
    pub short_names: ShortNameConfig,
    /// Files read, for messages.
    pub sources: Vec<PathBuf>,
}

/// Where a pull may go, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The reference rewritten for this endpoint.
    pub reference: Reference,
    /// registries.conf marks it insecure (plain HTTP or unverified TLS allowed).
    pub insecure: bool,
    pub mirror: bool,
}

fn home() -> PathBuf {
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("/"))
}

/// `XDG_CONFIG_HOME` or `~/.config`.
pub fn user_config_dir() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".config"))
}

/// The files to read, in order (later ones override earlier ones).
fn config_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    let user_file = user_config_dir().join("containers/registries.conf");
    let user_dir = user_config_dir().join("containers/registries.conf.d");
    let (main, dirs): (PathBuf, Vec<PathBuf>) = if let Some(p) = explicit {
        (p.to_path_buf(), vec![])
    } else if user_file.exists() {
        (user_file, vec![user_dir])
    } else {
        (
            PathBuf::from("/etc/containers/registries.conf"),
            vec!["/etc/containers/registries.conf.d".into(), user_dir],
        )
    };
    let mut out = vec![main];
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

impl RegistriesConf {
    /// Load from the standard places, or only `explicit` when given (a missing explicit file is an error).
    pub fn load(explicit: Option<&Path>) -> Result<RegistriesConf> {
        let mut conf = RegistriesConf::default();
        for (i, path) in config_files(explicit).into_iter().enumerate() {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && !(i == 0 && explicit.is_some()) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("reading registries configuration {}", path.display())
                    });
                }
            };
            conf.merge_text(&text, &path)?;
        }
        Ok(conf)
    }

    /// Merge one file's contents: registries with the same prefix are replaced, search registries and
    /// short-name-mode replaced when set, aliases merged.
    pub fn merge_text(&mut self, text: &str, path: &Path) -> Result<()> {
        let f: File =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        self.sources.push(path.to_path_buf());
        if let Some(s) = f.unqualified_search_registries {
            self.short_names.search_registries = s;
        }
        if let Some(m) = f.short_name_mode {
            self.short_names.mode = ShortNameMode::parse(&m)
                .with_context(|| format!("{}: short-name-mode", path.display()))?;
        }
        if let Some(a) = f.aliases {
            for (k, v) in a {
                self.short_names.aliases.retain(|(key, _)| key != &k);
                self.short_names.aliases.push((k, v));
            }
        }
        for r in f.registry {
            let (prefix, location) = match (r.prefix, r.location) {
                (Some(p), Some(l)) => (p, l),
                (Some(p), None) => (p.clone(), p),
                (None, Some(l)) => (l.clone(), l),
                (None, None) => bail!(
                    "{}: a [[registry]] table needs a prefix or a location",
                    path.display()
                ),
            };
            if prefix.starts_with("*.") && location != prefix && !location.is_empty() {
                bail!(
                    "{}: registry prefix `{prefix}` is a wildcard, so it cannot have a location",
                    path.display()
                );
            }
            let entry = RegistryConf {
                prefix: prefix.trim_end_matches('/').to_string(),
                location: location.trim_end_matches('/').to_string(),
                insecure: r.insecure.unwrap_or(false),
                blocked: r.blocked.unwrap_or(false),
                mirror_by_digest_only: r.mirror_by_digest_only,
                mirrors: r
                    .mirror
                    .into_iter()
                    .map(|m| Mirror {
                        location: m.location.trim_end_matches('/').to_string(),
                        insecure: m.insecure,
                        pull_from_mirror: m.pull_from_mirror.unwrap_or_else(|| "all".into()),
                    })
                    .collect(),
            };
            self.registries.retain(|e| e.prefix != entry.prefix);
            self.registries.push(entry);
        }
        Ok(())
    }

    /// The `[[registry]]` with the longest prefix matching `reference`.
    pub fn find(&self, reference: &Reference) -> Option<&RegistryConf> {
        let s = reference.to_string();
        self.registries
            .iter()
            .filter_map(|r| prefix_len(&s, &r.prefix).map(|n| (n, r)))
            .max_by_key(|(n, _)| *n)
            .map(|(_, r)| r)
    }

    /// Whether the registry host (as in a reference) is marked insecure.
    pub fn insecure_host(&self, host: &str) -> bool {
        let probe = Reference {
            registry: host.into(),
            repository: "x".into(),
            tag: None,
            digest: None,
            qualified: true,
        };
        self.find(&probe).is_some_and(|r| {
            r.insecure
                && (r.location == host
                    || r.location.starts_with(&format!("{host}/"))
                    || r.prefix.starts_with("*."))
        })
    }

    /// Endpoints to pull `reference` from: allowed mirrors in order, then the (rewritten) primary location.
    /// A blocked registry is an error.
    pub fn pull_endpoints(&self, reference: &Reference) -> Result<Vec<Endpoint>> {
        let Some(conf) = self.find(reference) else {
            return Ok(vec![Endpoint {
                reference: reference.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        if conf.blocked {
            bail!(
                "registry `{}` is blocked in registries.conf (prefix `{}`), so {reference} cannot be used",
                reference.registry,
                conf.prefix
            );
        }
        let mut out = vec![];
        let by_digest = reference.digest.is_some();
        for m in &conf.mirrors {
            let allowed = if conf.mirror_by_digest_only {
                by_digest
            } else {
                match m.pull_from_mirror.as_str() {
                    "digest-only" => by_digest,
                    "tag-only" => !by_digest,
                    _ => true,
                }
            };
            if allowed {
                out.push(Endpoint {
                    reference: rewrite(reference, &conf.prefix, &m.location)?,
                    insecure: m.insecure,
                    mirror: true,
                });
            }
        }
        out.push(Endpoint {
            reference: rewrite(reference, &conf.prefix, &conf.location)?,
            insecure: conf.insecure,
            mirror: false,
        });
        Ok(out)
    }

    /// Where a push goes: the primary location (never a mirror). A blocked registry is an error.
    pub fn push_endpoint(&self, reference: &Reference) -> Result<Endpoint> {
        let all = self.pull_endpoints(reference)?;
        Ok(all
            .into_iter()
            .find(|e| !e.mirror)
            .expect("the primary endpoint is always last"))
    }
}

/// The length of `prefix` when it matches reference string `r` (containers/image semantics: exact, or
/// followed by `/`, `:` or `@`; `*.domain` matches subdomains).
fn prefix_len(r: &str, prefix: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix("*.") {
        let host = r.split('/').next().unwrap_or(r);
        let host = host.split(':').next().unwrap_or(host);
        return host
            .ends_with(&format!(".{domain}"))
            .then_some(prefix.len());
    }
    if r == prefix {
        return Some(prefix.len());
    }
    if r.len() > prefix.len()
        && r.starts_with(prefix)
        && matches!(r.as_bytes()[prefix.len()], b'/' | b':' | b'@')
    {
        return Some(prefix.len());
    }
    None
}

/// Replace `prefix` with `location` in `reference`.
fn rewrite(reference: &Reference, prefix: &str, location: &str) -> Result<Reference> {
    if prefix.starts_with("*.") || location.is_empty() {
        return Ok(reference.clone());
    }
    let s = reference.to_string();
    let rest = &s[prefix.len().min(s.len())..];
    let new = format!("{location}{rest}");
    let mut r = crate::reference::parse(&new).with_context(|| {
        format!("rewriting {reference} to registries.conf location `{location}`")
    })?;
    r.qualified = true;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::parse;

    fn conf(text: &str) -> RegistriesConf {
        let mut c = RegistriesConf::default();
        c.merge_text(text, Path::new("test.conf")).unwrap();
        c
    }

    #[test]
    fn mirrors_insecure_blocked() {
        let c = conf(
            r#"
unqualified-search-registries = ["r.example"]
short-name-mode = "permissive"
[aliases]
"app" = "quay.io/t/app"
[[registry]]
prefix = "docker.io/library"
location = "internal.example/dockerhub"
[[registry.mirror]]
location = "mirror.example:5000/hub"
insecure = true
[[registry.mirror]]
location = "digest.example/hub"
pull-from-mirror = "digest-only"
[[registry]]
location = "insecure.example:5000"
insecure = true
[[registry]]
prefix = "evil.example"
blocked = true
"#,
        );
        assert_eq!(c.short_names.search_registries, ["r.example"]);
        assert_eq!(c.short_names.mode, ShortNameMode::Permissive);
        let e = c.pull_endpoints(&parse("alpine:3").unwrap()).unwrap();
        let names: Vec<String> = e.iter().map(|e| e.reference.to_string()).collect();
        assert_eq!(
            names,
            [
                "mirror.example:5000/hub/alpine:3",
                "internal.example/dockerhub/alpine:3"
            ]
        );
        assert!(e[0].insecure && e[0].mirror && !e[1].mirror);
        let d = format!("alpine@sha256:{}", "b".repeat(64));
        assert_eq!(c.pull_endpoints(&parse(&d).unwrap()).unwrap().len(), 3);
        assert_eq!(
            c.push_endpoint(&parse("alpine:3").unwrap())
                .unwrap()
                .reference
                .to_string(),
            "internal.example/dockerhub/alpine:3"
        );
        assert!(c.insecure_host("insecure.example:5000"));
        assert!(!c.insecure_host("insecure.example"));
        assert!(
            format!(
                "{:#}",
                c.pull_endpoints(&parse("evil.example/x").unwrap())
                    .unwrap_err()
            )
            .contains("blocked")
        );
        // No match: the reference itself.
        assert_eq!(
            c.pull_endpoints(&parse("quay.io/a/b").unwrap()).unwrap()[0]
                .reference
                .to_string(),
            "quay.io/a/b"
        );
        // `docker.io/libraryx` does not match prefix `docker.io/library`.
        assert!(c.find(&parse("docker.io/libraryx/y").unwrap()).is_none());
    }

    #[test]
    fn drop_ins_override() {
        let mut c = conf("[[registry]]\nlocation = \"a.example\"\ninsecure = true\n");
        c.merge_text("unqualified-search-registries = [\"b.example\"]\n[[registry]]\nlocation = \"a.example\"\n", Path::new("d.conf")).unwrap();
        assert!(!c.insecure_host("a.example"));
        assert_eq!(c.registries.len(), 1);
        assert!(
            c.merge_text("[[registry]]\ninsecure = true\n", Path::new("bad.conf"))
                .is_err()
        );
    }
}
