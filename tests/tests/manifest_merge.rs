//! `lade manifest merge TARGET SRC...`: per-platform images already in a registry, in two repositories,
//! merged into one index in a third without downloading a layer (the registry's own log counts the requests;
//! skopeo reads the result).

use lade_tests::oci::busybox_image_for;
use lade_tests::{Registry, lade, ok, require_peers};
use serde_json::Value;
use std::process::Command;

fn skopeo_json(args: &[&str]) -> Value {
    let out = ok(Command::new("skopeo").args(args));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn per_platform_images_merge_into_one_index_without_pulling_layers() {
    require_peers!("umoci", "skopeo", "docker-registry");
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    // Two "runners" push their platform's image, each to its own repository.
    let mut pushed = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layout = tmp.path().join(arch);
        busybox_image_for(&layout, "v1", arch);
        let dest = format!("{}/runner-{arch}/app:1", reg.addr);
        ok(lade()
            .arg("--root")
            .arg(tmp.path().join(format!("store-{arch}")))
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{dest}")));
        let m = skopeo_json(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{dest}"),
        ]);
        pushed.push((arch, dest, m));
    }
    let before = reg.log().len();
    let target = format!("{}/app:multi", reg.addr);
    let digest = ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["manifest", "merge", "--tls-verify=false", &target])
        .args(pushed.iter().map(|(_, d, _)| d.as_str())));
    let log = reg.log()[before..].to_string();
    // Not one layer was downloaded (the small configs are read for the platforms).
    for (arch, _, m) in &pushed {
        for l in m["layers"].as_array().unwrap() {
            let d = l["digest"].as_str().unwrap();
            let gets = log
                .lines()
                .filter(|line| line.contains("\"GET /v2/") && line.contains(&format!("/blobs/{d}")))
                .count();
            assert_eq!(gets, 0, "the {arch} layer {d} was downloaded:\n{log}");
        }
    }
    // The log does record requests: the manifests were read and the blobs mounted into the new repository.
    assert!(
        log.contains("\"GET /v2/runner-arm64/app/manifests/"),
        "{log}"
    );
    assert!(
        log.contains("\"POST /v2/app/blobs/uploads/?mount="),
        "{log}"
    );
    // skopeo sees one index with both platforms, each entry the manifest the runner pushed.
    let idx = skopeo_json(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]);
    assert_eq!(
        idx["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{idx}"
    );
    let entries = idx["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{idx}");
    for (arch, dest, _) in &pushed {
        let e = entries
            .iter()
            .find(|e| e["platform"]["architecture"] == *arch)
            .unwrap_or_else(|| panic!("no {arch} entry: {idx}"));
        assert_eq!(e["platform"]["os"], "linux");
        let want = skopeo_json(&["inspect", "--tls-verify=false", &format!("docker://{dest}")]);
        assert_eq!(e["digest"], want["Digest"], "{idx}");
    }
    // The target repository holds every blob: skopeo copies the whole index out of it.
    let out = tmp.path().join("out");
    ok(Command::new("skopeo").args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{target}"),
        &format!("oci:{}:multi", out.display()),
    ]));
    let printed = digest.trim();
    let all = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{target}"),
    ]);
    assert_eq!(all, idx);
    assert!(printed.starts_with("sha256:"), "{printed}");
}
