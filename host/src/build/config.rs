//! The image config as instructions change it, and the history entries buildah writes for them.

use crate::dispatch::platform::Platform;
use crate::plugin::frontend::{Command, HealthCheck, Instruction, Step};
use anyhow::Result;
use serde_json::{Map, Value, json};

/// Build args that never reach history or cache keys (they are about the build machine, not the image).
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

pub fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}

/// The config a stage starts from: the base image's (its ONBUILD triggers consumed) or an empty one.
pub fn initial(base: Option<&Value>, platform: &Platform, from_stage: bool) -> Value {
    let mut cfg = base.cloned().unwrap_or_else(|| json!({}));
    if !cfg.is_object() {
        cfg = json!({});
    }
    if base.is_none() {
        // As buildah and BuildKit: a stage from scratch gets the default PATH.
        cfg["config"] = json!({"Env": [format!("PATH={}", super::run::DEFAULT_PATH)]});
    }
    let o = cfg.as_object_mut().expect("object");
    o.insert("architecture".into(), json!(platform.architecture));
    o.insert("os".into(), json!(platform.os));
    match &platform.variant {
        Some(v) => o.insert("variant".into(), json!(v)),
        None => o.remove("variant"),
    };
    if !o.get("config").is_some_and(Value::is_object) {
        o.insert("config".into(), json!({}));
    }
    if !from_stage {
        // Triggers run in this build (the frontend inserted them as steps) and are not inherited further.
        o["config"]
            .as_object_mut()
            .expect("object")
            .remove("OnBuild");
    }
    if !o.get("rootfs").is_some_and(Value::is_object) {
        o.insert("rootfs".into(), json!({"type": "layers", "diff_ids": []}));
    }
    if !o.get("history").is_some_and(Value::is_array) {
        o.insert("history".into(), json!([]));
    }
    cfg
}

fn section(cfg: &mut Value) -> &mut Map<String, Value> {
    if !cfg["config"].is_object() {
        cfg["config"] = json!({});
    }
    cfg["config"].as_object_mut().expect("object")
}

/// The `Env` list.
pub fn env(cfg: &Value) -> Vec<String> {
    strings(&cfg["config"]["Env"])
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `WorkingDir`, or `/`.
pub fn workdir(cfg: &Value) -> String {
    match cfg["config"]["WorkingDir"].as_str() {
        Some(w) if !w.is_empty() => w.to_string(),
        _ => "/".into(),
    }
}

pub fn user(cfg: &Value) -> String {
    cfg["config"]["User"].as_str().unwrap_or("").to_string()
}

/// `Shell`, or `/bin/sh -c`.
pub fn shell(cfg: &Value) -> Vec<String> {
    let s = strings(&cfg["config"]["Shell"]);
    if s.is_empty() {
        vec!["/bin/sh".into(), "-c".into()]
    } else {
        s
    }
}

/// Set `KEY=value` in `Env`, replacing an earlier value of the same key in place.
pub fn set_env(cfg: &mut Value, key: &str, value: &str) {
    let mut list = env(cfg);
    let entry = format!("{key}={value}");
    match list
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(e) => *e = entry,
        None => list.push(entry),
    }
    section(cfg).insert("Env".into(), json!(list));
}

/// Remove `KEY` from `Env`.
pub fn unset_env(cfg: &mut Value, key: &str) {
    let list: Vec<String> = env(cfg)
        .into_iter()
        .filter(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key)
        .collect();
    section(cfg).insert("Env".into(), json!(list));
}

