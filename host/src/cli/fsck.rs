//! lade fsck: check the local store and, with --repair, remove what is damaged.
//!
//! Exit codes: 0 the store is clean (leftovers such as temp files of killed processes do not count), 1
//! problems were found (with --repair: some could not be repaired) or the check itself failed, 2 bad usage.

use super::{Global, OutputFormat};
use crate::store::Store;
use crate::store::fsck::{Finding, Report};
use anyhow::Result;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit codes: 0 the store is clean (leftovers of killed processes are listed but harmless), \
                  1 problems found (with --repair: some could not be repaired), 2 bad usage.\n\
                  Waits for running lade commands that write to the store (it takes the store's locks)."
)]
pub struct FsckArgs {
    /// Remove corrupt blobs, the images that need them or a missing blob, and leftovers; list what went
    #[arg(long)]
    pub repair: bool,
    /// Output format: text or json (on stdout)
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// Run the check; the exit code says whether the store is clean.
pub fn run(g: &Global, a: FsckArgs) -> Result<ExitCode> {
    let store = Store::open(&g.root())?;
    let report = store.fsck(a.repair)?;
    if a.format == OutputFormat::Json {
        crate::stdout::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(if report.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn line(f: &Finding) -> String {
    let mut s = format!("  {}: ", f.kind);
    if f.kind == "image" {
        return format!("{s}{} ({})", f.images.join(", "), f.message);
    }
    if let Some(p) = &f.path {
        s.push_str(p);
    } else if let Some(d) = &f.digest {
        s.push_str(d);
    }
    if !f.message.is_empty() {
        s.push_str(&format!(" ({})", f.message));
    }
    if !f.images.is_empty() {
        s.push_str(&format!("; needed by {}", f.images.join(", ")));
    }
    s
}

fn print_text(r: &Report) {
    let c = &r.checked;
    crate::stdout::outln!(
        "checked {} blobs ({} bytes), {} images, {} unpacked layers in {}",
        c.blobs,
        c.bytes,
        c.images,
        c.layer_dirs,
        r.root
    );
    if !r.problems.is_empty() {
        crate::stdout::outln!("{} problems:", r.problems.len());
        r.problems
            .iter()
            .for_each(|f| crate::stdout::outln!("{}", line(f)));
    }
    if !r.leftovers.is_empty() {
        crate::stdout::outln!(
            "{} leftovers (harmless; --repair removes them):",
            r.leftovers.len()
        );
        r.leftovers
            .iter()
            .for_each(|f| crate::stdout::outln!("{}", line(f)));
    }
    if r.unreferenced.blobs > 0 {
        crate::stdout::outln!(
            "{} blobs ({} bytes) no image uses: `lade prune` removes them",
            r.unreferenced.blobs,
            r.unreferenced.bytes
        );
    }
    if let Some(removed) = &r.removed {
        crate::stdout::outln!("removed {}:", removed.len());
        removed
            .iter()
            .for_each(|f| crate::stdout::outln!("{}", line(f)));
    }
    match (r.clean, r.removed.is_some()) {
        (true, false) if r.problems.is_empty() => crate::stdout::outln!("the store is clean"),
        (true, _) => crate::stdout::outln!("repaired: re-pull or rebuild the removed images"),
        (false, false) => crate::stdout::outln!(
            "the store has problems: `lade fsck --repair` removes the damaged blobs and the images that need them"
        ),
        (false, true) => {
            crate::stdout::outln!("some problems could not be repaired (see the warnings above)")
        }
    }
}
