//! GPG simple signing through the real binary, with skopeo and gpg as the oracles: lade signs with
//! `--sign-by` (the key from a GnuPG keyring made here by gpg, passphrase-protected) and skopeo accepts the
//! image under a signedBy policy, and refuses it once the signature is removed or the key swapped; skopeo's
//! signatures are accepted by lade (a signature moved onto another manifest is refused); copies keep the
//! signatures (skopeo verifies them at the destination) and `--remove-signatures` drops them; standalone
//! signatures go both ways between `lade standalone-*` and `skopeo standalone-*`.

mod fixture;

use fixture::{SYNC_REGISTRIES, cosign_sig, export_public, fixture, gpg_key, stop_agent};
use lade_tests::{Registry, fails, lade, ok, require_peers, run};
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASS: &str = "gpg pass phrase";

/// A signedBy policy: `scopes` (docker scope → keyring, optional signedIdentity), everything else refused.
fn policy(path: &Path, scopes: &[(String, &Path, Option<Value>)]) -> PathBuf {
    let mut docker = serde_json::Map::new();
    for (scope, key, ident) in scopes {
        let mut req =
            json!({"type": "signedBy", "keyType": "GPGKeys", "keyPath": key.to_str().unwrap()});
        if let Some(i) = ident {
            req["signedIdentity"] = i.clone();
        }
        docker.insert(scope.clone(), json!([req]));
    }
    fs::write(
        path,
        serde_json::to_vec(
            &json!({"default": [{"type": "reject"}], "transports": {"docker": docker}}),
        )
        .unwrap(),
    )
    .unwrap();
    path.to_path_buf()
}

