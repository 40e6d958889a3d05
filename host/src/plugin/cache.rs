//! The compile cache: precompiled components in lade's cache directory, keyed by the component's sha256, the
//! wasmtime version and the engine's compatibility hash. Entries carry a CRC-32 trailer over their content
//! (against disk corruption: the directory is the user's own, so this guards accidents, not attackers) and
//! are written atomically; one that does not check out is deleted and rebuilt. Nothing is ever loaded from
//! anywhere but this directory.

use sha2::{Digest, Sha256};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The wasmtime this lade was built with (build.rs reads it from Cargo.lock).
pub const WASMTIME_VERSION: &str = env!("LADE_WASMTIME_VERSION");

/// The CRC-32 (little-endian) after the compiled code.
const TRAILER: usize = 4;

/// Changes when the entry format does, so old entries are never read.
const FORMAT: &str = "lade-plugin-cache-2";

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    /// Compiled now (and stored, when there is a cache directory).
    Compiled,
    /// A damaged entry was deleted and the component compiled again.
    Rebuilt,
}

pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
}

/// Feeds `Hash` output into sha256, so the engine's compatibility hash can be part of a stable key.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes(d[..8].try_into().expect("sha256 is 32 bytes"))
    }
}

impl CompileCache {
    /// `None`: compile every time, store nothing.
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    /// The entry file for a component with this sha256 (hex), under this engine.
    pub fn entry_path(&self, engine: &Engine, component_sha256: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut h = ShaHasher(Sha256::new());
        FORMAT.hash(&mut h);
        component_sha256.hash(&mut h);
        WASMTIME_VERSION.hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        Some(dir.join(format!("{}.cwasm", hex::encode(h.0.finalize()))))
    }

    /// The compiled component: from the cache when a sound entry exists, else compiled (and stored).
    /// Compiling is bounded by `deadline` (a [`CompileTimeout`] past it).
    pub fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        component_sha256: &str,
        deadline: Duration,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let Some(path) = self.entry_path(engine, component_sha256) else {
            let compiled = compile_within(engine, bytes, deadline)?;
            // SAFETY: `compiled` was produced just now by this very engine.
            let component = unsafe { Component::deserialize(engine, &compiled) }
                .map_err(anyhow::Error::from)?;
            return Ok((component, CacheOutcome::Compiled));
        };
        let mut outcome = CacheOutcome::Compiled;
        match load(engine, &path) {
            Ok(Some(c)) => return Ok((c, CacheOutcome::Hit)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: "lade", "discarding compiled plugin {}: {e:#}", path.display());
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(target: "lade", "could not delete {}: {e}", path.display());
                }
                outcome = CacheOutcome::Rebuilt;
            }
        }
        let compiled = compile_within(engine, bytes, deadline)?;
        // SAFETY: `compiled` was produced just now by this very engine.
        let component =
            unsafe { Component::deserialize(engine, &compiled) }.map_err(anyhow::Error::from)?;
        if let Err(e) = store(&path, &compiled) {
            tracing::warn!(target: "lade", "could not store the compiled plugin in {}: {e:#}", path.display());
        }
        Ok((component, outcome))
    }
}

/// Compiling took longer than the compile deadline.
#[derive(Debug)]
pub struct CompileTimeout(pub Duration);

impl std::fmt::Display for CompileTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "compiling it took longer than {}, the compile deadline (raise it with --plugin-compile-timeout \
             SECONDS if the component is big and the machine slow)",
            super::limits::describe_duration(self.0)
        )
    }
}

impl std::error::Error for CompileTimeout {}

/// Compile on a thread of its own and wait at most `deadline`. Cranelift cannot be interrupted, so past the
/// deadline the thread is left to finish on its own and its result dropped; the caller fails at once.
fn compile_within(engine: &Engine, bytes: &[u8], deadline: Duration) -> anyhow::Result<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (engine, bytes) = (engine.clone(), bytes.to_vec());
    std::thread::Builder::new()
        .name("lade-plugin-compile".into())
        .spawn(move || {
            let _ = tx.send(engine.precompile_component(&bytes));
        })
        .map_err(|e| anyhow::anyhow!("starting the plugin compiler thread: {e}"))?;
    match rx.recv_timeout(deadline) {
        Ok(compiled) => compiled.map_err(anyhow::Error::from),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(CompileTimeout(deadline).into()),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            anyhow::bail!("the plugin compiler thread ended without a result")
        }
    }
}

/// `Ok(None)`: no entry. `Err`: an entry that is damaged or does not load.
fn load(engine: &Engine, path: &Path) -> anyhow::Result<Option<Component>> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("reading it: {e}"),
    };
    anyhow::ensure!(
        data.len() > TRAILER,
        "it is truncated ({} bytes)",
        data.len()
    );
    let (body, trailer) = data.split_at(data.len() - TRAILER);
    anyhow::ensure!(
        crc32fast::hash(body).to_le_bytes() == trailer,
        "its checksum does not match its content"
    );
    // SAFETY: the entry lives in lade's own cache directory, its name is keyed by the component's digest,
    // the wasmtime version and this engine's compatibility hash, and its content matches the checksum
    // written with it, so it is exactly what this engine's `precompile_component` produced.
    let component = unsafe { Component::deserialize(engine, body) }.map_err(anyhow::Error::from)?;
    Ok(Some(component))
}

/// Write `compiled` plus its checksum to a temporary file beside `path`, fsync, rename.
fn store(path: &Path, compiled: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().expect("cache entries live in a directory");
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(compiled)?;
    tmp.write_all(&crc32fast::hash(compiled).to_le_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
