//! The signature policy (policy.json) through the real binary: `lade trust set/show` against
//! `podman image trust`, and enforcement on pull, copy and FROM: refused images leave nothing in the store,
//! scopes are chosen as skopeo chooses them (skopeo gives the same verdict on the same policy), signatures
//! are found where skopeo put them (GPG lookaside, sigstore attachments) and checked by the signer plugins.

mod fixture;

use fixture::{cosign_sig, fixture, gpg_key, stop_agent};
use lade_tests::{Registry, fails, lade, ok, require_peers, run};
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ACCEPT: &str = r#"[{"type":"insecureAcceptAnything"}]"#;

fn write_policy(dir: &Path, name: &str, policy: &Value) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, serde_json::to_vec_pretty(policy).unwrap()).unwrap();
    p
}

/// Every file under `root` inside a `blobs` directory (a store that received nothing has none).
fn blob_files(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
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

fn images(root: &Path) -> String {
    ok(lade().arg("--root").arg(root).arg("images"))
}

#[test]
fn trust_set_and_show_agree_with_podman() {
    require_peers!("podman");
    let t = tempfile::tempdir().unwrap();
    let policy = t.path().join("policy.json");
    let key = t.path().join("cosign.pub");
    fs::write(
        &key,
        "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let rd = t.path().join("registries.d");
    fs::create_dir(&rd).unwrap();
    fs::write(
        rd.join("a.yaml"),
        "default-docker:\n  sigstore: file:///var/lib/sigs\ndocker:\n  quay.io:\n    lookaside: https://sigs.example/q\n",
    )
    .unwrap();
    let trust = |args: &[&str]| {
        let mut c = lade();
        c.arg("--signature-policy")
            .arg(&policy)
            .arg("--registries.d")
            .arg(&rd)
            .arg("trust")
            .args(args);
        c
    };
    // A scope before the default is refused, as podman refuses it.
    let e = fails(&mut trust(&["set", "-t", "reject", "quay.io/x"]), 1);
    assert!(e.contains("default trust policy must be set"), "{e}");
    ok(&mut trust(&["set", "--type", "accept", "default"]));
    ok(&mut trust(&["set", "-t", "reject", "quay.io/x"]));
    ok(&mut trust(&[
        "set",
        "-t",
        "sigstoreSigned",
        "-f",
        key.to_str().unwrap(),
        "example.com/a/b",
    ]));
    let e = fails(&mut trust(&["set", "-t", "signedBy", "quay.io/y"]), 1);
    assert!(
        e.contains("at least one public key must be defined for type 'signedBy'"),
        "{e}"
    );
    let e = fails(
        &mut trust(&[
            "set",
            "-t",
            "accept",
            "-f",
            key.to_str().unwrap(),
            "quay.io/y",
        ]),
        1,
    );
    assert!(e.contains("1 public keys unexpectedly provided"), "{e}");

    // What lade wrote, podman reads and shows exactly as lade does (table and JSON).
    let podman = |json: bool| {
        let mut c = Command::new("podman");
        c.args(["image", "trust", "show", "--policypath"])
            .arg(&policy)
            .arg("--registrypath")
            .arg(&rd);
        if json {
            c.arg("--json");
        }
        ok(&mut c)
    };
    let ours: Value = serde_json::from_str(&ok(&mut trust(&["show", "--json"]))).unwrap();
    let theirs: Value = serde_json::from_str(&podman(true)).unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(ok(&mut trust(&["show"])), podman(false));
    assert_eq!(ours[1]["sigstore"], "file:///var/lib/sigs");
    assert_eq!(ours[2]["sigstore"], "https://sigs.example/q");
    assert_eq!(ours[2]["type"], "reject");

    // And what podman writes, lade reads (its strict parser accepts it) and shows as podman does.
    let theirs_file = t.path().join("podman.json");
    fs::copy(&policy, &theirs_file).unwrap();
    ok(Command::new("podman")
        .args(["image", "trust", "set", "--policypath"])
        .arg(&theirs_file)
        .args(["-t", "reject", "registry.example/team"]));
    let mut ours = lade();
    ours.arg("--policy")
        .arg(&theirs_file)
        .arg("--registries.d")
        .arg(&rd)
        .args(["trust", "show", "-j"]);
    let ours: Value = serde_json::from_str(&ok(&mut ours)).unwrap();
    let mut podman_show = Command::new("podman");
    podman_show
        .args(["image", "trust", "show", "-j", "--policypath"])
        .arg(&theirs_file)
        .arg("--registrypath")
        .arg(&rd);
    let theirs: Value = serde_json::from_str(&ok(&mut podman_show)).unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(ours.as_array().unwrap().len(), 4);

    // A broken policy is never written: the file keeps its last good content.
    let before = fs::read(&policy).unwrap();
    let e = fails(&mut trust(&["set", "-t", "reject", "not a scope"]), 1);
    assert!(e.contains("invalid scope"), "{e}");
    assert_eq!(fs::read(&policy).unwrap(), before);
}

#[test]
fn trust_show_names_gpg_keys() {
    require_peers!("gpg");
    let t = tempfile::tempdir().unwrap();
    let (home, _fpr) = gpg_key(t.path(), "policy-test", "");
    let key = t.path().join("pub.gpg");
    let out = ok(Command::new("gpg")
        .arg("--homedir")
        .arg(&home)
        .args(["--armor", "--export"]));
    fs::write(&key, out).unwrap();
    let policy = t.path().join("p.json");
    let trust = |args: &[&str]| {
        let mut c = lade();
        c.arg("--policy")
            .arg(&policy)
            .arg("--registries.d")
            .arg(t.path())
            .arg("trust")
            .args(args);
        c
    };
    ok(&mut trust(&["set", "-t", "reject", "default"]));
    ok(&mut trust(&[
        "set",
        "-f",
        key.to_str().unwrap(),
        "quay.io/team",
    ]));
    let rows: Value =
        serde_json::from_str(&ok(&mut trust(&["show", "--json", "quay.io/team"]))).unwrap();
    assert_eq!(
        rows,
        json!([{"transport": "repository", "name": "quay.io/team", "repo_name": "quay.io/team", "type": "signed",
                "gpg_id": "policy-test@example.com"}])
    );
    let written: Value = serde_json::from_slice(&fs::read(&policy).unwrap()).unwrap();
    assert_eq!(
        written["transports"]["docker"]["quay.io/team"],
        json!([{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key.to_str().unwrap()}])
    );
    stop_agent(&home);
}

#[test]
fn a_reject_scope_refuses_pull_copy_and_load_and_writes_nothing() {
    require_peers!("skopeo");
    let t = tempfile::tempdir().unwrap();
    let src = fs::canonicalize(t.path()).unwrap().join("src");
    fixture(&src, "base", "amd64", "refused\n");
    let root = t.path().join("store");
    let reject = write_policy(
        t.path(),
        "reject.json",
        &json!({"default": [{"type": "insecureAcceptAnything"}],
                "transports": {"oci": {src.to_str().unwrap(): [{"type": "reject"}]}}}),
    );
    let src_ref = format!("oci:{}:base", src.display());

    // skopeo refuses this copy under the same policy: the oracle for the scope choice.
    let sk = lade_tests::run(Command::new("skopeo").arg("--policy").arg(&reject).args([
        "copy",
        &src_ref,
        &format!("oci:{}:x", t.path().join("sk").display()),
    ]));
    assert!(
        !sk.status.success(),
        "skopeo accepted an image its policy rejects"
    );

    let e = fails(
        lade()
            .arg("--root")
            .arg(&root)
            .arg("--signature-policy")
            .arg(&reject)
            .args(["pull", &src_ref]),
        1,
    );
    assert!(
        e.contains(&format!("scope transports.oci[\"{}\"]", src.display())),
        "{e}"
    );
    assert!(e.contains("is rejected by policy"), "{e}");
    assert!(
        e.contains(reject.to_str().unwrap()),
        "the message names the policy file: {e}"
    );
    assert!(
        blob_files(&root).is_empty(),
        "a refused pull wrote {:?}",
        blob_files(&root)
    );
    assert!(!images(&root).contains("base"));

    // copy into an OCI layout: the destination gets no manifest.
    let dst = t.path().join("dst");
    fails(
        lade().arg("--policy").arg(&reject).args([
            "copy",
            &src_ref,
            &format!("oci:{}:x", dst.display()),
        ]),
        1,
    );
    assert!(blob_files(&dst).is_empty());

    // load of an oci-archive under a policy rejecting that file.
    let archive = t.path().join("img.tar");
    ok(Command::new("skopeo").args([
        "copy",
        &src_ref,
        &format!("oci-archive:{}:app:1", archive.display()),
    ]));
    let reject_archive = write_policy(
        t.path(),
        "reject-archive.json",
        &json!({"default": [{"type": "insecureAcceptAnything"}],
                "transports": {"oci-archive": {archive.to_str().unwrap(): [{"type": "reject"}]}}}),
    );
    let e = fails(
        lade()
            .arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(&reject_archive)
            .arg("load")
            .arg("-i")
            .arg(&archive),
        1,
    );
    assert!(e.contains("oci-archive"), "{e}");
    assert!(blob_files(&root).is_empty());

    // The same pull is accepted by an accepting policy, and by --insecure-policy.
    let accept = write_policy(
        t.path(),
        "accept.json",
        &json!({"default": serde_json::from_str::<Value>(ACCEPT).unwrap()}),
    );
    ok(lade()
        .arg("--root")
        .arg(&root)
        .arg("--signature-policy")
        .arg(&accept)
        .args(["pull", &src_ref]));
    assert!(images(&root).contains("base"));
    assert!(
        !blob_files(&root).is_empty(),
        "blob_files sees what a pull writes"
    );
    let root2 = t.path().join("store2");
    ok(lade()
        .arg("--root")
        .arg(&root2)
        .arg("--policy")
        .arg(&reject)
        .arg("--insecure-policy")
        .args(["pull", &src_ref]));
    assert!(images(&root2).contains("base"));
}

#[test]
fn the_user_policy_wins_over_the_system_one_and_a_broken_policy_is_named() {
    let t = tempfile::tempdir().unwrap();
    let src = fs::canonicalize(t.path()).unwrap().join("src");
    fixture(&src, "base", "amd64", "home\n");
    let home = t.path().join("home");
    fs::create_dir_all(home.join(".config/containers")).unwrap();
    fs::write(
        home.join(".config/containers/policy.json"),
        r#"{"default":[{"type":"reject"}]}"#,
    )
    .unwrap();
    let root = t.path().join("store");
    let src_ref = format!("oci:{}:base", src.display());
    let e = fails(
        lade()
            .env("HOME", &home)
            .arg("--root")
            .arg(&root)
            .args(["pull", &src_ref]),
        1,
    );
    assert!(
        e.contains("(scope default)") && e.contains(".config/containers/policy.json"),
        "{e}"
    );
    assert!(blob_files(&root).is_empty());

    // Strict parsing: a duplicate key is refused with its path, before anything is read.
    fs::write(
        home.join(".config/containers/policy.json"),
        r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"oci":{"":[{"type":"reject","type":"reject"}]}}}"#,
    )
    .unwrap();
    let e = fails(
        lade()
            .env("HOME", &home)
            .arg("--root")
            .arg(&root)
            .args(["pull", &src_ref]),
        1,
    );
    assert!(
        e.contains(r#"transports.oci[""][0]: duplicate key "type""#),
        "{e}"
    );
    let e = fails(
        lade()
            .arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(t.path().join("absent.json"))
            .args(["pull", &src_ref]),
        1,
    );
    assert!(e.contains("absent.json"), "{e}");
}

#[test]
fn registry_scopes_lookaside_and_attachments_are_found_and_verified() {
    require_peers!("docker-registry", "skopeo", "gpg");
    let Some(reg) = Registry::start() else { return };
    let t = tempfile::tempdir().unwrap();
    let (home, fpr) = gpg_key(t.path(), "policy-test", "");
    let pubkey = t.path().join("pub.gpg");
    fs::write(
        &pubkey,
        ok(Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--armor", "--export"])),
    )
    .unwrap();
    let src = t.path().join("src");
    let digest = fixture(&src, "base", "amd64", "signed\n");
    let sigs = t.path().join("sigs");
    let rd = t.path().join("registries.d");
    fs::create_dir(&rd).unwrap();
    let a = &reg.addr;
    fs::write(
        rd.join("test.yaml"),
        format!("docker:\n  {a}:\n    lookaside: file://{}\n  {a}/cos:\n    use-sigstore-attachments: true\n", sigs.display()),
    )
    .unwrap();
    let push = |repo: &str, sign: bool| {
        let mut c = Command::new("skopeo");
        c.env("GNUPGHOME", &home)
            .arg("--registries.d")
            .arg(&rd)
            .args([
                "copy",
                "-q",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ]);
        if sign {
            c.args(["--sign-by", &fpr]);
        }
        c.arg(format!("oci:{}:base", src.display()))
            .arg(format!("docker://{a}/{repo}"));
        ok(&mut c);
    };
    push("team/signed:1", true);
    push("team/unsigned:1", false);
    push("open/app:1", false);
    push("cos/app:1", false);
    // A cosign-style attachment next to cos/app (its key is not a key: refused).
    let sig_tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    cosign_sig(&src, &digest);
    ok(Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{sig_tag}", src.display()))
        .arg(format!("docker://{a}/cos/app:{sig_tag}")));
    let lookaside = sigs.join(format!(
        "team/signed@{}/signature-1",
        digest.replacen(':', "=", 1)
    ));
    assert!(
        lookaside.is_file(),
        "skopeo wrote no signature at {}",
        lookaside.display()
    );

    let k1 = "bm90IGEgcmVhbCBrZXk="; // base64 of "not a real key"
    let policy = write_policy(
        t.path(),
        "policy.json",
        &json!({"default": [{"type": "reject"}],
        "transports": {"docker": {
            format!("{a}/team"): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": pubkey.to_str().unwrap()}],
            format!("{a}/open"): [{"type": "insecureAcceptAnything"}],
            format!("{a}/cos"): [{"type": "sigstoreSigned", "keyData": k1}],
        }}}),
    );
    // skopeo verifies the GPG signature it made under this policy: the lookaside is where lade reads.
    ok(Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .arg("--registries.d")
        .arg(&rd)
        .args([
            "copy",
            "-q",
            "--remove-signatures",
            "--src-tls-verify=false",
            &format!("docker://{a}/team/signed:1"),
        ])
        .arg(format!("oci:{}:x", t.path().join("sk").display())));
    let sk = run(Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .arg("--registries.d")
        .arg(&rd)
        .args([
            "copy",
            "-q",
            "--remove-signatures",
            "--src-tls-verify=false",
            &format!("docker://{a}/team/unsigned:1"),
        ])
        .arg(format!("oci:{}:y", t.path().join("sk").display())));
    assert!(!sk.status.success());

    let root = t.path().join("store");
    let pull = |image: &str| {
        let mut c = lade();
        c.arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(&policy)
            .arg("--registries.d")
            .arg(&rd)
            .args(["pull", "--tls-verify=false", &format!("{a}/{image}")]);
        c
    };
    let e = fails(&mut pull("team/unsigned:1"), 1);
    assert!(
        e.contains("a signature was required, but no signature exists"),
        "{e}"
    );
    let e = fails(&mut pull("cos/app:1"), 1);
    assert!(
        e.contains("the sigstore signature is not valid")
            && e.contains("the public key cannot be used"),
        "the attachment was found, and its key (not a key) refused: {e}"
    );
    let e = fails(&mut pull("other/app:1"), 1);
    assert!(
        e.contains("(scope default)") && e.contains("rejected by policy"),
        "{e}"
    );
    assert!(
        blob_files(&root).is_empty(),
        "refused pulls wrote {:?}",
        blob_files(&root)
    );
    ok(&mut pull("open/app:1"));
    assert!(images(&root).contains("open/app"));
    // skopeo's GPG signature in the lookaside, verified by the gpg signer plugin.
    ok(&mut pull("team/signed:1"));
    assert!(images(&root).contains("team/signed"));

    // The same lookaside served over HTTP (a 404 ends the list): the signature is found there too.
    require_peers!("python3");
    let port = lade_tests::free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&sigs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(lade_tests::wait_for_port(
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(15)
    ));
    let rd_http = t.path().join("registries.d-http");
    fs::create_dir(&rd_http).unwrap();
    fs::write(
        rd_http.join("http.yaml"),
        format!("docker:\n  {a}:\n    lookaside: http://127.0.0.1:{port}\n"),
    )
    .unwrap();
    let pull_http = |image: &str| {
        let mut c = lade();
        c.arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(&policy)
            .arg("--registries.d")
            .arg(&rd_http)
            .args(["pull", "--tls-verify=false", &format!("{a}/{image}")]);
        run(&mut c)
    };
    let signed = pull_http("team/signed:1");
    let unsigned = pull_http("team/unsigned:1");
    let _ = server.kill();
    let _ = server.wait();
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(signed.status.success(), "{}", stderr(&signed));
    assert!(
        stderr(&unsigned).contains("no signature exists"),
        "{}",
        stderr(&unsigned)
    );
    stop_agent(&home);
}

/// Signatures skopeo stores in a `dir:` image (`signature-1`) are read.
#[test]
fn dir_signatures_written_by_skopeo_are_read() {
    require_peers!("skopeo", "gpg");
    let t = tempfile::tempdir().unwrap();
    let (home, fpr) = gpg_key(t.path(), "policy-test", "");
    let src = t.path().join("src");
    fixture(&src, "base", "amd64", "dir\n");
    let signed = t.path().join("signed");
    let plain = t.path().join("plain");
    ok(Command::new("skopeo")
        .env("GNUPGHOME", &home)
        .args([
            "copy",
            "-q",
            "--sign-by",
            &fpr,
            "--sign-identity",
            "q.io/a:1",
        ])
        .arg(format!("oci:{}:base", src.display()))
        .arg(format!("dir:{}", signed.display())));
    assert!(
        signed.join("signature-1").is_file(),
        "skopeo wrote no dir: signature"
    );
    ok(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:base", src.display()))
        .arg(format!("dir:{}", plain.display())));
    let policy = write_policy(
        t.path(),
        "p.json",
        &json!({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "aw==",
                             "signedIdentity": {"type": "exactRepository", "dockerRepository": "q.io/a"}}]}),
    );
    let root = t.path().join("store");
    let pull = |d: &Path| {
        let mut c = lade();
        c.arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(&policy)
            .arg("pull")
            .arg(format!("dir:{}", d.display()));
        fails(&mut c, 1)
    };
    let e = pull(&signed);
    assert!(
        e.contains("the GPG signature is not valid"),
        "found, and refused (the keyData is no key): {e}"
    );
    let e = pull(&plain);
    assert!(e.contains("no signature exists"), "{e}");
    assert!(blob_files(&root).is_empty());
    stop_agent(&home);
}

