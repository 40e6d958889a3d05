//! Installed plugins: `<root>/plugins/<name>.wasm`, one file each, written atomically, with
//! `<name>.origin.json` saying where it came from. Names are checked so a plugin can never choose a path
//! outside that directory. Frontends pulled for `# syntax=` are kept apart, in `<root>/plugins/pulled/`, by
//! manifest digest.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The installed-plugins directory under a store root.
pub fn dir(root: &Path) -> PathBuf {
    root.join("plugins")
}

/// A plugin name is lower-case ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    anyhow::ensure!(
        ok,
        "`{name}` is not a valid plugin name: use up to 64 lower-case letters, digits, `-`, `_` and `.`, starting \
         with a letter or digit"
    );
    Ok(())
}

/// The file of installed plugin `name`.
pub fn path(plugins_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    Ok(plugins_dir.join(format!("{name}.wasm")))
}

/// Names of the installed plugins, sorted; none when the directory does not exist.
pub fn names(plugins_dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(plugins_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!(
            "listing installed plugins in {}: {e}",
            plugins_dir.display()
        ),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".wasm")
                .map(str::to_owned)
        })
        .filter(|n| check_name(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Where an installed plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// The file or the reference (a transport string, pin included) it was installed from.
    pub reference: String,
    /// The artifact's manifest digest (none for a file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
}

fn origin_path(plugins_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    Ok(plugins_dir.join(format!("{name}.origin.json")))
}

/// Where installed plugin `name` came from; None when not recorded (installed by an older lade).
pub fn origin(plugins_dir: &Path, name: &str) -> Option<Origin> {
    let text = std::fs::read(origin_path(plugins_dir, name).ok()?).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Write `bytes` to `target` in `dir`: temporary file, fsync, rename, fsync of the directory.
fn write_atomic(dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Store `bytes` as installed plugin `name`, with where it came from: the origin first, then the component,
/// each written atomically. Returns the file.
pub fn store(
    plugins_dir: &Path,
    name: &str,
    bytes: &[u8],
    origin: &Origin,
) -> anyhow::Result<PathBuf> {
    let target = path(plugins_dir, name)?;
    let origin_file = origin_path(plugins_dir, name)?;
    let write = || -> anyhow::Result<()> {
        write_atomic(
            plugins_dir,
            &origin_file,
            &serde_json::to_vec_pretty(origin)?,
        )?;
        Ok(write_atomic(plugins_dir, &target, bytes)?)
    };
    write().map_err(|e| {
        anyhow::anyhow!(
            "installing plugin `{name}` into {}: {e}",
            plugins_dir.display()
        )
    })?;
    Ok(target)
}

/// The cache of frontends pulled for `# syntax=`.
pub fn pulled_dir(plugins_dir: &Path) -> PathBuf {
    plugins_dir.join("pulled")
}

fn pulled_path(plugins_dir: &Path, manifest: &crate::oci::Digest) -> PathBuf {
    pulled_dir(plugins_dir).join(format!(
        "{}-{}.wasm",
        manifest.algorithm(),
        manifest.digest()
    ))
}

/// The pulled component of the artifact whose manifest is `manifest`, when cached.
pub fn pulled(plugins_dir: &Path, manifest: &crate::oci::Digest) -> Option<PathBuf> {
    Some(pulled_path(plugins_dir, manifest)).filter(|p| p.is_file())
}

/// Cache the (verified) component of the artifact whose manifest is `manifest`. Returns the file.
pub fn store_pulled(
    plugins_dir: &Path,
    manifest: &crate::oci::Digest,
    bytes: &[u8],
) -> anyhow::Result<PathBuf> {
    let target = pulled_path(plugins_dir, manifest);
    write_atomic(&pulled_dir(plugins_dir), &target, bytes)
        .map_err(|e| anyhow::anyhow!("caching the pulled plugin as {}: {e}", target.display()))?;
    Ok(target)
}

/// Remove installed plugin `name`.
pub fn remove(plugins_dir: &Path, name: &str) -> anyhow::Result<()> {
    let target = path(plugins_dir, name)?;
    match std::fs::remove_file(&target) {
        Ok(()) => {
            let _ = std::fs::remove_file(origin_path(plugins_dir, name)?);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!(
                "no installed plugin `{name}` in {} (see `lade plugin list`)",
                plugins_dir.display()
            )
        }
        Err(e) => anyhow::bail!("removing {}: {e}", target.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_directory() {
        for bad in ["", "../x", "a/b", "A", ".hidden", "x y", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        for good in ["dockerfile", "my-scanner", "cosign_2", "v1.2"] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn store_list_remove_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("plugins");
        assert!(names(&dir).unwrap().is_empty());
        let from = |r: &str| Origin {
            reference: r.into(),
            manifest_digest: None,
        };
        store(&dir, "b", b"1", &from("b.wasm")).unwrap();
        store(&dir, "a", b"2", &from("a.wasm")).unwrap();
        store(&dir, "a", b"3", &from("docker://r/a:1")).unwrap();
        assert_eq!(names(&dir).unwrap(), ["a", "b"]);
        assert_eq!(origin(&dir, "a"), Some(from("docker://r/a:1")));
        assert_eq!(std::fs::read(path(&dir, "a").unwrap()).unwrap(), b"3");
        remove(&dir, "a").unwrap();
        assert!(
            remove(&dir, "a")
                .unwrap_err()
                .to_string()
                .contains("no installed plugin `a`")
        );
        assert_eq!(names(&dir).unwrap(), ["b"]);
        assert_eq!(origin(&dir, "a"), None);
    }
}
