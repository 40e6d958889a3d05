//! Cross-checks against an independent implementation (tests/peer.py: Python `cryptography` and PyNaCl):
//! it makes cosign keys and signatures that the plugin opens and checks, and opens and checks the plugin's.
//! Skipped loudly when python3 or its modules are missing, unless LADE_REQUIRE_PEERS=1 (then it fails).
//! scripts/setup.sh installs the modules.

use lade_plugin_sdk::signer::{KeyMaterial, KeyValue, SignRequest, SignatureFormat, Signed};
use lade_sigstore::{Signer, Verifier, generate_key_pair};
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer.py")
}

/// True when the peer can run; otherwise says why (and fails under LADE_REQUIRE_PEERS=1).
fn peer_available() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography, nacl"])
        .output();
    let why = match probe {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => format!("python3: {e}"),
    };
    if std::env::var("LADE_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!(
            "the python peer is required (LADE_REQUIRE_PEERS=1) but unusable: {why}; run scripts/setup.sh"
        );
    }
    eprintln!(
        "SKIPPED: python3 with `cryptography` and `pynacl` is missing ({why}); run scripts/setup.sh"
    );
    false
}

fn peer(args: &[&str]) -> std::process::Output {
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .expect("running python3");
    eprintln!(
        "peer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

fn material(private: Option<Vec<u8>>, public: Option<Vec<u8>>, passphrase: &str) -> KeyMaterial {
    KeyMaterial {
        private_key: private,
        public_key: public,
        passphrase: Some(passphrase.into()),
        options: Vec::new(),
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"localhost/a"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":null}"#;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The peer's file for `format`, as the plugin's `signed` type.
fn read_signed(format: &str, file: &Path) -> Signed {
    let bytes = std::fs::read(file).unwrap();
    match format {
        "cosign" => Signed::Cosign(lade_plugin_sdk::signer::CosignSignature {
            signature: bytes,
            annotations: vec![],
        }),
        "dsse" => {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let b64 = |s: &serde_json::Value| {
                lade_sigstore::keyfile::decode_b64("x", s.as_str().unwrap()).unwrap()
            };
            Signed::Dsse(lade_plugin_sdk::signer::DsseEnvelope {
                payload_type: v["payloadType"].as_str().unwrap().into(),
                payload: b64(&v["payload"]),
                signatures: vec![lade_plugin_sdk::signer::DsseSignature {
                    keyid: String::new(),
                    sig: b64(&v["signatures"][0]["sig"]),
                }],
            })
        }
        _ => Signed::SigstoreBundle(bytes),
    }
}

/// The plugin's signature as the file the peer reads.
fn write_signed(signed: Signed, file: &Path) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let bytes = match signed {
        Signed::Cosign(c) => c.signature,
        Signed::Dsse(d) => serde_json::to_vec(&serde_json::json!({
            "payloadType": d.payload_type,
            "payload": b64(&d.payload),
            "signatures": [{"keyid": d.signatures[0].keyid, "sig": b64(&d.signatures[0].sig)}],
        }))
        .unwrap(),
        Signed::SigstoreBundle(json) => json,
        _ => unreachable!(),
    };
    std::fs::write(file, bytes).unwrap();
}

fn format(name: &str) -> SignatureFormat {
    match name {
        "cosign" => SignatureFormat::Cosign,
        "dsse" => SignatureFormat::Dsse,
        _ => SignatureFormat::SigstoreBundle,
    }
}

const FORMATS: [&str; 3] = ["cosign", "dsse", "bundle"];

#[test]
fn the_plugin_opens_the_peers_encrypted_keys_and_accepts_its_signatures() {
    if !peer_available() {
        return;
    }
    for kind in ["p256", "p384", "ed25519"] {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            peer(&["make-key", path(dir.path()), "s3cret", kind])
                .status
                .success()
        );
        let key = std::fs::read(dir.path().join("cosign.key")).unwrap();
        let public = std::fs::read(dir.path().join("cosign.pub")).unwrap();
        let payload = dir.path().join("payload");
        std::fs::write(&payload, PAYLOAD).unwrap();

        // The plugin decrypts the peer's key: its public key is the peer's.
        let signer = Signer::from_material(&material(Some(key.clone()), None, "s3cret")).unwrap();
        let verifier = Verifier::from_material(&material(None, Some(public.clone()), "")).unwrap();
        assert_eq!(verifier.ids(), vec![signer.id()], "{kind}");
        let wrong = Signer::from_material(&material(Some(key), None, "S3cret"))
            .err()
            .unwrap();
        assert!(
            format!("{wrong:?}").contains("wrong passphrase"),
            "{wrong:?}"
        );

        for f in FORMATS {
            let sig = dir.path().join(format!("sig.{f}"));
            assert!(
                peer(&[
                    "sign",
                    path(&dir.path().join("cosign.key")),
                    "s3cret",
                    f,
                    path(&payload),
                    path(&sig)
                ])
                .status
                .success()
            );
            let detached = (f == "cosign").then(|| PAYLOAD.to_vec());
            let v = verifier
                .verify_signed(detached.clone(), read_signed(f, &sig))
                .unwrap();
            assert_eq!(
                (v.key_id.as_str(), v.payload.as_slice()),
                (signer.id().as_str(), PAYLOAD),
                "{kind} {f}"
            );
            // The peer's signature over another payload is refused.
            let mut other = PAYLOAD.to_vec();
            other[3] ^= 1;
            assert!(
                verifier
                    .verify_signed(Some(other), read_signed(f, &sig))
                    .is_err(),
                "{kind} {f}"
            );
        }
    }
}

#[test]
fn the_peer_decrypts_the_plugins_keys_and_accepts_its_signatures() {
    if !peer_available() {
        return;
    }
    for algorithm in ["ecdsa-p256", "ecdsa-p384", "ed25519"] {
        let dir = tempfile::tempdir().unwrap();
        let pair = generate_key_pair("pass phrase", &[kv("algorithm", algorithm)]).unwrap();
        let key_file = dir.path().join("cosign.key");
        let pub_file = dir.path().join("cosign.pub");
        std::fs::write(&key_file, &pair.private_key).unwrap();
        std::fs::write(&pub_file, &pair.public_key).unwrap();

        // The peer decrypts the plugin's key (cosign's scrypt + secretbox) to the public key it wrote.
        let out = peer(&["public-of", path(&key_file), "pass phrase"]);
        assert!(out.status.success(), "{algorithm}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(pair.public_key.clone()).unwrap()
        );
        assert!(
            !peer(&["public-of", path(&key_file), "pass phrasE"])
                .status
                .success()
        );

        let signer = Signer::from_material(&material(
            Some(pair.private_key.clone()),
            None,
            "pass phrase",
        ))
        .unwrap();
        let other = generate_key_pair("", &[kv("algorithm", algorithm)]).unwrap();
        let other_pub = dir.path().join("other.pub");
        std::fs::write(&other_pub, &other.public_key).unwrap();
        let payload = dir.path().join("payload");
        std::fs::write(&payload, PAYLOAD).unwrap();
        for f in FORMATS {
            let signed = signer
                .sign_request(SignRequest {
                    format: format(f),
                    payload: PAYLOAD.to_vec(),
                    payload_type: "application/vnd.in-toto+json".into(),
                })
                .unwrap();
            let sig = dir.path().join(format!("sig.{f}"));
            write_signed(signed, &sig);
            assert!(
                peer(&["verify", path(&pub_file), f, path(&payload), path(&sig)])
                    .status
                    .success(),
                "{algorithm} {f}"
            );
            // Swapped key: refused.
            assert!(
                !peer(&["verify", path(&other_pub), f, path(&payload), path(&sig)])
                    .status
                    .success(),
                "{algorithm} {f}"
            );
        }
        // A tampered payload: refused.
        std::fs::write(&payload, b"{}").unwrap();
        let sig = dir.path().join("sig.cosign");
        assert!(
            !peer(&[
                "verify",
                path(&pub_file),
                "cosign",
                path(&payload),
                path(&sig)
            ])
            .status
            .success()
        );
    }
}
