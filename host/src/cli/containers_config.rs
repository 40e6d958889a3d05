//! `lade config`: a working container's config, with buildah's flags (`KEY-` removes an env variable, label,
//! annotation, port or volume, as buildah); and `--change` of `lade import` (Dockerfile instructions). Both
//! go through the build's own config code (`build::config::apply`).

use super::Global;
use crate::build::config;
use crate::container::Containers;
use crate::oci::ImageConfig;
use crate::plugin::frontend::{Command, HealthCheck, Instruction, KeyValue};
use crate::store::Store;
use anyhow::{Context, Result, bail};

#[derive(clap::Args, Debug, Default)]
pub struct ConfigArgs {
    /// Manifest annotation `KEY=value` (`KEY-` removes it); repeatable
    #[arg(long, short = 'a', value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    #[arg(long)]
    pub arch: Option<String>,
    #[arg(long)]
    pub author: Option<String>,
    /// Default command: a JSON array, or words split as a shell would (no shell runs it)
    #[arg(long)]
    pub cmd: Option<String>,
    /// The config's comment (Docker format)
    #[arg(long)]
    pub comment: Option<String>,
    /// The next commit's history `created_by`
    #[arg(long)]
    pub created_by: Option<String>,
    /// Entrypoint: a JSON array, or a command line run by `/bin/sh -c` ("" clears it)
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Environment variable `KEY=value` (`KEY-` removes it); repeatable
    #[arg(long, short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Health check: `CMD ARGS...` / `CMD ["exe","arg"]`, `CMD-SHELL COMMAND`, or `NONE`
    #[arg(long)]
    pub healthcheck: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub healthcheck_interval: Option<String>,
    #[arg(long, value_name = "N")]
    pub healthcheck_retries: Option<u32>,
    #[arg(long, value_name = "DURATION")]
    pub healthcheck_start_period: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub healthcheck_start_interval: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub healthcheck_timeout: Option<String>,
    /// The next commit's history comment
    #[arg(long)]
    pub history_comment: Option<String>,
    /// Label `KEY=value` (`KEY-` removes it); repeatable
    #[arg(long, short = 'l', value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// ONBUILD trigger to add; repeatable
    #[arg(long)]
    pub onbuild: Vec<String>,
    #[arg(long)]
    pub os: Option<String>,
    /// Port to expose, `8080` (tcp) or `53/udp` (`PORT-` removes it); repeatable
    #[arg(long, short = 'p')]
    pub port: Vec<String>,
    /// Shell for shell-form commands: a JSON array or words
    #[arg(long)]
    pub shell: Option<String>,
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// User (and group) commands run as
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Volume to declare (`PATH-` removes it); repeatable
    #[arg(long, short = 'v')]
    pub volume: Vec<String>,
    /// Working directory
    #[arg(long)]
    pub workingdir: Option<String>,
    /// The working container
    pub container: String,
}

/// A JSON array of strings, when `s` is one.
fn json_list(s: &str) -> Option<Vec<String>> {
    s.trim_start()
        .starts_with('[')
        .then(|| serde_json::from_str::<Vec<String>>(s).ok())
        .flatten()
}

fn words(flag: &str, s: &str) -> Result<Vec<String>> {
    match json_list(s) {
        Some(v) => Ok(v),
        None => shlex::split(s).with_context(|| format!("--{flag} {s:?}: unbalanced quotes")),
    }
}

fn kv(s: &str) -> KeyValue {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    KeyValue {
        key: k.into(),
        value: v.into(),
    }
}

fn nanos(flag: &str, v: &Option<String>) -> Result<Option<u64>> {
    v.as_deref()
        .map(|d| {
            humantime::parse_duration(d)
                .map(|d| d.as_nanos() as u64)
                .with_context(|| format!("--{flag} {d:?}: expected a duration like 30s or 1m30s"))
        })
        .transpose()
}

/// `--healthcheck` as the config's Test list.
fn health_test(s: &str) -> Result<Vec<String>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("NONE") {
        return Ok(vec!["NONE".into()]);
    }
    if let Some(rest) = s.strip_prefix("CMD-SHELL ") {
        return Ok(vec!["CMD-SHELL".into(), rest.trim().into()]);
    }
    if let Some(rest) = s.strip_prefix("CMD ") {
        let mut v = vec!["CMD".to_string()];
        v.extend(words("healthcheck", rest)?);
        return Ok(v);
    }
    Ok(vec!["CMD-SHELL".into(), s.into()])
}

