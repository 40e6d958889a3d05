//! WORKDIR creates its directory when the image lacks it, as buildah and BuildKit do: missing components
//! owned by the current USER, existing parents carried into the layer with the metadata they already have.

use super::rootview::RootView;
use crate::dispatch::isolation::user;
use anyhow::{Context, Result};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Whether `path` (absolute, in the image) is missing or not a directory in `view`.
pub fn missing(view: &RootView, path: &str) -> Result<bool> {
    Ok(!view.resolve(path, true)?.is_some_and(|r| r.meta.is_dir()))
}

/// The uid and gid `USER` names, through the image's /etc/passwd and /etc/group.
pub fn owner(view: &RootView, user_spec: &str) -> Result<(u32, u32)> {
    let read = |p: &str| -> Result<String> {
        Ok(view
            .read_file(p)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default())
    };
    let id = user::resolve(user_spec, &read("/etc/passwd")?, &read("/etc/group")?)?;
    Ok((id.uid, id.gid))
}

/// Write into the empty dir `out` the layer that makes `path` a directory: existing parents as they are,
/// missing components 0755 owned by `uid:gid`. Symlinks on the way are followed inside the image.
pub fn create(view: &RootView, path: &str, (uid, gid): (u32, u32), out: &Path) -> Result<()> {
    let mut cur = String::from("/");
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let next = if cur == "/" {
            format!("/{comp}")
        } else {
            format!("{cur}/{comp}")
        };
        let found = view.resolve(&next, true)?.filter(|r| r.meta.is_dir());
        let (at, mode, owner, mtime) = match &found {
            Some(r) => (
                r.path.clone(),
                r.meta.mode() & 0o7777,
                (r.meta.uid(), r.meta.gid()),
                Some(r.meta.mtime()),
            ),
            None => (next.clone(), 0o755, (uid, gid), None),
        };
        let dir = out.join(at.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::lchown(&dir, Some(owner.0), Some(owner.1))
                .with_context(|| format!("chown {}", dir.display()))?;
        }
        if let Some(secs) = mtime {
            let t = rustix::fs::Timespec {
                tv_sec: secs,
                tv_nsec: 0,
            };
            let times = rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                &dir,
                &times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .with_context(|| format!("setting times of {}", dir.display()))?;
        }
        cur = at;
    }
    Ok(())
}
