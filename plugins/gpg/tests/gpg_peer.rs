//! The gpg plugin against the real peers: gpg (2.2) and skopeo (with GPG simple signing), each in a
//! temporary GNUPGHOME with keys made by gpg in the test.
//! - gpg and skopeo sign, the plugin verifies with the keyring `gpg --export` writes;
//! - the plugin signs with the key `gpg --export-secret-keys` writes, gpg and skopeo verify;
//! - the plugin refuses what gpg refuses: another key, expired and revoked keys, two signatures.
//!
//! Skipped loudly when gpg or skopeo is missing, unless LADE_REQUIRE_PEERS=1 (then it fails).

use lade_gpg::{Signer, Verifier};
use lade_plugin_sdk::signer::{
    GuestSigningKey, GuestVerifyingKey, KeyMaterial, KeyValue, SignRequest, SignatureFormat,
    Signed, Verification,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// True when `tool` runs; otherwise says why (and fails under LADE_REQUIRE_PEERS=1).
fn available(tool: &str) -> bool {
    let why = match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    if std::env::var("LADE_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("{tool} is required (LADE_REQUIRE_PEERS=1) but unusable: {why}");
    }
    eprintln!("SKIPPED: {tool} is missing ({why}); install it (apt-get install {tool})");
    false
}

/// A temporary GNUPGHOME.
struct Gpg {
    home: tempfile::TempDir,
}

fn check(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

impl Gpg {
    fn new() -> Gpg {
        let home = tempfile::Builder::new()
            .prefix("lade-gpg")
            .tempdir()
            .unwrap();
        Gpg { home }
    }

    fn dir(&self) -> &Path {
        self.home.path()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.dir()).args([
            "--batch",
            "--yes",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
        ]);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        check(
            &format!("gpg {args:?}"),
            self.cmd().args(args).output().unwrap(),
        )
    }

    /// Makes a key and returns its fingerprint. `extra` goes before the command (`--faked-system-time`).
    fn gen_key(
        &self,
        uid: &str,
        algo: &str,
        expire: &str,
        passphrase: &str,
        extra: &[&str],
    ) -> String {
        let mut args = extra.to_vec();
        args.extend([
            "--passphrase",
            passphrase,
            "--quick-gen-key",
            uid,
            algo,
            "sign",
            expire,
        ]);
        self.run(&args);
        self.fingerprint(uid)
    }

    fn fingerprint(&self, uid: &str) -> String {
        let out = self.run(&["--with-colons", "--list-keys", uid]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .expect("a fingerprint");
        line.split(':').nth(9).unwrap().to_string()
    }

    fn sub_fingerprints(&self, fpr: &str) -> Vec<String> {
        let out = self.run(&["--with-colons", "--list-keys", fpr]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter(|l| l.starts_with("fpr:"))
            .skip(1)
            .map(|l| l.split(':').nth(9).unwrap().to_string())
            .collect()
    }

    fn export(&self, args: &[&str]) -> Vec<u8> {
        self.run(args).stdout
    }
}

fn material(private: Option<Vec<u8>>, public: Option<Vec<u8>>, pass: Option<&str>) -> KeyMaterial {
    KeyMaterial {
        private_key: private,
        public_key: public,
        passphrase: pass.map(String::from),
        options: Vec::<KeyValue>::new(),
    }
}

fn verify(keyring: &[u8], message: Vec<u8>) -> Result<Verification, String> {
    let v = Verifier::from_material(&material(None, Some(keyring.to_vec()), None))
        .map_err(|e| format!("{e:?}"))?;
    v.verify(None, Signed::OpenpgpMessage(message))
        .map_err(|e| format!("{e:?}"))
}

fn plugin_sign(secret: &[u8], pass: Option<&str>, payload: &[u8]) -> (String, Vec<u8>) {
    let s = Signer::from_material(&material(Some(secret.to_vec()), None, pass)).unwrap();
    let signed = s
        .sign(SignRequest {
            format: SignatureFormat::OpenpgpMessage,
            payload: payload.to_vec(),
            payload_type: String::new(),
        })
        .unwrap();
    let Signed::OpenpgpMessage(bytes) = signed else {
        panic!("not an OpenPGP message")
    };
    (s.key_id(), bytes)
}

const PAYLOAD: &[u8] = b"{\"critical\":{\"type\":\"atomic container signature\"},\"optional\":{}}";

#[test]
fn gpg_signs_plugin_verifies_ed25519_and_rsa() {
    if !available("gpg") {
        return;
    }
    let g = Gpg::new();
    std::fs::write(g.path("payload"), PAYLOAD).unwrap();
    for (uid, algo) in [
        ("ed <ed@example.com>", "ed25519"),
        ("rsa <rsa@example.com>", "rsa2048"),
    ] {
        let fpr = g.gen_key(uid, algo, "never", "", &[]);
        let msg = g.path(&format!("{algo}.sig"));
        let m = msg.to_str().unwrap();
        g.run(&[
            "-u",
            &fpr,
            "--output",
            m,
            "--sign",
            g.path("payload").to_str().unwrap(),
        ]);
        let binary_ring = g.export(&["--export", &fpr]);
        let armored_ring = g.export(&["--armor", "--export", &fpr]);
        for ring in [&binary_ring, &armored_ring] {
            let v = verify(ring, std::fs::read(&msg).unwrap()).unwrap();
            assert_eq!(v.key_id, fpr, "{algo}");
            assert_eq!(v.payload, PAYLOAD, "{algo}");
        }
        // gpg --armor --sign: the same message, armored.
        let armored = g.run(&[
            "-u",
            &fpr,
            "--armor",
            "--output",
            "-",
            "--sign",
            g.path("payload").to_str().unwrap(),
        ]);
        assert_eq!(verify(&binary_ring, armored.stdout).unwrap().key_id, fpr);
    }
    // A keyring of both keys (what `gpg --export` writes with no names) finds the right one.
    let everything = g.export(&["--export"]);
    let ed = g.fingerprint("ed@example.com");
    let v = verify(&everything, std::fs::read(g.path("ed25519.sig")).unwrap()).unwrap();
    assert_eq!(v.key_id, ed);
    let verifier = Verifier::from_material(&material(None, Some(everything), None)).unwrap();
    let mut ids = verifier.key_ids();
    ids.sort();
    let mut want = vec![ed, g.fingerprint("rsa@example.com")];
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn gpg_signing_subkey_reports_primary_fingerprint() {
    if !available("gpg") {
        return;
    }
    let g = Gpg::new();
    let fpr = g.gen_key("sub <sub@example.com>", "ed25519", "never", "", &[]);
    g.run(&[
        "--passphrase",
        "",
        "--quick-add-key",
        &fpr,
        "ed25519",
        "sign",
        "never",
    ]);
    let sub = g.sub_fingerprints(&fpr).pop().unwrap();
    std::fs::write(g.path("payload"), PAYLOAD).unwrap();
    let out = g.run(&[
        "-u",
        &fpr,
        "--output",
        "-",
        "--sign",
        g.path("payload").to_str().unwrap(),
    ]);
    let ring = g.export(&["--export", &fpr]);
    let v = verify(&ring, out.stdout.clone()).unwrap();
    assert_eq!(v.key_id, fpr);
    assert!(
        v.details
            .iter()
            .any(|kv| kv.key == "signer" && kv.value == sub),
        "gpg signs with the newest signing subkey: {:?}",
        v.details
    );
    // The plugin, given the same secret key, also signs with the subkey, and gpg agrees.
    let secret = g.export(&["--passphrase", "", "--export-secret-keys", &fpr]);
    let (key_id, msg) = plugin_sign(&secret, None, PAYLOAD);
    assert_eq!(key_id, fpr);
    let status = gpg_verify(&g, &msg);
    assert_eq!(validsig(&status), (sub, fpr), "{status}");
}

/// The signing key's and its primary key's fingerprints from gpg's VALIDSIG status line.
fn validsig(status: &str) -> (String, String) {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "))
        .unwrap_or_else(|| panic!("no VALIDSIG in {status}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[0].to_string(), fields[fields.len() - 1].to_string())
}

/// `gpg --status-fd 1 --verify` of a signed message; the status lines.
fn gpg_verify(g: &Gpg, message: &[u8]) -> String {
    let path = g.path("plugin.sig");
    std::fs::write(&path, message).unwrap();
    let out = g.run(&["--status-fd", "1", "--verify", path.to_str().unwrap()]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn plugin_signs_gpg_verifies() {
    if !available("gpg") {
        return;
    }
    let g = Gpg::new();
    for (uid, algo, pass) in [
        ("ed <ed@example.com>", "ed25519", ""),
        ("rsa <rsa@example.com>", "rsa2048", "sesame"),
    ] {
        let fpr = g.gen_key(uid, algo, "never", pass, &[]);
        for armor in [false, true] {
            let mut args = vec!["--passphrase", pass, "--export-secret-keys", &fpr];
            if armor {
                args.insert(0, "--armor");
            }
            let secret = g.export(&args);
            let pass = (!pass.is_empty()).then_some(pass);
            let (key_id, msg) = plugin_sign(&secret, pass, PAYLOAD);
            assert_eq!(key_id, fpr);
            let status = gpg_verify(&g, &msg);
            assert!(status.contains("[GNUPG:] GOODSIG "), "{algo}: {status}");
            assert_eq!(validsig(&status), (fpr.clone(), fpr.clone()), "{algo}");
            // gpg --decrypt gives back the payload.
            let out = g.run(&[
                "--output",
                "-",
                "--decrypt",
                g.path("plugin.sig").to_str().unwrap(),
            ]);
            assert_eq!(out.stdout, PAYLOAD);
        }
    }
    // Without the passphrase the protected key does not open, and says why.
    let fpr = g.fingerprint("rsa@example.com");
    let secret = g.export(&["--passphrase", "sesame", "--export-secret-keys", &fpr]);
    let err = Signer::from_material(&material(Some(secret), None, None))
        .err()
        .unwrap();
    assert!(format!("{err:?}").contains("passphrase"), "{err:?}");
}

#[test]
fn plugin_refuses_what_gpg_would() {
    if !available("gpg") {
        return;
    }
    let g = Gpg::new();
    std::fs::write(g.path("payload"), PAYLOAD).unwrap();
    let payload = g.path("payload");
    let payload = payload.to_str().unwrap();
    let a = g.gen_key("a <a@example.com>", "ed25519", "never", "", &[]);
    let b = g.gen_key("b <b@example.com>", "ed25519", "never", "", &[]);
    let by_a = g
        .run(&["-u", &a, "--output", "-", "--sign", payload])
        .stdout;

    // Another key.
    let err = verify(&g.export(&["--export", &b]), by_a.clone()).unwrap_err();
    assert!(
        err.contains("not in the keyring") && err.contains(&b),
        "{err}"
    );

    // Two signatures in one message (gpg -u A -u B --sign).
    let both = g
        .run(&["-u", &a, "-u", &b, "--output", "-", "--sign", payload])
        .stdout;
    let err = verify(&g.export(&["--export"]), both).unwrap_err();
    assert!(err.contains("2 signature packets"), "{err}");

    // A key that expired: made and used in 2020 (gpg's faked clock), checked now.
    let t0 = ["--faked-system-time", "20200101T000000!"];
    let old = g.gen_key("old <old@example.com>", "ed25519", "1d", "", &t0);
    let t1 = ["--faked-system-time", "20200101T060000!"];
    let mut args = t1.to_vec();
    args.extend(["-u", &old, "--output", "-", "--sign", payload]);
    let by_old = g.run(&args).stdout;
    let err = verify(&g.export(&["--export", &old]), by_old).unwrap_err();
    assert!(err.contains("expired") && err.contains(&old), "{err}");

    // A signature that expired (gpg --default-sig-expire, made in 2020), and one dated before its key.
    let c = g.gen_key("c <c@example.com>", "ed25519", "never", "", &t0);
    let ring_c = g.export(&["--export", &c]);
    let mut args = t1.to_vec();
    args.extend([
        "--default-sig-expire",
        "1d",
        "-u",
        &c,
        "--output",
        "-",
        "--sign",
        payload,
    ]);
    let err = verify(&ring_c, g.run(&args).stdout).unwrap_err();
    assert!(err.contains("signature expired"), "{err}");
    let before = [
        "--faked-system-time",
        "20190101T000000!",
        "--ignore-time-conflict",
    ];
    let mut args = before.to_vec();
    args.extend(["-u", &c, "--output", "-", "--sign", payload]);
    let err = verify(&ring_c, g.run(&args).stdout).unwrap_err();
    assert!(err.contains("before its key"), "{err}");
    // The same key's signature made now is fine.
    let now = g
        .run(&["-u", &c, "--output", "-", "--sign", payload])
        .stdout;
    assert_eq!(verify(&ring_c, now).unwrap().key_id, c);

    // A revoked key: gpg's own revocation certificate, imported, then the key exported.
    let rev = std::fs::read_to_string(g.path(&format!("openpgp-revocs.d/{a}.rev"))).unwrap();
    let rev = rev.replace(
        ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----",
    );
    std::fs::write(g.path("a.rev"), rev).unwrap();
    g.run(&["--import", g.path("a.rev").to_str().unwrap()]);
    let err = verify(&g.export(&["--export", &a]), by_a).unwrap_err();
    assert!(err.contains("revoked") && err.contains(&a), "{err}");
}

/// A docker v2 schema 2 manifest to sign (its content does not matter, its digest does).
const MANIFEST: &str = r#"{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 2,
      "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
   },
   "layers": []
}"#;

const REFERENCE: &str = "registry.example.com/lade/app:1";

#[test]
fn skopeo_standalone_signatures_both_ways() {
    if !available("gpg") || !available("skopeo") {
        return;
    }
    let g = Gpg::new();
    let fpr = g.gen_key("skopeo <skopeo@example.com>", "ed25519", "never", "", &[]);
    let manifest = g.path("manifest.json");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let digest = format!("sha256:{:x}", Sha256::digest(MANIFEST.as_bytes()));
    let ring = g.export(&["--export", &fpr]);

    // skopeo signs (through gpgme), the plugin verifies.
    let sig = g.path("skopeo.sig");
    let out = Command::new("skopeo")
        .env("GNUPGHOME", g.dir())
        .args(["standalone-sign", "-o"])
        .arg(&sig)
        .arg(&manifest)
        .args([REFERENCE, &fpr])
        .output()
        .unwrap();
    check("skopeo standalone-sign", out);
    let v = verify(&ring, std::fs::read(&sig).unwrap()).unwrap();
    assert_eq!(v.key_id, fpr);
    let payload: serde_json::Value = serde_json::from_slice(&v.payload).unwrap();
    assert_eq!(payload["critical"]["type"], "atomic container signature");
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    assert_eq!(
        payload["critical"]["identity"]["docker-reference"],
        REFERENCE
    );

    // The plugin signs a containers-signature(5) payload, skopeo verifies it.
    let secret = g.export(&["--passphrase", "", "--export-secret-keys", &fpr]);
    let ours = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": REFERENCE},
            "image": {"docker-manifest-digest": digest},
            "type": "atomic container signature"
        },
        "optional": {"creator": "lade gpg plugin test", "timestamp": 1_700_000_000}
    });
    let (_, msg) = plugin_sign(&secret, None, ours.to_string().as_bytes());
    let plugin_sig = g.path("plugin.sig");
    std::fs::write(&plugin_sig, &msg).unwrap();
    let verify_cmd = |reference: &str, sig: &Path| {
        Command::new("skopeo")
            .env("GNUPGHOME", g.dir())
            .arg("standalone-verify")
            .arg(&manifest)
            .args([reference, &fpr])
            .arg(sig)
            .output()
            .unwrap()
    };
    let out = check(
        "skopeo standalone-verify",
        verify_cmd(REFERENCE, &plugin_sig),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&digest), "{said}");
    // skopeo refuses it for another reference, so it really checked the payload.
    let out = verify_cmd("registry.example.com/lade/other:1", &plugin_sig);
    assert!(
        !out.status.success(),
        "skopeo accepted a signature for another reference"
    );
}
