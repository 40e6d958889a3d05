//! `lade build`: parse the definition with a frontend plugin (base images resolved through the store and the
//! registry, so ONBUILD triggers apply), run the plan, commit the image, then export or push it.

use super::Global;
use super::dockerfile::{DefinitionArgs, definition, wit_platform};
use crate::build::base::{BaseResolver, PullPolicy};
use crate::build::executor::{self, BuildOptions, Built, ImageFormat};
use crate::build::output::{self, OutputSpec};
use crate::build::progress::{Mode, Progress};
use crate::build::run::Secrets;
use crate::context::BuildContext;
use crate::dispatch::isolation::{Isolation, Network};
use crate::dispatch::platform::Platform;
use crate::layer::Compression;
use crate::plugin::frontend::{ContextReader, Severity};
use crate::plugin::{PluginSource, render_diagnostic};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    /// OCI image (default)
    Oci,
    /// Docker v2s2 image
    Docker,
    /// OCI image, with progress as JSON events on stdout
    Json,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkArg {
    Host,
    None,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationArg {
    /// lade's own namespaces (default)
    Chroot,
    /// runc with an OCI runtime config
    Oci,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionArg {
    Gzip,
    Zstd,
}

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// Name for the image; repeatable
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// A file of NAME=value build arguments, one per line (`#` comments)
    #[arg(long, value_name = "FILE")]
    pub build_arg_file: Vec<PathBuf>,
    /// Cache intermediate layers (on by default)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub layers: Option<bool>,
    /// Do not use cached layers (results are still recorded)
    #[arg(long)]
    pub no_cache: bool,
    /// Cached layers older than this are not used (`24h`, `90m`)
    #[arg(long, value_name = "DURATION")]
    pub cache_ttl: Option<String>,
    /// Print hit or miss for every step, and for a miss which input changed
    #[arg(long)]
    pub explain_cache: bool,
    /// When to pull base images
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "always", require_equals = true, default_value_t = PullPolicy::Missing)]
    pub pull: PullPolicy,
    /// Image format (`json`: OCI, with progress as JSON events)
    #[arg(long, value_enum, default_value_t = FormatArg::Oci)]
    pub format: FormatArg,
    /// Layer compression
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub compression_format: CompressionArg,
    /// Compression level: gzip 1 (fastest) to 9 (smallest), default 6; zstd 1 to 19, default 3
    #[arg(long, value_name = "N")]
    pub compression_level: Option<u32>,
    /// Set created times to this (seconds since the epoch) and clamp file times to it (default: SOURCE_DATE_EPOCH)
    #[arg(long, value_name = "SECONDS")]
    pub timestamp: Option<i64>,
    /// Add a label to the image, `KEY=value`; repeatable
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Add an annotation to the image manifest, `KEY=value`; repeatable
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Set an environment variable in the image, `KEY=value`; repeatable
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Remove an environment variable from the image; repeatable
    #[arg(long, value_name = "KEY")]
    pub unsetenv: Vec<String>,
    /// A secret for RUN --mount=type=secret: `id=ID,src=PATH` or `id=ID,env=VAR`; repeatable
    #[arg(long, value_name = "SPEC")]
    pub secret: Vec<String>,
    /// Network for RUN steps (default: the host's, as buildah)
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// How RUN steps are isolated
    #[arg(long, value_enum, default_value_t = IsolationArg::Chroot)]
    pub isolation: IsolationArg,
    /// Write the image (in addition to the store): `type=oci|oci-archive|docker-archive|registry,dest=...`
    #[arg(short = 'o', long, value_name = "SPEC")]
    pub output: Vec<String>,
    /// Push every -t name to its registry after the build
    #[arg(long)]
    pub push: bool,
    /// Write the image ID to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Stages run at once (default: the number of cores)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub remote: super::copy::RemoteFlags,
    /// Run foreign-platform steps without registered binfmt handlers
    #[arg(long, hide = true)]
    pub ignore_binfmt: bool,
    /// Put the image(s) into this manifest list (created if missing; with several --platform it names the index)
    #[arg(long, value_name = "NAME")]
    pub manifest: Option<String>,
    /// Print only the image ID
    #[arg(short, long)]
    pub quiet: bool,
}

