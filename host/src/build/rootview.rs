//! A read-only merged view of an image's unpacked layers, in overlay form (base first).
//!
//! Lookups apply overlay rules: a char 0/0 device is a whiteout, a directory with the overlay opaque xattr
//! (`trusted.overlay.opaque` or `user.overlay.opaque`) hides everything below it, and a non-directory hides
//! lower directories of the same path. Symlinks, absolute or relative, resolve *inside* the image root as a
//! chroot would: `..` stops at `/`, and nothing outside the layer dirs is ever reached.

use crate::dispatch::isolation::Snapshot;
use crate::layer::{OVERLAY_OPAQUE_USER_XATTR, OVERLAY_OPAQUE_XATTR};
use anyhow::{Context, Result, bail};
use std::collections::{HashSet, VecDeque};
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Symlinks followed in one lookup before giving up (as Linux's ELOOP).
const MAX_LINKS: usize = 40;

/// The merged root filesystem of overlay-form layer dirs, base first.
#[derive(Clone, Debug)]
pub struct RootView {
    lowers: Vec<PathBuf>,
}

/// A path found in the merged view.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// In-image absolute path with every symlink followed (the last one only when asked), normalized.
    pub path: String,
    /// The top-most layer entry that provides it.
    pub host: PathBuf,
    /// Its metadata (not followed).
    pub meta: Metadata,
}

/// What one layer says about one path.
enum InLayer {
    Found(PathBuf, Metadata),
    Whiteout,
    Absent,
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    let mut v = [0u8; 4];
    [OVERLAY_OPAQUE_XATTR, OVERLAY_OPAQUE_USER_XATTR]
        .iter()
        .any(|k| matches!(rustix::fs::lgetxattr(p, *k, &mut v[..]), Ok(1) if v[0] == b'y'))
}

/// Split an in-image path into normal components (lexically; `..` handled by the caller).
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

impl RootView {
    /// A layer dir listed more than once is read only at its top-most place (the same tree: see
    /// [`Snapshot::distinct_lowers`]).
    pub fn new(lowers: Vec<PathBuf>) -> Self {
        RootView {
            lowers: Snapshot::distinct_lowers(&lowers),
        }
    }

    /// The distinct layer dirs, base first.
    pub fn lowers(&self) -> &[PathBuf] {
        &self.lowers
    }

