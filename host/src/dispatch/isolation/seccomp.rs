//! Seccomp: a profile in the containers/Docker JSON format, resolved for this machine and a step's
//! capabilities as the containers tools do (`includes`/`excludes` by caps, arches and minKernel, the native
//! arch's `archMap` entry), then either compiled to BPF with libseccomp (lade's own namespaces) or written
//! into the runc config (`--isolation oci`).
//!
//! A build compiles each (profile, capability set) once: [`compiled_bpf`] caches the program, and the step
//! process only loads the bytes ([`load_bpf`]), so a step pays no compile.

use super::security::{Seccomp, Security};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// The containers default profile, used when /usr/share/containers/seccomp.json is missing. Copied from
/// that file as Debian's golang-github-containers-common 0.50.1 ships it: containers/common's
/// pkg/seccomp/seccomp.json (https://github.com/containers/common), Apache License 2.0.
const EMBEDDED_PROFILE: &str = include_str!("seccomp.json");

/// Where buildah reads the default profile from.
const SYSTEM_PROFILE: &str = "/usr/share/containers/seccomp.json";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<ProfileRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileRule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// A syscall argument condition (the same shape in the profile and in the OCI config).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

/// A profile resolved for one machine and capability set: the OCI runtime config's `linux.seccomp`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolved {
    default_action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u32>,
    architectures: Vec<String>,
    syscalls: Vec<Rule>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<Arg>,
}

/// The architecture names the profiles use in `includes.arches` (Go's GOARCH) and libseccomp's name.
fn native_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
        "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
        "x86" => ("386", "SCMP_ARCH_X86"),
        "arm" => ("arm", "SCMP_ARCH_ARM"),
        "s390x" => ("s390x", "SCMP_ARCH_S390X"),
        "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
        "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
        "loongarch64" => ("loong64", "SCMP_ARCH_LOONGARCH64"),
        other => (other, "SCMP_ARCH_NATIVE"),
    }
}

/// `6.1.0-18-amd64` -> (6, 1).
fn kernel_version(release: &str) -> (u32, u32) {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn running_kernel() -> (u32, u32) {
    let r = rustix::system::uname();
    kernel_version(&r.release().to_string_lossy())
}

impl Profile {
    /// The rules that apply to a step with `caps` on this machine.
    fn resolve(self, caps: &[String]) -> Result<Resolved> {
        let (goarch, scmp_arch) = native_arch();
        let kernel = running_kernel();
        let architectures = if self.arch_map.is_empty() {
            self.architectures
        } else {
            let mut v = Vec::new();
            for a in self.arch_map.iter().filter(|a| a.architecture == scmp_arch) {
                v.push(a.architecture.clone());
                v.extend(a.sub_architectures.iter().cloned());
            }
            v
        };
        let mut syscalls = Vec::new();
        for r in self.syscalls {
            let inc = &r.includes;
            let exc = &r.excludes;
            if !inc.caps.iter().all(|c| caps.contains(c))
                || (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == goarch))
                || inc
                    .min_kernel
                    .as_deref()
                    .is_some_and(|k| kernel < kernel_version(k))
                || exc.caps.iter().any(|c| caps.contains(c))
                || exc.arches.iter().any(|a| a == goarch)
            {
                continue;
            }
            let mut names = r.names;
            names.extend(r.name);
            syscalls.push(Rule {
                names,
                action: r.action,
                errno_ret: r.errno_ret,
                args: r.args.unwrap_or_default(),
            });
        }
        Ok(Resolved {
            default_action: self.default_action,
            default_errno_ret: self.default_errno_ret,
            architectures,
            syscalls,
        })
    }
}

fn profile_text(which: &Seccomp) -> Result<Option<(String, String)>> {
    Ok(match which {
        Seccomp::Unconfined => None,
        Seccomp::Default => match std::fs::read_to_string(SYSTEM_PROFILE) {
            Ok(t) => Some((t, SYSTEM_PROFILE.to_string())),
            Err(_) => Some((EMBEDDED_PROFILE.to_string(), "lade's default".to_string())),
        },
        Seccomp::File(p) => Some((
            std::fs::read_to_string(p)
                .with_context(|| format!("reading the seccomp profile {}", p.display()))?,
            p.display().to_string(),
        )),
    })
}

