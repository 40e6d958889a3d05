//! lade plugin list, inspect, install, remove; and [`runtime`], the plugin runtime configured from the
//! global options, for every command that calls a plugin.

use super::{Global, OutputFormat};
use crate::plugin::scanner::DataGrants;
use crate::plugin::{Description, Limits, PluginSource, Runtime, artifact, installed};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum PluginCommand {
    /// List the built-in and installed plugins
    List {
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Show a plugin's metadata, contract version, digest, imports, exports and declared needs (with
    /// whether `--plugin-data` grants each data directory)
    Inspect {
        /// An installed or built-in plugin's name, or a component file (a path with `/` or ending in .wasm)
        plugin: String,
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Check a plugin component and install it under the name it gives itself, from a file or from a Wasm
    /// OCI artifact in any transport (digests verified; `@sha256:…` pins the manifest)
    Install {
        /// The component file (built for wasm32-wasip2 against lade:plugin), or a reference:
        /// TRANSPORT:REF[@sha256:DIGEST] (docker://, oci:DIR:TAG, ...; no transport means docker://)
        source: String,
        #[command(flatten)]
        remote: super::flags::RemoteFlags,
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Push a plugin component as a Wasm OCI artifact (config application/vnd.wasm.config.v0+json, one
    /// application/wasm layer)
    Push {
        /// The component file
        file: PathBuf,
        /// Where to: TRANSPORT:REF (docker://, oci:DIR:TAG, oci-archive:, dir:; no transport means docker://)
        destination: String,
        #[command(flatten)]
        remote: super::flags::RemoteFlags,
        /// Write the pushed manifest's digest to this file
        #[arg(long, value_name = "FILE")]
        digestfile: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Write a new plugin crate (with the guest SDK) that builds with
    /// `cargo build --release --target wasm32-wasip2` and that `lade plugin install` accepts
    New {
        /// What kind of plugin
        #[arg(long, value_enum)]
        kind: NewKind,
        /// The plugin's (and the crate's) name
        name: String,
        /// Where to create the crate's directory
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Remove an installed plugin
    Remove {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
}

/// `--kind` of `lade plugin new`.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum NewKind {
    Frontend,
    Scanner,
    Signer,
}

/// The process's plugin runtime, with `--plugin-timeout` and `--plugin-memory` applied.
pub fn runtime(g: &Global) -> anyhow::Result<&'static Runtime> {
    Runtime::global_with(
        Limits::new(g.plugin_timeout, g.plugin_memory)?
            .with_compile_timeout(g.plugin_compile_timeout)?,
    )
}

/// The data directories granted with `--plugin-data NAME=DIR`, each opened now.
pub fn data_grants(g: &Global) -> anyhow::Result<DataGrants> {
    DataGrants::parse(&g.plugin_data)
}

/// Where installed plugins live for this invocation.
pub fn plugins_dir(g: &Global) -> PathBuf {
    installed::dir(&g.root())
}

pub fn run(g: &Global, c: PluginCommand) -> anyhow::Result<()> {
    match c {
        PluginCommand::List { format } => list(g, format),
        PluginCommand::Inspect { plugin, format } => inspect(g, &plugin, format),
        PluginCommand::Install {
            source,
            remote,
            format,
        } => install(g, &source, &remote, format),
        PluginCommand::Push {
            file,
            destination,
            remote,
            digestfile,
            format,
        } => push(
            g,
            &file,
            &destination,
            &remote,
            digestfile.as_deref(),
            format,
        ),
        PluginCommand::Remove { name, format } => remove(g, &name, format),
        PluginCommand::New { kind, name, dir } => new(kind, &name, &dir),
    }
}

/// One row of `lade plugin list`; a plugin that no longer loads is listed with its error.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Row {
    Loaded(Box<Description>),
    Broken {
        name: String,
        source: String,
        error: String,
    },
}

fn list(g: &Global, format: OutputFormat) -> anyhow::Result<()> {
    let rt = runtime(g)?;
    let dir = plugins_dir(g);
    let mut sources: Vec<PluginSource> = crate::plugin::EMBEDDED
        .iter()
        .map(|(n, _)| PluginSource::Embedded(n.to_string()))
        .collect();
    for name in installed::names(&dir)? {
        sources.push(PluginSource::Installed {
            plugins_dir: dir.clone(),
            name,
        });
    }
    let rows: Vec<Row> = sources
        .iter()
        .map(|s| match rt.load(s) {
            Ok(p) => Row::Loaded(Box::new(p.describe())),
            Err(e) => Row::Broken {
                name: s.label(),
                source: s.kind().into(),
                error: format!("{e:#}"),
            },
        })
        .collect();
    if format == OutputFormat::Json {
        crate::stdout::outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    crate::stdout::outln!(
        "{:<16} {:<9} {:<9} {:<9} {:<10} {:<19} FROM",
        "NAME",
        "KIND",
        "VERSION",
        "CONTRACT",
        "SOURCE",
        "DIGEST"
    );
    for row in &rows {
        match row {
            Row::Loaded(d) => crate::stdout::outln!(
                "{:<16} {:<9} {:<9} {:<9} {:<10} {:<19} {}",
                d.name,
                d.kind.as_str(),
                d.version,
                d.contract_version,
                d.source,
                short(&d.digest),
                from(d)
            ),
            Row::Broken {
                name,
                source,
                error,
            } => {
                crate::stdout::outln!("{name:<16} {:<9} {:<9} {:<9} {source:<10} -", "?", "?", "?");
                eprintln!("warning: {error}");
            }
        }
    }
    Ok(())
}

/// Where an installed plugin came from: the reference and its manifest digest, or the file.
fn from(d: &Description) -> String {
    match &d.origin {
        Some(o) => match &o.manifest_digest {
            Some(m) => format!("{} ({m})", o.reference),
            None => o.reference.clone(),
        },
        None => "-".into(),
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

fn inspect(g: &Global, plugin: &str, format: OutputFormat) -> anyhow::Result<()> {
    let rt = runtime(g)?;
    let grants = data_grants(g)?;
    let source = PluginSource::find(plugin, &plugins_dir(g))?;
    let d = rt.load(&source)?.describe();
    if format == OutputFormat::Json {
        let mut v = serde_json::to_value(&d)?;
        v["granted_data_dirs"] = serde_json::json!(
            d.needs
                .data_dirs
                .iter()
                .filter(|n| grants.names().contains(&n.name.as_str()))
                .map(|n| n.name.clone())
                .collect::<Vec<_>>()
        );
        crate::stdout::outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    crate::stdout::outln!("name:        {}", d.name);
    crate::stdout::outln!("kind:        {}", d.kind.as_str());
    crate::stdout::outln!("version:     {}", d.version);
    crate::stdout::outln!("description: {}", d.description);
    crate::stdout::outln!("contract:    lade:plugin@{}", d.contract_version);
    match &d.path {
        Some(p) => crate::stdout::outln!("source:      {} ({})", d.source, p.display()),
        None => crate::stdout::outln!("source:      {}", d.source),
    }
    crate::stdout::outln!("digest:      {}", d.digest);
    if d.origin.is_some() {
        crate::stdout::outln!("from:        {}", from(&d));
    }
    crate::stdout::outln!("imports:");
    for i in &d.imports {
        crate::stdout::outln!("  {i}");
    }
    crate::stdout::outln!("exports:");
    for e in &d.exports {
        crate::stdout::outln!("  {e}");
    }
    print_needs(&d, &grants);
    Ok(())
}

/// The declared needs, and which data directories this invocation grants.
fn print_needs(d: &Description, grants: &DataGrants) {
    if d.needs.data_dirs.is_empty() && d.needs.documents.is_empty() {
        crate::stdout::outln!("needs:       nothing");
        return;
    }
    crate::stdout::outln!("needs:");
    for n in &d.needs.data_dirs {
        let state = if grants.names().contains(&n.name.as_str()) {
            "granted"
        } else if n.required {
            "required, not granted: --plugin-data NAME=DIR"
        } else {
            "optional, not granted"
        };
        crate::stdout::outln!("  data directory {}: {} ({state})", n.name, n.description);
    }
    for m in &d.needs.documents {
        crate::stdout::outln!("  input documents: {m}");
    }
}

/// A FILE argument is a path that exists or ends in `.wasm`; anything else is a reference.
fn is_file_argument(source: &str) -> bool {
    let p = std::path::Path::new(source);
    p.is_file() || (source.ends_with(".wasm") && crate::transport::parse(source).is_err())
}

/// A transport string: no transport means a registry (as `lade push` and `lade pull`).
fn with_transport(s: &str) -> String {
    if crate::transport::parse(s).is_ok() {
        s.to_string()
    } else {
        format!("docker://{s}")
    }
}

fn install(
    g: &Global,
    source: &str,
    remote: &super::flags::RemoteFlags,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let rt = runtime(g)?;
    let (bytes, plugin_source, origin) = if is_file_argument(source) {
        let file = std::path::Path::new(source);
        let bytes = std::fs::read(file)
            .map_err(|e| anyhow::anyhow!("cannot read plugin file {}: {e}", file.display()))?;
        let reference = std::path::absolute(file)
            .unwrap_or_else(|_| file.to_path_buf())
            .display()
            .to_string();
        let origin = installed::Origin {
            reference,
            manifest_digest: None,
        };
        (bytes, PluginSource::File(file.to_path_buf()), origin)
    } else {
        let reference = with_transport(source);
        let ctx = remote.context(g);
        let (bytes, digest) = super::runtime()?.block_on(async {
            let r = artifact::Remote::open(&reference, &ctx).await?;
            anyhow::Ok((r.fetch().await?, r.digest))
        })?;
        let origin = installed::Origin {
            reference: reference.clone(),
            manifest_digest: Some(digest.to_string()),
        };
        let source = PluginSource::Pulled {
            reference,
            path: PathBuf::new(),
        };
        (bytes, source, origin)
    };
    // The import check, the link against a known contract version and a metadata call, before anything is
    // stored.
    let plugin = rt.load_bytes(plugin_source, &bytes)?;
    let name = plugin.info().name.clone();
    installed::check_name(&name)
        .map_err(|e| e.context(format!("plugin {source} names itself `{name}`")))?;
    let dir = plugins_dir(g);
    let path = installed::store(&dir, &name, &bytes, &origin)?;
    let mut d = plugin.describe();
    d.source = "installed".into();
    d.path = Some(path.clone());
    d.origin = Some(origin.clone());
    if format == OutputFormat::Json {
        crate::stdout::outln!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        crate::stdout::outln!(
            "installed {} plugin `{name}` {} ({}) as {}",
            d.kind.as_str(),
            d.version,
            short(&d.digest),
            path.display()
        );
        if let Some(m) = &origin.manifest_digest {
            crate::stdout::outln!("from {} ({m})", origin.reference);
        }
        if crate::plugin::embedded(&name).is_some() {
            crate::stdout::outln!(
                "it takes the place of the built-in `{name}`; `lade plugin remove {name}` brings that back"
            );
        }
    }
    Ok(())
}

/// `created` for a pushed artifact: SOURCE_DATE_EPOCH when set (reproducible pushes), else now.
fn created() -> anyhow::Result<String> {
    let at = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => {
            let secs: u64 = v.trim().parse().map_err(|_| {
                anyhow::anyhow!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
            })?;
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
        }
        _ => std::time::SystemTime::now(),
    };
    Ok(humantime::format_rfc3339_seconds(at).to_string())
}

fn push(
    g: &Global,
    file: &std::path::Path,
    destination: &str,
    remote: &super::flags::RemoteFlags,
    digestfile: Option<&std::path::Path>,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let rt = runtime(g)?;
    let bytes = std::fs::read(file)
        .map_err(|e| anyhow::anyhow!("cannot read plugin file {}: {e}", file.display()))?;
    // Only what loads is pushed: the same checks as an install, so a broken plugin never reaches a registry.
    let plugin = rt.load_bytes(PluginSource::File(file.to_path_buf()), &bytes)?;
    let art = artifact::Artifact::new(&plugin, bytes, &created()?)?;
    let dest = with_transport(destination);
    let ctx = remote.context(g);
    let report = super::runtime()?.block_on(art.push(&dest, &ctx))?;
    if let Some(f) = digestfile {
        std::fs::write(f, &report.digest)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", f.display()))?;
    }
    if format == OutputFormat::Json {
        crate::stdout::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "name": plugin.info().name,
                "destination": dest,
                "digest": report.digest,
                "component": plugin.digest(),
            }))?
        );
    } else {
        crate::stdout::outln!(
            "pushed {} plugin `{}` to {dest}",
            plugin.kind(),
            plugin.info().name
        );
        crate::stdout::outln!("{}", report.digest);
    }
    Ok(())
}

fn new(kind: NewKind, name: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let kind = match kind {
        NewKind::Frontend => crate::plugin::Kind::Frontend,
        NewKind::Scanner => crate::plugin::Kind::Scanner,
        NewKind::Signer => crate::plugin::Kind::Signer,
    };
    let root = super::plugin_new::create(dir, name, kind)?;
    crate::stdout::outln!("created {kind} plugin `{name}` in {}", root.display());
    crate::stdout::outln!("next:");
    crate::stdout::outln!(
        "  cd {} && cargo build --release --target wasm32-wasip2",
        root.display()
    );
    crate::stdout::outln!(
        "  lade plugin install target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    );
    crate::stdout::outln!("  cargo test   # the plugin's logic, natively; see PLUGINS.md");
    Ok(())
}

fn remove(g: &Global, name: &str, format: OutputFormat) -> anyhow::Result<()> {
    installed::remove(&plugins_dir(g), name)?;
    if format == OutputFormat::Json {
        crate::stdout::outln!("{}", serde_json::json!({ "removed": name }));
    } else {
        crate::stdout::outln!("removed plugin `{name}`");
    }
    Ok(())
}
