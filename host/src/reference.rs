//! Image references (`[HOST[:PORT]/]PATH[:TAG][@DIGEST]`), parsed and normalised as containers/image and
//! docker/reference do: `docker.io` and `library/` defaults, `index.docker.io` folded into `docker.io`,
//! lowercase repositories, tag plus digest. Short names (no registry in the input) can be resolved through
//! registries.conf aliases and `unqualified-search-registries` with [`resolve_short_name`].

use anyhow::{Result, bail};
use std::fmt;
use std::sync::LazyLock;

/// The registry a reference without a host names.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The namespace a one-component name on docker.io gets.
pub const OFFICIAL_NAMESPACE: &str = "library";
const LEGACY_DOMAIN: &str = "index.docker.io";
const NAME_MAX: usize = 255;

static COMPONENT: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").unwrap());
static DOMAIN: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$",
    )
    .unwrap()
});
static TAG: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").unwrap());
static DIGEST: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
        .unwrap()
});
static HEX64: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[a-f0-9]{64}$").unwrap());

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port: `docker.io`, `localhost:5000`, `[::1]:5000`.
    pub registry: String,
    /// Repository path inside the registry: `library/alpine`.
    pub repository: String,
    pub tag: Option<String>,
    /// `algo:hex`.
    pub digest: Option<String>,
    /// Whether the input named a registry (false for short names like `alpine` or `user/app`).
    pub qualified: bool,
}

impl Reference {
    /// Parse and normalise `s` as `docker://` does (a short name lands on docker.io).
    pub fn parse(s: &str) -> Result<Reference> {
        parse(s)
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag, or `latest` when neither a tag nor a digest was given (what a pull or push means).
    pub fn tag_or_latest(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// What a registry's `/manifests/<ref>` takes: the digest when present, else the tag (default `latest`).
    pub fn manifest_ref(&self) -> String {
        match &self.digest {
            Some(d) => d.clone(),
            None => self.tag.clone().unwrap_or_else(|| "latest".into()),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository with a digest and no tag.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// The docker reference with `:latest` added when neither tag nor digest is given.
    pub fn with_default_tag(&self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.with_tag("latest")
        } else {
            self.clone()
        }
    }

    /// The shortest form docker prints (`alpine:3`, `user/app`, `quay.io/x/y:1`).
    pub fn familiar(&self) -> String {
        let mut name = if self.registry == DEFAULT_DOMAIN {
            self.repository
                .strip_prefix("library/")
                .filter(|r| !r.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            name.push(':');
            name.push_str(t);
        }
        if let Some(d) = &self.digest {
            name.push('@');
            name.push_str(d);
        }
        name
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Reference> {
        parse(s)
    }
}

/// Whether `first` (the part before the first `/`) names a registry rather than a namespace.
fn is_domain(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

/// Parse and normalise a reference; the error says which part is wrong.
pub fn parse(s: &str) -> Result<Reference> {
    if s.is_empty() {
        bail!("invalid reference: it is empty; write [HOST[:PORT]/]NAME[:TAG][@DIGEST]");
    }
    if HEX64.is_match(s) {
        bail!(
            "invalid reference `{s}`: a 64-character hexadecimal string is an image ID, not a repository name"
        );
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            if !DIGEST.is_match(d) {
                bail!(
                    "invalid reference `{s}`: `{d}` is not a digest (expected ALGORITHM:HEX, e.g. sha256:<64 hex>)"
                );
            }
            if let Some(hex) = d.strip_prefix("sha256:")
                && hex.len() != 64
            {
                bail!(
                    "invalid reference `{s}`: a sha256 digest has 64 hex characters, `{d}` has {}",
                    hex.len()
                );
            }
            (r, Some(d.to_string()))
        }
        None => (s, None),
    };
    // A tag follows the last colon that comes after the last slash (a colon before it is a port).
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let (n, t) = (&rest[..last_slash + i], &rest[last_slash + i + 1..]);
            if !TAG.is_match(t) {
                bail!(
                    "invalid reference `{s}`: tag `{t}` is not valid (letters, digits, `_`, `.`, `-`; at most 128 characters, not starting with `.` or `-`)"
                );
            }
            (n, Some(t.to_string()))
        }
        None => (rest, None),
    };
    if name.is_empty() {
        bail!("invalid reference `{s}`: the repository name is empty");
    }
    let (mut registry, mut repository, qualified) = match name.split_once('/') {
        Some((first, remainder)) if is_domain(first) => {
            if !DOMAIN.is_match(first) {
                bail!("invalid reference `{s}`: `{first}` is not a valid registry host[:port]");
            }
            (first.to_string(), remainder.to_string(), true)
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string(), false),
    };
    if registry == LEGACY_DOMAIN {
        registry = DEFAULT_DOMAIN.to_string();
    }
    if registry == DEFAULT_DOMAIN && !repository.contains('/') {
        repository = format!("{OFFICIAL_NAMESPACE}/{repository}");
    }
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        bail!("invalid reference `{s}`: repository name `{repository}` must be lowercase");
    }
    for component in repository.split('/') {
        if !COMPONENT.is_match(component) {
            bail!(
                "invalid reference `{s}`: path component `{component}` is not valid (lowercase letters and digits, separated by `.`, `_`, `__` or dashes)"
            );
        }
    }
    if registry.len() + 1 + repository.len() > NAME_MAX {
        bail!("invalid reference `{s}`: the repository name is longer than {NAME_MAX} characters");
    }
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
        qualified,
    })
}

