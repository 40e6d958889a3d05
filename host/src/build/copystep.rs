//! COPY and ADD: select the sources, digest them for the cache key, and write the layer tree.
//!
//! [`prepare`] selects the files (globs, `--exclude`, `--parents`; `.containerignore` is already applied by
//! [`BuildContext`]), fetches ADD URLs (checked against `--checksum`) and digests everything that enters the
//! layer, reading context content only through the [`StatCache`]. [`PreparedCopy::apply`] then writes into
//! an empty directory exactly what the layer holds: the copied entries and every parent of the destination,
//! with the metadata it has in the image (0755 root:root when new).
//!
//! Docker's rules apply: a directory source copies its contents; several sources need a directory
//! destination (a trailing `/`, or a directory in the image); a relative destination is under WORKDIR; the
//! destination is resolved through the image's symlinks inside its root (`/bin -> usr/bin`); context files
//! are owned by 0:0, image files keep their owner, unless `--chown`; mtimes are kept. ADD extracts local tar
//! archives (plain, gzip, bzip2, xz, zstd) through the layer unpacker, so no entry escapes its directory.
//! ADD of a git repository ([`git`]) resolves its ref to a commit in [`prepare`] (the key holds the commit)
//! and checks it out only in [`PreparedCopy::apply`], so a cache hit fetches nothing.
//! Nothing is ever written outside the output directory.

use super::rootview::{Resolved, RootView};
use super::statcache::StatCache;
use crate::context::{BuildContext, FileKind, IgnoreMatcher, Pattern, confine};
use crate::layer::{UnpackOptions, WhiteoutMode, unpack_tar};
use crate::plugin::frontend::CopyStep;
use anyhow::{Context, Result, anyhow, bail};
use cap_std::fs::MetadataExt as _;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{File, FileTimes, Metadata};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod chmod;
mod git;

pub use chmod::ModeSpec;

/// Where COPY reads from: the build context, or another stage's or an image's root filesystem.
pub enum CopySource<'a> {
    Context(&'a BuildContext),
    Image(&'a RootView),
}

/// One COPY or ADD step and everything it needs.
pub struct CopyRequest<'a> {
    pub step: &'a CopyStep,
    /// ADD (URLs, archive extraction) rather than COPY.
    pub add: bool,
    pub source: CopySource<'a>,
    /// What the copy lands on: the image being built as it is before this step, or an empty view for
    /// `COPY --link` (a layer of its own, independent of what is below it).
    pub dest: &'a RootView,
    /// Where `--chown` names are looked up: the image being built.
    pub users: &'a RootView,
    /// The WORKDIR in force (absolute).
    pub workdir: &'a str,
    pub statcache: &'a StatCache,
    /// Where downloads are kept until the layer is written.
    pub tmp_dir: &'a Path,
    /// `Containerfile:12`, for every error.
    pub location: &'a str,
}

/// Where a file's bytes come from.
#[derive(Clone, Debug)]
enum Data {
    /// A regular file in the build context (context-relative).
    Context(String),
    /// A file on the host: a layer entry of a source image, or a download.
    Host(PathBuf),
    /// Heredoc text.
    Inline(String),
}

#[derive(Clone, Debug)]
enum Kind {
    Dir,
    File(Data),
    Symlink(String),
}

/// One entry of the layer, at an in-image path.
#[derive(Clone, Debug)]
struct Node {
    kind: Kind,
    /// Permission bits (with setuid/setgid/sticky).
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    /// Files: content digest; symlinks: the target; dirs: empty.
    digest: String,
    /// Extended attributes, sorted (overlay's own left out).
    xattrs: Vec<(String, Vec<u8>)>,
}

/// A local archive ADD extracts into `dir`.
#[derive(Clone, Debug)]
struct Extract {
    /// In-image directory, root-relative without a leading `/`.
    dir: String,
    source: String,
    digest: String,
}

/// A git repository ADD checks out into `dir` (fetched only by [`PreparedCopy::apply`], so a cache hit
/// costs one `git ls-remote`).
#[derive(Debug)]
struct GitTree {
    /// In-image directory, root-relative without a leading `/`.
    dir: String,
    source: git::GitSource,
    commit: git::Commit,
    keep_git_dir: bool,
}

