//! Bindings for contract `lade:plugin@0.2.0` (`wit/v0.2.0`), the newest: the engine works on these types,
//! and older versions are adapted up to them. Frozen once published, like every version.

/// The version string these bindings were generated from.
pub const VERSION: &str = "0.2.0";

/// The frontend world; it also generates the shared `types` interface the other worlds reuse.
pub mod frontend_world {
    wasmtime::component::bindgen!({
        world: "frontend-plugin",
        path: "../wit/v0.2.0",
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
        path: "../wit/v0.2.0",
        imports: { default: trappable },
        with: {
            "lade:plugin/types": super::frontend_world::lade::plugin::types,
            "lade:plugin/image-files.file-stream": crate::plugin::image_files::FileStreamHandle,
            "lade:plugin/data-dirs.data-dir": crate::plugin::data_dirs::DataDirHandle,
        },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

/// The signer world.
pub mod signer_world {
    wasmtime::component::bindgen!({
        world: "signer-plugin",
        path: "../wit/v0.2.0",
        imports: { default: trappable },
        with: {
            "lade:plugin/types": super::frontend_world::lade::plugin::types,
        },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub use frontend_world::lade::plugin::types;

use super::call::Session;
use super::context::ContextHandle;
use super::image_files::FileStreamHandle;
use super::imports::Kind;
use super::state::State;
use frontend_world::exports::lade::plugin::frontend::{ParseOutput, ParseRequest};
use scanner_world::exports::lade::plugin::scanner::{FileSelection, ScanRequest, ScanResult};
use signer_world::exports::lade::plugin::signer::{
    KeyMaterial, KeyPair, SignRequest, SignatureFormat, Signed, Verification,
};
use types::{KeyValue, PluginError, PluginInfo};
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceAny};
use wasmtime::{Engine, Store};

impl types::Host for State {}

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

/// A key a signer opened in its session: a handle into the plugin's own instance.
pub(crate) struct OpenKey {
    pub session: Session,
    handle: ResourceAny,
    plugin: signer_world::SignerPlugin,
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

    pub fn info(&self, store: &mut Store<State>) -> wasmtime::Result<PluginInfo> {
        match self {
            Pre::Frontend(p) => p
                .instantiate(&mut *store)?
                .lade_plugin_metadata()
                .call_info(store),
            Pre::Scanner(p) => p
                .instantiate(&mut *store)?
                .lade_plugin_metadata()
                .call_info(store),
            Pre::Signer(p) => p
                .instantiate(&mut *store)?
                .lade_plugin_metadata()
                .call_info(store),
        }
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

    pub fn parse(
        &self,
        store: &mut Store<State>,
        request: &ParseRequest,
        context: ContextHandle,
    ) -> wasmtime::Result<Result<ParseOutput, PluginError>> {
        let plugin = self.frontend().instantiate(&mut *store)?;
        let handle: Resource<ContextHandle> = store.data_mut().table.push(context)?;
        let borrowed = Resource::new_borrow(handle.rep());
        let out = plugin
            .lade_plugin_frontend()
            .call_parse(&mut *store, request, borrowed);
        store.data_mut().table.delete(handle)?;
        out
    }

    pub fn wants(&self, store: &mut Store<State>) -> wasmtime::Result<FileSelection> {
        self.scanner()
            .instantiate(&mut *store)?
            .lade_plugin_scanner()
            .call_wants(store)
    }

    pub fn scan(
        &self,
        store: &mut Store<State>,
        request: &ScanRequest,
        files: FileStreamHandle,
    ) -> wasmtime::Result<Result<ScanResult, PluginError>> {
        let plugin = self.scanner().instantiate(&mut *store)?;
        let handle: Resource<FileStreamHandle> = store.data_mut().table.push(files)?;
        let borrowed = Resource::new_borrow(handle.rep());
        let out = plugin
            .lade_plugin_scanner()
            .call_scan(&mut *store, request, borrowed);
        store.data_mut().table.delete(handle)?;
        out
    }

    pub fn formats(&self, store: &mut Store<State>) -> wasmtime::Result<Vec<SignatureFormat>> {
        self.signer()
            .instantiate(&mut *store)?
            .lade_plugin_signer()
            .call_formats(store)
    }

    /// A new key pair, the private key encrypted under `passphrase`.
    pub fn generate_key_pair(
        &self,
        store: &mut Store<State>,
        passphrase: &str,
        options: &[KeyValue],
    ) -> wasmtime::Result<Result<KeyPair, PluginError>> {
        self.signer()
            .instantiate(&mut *store)?
            .lade_plugin_signer()
            .call_generate_key_pair(store, passphrase, options)
    }

    /// Instantiate the signer in `store` and open a signing (`signing` true) or verifying key in it.
    pub fn open_key(
        &self,
        store: &mut Store<State>,
        material: &KeyMaterial,
        signing: bool,
    ) -> wasmtime::Result<Result<(signer_world::SignerPlugin, ResourceAny), PluginError>> {
        let plugin = self.signer().instantiate(&mut *store)?;
        let signer = plugin.lade_plugin_signer();
        let opened = if signing {
            signer.signing_key().call_open(&mut *store, material)?
        } else {
            signer.verifying_key().call_open(&mut *store, material)?
        };
        Ok(opened.map(|handle| (plugin, handle)))
    }
}

impl OpenKey {
    pub fn new(session: Session, plugin: signer_world::SignerPlugin, handle: ResourceAny) -> Self {
        OpenKey {
            session,
            handle,
            plugin,
        }
    }

    pub fn plugin_name(&self) -> &str {
        self.session.plugin()
    }

    pub fn key_id(&self) -> anyhow::Result<String> {
        self.session.call(|s| {
            self.plugin
                .lade_plugin_signer()
                .signing_key()
                .call_key_id(s, self.handle)
        })
    }

    pub fn public_key(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.session.call(|s| {
            self.plugin
                .lade_plugin_signer()
                .signing_key()
                .call_public_key(s, self.handle)
        })
    }

    pub fn sign(&self, request: &SignRequest) -> anyhow::Result<Result<Signed, PluginError>> {
        self.session.call(|s| {
            self.plugin
                .lade_plugin_signer()
                .signing_key()
                .call_sign(s, self.handle, request)
        })
    }

    pub fn key_ids(&self) -> anyhow::Result<Vec<String>> {
        self.session.call(|s| {
            self.plugin
                .lade_plugin_signer()
                .verifying_key()
                .call_key_ids(s, self.handle)
        })
    }

    pub fn verify(
        &self,
        payload: Option<&[u8]>,
        signature: &Signed,
    ) -> anyhow::Result<Result<Verification, PluginError>> {
        self.session.call(|s| {
            self.plugin
                .lade_plugin_signer()
                .verifying_key()
                .call_verify(s, self.handle, payload, signature)
        })
    }
}
