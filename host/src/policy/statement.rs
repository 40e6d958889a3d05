//! Sigstore bundles about images (cosign v3's `cosign sign --new-bundle-format`, `cosign attest`): the
//! in-toto statement inside a bundle's DSSE envelope, made here for signing and checked here after the
//! signer plugin has checked the signature (statement type, predicate type, subject digest, identity).

use super::config::IdentityMatch;
use super::identity;
use crate::reference::Reference;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The media type of a sigstore bundle, and the `artifactType` of the referrer manifest that carries one.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The statement type lade writes (v1); v0.1 is read too.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
const STATEMENT_TYPES: &[&str] = &[STATEMENT_V1, "https://in-toto.io/Statement/v0.1"];
/// The predicate type of a cosign v3 image signature (the predicate is `{}`).
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The referrer annotation naming a bundle's predicate type (cosign's bundle spec).
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// The referrer annotation naming what a bundle holds (`dsse-envelope` or `message-signature`).
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";

/// An in-toto statement whose one subject is the manifest `digest` (`sha256:<hex>`), named `name` (the
/// image's docker reference, when it has one).
pub fn make(
    name: Option<&str>,
    digest: &str,
    predicate_type: &str,
    predicate: Value,
) -> Result<Vec<u8>> {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        bail!("cannot attest {digest}: only sha256 manifest digests are supported");
    };
    let mut subject = json!({"digest": {"sha256": hex}});
    if let Some(n) = name {
        subject["name"] = n.into();
    }
    Ok(serde_json::to_vec(&json!({
        "_type": STATEMENT_V1,
        "subject": [subject],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))?)
}

/// A statement's parts lade checks. Untrusted until its signature was checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub predicate_type: String,
    /// (name, sha256 hex) of each subject; a subject without a sha256 digest is left out.
    pub subjects: Vec<(Option<String>, String)>,
}

