//! How an image is named for policy lookup, per transport, as containers/image's
//! `PolicyConfigurationIdentity`/`PolicyConfigurationNamespaces` name it, and which scopes each transport
//! accepts in policy.json (`ValidatePolicyConfigurationScope`).

use crate::reference::{self, Reference};
use crate::transport::TransportRef;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// The policy section the local store reads first (then [`STORE_ALIAS`], when the policy has no `lade`
/// section): both transport names open the same store.
pub const STORE_TRANSPORT: &str = "lade";
pub const STORE_ALIAS: &str = "containers-storage";

/// An image as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRef {
    /// The transport string, for messages (`docker://quay.io/a/b:1`).
    pub name: String,
    /// The policy.json transport section (`docker`, `oci`, `lade`, ...).
    pub transport: String,
    /// The most specific scope.
    pub identity: String,
    /// Less specific scopes, most specific first (the transport's `""` and the global default follow).
    pub namespaces: Vec<String>,
    /// The docker reference signatures are matched against, when the transport has one.
    pub docker_reference: Option<Reference>,
}

/// `docker://` identity: the name with its tag, or with its digest (a digest wins over a tag, since the
/// digest is what is read).
pub fn docker_identity(r: &Reference) -> String {
    match (&r.digest, &r.tag) {
        (Some(d), _) => format!("{}@{d}", r.name()),
        (None, Some(t)) => format!("{}:{t}", r.name()),
        (None, None) => format!("{}:latest", r.name()),
    }
}

/// `docker://` namespaces: the repository, each parent path, the host (with port), then `*.domain`
/// wildcards for the host's parent domains (without the port).
pub fn docker_namespaces(r: &Reference) -> Vec<String> {
    let mut out = vec![];
    let mut name = r.name();
    loop {
        out.push(name.clone());
        match name.rfind('/') {
            Some(i) => name.truncate(i),
            None => break,
        }
    }
    if let Some(i) = name.find(':') {
        name.truncate(i);
    }
    while let Some(i) = name.find('.') {
        name = name[i + 1..].to_string();
        out.push(format!("*.{name}"));
    }
    out
}

/// An absolute path with `.`/`..` and symlinks resolved; a path that does not exist yet keeps its missing
/// tail (as containers/image's `ResolvePathToFullyExplicit`).
pub fn explicit_path(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(file)) if parent != abs => explicit_path(parent).join(file),
        _ => abs,
    }
}

/// Path namespaces of oci: and oci-archive: (the path itself, then each parent above `/`).
fn path_and_parents(p: &str) -> Vec<String> {
    let mut out = vec![];
    let mut path = p.to_string();
    while let Some(i) = path.rfind('/') {
        if path == "/" {
            break;
        }
        out.push(path.clone());
        path.truncate(i);
    }
    out
}

/// Path namespaces of dir: (each parent above `/`, not the path itself).
fn parents(p: &str) -> Vec<String> {
    let mut out = vec![];
    let mut path = p.to_string();
    while let Some(i) = path.rfind('/') {
        if i == 0 {
            break;
        }
        path.truncate(i);
        out.push(path.clone());
    }
    out
}

