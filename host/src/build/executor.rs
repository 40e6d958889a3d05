//! Runs a plan: each required stage on its own thread (a stage waits only for the stages it depends on, and
//! at most `jobs` run at once), each step looked up in the layer cache before it runs, and the target stage
//! committed into the store.

use super::base::{BaseResolver, ResolvedBase};
use super::cache::{BuildCache, LayerRecord, Parts};
use super::copystep::{self, CopyRequest, CopySource};
use super::early_upload::EarlyUploads;
use super::progress::{Progress, StepId};
use super::remote_cache::RemoteCache;
use super::run::{self, CacheMountHooks, RunRequest, Secrets};
use super::statcache::StatCache;
use super::{ImageState, Layer, config, workdir};
use crate::context::BuildContext;
use crate::dispatch::isolation::{Emulator, Isolation, Network, Security};
use crate::dispatch::platform::Platform;
use crate::layer::{DiffOptions, DiffSource, LayerCache, write_diff};
use crate::oci::Compression;
use crate::oci::document::{self, Desc, Index, Manifest};
use crate::plugin::frontend::{CopyStep, Instruction, Plan, SourceRef, Stage, StageBase, Step};
use crate::store::Store;
use crate::transport::{Descriptor, Digest};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The image format to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageFormat {
    #[default]
    Oci,
    Docker,
}

/// Everything about a build except the plan and its inputs.
pub struct BuildOptions {
    pub platform: Platform,
    /// Prefix for stage names in progress lines (the platform, when several are built at once).
    pub label: Option<String>,
    /// Look steps up in the layer cache (`--layers`, minus `--no-cache`).
    pub use_cache: bool,
    pub cache_ttl: Option<Duration>,
    pub format: ImageFormat,
    pub compression: Compression,
    /// `--compression-level` (None: the format's default).
    pub compression_level: Option<u32>,
    /// `--timestamp` / SOURCE_DATE_EPOCH: every created time, and file times clamped to it.
    pub epoch: Option<i64>,
    /// Applied to the committed image: `--label`, `--env`, `--unsetenv`, `--annotation`.
    pub labels: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    pub unset_env: Vec<String>,
    pub annotations: Vec<(String, String)>,
    pub secrets: Secrets,
    pub network: Option<Network>,
    pub isolation: Isolation,
    /// Capabilities, seccomp and no_new_privs of RUN steps.
    pub security: Security,
    /// Stages running at once.
    pub jobs: usize,
    /// The definition's name as shown (`Containerfile`), for messages and `--explain-cache` slots.
    pub file_name: String,
    /// Ignore registered binfmt handlers when choosing how to run foreign-platform steps.
    pub ignore_binfmt: bool,
    /// `--cache-from`: looked up when the local cache misses; its layers are fetched only when needed.
    pub remote_cache: Option<Arc<RemoteCache>>,
    /// `--cache-to` registries, sent each layer a step makes while it is written.
    pub early_uploads: Option<Arc<EarlyUploads>>,
}

/// A committed image.
#[derive(Debug)]
pub struct Built {
    /// `sha256:<hex>` of the config (the image ID).
    pub config_digest: String,
    pub manifest: Descriptor,
    /// What `--cache-to` exports.
    pub cache: CacheRecords,
}

/// The cache results of one build, for `--cache-to`.
#[derive(Debug, Default)]
pub struct CacheRecords {
    /// (stage, key, layer) of every step that made a layer, hit or miss.
    pub steps: Vec<(u32, String, LayerRecord)>,
    /// The stages whose layers the image holds (the target and the stages it is built FROM).
    pub image_stages: BTreeSet<u32>,
    /// Cache mounts the build's steps used: id → the dir.
    pub mounts: BTreeMap<String, PathBuf>,
    /// (stage, key) of every check that found nothing to change (a WORKDIR that exists).
    pub unchanged: Vec<(u32, String)>,
}

impl CacheRecords {
    /// The steps to export: every stage's (`mode=max`) or only the image's.
    pub fn exported(&self, max: bool) -> BTreeMap<String, LayerRecord> {
        self.steps
            .iter()
            .filter(|(s, _, _)| max || self.image_stages.contains(s))
            .map(|(_, k, l)| (k.clone(), l.clone()))
            .collect()
    }

    /// The unchanged checks to export, chosen as [`CacheRecords::exported`] chooses steps.
    pub fn exported_unchanged(&self, max: bool) -> BTreeSet<String> {
        self.unchanged
            .iter()
            .filter(|(s, _)| max || self.image_stages.contains(s))
            .map(|(_, k)| k.clone())
            .collect()
    }
}

/// What a finished stage hands to the stages that use it.
struct StageOut {
    state: ImageState,
    key: String,
}

type Slot = Option<std::result::Result<Arc<StageOut>, String>>;

