//! Typed instructions: which flags each instruction takes and how flag values and arguments are read
//! (mounts, durations, ports, modes). Expansion has already happened where the reference says it does.

use crate::diag::suggest;
use crate::model::{CacheSharing, Flag, Mount, MountType, NetworkMode, SecurityMode};

/// Every instruction keyword the language has.
pub const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Value,
    Bool,
    Multi,
}

fn spec(keyword: &str) -> &'static [(&'static str, Kind)] {
    use Kind::*;
    match keyword {
        "FROM" => &[("platform", Value)],
        "RUN" => &[("mount", Multi), ("network", Value), ("security", Value)],
        "COPY" => &[
            ("from", Value),
            ("chown", Value),
            ("chmod", Value),
            ("link", Bool),
            ("parents", Bool),
            ("exclude", Multi),
        ],
        "ADD" => &[
            ("chown", Value),
            ("chmod", Value),
            ("link", Bool),
            ("exclude", Multi),
            ("checksum", Value),
            ("keep-git-dir", Bool),
        ],
        "HEALTHCHECK" => &[
            ("interval", Value),
            ("timeout", Value),
            ("start-period", Value),
            ("start-interval", Value),
            ("retries", Value),
        ],
        _ => &[],
    }
}

/// The flags of one instruction, checked against what it accepts.
#[derive(Debug, Default)]
pub struct Flags {
    values: Vec<(String, Option<String>)>,
}

