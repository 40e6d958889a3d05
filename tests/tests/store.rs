//! The local store: names, lookup, tag/rmi/prune, interop with skopeo and umoci, digest verification and
//! concurrent writers.

mod fixture;

use fixture::fixture;
use lade_tests::{fails, lade, ok, require_peers, run};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn store(root: &Path) -> Command {
    let mut c = lade();
    c.arg("--root").arg(root);
    c
}

fn skopeo_digest(image: &str) -> String {
    let out = ok(Command::new("skopeo").args(["inspect", image]));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

fn blob_files(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn pull_tag_rmi_with_skopeo_and_umoci_reading_the_store() {
    require_peers!("skopeo", "umoci");
    let t = tempfile::tempdir().unwrap();
    let (src, root) = (t.path().join("src"), t.path().join("root"));
    let digest = fixture(&src, "base", "amd64", "hi from lade\n");
    let id = ok(store(&root)
        .arg("pull")
        .arg(format!("oci:{}:base", src.display())));
    let images: Value =
        serde_json::from_str(&ok(store(&root).args(["images", "--format", "json"]))).unwrap();
    assert_eq!(images[0]["names"], json!(["localhost/base:latest"]));
    assert_eq!(images[0]["digest"], digest);
    assert!(
        id.trim().len() == 64 && images[0]["id"] == id.trim(),
        "pull prints the image ID: {id}"
    );

    ok(store(&root).args(["tag", "base", "app:2", "quay.io/x/app:3"]));
    let table = ok(store(&root).arg("images"));
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(
        table.contains("localhost/app") && table.contains("quay.io/x/app"),
        "{table}"
    );
    // skopeo and umoci read the store as a plain OCI layout with fully qualified names.
    assert_eq!(
        skopeo_digest(&format!("oci:{}:localhost/app:2", root.display())),
        digest
    );
    let bundle = t.path().join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:quay.io/x/app:3", root.display()))
        .arg(&bundle));
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello")).unwrap(),
        "hi from lade\n"
    );

    // Lookups: short name, qualified name, ID prefix all name the same image.
    let by_short: Value =
        serde_json::from_str(&ok(store(&root).args(["inspect", "app:2"]))).unwrap();
    let by_id: Value =
        serde_json::from_str(&ok(store(&root).args(["inspect", &id.trim()[..12]]))).unwrap();
    assert_eq!(by_short["Digest"], digest);
    assert_eq!(by_id["Digest"], digest);
    let err = fails(store(&root).args(["inspect", "nope:1"]), 1);
    assert!(
        err.contains("nope:1") && err.contains("not in the local store"),
        "{err}"
    );
    assert_eq!(
        ok(store(&root).args(["images", "-q"])).trim(),
        &id.trim()[..12]
    );

    // rmi by name drops that name only; by ID with several names needs -f.
    ok(store(&root).args(["rmi", "app:2"]));
    assert!(
        !run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:localhost/app:2", root.display())))
        .status
        .success()
    );
    let err = fails(store(&root).args(["rmi", &id.trim()[..12]]), 1);
    assert!(err.contains("-f"), "{err}");
    ok(store(&root).args(["rmi", "-f", &id.trim()[..12]]));
    assert_eq!(ok(store(&root).args(["images", "-q"])).trim(), "");
    assert!(
        blob_files(&root).is_empty(),
        "rmi collects the blobs no image uses: {:?}",
        blob_files(&root)
    );
}

#[test]
fn prune_removes_only_unreferenced_blobs() {
    require_peers!("skopeo");
    let t = tempfile::tempdir().unwrap();
    let (src, root) = (t.path().join("src"), t.path().join("root"));
    fixture(&src, "base", "amd64", "keep me\n");
    ok(store(&root)
        .arg("pull")
        .arg(format!("oci:{}:base", src.display())));
    let before = blob_files(&root).len();
    let orphan = root.join("blobs/sha256").join("0".repeat(64));
    std::fs::write(&orphan, b"orphan").unwrap();
    let out = ok(store(&root).arg("prune"));
    assert!(out.contains("Removed 1"), "{out}");
    assert!(!orphan.exists());
    assert_eq!(blob_files(&root).len(), before);
    ok(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:localhost/base:latest", root.display()))
        .arg(format!("oci:{}:x", t.path().join("out").display())));
}