#[test]
fn a_build_from_a_refused_base_fails_before_unpacking() {
    require_peers!("umoci");
    let t = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(t.path()).unwrap().join("base");
    lade_tests::oci::busybox_image(&base, "base");
    let ctx = t.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Containerfile"),
        format!("FROM oci:{}:base\nLABEL a=b\n", base.display()),
    )
    .unwrap();
    let root = t.path().join("store");
    let policy = write_policy(
        t.path(),
        "p.json",
        &json!({"default": [{"type": "insecureAcceptAnything"}],
                "transports": {"oci": {"": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "aw=="}]}}}),
    );
    let e = fails(
        lade()
            .arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(&policy)
            .args(["build", "-t", "app:1"])
            .arg(&ctx),
        1,
    );
    assert!(
        e.contains("scope transports.oci[\"\"]") && e.contains("no signature exists"),
        "{e}"
    );
    assert!(
        blob_files(&root).is_empty(),
        "a refused FROM wrote {:?}",
        blob_files(&root)
    );
    assert!(!images(&root).contains("app"));
    ok(lade()
        .arg("--root")
        .arg(&root)
        .arg("--insecure-policy")
        .arg("--policy")
        .arg(&policy)
        .args(["build", "-t", "app:1"])
        .arg(&ctx));
    assert!(images(&root).contains("app"));
}