struct Exec<'a> {
    plan: &'a Plan,
    ctx: &'a BuildContext,
    resolver: &'a BaseResolver,
    store: &'a Store,
    opts: &'a BuildOptions,
    progress: &'a Progress,
    layers: LayerCache,
    cache: BuildCache,
    stat: StatCache,
    tmp: PathBuf,
    steps_dir: PathBuf,
    cache_mounts: PathBuf,
    results: Vec<(Mutex<Slot>, Condvar)>,
    running: (Mutex<usize>, Condvar),
    abort: AtomicBool,
    /// The first real failure (later ones are usually "a stage it needs failed").
    first_error: Mutex<Option<anyhow::Error>>,
    /// The runner chosen for each foreign platform, so binfmt_misc is read and reported once per build.
    emulators: Mutex<BTreeMap<Platform, Option<Emulator>>>,
    /// Steps and cache mounts, for `--cache-to`.
    recorded: Mutex<CacheRecords>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Run `plan` (already parsed, base images resolvable through `resolver`) and commit its target stage into
/// `store`, tagged with `tags`.
pub fn execute(
    plan: &Plan,
    ctx: &BuildContext,
    resolver: &BaseResolver,
    store: &Store,
    opts: &BuildOptions,
    progress: &Progress,
    tags: &[String],
) -> Result<Built> {
    let root = store.root().to_path_buf();
    let meta = root.join("lade");
    let ex = Exec {
        plan,
        ctx,
        resolver,
        store,
        opts,
        progress,
        layers: LayerCache::new(&root),
        cache: BuildCache::new(&root, opts.cache_ttl),
        stat: StatCache::open(&meta.join("statcache.json")),
        tmp: meta.join("tmp"),
        steps_dir: meta.join("steps"),
        cache_mounts: meta.join("cache-mounts"),
        results: plan
            .stages
            .iter()
            .map(|_| (Mutex::new(None), Condvar::new()))
            .collect(),
        running: (Mutex::new(0), Condvar::new()),
        abort: AtomicBool::new(false),
        first_error: Mutex::new(None),
        emulators: Mutex::new(BTreeMap::new()),
        recorded: Mutex::new(CacheRecords::default()),
    };
    for d in [&ex.tmp, &ex.cache_mounts] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    crate::paths::create_spread_dir(&ex.steps_dir)
        .with_context(|| format!("creating {}", ex.steps_dir.display()))?;
    // Blobs written before the final tag must survive a concurrent `lade prune`.
    let _guard = store.writer_guard()?;
    let _steps = sweep_steps(&ex.steps_dir)?;
    std::thread::scope(|s| {
        for &i in &plan.required {
            let ex = &ex;
            std::thread::Builder::new()
                .name(format!("stage-{i}"))
                .spawn_scoped(s, move || ex.stage_thread(i))
                .expect("spawning a stage thread");
        }
    });
    if let Err(e) = ex.stat.save() {
        tracing::warn!("could not save the context stat cache: {e:#}");
    }
    let result = match ex.first_error.lock().expect("lock").take() {
        Some(e) => Err(e),
        None => ex.wait(plan.target).and_then(|target| {
            // A layer hit in a remote cache is downloaded now if nothing read it yet.
            ex.materialize(&target.state, false)?;
            ex.commit(&target.state, tags)
        }),
    };
    // Steps write layers, unpacked trees and blobs under the store: name it when it fills up.
    result.map_err(|e| {
        if crate::fsutil::disk_full(&e) {
            e.context(format!(
                "out of space in the store at {} (layers, step trees and blobs are written there)",
                root.display()
            ))
        } else {
            e
        }
    })
}

