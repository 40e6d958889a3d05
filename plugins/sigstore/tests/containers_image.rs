//! Signatures made by real cosign, from containers/image's fixtures (tests/fixtures/containers-image, see its
//! README): the plugin's verdicts match the ones containers/image's tests assert. The plugin checks the
//! cryptography; the manifest-digest comparison containers/image also makes is the host's job, done here by
//! the test (`digest_matches`) where a verdict depends on it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lade_plugin_sdk::signer::{CosignSignature, KeyMaterial, Signed};
use lade_sigstore::Verifier;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/containers-image")
        .join(name)
}

fn verifier(keys: &[&str]) -> Verifier {
    let public: Vec<u8> = keys
        .iter()
        .flat_map(|k| std::fs::read(fixture(k)).unwrap())
        .collect();
    Verifier::from_material(&KeyMaterial {
        private_key: None,
        public_key: Some(public),
        passphrase: None,
        options: Vec::new(),
    })
    .unwrap()
}

/// A stored containers/image sigstore signature: (payload, raw signature).
fn signature(name: &str) -> (Vec<u8>, Vec<u8>) {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let json = bytes
        .strip_prefix(b"\0sigstore-json\n")
        .expect("containers/image's sigstore signature header");
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    assert_eq!(
        v["mimeType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = STANDARD.decode(v["payload"].as_str().unwrap()).unwrap();
    let sig = STANDARD
        .decode(
            v["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    (payload, sig)
}

fn accepted(verifier: &Verifier, (payload, sig): &(Vec<u8>, Vec<u8>)) -> bool {
    let signed = Signed::Cosign(CosignSignature {
        signature: sig.clone(),
        annotations: Vec::new(),
    });
    match verifier.verify_signed(Some(payload.clone()), signed) {
        Ok(v) => {
            assert_eq!(&v.payload, payload);
            assert_eq!(v.key_id.len(), 64);
            true
        }
        Err(e) => {
            eprintln!("refused: {e:?}");
            false
        }
    }
}

/// The payload names the manifest's digest (what containers/image checks after the signature).
fn digest_matches(payload: &[u8], manifest: &str) -> bool {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    let named = v["critical"]["image"]["docker-manifest-digest"]
        .as_str()
        .unwrap()
        .to_string();
    let actual = format!(
        "sha256:{:x}",
        Sha256::digest(std::fs::read(fixture(manifest)).unwrap())
    );
    named == actual
}

#[test]
fn a_cosign_signature_is_accepted_with_its_key_in_any_key_list_and_refused_with_another() {
    let valid = signature("dir-img-cosign-valid/signature-1");
    assert!(accepted(&verifier(&["cosign.pub"]), &valid));
    assert!(accepted(&verifier(&["cosign.pub", "cosign2.pub"]), &valid));
    assert!(accepted(&verifier(&["cosign2.pub", "cosign.pub"]), &valid));
    assert!(!accepted(&verifier(&["cosign2.pub"]), &valid));
    assert!(digest_matches(
        &valid.0,
        "dir-img-cosign-valid/manifest.json"
    ));
    // The key id is the one of cosign.pub, whichever list it came from.
    let single = verifier(&["cosign.pub"]).ids();
    let both = verifier(&["cosign2.pub", "cosign.pub"]).ids();
    assert_eq!(both[1], single[0]);
}

#[test]
fn a_signature_that_does_not_verify_and_an_unknown_key_are_refused() {
    let (payload, _) = signature("dir-img-cosign-valid/signature-1");
    // containers/image's "A signature which does not verify": the bytes "invalid signature".
    assert!(!accepted(
        &verifier(&["cosign.pub"]),
        &(payload, b"invalid signature".to_vec())
    ));
    // "A valid signature using an unknown key".
    assert!(!accepted(
        &verifier(&["cosign.pub"]),
        &signature("unknown-cosign-key.signature")
    ));
    // dir-img-cosign-mixed (the unknown key's signature, then the valid one): the image is allowed.
    let key = verifier(&["cosign.pub"]);
    let mixed = [
        signature("unknown-cosign-key.signature"),
        signature("dir-img-cosign-valid/signature-1"),
    ];
    assert_eq!(
        mixed.iter().map(|s| accepted(&key, s)).collect::<Vec<_>>(),
        [false, true]
    );
}

#[test]
fn a_valid_signature_over_another_manifest_is_refused_by_the_digest_check() {
    // dir-img-cosign-modified-manifest reuses dir-img-cosign-valid's signature.
    let sig = signature("dir-img-cosign-valid/signature-1");
    assert!(accepted(&verifier(&["cosign.pub"]), &sig));
    assert!(!digest_matches(
        &sig.0,
        "dir-img-cosign-modified-manifest/manifest.json"
    ));
}

#[test]
fn the_tagged_and_the_rekor_signed_fixtures_verify_with_their_keys() {
    let tagged = signature("dir-img-cosign-valid-with-tag/signature-1");
    assert!(accepted(&verifier(&["cosign.pub"]), &tagged));
    assert!(digest_matches(
        &tagged.0,
        "dir-img-cosign-valid-with-tag/manifest.json"
    ));
    // dir-img-cosign-key-rekor-valid is signed with cosign2's key: containers/image accepts it with key lists
    // holding cosign2.pub (its Rekor SET is not checked here: lade works offline) and refuses cosign.pub.
    let rekor = signature("dir-img-cosign-key-rekor-valid/signature-1");
    assert!(accepted(&verifier(&["cosign2.pub"]), &rekor));
    assert!(accepted(&verifier(&["cosign.pub", "cosign2.pub"]), &rekor));
    assert!(!accepted(&verifier(&["cosign.pub"]), &rekor));
    assert!(digest_matches(
        &rekor.0,
        "dir-img-cosign-key-rekor-valid/manifest.json"
    ));
}
