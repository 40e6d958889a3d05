//! The embedded `gpg` signer, in the sandbox with the default limits, against real gpg: it opens a
//! passphrase-protected key that gpg made and exported (once), signs a containers-signature(5) payload that
//! gpg then verifies (VALIDSIG with the fingerprint), verifies what gpg signed, and refuses another key.
//! Timings are printed, not asserted.

use lade::plugin::signer::{KeyMaterial, SignRequest, SignatureFormat, Signed};
use lade::plugin::{Limits, PluginSource, Runtime};
use lade_tests::peer;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

fn material(
    private: Option<&[u8]>,
    public: Option<&[u8]>,
    passphrase: Option<&str>,
) -> KeyMaterial {
    KeyMaterial {
        private_key: private.map(<[u8]>::to_vec),
        public_key: public.map(<[u8]>::to_vec),
        passphrase: passphrase.map(String::from),
        options: vec![],
    }
}

fn gpg(home: &Path, args: &[&str]) -> Output {
    let out = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args([
            "--batch",
            "--yes",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fingerprint(home: &Path, uid: &str) -> String {
    let out = gpg(home, &["--with-colons", "--list-keys", uid]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with("fpr:")).unwrap();
    line.split(':').nth(9).unwrap().to_string()
}

const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"localhost/x"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"atomic container signature"},"optional":{}}"#;

#[test]
fn the_embedded_gpg_signer_signs_and_verifies_with_gpg_keys_in_the_sandbox() {
    if peer("gpg").is_none() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let uid = "lade test <t@example.com>";
    gpg(
        home,
        &[
            "--passphrase",
            "pw",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ],
    );
    gpg(
        home,
        &[
            "--passphrase",
            "",
            "--quick-gen-key",
            "other <o@example.com>",
            "rsa2048",
            "sign",
            "never",
        ],
    );
    let fpr = fingerprint(home, uid);
    let secret = gpg(home, &["--passphrase", "pw", "--export-secret-keys", &fpr]).stdout;
    let keyring = gpg(home, &["--armor", "--export", &fpr]).stdout;
    let other = fingerprint(home, "o@example.com");
    let other_ring = gpg(home, &["--export", &other]).stdout;

    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    let plugin = rt.load(&PluginSource::Embedded("gpg".into())).unwrap();
    let signer = plugin.signer().unwrap();
    assert_eq!(signer.formats().unwrap(), [SignatureFormat::OpenpgpMessage]);
    let e = signer.generate_key_pair("pw", &[]).unwrap_err();
    assert!(e.to_string().contains("gpg --quick-gen-key"), "{e}");

    let t = Instant::now();
    let signing = signer
        .signing_key(&material(Some(&secret), None, Some("pw")))
        .unwrap();
    eprintln!("opening the protected key (S2K): {:?}", t.elapsed());
    let e = signer
        .signing_key(&material(Some(&secret), None, Some("wrong")))
        .err()
        .unwrap();
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    assert_eq!(signing.key_id().unwrap(), fpr);

    let verifying = signer
        .verifying_key(&material(None, Some(&keyring), None))
        .unwrap();
    assert_eq!(verifying.key_ids().unwrap(), vec![fpr.clone()]);
    let stranger = signer
        .verifying_key(&material(None, Some(&other_ring), None))
        .unwrap();

    let t = Instant::now();
    let signed = signing
        .sign(&SignRequest {
            format: SignatureFormat::OpenpgpMessage,
            payload: PAYLOAD.to_vec(),
            payload_type: String::new(),
        })
        .unwrap();
    eprintln!("sign: {:?}", t.elapsed());
    let t = Instant::now();
    let v = verifying.verify(None, &signed).unwrap();
    eprintln!("verify: {:?}", t.elapsed());
    assert_eq!(
        (v.key_id.as_str(), v.payload.as_slice()),
        (fpr.as_str(), PAYLOAD)
    );
    let e = stranger.verify(None, &signed).unwrap_err();
    assert!(e.to_string().contains("not in the keyring"), "{e}");

    // gpg accepts what the sandboxed plugin signed.
    let Signed::OpenpgpMessage(message) = signed else {
        panic!("not an OpenPGP message")
    };
    let sig = home.join("sandbox.sig");
    std::fs::write(&sig, &message).unwrap();
    let out = gpg(
        home,
        &["--status-fd", "1", "--verify", sig.to_str().unwrap()],
    );
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains(&format!("[GNUPG:] VALIDSIG {fpr} ")),
        "{status}"
    );

    // And the plugin accepts what gpg signed.
    std::fs::write(home.join("payload"), PAYLOAD).unwrap();
    let by_gpg = gpg(
        home,
        &[
            "--passphrase",
            "pw",
            "-u",
            &fpr,
            "--output",
            "-",
            "--sign",
            home.join("payload").to_str().unwrap(),
        ],
    )
    .stdout;
    let v = verifying
        .verify(None, &Signed::OpenpgpMessage(by_gpg))
        .unwrap();
    assert_eq!(
        (v.key_id.as_str(), v.payload.as_slice()),
        (fpr.as_str(), PAYLOAD)
    );
}
