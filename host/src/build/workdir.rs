//! WORKDIR creates its directory when the image lacks it, as buildah and BuildKit do: missing components
//! owned by the current USER, existing parents carried into the layer with the metadata they already have.
//! A symlink on the way is followed inside the image root, as `mkdir -p` in a chroot would.

use super::copystep::out::{Meta, Out, is_root, set_meta_fd};
use super::rootview::RootView;
use crate::dispatch::isolation::user;
use anyhow::{Context, Result, bail};
use rustix::fs::{Gid, Uid};
use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Symlinks followed on the way before giving up (as Linux's ELOOP).
const MAX_LINKS: usize = 40;

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

/// `path` with every symlink on it followed inside the image root, dangling ones too (as `mkdir -p` in a
/// chroot, and buildah's copier, resolve it): the in-image components the directory is made at.
fn resolve_through_links(view: &RootView, path: &str) -> Result<Vec<String>> {
    let comps = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect()
    };
    let mut done: Vec<String> = Vec::new();
    let mut todo: VecDeque<String> = comps(path).into();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            done.pop();
            continue;
        }
        done.push(c);
        let here = format!("/{}", done.join("/"));
        match view.resolve(&here, false)? {
            Some(r) if r.meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    bail!("WORKDIR {path}: too many levels of symbolic links in the image");
                }
                let target = std::fs::read_link(&r.host)
                    .with_context(|| format!("reading link {here} in the image"))?;
                done.pop();
                if target.has_root() {
                    done.clear();
                }
                for t in comps(&target.to_string_lossy()).into_iter().rev() {
                    todo.push_front(t);
                }
            }
            _ => {}
        }
    }
    Ok(done)
}

/// Write into the empty dir `out` the layer that makes `path` a directory: existing parents as they are,
/// missing components 0755 owned by `uid:gid`. Symlinks on the way are followed inside the image (dangling
/// ones too); `out` is written through file descriptors only.
pub fn create(view: &RootView, path: &str, (uid, gid): (u32, u32), out: &Path) -> Result<()> {
    let comps = resolve_through_links(view, path)?;
    let mut tree = Out::open(out)?;
    tree.walk(&comps.join("/"))?;
    // Metadata deepest first, once every directory exists (making a child moves its parent's mtime).
    for i in (1..=comps.len()).rev() {
        let rel = comps[..i].join("/");
        let Some(fd) = tree.made_dir(&rel)? else {
            bail!("{} changed while WORKDIR made it", tree.show(&rel));
        };
        let found = view
            .resolve(&format!("/{rel}"), false)?
            .filter(|r| r.meta.is_dir());
        let what = || tree.show(&rel);
        match found {
            Some(r) => {
                let m = Meta {
                    mode: r.meta.mode() & 0o7777,
                    owner: (r.meta.uid(), r.meta.gid()),
                    mtime: (r.meta.mtime(), r.meta.mtime_nsec() as u32),
                    xattrs: &[],
                };
                set_meta_fd(fd.as_fd(), &m, &what)?;
            }
            None => {
                if is_root() {
                    rustix::fs::fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                        .with_context(|| format!("setting the owner of {}", what()))?;
                }
                rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o755))
                    .with_context(|| format!("setting the mode of {}", what()))?;
            }
        }
    }
    Ok(())
}
