//! The embedded `sigstore` signer, in the sandbox with the default limits: it makes a cosign key pair (WASI
//! randomness, scrypt within the memory cap), opens it once, signs in every format and checks its own and
//! refuses other keys; the independent implementation (plugins/sigstore/tests/peer.py: Python cryptography
//! and PyNaCl) decrypts the key made in the sandbox and accepts its signatures. Timings are printed, not
//! asserted.

use lade::plugin::signer::{KeyMaterial, KeyValue, SignRequest, SignatureFormat, Signed};
use lade::plugin::{Limits, PluginFailure, PluginSource, Runtime};
use lade_tests::{peers_required, workspace};
use std::process::Command;
use std::time::Instant;

fn material(private: Option<&[u8]>, public: Option<&[u8]>, passphrase: &str) -> KeyMaterial {
    KeyMaterial {
        private_key: private.map(<[u8]>::to_vec),
        public_key: public.map(<[u8]>::to_vec),
        passphrase: Some(passphrase.into()),
        options: vec![],
    }
}

/// The python peer, or None (loudly) when its modules are missing and peers are not required.
fn python_peer() -> Option<std::path::PathBuf> {
    let usable = Command::new("python3")
        .args(["-c", "import cryptography, nacl"])
        .status()
        .is_ok_and(|s| s.success());
    if usable {
        return Some(workspace().join("plugins/sigstore/tests/peer.py"));
    }
    assert!(
        !peers_required(),
        "python3 with cryptography and pynacl is required (LADE_REQUIRE_PEERS=1): run scripts/setup.sh"
    );
    eprintln!(
        "\n*** SKIPPED: python3 with cryptography and pynacl is missing; run scripts/setup.sh ***\n"
    );
    None
}

const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"localhost/x"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"cosign container image signature"},"optional":null}"#;

#[test]
fn the_embedded_sigstore_signer_makes_keys_signs_and_verifies_in_the_sandbox() {
    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    let plugin = rt.load(&PluginSource::Embedded("sigstore".into())).unwrap();
    let signer = plugin.signer().unwrap();
    assert_eq!(
        signer.formats().unwrap(),
        [
            SignatureFormat::Cosign,
            SignatureFormat::Dsse,
            SignatureFormat::SigstoreBundle
        ]
    );

    let t = Instant::now();
    let pair = signer.generate_key_pair("pw", &[]).unwrap();
    eprintln!(
        "generate-key-pair (P-256, scrypt N=32768): {:?}",
        t.elapsed()
    );
    assert!(
        pair.private_key
            .starts_with(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    );
    assert!(pair.public_key.starts_with(b"-----BEGIN PUBLIC KEY-----\n"));
    let e = signer
        .generate_key_pair(
            "pw",
            &[KeyValue {
                key: "algorithm".into(),
                value: "dsa".into(),
            }],
        )
        .unwrap_err();
    assert!(
        matches!(&e, PluginFailure::Reported { .. })
            && e.to_string().contains("unknown key algorithm"),
        "{e}"
    );

    let t = Instant::now();
    let signing = signer
        .signing_key(&material(Some(&pair.private_key), None, "pw"))
        .unwrap();
    eprintln!("opening the encrypted key (scrypt): {:?}", t.elapsed());
    let e = signer
        .signing_key(&material(Some(&pair.private_key), None, "wrong"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    assert_eq!(
        signing.public_key().unwrap().as_deref(),
        Some(pair.public_key.as_slice())
    );

    let verifying = signer
        .verifying_key(&material(None, Some(&pair.public_key), ""))
        .unwrap();
    assert_eq!(
        verifying.key_ids().unwrap(),
        vec![signing.key_id().unwrap()]
    );
    let other = signer.generate_key_pair("", &[]).unwrap();
    let stranger = signer
        .verifying_key(&material(None, Some(&other.public_key), ""))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let peer = python_peer();
    std::fs::write(dir.path().join("cosign.key"), &pair.private_key).unwrap();
    std::fs::write(dir.path().join("cosign.pub"), &pair.public_key).unwrap();
    std::fs::write(dir.path().join("payload"), PAYLOAD).unwrap();
    for format in [
        SignatureFormat::Cosign,
        SignatureFormat::Dsse,
        SignatureFormat::SigstoreBundle,
    ] {
        let t = Instant::now();
        let signed = signing
            .sign(&SignRequest {
                format,
                payload: PAYLOAD.to_vec(),
                payload_type: "application/vnd.in-toto+json".into(),
            })
            .unwrap();
        eprintln!("sign {format:?}: {:?}", t.elapsed());
        let detached = (format == SignatureFormat::Cosign).then_some(PAYLOAD);
        let t = Instant::now();
        let v = verifying.verify(detached, &signed).unwrap();
        eprintln!("verify {format:?}: {:?}", t.elapsed());
        assert_eq!(
            (v.key_id, v.payload.as_slice()),
            (signing.key_id().unwrap(), PAYLOAD)
        );
        let e = stranger.verify(detached, &signed).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");

        // The independent implementation accepts what the sandboxed plugin signed.
        let Some(script) = &peer else { continue };
        let (name, bytes) = match signed {
            Signed::Cosign(c) => ("cosign", c.signature),
            Signed::SigstoreBundle(json) => ("bundle", json),
            _ => continue, // the DSSE envelope is a typed record; the bundle carries the same envelope
        };
        let sig = dir.path().join(format!("sig.{name}"));
        std::fs::write(&sig, bytes).unwrap();
        let status = Command::new("python3")
            .arg(script)
            .args(["verify"])
            .arg(dir.path().join("cosign.pub"))
            .arg(name)
            .arg(dir.path().join("payload"))
            .arg(&sig)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the peer refused the sandbox's {name} signature"
        );
    }
    if let Some(script) = &peer {
        let out = Command::new("python3")
            .arg(script)
            .arg("public-of")
            .arg(dir.path().join("cosign.key"))
            .arg("pw")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.stdout, pair.public_key,
            "the peer decrypts the sandbox's key to its public key"
        );
    }
}