/// What [`prepare`] selected: the key material for the layer cache and the plan [`PreparedCopy::apply`] follows.
#[derive(Debug)]
pub struct PreparedCopy {
    /// sha256 over every input: paths, modes, owners, link targets, contents and the step's flags.
    pub digest: String,
    /// (source path, content digest) of every file read, for `--explain-cache`.
    pub inputs: Vec<(String, String)>,
    /// Root-relative in-image path (no leading `/`) → entry; a parent always sorts before its children.
    nodes: BTreeMap<String, Node>,
    extracts: Vec<Extract>,
    gits: Vec<GitTree>,
    /// `--chmod`, for the files of git trees.
    mode_spec: Option<ModeSpec>,
    /// Path → the path it is a hardlink of (both files of this copy).
    hardlinks: BTreeMap<String, String>,
    /// Owner of destination parents this step creates (`--chown`, else 0:0), as buildah and BuildKit.
    new_dir_owner: (u32, u32),
    /// Downloads, deleted when the prepared copy is dropped.
    _downloads: Vec<tempfile::NamedTempFile>,
}

impl PreparedCopy {
    /// The owner `--chown` resolved to (0:0 without it).
    pub fn owner(&self) -> (u32, u32) {
        self.new_dir_owner
    }
}

/// Lexically normalize an absolute in-image path to root-relative components (`..` stops at `/`).
fn norm(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

fn basename(p: &str) -> &str {
    p.rsplit('/').find(|c| !c.is_empty()).unwrap_or("")
}

fn mtime_of(m: &Metadata) -> (i64, u32) {
    (m.mtime(), m.mtime_nsec() as u32)
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// `--chown user[:group]` (names or ids) resolved through the image's /etc/passwd and /etc/group.
/// A user without a group gets the group id equal to the user id, as Docker documents.
fn parse_chown(spec: &str, view: &RootView) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str| -> Result<u32> {
        if let Ok(id) = name.parse::<u32>() {
            return Ok(id);
        }
        let text = view
            .read_file(file)?
            .ok_or_else(|| anyhow!("`{name}` is not a number and the image has no {file}"))?;
        String::from_utf8_lossy(&text)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[0] == name).then(|| f[2].parse::<u32>().ok())?
            })
            .ok_or_else(|| anyhow!("no `{name}` in the image's {file}"))
    };
    if user.is_empty() {
        bail!("empty user");
    }
    let uid = lookup("/etc/passwd", user)?;
    let gid = match group {
        Some(g) if !g.is_empty() => lookup("/etc/group", g)?,
        _ => uid,
    };
    Ok((uid, gid))
}

/// A source after globbing, before it is expanded into nodes.
enum Item {
    /// A context path (file, dir or symlink followed to one), its `--parents` path.
    Context { rel: String, keep: String },
    /// An image path (symlinks followed), its `--parents` path.
    Image {
        found: Resolved,
        label: String,
        keep: String,
    },
    Inline {
        name: String,
        content: String,
        mode: u32,
    },
    /// A git repository, its ref resolved.
    Git {
        source: git::GitSource,
        commit: git::Commit,
    },
    /// A fetched URL.
    Download {
        url: String,
        name: String,
        path: PathBuf,
        digest: String,
    },
}

/// The part of a matched path `--parents` keeps: all of it, or what follows a `/./` pivot in the source.
fn parents_keep(source: &str, matched: &str) -> String {
    match source.find("/./") {
        Some(i) => {
            let skip = norm(&source[..i]).len();
            norm(matched)
                .into_iter()
                .skip(skip)
                .collect::<Vec<_>>()
                .join("/")
        }
        None => norm(matched).join("/"),
    }
}

/// Glob over the merged image view (symlinks in matches followed inside the root).
fn image_glob(view: &RootView, pattern: &str) -> Result<Vec<(String, Resolved)>> {
    let parts = norm(pattern);
    let mut current = vec![String::new()];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let comp = Pattern::new(part)?;
        let mut next = Vec::new();
        for dir in &current {
            if comp.is_literal() {
                next.push(join(dir, &part.replace('\\', "")));
                continue;
            }
            for name in view.read_dir(&format!("/{dir}"))? {
                if comp.matches(&name) {
                    next.push(join(dir, &name));
                }
            }
        }
        current = next;
        if !last {
            current.retain(
                |p| matches!(view.resolve(&format!("/{p}"), true), Ok(Some(r)) if r.meta.is_dir()),
            );
        }
    }
    let mut out = Vec::new();
    for p in current {
        if let Some(r) = view.resolve(&format!("/{p}"), true)? {
            out.push((p, r));
        }
    }
    Ok(out)
}

