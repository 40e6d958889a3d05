//! One `lade build` from start to end: the frontend plans once per platform (the TARGET* args differ), every
//! platform executes at once, the result is committed (an image, or an index over several platforms, named by
//! `--manifest` and the tags), then exported and pushed.

use super::base::BaseResolver;
use super::early_upload::EarlyUploads;
use super::executor::{self, BuildOptions, Built};
use super::output::{self, OutputSpec};
use super::plancheck;
use super::progress::Progress;
use super::remote_cache::{self, CacheSpec, RemoteCache};
use crate::context::BuildContext;
use crate::dispatch::platform::Platform;
use crate::plugin::Plugin;
use crate::plugin::frontend::{ContextReader, Diagnostic, ParseRequest, Plan};
use crate::registry::SystemContext;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::sync::Arc;

/// What one build makes and where it goes, besides the per-platform [`BuildOptions`].
pub struct BuildRequest {
    /// The frontend's request (the Containerfile, build args, target); its platform is set per platform.
    pub parse: ParseRequest,
    pub context_dir: PathBuf,
    /// The Containerfile read (None for stdin), kept out of the context's ignore rules.
    pub definition_path: Option<PathBuf>,
    pub platforms: Vec<Platform>,
    /// `-t`: the image's names (several platforms: the index's).
    pub tags: Vec<String>,
    /// `--manifest`: an index to create or replace.
    pub manifest: Option<String>,
    /// Docker v2s2 media types for an index.
    pub docker_format: bool,
    pub outputs: Vec<OutputSpec>,
    pub push: bool,
    /// `--iidfile`.
    pub iidfile: Option<PathBuf>,
    /// `--cache-from`: caches to look steps up in when the local cache misses.
    pub cache_from: Vec<CacheSpec>,
    /// `--cache-to`: where to export the build's cache after the image is delivered.
    pub cache_to: Vec<CacheSpec>,
}

/// What a build made: the image ID (config digest) or index digest, and the names it got.
pub struct BuildResult {
    pub id: String,
    pub names: Vec<String>,
}

/// Where a build runs: the store, the registry context for pulls and pushes, base-image lookups, progress,
/// and the async runtime for transports.
pub struct Builder<'a> {
    pub store: &'a Store,
    pub sys: &'a SystemContext,
    pub resolver: Arc<BaseResolver>,
    pub progress: &'a Progress,
    pub rt: &'a tokio::runtime::Handle,
}

impl Builder<'_> {
    /// Run one build with `frontend`. `options` gives each platform's options; `warn` receives the frontend's
    /// warnings and the unused build args of the first platform's plan (the same for every platform).
    pub fn build(
        &self,
        req: &BuildRequest,
        frontend: &Plugin,
        options: impl Fn(&Platform) -> Result<BuildOptions> + Sync,
        warn: impl FnMut(Warning<'_>),
    ) -> Result<BuildResult> {
        let (store, progress) = (self.store, self.progress);
        let resolver = self.resolver.clone();
        let plans = plan_all(req, frontend, resolver.clone(), &options, warn)?;
        let remote = self.import_caches(req, &options)?;
        // With --push, the cache's blobs are mounted from the pushed image's repository at export instead.
        let early = (!req.push)
            .then(|| EarlyUploads::new(&req.cache_to, self.sys))
            .flatten()
            .map(Arc::new);
        let ctx = BuildContext::open(&req.context_dir, req.definition_path.as_deref())?;
        let multi = req.platforms.len() > 1;
        let image_tags: &[String] = if multi { &[] } else { &req.tags };
        // Every platform at once; each one's stages are bounded by --jobs.
        let results: Vec<Result<Built>> = std::thread::scope(|s| {
            let handles: Vec<_> = req
                .platforms
                .iter()
                .zip(&plans)
                .map(|(p, plan)| {
                    let (ctx, resolver, options, remote, early) =
                        (&ctx, &resolver, &options, &remote, &early);
                    s.spawn(move || {
                        let mut opts = options(p)?;
                        opts.remote_cache = remote.clone();
                        opts.early_uploads = early.clone();
                        executor::execute(plan, ctx, resolver, store, &opts, progress, image_tags)
                            .map_err(|e| {
                                if multi {
                                    e.context(format!("building for {p}"))
                                } else {
                                    e
                                }
                            })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a build thread panicked")))
                })
                .collect()
        });
        let built = results.into_iter().collect::<Result<Vec<_>>>()?;
        let (id, names) = commit(req, store, &built)?;
        if let Some(f) = &req.iidfile {
            std::fs::write(f, &id).with_context(|| format!("writing --iidfile {}", f.display()))?;
        }
        deliver(
            req,
            store,
            self.sys,
            self.rt,
            self.progress.events(),
            &id,
            &names,
        )?;
        if let Some(up) = &early {
            up.finish();
        }
        self.export_caches(req, &built, remote.as_deref(), &names)?;
        let names = names
            .iter()
            .map(|t| crate::store::names::qualify_local(t))
            .collect();
        Ok(BuildResult { id, names })
    }
}

impl Builder<'_> {
    /// The `--cache-from` caches (manifests and maps only), unless the build does not use caches.
    fn import_caches(
        &self,
        req: &BuildRequest,
        options: &impl Fn(&Platform) -> Result<BuildOptions>,
    ) -> Result<Option<Arc<RemoteCache>>> {
        if req.cache_from.is_empty() || !options(&req.platforms[0])?.use_cache {
            return Ok(None);
        }
        let note = |m: &str| self.progress.message(m);
        let rc = RemoteCache::import(&req.cache_from, self.store, self.sys, self.rt, &note)?;
        Ok(Some(Arc::new(rc)))
    }

    /// Every `--cache-to`, from the steps and cache mounts of every platform's build.
    fn export_caches(
        &self,
        req: &BuildRequest,
        built: &[Built],
        remote: Option<&RemoteCache>,
        names: &[String],
    ) -> Result<()> {
        let pushed: Vec<crate::reference::Reference> = if req.push {
            names
                .iter()
                .filter_map(|n| crate::reference::Reference::parse(n).ok())
                .collect()
        } else {
            Vec::new()
        };
        for spec in &req.cache_to {
            let what = remote_cache::Exported {
                steps: built
                    .iter()
                    .flat_map(|b| b.cache.exported(spec.max))
                    .collect(),
                unchanged: built
                    .iter()
                    .flat_map(|b| b.cache.exported_unchanged(spec.max))
                    .collect(),
                mounts: built.iter().flat_map(|b| b.cache.mounts.clone()).collect(),
                remote,
                pushed: pushed.clone(),
            };
            match remote_cache::export(spec, self.store, what, self.sys, self.rt) {
                Ok(st) => self.progress.message(&format!(
                    "cache: exported {} steps and {} cache mounts to {} ({} blobs uploaded, {} mounted, {} already there)",
                    st.steps,
                    st.mounts,
                    spec.display(),
                    st.uploaded,
                    st.mounted,
                    st.present
                )),
                Err(e) if spec.ignore_error => self.progress.message(&format!(
                    "warning: exporting the cache to {} failed: {e:#}",
                    spec.display()
                )),
                Err(e) => {
                    return Err(e.context(format!("exporting the cache to {}", spec.display())));
                }
            }
        }
        Ok(())
    }
}

/// A platform in the frontend contract's terms.
pub fn wit_platform(p: &Platform) -> crate::plugin::Platform {
    crate::plugin::Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
        os_version: None,
        os_features: Vec::new(),
    }
}