impl Flags {
    /// Check `flags` for `keyword`: unknown, repeated, missing or stray values are errors (all collected).
    pub fn check(keyword: &str, flags: &[Flag]) -> Result<Flags, Vec<(String, String)>> {
        let spec = spec(keyword);
        let mut errors = Vec::new();
        let mut values: Vec<(String, Option<String>)> = Vec::new();
        for f in flags {
            let Some((name, kind)) = spec.iter().find(|(n, _)| *n == f.name) else {
                let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
                let hint = match suggest(&f.name, &names) {
                    Some(s) => format!("did you mean --{s}?"),
                    None if names.is_empty() => format!("{keyword} takes no flags"),
                    None => format!("{keyword} accepts --{}", names.join(", --")),
                };
                errors.push((format!("unknown flag --{} for {keyword}", f.name), hint));
                continue;
            };
            match (kind, &f.value) {
                (Kind::Bool, None) => {}
                (Kind::Bool, Some(v)) if parse_bool(v).is_none() => {
                    errors.push((
                        format!("--{name}={v}: expected true or false"),
                        format!("write --{name} alone"),
                    ));
                    continue;
                }
                (_, None) => {
                    errors.push((
                        format!("--{name} needs a value"),
                        format!("write --{name}=<value>"),
                    ));
                    continue;
                }
                _ => {}
            }
            if *kind != Kind::Multi && values.iter().any(|(n, _)| n == name) {
                errors.push((
                    format!("--{name} is given more than once"),
                    "keep one".into(),
                ));
                continue;
            }
            values.push((name.to_string(), f.value.clone()));
        }
        if errors.is_empty() {
            Ok(Flags { values })
        } else {
            Err(errors)
        }
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    pub fn bool(&self, name: &str) -> bool {
        self.values.iter().any(|(n, v)| {
            n == name
                && v.as_deref()
                    .map(|v| parse_bool(v) == Some(true))
                    .unwrap_or(true)
        })
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" => Some(true),
        "false" | "0" | "f" => Some(false),
        _ => None,
    }
}

pub fn network(v: Option<&str>) -> Result<NetworkMode, String> {
    match v {
        None | Some("default") => Ok(NetworkMode::Default),
        Some("none") => Ok(NetworkMode::None),
        Some("host") => Ok(NetworkMode::Host),
        Some(o) => Err(format!("--network={o}: expected default, none or host")),
    }
}

pub fn security(v: Option<&str>) -> Result<SecurityMode, String> {
    match v {
        None | Some("sandbox") => Ok(SecurityMode::Sandbox),
        Some("insecure") => Ok(SecurityMode::Insecure),
        Some(o) => Err(format!("--security={o}: expected sandbox or insecure")),
    }
}

/// The raw `from=` of a mount, before it is resolved to a stage or image.
#[derive(Debug)]
pub struct ParsedMount {
    pub mount: Mount,
    pub from: Option<String>,
}

const MOUNT_KEYS: [&str; 20] = [
    "type",
    "target",
    "dst",
    "destination",
    "source",
    "src",
    "from",
    "ro",
    "readonly",
    "rw",
    "readwrite",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "required",
    "size",
    "env",
    "tmpfs-size",
];

/// One `--mount=` value (already expanded): comma-separated `key=value` or bare boolean keys.
pub fn mount(spec: &str) -> Result<ParsedMount, String> {
    let fields = csv_fields(spec)?;
    let mut kind = MountType::Bind;
    if let Some((_, v)) = fields.iter().find(|(k, _)| k.eq_ignore_ascii_case("type")) {
        kind = match v.as_deref().unwrap_or("").to_ascii_lowercase().as_str() {
            "bind" => MountType::Bind,
            "cache" => MountType::Cache,
            "tmpfs" => MountType::Tmpfs,
            "secret" => MountType::Secret,
            "ssh" => MountType::Ssh,
            other => {
                return Err(format!(
                    "unsupported mount type {other:?}: expected bind, cache, tmpfs, secret or ssh"
                ));
            }
        };
    }
    let mut m = Mount {
        kind,
        target: None,
        source: None,
        from: None,
        read_write: matches!(kind, MountType::Cache | MountType::Tmpfs),
        id: None,
        sharing: CacheSharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    let mut from = None;
    for (key, value) in &fields {
        let k = key.to_ascii_lowercase();
        let need = || {
            value
                .clone()
                .ok_or_else(|| format!("mount option {key} needs a value ({key}=...)"))
        };
        let flag = |default: bool| -> Result<bool, String> {
            match value {
                None => Ok(default),
                Some(v) => parse_bool(v)
                    .ok_or_else(|| format!("mount option {key}={v}: expected true or false")),
            }
        };
        match k.as_str() {
            "type" => {}
            "target" | "dst" | "destination" => m.target = Some(need()?),
            "source" | "src" => m.source = Some(need()?),
            "from" => from = Some(need()?),
            "ro" | "readonly" => m.read_write = !flag(true)?,
            "rw" | "readwrite" => m.read_write = flag(true)?,
            "id" => m.id = Some(need()?),
            "sharing" => {
                m.sharing = match need()?.as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    o => {
                        return Err(format!(
                            "mount sharing={o}: expected shared, private or locked"
                        ));
                    }
                }
            }
            "mode" => {
                let v = need()?;
                m.mode =
                    Some(u32::from_str_radix(&v, 8).map_err(|_| {
                        format!("mount mode={v}: expected an octal mode like 0644")
                    })?);
            }
            "uid" | "gid" => {
                let v = need()?;
                let n: u32 = v
                    .parse()
                    .map_err(|_| format!("mount {k}={v}: expected a number"))?;
                if k == "uid" {
                    m.uid = Some(n)
                } else {
                    m.gid = Some(n)
                }
            }
            "required" => m.required = flag(true)?,
            "size" | "tmpfs-size" => m.size = Some(bytes(&need()?)?),
            "env" => m.env = Some(need()?),
            _ => {
                let hint = suggest(&k, &MOUNT_KEYS)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(format!("unknown mount option {key:?}{hint}"));
            }
        }
    }
    match kind {
        MountType::Bind | MountType::Cache | MountType::Tmpfs if m.target.is_none() => {
            return Err("mount needs a target (target=/path)".into());
        }
        MountType::Secret if m.target.is_none() && m.id.is_none() && m.env.is_none() => {
            return Err("secret mount needs an id or a target (id=mysecret)".into());
        }
        _ => {}
    }
    if matches!(kind, MountType::Secret | MountType::Ssh) && m.id.is_none() {
        if kind == MountType::Ssh {
            m.id = Some("default".into());
        } else if let Some(t) = &m.target {
            m.id = t.rsplit('/').next().map(str::to_string);
        }
    }
    if from.is_some() && !matches!(kind, MountType::Bind | MountType::Cache) {
        return Err("from= is only valid for bind and cache mounts".into());
    }
    Ok(ParsedMount { mount: m, from })
}

/// Split `a=b,"c=d,e",f` into fields, honouring double quotes as CSV does.
fn csv_fields(spec: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    let mut raw = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => raw.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("unterminated quote in mount {spec:?}"));
    }
    raw.push(cur);
    for f in raw {
        if f.is_empty() {
            continue;
        }
        match f.split_once('=') {
            Some((k, v)) => fields.push((k.trim().to_string(), Some(v.to_string()))),
            None => fields.push((f.trim().to_string(), None)),
        }
    }
    Ok(fields)
}

