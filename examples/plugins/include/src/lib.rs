//! A lade frontend for a Dockerfile dialect: Dockerfile plus `INCLUDE <path>` (moby/moby#735).
//!
//! `INCLUDE path` splices the file `path` of the build context in place of the instruction, recursively;
//! a cycle of includes is an error naming every `file:line` on it. The spliced text is then parsed and
//! planned by the Dockerfile frontend itself, used as a library (`lade-dockerfile`), and every location in
//! its plan and its errors is moved back to the file and line it came from.

pub mod splice;

use lade_dockerfile::model::{Diagnostic, Images, Output, Request};
use lade_plugin_sdk::Tree;

/// Splice the includes of `req.source`, reading them from `context`, then plan as Dockerfile.
pub fn parse(
    req: &Request,
    context: &impl Tree,
    images: &dyn Images,
) -> Result<Output, Vec<Diagnostic>> {
    let spliced = splice::splice(context, &req.source, &req.file_name).map_err(|d| vec![d])?;
    let whole = Request {
        source: spliced.text.clone(),
        ..req.clone()
    };
    let relocate = |d: &mut Diagnostic| {
        if let Some(l) = &mut d.location {
            *l = spliced.map(l);
        }
    };
    match lade_dockerfile::parse(&whole, images) {
        Ok(mut out) => {
            for r in &mut out.raw {
                r.location = spliced.map(&r.location);
            }
            for stage in &mut out.plan.stages {
                stage.location = spliced.map(&stage.location);
                for step in &mut stage.steps {
                    step.location = spliced.map(&step.location);
                }
            }
            out.plan.warnings.iter_mut().for_each(relocate);
            Ok(out)
        }
        Err(mut diags) => {
            diags.iter_mut().for_each(relocate);
            Err(diags)
        }
    }
}

/// The component: metadata, and `parse` over the host's build context and image lookups.
#[cfg(target_arch = "wasm32")]
mod component {
    use lade_dockerfile::bindings::{self, HostImages};
    use lade_plugin_sdk::frontend::{
        self, BuildContext, Guest, Metadata, ParseOutput, ParseRequest, PluginError, PluginInfo,
    };

    struct Include;

    impl Metadata for Include {
        fn info() -> PluginInfo {
            frontend::info(
                "include",
                env!("CARGO_PKG_VERSION"),
                "Dockerfile plus INCLUDE <path>, which splices a file of the build context",
            )
        }
    }

    impl Guest for Include {
        fn parse(
            request: ParseRequest,
            context: &BuildContext,
        ) -> Result<ParseOutput, PluginError> {
            super::parse(&bindings::request(request), context, &HostImages)
                .map(bindings::output)
                .map_err(bindings::errors)
        }
    }

    lade_plugin_sdk::export_frontend!(Include);
}

#[cfg(test)]
mod tests;
