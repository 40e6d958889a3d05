//! Bindings for contract `lade:plugin@0.1.0` (`wit/v0.1.0`), frozen: a published contract never changes.
//! The engine works on the newest types ([`super::v0_2_0`]); this module adapts a 0.1.0 plugin up to them:
//! requests go down and answers come up through [`adapt`] where the shapes are the same, by hand where
//! 0.2.0 added something.

/// The version string these bindings were generated from.
pub const VERSION: &str = "0.1.0";

/// The frontend world; it also generates the shared `types` interface the other worlds reuse.
pub mod frontend_world {
    wasmtime::component::bindgen!({
        world: "frontend-plugin",
        path: "../wit/v0.1.0",
        imports: { default: trappable },
        with: {
            "lade:plugin/context.build-context": crate::plugin::context::ContextHandle,
        },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

/// The scanner world.
pub mod scanner_world {
    wasmtime::component::bindgen!({
        world: "scanner-plugin",
        path: "../wit/v0.1.0",
        imports: { default: trappable },
        with: {
            "lade:plugin/types": super::frontend_world::lade::plugin::types,
            "lade:plugin/image-files.file-stream": crate::plugin::image_files::FileStreamHandle,
        },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

/// The signer world.
pub mod signer_world {
    wasmtime::component::bindgen!({
        world: "signer-plugin",
        path: "../wit/v0.1.0",
        imports: { default: trappable },
        with: {
            "lade:plugin/types": super::frontend_world::lade::plugin::types,
        },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub use frontend_world::lade::plugin::types;

use super::context::ContextHandle;
use super::image_files::FileStreamHandle;
use super::imports::Kind;
use super::state::State;
use super::v0_2_0 as latest;
use latest::frontend_world::exports::lade::plugin::frontend::{ParseOutput, ParseRequest};
use latest::scanner_world::exports::lade::plugin::scanner as new_scanner;
use latest::signer_world::exports::lade::plugin::signer as new_signer;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, Resource};
use wasmtime::{Engine, Store};

impl types::Host for State {}

/// Convert between two versions' bindings of a type whose shape did not change (same fields, same cases),
/// through serde. A failure is a bug in lade (a unit test round-trips every adapted type), never the plugin's.
pub(crate) fn adapt<A: Serialize, B: DeserializeOwned>(
    what: &str,
    value: &A,
) -> wasmtime::Result<B> {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map_err(|e| {
            wasmtime::Error::msg(format!(
                "adapting {what} between lade:plugin@0.1.0 and the newest contract: {e} (a bug in lade)"
            ))
        })
}

/// The plugin's own error, adapted up.
fn up_error<R>(
    r: Result<R, types::PluginError>,
) -> wasmtime::Result<Result<R, latest::types::PluginError>> {
    Ok(match r {
        Ok(v) => Ok(v),
        Err(e) => Err(adapt("a plugin error", &e)?),
    })
}

/// One linker per world: the allowed WASI plus the world's own imports. Built once per runtime.
pub(crate) struct Linkers {
    frontend: Linker<State>,
    scanner: Linker<State>,
    signer: Linker<State>,
}

impl Linkers {
    pub fn new(engine: &Engine) -> anyhow::Result<Linkers> {
        let mut frontend = super::wasi::linker(engine)?;
        frontend_world::FrontendPlugin::add_to_linker::<State, HasSelf<State>>(
            &mut frontend,
            |s| s,
        )?;
        let mut scanner = super::wasi::linker(engine)?;
        scanner_world::ScannerPlugin::add_to_linker::<State, HasSelf<State>>(&mut scanner, |s| s)?;
        let mut signer = super::wasi::linker(engine)?;
        signer_world::SignerPlugin::add_to_linker::<State, HasSelf<State>>(&mut signer, |s| s)?;
        Ok(Linkers {
            frontend,
            scanner,
            signer,
        })
    }
}

/// A component linked and type-checked for its world, ready to instantiate into a fresh store.
pub(crate) enum Pre {
    Frontend(frontend_world::FrontendPluginPre<State>),
    Scanner(scanner_world::ScannerPluginPre<State>),
    Signer(signer_world::SignerPluginPre<State>),
}

impl Pre {
    pub fn new(linkers: &Linkers, component: &Component, kind: Kind) -> wasmtime::Result<Pre> {
        Ok(match kind {
            Kind::Frontend => Pre::Frontend(frontend_world::FrontendPluginPre::new(
                linkers.frontend.instantiate_pre(component)?,
            )?),
            Kind::Scanner => Pre::Scanner(scanner_world::ScannerPluginPre::new(
                linkers.scanner.instantiate_pre(component)?,
            )?),
            Kind::Signer => Pre::Signer(signer_world::SignerPluginPre::new(
                linkers.signer.instantiate_pre(component)?,
            )?),
        })
    }

    /// The metadata, adapted up: a 0.1.0 plugin declares no needs.
    pub fn info(&self, store: &mut Store<State>) -> wasmtime::Result<latest::types::PluginInfo> {
        let info = match self {
            Pre::Frontend(p) => p
                .instantiate(&mut *store)?
                .lade_plugin_metadata()
                .call_info(store)?,
            Pre::Scanner(p) => p
                .instantiate(&mut *store)?
                .lade_plugin_metadata()
                .call_info(store)?,
            Pre::Signer(p) => p
                .instantiate(&mut *store)?
                .lade_plugin_metadata()
                .call_info(store)?,
        };
        Ok(latest::types::PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            kind: adapt("a plugin kind", &info.kind)?,
            needs: latest::types::Needs {
                data_dirs: Vec::new(),
                documents: Vec::new(),
            },
        })
    }

    fn frontend(&self) -> &frontend_world::FrontendPluginPre<State> {
        match self {
            Pre::Frontend(p) => p,
            _ => unreachable!("the handle checked the kind"),
        }
    }

    fn scanner(&self) -> &scanner_world::ScannerPluginPre<State> {
        match self {
            Pre::Scanner(p) => p,
            _ => unreachable!("the handle checked the kind"),
        }
    }

    fn signer(&self) -> &signer_world::SignerPluginPre<State> {
        match self {
            Pre::Signer(p) => p,
            _ => unreachable!("the handle checked the kind"),
        }
    }

    /// The frontend contract did not change shape in 0.2.0: request and plan pass through [`adapt`].
    pub fn parse(
        &self,
        store: &mut Store<State>,
        request: &ParseRequest,
        context: ContextHandle,
    ) -> wasmtime::Result<Result<ParseOutput, latest::types::PluginError>> {
        let request: frontend_world::exports::lade::plugin::frontend::ParseRequest =
            adapt("a parse request", request)?;
        let plugin = self.frontend().instantiate(&mut *store)?;
        let handle: Resource<ContextHandle> = store.data_mut().table.push(context)?;
        let borrowed = Resource::new_borrow(handle.rep());
        let out = plugin
            .lade_plugin_frontend()
            .call_parse(&mut *store, &request, borrowed)?;
        store.data_mut().table.delete(handle)?;
        match out {
            Ok(output) => Ok(Ok(adapt("a parse output", &output)?)),
            Err(e) => up_error(Err(e)),
        }
    }

    /// 0.1.0 scanners name globs only: the final filesystem, no executables by mode.
    pub fn wants(&self, store: &mut Store<State>) -> wasmtime::Result<new_scanner::FileSelection> {
        let globs = self
            .scanner()
            .instantiate(&mut *store)?
            .lade_plugin_scanner()
            .call_wants(store)?;
        Ok(new_scanner::FileSelection {
            globs,
            executables: false,
            all_layers: false,
        })
    }

    /// A 0.1.0 scanner scans an image, never input documents alone; its findings carry no layer.
    pub fn scan(
        &self,
        store: &mut Store<State>,
        request: &new_scanner::ScanRequest,
        files: FileStreamHandle,
    ) -> wasmtime::Result<Result<new_scanner::ScanResult, latest::types::PluginError>> {
        use scanner_world::exports::lade::plugin::scanner as old;
        let Some(image) = &request.image else {
            return Ok(Err(latest::types::PluginError::Unsupported(
                "this scanner was built against lade:plugin@0.1.0 and scans images only, not documents".into(),
            )));
        };
        let image = old::ImageInfo {
            reference: image.reference.clone(),
            digest: image.digest.clone(),
            config: image.config.clone(),
            platform: adapt("a platform", &image.platform)?,
        };
        let options: Vec<types::KeyValue> = adapt("scan options", &request.options)?;
        let plugin = self.scanner().instantiate(&mut *store)?;
        let handle: Resource<FileStreamHandle> = store.data_mut().table.push(files)?;
        let borrowed = Resource::new_borrow(handle.rep());
        let out =
            plugin
                .lade_plugin_scanner()
                .call_scan(&mut *store, &image, &options, borrowed)?;
        store.data_mut().table.delete(handle)?;
        let result = match out {
            Ok(r) => r,
            Err(e) => return up_error(Err(e)),
        };
        let findings = result
            .findings
            .into_iter()
            .map(|f| {
                Ok(new_scanner::Finding {
                    id: f.id,
                    severity: adapt("a severity", &f.severity)?,
                    package: f.package,
                    version: f.version,
                    fixed_version: f.fixed_version,
                    location: f.location,
                    layer: None,
                    message: f.message,
                    details: Vec::new(),
                })
            })
            .collect::<wasmtime::Result<Vec<_>>>()?;
        Ok(Ok(new_scanner::ScanResult {
            documents: adapt("scan documents", &result.documents)?,
            findings,
        }))
    }

    /// A 0.1.0 signature is untyped: it comes up as an artifact signature under its own media type.
    pub fn sign(
        &self,
        store: &mut Store<State>,
        payload: &[u8],
        key: &new_signer::KeyMaterial,
    ) -> wasmtime::Result<Result<new_signer::Signed, latest::types::PluginError>> {
        let key: signer_world::exports::lade::plugin::signer::KeyMaterial =
            adapt("key material", key)?;
        let out = self
            .signer()
            .instantiate(&mut *store)?
            .lade_plugin_signer()
            .call_sign(store, payload, &key)?;
        match out {
            Ok(sig) => Ok(Ok(new_signer::Signed::Artifact(adapt(
                "a signature",
                &sig,
            )?))),
            Err(e) => up_error(Err(e)),
        }
    }

    /// Only artifact signatures (what a 0.1.0 signer makes) with a detached payload can be checked.
    pub fn verify(
        &self,
        store: &mut Store<State>,
        payload: Option<&[u8]>,
        signature: &new_signer::Signed,
        key: &new_signer::KeyMaterial,
    ) -> wasmtime::Result<Result<new_signer::Verification, latest::types::PluginError>> {
        let (Some(payload), new_signer::Signed::Artifact(sig)) = (payload, signature) else {
            return Ok(Err(latest::types::PluginError::Unsupported(
                "this signer was built against lade:plugin@0.1.0: it checks its own signatures over a \
                 detached payload, not typed formats"
                    .into(),
            )));
        };
        let sig: signer_world::exports::lade::plugin::signer::Signature =
            adapt("a signature", sig)?;
        let key: signer_world::exports::lade::plugin::signer::KeyMaterial =
            adapt("key material", key)?;
        let out = self
            .signer()
            .instantiate(&mut *store)?
            .lade_plugin_signer()
            .call_verify(store, payload, &sig, &key)?;
        match out {
            Ok(v) => Ok(Ok(new_signer::Verification {
                key_id: v.signer,
                payload: payload.to_vec(),
                details: adapt("verification details", &v.details)?,
            })),
            Err(e) => up_error(Err(e)),
        }
    }
}

/// The stable id lade gives a key opened through a 0.1.0 signer, which has no key ids of its own: the
/// sha256 of the key file's bytes.
pub(crate) fn material_id(material: &new_signer::KeyMaterial, signing: bool) -> String {
    let bytes = if signing {
        material.private_key.as_deref()
    } else {
        material.public_key.as_deref()
    };
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(bytes.unwrap_or_default()))
    )
}
