//! Rootless builds: lade re-runs itself in a user namespace where uid 0 is the user and uids 1..65535 come
//! from the user's /etc/subuid range (gids likewise), through util-linux `unshare --map-root-user
//! --map-auto` (which uses the setuid newuidmap/newgidmap). Inside, layers keep their owners, overlayfs
//! mounts with `userxattr`, and RUN steps set up their namespaces as under root.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// Set in the re-run process, so it never re-runs itself again.
const MARKER: &str = "LADE_IN_USERNS";

/// Whether this process must re-run itself in a user namespace first.
pub fn needed() -> bool {
    !rustix::process::geteuid().is_root() && std::env::var_os(MARKER).is_none()
}

/// The first subordinate range of `name`/`uid` in an /etc/subuid-style file.
fn has_range(file: &str, name: &str, uid: u32) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| {
        t.lines().any(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            f.len() == 3
                && (f[0] == name || f[0] == uid.to_string())
                && f[2].parse::<u32>().is_ok_and(|n| n >= 1)
        })
    })
}

/// Re-run this very command (same arguments) in a new user and mount namespace, with the store and the
/// cache it would have used outside, and exit with its status.
pub fn rerun(store_root: &Path, cache_dir: &Path) -> Result<std::convert::Infallible> {
    let uid = rustix::process::getuid().as_raw();
    let name = std::env::var("USER")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
                p.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
                })
            })
        })
        .unwrap_or_default();
    for file in ["/etc/subuid", "/etc/subgid"] {
        if !has_range(file, &name, uid) {
            bail!(
                "a rootless build needs subordinate ids for {name} (uid {uid}) in {file}; add a range as root, \
                 e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}`"
            );
        }
    }
    let exe = std::env::current_exe().context("finding the lade binary")?;
    std::fs::create_dir_all(store_root)
        .with_context(|| format!("creating the store {}", store_root.display()))?;
    let status = Command::new("unshare")
        .args(["--user", "--mount", "--map-root-user", "--map-auto", "--"])
        .arg(&exe)
        .args(std::env::args_os().skip(1))
        .env(MARKER, "1")
        .env("LADE_ROOT", store_root)
        .env("LADE_CACHE_DIR", cache_dir)
        .status()
        .context(
            "running `unshare` (util-linux) for a rootless build; it needs newuidmap/newgidmap (Debian: uidmap)",
        )?;
    std::process::exit(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ranges_by_name_or_uid() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("subuid");
        std::fs::write(&f, "alice:100000:65536\n1001:200000:0\n").unwrap();
        let f = f.to_str().unwrap();
        assert!(has_range(f, "alice", 1000));
        assert!(!has_range(f, "bob", 1001), "an empty range does not count");
        assert!(!has_range(f, "carol", 1002));
    }
}
