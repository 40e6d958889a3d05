//! [`prepare`](super::prepare)'s work in named steps: select the sources, resolve the destination, turn
//! every source into layer entries ([`Planner`]), digest the context files, and key the result.

use super::git;
use super::{
    CopyRequest, CopySource, Data, Extract, GitTree, Item, Kind, ModeSpec, Node, Plan,
    PreparedCopy, archive_reader, basename, confine, fetch, host_xattrs, image_glob, image_node,
    is_url, join, mtime_of, norm, parents_keep, parse_chown, read_context_link,
};
use crate::context::{BuildContext, FileKind, IgnoreMatcher};
use crate::plugin::frontend::CopyStep;
use anyhow::{Context, Result, bail};
use cap_std::fs::MetadataExt as _;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// What [`prepare_inner`] looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// The whole plan: sources and the destination image.
    Full,
    /// The sources alone: the destination is not resolved in the image (its path is taken as written, as
    /// a directory) and `--chown` is not looked up, so the digest names what is copied, not where it lands.
    SourcesOnly,
}

pub(super) fn prepare_inner(req: &CopyRequest, scope: Scope) -> Result<PreparedCopy> {
    let step = req.step;
    if step.sources.is_empty() && step.inline_sources.is_empty() {
        bail!("no source files were specified");
    }
    let owner = match step.chown.as_deref() {
        Some(_) if scope == Scope::SourcesOnly => None,
        Some(spec) => {
            Some(parse_chown(spec, req.users).with_context(|| format!("--chown={spec}"))?)
        }
        None => None,
    };
    let mode_spec = match step.chmod.as_deref() {
        Some(s) => Some(ModeSpec::parse(s).with_context(|| format!("--chmod={s}"))?),
        None => None,
    };
    let excludes = if step.exclude.is_empty() {
        None
    } else {
        Some(IgnoreMatcher::parse(&step.exclude.join("\n"), None).context("--exclude")?)
    };
    let mut planner = Planner {
        req,
        step,
        owner,
        mode_spec,
        excludes,
        dest_path: String::new(),
        into_dir: false,
        plan: Plan {
            nodes: BTreeMap::new(),
            extracts: Vec::new(),
            inputs: Vec::new(),
            hardlinks: BTreeMap::new(),
        },
        gits: Vec::new(),
        inodes: Default::default(),
        pending_digests: Vec::new(),
    };
    let (items, downloads) = planner.select_sources()?;
    let (dest_path, dest_is_dir, dir_hint) = match scope {
        Scope::Full => resolve_destination(req)?,
        Scope::SourcesOnly => (norm(&req.step.destination).join("/"), true, true),
    };
    planner.dest_path = dest_path;
    planner.into_dir = dest_is_dir || dir_hint;
    if items.len() > 1 && !planner.into_dir {
        bail!(
            "when copying more than one source, the destination must be a directory and end with `/` (got `{}`)",
            step.destination
        );
    }
    for item in items {
        planner.add(item)?;
    }
    planner.digest_pending()?;
    let Planner {
        plan,
        gits,
        mode_spec,
        owner,
        ..
    } = planner;
    Ok(PreparedCopy {
        digest: cache_key(req, &plan, &gits),
        inputs: plan.inputs,
        nodes: plan.nodes,
        extracts: plan.extracts,
        gits,
        mode_spec,
        hardlinks: plan.hardlinks,
        new_dir_owner: owner.unwrap_or((0, 0)),
        _downloads: downloads,
    })
}