/// Download `url` into `tmp_dir`, checking `--checksum`.
fn fetch(
    url: &str,
    checksum: Option<&str>,
    tmp_dir: &Path,
) -> Result<(tempfile::NamedTempFile, String)> {
    let mut tmp = tempfile::Builder::new()
        .prefix("add-url-")
        .tempfile_in(tmp_dir)
        .with_context(|| format!("creating a temp file in {}", tmp_dir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for the download")?;
    let digest = rt.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()?;
        let mut resp = client.get(url).send().await?.error_for_status()?;
        let mut h = Sha256::new();
        let f = tmp.as_file_mut();
        while let Some(chunk) = resp.chunk().await? {
            h.update(&chunk);
            f.write_all(&chunk)?;
        }
        f.flush()?;
        anyhow::Ok(format!("sha256:{}", hex::encode(h.finalize())))
    })?;
    if let Some(want) = checksum {
        let want = want.trim();
        if !want.starts_with("sha256:") {
            bail!("--checksum {want}: only sha256:<hex> is supported");
        }
        if !want.eq_ignore_ascii_case(&digest) {
            bail!("checksum mismatch: --checksum says {want}, the download is {digest}");
        }
    }
    Ok((tmp, digest))
}

/// A tar header block: checksum valid and not all zeros.
fn is_tar_header(b: &[u8]) -> bool {
    if b.len() < 512 || b[..512].iter().all(|x| *x == 0) {
        return false;
    }
    let field = String::from_utf8_lossy(&b[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = b[..512]
        .iter()
        .enumerate()
        .map(|(i, x)| {
            if (148..156).contains(&i) {
                b' ' as u32
            } else {
                *x as u32
            }
        })
        .sum();
    sum == want
}

/// `reader` decompressed by its magic (gzip, bzip2, xz, zstd or none) if what comes out is a tar; `None`
/// when it is not an archive (ADD then copies it as a file).
fn archive_reader<'a>(reader: impl Read + 'a) -> Result<Option<Box<dyn Read + 'a>>> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let head = buf.fill_buf()?.to_vec();
    let mut inner: Box<dyn Read + 'a> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buf))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(buf))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf)?)
    } else {
        Box::new(buf)
    };
    let mut first = Vec::with_capacity(512);
    if (&mut inner).take(512).read_to_end(&mut first).is_err() || !is_tar_header(&first) {
        return Ok(None);
    }
    Ok(Some(Box::new(std::io::Cursor::new(first).chain(inner))))
}

/// Select and digest the sources of a COPY/ADD step (see the module docs).
pub fn prepare(req: &CopyRequest) -> Result<PreparedCopy> {
    let what = if req.add { "ADD" } else { "COPY" };
    let start = std::time::Instant::now();
    let p = prepare_inner(req).with_context(|| format!("{}: {what}", req.location))?;
    tracing::debug!(
        "{}: {what} prepared: {} entries, {} archives, {} content reads so far, in {:?}",
        req.location,
        p.nodes.len(),
        p.extracts.len(),
        req.statcache.content_reads(),
        start.elapsed()
    );
    Ok(p)
}

struct Plan {
    nodes: BTreeMap<String, Node>,
    extracts: Vec<Extract>,
    inputs: Vec<(String, String)>,
    /// Files hardlinked to one another in a copied context dir: path → the first path of that inode.
    hardlinks: BTreeMap<String, String>,
}

impl Plan {
    /// Insert `node` at `path`, replacing what was there: a non-directory replaces a whole subtree, and
    /// a non-directory ancestor gives way to a directory (so nothing is ever written through a link).
    fn insert(&mut self, path: String, node: Node) {
        let mut anc = String::new();
        for c in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|x| x.1)
            .unwrap_or(&[])
        {
            anc = join(&anc, c);
            if self
                .nodes
                .get(&anc)
                .is_some_and(|n| !matches!(n.kind, Kind::Dir))
            {
                self.nodes.remove(&anc);
            }
        }
        if !matches!(node.kind, Kind::Dir) {
            let prefix = format!("{path}/");
            let under: Vec<String> = self
                .nodes
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for k in under {
                self.nodes.remove(&k);
                self.hardlinks.remove(&k);
            }
        }
        self.hardlinks.remove(&path);
        self.nodes.insert(path, node);
    }
}

