//! registries.conf and its drop-in directories, read from the same places, in both formats and with the
//! same precedence and checks as containers/image (`pkg/sysregistriesv2`):
//!
//! * the main file: `--registries-conf`/`$CONTAINERS_REGISTRIES_CONF`, else
//!   `~/.config/containers/registries.conf` when it exists, else `/etc/containers/registries.conf`;
//! * drop-ins (`*.conf`, sorted, v2 format only): `~/.config/containers/registries.conf.d` when the user file
//!   is the main file, else `/etc/containers/registries.conf.d` then `~/.config/containers/registries.conf.d`;
//! * the machine-written aliases file `short-name-aliases.conf` (`/var/cache/containers/` as root, else
//!   `$XDG_CACHE_HOME/containers/`), whose `[aliases]` win over every registries.conf alias.
//!
//! A file is in the v1 format (`[registries.search]`, `[registries.insecure]`, `[registries.block]`) or the
//! v2 format (`[[registry]]`, `unqualified-search-registries`, ...), never both. Gives, per reference: the
//! endpoints to pull from (mirrors, then the location), `insecure` and `blocked`, with the file that said so.

use crate::reference::{Reference, ShortNameConfig, ShortNameMode};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One file, both formats at once (as containers/image decodes it), so mixing them can be refused.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct File {
    unqualified_search_registries: Option<Vec<String>>,
    short_name_mode: Option<String>,
    registry: Option<Vec<RegistryEntry>>,
    aliases: Option<BTreeMap<String, String>>,
    credential_helpers: Option<Vec<String>>,
    /// The v1 format.
    registries: Option<V1Tables>,
}

#[derive(Debug, Deserialize, Default)]
struct V1Tables {
    search: Option<V1List>,
    insecure: Option<V1List>,
    block: Option<V1List>,
}

#[derive(Debug, Deserialize, Default)]
struct V1List {
    registries: Option<Vec<String>>,
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
    pull_from_mirror: Option<String>,
    #[serde(default)]
    mirror: Vec<MirrorEntry>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(rename_all = "kebab-case")]
struct MirrorEntry {
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<String>,
}

/// One `[[registry]]` table after merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConf {
    pub prefix: String,
    /// Empty only for a wildcard (`*.example.com`) prefix: the reference's own host is used.
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Mirror>,
    /// The file the table came from, for messages.
    pub source: PathBuf,
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
    /// `credential-helpers` (None: unset, which means `["containers-auth.json"]`).
    pub credential_helpers: Option<Vec<String>>,
    /// Files read, for messages.
    pub sources: Vec<PathBuf>,
    /// Whether some file set `short-name-mode` (containers/image defaults to permissive otherwise).
    mode_set: bool,
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
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".config"))
}

/// The machine-written short-name aliases file (`podman` records the choices a user made there).
pub fn short_name_aliases_file() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/cache/containers/short-name-aliases.conf");
    }
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"))
        .join("containers/short-name-aliases.conf")
}

/// The main file and the drop-in files to read, in order (later ones override earlier ones).
fn config_files(explicit: Option<&Path>) -> (PathBuf, Vec<PathBuf>) {
    let user_file = user_config_dir().join("containers/registries.conf");
    let user_dir = user_config_dir().join("containers/registries.conf.d");
    let system_dir = PathBuf::from("/etc/containers/registries.conf.d");
    let (main, dirs) = match explicit {
        Some(p) => (p.to_path_buf(), vec![system_dir, user_dir]),
        None if user_file.exists() => (user_file, vec![user_dir]),
        None => (
            PathBuf::from("/etc/containers/registries.conf"),
            vec![system_dir, user_dir],
        ),
    };
    let mut drop_ins = vec![];
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        files.sort();
        drop_ins.extend(files);
    }
    (main, drop_ins)
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            Err(e).with_context(|| format!("reading registries configuration {}", path.display()))
        }
    }
}

/// containers/image's `parseLocation`: trailing slashes go, URL schemes are refused.
fn location(path: &Path, what: &str, s: &str) -> Result<String> {
    let t = s.trim_end_matches('/');
    if t.starts_with("http://") || t.starts_with("https://") {
        bail!(
            "{}: {what} `{s}`: write a host[:port][/path] without http:// or https://",
            path.display()
        );
    }
    Ok(t.to_string())
}

