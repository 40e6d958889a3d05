//! The runtime: one engine per process, the compile cache, and loading a plugin from the binary, a file or
//! the installed plugins into a [`Plugin`] whose calls each run in a fresh, limited store.

use super::cache::{CacheOutcome, CompileCache};
use super::imports::{self, Kind, Surface};
use super::limits::Limits;
use super::v0_2_0::types::{Needs, PluginInfo, PluginKind};
use super::version::{self, Linkers, Loaded};
use super::{call, installed};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wasmtime::Engine;

/// Components larger than this are refused before anything else is done with them (the bound on what is
/// handed to the compiler; the compile itself is bounded by [`Limits::compile`]).
pub const MAX_COMPONENT: u64 = super::artifact::MAX_WASM;

/// The engine, its linkers, the compile cache and the limits every call gets.
pub struct Runtime {
    engine: Engine,
    limits: Limits,
    cache: CompileCache,
    linkers: Linkers,
}

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Built from plugins/ and embedded in the lade binary.
    Embedded(String),
    /// A component file the user named.
    File(PathBuf),
    /// Installed with `lade plugin install` into `<plugins_dir>/<name>.wasm`.
    Installed { plugins_dir: PathBuf, name: String },
    /// Pulled for a Containerfile's `# syntax=` line and cached by digest at `path`.
    Pulled { reference: String, path: PathBuf },
}

impl PluginSource {
    /// What a user typed (`--frontend X`, `lade plugin inspect X`): a file when it looks like a path (contains
    /// `/` or ends in `.wasm`), else an installed plugin, else an embedded one.
    pub fn find(name_or_file: &str, plugins_dir: &Path) -> anyhow::Result<PluginSource> {
        let as_path = Path::new(name_or_file);
        if name_or_file.contains('/') || name_or_file.ends_with(".wasm") {
            return Ok(PluginSource::File(as_path.to_path_buf()));
        }
        if installed::path(plugins_dir, name_or_file).is_ok_and(|p| p.is_file()) {
            return Ok(PluginSource::Installed {
                plugins_dir: plugins_dir.to_path_buf(),
                name: name_or_file.into(),
            });
        }
        if super::embedded(name_or_file).is_some() {
            return Ok(PluginSource::Embedded(name_or_file.into()));
        }
        let mut known: Vec<String> = super::EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
        known.extend(installed::names(plugins_dir).unwrap_or_default());
        known.sort();
        known.dedup();
        anyhow::bail!(
            "no plugin `{name_or_file}`: it is not a file, not installed in {} and not built in (known plugins: {})",
            plugins_dir.display(),
            known.join(", ")
        )
    }

    /// The name used in messages before the plugin has said its own.
    pub fn label(&self) -> String {
        match self {
            PluginSource::Embedded(n) | PluginSource::Installed { name: n, .. } => n.clone(),
            PluginSource::Pulled { reference, .. } => reference.clone(),
            PluginSource::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
        }
    }

    /// `embedded`, `installed` or `file`, for listings.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginSource::Embedded(_) => "embedded",
            PluginSource::Installed { .. } => "installed",
            PluginSource::File(_) => "file",
            PluginSource::Pulled { .. } => "pulled",
        }
    }

    fn bytes(&self) -> anyhow::Result<std::borrow::Cow<'static, [u8]>> {
        let path = match self {
            PluginSource::Embedded(n) => {
                return super::embedded(n)
                    .map(std::borrow::Cow::Borrowed)
                    .ok_or_else(|| anyhow::anyhow!("no built-in plugin `{n}`"));
            }
            PluginSource::File(p) | PluginSource::Pulled { path: p, .. } => p.clone(),
            PluginSource::Installed { plugins_dir, name } => installed::path(plugins_dir, name)?,
        };
        let meta = std::fs::metadata(&path).map_err(|e| {
            anyhow::anyhow!(
                "plugin `{}`: cannot read {}: {e}",
                self.label(),
                path.display()
            )
        })?;
        check_size(&self.label(), meta.len())
            .map_err(|e| e.context(format!("reading {}", path.display())))?;
        let bytes = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!(
                "plugin `{}`: cannot read {}: {e}",
                self.label(),
                path.display()
            )
        })?;
        Ok(std::borrow::Cow::Owned(bytes))
    }
}

/// A loaded plugin: checked, linked, its metadata read. Cheap to call many times; each call gets a fresh
/// store with the runtime's limits.
pub struct Plugin {
    pub(crate) name: String,
    source: PluginSource,
    digest: String,
    contract: String,
    kind: Kind,
    info: PluginInfo,
    surface: Surface,
    cache: CacheOutcome,
    pub(crate) loaded: Loaded,
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
}

