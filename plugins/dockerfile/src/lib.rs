//! The Dockerfile/Containerfile frontend, as a lade plugin.

wit_bindgen::generate!({ world: "frontend-plugin", path: "../../wit" });

use exports::lade::plugin::frontend::{Guest as Frontend, ParseOutput, ParseRequest};
use exports::lade::plugin::metadata::Guest as Metadata;
use lade::plugin::context::BuildContext;
use lade::plugin::types::{PluginError, PluginInfo, PluginKind};

struct Dockerfile;

impl Metadata for Dockerfile {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "dockerfile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The Dockerfile/Containerfile language".into(),
            kind: PluginKind::Frontend,
        }
    }
}

impl Frontend for Dockerfile {
    fn parse(_request: ParseRequest, _context: &BuildContext) -> Result<ParseOutput, PluginError> {
        Err(PluginError::Unsupported("parser not written yet".into()))
    }
}

export!(Dockerfile);
