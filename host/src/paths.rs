//! Where lade keeps things on disk, by the conventions of the containers tools.

use std::path::PathBuf;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether this process runs in a user namespace other than the initial one (a rootless build re-runs
/// itself in one: uid 0 there is the user, other uids come from /etc/subuid).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| {
            let f: Vec<&str> = m.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        })
        .unwrap_or(false)
}

/// Whether lade lacks real root: not uid 0, or uid 0 of a user namespace. Then overlayfs needs `userxattr`
/// (its markers live in `user.overlay.*`) and device nodes cannot be made.
pub fn rootless() -> bool {
    !is_root() || in_user_namespace()
}

fn home() -> PathBuf {
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("/"))
}

/// The default store: /var/lib/lade as root, else `$XDG_DATA_HOME/lade` (~/.local/share/lade).
pub fn default_root() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/lib/lade")
    } else {
        dirs::data_dir()
            .unwrap_or_else(|| home().join(".local/share"))
            .join("lade")
    }
}

/// Rebuildable caches (compiled plugins): `$LADE_CACHE_DIR`, else /var/cache/lade as root, else
/// `$XDG_CACHE_HOME/lade` (~/.cache/lade).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LADE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if is_root() {
        PathBuf::from("/var/cache/lade")
    } else {
        dirs::cache_dir()
            .unwrap_or_else(|| home().join(".cache"))
            .join("lade")
    }
}
