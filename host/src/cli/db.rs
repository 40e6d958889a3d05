//! lade db: the offline vulnerability database the `vuln` scanner reads (OSV records, imported from OSV's
//! per-ecosystem `all.zip` exports).

use super::{Global, OutputFormat};
use crate::vulndb;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum DbCommand {
    /// Import OSV records (an ecosystem's all.zip, or a directory of .json records); replaces the
    /// ecosystems the source holds and keeps the others
    Import(ImportArgs),
    /// Show the database's sources, record counts and freshness
    Info(InfoArgs),
}

#[derive(clap::Args, Debug)]
pub struct DbDir {
    /// The database directory (default: <cache dir>/vuln-db)
    #[arg(long, value_name = "DIR", env = "LADE_VULN_DB")]
    pub db: Option<PathBuf>,
}

impl DbDir {
    pub fn path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(vulndb::default_dir)
    }
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// OSV's all.zip for an ecosystem (https://osv-vulnerabilities.storage.googleapis.com/ECOSYSTEM/all.zip)
    /// or a directory of OSV .json records
    pub source: PathBuf,
    #[command(flatten)]
    pub db: DbDir,
}

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub db: DbDir,
    /// Output format: text or json (on stdout)
    #[arg(long, short = 'f', value_enum, default_value_t)]
    pub format: OutputFormat,
}

pub fn run(_g: &Global, c: DbCommand) -> Result<()> {
    match c {
        DbCommand::Import(a) => {
            let db = a.db.path();
            let done = vulndb::import(&a.source, &db)?;
            eprintln!(
                "imported {} records ({} withdrawn) for {} packages of {} into {}",
                done.records,
                done.withdrawn,
                done.packages,
                done.ecosystems.join(", "),
                db.display()
            );
            Ok(())
        }
        DbCommand::Info(a) => {
            let db = a.db.path();
            let meta = vulndb::info(&db)?;
            if a.format == OutputFormat::Json {
                crate::stdout::outln!("{}", serde_json::to_string_pretty(&meta)?);
                return Ok(());
            }
            crate::stdout::outln!("database: {}", db.display());
            crate::stdout::outln!("updated:  {}", meta.updated);
            for s in &meta.sources {
                crate::stdout::outln!(
                    "source:   {} ({} records, newest modified {}, imported {}; {})",
                    s.path,
                    s.records,
                    s.newest_modified.as_deref().unwrap_or("-"),
                    s.imported,
                    s.ecosystems.join(", ")
                );
            }
            for (ecosystem, count) in &meta.ecosystems {
                crate::stdout::outln!("  {ecosystem:<24} {count}");
            }
            Ok(())
        }
    }
}
