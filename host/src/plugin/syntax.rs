//! Which frontend reads a Containerfile: `--frontend`, else the file's `# syntax=` parser directive, else
//! the built-in `dockerfile`. The directive names a built-in or installed plugin, or an OCI reference to a
//! plugin artifact, pulled once and cached by manifest digest (a pinned digest is looked up in the cache
//! with no request at all). BuildKit's own `docker/dockerfile` images mean the built-in frontend.

use super::artifact::{Remote, split_pin};
use super::installed;
use super::runtime::PluginSource;
use crate::transport::{self, SystemContext};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// The value of the `syntax` parser directive, by BuildKit's rules: directives are `# key=value` comment
/// lines at the very top of the file (keys case-insensitive, blanks around `=` allowed); the first line that
/// is not one (an instruction, a blank line, another comment) ends them.
pub fn directive(source: &str) -> Option<String> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    for line in source.lines() {
        let rest = line.trim().strip_prefix('#')?;
        let (key, value) = rest.split_once('=')?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        if key.eq_ignore_ascii_case("syntax") {
            let value = value.trim();
            return (!value.is_empty()).then(|| value.to_string());
        }
    }
    None
}

/// What a `# syntax=` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syntax {
    /// BuildKit's Dockerfile frontend image (`docker/dockerfile:1.7`, `docker.io/docker/dockerfile:1-labs`,
    /// with or without a digest): lade's built-in `dockerfile` frontend reads the same language.
    BuildKitDockerfile,
    /// A built-in or installed plugin's name.
    Name(String),
    /// A plugin artifact in a registry, as a `docker://` transport string (pin included).
    Reference(String),
}

/// Tell the three kinds of `# syntax=` values apart.
pub fn classify(value: &str) -> Result<Syntax> {
    let repo = value.split('@').next().unwrap_or(value);
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    let repo = repo.strip_prefix("docker://").unwrap_or(repo);
    let repo = ["docker.io/", "index.docker.io/"]
        .iter()
        .find_map(|p| repo.strip_prefix(p))
        .unwrap_or(repo);
    if matches!(repo, "docker/dockerfile" | "docker/dockerfile-upstream") {
        return Ok(Syntax::BuildKitDockerfile);
    }
    if installed::check_name(value).is_ok() && !value.ends_with(".wasm") {
        return Ok(Syntax::Name(value.to_string()));
    }
    match transport::parse(value) {
        Ok(transport::TransportRef::Docker(_)) => Ok(Syntax::Reference(value.to_string())),
        // A Containerfile names registries only: a local path in it would read the builder's files.
        Ok(_) => bail!(
            "`# syntax={value}`: a Containerfile can name a plugin or a registry reference, not a local \
             transport; install the plugin (`lade plugin install {value}`) and name it, or use --frontend"
        ),
        Err(_) => Ok(Syntax::Reference(format!("docker://{value}"))),
    }
}

/// The frontend chosen for a build, and what to tell the user about the choice.
pub struct Chosen {
    pub source: PluginSource,
    pub note: Option<String>,
}

/// Choose the frontend: `flag` (`--frontend NAME|FILE`) wins over the definition's `# syntax=` line.
/// `ctx`: for pulling a referenced frontend.
pub async fn choose(
    flag: Option<&str>,
    definition: &str,
    plugins_dir: &Path,
    ctx: &SystemContext,
) -> Result<Chosen> {
    let syntax = directive(definition);
    if let Some(f) = flag {
        return Ok(Chosen {
            source: PluginSource::find(f, plugins_dir)?,
            note: syntax.map(|s| format!("frontend `{f}` (--frontend overrides `# syntax={s}`)")),
        });
    }
    let Some(value) = syntax else {
        return Ok(Chosen {
            source: PluginSource::Embedded("dockerfile".into()),
            note: None,
        });
    };
    let context = || format!("`# syntax={value}`");
    match classify(&value).with_context(context)? {
        Syntax::BuildKitDockerfile => Ok(Chosen {
            source: PluginSource::Embedded("dockerfile".into()),
            note: Some(format!(
                "# syntax={value}: BuildKit's Dockerfile frontend; using lade's built-in `dockerfile` frontend"
            )),
        }),
        Syntax::Name(name) => {
            let source = PluginSource::find(&name, plugins_dir).with_context(context)?;
            let note = format!("# syntax={value}: the {} frontend `{name}`", source.kind());
            Ok(Chosen {
                source,
                note: Some(note),
            })
        }
        Syntax::Reference(reference) => {
            let (source, how) = pulled(&reference, plugins_dir, ctx)
                .await
                .with_context(context)?;
            Ok(Chosen {
                source,
                note: Some(format!("# syntax={value}: frontend {how}")),
            })
        }
    }
}