/// skopeo copies `image` (docker://) under `policy` and the registries.d `rd`: did it accept it?
fn skopeo_accepts(policy: &Path, rd: &Path, image: &str, work: &Path) -> (bool, String) {
    let out = run(Command::new("skopeo")
        .arg("--policy")
        .arg(policy)
        .arg("--registries.d")
        .arg(rd)
        .args([
            "copy",
            "-q",
            "--remove-signatures",
            "--src-tls-verify=false",
            image,
        ])
        .arg(format!("oci:{}:x", work.join("skopeo-out").display())));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lookaside_file(sigs: &Path, repo: &str, digest: &str, n: usize) -> PathBuf {
    sigs.join(format!(
        "{repo}@{}/signature-{n}",
        digest.replacen(':', "=", 1)
    ))
}

struct Setup {
    _t: tempfile::TempDir,
    dir: PathBuf,
    reg: Registry,
    home: PathBuf,
    fpr: String,
    other_home: PathBuf,
    right: PathBuf,
    wrong: PathBuf,
    pass: PathBuf,
    src: PathBuf,
    digest: String,
    sigs: PathBuf,
    rd: PathBuf,
}

fn setup() -> Option<Setup> {
    let reg = Registry::start()?;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let (home, fpr) = gpg_key(&dir, "gnupg", PASS);
    let (other_home, _) = gpg_key(&dir, "other", PASS);
    let (right, wrong) = (dir.join("right.gpg"), dir.join("wrong.gpg"));
    export_public(&home, &right);
    export_public(&other_home, &wrong);
    let pass = dir.join("pass");
    fs::write(&pass, format!("{PASS}\n")).unwrap();
    let src = dir.join("src");
    let digest = fixture(&src, "img", "amd64", "gpg signed by lade\n");
    let sigs = dir.join("sigs");
    let rd = dir.join("registries.d");
    fs::create_dir(&rd).unwrap();
    fs::write(
        rd.join("gpg.yaml"),
        format!(
            "docker:\n  {}:\n    lookaside: file://{}\n",
            reg.addr,
            sigs.display()
        ),
    )
    .unwrap();
    Some(Setup {
        _t: t,
        dir,
        reg,
        home,
        fpr,
        other_home,
        right,
        wrong,
        pass,
        src,
        digest,
        sigs,
        rd,
    })
}

impl Setup {
    /// `lade` with this setup's GnuPG home and registries.d.
    fn lade(&self) -> Command {
        let mut c = lade();
        c.env("GNUPGHOME", &self.home)
            .arg("--root")
            .arg(self.dir.join("store"))
            .arg("--registries.d")
            .arg(&self.rd);
        c
    }

    /// skopeo copies the fixture image to `dest`, signing it with the setup's key (`extra`: more flags).
    fn skopeo_sign(&self, extra: &[&str], dest: &str) {
        ok(Command::new("skopeo")
            .env("GNUPGHOME", &self.home)
            .arg("--registries.d")
            .arg(&self.rd)
            .args([
                "copy",
                "-q",
                "--dest-tls-verify=false",
                "--sign-by",
                &self.fpr,
            ])
            .args(extra)
            .arg("--sign-passphrase-file")
            .arg(&self.pass)
            .arg(format!("oci:{}:img", self.src.display()))
            .arg(dest));
    }

    fn stop(&self) {
        stop_agent(&self.home);
        stop_agent(&self.other_home);
    }
}

#[test]
fn lade_signs_with_sign_by_and_skopeo_verifies() {
    require_peers!("docker-registry", "skopeo", "gpg");
    let Some(s) = setup() else { return };
    let a = &s.reg.addr;
    let oci_src = format!("oci:{}:img", s.src.display());
    ok(s.lade()
        .arg("--insecure-policy")
        .args(["copy", "-q", "--dest-tls-verify=false", "--sign-by", &s.fpr])
        .arg("--sign-passphrase-file")
        .arg(&s.pass)
        .arg(&oci_src)
        .arg(format!("docker://{a}/app:1")));
    let sig = lookaside_file(&s.sigs, "app", &s.digest, 1);
    assert!(sig.is_file(), "no signature at {}", sig.display());
    let good = policy(
        &s.dir.join("good.json"),
        &[(format!("{a}/app"), &s.right, None)],
    );
    let (accepted, e) = skopeo_accepts(&good, &s.rd, &format!("docker://{a}/app:1"), &s.dir);
    assert!(accepted, "skopeo refused lade's --sign-by signature: {e}");
    // lade verify --keyring reports what it checked.
    let out = ok(s
        .lade()
        .args(["verify", "--tls-verify=false", "-o", "json", "--keyring"])
        .arg(&s.right)
        .arg(format!("docker://{a}/app:1")));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["manifest_digest"], s.digest.as_str(), "{v}");
    assert_eq!(v["signatures"][0]["valid"], true, "{v}");
    assert_eq!(v["signatures"][0]["key_id"], s.fpr.as_str(), "{v}");
    assert_eq!(
        v["signatures"][0]["docker_reference"],
        format!("{a}/app:1"),
        "{v}"
    );
    let e = fails(
        s.lade()
            .args(["verify", "--tls-verify=false", "--keyring"])
            .arg(&s.wrong)
            .arg(format!("docker://{a}/app:1")),
        1,
    );
    assert!(e.contains("no GPG signature"), "{e}");
    // The key swapped: skopeo refuses.
    let swapped = policy(
        &s.dir.join("swapped.json"),
        &[(format!("{a}/app"), &s.wrong, None)],
    );
    let (accepted, _) = skopeo_accepts(&swapped, &s.rd, &format!("docker://{a}/app:1"), &s.dir);
    assert!(!accepted, "skopeo accepted a signature by another key");
    // Push from the store signs too.
    ok(s.lade()
        .arg("--insecure-policy")
        .args(["copy", "-q", &oci_src, "lade:localhost/app:1"]));
    ok(s.lade()
        .arg("--insecure-policy")
        .args(["push", "-q", "--tls-verify=false", "--sign-by", &s.fpr])
        .arg("--sign-passphrase-file")
        .arg(&s.pass)
        .args(["localhost/app:1", &format!("docker://{a}/pushed:1")]));
    let pushed = policy(
        &s.dir.join("pushed.json"),
        &[(format!("{a}/pushed"), &s.right, None)],
    );
    let (accepted, e) = skopeo_accepts(&pushed, &s.rd, &format!("docker://{a}/pushed:1"), &s.dir);
    assert!(accepted, "skopeo refused lade push --sign-by: {e}");
    // build --push --sign-by signs what it pushed.
    let ctx = s.dir.join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY a.txt /a.txt\n",
    )
    .unwrap();
    fs::write(ctx.join("a.txt"), "built and signed\n").unwrap();
    ok(s.lade()
        .arg("--insecure-policy")
        .args(["build", "--tls-verify=false", "--push", "--sign-by", &s.fpr])
        .arg("--sign-passphrase-file")
        .arg(&s.pass)
        .args(["-t", &format!("{a}/built:1")])
        .arg(&ctx));
    let built = policy(
        &s.dir.join("built.json"),
        &[(format!("{a}/built"), &s.right, None)],
    );
    let (accepted, e) = skopeo_accepts(&built, &s.rd, &format!("docker://{a}/built:1"), &s.dir);
    assert!(accepted, "skopeo refused lade build --push --sign-by: {e}");
    // The signature removed: skopeo refuses.
    fs::remove_file(&sig).unwrap();
    let (accepted, _) = skopeo_accepts(&good, &s.rd, &format!("docker://{a}/app:1"), &s.dir);
    assert!(
        !accepted,
        "skopeo accepted an image whose signature is gone"
    );
    // A wrong passphrase, and a destination that cannot hold signatures: refused before copying.
    let bad = s.dir.join("bad-pass");
    fs::write(&bad, "nope\n").unwrap();
    let e = fails(
        s.lade()
            .arg("--insecure-policy")
            .args(["copy", "-q", "--dest-tls-verify=false", "--sign-by", &s.fpr])
            .arg("--sign-passphrase-file")
            .arg(&bad)
            .arg(&oci_src)
            .arg(format!("docker://{a}/app:2")),
        1,
    );
    assert!(e.contains(&s.fpr), "{e}");
    let oci_dst = s.dir.join("oci-dst");
    let e = fails(
        s.lade()
            .arg("--insecure-policy")
            .args(["copy", "-q", "--sign-by", &s.fpr])
            .arg("--sign-passphrase-file")
            .arg(&s.pass)
            .arg(&oci_src)
            .arg(format!("oci:{}:x", oci_dst.display())),
        1,
    );
    assert!(e.contains("cannot sign") && e.contains("oci"), "{e}");
    assert!(
        !oci_dst.exists(),
        "a refused signing copy wrote {}",
        oci_dst.display()
    );
    // A dir: destination has no name to sign: --sign-identity is needed, asked for before copying.
    let dir_dst = s.dir.join("dir-dst");
    let e = fails(
        s.lade()
            .arg("--insecure-policy")
            .args(["copy", "-q", "--sign-by", &s.fpr])
            .arg(&oci_src)
            .arg(format!("dir:{}", dir_dst.display())),
        1,
    );
    assert!(e.contains("--sign-identity"), "{e}");
    assert!(!dir_dst.exists());
    s.stop();
}

