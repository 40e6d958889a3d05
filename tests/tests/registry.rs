//! The registry client against a real docker-registry on loopback (basic auth): push, pull, copy between
//! repositories through a cross-repository mount, list-tags, delete, login/logout with an auth file,
//! referrers through the fallback tag, and interop with skopeo in both directions.

use lade_tests::oci::{assert_blobs_valid, noise, oci_digest, umoci_image};
use lade_tests::{Registry, fails, lade, ok, require_peers};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// An image `layout:tag` made with umoci (not with lade): one layer holding a file of `size` noisy bytes.
fn make_image(layout: &Path, tag: &str, seed: u64, size: usize) {
    let data = noise(seed, size);
    umoci_image(
        layout,
        tag,
        &[("data/blob", &data), ("data/tag", tag.as_bytes())],
        Some("/bin/sh"),
    );
}

fn htpasswd(dir: &Path) -> PathBuf {
    let out = ok(Command::new("htpasswd").args(["-Bbn", "user", "pass"]));
    let p = dir.join("htpasswd");
    std::fs::write(&p, out).unwrap();
    p
}

/// Count access-log lines for `method` on paths containing `path_part`.
fn count_requests(log: &str, method: &str, path_part: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(&format!("\"{method} /v2/")) && l.contains(path_part))
        .count()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn push_pull_with_basic_auth_and_mount_between_repositories() {
    require_peers!("docker-registry", "umoci", "htpasswd", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let Some(reg) = Registry::start_with(Some(&htpasswd(tmp.path()))) else {
        return;
    };
    let src = tmp.path().join("src");
    make_image(&src, "v1", 1, 300_000);
    let want = oci_digest(&src, "v1").unwrap();
    let dest = format!("docker://{}/team/app:v1", reg.addr);

    // Without credentials the push fails and says why.
    let err = fails(
        lade()
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(&dest),
        1,
    );
    assert!(
        err.contains("401") || err.contains("authentication"),
        "{err}"
    );
    // Wrong credentials too.
    let err = fails(
        lade()
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "user:nope",
            ])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(&dest),
        1,
    );
    assert!(
        err.contains("401") || err.contains("authentication"),
        "{err}"
    );

    let out = ok(lade()
        .args([
            "copy",
            "--format",
            "json",
            "--dest-tls-verify=false",
            "--dest-creds",
            "user:pass",
        ])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(&dest));
    let r = json(&out);
    assert_eq!(
        r["digest"],
        want.as_str(),
        "the pushed manifest keeps its digest"
    );
    assert_eq!(r["blobs_copied"], 2, "config and layer uploaded: {out}");

    // skopeo reads what lade pushed, byte for byte.
    let raw = ok(Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "user:pass",
        ])
        .arg(&dest));
    let local = std::fs::read(
        src.join("blobs/sha256")
            .join(want.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    assert_eq!(raw.as_bytes(), local.as_slice());

    // Pull back into a fresh layout: same digest, blobs verified, umoci unpacks it.
    let back = tmp.path().join("back");
    ok(lade()
        .args(["copy", "--src-tls-verify=false", "--src-creds", "user:pass"])
        .arg(&dest)
        .arg(format!("oci:{}:x", back.display())));
    assert_eq!(oci_digest(&back, "x").as_deref(), Some(want.as_str()));
    assert_blobs_valid(&back);
    let bundle = tmp.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:x", back.display()))
        .arg(&bundle));
    assert_eq!(
        std::fs::read(bundle.join("rootfs/data/blob")).unwrap(),
        noise(1, 300_000)
    );

    // Copy to another repository of the same registry: blobs are mounted, nothing is uploaded.
    let before = reg.log();
    let out = ok(lade()
        .args([
            "copy",
            "--format",
            "json",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            "user:pass",
            "--dest-creds",
            "user:pass",
        ])
        .arg(&dest)
        .arg(format!("docker://{}/other/copy:v1", reg.addr)));
    let log = reg.log()[before.len()..].to_string();
    let r = json(&out);
    assert_eq!(r["blobs_mounted"], 2, "{out}");
    assert_eq!(r["blobs_copied"], 0, "{out}");
    assert_eq!(
        count_requests(&log, "POST", "/other/copy/blobs/uploads/?mount="),
        2,
        "{log}"
    );
    assert_eq!(
        count_requests(&log, "PUT", "/other/copy/blobs/uploads/"),
        0,
        "no blob upload: {log}"
    );
    assert_eq!(
        count_requests(&log, "PATCH", "/other/copy/blobs/uploads/"),
        0,
        "no blob upload: {log}"
    );
    let digest = ok(Command::new("skopeo")
        .args([
            "inspect",
            "--format",
            "{{.Digest}}",
            "--tls-verify=false",
            "--creds",
            "user:pass",
        ])
        .arg(format!("docker://{}/other/copy:v1", reg.addr)));
    assert_eq!(digest.trim(), want);

    // A second push of the same image uploads nothing (HEAD before upload).
    let before = reg.log();
    let out = ok(lade()
        .args([
            "copy",
            "--format",
            "json",
            "--dest-tls-verify=false",
            "--dest-creds",
            "user:pass",
        ])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(&dest));
    assert_eq!(json(&out)["blobs_skipped"], 2, "{out}");
    assert_eq!(
        count_requests(&reg.log()[before.len()..], "PUT", "/blobs/uploads/"),
        0
    );
}

