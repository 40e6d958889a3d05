//! RUN: a plan's [`RunStep`] turned into an isolated step in a fresh [`Snapshot`] of the image.
//!
//! * [`Secrets::parse`] (`secrets`): `--secret id=ID,src=PATH` / `id=ID,env=VAR` as buildah takes them.
//! * [`key_inputs`] (`key`): what a RUN's cache key needs beyond the instruction text (bind-mount contents,
//!   build args).
//! * `mounts`: each `--mount` kind turned into an isolation mount.
//! * [`run`]: argv through SHELL, the environment (image Env, then build args it does not define), user and
//!   workdir from the config, every `--mount` kind, heredoc files; a failing step is an error that names the
//!   Containerfile location, the exit status and the stderr tail.
//!
//! Secrets, tmpfs, cache and bind mountpoints are never committed: the isolation layer removes the
//! mountpoints it created, and secret values only ever live in a private dir in RAM (/dev/shm, when the host
//! has it) or the step's environment.

mod key;
mod mounts;
mod secrets;

pub use key::key_inputs;
pub use secrets::{SecretSource, Secrets};

use crate::build::{AtStep, ImageState};
use crate::context::BuildContext;
use crate::dispatch::isolation::{
    Emulator, Isolation, Network, PrivateDir, RootfsMode, Security, Snapshot, StepMount,
    StepOutcome, StepSpec, run_step,
};
use crate::dispatch::platform::Platform;
use crate::plugin::frontend::{Command, KeyValue, NetworkMode, RunStep, SecurityMode};
use anyhow::{Context, Result};
use mounts::{add_mount, mount_type_name, write_private};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The PATH a step gets when neither the image nor a build arg sets one (as buildah and Docker).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ------------------------------------------------------------------------------------------------ request

/// Everything [`run`] and [`key_inputs`] need for one RUN step.
pub struct RunRequest<'a> {
    pub step: &'a RunStep,
    /// The image the step runs on (its layers and config).
    pub image: &'a ImageState,
    /// Build args in scope at this step (proxy args included: they reach the environment only).
    pub build_args: &'a [KeyValue],
    pub context: &'a BuildContext,
    /// Another stage's image, for `--mount from=<stage>`.
    pub stage: &'a dyn Fn(u32) -> Result<ImageState>,
    /// An image by reference, for `--mount from=<image>`.
    pub image_from: &'a dyn Fn(&str) -> Result<ImageState>,
    pub secrets: &'a Secrets,
    /// Where step snapshots go: the same filesystem as the layer cache.
    pub steps_dir: &'a Path,
    /// Where `type=cache` mounts persist across builds.
    pub cache_mounts_dir: &'a Path,
    /// `--network` of the build; a `RUN --network` of the step wins over it.
    pub network: Option<Network>,
    pub isolation: Isolation,
    pub security: &'a Security,
    pub emulator: Option<Emulator>,
    /// `Containerfile:12`, for messages.
    pub location: &'a str,
    /// Cache mounts filled from, and reported to, the build's shared cache (`--cache-from`/`--cache-to`).
    pub mount_cache: Option<&'a dyn CacheMountHooks>,
}

/// What a `type=cache` mount asks of the build's shared cache.
pub trait CacheMountHooks: Sync {
    /// Fill `dest`, a new (empty) cache dir for `id`, from an imported cache; Ok(false) when none has it.
    fn restore(&self, id: &str, dest: &Path) -> Result<bool>;
    /// A step mounted the cache `id`, kept at `dir`.
    fn used(&self, id: &str, dir: &Path);
}

// ------------------------------------------------------------------------------------------------ argv, env

/// The step's argv: SHELL + the script for the shell form, the list itself for the exec form.
pub fn argv(command: &Command, config: &crate::oci::ImageConfig) -> Vec<String> {
    match command {
        Command::Shell(script) => {
            let mut a = crate::build::config::shell(config);
            a.push(script.clone());
            a
        }
        Command::Exec(list) => list.clone(),
    }
}