#[test]
fn skopeo_signatures_are_kept_by_copies_and_dropped_on_request() {
    require_peers!("docker-registry", "skopeo", "gpg");
    let Some(s) = setup() else { return };
    let a = &s.reg.addr;
    s.skopeo_sign(&["--preserve-digests"], &format!("docker://{a}/app:1"));
    // The signature moved onto another manifest (the identity accepted, the digest not).
    let src2 = s.dir.join("src2");
    let d2 = fixture(&src2, "img", "amd64", "another image\n");
    ok(Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:img", src2.display()))
        .arg(format!("docker://{a}/evil:1")));
    let moved = lookaside_file(&s.sigs, "evil", &d2, 1);
    fs::create_dir_all(moved.parent().unwrap()).unwrap();
    fs::copy(lookaside_file(&s.sigs, "app", &s.digest, 1), &moved).unwrap();
    let from_app = json!({"type": "exactRepository", "dockerRepository": format!("{a}/app")});
    let p = policy(
        &s.dir.join("p.json"),
        &[
            (format!("{a}/app"), &s.right, None),
            (format!("{a}/evil"), &s.right, Some(from_app.clone())),
            (format!("{a}/kept"), &s.right, Some(from_app.clone())),
            (format!("{a}/bare"), &s.right, Some(from_app.clone())),
        ],
    );
    let (accepted, _) = skopeo_accepts(&p, &s.rd, &format!("docker://{a}/evil:1"), &s.dir);
    assert!(!accepted, "skopeo accepted a moved signature");
    let e = fails(
        s.lade().arg("--policy").arg(&p).args([
            "pull",
            "--tls-verify=false",
            &format!("{a}/evil:1"),
        ]),
        1,
    );
    assert!(
        e.contains(&format!("scope transports.docker[\"{a}/evil\"]"))
            && e.contains("manifest digest"),
        "{e}"
    );
    // A registry-to-registry copy keeps the signature; skopeo verifies it at the destination.
    ok(s.lade().arg("--policy").arg(&p).args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{a}/app:1"),
        &format!("docker://{a}/kept:1"),
    ]));
    assert!(lookaside_file(&s.sigs, "kept", &s.digest, 1).is_file());
    let (accepted, e) = skopeo_accepts(&p, &s.rd, &format!("docker://{a}/kept:1"), &s.dir);
    assert!(accepted, "skopeo refused the copied signature: {e}");
    // Into a dir: image: signature-1, which skopeo verifies there.
    let dir_dst = s.dir.join("dir-dst");
    ok(s.lade().arg("--policy").arg(&p).args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{a}/app:1"),
        &format!("dir:{}", dir_dst.display()),
    ]));
    assert!(dir_dst.join("signature-1").is_file());
    let dir_policy = s.dir.join("dir.json");
    fs::write(
        &dir_policy,
        serde_json::to_vec(
            &json!({"default": [{"type": "signedBy", "keyType": "GPGKeys",
            "keyPath": s.right.to_str().unwrap(), "signedIdentity": from_app}]}),
        )
        .unwrap(),
    )
    .unwrap();
    ok(Command::new("skopeo")
        .arg("--policy")
        .arg(&dir_policy)
        .args(["copy", "-q", "--remove-signatures"])
        .arg(format!("dir:{}", dir_dst.display()))
        .arg(format!("oci:{}:x", s.dir.join("from-dir").display())));
    // --remove-signatures drops it: skopeo refuses the copy.
    ok(s.lade().arg("--policy").arg(&p).args([
        "copy",
        "-q",
        "--remove-signatures",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{a}/app:1"),
        &format!("docker://{a}/bare:1"),
    ]));
    assert!(!lookaside_file(&s.sigs, "bare", &s.digest, 1).exists());
    let (accepted, _) = skopeo_accepts(&p, &s.rd, &format!("docker://{a}/bare:1"), &s.dir);
    assert!(
        !accepted,
        "skopeo accepted an image copied without signatures"
    );
    // An oci: destination cannot hold them: refused clearly unless --remove-signatures.
    let oci_dst = s.dir.join("oci-dst");
    let e = fails(
        s.lade().arg("--policy").arg(&p).args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{a}/app:1"),
            &format!("oci:{}:x", oci_dst.display()),
        ]),
        1,
    );
    assert!(e.contains("--remove-signatures"), "{e}");
    assert!(!oci_dst.exists());
    ok(s.lade().arg("--policy").arg(&p).args([
        "copy",
        "-q",
        "--remove-signatures",
        "--src-tls-verify=false",
        &format!("docker://{a}/app:1"),
        &format!("oci:{}:x", oci_dst.display()),
    ]));
    s.stop();
}