#[test]
fn list_tags_and_delete() {
    require_peers!("docker-registry", "umoci");
    let tmp = tempfile::tempdir().unwrap();
    let Some(reg) = Registry::start() else { return };
    let src = tmp.path().join("src");
    make_image(&src, "a", 2, 1000);
    make_image(&src, "b", 3, 1000);
    for t in ["a", "b"] {
        ok(lade()
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{t}", src.display()))
            .arg(format!("docker://{}/lt/app:{t}", reg.addr)));
    }
    ok(lade()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:a", src.display()))
        .arg(format!("docker://{}/lt/app:c", reg.addr)));
    let out = json(&ok(lade()
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/lt/app", reg.addr))));
    assert_eq!(out["Repository"], format!("{}/lt/app", reg.addr));
    let mut tags: Vec<&str> = out["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["a", "b", "c"]);

    // A tag in list-tags' argument is refused; a missing repository is an error naming it.
    let err = fails(
        lade()
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{}/lt/app:a", reg.addr)),
        1,
    );
    assert!(err.contains("without a tag"), "{err}");
    let err = fails(
        lade()
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{}/nope/nope", reg.addr)),
        1,
    );
    assert!(err.contains("nope/nope"), "{err}");

    // Delete b: it is gone, a stays.
    ok(lade()
        .args(["delete", "--tls-verify=false"])
        .arg(format!("docker://{}/lt/app:b", reg.addr)));
    let err = fails(
        lade()
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{}/lt/app:b", reg.addr)),
        1,
    );
    assert!(err.contains("lt/app:b"), "{err}");
    let out = json(&ok(lade()
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/lt/app", reg.addr))));
    assert!(
        !out["Tags"].as_array().unwrap().iter().any(|t| t == "b"),
        "{out}"
    );
    let back = tmp.path().join("back");
    ok(lade()
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/lt/app:a", reg.addr))
        .arg(format!("oci:{}:a", back.display())));
    assert_eq!(oci_digest(&back, "a"), oci_digest(&src, "a"));
    // Deleting what is not there fails clearly.
    let err = fails(
        lade()
            .args(["delete", "--tls-verify=false"])
            .arg(format!("docker://{}/lt/app:b", reg.addr)),
        1,
    );
    assert!(
        err.contains("does not exist") || err.contains("404"),
        "{err}"
    );
}

#[test]
fn login_logout_with_auth_file() {
    require_peers!("docker-registry", "umoci", "htpasswd", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let Some(reg) = Registry::start_with(Some(&htpasswd(tmp.path()))) else {
        return;
    };
    let auth = tmp.path().join("auth.json");
    let err = fails(
        lade()
            .args([
                "login",
                "--tls-verify=false",
                "-u",
                "user",
                "-p",
                "wrong",
                "--authfile",
            ])
            .arg(&auth)
            .arg(&reg.addr),
        1,
    );
    assert!(err.contains("rejected"), "{err}");
    assert!(!auth.exists(), "a failed login writes nothing");
    let out = ok(lade()
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "user",
            "--password-stdin",
            "--authfile",
        ])
        .arg(&auth)
        .arg(&reg.addr)
        .stdin(
            std::fs::File::open({
                let p = tmp.path().join("pw");
                std::fs::write(&p, "pass\n").unwrap();
                p
            })
            .unwrap(),
        ));
    assert!(out.contains("Login Succeeded"), "{out}");
    let v: Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert!(v["auths"][&reg.addr]["auth"].is_string(), "{v}");
    assert_eq!(
        ok(lade()
            .args(["login", "--get-login", "--authfile"])
            .arg(&auth)
            .arg(&reg.addr))
        .trim(),
        "user"
    );

    // The stored credentials are used by lade (via --authfile and via REGISTRY_AUTH_FILE) and by skopeo.
    let src = tmp.path().join("src");
    make_image(&src, "v1", 4, 2000);
    ok(lade()
        .args(["copy", "--dest-tls-verify=false", "--authfile"])
        .arg(&auth)
        .arg(format!("oci:{}:v1", src.display()))
        .arg(format!("docker://{}/auth/app:v1", reg.addr)));
    ok(lade()
        .env("REGISTRY_AUTH_FILE", &auth)
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/auth/app", reg.addr)));
    ok(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--authfile"])
        .arg(&auth)
        .arg(format!("docker://{}/auth/app:v1", reg.addr)));

    ok(lade()
        .args(["logout", "--authfile"])
        .arg(&auth)
        .arg(&reg.addr));
    fails(
        lade()
            .args(["login", "--get-login", "--authfile"])
            .arg(&auth)
            .arg(&reg.addr),
        1,
    );
    let err = fails(
        lade()
            .args(["list-tags", "--tls-verify=false", "--authfile"])
            .arg(&auth)
            .arg(format!("docker://{}/auth/app", reg.addr)),
        1,
    );
    assert!(
        err.contains("401") || err.contains("authentication"),
        "{err}"
    );
    let err = fails(
        lade()
            .args(["logout", "--authfile"])
            .arg(&auth)
            .arg(&reg.addr),
        1,
    );
    assert!(err.contains("not logged into"), "{err}");
}

#[test]
fn interop_with_skopeo_both_ways() {
    require_peers!("docker-registry", "umoci", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let Some(reg) = Registry::start() else { return };
    let src = tmp.path().join("src");
    make_image(&src, "v1", 5, 50_000);
    let want = oci_digest(&src, "v1").unwrap();

    // skopeo pushes (as Docker v2s2), lade pulls it and keeps the digest.
    let sk = format!("docker://{}/sk/app:v1", reg.addr);
    ok(Command::new("skopeo")
        .args(["copy", "-q", "--format", "v2s2", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(&sk));
    let sk_digest = ok(Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}}", "--tls-verify=false"])
        .arg(&sk));
    let raw = ok(lade()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(&sk));
    let sk_raw = ok(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(&sk));
    assert_eq!(
        raw, sk_raw,
        "lade reads the exact manifest bytes skopeo pushed"
    );
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw}"
    );
    // Into oci: both tools convert to an OCI manifest with the same layers and the same config content
    // (skopeo re-marshals the config while converting; lade keeps its bytes).
    let out = tmp.path().join("out");
    ok(lade()
        .args(["copy", "--src-tls-verify=false"])
        .arg(&sk)
        .arg(format!("oci:{}:v1", out.display())));
    assert_blobs_valid(&out);
    let sk_out0 = tmp.path().join("sk-out0");
    ok(Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(&sk)
        .arg(format!("oci:{}:v1", sk_out0.display())));
    let parts = |layout: &Path| -> (Value, Vec<Value>) {
        let d = oci_digest(layout, "v1").unwrap();
        let m: Value = serde_json::from_slice(
            &std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap(),
        )
        .unwrap();
        let layers = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].clone())
            .collect();
        let config: Value = serde_json::from_slice(
            &std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(&m["config"]["digest"].as_str().unwrap()[7..]),
            )
            .unwrap(),
        )
        .unwrap();
        (config, layers)
    };
    assert_eq!(parts(&out), parts(&sk_out0));
    // By digest, lade finds the same manifest skopeo reports.
    let by_digest = format!("docker://{}/sk/app@{}", reg.addr, sk_digest.trim());
    assert_eq!(
        ok(lade()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(&by_digest)),
        sk_raw
    );

    // lade pushes, skopeo copies it out and umoci unpacks it.
    let la = format!("docker://{}/la/app:v1", reg.addr);
    ok(lade()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(&la));
    let sk_out = tmp.path().join("sk-out");
    ok(Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(&la)
        .arg(format!("oci:{}:v1", sk_out.display())));
    assert_eq!(oci_digest(&sk_out, "v1").as_deref(), Some(want.as_str()));
    ok(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:v1", sk_out.display()))
        .arg(tmp.path().join("b")));
    assert_eq!(
        std::fs::read(tmp.path().join("b/rootfs/data/blob")).unwrap(),
        noise(5, 50_000)
    );
}

#[test]
fn referrers_travel_through_the_fallback_tag() {
    require_peers!("docker-registry", "umoci");
    let tmp = tempfile::tempdir().unwrap();
    let Some(reg) = Registry::start() else { return };
    let src = tmp.path().join("src");
    make_image(&src, "v1", 6, 1000);
    let subject = oci_digest(&src, "v1").unwrap();
    let subject_size = std::fs::metadata(src.join("blobs/sha256").join(&subject[7..]))
        .unwrap()
        .len();
    // An artifact that refers to the image (an SBOM-like referrer), added to the layout by hand.
    let put = |bytes: &[u8]| {
        let out = ok(Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .arg("-")
            .stdin({
                let p = tmp.path().join("tmp-blob");
                std::fs::write(&p, bytes).unwrap();
                std::fs::File::open(p).unwrap()
            }));
        let hex = out.split_whitespace().next().unwrap().to_string();
        std::fs::write(src.join("blobs/sha256").join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    let payload = br#"{"sbom":"test"}"#;
    let payload_digest = put(payload);
    let empty_digest = put(b"{}");
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.example.sbom", "digest": payload_digest, "size": payload.len()}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": subject_size}
    });
    let art = serde_json::to_vec(&artifact).unwrap();
    let art_digest = put(&art);
    let mut idx: Value =
        serde_json::from_slice(&std::fs::read(src.join("index.json")).unwrap()).unwrap();
    idx["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": art_digest, "size": art.len(),
        "artifactType": "application/vnd.example.sbom"
    }));
    std::fs::write(src.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();

    ok(lade()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(format!("docker://{}/ref/app:v1", reg.addr)));
    // docker-registry 2.8 has no referrers API: the referrer is listed under the fallback tag.
    let fallback = format!("sha256-{}", &subject[7..]);
    let tags = json(&ok(lade()
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/ref/app", reg.addr))));
    assert!(
        tags["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == fallback.as_str()),
        "{tags}"
    );
    let fb = json(&ok(lade()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/ref/app:{fallback}", reg.addr))));
    assert_eq!(fb["manifests"][0]["digest"], art_digest.as_str(), "{fb}");
    assert_eq!(
        fb["manifests"][0]["artifactType"], "application/vnd.example.sbom",
        "{fb}"
    );

    // Pulling the image back brings the referrer along.
    let back = tmp.path().join("back");
    ok(lade()
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/ref/app:v1", reg.addr))
        .arg(format!("oci:{}:v1", back.display())));
    assert!(
        back.join("blobs/sha256").join(&art_digest[7..]).is_file(),
        "the referrer manifest was copied back"
    );
    assert!(
        back.join("blobs/sha256")
            .join(&payload_digest[7..])
            .is_file(),
        "the referrer's payload was copied back"
    );
    assert_blobs_valid(&back);
}

/// URL-safe base64 without padding (JWT segments), or standard with padding (x5c).
fn b64(data: &[u8], url: bool) -> String {
    let table: &[u8] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..=chunk.len() {
            out.push(table[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if !url {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

/// A Docker token server (the protocol docker-registry's `auth: token:` speaks) on loopback: it checks
/// user:pass with Basic auth, grants every requested action to that user and nothing to anonymous callers,
/// and signs RS256 JWTs with a throwaway key whose self-signed certificate the registry trusts.
struct TokenServer {
    addr: String,
    cert: PathBuf,
    /// The `scope` parameters of every token request, joined by spaces.
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn start_token_server(dir: &Path) -> TokenServer {
    use std::io::{Read, Write};
    let key = dir.join("token-key.pem");
    let cert = dir.join("token-cert.pem");
    ok(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=lade-test-token",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .output()
        .unwrap()
        .stdout;
    let x5c = b64(&der, false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let requests: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let seen = requests.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().flatten().enumerate() {
            let mut conn = conn;
            let mut buf = vec![];
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            let head = String::from_utf8_lossy(&buf).to_string();
            let target = head
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let query = target
                .split_once('?')
                .map(|(_, q)| q.to_string())
                .unwrap_or_default();
            let scopes: Vec<String> = query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("scope="))
                .map(|s| {
                    s.replace("%3A", ":")
                        .replace("%3a", ":")
                        .replace("%2F", "/")
                        .replace("%2f", "/")
                        .replace("%2C", ",")
                        .replace("%2c", ",")
                })
                .collect();
            seen.lock().unwrap().push(scopes.join(" "));
            let auth = head.lines().find_map(|l| {
                l.strip_prefix("Authorization: Basic ")
                    .or_else(|| l.strip_prefix("authorization: Basic "))
            });
            let response = match auth.map(str::trim) {
                Some(a) if a != b64(b"user:pass", false) => {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                }
                who => {
                    let user = if who.is_some() { "user" } else { "" };
                    let access: Vec<Value> = if who.is_none() {
                        vec![]
                    } else {
                        scopes
                            .iter()
                            .filter_map(|s| {
                                let mut p = s.splitn(3, ':');
                                let (t, name, actions) = (p.next()?, p.next()?, p.next()?);
                                Some(serde_json::json!({"type": t, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                            })
                            .collect()
                    };
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
                    let claims = serde_json::json!({
                        "iss": "lade-test-issuer", "sub": user, "aud": "lade-test", "exp": now + 600, "nbf": now - 60,
                        "iat": now, "jti": format!("t{n}"), "access": access
                    });
                    let input = format!(
                        "{}.{}",
                        b64(header.to_string().as_bytes(), true),
                        b64(claims.to_string().as_bytes(), true)
                    );
                    let mut child = Command::new("openssl")
                        .args(["dgst", "-sha256", "-sign"])
                        .arg(&key)
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .unwrap();
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(input.as_bytes())
                        .unwrap();
                    let sig = child.wait_with_output().unwrap().stdout;
                    let token = format!("{input}.{}", b64(&sig, true));
                    let body = serde_json::json!({"token": token, "expires_in": 600}).to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
            };
            let _ = conn.write_all(response.as_bytes());
        }
    });
    TokenServer {
        addr,
        cert,
        requests,
    }
}

/// A docker-registry that trusts `tokens` (`auth: token:`); killed on drop.
struct TokenRegistry {
    addr: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_token_registry(tokens: &TokenServer) -> TokenRegistry {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", lade_tests::free_port());
    let cfg = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\nauth:\n  token:\n    realm: http://{}/token\n    service: lade-test\n    issuer: lade-test-issuer\n    rootcertbundle: {}\n",
        dir.path().join("data").display(),
        tokens.addr,
        tokens.cert.display()
    );
    std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
    let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    assert!(
        lade_tests::wait_for_port(&addr, std::time::Duration::from_secs(15)),
        "docker-registry did not start"
    );
    TokenRegistry {
        addr,
        child,
        _dir: dir,
    }
}

#[test]
fn bearer_token_auth_with_scopes_and_mount() {
    require_peers!("docker-registry", "umoci", "openssl", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let tokens = start_token_server(tmp.path());
    let reg = start_token_registry(&tokens);
    let src = tmp.path().join("src");
    make_image(&src, "v1", 21, 5000);
    let want = oci_digest(&src, "v1").unwrap();
    let app = format!("docker://{}/tok/app:v1", reg.addr);

    // Anonymous tokens grant nothing: the push fails, saying authentication is needed.
    let err = fails(
        lade()
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(&app),
        1,
    );
    assert!(
        err.contains("401") || err.contains("authentication"),
        "{err}"
    );
    // A wrong password is refused by the token server.
    let err = fails(
        lade()
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "user:bad",
            ])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(&app),
        1,
    );
    assert!(err.contains("token server") && err.contains("401"), "{err}");

    ok(lade()
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "user:pass",
        ])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(&app));
    assert!(
        tokens
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "repository:tok/app:pull,push"),
        "{:?}",
        tokens.requests.lock().unwrap()
    );

    // Copy to another repository: the token covers the mount source, and the blobs are mounted.
    tokens.requests.lock().unwrap().clear();
    let out = ok(lade()
        .args([
            "copy",
            "--format",
            "json",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            "user:pass",
            "--dest-creds",
            "user:pass",
        ])
        .arg(&app)
        .arg(format!("docker://{}/tok/other:v1", reg.addr)));
    assert_eq!(json(&out)["blobs_mounted"], 2, "{out}");
    let reqs = tokens.requests.lock().unwrap().clone();
    assert!(
        reqs.iter().any(|s| s.contains("repository:tok/app:pull")
            && s.contains("repository:tok/other:pull,push")),
        "{reqs:?}"
    );

    // Login through the token server, then pull with the stored credentials; skopeo agrees on the digest.
    let auth = tmp.path().join("auth.json");
    ok(lade()
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "user",
            "-p",
            "pass",
            "--authfile",
        ])
        .arg(&auth)
        .arg(&reg.addr));
    let back = tmp.path().join("back");
    ok(lade()
        .args(["copy", "--src-tls-verify=false", "--authfile"])
        .arg(&auth)
        .arg(format!("docker://{}/tok/other:v1", reg.addr))
        .arg(format!("oci:{}:v1", back.display())));
    assert_eq!(oci_digest(&back, "v1").as_deref(), Some(want.as_str()));
    let d = ok(Command::new("skopeo")
        .args([
            "inspect",
            "--format",
            "{{.Digest}}",
            "--tls-verify=false",
            "--authfile",
        ])
        .arg(&auth)
        .arg(format!("docker://{}/tok/other:v1", reg.addr)));
    assert_eq!(d.trim(), want);
    let err = fails(
        lade()
            .args([
                "login",
                "--tls-verify=false",
                "-u",
                "user",
                "-p",
                "nope",
                "--authfile",
            ])
            .arg(&auth)
            .arg(&reg.addr),
        1,
    );
    assert!(err.contains("refused") || err.contains("401"), "{err}");
}

#[test]
fn chunked_upload_when_asked_for_small_chunks() {
    require_peers!("docker-registry", "umoci", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let Some(reg) = Registry::start() else { return };
    let src = tmp.path().join("src");
    make_image(&src, "v1", 31, 300_000);
    let dest = format!("docker://{}/chunks/app:v1", reg.addr);
    ok(lade()
        .env("LADE_UPLOAD_CHUNK_SIZE", "65536")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(&dest));
    // The ~300 kB layer went up in 64 KiB PATCHes, then one closing PUT.
    assert!(
        count_requests(&reg.log(), "PATCH", "/chunks/app/blobs/uploads/") >= 5,
        "{}",
        reg.log()
    );
    let out = tmp.path().join("out");
    ok(Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(&dest)
        .arg(format!("oci:{}:v1", out.display())));
    assert_eq!(oci_digest(&out, "v1"), oci_digest(&src, "v1"));
    assert_blobs_valid(&out);
}

/// A manifest whose images are missing (`--multi-arch index-only` into an empty repository) is refused by
/// the registry: lade sends it again at most twice (a refusal can be a passing misread while another client
/// writes a blob), then fails naming the registry's error.
#[test]
fn a_manifest_with_missing_children_fails_after_bounded_retries() {
    require_peers!("docker-registry", "umoci");
    let Some(reg) = Registry::start() else { return };
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("img");
    make_image(&layout, "one", 51, 1000);
    let manifest = oci_digest(&layout, "one").unwrap();
    let size = std::fs::metadata(layout.join("blobs/sha256").join(&manifest[7..]))
        .unwrap()
        .len();
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": size,
                       "platform": {"os": "linux", "architecture": "amd64"}}]});
    let bytes = serde_json::to_vec(&index).unwrap();
    let l = lade::store::layout::Layout::create(&layout).unwrap();
    let d = l.put_bytes(&bytes).unwrap();
    let desc: lade::transport::Descriptor = serde_json::from_value(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": d.to_string(), "size": bytes.len()}))
    .unwrap();
    l.set_ref("idx", &desc).unwrap();
    let err = fails(
        lade()
            .args([
                "copy",
                "--multi-arch",
                "index-only",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}:idx", layout.display()))
            .arg(format!("docker://{}/lonely/index:1", reg.addr)),
        1,
    );
    assert!(
        err.contains("MANIFEST_BLOB_UNKNOWN") && err.contains("lonely/index"),
        "{err}"
    );
    assert_eq!(
        count_requests(&reg.log(), "PUT", "/v2/lonely/index/manifests/1"),
        3,
        "one PUT and two retries"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Oversized answers: a fake registry on loopback sends endless (or hugely announced) bodies where lade
// reads into memory. lade must stop at its cap, fail naming the URL and the limit, and not read on.

/// What the fake registry answers on one path.
#[derive(Clone)]
enum Answer {
    /// This status, headers and a fixed body.
    Fixed(u16, &'static str, Vec<u8>),
    /// This status and headers, then a body that never ends (close-delimited, no Content-Length).
    Endless(u16, &'static str),
    /// This status, headers and `Content-Length` announcing that many bytes, of which none are sent.
    Announced(u16, &'static str, u64),
}

/// The most an endless body sends before the server gives up: far past every cap, so a client that reads
/// on is caught by the byte count.
const ENDLESS_MAX: u64 = 512 << 20;

/// A fake registry: `routes` maps a request path (without the query) to its answer, every other path is
/// 404. `sent` counts the endless-body bytes written.
struct Fake {
    addr: String,
    sent: Arc<std::sync::atomic::AtomicU64>,
}

fn fake_registry(routes: Vec<(String, Answer)>) -> Fake {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (routes, counter) = (routes.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut s = conn;
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                let mut head = Vec::new();
                let mut b = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(n) if n > 0 && head.len() < 65536 => head.extend_from_slice(&b[..n]),
                        _ => return, // closed, or not HTTP (lade's TLS probe)
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split_whitespace().nth(1).unwrap_or_default();
                let path = target.split('?').next().unwrap_or_default();
                let answer = routes
                    .iter()
                    .find(|(p, _)| p == path)
                    .map(|(_, a)| a.clone())
                    .unwrap_or(Answer::Fixed(404, "", b"{\"errors\":[]}".to_vec()));
                let _ = match answer {
                    Answer::Fixed(code, headers, body) => write!(
                        s,
                        "HTTP/1.1 {code} X\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .and_then(|_| s.write_all(&body)),
                    Answer::Announced(code, headers, len) => write!(
                        s,
                        "HTTP/1.1 {code} X\r\n{headers}Content-Length: {len}\r\nConnection: close\r\n\r\n"
                    )
                    .and_then(|_| s.write_all(b"[")),
                    Answer::Endless(code, headers) => {
                        let r = write!(s, "HTTP/1.1 {code} X\r\n{headers}Connection: close\r\n\r\n");
                        let chunk = [b' '; 65536];
                        let mut n = 0;
                        while r.is_ok() && n < ENDLESS_MAX && s.write_all(&chunk).is_ok() {
                            n += chunk.len() as u64;
                            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                        Ok(())
                    }
                };
            });
        }
    });
    Fake { addr, sent }
}

/// Run `args` (`{}` replaced by the fake registry's address) against `routes`: lade fails naming the URL
/// it was reading and `limit`, and the fake sent far less than its endless bodies would have.
fn refuses_oversized(routes: Vec<(String, Answer)>, args: &[&str], url: &str, limit: &str) {
    let fake = fake_registry(routes);
    let args: Vec<String> = args.iter().map(|a| a.replace("{}", &fake.addr)).collect();
    let out = lade_tests::run(lade().args(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail: {err}");
    let url = format!("http://{}{url}", fake.addr);
    assert!(
        err.contains(&url) && err.contains(limit),
        "{args:?}: the error should name {url} and the limit {limit}: {err}"
    );
    // Sent and unread bytes wait in socket buffers (a few MiB on loopback); a client reading on would
    // have taken ENDLESS_MAX.
    let sent = fake.sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sent < 64 << 20,
        "{args:?}: the fake sent {sent} bytes before lade hung up"
    );
}

const MANIFEST_TYPE: &str = "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n";

#[test]
fn an_endless_manifest_is_cut_at_4_mib() {
    refuses_oversized(
        vec![
            ("/v2/".into(), Answer::Fixed(200, "", b"{}".to_vec())),
            (
                "/v2/big/manifests/1".into(),
                Answer::Endless(200, MANIFEST_TYPE),
            ),
        ],
        &["inspect", "--tls-verify=false", "docker://{}/big:1"],
        "/v2/big/manifests/1",
        "4194304 bytes",
    );
}

#[test]
fn a_manifest_announced_too_large_is_not_read() {
    refuses_oversized(
        vec![
            ("/v2/".into(), Answer::Fixed(200, "", b"{}".to_vec())),
            (
                "/v2/big/manifests/1".into(),
                Answer::Announced(200, MANIFEST_TYPE, 1 << 40),
            ),
        ],
        &["inspect", "--tls-verify=false", "docker://{}/big:1"],
        "/v2/big/manifests/1",
        "4194304 bytes",
    );
}

#[test]
fn an_endless_tag_list_is_cut() {
    refuses_oversized(
        vec![
            ("/v2/".into(), Answer::Fixed(200, "", b"{}".to_vec())),
            (
                "/v2/big/tags/list".into(),
                Answer::Endless(200, "Content-Type: application/json\r\n"),
            ),
        ],
        &["list-tags", "--tls-verify=false", "docker://{}/big"],
        "/v2/big/tags/list",
        "4194304 bytes",
    );
}

#[test]
fn an_endless_token_is_cut() {
    let realm = "Www-Authenticate: Bearer realm=\"http://{}/token\",service=\"fake\"\r\n";
    // The realm names the fake itself, whose address is known only once it listens: a second fake
    // answers /v2/ with a challenge pointing at the first, which serves the endless token.
    let tokens = fake_registry(vec![(
        "/token".into(),
        Answer::Endless(200, "Content-Type: application/json\r\n"),
    )]);
    let challenge: &'static str = Box::leak(realm.replace("{}", &tokens.addr).into_boxed_str());
    let fake = fake_registry(vec![(
        "/v2/".into(),
        Answer::Fixed(401, challenge, b"{}".to_vec()),
    )]);
    let out = lade_tests::run(lade().args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/big:1", fake.addr),
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let url = format!("http://{}/token", tokens.addr);
    assert!(
        err.contains(&url) && err.contains("1048576 bytes"),
        "the error should name {url} and the 1 MiB limit: {err}"
    );
    let sent = tokens.sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent < 64 << 20, "the token server sent {sent} bytes");
}

#[test]
fn an_endless_error_body_is_cut() {
    refuses_oversized(
        vec![
            ("/v2/".into(), Answer::Fixed(200, "", b"{}".to_vec())),
            (
                "/v2/big/manifests/1".into(),
                Answer::Endless(400, "Content-Type: application/json\r\n"),
            ),
        ],
        &["inspect", "--tls-verify=false", "docker://{}/big:1"],
        "/v2/big/manifests/1",
        "1048576 bytes",
    );
}
