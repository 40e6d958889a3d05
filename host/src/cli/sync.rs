//! lade sync: mirror many images (skopeo sync's YAML and flags), in parallel and incrementally: an image
//! whose destination already holds the same manifest digest is skipped after one manifest lookup at each side.

use super::Global;
use crate::copy::{CopyOptions, ManifestFormat, MultiArch, copy_image};
use crate::reference::Reference;
use crate::transport::{
    self, BlobStream, Descriptor, Digest, ImageSource, ReuseHint, SystemContext, TransportRef,
    media,
};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrcKind {
    Docker,
    Dir,
    Yaml,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestKind {
    Docker,
    Dir,
    Oci,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncFormat {
    Oci,
    V2s2,
}

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// Source: a repository or image (docker), a directory of dir: images (dir), or a sync YAML file (yaml)
    pub source: String,
    /// Destination: a registry prefix (docker), or a directory (dir, oci)
    pub destination: String,
    /// What SOURCE is
    #[arg(long, value_enum)]
    pub src: SrcKind,
    /// What DESTINATION is
    #[arg(long, value_enum)]
    pub dest: DestKind,
    /// Copy every image of an index, not only the host's
    #[arg(short, long)]
    pub all: bool,
    /// Show what would be copied, copy nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Go on after an image fails (the exit code still reports the failure)
    #[arg(long)]
    pub keep_going: bool,
    /// Fail instead of changing any digest
    #[arg(long)]
    pub preserve_digests: bool,
    /// Keep the source's full name under the destination (host/path/name:tag), not only the last component
    #[arg(long)]
    pub scoped: bool,
    /// Manifest format to write
    #[arg(short, long, value_enum)]
    pub format: Option<SyncFormat>,
    /// Do not copy referrers (signatures, attestations, SBOMs)
    #[arg(long)]
    pub no_referrers: bool,
    #[command(flatten)]
    pub sides: super::copy::SideFlags,
    /// Retries after a transient failure
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retry_times: u32,
    /// Images copied at once
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub image_parallelism: usize,
    /// Blobs copied at once per image
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub jobs: usize,
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
struct Job {
    src: String,
    dst: String,
    src_ctx: Arc<SystemContext>,
}

fn base_ctx(
    g: &Global,
    a: &SyncArgs,
    tls: Option<bool>,
    creds: Option<String>,
    authfile: Option<PathBuf>,
    cert: Option<PathBuf>,
) -> SystemContext {
    SystemContext {
        tls_verify: tls,
        creds,
        authfile,
        cert_dir: cert,
        registries_conf: g.registries_conf.clone(),
        retry_times: a.retry_times,
        store_root: g.root(),
        ..Default::default()
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

fn dest_name(a: &SyncArgs, suffix: &str) -> String {
    let d = a.destination.trim_end_matches('/');
    match a.dest {
        DestKind::Docker => format!("docker://{d}/{suffix}"),
        DestKind::Dir => format!("dir:{d}/{suffix}"),
        DestKind::Oci => format!("oci:{d}:{suffix}"),
    }
}

/// Expand a docker repository or image into jobs (a repository means every tag).
async fn docker_jobs(
    a: &SyncArgs,
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

async fn yaml_jobs(g: &Global, a: &SyncArgs) -> Result<Vec<Job>> {
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
        let creds = match &sec.credentials {
            Some(c) => Some(format!("{}:{}", c.username, c.password)),
            None => a.sides.src_creds.clone(),
        };
        let ctx = Arc::new(base_ctx(
            g,
            a,
            sec.tls_verify.or(a.sides.src_tls_verify),
            creds,
            a.sides.src_authfile.clone(),
            sec.cert_dir.clone().or(a.sides.src_cert_dir.clone()),
        ));
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
fn dir_jobs(a: &SyncArgs, ctx: Arc<SystemContext>) -> Result<Vec<Job>> {
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
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: the index is not JSON", src.name()))?;
        let i = crate::copy::platform::choose(&v, &opts.platform)?;
        if let Some(d) = v["manifests"][i]["digest"].as_str() {
            return Ok(d.to_string());
        }
    }
    Ok(crate::transport::verify::sha256_digest(&bytes).to_string())
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
            Some(crate::transport::verify::sha256_digest(&b).to_string())
        }
    }
}

enum Outcome {
    Copied(crate::copy::CopyReport),
    UpToDate,
    WouldCopy,
}

async fn sync_one(
    job: &Job,
    dst_ctx: &SystemContext,
    opts: &CopyOptions,
    dry_run: bool,
) -> Result<Outcome> {
    let inner = transport::open_source(&job.src, &job.src_ctx)
        .await
        .with_context(|| format!("opening {}", job.src))?;
    let src = Remembering {
        inner,
        top: Default::default(),
    };
    let want = expected_digest(&src, opts).await?;
    if opts.format.is_none()
        && opts.compress.is_none()
        && current_digest(&job.dst, dst_ctx).await.as_deref() == Some(want.as_str())
    {
        return Ok(Outcome::UpToDate);
    }
    if dry_run {
        return Ok(Outcome::WouldCopy);
    }
    let dst = transport::open_destination(&job.dst, dst_ctx)
        .await
        .with_context(|| format!("opening {}", job.dst))?;
    Ok(Outcome::Copied(copy_image(&src, dst.as_ref(), opts).await?))
}

pub fn run(g: &Global, a: SyncArgs) -> Result<()> {
    let dst_ctx = Arc::new(base_ctx(
        g,
        &a,
        a.sides.dest_tls_verify,
        a.sides.dest_creds.clone(),
        a.sides.dest_authfile.clone(),
        a.sides.dest_cert_dir.clone(),
    ));
    if a.dest != DestKind::Docker
        && (a.sides.dest_creds.is_some() || a.sides.dest_tls_verify.is_some())
    {
        bail!("--dest-creds and --dest-tls-verify apply to --dest docker only");
    }
    let opts = Arc::new(CopyOptions {
        multi_arch: if a.all {
            MultiArch::All
        } else {
            MultiArch::System
        },
        preserve_digests: a.preserve_digests,
        format: a.format.map(|f| match f {
            SyncFormat::Oci => ManifestFormat::Oci,
            SyncFormat::V2s2 => ManifestFormat::V2s2,
        }),
        referrers: !a.no_referrers,
        jobs: a.jobs.max(1),
        retry_times: a.retry_times,
        tmp_dir: g.root().join("lade").join("tmp"),
        ..Default::default()
    });
    let rt = super::runtime()?;
    rt.block_on(async {
        let src_ctx = Arc::new(base_ctx(g, &a, a.sides.src_tls_verify, a.sides.src_creds.clone(), a.sides.src_authfile.clone(), a.sides.src_cert_dir.clone()));
        let jobs = match a.src {
            SrcKind::Yaml => yaml_jobs(g, &a).await?,
            SrcKind::Docker => {
                let name = match transport::parse(&a.source) {
                    Ok(TransportRef::Docker(r)) => r,
                    _ => a.source.clone(),
                };
                docker_jobs(&a, &name, None, src_ctx).await?
            }
            SrcKind::Dir => dir_jobs(&a, src_ctx)?,
        };
        if jobs.is_empty() {
            eprintln!("Nothing to sync: the source selects no image");
            return Ok(());
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(a.image_parallelism.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for (i, job) in jobs.iter().cloned().enumerate() {
            let (sem, dst_ctx, opts, dry) = (sem.clone(), dst_ctx.clone(), opts.clone(), a.dry_run);
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore open");
                (i, sync_one(&job, &dst_ctx, &opts, dry).await)
            });
        }
        let (mut copied, mut fresh, mut failed) = (0, 0, vec![]);
        while let Some(res) = set.join_next().await {
            let (i, r) = res.context("a sync task panicked")?;
            let job = &jobs[i];
            match r {
                Ok(Outcome::Copied(rep)) => {
                    copied += 1;
                    eprintln!(
                        "Copied {} to {}: {} blobs written, {} already there, {} mounted",
                        job.src, job.dst, rep.blobs_copied, rep.blobs_skipped, rep.blobs_mounted
                    );
                }
                Ok(Outcome::UpToDate) => {
                    fresh += 1;
                    eprintln!("Up to date: {}", job.dst);
                }
                Ok(Outcome::WouldCopy) => {
                    copied += 1;
                    println!("Would copy {} to {}", job.src, job.dst);
                }
                Err(e) => {
                    eprintln!("error: syncing {} to {}: {e:#}", job.src, job.dst);
                    failed.push(job.src.clone());
                    if !a.keep_going {
                        set.abort_all();
                        bail!("sync stopped after {} failed (pass --keep-going to continue past failures)", job.src);
                    }
                }
            }
        }
        let verb = if a.dry_run { "would be copied" } else { "copied" };
        eprintln!("Synced {} images: {copied} {verb}, {fresh} up to date, {} failed", jobs.len(), failed.len());
        if !failed.is_empty() {
            bail!("{} of {} images failed: {}", failed.len(), jobs.len(), failed.join(", "));
        }
        Ok(())
    })
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