/// The profile `sec` names, resolved for its capabilities; None when unconfined.
pub fn resolve(sec: &Security) -> Result<Option<Resolved>> {
    let Some((text, origin)) = profile_text(&sec.seccomp)? else {
        return Ok(None);
    };
    let profile: Profile = serde_json::from_str(&text)
        .with_context(|| format!("parsing the seccomp profile {origin}"))?;
    Ok(Some(profile.resolve(&sec.caps)?))
}

fn action(name: &str, errno: Option<u32>) -> Result<libseccomp::ScmpAction> {
    // runc's rule: an ERRNO or TRACE action without a value returns EPERM.
    let val = Some(errno.unwrap_or(libc::EPERM as u32) as i32);
    libseccomp::ScmpAction::from_str(name, val)
        .with_context(|| format!("seccomp action {name:?} is not supported"))
}

fn condition(a: &Arg) -> Result<libseccomp::ScmpArgCompare> {
    use libseccomp::{ScmpArgCompare, ScmpCompareOp};
    let op: ScmpCompareOp =
        a.op.parse()
            .with_context(|| format!("seccomp operator {:?} is not supported", a.op))?;
    Ok(match op {
        // OCI: value is the mask, valueTwo the datum.
        ScmpCompareOp::MaskedEqual(_) => {
            ScmpArgCompare::new(a.index, ScmpCompareOp::MaskedEqual(a.value), a.value_two)
        }
        op => ScmpArgCompare::new(a.index, op, a.value),
    })
}

impl Resolved {
    /// The BPF program (struct sock_filter array) for this profile.
    pub fn compile(&self) -> Result<Vec<u8>> {
        use libseccomp::{ScmpArch, ScmpFilterContext, ScmpSyscall};
        let default = action(&self.default_action, self.default_errno_ret)?;
        let mut ctx = ScmpFilterContext::new(default).context("creating a seccomp filter")?;
        for a in &self.architectures {
            let arch: ScmpArch = a
                .parse()
                .with_context(|| format!("unknown seccomp architecture {a:?}"))?;
            ctx.add_arch(arch)
                .with_context(|| format!("adding seccomp architecture {a}"))?;
        }
        for r in &self.syscalls {
            let act = action(&r.action, r.errno_ret)?;
            if act == default {
                continue;
            }
            let conds: Vec<_> = r.args.iter().map(condition).collect::<Result<_>>()?;
            let mut indexes: Vec<u32> = r.args.iter().map(|a| a.index).collect();
            indexes.sort_unstable();
            indexes.dedup();
            for name in &r.names {
                // Names libseccomp does not know for any architecture here are skipped, as runc does.
                let Ok(sc) = ScmpSyscall::from_name(name) else {
                    continue;
                };
                let res = if conds.is_empty() {
                    ctx.add_rule(act, sc)
                } else if indexes.len() == conds.len() {
                    ctx.add_rule_conditional(act, sc, &conds)
                } else {
                    // Several conditions on one argument: libseccomp takes them as separate rules (runc too).
                    conds
                        .iter()
                        .try_for_each(|c| ctx.add_rule_conditional(act, sc, &[*c]).map(|_| ()))
                        .map(|_| &mut ctx)
                };
                res.with_context(|| format!("adding the seccomp rule for {name}"))?;
            }
        }
        let mut f = tempfile::tempfile().context("a temp file for the seccomp program")?;
        ctx.export_bpf(&f)
            .context("exporting the seccomp program")?;
        use std::io::{Read, Seek};
        f.rewind()?;
        let mut bpf = Vec::new();
        f.read_to_end(&mut bpf)?;
        if bpf.is_empty() || bpf.len() % 8 != 0 {
            bail!(
                "libseccomp exported a malformed program ({} bytes)",
                bpf.len()
            );
        }
        Ok(bpf)
    }

    /// The runc config's `linux.seccomp`.
    pub fn to_oci(&self) -> Result<oci_spec::runtime::LinuxSeccomp> {
        serde_json::from_value(serde_json::to_value(self)?)
            .context("turning the seccomp profile into a runc config")
    }
}

type Key = (Seccomp, Vec<String>);
static CACHE: Mutex<Vec<(Key, Arc<Vec<u8>>)>> = Mutex::new(Vec::new());

