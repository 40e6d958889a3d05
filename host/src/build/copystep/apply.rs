//! [`PreparedCopy::apply`]: write the planned entries, archives and git trees into the layer directory,
//! through [`Out`] only (file descriptors, never a host path, never through a symlink).

use super::out::{Meta, Out, create_file, set_link_meta, set_meta_fd};
use super::{
    CopyRequest, CopySource, Data, Kind, Node, PreparedCopy, archive_reader, git, mtime_of,
};
use crate::layer::{UnpackOptions, WhiteoutMode, unpack_tar_at};
use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// `path` split into its parent and its name.
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

impl PreparedCopy {
    /// The file `path` is written as a hardlink of, when that file is in this copy too.
    fn link_target(&self, path: &str) -> Option<&str> {
        let first = self.hardlinks.get(path)?;
        let is_file = |p: &str| matches!(self.nodes.get(p).map(|n| &n.kind), Some(Kind::File(_)));
        (is_file(path) && is_file(first) && !self.hardlinks.contains_key(first))
            .then_some(first.as_str())
    }

    /// Write the layer's content into the empty directory `out` (see the module docs).
    pub fn apply(&self, req: &CopyRequest, out: &Path) -> Result<()> {
        let what = if req.add { "ADD" } else { "COPY" };
        let start = std::time::Instant::now();
        self.apply_inner(req, out).with_context(|| {
            crate::build::AtStep(format!("{}: {what} into {}", req.location, out.display()))
        })?;
        tracing::debug!("{}: {what} written in {:?}", req.location, start.elapsed());
        Ok(())
    }

    fn apply_inner(&self, req: &CopyRequest, out: &Path) -> Result<()> {
        let mut out = Out::open(out)?;
        self.write_nodes(req, &mut out)?;
        self.extract_archives(req, &mut out)?;
        self.copy_git_trees(req, &mut out)?;
        self.finish_dirs(req, &out)
    }

    /// Directories and symlinks in order (a parent before its children), then the files in parallel, then
    /// the hardlinks between them.
    fn write_nodes(&self, req: &CopyRequest, out: &mut Out) -> Result<()> {
        let mut files = Vec::new();
        for (path, n) in &self.nodes {
            let (parent, name) = split(path);
            match &n.kind {
                Kind::Dir => out.walk(path)?,
                Kind::Symlink(t) => {
                    out.walk(parent)?;
                    rustix::fs::symlinkat(t.as_str(), out.top(), name)
                        .with_context(|| format!("creating link {}", out.show(path)))?;
                    let what = || out.show(path);
                    set_link_meta(out.top(), name.as_ref(), (n.uid, n.gid), n.mtime, &what)?;
                }
                Kind::File(_) if self.link_target(path).is_some() => out.walk(parent)?,
                Kind::File(d) => {
                    out.walk(parent)?;
                    files.push((parent, name, n, d));
                }
            }
        }
        let out = &*out;
        // Sorted by path, so a worker's next file is mostly in the directory it already holds open.
        files.par_iter().try_for_each_init(
            || None::<(&str, OwnedFd)>,
            |held, (parent, name, n, d)| {
                if held.as_ref().is_none_or(|(p, _)| p != parent) {
                    *held = Some((parent, out.open_dir(parent)?));
                }
                let dir = held.as_ref().map(|(_, fd)| fd.as_fd()).expect("just set");
                write_file(req, dir, name, n, d, &|| {
                    out.show(&super::join(parent, name))
                })
            },
        )?;
        for path in self.hardlinks.keys() {
            if let Some(first) = self.link_target(path) {
                let ((fp, fname), (p, name)) = (split(first), split(path));
                let (from, to) = (out.open_dir(fp)?, out.open_dir(p)?);
                rustix::fs::linkat(&from, fname, &to, name, rustix::fs::AtFlags::empty())
                    .with_context(|| format!("linking {path} to {first}"))?;
            }
        }
        Ok(())
    }

    /// Local archives, each unpacked into its directory's fd (entries resolve inside it).
    fn extract_archives(&self, req: &CopyRequest, out: &mut Out) -> Result<()> {
        for x in &self.extracts {
            out.walk(&x.dir)?;
            let CopySource::Context(ctx) = req.source else {
                bail!("archives are extracted from the build context only");
            };
            let f = ctx.open_file(&x.source)?;
            let reader = archive_reader(f.into_std())?
                .ok_or_else(|| anyhow!("{} is no longer a tar archive", x.source))?;
            let opts = UnpackOptions {
                whiteouts: WhiteoutMode::Apply,
                ..Default::default()
            };
            let dir = out.top().try_clone_to_owned()?;
            unpack_tar_at(reader, dir, Path::new(&out.show(&x.dir)), &opts)
                .with_context(|| format!("extracting {} into {}", x.source, x.dir))?;
        }
        Ok(())
    }

