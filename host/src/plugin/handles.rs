//! Typed handles for calling a plugin of each kind. Every call runs in a fresh store with the runtime's
//! limits and returns the plugin's own error apart from a runtime failure.

use super::call;
use super::context::{ContextHandle, ContextReader};
use super::failure::PluginFailure;
use super::image_files::{FileStreamHandle, ImageFiles};
use super::images::ImageResolver;
use super::imports::Kind;
use super::runtime::Plugin;
use super::v0_1_0::frontend_world::exports::lade::plugin::frontend::{ParseOutput, ParseRequest};
use super::v0_1_0::scanner_world::exports::lade::plugin::scanner::{ImageInfo, ScanResult};
use super::v0_1_0::signer_world::exports::lade::plugin::signer::{
    KeyMaterial, Signature, Verification,
};
use super::v0_1_0::types::{KeyValue, PluginError};
use super::version::Loaded;
use std::sync::Arc;

/// A frontend plugin, from [`Plugin::frontend`].
pub struct Frontend<'a>(&'a Plugin);
/// A scanner plugin, from [`Plugin::scanner`].
pub struct Scanner<'a>(&'a Plugin);
/// A signer plugin, from [`Plugin::signer`].
pub struct Signer<'a>(&'a Plugin);

impl Plugin {
    pub fn frontend(&self) -> anyhow::Result<Frontend<'_>> {
        self.expect_kind(Kind::Frontend)?;
        Ok(Frontend(self))
    }

    pub fn scanner(&self) -> anyhow::Result<Scanner<'_>> {
        self.expect_kind(Kind::Scanner)?;
        Ok(Scanner(self))
    }

    pub fn signer(&self) -> anyhow::Result<Signer<'_>> {
        self.expect_kind(Kind::Signer)?;
        Ok(Signer(self))
    }

    /// Run one call in a fresh store; split the plugin's own error from a runtime failure.
    fn call<R>(
        &self,
        setup: impl FnOnce(&mut super::state::State),
        f: impl FnOnce(
            &Loaded,
            &mut wasmtime::Store<super::state::State>,
        ) -> wasmtime::Result<Result<R, PluginError>>,
    ) -> Result<R, PluginFailure> {
        match call::run(&self.engine, &self.limits, &self.name, setup, |s| {
            f(&self.loaded, s)
        }) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(error)) => Err(PluginFailure::Reported {
                plugin: self.name.clone(),
                error,
            }),
            Err(e) => Err(PluginFailure::Runtime(e)),
        }
    }
}

impl Frontend<'_> {
    /// Parse a build definition into a plan. The plugin reads `context` only through the build-context
    /// resource and learns about base images only through `images`.
    pub fn parse(
        &self,
        request: &ParseRequest,
        context: Arc<dyn ContextReader>,
        images: Arc<dyn ImageResolver>,
    ) -> Result<ParseOutput, PluginFailure> {
        self.0.call(
            |s| s.images = images,
            |loaded, s| match loaded {
                Loaded::V0_1_0(pre) => pre.parse(s, request, ContextHandle(context)),
            },
        )
    }
}

impl Scanner<'_> {
    /// The image paths (globs) this scanner wants to read.
    pub fn wants(&self) -> Result<Vec<String>, PluginFailure> {
        self.0.call(
            |_| {},
            |loaded, s| match loaded {
                Loaded::V0_1_0(pre) => pre.wants(s).map(Ok),
            },
        )
    }

    /// Scan an image whose wanted files `files` yields.
    pub fn scan(
        &self,
        image: &ImageInfo,
        options: &[KeyValue],
        files: Box<dyn ImageFiles>,
    ) -> Result<ScanResult, PluginFailure> {
        self.0.call(
            |_| {},
            |loaded, s| match loaded {
                Loaded::V0_1_0(pre) => pre.scan(s, image, options, FileStreamHandle(files)),
            },
        )
    }
}

impl Signer<'_> {
    /// The media type of the payloads this scheme signs.
    pub fn payload_type(&self) -> Result<String, PluginFailure> {
        self.0.call(
            |_| {},
            |loaded, s| match loaded {
                Loaded::V0_1_0(pre) => pre.payload_type(s).map(Ok),
            },
        )
    }

    pub fn sign(&self, payload: &[u8], key: &KeyMaterial) -> Result<Signature, PluginFailure> {
        self.0.call(
            |_| {},
            |loaded, s| match loaded {
                Loaded::V0_1_0(pre) => pre.sign(s, payload, key),
            },
        )
    }

    /// An error unless `signature` is valid for `payload` under `key`.
    pub fn verify(
        &self,
        payload: &[u8],
        signature: &Signature,
        key: &KeyMaterial,
    ) -> Result<Verification, PluginFailure> {
        self.0.call(
            |_| {},
            |loaded, s| match loaded {
                Loaded::V0_1_0(pre) => pre.verify(s, payload, signature, key),
            },
        )
    }
}