fn key_values(flag: &str, list: &[String]) -> Result<Vec<(String, String)>> {
    list.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("--{flag} {s:?}: expected KEY=value"),
        })
        .collect()
}

/// `--build-arg-file` lines, before the `--build-arg`s (which win).
fn build_arg_files(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading --build-arg-file {}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !line.contains('=') {
                bail!(
                    "{}:{}: expected NAME=value, got {line:?}",
                    f.display(),
                    n + 1
                );
            }
            out.push(line.to_string());
        }
    }
    Ok(out)
}

fn epoch(flag: Option<i64>) -> Result<Option<i64>> {
    if flag.is_some() {
        return Ok(flag);
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => {
            Ok(Some(v.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
            })?))
        }
        _ => Ok(None),
    }
}

/// `--platform a,b,c` → the platforms (default: the host's).
fn platforms(spec: Option<&str>) -> Result<Vec<Platform>> {
    let Some(spec) = spec else {
        return Ok(vec![Platform::host()]);
    };
    let mut out: Vec<Platform> = Vec::new();
    for p in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p: Platform = p
            .parse()
            .with_context(|| format!("--platform {p:?}: expected OS/ARCH[/VARIANT]"))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        bail!("--platform is empty");
    }
    Ok(out)
}

pub fn run(g: &Global, mut a: BuildArgs) -> Result<()> {
    if crate::dispatch::userns::needed() {
        crate::dispatch::userns::rerun(&g.root(), &crate::paths::cache_dir())?;
    }
    let started = Instant::now();
    let mut args = build_arg_files(&a.build_arg_file)?;
    args.append(&mut a.definition.build_args);
    a.definition.build_args = args;
    let platforms = platforms(a.definition.platform.take().as_deref())?;
    let multi = platforms.len() > 1;
    let def = definition(&a.definition)?;
    let cache_ttl = a
        .cache_ttl
        .as_deref()
        .map(|t| {
            humantime::parse_duration(t)
                .with_context(|| format!("--cache-ttl {t:?}: expected a duration like 24h or 90m"))
        })
        .transpose()?;
    let outputs = a
        .output
        .iter()
        .map(|o| o.parse::<OutputSpec>())
        .collect::<Result<Vec<_>>>()?;
    let epoch = epoch(a.timestamp)?;
    let (labels, env, annotations) = (
        key_values("label", &a.label)?,
        key_values("env", &a.env)?,
        key_values("annotation", &a.annotation)?,
    );
    Secrets::parse(&a.secret)?;
    let options = |p: &Platform| -> Result<BuildOptions> {
        Ok(BuildOptions {
            platform: p.clone(),
            label: multi.then(|| p.to_string()),
            use_cache: a.layers.unwrap_or(true) && !a.no_cache,
            cache_ttl,
            format: if a.format == FormatArg::Docker {
                ImageFormat::Docker
            } else {
                ImageFormat::Oci
            },
            compression: match a.compression_format {
                CompressionArg::Gzip => Compression::Gzip,
                CompressionArg::Zstd => Compression::Zstd,
            },
            compression_level: a.compression_level,
            epoch,
            labels: labels.clone(),
            env: env.clone(),
            unset_env: a.unsetenv.clone(),
            annotations: annotations.clone(),
            secrets: Secrets::parse(&a.secret)?,
            network: a.network.map(|n| match n {
                NetworkArg::Host => Network::Host,
                NetworkArg::None => Network::None,
            }),
            isolation: match a.isolation {
                IsolationArg::Chroot => Isolation::Namespaces,
                IsolationArg::Oci => Isolation::Oci,
            },
            jobs: a
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            file_name: def.request.file_name.clone(),
            ignore_binfmt: a.ignore_binfmt,
        })
    };
    let mode = if a.format == FormatArg::Json {
        Mode::Json
    } else if a.quiet {
        Mode::Quiet
    } else {
        Mode::Plain
    };
    let progress = Progress::new(mode, a.explain_cache);

    let rt = super::runtime()?;
    let store = Store::open(&g.root())?;
    let sys = a.remote.context(g);
    let resolver = Arc::new(BaseResolver::new(
        store.clone(),
        sys.clone(),
        a.pull,
        rt.handle().clone(),
    ));

    // The frontend, in its sandbox: one plan per platform (TARGET* args differ).
    let reader: Arc<dyn ContextReader> = Arc::new(BuildContext::open(
        &a.definition.context,
        def.path.as_deref(),
    )?);
    let plugins = super::plugin::runtime(g)?;
    let source = PluginSource::find(&a.definition.frontend, &super::plugin::plugins_dir(g))?;
    let plugin = plugins.load(&source)?;
    let mut plans = Vec::new();
    for (i, p) in platforms.iter().enumerate() {
        let mut request = def.request.clone();
        request.target_platform = wit_platform(p);
        let parsed = plugin
            .frontend()?
            .parse(&request, reader.clone(), resolver.clone())
            .map_err(anyhow::Error::new)?;
        if i == 0 {
            for w in &parsed.plan.warnings {
                if !(a.quiet && w.severity != Severity::Error) {
                    eprintln!("{}", render_diagnostic(w));
                }
            }
            for unused in &parsed.plan.unused_build_args {
                if !a.quiet {
                    eprintln!("warning: --build-arg {unused} was not consumed by any ARG");
                }
            }
        }
        plans.push(parsed.plan);
    }

    let ctx = BuildContext::open(&a.definition.context, def.path.as_deref())?;
    let image_tags: &[String] = if multi { &[] } else { &a.tags };
    // Every platform at once; each one's stages are bounded by --jobs.
    let results: Vec<Result<Built>> = std::thread::scope(|s| {
        let handles: Vec<_> = platforms
            .iter()
            .zip(&plans)
            .map(|(p, plan)| {
                let (ctx, resolver, store, progress, options) =
                    (&ctx, &resolver, &store, &progress, &options);
                s.spawn(move || {
                    let opts = options(p)?;
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
    let mut built = Vec::new();
    for r in results {
        built.push(r?);
    }
    // One platform: the image. Several: an index over them, named by --manifest or -t.
    let (id, names, top) = if multi {
        let list_names: Vec<String> = a.manifest.iter().chain(&a.tags).cloned().collect();
        let desc = executor::commit_index(
            &store,
            &built,
            &platforms,
            &list_names,
            a.format == FormatArg::Docker,
        )?;
        (
            desc.digest().to_string(),
            list_names,
            desc.digest().to_string(),
        )
    } else {
        let b = &built[0];
        if let Some(m) = &a.manifest {
            executor::commit_index(
                &store,
                &built,
                &platforms,
                std::slice::from_ref(m),
                a.format == FormatArg::Docker,
            )?;
        }
        (
            b.config_digest.clone(),
            a.tags.clone(),
            b.config_digest.clone(),
        )
    };
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &id).with_context(|| format!("writing --iidfile {}", f.display()))?;
    }
    let image = top.trim_start_matches("sha256:").to_string();
    for spec in &outputs {
        output::export(&store, &image, spec, &sys, rt.handle())
            .with_context(|| format!("--output {spec:?}"))?;
    }
    if a.push {
        if names.is_empty() {
            bail!("--push needs a name to push to: add -t REGISTRY/NAME:TAG");
        }
        for t in &names {
            let spec = OutputSpec::Registry(t.clone());
            output::export(&store, t, &spec, &sys, rt.handle())
                .with_context(|| format!("pushing {t}"))?;
        }
    }
    let names: Vec<String> = names
        .iter()
        .map(|t| crate::store::names::qualify_local(t))
        .collect();
    progress.finished(id.trim_start_matches("sha256:"), &names, started.elapsed());
    Ok(())
}
