//! Typed handles for calling a plugin of each kind, in the newest contract's types whatever version the
//! plugin was built against. Every call runs in a fresh store with the runtime's limits (a signer's opened
//! keys live in a session of their own) and returns the plugin's own error apart from a runtime failure.

use super::call::{self, Session};
use super::context::{ContextHandle, ContextReader};
use super::data_dirs::{DataAccess, DataGrants};
use super::failure::PluginFailure;
use super::image_files::{FileStreamHandle, ImageFiles};
use super::images::ImageResolver;
use super::imports::Kind;
use super::runtime::Plugin;
use super::v0_2_0::frontend_world::exports::lade::plugin::frontend::{ParseOutput, ParseRequest};
use super::v0_2_0::scanner_world::exports::lade::plugin::scanner::{
    FileSelection, ScanRequest, ScanResult,
};
use super::v0_2_0::signer_world::exports::lade::plugin::signer::{
    KeyMaterial, KeyPair, SignRequest, SignatureFormat, Signed, Verification,
};
use super::v0_2_0::types::{KeyValue, PluginError};
use super::version::Loaded;
use super::{v0_1_0, v0_2_0};
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
        self.split(call::run(
            &self.engine,
            &self.limits,
            &self.name,
            setup,
            |s| f(&self.loaded, s),
        ))
    }

    fn split<R>(&self, r: anyhow::Result<Result<R, PluginError>>) -> Result<R, PluginFailure> {
        match r {
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
                Loaded::V0_2_0(pre) => pre.parse(s, request, ContextHandle(context)),
            },
        )
    }
}

impl Scanner<'_> {
    /// The image files this scanner wants to read.
    pub fn wants(&self) -> Result<FileSelection, PluginFailure> {
        self.0.call(
            |_| {},
            |loaded, s| match loaded {
                Loaded::V0_1_0(pre) => pre.wants(s).map(Ok),
                Loaded::V0_2_0(pre) => pre.wants(s).map(Ok),
            },
        )
    }

    /// Scan an image whose selected files `files` yields. Of the user's `grants`, the scanner can open only
    /// those it declared; a required one the user did not grant stops the scan before it starts.
    pub fn scan(
        &self,
        request: &ScanRequest,
        files: Box<dyn ImageFiles>,
        grants: &DataGrants,
    ) -> Result<ScanResult, PluginFailure> {
        let access = DataAccess::for_plugin(&self.0.name, &self.0.info().needs, grants)
            .map_err(PluginFailure::Runtime)?;
        self.0.call(
            |s| s.data_dirs = access,
            |loaded, s| match loaded {
                Loaded::V0_1_0(pre) => pre.scan(s, request, FileStreamHandle(files)),
                Loaded::V0_2_0(pre) => pre.scan(s, request, FileStreamHandle(files)),
            },
        )
    }
}

impl<'a> Signer<'a> {
    /// The formats this scheme makes and checks (none for a 0.1.0 signer, whose signatures are untyped
    /// artifacts).
    pub fn formats(&self) -> Result<Vec<SignatureFormat>, PluginFailure> {
        self.0.call(
            |_| {},
            |loaded, s| match loaded {
                Loaded::V0_1_0(_) => Ok(Ok(Vec::new())),
                Loaded::V0_2_0(pre) => pre.formats(s).map(Ok),
            },
        )
    }

    /// A new key pair for `lade generate-key-pair`, the private key encrypted under `passphrase`
    /// (a 0.1.0 signer makes no keys).
    pub fn generate_key_pair(
        &self,
        passphrase: &str,
        options: &[KeyValue],
    ) -> Result<KeyPair, PluginFailure> {
        self.0.call(
            |_| {},
            |loaded, s| match loaded {
                Loaded::V0_1_0(_) => Ok(Err(PluginError::Unsupported(
                    "this signer was built against lade:plugin@0.1.0, which cannot make keys"
                        .into(),
                ))),
                Loaded::V0_2_0(pre) => pre.generate_key_pair(s, passphrase, options),
            },
        )
    }

