//! `lade build`: parse the definition with a frontend plugin (base images resolved through the store and the
//! registry, so ONBUILD triggers apply), run the plan, commit the image, then export or push it.

use super::Global;
use super::dockerfile::{DefinitionArgs, definition};
use super::progress::Shown;
use crate::build::base::{BaseResolver, PullPolicy};
use crate::build::driver::{BuildRequest, Builder, Warning};
use crate::build::executor::{BuildOptions, ImageFormat};
use crate::build::output::OutputSpec;
use crate::build::progress::{Mode, Progress};
use crate::build::remote_cache::CacheSpec;
use crate::build::run::Secrets;
use crate::dispatch::isolation::{Isolation, Network, Security};
use crate::dispatch::platform::Platform;
use crate::oci::Compression;
use crate::plugin::Severity;
use crate::plugin::render_diagnostic;
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
    /// Deprecated: OCI image with `--progress=json`
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

/// How RUN steps are confined (buildah's flags).
#[derive(clap::Args, Debug)]
pub struct SecurityFlags {
    /// Add a capability to RUN steps' default set (containers.conf's default_capabilities); ALL adds every one
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability from RUN steps' default set; ALL drops every one
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// `seccomp=unconfined`, `seccomp=FILE`, `no-new-privileges`, `label=disable`, `apparmor=unconfined`
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// User namespace of RUN steps: `host` (the default) or `auto` (as root: 65536 ids from the `containers`
    /// entry of /etc/subuid and /etc/subgid; lade's own namespaces only)
    #[arg(long, value_enum)]
    pub userns: Option<UserNsArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserNsArg {
    Host,
    Auto,
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
    /// Look steps up in a shared cache: `type=registry,ref=R`, `type=oci,src=DIR`, or buildah's plain
    /// REPO (one artifact per step); repeatable
    #[arg(long, value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Export the build's cache: `type=registry,ref=R[,mode=min|max][,mounts=true]`, `type=oci,dest=DIR`,
    /// or buildah's plain REPO; repeatable
    #[arg(long, value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// When to pull base images
    #[arg(long, num_args = 0..=1, default_missing_value = "always", require_equals = true, default_value = "missing",
        value_parser = super::flags::choice::<PullPolicy>(&["always", "missing", "never", "newer", "true", "false"]))]
    pub pull: PullPolicy,
    /// Image format (`json`, deprecated, means `oci` with `--progress=json`)
    #[arg(long, value_enum, default_value_t = FormatArg::Oci)]
    pub format: FormatArg,
    #[command(flatten)]
    pub progress: super::progress::ProgressFlag,
    /// Layer compression
    #[arg(long, default_value = "gzip", value_parser = super::flags::choice::<Compression>(&["gzip", "zstd"]))]
    pub compression_format: Compression,
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
    #[command(flatten)]
    pub security: Box<SecurityFlags>,
    /// Write the image (in addition to the store): `type=oci|oci-archive|docker-archive|registry,dest=...`,
    /// or `type=containers-storage[,name=REF]` (podman's store, where `podman run` finds it)
    #[arg(short = 'o', long, value_name = "SPEC")]
    pub output: Vec<String>,
    /// Push every -t name to its registry after the build
    #[arg(long)]
    pub push: bool,
    #[command(flatten)]
    pub gpg_sign: super::gpg_sign::BuildSignFlags,
    /// Write the image ID to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Stages run at once (default: the number of cores)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub remote: super::flags::RemoteFlags,
    /// Run foreign-platform steps without registered binfmt handlers
    #[arg(long, hide = true)]
    pub ignore_binfmt: bool,
    /// Put the image(s) into this manifest list (created if missing; with several --platform it names the index)
    #[arg(long, value_name = "NAME")]
    pub manifest: Option<String>,
    /// Print only the image ID
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub sbom: Box<super::sbom::BuildSbomFlags>,
    /// With --push: sign the pushed image (and attest its --sbom) with a cosign key
    #[command(flatten)]
    pub sign: super::sign::SignFlags,
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