    fn copy_git_trees(&self, req: &CopyRequest, out: &mut Out) -> Result<()> {
        for g in &self.gits {
            out.walk(&g.dir)?;
            let co = git::checkout(&g.source, &g.commit, g.keep_git_dir, req.tmp_dir)
                .with_context(|| {
                    format!(
                        "checking out {} at commit {}",
                        g.source.display, g.commit.sha
                    )
                })?;
            let mode = |m: u32, is_dir: bool| match &self.mode_spec {
                Some(s) => s.apply(m, is_dir),
                None => m,
            };
            let opts = git::CopyOpts {
                owner: self.new_dir_owner,
                mode: &mode,
                mtime: co.time,
                skip_git_dir: !g.keep_git_dir,
            };
            git::copy_tree(&co.root, out.top(), &out.show(&g.dir), &opts)
                .with_context(|| format!("copying {} into /{}", g.source.display, g.dir))?;
        }
        Ok(())
    }

    /// Directory metadata last (writing into a directory moves its mtime), deepest first: the planned
    /// directories, then the parents this copy made (with the metadata they have in the image, or 0755
    /// owned by the new owner).
    fn finish_dirs(&self, req: &CopyRequest, out: &Out) -> Result<()> {
        for (path, n) in self.nodes.iter().rev() {
            if let Kind::Dir = n.kind {
                let Some(fd) = out.made_dir(path)? else {
                    continue;
                };
                let m = Meta {
                    mode: n.mode,
                    owner: (n.uid, n.gid),
                    mtime: n.mtime,
                    xattrs: &n.xattrs,
                };
                set_meta_fd(fd.as_fd(), &m, &|| out.show(path))?;
            }
        }
        let mut implicit: Vec<&str> = out
            .made()
            .filter(|p| {
                !matches!(
                    self.nodes.get(*p),
                    Some(Node {
                        kind: Kind::Dir,
                        ..
                    })
                )
            })
            .collect();
        implicit.sort();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        for path in implicit.iter().rev() {
            let Some(fd) = out.made_dir(path)? else {
                continue;
            };
            let (mode, owner, mtime) = match req.dest.resolve(&format!("/{path}"), false)? {
                Some(r) if r.meta.is_dir() => (
                    r.meta.mode() & 0o7777,
                    (r.meta.uid(), r.meta.gid()),
                    mtime_of(&r.meta),
                ),
                _ => (
                    0o755,
                    self.new_dir_owner,
                    (now.as_secs() as i64, now.subsec_nanos()),
                ),
            };
            let m = Meta {
                mode,
                owner,
                mtime,
                xattrs: &[],
            };
            set_meta_fd(fd.as_fd(), &m, &|| out.show(path))?;
        }
        Ok(())
    }
}

/// Create `name` in `dir` with its content and metadata, all through its own fd.
fn write_file(
    req: &CopyRequest,
    dir: BorrowedFd,
    name: &str,
    n: &Node,
    d: &Data,
    what: &dyn Fn() -> String,
) -> Result<()> {
    let fd = create_file(dir, name.as_ref()).with_context(|| format!("creating {}", what()))?;
    let mut dst = File::from(fd);
    match d {
        Data::Context(rel) => {
            let CopySource::Context(ctx) = req.source else {
                bail!("context file without a context");
            };
            let mut src = ctx.open_file(rel)?.into_std();
            // File to file: the standard library uses copy_file_range (reflinks where possible).
            std::io::copy(&mut src, &mut dst).with_context(|| format!("copying {rel}"))?;
        }
        Data::Host(h) => {
            let mut src = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(h)
                .with_context(|| format!("opening {}", h.display()))?;
            std::io::copy(&mut src, &mut dst)
                .with_context(|| format!("copying {}", h.display()))?;
        }
        Data::Inline(text) => dst.write_all(text.as_bytes())?,
    }
    let m = Meta {
        mode: n.mode,
        owner: (n.uid, n.gid),
        mtime: n.mtime,
        xattrs: &n.xattrs,
    };
    set_meta_fd(dst.as_fd(), &m, what)
}
