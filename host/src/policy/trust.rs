//! `lade trust show` and `lade trust set`, as podman's `image trust`: show lists each requirement of the
//! default and of every scope, with its type, GPG identities and the lookaside registries.d gives it; set
//! replaces one scope's requirements (or the default) and writes policy.json atomically, refusing to write
//! a policy lade itself would refuse.

use super::config::{KeySource, Policy, Requirement};
use super::registries_d::RegistriesD;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// One row of `trust show` (podman's `trust.Policy`, same JSON names and order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub transport: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub repo_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(rename = "sigstore", skip_serializing_if = "String::is_empty")]
    pub signature_store: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gpg_id: String,
}

/// podman's short name of a requirement type.
fn describe(r: &Requirement) -> &'static str {
    match r {
        Requirement::InsecureAcceptAnything => "accept",
        Requirement::SignedBy { .. } => "signed",
        Requirement::SigstoreSigned(_) => "sigstoreSigned",
        Requirement::Reject => "reject",
        Requirement::SignedBaseLayer { .. } => "",
    }
}

/// The rows for `policy`: the default first, then transports and scopes in sorted order (`docker` shown
/// as `repository`).
pub fn show(policy: &Policy, registries_d: &RegistriesD) -> Vec<Row> {
    let mut out = vec![];
    let mut add = |transport: &str, name: &str, repo: &str, scope: &str, reqs: &[Requirement]| {
        let store = registries_d
            .for_scope(scope)
            .and_then(|ns| {
                ns.lookaside
                    .clone()
                    .filter(|s| !s.is_empty())
                    .or(ns.sigstore.clone())
            })
            .unwrap_or_default();
        for r in reqs {
            let gpg_id = match r {
                Requirement::SignedBy { keys, .. } => gpg_ids(keys).join(", "),
                Requirement::SigstoreSigned(_) => "N/A".into(),
                _ => String::new(),
            };
            out.push(Row {
                transport: transport.into(),
                name: name.into(),
                repo_name: repo.into(),
                keys: vec![],
                signature_store: store.clone(),
                kind: describe(r).into(),
                gpg_id,
            });
        }
    };
    add("all", "* (default)", "default", "", &policy.default);
    for (t, scopes) in &policy.transports {
        let shown = if t == "docker" { "repository" } else { t };
        for (scope, reqs) in scopes {
            add(shown, scope, scope, scope, reqs);
        }
    }
    out
}

/// The user ids (e-mail addresses where given) of the keys in `keys`, read with gpg as podman does; empty
/// when gpg is missing or cannot read them (a warning says so).
fn gpg_ids(keys: &KeySource) -> Vec<String> {
    let mut out = vec![];
    let mut from_file = |p: &Path| {
        for gpg in ["gpg2", "gpg"] {
            match std::process::Command::new(gpg)
                .args(["--batch", "--with-colons", "--show-keys"])
                .arg(p)
                .stderr(std::process::Stdio::null())
                .output()
            {
                Ok(o) if o.status.success() => {
                    out.extend(parse_uids(&String::from_utf8_lossy(&o.stdout)));
                    return;
                }
                Ok(_) => break,
                Err(_) => continue,
            }
        }
        tracing::warn!("cannot read the key identities of {} with gpg", p.display());
    };
    let temp = |d: &[u8]| -> Option<tempfile::NamedTempFile> {
        let f = tempfile::NamedTempFile::new().ok()?;
        std::fs::write(f.path(), d).ok()?;
        Some(f)
    };
    match keys {
        KeySource::Path(p) => from_file(p),
        KeySource::Paths(ps) => ps.iter().for_each(|p| from_file(p)),
        KeySource::Data(d) => {
            if let Some(f) = temp(d) {
                from_file(f.path())
            }
        }
        KeySource::Datas(ds) => {
            for d in ds {
                if let Some(f) = temp(d) {
                    from_file(f.path())
                }
            }
        }
    }
    out
}

/// podman's `parseUids`: field 10 of `pub:` and `uid:` lines, the address inside `<...>` when present.
fn parse_uids(colons: &str) -> Vec<String> {
    colons
        .lines()
        .filter(|l| l.starts_with("uid:") || l.starts_with("pub:"))
        .filter_map(|l| l.split(':').nth(9))
        .filter(|u| !u.is_empty())
        .map(
            |u| match u.split_once('<').and_then(|(_, r)| r.split_once('>')) {
                Some((addr, _)) => addr.to_string(),
                None => u.to_string(),
            },
        )
        .collect()
}

