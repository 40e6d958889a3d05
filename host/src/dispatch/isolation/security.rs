//! A step's security settings: the capability set its root keeps, the seccomp profile and no_new_privs, as
//! buildah's `--cap-add`, `--cap-drop` and `--security-opt` set them.
//!
//! The default capability set is containers.conf's `default_capabilities` (the containers tools' default,
//! the same one buildah gives a RUN step), read from the usual containers.conf files when a user set it.

use anyhow::{Context, Result, bail};
use caps::Capability;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// containers.conf's built-in `default_capabilities` (what buildah 1.28 gives a RUN step: CapEff
/// 0x800405fb).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// The seccomp profile of a step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seccomp {
    /// The containers default profile (/usr/share/containers/seccomp.json, or lade's embedded copy).
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A profile in the containers/Docker JSON format (`--security-opt seccomp=FILE`).
    File(PathBuf),
}

/// How a step is confined beyond its namespaces and mounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// Capability names (`CAP_*`) a root step keeps in its bounding, permitted and effective sets.
    pub caps: Vec<String>,
    pub seccomp: Seccomp,
    /// Set no_new_privs before exec (`--security-opt no-new-privileges`); off by default, as in buildah.
    pub no_new_privileges: bool,
    /// `--userns=auto`: the step's user namespace mappings (none: the host's user namespace).
    #[serde(default)]
    pub userns: Option<super::idmap::IdMaps>,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            caps: DEFAULT_CAPS.iter().map(|s| s.to_string()).collect(),
            seccomp: Seccomp::Default,
            no_new_privileges: false,
            userns: None,
        }
    }
}

/// `chown` / `CAP_CHOWN` / `cap_chown` -> `CAP_CHOWN`, checked against the known capabilities.
pub fn cap_name(s: &str) -> Result<String> {
    let up = s.trim().to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    full.parse::<Capability>().map_err(|_| {
        anyhow::anyhow!(
            "unknown capability {s:?} (expected a name like CAP_NET_RAW or NET_RAW, or ALL)"
        )
    })?;
    Ok(full)
}

fn all_caps() -> Vec<String> {
    let mut v: Vec<Capability> = caps::all().into_iter().collect();
    v.sort_by_key(|c| c.index());
    v.iter().map(|c| c.to_string()).collect()
}

impl Security {
    /// The settings from `lade build`'s flags, starting from the containers.conf defaults.
    pub fn from_flags(
        cap_add: &[String],
        cap_drop: &[String],
        opts: &[String],
    ) -> Result<Security> {
        let defaults = match conf_default_caps()? {
            Some(c) => c,
            None => DEFAULT_CAPS.iter().map(|s| s.to_string()).collect(),
        };
        let mut s = Security {
            caps: defaults,
            ..Security::default()
        };
        s.apply_caps(cap_add, cap_drop)?;
        for o in opts {
            s.apply_opt(o)?;
        }
        if let Seccomp::File(p) = &s.seccomp {
            // A profile that does not parse fails here, before the build starts.
            super::seccomp::resolve(&s)
                .with_context(|| format!("--security-opt seccomp={}", p.display()))?;
        }
        Ok(s)
    }

    /// buildah's order: drops first (ALL clears the set), then adds (ALL adds every capability).
    fn apply_caps(&mut self, add: &[String], drop: &[String]) -> Result<()> {
        let split = |l: &[String]| -> Vec<String> {
            l.iter()
                .flat_map(|s| s.split(','))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        for d in split(drop) {
            if d.eq_ignore_ascii_case("all") {
                self.caps.clear();
            } else {
                let n = cap_name(&d).context("--cap-drop")?;
                self.caps.retain(|c| *c != n);
            }
        }
        for a in split(add) {
            let names = if a.eq_ignore_ascii_case("all") {
                all_caps()
            } else {
                vec![cap_name(&a).context("--cap-add")?]
            };
            for n in names {
                if !self.caps.contains(&n) {
                    self.caps.push(n);
                }
            }
        }
        Ok(())
    }

    /// One `--security-opt`.
    fn apply_opt(&mut self, opt: &str) -> Result<()> {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt, ""));
        match (k, v) {
            ("seccomp", "unconfined") => self.seccomp = Seccomp::Unconfined,
            ("seccomp", "") => {
                bail!("--security-opt seccomp needs a value: seccomp=unconfined or seccomp=FILE")
            }
            ("seccomp", f) => {
                let p = Path::new(f);
                std::fs::metadata(p).with_context(|| {
                    format!("--security-opt seccomp={f}: the profile cannot be read")
                })?;
                self.seccomp = Seccomp::File(std::path::absolute(p)?);
            }
            ("no-new-privileges", "" | "true") => self.no_new_privileges = true,
            ("no-new-privileges", "false") => self.no_new_privileges = false,
            // lade sets no SELinux or AppArmor labels: disabling them changes nothing.
            ("label", "disable") | ("apparmor", "unconfined") => {}
            _ => bail!(
                "--security-opt {opt:?} is not supported: lade takes seccomp=unconfined, seccomp=FILE, \
                 no-new-privileges, label=disable and apparmor=unconfined"
            ),
        }
        Ok(())
    }

    /// The capabilities as numbers (names that this lade does not know were refused when parsed).
    pub fn cap_numbers(&self) -> Vec<u32> {
        self.caps
            .iter()
            .filter_map(|c| c.parse::<Capability>().ok())
            .map(|c| c.index() as u32)
            .collect()
    }
}