/// `--cache-from` / `--cache-to` values.
fn cache_specs(list: &[String], export: bool) -> Result<Vec<CacheSpec>> {
    list.iter().map(|s| CacheSpec::parse(s, export)).collect()
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

/// `--userns=auto`: the mappings of the RUN steps' user namespace.
fn userns_auto(isolation: IsolationArg) -> Result<crate::dispatch::isolation::idmap::IdMaps> {
    if !rustix::process::geteuid().is_root() || crate::paths::rootless() {
        bail!(
            "--userns=auto needs root: a rootless build already runs its steps in lade's own user namespace \
             (leave --userns out)"
        );
    }
    if isolation == IsolationArg::Oci {
        bail!("{}", crate::dispatch::isolation::USERNS_OCI_UNSUPPORTED);
    }
    crate::dispatch::isolation::idmap::IdMaps::auto()
}

pub fn run(g: &Global, mut a: BuildArgs) -> Result<()> {
    if crate::dispatch::userns::needed() {
        crate::dispatch::userns::rerun(&g.root(), &crate::paths::cache_dir())?;
    }
    let started = Instant::now();
    let mut args = build_arg_files(&a.build_arg_file)?;
    args.append(&mut a.definition.build_args);
    a.definition.build_args = args;
    a.sbom.check(a.push)?;
    if a.sign.sign_by_sigstore_private_key.is_some() && !a.push {
        bail!("--sign-by-sigstore-private-key signs the pushed image: add --push");
    }
    let signer = super::sign::copy_signer(g, &a.sign)?;
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
    let sf = &a.security;
    let mut security = Security::from_flags(&sf.cap_add, &sf.cap_drop, &sf.security_opt)?;
    if sf.userns == Some(UserNsArg::Auto) {
        security.userns = Some(userns_auto(a.isolation)?);
    }
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
            compression: a.compression_format,
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
            security: security.clone(),
            jobs: a
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            file_name: def.request.file_name.clone(),
            ignore_binfmt: a.ignore_binfmt,
            remote_cache: None,
            early_uploads: None,
        })
    };
    let shown = if a.format == FormatArg::Json {
        eprintln!(
            "warning: `--format json` is deprecated: use `--progress=json` (--format is the image format)"
        );
        Shown::Json
    } else {
        a.progress.progress.resolve()
    };
    let mode = match shown {
        Shown::Json => Mode::Json,
        _ if a.quiet => Mode::Quiet,
        Shown::Plain => Mode::Plain,
        Shown::Tty => Mode::Tty,
    };
    // Plain build lines are the build's own; the sink draws the copies' events (base images, pushes).
    let progress = Progress::new(mode, a.explain_cache, super::progress::sink(shown, a.quiet));
    let rt = super::runtime()?;
    let store = Store::open(&g.root())?;
    let sys = a.remote.context(g);
    let resolver = Arc::new(
        BaseResolver::new(store.clone(), sys.clone(), a.pull, rt.handle().clone())
            .with_events(progress.events().clone()),
    );
    let plugins = super::plugin::runtime(g)?;
    let chosen = rt.block_on(crate::plugin::syntax::choose(
        a.definition.frontend.as_deref(),
        &def.request.source,
        &super::plugin::plugins_dir(g),
        &sys,
    ))?;
    if let Some(note) = &chosen.note {
        progress.message(note);
    }
    let frontend = plugins.load(&chosen.source)?;
    let gpg_signer = super::gpg_sign::PushedSigner::open(
        g,
        &a.gpg_sign,
        a.sign.sign_passphrase_file.as_deref(),
        a.push,
        &a.tags,
    )?;
    let req = BuildRequest {
        parse: def.request.clone(),
        context_dir: a.definition.context.clone(),
        definition_path: def.path.clone(),
        platforms,
        tags: a.tags.clone(),
        manifest: a.manifest.clone(),
        docker_format: a.format == FormatArg::Docker,
        outputs,
        push: a.push,
        iidfile: a.iidfile.clone(),
        cache_from: cache_specs(&a.cache_from, false)?,
        cache_to: cache_specs(&a.cache_to, true)?,
    };
    let quiet = a.quiet;
    let builder = Builder {
        store: &store,
        sys: &sys,
        resolver,
        progress: &progress,
        rt: rt.handle(),
    };
    let built = builder.build(&req, &frontend, options, |w| match w {
        Warning::Diagnostic(d) if !(quiet && d.severity != Severity::Error) => {
            eprintln!("{}", render_diagnostic(d))
        }
        Warning::UnusedBuildArg(u) if !quiet => {
            eprintln!("warning: --build-arg {u} was not consumed by any ARG")
        }
        _ => {}
    })?;
    progress.finished(
        built.id.trim_start_matches("sha256:"),
        &built.names,
        started.elapsed(),
    );
    if let Some(s) = &gpg_signer {
        s.sign(&a.remote.context(g))?;
    }
    let sbom = a.sbom.write(g, &a.remote, &built.id, a.push)?;
    if a.push {
        attach_to_pushed(g, &a, &built.names, signer.as_ref(), sbom)?;
    }
    Ok(())
}

/// After `--push`: sign each pushed image (with a signer) and attach its `--sbom` document `doc` as a
/// referrer (and, with a signer, as a signed attestation).
fn attach_to_pushed(
    g: &Global,
    a: &BuildArgs,
    names: &[String],
    signer: Option<&super::sign::CopySigner>,
    doc: Option<(Vec<u8>, super::sbom::SbomFormat)>,
) -> Result<()> {
    let ctx = a.remote.context(g);
    for n in names {
        let dest = format!("docker://{n}");
        if let Some(s) = signer {
            s.sign(&dest, &ctx)
                .with_context(|| format!("signing the pushed {dest}"))?;
        }
        if let Some((doc, f)) = &doc {
            super::attach::attach_sbom(&dest, &ctx, doc, *f, signer)
                .with_context(|| format!("attaching the SBOM to {dest}"))?;
        }
    }
    Ok(())
}
