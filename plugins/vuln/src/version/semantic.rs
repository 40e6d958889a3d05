//! SemVer-family orders: SemVer 2.0.0 precedence (the `semver` crate; build metadata ignored), npm's
//! (node-semver: a leading `v` or `=` allowed), and Go modules' (`v` required, `vMAJOR` and
//! `vMAJOR.MINOR` shorthands, pseudo-versions ordering as the pre-releases they are, `+incompatible`).

use semver::Version;
use std::cmp::Ordering;

fn parse(v: &str) -> Result<Version, String> {
    Version::parse(v).map_err(|e| format!("{v:?} is not a SemVer version: {e}"))
}

/// SemVer precedence: major, minor, patch, then pre-release; build metadata does not count.
fn precedence(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

/// SemVer 2.0.0 (crates.io, and OSV's `SEMVER` ranges).
pub fn compare_semver(a: &str, b: &str) -> Result<Ordering, String> {
    Ok(precedence(&parse(a.trim())?, &parse(b.trim())?))
}

/// node-semver's `compare` (strict mode): surrounding spaces and one leading `v` are ignored.
pub fn compare_npm(a: &str, b: &str) -> Result<Ordering, String> {
    let strip = |v: &str| {
        let v = v.trim();
        v.strip_prefix('v').unwrap_or(v).to_string()
    };
    Ok(precedence(&parse(&strip(a))?, &parse(&strip(b))?))
}

/// Go module versions, as golang.org/x/mod/semver's `Compare` orders valid ones.
pub fn compare_go(a: &str, b: &str) -> Result<Ordering, String> {
    Ok(precedence(&go_version(a)?, &go_version(b)?))
}

fn go_version(v: &str) -> Result<Version, String> {
    let bare = v
        .strip_prefix('v')
        .ok_or_else(|| format!("{v:?} is not a Go module version: it must start with v"))?;
    // `v1` and `v1.2` are shorthands for v1.0.0 and v1.2.0 (without pre-release or build).
    let dots = bare.chars().filter(|&c| c == '.').count();
    let plain = bare.chars().all(|c| c.is_ascii_digit() || c == '.');
    let full = match dots {
        0 if plain => format!("{bare}.0.0"),
        1 if plain => format!("{bare}.0"),
        _ => bare.to_string(),
    };
    parse(&full).map_err(|_| format!("{v:?} is not a Go module version"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn go_pseudo_versions_and_incompatible() {
        let c = |a, b| compare_go(a, b).unwrap();
        assert_eq!(c("v0.0.0-20191109021931-daa7c04131f5", "v0.1.0"), Less);
        assert_eq!(c("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.3"), Greater);
        assert_eq!(c("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.4"), Less);
        assert_eq!(c("v2.0.0+incompatible", "v2.0.0"), Equal);
        assert_eq!(c("v1", "v1.0.0"), Equal);
        assert_eq!(c("v1.2", "v1.2.1"), Less);
        assert!(compare_go("1.2.3", "v1.2.3").is_err());
    }

    #[test]
    fn npm_and_semver() {
        assert_eq!(compare_npm("v1.2.3", " 1.2.3").unwrap(), Equal);
        assert!(compare_npm("=1.2.3", "1.2.3").is_err());
        assert_eq!(
            compare_npm("1.0.0-alpha.1", "1.0.0-alpha.beta").unwrap(),
            Less
        );
        assert_eq!(
            compare_semver("1.0.0+build.1", "1.0.0+build.2").unwrap(),
            Equal
        );
        assert_eq!(compare_semver("1.0.0-rc.1", "1.0.0").unwrap(), Less);
        assert!(compare_semver("1.0", "1.0.0").is_err());
    }
}
