//! The plugin runtime: sandboxed WebAssembly components speaking the `lade:plugin` contract.
//!
//! One wasmtime [`Runtime`] per process ([`Runtime::global`]) loads a plugin from the binary, a file or the
//! installed plugins ([`PluginSource`]) into a [`Plugin`]: compiled once into the cache directory, its
//! contract version, kind and imports checked before anything runs. Each call then gets a fresh store with
//! an empty WASI context, a deadline, a memory cap and a stack cap; whatever goes wrong ends as an error
//! naming the plugin ([`PluginFailure`]).
//!
//! ```no_run
//! # use lade::plugin::{Runtime, PluginSource, images::NoImages, frontend::*};
//! # fn f(req: ParseRequest, ctx: std::sync::Arc<dyn lade::plugin::context::ContextReader>) -> anyhow::Result<()> {
//! let rt = Runtime::global()?;
//! let plugin = rt.load(&PluginSource::Embedded("dockerfile".into()))?;
//! let output = plugin.frontend()?.parse(&req, ctx, std::sync::Arc::new(NoImages))?;
//! # Ok(()) }
//! ```
//!
//! Files: `runtime` (loading), `call` (one limited call), `handles` (typed calls per kind), `imports`
//! (the import check), `version` (the one contract dispatch point) with `v0_1_0` (frozen, adapted up) and
//! `v0_2_0` (the newest, whose types the engine works on), `cache`, `engine`, `limits`, `state`, `stdio`,
//! `wasi`, `installed`, `artifact` (plugins as Wasm OCI artifacts: push, verified pull), `syntax` (the
//! frontend a Containerfile's `# syntax=` line selects), and one file per host-provided interface: `context`, `images`, `image_files`,
//! `data_dirs`.

pub mod artifact;
mod cache;
mod call;
pub mod context;
pub mod data_dirs;
mod engine;
mod failure;
mod handles;
pub mod image_files;
pub mod images;
mod imports;
pub mod installed;
mod limits;
mod runtime;
mod state;
mod stdio;
pub mod syntax;
pub mod v0_1_0;
pub mod v0_2_0;
mod version;
mod wasi;

pub use cache::{CacheOutcome, CompileTimeout, WASMTIME_VERSION};
pub use failure::{PluginFailure, render as render_diagnostic};
pub use handles::{Frontend, Scanner, Signer};
pub use imports::{Kind, Surface};
pub use limits::Limits;
pub use runtime::{Description, Plugin, PluginSource, Runtime};
pub use v0_2_0::types::{
    DataNeed, Diagnostic, KeyValue, Location, Needs, Platform, PluginError, PluginInfo, PluginKind,
    Severity,
};
pub use version::KNOWN_VERSIONS as CONTRACT_VERSIONS;
pub use version::KNOWN_VERSIONS;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_plugins.rs"));
}
pub use embedded::EMBEDDED;

/// The bytes of a built-in plugin.
pub fn embedded(name: &str) -> Option<&'static [u8]> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The frontend contract's types: the request, the raw instructions and the typed plan.
pub mod frontend {
    pub use super::context::{ContextEntry, ContextFileKind, ContextReader, ContextStat};
    pub use super::handles::Frontend;
    pub use super::images::{BaseImage, ImageResolver, NoImages};
    pub use super::v0_2_0::frontend_world::exports::lade::plugin::frontend::*;
    pub use super::v0_2_0::types::{
        Diagnostic, KeyValue, Location, Platform, PluginError, Severity,
    };
}

/// The scanner contract's types.
pub mod scanner {
    pub use super::data_dirs::DataGrants;
    pub use super::handles::Scanner;
    pub use super::image_files::{Entry, EntryKind, ImageFiles, MemoryFiles};
    pub use super::v0_2_0::scanner_world::exports::lade::plugin::scanner::*;
    pub use super::v0_2_0::types::{KeyValue, Platform, PluginError};
}

/// The signer contract's types.
pub mod signer {
    pub use super::handles::{Signer, SigningKey, VerifyingKey};
    pub use super::v0_2_0::signer_world::exports::lade::plugin::signer::*;
    pub use super::v0_2_0::types::{KeyValue, PluginError};
}