impl Exec<'_> {
    fn stage_name(&self, i: u32) -> String {
        let name = match self
            .plan
            .stages
            .get(i as usize)
            .and_then(|s| s.name.clone())
        {
            Some(n) => n,
            None => format!("{}", i + 1),
        };
        match &self.opts.label {
            Some(l) => format!("{l} {name}"),
            None => name,
        }
    }

    fn stage_thread(&self, i: u32) {
        let result = self.run_stage(i);
        if let Err(e) = &result {
            let mut first = self.first_error.lock().expect("lock");
            if first.is_none() && !self.abort.swap(true, Ordering::SeqCst) {
                *first = Some(anyhow!("{e:#}"));
            }
        }
        let (slot, cv) = &self.results[i as usize];
        *slot.lock().expect("lock") = Some(result.map(Arc::new).map_err(|e| format!("{e:#}")));
        cv.notify_all();
    }

    /// The result of stage `i`, waiting for it.
    fn wait(&self, i: u32) -> Result<Arc<StageOut>> {
        let (slot, cv) = self
            .results
            .get(i as usize)
            .ok_or_else(|| anyhow!("the plan names stage {i}, which does not exist"))?;
        let mut g = slot.lock().expect("lock");
        loop {
            if let Some(r) = &*g {
                return r.clone().map_err(|_| {
                    anyhow!(
                        "stage {} failed, so this stage cannot run",
                        self.stage_name(i)
                    )
                });
            }
            g = cv.wait(g).expect("lock");
        }
    }

    fn acquire(&self) {
        let (n, cv) = &self.running;
        let mut g = n.lock().expect("lock");
        while *g >= self.opts.jobs.max(1) {
            g = cv.wait(g).expect("lock");
        }
        *g += 1;
    }

    fn release(&self) {
        let (n, cv) = &self.running;
        *n.lock().expect("lock") -= 1;
        cv.notify_one();
    }

    fn run_stage(&self, i: u32) -> Result<StageOut> {
        let stage = &self.plan.stages[i as usize];
        // Wait for every dependency before taking a job slot, so waiting stages never hold one.
        for &d in &stage.depends_on {
            self.wait(d)?;
        }
        self.acquire();
        let r = self.run_stage_steps(stage);
        self.release();
        r
    }

    fn platform_of(&self, stage: &Stage) -> Result<Platform> {
        match &stage.platform {
            Some(p) => p.parse().with_context(|| {
                format!(
                    "{}:{}: FROM --platform={p} is not a platform",
                    stage.location.file, stage.location.line
                )
            }),
            None => Ok(self.opts.platform.clone()),
        }
    }

    /// `base`, its layers unpacked only when [`Exec::materialize`] is asked to.
    fn image_state(&self, base: &ResolvedBase) -> Result<ImageState> {
        BaseResolver::lazy_state(base, &self.layers)
    }

    fn image_from(&self, reference: &str, platform: &Platform) -> Result<(ImageState, String)> {
        let base = self.resolver.resolve(reference, platform)?;
        let state = self.image_state(&base)?;
        Ok((state, base.manifest_digest.clone()))
    }

    fn run_stage_steps(&self, stage: &Stage) -> Result<StageOut> {
        let platform = self.platform_of(stage)?;
        let name = self.stage_name(stage.index);
        let (mut state, mut key) = match &stage.base {
            StageBase::Scratch => (
                ImageState {
                    layers: vec![],
                    config: config::initial(None, &platform, false),
                },
                super::cache::key(&vec![
                    ("base".into(), "scratch".into()),
                    ("platform".into(), platform.to_string()),
                ]),
            ),
            StageBase::Stage(s) => {
                let out = self.wait(*s)?;
                let mut st = out.state.clone();
                st.config = config::initial(Some(&out.state.config), &platform, true);
                (st, out.key.clone())
            }
            StageBase::Image(r) => {
                let (mut st, digest) = self.image_from(r, &platform).with_context(|| {
                    format!("{}:{}: FROM {r}", stage.location.file, stage.location.line)
                })?;
                st.config = config::initial(Some(&st.config), &platform, false);
                let key = super::cache::key(&vec![
                    ("base".into(), digest),
                    ("platform".into(), platform.to_string()),
                ]);
                (st, key)
            }
        };
        let emulator = self.emulator_for(&platform)?;
        let total = stage.steps.len();
        for (n, step) in stage.steps.iter().enumerate() {
            if self.abort.load(Ordering::SeqCst) {
                bail!("stopped: another stage failed");
            }
            let id = StepId {
                stage: &name,
                n: n + 1,
                total,
            };
            let location = format!("{}:{}", step.location.file, step.location.line);
            self.progress.step_started(&id, step.original.trim());
            let started = Instant::now();
            let at = StepAt {
                stage,
                n,
                step,
                id: &id,
                location: &location,
                emulator: emulator.as_ref(),
                slot: format!(
                    "{}|{}|{}",
                    self.opts.file_name,
                    stage
                        .name
                        .clone()
                        .unwrap_or_else(|| stage.index.to_string()),
                    n
                ),
            };
            let layer = self.step(&mut state, &mut key, &at).map_err(|e| {
                // RUN and COPY errors name their location already.
                if e.downcast_ref::<super::AtStep>().is_some() {
                    e
                } else {
                    e.context(format!("{location}: {}", step.original.trim()))
                }
            })?;
            self.progress
                .step_finished(&id, started.elapsed(), layer.as_deref());
        }
        Ok(StageOut { state, key })
    }

    /// How RUN steps of `platform` execute here: natively, through a binfmt handler (its interpreter made
    /// reachable inside the rootfs when the handler lacks the F flag), or not at all.
    fn emulator_for(&self, platform: &Platform) -> Result<Option<Emulator>> {
        use crate::dispatch::runner::{Runner, choose_runner};
        let host = Platform::host();
        if host.can_run(platform) {
            return Ok(None);
        }
        let mut known = self.emulators.lock().expect("lock");
        if let Some(e) = known.get(platform) {
            return Ok(e.clone());
        }
        let binfmt = crate::dispatch::binfmt::BinfmtInfo::system()?;
        let path = std::env::var("PATH").unwrap_or_default();
        let runner = choose_runner(&host, platform, &binfmt, self.opts.ignore_binfmt, &path)?;
        self.progress.message(&match &runner {
            Runner::Native => format!("{platform}: RUN steps run natively"),
            Runner::Binfmt { interpreter, .. } => format!(
                "{platform}: RUN steps run under the binfmt_misc handler {}",
                interpreter.display()
            ),
            Runner::Inject { qemu_path } => format!(
                "{platform}: RUN steps run under {} injected into the step (no binfmt_misc handler)",
                qemu_path.display()
            ),
        });
        let emulator = match runner {
            Runner::Native
            | Runner::Binfmt {
                fix_binary: true, ..
            } => None,
            Runner::Binfmt { interpreter, .. } => Some(Emulator::Interpreter(interpreter)),
            Runner::Inject { qemu_path } => Some(Emulator::Inject(qemu_path)),
        };
        known.insert(platform.clone(), emulator.clone());
        Ok(emulator)
    }

    fn created(&self) -> String {
        config::rfc3339(self.opts.epoch.unwrap_or_else(now_secs))
    }

    /// One step. Returns the diff_id of the layer it added, if any.
    fn step(
        &self,
        state: &mut ImageState,
        key: &mut String,
        at: &StepAt,
    ) -> Result<Option<String>> {
        let StepAt {
            stage,
            n,
            step,
            location,
            emulator,
            ..
        } = *at;
        let instruction = serde_json::to_string(&step.instruction)?;
        let mut parts: Parts = vec![
            ("parent".into(), key.clone()),
            ("instruction".into(), instruction),
        ];
        match &step.instruction {
            Instruction::Run(run_step) => {
                // The step runs on the image as it is now; `state` itself gets the new layer afterwards.
                let image = state.clone();
                let stage_state = |i: u32| -> Result<ImageState> {
                    let st = self.wait(i)?.state.clone();
                    self.materialize(&st, true)?;
                    Ok(st)
                };
                let image_state = |r: &str| -> Result<ImageState> {
                    let st = self.image_from(r, &self.opts.platform)?.0;
                    self.materialize(&st, true)?;
                    Ok(st)
                };
                let req = RunRequest {
                    step: run_step,
                    image: &image,
                    build_args: &step.build_args,
                    context: self.ctx,
                    stage: &stage_state,
                    image_from: &image_state,
                    secrets: &self.opts.secrets,
                    steps_dir: &self.steps_dir,
                    cache_mounts_dir: &self.cache_mounts,
                    network: self.opts.network,
                    isolation: self.opts.isolation,
                    security: &self.opts.security,
                    emulator: emulator.cloned(),
                    location,
                    mount_cache: Some(self),
                };
                parts.extend(run::key_inputs(&req, &self.stat)?);
                self.layer_step(state, key, parts, at, None, |tmp, opts| {
                    self.materialize(&image, true)?;
                    let snap = run::run(&req)?;
                    let (blob, dir) = snap.commit(&self.layers, tmp, opts)?;
                    Ok((blob, dir))
                })
            }
            Instruction::Copy(c) | Instruction::Add(c) => self.copy_step(state, key, parts, at, c),
            Instruction::Workdir(_) => {
                config::apply(&mut state.config, &step.instruction, false)?;
                let dir = config::workdir(&state.config);
                // Whether the directory exists is a fact about the parent's files: cached under its own key,
                // so a hit (local, or from a remote cache) needs no layer fetched or unpacked.
                let mut check = parts.clone();
                check.push(("workdir-exists".into(), dir.clone()));
                let check = super::cache::key(&check);
                let exists = |this: &Self| {
                    this.recorded
                        .lock()
                        .expect("lock")
                        .unchanged
                        .push((at.stage.index, check.clone()));
                };
                if self.opts.use_cache
                    && (self.cache.get(&check).is_some()
                        || self
                            .opts
                            .remote_cache
                            .as_ref()
                            .is_some_and(|r| r.unchanged(&check)))
                {
                    exists(self);
                    return self.config_only(state, key, &parts, step);
                }
                self.materialize(state, true)?;
                let view = state.view();
                if !workdir::missing(&view, &dir)? {
                    if let Err(e) = self.cache.put(&check, None) {
                        tracing::debug!("could not record the WORKDIR check: {e:#}");
                    }
                    exists(self);
                    return self.config_only(state, key, &parts, step);
                }
                // The directory is made, owned by the current USER: a layer of its own.
                let owner = workdir::owner(&view, &config::user(&state.config))?;
                parts.push(("workdir".into(), format!("{dir} {}:{}", owner.0, owner.1)));
                self.layer_step(state, key, parts, at, None, |tmp, opts| {
                    self.tree_layer(tmp, opts, |out| workdir::create(&view, &dir, owner, out))
                })
            }
            other => {
                let cmd_set_here = stage.steps[..n]
                    .iter()
                    .any(|s| matches!(s.instruction, Instruction::Cmd(_)));
                config::apply(&mut state.config, other, cmd_set_here)?;
                self.config_only(state, key, &parts, step)
            }
        }
    }

    /// COPY or ADD `c`: the sources chosen and keyed, then a layer of them (`--link`: keyed without its parent).
    fn copy_step(
        &self,
        state: &mut ImageState,
        key: &mut String,
        mut parts: Parts,
        at: &StepAt,
        c: &CopyStep,
    ) -> Result<Option<String>> {
        let (step, location) = (at.step, at.location);
        let add = matches!(step.instruction, Instruction::Add(_));
        let workdir = config::workdir(&state.config);
        let from_stage = match &c.from {
            Some(SourceRef::Stage(i)) => Some(self.wait(*i)?),
            _ => None,
        };
        let from_image = match &c.from {
            Some(SourceRef::Image(r)) => Some(self.image_from(r, &self.opts.platform)?),
            _ => None,
        };
        if let Some((_, digest)) = &from_image {
            parts.push(("from image".into(), digest.clone()));
        }
        if let Some(out) = &from_stage {
            parts.push(("from stage".into(), out.key.clone()));
        }
        let pre = self.copy_pre_key(&parts, c, add, &workdir, location);
        if let Some(pre) = &pre
            && let Some(layer) = self.lookup(pre)?
        {
            self.progress.cache(at.id, pre, true, None);
            return Ok(Some(self.add_layer(state, key, layer, at, &[pre.as_str()])));
        }
        let from_view;
        let source = match (&from_stage, &from_image) {
            (Some(out), _) => {
                self.materialize(&out.state, true)?;
                from_view = out.state.view();
                CopySource::Image(&from_view)
            }
            (_, Some((st, _))) => {
                self.materialize(st, true)?;
                from_view = st.view();
                CopySource::Image(&from_view)
            }
            _ => CopySource::Context(self.ctx),
        };
        self.materialize(state, true)?;
        let image = state.view();
        // `--link`: the files land on nothing, so the layer does not depend on what is below it.
        let empty = super::rootview::RootView::new(Vec::new());
        let dest = if c.link { &empty } else { &image };
        let req = CopyRequest {
            step: c,
            add,
            source,
            dest,
            users: &image,
            workdir: &workdir,
            statcache: &self.stat,
            tmp_dir: &self.tmp,
            location,
        };
        let prepared = copystep::prepare(&req)?;
        parts.push(("inputs".into(), prepared.digest.clone()));
        for (path, digest) in &prepared.inputs {
            parts.push((format!("file {path}"), digest.clone()));
        }
        if !c.link {
            return self.layer_step(state, key, parts, at, pre.as_deref(), |tmp, opts| {
                self.tree_layer(tmp, opts, |out| prepared.apply(&req, out))
            });
        }
        // A linked layer is keyed without its parent, so a change below it (a new base) reuses it;
        // what it does read from the image (the WORKDIR for relative paths, --chown's ids) is in
        // the key instead. The chain key for the steps after it still covers both.
        let parent = parts.remove(0).1;
        let (uid, gid) = prepared.owner();
        parts.push(("workdir".into(), workdir.clone()));
        parts.push(("owner".into(), format!("{uid}:{gid}")));
        let diff_id = self.layer_step(state, key, parts, at, None, |tmp, opts| {
            self.tree_layer(tmp, opts, |out| prepared.apply(&req, out))
        })?;
        *key = super::cache::key(&vec![
            ("parent".into(), parent),
            ("linked layer".into(), key.clone()),
        ]);
        Ok(diff_id)
    }

    /// A key for a COPY's layer made before the image below is unpacked: the parent's key stands for that
    /// image, so the step's result depends only on it and on what is copied (the context files' digest, or
    /// the key or digest of the stage or image copied from, already in `parts`). `None` for `--link`
    /// (keyed without its parent) or when the sources cannot be digested alone. Made with `--no-cache`
    /// too: it is the chain key the steps after it are keyed by, in every build.
    fn copy_pre_key(
        &self,
        parts: &Parts,
        c: &CopyStep,
        add: bool,
        workdir: &str,
        location: &str,
    ) -> Option<String> {
        if c.link {
            return None;
        }
        let sources = match c.from {
            Some(_) => "the source's key".to_string(),
            None => {
                let empty = super::rootview::RootView::new(Vec::new());
                let req = CopyRequest {
                    step: c,
                    add,
                    source: CopySource::Context(self.ctx),
                    dest: &empty,
                    users: &empty,
                    workdir,
                    statcache: &self.stat,
                    tmp_dir: &self.tmp,
                    location,
                };
                match copystep::source_digest(&req) {
                    Ok(d) => d?,
                    // The full plan reports it, with its context.
                    Err(e) => {
                        tracing::debug!("{location}: no early key for this step: {e:#}");
                        return None;
                    }
                }
            }
        };
        let mut pre = parts.clone();
        pre.push(("workdir".into(), workdir.to_string()));
        pre.push(("sources".into(), sources));
        Some(super::cache::key(&pre))
    }

    /// A step that changed only the config: the key moves on, history gets an empty-layer entry.
    fn config_only(
        &self,
        state: &mut ImageState,
        key: &mut String,
        parts: &Parts,
        step: &Step,
    ) -> Result<Option<String>> {
        // An ARG changes nothing by itself: the steps that use its value carry it in their own key (RUN sees
        // the args in scope, other instructions have them expanded), so a new value misses only there.
        if matches!(step.instruction, Instruction::Arg(_)) {
            return Ok(None);
        }
        *key = super::cache::key(parts);
        let created = self.created();
        config::add_history(&mut state.config, &created, &config::created_by(step), true);
        Ok(None)
    }

    /// A layer whose content `fill` writes into an empty plain directory (COPY, WORKDIR).
    fn tree_layer(
        &self,
        tmp: &std::path::Path,
        opts: &DiffOptions,
        fill: impl FnOnce(&std::path::Path) -> Result<()>,
    ) -> Result<(crate::layer::LayerBlob, PathBuf)> {
        let tree = tempfile::Builder::new()
            .prefix("tree-")
            .tempdir_in(&self.steps_dir)
            .context("creating a dir for the layer")?;
        let out = tree.path().join("tree");
        std::fs::create_dir(&out)?;
        fill(&out)?;
        let blob = write_diff(DiffSource::Tree(&out), tmp, opts)?;
        let dir = self.layers.adopt(&blob.diff_id, &out)?;
        Ok((blob, dir))
    }

    /// A step that makes a layer: a cache hit reuses the recorded layer, a miss runs `make` and records it.
    /// With `alias` (a key made before the step's inputs were all read), the layer is recorded under it
    /// too and it becomes the chain key, so a later build can hit on it alone.
    fn layer_step(
        &self,
        state: &mut ImageState,
        key: &mut String,
        parts: Parts,
        at: &StepAt,
        alias: Option<&str>,
        make: impl FnOnce(&std::path::Path, &DiffOptions) -> Result<(crate::layer::LayerBlob, PathBuf)>,
    ) -> Result<Option<String>> {
        let slot = at.slot.as_str();
        let k = super::cache::key(&parts);
        let layer = match self.lookup(&k)? {
            Some(layer) => {
                self.progress.cache(at.id, &k, true, None);
                layer
            }
            None => {
                let why = if self.opts.use_cache {
                    self.cache.explain(slot, &parts)
                } else {
                    "--no-cache".into()
                };
                self.progress.cache(at.id, &k, false, Some(&why));
                let tee = match &self.opts.early_uploads {
                    Some(up) => up.tee(self.image_stages().contains(&at.stage.index)),
                    None => Default::default(),
                };
                let opts = DiffOptions {
                    compression: self.opts.compression,
                    level: self.opts.compression_level,
                    epoch: self.opts.epoch,
                    tee,
                };
                let (blob, dir) = make(&self.tmp, &opts)?;
                let digest: Digest = blob.digest.parse()?;
                let diff_id: Digest = blob.diff_id.parse()?;
                let record = LayerRecord {
                    diff_id: blob.diff_id.clone(),
                    digest: blob.digest.clone(),
                    size: blob.size,
                    media_type: blob.media_type().to_string(),
                };
                self.store.layout().adopt_blob(&digest, blob.file)?;
                self.store.record_diff_id(&digest, &diff_id)?;

                self.cache.put(&k, Some(record.clone()))?;
                if let Err(e) = self.cache.put_parts(&k, &parts) {
                    tracing::debug!("could not keep the step's inputs for --explain-cache: {e:#}");
                }
                Layer {
                    diff_id: record.diff_id,
                    blob: descriptor(&record.media_type, &record.digest, record.size)?,
                    dir,
                }
            }
        };
        if let Err(e) = self.cache.remember(slot, &k) {
            tracing::debug!("could not remember the step's inputs for --explain-cache: {e:#}");
        }
        let keys: Vec<&str> = std::iter::once(k.as_str()).chain(alias).collect();
        Ok(Some(self.add_layer(state, key, layer, at, &keys)))
    }

    /// The layer recorded under `k`, in the local cache or the remote one (not fetched yet), if any.
    fn lookup(&self, k: &str) -> Result<Option<Layer>> {
        if !self.opts.use_cache {
            return Ok(None);
        }
        let local = self
            .cache
            .get(k)
            .and_then(|rec| rec.layer)
            .map(|l| self.cached_layer(&l))
            .transpose()?
            .flatten();
        match local {
            Some(l) => Ok(Some(l)),
            None => self.remote_layer(k),
        }
    }

    /// `layer` added to `state` by the step at `at`, recorded in the local cache under each of `keys` but
    /// the first (which the caller recorded); the last key becomes the chain key and is the one
    /// `--cache-to` exports (a runner that imports it computes that key first). Returns its diff_id.
    fn add_layer(
        &self,
        state: &mut ImageState,
        key: &mut String,
        layer: Layer,
        at: &StepAt,
        keys: &[&str],
    ) -> String {
        let record = LayerRecord {
            diff_id: layer.diff_id.clone(),
            digest: layer.blob.digest().to_string(),
            size: layer.blob.size(),
            media_type: layer.blob.media_type().to_string(),
        };
        for k in keys.iter().skip(1) {
            if let Err(e) = self.cache.put(k, Some(record.clone())) {
                tracing::debug!("could not record the step under its early key: {e:#}");
            }
        }
        let chain = keys.last().copied().unwrap_or_default().to_string();
        self.recorded
            .lock()
            .expect("lock")
            .steps
            .push((at.stage.index, chain.clone(), record));
        let diff_id = layer.diff_id.clone();
        config::add_layer(&mut state.config, &diff_id);
        let created = self.created();
        config::add_history(
            &mut state.config,
            &created,
            &config::created_by(at.step),
            false,
        );
        state.layers.push(layer);
        *key = chain;
        diff_id
    }

    /// The layer of a cache record, if its blob is still in the store (unpacked only when
    /// [`Exec::materialize`] is asked to).
    fn cached_layer(&self, rec: &LayerRecord) -> Result<Option<Layer>> {
        let digest: Digest = rec.digest.parse()?;
        if !self.store.layout().has_blob(&digest, Some(rec.size)) {
            return Ok(None);
        }
        Ok(Some(Layer {
            diff_id: rec.diff_id.clone(),
            blob: descriptor(&rec.media_type, &rec.digest, rec.size)?,
            dir: self.layers.path_of(&rec.diff_id)?,
        }))
    }

    /// Write config and manifest of `state` into the store and name it.
    fn commit(&self, state: &ImageState, tags: &[String]) -> Result<Built> {
        let mut cfg = state.config.clone();
        for (k, v) in &self.opts.env {
            config::set_env(&mut cfg, k, v);
        }
        for k in &self.opts.unset_env {
            config::unset_env(&mut cfg, k);
        }
        for (k, v) in &self.opts.labels {
            config::set_label(&mut cfg, k, v);
        }
        cfg.created = Some(self.created());
        let docker = self.opts.format == ImageFormat::Docker;
        let (manifest_mt, config_mt) = if docker {
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
            )
        } else {
            (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.config.v1+json",
            )
        };
        let config_bytes = document::to_vec(&cfg)?;
        let config_digest = self.store.layout().put_bytes(&config_bytes)?;
        let mut layers = Vec::new();
        for l in &state.layers {
            let mt = layer_media_type(l.blob.media_type().as_ref(), docker)?;
            layers.push(Desc::new(mt, l.blob.digest(), l.blob.size()));
        }
        let mut manifest = Manifest {
            schema_version: 2,
            media_type: Some(manifest_mt.into()),
            config: Desc::new(config_mt, &config_digest, config_bytes.len() as u64),
            layers,
            ..Manifest::default()
        };
        if !self.opts.annotations.is_empty() {
            if docker {
                bail!(
                    "--annotation needs the OCI format (Docker manifests have no annotations); drop --format docker"
                );
            }
            let a: BTreeMap<String, String> = self.opts.annotations.iter().cloned().collect();
            manifest.annotations = Some(a);
        }
        let bytes = document::to_vec(&manifest)?;
        let desc = self.store.put_manifest(&bytes, manifest_mt)?;
        if tags.is_empty() {
            self.store.layout().add_untagged(&desc)?;
        }
        for t in tags {
            self.store
                .tag(t, &desc)
                .with_context(|| format!("naming the image {t}"))?;
        }
        let mut cache = std::mem::take(&mut *self.recorded.lock().expect("lock"));
        cache.image_stages = self.image_stages();
        Ok(Built {
            config_digest: config_digest.to_string(),
            manifest: desc,
            cache,
        })
    }

    /// The target stage and the stages it is built FROM, in turn.
    fn image_stages(&self) -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        let mut i = self.plan.target;
        while out.insert(i) {
            match self.plan.stages.get(i as usize).map(|s| &s.base) {
                Some(StageBase::Stage(s)) => i = *s,
                _ => break,
            }
        }
        out
    }

    /// Make the layers of `state` usable: blobs a remote cache hit left unfetched downloaded into the store
    /// and, with `tree` (a step is about to read the files), every layer unpacked. Base layers and cache
    /// hits are unpacked only here, so a build whose steps all hit unpacks nothing.
    fn materialize(&self, state: &ImageState, tree: bool) -> Result<()> {
        let layout = self.store.layout();
        let mut missing = vec![];
        for l in &state.layers {
            if tree && self.layers.get(&l.diff_id)?.is_some() {
                continue;
            }
            if !layout.has_blob(l.blob.digest(), Some(l.blob.size())) {
                missing.push(l);
            }
        }
        if let Some(remote) = &self.opts.remote_cache {
            super::four_at_a_time(&missing, |l| {
                let digest = l.blob.digest();
                remote.ensure_blob(digest.as_ref(), l.blob.size(), l.blob.media_type().as_ref())?;
                self.store.record_diff_id(digest, &l.diff_id.parse()?)
            })?;
        } else if let Some(l) = missing.first() {
            bail!(
                "layer {} is missing from the store (was it removed during the build?); build again",
                l.blob.digest()
            );
        }
        if tree {
            self.resolver.unpack_layers(&state.layers, &self.layers)?;
        }
        Ok(())
    }

    /// A step's layer from the remote cache, not fetched yet (its dir is where it will be unpacked).
    fn remote_layer(&self, key: &str) -> Result<Option<Layer>> {
        let Some(rec) = self.opts.remote_cache.as_ref().and_then(|r| r.lookup(key)) else {
            return Ok(None);
        };
        Ok(Some(Layer {
            diff_id: rec.diff_id.clone(),
            blob: descriptor(&rec.media_type, &rec.digest, rec.size)?,
            dir: self.layers.path_of(&rec.diff_id)?,
        }))
    }
}

