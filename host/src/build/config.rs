//! The image config as instructions change it, and the history entries buildah writes for them.

use crate::dispatch::platform::Platform;
use crate::oci::ImageConfig;
use crate::oci::config::{ContainerConfig, Healthcheck, History, Nullable, RootFs, set};
use crate::plugin::frontend::{Command, HealthCheck, Instruction, Step};
use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;

// `PROXY_ARGS`, shared with the Dockerfile frontend (one file, included by both).
include!("../../../plugins/dockerfile/src/proxy_args.rs");

pub fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}

/// The config a stage starts from: the base image's (its ONBUILD triggers consumed) or an empty one.
pub fn initial(base: Option<&ImageConfig>, platform: &Platform, from_stage: bool) -> ImageConfig {
    let mut cfg = base.cloned().unwrap_or_default();
    if base.is_none() {
        // As buildah and BuildKit: a stage from scratch gets the default PATH.
        cfg.config = Some(Some(ContainerConfig {
            env: Some(Some(vec![format!("PATH={}", super::run::DEFAULT_PATH)])),
            ..ContainerConfig::default()
        }));
    }
    cfg.architecture = Some(platform.architecture.clone());
    cfg.os = Some(platform.os.clone());
    cfg.variant = platform.variant.clone();
    let section = cfg.container_mut();
    if !from_stage {
        // Triggers run in this build (the frontend inserted them as steps) and are not inherited further.
        section.on_build = None;
    }
    if !matches!(cfg.rootfs, Some(Some(_))) {
        cfg.rootfs = Some(Some(RootFs::default()));
    }
    if !matches!(cfg.history, Some(Some(_))) {
        cfg.history = Some(Some(vec![]));
    }
    cfg
}

/// The strings of a list field (none when absent or `null`).
fn strings(
    cfg: &ImageConfig,
    field: impl Fn(&ContainerConfig) -> &Nullable<Vec<String>>,
) -> Vec<String> {
    cfg.container()
        .and_then(|c| set(field(c)))
        .cloned()
        .unwrap_or_default()
}

/// A string field (none when absent or `null`).
fn string(
    cfg: &ImageConfig,
    field: impl Fn(&ContainerConfig) -> &Nullable<String>,
) -> Option<&str> {
    cfg.container()
        .and_then(|c| set(field(c)))
        .map(String::as_str)
}

/// The `Env` list.
pub fn env(cfg: &ImageConfig) -> Vec<String> {
    strings(cfg, |c| &c.env)
}

/// `WorkingDir`, or `/`.
pub fn workdir(cfg: &ImageConfig) -> String {
    match string(cfg, |c| &c.working_dir) {
        Some(w) if !w.is_empty() => w.to_string(),
        _ => "/".into(),
    }
}

/// `WorkingDir` as the image has it (`""` when unset).
pub fn workdir_as_set(cfg: &ImageConfig) -> &str {
    string(cfg, |c| &c.working_dir).unwrap_or("")
}

pub fn user(cfg: &ImageConfig) -> String {
    string(cfg, |c| &c.user).unwrap_or("").to_string()
}

/// `Shell`, or `/bin/sh -c`.
pub fn shell(cfg: &ImageConfig) -> Vec<String> {
    let s = strings(cfg, |c| &c.shell);
    if s.is_empty() {
        vec!["/bin/sh".into(), "-c".into()]
    } else {
        s
    }
}

/// Set `KEY=value` in `Env`, replacing an earlier value of the same key in place.
pub fn set_env(cfg: &mut ImageConfig, key: &str, value: &str) {
    let mut list = env(cfg);
    let entry = format!("{key}={value}");
    match list
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(e) => *e = entry,
        None => list.push(entry),
    }
    cfg.container_mut().env = Some(Some(list));
}

/// Remove `KEY` from `Env`.
pub fn unset_env(cfg: &mut ImageConfig, key: &str) {
    let list: Vec<String> = env(cfg)
        .into_iter()
        .filter(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key)
        .collect();
    cfg.container_mut().env = Some(Some(list));
}

pub fn set_label(cfg: &mut ImageConfig, key: &str, value: &str) {
    let labels = cfg.container_mut().labels.get_or_insert_default();
    (labels.get_or_insert_default()).insert(key.into(), value.into());
}

/// Add `key` to a set-like map field (`ExposedPorts`, `Volumes`: keys with empty objects).
fn add_key(field: &mut Nullable<BTreeMap<String, Value>>, key: &str) {
    let map = field.get_or_insert_default().get_or_insert_default();
    map.insert(key.into(), Value::Object(Default::default()));
}

