//! One module per command group. Each exposes its clap arguments and the functions main.rs calls.

pub mod archive;
pub mod attach;
pub mod build;
pub mod containers;
pub mod containers_config;
pub mod copy;
pub mod db;
pub mod dockerfile;
pub mod flags;
pub mod fsck;
pub mod gpg_sign;
pub mod history;
pub mod images;
pub mod info;
pub mod inspect;
pub mod manifest;
pub mod plugin;
pub mod plugin_new;
pub mod progress;
pub mod registry;
pub mod sbom;
pub mod scan;
pub mod sign;
pub mod standalone;
pub mod sync;
pub mod template;
pub mod trust;
pub mod version;

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
    /// Wall-clock limit for compiling a plugin that is not in the compile cache, in seconds
    #[arg(
        long,
        global = true,
        env = "LADE_PLUGIN_COMPILE_TIMEOUT",
        default_value_t = 120.0,
        value_name = "SECONDS"
    )]
    pub plugin_compile_timeout: f64,
    /// Grant scanner plugins read-only access to DIR under NAME (repeatable); a plugin reads only the
    /// names it declares
    #[arg(long, global = true, value_name = "NAME=DIR")]
    pub plugin_data: Vec<String>,
    /// Signature policy to enforce on pulled, copied and FROM images (default:
    /// $HOME/.config/containers/policy.json, then /etc/containers/policy.json)
    #[arg(long, global = true, visible_alias = "policy", value_name = "FILE")]
    pub signature_policy: Option<PathBuf>,
    /// Do not check images against any signature policy
    #[arg(long, global = true)]
    pub insecure_policy: bool,
    /// registries.d directory: where signatures are stored (default: $HOME/.config/containers/registries.d
    /// when it exists, else /etc/containers/registries.d)
    #[arg(long = "registries.d", global = true, value_name = "DIR")]
    pub registries_d: Option<PathBuf>,
}

impl Global {
    pub fn root(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(crate::paths::default_root)
    }

    /// The signature policy options these flags give.
    pub fn policy(&self) -> crate::policy::Options {
        crate::policy::Options {
            policy: self.signature_policy.clone(),
            insecure: self.insecure_policy,
            registries_d: self.registries_d.clone(),
        }
    }
}

/// `--format` for commands that can print machine output.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Make the signature policy flags the process's (every policy check reads them).
pub fn init_policy(g: &Global) {
    crate::policy::configure(g.policy());
    let g2 = g.clone();
    crate::policy::set_verifier(std::sync::Arc::new(crate::signing::PluginVerifier::new(
        Box::new(move |name| {
            plugin::runtime(&g2)?.load(&crate::plugin::PluginSource::Embedded(name.into()))
        }),
    )));
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
            if crate::fsutil::disk_full(&e) {
                eprintln!(
                    "the disk is full (ENOSPC): free space on the filesystem named above and run the command \
                     again; nothing half-written was kept (`lade fsck` checks the store, `lade prune` frees blobs \
                     no image uses)"
                );
            }
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
