//! Choosing one instance of an index for `--multi-arch system`: the host platform, or the overrides.

use super::PlatformOverride;
use super::document::Index;
use anyhow::{Result, bail};

/// The host's platform in OCI terms (GOOS/GOARCH names).
pub fn host_platform() -> (String, String, Option<String>) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    let variant = match arch {
        "arm64" => Some("v8".to_string()),
        "arm" => Some("v7".to_string()),
        _ => None,
    };
    ("linux".to_string(), arch.to_string(), variant)
}

/// The wanted platform: the host's with overrides applied.
pub fn wanted(o: &PlatformOverride) -> (String, String, Option<String>) {
    let (os, arch, variant) = host_platform();
    let arch_overridden = o.arch.is_some();
    let arch = o.arch.clone().unwrap_or(arch);
    let variant = match (&o.variant, arch_overridden) {
        (Some(v), _) => Some(v.clone()),
        (None, true) => None,
        (None, false) => variant,
    };
    (o.os.clone().unwrap_or(os), arch, variant)
}

/// Pick the index entry (its position in `manifests`) that matches `o` (or the host). An exact variant
/// match wins; else an entry without a variant; else the first of that os/arch.
pub fn choose(index: &Index, o: &PlatformOverride) -> Result<usize> {
    let (os, arch, variant) = wanted(o);
    let list = &index.manifests;
    let mut fallback = None;
    for (i, m) in list.iter().enumerate() {
        let p = m.platform.as_ref();
        if p.and_then(|p| p.os.as_deref()) != Some(os.as_str())
            || p.and_then(|p| p.architecture.as_deref()) != Some(arch.as_str())
        {
            continue;
        }
        match (p.and_then(|p| p.variant.as_deref()), &variant) {
            (Some(v), Some(w)) if v == w => return Ok(i),
            (None, _) => {
                if fallback.is_none() || variant.is_none() {
                    fallback = Some(i)
                }
            }
            _ => {
                if fallback.is_none() && variant.is_none() {
                    fallback = Some(i)
                }
            }
        }
    }
    if let Some(i) = fallback {
        return Ok(i);
    }
    let have: Vec<String> = list
        .iter()
        .filter_map(|m| {
            let p = m.platform.as_ref()?;
            Some(format!(
                "{}/{}{}",
                p.os.as_deref()?,
                p.architecture.as_deref()?,
                p.variant
                    .as_deref()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default()
            ))
        })
        .collect();
    let want = format!(
        "{os}/{arch}{}",
        variant.map(|v| format!("/{v}")).unwrap_or_default()
    );
    bail!(
        "no image for {want} in the index (it has: {}); use --override-arch/--override-os, or --all",
        have.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_by_override() {
        let d = "sha256:00";
        let idx: Index = serde_json::from_value(json!({"manifests": [
            {"digest": d, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": d, "size": 1, "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
            {"digest": d, "size": 1, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
            {"digest": d, "size": 1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]}))
        .unwrap();
        let o = |a: &str, v: Option<&str>| PlatformOverride {
            os: None,
            arch: Some(a.into()),
            variant: v.map(str::to_string),
        };
        assert_eq!(choose(&idx, &o("amd64", None)).unwrap(), 0);
        assert_eq!(choose(&idx, &o("arm", Some("v7"))).unwrap(), 2);
        assert_eq!(choose(&idx, &o("arm64", None)).unwrap(), 3);
        let err = choose(&idx, &o("s390x", None)).unwrap_err().to_string();
        assert!(err.contains("linux/arm/v6"), "{err}");
    }
}