/// A git source: its ref resolved to a commit, checked against `--checksum` (the commit sha).
fn git_item(req: &CopyRequest, src: &str) -> Result<Item> {
    let source = git::parse(src)?;
    if matches!(req.source, CopySource::Image(_)) {
        bail!(
            "ADD --from cannot fetch a git repository ({})",
            source.display
        );
    }
    let commit = git::resolve(&source, req.tmp_dir).with_context(|| {
        format!(
            "resolving {} to a commit (ADD from a git repository)",
            source.display
        )
    })?;
    if let Some(want) = req.step.checksum.as_deref() {
        let want = want.trim();
        if want.len() < 7 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "--checksum={want}: for a git source ({}) it is the commit sha (hex)",
                source.display
            );
        }
        if !commit
            .sha
            .to_ascii_lowercase()
            .starts_with(&want.to_ascii_lowercase())
        {
            bail!(
                "checksum mismatch: --checksum says commit {want}, {} is at commit {}",
                source.display,
                commit.sha
            );
        }
    }
    Ok(Item::Git { source, commit })
}

/// A URL source, downloaded (checked against `--checksum`).
fn download_item(req: &CopyRequest, src: &str) -> Result<(Item, tempfile::NamedTempFile)> {
    if matches!(req.source, CopySource::Image(_)) {
        bail!("ADD --from cannot fetch a URL ({src})");
    }
    let (file, digest) = fetch(src, req.step.checksum.as_deref(), req.tmp_dir)
        .with_context(|| format!("fetching {src}"))?;
    let parsed = url::Url::parse(src).with_context(|| format!("parsing URL {src}"))?;
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_string))
        .unwrap_or_default();
    let item = Item::Download {
        url: src.to_string(),
        name,
        path: file.path().to_path_buf(),
        digest,
    };
    Ok((item, file))
}

/// The destination, resolved through the image's symlinks: (root-relative path, whether it is a
/// directory in the image, whether it is written as one: a trailing `/`, `.` or `..`).
fn resolve_destination(req: &CopyRequest) -> Result<(String, bool, bool)> {
    let view = req.dest;
    let raw = req.step.destination.as_str();
    if raw.is_empty() {
        bail!("the destination is empty");
    }
    let dir_hint = raw.ends_with('/') || raw == "." || raw.ends_with("/.") || raw.ends_with("/..");
    let abs = if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("{}/{raw}", req.workdir)
    };
    let comps = norm(&abs);
    let mut parent = String::new();
    let mut resolved_rest = false;
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        if resolved_rest {
            parent = join(&parent, c);
            continue;
        }
        let cand = join(&parent, c);
        match view.resolve(&format!("/{cand}"), true)? {
            Some(r) if r.meta.is_dir() => parent = norm(&r.path).join("/"),
            Some(_) => bail!("destination {abs}: /{cand} is not a directory in the image"),
            None => {
                resolved_rest = true;
                parent = cand;
            }
        }
    }
    let (dest_path, dest_is_dir) = match comps.last() {
        None => (String::new(), true),
        Some(l) => {
            let cand = join(&parent, l);
            match (!resolved_rest)
                .then(|| view.resolve(&format!("/{cand}"), true))
                .transpose()?
                .flatten()
            {
                Some(r) if r.meta.is_dir() => (norm(&r.path).join("/"), true),
                // A symlink to a file is written through, inside the root (as BuildKit's RootPath).
                Some(r) => (norm(&r.path).join("/"), false),
                None => (cand, false),
            }
        }
    };
    Ok((dest_path, dest_is_dir, dir_hint))
}

