//! The policy engine as a whole: strict parsing (after containers/image's policy_config_test.go), scope
//! precedence (policy_eval_test.go), and every requirement type evaluated with a fake verifier whose
//! "signatures" are bound to a key id and the payload, so only the engine's own checks are under test.

use super::config::{IdentityMatch, KeySource, Policy, Requirement};
use super::eval::{self, NoVerifier, ScopeName, Subject, Verifier};
use super::scope::{PolicyRef, policy_ref};
use super::signature::{self, Signature};
use anyhow::{Result, bail};
use base64::Engine;
use std::path::Path;

fn parse_err(s: &str) -> String {
    format!("{:#}", Policy::parse(s.as_bytes()).unwrap_err())
}

const ACCEPT: &str = r#"[{"type":"insecureAcceptAnything"}]"#;

fn with_default(req: &str) -> String {
    format!(r#"{{"default":{ACCEPT},"transports":{{"docker":{{"x.io":[{req}]}}}}}}"#)
}

#[test]
fn parses_every_requirement_and_identity() {
    let b64 = base64::engine::general_purpose::STANDARD.encode("KEY");
    let p = Policy::parse(
        format!(
            r#"{{
        "default": [{{"type": "reject"}}],
        "transports": {{
            "docker": {{
                "": [{{"type": "insecureAcceptAnything"}}],
                "a.io/gpg": [{{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k.gpg"}}],
                "a.io/gpgs": [{{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": ["/a", "/b"],
                               "signedIdentity": {{"type": "matchRepository"}}}}],
                "a.io/data": [{{"type": "signedBy", "keyType": "GPGKeys", "keyData": "{b64}",
                               "signedIdentity": {{"type": "exactReference", "dockerReference": "q.io/a:1"}}}}],
                "a.io/ss": [{{"type": "sigstoreSigned", "keyPath": "/c.pub",
                             "signedIdentity": {{"type": "remapIdentity", "prefix": "a.io", "signedPrefix": "q.io/up"}}}}],
                "a.io/ssd": [{{"type": "sigstoreSigned", "keyDatas": ["{b64}", "{b64}"],
                              "signedIdentity": {{"type": "exactRepository", "dockerRepository": "q.io/a"}}}}],
                "a.io/f": [{{"type": "sigstoreSigned", "fulcio": {{"caPath": "/ca", "oidcIssuer": "https://i", "subjectEmail": "a@b"}},
                            "rekorPublicKeyPath": "/rekor.pub", "signedIdentity": {{"type": "matchExact"}}}}],
                "a.io/pki": [{{"type": "sigstoreSigned", "pki": {{"caRootsPath": "/r", "subjectHostname": "h"}}}}],
                "a.io/base": [{{"type": "signedBaseLayer", "baseLayerIdentity": {{"type": "matchRepoDigestOrExact"}}}}]
            }},
            "oci": {{"/srv/images": [{{"type": "reject"}}]}},
            "lade": {{"[lade@/st]docker.io/library": [{{"type": "reject"}}]}},
            "some-future-transport": {{"whatever": [{{"type": "reject"}}]}}
        }}
    }}"#
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(p.default, [Requirement::Reject]);
    let d = &p.transports["docker"];
    assert_eq!(d.len(), 9);
    let Requirement::SignedBy {
        keys,
        signed_identity,
        ..
    } = &d["a.io/gpg"][0]
    else {
        panic!()
    };
    assert_eq!(keys, &KeySource::Path("/k.gpg".into()));
    assert_eq!(
        signed_identity,
        &IdentityMatch::MatchRepoDigestOrExact,
        "the default signedIdentity"
    );
    let Requirement::SignedBy { keys, .. } = &d["a.io/data"][0] else {
        panic!()
    };
    assert_eq!(keys, &KeySource::Data(b"KEY".to_vec()));
    let Requirement::SigstoreSigned(s) = &d["a.io/ssd"][0] else {
        panic!()
    };
    assert_eq!(
        s.trust,
        super::config::SigstoreTrust::PublicKeys(KeySource::Datas(vec![b"KEY".to_vec(); 2]))
    );
    let Requirement::SigstoreSigned(s) = &d["a.io/f"][0] else {
        panic!()
    };
    assert_eq!(s.rekor, Some(KeySource::Path("/rekor.pub".into())));
}

/// Each malformed policy and (part of) the message it gets: the path in the JSON and the reason.
#[test]
fn strict_parse_errors_name_the_path() {
    let cases: Vec<(String, &str)> = vec![
        // The top level.
        ("{}".into(), "the default policy is missing"),
        (
            format!(r#"{{"default":{ACCEPT},"unknown":1}}"#),
            r#"the top level: unknown key "unknown""#,
        ),
        (
            format!(r#"{{"default":{ACCEPT},"default":{ACCEPT}}}"#),
            r#"the top level: duplicate key "default""#,
        ),
        (
            r#"{"default":[]}"#.into(),
            "default: the list of requirements must not be empty",
        ),
        (
            r#"{"default":{}}"#.into(),
            "default: expected a list of requirements, found an object",
        ),
        (format!(r#"{{"default":{ACCEPT}}} x"#), "unexpected data"),
        (
            format!(r#"{{"default":{ACCEPT},"transports":[]}}"#),
            "transports: expected an object, found an array",
        ),
        (
            format!(r#"{{"default":{ACCEPT},"transports":{{"docker":{{"a":[],"b":1}}}}}}"#),
            r#"transports.docker.a: the list of requirements must not be empty"#,
        ),
        (
            format!(
                r#"{{"default":{ACCEPT},"transports":{{"docker":{{"x":{ACCEPT},"x":{ACCEPT}}}}}}}"#
            ),
            r#"transports.docker: duplicate key "x""#,
        ),
        // Scopes are checked by their transport.
        (
            format!(
                r#"{{"default":{ACCEPT},"transports":{{"oci":{{"relative/path":{ACCEPT}}}}}}}"#
            ),
            "must be an absolute path",
        ),
        (
            format!(r#"{{"default":{ACCEPT},"transports":{{"dir":{{"/a/../b":{ACCEPT}}}}}}}"#),
            "canonical form",
        ),
        (
            format!(
                r#"{{"default":{ACCEPT},"transports":{{"docker-archive":{{"/x":{ACCEPT}}}}}}}"#
            ),
            "does not support any scopes",
        ),
        (
            format!(
                r#"{{"default":{ACCEPT},"transports":{{"containers-storage":{{"docker.io/x":{ACCEPT}}}}}}}"#
            ),
            "store scope",
        ),
        // Requirements.
        (
            with_default(r#"{"type":"acceptAnything"}"#),
            r#"transports.docker["x.io"][0].type: unknown policy requirement type "acceptAnything""#,
        ),
        (
            with_default(r#"{}"#),
            r#"transports.docker["x.io"][0]: required key "type" is missing"#,
        ),
        (
            with_default(r#"{"type":1}"#),
            r#"transports.docker["x.io"][0].type: expected a string, found a number"#,
        ),
        (
            with_default(r#"{"type":"reject","keyPath":"/x"}"#),
            r#"transports.docker["x.io"][0]: unknown key "keyPath""#,
        ),
        (
            with_default(r#"{"type":"reject","type":"reject"}"#),
            r#"transports.docker["x.io"][0]: duplicate key "type""#,
        ),
        (
            with_default(r#"{"type":"signedBy","keyPath":"/k"}"#),
            r#"required key "keyType" is missing"#,
        ),
        (
            with_default(r#"{"type":"signedBy","keyType":"PGP","keyPath":"/k"}"#),
            r#"keyType: unrecognized keyType "PGP""#,
        ),
        (
            with_default(r#"{"type":"signedBy","keyType":"GPGKeys"}"#),
            "exactly one of keyPath, keyPaths, keyData must be given, none is",
        ),
        (
            with_default(
                r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyData":"AA=="}"#,
            ),
            "several are",
        ),
        (
            with_default(r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":""}"#),
            "keyPath: must not be empty",
        ),
        (
            with_default(r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":["/k"]}"#),
            r#"transports.docker["x.io"][0].keyPath: expected a string, found an array"#,
        ),
        (
            with_default(r#"{"type":"signedBy","keyType":"GPGKeys","keyPaths":"/k"}"#),
            "keyPaths: expected an array of strings, found a string",
        ),
        (
            with_default(r#"{"type":"signedBy","keyType":"GPGKeys","keyPaths":["/k",2]}"#),
            "keyPaths[1]: expected a string, found a number",
        ),
        (
            with_default(r#"{"type":"signedBy","keyType":"GPGKeys","keyData":"not base64!"}"#),
            "keyData: not valid base64",
        ),
        (
            with_default(
                r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"matchExact","x":1}}"#,
            ),
            r#"signedIdentity: unknown key "x""#,
        ),
        (
            with_default(
                r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"nope"}}"#,
            ),
            "unknown signedIdentity type",
        ),
        (
            with_default(
                r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"q.io/a"}}"#,
            ),
            "contains neither a tag nor a digest",
        ),
        (
            with_default(
                r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference"}}"#,
            ),
            r#"required key "dockerReference" is missing"#,
        ),
        (
            with_default(
                r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactRepository","dockerRepository":"Q.io/UP"}}"#,
            ),
            "invalid dockerRepository",
        ),
        (
            with_default(
                r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"q.io/","signedPrefix":"r.io"}}"#,
            ),
            r#"prefix: prefix "q.io/" is not valid"#,
        ),
        (
            with_default(r#"{"type":"sigstoreSigned"}"#),
            "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio and pki must be given, 0 are",
        ),
        (
            with_default(r#"{"type":"sigstoreSigned","keyPath":"/k","keyDatas":["AA=="]}"#),
            "several are",
        ),
        (
            with_default(r#"{"type":"sigstoreSigned","keyPaths":[]}"#),
            "keyPaths: contains no entries",
        ),
        (
            with_default(
                r#"{"type":"sigstoreSigned","fulcio":{"caPath":"/c","oidcIssuer":"i","subjectEmail":"e"}}"#,
            ),
            "fulcio needs one of rekorPublicKeyPath",
        ),
        (
            with_default(
                r#"{"type":"sigstoreSigned","fulcio":{"caPath":"/c","oidcIssuer":"i"},"rekorPublicKeyPath":"/r"}"#,
            ),
            "subjectEmail not specified",
        ),
        (
            with_default(
                r#"{"type":"sigstoreSigned","pki":{"caRootsPath":"/r","subjectEmail":"e"},"rekorPublicKeyPath":"/r"}"#,
            ),
            "not supported with pki",
        ),
        (
            with_default(r#"{"type":"sigstoreSigned","pki":{"caRootsPath":"/r"}}"#),
            "at least one of subjectEmail and subjectHostname",
        ),
        (
            with_default(
                r#"{"type":"sigstoreSigned","keyPath":"/k","rekorPublicKeyPath":"/a","rekorPublicKeyData":"AA=="}"#,
            ),
            "several are",
        ),
        (
            with_default(r#"{"type":"signedBaseLayer"}"#),
            r#"required key "baseLayerIdentity" is missing"#,
        ),
    ];
    for (policy, want) in cases {
        let got = parse_err(&policy);
        assert!(
            got.contains(want),
            "policy {policy}\n  error: {got}\n  wanted: {want}"
        );
    }
}

fn policy_with(transports: &str) -> Policy {
    Policy::parse(
        format!(r#"{{"default":[{{"type":"reject"}}],"transports":{transports}}}"#).as_bytes(),
    )
    .unwrap()
}

fn scope_of(p: &Policy, name: &str) -> String {
    let image = policy_ref(name, Path::new("/st"), None).unwrap();
    eval::requirements_for(p, &image).1.to_string()
}

/// The most specific scope of the transport wins, then the transport's "", then the default.
#[test]
fn scope_precedence() {
    let p = policy_with(
        r#"{"docker": {
            "": [{"type":"insecureAcceptAnything"}],
            "example.com": [{"type":"reject"}],
            "example.com/ns": [{"type":"reject"}],
            "example.com/ns/repo": [{"type":"reject"}],
            "example.com/ns/repo:tag": [{"type":"reject"}],
            "*.example.com": [{"type":"reject"}],
            "*.com": [{"type":"reject"}]
        },
        "oci": {"/srv": [{"type":"reject"}], "/srv/a": [{"type":"reject"}]}}"#,
    );
    let cases = [
        (
            "docker://example.com/ns/repo:tag",
            r#"transports.docker["example.com/ns/repo:tag"]"#,
        ),
        (
            "docker://example.com/ns/repo:other",
            r#"transports.docker["example.com/ns/repo"]"#,
        ),
        (
            "docker://example.com/ns/repo2",
            r#"transports.docker["example.com/ns"]"#,
        ),
        (
            "docker://example.com/other/repo",
            r#"transports.docker["example.com"]"#,
        ),
        (
            "docker://example.com:5000/ns/repo",
            r#"transports.docker["*.com"]"#,
        ),
        (
            "docker://sub.example.com/x",
            r#"transports.docker["*.example.com"]"#,
        ),
        (
            "docker://deep.sub.example.com/x",
            r#"transports.docker["*.example.com"]"#,
        ),
        ("docker://other.org/x", r#"transports.docker[""]"#),
        ("oci:/srv/a/b:t", "transports.oci[\"/srv/a\"]"),
        ("oci:/srv/a:t", "transports.oci[\"/srv/a\"]"),
        ("oci:/srv/b", "transports.oci[\"/srv\"]"),
        ("oci:/elsewhere", "default"),
        ("dir:/srv/a", "default"),
    ];
    for (name, want) in cases {
        assert_eq!(scope_of(&p, name), want, "{name}");
    }
    // The store reads `lade`, else `containers-storage`.
    let store = policy_with(r#"{"containers-storage": {"[/st]": [{"type":"reject"}]}}"#);
    assert_eq!(
        scope_of(&store, "lade:alpine"),
        r#"transports.containers-storage["[/st]"]"#
    );
    let both = policy_with(
        r#"{"containers-storage": {"[/st]": [{"type":"reject"}]}, "lade": {"": [{"type":"reject"}]}}"#,
    );
    assert_eq!(scope_of(&both, "lade:alpine"), r#"transports.lade[""]"#);
    assert_eq!(
        eval::requirements_for(
            &policy_with("{}"),
            &policy_ref("dir:/x", Path::new("/"), None).unwrap()
        )
        .1,
        ScopeName::Default
    );
}

/// A fake GPG blob: `FAKE\n<key id>\n<payload>`; a keyring is a list of key ids. A fake sigstore signature is
/// base64 of `<key id>:<sha256 of the payload>`.
struct Fake;

impl Verifier for Fake {
    fn verify_gpg(&self, keyrings: &[Vec<u8>], blob: &[u8]) -> Result<Vec<u8>> {
        let s = std::str::from_utf8(blob)?;
        let Some(rest) = s.strip_prefix("FAKE\n") else {
            bail!("not a signature")
        };
        let (key, payload) = rest.split_once('\n').unwrap();
        if !keyrings
            .iter()
            .any(|k| std::str::from_utf8(k).unwrap().lines().any(|l| l == key))
        {
            bail!("signature by key {key} is not accepted");
        }
        Ok(payload.as_bytes().to_vec())
    }
    fn verify_sigstore(&self, keys: &[Vec<u8>], payload: &[u8], sig: &str) -> Result<()> {
        let d = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(sig)?)?;
        let (key, digest) = d.split_once(':').unwrap();
        if !keys.iter().any(|k| k == key.as_bytes()) {
            bail!("no key verifies the signature");
        }
        if digest != signature::manifest_digest(payload)? {
            bail!("signature does not match the payload");
        }
        Ok(())
    }
}

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;

fn payload(ty: &str, digest: &str, identity: &str) -> String {
    format!(
        r#"{{"critical":{{"type":"{ty}","image":{{"docker-manifest-digest":"{digest}"}},"identity":{{"docker-reference":"{identity}"}}}},"optional":{{"creator":"test"}}}}"#
    )
}

fn gpg(key: &str, digest: &str, identity: &str) -> Signature {
    Signature::SimpleSigning(
        format!(
            "FAKE\n{key}\n{}",
            payload(signature::ATOMIC_TYPE, digest, identity)
        )
        .into_bytes(),
    )
}

fn cosign(key: &str, digest: &str, identity: &str) -> Signature {
    let p = payload(signature::COSIGN_TYPE, digest, identity).into_bytes();
    let sig = format!("{key}:{}", signature::manifest_digest(&p).unwrap());
    Signature::Sigstore {
        media_type: signature::SIGSTORE_MEDIA_TYPE.into(),
        annotations: [(
            signature::SIGSTORE_SIGNATURE_ANNOTATION.to_string(),
            base64::engine::general_purpose::STANDARD.encode(sig),
        )]
        .into(),
        payload: p,
    }
}

fn run(req: &str, image: &PolicyRef, sigs: &[Signature], v: &dyn Verifier) -> Result<(), String> {
    let p = Policy::parse(format!(r#"{{"default":[{req}]}}"#).as_bytes()).unwrap();
    eval::evaluate(
        &p.default,
        &Subject {
            image,
            manifest: MANIFEST,
            signatures: sigs,
        },
        v,
    )
    .map_err(|e| format!("{e:#}"))
}

struct Env {
    /// The manifest's digest, and another one.
    d: String,
    other: String,
    img: PolicyRef,
}

fn env() -> Env {
    Env {
        d: signature::manifest_digest(MANIFEST).unwrap(),
        other: format!("sha256:{}", "0".repeat(64)),
        img: policy_ref("docker://q.io/team/app:1", Path::new("/st"), None).unwrap(),
    }
}

/// signedBy with keys K1 and K2.
fn signed_by(extra: &str) -> String {
    let keys = base64::engine::general_purpose::STANDARD.encode("K1\nK2");
    format!(r#"{{"type":"signedBy","keyType":"GPGKeys","keyData":"{keys}"{extra}}}"#)
}

/// sigstoreSigned with key K1.
fn sigstore(extra: &str) -> String {
    let k1 = base64::engine::general_purpose::STANDARD.encode("K1");
    format!(r#"{{"type":"sigstoreSigned","keyData":"{k1}"{extra}}}"#)
}

fn ok(r: Result<(), String>) {
    assert!(r.is_ok(), "{r:?}");
}

fn refused(r: Result<(), String>, why: &str) {
    let e = r.unwrap_err();
    assert!(e.contains(why), "error {e:?} should contain {why:?}");
}

#[test]
fn evaluates_accept_reject_and_signed_base_layer() {
    let Env { d, img, .. } = env();
    ok(run(
        r#"{"type":"insecureAcceptAnything"}"#,
        &img,
        &[],
        &Fake,
    ));
    refused(
        run(
            r#"{"type":"reject"}"#,
            &img,
            &[gpg("K1", &d, "q.io/team/app:1")],
            &Fake,
        ),
        "requirement 1 (reject): docker://q.io/team/app:1 is rejected by policy",
    );
    refused(
        run(
            r#"{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchExact"}}"#,
            &img,
            &[],
            &Fake,
        ),
        "not implemented",
    );
}

#[test]
fn evaluates_signed_by() {
    let Env { d, other, img } = env();
    // signedBy: accepted, then each way to fail.
    ok(run(
        &signed_by(""),
        &img,
        &[gpg("K2", &d, "q.io/team/app:1")],
        &Fake,
    ));
    ok(run(
        &signed_by(""),
        &img,
        &[
            gpg("K9", &d, "q.io/team/app:1"),
            gpg("K1", &d, "q.io/team/app:1"),
        ],
        &Fake,
    ));
    refused(
        run(&signed_by(""), &img, &[], &Fake),
        "a signature was required, but no signature exists",
    );
    refused(
        run(
            &signed_by(""),
            &img,
            &[cosign("K1", &d, "q.io/team/app:1")],
            &Fake,
        ),
        "no signature exists",
    );
    refused(
        run(
            &signed_by(""),
            &img,
            &[gpg("K9", &d, "q.io/team/app:1")],
            &Fake,
        ),
        "signature by key K9 is not accepted",
    );
    refused(
        run(
            &signed_by(""),
            &img,
            &[gpg("K1", &other, "q.io/team/app:1")],
            &Fake,
        ),
        "is for manifest digest sha256:0000",
    );
    refused(
        run(
            &signed_by(""),
            &img,
            &[gpg("K1", &d, "q.io/team/app:2")],
            &Fake,
        ),
        "identity \"q.io/team/app:2\", which signedIdentity matchRepoDigestOrExact does not accept",
    );
    refused(
        run(
            &signed_by(""),
            &img,
            &[
                gpg("K1", &other, "q.io/team/app:1"),
                gpg("K9", &d, "q.io/team/app:1"),
            ],
            &Fake,
        ),
        "none of the 2 signatures was accepted",
    );
    ok(run(
        &signed_by(r#","signedIdentity":{"type":"matchRepository"}"#),
        &img,
        &[gpg("K1", &d, "q.io/team/app:2")],
        &Fake,
    ));
    ok(run(
        &signed_by(r#","signedIdentity":{"type":"exactReference","dockerReference":"q.io/x/y:3"}"#),
        &img,
        &[gpg("K1", &d, "q.io/x/y:3")],
        &Fake,
    ));
    ok(run(
        &signed_by(r#","signedIdentity":{"type":"exactRepository","dockerRepository":"q.io/x/y"}"#),
        &img,
        &[gpg("K1", &d, "q.io/x/y:9")],
        &Fake,
    ));
    ok(run(
        &signed_by(
            r#","signedIdentity":{"type":"remapIdentity","prefix":"q.io/team","signedPrefix":"up.io/t"}"#,
        ),
        &img,
        &[gpg("K1", &d, "up.io/t/app:1")],
        &Fake,
    ));
    refused(
        run(
            &signed_by(r#","signedIdentity":{"type":"matchExact"}"#),
            &img,
            &[gpg("K1", &d, "q.io/team/app")],
            &Fake,
        ),
        "matchExact does not accept",
    );
    // A payload with an unknown critical member is refused even with a good key.
    let bad = payload(signature::ATOMIC_TYPE, &d, "q.io/team/app:1")
        .replace(r#""type":"#, r#""extra":1,"type":"#);
    refused(
        run(
            &signed_by(""),
            &img,
            &[Signature::SimpleSigning(
                format!("FAKE\nK1\n{bad}").into_bytes(),
            )],
            &Fake,
        ),
        "critical: unknown key \"extra\"",
    );
    // A cosign payload inside a GPG signature is the wrong type.
    refused(
        run(
            &signed_by(""),
            &img,
            &[Signature::SimpleSigning(
                format!(
                    "FAKE\nK1\n{}",
                    payload(signature::COSIGN_TYPE, &d, "q.io/team/app:1")
                )
                .into_bytes(),
            )],
            &Fake,
        ),
        "unrecognized signature type",
    );
    refused(
        run(
            r#"{"type":"signedBy","keyType":"X509Certificates","keyPath":"/k"}"#,
            &img,
            &[],
            &Fake,
        ),
        "keyType \"X509Certificates\" is not implemented",
    );
}

#[test]
fn evaluates_sigstore_signed() {
    let Env { d, other, img } = env();
    // sigstoreSigned.
    ok(run(
        &sigstore(""),
        &img,
        &[cosign("K1", &d, "q.io/team/app:1")],
        &Fake,
    ));
    refused(
        run(
            &sigstore(""),
            &img,
            &[gpg("K1", &d, "q.io/team/app:1")],
            &Fake,
        ),
        "no signature exists",
    );
    refused(
        run(
            &sigstore(""),
            &img,
            &[cosign("K2", &d, "q.io/team/app:1")],
            &Fake,
        ),
        "no key verifies",
    );
    refused(
        run(
            &sigstore(""),
            &img,
            &[cosign("K1", &other, "q.io/team/app:1")],
            &Fake,
        ),
        "is for manifest digest",
    );
    refused(
        run(
            &sigstore(""),
            &img,
            &[cosign("K1", &d, "evil.io/team/app:1")],
            &Fake,
        ),
        "evil.io/team/app:1",
    );
    let Signature::Sigstore {
        payload: p,
        annotations,
        ..
    } = cosign("K1", &d, "q.io/team/app:1")
    else {
        panic!()
    };
    let tampered = Signature::Sigstore {
        media_type: signature::SIGSTORE_MEDIA_TYPE.into(),
        payload: [p.as_slice(), b" "].concat(),
        annotations: annotations.clone(),
    };
    refused(
        run(&sigstore(""), &img, &[tampered], &Fake),
        "does not match the payload",
    );
    let wrong_type = Signature::Sigstore {
        media_type: "text/plain".into(),
        payload: p.clone(),
        annotations,
    };
    refused(
        run(&sigstore(""), &img, &[wrong_type], &Fake),
        "unexpected sigstore signature media type",
    );
    let unannotated = Signature::Sigstore {
        media_type: signature::SIGSTORE_MEDIA_TYPE.into(),
        payload: p,
        annotations: Default::default(),
    };
    refused(
        run(&sigstore(""), &img, &[unannotated], &Fake),
        "missing dev.cosignproject.cosign/signature annotation",
    );
    refused(
        run(
            &sigstore(r#","rekorPublicKeyData":"AA==""#),
            &img,
            &[cosign("K1", &d, "q.io/team/app:1")],
            &Fake,
        ),
        "Rekor SET check",
    );
    refused(
        run(
            r#"{"type":"sigstoreSigned","fulcio":{"caPath":"/c","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyPath":"/r"}"#,
            &img,
            &[],
            &Fake,
        ),
        "fulcio (keyless)",
    );
}

#[test]
fn evaluates_every_requirement_and_images_without_docker_reference() {
    let Env { d, img, .. } = env();
    // Every requirement must hold.
    refused(
        run(
            &format!(r#"{{"type":"insecureAcceptAnything"}},{}"#, signed_by("")),
            &img,
            &[],
            &Fake,
        ),
        "requirement 2 (signedBy)",
    );

    // An image without a docker reference (oci:) cannot meet a matcher that needs one.
    let oci = policy_ref("oci:/srv/x:1", Path::new("/st"), None).unwrap();
    refused(
        run(
            &signed_by(""),
            &oci,
            &[gpg("K1", &d, "q.io/team/app:1")],
            &Fake,
        ),
        "does not accept for oci:/srv/x:1",
    );
    ok(run(
        &signed_by(
            r#","signedIdentity":{"type":"exactReference","dockerReference":"q.io/team/app:1"}"#,
        ),
        &oci,
        &[gpg("K1", &d, "q.io/team/app:1")],
        &Fake,
    ));
}

#[test]
fn without_a_verifier_signature_requirements_fail_closed() {
    let d = signature::manifest_digest(MANIFEST).unwrap();
    let img = policy_ref("docker://q.io/team/app:1", Path::new("/st"), None).unwrap();
    let k = base64::engine::general_purpose::STANDARD.encode("K1");
    let e = run(
        &format!(r#"{{"type":"signedBy","keyType":"GPGKeys","keyData":"{k}"}}"#),
        &img,
        &[gpg("K1", &d, "q.io/team/app:1")],
        &NoVerifier,
    )
    .unwrap_err();
    assert!(e.contains("no verifier for GPG signatures yet"), "{e}");
    let e = run(
        &format!(r#"{{"type":"sigstoreSigned","keyData":"{k}"}}"#),
        &img,
        &[cosign("K1", &d, "q.io/team/app:1")],
        &NoVerifier,
    )
    .unwrap_err();
    assert!(e.contains("no verifier for sigstore signatures yet"), "{e}");
}

#[test]
fn missing_key_files_are_named() {
    let img = policy_ref("docker://q.io/a:1", Path::new("/st"), None).unwrap();
    let e = run(
        r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/nonexistent/key.gpg"}"#,
        &img,
        &[],
        &Fake,
    )
    .unwrap_err();
    assert!(
        e.contains("reading the key file /nonexistent/key.gpg"),
        "{e}"
    );
}

/// A source that serves a different top manifest on every read, as a hostile registry could.
struct Flipping {
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl crate::transport::ImageSource for Flipping {
    fn name(&self) -> String {
        "flipping".into()
    }
    async fn manifest(
        &self,
        instance: Option<&crate::transport::Digest>,
    ) -> Result<(Vec<u8>, String)> {
        assert!(instance.is_none());
        let n = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let body = if n == 0 {
            MANIFEST.to_vec()
        } else {
            b"{\"schemaVersion\":2,\"evil\":1}".to_vec()
        };
        Ok((body, crate::transport::media::OCI_MANIFEST.into()))
    }
    async fn blob(&self, _: &crate::transport::Descriptor) -> Result<crate::transport::BlobStream> {
        bail!("no blobs")
    }
}

/// The whole hook on a `dir:` image whose `signature-1` holds a (fake) GPG signature: accepted, and the copy
/// then reads the very manifest that was verified, not what the source serves next; a signature over
/// another manifest is refused with the policy file and the scope named.
#[test]
fn check_pins_the_verified_manifest() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("img");
    std::fs::create_dir(&dir).unwrap();
    let policy = t.path().join("policy.json");
    let k1 = base64::engine::general_purpose::STANDARD.encode("K1");
    std::fs::write(
        &policy,
        format!(
            r#"{{"default":[{{"type":"signedBy","keyType":"GPGKeys","keyData":"{k1}",
               "signedIdentity":{{"type":"exactRepository","dockerRepository":"q.io/a"}}}}]}}"#
        ),
    )
    .unwrap();
    let opts = super::Options {
        policy: Some(policy.clone()),
        ..Default::default()
    };
    let ctx = crate::transport::SystemContext::default();
    let name = format!("dir:{}", dir.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sign = |digest: &str| {
        let blob = format!(
            "\0simple-signing\nFAKE\nK1\n{}",
            payload(signature::ATOMIC_TYPE, digest, "q.io/a:1")
        );
        std::fs::write(dir.join("signature-1"), blob).unwrap();
    };

    sign(&signature::manifest_digest(MANIFEST).unwrap());
    let src = Flipping {
        reads: Default::default(),
    };
    let checked = rt
        .block_on(super::check_with(&opts, &name, Box::new(src), &ctx, &Fake))
        .unwrap();
    for _ in 0..2 {
        let (bytes, _) = rt.block_on(checked.manifest(None)).unwrap();
        assert_eq!(
            bytes, MANIFEST,
            "the copy must read the manifest that was verified"
        );
    }

    sign(&format!("sha256:{}", "1".repeat(64)));
    let src = Flipping {
        reads: Default::default(),
    };
    let e = match rt.block_on(super::check_with(&opts, &name, Box::new(src), &ctx, &Fake)) {
        Ok(_) => panic!("a signature over another manifest was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains(&format!(
            "{name} is refused by the signature policy {}",
            policy.display()
        )),
        "{e}"
    );
    assert!(
        e.contains("(scope default): requirement 1 (signedBy)")
            && e.contains("is for manifest digest sha256:1111"),
        "{e}"
    );

    // --insecure-policy: not even the policy file is read.
    let insecure = super::Options {
        insecure: true,
        policy: Some(t.path().join("absent")),
        ..Default::default()
    };
    let src = Flipping {
        reads: Default::default(),
    };
    assert!(
        rt.block_on(super::check_with(
            &insecure,
            &name,
            Box::new(src),
            &ctx,
            &NoVerifier
        ))
        .is_ok()
    );
}