/// The step's environment: the image's Env, then each build arg in scope the Env does not define (the
/// image's ENV wins, as in Docker), then PATH when neither set it.
pub fn environment(config: &crate::oci::ImageConfig, build_args: &[KeyValue]) -> Vec<String> {
    let mut env = crate::build::config::env(config);
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut defined: std::collections::HashSet<String> = env.iter().map(|e| key(e)).collect();
    for kv in build_args {
        if defined.insert(kv.key.clone()) {
            env.push(format!("{}={}", kv.key, kv.value));
        }
    }
    if !defined.contains("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env
}

// ------------------------------------------------------------------------------------------------ run

/// What must stay alive while the step runs: nested snapshots, cache locks, the private temp dir (dropped in
/// that order).
struct Held {
    snapshots: Vec<Snapshot>,
    locks: Vec<File>,
    tmp: PrivateDir,
    /// Secret values and heredoc files, in RAM when the host has /dev/shm.
    private: PrivateDir,
    counter: usize,
}

impl Held {
    fn next_path(&mut self, prefix: &str) -> PathBuf {
        self.counter += 1;
        self.tmp.path().join(format!("{prefix}-{}", self.counter))
    }

    fn next_private(&mut self, prefix: &str) -> PathBuf {
        self.counter += 1;
        self.private
            .path()
            .join(format!("{prefix}-{}", self.counter))
    }
}

/// Run the step on a fresh snapshot of `req.image`. The returned snapshot holds the step's changes,
/// uncommitted. A step that fails, or cannot be set up, is an error naming `req.location`.
pub fn run(req: &RunRequest) -> Result<Snapshot> {
    let loc = req.location;
    std::fs::create_dir_all(req.steps_dir)
        .with_context(|| format!("creating {}", req.steps_dir.display()))?;
    let snap = Snapshot::prepare(req.steps_dir, &req.image.lowers(), RootfsMode::Auto)
        .with_context(|| AtStep(format!("{loc}: preparing the RUN step's root filesystem")))?;
    let outcome = run_in(req, &snap, false)?;
    if !outcome.success() {
        return Err(AtStep(failure_message(req, &outcome)).into());
    }
    Ok(snap)
}

/// Run the step in `snap` (a build step's fresh snapshot, or a working container's rootfs for `lade run`,
/// which `attach`es the command to lade's stdin and stdout). Err when it could not be set up; a command that
/// fails is an `Ok` outcome.
pub fn run_in(req: &RunRequest, snap: &Snapshot, attach: bool) -> Result<StepOutcome> {
    let loc = req.location;
    let step = req.step;
    if step.security == SecurityMode::Insecure {
        return Err(AtStep(format!(
            "{loc}: RUN --security=insecure is not supported by lade (steps always run with the default capability set)"
        ))
        .into());
    }
    let config = &req.image.config;
    let mut spec = StepSpec::new(argv(&step.command, config));
    if spec.argv.is_empty() {
        return Err(AtStep(format!("{loc}: RUN with an empty command")).into());
    }
    spec.attach = attach;
    spec.env = environment(config, req.build_args);
    spec.user = crate::build::config::user(config);
    spec.workdir = crate::build::config::workdir_as_set(config).to_string();
    spec.network = match step.network {
        NetworkMode::None => Network::None,
        NetworkMode::Host => Network::Host,
        NetworkMode::Default => req.network.unwrap_or_default(),
    };
    spec.isolation = req.isolation;
    spec.security = req.security.clone();
    spec.emulator = req.emulator.clone();
    // qemu-user as pid 1 cannot die of a signal, so a crashing emulated program would hang: give it an init.
    spec.init = emulated(req);
    std::fs::create_dir_all(req.steps_dir)
        .with_context(|| format!("creating {}", req.steps_dir.display()))?;
    let mut held = Held {
        snapshots: Vec::new(),
        locks: Vec::new(),
        tmp: PrivateDir::new(req.steps_dir, "run-mounts-")
            .context("creating the step's private temp dir")?,
        private: PrivateDir::in_ram("lade-secrets-", req.steps_dir)?,
        counter: 0,
    };
    for m in &step.mounts {
        add_mount(req, m, &mut spec, &mut held).with_context(|| {
            AtStep(format!(
                "{loc}: RUN --mount type={}",
                mount_type_name(m.kind)
            ))
        })?;
    }
    for f in &step.files {
        let p = held.next_private("file");
        write_private(&p, f.content.as_bytes(), f.mode & 0o7777, 0, 0)
            .with_context(|| AtStep(format!("{loc}: writing the heredoc file {}", f.path)))?;
        spec.mounts.push(StepMount::bind(&p, &f.path, true));
    }
    let outcome =
        run_step(snap, &spec).with_context(|| AtStep(format!("{loc}: RUN could not start")))?;
    drop(held);
    Ok(outcome)
}

/// "Containerfile:7: RUN make: exit code 2", a hint for a crash under CPU emulation, and the stderr tail.
fn failure_message(req: &RunRequest, out: &StepOutcome) -> String {
    let arch = req.image.config.architecture.as_deref().unwrap_or("");
    describe_failure(req.location, &req.step.command, arch, emulated(req), out)
}

/// Whether the step runs under CPU emulation: an emulator to inject, or an image for another architecture
/// (run by a binfmt_misc handler).
fn emulated(req: &RunRequest) -> bool {
    let arch = req.image.config.architecture.as_deref().unwrap_or("");
    req.emulator.is_some()
        || (!arch.is_empty()
            && crate::dispatch::platform::normalize_arch(arch, None).0
                != Platform::host().architecture)
}

fn describe_failure(
    location: &str,
    command: &Command,
    arch: &str,
    emulated: bool,
    out: &StepOutcome,
) -> String {
    let shown = match command {
        Command::Shell(s) => s.clone(),
        Command::Exec(a) => serde_json::to_string(a).unwrap_or_default(),
    };
    let mut short: String = shown
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect();
    if short.len() < shown.len() {
        short.push('…');
    }
    let mut msg = format!("{location}: RUN {short}: {}", out.describe());
    // Killed by the signal, or a shell reporting its child was (exit code 128 + signal).
    let crash_signals = [libc::SIGSEGV, libc::SIGILL, libc::SIGBUS];
    let crash = out.signal.is_some_and(|s| crash_signals.contains(&s))
        || out
            .exit_code
            .is_some_and(|c| crash_signals.iter().any(|s| c == 128 + s));
    if crash && emulated {
        msg.push_str(&format!(
            "\nhint: the command crashed while running under CPU emulation ({arch} on {}): some programs do not \
             work under qemu-user; try a newer qemu-user-static, or build on a native {arch} machine",
            Platform::host().architecture
        ));
    }
    let tail = out.stderr_tail.trim_end();
    if !tail.is_empty() {
        msg.push_str("\nstderr (last lines):\n");
        let lines: Vec<&str> = tail.lines().collect();
        let from = lines.len().saturating_sub(20);
        msg.push_str(&lines[from..].join("\n"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> crate::oci::ImageConfig {
        serde_json::from_value(v).unwrap()
    }

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn argv_uses_shell_or_exec_form() {
        let plain = cfg(json!({"config": {}}));
        assert_eq!(
            argv(&Command::Shell("echo hi".into()), &plain),
            ["/bin/sh", "-c", "echo hi"]
        );
        let bash = cfg(json!({"config": {"Shell": ["/bin/bash", "-eo", "pipefail", "-c"]}}));
        assert_eq!(
            argv(&Command::Shell("make".into()), &bash),
            ["/bin/bash", "-eo", "pipefail", "-c", "make"]
        );
        assert_eq!(
            argv(&Command::Exec(vec!["/bin/true".into(), "x".into()]), &bash),
            ["/bin/true", "x"]
        );
    }

    #[test]
    fn environment_image_env_wins_and_path_defaults() {
        let config = cfg(json!({"config": {"Env": ["A=image", "PATH=/opt/bin"]}}));
        let args = [
            kv("A", "arg"),
            kv("B", "2"),
            kv("HTTP_PROXY", "http://p:3128"),
        ];
        assert_eq!(
            environment(&config, &args),
            [
                "A=image",
                "PATH=/opt/bin",
                "B=2",
                "HTTP_PROXY=http://p:3128"
            ]
        );
        let bare = cfg(json!({"config": {}}));
        assert_eq!(
            environment(&bare, &[kv("X", "1")]),
            ["X=1".to_string(), format!("PATH={DEFAULT_PATH}")]
        );
        // A build arg named PATH is a PATH.
        assert_eq!(environment(&bare, &[kv("PATH", "/a")]), ["PATH=/a"]);
    }

    #[test]
    fn failure_messages_name_location_status_tail_and_emulation() {
        let out = StepOutcome {
            exit_code: Some(2),
            signal: None,
            stderr_tail: (1..=30).map(|i| format!("line {i}\n")).collect(),
        };
        let m = describe_failure(
            "Containerfile:7",
            &Command::Shell("make all\nmore".into()),
            "amd64",
            false,
            &out,
        );
        assert!(
            m.starts_with("Containerfile:7: RUN make all…: exit code 2\n"),
            "{m}"
        );
        assert!(
            m.contains("line 30") && m.contains("line 11") && !m.contains("line 10\n"),
            "{m}"
        );
        assert!(!m.contains("hint"), "{m}");
        let segv = StepOutcome {
            exit_code: None,
            signal: Some(libc::SIGSEGV),
            stderr_tail: String::new(),
        };
        let exec = Command::Exec(vec!["/bin/app".into()]);
        let m = describe_failure("Containerfile:3", &exec, "arm64", true, &segv);
        assert!(
            m.contains("SIGSEGV") && m.contains("hint:") && m.contains("arm64"),
            "{m}"
        );
        assert!(
            m.starts_with("Containerfile:3: RUN [\"/bin/app\"]: killed by signal 11"),
            "{m}"
        );
        // A native crash is the program's own bug: no emulation hint.
        assert!(!describe_failure("F:1", &exec, "amd64", false, &segv).contains("hint"));
        // A shell reports its child's SIGILL as exit code 132.
        let sh = StepOutcome {
            exit_code: Some(132),
            signal: None,
            stderr_tail: "Illegal instruction".into(),
        };
        let m = describe_failure("F:2", &Command::Shell("./app".into()), "arm64", true, &sh);
        assert!(m.contains("exit code 132") && m.contains("hint:"), "{m}");
    }
}
