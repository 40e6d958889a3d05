//! Running a scanner plugin over an image from any transport, or over a root filesystem directory.
//!
//! [`Target::open`] reads what the scanner needs before it runs: for an image the manifest, the config and
//! each layer blob (in place when it is a local file, else spooled to a temporary file, so a registry is read
//! once), then the tar headers of every layer above the lowest, to learn which entries a later layer deletes
//! or replaces. [`scan`] then hands the scanner a [`ImageFiles`] stream of the entries it selected, lowest
//! layer first, each with its layer's diff_id and whether it is still visible; content is read by a
//! producer thread through a bounded channel, so memory stays bounded whatever the image's size. Files:
//! `image` (fetching), `select` (the scanner's file selection), `visibility` (whiteouts and replacements),
//! `extract` (the per-layer scan cache), `stream` (the entries handed over).

mod extract;
mod image;
mod select;
mod stream;
mod visibility;

use crate::plugin::Plugin;
use crate::plugin::scanner::{DataGrants, ImageInfo, KeyValue, Platform, ScanRequest, ScanResult};
use crate::transport::SystemContext;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub use image::OpenedImage;

/// What to scan: an image in any transport (or the local store), or a root filesystem directory.
pub enum Target {
    Image(Box<OpenedImage>),
    Dir(PathBuf),
}

impl Target {
    /// `arg` as the user typed it: a transport reference (`oci:DIR:TAG`, `docker://...`, `lade:NAME`), an
    /// existing directory (a root filesystem), else a name in the local store.
    pub async fn open(arg: &str, ctx: &SystemContext) -> Result<Target> {
        if crate::transport::parse(arg).is_err() && Path::new(arg).is_dir() {
            return Ok(Target::Dir(PathBuf::from(arg)));
        }
        let name = if crate::transport::parse(arg).is_ok() {
            arg.to_string()
        } else {
            format!("lade:{arg}")
        };
        Ok(Target::Image(Box::new(image::open(&name, arg, ctx).await?)))
    }

    /// What the scan request says about the target: the image's reference, digest, config, platform and
    /// layers; for a directory its path as the reference, no digest and no layers.
    pub fn info(&self) -> ImageInfo {
        match self {
            Target::Image(img) => img.info.clone(),
            Target::Dir(dir) => {
                let (os, architecture, variant) = crate::oci::platform::host_platform();
                ImageInfo {
                    reference: dir.display().to_string(),
                    digest: String::new(),
                    config: "{}".into(),
                    platform: Platform {
                        os,
                        architecture,
                        variant,
                        os_version: None,
                        os_features: vec![],
                    },
                    layers: vec![],
                }
            }
        }
    }
}

/// Run `plugin` (a scanner) over `target` with the user's `options` and data directory `grants`.
pub fn scan(
    plugin: &Plugin,
    target: &Target,
    options: Vec<KeyValue>,
    grants: &DataGrants,
) -> Result<ScanResult> {
    let scanner = plugin.scanner()?;
    let wants = scanner.wants()?;
    let selection = select::Selection::new(&wants)
        .with_context(|| format!("the file selection of plugin `{}`", plugin.info().name))?;
    let request = ScanRequest {
        image: Some(target.info()),
        options,
        inputs: vec![],
    };
    let img = match target {
        Target::Image(img) => img,
        Target::Dir(dir) => {
            let files = Box::new(stream::directory(dir.clone(), selection)?);
            return Ok(scanner.scan(&request, files, grants)?);
        }
    };
    // A damaged blob read in place is named as such, rather than by the tar error it causes.
    let masks = visibility::Masks::read(img).map_err(|e| img.verified().err().unwrap_or(e))?;
    let cache = extract::Cache::open(&selection.key);
    let (files, producer) = stream::layers(img, selection, masks, cache);
    let result = scanner.scan(&request, Box::new(files), grants);
    // The stream is gone with the call, so the producer ends at its next send.
    let extracts = producer.join().unwrap_or_default();
    // A blob that does not match its digest outranks whatever the scanner made of it.
    img.verified()?;
    let result = result?;
    for e in extracts {
        // The cache is an optimisation: a failure to keep it costs the next scan time, not this one.
        let _ = e.publish();
    }
    Ok(result)
}

/// Run `plugin` (a scanner) over documents alone (an SBOM file), with no image: it gets no files.
pub fn scan_documents(
    plugin: &Plugin,
    inputs: Vec<crate::plugin::scanner::InputDocument>,
    options: Vec<KeyValue>,
    grants: &DataGrants,
) -> Result<ScanResult> {
    let scanner = plugin.scanner()?;
    let request = ScanRequest {
        image: None,
        options,
        inputs,
    };
    let files = Box::new(crate::plugin::scanner::MemoryFiles::new([]));
    Ok(scanner.scan(&request, files, grants)?)
}
