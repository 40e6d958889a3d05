//! Signing and verifying through the real binary, against an independent implementation: the python peer
//! (plugins/sigstore/tests/peer.py: Python cryptography + PyNaCl) makes cosign keys and signatures, stored
//! as cosign stores them (a `sha256-<hex>.sig` tag manifest whose layer is the simple-signing payload, the
//! base64 signature in its `dev.cosignproject.cosign/signature` annotation), pushed with skopeo to a real
//! registry; lade's policy engine accepts or refuses them through the embedded sigstore plugin.

mod fixture;

use fixture::{SYNC_REGISTRIES, export_public, fixture, gpg_key, stop_agent};
use lade_tests::{Registry, fails, lade, ok, require_peers, workspace};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASS: &str = "correct horse";

/// The python peer's path, or None (loudly) when its modules are missing and peers are not required.
fn python_peer() -> Option<PathBuf> {
    let usable = Command::new("python3")
        .args(["-c", "import cryptography, nacl"])
        .status()
        .is_ok_and(|s| s.success());
    if usable {
        return Some(workspace().join("plugins/sigstore/tests/peer.py"));
    }
    assert!(
        !lade_tests::peers_required(),
        "python3 with cryptography and pynacl is required (LADE_REQUIRE_PEERS=1): run scripts/setup.sh"
    );
    eprintln!(
        "\n*** SKIPPED: python3 with cryptography and pynacl is missing; run scripts/setup.sh ***\n"
    );
    None
}

fn peer(py: &Path, args: &[&str]) -> String {
    ok(Command::new("python3").arg(py).args(args))
}

/// A cosign key pair made by the peer in `dir` (cosign.key, cosign.pub).
fn peer_key(py: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap();
    peer(py, &["make-key", dir.to_str().unwrap(), PASS, "p256"]);
    (dir.join("cosign.key"), dir.join("cosign.pub"))
}

/// The cosign simple-signing payload for `digest` under `identity`.
fn payload(identity: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"critical": {"identity": {"docker-reference": identity},
        "image": {"docker-manifest-digest": digest}, "type": "cosign container image signature"},
        "optional": null}),
    )
    .unwrap()
}

/// The peer's base64 cosign signature of `payload` with `key`.
fn peer_sign(py: &Path, key: &Path, payload: &[u8], work: &Path) -> String {
    let p = work.join("payload.json");
    let s = work.join("payload.sig");
    fs::write(&p, payload).unwrap();
    peer(
        py,
        &[
            "sign",
            key.to_str().unwrap(),
            PASS,
            "cosign",
            p.to_str().unwrap(),
            s.to_str().unwrap(),
        ],
    );
    b64(&s)
}

/// A file's bytes in base64 (coreutils).
fn b64(file: &Path) -> String {
    ok(Command::new("base64").arg("-w0").arg(file))
        .trim()
        .to_string()
}

/// Write a cosign signature manifest (as cosign writes it) into the OCI layout `dir` under `tag`.
fn sig_manifest(dir: &Path, tag: &str, payload: &[u8], sig_b64: &str) {
    use lade::store::layout::Layout;
    let l = Layout::create(dir).unwrap();
    let cfg =
        b"{\"architecture\":\"\",\"os\":\"\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    let c = l.put_bytes(cfg).unwrap();
    let p = l.put_bytes(payload).unwrap();
    let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.to_string(), "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": p.to_string(),
                    "size": payload.len(), "annotations": {"dev.cosignproject.cosign/signature": sig_b64}}]}))
    .unwrap();
    let md = l.put_bytes(&m).unwrap();
    let desc: lade::transport::Descriptor = serde_json::from_value(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": m.len()}))
    .unwrap();
    l.set_ref(tag, &desc).unwrap();
}

fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.trim_start_matches("sha256:"))
}

fn skopeo_push(src: &Path, tag: &str, dest: &str) {
    ok(Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{tag}", src.display()))
        .arg(format!("docker://{dest}")));
}

/// Every file under `root` inside a `blobs` directory (a store that received nothing has none).
fn blob_files(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.components().any(|c| c.as_os_str() == "blobs") {
                out.push(p);
            }
        }
    }
    out
}