/// Apply every flag of `a` to `cfg` (and the annotations, created-by and comment of the container).
fn apply_flags(a: &ConfigArgs, c: &mut crate::container::Container) -> Result<()> {
    let cfg = &mut c.config;
    for e in &a.env {
        match e.strip_suffix('-').filter(|_| !e.contains('=')) {
            Some(k) => config::unset_env(cfg, k),
            None => {
                let KeyValue { key, value } = kv(e);
                config::set_env(cfg, &key, &value)
            }
        }
    }
    for l in &a.label {
        match l.strip_suffix('-').filter(|_| !l.contains('=')) {
            Some(k) => {
                if let Some(Some(m)) = cfg.container_mut().labels.as_mut() {
                    m.remove(k);
                }
            }
            None => config::apply(cfg, &Instruction::Label(vec![kv(l)]), true)?,
        }
    }
    for x in &a.annotation {
        match x.strip_suffix('-').filter(|_| !x.contains('=')) {
            Some(k) => {
                c.annotations.remove(k);
            }
            None => {
                let KeyValue { key, value } = kv(x);
                c.annotations.insert(key, value);
            }
        }
    }
    let cfg = &mut c.config;
    for p in &a.port {
        match p.strip_suffix('-') {
            Some(port) => {
                let key = if port.contains('/') {
                    port.to_string()
                } else {
                    format!("{port}/tcp")
                };
                if let Some(Some(m)) = cfg.container_mut().exposed_ports.as_mut() {
                    m.remove(&key);
                }
            }
            None => {
                let key = if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                };
                config::apply(cfg, &Instruction::Expose(vec![key]), true)?
            }
        }
    }
    for v in &a.volume {
        match v.strip_suffix('-') {
            Some(path) => {
                if let Some(Some(m)) = cfg.container_mut().volumes.as_mut() {
                    m.remove(path);
                }
            }
            None => config::apply(cfg, &Instruction::Volume(vec![v.clone()]), true)?,
        }
    }
    if let Some(e) = &a.entrypoint {
        cfg.container_mut().entrypoint = match (e.trim(), json_list(e)) {
            ("", _) => None,
            (_, Some(v)) => Some(Some(v)),
            (_, None) => Some(Some(vec!["/bin/sh".into(), "-c".into(), e.clone()])),
        };
    }
    if let Some(cmd) = &a.cmd {
        cfg.container_mut().cmd = if cmd.trim().is_empty() {
            None
        } else {
            Some(Some(words("cmd", cmd)?))
        };
    }
    if let Some(s) = &a.shell {
        config::apply(cfg, &Instruction::Shell(words("shell", s)?), true)?;
    }
    for t in &a.onbuild {
        config::apply(cfg, &Instruction::Onbuild(t.clone()), true)?;
    }
    if let Some(u) = &a.user {
        config::apply(cfg, &Instruction::User(u.clone()), true)?;
    }
    if let Some(w) = &a.workingdir {
        cfg.container_mut().working_dir = Some(Some(w.clone()));
    }
    if let Some(s) = &a.stop_signal {
        config::apply(cfg, &Instruction::Stopsignal(s.clone()), true)?;
    }
    if let Some(au) = &a.author {
        cfg.author = Some(au.clone());
    }
    if let Some(x) = &a.arch {
        cfg.architecture = Some(x.clone());
    }
    if let Some(x) = &a.os {
        cfg.os = Some(x.clone());
    }
    if let Some(x) = &a.comment {
        cfg.extra.insert("comment".into(), x.clone().into());
    }
    apply_health(a, cfg)?;
    if let Some(x) = &a.created_by {
        c.created_by = Some(x.clone());
    }
    if let Some(x) = &a.history_comment {
        c.history_comment = Some(x.clone());
    }
    Ok(())
}

