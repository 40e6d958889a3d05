//! lade sync against real docker-registries: a skopeo sync YAML with explicit, regex and semver selections
//! mirrors exactly the expected tags; a second run uploads no blob (counted in the registry's access log);
//! --dry-run copies nothing; --src docker to --dest oci; --keep-going.

use lade_tests::oci::{noise, umoci_add_layer, umoci_image};
use lade_tests::{Registry, fails, lade, ok, require_peers};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// An image made with umoci: one layer with a file of noisy bytes.
fn make_image(layout: &Path, tag: &str, seed: u64) {
    umoci_image(layout, tag, &[("blob", &noise(seed, 20_000))], None);
}

fn tags(reg: &Registry, repo: &str) -> Vec<String> {
    let out = lade()
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/{repo}", reg.addr))
        .output()
        .unwrap();
    if !out.status.success() {
        return vec![];
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut t: Vec<String> = v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

fn uploads(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            (l.contains("\"PUT /v2/") || l.contains("\"PATCH /v2/") || l.contains("\"POST /v2/"))
                && l.contains("/blobs/uploads/")
        })
        .count()
}

/// A source registry with `src/app` tagged 1.0.0, 1.2.0, 1.3.5, v1.9, 2.0.0, latest, dev-1, dev-2 (three
/// distinct images) and `src/other` tagged a, b.
fn source_registry(tmp: &Path) -> Registry {
    let reg = Registry::start().expect("peer present");
    let layout = tmp.join("images");
    for (i, t) in ["one", "two", "three"].iter().enumerate() {
        make_image(&layout, t, 100 + i as u64);
    }
    let push = |img: &str, dest: &str| {
        ok(Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{img}", layout.display()))
            .arg(format!("docker://{}/{dest}", reg.addr)));
    };
    for (img, tag) in [
        ("one", "1.0.0"),
        ("one", "1.2.0"),
        ("two", "1.3.5"),
        ("two", "v1.9"),
        ("three", "2.0.0"),
        ("three", "latest"),
        ("one", "dev-1"),
        ("two", "dev-2"),
    ] {
        push(img, &format!("src/app:{tag}"));
    }
    push("one", "src/other:a");
    push("three", "src/other:b");
    reg
}

#[test]
fn yaml_regex_and_semver_mirror_exactly_and_second_run_uploads_nothing() {
    require_peers!("docker-registry", "umoci", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let src = source_registry(tmp.path());
    let Some(dst) = Registry::start() else { return };
    let yaml = tmp.path().join("sync.yaml");
    std::fs::write(
        &yaml,
        format!(
            "{}:\n  tls-verify: false\n  images:\n    src/other:\n      - a\n  images-by-tag-regex:\n    src/app: ^dev-\n  images-by-semver:\n    src/app: \">= 1.2.0, < 2.0.0\"\n",
            src.addr
        ),
    )
    .unwrap();
    let sync = |extra: &[&str]| {
        let mut c = lade();
        c.args([
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
        ])
        .args(extra)
        .arg(&yaml)
        .arg(format!("{}/mirror", dst.addr));
        c
    };

    // Dry run: lists, copies nothing.
    let out = ok(&mut sync(&["--dry-run"]));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Would copy")).count(),
        6,
        "{out}"
    );
    assert_eq!(uploads(&dst.log()), 0, "a dry run uploads nothing");
    assert!(tags(&dst, "mirror/app").is_empty());

    ok(&mut sync(&[]));
    assert_eq!(
        tags(&dst, "mirror/app"),
        ["1.2.0", "1.3.5", "dev-1", "dev-2", "v1.9"]
    );
    assert_eq!(tags(&dst, "mirror/other"), ["a"]);
    // Same digests as the source.
    for t in ["1.2.0", "v1.9", "dev-2"] {
        let d = |r: &Registry, repo: &str| {
            ok(Command::new("skopeo")
                .args(["inspect", "--format", "{{.Digest}}", "--tls-verify=false"])
                .arg(format!("docker://{}/{repo}:{t}", r.addr)))
        };
        assert_eq!(d(&src, "src/app"), d(&dst, "mirror/app"));
    }

    // Second run: everything up to date, no upload at all.
    let before = dst.log();
    let err = lade()
        .args([
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
        ])
        .arg(&yaml)
        .arg(format!("{}/mirror", dst.addr))
        .output()
        .unwrap();
    assert!(
        err.status.success(),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("Up to date"))
            .count(),
        6,
        "{stderr}"
    );
    let log = &dst.log()[before.len()..];
    assert_eq!(uploads(log), 0, "the second run uploaded: {log}");
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"HEAD /v2/") && l.contains("/blobs/"))
            .count(),
        0,
        "not even a blob check: {log}"
    );

    // A new matching tag at the source is picked up; the rest stays untouched.
    ok(Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker://{}/src/app:2.0.0", src.addr))
        .arg(format!("docker://{}/src/app:1.99.0", src.addr)));
    let before = dst.log();
    ok(&mut sync(&[]));
    assert_eq!(
        tags(&dst, "mirror/app"),
        ["1.2.0", "1.3.5", "1.99.0", "dev-1", "dev-2", "v1.9"]
    );
    let log = &dst.log()[before.len()..];
    assert!(
        log.lines()
            .filter(|l| l.contains("\"PUT /v2/mirror/app/manifests/"))
            .all(|l| l.contains("1.99.0")),
        "{log}"
    );
}

