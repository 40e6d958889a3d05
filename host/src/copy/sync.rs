//! Mirroring many images (skopeo sync's YAML and flags), in parallel and incrementally: an image whose
//! destination already holds the same manifest digest is skipped after one manifest lookup at each side.
//! [`plan`] expands the source into jobs; [`run`] copies them through the copy engine, with a
//! [`Signatures`] hook (the CLI's: it holds the keys) keeping, dropping or adding each image's signatures.

use super::{CopyOptions, CopyReport, MultiArch, copy_image};
use crate::oci::{BlobStream, Descriptor, Digest, media};
use crate::reference::Reference;
use crate::registry::SystemContext;
use crate::transport::{self, ImageSource, ReuseHint, TransportRef};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the sync source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrcKind {
    /// A repository (every tag) or one image in a registry.
    Docker,
    /// A directory of `dir:` images.
    Dir,
    /// A sync YAML file.
    Yaml,
}

/// What the sync destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestKind {
    /// A registry prefix.
    Docker,
    /// A directory of `dir:` images.
    Dir,
    /// An OCI layout.
    Oci,
}

impl std::str::FromStr for SrcKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "docker" => SrcKind::Docker,
            "dir" => SrcKind::Dir,
            "yaml" => SrcKind::Yaml,
            _ => bail!("unknown sync source kind {s:?}: use docker, dir or yaml"),
        })
    }
}

impl std::str::FromStr for DestKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "docker" => DestKind::Docker,
            "dir" => DestKind::Dir,
            "oci" => DestKind::Oci,
            _ => bail!("unknown sync destination kind {s:?}: use docker, dir or oci"),
        })
    }
}

/// What a sync does with signatures around each image's copy: the source's kept or dropped, new ones added.
#[async_trait]
pub trait Signatures: Send + Sync {
    /// Before `job` is copied from `src` (already checked against the policy): the source and options to
    /// copy with, and what is to be done with this image's signatures. Refuses, before anything is
    /// written, signatures the destination cannot hold.
    async fn prepare(
        &self,
        job: &Job,
        src: Box<dyn ImageSource>,
        opts: &CopyOptions,
    ) -> Result<(Box<dyn ImageSource>, CopyOptions, Box<dyn ImageSignatures>)>;
}

/// One image's signatures, from [`Signatures::prepare`].
#[async_trait]
pub trait ImageSignatures: Send + Sync {
    /// Whether a destination that already holds manifest `digest` needs nothing more: the source's
    /// signatures are there and no new one is to be made.
    fn complete(&self, digest: &str) -> Result<bool>;
    /// After the copy: store the source's signatures and this sync's own.
    async fn finish(&self, report: &CopyReport) -> Result<()>;
}

/// One sync: where from, where to, and how.
#[derive(Clone)]
pub struct SyncOptions {
    /// A repository or image (docker), a directory (dir) or a YAML file (yaml).
    pub source: String,
    /// A registry prefix (docker) or a directory (dir, oci).
    pub destination: String,
    pub src: SrcKind,
    pub dest: DestKind,
    /// Keep the source's full name under the destination, not only its last component.
    pub scoped: bool,
    /// Say what would be copied, copy nothing.
    pub dry_run: bool,
    /// Go on after an image fails.
    pub keep_going: bool,
    /// Images copied at once.
    pub image_parallelism: usize,
    /// The source side (a YAML section's own settings override it).
    pub src_ctx: SystemContext,
    pub dst_ctx: SystemContext,
    pub copy: CopyOptions,
    /// Signatures kept, dropped or added; `None` copies images only.
    pub signatures: Option<Arc<dyn Signatures>>,
}

/// How a sync ended: jobs copied (or that would be, with `dry_run`), already up to date, and failed.
#[derive(Debug, Default)]
pub struct Summary {
    pub copied: usize,
    pub up_to_date: usize,
    pub failed: Vec<String>,
}

