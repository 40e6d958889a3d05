//! Platforms (os/arch/variant): parsing, normalisation as containerd does it, and host detection.

use anyhow::{Result, bail};
use std::fmt;

/// An OCI platform: `linux/arm64/v8`, `linux/amd64`, `linux/arm/v7`.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Normalise an architecture and variant: aarch64→arm64, x86_64→amd64, armhf→arm/v7, armel→arm/v6, ...
pub fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant
        .map(|v| v.to_ascii_lowercase())
        .filter(|v| !v.is_empty());
    match arch.as_str() {
        "i386" | "i486" | "i586" | "i686" | "x86" => ("386".into(), None),
        "x86_64" | "x86-64" | "amd64" => {
            // amd64 v1 is the default and is left out, as containerd does
            ("amd64".into(), variant.filter(|v| v != "v1"))
        }
        "aarch64" | "arm64" => ("arm64".into(), variant.filter(|v| v != "v8")),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" | "armv7l" | "armv7" | "armv6l" | "armv6" | "armv5tel" | "armv5" => {
            let implied = match arch.as_str() {
                "armv7l" | "armv7" => "v7",
                "armv6l" | "armv6" => "v6",
                "armv5tel" | "armv5" => "v5",
                _ => "v7",
            };
            let v = variant.unwrap_or_else(|| implied.into());
            let v = if v.starts_with('v') {
                v
            } else {
                format!("v{v}")
            };
            ("arm".into(), Some(v))
        }
        "ppc64le" | "powerpc64le" => ("ppc64le".into(), None),
        "s390x" => ("s390x".into(), None),
        "riscv64" => ("riscv64".into(), variant),
        "mips64le" | "mips64el" => ("mips64le".into(), None),
        "loong64" | "loongarch64" => ("loong64".into(), None),
        _ => (arch, variant),
    }
}

impl Platform {
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        let (architecture, variant) = normalize_arch(arch, variant);
        Platform {
            os: os.to_ascii_lowercase(),
            architecture,
            variant,
        }
    }

    /// The platform this process runs on, arm variant included (read from /proc/cpuinfo on 32-bit arm).
    pub fn host() -> Self {
        let arch = std::env::consts::ARCH;
        let variant = if arch == "arm" {
            arm_variant_from_cpuinfo()
        } else {
            None
        };
        Platform::new("linux", arch, variant.as_deref())
    }

    /// The architecture as `uname -m` reports it inside such a container.
    pub fn uname_machine(&self) -> &str {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("amd64", _) => "x86_64",
            ("arm64", _) => "aarch64",
            ("arm", Some("v6")) => "armv6l",
            ("arm", Some("v5")) => "armv5tel",
            ("arm", _) => "armv7l",
            ("386", _) => "i686",
            (a, _) => a,
        }
    }

    /// Whether an image for `other` runs here: same os and architecture, and for arm a variant no newer.
    pub fn can_run(&self, other: &Platform) -> bool {
        if self.os != other.os {
            return false;
        }
        if self.architecture == other.architecture {
            return match (
                self.architecture.as_str(),
                self.variant.as_deref(),
                other.variant.as_deref(),
            ) {
                ("arm", Some(mine), Some(theirs)) => theirs <= mine,
                _ => true,
            };
        }
        matches!(
            (self.architecture.as_str(), other.architecture.as_str()),
            ("amd64", "386")
        )
    }
}

fn arm_variant_from_cpuinfo() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let arch = info.lines().find_map(|l| {
        l.strip_prefix("CPU architecture")
            .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
    })?;
    Some(match arch.as_str() {
        "8" | "AArch64" => "v8".into(),
        "7" => "v7".into(),
        "6" => "v6".into(),
        "5" | "5TE" | "5TEJ" => "v5".into(),
        other => format!("v{other}"),
    })
}

impl std::str::FromStr for Platform {
    type Err = anyhow::Error;
    /// `os/arch[/variant]`, or just `arch` (os linux).
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            bail!(
                "bad platform {s:?}: expected os/arch[/variant], e.g. linux/arm64 or linux/arm/v7"
            );
        }
        match parts.as_slice() {
            [arch] => Ok(Platform::new("linux", arch, None)),
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => bail!(
                "bad platform {s:?}: expected os/arch[/variant], e.g. linux/arm64 or linux/arm/v7"
            ),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let p: Platform = "linux/aarch64".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!("linux/arm64/v8".parse::<Platform>().unwrap(), p);
        assert_eq!(
            "linux/x86_64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            "linux/armhf".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            "linux/arm".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            "linux/arm/6".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            "arm64".parse::<Platform>().unwrap().to_string(),
            "linux/arm64"
        );
        assert!("linux//v7".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
    }

    #[test]
    fn host_and_compatibility() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert!(h.can_run(&h));
        let v7: Platform = "linux/arm/v7".parse().unwrap();
        let v6: Platform = "linux/arm/v6".parse().unwrap();
        assert!(v7.can_run(&v6));
        assert!(!v6.can_run(&v7));
        assert_eq!(
            "linux/arm64".parse::<Platform>().unwrap().uname_machine(),
            "aarch64"
        );
    }
}