#[test]
fn standalone_signatures_go_both_ways_with_skopeo() {
    require_peers!("skopeo", "gpg");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (home, fpr) = gpg_key(dir, "gnupg", PASS);
    let (other_home, _) = gpg_key(dir, "other", PASS);
    let wrong = dir.join("wrong.gpg");
    export_public(&other_home, &wrong);
    let pass = dir.join("pass");
    fs::write(&pass, format!("{PASS}\n")).unwrap();
    let src = dir.join("src");
    let digest = fixture(&src, "img", "amd64", "standalone\n");
    let manifest = dir.join("manifest.json");
    fs::write(
        &manifest,
        ok(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:img", src.display()))),
    )
    .unwrap();
    let reference = "registry.example/app:1";
    let with_home = |c: &mut Command| {
        c.env("GNUPGHOME", &home);
    };
    // lade signs, skopeo verifies.
    let lade_sig = dir.join("lade.sig");
    let mut c = lade();
    with_home(&mut c);
    ok(c.arg("standalone-sign")
        .arg(&manifest)
        .args([reference, &fpr, "-o"])
        .arg(&lade_sig)
        .arg("--passphrase-file")
        .arg(&pass));
    let out = ok(Command::new("skopeo")
        .env("GNUPGHOME", &home)
        .arg("standalone-verify")
        .arg(&manifest)
        .args([reference, &fpr])
        .arg(&lade_sig));
    assert!(out.contains(&digest), "{out}");
    let other = run(Command::new("skopeo")
        .env("GNUPGHOME", &home)
        .arg("standalone-verify")
        .arg(&manifest)
        .args(["registry.example/other:1", &fpr])
        .arg(&lade_sig));
    assert!(!other.status.success(), "skopeo accepted another identity");
    // skopeo signs, lade verifies.
    let sk_sig = dir.join("skopeo.sig");
    ok(Command::new("skopeo")
        .env("GNUPGHOME", &home)
        .arg("standalone-sign")
        .arg("--passphrase-file")
        .arg(&pass)
        .arg(&manifest)
        .args([reference, &fpr, "-o"])
        .arg(&sk_sig));
    let verify = |m: &Path, r: &str, f: &str, sig: &Path, extra: &[&std::ffi::OsStr]| {
        let mut c = lade();
        with_home(&mut c);
        c.arg("standalone-verify")
            .arg(m)
            .args([r, f])
            .arg(sig)
            .args(extra);
        c
    };
    for sig in [&sk_sig, &lade_sig] {
        let out = ok(&mut verify(&manifest, reference, &fpr, sig, &[]));
        assert_eq!(
            out.trim(),
            format!("Signature verified using fingerprint {fpr}, digest {digest}")
        );
    }
    // Refused: another identity, another key, a changed manifest.
    let e = fails(
        &mut verify(&manifest, "registry.example/other:1", &fpr, &sk_sig, &[]),
        1,
    );
    assert!(e.contains("registry.example/app:1"), "{e}");
    let e = fails(
        &mut verify(
            &manifest,
            reference,
            "any",
            &sk_sig,
            &[std::ffi::OsStr::new("--public-key-file"), wrong.as_os_str()],
        ),
        1,
    );
    assert!(e.contains("verifying"), "{e}");
    let changed = dir.join("changed.json");
    fs::write(
        &changed,
        [fs::read(&manifest).unwrap(), b"\n".to_vec()].concat(),
    )
    .unwrap();
    let e = fails(&mut verify(&changed, reference, &fpr, &sk_sig, &[]), 1);
    assert!(e.contains("manifest digest"), "{e}");
    let sk = run(Command::new("skopeo")
        .env("GNUPGHOME", &home)
        .arg("standalone-verify")
        .arg(&changed)
        .args([reference, &fpr])
        .arg(&sk_sig));
    assert!(!sk.status.success(), "skopeo accepted a changed manifest");
    stop_agent(&home);
    stop_agent(&other_home);
}

/// Sigstore `.sig` attachments follow a copy; `--remove-signatures` drops them (skopeo reads the tags).
#[test]
fn sigstore_attachments_are_kept_or_removed() {
    require_peers!("docker-registry", "skopeo");
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let digest = fixture(&src, "img", "amd64", "sigstore attachment\n");
    cosign_sig(&src, &digest);
    let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    let copy = |from: &str, to: &str, remove: bool| {
        let mut c = lade();
        c.arg("--insecure-policy").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ]);
        if remove {
            c.arg("--remove-signatures");
        }
        ok(c.args([from, to]));
    };
    let has_sig = |repo: &str| {
        run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{a}/{repo}:{tag}")))
        .status
        .success()
    };
    copy(
        &format!("oci:{}:img", src.display()),
        &format!("docker://{a}/cos:1"),
        false,
    );
    assert!(has_sig("cos"), "the .sig tag was not copied");
    copy(
        &format!("docker://{a}/cos:1"),
        &format!("docker://{a}/kept:1"),
        false,
    );
    assert!(has_sig("kept"), "a copy lost the .sig tag");
    copy(
        &format!("docker://{a}/cos:1"),
        &format!("docker://{a}/bare:1"),
        true,
    );
    assert!(!has_sig("bare"), "--remove-signatures kept the .sig tag");
    assert!(
        run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{a}/bare:1")))
        .status
        .success(),
        "the image itself was not copied"
    );
}