#[test]
fn docker_repository_to_oci_layout_and_keep_going() {
    require_peers!("docker-registry", "umoci", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let src = source_registry(tmp.path());
    let out = tmp.path().join("mirror");
    ok(lade()
        .args([
            "sync",
            "--src",
            "docker",
            "--dest",
            "oci",
            "--src-tls-verify=false",
        ])
        .arg(format!("{}/src/other", src.addr))
        .arg(&out));
    for t in ["a", "b"] {
        let sk = ok(Command::new("skopeo")
            .args(["inspect", "--format", "{{.Digest}}"])
            .arg(format!("oci:{}:other:{t}", out.display())));
        let want = ok(Command::new("skopeo")
            .args(["inspect", "--format", "{{.Digest}}", "--tls-verify=false"])
            .arg(format!("docker://{}/src/other:{t}", src.addr)));
        assert_eq!(sk, want);
    }

    // A YAML naming a repository that does not exist: stop (default) or go on (--keep-going), failing either way.
    let yaml = tmp.path().join("bad.yaml");
    std::fs::write(&yaml, format!("{}:\n  tls-verify: false\n  images:\n    src/missing:\n      - x\n    src/app:\n      - 1.0.0\n", src.addr)).unwrap();
    let out2 = tmp.path().join("mirror2");
    let err = fails(
        lade()
            .args([
                "sync",
                "--src",
                "yaml",
                "--dest",
                "oci",
                "--keep-going",
                "--image-parallelism",
                "1",
            ])
            .arg(&yaml)
            .arg(&out2),
        1,
    );
    assert!(err.contains("src/missing"), "{err}");
    let ok_copy = ok(Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}}"])
        .arg(format!("oci:{}:app:1.0.0", out2.display())));
    assert!(
        ok_copy.starts_with("sha256:"),
        "--keep-going copied the good image"
    );

    // Bad YAML: the error names the file and position.
    std::fs::write(&yaml, format!("{}:\n  imagez: {{}}\n", src.addr)).unwrap();
    let err = fails(
        lade()
            .args(["sync", "--src", "yaml", "--dest", "oci"])
            .arg(&yaml)
            .arg(&out2),
        1,
    );
    assert!(err.contains("bad.yaml") && err.contains("imagez"), "{err}");
}

