//! The copy engine across local transports, against skopeo, umoci and podman: interop both ways, digest
//! preservation, format conversion, recompression, multi-arch, referrers, archives.

mod fixture;

use fixture::{cosign_sig, fixture, index, referrer};
use lade_tests::{fails, lade, ok, require_peers};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn skopeo(args: &[&str]) -> String {
    ok(Command::new("skopeo").args(args))
}

fn raw_digest(image: &str) -> String {
    let v: Value = serde_json::from_str(&skopeo(&["inspect", image])).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

fn raw_manifest(image: &str) -> Value {
    serde_json::from_str(&skopeo(&["inspect", "--raw", image])).unwrap()
}

fn umoci_hello(layout_and_tag: &str, bundle: &Path) -> String {
    ok(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", layout_and_tag])
        .arg(bundle));
    std::fs::read_to_string(bundle.join("rootfs/hello")).unwrap()
}

fn copy_json(args: &[&str]) -> Value {
    let out = ok(lade().arg("copy").args(["--format", "json"]).args(args));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn lade_reads_what_skopeo_writes_with_identical_digests() {
    require_peers!("skopeo", "umoci");
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).display().to_string();
    fixture(&t.path().join("src"), "base", "amd64", "from skopeo\n");
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:base", p("src")),
        &format!("oci:{}:x", p("sk")),
    ]);
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:base", p("src")),
        &format!("dir:{}", p("skdir")),
    ]);
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:base", p("src")),
        &format!("docker-archive:{}:foo/bar:1", p("sk.tar")),
    ]);

    // skopeo compresses the fixture's plain tar layer, so compare with what skopeo wrote.
    let sk = raw_digest(&format!("oci:{}:x", p("sk")));
    ok(lade().args([
        "copy",
        "--preserve-digests",
        &format!("oci:{}:x", p("sk")),
        &format!("oci:{}:a", p("out")),
    ]));
    assert_eq!(raw_digest(&format!("oci:{}:a", p("out"))), sk);
    let skd = raw_digest(&format!("dir:{}", p("skdir")));
    ok(lade().args([
        "copy",
        "--preserve-digests",
        &format!("dir:{}", p("skdir")),
        &format!("oci:{}:b", p("out")),
    ]));
    assert_eq!(raw_digest(&format!("oci:{}:b", p("out"))), skd);
    ok(lade().args([
        "copy",
        &format!("docker-archive:{}:foo/bar:1", p("sk.tar")),
        &format!("oci:{}:c", p("out")),
    ]));
    assert_eq!(
        umoci_hello(&format!("{}:c", p("out")), &t.path().join("bc")),
        "from skopeo\n"
    );
    // The synthesized docker-archive image keeps the config, so the image's diff_ids are those of the source.
    let cfg: Value = serde_json::from_str(&ok(lade().args([
        "inspect",
        "--config",
        &format!("oci:{}:c", p("out")),
    ])))
    .unwrap();
    assert_eq!(cfg["config"]["Labels"]["fixture"], "from skopeo\n");
}

#[test]
fn skopeo_umoci_and_podman_read_what_lade_writes() {
    require_peers!("skopeo", "umoci");
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).display().to_string();
    let digest = fixture(&t.path().join("src"), "base", "amd64", "from lade\n");
    let src = format!("oci:{}:base", p("src"));
    ok(lade().args(["copy", &src, &format!("oci:{}:l", p("out"))]));
    assert_eq!(
        umoci_hello(&format!("{}:l", p("out")), &t.path().join("b1")),
        "from lade\n"
    );
    ok(lade().args([
        "copy",
        "--preserve-digests",
        &src,
        &format!("dir:{}", p("ldir")),
    ]));
    assert_eq!(raw_digest(&format!("dir:{}", p("ldir"))), digest);
    ok(lade().args(["copy", &src, &format!("oci-archive:{}:v1", p("l-oci.tar"))]));
    assert_eq!(
        raw_digest(&format!("oci-archive:{}:v1", p("l-oci.tar"))),
        digest
    );
    ok(lade().args([
        "copy",
        &src,
        &format!("docker-archive:{}:app:1", p("l-docker.tar")),
    ]));
    let m = raw_manifest(&format!("docker-archive:{}", p("l-docker.tar")));
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    for s in [
        format!("dir:{}", p("ldir")),
        format!("oci-archive:{}:v1", p("l-oci.tar")),
        format!("docker-archive:{}", p("l-docker.tar")),
    ] {
        skopeo(&["copy", "-q", &s, &format!("oci:{}:again", p("sk"))]);
        assert_eq!(
            umoci_hello(
                &format!("{}:again", p("sk")),
                &t.path().join(format!("b{}", s.len()))
            ),
            "from lade\n"
        );
    }
}