    /// Open a private key once for many signatures.
    pub fn signing_key(&self, material: &KeyMaterial) -> Result<SigningKey<'a>, PluginFailure> {
        Ok(SigningKey(self.open(material, true)?))
    }

    /// Open a public key, certificate or keyring once for many checks.
    pub fn verifying_key(&self, material: &KeyMaterial) -> Result<VerifyingKey<'a>, PluginFailure> {
        Ok(VerifyingKey(self.open(material, false)?))
    }

    fn open(&self, material: &KeyMaterial, signing: bool) -> Result<OpenedKey<'a>, PluginFailure> {
        let plugin: &'a Plugin = self.0;
        match &plugin.loaded {
            // A 0.1.0 signer has no handles: the material is kept here and handed over on every call.
            Loaded::V0_1_0(_) => Ok(OpenedKey::Adapted {
                plugin,
                material: material.clone(),
                id: v0_1_0::material_id(material, signing),
            }),
            Loaded::V0_2_0(pre) => {
                let opened = Session::open(&plugin.engine, &plugin.limits, &plugin.name, |s| {
                    pre.open_key(s, material, signing)
                });
                let (session, result) = match opened {
                    Ok(x) => x,
                    Err(e) => return Err(PluginFailure::Runtime(e)),
                };
                let (instance, handle) = plugin.split(Ok(result))?;
                Ok(OpenedKey::Handle(Box::new(v0_2_0::OpenKey::new(
                    session, instance, handle,
                ))))
            }
        }
    }
}

enum OpenedKey<'a> {
    Adapted {
        plugin: &'a Plugin,
        material: KeyMaterial,
        id: String,
    },
    /// Boxed: the instance's export table is large.
    Handle(Box<v0_2_0::OpenKey>),
}

/// A private key a signer opened, from [`Signer::signing_key`].
pub struct SigningKey<'a>(OpenedKey<'a>);
/// A public key or keyring a signer opened, from [`Signer::verifying_key`].
pub struct VerifyingKey<'a>(OpenedKey<'a>);

impl SigningKey<'_> {
    /// The key's stable id.
    pub fn key_id(&self) -> Result<String, PluginFailure> {
        match &self.0 {
            OpenedKey::Adapted { id, .. } => Ok(id.clone()),
            OpenedKey::Handle(k) => k.key_id().map_err(PluginFailure::Runtime),
        }
    }

    /// The public key, when the scheme can derive it.
    pub fn public_key(&self) -> Result<Option<Vec<u8>>, PluginFailure> {
        match &self.0 {
            OpenedKey::Adapted { .. } => Ok(None),
            OpenedKey::Handle(k) => k.public_key().map_err(PluginFailure::Runtime),
        }
    }

    pub fn sign(&self, request: &SignRequest) -> Result<Signed, PluginFailure> {
        match &self.0 {
            OpenedKey::Adapted {
                plugin, material, ..
            } => plugin.call(
                |_| {},
                |loaded, s| match loaded {
                    Loaded::V0_1_0(pre) => pre.sign(s, &request.payload, material),
                    Loaded::V0_2_0(_) => unreachable!("adapted keys are 0.1.0"),
                },
            ),
            OpenedKey::Handle(k) => split_named(k, k.sign(request)),
        }
    }
}

impl VerifyingKey<'_> {
    /// The stable ids of the keys it holds.
    pub fn key_ids(&self) -> Result<Vec<String>, PluginFailure> {
        match &self.0 {
            OpenedKey::Adapted { id, .. } => Ok(vec![id.clone()]),
            OpenedKey::Handle(k) => k.key_ids().map_err(PluginFailure::Runtime),
        }
    }

    /// An error unless `signature` is valid under one of the keys; `payload` when it travels apart.
    pub fn verify(
        &self,
        payload: Option<&[u8]>,
        signature: &Signed,
    ) -> Result<Verification, PluginFailure> {
        match &self.0 {
            OpenedKey::Adapted {
                plugin, material, ..
            } => plugin.call(
                |_| {},
                |loaded, s| match loaded {
                    Loaded::V0_1_0(pre) => pre.verify(s, payload, signature, material),
                    Loaded::V0_2_0(_) => unreachable!("adapted keys are 0.1.0"),
                },
            ),
            OpenedKey::Handle(k) => split_named(k, k.verify(payload, signature)),
        }
    }
}

fn split_named<R>(
    key: &v0_2_0::OpenKey,
    r: anyhow::Result<Result<R, PluginError>>,
) -> Result<R, PluginFailure> {
    match r {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(error)) => Err(PluginFailure::Reported {
            plugin: key.plugin_name().to_string(),
            error,
        }),
        Err(e) => Err(PluginFailure::Runtime(e)),
    }
}