/// `trust set --type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustType {
    Accept,
    Reject,
    SignedBy,
    SigstoreSigned,
}

impl std::str::FromStr for TrustType {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "accept" | "insecureAcceptAnything" => TrustType::Accept,
            "reject" => TrustType::Reject,
            "signedBy" => TrustType::SignedBy,
            "sigstoreSigned" => TrustType::SigstoreSigned,
            other => bail!(
                "invalid choice: {other} (choose from 'accept', 'reject', 'signedBy', 'sigstoreSigned')"
            ),
        })
    }
}

/// Whether `scope` is something `trust set` may name: `default`, a registry, a namespace or repository,
/// an image with a tag or digest, or a `*.domain` wildcard.
fn valid_scope(scope: &str) -> bool {
    if scope == "default" {
        return true;
    }
    if let Some(domain) = scope.strip_prefix("*.") {
        return !domain.contains('/') && super::identity::valid_remap_prefix(domain);
    }
    let last_slash = scope.rfind('/').map_or(0, |i| i + 1);
    let name = match scope.find('@') {
        Some(i) => &scope[..i],
        None => match scope[last_slash..].rfind(':') {
            Some(i) if scope.contains('/') => &scope[..last_slash + i],
            _ => scope,
        },
    };
    super::identity::valid_remap_prefix(name) && crate::reference::parse(scope).is_ok()
}

/// The file `trust set` writes: `explicit`, else the user's policy when it exists, else the system's when
/// it exists or when running as root, else the user's.
pub fn set_path(explicit: Option<&Path>) -> PathBuf {
    if let Ok(p) = super::policy_path(explicit) {
        return p;
    }
    match super::user_policy_path() {
        Some(u) if !rustix::process::geteuid().is_root() => u,
        _ => PathBuf::from(super::SYSTEM_POLICY),
    }
}