#[test]
fn podman_loads_a_multi_image_lade_save_and_lade_loads_it_back() {
    require_peers!("podman");
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture(&t.path().join("src"), "one", "amd64", "one\n");
    fixture(&t.path().join("src"), "two", "amd64", "two\n");
    for n in ["one", "two"] {
        ok(lade().arg("--root").arg(&root).args([
            "copy",
            &format!("oci:{}:{n}", t.path().join("src").display()),
            &format!("lade:app-{n}:1"),
        ]));
    }
    let archive = t.path().join("both.tar");
    ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["save", "-o"])
        .arg(&archive)
        .args(["app-one:1", "app-two:1"]));
    let pod = |args: &[&str]| {
        ok(Command::new("podman")
            .arg("--root")
            .arg(t.path().join("podroot"))
            .arg("--runroot")
            .arg(t.path().join("podrun"))
            .args(["--storage-driver", "vfs"])
            .args(args))
    };
    let out = pod(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        out.contains("localhost/app-one:1") && out.contains("localhost/app-two:1"),
        "{out}"
    );
    let listed = pod(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        listed.contains("localhost/app-one:1") && listed.contains("localhost/app-two:1"),
        "{listed}"
    );

    // Both archive formats round-trip through lade save/load into a fresh store.
    let oci_archive = t.path().join("both-oci.tar");
    ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&oci_archive)
        .args(["app-one:1", "app-two:1"]));
    for (i, a) in [archive, oci_archive].iter().enumerate() {
        let fresh = t.path().join(format!("fresh{i}"));
        let out = ok(lade().arg("--root").arg(&fresh).args(["load", "-i"]).arg(a));
        assert!(
            out.contains("Loaded image: localhost/app-one:1")
                && out.contains("Loaded image: localhost/app-two:1"),
            "{out}"
        );
        let cfg: Value = serde_json::from_str(&ok(lade().arg("--root").arg(&fresh).args([
            "inspect",
            "--config",
            "app-two:1",
        ])))
        .unwrap();
        assert_eq!(cfg["config"]["Labels"]["fixture"], "two\n");
    }
}

#[test]
fn format_conversion_and_recompression() {
    require_peers!("skopeo", "umoci");
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).display().to_string();
    fixture(&t.path().join("src"), "base", "amd64", "convert me\n");
    let src = format!("oci:{}:base", p("src"));
    ok(lade().args([
        "copy",
        "--format",
        "v2s2",
        &src,
        &format!("dir:{}", p("v2")),
    ]));
    let m = raw_manifest(&format!("dir:{}", p("v2")));
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar"
    );
    let err = fails(
        lade().args([
            "copy",
            "--format",
            "v2s2",
            "--preserve-digests",
            &src,
            &format!("dir:{}", p("v2b")),
        ]),
        1,
    );
    assert!(err.contains("--preserve-digests"), "{err}");
    // v2s2 back into an OCI layout is converted to OCI types (skopeo and umoci only see those there).
    ok(lade().args([
        "copy",
        &format!("dir:{}", p("v2")),
        &format!("oci:{}:back", p("out")),
    ]));
    assert_eq!(
        raw_manifest(&format!("oci:{}:back", p("out")))["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    ok(lade().args([
        "copy",
        "--dest-compress-format",
        "zstd",
        &src,
        &format!("oci:{}:z", p("out")),
    ]));
    let z = raw_manifest(&format!("oci:{}:z", p("out")));
    assert_eq!(
        z["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:z", p("out")),
        &format!("oci:{}:z", p("sk")),
    ]);
    ok(lade().args([
        "copy",
        "--dest-compress-format",
        "gzip",
        &format!("oci:{}:z", p("sk")),
        &format!("oci:{}:g", p("out")),
    ]));
    let g = raw_manifest(&format!("oci:{}:g", p("out")));
    assert_eq!(
        g["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        umoci_hello(&format!("{}:g", p("out")), &t.path().join("bg")),
        "convert me\n"
    );
}