/// Registries.d turning on sigstore attachments for the registry at `addr`.
fn registries_d(dir: &Path, addr: &str) -> PathBuf {
    let rd = dir.join("registries.d");
    fs::create_dir_all(&rd).unwrap();
    fs::write(
        rd.join("sigstore.yaml"),
        format!("docker:\n  {addr}:\n    use-sigstore-attachments: true\n"),
    )
    .unwrap();
    rd
}

#[test]
fn peer_signed_images_are_accepted_and_wrong_keys_tampering_and_identities_refused() {
    require_peers!("docker-registry", "skopeo");
    let Some(py) = python_peer() else { return };
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    let t = tempfile::tempdir().unwrap();
    let (key, public) = peer_key(&py, &t.path().join("k1"));
    let (_, other_public) = peer_key(&py, &t.path().join("k2"));
    let src = t.path().join("src");
    let good = fixture(&src, "good", "amd64", "signed\n");
    let other = fixture(&src, "other", "amd64", "another image\n");

    // app:1 signed for itself; wrong:1 signed by k1 but its scope trusts k2; tampered:1 carries app's
    // signature under its own digest's tag; moved:1 is app's image and signature under another name.
    skopeo_push(&src, "good", &format!("{a}/app:1"));
    let app_payload = payload(&format!("{a}/app:1"), &good);
    let app_sig = peer_sign(&py, &key, &app_payload, t.path());
    sig_manifest(&src, "app-sig", &app_payload, &app_sig);
    skopeo_push(&src, "app-sig", &format!("{a}/app:{}", sig_tag(&good)));
    skopeo_push(&src, "good", &format!("{a}/moved:1"));
    skopeo_push(&src, "app-sig", &format!("{a}/moved:{}", sig_tag(&good)));
    skopeo_push(&src, "other", &format!("{a}/tampered:1"));
    skopeo_push(
        &src,
        "app-sig",
        &format!("{a}/tampered:{}", sig_tag(&other)),
    );
    skopeo_push(&src, "good", &format!("{a}/wrong:1"));
    let wrong_payload = payload(&format!("{a}/wrong:1"), &good);
    let wrong_sig = peer_sign(&py, &key, &wrong_payload, t.path());
    sig_manifest(&src, "wrong-sig", &wrong_payload, &wrong_sig);
    skopeo_push(&src, "wrong-sig", &format!("{a}/wrong:{}", sig_tag(&good)));

    let k = |p: &Path| p.to_str().unwrap().to_string();
    let policy = t.path().join("policy.json");
    fs::write(
        &policy,
        serde_json::to_vec(
            &json!({"default": [{"type": "reject"}], "transports": {"docker": {
                format!("{a}/app"): [{"type": "sigstoreSigned", "keyPath": k(&public)}],
                format!("{a}/moved"): [{"type": "sigstoreSigned", "keyPath": k(&public)}],
                format!("{a}/tampered"): [{"type": "sigstoreSigned", "keyPath": k(&public)}],
                format!("{a}/wrong"): [{"type": "sigstoreSigned", "keyPath": k(&other_public)}],
            }}}),
        )
        .unwrap(),
    )
    .unwrap();
    let rd = registries_d(t.path(), a);
    let root = t.path().join("store");
    let lade_p = || {
        let mut c = lade();
        c.arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(&policy)
            .arg("--registries.d")
            .arg(&rd);
        c
    };
    let pull = |repo: &str| {
        let mut c = lade_p();
        c.args(["pull", "--tls-verify=false", &format!("{a}/{repo}:1")]);
        c
    };

    // Refusals first, into an empty store: each names the scope and the reason, and writes nothing.
    let scope = |repo: &str| format!("scope transports.docker[\"{a}/{repo}\"]");
    let e = fails(&mut pull("wrong"), 1);
    assert!(e.contains(&scope("wrong")), "{e}");
    assert!(e.contains("the sigstore signature is not valid"), "{e}");
    let e = fails(&mut pull("tampered"), 1);
    assert!(e.contains(&scope("tampered")), "{e}");
    assert!(
        e.contains(&format!("the signature is for manifest digest {good}")) && e.contains(&other),
        "{e}"
    );
    let e = fails(&mut pull("moved"), 1);
    assert!(e.contains(&scope("moved")), "{e}");
    assert!(
        e.contains(&format!("the signature is for identity \"{a}/app:1\"")),
        "{e}"
    );
    let e = fails(
        lade_p().args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{a}/wrong:1"),
            &format!("oci:{}:x", t.path().join("out-wrong").display()),
        ]),
        1,
    );
    assert!(e.contains(&scope("wrong")), "{e}");
    assert!(
        blob_files(&root).is_empty() && blob_files(&t.path().join("out-wrong")).is_empty(),
        "refused images left {:?}",
        blob_files(&root)
    );

    // The peer's signature made with the trusted key: pull and copy accept it.
    ok(&mut pull("app"));
    assert!(ok(lade().arg("--root").arg(&root).arg("images")).contains(&format!("{a}/app")));
    let out = t.path().join("out");
    ok(lade_p().args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{a}/app:1"),
        &format!("oci:{}:x", out.display()),
    ]));
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("index.json")).unwrap()).unwrap();
    let tagged = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "x")
        .cloned();
    assert_eq!(tagged.unwrap()["digest"], good.as_str(), "{index}");

    // keyData (the same key inline) is accepted as keyPath is.
    let inline = t.path().join("inline.json");
    fs::write(
        &inline,
        serde_json::to_vec(&json!({"default": [{"type": "sigstoreSigned",
            "keyData": b64(&public)}]}))
        .unwrap(),
    )
    .unwrap();
    ok(lade()
        .arg("--root")
        .arg(t.path().join("store2"))
        .arg("--policy")
        .arg(&inline)
        .arg("--registries.d")
        .arg(&rd)
        .args(["pull", "--tls-verify=false", &format!("{a}/app:1")]));
}

