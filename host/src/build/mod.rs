//! The build executor: runs a frontend plan into an image.
//!
//! * [`executor`]: the stage graph (dependency order, independent stages in parallel), the step loop, commit.
//! * [`driver`]: one whole build: plans per platform, every platform at once, commit, outputs, push.
//! * [`base`]: FROM — scratch, another stage, the local store or any transport, with `--pull` policies.
//! * [`rootview`]: read-only view of an image's unpacked layers (lookups follow symlinks inside the root).
//! * [`copystep`]: COPY and ADD into a fresh layer tree, with Docker's directory rules.
//! * [`statcache`]: persistent (path, stat) → content digest, so an unchanged context reads no file.
//! * [`run`]: RUN — the step's spec, its `--mount`s and secrets, run in a snapshot.
//! * [`cache`]: layer-cache keys and records, and `--explain-cache`.
//! * [`remote_cache`]: `--cache-to`/`--cache-from`: the cache as an OCI artifact in a registry or a layout.
//! * [`early_upload`]: layers sent to `--cache-to` registries as steps make them, while the build goes on.
//! * [`config`]: the image config and history as instructions change them.
//! * [`output`]: `--output` and `--push` exports.
//! * [`plancheck`]: the frontend's plan checked as untrusted input (paths, mounts, secrets, network, sizes).
//! * [`progress`]: terminal, plain and JSON progress events.
//! * [`workdir`]: the directory a WORKDIR names, created when missing.

pub mod base;
pub mod cache;
pub mod config;
pub mod copystep;
pub mod driver;
pub mod early_upload;
pub mod executor;
pub mod output;
pub mod plancheck;
pub mod progress;
pub mod remote_cache;
pub mod rootview;
pub mod run;
pub mod statcache;
pub mod workdir;

use crate::transport::Descriptor;
use std::path::PathBuf;

/// An error, or the context of one, that names the Containerfile location of the step it comes from. The
/// executor adds the location to a failed step's error only when nothing in it is an `AtStep`.
#[derive(Debug)]
pub struct AtStep(pub String);

impl std::fmt::Display for AtStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AtStep {}

/// `f` over every item, four at a time on threads of their own (blob downloads and uploads, as a pull or
/// a push moves an image's layers); the results in order, or the first error.
pub(crate) fn four_at_a_time<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let mut out = Vec::with_capacity(items.len());
    for group in items.chunks(4) {
        let f = &f;
        out.extend(std::thread::scope(|s| {
            let runs: Vec<_> = group.iter().map(|i| s.spawn(move || f(i))).collect();
            runs.into_iter()
                .map(|r| r.join().expect("a blob transfer panicked"))
                .collect::<anyhow::Result<Vec<R>>>()
        })?);
    }
    Ok(out)
}

/// One layer of an image being built: its blob in the store and its unpacked dir in the layer cache.
#[derive(Clone, Debug)]
pub struct Layer {
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
    /// The compressed blob as stored in the local store.
    pub blob: Descriptor,
    /// The unpacked layer in overlay form (`<root>/lade/layers/<hex>`).
    pub dir: PathBuf,
}

/// An image as a stage sees it between steps: its layers (base first) and its OCI image config document.
#[derive(Clone, Debug, Default)]
pub struct ImageState {
    pub layers: Vec<Layer>,
    /// The whole image config (architecture, os, config, rootfs, history, ...; unknown fields kept).
    pub config: crate::oci::ImageConfig,
}

impl ImageState {
    /// The unpacked layer dirs, base first (what [`crate::dispatch::isolation::Snapshot::prepare`] takes).
    pub fn lowers(&self) -> Vec<PathBuf> {
        self.layers.iter().map(|l| l.dir.clone()).collect()
    }

    /// A read-only view of the image's root filesystem.
    pub fn view(&self) -> rootview::RootView {
        rootview::RootView::new(self.lowers())
    }
}
