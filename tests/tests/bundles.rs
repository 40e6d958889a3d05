//! cosign v3 bundles and SBOM referrers through the real binary. The independent implementation is npm's
//! sigstore libraries (@sigstore/bundle + @sigstore/verify, offline, a public key as the only trust material,
//! driven by tests/fixtures/sigstore/bundle_peer.js): it verifies the bundles lade pushed and makes bundles
//! (signed with node's crypto) for lade to verify. What lade stored is read back with curl over the
//! registry's HTTP API and with skopeo, never with lade. docker-registry 2.x has no referrers API, so every
//! referrer here goes through the `sha256-<hex>` fallback tag.

mod fixture;

use fixture::fixture;
use lade_tests::{Registry, fails, lade, ok, require_peers, workspace};
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASS: &str = "bundle pass";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// The node peer, or None (loudly) when node or the @sigstore modules are missing and peers are not required.
fn node_peer() -> Option<PathBuf> {
    let dir = std::env::var_os("LADE_ORACLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/lib/lade-oracles"));
    let usable = lade_tests::which("node").is_some()
        && dir
            .join("node_modules/@sigstore/verify/package.json")
            .is_file();
    if usable {
        return Some(workspace().join("tests/fixtures/sigstore/bundle_peer.js"));
    }
    assert!(
        !lade_tests::peers_required(),
        "node with @sigstore/verify in {} is required (LADE_REQUIRE_PEERS=1): run scripts/setup.sh",
        dir.display()
    );
    eprintln!(
        "\n*** SKIPPED: node or npm's @sigstore/verify is missing; run scripts/setup.sh ***\n"
    );
    None
}

fn js(peer: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("node");
    c.arg(peer).args(args);
    c
}