/// `64m`, `1g`, `512k`, `1024` (bytes; binary units as Docker's RAMInBytes).
pub fn bytes(v: &str) -> Result<u64, String> {
    let lower = v.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("size {v:?}: expected a number of bytes like 64m"))?;
    if !n.is_finite() || n < 0.0 || n * mult as f64 > u64::MAX as f64 {
        return Err(format!("size {v:?} is out of range"));
    }
    Ok((n * mult as f64) as u64)
}

/// A Go `time.ParseDuration` string, in nanoseconds.
pub fn duration(v: &str) -> Result<u64, String> {
    let bad = || format!("duration {v:?}: expected a number with a unit, like 30s, 1m30s or 500ms");
    if v == "0" {
        return Ok(0);
    }
    let s = v.strip_prefix('+').unwrap_or(v);
    if s.starts_with('-') {
        return Err(format!("duration {v:?} cannot be negative"));
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if n == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * unit;
        rest = &rest[u..];
    }
    if total > u64::MAX as f64 {
        return Err(format!("duration {v:?} is out of range"));
    }
    Ok(total as u64)
}

/// EXPOSE words (expanded) → `port/proto`, ranges expanded.
pub fn expose(word: &str) -> Result<Vec<String>, String> {
    let (port, proto) = match word.split_once('/') {
        Some((p, pr)) => (p, pr.to_ascii_lowercase()),
        None => (word, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "EXPOSE {word}: unknown protocol {proto:?} (expected tcp, udp or sctp)"
        ));
    }
    if port.contains(':') {
        return Err(format!(
            "EXPOSE {word}: publishing to a host port is not done in a Containerfile"
        ));
    }
    let num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("EXPOSE {word}: invalid port {s:?} (expected 0-65535)"))
    };
    let (lo, hi) = match port.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let p = num(port)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!("EXPOSE {word}: invalid range, end before start"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Whether a STOPSIGNAL value names a signal: a number from 1 to 64, or a Linux signal name with or
/// without `SIG` (`SIGTERM`, `term`, `SIGRTMIN+3`), as Docker's signal parser accepts.
pub fn valid_signal(v: &str) -> bool {
    if let Ok(n) = v.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let upper = v.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    const NAMES: [&str; 33] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
    ];
    if NAMES.contains(&name) || name == "XFSZ" || name == "RTMIN" || name == "RTMAX" {
        return true;
    }
    let offset = |rest: &str| rest.parse::<u32>().is_ok_and(|n| (1..=15).contains(&n));
    name.strip_prefix("RTMIN+").is_some_and(offset)
        || name.strip_prefix("RTMAX-").is_some_and(offset)
}

