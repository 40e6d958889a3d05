//! lade plugin list, inspect, install, remove; and [`runtime`], the plugin runtime configured from the
//! global options, for every command that calls a plugin.

use super::{Global, OutputFormat};
use crate::plugin::{Description, Limits, PluginSource, Runtime, installed};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum PluginCommand {
    /// List the built-in and installed plugins
    List {
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Show a plugin's metadata, contract version, digest, imports and exports
    Inspect {
        /// An installed or built-in plugin's name, or a component file (a path with `/` or ending in .wasm)
        plugin: String,
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Check a plugin component and install it under the name it gives itself
    Install {
        /// The component file (built for wasm32-wasip2 against lade:plugin)
        file: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Remove an installed plugin
    Remove {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
}

/// The process's plugin runtime, with `--plugin-timeout` and `--plugin-memory` applied.
pub fn runtime(g: &Global) -> anyhow::Result<&'static Runtime> {
    Runtime::global_with(Limits::new(g.plugin_timeout, g.plugin_memory)?)
}

/// Where installed plugins live for this invocation.
pub fn plugins_dir(g: &Global) -> PathBuf {
    installed::dir(&g.root())
}

pub fn run(g: &Global, c: PluginCommand) -> anyhow::Result<()> {
    match c {
        PluginCommand::List { format } => list(g, format),
        PluginCommand::Inspect { plugin, format } => inspect(g, &plugin, format),
        PluginCommand::Install { file, format } => install(g, &file, format),
        PluginCommand::Remove { name, format } => remove(g, &name, format),
    }
}

/// One row of `lade plugin list`; a plugin that no longer loads is listed with its error.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Row {
    Loaded(Description),
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
            Ok(p) => Row::Loaded(p.describe()),
            Err(e) => Row::Broken {
                name: s.label(),
                source: s.kind().into(),
                error: format!("{e:#}"),
            },
        })
        .collect();
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<9} {:<9} {:<9} {:<10} DIGEST",
        "NAME", "KIND", "VERSION", "CONTRACT", "SOURCE"
    );
    for row in &rows {
        match row {
            Row::Loaded(d) => println!(
                "{:<16} {:<9} {:<9} {:<9} {:<10} {}",
                d.name,
                d.kind.as_str(),
                d.version,
                d.contract_version,
                d.source,
                short(&d.digest)
            ),
            Row::Broken {
                name,
                source,
                error,
            } => {
                println!("{name:<16} {:<9} {:<9} {:<9} {source:<10} -", "?", "?", "?");
                eprintln!("warning: {error}");
            }
        }
    }
    Ok(())
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

fn inspect(g: &Global, plugin: &str, format: OutputFormat) -> anyhow::Result<()> {
    let rt = runtime(g)?;
    let source = PluginSource::find(plugin, &plugins_dir(g))?;
    let d = rt.load(&source)?.describe();
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    println!("name:        {}", d.name);
    println!("kind:        {}", d.kind.as_str());
    println!("version:     {}", d.version);
    println!("description: {}", d.description);
    println!("contract:    lade:plugin@{}", d.contract_version);
    match &d.path {
        Some(p) => println!("source:      {} ({})", d.source, p.display()),
        None => println!("source:      {}", d.source),
    }
    println!("digest:      {}", d.digest);
    println!("imports:");
    for i in &d.imports {
        println!("  {i}");
    }
    println!("exports:");
    for e in &d.exports {
        println!("  {e}");
    }
    Ok(())
}

fn install(g: &Global, file: &std::path::Path, format: OutputFormat) -> anyhow::Result<()> {
    let rt = runtime(g)?;
    let bytes = std::fs::read(file)
        .map_err(|e| anyhow::anyhow!("cannot read plugin file {}: {e}", file.display()))?;
    // The import check, the link and a metadata call, before anything is stored.
    let plugin = rt.load_bytes(PluginSource::File(file.to_path_buf()), &bytes)?;
    let name = plugin.info().name.clone();
    installed::check_name(&name)
        .map_err(|e| e.context(format!("plugin {} names itself `{name}`", file.display())))?;
    let dir = plugins_dir(g);
    let path = installed::store(&dir, &name, &bytes)?;
    let mut d = plugin.describe();
    d.source = "installed".into();
    d.path = Some(path.clone());
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        println!(
            "installed {} plugin `{name}` {} ({}) as {}",
            d.kind.as_str(),
            d.version,
            short(&d.digest),
            path.display()
        );
        if crate::plugin::embedded(&name).is_some() {
            println!(
                "it takes the place of the built-in `{name}`; `lade plugin remove {name}` brings that back"
            );
        }
    }
    Ok(())
}

fn remove(g: &Global, name: &str, format: OutputFormat) -> anyhow::Result<()> {
    installed::remove(&plugins_dir(g), name)?;
    if format == OutputFormat::Json {
        println!("{}", serde_json::json!({ "removed": name }));
    } else {
        println!("removed plugin `{name}`");
    }
    Ok(())
}