/// Expand the source into jobs.
pub async fn plan(a: &SyncOptions) -> Result<Vec<Job>> {
    if a.dest != DestKind::Docker && (a.dst_ctx.creds.is_some() || a.dst_ctx.tls_verify.is_some()) {
        bail!("--dest-creds and --dest-tls-verify apply to --dest docker only");
    }
    let src_ctx = Arc::new(a.src_ctx.clone());
    match a.src {
        SrcKind::Yaml => yaml_jobs(a).await,
        SrcKind::Docker => {
            let name = match transport::parse(&a.source) {
                Ok(TransportRef::Docker(r)) => r,
                _ => a.source.clone(),
            };
            docker_jobs(a, &name, None, src_ctx).await
        }
        SrcKind::Dir => dir_jobs(a, src_ctx),
    }
}

/// Copy `jobs`, `image_parallelism` at once, calling `done` as each ends. Without `keep_going`, the first
/// failure stops the rest and is the error.
pub async fn run(
    a: &SyncOptions,
    jobs: &[Job],
    mut done: impl FnMut(&Job, &Result<Outcome>),
) -> Result<Summary> {
    let sem = Arc::new(tokio::sync::Semaphore::new(a.image_parallelism.max(1)));
    let dst_ctx = Arc::new(a.dst_ctx.clone());
    let opts = Arc::new(a.copy.clone());
    let mut set = tokio::task::JoinSet::new();
    for (i, job) in jobs.iter().cloned().enumerate() {
        let (sem, dst_ctx, opts, dry) = (sem.clone(), dst_ctx.clone(), opts.clone(), a.dry_run);
        let sigs = a.signatures.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            (
                i,
                sync_one(&job, &dst_ctx, &opts, dry, sigs.as_deref()).await,
            )
        });
    }
    let mut sum = Summary::default();
    while let Some(res) = set.join_next().await {
        let (i, r) = res.context("a sync task panicked")?;
        let job = &jobs[i];
        done(job, &r);
        match r {
            Ok(Outcome::Copied(_)) | Ok(Outcome::WouldCopy) => sum.copied += 1,
            Ok(Outcome::UpToDate) => sum.up_to_date += 1,
            Err(_) => {
                sum.failed.push(job.src.clone());
                if !a.keep_going {
                    set.abort_all();
                    bail!(
                        "sync stopped after {} failed (pass --keep-going to continue past failures)",
                        job.src
                    );
                }
            }
        }
    }
    Ok(sum)
}

/// One registry's section of a sync YAML.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct YamlRegistry {
    #[serde(default)]
    images: BTreeMap<String, Option<Vec<String>>>,
    #[serde(default)]
    images_by_tag_regex: BTreeMap<String, String>,
    #[serde(default)]
    images_by_semver: BTreeMap<String, String>,
    credentials: Option<YamlCreds>,
    tls_verify: Option<bool>,
    cert_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlCreds {
    username: String,
    password: String,
}

/// One image to mirror.
#[derive(Debug, Clone)]
pub struct Job {
    /// The source, as a transport string.
    pub src: String,
    /// The destination, as a transport string.
    pub dst: String,
    src_ctx: Arc<SystemContext>,
}

impl Job {
    /// The source side's settings (a YAML section's own, or the flags').
    pub fn src_ctx(&self) -> &SystemContext {
        &self.src_ctx
    }
}

/// Turn a Masterminds-style constraint (`>= 1.2, < 2`, `~1.3 || ^2`) into requirements.
fn semver_reqs(c: &str) -> Result<Vec<semver::VersionReq>> {
    let op_space = regex::Regex::new(r"(>=|<=|=|>|<|~|\^)\s+").expect("static regex");
    let mut out = vec![];
    for group in c.split("||") {
        let g = op_space.replace_all(group.trim(), "$1");
        let parts: Vec<&str> = g
            .split(|ch: char| ch == ',' || ch.is_whitespace())
            .filter(|p| !p.is_empty())
            .collect();
        let req = semver::VersionReq::parse(&parts.join(", "))
            .with_context(|| format!("semver constraint `{c}`"))?;
        out.push(req);
    }
    Ok(out)
}