pub fn set_label(cfg: &mut Value, key: &str, value: &str) {
    let s = section(cfg);
    if !s.get("Labels").is_some_and(Value::is_object) {
        s.insert("Labels".into(), json!({}));
    }
    s["Labels"][key] = json!(value);
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

fn command(cfg: &Value, c: &Command) -> Vec<String> {
    match c {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(line) => {
            let mut v = shell(cfg);
            v.push(line.clone());
            v
        }
    }
}

fn healthcheck(h: &HealthCheck) -> Value {
    let mut o = Map::new();
    o.insert("Test".into(), json!(h.test));
    for (k, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if let Some(v) = v.filter(|v| *v > 0) {
            o.insert(k.into(), json!(v));
        }
    }
    if let Some(r) = h.retries.filter(|r| *r > 0) {
        o.insert("Retries".into(), json!(r));
    }
    Value::Object(o)
}

/// Apply an instruction that changes only the config. RUN, COPY and ADD are the executor's; ARG changes nothing.
/// `cmd_set_here`: a CMD came earlier in this stage (an ENTRYPOINT then keeps it; it resets only an inherited one).
pub fn apply(cfg: &mut Value, ins: &Instruction, cmd_set_here: bool) -> Result<()> {
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
            cfg["author"] = json!(m);
        }
        Instruction::Cmd(c) => {
            let v = command(cfg, c);
            section(cfg).insert("Cmd".into(), json!(v));
        }
        Instruction::Entrypoint(c) => {
            let v = command(cfg, c);
            let s = section(cfg);
            s.insert("Entrypoint".into(), json!(v));
            // As Docker: an ENTRYPOINT resets a CMD inherited from the base (a later CMD sets it again).
            if !cmd_set_here {
                s.remove("Cmd");
            }
        }
        Instruction::Shell(argv) => {
            section(cfg).insert("Shell".into(), json!(argv));
        }
        Instruction::Expose(ports) => {
            let s = section(cfg);
            if !s.get("ExposedPorts").is_some_and(Value::is_object) {
                s.insert("ExposedPorts".into(), json!({}));
            }
            for p in ports {
                s["ExposedPorts"][p.as_str()] = json!({});
            }
        }
        Instruction::Volume(vols) => {
            let s = section(cfg);
            if !s.get("Volumes").is_some_and(Value::is_object) {
                s.insert("Volumes".into(), json!({}));
            }
            for v in vols {
                s["Volumes"][v.as_str()] = json!({});
            }
        }
        Instruction::User(u) => {
            section(cfg).insert("User".into(), json!(u));
        }
        Instruction::Workdir(w) => {
            let abs = absolute(&workdir(cfg), w);
            section(cfg).insert("WorkingDir".into(), json!(abs));
        }
        Instruction::Onbuild(trigger) => {
            let mut list = strings(&cfg["config"]["OnBuild"]);
            list.push(trigger.clone());
            section(cfg).insert("OnBuild".into(), json!(list));
        }
        Instruction::Stopsignal(s) => {
            section(cfg).insert("StopSignal".into(), json!(s));
        }
        Instruction::Healthcheck(h) => {
            section(cfg).insert("Healthcheck".into(), healthcheck(h));
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
        _ => format!("/bin/sh -c #(nop) {}", step.original.trim()),
    }
}

/// Append a history entry.
pub fn add_history(cfg: &mut Value, created: &str, created_by: &str, empty_layer: bool) {
    let mut h = json!({ "created": created, "created_by": created_by });
    if empty_layer {
        h["empty_layer"] = json!(true);
    }
    if !cfg["history"].is_array() {
        cfg["history"] = json!([]);
    }
    cfg["history"].as_array_mut().expect("array").push(h);
}

/// Append a layer's diff_id to `rootfs.diff_ids`.
pub fn add_layer(cfg: &mut Value, diff_id: &str) {
    if !cfg["rootfs"]["diff_ids"].is_array() {
        cfg["rootfs"] = json!({"type": "layers", "diff_ids": []});
    }
    cfg["rootfs"]["diff_ids"]
        .as_array_mut()
        .expect("array")
        .push(json!(diff_id));
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
        let base = json!({"config": {"Cmd": ["sh"], "OnBuild": ["RUN x"]}});
        let mut c = initial(Some(&base), &Platform::host(), false);
        assert!(c["config"].get("OnBuild").is_none());
        let shell = Instruction::Shell(vec!["/bin/bash".into(), "-c".into()]);
        let entrypoint = Instruction::Entrypoint(Command::Shell("run me".into()));
        apply(&mut c, &shell, false).unwrap();
        apply(&mut c, &entrypoint, false).unwrap();
        assert!(c["config"].get("Cmd").is_none());
        assert_eq!(
            c["config"]["Entrypoint"],
            json!(["/bin/bash", "-c", "run me"])
        );
        // A CMD set earlier in the same stage stays.
        apply(
            &mut c,
            &Instruction::Cmd(Command::Exec(vec!["x".into()])),
            false,
        )
        .unwrap();
        apply(&mut c, &entrypoint, true).unwrap();
        assert_eq!(c["config"]["Cmd"], json!(["x"]));
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