/// The peer verifies `bundle` with `public`; Some(statement) when it accepts.
fn js_verify(peer: &Path, bundle: &Path, public: &Path) -> Option<Value> {
    let out = js(
        peer,
        &["verify", bundle.to_str().unwrap(), public.to_str().unwrap()],
    )
    .output()
    .unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// A cosign key pair made by lade in `dir` (cosign.key, cosign.pub).
fn lade_key(dir: &Path) -> (PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap();
    ok(lade()
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASS)
        .arg("generate-key-pair"));
    (dir.join("cosign.key"), dir.join("cosign.pub"))
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

/// GET from the registry with curl; None on 404.
fn get(addr: &str, path: &str, accept: &str) -> Option<Vec<u8>> {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Accept: {accept}"))
        .arg(format!("http://{addr}/v2/{path}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {path}");
    let body = out.stdout;
    let nl = body.iter().rposition(|&b| b == b'\n').unwrap();
    let code = String::from_utf8_lossy(&body[nl + 1..]).to_string();
    match code.as_str() {
        "200" => Some(body[..nl].to_vec()),
        "404" => None,
        other => panic!(
            "GET {path}: HTTP {other}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
}

fn get_json(addr: &str, path: &str, accept: &str) -> Option<Value> {
    get(addr, path, accept).map(|b| serde_json::from_slice(&b).unwrap())
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The referrers of `digest` in `repo` with `artifact_type`, read as a client without the referrers API
/// reads them: the fallback tag's index, then each manifest (and skopeo reads the same manifest).
fn referrers(addr: &str, repo: &str, digest: &str, artifact_type: &str) -> Vec<(String, Value)> {
    assert_eq!(
        get(addr, &format!("{repo}/referrers/{digest}"), OCI_INDEX),
        None,
        "this docker-registry has a referrers API; the test means to exercise the fallback tag"
    );
    let tag = digest.replacen(':', "-", 1);
    let Some(index) = get_json(addr, &format!("{repo}/manifests/{tag}"), OCI_INDEX) else {
        return vec![];
    };
    assert_eq!(index["mediaType"], OCI_INDEX, "{index}");
    let mut out = vec![];
    for d in index["manifests"].as_array().unwrap() {
        if d["artifactType"] != artifact_type {
            continue;
        }
        let rd = d["digest"].as_str().unwrap();
        let m = get_json(addr, &format!("{repo}/manifests/{rd}"), OCI_MANIFEST).unwrap();
        assert_eq!(m["subject"]["digest"], digest, "{m}");
        assert_eq!(m["artifactType"], artifact_type, "{m}");
        let raw = ok(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{addr}/{repo}@{rd}")));
        assert_eq!(serde_json::from_str::<Value>(&raw).unwrap(), m);
        out.push((rd.to_string(), m));
    }
    out
}

/// The one layer of a referrer manifest, fetched with curl and written to `to`.
fn layer(addr: &str, repo: &str, m: &Value, to: &Path) -> Vec<u8> {
    let d = m["layers"][0]["digest"].as_str().unwrap();
    let b = get(addr, &format!("{repo}/blobs/{d}"), "*/*").unwrap();
    fs::write(to, &b).unwrap();
    b
}

/// Upload a blob with curl (POST, then PUT with the digest).
fn push_blob(addr: &str, repo: &str, bytes: &[u8], work: &Path) -> String {
    let digest = lade::oci::verify::sha256_digest(bytes).to_string();
    let f = work.join("blob.upload");
    fs::write(&f, bytes).unwrap();
    let headers = ok(Command::new("curl")
        .args(["-s", "-f", "-D", "-", "-o", "/dev/null", "-X", "POST"])
        .arg(format!("http://{addr}/v2/{repo}/blobs/uploads/")));
    let loc = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("location:")
                .then(|| l[9..].trim().to_string())
        })
        .unwrap();
    let loc = if loc.starts_with('/') {
        format!("http://{addr}{loc}")
    } else {
        loc
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    ok(Command::new("curl")
        .args([
            "-s",
            "-f",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", f.display()))
        .arg(format!("{loc}{sep}digest={digest}")));
    digest
}

fn put_manifest(addr: &str, repo: &str, reference: &str, v: &Value, media_type: &str, work: &Path) {
    let f = work.join("manifest.upload");
    fs::write(&f, serde_json::to_vec(v).unwrap()).unwrap();
    ok(Command::new("curl")
        .args(["-s", "-f", "-X", "PUT", "-H"])
        .arg(format!("Content-Type: {media_type}"))
        .arg("--data-binary")
        .arg(format!("@{}", f.display()))
        .arg(format!("http://{addr}/v2/{repo}/manifests/{reference}")));
}

/// Attach `bundle` to `subject` in `repo` as cosign's bundle spec says, with curl: blobs, the referrer
/// manifest by digest, and the fallback tag index.
fn attach_bundle(addr: &str, repo: &str, subject: &str, bundle: &[u8], work: &Path) {
    let empty = push_blob(addr, repo, b"{}", work);
    let b = push_blob(addr, repo, bundle, work);
    let image = get(addr, &format!("{repo}/manifests/{subject}"), OCI_MANIFEST).unwrap();
    let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": BUNDLE, "digest": b, "size": bundle.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": image.len()},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": SIGN_PREDICATE}});
    let bytes = serde_json::to_vec(&m).unwrap();
    let md = lade::oci::verify::sha256_digest(&bytes).to_string();
    put_manifest(addr, repo, &md, &m, OCI_MANIFEST, work);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": md, "size": bytes.len(), "artifactType": BUNDLE,
         "annotations": m["annotations"]}]});
    put_manifest(
        addr,
        repo,
        &subject.replacen(':', "-", 1),
        &index,
        OCI_INDEX,
        work,
    );
}

/// An in-toto statement as cosign v3 signs an image: its manifest digest, named by its repository.
fn statement(name: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": SIGN_PREDICATE, "predicate": {}}))
    .unwrap()
}

/// policy.json: sigstoreSigned with `key` for each of `repos`, reject elsewhere; and registries.d turning
/// sigstore attachments (tag signatures and bundles) on for `addr`.
fn policy(dir: &Path, addr: &str, repos: &[(&str, &Path)]) -> (PathBuf, PathBuf) {
    let mut scopes = serde_json::Map::new();
    for (repo, key) in repos {
        scopes.insert(
            format!("{addr}/{repo}"),
            json!([{"type": "sigstoreSigned", "keyPath": key.to_str().unwrap()}]),
        );
    }
    let p = dir.join("policy.json");
    fs::write(
        &p,
        serde_json::to_vec(
            &json!({"default": [{"type": "reject"}], "transports": {"docker": scopes}}),
        )
        .unwrap(),
    )
    .unwrap();
    let rd = dir.join("registries.d");
    fs::create_dir_all(&rd).unwrap();
    fs::write(
        rd.join("sigstore.yaml"),
        format!("docker:\n  {addr}:\n    use-sigstore-attachments: true\n"),
    )
    .unwrap();
    (p, rd)
}

fn verify_cmd(key: &Path, image: &str) -> Command {
    let mut c = lade();
    c.args(["verify", "--tls-verify=false", "-o", "json", "--key"])
        .arg(key)
        .arg(image);
    c
}

#[test]
fn lade_bundles_are_verified_by_sigstore_js_and_accepted_by_policy() {
    require_peers!("docker-registry", "skopeo", "curl", "node");
    let Some(peer) = node_peer() else { return };
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let digest = fixture(&src, "img", "amd64", "bundle-signed\n");
    skopeo_push(&src, "img", &format!("{a}/app:1"));
    let (key, public) = lade_key(&t.path().join("k"));
    fs::create_dir_all(t.path().join("other")).unwrap();
    ok(&mut js(
        &peer,
        &["make-key", t.path().join("other").to_str().unwrap()],
    ));
    let other_pub = t.path().join("other/peer.pub");

    ok(lade()
        .env("COSIGN_PASSWORD", PASS)
        .args(["sign", "--bundle", "--tls-verify=false", "--key"])
        .arg(&key)
        .arg(format!("{a}/app:1")));
    // No .sig tag: the signature is the bundle referrer only.
    let sig_tag = format!("app/manifests/{}.sig", digest.replacen(':', "-", 1));
    assert_eq!(get(a, &sig_tag, OCI_MANIFEST), None);
    let found = referrers(a, "app", &digest, BUNDLE);
    assert_eq!(found.len(), 1, "{found:?}");
    let (_, m) = &found[0];
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(m["layers"][0]["mediaType"], BUNDLE);
    assert_eq!(
        m["annotations"]["dev.sigstore.bundle.predicateType"],
        SIGN_PREDICATE
    );
    let bundle = t.path().join("lade.sigstore.json");
    layer(a, "app", m, &bundle);

    // sigstore-js accepts it with lade's public key; the statement is about the image's manifest digest.
    let st = js_verify(&peer, &bundle, &public).expect("@sigstore/verify refused lade's bundle");
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], SIGN_PREDICATE);
    assert_eq!(
        st["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    assert_eq!(st["subject"][0]["name"], format!("{a}/app:1"));
    // ...and refuses it with another key, or once a byte of the signed statement changes.
    assert!(js_verify(&peer, &bundle, &other_pub).is_none());
    let mut tampered: Value = serde_json::from_slice(&fs::read(&bundle).unwrap()).unwrap();
    let other_statement = statement(&format!("{a}/app"), &format!("sha256:{}", "0".repeat(64)));
    tampered["dsseEnvelope"]["payload"] = base64(&other_statement).into();
    let tampered_path = t.path().join("tampered.json");
    fs::write(&tampered_path, serde_json::to_vec(&tampered).unwrap()).unwrap();
    assert!(js_verify(&peer, &tampered_path, &public).is_none());

    // lade verify finds it through the fallback tag.
    let report: Value =
        serde_json::from_str(&ok(&mut verify_cmd(&public, &format!("{a}/app:1")))).unwrap();
    assert_eq!(report["manifest_digest"], digest.as_str(), "{report}");
    assert_eq!(report["bundles"][0]["valid"], true, "{report}");
    assert_eq!(
        report["bundles"][0]["docker_reference"],
        format!("{a}/app:1")
    );
    let e = fails(&mut verify_cmd(&other_pub, &format!("{a}/app:1")), 1);
    assert!(e.contains("1 sigstore bundle(s)"), "{e}");

    // policy.json: sigstoreSigned accepts the bundle on pull; the same image under another key is refused,
    // naming the scope and the reason, and nothing is written.
    skopeo_push(&src, "img", &format!("{a}/wrong:1"));
    ok(lade()
        .env("COSIGN_PASSWORD", PASS)
        .args(["sign", "--bundle", "--tls-verify=false", "--key"])
        .arg(&key)
        .arg(format!("{a}/wrong:1")));
    let (pol, rd) = policy(t.path(), a, &[("app", &public), ("wrong", &other_pub)]);
    let root = t.path().join("store");
    let pull = |repo: &str| {
        let mut c = lade();
        c.arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(&pol)
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
    assert!(e.contains("the sigstore bundle is not valid"), "{e}");
    ok(&mut pull("app"));
    let images = ok(lade().arg("--root").arg(&root).arg("images"));
    assert!(
        images.contains(&format!("{a}/app")) && !images.contains("wrong"),
        "{images}"
    );
}

/// Standard base64 (coreutils).
fn base64(b: &[u8]) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut c = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn sigstore_js_bundles_are_accepted_and_tampered_or_foreign_ones_refused() {
    require_peers!("docker-registry", "skopeo", "curl", "node");
    let Some(peer) = node_peer() else { return };
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    ok(&mut js(&peer, &["make-key", w.to_str().unwrap()]));
    let (pkey, ppub) = (w.join("peer.key"), w.join("peer.pub"));
    let (_, lade_pub) = lade_key(&w.join("lade"));
    let src = w.join("src");
    let good = fixture(&src, "good", "amd64", "peer signed\n");
    let other = fixture(&src, "other", "amd64", "another image\n");
    let sign = |name: &str, digest: &str, out: &str| -> Vec<u8> {
        let st = w.join(format!("{out}.statement"));
        fs::write(&st, statement(name, digest)).unwrap();
        let b = w.join(out);
        ok(&mut js(
            &peer,
            &[
                "sign",
                pkey.to_str().unwrap(),
                st.to_str().unwrap(),
                b.to_str().unwrap(),
            ],
        ));
        fs::read(b).unwrap()
    };
    // app: the peer's bundle about the image; tampered: a bundle whose statement was swapped after signing
    // (names another image, signature unchanged); foreign: a valid bundle about another image, attached here.
    for repo in ["app", "tampered", "foreign"] {
        skopeo_push(&src, "good", &format!("{a}/{repo}:1"));
    }
    let app = sign(&format!("{a}/app"), &good, "app.json");
    attach_bundle(a, "app", &good, &app, w);
    let mut t_bundle: Value = serde_json::from_slice(&app).unwrap();
    t_bundle["dsseEnvelope"]["payload"] =
        base64(&statement(&format!("{a}/tampered"), &good)).into();
    attach_bundle(
        a,
        "tampered",
        &good,
        &serde_json::to_vec(&t_bundle).unwrap(),
        w,
    );
    let foreign = sign(&format!("{a}/foreign"), &other, "foreign.json");
    attach_bundle(a, "foreign", &good, &foreign, w);

    let img = |repo: &str| format!("{a}/{repo}:1");
    let report: Value = serde_json::from_str(&ok(&mut verify_cmd(&ppub, &img("app")))).unwrap();
    assert_eq!(report["bundles"][0]["valid"], true, "{report}");
    let e = fails(&mut verify_cmd(&lade_pub, &img("app")), 1);
    assert!(e.contains("is valid for the key"), "{e}");
    let out = Command::new(lade_tests::lade_bin())
        .args(["verify", "--tls-verify=false", "-o", "json", "--key"])
        .arg(&ppub)
        .arg(img("tampered"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["bundles"][0]["error"]
            .as_str()
            .unwrap()
            .contains("signature(s) is valid"),
        "{r}"
    );
    let out = Command::new(lade_tests::lade_bin())
        .args(["verify", "--tls-verify=false", "-o", "json", "--key"])
        .arg(&ppub)
        .arg(img("foreign"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = r["bundles"][0]["error"].as_str().unwrap();
    assert!(err.contains(&other) && err.contains(&good), "{r}");

    // Under policy.json: the peer's key accepts app (its subject names the repository, as cosign writes
    // it: matched by repository), and refuses the tampered and the foreign bundle, naming why.
    let (pol, rd) = policy(
        w,
        a,
        &[("app", &ppub), ("tampered", &ppub), ("foreign", &ppub)],
    );
    let root = w.join("store");
    let pull = |repo: &str| {
        let mut c = lade();
        c.arg("--root")
            .arg(&root)
            .arg("--policy")
            .arg(&pol)
            .arg("--registries.d")
            .arg(&rd)
            .args(["pull", "--tls-verify=false", &img(repo)]);
        c
    };
    let e = fails(&mut pull("tampered"), 1);
    assert!(
        e.contains(&format!("scope transports.docker[\"{a}/tampered\"]")),
        "{e}"
    );
    assert!(e.contains("the sigstore bundle is not valid"), "{e}");
    let e = fails(&mut pull("foreign"), 1);
    assert!(
        e.contains(&format!("not the image's manifest {good}")),
        "{e}"
    );
    ok(&mut pull("app"));
}

#[test]
fn oci_layouts_hold_bundles_and_copies_keep_them() {
    require_peers!("docker-registry", "skopeo", "curl", "node");
    let Some(peer) = node_peer() else { return };
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    let t = tempfile::tempdir().unwrap();
    let (key, public) = lade_key(&t.path().join("k"));
    let src = t.path().join("src");
    let digest = fixture(&src, "img", "amd64", "copied with its bundle\n");
    let oci = format!("oci:{}:img", src.display());
    ok(lade()
        .env("COSIGN_PASSWORD", PASS)
        .args([
            "sign",
            "--bundle",
            "--sign-identity",
            "example.com/app:1",
            "--key",
        ])
        .arg(&key)
        .arg(&oci));
    // The layout's index.json holds the referrer, untagged, with its subject.
    let index: Value = serde_json::from_slice(&fs::read(src.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    let r: Value = serde_json::from_slice(
        &fs::read(
            src.join("blobs/sha256").join(
                entries[1]["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(r["subject"]["digest"], digest.as_str());
    assert_eq!(r["artifactType"], BUNDLE);
    ok(&mut verify_cmd(&public, &oci));

    // copy to the registry (the referrer follows, through the fallback tag), then back to a layout.
    let copy = |from: &str, to: &str| {
        ok(lade().arg("--insecure-policy").args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            from,
            to,
        ]));
    };
    copy(&oci, &format!("docker://{a}/copied:1"));
    let found = referrers(a, "copied", &digest, BUNDLE);
    assert_eq!(found.len(), 1);
    let bundle = t.path().join("copied.json");
    layer(a, "copied", &found[0].1, &bundle);
    let st =
        js_verify(&peer, &bundle, &public).expect("@sigstore/verify refused the copied bundle");
    assert_eq!(st["subject"][0]["name"], "example.com/app:1");
    ok(&mut verify_cmd(&public, &format!("{a}/copied:1")));
    let out = t.path().join("out");
    copy(
        &format!("docker://{a}/copied:1"),
        &format!("oci:{}:x", out.display()),
    );
    ok(&mut verify_cmd(
        &public,
        &format!("oci:{}:x", out.display()),
    ));
    // --no-referrers leaves it behind.
    let bare = t.path().join("bare");
    ok(lade().arg("--insecure-policy").args([
        "copy",
        "--no-referrers",
        "--src-tls-verify=false",
        &format!("docker://{a}/copied:1"),
        &format!("oci:{}:x", bare.display()),
    ]));
    fails(
        &mut verify_cmd(&public, &format!("oci:{}:x", bare.display())),
        1,
    );

    // The store: an image signed there is named by its store name, so the policy's identity check on
    // a copy out of the store accepts it (and another key is refused).
    let root = t.path().join("store");
    let in_store = || {
        let mut c = lade();
        c.arg("--root").arg(&root);
        c
    };
    ok(in_store().args(["--insecure-policy", "pull", &oci]));
    ok(in_store()
        .env("COSIGN_PASSWORD", PASS)
        .args(["sign", "--bundle", "--key"])
        .arg(&key)
        .arg("lade:img"));
    let (_, other_pub) = lade_key(&t.path().join("k2"));
    for (k, good) in [(&public, true), (&other_pub, false)] {
        let pol = t.path().join("store-policy.json");
        fs::write(
            &pol,
            serde_json::to_vec(&json!({"default": [{"type": "sigstoreSigned", "keyPath": k}]}))
                .unwrap(),
        )
        .unwrap();
        let mut c = in_store();
        c.arg("--policy").arg(&pol).args([
            "copy",
            "lade:img",
            &format!("oci:{}:x", t.path().join("from-store").display()),
        ]);
        if good {
            ok(&mut c);
        } else {
            let e = fails(&mut c, 1);
            assert!(e.contains("the sigstore bundle is not valid"), "{e}");
        }
    }
}

#[test]
fn sboms_are_attached_as_referrers_and_signed_as_attestations() {
    require_peers!("docker-registry", "skopeo", "curl", "node");
    let Some(peer) = node_peer() else { return };
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    let t = tempfile::tempdir().unwrap();
    let (key, public) = lade_key(&t.path().join("k"));
    let src = t.path().join("src");
    let digest = fixture(&src, "img", "amd64", "with an sbom\n");
    skopeo_push(&src, "img", &format!("{a}/app:1"));
    let spdx = t.path().join("sbom.spdx.json");
    ok(lade()
        .args(["sbom", "--format", "spdx-json", "-o"])
        .arg(&spdx)
        .arg(format!("oci:{}:img", src.display())));
    let cdx = t.path().join("sbom.cdx.json");
    ok(lade()
        .args(["sbom", "--format", "cyclonedx-json", "-o"])
        .arg(&cdx)
        .arg(format!("oci:{}:img", src.display())));

    // Unsigned SPDX (the type read from the document), then CycloneDX signed as an attestation too.
    ok(lade()
        .args(["attach", "sbom", "--tls-verify=false"])
        .arg(format!("{a}/app:1"))
        .arg(&spdx));
    ok(lade()
        .env("COSIGN_PASSWORD", PASS)
        .args([
            "attach",
            "sbom",
            "--type",
            "cyclonedx",
            "--tls-verify=false",
            "--sign-by-sigstore-private-key",
        ])
        .arg(&key)
        .arg(format!("{a}/app:1"))
        .arg(&cdx));
    for (file, ty) in [
        (&spdx, "application/spdx+json"),
        (&cdx, "application/vnd.cyclonedx+json"),
    ] {
        let found = referrers(a, "app", &digest, ty);
        assert_eq!(found.len(), 1, "{ty}: {found:?}");
        assert_eq!(found[0].1["layers"][0]["mediaType"], ty);
        let got = layer(a, "app", &found[0].1, &t.path().join("fetched"));
        assert_eq!(got, fs::read(file).unwrap(), "{ty}");
    }
    let att = referrers(a, "app", &digest, BUNDLE);
    assert_eq!(att.len(), 1, "{att:?}");
    assert_eq!(
        att[0].1["annotations"]["dev.sigstore.bundle.predicateType"],
        "https://cyclonedx.org/bom"
    );
    let bundle = t.path().join("att.json");
    layer(a, "app", &att[0].1, &bundle);
    let st = js_verify(&peer, &bundle, &public).expect("@sigstore/verify refused the attestation");
    assert_eq!(st["predicateType"], "https://cyclonedx.org/bom");
    assert_eq!(
        st["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    let doc: Value = serde_json::from_slice(&fs::read(&cdx).unwrap()).unwrap();
    assert_eq!(st["predicate"], doc);
    // An attestation is no image signature: verify does not count it.
    let e = fails(&mut verify_cmd(&public, &format!("{a}/app:1")), 1);
    assert!(
        e.contains("no sigstore bundle") || e.contains("no cosign signatures"),
        "{e}"
    );
    // Not an SBOM: refused before anything is pushed.
    let e = fails(
        lade()
            .args(["attach", "sbom", "--tls-verify=false"])
            .arg(format!("{a}/app:1"))
            .arg(&key),
        1,
    );
    assert!(e.contains("--type"), "{e}");
}

#[test]
fn build_push_attaches_and_signs_the_sbom() {
    require_peers!("docker-registry", "skopeo", "curl", "node");
    let Some(peer) = node_peer() else { return };
    let Some(reg) = Registry::start() else { return };
    let a = &reg.addr;
    let t = tempfile::tempdir().unwrap();
    let (key, public) = lade_key(&t.path().join("k"));
    let ctx = t.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY hello /hello\n",
    )
    .unwrap();
    fs::write(ctx.join("hello"), "hi\n").unwrap();
    ok(lade()
        .arg("--root")
        .arg(t.path().join("store"))
        .env("COSIGN_PASSWORD", PASS)
        .args([
            "build",
            "--sbom",
            "spdx",
            "--push",
            "--tls-verify=false",
            "-t",
        ])
        .arg(format!("{a}/built:1"))
        .arg("--sign-by-sigstore-private-key")
        .arg(&key)
        .arg(&ctx));
    let raw = ok(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{a}/built:1")));
    let digest = lade::oci::verify::sha256_digest(raw.as_bytes()).to_string();
    let sbom = referrers(a, "built", &digest, "application/spdx+json");
    assert_eq!(sbom.len(), 1);
    let doc: Value =
        serde_json::from_slice(&layer(a, "built", &sbom[0].1, &t.path().join("sbom"))).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let att = referrers(a, "built", &digest, BUNDLE);
    assert_eq!(att.len(), 1);
    let bundle = t.path().join("att.json");
    layer(a, "built", &att[0].1, &bundle);
    let st = js_verify(&peer, &bundle, &public).expect("@sigstore/verify refused the attestation");
    assert_eq!(st["predicateType"], "https://spdx.dev/Document");
    assert_eq!(st["predicate"], doc);
    // The pushed image is signed too (a .sig tag signature), which lade verify accepts.
    let report: Value =
        serde_json::from_str(&ok(&mut verify_cmd(&public, &format!("{a}/built:1")))).unwrap();
    assert_eq!(report["signatures"][0]["valid"], true, "{report}");
}