/// A file's `[[registry]]` tables from the v1 lists: one table per registry named in `block` or `insecure`,
/// in the order first named.
fn v1_to_v2(path: &Path, v1: V1Tables) -> Result<(Vec<RegistryEntry>, Option<Vec<String>>)> {
    fn get(out: &mut Vec<RegistryEntry>, path: &Path, name: &str) -> Result<usize> {
        let loc = location(path, "[registries.*] registry", name)?;
        if let Some(i) = out.iter().position(|e| e.location.as_deref() == Some(&loc)) {
            return Ok(i);
        }
        out.push(RegistryEntry {
            prefix: Some(loc.clone()),
            location: Some(loc),
            ..Default::default()
        });
        Ok(out.len() - 1)
    }
    let mut out: Vec<RegistryEntry> = vec![];
    let list = |l: Option<V1List>| l.and_then(|l| l.registries).unwrap_or_default();
    for b in list(v1.block) {
        let i = get(&mut out, path, &b)?;
        out[i].blocked = Some(true);
    }
    for b in list(v1.insecure) {
        let i = get(&mut out, path, &b)?;
        out[i].insecure = Some(true);
    }
    let search = v1.search.and_then(|l| l.registries);
    Ok((out, search))
}

/// containers/image's checks on one file's `[[registry]]` tables, and their normal form: the prefix defaults
/// to the location, a prefix without location must be a wildcard, mirror settings must be valid, one
/// location may not be both secure and insecure (or blocked and not). Of two tables with one prefix the
/// first counts.
fn check_registries(path: &Path, entries: Vec<RegistryEntry>) -> Result<Vec<RegistryConf>> {
    let f = path.display();
    let mut out: Vec<RegistryConf> = vec![];
    for r in entries {
        let loc = location(
            path,
            "registry location",
            r.location.as_deref().unwrap_or(""),
        )?;
        let prefix = match r.prefix.as_deref().filter(|p| !p.is_empty()) {
            None if loc.is_empty() => {
                bail!("{f}: a [[registry]] table needs a location (or a prefix like *.example.com)")
            }
            None => loc.clone(),
            Some(p) => {
                let p = location(path, "registry prefix", p)?;
                if let Some(domain) = p.strip_prefix("*.") {
                    if domain.contains(['/', '@', ':']) || domain.is_empty() {
                        bail!("{f}: wildcard prefix `{p}` must look like *.example.com");
                    }
                    if !loc.is_empty() {
                        bail!(
                            "{f}: registry prefix `{p}` is a wildcard, so it cannot have a location"
                        );
                    }
                } else if loc.is_empty() {
                    bail!(
                        "{f}: the [[registry]] with prefix `{p}` has no location (only a prefix like *.example.com may go without one)"
                    );
                }
                p
            }
        };
        if let Some(p) = &r.pull_from_mirror {
            bail!(
                "{f}: [[registry]] `{prefix}` sets pull-from-mirror = \"{p}\"; it belongs in a [[registry.mirror]] table"
            );
        }
        let mut mirrors = vec![];
        for m in r.mirror {
            let mloc = location(path, "mirror location", &m.location)?;
            if mloc.is_empty() {
                bail!("{f}: a [[registry.mirror]] of `{prefix}` has no location");
            }
            if let Some(p) = &m.pull_from_mirror {
                if r.mirror_by_digest_only {
                    bail!(
                        "{f}: [[registry]] `{prefix}` sets mirror-by-digest-only and its mirror `{mloc}` sets pull-from-mirror; use one of them"
                    );
                }
                if !matches!(p.as_str(), "all" | "digest-only" | "tag-only") {
                    bail!(
                        "{f}: mirror `{mloc}`: pull-from-mirror = \"{p}\" is not one of all, digest-only, tag-only"
                    );
                }
            }
            mirrors.push(Mirror {
                location: mloc,
                insecure: m.insecure,
                pull_from_mirror: m.pull_from_mirror.unwrap_or_else(|| "all".into()),
            });
        }
        let entry = RegistryConf {
            prefix,
            location: loc,
            insecure: r.insecure.unwrap_or(false),
            blocked: r.blocked.unwrap_or(false),
            mirror_by_digest_only: r.mirror_by_digest_only,
            mirrors,
            source: path.to_path_buf(),
        };
        let same_place = |o: &RegistryConf| {
            if entry.location.is_empty() {
                o.location.is_empty() && o.prefix == entry.prefix
            } else {
                o.location == entry.location
            }
        };
        for o in out.iter().filter(|o| same_place(o)) {
            let place = if entry.location.is_empty() {
                &entry.prefix
            } else {
                &entry.location
            };
            if o.insecure != entry.insecure {
                bail!(
                    "{f}: registry `{place}` is defined several times with conflicting `insecure` settings"
                );
            }
            if o.blocked != entry.blocked {
                bail!(
                    "{f}: registry `{place}` is defined several times with conflicting `blocked` settings"
                );
            }
        }
        if !out.iter().any(|o| o.prefix == entry.prefix) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Checks an alias (`[aliases]` key and value) as containers/image does; an empty value removes the alias.
fn check_alias(path: &Path, key: &str, value: &str) -> Result<()> {
    let k = crate::reference::parse(key)
        .map_err(|e| anyhow::anyhow!("{}: alias `{key}`: {e}", path.display()))?;
    if k.qualified || key.contains('@') || key.rsplit('/').next().is_some_and(|l| l.contains(':')) {
        bail!(
            "{}: alias `{key}` must be a short name without registry, tag or digest",
            path.display()
        );
    }
    if value.is_empty() {
        return Ok(());
    }
    let v = crate::reference::parse(value)
        .map_err(|e| anyhow::anyhow!("{}: alias `{key}` = `{value}`: {e}", path.display()))?;
    if !v.qualified || v.tag.is_some() || v.digest.is_some() {
        bail!(
            "{}: alias `{key}` = `{value}` must be a fully qualified name (with a registry) without tag or digest",
            path.display()
        );
    }
    Ok(())
}

impl RegistriesConf {
    /// Load from the standard places (`explicit` replaces the main file; a missing explicit file is an
    /// error). The drop-in directories and the short-name aliases file are read either way.
    pub fn load(explicit: Option<&Path>) -> Result<RegistriesConf> {
        let mut conf = RegistriesConf::default();
        let (main, drop_ins) = config_files(explicit);
        match read_optional(&main)? {
            Some(text) => conf.merge_file(&text, &main, false)?,
            None if explicit.is_some() => bail!(
                "registries configuration {} does not exist (named by --registries-conf or $CONTAINERS_REGISTRIES_CONF)",
                main.display()
            ),
            None => {}
        }
        for path in drop_ins {
            if let Some(text) = read_optional(&path)? {
                conf.merge_file(&text, &path, true)?;
            }
        }
        let aliases = short_name_aliases_file();
        if let Some(text) = read_optional(&aliases)? {
            conf.merge_alias_file(&text, &aliases)?;
        }
        if !conf.mode_set {
            conf.short_names.mode = ShortNameMode::Permissive;
        }
        Ok(conf)
    }

    /// Merge one main file (v1 or v2) or drop-in (`drop_in`: v2 only): registries with the same prefix are
    /// replaced, search registries and short-name-mode replaced when set, aliases merged.
    pub fn merge_file(&mut self, text: &str, path: &Path, drop_in: bool) -> Result<()> {
        let f: File =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let v1 = f.registries.as_ref().is_some_and(|r| {
            [&r.search, &r.insecure, &r.block]
                .iter()
                .any(|l| l.as_ref().is_some_and(|l| l.registries.is_some()))
        });
        let v2 = f.unqualified_search_registries.is_some()
            || f.short_name_mode.is_some()
            || f.registry.is_some()
            || f.aliases.is_some()
            || f.credential_helpers.is_some();
        let (entries, search) = if v1 {
            if drop_in {
                bail!(
                    "{}: a registries.conf.d drop-in must use the v2 format ([[registry]] tables, unqualified-search-registries), not [registries.search], [registries.insecure] or [registries.block]",
                    path.display()
                );
            }
            if v2 {
                bail!(
                    "{}: mixes the v1 format ([registries.search], [registries.insecure], [registries.block]) with the v2 format ([[registry]], unqualified-search-registries, aliases, ...); containers/image refuses that too: use only the v2 format",
                    path.display()
                );
            }
            v1_to_v2(path, f.registries.unwrap_or_default())?
        } else {
            (
                f.registry.unwrap_or_default(),
                f.unqualified_search_registries,
            )
        };
        let registries = check_registries(path, entries)?;
        self.sources.push(path.to_path_buf());
        if let Some(s) = search {
            let mut checked = vec![];
            for r in s {
                let r = location(path, "unqualified-search-registries entry", &r)?;
                let ok = crate::reference::parse(&format!("{r}/x"))
                    .is_ok_and(|p| p.qualified && p.registry == r);
                if !ok {
                    bail!(
                        "{}: unqualified-search-registries entry `{r}` is not a registry host[:port]",
                        path.display()
                    );
                }
                checked.push(r);
            }
            self.short_names.search_registries = checked;
        }
        if let Some(m) = f.short_name_mode {
            self.short_names.mode = ShortNameMode::parse(&m)
                .with_context(|| format!("{}: short-name-mode", path.display()))?;
            self.mode_set = true;
        }
        if let Some(h) = f.credential_helpers {
            self.credential_helpers = Some(h);
        }
        if let Some(a) = f.aliases {
            self.merge_aliases(path, a)?;
        }
        for entry in registries {
            self.registries.retain(|e| e.prefix != entry.prefix);
            self.registries.push(entry);
        }
        Ok(())
    }

    /// Merge the machine-written short-name aliases file (only its `[aliases]` table counts).
    pub fn merge_alias_file(&mut self, text: &str, path: &Path) -> Result<()> {
        #[derive(Deserialize)]
        struct Aliases {
            aliases: Option<BTreeMap<String, String>>,
        }
        let f: Aliases = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("short-name aliases file {}: {e}", path.display()))?;
        self.sources.push(path.to_path_buf());
        self.merge_aliases(path, f.aliases.unwrap_or_default())
    }

    fn merge_aliases(&mut self, path: &Path, a: BTreeMap<String, String>) -> Result<()> {
        for (k, v) in a {
            check_alias(path, &k, &v)?;
            self.short_names.aliases.retain(|(key, _)| key != &k);
            if !v.is_empty() {
                self.short_names.aliases.push((k, v));
            }
        }
        Ok(())
    }

    /// Back-compatible name for [`RegistriesConf::merge_file`] on a main file.
    pub fn merge_text(&mut self, text: &str, path: &Path) -> Result<()> {
        self.merge_file(text, path, false)
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
                "{reference} is blocked: the [[registry]] entry with prefix `{}` in {} sets blocked = true; \
                 remove that setting or use another registry",
                conf.prefix,
                conf.source.display()
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

/// Replace `prefix` with `location` in `reference`. A wildcard prefix matches the reference's host name
/// (without its port), which the location replaces; an empty location keeps the reference.
fn rewrite(reference: &Reference, prefix: &str, location: &str) -> Result<Reference> {
    if location.is_empty() {
        return Ok(reference.clone());
    }
    let s = reference.to_string();
    let matched = match prefix.strip_prefix('*') {
        Some(domain) => {
            let host = s.split('/').next().unwrap_or(&s);
            let name = host.split(':').next().unwrap_or(host);
            if !name.ends_with(domain) {
                bail!("{reference} does not match registries.conf prefix `{prefix}`");
            }
            name.len()
        }
        None => prefix.len().min(s.len()),
    };
    let rest = &s[matched..];
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
location = "evil.example"
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

    fn err(text: &str, drop_in: bool) -> String {
        let mut c = RegistriesConf::default();
        format!(
            "{:#}",
            c.merge_file(text, Path::new("/etc/r.conf"), drop_in)
                .unwrap_err()
        )
    }

    #[test]
    fn v1_format() {
        let c = conf(
            r#"
[registries.search]
registries = ["quay.io", "docker.io"]
[registries.insecure]
registries = ["h:5000", "bad.example"]
[registries.block]
registries = ["bad.example/"]
"#,
        );
        assert_eq!(c.short_names.search_registries, ["quay.io", "docker.io"]);
        assert!(c.insecure_host("h:5000"));
        let bad = c.find(&parse("bad.example/x/y").unwrap()).unwrap();
        assert!(bad.blocked && bad.insecure);
        assert_eq!(c.registries.len(), 2);
        let e = err(
            "[registries.search]\nregistries = [\"a.io\"]\n[[registry]]\nlocation = \"b.io\"\n",
            false,
        );
        assert!(
            e.contains("mixes the v1 format") && e.contains("/etc/r.conf"),
            "{e}"
        );
        let e = err(
            "unqualified-search-registries = []\n[registries.block]\nregistries = []\n",
            false,
        );
        assert!(e.contains("mixes"), "{e}");
        // Only v2 in drop-ins.
        let e = err("[registries.search]\nregistries = [\"a.io\"]\n", true);
        assert!(e.contains("drop-in must use the v2 format"), "{e}");
        // An empty v1 table with no list is neither format.
        conf("[registries.search]\n[[registry]]\nlocation = \"b.io\"\n");
    }

    #[test]
    fn checks_like_containers_image() {
        for (text, want) in [
            (
                "[[registry]]\nlocation = \"https://a.io\"\n",
                "without http://",
            ),
            ("[[registry]]\nprefix = \"a.io\"\n", "has no location"),
            (
                "[[registry]]\nprefix = \"*.a.io:5000\"\n",
                "must look like *.example.com",
            ),
            (
                "[[registry]]\nlocation = \"a.io\"\npull-from-mirror = \"all\"\n",
                "belongs in a [[registry.mirror]]",
            ),
            (
                "[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"sometimes\"\n",
                "not one of all, digest-only, tag-only",
            ),
            (
                "[[registry]]\nlocation = \"a.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"all\"\n",
                "use one of them",
            ),
            (
                "[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\ninsecure = true\n",
                "has no location",
            ),
            (
                "[[registry]]\nprefix = \"x.io\"\nlocation = \"a.io\"\ninsecure = true\n[[registry]]\nprefix = \"y.io\"\nlocation = \"a.io\"\n",
                "conflicting `insecure`",
            ),
            (
                "unqualified-search-registries = [\"a.io/ns\"]\n",
                "is not a registry host",
            ),
            (
                "[aliases]\n\"quay.io/x\" = \"quay.io/x/y\"\n",
                "must be a short name",
            ),
            ("[aliases]\n\"x\" = \"x/y\"\n", "fully qualified"),
            (
                "[aliases]\n\"x\" = \"quay.io/x/y:1\"\n",
                "without tag or digest",
            ),
            ("short-name-mode = \"maybe\"\n", "short-name-mode"),
        ] {
            let e = err(text, false);
            assert!(e.contains(want) && e.contains("/etc/r.conf"), "{text}: {e}");
        }
        // Of two tables with one prefix in one file, the first counts.
        let c = conf(
            "[[registry]]\nprefix = \"p.io\"\nlocation = \"a.io\"\n[[registry]]\nprefix = \"p.io\"\nlocation = \"b.io\"\n",
        );
        assert_eq!(c.registries.len(), 1);
        assert_eq!(c.registries[0].location, "a.io");
    }

    #[test]
    fn wildcard_mirrors_and_blocked_message() {
        let c = conf(
            r#"
[[registry]]
prefix = "*.corp.example"
[[registry.mirror]]
location = "mirror.example/corp"
[[registry]]
location = "b.example"
blocked = true
"#,
        );
        let e = c
            .pull_endpoints(&parse("a.corp.example/x/y:1").unwrap())
            .unwrap();
        let names: Vec<String> = e.iter().map(|e| e.reference.to_string()).collect();
        assert_eq!(names, ["mirror.example/corp/x/y:1", "a.corp.example/x/y:1"]);
        assert!(c.find(&parse("corp.example/x").unwrap()).is_none());
        let msg = format!(
            "{:#}",
            c.push_endpoint(&parse("b.example/x:1").unwrap())
                .unwrap_err()
        );
        assert!(
            msg.contains("prefix `b.example`")
                && msg.contains("test.conf")
                && msg.contains("blocked = true"),
            "{msg}"
        );
    }

    #[test]
    fn aliases_merge_remove_and_alias_file() {
        let mut c = conf("[aliases]\n\"app\" = \"quay.io/t/app\"\n\"tool\" = \"quay.io/t/tool\"\n");
        c.merge_file("[aliases]\n\"app\" = \"\"\n", Path::new("d.conf"), true)
            .unwrap();
        assert_eq!(
            c.short_names.aliases,
            [("tool".to_string(), "quay.io/t/tool".to_string())]
        );
        c.merge_alias_file(
            "[aliases]\n\"tool\" = \"ghcr.io/t/tool\"\n",
            Path::new("short-name-aliases.conf"),
        )
        .unwrap();
        assert_eq!(
            c.short_names.aliases,
            [("tool".to_string(), "ghcr.io/t/tool".to_string())]
        );
    }
}