/// What the frontend said about the definition, for the user.
pub enum Warning<'a> {
    Diagnostic(&'a Diagnostic),
    UnusedBuildArg(&'a str),
}

/// The frontend's plan for every platform, in the sandbox, each checked against what the user allowed
/// ([`plancheck`]) before anything of it is shown or runs.
fn plan_all(
    req: &BuildRequest,
    frontend: &Plugin,
    resolver: Arc<BaseResolver>,
    options: &impl Fn(&Platform) -> Result<BuildOptions>,
    mut warn: impl FnMut(Warning<'_>),
) -> Result<Vec<Plan>> {
    let reader: Arc<dyn ContextReader> = Arc::new(BuildContext::open(
        &req.context_dir,
        req.definition_path.as_deref(),
    )?);
    let mut plans = Vec::new();
    for (i, p) in req.platforms.iter().enumerate() {
        let mut request = req.parse.clone();
        request.target_platform = wit_platform(p);
        let parsed = frontend
            .frontend()?
            .parse(&request, reader.clone(), resolver.clone())
            .map_err(anyhow::Error::new)?;
        let opts = options(p)?;
        let allowed = plancheck::Allowed {
            secrets: &opts.secrets,
            network: opts.network,
        };
        plancheck::check(&parsed.plan, &allowed).with_context(|| {
            format!(
                "the plan from frontend `{}` was refused before anything ran",
                frontend.name
            )
        })?;
        if i == 0 {
            parsed
                .plan
                .warnings
                .iter()
                .for_each(|w| warn(Warning::Diagnostic(w)));
            parsed
                .plan
                .unused_build_args
                .iter()
                .for_each(|u| warn(Warning::UnusedBuildArg(u)));
        }
        plans.push(parsed.plan);
    }
    Ok(plans)
}

/// Commit what was built. One platform: the image (and an index over it for `--manifest`). Several: an index
/// over them, named by `--manifest` and the tags. Returns the ID to report and the names to push.
fn commit(req: &BuildRequest, store: &Store, built: &[Built]) -> Result<(String, Vec<String>)> {
    if req.platforms.len() > 1 {
        let list_names: Vec<String> = req.manifest.iter().chain(&req.tags).cloned().collect();
        let desc =
            executor::commit_index(store, built, &req.platforms, &list_names, req.docker_format)?;
        return Ok((desc.digest().to_string(), list_names));
    }
    if let Some(m) = &req.manifest {
        executor::commit_index(
            store,
            built,
            &req.platforms,
            std::slice::from_ref(m),
            req.docker_format,
        )?;
    }
    Ok((built[0].config_digest.clone(), req.tags.clone()))
}

/// `--output` exports, then `--push` of every name.
fn deliver(
    req: &BuildRequest,
    store: &Store,
    sys: &SystemContext,
    rt: &tokio::runtime::Handle,
    events: &crate::events::Events,
    id: &str,
    names: &[String],
) -> Result<()> {
    let image = id.trim_start_matches("sha256:").to_string();
    for spec in &req.outputs {
        output::export(store, &image, spec, sys, rt, events)
            .with_context(|| format!("--output {spec:?}"))?;
    }
    if req.push {
        if names.is_empty() {
            bail!("--push needs a name to push to: add -t REGISTRY/NAME:TAG");
        }
        for t in names {
            let spec = OutputSpec::Registry(t.clone());
            output::export(store, t, &spec, sys, rt, events)
                .with_context(|| format!("pushing {t}"))?;
        }
    }
    Ok(())
}
