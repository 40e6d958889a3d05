//! binfmt_misc: which foreign binaries the kernel hands to an emulator, and matching an architecture's ELF header
//! against the registered handlers.
//!
//! The handlers are parsed here rather than through `procfs::sys::fs::binfmt_misc`: procfs 0.18 only reads the
//! fixed /proc path (tests and `--binfmt-dir` need a private mount) and prints every magic string to stderr with a
//! leftover `dbg!`. The file format is the kernel's (Documentation/admin-guide/binfmt-misc.rst).

use super::platform::Platform;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The default binfmt_misc mount.
pub const DEFAULT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// Handler flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Flags {
    /// P: preserve argv[0].
    pub preserve_argv0: bool,
    /// O: pass an open fd of the binary.
    pub open_binary: bool,
    /// C: credentials from the binary (implies O).
    pub credentials: bool,
    /// F: the interpreter is opened at registration, so it need not exist inside a container's rootfs.
    pub fix_binary: bool,
}

impl Flags {
    fn parse(s: &str) -> Flags {
        Flags {
            preserve_argv0: s.contains('P'),
            open_binary: s.contains('O'),
            credentials: s.contains('C'),
            fix_binary: s.contains('F'),
        }
    }
}

/// One registered handler.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Handler {
    pub name: String,
    pub enabled: bool,
    pub interpreter: PathBuf,
    pub flags: Flags,
    pub offset: usize,
    /// Empty for extension-based handlers.
    #[serde(serialize_with = "ser_hex")]
    pub magic: Vec<u8>,
    #[serde(serialize_with = "ser_hex")]
    pub mask: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
}

fn ser_hex<S: serde::Serializer>(v: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

impl Handler {
    /// Parse one handler file's content.
    pub fn parse(name: &str, text: &str) -> Result<Handler> {
        let mut h = Handler {
            name: name.into(),
            enabled: false,
            interpreter: PathBuf::new(),
            flags: Flags::default(),
            offset: 0,
            magic: Vec::new(),
            mask: Vec::new(),
            extension: None,
        };
        for line in text.lines() {
            if line == "enabled" {
                h.enabled = true;
            } else if let Some(v) = line.strip_prefix("interpreter ") {
                h.interpreter = PathBuf::from(v);
            } else if let Some(v) = line.strip_prefix("flags:") {
                h.flags = Flags::parse(v.trim());
            } else if let Some(v) = line.strip_prefix("offset ") {
                h.offset = v
                    .trim()
                    .parse()
                    .with_context(|| format!("binfmt handler {name}: bad offset {v:?}"))?;
            } else if let Some(v) = line.strip_prefix("magic ") {
                h.magic = hex::decode(v.trim())
                    .with_context(|| format!("binfmt handler {name}: bad magic {v:?}"))?;
            } else if let Some(v) = line.strip_prefix("mask ") {
                h.mask = hex::decode(v.trim())
                    .with_context(|| format!("binfmt handler {name}: bad mask {v:?}"))?;
            } else if let Some(v) = line.strip_prefix("extension .") {
                h.extension = Some(v.into());
            }
        }
        if !h.magic.is_empty() && h.mask.is_empty() {
            h.mask = vec![0xff; h.magic.len()];
        }
        Ok(h)
    }

    /// Whether the kernel would hand a binary starting with `header` to this handler.
    pub fn matches(&self, header: &[u8]) -> bool {
        if !self.enabled || self.magic.is_empty() || header.len() < self.offset + self.magic.len() {
            return false;
        }
        let window = &header[self.offset..self.offset + self.magic.len()];
        window
            .iter()
            .zip(&self.magic)
            .zip(self.mask.iter().chain(std::iter::repeat(&0xff)))
            .all(|((b, m), k)| b & k == m & k)
    }
}

/// The state of binfmt_misc.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BinfmtInfo {
    pub dir: PathBuf,
    /// binfmt_misc is mounted at `dir`.
    pub mounted: bool,
    /// The global status says enabled.
    pub enabled: bool,
    pub handlers: Vec<Handler>,
}