/// A stage name: a letter, then letters, digits, `-`, `_` or `.`.
pub fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, value: Option<&str>) -> Flag {
        Flag {
            name: name.into(),
            value: value.map(str::to_string),
        }
    }

    #[test]
    fn flag_checks() {
        let ok = Flags::check(
            "COPY",
            &[
                f("from", Some("b")),
                f("link", None),
                f("exclude", Some("a")),
                f("exclude", Some("b")),
            ],
        )
        .unwrap();
        assert_eq!(ok.value("from"), Some("b"));
        assert!(ok.bool("link"));
        assert!(!ok.bool("parents"));
        assert_eq!(ok.all("exclude"), ["a", "b"]);
        let off = Flags::check("COPY", &[f("link", Some("false"))]).unwrap();
        assert!(!off.bool("link"));
        let errs = Flags::check(
            "COPY",
            &[
                f("chwon", Some("a")),
                f("from", None),
                f("chmod", Some("1")),
                f("chmod", Some("2")),
            ],
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3);
        assert!(errs[0].0.contains("unknown flag --chwon") && errs[0].1.contains("--chown"));
        assert!(Flags::check("ADD", &[f("from", Some("x"))]).is_err());
        assert!(
            Flags::check("ENV", &[f("x", None)]).unwrap_err()[0]
                .1
                .contains("takes no flags")
        );
    }

    #[test]
    fn mounts() {
        let m = mount("type=cache,target=/root/.cache,sharing=locked,id=go,mode=0755,uid=1,gid=2")
            .unwrap()
            .mount;
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, CacheSharing::Locked);
        assert_eq!((m.mode, m.uid, m.gid), (Some(0o755), Some(1), Some(2)));
        assert!(m.read_write);
        let b = mount("target=/src,from=build,source=/out,rw").unwrap();
        assert_eq!(b.mount.kind, MountType::Bind);
        assert!(b.mount.read_write);
        assert_eq!(b.from.as_deref(), Some("build"));
        let s = mount("type=secret,id=tok,env=TOKEN,required")
            .unwrap()
            .mount;
        assert_eq!(
            (s.id.as_deref(), s.env.as_deref(), s.required),
            (Some("tok"), Some("TOKEN"), true)
        );
        let s = mount("type=secret,target=/run/secrets/aws").unwrap().mount;
        assert_eq!(s.id.as_deref(), Some("aws"));
        let ssh = mount("type=ssh").unwrap().mount;
        assert_eq!(ssh.id.as_deref(), Some("default"));
        let t = mount("type=tmpfs,target=/tmp,size=64m").unwrap().mount;
        assert_eq!(t.size, Some(64 << 20));
        assert!(mount("type=cache").unwrap_err().contains("target"));
        assert!(
            mount("type=nfs,target=/x")
                .unwrap_err()
                .contains("unsupported mount type")
        );
        assert!(
            mount("target=/x,sharin=locked")
                .unwrap_err()
                .contains("did you mean sharing")
        );
        assert!(mount("type=tmpfs,target=/x,from=a").is_err());
        assert!(mount("type=bind,target=/x,ro=maybe").is_err());
        let q = mount("\"target=/a,b\",ro").unwrap().mount;
        assert_eq!(q.target.as_deref(), Some("/a,b"));
        assert!(!q.read_write);
    }

    #[test]
    fn durations() {
        assert_eq!(duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(duration("500ms").unwrap(), 500_000_000);
        assert_eq!(duration("0").unwrap(), 0);
        assert!(duration("30").is_err());
        assert!(duration("-1s").is_err());
        assert!(duration("s").is_err());
        assert!(duration("1x").is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(expose("80").unwrap(), ["80/tcp"]);
        assert_eq!(expose("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            expose("8000-8002/tcp").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(expose("80/xyz").is_err());
        assert!(expose("99999").is_err());
        assert!(expose("9-1").is_err());
        assert!(expose("abc").is_err());
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(bytes("1g").unwrap(), 1 << 30);
        assert_eq!(bytes("100").unwrap(), 100);
        assert!(bytes("lots").is_err());
        assert!(
            valid_signal("SIGTERM")
                && valid_signal("quit")
                && valid_signal("9")
                && valid_signal("SIGRTMIN+3")
        );
        assert!(
            !valid_signal("SIG1.2.3")
                && !valid_signal("0")
                && !valid_signal("65")
                && !valid_signal("SIGFOO")
        );
        assert!(valid_stage_name("build-1.x_y"));
        assert!(!valid_stage_name("1build"));
        assert!(!valid_stage_name("a/b"));
    }
}