/// Replace the requirements of `scope` (`default` or a docker scope) in the policy at `path` with one
/// requirement of `kind` (one per key file for signedBy and sigstoreSigned), as `podman image trust set`.
pub fn set(path: &Path, scope: &str, kind: TrustType, key_files: &[PathBuf]) -> Result<()> {
    if !valid_scope(scope) {
        bail!(
            "invalid scope {scope:?}: use `default`, a registry (quay.io, localhost:5000), a namespace or repository \
             (quay.io/team/app), an image (quay.io/team/app:1) or a wildcard (*.example.com)"
        );
    }
    let keys = key_files
        .iter()
        .map(|k| {
            let abs =
                std::path::absolute(k).with_context(|| format!("key file {}", k.display()))?;
            if !abs.is_file() {
                bail!("key file {} does not exist", abs.display());
            }
            Ok(abs.to_string_lossy().into_owned())
        })
        .collect::<Result<Vec<_>>>()?;
    let reqs: Vec<Value> = match kind {
        TrustType::Accept | TrustType::Reject => {
            if !keys.is_empty() {
                bail!(
                    "{} public keys unexpectedly provided for trust type {}",
                    keys.len(),
                    if kind == TrustType::Accept {
                        "accept"
                    } else {
                        "reject"
                    }
                );
            }
            let t = if kind == TrustType::Accept {
                "insecureAcceptAnything"
            } else {
                "reject"
            };
            vec![json!({ "type": t })]
        }
        TrustType::SignedBy => {
            if keys.is_empty() {
                bail!(
                    "at least one public key must be defined for type 'signedBy' (--pubkeysfile/-f FILE)"
                );
            }
            keys.iter()
                .map(|k| json!({"type": "signedBy", "keyType": "GPGKeys", "keyPath": k}))
                .collect()
        }
        TrustType::SigstoreSigned => {
            if keys.is_empty() {
                bail!(
                    "at least one public key must be defined for type 'sigstoreSigned' (--pubkeysfile/-f FILE)"
                );
            }
            keys.iter()
                .map(|k| json!({"type": "sigstoreSigned", "keyPath": k}))
                .collect()
        }
    };
    let mut doc = match std::fs::read(path) {
        Ok(b) => serde_json::from_slice::<Value>(&b)
            .with_context(|| format!("{} is not JSON", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let Some(top) = doc.as_object_mut() else {
        bail!("{}: the policy is not a JSON object", path.display());
    };
    if scope == "default" {
        top.insert("default".into(), Value::Array(reqs));
    } else {
        if top
            .get("default")
            .and_then(Value::as_array)
            .is_none_or(|d| d.is_empty())
        {
            bail!(
                "{}: the default trust policy must be set first (`lade trust set --type accept|reject default`)",
                path.display()
            );
        }
        let transports = top.entry("transports").or_insert_with(|| json!({}));
        let Some(transports) = transports.as_object_mut() else {
            bail!("{}: \"transports\" is not an object", path.display());
        };
        // A scope already present under some transport is replaced there; else it is a docker scope.
        let owner = transports
            .iter()
            .find(|(_, scopes)| scopes.get(scope).is_some())
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| "docker".into());
        let scopes = transports.entry(owner).or_insert_with(|| json!({}));
        let Some(scopes) = scopes.as_object_mut() else {
            bail!("{}: a transport entry is not an object", path.display());
        };
        scopes.insert(scope.into(), Value::Array(reqs));
    }
    let mut bytes = vec![];
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    serde::Serialize::serialize(
        &doc,
        &mut serde_json::Serializer::with_formatter(&mut bytes, fmt),
    )?;
    bytes.push(b'\n');
    Policy::parse(&bytes).with_context(|| {
        format!(
            "refusing to write {}: the result would not be a valid policy",
            path.display()
        )
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::fsutil::write_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_trust_set_accepts() {
        for ok in [
            "default",
            "quay.io",
            "localhost:5000",
            "quay.io/team/app",
            "quay.io/team/app:1",
            "*.example.com",
            "docker.io/library/busybox",
        ] {
            assert!(valid_scope(ok), "{ok}");
        }
        for bad in ["", "quay.io/", "Quay.io/x Y", "*.", "*.a/b", "quay.io/UP"] {
            assert!(!valid_scope(bad), "{bad}");
        }
    }

    #[test]
    fn uids_like_podman() {
        let colons = "pub:-:255:22:ABC:1:::-:::scESC::::::23::0:\nuid:-::::1::H::Test Key <test@example.com>::::::::::0:\nuid:-::::1::H::plain name::::::::::0:\n";
        assert_eq!(parse_uids(colons), ["test@example.com", "plain name"]);
    }

    #[test]
    fn set_edits_and_validates() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("sub/policy.json");
        let e = set(&p, "quay.io/x", TrustType::Reject, &[]).unwrap_err();
        assert!(format!("{e:#}").contains("default trust policy must be set"));
        set(&p, "default", TrustType::Accept, &[]).unwrap();
        set(&p, "quay.io/x", TrustType::Reject, &[]).unwrap();
        let key = t.path().join("k.pub");
        std::fs::write(&key, "k").unwrap();
        set(
            &p,
            "quay.io/y",
            TrustType::SigstoreSigned,
            std::slice::from_ref(&key),
        )
        .unwrap();
        let policy = Policy::load(&p).unwrap();
        assert_eq!(policy.default, [Requirement::InsecureAcceptAnything]);
        assert_eq!(
            policy.transports["docker"]["quay.io/x"],
            [Requirement::Reject]
        );
        assert!(matches!(
            policy.transports["docker"]["quay.io/y"][0],
            Requirement::SigstoreSigned(_)
        ));
        assert!(set(&p, "quay.io/z", TrustType::SignedBy, &[]).is_err());
        assert!(set(&p, "quay.io/z", TrustType::Accept, &[key]).is_err());
        assert!(
            set(
                &p,
                "quay.io/z",
                TrustType::SignedBy,
                &[t.path().join("missing")]
            )
            .is_err()
        );
        let rows = show(&policy, &RegistriesD::default());
        let kinds: Vec<_> = rows
            .iter()
            .map(|r| (r.transport.as_str(), r.repo_name.as_str(), r.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("all", "default", "accept"),
                ("repository", "quay.io/x", "reject"),
                ("repository", "quay.io/y", "sigstoreSigned")
            ]
        );
    }
}