/// Per repository, how many times each blob was written into it (an upload completed or a mount answered
/// 201), from the registry's access log.
fn blob_writes(log: &str) -> std::collections::BTreeMap<(String, String), usize> {
    let mut out = std::collections::BTreeMap::new();
    for l in log.lines() {
        let Some(start) = l.find('"') else { continue };
        let mut req = l[start + 1..].split(' ');
        let (Some(method), Some(uri)) = (req.next(), req.next()) else {
            continue;
        };
        let status = l[start + 1..]
            .split('"')
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("");
        let Some(rest) = uri.strip_prefix("/v2/") else {
            continue;
        };
        let Some((repo, tail)) = rest.split_once("/blobs/uploads/") else {
            continue;
        };
        let digest = tail.split(['?', '&']).find_map(|kv| {
            kv.strip_prefix("digest=")
                .or_else(|| kv.strip_prefix("mount="))
        });
        let wrote = match method {
            "PUT" => status == "201",
            "POST" => status == "201" && tail.contains("mount="),
            _ => false,
        };
        if wrote && let Some(d) = digest {
            *out.entry((repo.to_string(), d.replace("%3A", ":")))
                .or_insert(0) += 1;
        }
    }
    out
}

/// Many tags of images that share layers, synced with every image at once into one repository: every copy
/// succeeds, and no blob is written into a repository twice. (Two copies writing the same blob into one
/// repository at once made docker-registry 2.8 refuse the other copy's manifest with DIGEST_INVALID /
/// MANIFEST_BLOB_UNKNOWN: its filesystem driver rewrites the repository's link file in place, so a
/// concurrent manifest check can read it empty.)
#[test]
fn parallel_copies_sharing_layers_write_each_blob_once() {
    require_peers!("docker-registry", "umoci", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let src = Registry::start().expect("peer present");
    let Some(dst) = Registry::start() else { return };
    let layout = tmp.path().join("images");
    umoci_image(&layout, "base", &[("a", &noise(7, 30_000))], None);
    let img = format!("{}:base", layout.display());
    for (i, seed) in [8u64, 9].iter().enumerate() {
        umoci_add_layer(&img, &[(&format!("f{i}"), &noise(*seed, 30_000))]);
    }
    // Six variants (same three layers, configs differ), each under two tags.
    let mut all = vec![];
    for v in 0..6 {
        ok(Command::new("umoci")
            .args(["config", "--image", &img, "--tag", &format!("v{v}")])
            .arg(format!("--config.env=VARIANT={v}")));
        for t in [format!("{v}.0.0"), format!("{v}-b")] {
            ok(Command::new("skopeo")
                .args(["copy", "-q", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:v{v}", layout.display()))
                .arg(format!("docker://{}/src/app:{t}", src.addr)));
            all.push(t);
        }
    }
    let mut yaml = format!(
        "{}:\n  tls-verify: false\n  images:\n    src/app:\n",
        src.addr
    );
    for t in &all {
        yaml.push_str(&format!("      - \"{t}\"\n"));
    }
    let yaml_path = tmp.path().join("sync.yaml");
    std::fs::write(&yaml_path, yaml).unwrap();
    let cache = tmp.path().join("cache");
    let mut want = all.clone();
    want.sort();
    // Several rounds into fresh repositories (later rounds also mount from the earlier ones).
    for round in 0..4 {
        ok(lade()
            .env("LADE_CACHE_DIR", &cache)
            .args([
                "sync",
                "--src",
                "yaml",
                "--dest",
                "docker",
                "--dest-tls-verify=false",
                "--image-parallelism",
                "12",
            ])
            .arg(&yaml_path)
            .arg(format!("{}/round{round}", dst.addr)));
        assert_eq!(tags(&dst, &format!("round{round}/app")), want);
    }
    let writes = blob_writes(&dst.log());
    assert!(!writes.is_empty(), "the registry log shows no blob write");
    let twice: Vec<_> = writes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "blobs written more than once: {twice:?}");
    // 6 configs + 3 layers per repository.
    for round in 0..4 {
        let repo = format!("round{round}/app");
        assert_eq!(
            writes.keys().filter(|(r, _)| *r == repo).count(),
            9,
            "{writes:?}"
        );
    }
}