/// `lade sync` carries GPG signatures and makes them as skopeo sync does: the source's signature is copied
/// to each mirrored image (skopeo verifies it there), `--sign-by` adds one under the destination's name
/// (skopeo verifies it, and a second sync replaces rather than piles up), `--remove-signatures` drops them,
/// an unchanged mirror is left alone, and a destination with no name to sign is refused before any copy.
#[test]
fn sync_keeps_adds_and_removes_gpg_signatures() {
    require_peers!("docker-registry", "skopeo", "gpg");
    let Some(s) = setup() else { return };
    let a = &s.reg.addr;
    s.skopeo_sign(&["--preserve-digests"], &format!("docker://{a}/up/app:1"));
    let sync = |extra: &[&str], dest: &str| {
        let mut c = s.lade();
        c.arg("--insecure-policy").args(SYNC_REGISTRIES);
        c.args(extra)
            .arg(format!("{a}/up/app"))
            .arg(format!("{a}/{dest}"));
        run(&mut c)
    };
    let synced = |extra: &[&str], dest: &str| {
        let out = sync(extra, dest);
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "lade sync {extra:?} failed: {e}");
        e
    };
    let source_identity =
        json!({"type": "exactRepository", "dockerRepository": format!("{a}/up/app")});
    let p = policy(
        &s.dir.join("sync.json"),
        &[
            (
                format!("{a}/kept/app"),
                &s.right,
                Some(source_identity.clone()),
            ),
            (format!("{a}/signed/app"), &s.right, None),
            (format!("{a}/bare/app"), &s.right, Some(source_identity)),
        ],
    );
    // Kept: the mirror holds the source's signature, which skopeo accepts there.
    synced(&[], "kept");
    let kept = lookaside_file(&s.sigs, "kept/app", &s.digest, 1);
    assert!(kept.is_file(), "sync did not copy the signature");
    let (accepted, e) = skopeo_accepts(&p, &s.rd, &format!("docker://{a}/kept/app:1"), &s.dir);
    assert!(accepted, "skopeo refused the signature sync copied: {e}");
    // A second sync finds the mirror complete and leaves it alone.
    let e = synced(&[], "kept");
    assert!(
        e.contains("Up to date") && e.contains("1 up to date"),
        "{e}"
    );
    // Its signature gone, the mirror is not complete: the next sync puts it back.
    fs::remove_file(&kept).unwrap();
    let e = synced(&[], "kept");
    assert!(e.contains("1 copied"), "{e}");
    assert!(kept.is_file(), "sync did not restore the signature");
    // --sign-by: the source's signature and lade's, under the mirror's name, which skopeo accepts.
    let sign = [
        "--sign-by",
        &s.fpr,
        "--sign-passphrase-file",
        s.pass.to_str().unwrap(),
    ];
    synced(&sign, "signed");
    let n = |repo: &str| {
        (1..=4)
            .filter(|i| lookaside_file(&s.sigs, repo, &s.digest, *i).is_file())
            .count()
    };
    assert_eq!(
        n("signed/app"),
        2,
        "expected the source's signature and lade's"
    );
    let (accepted, e) = skopeo_accepts(&p, &s.rd, &format!("docker://{a}/signed/app:1"), &s.dir);
    assert!(accepted, "skopeo refused lade sync --sign-by: {e}");
    synced(&sign, "signed");
    assert_eq!(
        n("signed/app"),
        2,
        "a second signing sync piled up signatures"
    );
    // --remove-signatures: none at the mirror, and skopeo refuses it.
    synced(&["--remove-signatures"], "bare");
    assert_eq!(n("bare/app"), 0);
    let (accepted, _) = skopeo_accepts(&p, &s.rd, &format!("docker://{a}/bare/app:1"), &s.dir);
    assert!(
        !accepted,
        "skopeo accepted a mirror synced without signatures"
    );
    // A dir: destination has no name to sign: refused before anything is copied.
    let dir_dst = s.dir.join("sync-dir");
    let out = run(s
        .lade()
        .arg("--insecure-policy")
        .args([
            "sync",
            "--src",
            "docker",
            "--dest",
            "dir",
            "--src-tls-verify=false",
        ])
        .args(sign)
        .arg(format!("{a}/up/app"))
        .arg(&dir_dst));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("--dest docker"), "{e}");
    assert!(
        !dir_dst.exists(),
        "a refused sync wrote {}",
        dir_dst.display()
    );
    s.stop();
}