/// The policy name of the transport string `name`. `store_root`: the local store, for `lade:` names;
/// `store_name`: the full name a local image resolves to there (when it has one).
pub fn policy_ref(name: &str, store_root: &Path, store_name: Option<&str>) -> Result<PolicyRef> {
    let t = crate::transport::parse(name)?;
    let display = |p: &Path| p.to_string_lossy().into_owned();
    let (transport, identity, namespaces, docker_reference) = match &t {
        TransportRef::Docker(r) => {
            let mut r = reference::parse(r)?;
            if r.digest.is_some() {
                r.tag = None;
            } else {
                r = r.with_default_tag();
            }
            (
                "docker",
                docker_identity(&r),
                docker_namespaces(&r),
                Some(r),
            )
        }
        TransportRef::Oci { dir: p, .. } | TransportRef::OciArchive { file: p, .. } => {
            let resolved = display(&explicit_path(p));
            let transport = if matches!(t, TransportRef::Oci { .. }) {
                "oci"
            } else {
                "oci-archive"
            };
            (
                transport,
                resolved.clone(),
                path_and_parents(&resolved),
                None,
            )
        }
        TransportRef::Dir(p) => {
            let resolved = display(&explicit_path(p));
            ("dir", resolved.clone(), parents(&resolved), None)
        }
        TransportRef::DockerArchive { reference: r, .. } => {
            let named = r
                .as_deref()
                .filter(|r| !r.starts_with('@'))
                .map(reference::parse)
                .transpose()?
                .map(|r| r.with_default_tag());
            ("docker-archive", String::new(), vec![], named)
        }
        TransportRef::Local(n) => {
            let named = reference::parse(store_name.unwrap_or(n))
                .ok()
                .map(|r| r.with_default_tag());
            let root = display(&explicit_path(store_root));
            let spec = format!("[{STORE_TRANSPORT}@{root}]");
            let mut namespaces = vec![];
            let identity = match &named {
                Some(r) => {
                    let mut components: Vec<&str> = vec![&r.registry];
                    components.extend(r.repository.split('/'));
                    while !components.is_empty() {
                        namespaces.push(format!("{spec}{}", components.join("/")));
                        components.pop();
                    }
                    format!("{spec}{r}")
                }
                None => format!("{spec}@{n}"),
            };
            namespaces.push(spec.clone());
            namespaces.push(format!("[{root}]"));
            (STORE_TRANSPORT, identity, namespaces, named)
        }
        TransportRef::ContainersStorage(rest) => {
            // As containers/image's storageReference: `[DRIVER@GRAPHROOT]NAME:TAG`, its repository's
            // parents, then `[DRIVER@GRAPHROOT]` and `[GRAPHROOT]`.
            use crate::transport::containers_storage::{CsRef, normalized_name};
            let r = CsRef::parse(rest)?;
            let cfg = r.store()?;
            let spec = format!("[{}@{}]", cfg.driver, display(&cfg.graphroot));
            let named = normalized_name(&r.image)?.and_then(|n| reference::parse(&n).ok());
            let mut namespaces = vec![];
            let identity = match &named {
                Some(n) => {
                    let mut components: Vec<&str> = vec![&n.registry];
                    components.extend(n.repository.split('/'));
                    while !components.is_empty() {
                        namespaces.push(format!("{spec}{}", components.join("/")));
                        components.pop();
                    }
                    format!("{spec}{n}")
                }
                None => format!("{spec}@{}", r.image.trim_start_matches('@')),
            };
            namespaces.push(spec.clone());
            namespaces.push(format!("[{}]", display(&cfg.graphroot)));
            (STORE_ALIAS, identity, namespaces, named)
        }
    };
    Ok(PolicyRef {
        name: name.to_string(),
        transport: transport.to_string(),
        identity,
        namespaces,
        docker_reference,
    })
}

fn absolute_clean(scope: &str, what: &str) -> Result<()> {
    if !scope.starts_with('/') {
        bail!("{what} scope {scope:?} must be an absolute path");
    }
    if scope == "/" {
        bail!("scope \"/\" is not allowed: use the transport's default scope \"\"");
    }
    // filepath.Clean would change it: `//`, a trailing `/`, or a `.`/`..` component.
    let unclean = scope.contains("//")
        || scope.ends_with('/')
        || scope.split('/').any(|c| c == "." || c == "..");
    if unclean {
        bail!(
            "{what} scope {scope:?} is not in canonical form (no trailing `/`, `.`, `..` or `//`)"
        );
    }
    Ok(())
}

/// Whether `scope` is a valid (non-empty) scope of `transport`. Transports lade does not know are
/// accepted unchecked, as containers/image accepts them.
pub fn validate(transport: &str, scope: &str) -> Result<()> {
    match transport {
        "docker" | "atomic" => Ok(()),
        "oci" | "oci-archive" | "dir" => absolute_clean(scope, transport),
        "docker-archive" => {
            bail!("{transport}: does not support any scopes except the default \"\" one")
        }
        "docker-daemon" if crate::policy::signature::valid_digest(scope) => {
            bail!("docker-daemon: can not use the algo:digest value {scope} as a namespace")
        }
        STORE_TRANSPORT | STORE_ALIAS => store_scope(scope),
        _ => Ok(()),
    }
}

