//! The inputs of a RUN's cache key beyond the instruction text: build args, the config the command sees,
//! heredoc files and what bind mounts show. Secrets, tmpfs and cache mounts never enter it.

use super::RunRequest;
use crate::build::ImageState;
use crate::build::config::{env, shell, workdir_as_set};
use crate::build::statcache::StatCache;
use crate::context::{BuildContext, FileKind, confine};
use crate::plugin::frontend::{MountType, SourceRef};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// What a RUN's cache key needs beyond the instruction text and the parent chain: the build args in scope
/// (proxy args excluded), the config the command sees (Env, User, WorkingDir, Shell), heredoc files, and the
/// content of every bind mount (context files by content digest, stages and images by their layer
/// diff_ids). Secrets, tmpfs and cache mounts never enter it. Sorted by name.
pub fn key_inputs(req: &RunRequest, statcache: &StatCache) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for kv in req.build_args {
        if !crate::build::config::is_proxy_arg(&kv.key) {
            out.push((format!("arg {}", kv.key), kv.value.clone()));
        }
    }
    let cfg = &req.image.config;
    out.push(("env".into(), env(cfg).join("\n")));
    out.push(("user".into(), crate::build::config::user(cfg)));
    out.push(("workdir".into(), workdir_as_set(cfg).into()));
    out.push(("shell".into(), shell(&req.image.config).join(" ")));
    for f in &req.step.files {
        out.push((
            format!("file {}", f.path),
            format!("{:o} {}", f.mode, sha256_hex(f.content.as_bytes())),
        ));
    }
    for m in &req.step.mounts {
        if m.kind != MountType::Bind {
            continue;
        }
        let target = m.target.as_deref().unwrap_or("");
        let source = m.source.as_deref().unwrap_or("");
        let value = match &m.from {
            None => format!(
                "context {}: {}",
                source,
                context_digest(req.context, source, statcache).with_context(|| {
                    super::super::AtStep(format!("{}: RUN --mount source={source}", req.location))
                })?
            ),
            Some(SourceRef::Stage(n)) => {
                let st = (req.stage)(*n)?;
                format!("stage {n} {source}: {}", diff_ids(&st))
            }
            Some(SourceRef::Image(r)) => {
                let st = (req.image_from)(r)?;
                format!("image {r} {source}: {}", diff_ids(&st))
            }
        };
        out.push((format!("bind {target}"), value));
    }
    out.sort();
    Ok(out)
}

fn diff_ids(st: &ImageState) -> String {
    st.layers
        .iter()
        .map(|l| l.diff_id.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn sha256_hex(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A digest over a context path and everything under it: relative paths, kinds, modes, link targets and
/// file contents (through the stat cache, so unchanged files are not read).
fn context_digest(ctx: &BuildContext, source: &str, statcache: &StatCache) -> Result<String> {
    let rel = confine(source)?;
    let top = ctx
        .stat(if rel.is_empty() { "." } else { &rel })?
        .with_context(|| {
            format!("{source:?} is not in the build context (or is excluded by the ignore file)")
        })?;
    let mut h = Sha256::new();
    let mut add = |path: &str, kind: FileKind, mode: u32, extra: &str| {
        for part in [
            path,
            &format!("{kind:?}"),
            &format!("{:o}", mode & 0o7777),
            extra,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    };
    let entry = |path: &str, kind: FileKind| -> Result<String> {
        Ok(match kind {
            FileKind::File => statcache.digest(ctx, path)?,
            FileKind::Symlink => link_target(ctx, path)?.display().to_string(),
            _ => String::new(),
        })
    };
    if top.kind == FileKind::Directory {
        add("", top.kind, top.mode, "");
        for e in ctx.walk(&rel)? {
            let sub = e.path.strip_prefix(&rel).unwrap_or(&e.path);
            add(
                sub.trim_start_matches('/'),
                e.stat.kind,
                e.stat.mode,
                &entry(&e.path, e.stat.kind)?,
            );
        }
    } else {
        add("", top.kind, top.mode, &entry(&rel, top.kind)?);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// A context symlink's target as written (absolute ones included; it is never followed here).
pub(super) fn link_target(ctx: &BuildContext, rel: &str) -> Result<PathBuf> {
    let t = rustix::fs::readlinkat(ctx.dir(), rel, Vec::new())
        .with_context(|| format!("reading link {rel} in the build context"))?;
    let bytes = t.into_bytes();
    Ok(PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes),
    ))
}
