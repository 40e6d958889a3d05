//! The frontend's plan is untrusted input: a frontend may be a stranger's (`--frontend FILE`, an installed
//! plugin), so what it returns is checked as strictly as a Containerfile, once, before anything runs. A
//! frontend can reach nothing that the Containerfile and the user's flags could not:
//!
//! * sizes: the plan as JSON at most [`MAX_PLAN_BYTES`], at most [`MAX_STAGES`] stages and [`MAX_STEPS`]
//!   steps, [`MAX_ITEMS`] entries in any list, paths and references at most [`MAX_PATH`] bytes (the bytes
//!   the host lifts out of the plugin are bounded before this, by the runtime's per-call transfer cap);
//! * structure: stage indices, the target and the required stages are in range and in dependency order, and
//!   every stage a stage reads is among those it depends on (no cycle, no wait on a stage that never runs);
//! * paths (the stages that run): context sources stay in the context after cleaning (an absolute one is
//!   relative to the context root, as in BuildKit); paths in a stage or image and absolute destinations
//!   stay under its root; mount targets have no `..`; nothing holds a NUL;
//! * RUN: bind mounts come from the context, a stage or an image, never the host; secrets are only those
//!   the user passed (`--secret`; a required one missing is refused here); ssh mounts are refused (lade
//!   has no `--ssh`); `--network=host` is refused when the user said `--network none`; `--security=insecure`
//!   is refused (lade has no flag to allow it);
//! * platforms parse and name a known OS and architecture.
//!
//! Each refusal names the location, the stage and step, and the offending field.

use super::run::Secrets;
use crate::context::confine;
use crate::dispatch::isolation::Network;
use crate::dispatch::platform::Platform;
use crate::plugin::frontend::{
    CopyStep, Instruction, Mount, MountType, NetworkMode, Plan, RunStep, SecurityMode, SourceRef,
    Stage, StageBase, Step,
};
use anyhow::{Result, bail};

/// The plan, serialized as JSON, may take at most this many bytes.
pub const MAX_PLAN_BYTES: usize = 16 << 20;
pub const MAX_STAGES: usize = 1_000;
/// Steps of all stages together.
pub const MAX_STEPS: usize = 10_000;
/// Entries of any one list (sources, mounts, build args, warnings, ...).
pub const MAX_ITEMS: usize = 10_000;
/// A path, a reference or a name (PATH_MAX).
pub const MAX_PATH: usize = 4_096;

/// What the user allowed on the command line.
pub struct Allowed<'a> {
    /// `--secret`: the ids a step may mount.
    pub secrets: &'a Secrets,
    /// `--network`: None is lade's default (the host's network, as buildah).
    pub network: Option<Network>,
}

/// Refuse `plan` unless it stays within what the user allowed.
pub fn check(plan: &Plan, allowed: &Allowed) -> Result<()> {
    let size = json_size(plan, MAX_PLAN_BYTES);
    if size > MAX_PLAN_BYTES {
        bail!(
            "the plan is larger than {} MiB (as JSON), more than any Containerfile makes",
            MAX_PLAN_BYTES >> 20
        );
    }
    structure(plan)?;
    for &i in &plan.required {
        let stage = &plan.stages[i as usize];
        stage_content(stage)?;
        for (n, step) in stage.steps.iter().enumerate() {
            step_content(step, allowed).map_err(|problem| {
                anyhow::anyhow!("{}: {problem}", place(stage, Some((n, step))))
            })?;
        }
    }
    Ok(())
}