/// Everything `lade plugin list`/`inspect` shows about a plugin.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub name: String,
    pub kind: Kind,
    pub version: String,
    pub description: String,
    pub contract_version: String,
    pub source: String,
    /// The file, for installed and file plugins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    pub digest: String,
    /// Where an installed plugin came from: the file or reference given to `lade plugin install`, and the
    /// manifest digest of an artifact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<installed::Origin>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// What it declares it needs (data directories, input documents); nothing is granted unasked.
    pub needs: Needs,
}

static GLOBAL: OnceLock<Runtime> = OnceLock::new();

impl Runtime {
    /// A runtime with its own engine. `cache_dir`: where compiled plugins are kept (`None`: nowhere).
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> anyhow::Result<Runtime> {
        let engine = super::engine::new_engine(&limits)?;
        let linkers = Linkers::new(&engine)?;
        Ok(Runtime {
            engine,
            limits,
            cache: CompileCache::new(cache_dir),
            linkers,
        })
    }

    /// The process-wide runtime, made on first use with `limits` and `lade::paths::cache_dir()/plugins`.
    /// Later calls return the same runtime whatever limits they pass.
    pub fn global_with(limits: Limits) -> anyhow::Result<&'static Runtime> {
        if let Some(rt) = GLOBAL.get() {
            return Ok(rt);
        }
        let rt = Runtime::new(limits, Some(crate::paths::cache_dir().join("plugins")))?;
        Ok(GLOBAL.get_or_init(|| rt))
    }

    /// The process-wide runtime with the default limits (or those it was first made with).
    pub fn global() -> anyhow::Result<&'static Runtime> {
        Runtime::global_with(Limits::default())
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Load a plugin: read it, compile it (or take it from the cache), check its contract version, its kind
    /// and its imports, link it, and read its metadata.
    pub fn load(&self, source: &PluginSource) -> anyhow::Result<Plugin> {
        let bytes = source.bytes()?;
        self.load_bytes(source.clone(), &bytes)
    }

    /// Like [`Runtime::load`] with the component's bytes already at hand.
    pub fn load_bytes(&self, source: PluginSource, bytes: &[u8]) -> anyhow::Result<Plugin> {
        let name = source.label();
        check_size(&name, bytes.len() as u64)?;
        check_header(&name, bytes)?;
        let sha = hex::encode(Sha256::digest(bytes));
        let (component, cache) = self
            .cache
            .component(&self.engine, bytes, &sha, self.limits.compile)
            .map_err(|e| {
                if e.is::<super::cache::CompileTimeout>() {
                    e.context(format!("plugin `{name}` was not loaded"))
                } else {
                    e.context(format!(
                        "plugin `{name}` is not a valid WebAssembly component"
                    ))
                }
            })?;
        let surface = Surface::of(&component, &self.engine);
        let contract = imports::contract_version(&name, &surface)?;
        version::check_known(&name, &contract)?;
        let kind = imports::kind(&name, &surface, &contract)?;
        imports::check(&name, kind, &contract, &surface)?;
        let loaded = version::prepare(&self.linkers, &name, &contract, kind, &component)?;
        let info = call::run(
            &self.engine,
            &self.limits,
            &name,
            |_| {},
            |s| info(&loaded, s),
        )?;
        let declared = match info.kind {
            PluginKind::Frontend => Kind::Frontend,
            PluginKind::Scanner => Kind::Scanner,
            PluginKind::Signer => Kind::Signer,
        };
        anyhow::ensure!(
            declared == kind,
            "plugin `{name}` says it is a {declared} plugin but exports the {kind} interface"
        );
        check_needs(&name, kind, &info.needs)?;
        Ok(Plugin {
            name,
            source,
            digest: format!("sha256:{sha}"),
            contract,
            kind,
            info,
            surface,
            cache,
            loaded,
            engine: self.engine.clone(),
            limits: self.limits.clone(),
        })
    }

    /// The compile-cache file a component would use (for tests and `lade plugin inspect`).
    pub fn cache_entry(&self, bytes: &[u8]) -> Option<PathBuf> {
        self.cache
            .entry_path(&self.engine, &hex::encode(Sha256::digest(bytes)))
    }
}

/// The metadata call, in whichever version the plugin speaks, adapted to the newest types.
fn info(
    loaded: &Loaded,
    store: &mut wasmtime::Store<super::state::State>,
) -> wasmtime::Result<PluginInfo> {
    match loaded {
        Loaded::V0_1_0(pre) => pre.info(store),
        Loaded::V0_2_0(pre) => pre.info(store),
    }
}

