//! The `images` import: what a frontend may learn about a base image (Env, OnBuild, Shell). The host side is
//! a trait so the build engine can resolve through its store and registry client, and tests through nothing.

use super::state::State;
use super::v0_1_0::adapt;
use super::v0_1_0::frontend_world::lade::plugin::images as images_0_1;
use super::v0_2_0::frontend_world::lade::plugin::images;
use super::v0_2_0::types::{Platform, PluginError};
use std::time::Instant;

pub use images::BaseImage;

/// Resolves a base image reference for a platform. `Ok(None)` means "cannot or may not look it up": the
/// frontend then assumes an empty config. An `Err` reaches the plugin as a `host` error naming the reference.
pub trait ImageResolver: Send + Sync {
    fn resolve(&self, reference: &str, platform: &Platform) -> anyhow::Result<Option<BaseImage>>;
}

/// Resolves nothing: every image has an empty config. For parsing without a store or network.
pub struct NoImages;

impl ImageResolver for NoImages {
    fn resolve(&self, _reference: &str, _platform: &Platform) -> anyhow::Result<Option<BaseImage>> {
        Ok(None)
    }
}

impl State {
    fn resolve_image(
        &mut self,
        reference: &str,
        platform: &Platform,
    ) -> Result<Option<BaseImage>, PluginError> {
        let started = Instant::now();
        let result = self.images.resolve(reference, platform);
        // A pull can take long; that time is the host's, not the plugin's.
        self.deadline += started.elapsed();
        result.map_err(|e| PluginError::Host(format!("resolving base image `{reference}`: {e:#}")))
    }
}

impl images::Host for State {
    fn resolve(
        &mut self,
        reference: String,
        platform: Platform,
    ) -> wasmtime::Result<Result<Option<BaseImage>, PluginError>> {
        Ok(self.resolve_image(&reference, &platform))
    }
}

/// 0.1.0: the same, adapted down (the shapes did not change).
impl images_0_1::Host for State {
    fn resolve(
        &mut self,
        reference: String,
        platform: super::v0_1_0::types::Platform,
    ) -> wasmtime::Result<Result<Option<images_0_1::BaseImage>, super::v0_1_0::types::PluginError>>
    {
        let platform: Platform = adapt("a platform", &platform)?;
        adapt("a base image", &self.resolve_image(&reference, &platform))
    }
}