    /// `comps` (a real path: every parent a directory in the merged view) in layer `layer`, and whether
    /// this layer hides the layers below it for that path.
    fn in_layer(layer: &Path, comps: &[&str]) -> Result<(InLayer, bool)> {
        let mut p = layer.to_path_buf();
        for (i, c) in comps.iter().enumerate() {
            p.push(c);
            let last = i + 1 == comps.len();
            match std::fs::symlink_metadata(&p) {
                Ok(m) if is_whiteout(&m) => return Ok((InLayer::Whiteout, true)),
                Ok(m) if last => {
                    let hides = !m.is_dir() || is_opaque(&p);
                    return Ok((InLayer::Found(p, m), hides));
                }
                Ok(m) if !m.is_dir() => return Ok((InLayer::Absent, true)),
                Ok(_) => {
                    if is_opaque(&p) {
                        // Look no further down than this layer for anything below an opaque dir.
                        let rest = &comps[i + 1..];
                        let mut q = p.clone();
                        for r in rest {
                            q.push(r);
                        }
                        return Ok(match std::fs::symlink_metadata(&q) {
                            Ok(m) if is_whiteout(&m) => (InLayer::Whiteout, true),
                            Ok(m) => (InLayer::Found(q, m), true),
                            Err(_) => (InLayer::Absent, true),
                        });
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENOTDIR) =>
                {
                    return Ok((InLayer::Absent, false));
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
            }
        }
        // The root itself.
        let m =
            std::fs::symlink_metadata(&p).with_context(|| format!("reading {}", p.display()))?;
        Ok((InLayer::Found(p, m), false))
    }

    /// The merged entry at a real path (no symlink followed), if any.
    fn lookup(&self, comps: &[&str]) -> Result<Option<(PathBuf, Metadata)>> {
        for layer in self.lowers.iter().rev() {
            match Self::in_layer(layer, comps)? {
                (InLayer::Found(p, m), _) => return Ok(Some((p, m))),
                (InLayer::Whiteout, _) => return Ok(None),
                (InLayer::Absent, true) => return Ok(None),
                (InLayer::Absent, false) => {}
            }
        }
        Ok(None)
    }

    /// Resolve an absolute in-image path (a relative one is taken from `/`), following symlinks inside the
    /// root; the last component's symlink only when `follow_last`. `None` when it (or a parent) is absent.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<Option<Resolved>> {
        let mut done: Vec<String> = Vec::new();
        let mut todo: VecDeque<String> = components(path).map(str::to_string).collect();
        let mut links = 0;
        let mut cur: Option<(PathBuf, Metadata)> = self.lookup(&[])?;
        if cur.is_none() {
            return Ok(None);
        }
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                done.pop();
                let d: Vec<&str> = done.iter().map(String::as_str).collect();
                cur = self.lookup(&d)?;
                continue;
            }
            done.push(c);
            let d: Vec<&str> = done.iter().map(String::as_str).collect();
            let Some((host, meta)) = self.lookup(&d)? else {
                return Ok(None);
            };
            let last = todo.is_empty();
            if meta.file_type().is_symlink() && (!last || follow_last) {
                links += 1;
                if links > MAX_LINKS {
                    bail!("too many levels of symbolic links resolving {path} in the image");
                }
                let target = std::fs::read_link(&host)
                    .with_context(|| format!("reading link {}", host.display()))?;
                let target = target.to_string_lossy().into_owned();
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for t in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    todo.push_front(t.to_string());
                }
                let d: Vec<&str> = done.iter().map(String::as_str).collect();
                cur = self.lookup(&d)?;
                continue;
            }
            if !last && !meta.is_dir() {
                return Ok(None);
            }
            cur = Some((host, meta));
        }
        let Some((host, meta)) = cur else {
            return Ok(None);
        };
        Ok(Some(Resolved {
            path: format!("/{}", done.join("/")),
            host,
            meta,
        }))
    }

    /// The content of a regular file (symlinks followed); `None` when absent or not a regular file.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.resolve(path, true)? {
            Some(r) if r.meta.is_file() => {
                Ok(Some(std::fs::read(&r.host).with_context(|| {
                    format!("reading {path} in the image ({})", r.host.display())
                })?))
            }
            _ => Ok(None),
        }
    }

    /// The merged, sorted listing of a directory (symlinks followed); empty when absent or not a directory.
    pub fn read_dir(&self, path: &str) -> Result<Vec<String>> {
        let Some(r) = self.resolve(path, true)? else {
            return Ok(Vec::new());
        };
        if !r.meta.is_dir() {
            return Ok(Vec::new());
        }
        let comps: Vec<&str> = components(&r.path).collect();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for layer in self.lowers.iter().rev() {
            let (found, hides) = Self::in_layer(layer, &comps)?;
            match found {
                InLayer::Found(p, m) if m.is_dir() => {
                    let rd = std::fs::read_dir(&p)
                        .with_context(|| format!("listing {}", p.display()))?;
                    for e in rd {
                        let e = e.with_context(|| format!("listing {}", p.display()))?;
                        let name = e.file_name().to_string_lossy().into_owned();
                        if !seen.insert(name.clone()) {
                            continue;
                        }
                        let m = e
                            .metadata()
                            .with_context(|| format!("reading {}", e.path().display()))?;
                        if !is_whiteout(&m) {
                            out.push(name);
                        }
                    }
                    if hides {
                        break;
                    }
                }
                InLayer::Found(..) | InLayer::Whiteout => break,
                InLayer::Absent if hides => break,
                InLayer::Absent => {}
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn whiteout(p: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
    }

    fn layers() -> (tempfile::TempDir, RootView) {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for d in ["usr/bin", "etc", "gone/sub", "opq/old", "dir"] {
            std::fs::create_dir_all(a.join(d)).unwrap();
        }
        std::fs::write(a.join("usr/bin/tool"), "v1").unwrap();
        std::fs::write(a.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(a.join("opq/old/f"), "").unwrap();
        std::fs::write(a.join("dir/lower"), "").unwrap();
        symlink("usr/bin", a.join("bin")).unwrap();
        symlink("/etc/../../../etc/passwd", a.join("usr/pw")).unwrap();
        symlink("loop2", a.join("loop1")).unwrap();
        symlink("loop1", a.join("loop2")).unwrap();
        for d in ["usr/bin", "opq", "dir"] {
            std::fs::create_dir_all(b.join(d)).unwrap();
        }
        std::fs::write(b.join("usr/bin/tool"), "v2").unwrap();
        std::fs::write(b.join("opq/new"), "").unwrap();
        std::fs::write(b.join("dir/upper"), "").unwrap();
        whiteout(&b.join("gone"));
        rustix::fs::setxattr(
            b.join("opq"),
            OVERLAY_OPAQUE_USER_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        (t, RootView::new(vec![a, b]))
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let (_t, v) = layers();
        let r = v.resolve("/bin/tool", true).unwrap().unwrap();
        assert_eq!(r.path, "/usr/bin/tool");
        assert_eq!(std::fs::read(&r.host).unwrap(), b"v2");
        let r = v.resolve("/bin", false).unwrap().unwrap();
        assert_eq!(r.path, "/bin");
        assert!(r.meta.file_type().is_symlink());
        // `..` above the root stays at the root: /usr/pw -> /etc/passwd of the image, not the host.
        assert_eq!(
            v.read_file("/usr/pw").unwrap().unwrap(),
            b"root:x:0:0::/root:/bin/sh\n"
        );
        assert!(v.resolve("/loop1", true).is_err());
        assert!(v.resolve("/nope/x", true).unwrap().is_none());
        assert!(v.resolve("/etc/passwd/x", true).unwrap().is_none());
    }

    #[test]
    fn whiteouts_and_opaque_dirs_apply() {
        let (_t, v) = layers();
        assert!(v.resolve("/gone", true).unwrap().is_none());
        assert!(v.resolve("/gone/sub", true).unwrap().is_none());
        assert!(v.resolve("/opq/old", true).unwrap().is_none());
        assert_eq!(v.read_dir("/opq").unwrap(), vec!["new"]);
        assert_eq!(v.read_dir("/dir").unwrap(), vec!["lower", "upper"]);
        let root = v.read_dir("/").unwrap();
        assert!(!root.contains(&"gone".to_string()));
        assert!(root.contains(&"bin".to_string()));
        assert_eq!(v.read_dir("/bin").unwrap(), vec!["tool"]);
    }

    #[test]
    fn a_layer_again_above_its_whiteouts_brings_its_files_back() {
        let (_t, v) = layers();
        let (a, b) = (v.lowers()[0].clone(), v.lowers()[1].clone());
        // A, B, A: B's whiteout of /gone and its opaque /opq are undone by A on top; B's own files stay.
        let v = RootView::new(vec![a.clone(), b, a]);
        assert!(v.resolve("/gone/sub", true).unwrap().is_some());
        assert_eq!(v.read_dir("/opq").unwrap(), vec!["new", "old"]);
        assert_eq!(v.read_file("/usr/bin/tool").unwrap().unwrap(), b"v1");
        assert_eq!(v.read_dir("/dir").unwrap(), vec!["lower", "upper"]);
    }
}
