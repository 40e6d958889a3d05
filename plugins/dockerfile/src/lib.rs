//! The Dockerfile/Containerfile frontend, as a lade plugin.
//!
//! Three rooms, as BuildKit has them: [`parser`] (directives, continuations, heredocs, flags, positions),
//! [`instructions`] (what each instruction accepts) and [`shell`] (word expansion); [`plan`] ties them into
//! the typed build plan. All of it is plain Rust that tests natively; `bindings` converts to and from the
//! contract's types (feature `wit`) and exports the component (feature `component`, the default).

pub mod diag;
pub mod instructions;
pub mod model;
pub mod parser;
pub mod plan;
pub mod shell;

#[cfg(feature = "wit")]
pub mod bindings;

use model::{Diagnostic, Images, Output, Request};

/// Parse and plan a build definition.
pub fn parse(req: &Request, images: &dyn Images) -> Result<Output, Vec<Diagnostic>> {
    let parsed = parser::parse(&req.source, &req.file_name);
    let plan = plan::plan(req, &parsed, images)?;
    Ok(Output {
        raw: parsed.instructions,
        plan,
    })
}

#[cfg(test)]
mod tests;
