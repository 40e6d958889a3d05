//! One module per command group. Each exposes its clap arguments and the functions main.rs calls.

pub mod archive;
pub mod build;
pub mod copy;
pub mod dockerfile;
pub mod images;
pub mod info;
pub mod inspect;
pub mod manifest;
pub mod plugin;
pub mod registry;
pub mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

/// Options every command accepts.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// The local image store (default: /var/lib/lade as root, else $XDG_DATA_HOME/lade)
    #[arg(long, global = true, env = "LADE_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// registries.conf to read instead of the system's
    #[arg(
        long,
        global = true,
        env = "CONTAINERS_REGISTRIES_CONF",
        value_name = "FILE"
    )]
    pub registries_conf: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace
    #[arg(
        long,
        global = true,
        env = "LADE_LOG",
        default_value = "warn",
        value_name = "LEVEL"
    )]
    pub log_level: String,
    /// Wall-clock limit for one plugin call, in seconds
    #[arg(
        long,
        global = true,
        env = "LADE_PLUGIN_TIMEOUT",
        default_value_t = 30.0,
        value_name = "SECONDS"
    )]
    pub plugin_timeout: f64,
    /// Memory cap for one plugin call, in MiB
    #[arg(
        long,
        global = true,
        env = "LADE_PLUGIN_MEMORY",
        default_value_t = 512,
        value_name = "MIB"
    )]
    pub plugin_memory: u64,
}

impl Global {
    pub fn root(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(crate::paths::default_root)
    }
}

/// `--format` for commands that can print machine output.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

pub fn init_logging(g: &Global) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("lade={}", g.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("lade=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Print the error chain and choose the exit code: 0 success, 1 failure (2, bad usage, is clap's).
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A tokio runtime for commands that talk to the network.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