impl CacheMountHooks for Exec<'_> {
    fn restore(&self, id: &str, dest: &Path) -> Result<bool> {
        match &self.opts.remote_cache {
            Some(r) => r.restore_mount(id, dest),
            None => Ok(false),
        }
    }

    fn used(&self, id: &str, dir: &Path) {
        let mut rec = self.recorded.lock().expect("lock");
        rec.mounts.insert(id.to_string(), dir.to_path_buf());
    }
}

/// Where a step runs: its stage and place there, for messages and for the cache (`slot` names the step
/// in `--explain-cache` across builds).
struct StepAt<'a> {
    stage: &'a Stage,
    n: usize,
    step: &'a Step,
    id: &'a StepId<'a>,
    location: &'a str,
    emulator: Option<&'a Emulator>,
    slot: String,
}

/// Write an index over `built` (one image per platform) and name it with each of `names`. An existing list of
/// that name keeps its entries for other platforms; entries for these platforms are replaced.
pub fn commit_index(
    store: &Store,
    built: &[Built],
    platforms: &[Platform],
    names: &[String],
    docker: bool,
) -> Result<Descriptor> {
    let index_mt = if docker {
        "application/vnd.docker.distribution.manifest.list.v2+json"
    } else {
        "application/vnd.oci.image.index.v1+json"
    };
    let mut index = Index::empty(Some(index_mt));
    if let Some(first) = names.first()
        && let Ok((_, d)) = store.resolve(first)
        && crate::transport::media::is_index(d.media_type().as_ref())
        && let Ok(old) = document::parse::<Index>(&store.layout().read_blob(d.digest())?)
    {
        index.manifests = old.manifests;
    }
    for (b, p) in built.iter().zip(platforms) {
        let platform = document::Platform {
            architecture: Some(p.architecture.clone()),
            os: Some(p.os.clone()),
            variant: p.variant.clone(),
            ..Default::default()
        };
        index
            .manifests
            .retain(|e| e.platform.as_ref() != Some(&platform));
        index.manifests.push(Desc {
            platform: Some(platform),
            ..Desc::new(
                b.manifest.media_type().as_ref(),
                b.manifest.digest(),
                b.manifest.size(),
            )
        });
    }
    let bytes = document::to_vec(&index)?;
    let desc = store.put_manifest(&bytes, index_mt)?;
    if names.is_empty() {
        store.layout().add_untagged(&desc)?;
    }
    for n in names {
        store
            .tag(n, &desc)
            .with_context(|| format!("naming the manifest list {n}"))?;
    }
    Ok(desc)
}

