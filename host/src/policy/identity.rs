//! `signedIdentity` matching: whether the `docker-reference` a signature claims is acceptable for the image
//! being checked, with containers/image's semantics for each matcher (policy_reference_match.go).

use super::config::IdentityMatch;
use crate::reference::{self, Reference};
use std::sync::LazyLock;

/// A reference "is name only" when it has neither tag nor digest.
fn name_only(r: &Reference) -> bool {
    r.tag.is_none() && r.digest.is_none()
}

/// `matchRepoDigestOrExact` on two parsed references.
fn repo_digest_or_exact(intended: &Reference, signed: &Reference) -> bool {
    if name_only(signed) {
        return false;
    }
    if intended.tag.is_some() {
        signed.to_string() == intended.to_string()
    } else if intended.digest.is_some() {
        signed.name() == intended.name()
    } else {
        false
    }
}

/// Whether `signed` (the signature's claimed `docker-reference`, unparsed) is accepted for an image whose
/// own reference is `image` (None: the transport has no docker reference, e.g. oci: or dir:).
pub fn matches(m: &IdentityMatch, image: Option<&Reference>, signed: &str) -> bool {
    let Ok(sig) = reference::parse(signed) else {
        return false;
    };
    match m {
        IdentityMatch::ExactReference(r) => {
            !name_only(r) && !name_only(&sig) && sig.to_string() == r.to_string()
        }
        IdentityMatch::ExactRepository(r) => sig.name() == r.name(),
        _ => {
            let Some(intended) = image else {
                return false;
            };
            match m {
                IdentityMatch::MatchExact => {
                    !name_only(intended)
                        && !name_only(&sig)
                        && sig.to_string() == intended.to_string()
                }
                IdentityMatch::MatchRepoDigestOrExact => repo_digest_or_exact(intended, &sig),
                IdentityMatch::MatchRepository => sig.name() == intended.name(),
                IdentityMatch::RemapIdentity {
                    prefix,
                    signed_prefix,
                } => match remap(intended, prefix, signed_prefix) {
                    Some(r) => repo_digest_or_exact(&r, &sig),
                    None => false,
                },
                IdentityMatch::ExactReference(_) | IdentityMatch::ExactRepository(_) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

/// [`matches`] for a signature that names a repository only (a cosign v3 bundle's in-toto subject `name`):
/// every matcher compares repositories, since there is no tag to compare.
pub fn matches_repository(m: &IdentityMatch, image: Option<&Reference>, signed: &str) -> bool {
    let Ok(sig) = reference::parse(signed) else {
        return false;
    };
    match m {
        IdentityMatch::ExactReference(r) | IdentityMatch::ExactRepository(r) => {
            sig.name() == r.name()
        }
        IdentityMatch::RemapIdentity {
            prefix,
            signed_prefix,
        } => image
            .and_then(|i| remap(i, prefix, signed_prefix))
            .is_some_and(|r| r.name() == sig.name()),
        _ => image.is_some_and(|i| i.name() == sig.name()),
    }
}

/// `remapIdentity`: `intended` with `prefix` replaced by `signed_prefix` when its name starts with
/// `prefix` at a path boundary; unchanged otherwise; None when the result is not a canonical reference.
fn remap(intended: &Reference, prefix: &str, signed_prefix: &str) -> Option<Reference> {
    let name = intended.name();
    let hit = name == prefix
        || (name.len() > prefix.len()
            && name.starts_with(prefix)
            && name.as_bytes()[prefix.len()] == b'/');
    if !hit {
        return Some(intended.clone());
    }
    let whole = intended.to_string();
    let rewritten = whole.replacen(prefix, signed_prefix, 1);
    // ParseNamed: the rewritten string must already be in canonical (fully qualified) form.
    let parsed = reference::parse(&rewritten).ok()?;
    (parsed.to_string() == rewritten).then_some(parsed)
}

static DOMAIN: &str = r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?";
static COMPONENT: &str = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
static DOMAIN_ONLY: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(&format!("^{DOMAIN}$")).expect("regex"));
static DOMAIN_PREFIXED_NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(&format!("^{DOMAIN}/{COMPONENT}(?:/{COMPONENT})*$")).expect("regex")
});

/// A valid `prefix`/`signedPrefix` of `remapIdentity`: a host[:port], or a name that starts with one.
pub fn valid_remap_prefix(s: &str) -> bool {
    DOMAIN_ONLY.is_match(s) || DOMAIN_PREFIXED_NAME.is_match(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        reference::parse(s).unwrap()
    }

    const D1: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    const D2: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000002";

    /// (image, signed) pairs and the expected result of each matcher, after containers/image's
    /// policy_reference_match_test.go tables.
    #[test]
    fn matchers_against_containers_image_cases() {
        let tagged = "docker.io/library/busybox:latest";
        let digested = format!("docker.io/library/busybox@{D1}");
        let cases: Vec<(&str, String, [bool; 3])> = vec![
            // image, signed → [matchExact, matchRepoDigestOrExact, matchRepository]
            (tagged, tagged.into(), [true, true, true]),
            (tagged, "busybox:latest".into(), [true, true, true]),
            (
                tagged,
                "docker.io/library/busybox:notlatest".into(),
                [false, false, true],
            ),
            (
                tagged,
                "docker.io/library/busybox".into(),
                [false, false, true],
            ),
            (
                tagged,
                "docker.io/library/other:latest".into(),
                [false, false, false],
            ),
            (tagged, digested.clone(), [false, false, true]),
            (&digested, digested.clone(), [true, true, true]),
            (
                &digested,
                format!("docker.io/library/busybox@{D2}"),
                [false, true, true],
            ),
            (
                &digested,
                "docker.io/library/busybox:latest".into(),
                [false, true, true],
            ),
            (
                &digested,
                "docker.io/library/busybox".into(),
                [false, false, true],
            ),
            (
                &digested,
                format!("quay.io/library/busybox@{D1}"),
                [false, false, false],
            ),
            (tagged, "docker.io/INVALID".into(), [false, false, false]),
        ];
        for (image, signed, want) in cases {
            let img = r(image);
            let got = [
                matches(&IdentityMatch::MatchExact, Some(&img), &signed),
                matches(&IdentityMatch::MatchRepoDigestOrExact, Some(&img), &signed),
                matches(&IdentityMatch::MatchRepository, Some(&img), &signed),
            ];
            assert_eq!(got, want, "image {image}, signed {signed}");
        }
    }

    #[test]
    fn image_without_docker_reference_matches_only_exact_matchers() {
        let sig = "quay.io/a/b:1";
        assert!(!matches(&IdentityMatch::MatchExact, None, sig));
        assert!(!matches(&IdentityMatch::MatchRepoDigestOrExact, None, sig));
        assert!(!matches(&IdentityMatch::MatchRepository, None, sig));
        assert!(matches(
            &IdentityMatch::ExactReference(r("quay.io/a/b:1")),
            None,
            sig
        ));
        assert!(!matches(
            &IdentityMatch::ExactReference(r("quay.io/a/b:2")),
            None,
            sig
        ));
        assert!(matches(
            &IdentityMatch::ExactRepository(r("quay.io/a/b")),
            None,
            sig
        ));
        assert!(matches(
            &IdentityMatch::ExactRepository(r("quay.io/a/b")),
            None,
            "quay.io/a/b:9"
        ));
        assert!(!matches(
            &IdentityMatch::ExactRepository(r("quay.io/a/c")),
            None,
            sig
        ));
        // exactReference needs a tag or digest on the signed side too.
        assert!(!matches(
            &IdentityMatch::ExactReference(r("quay.io/a/b:1")),
            None,
            "quay.io/a/b"
        ));
    }

    #[test]
    fn remap_identity() {
        let m = |p: &str, s: &str| IdentityMatch::RemapIdentity {
            prefix: p.into(),
            signed_prefix: s.into(),
        };
        let img = r("mirror.example/ns/app:1");
        // Remapped to the signed name, then matchRepoDigestOrExact.
        assert!(matches(
            &m("mirror.example/ns", "quay.io/upstream"),
            Some(&img),
            "quay.io/upstream/app:1"
        ));
        assert!(!matches(
            &m("mirror.example/ns", "quay.io/upstream"),
            Some(&img),
            "mirror.example/ns/app:1"
        ));
        // A prefix must end at a path boundary: "mirror.example/n" does not cover "mirror.example/ns".
        assert!(!matches(
            &m("mirror.example/n", "quay.io/x"),
            Some(&img),
            "quay.io/xs/app:1"
        ));
        assert!(matches(
            &m("mirror.example/n", "quay.io/x"),
            Some(&img),
            "mirror.example/ns/app:1"
        ));
        // Whole-host remap.
        assert!(matches(
            &m("mirror.example", "quay.io"),
            Some(&img),
            "quay.io/ns/app:1"
        ));
        // A result that is not canonical (docker.io short form) does not match anything.
        assert!(!matches(
            &m("mirror.example/ns", "busybox"),
            Some(&img),
            "docker.io/library/busybox/app:1"
        ));
    }

    #[test]
    fn remap_prefix_validation() {
        for ok in [
            "quay.io",
            "quay.io:5000",
            "quay.io/ns",
            "localhost/a/b",
            "[::1]:5000/x",
            "ns/shortname",
        ] {
            assert!(valid_remap_prefix(ok), "{ok}");
        }
        for bad in [
            "",
            "quay.io/",
            "quay.io/Upper",
            "quay.io//x",
            "quay.io/x:tag",
            "quay.io/x@sha256:00",
            "-bad",
        ] {
            assert!(!valid_remap_prefix(bad), "{bad}");
        }
    }
}
