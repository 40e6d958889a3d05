//! `lade version`: the version, the commit it was built from (when the build knew it), the wasmtime inside,
//! the plugin contract versions it runs, the event schema version and the platform; `--format json` for CI.

use super::{Global, OutputFormat};
use anyhow::Result;
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct VersionArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Serialize)]
struct Version {
    version: &'static str,
    /// `LADE_COMMIT` at build time (CI sets it); null when unknown.
    commit: Option<&'static str>,
    wasmtime: &'static str,
    /// Plugin contract (`lade:plugin`) versions this binary runs, oldest first.
    contracts: &'static [&'static str],
    /// `version` of the `--progress=json` events (docs/events.schema.json).
    events_schema: u32,
    platform: String,
}

pub fn run(_g: &Global, a: VersionArgs) -> Result<()> {
    let v = Version {
        version: env!("CARGO_PKG_VERSION"),
        commit: option_env!("LADE_COMMIT").filter(|c| !c.is_empty()),
        wasmtime: crate::plugin::WASMTIME_VERSION,
        contracts: crate::plugin::CONTRACT_VERSIONS,
        events_schema: crate::events::SCHEMA_VERSION,
        platform: crate::dispatch::platform::Platform::host().to_string(),
    };
    match a.format {
        OutputFormat::Json => crate::stdout::outln!("{}", serde_json::to_string_pretty(&v)?),
        OutputFormat::Text => {
            crate::stdout::outln!("Version:        {}", v.version);
            crate::stdout::outln!("Commit:         {}", v.commit.unwrap_or("unknown"));
            crate::stdout::outln!("Wasmtime:       {}", v.wasmtime);
            crate::stdout::outln!("Contracts:      {}", v.contracts.join(", "));
            crate::stdout::outln!("Events schema:  {}", v.events_schema);
            crate::stdout::outln!("Platform:       {}", v.platform);
        }
    }
    Ok(())
}