/// A path made absolute against the current WORKDIR and cleaned (`.` and `..` resolved lexically).
pub fn absolute(workdir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{workdir}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn command(cfg: &ImageConfig, c: &Command) -> Vec<String> {
    match c {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(line) => {
            let mut v = shell(cfg);
            v.push(line.clone());
            v
        }
    }
}

fn healthcheck(h: &HealthCheck) -> Healthcheck {
    let positive = |v: Option<u64>| {
        v.filter(|v| *v > 0)
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
    };
    Healthcheck {
        test: Some(h.test.clone()),
        interval: positive(h.interval),
        timeout: positive(h.timeout),
        start_period: positive(h.start_period),
        start_interval: positive(h.start_interval),
        retries: positive(h.retries.map(u64::from)),
        ..Healthcheck::default()
    }
}

/// Apply an instruction that changes only the config. RUN, COPY and ADD are the executor's; ARG changes nothing.
/// `cmd_set_here`: a CMD came earlier in this stage (an ENTRYPOINT then keeps it; it resets only an inherited one).
pub fn apply(cfg: &mut ImageConfig, ins: &Instruction, cmd_set_here: bool) -> Result<()> {
    match ins {
        Instruction::Env(kvs) => {
            for kv in kvs {
                set_env(cfg, &kv.key, &kv.value);
            }
        }
        Instruction::Label(kvs) => {
            for kv in kvs {
                set_label(cfg, &kv.key, &kv.value);
            }
        }
        Instruction::Maintainer(m) => {
            cfg.author = Some(m.clone());
        }
        Instruction::Cmd(c) => {
            let v = command(cfg, c);
            cfg.container_mut().cmd = Some(Some(v));
        }
        Instruction::Entrypoint(c) => {
            let v = command(cfg, c);
            let s = cfg.container_mut();
            s.entrypoint = Some(Some(v));
            // As Docker: an ENTRYPOINT resets a CMD inherited from the base (a later CMD sets it again).
            if !cmd_set_here {
                s.cmd = None;
            }
        }
        Instruction::Shell(argv) => {
            cfg.container_mut().shell = Some(Some(argv.clone()));
        }
        Instruction::Expose(ports) => {
            let s = cfg.container_mut();
            for p in ports {
                add_key(&mut s.exposed_ports, p);
            }
            if ports.is_empty() {
                s.exposed_ports
                    .get_or_insert_default()
                    .get_or_insert_default();
            }
        }
        Instruction::Volume(vols) => {
            let s = cfg.container_mut();
            for v in vols {
                add_key(&mut s.volumes, v);
            }
            if vols.is_empty() {
                s.volumes.get_or_insert_default().get_or_insert_default();
            }
        }
        Instruction::User(u) => {
            cfg.container_mut().user = Some(Some(u.clone()));
        }
        Instruction::Workdir(w) => {
            let abs = absolute(&workdir(cfg), w);
            cfg.container_mut().working_dir = Some(Some(abs));
        }
        Instruction::Onbuild(trigger) => {
            let mut list = strings(cfg, |c| &c.on_build);
            list.push(trigger.clone());
            cfg.container_mut().on_build = Some(Some(list));
        }
        Instruction::Stopsignal(s) => {
            cfg.container_mut().stop_signal = Some(Some(s.clone()));
        }
        Instruction::Healthcheck(h) => {
            cfg.container_mut().healthcheck = Some(Some(healthcheck(h)));
        }
        Instruction::Arg(_) | Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_) => {}
    }
    Ok(())
}

/// History `created_by` as buildah/Docker write it: `/bin/sh -c <cmd>` for RUN (prefixed with `|N k=v` for the
/// build args in scope, proxies left out), `/bin/sh -c #(nop) <instruction>` for the rest.
pub fn created_by(step: &Step) -> String {
    match &step.instruction {
        Instruction::Run(_) => {
            let args: Vec<String> = step
                .build_args
                .iter()
                .filter(|kv| !is_proxy_arg(&kv.key))
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            let body = step
                .original
                .trim_start()
                .get(3..)
                .unwrap_or("")
                .trim_start();
            if args.is_empty() {
                format!("/bin/sh -c {body}")
            } else {
                format!("|{} {} /bin/sh -c {body}", args.len(), args.join(" "))
            }
        }
        // No credentials of a URL (a git remote's token) in the image.
        Instruction::Add(_) => format!(
            "/bin/sh -c #(nop) {}",
            super::copystep::strip_userinfo(step.original.trim())
        ),
        _ => format!("/bin/sh -c #(nop) {}", step.original.trim()),
    }
}

/// Append a history entry.
pub fn add_history(cfg: &mut ImageConfig, created: &str, created_by: &str, empty_layer: bool) {
    let h = History {
        created: Some(created.into()),
        created_by: Some(created_by.into()),
        empty_layer: empty_layer.then_some(true),
        ..History::default()
    };
    cfg.history
        .get_or_insert_default()
        .get_or_insert_default()
        .push(h);
}