/// What a plugin declares it needs must make sense for its kind; names must be grantable.
fn check_needs(name: &str, kind: Kind, needs: &Needs) -> anyhow::Result<()> {
    if kind != Kind::Scanner {
        anyhow::ensure!(
            needs.data_dirs.is_empty() && needs.documents.is_empty(),
            "plugin `{name}` is a {kind} plugin but declares data directories or input documents, which only \
             scanners get"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for need in &needs.data_dirs {
        super::data_dirs::check_name(&need.name)
            .map_err(|e| e.context(format!("plugin `{name}` declares a data directory")))?;
        anyhow::ensure!(
            seen.insert(need.name.as_str()),
            "plugin `{name}` declares the data directory `{}` twice",
            need.name
        );
    }
    Ok(())
}

/// Refuse a component over [`MAX_COMPONENT`] before it reaches the compiler.
fn check_size(name: &str, len: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        len <= MAX_COMPONENT,
        "plugin `{name}` is {len} bytes, more than the {} a plugin may have",
        super::limits::describe_bytes(MAX_COMPONENT as usize)
    );
    Ok(())
}

/// Tell garbage, core modules and components apart before handing bytes to the compiler.
fn check_header(name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        anyhow::bail!(
            "plugin `{name}` is not a WebAssembly component: it does not start with the wasm magic bytes ({} bytes)",
            bytes.len()
        );
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        anyhow::bail!(
            "plugin `{name}` is a core WebAssembly module, not a component: build it for wasm32-wasip2 \
             (or wrap it with `wasm-tools component new`)"
        );
    }
    Ok(())
}

impl Plugin {
    /// The name used in messages: the embedded or installed name, or the file's stem.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the plugin says about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The `lade:plugin` version it was built against.
    pub fn contract_version(&self) -> &str {
        &self.contract
    }

    /// `sha256:<hex>` of the component bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn source(&self) -> &PluginSource {
        &self.source
    }

    /// Whether the compiled code came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// A fresh instance and a metadata call: a health check, and what one instantiation costs.
    pub fn ping(&self) -> anyhow::Result<PluginInfo> {
        call::run(
            &self.engine,
            &self.limits,
            &self.name,
            |_| {},
            |s| info(&self.loaded, s),
        )
    }

    pub fn describe(&self) -> Description {
        Description {
            name: self.info.name.clone(),
            kind: self.kind,
            version: self.info.version.clone(),
            description: self.info.description.clone(),
            contract_version: self.contract.clone(),
            source: self.source.kind().into(),
            path: match &self.source {
                PluginSource::Embedded(_) => None,
                PluginSource::File(p) | PluginSource::Pulled { path: p, .. } => Some(p.clone()),
                PluginSource::Installed { plugins_dir, name } => {
                    installed::path(plugins_dir, name).ok()
                }
            },
            origin: match &self.source {
                PluginSource::Installed { plugins_dir, name } => {
                    installed::origin(plugins_dir, name)
                }
                PluginSource::Pulled { reference, .. } => Some(installed::Origin {
                    reference: reference.clone(),
                    manifest_digest: None,
                }),
                _ => None,
            },
            digest: self.digest.clone(),
            imports: self.surface.imports.clone(),
            exports: self.surface.exports.clone(),
            needs: self.info.needs.clone(),
        }
    }

    pub(crate) fn expect_kind(&self, kind: Kind) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.kind == kind,
            "plugin `{}` is a {} plugin, not a {kind} plugin",
            self.name,
            self.kind
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_and_the_runtime_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Runtime>();
        shared::<Plugin>();
    }

    #[test]
    fn headers_are_told_apart() {
        assert!(
            check_header("g", b"garbage!")
                .unwrap_err()
                .to_string()
                .contains("wasm magic")
        );
        assert!(
            check_header("m", b"\0asm\x01\0\0\0")
                .unwrap_err()
                .to_string()
                .contains("core WebAssembly module")
        );
        check_header("c", b"\0asm\x0d\0\x01\0").unwrap();
    }

    #[test]
    fn sources_are_found_by_path_installed_or_embedded() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            PluginSource::find("./x.wasm", dir.path()).unwrap(),
            PluginSource::File(PathBuf::from("./x.wasm"))
        );
        assert_eq!(
            PluginSource::find("dockerfile", dir.path()).unwrap(),
            PluginSource::Embedded("dockerfile".into())
        );
        std::fs::write(dir.path().join("mine.wasm"), b"x").unwrap();
        assert_eq!(
            PluginSource::find("mine", dir.path()).unwrap(),
            PluginSource::Installed {
                plugins_dir: dir.path().into(),
                name: "mine".into()
            }
        );
        let e = PluginSource::find("nope", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no plugin `nope`") && e.contains("dockerfile") && e.contains("mine"),
            "{e}"
        );
    }
}