/// The BPF program for `sec` (None when unconfined), compiled once per process for each profile and
/// capability set.
pub fn compiled_bpf(sec: &Security) -> Result<Option<Arc<Vec<u8>>>> {
    if sec.seccomp == Seccomp::Unconfined {
        return Ok(None);
    }
    let mut caps = sec.caps.clone();
    caps.sort();
    let key = (sec.seccomp.clone(), caps);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, b)) = cache.iter().find(|(k, _)| *k == key) {
        return Ok(Some(b.clone()));
    }
    let Some(r) = resolve(sec)? else {
        return Ok(None);
    };
    let bpf = Arc::new(on_disk(&r)?);
    cache.push((key, bpf.clone()));
    Ok(Some(bpf))
}

/// The compiled program of `r` from lade's cache dir, compiled and stored there when missing: libseccomp
/// takes some 40 ms for the default profile, which every build would pay again. The entry is named by a
/// hash of the resolved profile (profile, capabilities and architectures) and the libseccomp version, and
/// lives beside the layer cache, with the same trust.
fn on_disk(r: &Resolved) -> Result<Vec<u8>> {
    use sha2::{Digest, Sha256};
    let version = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(r)?);
    h.update(version.as_bytes());
    let dir = crate::paths::cache_dir().join("seccomp");
    let path = dir.join(format!("{}.bpf", hex::encode(h.finalize())));
    if let Ok(b) = std::fs::read(&path)
        && !b.is_empty()
        && b.len() % 8 == 0
    {
        return Ok(b);
    }
    let bpf = r.compile()?;
    // Best effort: a cache that cannot be written only costs the next build the compile.
    let _ = std::fs::create_dir_all(&dir).and_then(|_| {
        let tmp = tempfile::NamedTempFile::new_in(&dir)?;
        std::fs::write(tmp.path(), &bpf)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    });
    Ok(bpf)
}

/// Install the BPF program `bpf` as this thread's seccomp filter (needs CAP_SYS_ADMIN or no_new_privs).
pub fn load_bpf(bpf: &[u8]) -> Result<()> {
    let prog = libc::sock_fprog {
        len: (bpf.len() / 8) as u16,
        filter: bpf.as_ptr() as *mut libc::sock_filter,
    };
    if bpf.len() / 8 > u16::MAX as usize {
        bail!(
            "the seccomp program is too long ({} instructions)",
            bpf.len() / 8
        );
    }
    // SAFETY: `prog` points at `bpf`, a whole number of sock_filter structs alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        bail!(
            "loading the seccomp filter: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_for(caps: &[&str]) -> Resolved {
        let p: Profile = serde_json::from_str(EMBEDDED_PROFILE).unwrap();
        p.resolve(&caps.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
    }

    fn has(r: &Resolved, name: &str, action: &str) -> bool {
        r.syscalls
            .iter()
            .any(|s| s.action == action && s.names.iter().any(|n| n == name))
    }

    #[test]
    fn includes_and_excludes_follow_caps() {
        let plain = default_for(&["CAP_CHOWN"]);
        assert!(has(&plain, "chroot", "SCMP_ACT_ERRNO"));
        assert!(!has(&plain, "chroot", "SCMP_ACT_ALLOW"));
        let chroot = default_for(&["CAP_SYS_CHROOT"]);
        assert!(has(&chroot, "chroot", "SCMP_ACT_ALLOW"));
        assert!(!has(&chroot, "chroot", "SCMP_ACT_ERRNO"));
        assert_eq!(plain.default_errno_ret, Some(38));
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(
                plain.architectures,
                ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
            );
            assert!(has(&plain, "arch_prctl", "SCMP_ACT_ALLOW"));
            assert!(!has(&plain, "s390_runtime_instr", "SCMP_ACT_ALLOW"));
        }
    }

    #[test]
    fn compiles_and_converts() {
        let r = default_for(super::super::security::DEFAULT_CAPS);
        assert!(r.compile().unwrap().len() > 8 * 100);
        let oci = r.to_oci().unwrap();
        assert_eq!(oci.default_errno_ret(), Some(38));
        assert!(oci.syscalls().as_ref().unwrap().len() > 10);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v1272"), (6, 18));
        assert_eq!(kernel_version("4.8"), (4, 8));
        assert!(kernel_version("5.10.0") < kernel_version("6.1"));
    }
}