/// registries.conf `short-name-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShortNameMode {
    /// Use the single candidate; with several, refuse without a terminal to ask.
    #[default]
    Enforcing,
    /// Try every candidate in order.
    Permissive,
    /// Try every candidate in order (the old behaviour).
    Disabled,
}

impl ShortNameMode {
    pub fn parse(s: &str) -> Result<ShortNameMode> {
        Ok(match s {
            "" | "enforcing" => ShortNameMode::Enforcing,
            "permissive" => ShortNameMode::Permissive,
            "disabled" => ShortNameMode::Disabled,
            other => {
                bail!("short-name-mode `{other}` is not one of enforcing, permissive, disabled")
            }
        })
    }
}

/// What short-name resolution needs from registries.conf.
#[derive(Debug, Clone, Default)]
pub struct ShortNameConfig {
    pub search_registries: Vec<String>,
    /// Short name (without tag/digest) → fully qualified name.
    pub aliases: Vec<(String, String)>,
    pub mode: ShortNameMode,
}

/// The candidates, in order, for the name `input` as a user typed it (for `lade pull NAME`).
/// A fully qualified name is its own single candidate. An alias wins; otherwise every
/// `unqualified-search-registries` entry is a candidate. In enforcing mode several candidates are an error
/// (lade never prompts).
pub fn resolve_short_name(input: &str, cfg: &ShortNameConfig) -> Result<Vec<Reference>> {
    let parsed = parse(input)?;
    if parsed.qualified {
        return Ok(vec![parsed]);
    }
    // The name as typed, without tag or digest: `alpine`, `user/app`.
    let typed = {
        let no_digest = input.split('@').next().unwrap_or(input);
        match no_digest.rfind(':') {
            Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
            _ => no_digest,
        }
    };
    let keep = |mut r: Reference| {
        r.tag = parsed.tag.clone();
        r.digest = parsed.digest.clone();
        r
    };
    for (key, value) in &cfg.aliases {
        if key == typed || key == &parsed.repository {
            let target = parse(value)
                .map_err(|e| anyhow::anyhow!("registries.conf alias `{key}` = `{value}`: {e}"))?;
            if !target.qualified || target.tag.is_some() || target.digest.is_some() {
                bail!(
                    "registries.conf alias `{key}` = `{value}` must be a fully qualified name without tag or digest"
                );
            }
            return Ok(vec![keep(target)]);
        }
    }
    if cfg.search_registries.is_empty() {
        bail!(
            "short name `{input}`: no registries.conf `unqualified-search-registries` and no alias; use a fully qualified name such as docker.io/{}",
            parsed.familiar()
        );
    }
    let mut out = vec![];
    for reg in &cfg.search_registries {
        let full = format!("{reg}/{typed}");
        let r = parse(&full).map_err(|e| {
            anyhow::anyhow!("short name `{input}` with search registry `{reg}`: {e}")
        })?;
        out.push(keep(r));
    }
    if out.len() > 1 && cfg.mode == ShortNameMode::Enforcing {
        bail!(
            "short name `{input}` is ambiguous: it could be {}; short-name-mode is enforcing and lade does not prompt, so use a fully qualified name or add an [aliases] entry",
            out.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_containers_image() {
        assert_eq!(n("alpine"), "docker.io/library/alpine");
        assert_eq!(n("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(n("user/app"), "docker.io/user/app");
        assert_eq!(n("index.docker.io/alpine"), "docker.io/library/alpine");
        assert_eq!(
            n("docker.io/library/alpine:1"),
            "docker.io/library/alpine:1"
        );
        assert_eq!(n("localhost/app"), "localhost/app");
        assert_eq!(n("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(n("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
        assert_eq!(n("[::1]:5000/app:x"), "[::1]:5000/app:x");
        assert_eq!(n("quay.io/a/b/c:v1.2-x_y"), "quay.io/a/b/c:v1.2-x_y");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("alpine:3@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("3"));
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.manifest_ref(), d);
        assert!(!r.qualified);
        assert!(parse("quay.io/x").unwrap().qualified);
        assert_eq!(parse("Host.Example/app").unwrap().registry, "Host.Example");
        assert_eq!(parse("a__b/c-d--e").unwrap().repository, "a__b/c-d--e");
        assert_eq!(parse("alpine").unwrap().familiar(), "alpine");
        assert_eq!(
            parse("docker.io/user/app:1").unwrap().familiar(),
            "user/app:1"
        );
    }

    #[test]
    fn rejects_with_a_reason() {
        let e = |s: &str| format!("{:#}", parse(s).unwrap_err());
        assert!(e("").contains("empty"));
        assert!(e("docker.io/Alpine").contains("lowercase"));
        assert!(e("alpine:bad tag").contains("tag"));
        assert!(e("alpine:-x").contains("tag"));
        assert!(e("alpine@sha256:abc").contains("64 hex"));
        assert!(e("alpine@nodigest").contains("not a digest"));
        assert!(e(&"a".repeat(64)).contains("image ID"));
        assert!(e("host.io/a..b").contains("path component"));
        assert!(e("host.io/").contains("path component"));
        assert!(e("-bad.io/x").contains("registry host"));
        assert!(e(&format!("x.io/{}", "a".repeat(260))).contains("255"));
    }

    #[test]
    fn short_names() {
        let cfg = ShortNameConfig {
            search_registries: vec!["registry.example".into(), "docker.io".into()],
            aliases: vec![("myapp".into(), "quay.io/team/myapp".into())],
            mode: ShortNameMode::Permissive,
        };
        let r = resolve_short_name("myapp:2", &cfg).unwrap();
        assert_eq!(
            r.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            ["quay.io/team/myapp:2"]
        );
        let r = resolve_short_name("busybox", &cfg).unwrap();
        assert_eq!(
            r.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            ["registry.example/busybox", "docker.io/library/busybox"]
        );
        let r = resolve_short_name("quay.io/x/y:1", &cfg).unwrap();
        assert_eq!(r[0].to_string(), "quay.io/x/y:1");
        let enforcing = ShortNameConfig {
            mode: ShortNameMode::Enforcing,
            ..cfg.clone()
        };
        assert!(
            format!(
                "{:#}",
                resolve_short_name("busybox", &enforcing).unwrap_err()
            )
            .contains("ambiguous")
        );
        let one = ShortNameConfig {
            search_registries: vec!["r.example:5000".into()],
            ..enforcing
        };
        assert_eq!(
            resolve_short_name("a/b:c", &one).unwrap()[0].to_string(),
            "r.example:5000/a/b:c"
        );
        let none = ShortNameConfig::default();
        assert!(
            format!("{:#}", resolve_short_name("x", &none).unwrap_err())
                .contains("unqualified-search-registries")
        );
    }
}