fn prepare_inner(req: &CopyRequest) -> Result<PreparedCopy> {
    let step = req.step;
    let view = req.dest;
    if step.sources.is_empty() && step.inline_sources.is_empty() {
        bail!("no source files were specified");
    }
    let owner = match step.chown.as_deref() {
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
    let excluded =
        |rel: &str, is_dir: bool| excludes.as_ref().is_some_and(|m| m.is_ignored(rel, is_dir));

    // 1. The sources, globbed.
    let mut items = Vec::new();
    let mut downloads = Vec::new();
    for src in &step.sources {
        if req.add && git::is_git(src) {
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
            if let Some(want) = step.checksum.as_deref() {
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
            items.push(Item::Git { source, commit });
            continue;
        }
        if req.add && is_url(src) {
            if matches!(req.source, CopySource::Image(_)) {
                bail!("ADD --from cannot fetch a URL ({src})");
            }
            let (file, digest) = fetch(src, step.checksum.as_deref(), req.tmp_dir)
                .with_context(|| format!("fetching {src}"))?;
            let parsed = url::Url::parse(src).with_context(|| format!("parsing URL {src}"))?;
            let name = parsed
                .path_segments()
                .and_then(|mut s| s.next_back().map(str::to_string))
                .unwrap_or_default();
            items.push(Item::Download {
                url: src.clone(),
                name,
                path: file.path().to_path_buf(),
                digest,
            });
            downloads.push(file);
            continue;
        }
        if step.checksum.is_some() {
            bail!("--checksum applies to URL sources only, not {src}");
        }
        match req.source {
            CopySource::Context(ctx) => {
                let clean = confine(src).with_context(|| {
                    format!("source `{src}` is outside the build context (only paths inside it can be copied)")
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
                    if n > 1 && excluded(&e.path, e.stat.kind == FileKind::Directory) {
                        continue;
                    }
                    let keep = parents_keep(src, &e.path);
                    items.push(Item::Context { rel: e.path, keep });
                }
            }
            CopySource::Image(from) => {
                let found = image_glob(from, src).with_context(|| format!("source `{src}`"))?;
                if found.is_empty() {
                    bail!("source `{src}` not found in the source image");
                }
                let n = found.len();
                for (p, r) in found {
                    if n > 1 && excluded(&p, r.meta.is_dir()) {
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

    // 2. The destination, resolved through the image's symlinks.
    let raw = step.destination.as_str();
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
    let last = comps.last().cloned();
    let (dest_path, dest_is_dir) = match &last {
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
    let is_archive = |rel: &str, ctx: &BuildContext| -> Result<bool> {
        let f = ctx.open_file(rel)?;
        Ok(archive_reader(f.into_std())?.is_some())
    };
    let many = items.len() > 1;
    let into_dir = dest_is_dir || dir_hint;
    if many && !into_dir {
        bail!(
            "when copying more than one source, the destination must be a directory and end with `/` (got `{raw}`)"
        );
    }

    // 3. Nodes.
    let ctx_owner = owner.unwrap_or((0, 0));
    let apply_mode = |m: u32, is_dir: bool| match &mode_spec {
        Some(s) => s.apply(m & 0o7777, is_dir),
        None => m & 0o7777,
    };
    let mut plan = Plan {
        nodes: BTreeMap::new(),
        extracts: Vec::new(),
        inputs: Vec::new(),
        hardlinks: BTreeMap::new(),
    };
    let mut gits = Vec::new();
    let mut inodes: std::collections::HashMap<(u64, u64), String> = Default::default();
    let mut pending_digests: Vec<(String, String)> = Vec::new(); // (in-image path, context rel)
    let single_target = |name: &str, keep: &str| -> String {
        if !step.parents {
            if into_dir {
                join(&dest_path, name)
            } else {
                dest_path.clone()
            }
        } else {
            join(&dest_path, keep)
        }
    };
    for item in items {
        match item {
            Item::Inline {
                name,
                content,
                mode,
            } => {
                let target = single_target(basename(&name), &name);
                let digest = crate::layer::sha256_hex(content.as_bytes());
                plan.inputs.push((format!("<<{name}"), digest.clone()));
                plan.insert(
                    target,
                    Node {
                        kind: Kind::File(Data::Inline(content)),
                        mode: apply_mode(mode, false),
                        uid: ctx_owner.0,
                        gid: ctx_owner.1,
                        mtime: (0, 0),
                        digest,
                        xattrs: Vec::new(),
                    },
                );
            }
            Item::Git { source, commit } => {
                // A repository is a directory source: its contents land in the destination.
                plan.inputs
                    .push((source.display.clone(), commit.sha.clone()));
                gits.push(GitTree {
                    dir: dest_path.clone(),
                    source,
                    commit,
                    keep_git_dir: step.keep_git_dir,
                });
            }
            Item::Download {
                url,
                name,
                path,
                digest,
            } => {
                if into_dir && name.is_empty() {
                    bail!("cannot tell a file name from {url}: give a destination file name");
                }
                let target = if into_dir {
                    join(&dest_path, &name)
                } else {
                    dest_path.clone()
                };
                plan.inputs.push((url, digest.clone()));
                plan.insert(
                    target,
                    Node {
                        kind: Kind::File(Data::Host(path)),
                        mode: apply_mode(0o600, false),
                        uid: ctx_owner.0,
                        gid: ctx_owner.1,
                        mtime: (0, 0),
                        digest,
                        xattrs: Vec::new(),
                    },
                );
            }
            Item::Context { rel, keep } => {
                let CopySource::Context(ctx) = req.source else {
                    unreachable!("context items come from a context source")
                };
                let fs_rel = if rel.is_empty() { "." } else { rel.as_str() };
                // A source symlink is followed, inside the context.
                let md = ctx.dir().metadata(fs_rel).with_context(|| {
                    format!("source `{rel}`: following it inside the build context")
                })?;
                if md.is_dir() {
                    let top = if step.parents {
                        join(&dest_path, &keep)
                    } else {
                        dest_path.clone()
                    };
                    if !plan.nodes.contains_key(&top)
                        && (step.parents || view.resolve(&format!("/{top}"), false)?.is_none())
                    {
                        plan.insert(
                            top.clone(),
                            Node {
                                kind: Kind::Dir,
                                mode: apply_mode(md.mode(), true),
                                uid: ctx_owner.0,
                                gid: ctx_owner.1,
                                mtime: (md.mtime(), md.mtime_nsec() as u32),
                                digest: String::new(),
                                xattrs: host_xattrs(&ctx.root_path().join(&rel))?,
                            },
                        );
                    }
                    for e in ctx.walk(&rel)? {
                        let sub = e
                            .path
                            .strip_prefix(&format!("{rel}/"))
                            .unwrap_or(&e.path)
                            .to_string();
                        let sub = if rel.is_empty() { e.path.clone() } else { sub };
                        if excluded(&sub, e.stat.kind == FileKind::Directory) {
                            continue;
                        }
                        let target = join(&top, &sub);
                        let emd = ctx
                            .dir()
                            .symlink_metadata(&e.path)
                            .with_context(|| format!("stat {} in the build context", e.path))?;
                        let mut link_to = None;
                        if e.stat.kind == FileKind::File && emd.nlink() > 1 {
                            match inodes.entry((emd.dev(), emd.ino())) {
                                std::collections::hash_map::Entry::Occupied(o) => {
                                    link_to = Some(o.get().clone())
                                }
                                std::collections::hash_map::Entry::Vacant(v) => {
                                    v.insert(target.clone());
                                }
                            }
                        }
                        let (kind, digest) = match e.stat.kind {
                            FileKind::Directory => (Kind::Dir, String::new()),
                            FileKind::File => {
                                pending_digests.push((target.clone(), e.path.clone()));
                                (Kind::File(Data::Context(e.path.clone())), String::new())
                            }
                            FileKind::Symlink => {
                                let t = read_context_link(ctx, &e.path)?;
                                (Kind::Symlink(t.clone()), t)
                            }
                            FileKind::Other => {
                                tracing::warn!(
                                    "{}: skipping {} (not a file, dir or symlink)",
                                    req.location,
                                    e.path
                                );
                                continue;
                            }
                        };
                        let is_dir = matches!(kind, Kind::Dir);
                        let is_link = matches!(kind, Kind::Symlink(_));
                        let target_for_link = target.clone();
                        plan.insert(
                            target,
                            Node {
                                kind,
                                mode: if is_link {
                                    0o777
                                } else {
                                    apply_mode(emd.mode(), is_dir)
                                },
                                uid: ctx_owner.0,
                                gid: ctx_owner.1,
                                mtime: (emd.mtime(), emd.mtime_nsec() as u32),
                                digest,
                                xattrs: if is_link {
                                    Vec::new()
                                } else {
                                    host_xattrs(&ctx.root_path().join(&e.path))?
                                },
                            },
                        );
                        if let Some(first) = link_to {
                            plan.hardlinks.insert(target_for_link.clone(), first);
                        }
                    }
                } else if md.is_file() {
                    if req.add && is_archive(&rel, ctx)? {
                        let dir = if step.parents {
                            join(&dest_path, keep.rsplit_once('/').map(|x| x.0).unwrap_or(""))
                        } else {
                            dest_path.clone()
                        };
                        let digest = req.statcache.digest(ctx, &rel)?;
                        plan.inputs.push((rel.clone(), digest.clone()));
                        plan.extracts.push(Extract {
                            dir,
                            source: rel,
                            digest,
                        });
                        continue;
                    }
                    let target = single_target(basename(&rel), &keep);
                    pending_digests.push((target.clone(), rel.clone()));
                    plan.insert(
                        target,
                        Node {
                            kind: Kind::File(Data::Context(rel.clone())),
                            mode: apply_mode(md.mode(), false),
                            uid: ctx_owner.0,
                            gid: ctx_owner.1,
                            mtime: (md.mtime(), md.mtime_nsec() as u32),
                            digest: String::new(),
                            xattrs: host_xattrs(&ctx.root_path().join(&rel))?,
                        },
                    );
                } else {
                    bail!("source `{rel}` is not a regular file or a directory");
                }
            }
            Item::Image { found, label, keep } => {
                let from = match req.source {
                    CopySource::Image(v) => v,
                    CopySource::Context(_) => unreachable!("image items come from an image source"),
                };
                let own = |m: &Metadata| owner.unwrap_or((m.uid(), m.gid()));
                if found.meta.is_dir() {
                    let top = if step.parents {
                        join(&dest_path, &keep)
                    } else {
                        dest_path.clone()
                    };
                    if !plan.nodes.contains_key(&top)
                        && (step.parents || view.resolve(&format!("/{top}"), false)?.is_none())
                    {
                        let (uid, gid) = own(&found.meta);
                        plan.insert(
                            top.clone(),
                            Node {
                                kind: Kind::Dir,
                                mode: apply_mode(found.meta.mode(), true),
                                uid,
                                gid,
                                mtime: mtime_of(&found.meta),
                                digest: String::new(),
                                xattrs: host_xattrs(&found.host)?,
                            },
                        );
                    }
                    let mut stack = vec![(found.path.clone(), String::new())];
                    while let Some((dir, sub)) = stack.pop() {
                        for name in from.read_dir(&dir)? {
                            let p = format!("{}/{name}", dir.trim_end_matches('/'));
                            let Some(r) = from.resolve(&p, false)? else {
                                continue;
                            };
                            let s = join(&sub, &name);
                            if excluded(&s, r.meta.is_dir()) {
                                continue;
                            }
                            if let Some(node) = image_node(&r, &own, &apply_mode, req.location)? {
                                if r.meta.is_dir() {
                                    stack.push((p.clone(), s.clone()));
                                }
                                if let Kind::File(_) = node.kind {
                                    plan.inputs.push((p.clone(), node.digest.clone()));
                                }
                                plan.insert(join(&top, &s), node);
                            }
                        }
                    }
                } else if let Some(node) = image_node(&found, &own, &apply_mode, req.location)? {
                    plan.inputs.push((label.clone(), node.digest.clone()));
                    plan.insert(single_target(basename(&found.path), &keep), node);
                }
            }
        }
    }

    // 4. Context file digests, in parallel, through the stat cache.
    if !pending_digests.is_empty() {
        let CopySource::Context(ctx) = req.source else {
            unreachable!("only context files wait for a digest")
        };
        let digests: Vec<Result<String>> = pending_digests
            .par_iter()
            .map(|(_, rel)| req.statcache.digest(ctx, rel))
            .collect();
        for ((target, rel), d) in pending_digests.into_iter().zip(digests) {
            let d = d?;
            if let Some(n) = plan.nodes.get_mut(&target)
                && matches!(&n.kind, Kind::File(Data::Context(r)) if *r == rel)
            {
                n.digest = d.clone();
            }
            plan.inputs.push((rel, d));
        }
    }

    // 5. The key.
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
    for g in &gits {
        h.update(
            format!(
                "git\0{}\0{}\0{}\0{}\0{}\n",
                g.dir, g.source.remote, g.commit.sha, g.source.subdir, g.keep_git_dir
            )
            .as_bytes(),
        );
    }
    Ok(PreparedCopy {
        digest: format!("sha256:{}", hex::encode(h.finalize())),
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

/// The node for an image entry (its content identified by its immutable layer file), or `None` for a
/// kind COPY does not carry (devices, fifos, sockets, whiteouts).
fn image_node(
    r: &Resolved,
    own: &dyn Fn(&Metadata) -> (u32, u32),
    apply_mode: &dyn Fn(u32, bool) -> u32,
    location: &str,
) -> Result<Option<Node>> {
    let (uid, gid) = own(&r.meta);
    let ft = r.meta.file_type();
    let (kind, mode, digest) = if ft.is_dir() {
        (Kind::Dir, apply_mode(r.meta.mode(), true), String::new())
    } else if ft.is_file() {
        // Layer dirs are immutable and named by diff_id: path + stat identify the content.
        let id = format!(
            "{}\0{}\0{}\0{}",
            r.host.display(),
            r.meta.len(),
            r.meta.mtime(),
            r.meta.mtime_nsec()
        );
        (
            Kind::File(Data::Host(r.host.clone())),
            apply_mode(r.meta.mode(), false),
            crate::layer::sha256_hex(id.as_bytes()),
        )
    } else if ft.is_symlink() {
        let t = std::fs::read_link(&r.host)
            .with_context(|| format!("reading link {}", r.host.display()))?
            .to_string_lossy()
            .into_owned();
        (Kind::Symlink(t.clone()), 0o777, t)
    } else {
        tracing::warn!(
            "{location}: skipping {} (not a file, dir or symlink)",
            r.path
        );
        return Ok(None);
    };
    Ok(Some(Node {
        kind,
        mode,
        uid,
        gid,
        mtime: mtime_of(&r.meta),
        digest,
        xattrs: if ft.is_symlink() {
            Vec::new()
        } else {
            host_xattrs(&r.host)?
        },
    }))
}

/// A context symlink's target, read through its confined parent directory (absolute targets too).
fn read_context_link(ctx: &BuildContext, rel: &str) -> Result<String> {
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let dir = if parent.is_empty() {
        ctx.dir().try_clone()?
    } else {
        ctx.dir()
            .open_dir(parent)
            .with_context(|| format!("opening {parent} in the build context"))?
    };
    let t = rustix::fs::readlinkat(&dir, name, Vec::new())
        .with_context(|| format!("reading link {rel} in the build context"))?;
    Ok(t.to_string_lossy().into_owned())
}

/// The extended attributes of `path` (not followed), sorted; overlay's own are left out. A filesystem
/// without xattr support has none.
fn host_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    // Most files have none: ask for the size first, so that case costs one syscall and no allocation.
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("{} has a NUL byte", path.display()))?;
    // SAFETY: a NUL-terminated path and a null buffer of size 0 (the kernel returns the list's size).
    let size = unsafe { libc::llistxattr(cpath.as_ptr(), std::ptr::null_mut(), 0) };
    if size == 0 {
        return Ok(Vec::new());
    }
    if size < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) | Some(libc::EPERM) => Ok(Vec::new()),
            _ => Err(e).with_context(|| format!("listing xattrs of {}", path.display())),
        };
    }
    let size = size as usize;
    let mut list = vec![0u8; size.max(64 * 1024)];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::OPNOTSUPP) | Err(rustix::io::Errno::PERM) => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing xattrs of {}", path.display())),
    };
    let mut out = Vec::new();
    for k in list[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        if k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay.") {
            continue;
        }
        let name = String::from_utf8_lossy(k).into_owned();
        let mut val = vec![0u8; 64 * 1024];
        match rustix::fs::lgetxattr(path, name.as_str(), &mut val[..]) {
            Ok(len) => out.push((name, val[..len].to_vec())),
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading xattr {name} of {}", path.display()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn set_xattrs(path: &Path, xattrs: &[(String, Vec<u8>)]) -> Result<()> {
    for (k, v) in xattrs {
        rustix::fs::lsetxattr(path, k.as_str(), v, rustix::fs::XattrFlags::empty())
            .with_context(|| format!("setting xattr {k} on {}", path.display()))?;
    }
    Ok(())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn set_times(path: &Path, (s, ns): (i64, u32)) -> Result<()> {
    let ts = rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("setting the times of {}", path.display()))
}

fn set_owner(path: &Path, uid: u32, gid: u32) -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .with_context(|| format!("setting the owner of {}", path.display()))
}

/// Make `out/rel` a real directory, creating missing components (never following a link).
fn ensure_dir(out: &Path, rel: &str) -> Result<Vec<String>> {
    let mut made = Vec::new();
    let mut cur = String::new();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        cur = join(&cur, c);
        let p = out.join(&cur);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("{} is in the way of a directory", p.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
                made.push(cur.clone());
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }
    Ok(made)
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
        self.apply_inner(req, out)
            .with_context(|| format!("{}: {what} into {}", req.location, out.display()))?;
        tracing::debug!("{}: {what} written in {:?}", req.location, start.elapsed());
        Ok(())
    }

    fn apply_inner(&self, req: &CopyRequest, out: &Path) -> Result<()> {
        let mut implicit: Vec<String> = Vec::new();
        let mut files = Vec::new();
        for (path, n) in &self.nodes {
            let parent = path.rsplit_once('/').map(|x| x.0).unwrap_or("");
            implicit.extend(ensure_dir(out, parent)?);
            let p = out.join(path);
            match &n.kind {
                Kind::Dir => {
                    implicit.retain(|x| x != path);
                    ensure_dir(out, path)?;
                }
                Kind::Symlink(t) => {
                    std::os::unix::fs::symlink(t, &p)
                        .with_context(|| format!("creating link {}", p.display()))?;
                    set_owner(&p, n.uid, n.gid)?;
                    set_times(&p, n.mtime)?;
                }
                Kind::File(_) if self.link_target(path).is_some() => {}
                Kind::File(d) => files.push((p, n, d)),
            }
        }
        files
            .par_iter()
            .try_for_each(|(p, n, d)| write_file(req, p, n, d))?;
        for path in self.hardlinks.keys() {
            if let Some(first) = self.link_target(path) {
                std::fs::hard_link(out.join(first), out.join(path))
                    .with_context(|| format!("linking {path} to {first}"))?;
            }
        }
        for x in &self.extracts {
            implicit.extend(ensure_dir(out, &x.dir)?);
            let dir = out.join(&x.dir);
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
            unpack_tar(reader, &dir, &opts)
                .with_context(|| format!("extracting {} into {}", x.source, x.dir))?;
        }
        for g in &self.gits {
            implicit.extend(ensure_dir(out, &g.dir)?);
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
            git::copy_tree(&co.root, &out.join(&g.dir), &opts)
                .with_context(|| format!("copying {} into /{}", g.source.display, g.dir))?;
        }
        // Directory metadata last (writing into a directory moves its mtime), deepest first.
        for (path, n) in self.nodes.iter().rev() {
            if let Kind::Dir = n.kind {
                let p = out.join(path);
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(n.mode))
                    .with_context(|| format!("setting the mode of {}", p.display()))?;
                set_owner(&p, n.uid, n.gid)?;
                set_xattrs(&p, &n.xattrs)?;
                set_times(&p, n.mtime)?;
            }
        }
        implicit.sort();
        implicit.dedup();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        for path in implicit.iter().rev() {
            let p = out.join(path);
            let (mode, uid, gid, mtime) = match req.dest.resolve(&format!("/{path}"), false)? {
                Some(r) if r.meta.is_dir() => (
                    r.meta.mode() & 0o7777,
                    r.meta.uid(),
                    r.meta.gid(),
                    mtime_of(&r.meta),
                ),
                _ => (
                    0o755,
                    self.new_dir_owner.0,
                    self.new_dir_owner.1,
                    (now.as_secs() as i64, now.subsec_nanos()),
                ),
            };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("setting the mode of {}", p.display()))?;
            set_owner(&p, uid, gid)?;
            set_times(&p, mtime)?;
        }
        Ok(())
    }
}

fn write_file(req: &CopyRequest, p: &Path, n: &Node, d: &Data) -> Result<()> {
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(p)
        .with_context(|| format!("creating {}", p.display()))?;
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
            let mut src = File::open(h).with_context(|| format!("opening {}", h.display()))?;
            std::io::copy(&mut src, &mut dst)
                .with_context(|| format!("copying {}", h.display()))?;
        }
        Data::Inline(text) => dst.write_all(text.as_bytes())?,
    }
    dst.set_permissions(std::fs::Permissions::from_mode(n.mode))
        .with_context(|| format!("setting the mode of {}", p.display()))?;
    if is_root() {
        std::os::unix::fs::fchown(&dst, Some(n.uid), Some(n.gid))
            .with_context(|| format!("setting the owner of {}", p.display()))?;
        // chown clears setuid/setgid: set the mode again.
        dst.set_permissions(std::fs::Permissions::from_mode(n.mode))?;
    }
    // After chown, which clears security.capability.
    set_xattrs(p, &n.xattrs)?;
    let t = UNIX_EPOCH + Duration::new(n.mtime.0.max(0) as u64, n.mtime.1);
    dst.set_times(FileTimes::new().set_modified(t).set_accessed(t))
        .with_context(|| format!("setting the times of {}", p.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
