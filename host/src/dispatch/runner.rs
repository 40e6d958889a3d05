//! The runner for a platform: native, a registered binfmt emulator, or an injected qemu-user-static.

use super::binfmt::BinfmtInfo;
use super::platform::Platform;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// How RUN steps of one platform execute.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Runner {
    /// The host runs the binaries itself.
    Native,
    /// The kernel hands them to a registered emulator. Without `fix_binary` (flag F) the interpreter path must
    /// be reachable inside the rootfs, so the step bind-mounts it there.
    Binfmt {
        interpreter: PathBuf,
        fix_binary: bool,
    },
    /// No handler: a qemu-user-static binary from the host is put into the step and runs the command.
    Inject { qemu_path: PathBuf },
}

/// qemu's name for an architecture (`qemu-<name>-static`).
pub fn qemu_arch(p: &Platform) -> Option<&'static str> {
    Some(match p.architecture.as_str() {
        "amd64" => "x86_64",
        "386" => "i386",
        "arm64" => "aarch64",
        "arm" => "arm",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// Find `qemu-<arch>-static` on `path_var` (a PATH-like list).
pub fn find_qemu_static(p: &Platform, path_var: &str) -> Option<PathBuf> {
    let name = format!("qemu-{}-static", qemu_arch(p)?);
    std::env::split_paths(path_var)
        .map(|d| d.join(&name))
        .find(|c| is_executable(c))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Choose the runner for `target` on `host`: native, else a binfmt handler (unless `ignore_binfmt`), else an
/// injectable qemu-user-static found on `path_var`, else an error naming the platform and the fix.
pub fn choose_runner(
    host: &Platform,
    target: &Platform,
    binfmt: &BinfmtInfo,
    ignore_binfmt: bool,
    path_var: &str,
) -> Result<Runner> {
    if host.can_run(target) {
        return Ok(Runner::Native);
    }
    if !ignore_binfmt && let Some(h) = binfmt.handler_for(target) {
        return Ok(Runner::Binfmt {
            interpreter: h.interpreter.clone(),
            fix_binary: h.flags.fix_binary,
        });
    }
    if let Some(q) = find_qemu_static(target, path_var) {
        return Ok(Runner::Inject { qemu_path: q });
    }
    let qemu = qemu_arch(target)
        .map(|a| format!("qemu-{a}-static"))
        .unwrap_or_else(|| "a qemu user emulator".into());
    bail!(
        "cannot run {target} binaries on this {host} host: no binfmt_misc handler is registered for it and {qemu} is not on PATH; \
         install qemu-user-static (Debian: apt-get install qemu-user-static) and register binfmt handlers, or build on a native {target} machine"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_binfmt() -> BinfmtInfo {
        BinfmtInfo {
            dir: "/nonexistent".into(),
            mounted: false,
            enabled: false,
            handlers: vec![],
        }
    }

    #[test]
    fn chooses_each_runner() {
        let amd64: Platform = "linux/amd64".parse().unwrap();
        let arm64: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(
            choose_runner(&amd64, &amd64, &empty_binfmt(), false, "").unwrap(),
            Runner::Native
        );
        let h = super::super::binfmt::Handler::parse(
            "qemu-aarch64",
            "enabled\ninterpreter /q\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n",
        )
        .unwrap();
        let info = BinfmtInfo {
            dir: "/x".into(),
            mounted: true,
            enabled: true,
            handlers: vec![h],
        };
        assert_eq!(
            choose_runner(&amd64, &arm64, &info, false, "").unwrap(),
            Runner::Binfmt {
                interpreter: "/q".into(),
                fix_binary: true
            }
        );
        let d = tempfile::tempdir().unwrap();
        let q = d.path().join("qemu-aarch64-static");
        std::fs::write(&q, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&q, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = d.path().to_str().unwrap();
        assert_eq!(
            choose_runner(&amd64, &arm64, &info, true, path).unwrap(),
            Runner::Inject { qemu_path: q }
        );
        let err = choose_runner(&amd64, &arm64, &empty_binfmt(), false, "/nonexistent")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux/arm64") && err.contains("qemu-aarch64-static"),
            "{err}"
        );
    }
}