/// The JSON size of `plan`, counted without building it; counting stops a little past `limit`.
fn json_size(plan: &Plan, limit: usize) -> usize {
    struct Count(usize, usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            if self.0 > self.1 {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0, limit);
    let _ = serde_json::to_writer(&mut c, plan);
    c.0
}

/// `Containerfile:12 (stage 2 "build", step 3: COPY)`, from what the plan says.
fn place(stage: &Stage, step: Option<(usize, &Step)>) -> String {
    let name = match &stage.name {
        Some(n) => format!("stage {} {:?}", stage.index + 1, shorten(n)),
        None => format!("stage {}", stage.index + 1),
    };
    match step {
        Some((n, s)) => format!(
            "{}:{} ({name}, step {}: {})",
            shorten(&s.location.file),
            s.location.line,
            n + 1,
            keyword(&s.instruction)
        ),
        None => format!(
            "{}:{} ({name})",
            shorten(&stage.location.file),
            stage.location.line
        ),
    }
}

/// At most 200 characters of what a frontend said, for a message, control characters escaped (the message
/// goes to the user's terminal).
fn shorten(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == 200 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn keyword(i: &Instruction) -> &'static str {
    match i {
        Instruction::Run(_) => "RUN",
        Instruction::Copy(_) => "COPY",
        Instruction::Add(_) => "ADD",
        Instruction::Env(_) => "ENV",
        Instruction::Label(_) => "LABEL",
        Instruction::Maintainer(_) => "MAINTAINER",
        Instruction::Cmd(_) => "CMD",
        Instruction::Entrypoint(_) => "ENTRYPOINT",
        Instruction::Shell(_) => "SHELL",
        Instruction::Expose(_) => "EXPOSE",
        Instruction::Volume(_) => "VOLUME",
        Instruction::User(_) => "USER",
        Instruction::Workdir(_) => "WORKDIR",
        Instruction::Arg(_) => "ARG",
        Instruction::Onbuild(_) => "ONBUILD",
        Instruction::Stopsignal(_) => "STOPSIGNAL",
        Instruction::Healthcheck(_) => "HEALTHCHECK",
    }
}

fn items(what: &str, n: usize) -> Result<(), String> {
    if n > MAX_ITEMS {
        return Err(format!("{what}: {n} entries, more than {MAX_ITEMS}"));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------ structure

/// Counts, indices and the dependency order, over every stage (the executor indexes by them).
fn structure(plan: &Plan) -> Result<()> {
    let n = plan.stages.len();
    if n == 0 {
        bail!("the plan has no stage");
    }
    if n > MAX_STAGES {
        bail!("the plan has {n} stages, more than {MAX_STAGES}");
    }
    let steps: usize = plan.stages.iter().map(|s| s.steps.len()).sum();
    if steps > MAX_STEPS {
        bail!("the plan has {steps} steps, more than {MAX_STEPS}");
    }
    for (what, len) in [
        ("directives", plan.directives.len()),
        ("global args", plan.global_args.len()),
        ("unused build args", plan.unused_build_args.len()),
        ("warnings", plan.warnings.len()),
    ] {
        items(what, len).map_err(anyhow::Error::msg)?;
    }
    for (i, stage) in plan.stages.iter().enumerate() {
        if stage.index as usize != i {
            bail!(
                "{}: the stage at position {} says it is stage {}",
                place(stage, None),
                i + 1,
                stage.index + 1
            );
        }
        stage_refs(stage, n).map_err(|p| anyhow::anyhow!("{}: {p}", place(stage, None)))?;
    }
    if plan.target as usize >= n {
        bail!(
            "the plan's target is stage {}, but it has {n} stages",
            plan.target + 1
        );
    }
    let mut position = vec![None; n];
    for (k, &r) in plan.required.iter().enumerate() {
        let Some(slot) = position.get_mut(r as usize) else {
            bail!("the plan requires stage {}, but it has {n} stages", r + 1);
        };
        if slot.is_some() {
            bail!("the plan requires stage {} twice", r + 1);
        }
        *slot = Some(k);
    }
    if position[plan.target as usize].is_none() {
        bail!(
            "the plan's target, stage {}, is not among the stages it requires",
            plan.target + 1
        );
    }
    for (k, &r) in plan.required.iter().enumerate() {
        let stage = &plan.stages[r as usize];
        for &d in &stage.depends_on {
            if position[d as usize].is_none_or(|p| p >= k) {
                bail!(
                    "{}: it needs stage {}, which the plan does not require before it",
                    place(stage, None),
                    d + 1
                );
            }
        }
    }
    Ok(())
}

/// A stage's `depends-on` is in range and not itself, and names every stage it reads.
fn stage_refs(stage: &Stage, n: usize) -> Result<(), String> {
    items("depends-on", stage.depends_on.len())?;
    for &d in &stage.depends_on {
        if d as usize >= n {
            return Err(format!("it depends on stage {}, but there are {n}", d + 1));
        }
        if d == stage.index {
            return Err("it depends on itself".into());
        }
    }
    let needs = |s: u32, what: &str| -> Result<(), String> {
        if stage.depends_on.contains(&s) {
            Ok(())
        } else {
            Err(format!(
                "{what} reads stage {}, which is not among the stages it depends on",
                s + 1
            ))
        }
    };
    if let StageBase::Stage(s) = stage.base {
        needs(s, "FROM")?;
    }
    for step in &stage.steps {
        match &step.instruction {
            Instruction::Copy(c) | Instruction::Add(c) => {
                if let Some(SourceRef::Stage(s)) = c.from {
                    needs(s, &format!("{} --from", keyword(&step.instruction)))?;
                }
            }
            Instruction::Run(r) => {
                for m in &r.mounts {
                    if let Some(SourceRef::Stage(s)) = m.from {
                        needs(s, "RUN --mount from=")?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------ content

fn stage_content(stage: &Stage) -> Result<()> {
    let at = || place(stage, None);
    items("steps", stage.steps.len()).map_err(|p| anyhow::anyhow!("{}: {p}", at()))?;
    if let StageBase::Image(r) = &stage.base {
        reference("FROM", r).map_err(|p| anyhow::anyhow!("{}: {p}", at()))?;
    }
    if let Some(p) = &stage.platform {
        known_platform(p).map_err(|e| anyhow::anyhow!("{}: FROM --platform: {e}", at()))?;
    }
    Ok(())
}

/// OSes and architectures as Go names them (GOOS, GOARCH), after lade's normalisation.
const OSES: &[&str] = &[
    "linux",
    "windows",
    "darwin",
    "freebsd",
    "netbsd",
    "openbsd",
    "dragonfly",
    "solaris",
    "illumos",
    "aix",
    "android",
    "ios",
    "plan9",
    "js",
    "wasip1",
];
const ARCHES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

fn known_platform(s: &str) -> Result<(), String> {
    if s.len() > 64 {
        return Err(format!("`{}` is not a platform", shorten(s)));
    }
    let p: Platform = s.parse().map_err(|e| format!("{e:#}"))?;
    if !OSES.contains(&p.os.as_str()) {
        return Err(format!("`{}`: unknown OS `{}`", shorten(s), shorten(&p.os)));
    }
    if !ARCHES.contains(&p.architecture.as_str()) {
        return Err(format!(
            "`{}`: unknown architecture `{}`",
            shorten(s),
            shorten(&p.architecture)
        ));
    }
    if let Some(v) = &p.variant
        && (v.len() > 16
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_'))
    {
        return Err(format!(
            "`{}`: `{}` is not a variant",
            shorten(s),
            shorten(v)
        ));
    }
    Ok(())
}

fn step_content(step: &Step, allowed: &Allowed) -> Result<(), String> {
    items("build args", step.build_args.len())?;
    match &step.instruction {
        Instruction::Run(r) => run_step(r, allowed),
        Instruction::Copy(c) | Instruction::Add(c) => {
            copy_step(c, matches!(step.instruction, Instruction::Add(_)))
        }
        Instruction::Workdir(w) => {
            in_root("WORKDIR", w)?;
            if w.is_empty() {
                return Err("WORKDIR is empty".into());
            }
            Ok(())
        }
        Instruction::Env(kv) | Instruction::Label(kv) => items("entries", kv.len()),
        Instruction::Expose(l) | Instruction::Volume(l) | Instruction::Shell(l) => {
            items("entries", l.len())
        }
        Instruction::Arg(a) => items("entries", a.len()),
        _ => Ok(()),
    }
}

/// A path, reference or name: bounded, without NUL.
fn bounded(what: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_PATH {
        return Err(format!(
            "{what} `{}` is longer than {MAX_PATH} bytes",
            shorten(s)
        ));
    }
    if s.contains('\0') {
        return Err(format!("{what} `{}` contains a NUL byte", shorten(s)));
    }
    Ok(())
}

fn reference(what: &str, r: &str) -> Result<(), String> {
    bounded(what, r)?;
    if r.is_empty() || r.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{what} `{}` is not an image reference",
            r.escape_debug()
        ));
    }
    Ok(())
}

/// A path inside a tree (the context, a stage, an image, a cache; absolute means from its root), as the
/// executor cleans it: it must not climb out.
fn inside(what: &str, p: &str, tree: &str) -> Result<(), String> {
    bounded(what, p)?;
    confine(p).map(drop).map_err(|_| {
        format!(
            "{what} `{}` is outside {tree} (only paths inside it can be used)",
            shorten(p)
        )
    })
}

/// A path the executor resolves inside an image's root, relative ones from the WORKDIR: an absolute one may
/// not climb above the root.
fn in_root(what: &str, p: &str) -> Result<(), String> {
    bounded(what, p)?;
    if p.starts_with('/') && confine(p).is_err() {
        return Err(format!(
            "{what} `{}` climbs above the filesystem root",
            shorten(p)
        ));
    }
    Ok(())
}

fn copy_step(c: &CopyStep, add: bool) -> Result<(), String> {
    let kw = if add { "ADD" } else { "COPY" };
    items("sources", c.sources.len() + c.inline_sources.len())?;
    items("--exclude", c.exclude.len())?;
    for src in &c.sources {
        let what = format!("{kw} source");
        match &c.from {
            None if add && remote(src) => url(&what, src)?,
            None => inside(&what, src, "the build context")?,
            Some(SourceRef::Stage(_)) => inside(&what, src, "the --from stage")?,
            Some(SourceRef::Image(_)) => inside(&what, src, "the --from image")?,
        }
    }
    if let Some(SourceRef::Image(r)) = &c.from {
        reference(&format!("{kw} --from"), r)?;
    }
    for f in &c.inline_sources {
        inside(&format!("{kw} heredoc name"), &f.path, "the step")?;
    }
    if c.destination.is_empty() {
        return Err(format!("{kw} has an empty destination"));
    }
    in_root(&format!("{kw} destination"), &c.destination)?;
    for (what, v) in [
        ("--chown", &c.chown),
        ("--chmod", &c.chmod),
        ("--checksum", &c.checksum),
    ] {
        if let Some(v) = v {
            bounded(&format!("{kw} {what}"), v)?;
        }
    }
    for e in &c.exclude {
        bounded(&format!("{kw} --exclude"), e)?;
    }
    Ok(())
}

/// Whether ADD fetches `s` instead of reading the context (URLs and git addresses, as the executor decides).
fn remote(s: &str) -> bool {
    ["http://", "https://", "git://", "git@", "ssh://"]
        .iter()
        .any(|p| s.starts_with(p))
}

fn url(what: &str, s: &str) -> Result<(), String> {
    bounded(what, s)?;
    let host = s
        .split_once("://")
        .map_or(s.trim_start_matches("git@"), |(_, rest)| rest);
    if s.chars().any(|c| c.is_control() || c == ' ') || host.starts_with('-') {
        return Err(format!(
            "{what} `{}` is not a URL lade fetches",
            s.escape_debug()
        ));
    }
    Ok(())
}

fn run_step(r: &RunStep, allowed: &Allowed) -> Result<(), String> {
    if r.security == SecurityMode::Insecure {
        return Err(
            "RUN --security=insecure is not supported by lade (steps always run with the default capability set)"
                .into(),
        );
    }
    if r.network == NetworkMode::Host && allowed.network == Some(Network::None) {
        return Err(
            "RUN --network=host, but the build was started with --network none: a step may not widen the \
             network the user chose (drop --network none to allow the host's network)"
                .into(),
        );
    }
    items("--mount", r.mounts.len())?;
    items("heredoc files", r.files.len())?;
    for f in &r.files {
        mount_target("RUN heredoc file", &f.path)?;
    }
    for m in &r.mounts {
        mount(m, allowed)?;
    }
    Ok(())
}

fn mount_kind(k: MountType) -> &'static str {
    match k {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    }
}

/// A path inside the step: no `..` at all (the isolation layer refuses it too).
fn mount_target(what: &str, t: &str) -> Result<(), String> {
    bounded(what, t)?;
    if t.is_empty() || t.split('/').any(|c| c == "..") {
        return Err(format!(
            "{what} `{}` must be a path in the step without `..`",
            shorten(t)
        ));
    }
    Ok(())
}

fn mount(m: &Mount, allowed: &Allowed) -> Result<(), String> {
    let what = format!("RUN --mount type={}", mount_kind(m.kind));
    if let Some(t) = &m.target {
        mount_target(&format!("{what} target"), t)?;
    } else if matches!(
        m.kind,
        MountType::Bind | MountType::Cache | MountType::Tmpfs
    ) {
        return Err(format!("{what} has no target"));
    }
    if let Some(SourceRef::Image(r)) = &m.from {
        reference(&format!("{what} from"), r)?;
    }
    if let Some(id) = &m.id {
        bounded(&format!("{what} id"), id)?;
    }
    match m.kind {
        MountType::Bind | MountType::Cache => {
            if let Some(s) = &m.source {
                let tree = match (&m.from, m.kind) {
                    (None, MountType::Bind) => "the build context",
                    (None, _) => "the cache",
                    (Some(SourceRef::Stage(_)), _) => "the from= stage",
                    (Some(SourceRef::Image(_)), _) => "the from= image",
                };
                inside(&format!("{what} source"), s, tree)?;
            }
            Ok(())
        }
        MountType::Tmpfs => Ok(()),
        MountType::Secret => secret(m, &what, allowed),
        MountType::Ssh => Err(format!(
            "{what}: not supported by lade (it has no --ssh flag, so no ssh agent or key is given to a build); \
             fetch with a secret mount (type=secret) instead"
        )),
    }
}

fn secret(m: &Mount, what: &str, allowed: &Allowed) -> Result<(), String> {
    // As the executor names it: id=, else the target's last component.
    let id = match (&m.id, &m.target) {
        (Some(id), _) => id.clone(),
        (None, Some(t)) => t.rsplit('/').next().unwrap_or_default().to_string(),
        (None, None) => return Err(format!("{what} needs id= or target=")),
    };
    if let Some(var) = &m.env
        && (var.is_empty() || var.contains(['=', '\0']) || var.len() > MAX_PATH)
    {
        return Err(format!(
            "{what} env `{}` is not a variable name",
            shorten(var)
        ));
    }
    let given = allowed.secrets.ids().any(|g| g == id);
    if !given && m.required {
        return Err(format!(
            "{what}: the secret `{}` is required but was not given: pass --secret id={},src=FILE (or env=VAR)",
            shorten(&id),
            shorten(&id)
        ));
    }
    // One the user did not pass and that is not required is simply not mounted, as in BuildKit and buildah.
    Ok(())
}

#[cfg(test)]
mod tests;