/// The store keeps an image's GPG signatures as podman's does: `lade pull` keeps skopeo's signature,
/// `lade push` carries it on (skopeo verifies it at the new place, byte for byte the same), `push
/// --remove-signatures` leaves it behind, and `lade prune` removes it with the image.
#[test]
fn the_store_keeps_gpg_signatures_from_pull_to_push() {
    require_peers!("docker-registry", "skopeo", "gpg");
    let Some(s) = setup() else { return };
    let a = &s.reg.addr;
    s.skopeo_sign(&["--preserve-digests"], &format!("docker://{a}/app:1"));
    let original = fs::read(lookaside_file(&s.sigs, "app", &s.digest, 1)).unwrap();
    let from_app = json!({"type": "exactRepository", "dockerRepository": format!("{a}/app")});
    let p = policy(
        &s.dir.join("store.json"),
        &[
            (format!("{a}/app"), &s.right, None),
            (format!("{a}/again"), &s.right, Some(from_app.clone())),
            (format!("{a}/bare"), &s.right, Some(from_app)),
        ],
    );
    // The pull is checked by the policy, then keeps the signature.
    ok(s.lade().arg("--policy").arg(&p).args([
        "pull",
        "-q",
        "--tls-verify=false",
        &format!("{a}/app:1"),
    ]));
    ok(s.lade().arg("--insecure-policy").args([
        "push",
        "-q",
        "--tls-verify=false",
        &format!("{a}/app:1"),
        &format!("docker://{a}/again:1"),
    ]));
    let pushed = lookaside_file(&s.sigs, "again", &s.digest, 1);
    assert_eq!(
        fs::read(&pushed).ok().as_deref(),
        Some(&original[..]),
        "push did not carry the pulled signature"
    );
    let (accepted, e) = skopeo_accepts(&p, &s.rd, &format!("docker://{a}/again:1"), &s.dir);
    assert!(
        accepted,
        "skopeo refused the signature kept in lade's store: {e}"
    );
    // A policy that wants the store's images signed: the kept signature passes it, an unsigned image not.
    let store_policy = s.dir.join("store-policy.json");
    fs::write(
        &store_policy,
        serde_json::to_vec(&json!({
            "default": [{"type": "insecureAcceptAnything"}],
            "transports": {"containers-storage": {"": [{"type": "signedBy", "keyType": "GPGKeys",
                "keyPath": s.right.to_str().unwrap()}]}}
        }))
        .unwrap(),
    )
    .unwrap();
    ok(s.lade().arg("--policy").arg(&store_policy).args([
        "push",
        "-q",
        "--tls-verify=false",
        &format!("{a}/app:1"),
        &format!("docker://{a}/checked:1"),
    ]));
    let plain = s.dir.join("plain");
    fixture(&plain, "img", "amd64", "never signed\n");
    ok(s.lade()
        .arg("--insecure-policy")
        .arg("copy")
        .arg("-q")
        .arg(format!("oci:{}:img", plain.display()))
        .arg("lade:localhost/plain:1"));
    let e = fails(
        s.lade().arg("--policy").arg(&store_policy).args([
            "push",
            "--tls-verify=false",
            "localhost/plain:1",
            &format!("docker://{a}/plain:1"),
        ]),
        1,
    );
    assert!(e.contains("refused by the signature policy"), "{e}");
    ok(s.lade().arg("--insecure-policy").args([
        "push",
        "-q",
        "--remove-signatures",
        "--tls-verify=false",
        &format!("{a}/app:1"),
        &format!("docker://{a}/bare:1"),
    ]));
    assert!(!lookaside_file(&s.sigs, "bare", &s.digest, 1).exists());
    let (accepted, _) = skopeo_accepts(&p, &s.rd, &format!("docker://{a}/bare:1"), &s.dir);
    assert!(
        !accepted,
        "skopeo accepted an image pushed without its signature"
    );
    // The image removed and the store pruned: its signatures go with it.
    let kept = s
        .dir
        .join("store/lade/signatures")
        .join(s.digest.replacen(':', "-", 1));
    assert!(kept.join("signature-1").is_file(), "{}", kept.display());
    // A signed Docker (v2s2) manifest is stored converted to OCI, which its signature does not sign: the
    // pull succeeds and keeps none.
    s.skopeo_sign(&["--format", "v2s2"], &format!("docker://{a}/v2:1"));
    ok(s.lade().arg("--insecure-policy").args([
        "pull",
        "-q",
        "--tls-verify=false",
        &format!("{a}/v2:1"),
    ]));
    let dirs = fs::read_dir(s.dir.join("store/lade/signatures"))
        .unwrap()
        .count();
    assert_eq!(dirs, 1, "only the OCI image's signature is kept");
    let fsck = ok(s.lade().arg("fsck"));
    assert!(!fsck.contains("stale-metadata"), "{fsck}");
    ok(s.lade()
        .args(["rmi", &format!("{a}/app:1"), &format!("{a}/v2:1")]));
    ok(s.lade().arg("prune"));
    assert!(!kept.exists(), "prune left {}", kept.display());
    // One left behind (a killed prune) is reported by fsck and removed by --repair.
    fs::create_dir_all(&kept).unwrap();
    fs::write(kept.join("signature-1"), &original).unwrap();
    let out = run(s.lade().args(["fsck", "--format", "json"]));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("stale-metadata") && report.contains("signature directory"),
        "{report}"
    );
    ok(s.lade().args(["fsck", "--repair"]));
    assert!(!kept.exists(), "fsck --repair left {}", kept.display());
    s.stop();
}