/// Parse a tag as a version the way skopeo's semver library does: an optional `v`, and a missing minor or
/// patch counts as 0. None for tags that are not versions.
fn tag_version(tag: &str) -> Option<semver::Version> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    if let Ok(v) = semver::Version::parse(t) {
        return Some(v);
    }
    let split = t.find(['-', '+']).unwrap_or(t.len());
    let (core, rest) = t.split_at(split);
    let nums: Vec<&str> = core.split('.').collect();
    if nums.is_empty()
        || nums.len() > 3
        || nums
            .iter()
            .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full = nums.join(".");
    for _ in nums.len()..3 {
        full.push_str(".0");
    }
    semver::Version::parse(&format!("{full}{rest}")).ok()
}

/// The destination name for `src` (a docker reference string) under `dest`.
fn dest_suffix(src: &Reference, scoped: bool) -> String {
    let full = src.to_string();
    if scoped {
        return full;
    }
    // path.Base of the full reference: everything after the last `/`.
    full.rsplit('/').next().unwrap_or(&full).to_string()
}

fn dest_name(a: &SyncOptions, suffix: &str) -> String {
    let d = a.destination.trim_end_matches('/');
    match a.dest {
        DestKind::Docker => format!("docker://{d}/{suffix}"),
        DestKind::Dir => format!("dir:{d}/{suffix}"),
        DestKind::Oci => format!("oci:{d}:{suffix}"),
    }
}

/// Expand a docker repository or image into jobs (a repository means every tag).
async fn docker_jobs(
    a: &SyncOptions,
    name: &str,
    tags: Option<Vec<String>>,
    ctx: Arc<SystemContext>,
) -> Result<Vec<Job>> {
    let r = Reference::parse(name).with_context(|| format!("sync source `{name}`"))?;
    let mut out = vec![];
    let explicit = r.tag.is_some() || r.digest.is_some();
    let refs: Vec<Reference> = if explicit {
        vec![r.clone()]
    } else {
        let tags = match tags {
            Some(t) if !t.is_empty() => t,
            _ => transport::docker::list_tags(&r.to_string(), &ctx).await?.1,
        };
        let mut v = vec![];
        for t in tags {
            let full = if t.contains(':') {
                format!("{}@{t}", r.name())
            } else {
                format!("{}:{t}", r.name())
            };
            v.push(Reference::parse(&full).with_context(|| {
                format!("sync source {}: `{t}` is not a tag or digest", r.name())
            })?);
        }
        v
    };
    for rr in refs {
        out.push(Job {
            src: format!("docker://{rr}"),
            dst: dest_name(a, &dest_suffix(&rr, a.scoped)),
            src_ctx: ctx.clone(),
        });
    }
    Ok(out)
}

async fn yaml_jobs(a: &SyncOptions) -> Result<Vec<Job>> {
    let text = std::fs::read_to_string(&a.source)
        .with_context(|| format!("reading sync file {}", a.source))?;
    let doc: BTreeMap<String, YamlRegistry> = serde_yaml_ng::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {e}", a.source)
    })?;
    let mut jobs = vec![];
    for (registry, sec) in doc {
        let ctx = Arc::new(SystemContext {
            tls_verify: sec.tls_verify.or(a.src_ctx.tls_verify),
            creds: match &sec.credentials {
                Some(c) => Some(format!("{}:{}", c.username, c.password)),
                None => a.src_ctx.creds.clone(),
            },
            cert_dir: sec.cert_dir.clone().or(a.src_ctx.cert_dir.clone()),
            ..a.src_ctx.clone()
        });
        let repo_ref = |repo: &str| format!("{registry}/{repo}");
        for (repo, tags) in &sec.images {
            jobs.extend(docker_jobs(a, &repo_ref(repo), tags.clone(), ctx.clone()).await?);
        }
        for (repo, re) in &sec.images_by_tag_regex {
            let rx = regex::Regex::new(re).with_context(|| {
                format!(
                    "{}: images-by-tag-regex for {registry}/{repo}: `{re}`",
                    a.source
                )
            })?;
            let (_, tags) = transport::docker::list_tags(&repo_ref(repo), &ctx).await?;
            let chosen: Vec<String> = tags.into_iter().filter(|t| rx.is_match(t)).collect();
            if !chosen.is_empty() {
                jobs.extend(docker_jobs(a, &repo_ref(repo), Some(chosen), ctx.clone()).await?);
            }
        }
        for (repo, c) in &sec.images_by_semver {
            let reqs = semver_reqs(c)
                .with_context(|| format!("{}: images-by-semver for {registry}/{repo}", a.source))?;
            let (_, tags) = transport::docker::list_tags(&repo_ref(repo), &ctx).await?;
            let chosen: Vec<String> = tags
                .into_iter()
                .filter(|t| tag_version(t).is_some_and(|v| reqs.iter().any(|r| r.matches(&v))))
                .collect();
            if !chosen.is_empty() {
                jobs.extend(docker_jobs(a, &repo_ref(repo), Some(chosen), ctx.clone()).await?);
            }
        }
    }
    Ok(jobs)
}