/// Append a layer's diff_id to `rootfs.diff_ids`.
pub fn add_layer(cfg: &mut ImageConfig, diff_id: &str) {
    let rootfs = cfg.rootfs.get_or_insert_default().get_or_insert_default();
    rootfs.diff_ids.push(diff_id.into());
}

/// RFC 3339 for seconds since the epoch.
pub fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::frontend::KeyValue;
    use serde_json::json;

    #[test]
    fn env_replaces_in_place_and_unsets() {
        let mut c = initial(None, &Platform::host(), false);
        set_env(&mut c, "A", "1");
        set_env(&mut c, "B", "2");
        set_env(&mut c, "A", "3");
        let path = format!("PATH={}", crate::build::run::DEFAULT_PATH);
        assert_eq!(env(&c), vec![path.as_str(), "A=3", "B=2"]);
        unset_env(&mut c, "A");
        assert_eq!(env(&c), vec![path.as_str(), "B=2"]);
    }

    #[test]
    fn workdir_is_relative_to_the_previous_and_cleaned() {
        let mut c = initial(None, &Platform::host(), false);
        apply(&mut c, &Instruction::Workdir("/a".into()), false).unwrap();
        apply(&mut c, &Instruction::Workdir("b/../c/".into()), false).unwrap();
        assert_eq!(workdir(&c), "/a/c");
    }

    #[test]
    fn entrypoint_resets_inherited_cmd_and_shell_form_uses_shell() {
        let base = serde_json::from_value(json!({"config": {"Cmd": ["sh"], "OnBuild": ["RUN x"]}}));
        let mut c = initial(Some(&base.unwrap()), &Platform::host(), false);
        assert!(c.container().unwrap().on_build.is_none());
        let shell = Instruction::Shell(vec!["/bin/bash".into(), "-c".into()]);
        let entrypoint = Instruction::Entrypoint(Command::Shell("run me".into()));
        apply(&mut c, &shell, false).unwrap();
        apply(&mut c, &entrypoint, false).unwrap();
        assert!(c.container().unwrap().cmd.is_none());
        assert_eq!(
            set(&c.container().unwrap().entrypoint).unwrap(),
            &["/bin/bash", "-c", "run me"]
        );
        // A CMD set earlier in the same stage stays.
        apply(
            &mut c,
            &Instruction::Cmd(Command::Exec(vec!["x".into()])),
            false,
        )
        .unwrap();
        apply(&mut c, &entrypoint, true).unwrap();
        assert_eq!(set(&c.container().unwrap().cmd).unwrap(), &["x"]);
    }

    #[test]
    fn a_docker_base_keeps_its_nulls_and_unknown_fields() {
        let base = json!({"architecture": "amd64", "os": "linux", "container": "abc",
            "config": {"Entrypoint": null, "OnBuild": null, "Labels": null, "Image": "sha256:00",
                       "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]}, "history": []});
        let mut c = initial(
            Some(&serde_json::from_value(base).unwrap()),
            &Platform::host(),
            true,
        );
        set_label(&mut c, "k", "v");
        add_layer(&mut c, "sha256:bb");
        let out: serde_json::Value =
            serde_json::from_slice(&crate::oci::document::to_vec(&c).unwrap()).unwrap();
        assert_eq!(out["config"]["Entrypoint"], serde_json::Value::Null);
        assert!(out["config"].get("Entrypoint").is_some(), "{out}");
        assert_eq!(out["config"]["Image"], "sha256:00");
        assert_eq!(out["container"], "abc");
        assert_eq!(out["config"]["Labels"], json!({"k": "v"}));
        assert_eq!(out["rootfs"]["diff_ids"], json!(["sha256:aa", "sha256:bb"]));
    }

    #[test]
    fn run_history_lists_args_but_not_proxies() {
        let step = Step {
            instruction: Instruction::Arg(vec![]),
            original: "RUN echo hi".into(),
            location: crate::plugin::frontend::Location {
                file: "f".into(),
                line: 1,
                column: 1,
                end_line: 1,
                end_column: 1,
            },
            build_args: vec![
                KeyValue {
                    key: "V".into(),
                    value: "1".into(),
                },
                KeyValue {
                    key: "HTTP_PROXY".into(),
                    value: "p".into(),
                },
            ],
            from_onbuild: false,
        };
        assert_eq!(created_by(&step), "/bin/sh -c #(nop) RUN echo hi");
        let run = Step {
            instruction: Instruction::Run(crate::plugin::frontend::RunStep {
                command: Command::Shell("echo hi".into()),
                files: vec![],
                mounts: vec![],
                network: crate::plugin::frontend::NetworkMode::Default,
                security: crate::plugin::frontend::SecurityMode::Sandbox,
            }),
            ..step
        };
        assert_eq!(created_by(&run), "|1 V=1 /bin/sh -c echo hi");
    }
}