/// The frontend artifact `reference` names, from the cache or pulled into it. A pinned reference found in
/// the cache costs no request; an unpinned one costs one manifest request, and the blobs only when that
/// manifest is new. Returns the source and how it was obtained, for the progress note.
pub async fn pulled(
    reference: &str,
    plugins_dir: &Path,
    ctx: &SystemContext,
) -> Result<(PluginSource, String)> {
    let at = |path| PluginSource::Pulled {
        reference: reference.to_string(),
        path,
    };
    if let (_, Some(pin)) = split_pin(reference)?
        && let Some(path) = installed::pulled(plugins_dir, &pin)
    {
        return Ok((at(path), "from the plugin cache".into()));
    }
    let remote = Remote::open(reference, ctx).await?;
    if let Some(path) = installed::pulled(plugins_dir, &remote.digest) {
        return Ok((
            at(path),
            format!("from the plugin cache ({})", remote.digest),
        ));
    }
    let wasm = remote.fetch().await?;
    let path = installed::store_pulled(plugins_dir, &remote.digest, &wasm)?;
    Ok((at(path), format!("pulled ({})", remote.digest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_only_at_the_top() {
        assert_eq!(
            directive("# syntax=docker/dockerfile:1.7\nFROM x\n").as_deref(),
            Some("docker/dockerfile:1.7")
        );
        assert_eq!(
            directive("#  SYNTAX = a/b:1 \nFROM x\n").as_deref(),
            Some("a/b:1")
        );
        assert_eq!(
            directive("# escape=`\n# syntax=front\nFROM x\n").as_deref(),
            Some("front")
        );
        assert_eq!(directive("FROM x\n# syntax=front\n"), None);
        assert_eq!(directive("\n# syntax=front\nFROM x\n"), None);
        assert_eq!(directive("# a comment\n# syntax=front\n"), None);
        assert_eq!(directive("# syntax=\nFROM x\n"), None);
    }

    #[test]
    fn values_are_classified() {
        for v in [
            "docker/dockerfile:1.7",
            "docker/dockerfile:1",
            "docker/dockerfile:1.7-labs",
            "docker.io/docker/dockerfile:1.7",
            "docker/dockerfile-upstream:master",
            "docker/dockerfile",
            &format!("docker.io/docker/dockerfile:1@sha256:{}", "a".repeat(64)),
        ] {
            assert_eq!(classify(v).unwrap(), Syntax::BuildKitDockerfile, "{v}");
        }
        assert_eq!(classify("front").unwrap(), Syntax::Name("front".into()));
        assert_eq!(
            classify("127.0.0.1:5000/plugins/front:1").unwrap(),
            Syntax::Reference("docker://127.0.0.1:5000/plugins/front:1".into())
        );
        assert_eq!(
            classify("docker://r.example/f:1").unwrap(),
            Syntax::Reference("docker://r.example/f:1".into())
        );
        assert!(classify("oci:/etc:x").is_err());
        assert_eq!(
            classify("ghcr.io/o/dockerfile:1").unwrap(),
            Syntax::Reference("docker://ghcr.io/o/dockerfile:1".into())
        );
    }
}