/// `lade plugin install` from an `oci:` layout is refused by a policy rejecting that layout, and installs
/// nothing; an accepting policy installs it.
#[test]
fn plugin_install_obeys_the_policy() {
    let t = tempfile::tempdir().unwrap();
    lade_tests::lade_bin();
    let wasm = lade_tests::target_dir().join("plugins/wasm32-wasip2/release/lade_dockerfile.wasm");
    let layout = fs::canonicalize(t.path()).unwrap().join("layout");
    let root = t.path().join("store");
    ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["plugin", "push"])
        .arg(&wasm)
        .arg(format!("oci:{}:1", layout.display())));
    let reject = write_policy(
        t.path(),
        "reject.json",
        &json!({"default": [{"type": "insecureAcceptAnything"}],
                "transports": {"oci": {layout.to_str().unwrap(): [{"type": "reject"}]}}}),
    );
    let install = |policy: &Path| {
        let mut c = lade();
        c.arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(policy)
            .args(["plugin", "install"])
            .arg(format!("oci:{}:1", layout.display()));
        c
    };
    let e = fails(&mut install(&reject), 1);
    assert!(
        e.contains(&format!("scope transports.oci[\"{}\"]", layout.display())),
        "{e}"
    );
    assert!(!root.join("plugins/dockerfile.wasm").exists());
    let accept = write_policy(
        t.path(),
        "accept.json",
        &json!({"default": [{"type": "insecureAcceptAnything"}]}),
    );
    ok(&mut install(&accept));
    assert_eq!(
        fs::read(root.join("plugins/dockerfile.wasm")).unwrap(),
        fs::read(&wasm).unwrap()
    );
}