#[test]
fn multi_arch_all_system_and_index_only() {
    require_peers!("skopeo");
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).display().to_string();
    let src_dir = t.path().join("src");
    let amd = fixture(&src_dir, "amd", "amd64", "amd64\n");
    let arm = fixture(&src_dir, "arm", "arm64", "arm64\n");
    let idx = index(&src_dir, "multi", &[(&amd, "amd64"), (&arm, "arm64")]);
    let src = format!("oci:{}:multi", p("src"));

    let r = copy_json(&[
        "--all",
        "--preserve-digests",
        &src,
        &format!("oci:{}:all", p("out")),
    ]);
    assert_eq!(r["digest"], idx);
    assert_eq!(r["images"], 2);
    assert!(
        !skopeo(&["inspect", "--raw", &format!("oci:{}:all", p("out"))])
            .trim()
            .is_empty()
    );
    skopeo(&[
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:all", p("out")),
        &format!("oci:{}:all", p("sk")),
    ]);

    let r = copy_json(&[
        "--override-arch",
        "arm64",
        &src,
        &format!("oci:{}:arm", p("out")),
    ]);
    assert_eq!(r["digest"], arm);
    let r = copy_json(&[
        "--override-arch",
        "amd64",
        &src,
        &format!("oci:{}:amd", p("out")),
    ]);
    assert_eq!(r["digest"], amd);
    let err = fails(
        lade().args([
            "copy",
            "--override-arch",
            "s390x",
            &src,
            &format!("oci:{}:none", p("out")),
        ]),
        1,
    );
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );

    let r = copy_json(&[
        "--multi-arch",
        "index-only",
        &src,
        &format!("oci:{}:idx", p("only")),
    ]);
    assert_eq!(r["digest"], idx);
    assert_eq!(r["blobs_copied"], 0);
    let child = t
        .path()
        .join("only/blobs/sha256")
        .join(arm.trim_start_matches("sha256:"));
    assert!(!child.exists(), "index-only copies no image");
}

#[test]
fn referrers_and_cosign_tags_follow_unless_disabled_and_reruns_skip_blobs() {
    require_peers!("skopeo");
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).display().to_string();
    let src_dir = t.path().join("src");
    let img = fixture(&src_dir, "base", "amd64", "signed\n");
    let sbom = referrer(&src_dir, &img, "{\"sbom\":true}");
    let sig = cosign_sig(&src_dir, &img);
    let src = format!("oci:{}:base", p("src"));

    let r = copy_json(&[&src, &format!("oci:{}:base", p("out"))]);
    assert_eq!(r["referrers"], 2, "{r}");
    let idx: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("out/index.json")).unwrap()).unwrap();
    let digests: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert!(
        digests.contains(&sbom.as_str()),
        "the OCI referrer is in the destination index: {idx}"
    );
    let sig_tag = format!("sha256-{}.sig", img.trim_start_matches("sha256:"));
    assert_eq!(raw_digest(&format!("oci:{}:{sig_tag}", p("out"))), sig);

    // Into the store the signature tag lands in the image's repository.
    let root = t.path().join("root");
    ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["copy", &src, "lade:app:1"]));
    assert_eq!(
        raw_digest(&format!("oci:{}:localhost/app:{sig_tag}", root.display())),
        sig
    );
    let untagged = |root: &Path| -> usize {
        let idx: Value =
            serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
        idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"].is_null())
            .count()
    };
    assert_eq!(untagged(&root), 1, "the SBOM referrer is stored untagged");
    // Removing the image drops its referrers from the store too.
    ok(lade().arg("--root").arg(&root).args(["rmi", "app:1"]));
    assert_eq!(untagged(&root), 0);
    assert!(
        !root
            .join("blobs/sha256")
            .join(sbom.trim_start_matches("sha256:"))
            .exists()
    );

    let r = copy_json(&["--no-referrers", &src, &format!("oci:{}:base", p("bare"))]);
    assert_eq!(r["referrers"], 0);
    let idx: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("bare/index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 1, "{idx}");

    // A rerun moves no blob.
    let r = copy_json(&[&src, &format!("oci:{}:base", p("out"))]);
    assert_eq!(r["blobs_copied"], 0, "{r}");
    assert!(r["blobs_skipped"].as_u64().unwrap() >= 2, "{r}");
}

