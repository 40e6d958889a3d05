//! Installed plugins: `<root>/plugins/<name>.wasm`, one file each, written atomically. Names are checked so
//! a plugin can never choose a path outside that directory.

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

/// Store `bytes` as installed plugin `name`: temporary file, fsync, rename. Returns the file.
pub fn store(plugins_dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let target = path(plugins_dir, name)?;
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(plugins_dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(plugins_dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&target).map_err(|e| e.error)?;
        std::fs::File::open(plugins_dir)?.sync_all()
    };
    write().map_err(|e| {
        anyhow::anyhow!(
            "installing plugin `{name}` into {}: {e}",
            plugins_dir.display()
        )
    })?;
    Ok(target)
}

/// Remove installed plugin `name`.
pub fn remove(plugins_dir: &Path, name: &str) -> anyhow::Result<()> {
    let target = path(plugins_dir, name)?;
    match std::fs::remove_file(&target) {
        Ok(()) => Ok(()),
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
        store(&dir, "b", b"1").unwrap();
        store(&dir, "a", b"2").unwrap();
        store(&dir, "a", b"3").unwrap();
        assert_eq!(names(&dir).unwrap(), ["a", "b"]);
        assert_eq!(std::fs::read(path(&dir, "a").unwrap()).unwrap(), b"3");
        remove(&dir, "a").unwrap();
        assert!(
            remove(&dir, "a")
                .unwrap_err()
                .to_string()
                .contains("no installed plugin `a`")
        );
        assert_eq!(names(&dir).unwrap(), ["b"]);
    }
}