/// sha256 over every input: the step's flags, then every entry, hardlink, archive and git tree.
fn cache_key(req: &CopyRequest, plan: &Plan, gits: &[GitTree]) -> String {
    let step = req.step;
    let mut h = Sha256::new();
    let header = serde_json::json!({
        "v": 1, "add": req.add, "destination": step.destination, "workdir": req.workdir,
        "chown": step.chown, "chmod": step.chmod, "link": step.link, "parents": step.parents,
        "exclude": step.exclude, "checksum": step.checksum,
    });
    h.update(header.to_string().as_bytes());
    h.update(b"\n");
    for (path, n) in &plan.nodes {
        let kind = match n.kind {
            Kind::Dir => "d",
            Kind::File(_) => "f",
            Kind::Symlink(_) => "l",
        };
        h.update(
            format!(
                "{path}\0{kind}\0{:o}\0{}:{}\0{}\n",
                n.mode, n.uid, n.gid, n.digest
            )
            .as_bytes(),
        );
        for (k, v) in &n.xattrs {
            h.update(format!("\0xattr\0{k}\0{}\n", hex::encode(v)).as_bytes());
        }
    }
    for (path, first) in &plan.hardlinks {
        h.update(format!("hardlink\0{path}\0{first}\n").as_bytes());
    }
    for x in &plan.extracts {
        h.update(format!("extract\0{}\0{}\n", x.dir, x.digest).as_bytes());
    }
    // The commit names the content; the remote and subdir say which part of which repository.
    for g in gits {
        h.update(
            format!(
                "git\0{}\0{}\0{}\0{}\0{}\n",
                g.dir, g.source.remote, g.commit.sha, g.source.subdir, g.keep_git_dir
            )
            .as_bytes(),
        );
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Turns the sources of one step into layer entries.
struct Planner<'a> {
    req: &'a CopyRequest<'a>,
    step: &'a CopyStep,
    /// `--chown`, resolved.
    owner: Option<(u32, u32)>,
    mode_spec: Option<ModeSpec>,
    excludes: Option<IgnoreMatcher>,
    /// The resolved destination, root-relative.
    dest_path: String,
    /// Sources land inside the destination rather than at it.
    into_dir: bool,
    plan: Plan,
    gits: Vec<GitTree>,
    /// (device, inode) of a context file with several links → the first path it was planned at.
    inodes: std::collections::HashMap<(u64, u64), String>,
    /// (in-image path, context rel) of the context files still to digest.
    pending_digests: Vec<(String, String)>,
}

impl Planner<'_> {
    fn excluded(&self, rel: &str, is_dir: bool) -> bool {
        self.excludes
            .as_ref()
            .is_some_and(|m| m.is_ignored(rel, is_dir))
    }

    fn apply_mode(&self, m: u32, is_dir: bool) -> u32 {
        match &self.mode_spec {
            Some(s) => s.apply(m & 0o7777, is_dir),
            None => m & 0o7777,
        }
    }

    /// The owner of context files: `--chown`, else 0:0.
    fn ctx_owner(&self) -> (u32, u32) {
        self.owner.unwrap_or((0, 0))
    }

    /// Where a single (non-directory) source named `name` lands (`keep`: its `--parents` path).
    fn single_target(&self, name: &str, keep: &str) -> String {
        if self.step.parents {
            join(&self.dest_path, keep)
        } else if self.into_dir {
            join(&self.dest_path, name)
        } else {
            self.dest_path.clone()
        }
    }

    /// A file node owned by the context owner.
    fn ctx_file(&self, data: Data, mode: u32, mtime: (i64, u32), digest: String) -> Node {
        let (uid, gid) = self.ctx_owner();
        Node {
            kind: Kind::File(data),
            mode: self.apply_mode(mode, false),
            uid,
            gid,
            mtime,
            digest,
            xattrs: Vec::new(),
        }
    }

    /// 1. The sources, globbed (git refs resolved, URLs downloaded).
    fn select_sources(&self) -> Result<(Vec<Item>, Vec<tempfile::NamedTempFile>)> {
        let (req, step) = (self.req, self.step);
        let mut items = Vec::new();
        let mut downloads = Vec::new();
        for src in &step.sources {
            if req.add && git::is_git(src) {
                items.push(git_item(req, src)?);
                continue;
            }
            if req.add && is_url(src) {
                let (item, file) = download_item(req, src)?;
                items.push(item);
                downloads.push(file);
                continue;
            }
            if step.checksum.is_some() {
                bail!("--checksum applies to URL sources only, not {src}");
            }
            match req.source {
                CopySource::Context(ctx) => self.glob_context(ctx, src, &mut items)?,
                CopySource::Image(from) => {
                    let found = image_glob(from, src).with_context(|| format!("source `{src}`"))?;
                    if found.is_empty() {
                        bail!("source `{src}` not found in the source image");
                    }
                    let n = found.len();
                    for (p, r) in found {
                        if n > 1 && self.excluded(&p, r.meta.is_dir()) {
                            continue;
                        }
                        let keep = parents_keep(src, &p);
                        items.push(Item::Image {
                            found: r,
                            label: format!("/{p}"),
                            keep,
                        });
                    }
                }
            }
        }
        for f in &step.inline_sources {
            let name = confine(&f.path).with_context(|| format!("heredoc name `{}`", f.path))?;
            if name.is_empty() {
                bail!("heredoc source has no name");
            }
            items.push(Item::Inline {
                name,
                content: f.content.clone(),
                mode: if f.mode == 0 { 0o644 } else { f.mode },
            });
        }
        Ok((items, downloads))
    }

    fn glob_context(&self, ctx: &BuildContext, src: &str, items: &mut Vec<Item>) -> Result<()> {
        let clean = confine(src).with_context(|| {
            format!(
                "source `{src}` is outside the build context (only paths inside it can be copied)"
            )
        })?;
        let entries = ctx
            .glob(&clean)
            .with_context(|| format!("source `{src}`"))?;
        if entries.is_empty() {
            bail!(
                "source `{src}` not found in the build context {} (or excluded by its ignore file)",
                ctx.root_path().display()
            );
        }
        let n = entries.len();
        for e in entries {
            if n > 1 && self.excluded(&e.path, e.stat.kind == FileKind::Directory) {
                continue;
            }
            let keep = parents_keep(src, &e.path);
            items.push(Item::Context { rel: e.path, keep });
        }
        Ok(())
    }

    /// 3. One source's entries.
    fn add(&mut self, item: Item) -> Result<()> {
        match item {
            Item::Inline {
                name,
                content,
                mode,
            } => {
                let target = self.single_target(basename(&name), &name);
                let digest = crate::layer::sha256_hex(content.as_bytes());
                self.plan.inputs.push((format!("<<{name}"), digest.clone()));
                let node = self.ctx_file(Data::Inline(content), mode, (0, 0), digest);
                self.plan.insert(target, node);
            }
            Item::Git { source, commit } => {
                // A repository is a directory source: its contents land in the destination.
                self.plan
                    .inputs
                    .push((source.display.clone(), commit.sha.clone()));
                self.gits.push(GitTree {
                    dir: self.dest_path.clone(),
                    source,
                    commit,
                    keep_git_dir: self.step.keep_git_dir,
                });
            }
            Item::Download {
                url,
                name,
                path,
                digest,
            } => {
                if self.into_dir && name.is_empty() {
                    bail!("cannot tell a file name from {url}: give a destination file name");
                }
                let target = if self.into_dir {
                    join(&self.dest_path, &name)
                } else {
                    self.dest_path.clone()
                };
                self.plan.inputs.push((url, digest.clone()));
                let node = self.ctx_file(Data::Host(path), 0o600, (0, 0), digest);
                self.plan.insert(target, node);
            }
            Item::Context { rel, keep } => self.add_context(rel, keep)?,
            Item::Image { found, label, keep } => self.add_image(found, label, keep)?,
        }
        Ok(())
    }

    fn add_context(&mut self, rel: String, keep: String) -> Result<()> {
        let CopySource::Context(ctx) = self.req.source else {
            unreachable!("context items come from a context source")
        };
        let fs_rel = if rel.is_empty() { "." } else { rel.as_str() };
        // A source symlink is followed, inside the context.
        let md = ctx
            .dir()
            .metadata(fs_rel)
            .with_context(|| format!("source `{rel}`: following it inside the build context"))?;
        if md.is_dir() {
            return self.add_context_dir(ctx, &rel, &keep, &md);
        }
        if !md.is_file() {
            bail!("source `{rel}` is not a regular file or a directory");
        }
        let is_archive = |rel: &str| -> Result<bool> {
            let f = ctx.open_file(rel)?;
            Ok(archive_reader(f.into_std())?.is_some())
        };
        if self.req.add && is_archive(&rel)? {
            let dir = if self.step.parents {
                join(
                    &self.dest_path,
                    keep.rsplit_once('/').map(|x| x.0).unwrap_or(""),
                )
            } else {
                self.dest_path.clone()
            };
            let digest = self.req.statcache.digest(ctx, &rel)?;
            self.plan.inputs.push((rel.clone(), digest.clone()));
            self.plan.extracts.push(Extract {
                dir,
                source: rel,
                digest,
            });
            return Ok(());
        }
        let target = self.single_target(basename(&rel), &keep);
        self.pending_digests.push((target.clone(), rel.clone()));
        let mtime = (md.mtime(), md.mtime_nsec() as u32);
        let mut node = self.ctx_file(Data::Context(rel.clone()), md.mode(), mtime, String::new());
        node.xattrs = host_xattrs(&ctx.root_path().join(&rel))?;
        self.plan.insert(target, node);
        Ok(())
    }

    /// A context directory: itself (when the image lacks it) and everything under it.
    fn add_context_dir(
        &mut self,
        ctx: &BuildContext,
        rel: &str,
        keep: &str,
        md: &cap_std::fs::Metadata,
    ) -> Result<()> {
        let top = if self.step.parents {
            join(&self.dest_path, keep)
        } else {
            self.dest_path.clone()
        };
        if !self.plan.nodes.contains_key(&top)
            && (self.step.parents || self.req.dest.resolve(&format!("/{top}"), false)?.is_none())
        {
            let (uid, gid) = self.ctx_owner();
            let node = Node {
                kind: Kind::Dir,
                mode: self.apply_mode(md.mode(), true),
                uid,
                gid,
                mtime: (md.mtime(), md.mtime_nsec() as u32),
                digest: String::new(),
                xattrs: host_xattrs(&ctx.root_path().join(rel))?,
            };
            self.plan.insert(top.clone(), node);
        }
        for e in ctx.walk(rel)? {
            let sub = if rel.is_empty() {
                e.path.clone()
            } else {
                e.path
                    .strip_prefix(&format!("{rel}/"))
                    .unwrap_or(&e.path)
                    .to_string()
            };
            if self.excluded(&sub, e.stat.kind == FileKind::Directory) {
                continue;
            }
            self.add_context_entry(ctx, &e.path, e.stat.kind, join(&top, &sub))?;
        }
        Ok(())
    }

    /// One entry found walking a context directory, planned at `target`.
    fn add_context_entry(
        &mut self,
        ctx: &BuildContext,
        path: &str,
        kind: FileKind,
        target: String,
    ) -> Result<()> {
        let emd = ctx
            .dir()
            .symlink_metadata(path)
            .with_context(|| format!("stat {path} in the build context"))?;
        let mut link_to = None;
        if kind == FileKind::File && emd.nlink() > 1 {
            match self.inodes.entry((emd.dev(), emd.ino())) {
                std::collections::hash_map::Entry::Occupied(o) => link_to = Some(o.get().clone()),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(target.clone());
                }
            }
        }
        let (kind, digest) = match kind {
            FileKind::Directory => (Kind::Dir, String::new()),
            FileKind::File => {
                self.pending_digests
                    .push((target.clone(), path.to_string()));
                (Kind::File(Data::Context(path.to_string())), String::new())
            }
            FileKind::Symlink => {
                let t = read_context_link(ctx, path)?;
                (Kind::Symlink(t.clone()), t)
            }
            FileKind::Other => {
                tracing::warn!(
                    "{}: skipping {path} (not a file, dir or symlink)",
                    self.req.location
                );
                return Ok(());
            }
        };
        let is_dir = matches!(kind, Kind::Dir);
        let is_link = matches!(kind, Kind::Symlink(_));
        let (uid, gid) = self.ctx_owner();
        let node = Node {
            kind,
            mode: if is_link {
                0o777
            } else {
                self.apply_mode(emd.mode(), is_dir)
            },
            uid,
            gid,
            mtime: (emd.mtime(), emd.mtime_nsec() as u32),
            digest,
            xattrs: if is_link {
                Vec::new()
            } else {
                host_xattrs(&ctx.root_path().join(path))?
            },
        };
        self.plan.insert(target.clone(), node);
        if let Some(first) = link_to {
            self.plan.hardlinks.insert(target, first);
        }
        Ok(())
    }

    /// An image path: a file or link, or a directory with everything under it (owners kept unless
    /// `--chown`).
    fn add_image(&mut self, found: super::Resolved, label: String, keep: String) -> Result<()> {
        let CopySource::Image(from) = self.req.source else {
            unreachable!("image items come from an image source")
        };
        let owner = self.owner;
        let own = |m: &Metadata| owner.unwrap_or((m.uid(), m.gid()));
        let mode = |m: u32, is_dir: bool| self.apply_mode(m, is_dir);
        let location = self.req.location;
        if !found.meta.is_dir() {
            if let Some(node) = image_node(&found, &own, &mode, location)? {
                self.plan.inputs.push((label, node.digest.clone()));
                let target = self.single_target(basename(&found.path), &keep);
                self.plan.insert(target, node);
            }
            return Ok(());
        }
        let top = if self.step.parents {
            join(&self.dest_path, &keep)
        } else {
            self.dest_path.clone()
        };
        let mut planned = Vec::new();
        if !self.plan.nodes.contains_key(&top)
            && (self.step.parents || self.req.dest.resolve(&format!("/{top}"), false)?.is_none())
        {
            let (uid, gid) = own(&found.meta);
            let node = Node {
                kind: Kind::Dir,
                mode: mode(found.meta.mode(), true),
                uid,
                gid,
                mtime: mtime_of(&found.meta),
                digest: String::new(),
                xattrs: host_xattrs(&found.host)?,
            };
            planned.push((None, top.clone(), node));
        }
        let mut stack = vec![(found.path.clone(), String::new())];
        while let Some((dir, sub)) = stack.pop() {
            for name in from.read_dir(&dir)? {
                let p = format!("{}/{name}", dir.trim_end_matches('/'));
                let Some(r) = from.resolve(&p, false)? else {
                    continue;
                };
                let s = join(&sub, &name);
                if self.excluded(&s, r.meta.is_dir()) {
                    continue;
                }
                if let Some(node) = image_node(&r, &own, &mode, location)? {
                    if r.meta.is_dir() {
                        stack.push((p.clone(), s.clone()));
                    }
                    let input = matches!(node.kind, Kind::File(_)).then(|| p.clone());
                    planned.push((input, join(&top, &s), node));
                }
            }
        }
        for (input, target, node) in planned {
            if let Some(p) = input {
                self.plan.inputs.push((p, node.digest.clone()));
            }
            self.plan.insert(target, node);
        }
        Ok(())
    }

    /// 4. Context file digests, in parallel, through the stat cache.
    fn digest_pending(&mut self) -> Result<()> {
        if self.pending_digests.is_empty() {
            return Ok(());
        }
        let CopySource::Context(ctx) = self.req.source else {
            unreachable!("only context files wait for a digest")
        };
        let pending = std::mem::take(&mut self.pending_digests);
        let statcache = self.req.statcache;
        let digests: Vec<Result<String>> = pending
            .par_iter()
            .map(|(_, rel)| statcache.digest(ctx, rel))
            .collect();
        for ((target, rel), d) in pending.into_iter().zip(digests) {
            let d = d?;
            if let Some(n) = self.plan.nodes.get_mut(&target)
                && matches!(&n.kind, Kind::File(Data::Context(r)) if *r == rel)
            {
                n.digest = d.clone();
            }
            self.plan.inputs.push((rel, d));
        }
        Ok(())
    }
}