fn apply_health(a: &ConfigArgs, cfg: &mut ImageConfig) -> Result<()> {
    let timing = a.healthcheck_interval.is_some()
        || a.healthcheck_retries.is_some()
        || a.healthcheck_start_period.is_some()
        || a.healthcheck_start_interval.is_some()
        || a.healthcheck_timeout.is_some();
    if a.healthcheck.is_none() && !timing {
        return Ok(());
    }
    let current = cfg
        .container()
        .and_then(|c| crate::oci::config::set(&c.healthcheck))
        .cloned();
    let test = match &a.healthcheck {
        Some(h) => health_test(h)?,
        None => match current.as_ref().and_then(|h| h.test.clone()) {
            Some(t) => t,
            None => {
                bail!("--healthcheck-* flags need a --healthcheck command (the container has none)")
            }
        },
    };
    let old = |f: fn(&crate::oci::config::Healthcheck) -> Option<i64>| {
        current.as_ref().and_then(f).map(|v| v as u64)
    };
    let h = HealthCheck {
        test,
        interval: nanos("healthcheck-interval", &a.healthcheck_interval)?.or(old(|h| h.interval)),
        timeout: nanos("healthcheck-timeout", &a.healthcheck_timeout)?.or(old(|h| h.timeout)),
        start_period: nanos("healthcheck-start-period", &a.healthcheck_start_period)?
            .or(old(|h| h.start_period)),
        start_interval: nanos("healthcheck-start-interval", &a.healthcheck_start_interval)?
            .or(old(|h| h.start_interval)),
        retries: a
            .healthcheck_retries
            .or(old(|h| h.retries).map(|r| r as u32)),
    };
    config::apply(cfg, &Instruction::Healthcheck(h), true)
}

/// `lade config`.
pub fn run(g: &Global, a: ConfigArgs) -> Result<()> {
    let cs = Containers::open(&Store::open(&g.root())?)?;
    let c = cs.find(&a.container)?;
    let _held = cs.lock(&c)?;
    let mut c = cs.find(&c.id)?;
    apply_flags(&a, &mut c)?;
    cs.save(&c)
}

/// One `--change` of `lade import`: a Dockerfile instruction that changes only the config.
pub fn apply_change(cfg: &mut ImageConfig, change: &str) -> Result<()> {
    let change = change.trim();
    let (word, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    let rest = rest.trim();
    let command = |s: &str| match json_list(s) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(s.to_string()),
    };
    let list = |s: &str| -> Result<Vec<String>> { words("change", s) };
    let ins = match word.to_ascii_uppercase().as_str() {
        "CMD" => Instruction::Cmd(command(rest)),
        "ENTRYPOINT" => Instruction::Entrypoint(command(rest)),
        "ENV" if !rest.contains('=') => {
            let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            Instruction::Env(vec![kv(&format!("{k}={}", v.trim()))])
        }
        "ENV" => Instruction::Env(list(rest)?.iter().map(|s| kv(s)).collect()),
        "LABEL" => Instruction::Label(list(rest)?.iter().map(|s| kv(s)).collect()),
        "EXPOSE" => Instruction::Expose(
            list(rest)?
                .into_iter()
                .map(|p| {
                    if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    }
                })
                .collect(),
        ),
        "VOLUME" => Instruction::Volume(list(rest)?),
        "USER" => Instruction::User(rest.into()),
        "WORKDIR" => Instruction::Workdir(rest.into()),
        "STOPSIGNAL" => Instruction::Stopsignal(rest.into()),
        "ONBUILD" => Instruction::Onbuild(rest.into()),
        _ => bail!(
            "--change {change:?}: use one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, \
             VOLUME, WORKDIR"
        ),
    };
    config::apply(cfg, &ins, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildah_forms_of_commands_and_health_checks() {
        assert_eq!(words("cmd", r#"["/a","b c"]"#).unwrap(), ["/a", "b c"]);
        assert_eq!(words("cmd", "/a 'b c'").unwrap(), ["/a", "b c"]);
        assert_eq!(health_test("NONE").unwrap(), ["NONE"]);
        assert_eq!(
            health_test("CMD-SHELL curl -f x").unwrap(),
            ["CMD-SHELL", "curl -f x"]
        );
        assert_eq!(
            health_test(r#"CMD ["/bin/check","-q"]"#).unwrap(),
            ["CMD", "/bin/check", "-q"]
        );
    }

    #[test]
    fn changes_apply_as_dockerfile_instructions() {
        let mut cfg = ImageConfig::default();
        apply_change(&mut cfg, r#"CMD ["/bin/app","-v"]"#).unwrap();
        apply_change(&mut cfg, "ENV A=1").unwrap();
        apply_change(&mut cfg, "EXPOSE 80").unwrap();
        apply_change(&mut cfg, "WORKDIR /srv").unwrap();
        let c = cfg.container().unwrap();
        assert_eq!(
            crate::oci::config::set(&c.cmd).unwrap(),
            &vec!["/bin/app".to_string(), "-v".into()]
        );
        assert_eq!(config::env(&cfg), ["A=1"]);
        assert_eq!(config::workdir(&cfg), "/srv");
        assert!(apply_change(&mut cfg, "RUN make").is_err());
    }
}
