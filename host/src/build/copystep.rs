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
use crate::context::{BuildContext, Pattern, confine};
use crate::plugin::frontend::CopyStep;
use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod apply;
mod chmod;
mod git;
pub(in crate::build) mod out;
mod plan;

pub use chmod::ModeSpec;
pub use git::strip_userinfo;

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

/// A digest of what a COPY or ADD from the build context copies (selected paths, kinds, modes, link
/// targets, contents, the step's flags), without looking at the image it lands on; `None` when a source
/// is a URL or a git repository (those are fetched to be digested). With the parent's cache key, which
/// stands for the image below, it keys the step's layer before the image is unpacked, so a cache hit
/// unpacks nothing.
pub fn source_digest(req: &CopyRequest) -> Result<Option<String>> {
    let fetched = |s: &String| req.add && (is_url(s) || git::is_git(s));
    if !matches!(req.source, CopySource::Context(_)) || req.step.sources.iter().any(fetched) {
        return Ok(None);
    }
    let p = plan::prepare_inner(req, plan::Scope::SourcesOnly)?;
    Ok(Some(p.digest))
}

/// Select and digest the sources of a COPY/ADD step (see the module docs).
pub fn prepare(req: &CopyRequest) -> Result<PreparedCopy> {
    let what = if req.add { "ADD" } else { "COPY" };
    let start = std::time::Instant::now();
    let p = plan::prepare_inner(req, plan::Scope::Full)
        .with_context(|| super::AtStep(format!("{}: {what}", req.location)))?;
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

#[cfg(test)]
mod tests;