/// The containers.conf files in the order the containers tools read them (a later one wins).
fn conf_files() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("CONTAINERS_CONF") {
        return vec![PathBuf::from(p)];
    }
    let mut v = vec![
        PathBuf::from("/usr/share/containers/containers.conf"),
        PathBuf::from("/etc/containers/containers.conf"),
    ];
    if let Ok(rd) = std::fs::read_dir("/etc/containers/containers.conf.d") {
        let mut d: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        d.sort();
        v.extend(d);
    }
    v
}

/// `[containers] default_capabilities` from the last containers.conf that sets it.
fn conf_default_caps() -> Result<Option<Vec<String>>> {
    let mut found = None;
    for f in conf_files() {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        if let Some(c) =
            parse_default_caps(&text).with_context(|| format!("reading {}", f.display()))?
        {
            found = Some(c);
        }
    }
    Ok(found)
}

fn parse_default_caps(text: &str) -> Result<Option<Vec<String>>> {
    let v: toml::Value = toml::from_str(text).context("not valid TOML")?;
    let Some(list) = v
        .get("containers")
        .and_then(|c| c.get("default_capabilities"))
    else {
        return Ok(None);
    };
    let list = list
        .as_array()
        .context("default_capabilities must be a list of capability names")?;
    let mut out = Vec::new();
    for c in list {
        let s = c
            .as_str()
            .context("default_capabilities must be a list of capability names")?;
        out.push(cap_name(s).context("default_capabilities")?);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_flags_as_buildah() {
        let mut s = Security::default();
        s.apply_caps(&["net_raw".into(), "CAP_MKNOD".into()], &["chown".into()])
            .unwrap();
        assert!(s.caps.contains(&"CAP_NET_RAW".into()) && s.caps.contains(&"CAP_MKNOD".into()));
        assert!(!s.caps.contains(&"CAP_CHOWN".into()));
        let mut s = Security::default();
        s.apply_caps(&["kill".into()], &["all".into()]).unwrap();
        assert_eq!(s.caps, vec!["CAP_KILL".to_string()]);
        let mut s = Security::default();
        s.apply_caps(&["ALL".into()], &[]).unwrap();
        assert!(s.caps.contains(&"CAP_SYS_ADMIN".into()));
        assert!(
            Security::default()
                .apply_caps(&["bogus".into()], &[])
                .is_err()
        );
    }

    #[test]
    fn security_opts() {
        let mut s = Security::default();
        s.apply_opt("seccomp=unconfined").unwrap();
        s.apply_opt("no-new-privileges").unwrap();
        s.apply_opt("label=disable").unwrap();
        assert_eq!(s.seccomp, Seccomp::Unconfined);
        assert!(s.no_new_privileges);
        assert!(s.apply_opt("seccomp=/nonexistent/profile.json").is_err());
        assert!(s.apply_opt("label=type:foo_t").is_err());
        assert!(s.apply_opt("mask=/proc").is_err());
    }

    #[test]
    fn conf_caps() {
        let t = "[containers]\ndefault_capabilities = [\"CHOWN\", \"net_raw\"]\n";
        assert_eq!(
            parse_default_caps(t).unwrap(),
            Some(vec!["CAP_CHOWN".to_string(), "CAP_NET_RAW".to_string()])
        );
        assert_eq!(parse_default_caps("[engine]\n").unwrap(), None);
        assert!(parse_default_caps("[containers]\ndefault_capabilities = [\"NOPE\"]\n").is_err());
    }
}