/// `[DRIVER@ROOT]NAME…` or `[ROOT]NAME…`, as containers-storage checks its scopes.
fn store_scope(scope: &str) -> Result<()> {
    let bad = || {
        anyhow::anyhow!(
            "store scope {scope:?} must look like [DRIVER@/ABSOLUTE/ROOT]NAME or [/ABSOLUTE/ROOT]"
        )
    };
    let rest = scope.strip_prefix('[').ok_or_else(bad)?;
    let (spec, name) = rest.split_once(']').ok_or_else(bad)?;
    let root = match spec.split_once('@') {
        Some((d, r)) if !d.is_empty() && !r.is_empty() => r,
        None if !spec.is_empty() => spec,
        _ => return Err(bad()),
    };
    if !root.starts_with('/') {
        bail!("store scope {scope:?}: the store root {root:?} must be an absolute path");
    }
    let fields: Vec<&str> = name.splitn(3, '@').collect();
    for f in fields.iter().skip(1) {
        let ok = crate::policy::signature::valid_digest(f)
            || (f.len() == 64 && f.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            bail!("store scope {scope:?}: {f:?} is neither a digest nor an image ID");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names_like_containers_image() {
        let r = reference::parse("example.com:5000/ns/repo:tag").unwrap();
        assert_eq!(docker_identity(&r), "example.com:5000/ns/repo:tag");
        assert_eq!(
            docker_namespaces(&r),
            [
                "example.com:5000/ns/repo",
                "example.com:5000/ns",
                "example.com:5000",
                "*.com"
            ]
        );
        let r = reference::parse("a.b.example.com/x").unwrap();
        assert_eq!(
            docker_namespaces(&r),
            [
                "a.b.example.com/x",
                "a.b.example.com",
                "*.b.example.com",
                "*.example.com",
                "*.com"
            ]
        );
        let p = policy_ref("docker://busybox", Path::new("/s"), None).unwrap();
        assert_eq!(p.identity, "docker.io/library/busybox:latest");
        assert_eq!(p.namespaces[0], "docker.io/library/busybox");
        let d = format!("sha256:{}", "1".repeat(64));
        let p = policy_ref(&format!("docker://q.io/a:t@{d}"), Path::new("/s"), None).unwrap();
        assert_eq!(p.identity, format!("q.io/a@{d}"));
    }

    #[test]
    fn path_transports() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        std::fs::create_dir(root.join("lay")).unwrap();
        let r = root.display().to_string();
        let p = policy_ref(&format!("oci:{r}/lay:tag"), Path::new("/s"), None).unwrap();
        assert_eq!(p.transport, "oci");
        assert_eq!(p.identity, format!("{r}/lay"));
        assert_eq!(p.namespaces[0], format!("{r}/lay"));
        assert_eq!(
            p.namespaces.last().unwrap(),
            &format!("/{}", r.split('/').nth(1).unwrap())
        );
        assert!(p.docker_reference.is_none());
        let p = policy_ref(&format!("dir:{r}/missing/x"), Path::new("/s"), None).unwrap();
        assert_eq!(p.identity, format!("{r}/missing/x"));
        assert_eq!(p.namespaces[0], format!("{r}/missing"));
        let p = policy_ref(
            &format!("docker-archive:{r}/a.tar:app:1"),
            Path::new("/s"),
            None,
        )
        .unwrap();
        assert_eq!(p.identity, "");
        assert_eq!(
            p.docker_reference.unwrap().to_string(),
            "docker.io/library/app:1"
        );
    }

    #[test]
    fn store_names() {
        let p = policy_ref(
            "lade:alpine",
            Path::new("/st"),
            Some("docker.io/library/alpine:3"),
        )
        .unwrap();
        assert_eq!(p.transport, "lade");
        assert_eq!(p.identity, "[lade@/st]docker.io/library/alpine:3");
        assert_eq!(
            p.namespaces,
            [
                "[lade@/st]docker.io/library/alpine",
                "[lade@/st]docker.io/library",
                "[lade@/st]docker.io",
                "[lade@/st]",
                "[/st]"
            ]
        );
    }

    #[test]
    fn scope_validation() {
        assert!(validate("docker", "anything goes").is_ok());
        assert!(validate("oci", "/a/b").is_ok());
        assert!(validate("oci", "a/b").is_err());
        assert!(validate("oci", "/").is_err());
        assert!(validate("dir", "/a/b/").is_err());
        assert!(validate("dir", "/a/./b").is_err());
        assert!(validate("dir", "/a/../b").is_err());
        assert!(validate("docker-archive", "/x").is_err());
        assert!(validate("docker-daemon", "busybox:latest").is_ok());
        assert!(validate("docker-daemon", &format!("sha256:{}", "a".repeat(64))).is_err());
        assert!(validate("lade", "[lade@/st]docker.io/a").is_ok());
        assert!(validate("containers-storage", "[/st]").is_ok());
        assert!(validate("containers-storage", "[overlay@rel]x").is_err());
        assert!(validate("containers-storage", "docker.io/a").is_err());
        assert!(validate("unknown-transport", "whatever").is_ok());
    }
}