/// `dir:` images under a directory (any directory holding a manifest.json).
fn dir_jobs(a: &SyncOptions, ctx: Arc<SystemContext>) -> Result<Vec<Job>> {
    let root = Path::new(&a.source);
    if a.dest == DestKind::Dir {
        bail!(
            "--src dir with --dest dir is not supported (as in skopeo): copy the directory instead"
        );
    }
    let mut jobs = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join("manifest.json").is_file() {
            let rel = d
                .strip_prefix(root)
                .unwrap_or(&d)
                .to_string_lossy()
                .trim_start_matches('/')
                .to_string();
            let suffix = if rel.is_empty() {
                root.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default()
            } else if a.scoped {
                rel
            } else {
                rel.rsplit('/').next().unwrap_or(&rel).to_string()
            };
            jobs.push(Job {
                src: format!("dir:{}", d.display()),
                dst: dest_name(a, &suffix),
                src_ctx: ctx.clone(),
            });
            continue;
        }
        let rd = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    jobs.sort_by(|x, y| x.src.cmp(&y.src));
    Ok(jobs)
}

/// A source that remembers its top manifest, so the up-to-date check and the copy share one request.
struct Remembering {
    inner: Box<dyn ImageSource>,
    top: tokio::sync::OnceCell<(Vec<u8>, String)>,
}

#[async_trait]
impl ImageSource for Remembering {
    fn name(&self) -> String {
        self.inner.name()
    }
    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
        match instance {
            None => Ok(self
                .top
                .get_or_try_init(|| self.inner.manifest(None))
                .await?
                .clone()),
            Some(_) => self.inner.manifest(instance).await,
        }
    }
    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        self.inner.blob(desc).await
    }
    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        self.inner.referrers(subject).await
    }
    async fn tagged_manifest(&self, tag: &str) -> Result<Option<(Vec<u8>, String)>> {
        self.inner.tagged_manifest(tag).await
    }
    fn reuse_hint(&self) -> Option<ReuseHint> {
        self.inner.reuse_hint()
    }
}

/// The digest the destination will hold after copying `src` (the index, or the chosen instance).
async fn expected_digest(src: &Remembering, opts: &CopyOptions) -> Result<String> {
    let (bytes, mt) = src.manifest(None).await?;
    if media::is_index(&mt) && opts.multi_arch == MultiArch::System {
        let v: crate::oci::Index = crate::oci::document::parse(&bytes)
            .with_context(|| format!("{}: the index is not valid", src.name()))?;
        let i = crate::oci::platform::choose(&v, &opts.platform)?;
        return Ok(v.manifests[i].digest.clone());
    }
    Ok(crate::oci::verify::sha256_digest(&bytes).to_string())
}