#[test]
fn a_corrupt_blob_is_refused_and_never_becomes_visible() {
    let t = tempfile::tempdir().unwrap();
    let (src, root) = (t.path().join("src"), t.path().join("root"));
    fixture(&src, "base", "amd64", "original\n");
    let idx: Value =
        serde_json::from_slice(&std::fs::read(src.join("index.json")).unwrap()).unwrap();
    let md = idx["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let m: Value =
        serde_json::from_slice(&std::fs::read(src.join("blobs/sha256").join(&md)).unwrap())
            .unwrap();
    let layer = m["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let p = src.join("blobs/sha256").join(&layer);
    let mut bytes = std::fs::read(&p).unwrap();
    let i = bytes.iter().position(|b| *b == b'o').unwrap();
    bytes[i] = b'O';
    std::fs::write(&p, bytes).unwrap();
    let err = fails(
        store(&root)
            .args(["pull", "--retry-times", "0"])
            .arg(format!("oci:{}:base", src.display())),
        1,
    );
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    assert!(
        !root.join("blobs/sha256").join(&layer).exists(),
        "the bad blob must not be in the store"
    );
    assert!(
        blob_files(&root).iter().all(|f| !f
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".tmp"))
    );
    assert_eq!(
        ok(store(&root).args(["images", "-q"])).trim(),
        "",
        "no tag for a failed copy"
    );
}

#[test]
fn concurrent_copies_into_one_store_and_one_oci_dir_lose_no_tag() {
    let t = tempfile::tempdir().unwrap();
    let (src, root, dir) = (
        t.path().join("src"),
        t.path().join("root"),
        t.path().join("oci"),
    );
    for i in 0..6 {
        fixture(&src, &format!("v{i}"), "amd64", &format!("image {i}\n"));
    }
    let mut children = vec![];
    for i in 0..6 {
        let s = format!("oci:{}:v{i}", src.display());
        children.push(
            store(&root)
                .args(["copy", "-q", &s, &format!("lade:app:{i}")])
                .spawn()
                .unwrap(),
        );
        children.push(
            lade()
                .args(["copy", "-q", &s, &format!("oci:{}:t{i}", dir.display())])
                .spawn()
                .unwrap(),
        );
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let images: Value =
        serde_json::from_str(&ok(store(&root).args(["images", "--format", "json"]))).unwrap();
    let mut names: Vec<String> = images
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["names"].as_array().unwrap().clone())
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        (0..6)
            .map(|i| format!("localhost/app:{i}"))
            .collect::<Vec<_>>()
    );
    let idx: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut refs: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    refs.sort();
    assert_eq!(refs, ["t0", "t1", "t2", "t3", "t4", "t5"]);
}

#[test]
fn a_digest_pinned_image_does_not_take_over_the_latest_tag() {
    require_peers!("skopeo");
    let t = tempfile::tempdir().unwrap();
    let (src, root) = (t.path().join("src"), t.path().join("root"));
    let latest = fixture(&src, "new", "amd64", "new\n");
    let pinned = fixture(&src, "old", "amd64", "old\n");
    ok(store(&root)
        .arg("copy")
        .arg(format!("oci:{}:new", src.display()))
        .arg("lade:quay.io/x/app:latest"));
    ok(store(&root)
        .arg("copy")
        .arg(format!("oci:{}:old", src.display()))
        .arg(format!("lade:quay.io/x/app@{pinned}")));
    // `app:latest` still names the newer image; the pinned one is listed without a tag, found by digest.
    assert_eq!(
        skopeo_digest(&format!("oci:{}:quay.io/x/app:latest", root.display())),
        latest
    );
    let by_digest: Value = serde_json::from_str(&ok(
        store(&root).args(["inspect", &format!("quay.io/x/app@{pinned}")])
    ))
    .unwrap();
    assert_eq!(by_digest["Digest"], pinned);
    let table = ok(store(&root).arg("images"));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("quay.io/x/app") && l.contains("<none>")),
        "{table}"
    );
}