/// Parse an in-toto statement (the payload of a verified DSSE envelope).
pub fn parse(payload: &[u8]) -> Result<Statement> {
    let v: Value =
        serde_json::from_slice(payload).context("the bundle's statement is not valid JSON")?;
    let ty = v["_type"].as_str().unwrap_or_default();
    if !STATEMENT_TYPES.contains(&ty) {
        bail!(
            "the bundle's payload is not an in-toto statement (_type {:?}, expected {STATEMENT_V1})",
            v["_type"]
        );
    }
    let predicate_type = v["predicateType"]
        .as_str()
        .context("the statement has no predicateType")?
        .to_string();
    let list = v["subject"]
        .as_array()
        .context("the statement has no subject list")?;
    let mut subjects = vec![];
    for s in list {
        if let Some(hex) = s["digest"]["sha256"].as_str() {
            let name = s["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(str::to_string);
            subjects.push((name, hex.to_ascii_lowercase()));
        }
    }
    Ok(Statement {
        predicate_type,
        subjects,
    })
}

impl Statement {
    /// The subject naming the manifest `digest`, or an error saying which digests the statement is about.
    pub fn subject_for(&self, digest: &str) -> Result<Option<&str>> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        match self.subjects.iter().find(|(_, h)| h == hex) {
            Some((name, _)) => Ok(name.as_deref()),
            None => bail!(
                "the bundle is about {}, not the image's manifest {digest}",
                match self.subjects.len() {
                    0 => "no sha256 subject".to_string(),
                    _ => self
                        .subjects
                        .iter()
                        .map(|(_, h)| format!("sha256:{h}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            ),
        }
    }
}

/// The checks on a verified image-signature statement: cosign's sign predicate, a subject that is the
/// manifest `digest`, and (with a policy's `signedIdentity`) the subject's name.
pub fn check_signature(
    payload: &[u8],
    digest: &str,
    image: Option<&Reference>,
    m: Option<&IdentityMatch>,
) -> Result<Option<String>> {
    let st = parse(payload)?;
    if st.predicate_type != SIGN_PREDICATE {
        bail!(
            "the bundle is an attestation ({}), not an image signature ({SIGN_PREDICATE})",
            st.predicate_type
        );
    }
    let name = st.subject_for(digest)?.map(str::to_string);
    if let Some(m) = m {
        let Some(n) = &name else {
            bail!(
                "the bundle's statement names no image (its subject has no name), so signedIdentity cannot be checked"
            );
        };
        // A name with a tag or digest is a full identity, as in a simple-signing payload; cosign writes
        // the repository alone.
        let full = crate::reference::parse(n).is_ok_and(|r| r.tag.is_some() || r.digest.is_some());
        let ok = if full {
            identity::matches(m, image, n)
        } else {
            identity::matches_repository(m, image, n)
        };
        if !ok {
            bail!(
                "the bundle is for identity {n:?}, which the policy's signedIdentity does not accept for this image"
            );
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_round_trip_and_other_subjects_are_refused() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let other = format!("sha256:{}", "cd".repeat(32));
        let s = make(Some("example.com/app:1"), &d, SIGN_PREDICATE, json!({})).unwrap();
        assert_eq!(
            check_signature(&s, &d, None, None).unwrap().as_deref(),
            Some("example.com/app:1")
        );
        let e = check_signature(&s, &other, None, None).unwrap_err();
        assert!(e.to_string().contains(&d), "{e}");
        let att = make(None, &d, "https://spdx.dev/Document", json!({})).unwrap();
        let e = check_signature(&att, &d, None, None).unwrap_err();
        assert!(e.to_string().contains("attestation"), "{e}");
        let e = parse(b"{\"_type\": \"x\"}").unwrap_err();
        assert!(e.to_string().contains("in-toto"), "{e}");
    }

    #[test]
    fn identities_are_matched_by_tag_or_by_repository() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let image = crate::reference::parse("example.com/app:1").unwrap();
        let exact = IdentityMatch::MatchRepoDigestOrExact;
        for (name, ok) in [
            ("example.com/app:1", true),
            ("example.com/app:2", false),
            ("example.com/app", true),
            ("example.com/other", false),
        ] {
            let s = make(Some(name), &d, SIGN_PREDICATE, json!({})).unwrap();
            assert_eq!(
                check_signature(&s, &d, Some(&image), Some(&exact)).is_ok(),
                ok,
                "{name}"
            );
        }
        let unnamed = make(None, &d, SIGN_PREDICATE, json!({})).unwrap();
        assert!(check_signature(&unnamed, &d, Some(&image), Some(&exact)).is_err());
    }

    /// A fake bundle: `<key id>\n<statement>`; a key file is its id.
    struct FakeBundles;

    impl crate::policy::Verifier for FakeBundles {
        fn verify_gpg(&self, _: &[Vec<u8>], _: &[u8]) -> Result<Vec<u8>> {
            bail!("no GPG here")
        }
        fn verify_sigstore(&self, _: &[Vec<u8>], _: &[u8], _: &str) -> Result<()> {
            bail!("no tag signatures here")
        }
        fn verify_sigstore_bundle(&self, keys: &[Vec<u8>], bundle: &[u8]) -> Result<Vec<u8>> {
            let nl = bundle.iter().position(|&b| b == b'\n').unwrap();
            if !keys.iter().any(|k| k[..] == bundle[..nl]) {
                bail!("the sigstore bundle is not valid: no key verifies it");
            }
            Ok(bundle[nl + 1..].to_vec())
        }
    }

    #[test]
    fn sigstore_signed_accepts_bundles_and_names_why_it_refuses_one() {
        use crate::policy::eval::{self, Subject};
        use crate::policy::signature::{Signature, manifest_digest};
        let manifest = br#"{"schemaVersion":2}"#;
        let d = manifest_digest(manifest).unwrap();
        let image = crate::policy::scope::policy_ref(
            "docker://q.io/team/app:1",
            std::path::Path::new("/st"),
            None,
        )
        .unwrap();
        let k1 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "K1");
        let policy = crate::policy::Policy::parse(
            format!(r#"{{"default":[{{"type":"sigstoreSigned","keyData":"{k1}"}}]}}"#).as_bytes(),
        )
        .unwrap();
        let bundle = |key: &str, name: &str, digest: &str, predicate: &str| {
            let st = make(Some(name), digest, predicate, json!({})).unwrap();
            Signature::Bundle([format!("{key}\n").as_bytes(), &st].concat())
        };
        let run = |sigs: &[Signature]| {
            eval::evaluate(
                &policy.default,
                &Subject {
                    image: &image,
                    manifest,
                    signatures: sigs,
                },
                &FakeBundles,
            )
            .map_err(|e| format!("{e:#}"))
        };
        let other = format!("sha256:{}", "0".repeat(64));
        assert!(run(&[bundle("K1", "q.io/team/app:1", &d, SIGN_PREDICATE)]).is_ok());
        assert!(run(&[bundle("K1", "q.io/team/app", &d, SIGN_PREDICATE)]).is_ok());
        for (sig, why) in [
            (
                bundle("K2", "q.io/team/app:1", &d, SIGN_PREDICATE),
                "no key verifies",
            ),
            (
                bundle("K1", "q.io/team/app:1", &other, SIGN_PREDICATE),
                "not the image's manifest",
            ),
            (
                bundle("K1", "evil.io/app:1", &d, SIGN_PREDICATE),
                "evil.io/app:1",
            ),
            (
                bundle("K1", "q.io/team/app:1", &d, "https://spdx.dev/Document"),
                "attestation",
            ),
        ] {
            let e = run(&[sig]).unwrap_err();
            assert!(e.contains(why), "{e} should contain {why}");
        }
    }
}
