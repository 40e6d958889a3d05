//! Running a scanner plugin over an image from any transport, or over a root filesystem directory.
//!
//! [`Target::open`] reads what the scanner needs before it runs: for an image the manifest, the config and
//! each layer blob (spooled to a temporary file, so a registry is read once), then the tar headers of every
//! layer above the lowest, to learn which entries a later layer deletes or replaces. [`scan`] then hands the
//! scanner a [`ImageFiles`] stream of the entries it selected, lowest layer first, each with its layer's
//! diff_id and whether it is still visible; content is read by a producer thread through a bounded channel,
//! so memory stays bounded whatever the image's size. Files: `image` (fetching), `select` (the scanner's
//! file selection), `visibility` (whiteouts and replacements), `stream` (the entries handed over).

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
    let files: Box<dyn crate::plugin::scanner::ImageFiles> = match target {
        Target::Image(img) => {
            // A damaged blob read in place is named as such, rather than by the tar error it causes.
            let masks = visibility::Masks::read(img).map_err(|e| img.verified().err().unwrap_or(e))?;
            Box::new(stream::layers(img, selection, masks))
        }
        Target::Dir(dir) => Box::new(stream::directory(dir.clone(), selection)?),
    };
    let request = ScanRequest {
        image: Some(target.info()),
        options,
        inputs: vec![],
    };
    let result = scanner.scan(&request, files, grants);
    // A blob that does not match its digest outranks whatever the scanner made of it.
    if let Target::Image(img) = target {
        img.verified()?;
    }
    Ok(result?)
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