impl BinfmtInfo {
    /// Read the handlers under `dir` (normally [`DEFAULT_DIR`]). Not mounted is not an error.
    pub fn read(dir: &Path) -> Result<BinfmtInfo> {
        let status = dir.join("status");
        let Ok(st) = std::fs::read_to_string(&status) else {
            return Ok(BinfmtInfo {
                dir: dir.into(),
                mounted: false,
                enabled: false,
                handlers: Vec::new(),
            });
        };
        let mut handlers = Vec::new();
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "status" && n != "register")
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            handlers.push(Handler::parse(&n, &text)?);
        }
        Ok(BinfmtInfo {
            dir: dir.into(),
            mounted: true,
            enabled: st.trim() == "enabled",
            handlers,
        })
    }

    /// The system's binfmt_misc.
    pub fn system() -> Result<BinfmtInfo> {
        Self::read(Path::new(DEFAULT_DIR))
    }

    /// The enabled handler that would run an ELF executable of `platform`.
    pub fn handler_for(&self, platform: &Platform) -> Option<&Handler> {
        if !self.enabled {
            return None;
        }
        let header = elf_header(platform)?;
        self.handlers.iter().find(|h| h.matches(&header))
    }
}

/// The first 20 bytes of an ELF executable (ET_EXEC) for `platform`: class, endianness and e_machine.
pub fn elf_header(platform: &Platform) -> Option<[u8; 20]> {
    // (64-bit, little-endian, e_machine)
    let (class64, le, machine): (bool, bool, u16) = match platform.architecture.as_str() {
        "amd64" => (true, true, 62),
        "386" => (false, true, 3),
        "arm64" => (true, true, 183),
        "arm" => (false, true, 40),
        "ppc64le" => (true, true, 21),
        "ppc64" => (true, false, 21),
        "s390x" => (true, false, 22),
        "riscv64" => (true, true, 243),
        "mips64le" => (true, true, 8),
        "mips64" => (true, false, 8),
        "loong64" => (true, true, 258),
        _ => return None,
    };
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if class64 { 2 } else { 1 };
    h[5] = if le { 1 } else { 2 };
    h[6] = 1; // EV_CURRENT
    let (etype, mach) = if le {
        (2u16.to_le_bytes(), machine.to_le_bytes())
    } else {
        (2u16.to_be_bytes(), machine.to_be_bytes())
    };
    h[16..18].copy_from_slice(&etype);
    h[18..20].copy_from_slice(&mach);
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn parses_a_handler_and_matches_elf_headers() {
        let h = Handler::parse("qemu-aarch64", AARCH64).unwrap();
        assert!(h.enabled && h.flags.fix_binary && h.flags.preserve_argv0 && !h.flags.open_binary);
        assert_eq!(
            h.interpreter,
            Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
        );
        assert_eq!(h.magic.len(), 20);
        assert!(h.matches(&elf_header(&"linux/arm64".parse().unwrap()).unwrap()));
        assert!(!h.matches(&elf_header(&"linux/amd64".parse().unwrap()).unwrap()));
        assert!(!h.matches(&elf_header(&"linux/arm/v7".parse().unwrap()).unwrap()));
        assert!(!h.matches(b"\x7fELF"));
    }

    #[test]
    fn reads_a_private_directory() {
        let d = tempfile::tempdir().unwrap();
        assert!(!BinfmtInfo::read(d.path()).unwrap().mounted);
        std::fs::write(d.path().join("status"), "enabled\n").unwrap();
        std::fs::write(d.path().join("register"), "").unwrap();
        std::fs::write(d.path().join("qemu-aarch64"), AARCH64).unwrap();
        std::fs::write(
            d.path().join("off"),
            AARCH64.replace("enabled\n", "disabled\n"),
        )
        .unwrap();
        let info = BinfmtInfo::read(d.path()).unwrap();
        assert!(info.mounted && info.enabled);
        assert_eq!(info.handlers.len(), 2);
        assert_eq!(
            info.handler_for(&"linux/arm64".parse().unwrap())
                .unwrap()
                .name,
            "qemu-aarch64"
        );
        assert!(info.handler_for(&"linux/s390x".parse().unwrap()).is_none());
    }
}
