//! `--secret` values: where each secret comes from (a file or an environment variable), as buildah takes them.
//! Only where a value is, never the value, is kept; it is read when a step uses it.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a secret's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A host file, read when a step mounts it.
    File(PathBuf),
    /// A host environment variable (of the lade process), read when a step uses it.
    Env(String),
}

/// The `--secret` values of a build, by id. Holds where each value is, never the value itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    by_id: BTreeMap<String, SecretSource>,
}

impl Secrets {
    /// Parse `--secret` values: `id=ID[,type=file|env][,src=PATH|source=PATH][,env=VAR]`. Without `src`
    /// the id names the source too; without `type`, `env=` means env, a `src` or an existing file means file,
    /// and a bare id that names a set environment variable means env (as buildah and buildx decide).
    /// A file must exist and an environment variable must be set now, so mistakes show before any step runs.
    pub fn parse(specs: &[String]) -> Result<Secrets> {
        let mut by_id = BTreeMap::new();
        for spec in specs {
            let (id, source) = parse_one(spec, |v| std::env::var_os(v).is_some())
                .with_context(|| format!("--secret {spec:?}"))?;
            match &source {
                SecretSource::File(p) => {
                    let md = std::fs::metadata(p).with_context(|| {
                        format!("--secret {spec:?}: cannot read {}", p.display())
                    })?;
                    if !md.is_file() {
                        bail!("--secret {spec:?}: {} is not a regular file", p.display());
                    }
                }
                SecretSource::Env(v) => {
                    if std::env::var_os(v).is_none() {
                        bail!("--secret {spec:?}: the environment variable {v} is not set");
                    }
                }
            }
            by_id.insert(id, source);
        }
        Ok(Secrets { by_id })
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The ids given, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    pub fn source(&self, id: &str) -> Option<&SecretSource> {
        self.by_id.get(id)
    }

    /// The value of `id` now; None when no such secret was given.
    pub(super) fn value(&self, id: &str) -> Result<Option<Vec<u8>>> {
        match self.by_id.get(id) {
            None => Ok(None),
            Some(SecretSource::File(p)) => std::fs::read(p)
                .map(Some)
                .with_context(|| format!("reading secret {id:?} from {}", p.display())),
            Some(SecretSource::Env(v)) => match std::env::var_os(v) {
                Some(val) => Ok(Some(std::os::unix::ffi::OsStringExt::into_vec(val))),
                None => bail!("secret {id:?}: the environment variable {v} is no longer set"),
            },
        }
    }
}

/// One `--secret` value; `env_set` says whether a host environment variable exists.
fn parse_one(spec: &str, env_set: impl Fn(&str) -> bool) -> Result<(String, SecretSource)> {
    let (mut id, mut typ, mut src, mut env) = (None, None, None, None);
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').with_context(|| {
            format!("{field:?} is not key=value (expected id=ID,src=PATH or id=ID,env=VAR)")
        })?;
        if v.is_empty() {
            bail!("{k}= needs a value");
        }
        match k.trim() {
            "id" => id = Some(v.to_string()),
            "type" => match v {
                "file" | "env" => typ = Some(v.to_string()),
                _ => bail!("type={v}: expected file or env"),
            },
            "src" | "source" => src = Some(v.to_string()),
            "env" => env = Some(v.to_string()),
            other => bail!("unknown key {other:?} (expected id, type, src or env)"),
        }
    }
    let id = id.context("missing id= (expected id=ID,src=PATH or id=ID,env=VAR)")?;
    if src.is_some() && env.is_some() {
        bail!("give either src= or env=, not both");
    }
    let typ = match (typ, &src, &env) {
        (Some(t), _, _) => t,
        (None, _, Some(_)) => "env".to_string(),
        (None, Some(_), None) => "file".to_string(),
        (None, None, None) => {
            if !Path::new(&id).is_file() && env_set(&id) {
                "env".to_string()
            } else {
                "file".to_string()
            }
        }
    };
    let name = env.or(src).unwrap_or_else(|| id.clone());
    let source = if typ == "env" {
        SecretSource::Env(name)
    } else {
        SecretSource::File(PathBuf::from(name))
    };
    Ok((id, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_specs_parse_like_buildah() {
        let none = |_: &str| false;
        assert_eq!(
            parse_one("id=tok,src=/run/tok", none).unwrap(),
            ("tok".into(), SecretSource::File("/run/tok".into()))
        );
        assert_eq!(
            parse_one("id=tok,source=f.txt", none).unwrap(),
            ("tok".into(), SecretSource::File("f.txt".into()))
        );
        assert_eq!(
            parse_one("id=tok,env=TOKEN", none).unwrap(),
            ("tok".into(), SecretSource::Env("TOKEN".into()))
        );
        assert_eq!(
            parse_one("type=env,id=TOKEN", none).unwrap(),
            ("TOKEN".into(), SecretSource::Env("TOKEN".into()))
        );
        assert_eq!(
            parse_one("id=tok,type=env,src=TOKEN", none).unwrap(),
            ("tok".into(), SecretSource::Env("TOKEN".into()))
        );
        // A bare id: env when such a variable is set, else a file of that name.
        assert_eq!(
            parse_one("id=GITHUB_TOKEN", |v| v == "GITHUB_TOKEN").unwrap(),
            (
                "GITHUB_TOKEN".into(),
                SecretSource::Env("GITHUB_TOKEN".into())
            )
        );
        assert_eq!(
            parse_one("id=GITHUB_TOKEN", none).unwrap(),
            (
                "GITHUB_TOKEN".into(),
                SecretSource::File("GITHUB_TOKEN".into())
            )
        );
        for bad in [
            "src=/x",
            "id=a,type=ssh",
            "id=a,src=/x,env=Y",
            "id=a,color=red",
            "id=a,src=",
            "tok",
        ] {
            assert!(parse_one(bad, none).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn secrets_parse_checks_sources_exist() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "v").unwrap();
        let s = Secrets::parse(&[format!("id=a,src={}", f.display())]).unwrap();
        assert_eq!(s.ids().collect::<Vec<_>>(), ["a"]);
        assert_eq!(s.value("a").unwrap().unwrap(), b"v");
        assert_eq!(s.value("b").unwrap(), None);
        let err =
            Secrets::parse(&[format!("id=a,src={}/missing", dir.path().display())]).unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
        let err = Secrets::parse(&["id=a,env=LADE_TEST_SURELY_UNSET_VAR".into()]).unwrap_err();
        assert!(
            format!("{err:#}").contains("LADE_TEST_SURELY_UNSET_VAR"),
            "{err:#}"
        );
    }
}