#[test]
fn generated_key_pairs_are_read_by_the_peer() {
    let Some(py) = python_peer() else { return };
    let t = tempfile::tempdir().unwrap();
    // $COSIGN_PASSWORD, default prefix `cosign`, in the working directory.
    ok(lade()
        .current_dir(t.path())
        .env("COSIGN_PASSWORD", PASS)
        .arg("generate-key-pair"));
    let key = t.path().join("cosign.key");
    let public = t.path().join("cosign.pub");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The peer decrypts the private key: its public half is the .pub lade wrote.
    let derived = peer(&py, &["public-of", key.to_str().unwrap(), PASS]);
    assert_eq!(derived.trim(), fs::read_to_string(&public).unwrap().trim());
    // ...and signs with it; the peer verifies that with lade's public key file.
    let p = t.path().join("payload");
    fs::write(&p, b"{\"hello\":1}").unwrap();
    let s = t.path().join("sig");
    peer(
        &py,
        &[
            "sign",
            key.to_str().unwrap(),
            PASS,
            "cosign",
            p.to_str().unwrap(),
            s.to_str().unwrap(),
        ],
    );
    peer(
        &py,
        &[
            "verify",
            public.to_str().unwrap(),
            "cosign",
            p.to_str().unwrap(),
            s.to_str().unwrap(),
        ],
    );
    // A wrong passphrase does not decrypt it.
    let wrong = Command::new("python3")
        .arg(&py)
        .args(["public-of", key.to_str().unwrap(), "not it"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());

    // --passphrase-file and --output-key-prefix; an ed25519 key; existing files are never overwritten.
    let pf = t.path().join("pass.txt");
    fs::write(&pf, "file pass\n").unwrap();
    let prefix = t.path().join("sub-key");
    let make = || {
        let mut c = lade();
        c.env_remove("COSIGN_PASSWORD")
            .arg("generate-key-pair")
            .arg("--output-key-prefix")
            .arg(&prefix)
            .arg("--passphrase-file")
            .arg(&pf)
            .args(["--algorithm", "ed25519"]);
        c
    };
    ok(&mut make());
    let k2 = t.path().join("sub-key.key");
    let derived = peer(&py, &["public-of", k2.to_str().unwrap(), "file pass"]);
    assert_eq!(
        derived.trim(),
        fs::read_to_string(t.path().join("sub-key.pub"))
            .unwrap()
            .trim()
    );
    let before = fs::read(&k2).unwrap();
    let e = fails(&mut make(), 1);
    assert!(e.contains("exists"), "{e}");
    assert_eq!(fs::read(&k2).unwrap(), before);
    // No passphrase source: a clear error, no prompt.
    let e = fails(
        lade()
            .current_dir(t.path())
            .env_remove("COSIGN_PASSWORD")
            .args(["generate-key-pair", "--output-key-prefix", "x"]),
        1,
    );
    assert!(e.contains("COSIGN_PASSWORD"), "{e}");
}

/// Whether the Python peer accepts the cosign signature `sig` of `payload` with the public key `public`.
fn peer_verifies(py: &Path, public: &Path, payload: &Path, sig: &Path) -> bool {
    Command::new("python3")
        .arg(py)
        .arg("verify")
        .arg(public)
        .arg("cosign")
        .arg(payload)
        .arg(sig)
        .status()
        .unwrap()
        .success()
}

/// The `.sig` manifest of `repo` at the registry, and its layers' payloads and raw signatures, fetched with
/// skopeo (not lade).
fn fetch_signatures(addr: &str, repo: &str, digest: &str, work: &Path) -> Vec<(PathBuf, PathBuf)> {
    let reference = format!("docker://{addr}/{repo}:{}", sig_tag(digest));
    let raw = ok(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(&reference));
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let flat = repo.replace('/', "-");
    let out = work.join(format!("fetched-{flat}"));
    let _ = fs::remove_dir_all(&out);
    ok(Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false", &reference])
        .arg(format!("dir:{}", out.display())));
    let mut sigs = vec![];
    for (i, l) in m["layers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            l["mediaType"],
            "application/vnd.dev.cosign.simplesigning.v1+json"
        );
        let payload = out.join(l["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        let b64 = work.join(format!("sig-{flat}-{i}.b64"));
        fs::write(
            &b64,
            l["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let raw_sig = work.join(format!("sig-{flat}-{i}.raw"));
        let decoded = Command::new("base64").arg("-d").arg(&b64).output().unwrap();
        assert!(decoded.status.success());
        fs::write(&raw_sig, decoded.stdout).unwrap();
        sigs.push((payload, raw_sig));
    }
    sigs
}

#[test]
fn lade_signs_the_peer_verifies_and_lade_verifies_the_peer() {
    require_peers!("docker-registry", "skopeo");
    let Some(py) = python_peer() else { return };
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let digest = fixture(&src, "img", "amd64", "to sign\n");
    skopeo_push(&src, "img", &format!("{a}/app:1"));
    // lade's key (ed25519: deterministic signatures, so signing twice gives the identical signature).
    ok(lade()
        .current_dir(t.path())
        .env("COSIGN_PASSWORD", PASS)
        .args(["generate-key-pair", "--algorithm", "ed25519"]));
    let sign = || {
        let mut c = lade();
        c.current_dir(t.path())
            .env("COSIGN_PASSWORD", PASS)
            .args(["sign", "--key", "cosign.key", "--tls-verify=false"])
            .arg(format!("{a}/app:1"));
        c
    };
    ok(&mut sign());
    let sigs = fetch_signatures(a, "app", &digest, t.path());
    assert_eq!(sigs.len(), 1);
    let (payload, sig) = &sigs[0];
    let pub_path = t.path().join("cosign.pub");
    let verify =
        |public: &Path, payload: &Path, sig: &Path| peer_verifies(&py, public, payload, sig);
    assert!(
        verify(&pub_path, payload, sig),
        "the peer refused lade's signature"
    );
    let p: serde_json::Value = serde_json::from_slice(&fs::read(payload).unwrap()).unwrap();
    assert_eq!(
        p["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    assert_eq!(
        p["critical"]["identity"]["docker-reference"],
        format!("{a}/app:1")
    );
    assert_eq!(p["critical"]["type"], "cosign container image signature");
    // The peer refuses it under another key.
    let other = t.path().join("other");
    let (_, other_pub) = peer_key(&py, &other);
    assert!(!verify(&other_pub, payload, sig));
    // Signing again adds nothing (the identical signature is there).
    ok(&mut sign());
    assert_eq!(fetch_signatures(a, "app", &digest, t.path()).len(), 1);

    // The peer signs the same image (pushed as peer:1) with its own key; lade verify accepts that one
    // with the peer's key only.
    let (peer_key_path, peer_pub) = peer_key(&py, &t.path().join("peer"));
    let peer_payload = payload_bytes(a, &digest);
    let peer_sig = peer_sign(&py, &peer_key_path, &peer_payload, t.path());
    sig_manifest(&src, "peer-sig", &peer_payload, &peer_sig);
    skopeo_push(&src, "img", &format!("{a}/peer:1"));
    skopeo_push(&src, "peer-sig", &format!("{a}/peer:{}", sig_tag(&digest)));
    let lade_verify = |key: &Path, repo: &str| {
        let mut c = lade();
        c.args(["verify", "--tls-verify=false", "--output", "json", "--key"])
            .arg(key)
            .arg(format!("{a}/{repo}:1"));
        c
    };
    let report: serde_json::Value =
        serde_json::from_str(&ok(&mut lade_verify(&peer_pub, "peer"))).unwrap();
    assert_eq!(report["manifest_digest"], digest.as_str());
    assert_eq!(report["signatures"][0]["valid"], true, "{report}");
    assert_eq!(
        report["signatures"][0]["docker_reference"],
        format!("{a}/peer:1")
    );
    assert!(report["checks"].as_array().unwrap().len() >= 3);
    // lade's key did not make the peer's signature; the peer's key did not make lade's.
    let e = fails(&mut lade_verify(&pub_path, "peer"), 1);
    assert!(e.contains("no signature"), "{e}");
    fails(&mut lade_verify(&peer_pub, "app"), 1);
    ok(&mut lade_verify(&pub_path, "app"));

    // Signing the peer's image with lade's key keeps the peer's signature (read-modify-write).
    ok(lade()
        .current_dir(t.path())
        .env("COSIGN_PASSWORD", PASS)
        .args(["sign", "--key", "cosign.key", "--tls-verify=false"])
        .arg(format!("docker://{a}/peer:1")));
    let both = fetch_signatures(a, "peer", &digest, t.path());
    assert_eq!(both.len(), 2);
    assert!(verify(&peer_pub, &both[0].0, &both[0].1));
    assert!(verify(&pub_path, &both[1].0, &both[1].1));
}

fn payload_bytes(addr: &str, digest: &str) -> Vec<u8> {
    payload(&format!("{addr}/peer:1"), digest)
}

#[test]
fn skopeo_gpg_signatures_are_verified_by_the_gpg_plugin() {
    require_peers!("docker-registry", "skopeo", "gpg");
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    let t = tempfile::tempdir().unwrap();
    let (home, fpr) = gpg_key(t.path(), "gnupg", "");
    let (other_home, _) = gpg_key(t.path(), "gnupg-other", "");
    let (right, wrong) = (t.path().join("right.gpg"), t.path().join("wrong.gpg"));
    export_public(&home, &right);
    export_public(&other_home, &wrong);
    let src = t.path().join("src");
    fixture(&src, "img", "amd64", "gpg signed\n");
    let sigs = t.path().join("sigs");
    let rd = t.path().join("registries.d");
    fs::create_dir(&rd).unwrap();
    fs::write(
        rd.join("gpg.yaml"),
        format!(
            "docker:\n  {a}:\n    lookaside: file://{}\n",
            sigs.display()
        ),
    )
    .unwrap();
    // skopeo signs app:1 and wrong:1 as themselves, moved:1 as app:1.
    for (repo, identity) in [("app", "app"), ("wrong", "wrong"), ("moved", "app")] {
        ok(Command::new("skopeo")
            .env("GNUPGHOME", &home)
            .arg("--registries.d")
            .arg(&rd)
            .args([
                "copy",
                "-q",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .args([
                "--sign-by",
                &fpr,
                "--sign-identity",
                &format!("{a}/{identity}:1"),
            ])
            .arg(format!("oci:{}:img", src.display()))
            .arg(format!("docker://{a}/{repo}:1")));
    }
    stop_agent(&home);
    stop_agent(&other_home);
    let key = |p: &Path| json!([{"type": "signedBy", "keyType": "GPGKeys", "keyPath": p.to_str().unwrap()}]);
    let policy = t.path().join("policy.json");
    fs::write(
        &policy,
        serde_json::to_vec(&json!({"default": [{"type": "reject"}], "transports": {"docker": {
            format!("{a}/app"): key(&right), format!("{a}/moved"): key(&right), format!("{a}/wrong"): key(&wrong),
        }}}))
        .unwrap(),
    )
    .unwrap();
    let root = t.path().join("store");
    let pull = |repo: &str| {
        let mut c = lade();
        c.arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(&policy)
            .arg("--registries.d")
            .arg(&rd)
            .args(["pull", "--tls-verify=false", &format!("{a}/{repo}:1")]);
        c
    };
    let e = fails(&mut pull("wrong"), 1);
    assert!(
        e.contains(&format!("scope transports.docker[\"{a}/wrong\"]")),
        "{e}"
    );
    assert!(e.contains("the GPG signature is not valid"), "{e}");
    let e = fails(&mut pull("moved"), 1);
    assert!(
        e.contains(&format!("the signature is for identity \"{a}/app:1\"")),
        "{e}"
    );
    assert!(blob_files(&root).is_empty(), "{:?}", blob_files(&root));
    ok(&mut pull("app"));
    assert!(ok(lade().arg("--root").arg(&root).arg("images")).contains(&format!("{a}/app")));
}

#[test]
fn copy_and_push_sign_with_a_sigstore_key() {
    require_peers!("docker-registry", "skopeo");
    let Some(py) = python_peer() else { return };
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let digest = fixture(&src, "img", "amd64", "copied and signed\n");
    // The peer's key, its passphrase in a file (as skopeo's --sign-passphrase-file).
    let (key, public) = peer_key(&py, &t.path().join("k"));
    let pf = t.path().join("pass");
    fs::write(&pf, format!("{PASS}\n")).unwrap();
    ok(lade()
        .arg("--insecure-policy")
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--sign-by-sigstore-private-key",
        ])
        .arg(&key)
        .arg("--sign-passphrase-file")
        .arg(&pf)
        .arg(format!("oci:{}:img", src.display()))
        .arg(format!("docker://{a}/copied:1")));
    let sigs = fetch_signatures(a, "copied", &digest, t.path());
    assert_eq!(sigs.len(), 1);
    assert!(
        peer_verifies(&py, &public, &sigs[0].0, &sigs[0].1),
        "the peer refused the signature lade wrote at copy"
    );
    let p: serde_json::Value = serde_json::from_slice(&fs::read(&sigs[0].0).unwrap()).unwrap();
    assert_eq!(
        p["critical"]["identity"]["docker-reference"],
        format!("{a}/copied:1")
    );
    // sync signs each image it mirrors under its destination name, beside the source's signature it
    // carries over; the peer verifies the new one.
    let sign_sync = || {
        ok(lade()
            .arg("--insecure-policy")
            .args(SYNC_REGISTRIES)
            .arg("--sign-by-sigstore-private-key")
            .arg(&key)
            .arg("--sign-passphrase-file")
            .arg(&pf)
            .args([&format!("{a}/copied:1"), &format!("{a}/mirror")]))
    };
    sign_sync();
    let mirrored = fetch_signatures(a, "mirror/copied", &digest, t.path());
    let identity = |payload: &Path| {
        let p: serde_json::Value = serde_json::from_slice(&fs::read(payload).unwrap()).unwrap();
        p["critical"]["identity"]["docker-reference"].clone()
    };
    let ids: Vec<_> = mirrored.iter().map(|(p, _)| identity(p)).collect();
    assert_eq!(
        ids,
        [format!("{a}/copied:1"), format!("{a}/mirror/copied:1")],
        "the mirror should carry the source's signature and its own"
    );
    assert!(
        peer_verifies(&py, &public, &mirrored[1].0, &mirrored[1].1),
        "the peer refused the signature lade wrote at sync"
    );
    // A second signing sync copies and signs again, as skopeo's does, and adds no second copy of the same
    // signature.
    sign_sync();
    assert_eq!(
        fetch_signatures(a, "mirror/copied", &digest, t.path()).len(),
        2
    );
    // A wrong passphrase: a clear error naming the key, before anything is copied.
    fs::write(&pf, "wrong\n").unwrap();
    let e = fails(
        lade()
            .arg("--insecure-policy")
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--sign-by-sigstore-private-key",
            ])
            .arg(&key)
            .arg("--sign-passphrase-file")
            .arg(&pf)
            .arg(format!("oci:{}:img", src.display()))
            .arg(format!("docker://{a}/copied:2")),
        1,
    );
    assert!(e.contains("opening the private key"), "{e}");
    let tags: serde_json::Value = serde_json::from_str(&ok(Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{a}/copied"))))
    .unwrap();
    assert!(
        !tags["Tags"].as_array().unwrap().iter().any(|t| t == "2"),
        "{tags}"
    );
}
