//! Whether an installed version is affected by one OSV `affected[]` entry: its `versions[]` list, and its
//! `ECOSYSTEM` and `SEMVER` ranges evaluated as the OSV schema's reference algorithm does (events sorted by
//! version, `introduced` opens, `fixed` closes at the version, `last_affected` closes after it, `limit`
//! caps the whole range). `GIT` ranges are skipped: an installed package has no commit.

use crate::version::Scheme;
use serde_json::Value;
use std::cmp::Ordering;

/// A match: the version that fixes it, when the range names one above the installed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub fixed: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Introduced,
    Fixed,
    LastAffected,
    Limit,
}

/// Evaluates one affected entry for `version`; `Err` names a version the scheme cannot order.
pub fn affected(
    entry: &Value,
    scheme: Option<Scheme>,
    version: &str,
) -> Result<Option<Hit>, String> {
    let mut hit = None;
    if let Some(list) = entry.get("versions").and_then(Value::as_array) {
        let listed = list.iter().filter_map(Value::as_str).any(|v| {
            v == version || scheme.is_some_and(|s| s.compare(v, version) == Ok(Ordering::Equal))
        });
        if listed {
            hit = Some(Hit { fixed: None });
        }
    }
    for range in entry
        .get("ranges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let scheme = match range.get("type").and_then(Value::as_str) {
            Some("SEMVER") => Scheme::SemVer,
            Some("ECOSYSTEM") => match scheme {
                Some(s) => s,
                None => continue,
            },
            _ => continue,
        };
        if let Some(range_hit) = in_range(range, scheme, version)? {
            // Prefer a hit that names a fix.
            if hit.as_ref().is_none_or(|h: &Hit| h.fixed.is_none()) {
                hit = Some(range_hit);
            }
        }
    }
    Ok(hit)
}

/// SemVer ranges in OSV carry no `v`; Go's installed versions do.
fn normalise(scheme: Scheme, v: &str) -> String {
    match scheme {
        Scheme::SemVer => v.strip_prefix('v').unwrap_or(v).to_string(),
        _ => v.to_string(),
    }
}

fn in_range(range: &Value, scheme: Scheme, version: &str) -> Result<Option<Hit>, String> {
    let mut events = Vec::new();
    for e in range
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(obj) = e.as_object() else { continue };
        for (key, kind) in [
            ("introduced", Event::Introduced),
            ("fixed", Event::Fixed),
            ("last_affected", Event::LastAffected),
            ("limit", Event::Limit),
        ] {
            if let Some(v) = obj.get(key).and_then(Value::as_str) {
                events.push((kind, normalise(scheme, v)));
            }
        }
    }
    let version = normalise(scheme, version);
    let cmp = |a: &str, b: &str| -> Result<Ordering, String> {
        match (a, b) {
            ("0", "0") => Ok(Ordering::Equal),
            ("0", _) => Ok(Ordering::Less),
            (_, "0") => Ok(Ordering::Greater),
            _ => scheme.compare(a, b),
        }
    };
    // Sort by version (an introduced "0" first); a failed comparison makes the range unusable.
    let mut error = None;
    events.sort_by(|a, b| {
        cmp(&a.1, &b.1).unwrap_or_else(|e| {
            error.get_or_insert(e);
            Ordering::Equal
        })
    });
    if let Some(e) = error {
        return Err(e);
    }
    let mut vulnerable = false;
    let mut fixed = None;
    for (kind, at) in &events {
        let order = if at == "0" && *kind == Event::Introduced {
            Ordering::Greater
        } else {
            cmp(&version, at)?
        };
        match kind {
            Event::Introduced if order != Ordering::Less => vulnerable = true,
            Event::Fixed if order != Ordering::Less => vulnerable = false,
            Event::LastAffected if order == Ordering::Greater => vulnerable = false,
            Event::Limit if order != Ordering::Less => return Ok(None),
            Event::Fixed if vulnerable && fixed.is_none() => fixed = Some(at.clone()),
            _ => {}
        }
    }
    Ok(vulnerable.then_some(Hit { fixed }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(entry: Value, scheme: Scheme, v: &str) -> Option<Option<String>> {
        affected(&entry, Some(scheme), v).unwrap().map(|h| h.fixed)
    }

    #[test]
    fn ranges_follow_the_osv_algorithm() {
        let r = json!({"ranges": [{"type": "ECOSYSTEM", "events": [
            {"introduced": "0"}, {"fixed": "1.2.0"}, {"introduced": "2.0.0"}, {"last_affected": "2.3.0"}]}]});
        assert_eq!(
            check(r.clone(), Scheme::Pep440, "1.0"),
            Some(Some("1.2.0".into()))
        );
        assert_eq!(check(r.clone(), Scheme::Pep440, "1.2.0"), None);
        assert_eq!(check(r.clone(), Scheme::Pep440, "1.5"), None);
        assert_eq!(check(r.clone(), Scheme::Pep440, "2.3.0"), Some(None));
        assert_eq!(check(r.clone(), Scheme::Pep440, "2.3.1"), None);
        let limited = json!({"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"limit": "1.5"}]}]});
        assert_eq!(check(limited.clone(), Scheme::Pep440, "1.4"), Some(None));
        assert_eq!(check(limited, Scheme::Pep440, "1.5"), None);
        let listed = json!({"versions": ["1.0-1"], "ranges": []});
        assert_eq!(check(listed.clone(), Scheme::Dpkg, "1.0-1"), Some(None));
        assert_eq!(check(listed, Scheme::Dpkg, "1.0-2"), None);
        let semver = json!({"ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.4.2"}]}]});
        assert_eq!(
            check(semver, Scheme::Go, "v1.4.1"),
            Some(Some("1.4.2".into()))
        );
        let deb = json!({"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]});
        assert_eq!(
            check(deb.clone(), Scheme::Dpkg, "3.0.11-1~deb12u1"),
            Some(Some("3.0.11-1~deb12u2".into()))
        );
        assert_eq!(check(deb, Scheme::Dpkg, "3.0.11-1"), None);
    }
}