/// The digest the destination holds now, if any.
async fn current_digest(dst: &str, ctx: &SystemContext) -> Option<String> {
    match transport::parse(dst).ok()? {
        TransportRef::Docker(r) => transport::docker::manifest_digest(&r, ctx)
            .await
            .ok()
            .flatten()
            .map(|d| d.to_string()),
        _ => {
            let s = transport::open_source(dst, ctx).await.ok()?;
            let (b, _) = s.manifest(None).await.ok()?;
            Some(crate::oci::verify::sha256_digest(&b).to_string())
        }
    }
}

/// What became of one job.
pub enum Outcome {
    Copied(CopyReport),
    UpToDate,
    WouldCopy,
}

async fn sync_one(
    job: &Job,
    dst_ctx: &SystemContext,
    opts: &CopyOptions,
    dry_run: bool,
    sigs: Option<&dyn Signatures>,
) -> Result<Outcome> {
    let inner = transport::open_source(&job.src, &job.src_ctx)
        .await
        .with_context(|| format!("opening {}", job.src))?;
    let inner = crate::policy::check(&job.src, inner, &job.src_ctx).await?;
    let src = Remembering {
        inner,
        top: Default::default(),
    };
    let want = expected_digest(&src, opts).await?;
    let (src, copy_opts, image_sigs) = match sigs {
        Some(h) => {
            let (src, o, i) = h.prepare(job, Box::new(src), opts).await?;
            (src, o, Some(i))
        }
        None => (Box::new(src) as Box<dyn ImageSource>, opts.clone(), None),
    };
    if opts.format.is_none()
        && opts.compress.is_none()
        && current_digest(&job.dst, dst_ctx).await.as_deref() == Some(want.as_str())
        && match &image_sigs {
            Some(i) => i.complete(&want)?,
            None => true,
        }
    {
        return Ok(Outcome::UpToDate);
    }
    if dry_run {
        return Ok(Outcome::WouldCopy);
    }
    let dst = transport::open_destination(&job.dst, dst_ctx)
        .await
        .with_context(|| format!("opening {}", job.dst))?;
    let report = copy_image(src.as_ref(), dst.as_ref(), &copy_opts).await?;
    if let Some(i) = image_sigs {
        i.finish(&report).await?;
    }
    Ok(Outcome::Copied(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_like_skopeo() {
        let reqs = semver_reqs(">= 1.2.0, < 2").unwrap();
        let ok = |t: &str| tag_version(t).is_some_and(|v| reqs.iter().any(|r| r.matches(&v)));
        assert!(ok("1.2.0") && ok("v1.9") && ok("1.10.3"));
        assert!(
            !ok("2.0.0") && !ok("1.1.9") && !ok("latest") && !ok("1.2.0-rc1") && !ok("1.2.3.4")
        );
        let or = semver_reqs("~1.3 || ^3").unwrap();
        let m = |t: &str| tag_version(t).is_some_and(|v| or.iter().any(|r| r.matches(&v)));
        assert!(m("1.3.7") && m("3.1") && !m("1.4.0") && !m("2.0"));
        assert!(semver_reqs(">= nope").is_err());
    }

    #[test]
    fn destination_names() {
        let r = Reference::parse("reg.example:5000/team/app:1.0").unwrap();
        assert_eq!(dest_suffix(&r, false), "app:1.0");
        assert_eq!(dest_suffix(&r, true), "reg.example:5000/team/app:1.0");
        let y: BTreeMap<String, YamlRegistry> = serde_yaml_ng::from_str(
            "r.example:\n  images:\n    busybox: []\n    redis:\n      - '1.0'\n  images-by-tag-regex:\n    nginx: ^1\\.\n  images-by-semver:\n    alpine: '>= 3.12'\n  credentials:\n    username: u\n    password: p\n  tls-verify: false\n",
        )
        .unwrap();
        let s = &y["r.example"];
        assert_eq!(s.images["busybox"], Some(vec![]));
        assert_eq!(s.images["redis"], Some(vec!["1.0".to_string()]));
        assert_eq!(s.tls_verify, Some(false));
        assert!(
            serde_yaml_ng::from_str::<BTreeMap<String, YamlRegistry>>("r:\n  imagez: {}\n")
                .is_err()
        );
    }
}