/// An OCI index under `tag` whose first entry is itself an index (over `inner`: manifest digest, arch),
/// and whose other entries are images (`outer`). Returns (outer digest, nested index digest).
fn nested_index(
    dir: &Path,
    tag: &str,
    inner: &[(&str, &str)],
    outer: &[(&str, &str)],
) -> (String, String) {
    use lade::store::layout::Layout;
    let l = Layout::create(dir).unwrap();
    let entry = |d: &str, arch: Option<&str>, mt: &str| {
        let size = std::fs::metadata(dir.join("blobs/sha256").join(&d[7..]))
            .unwrap()
            .len();
        let mut e = serde_json::json!({"mediaType": mt, "digest": d, "size": size});
        if let Some(a) = arch {
            e["platform"] = serde_json::json!({"os": "linux", "architecture": a});
        }
        e
    };
    let put = |v: Value| {
        let b = serde_json::to_vec(&v).unwrap();
        (l.put_bytes(&b).unwrap().to_string(), b.len())
    };
    let oci_m = "application/vnd.oci.image.manifest.v1+json";
    let oci_i = "application/vnd.oci.image.index.v1+json";
    let (nested, _) = put(serde_json::json!({"schemaVersion": 2, "mediaType": oci_i,
        "manifests": inner.iter().map(|(d, a)| entry(d, Some(a), oci_m)).collect::<Vec<_>>()}));
    let mut list = vec![entry(&nested, None, oci_i)];
    list.extend(outer.iter().map(|(d, a)| entry(d, Some(a), oci_m)));
    let (top, size) =
        put(serde_json::json!({"schemaVersion": 2, "mediaType": oci_i, "manifests": list}));
    let desc: lade::transport::Descriptor = serde_json::from_value(
        serde_json::json!({"mediaType": oci_i, "digest": top, "size": size}),
    )
    .unwrap();
    l.set_ref(tag, &desc).unwrap();
    (top, nested)
}

/// An index holding an index: `--all` copies the nested index and its images (digests kept, through a real
/// registry and back), `--multi-arch system` picks from the flattened platforms.
#[test]
fn nested_indexes_copy_whole_or_by_platform() {
    require_peers!("skopeo", "docker-registry");
    let Some(reg) = lade_tests::Registry::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| t.path().join(n).display().to_string();
    let src_dir = t.path().join("src");
    let amd = fixture(&src_dir, "amd", "amd64", "amd64\n");
    let ppc = fixture(&src_dir, "ppc", "ppc64le", "ppc64le\n");
    let arm = fixture(&src_dir, "arm", "arm64", "arm64\n");
    let (top, nested) = nested_index(
        &src_dir,
        "nested",
        &[(&amd, "amd64"), (&ppc, "ppc64le")],
        &[(&arm, "arm64")],
    );
    let src = format!("oci:{}:nested", p("src"));
    let remote = format!("docker://{}/nest/img:1", reg.addr);

    // --all into a registry: the top index, the nested one and all three images, digests unchanged.
    let r = copy_json(&["--all", "--dest-tls-verify=false", &src, &remote]);
    assert_eq!(r["digest"], top);
    assert_eq!(r["images"], 3);
    let at = |d: &str| format!("docker://{}/nest/img@{d}", reg.addr);
    let tls = "--tls-verify=false";
    assert_eq!(
        raw_manifest_with(&[tls], &at(&nested))["manifests"][1]["digest"],
        ppc
    );
    for d in [&amd, &ppc, &arm] {
        let m = raw_manifest_with(&[tls], &at(d));
        assert_eq!(m["layers"].as_array().unwrap().len(), 1, "{d}");
    }
    // And back into a fresh layout, read by skopeo.
    let r = copy_json(&[
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:back", p("back")),
    ]);
    assert_eq!(r["digest"], top);
    assert_eq!(r["images"], 3);
    // (skopeo reads the top index but cannot copy nested ones: check the layout's blobs directly.)
    assert_eq!(raw_digest(&format!("oci:{}:back", p("back"))), top);
    lade_tests::oci::assert_blobs_valid(&t.path().join("back"));
    for d in [&amd, &ppc, &arm, &nested] {
        assert!(
            t.path().join("back/blobs/sha256").join(&d[7..]).exists(),
            "{d} was copied back"
        );
    }

    // --multi-arch system: images inside the nested index are candidates like the others.
    for (arch, want) in [("ppc64le", &ppc), ("arm64", &arm), ("amd64", &amd)] {
        let r = copy_json(&[
            "--override-arch",
            arch,
            "--src-tls-verify=false",
            &remote,
            &format!("oci:{}:{arch}", p("one")),
        ]);
        assert_eq!(r["digest"], *want, "{arch}");
        assert_eq!(r["images"], 1);
    }
    let err = fails(
        lade().args([
            "copy",
            "--override-arch",
            "s390x",
            &src,
            &format!("oci:{}:none", p("one")),
        ]),
        1,
    );
    assert!(
        err.contains("linux/ppc64le") && err.contains("linux/arm64"),
        "{err}"
    );
}

fn raw_manifest_with(args: &[&str], image: &str) -> Value {
    let out = ok(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .args(args)
        .arg(image));
    serde_json::from_str(&out).unwrap()
}
