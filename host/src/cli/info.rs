//! `lade info`: the host platform, binfmt_misc and its handlers, and the runner each common platform's RUN
//! steps would get here.

use super::{Global, OutputFormat};
use crate::dispatch::binfmt::{BinfmtInfo, DEFAULT_DIR};
use crate::dispatch::platform::Platform;
use crate::dispatch::runner::{Runner, choose_runner};
use anyhow::Result;
use serde_json::json;
use std::path::PathBuf;

/// The platforms `lade info` reports a runner for.
pub const COMMON_PLATFORMS: &[&str] = &[
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
];

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Read binfmt_misc handlers from this directory instead of /proc/sys/fs/binfmt_misc
    #[arg(long, value_name = "DIR", hide = true)]
    pub binfmt_dir: Option<PathBuf>,
    /// Choose runners as if no binfmt handler were registered
    #[arg(long)]
    pub ignore_binfmt: bool,
}

pub fn run(g: &Global, a: InfoArgs) -> Result<()> {
    let host = Platform::host();
    let binfmt = BinfmtInfo::read(a.binfmt_dir.as_deref().unwrap_or(DEFAULT_DIR.as_ref()))?;
    let path = std::env::var("PATH").unwrap_or_default();
    let runners: Vec<(String, std::result::Result<Runner, String>)> = COMMON_PLATFORMS
        .iter()
        .map(|p| {
            let target: Platform = p.parse().expect("a valid platform");
            let r = choose_runner(&host, &target, &binfmt, a.ignore_binfmt, &path)
                .map_err(|e| format!("{e:#}"));
            (p.to_string(), r)
        })
        .collect();
    match a.format {
        OutputFormat::Json => {
            let doc = json!({
                "host": { "platform": host.to_string(), "store": g.root() },
                "binfmt": binfmt,
                "runners": runners.iter().map(|(p, r)| match r {
                    Ok(r) => json!({"platform": p, "runner": r}),
                    Err(e) => json!({"platform": p, "error": e}),
                }).collect::<Vec<_>>(),
            });
            crate::stdout::outln!("{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => {
            crate::stdout::outln!("host platform: {host}");
            crate::stdout::outln!("store: {}", g.root().display());
            crate::stdout::outln!(
                "binfmt_misc: {} ({})",
                binfmt.dir.display(),
                match (binfmt.mounted, binfmt.enabled) {
                    (false, _) => "not mounted",
                    (true, false) => "mounted, disabled",
                    (true, true) => "mounted, enabled",
                }
            );
            for h in &binfmt.handlers {
                let f = h.flags;
                let flags: String = [
                    (f.preserve_argv0, 'P'),
                    (f.open_binary, 'O'),
                    (f.credentials, 'C'),
                    (f.fix_binary, 'F'),
                ]
                .iter()
                .filter_map(|(on, c)| on.then_some(*c))
                .collect();
                crate::stdout::outln!(
                    "  {:<22} {} {} flags={flags:<4} offset={} magic={} mask={}",
                    h.name,
                    if h.enabled { "enabled " } else { "disabled" },
                    h.interpreter.display(),
                    h.offset,
                    hex::encode(&h.magic),
                    hex::encode(&h.mask)
                );
            }
            crate::stdout::outln!("runners:");
            for (p, r) in &runners {
                let text = match r {
                    Ok(Runner::Native) => "native".to_string(),
                    Ok(Runner::Binfmt {
                        interpreter,
                        fix_binary,
                    }) => format!(
                        "binfmt handler {} ({})",
                        interpreter.display(),
                        if *fix_binary {
                            "F: kept open by the kernel"
                        } else {
                            "no F: made reachable inside the rootfs"
                        }
                    ),
                    Ok(Runner::Inject { qemu_path }) => {
                        format!("inject {} into the step", qemu_path.display())
                    }
                    Err(e) => format!("unavailable: {e}"),
                };
                crate::stdout::outln!("  {p:<14} {text}");
            }
        }
    }
    Ok(())
}