/// Hold a shared lock on the steps dir for the build; when no other build holds one, first remove what a
/// killed build left there (step snapshots, layer trees).
fn sweep_steps(steps_dir: &std::path::Path) -> Result<std::fs::File> {
    use rustix::fs::{FlockOperation, flock};
    let lock = std::fs::File::create(steps_dir.join(".lock"))
        .with_context(|| format!("creating {}/.lock", steps_dir.display()))?;
    if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
        for e in std::fs::read_dir(steps_dir)?.flatten() {
            if e.file_name() != ".lock" {
                let p = e.path();
                // Overlay work dirs can hold root-owned, mode-0 entries; remove_dir_all copes as root.
                if let Err(err) = std::fs::remove_dir_all(&p) {
                    tracing::debug!("could not remove stale {}: {err}", p.display());
                }
            }
        }
    }
    flock(&lock, FlockOperation::LockShared).context("locking the steps dir")?;
    Ok(lock)
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> Result<Descriptor> {
    Ok(Descriptor::new(
        media_type.into(),
        size,
        digest
            .parse::<Digest>()
            .with_context(|| format!("bad digest {digest}"))?,
    ))
}

/// A layer's media type in the output format (the blob's compression decides; a base image's layers may
/// come in either family).
pub fn layer_media_type(current: &str, docker: bool) -> Result<&'static str> {
    let zstd = current.ends_with("zstd");
    let plain = current.ends_with(".tar") || current.ends_with("tar");
    Ok(match (docker, zstd, plain) {
        (true, true, _) => bail!(
            "a zstd layer cannot go into a Docker-format image; use --format oci or --compression-format gzip"
        ),
        (true, false, true) => "application/vnd.docker.image.rootfs.diff.tar",
        (true, false, false) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        (false, true, _) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (false, false, true) => "application/vnd.oci.image.layer.v1.tar",
        (false, false, false) => "application/vnd.oci.image.layer.v1.tar+gzip",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_media_types_follow_format_and_compression() {
        let g = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        assert_eq!(
            layer_media_type(g, false).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            layer_media_type("application/vnd.oci.image.layer.v1.tar+gzip", true).unwrap(),
            g
        );
        assert!(layer_media_type("application/vnd.oci.image.layer.v1.tar+zstd", true).is_err());
        assert_eq!(
            layer_media_type("application/vnd.oci.image.layer.v1.tar", false).unwrap(),
            "application/vnd.oci.image.layer.v1.tar"
        );
    }
}
