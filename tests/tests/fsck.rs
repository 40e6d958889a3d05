//! `lade fsck [--repair]`: damaged, missing and leftover files are found (named by digest, with the images
//! that need them), `--repair` removes them and the images, and what survives stays readable by skopeo.

use lade_tests::oci::{noise, umoci_image};
use lade_tests::{lade, ok, require_peers, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn store(root: &Path) -> Command {
    let mut c = lade();
    c.arg("--root").arg(root);
    c
}

/// A store holding `localhost/a:latest` and `localhost/b:latest` (different layers), pulled from a layout
/// umoci made.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (src, root) = (t.path().join("src"), t.path().join("root"));
    umoci_image(&src, "a", &[("a.bin", &noise(1, 50_000))], None);
    umoci_image(&src, "b", &[("b.bin", &noise(2, 50_000))], None);
    for tag in ["a", "b"] {
        ok(store(&root)
            .arg("pull")
            .arg(format!("oci:{}:{tag}", src.display())));
    }
    (t, root, src)
}

/// The manifest of a stored image, as skopeo reads it from the store (not as lade reports it).
fn manifest(root: &Path, name: &str) -> Value {
    let raw = ok(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:{name}", root.display())));
    serde_json::from_str(&raw).unwrap()
}

fn top_digest(root: &Path, name: &str) -> String {
    let idx: Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .unwrap()
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    root.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn flip_byte(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

/// `lade fsck --format json` (plus `args`): exit code and the parsed report.
fn fsck(root: &Path, args: &[&str]) -> (i32, Value) {
    let out = run(store(root).args(["fsck", "--format", "json"]).args(args));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "fsck output is not JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn kinds(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["kind"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn assert_clean(root: &Path) {
    let (code, r) = fsck(root, &[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["clean"], true, "{r:#}");
    assert!(kinds(&r["problems"]).is_empty(), "{r:#}");
}

/// Damage `digest` (a blob of image a) with `damage`, check fsck names it and image a, repair, check that
/// image a and the blob are gone and listed, b is intact for skopeo, and a re-pull restores a.
fn damage_and_repair(kind: &str, which: impl Fn(&Path) -> String, damage: impl Fn(&Path)) {
    require_peers!("skopeo", "umoci");
    let (_t, root, src) = setup();
    assert_clean(&root);
    let digest = which(&root);
    damage(&blob_path(&root, &digest));

    let (code, r) = fsck(&root, &[]);
    assert_eq!(code, 1, "damage must be found: {r:#}");
    assert_eq!(r["clean"], false);
    let p = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["digest"] == digest.as_str())
        .unwrap_or_else(|| panic!("no problem names {digest}: {r:#}"));
    assert_eq!(p["kind"], kind, "{p:#}");
    assert_eq!(
        p["images"],
        serde_json::json!(["localhost/a:latest"]),
        "{p:#}"
    );
    // The text report names the digest too, and exits 1.
    let out = run(store(&root).arg("fsck"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&digest));

    let (code, r) = fsck(&root, &["--repair"]);
    assert_eq!(code, 0, "{r:#}");
    let removed = r["removed"].as_array().unwrap();
    assert!(
        removed
            .iter()
            .any(|f| f["kind"] == "image" && f["images"][0] == "localhost/a:latest"),
        "{r:#}"
    );
    if kind == "corrupt-blob" {
        assert!(
            removed
                .iter()
                .any(|f| f["kind"] == "blob" && f["digest"] == digest.as_str())
        );
        assert!(
            !blob_path(&root, &digest).exists(),
            "the corrupt blob is removed"
        );
    }
    assert_clean(&root);
    let names = ok(store(&root).args(["images", "--format", "json"]));
    assert!(!names.contains("localhost/a:latest") && names.contains("localhost/b:latest"));
    // What survives is a valid layout for skopeo, with every blob matching its digest.
    ok(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:localhost/b:latest", root.display())));
    lade_tests::oci::assert_blobs_valid(&root);

    ok(store(&root)
        .arg("pull")
        .arg(format!("oci:{}:a", src.display())));
    assert_clean(&root);
    ok(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:localhost/a:latest", root.display())));
}

fn layer_of_a(root: &Path) -> String {
    manifest(root, "localhost/a:latest")["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_flipped_byte_in_a_layer_is_found_and_repaired() {
    damage_and_repair("corrupt-blob", layer_of_a, flip_byte);
}

#[test]
fn a_flipped_byte_in_a_config_is_found_and_repaired() {
    damage_and_repair(
        "corrupt-blob",
        |root| {
            manifest(root, "localhost/a:latest")["config"]["digest"]
                .as_str()
                .unwrap()
                .to_string()
        },
        flip_byte,
    );
}

#[test]
fn a_flipped_byte_in_a_manifest_is_found_and_repaired() {
    damage_and_repair(
        "corrupt-blob",
        |root| top_digest(root, "localhost/a:latest"),
        flip_byte,
    );
}

#[test]
fn a_missing_blob_is_found_and_its_image_removed() {
    damage_and_repair("missing-blob", layer_of_a, |p| {
        std::fs::remove_file(p).unwrap()
    });
}

#[test]
fn leftover_temp_files_are_listed_and_removed_but_do_not_make_the_store_unclean() {
    require_peers!("skopeo", "umoci");
    let (_t, root, _src) = setup();
    let leftovers = [
        root.join("blobs/sha256/.tmp-killed"),
        root.join(".tmp-index"),
        root.join("lade/layers/.tmp-0123456789ab-x"),
    ];
    std::fs::create_dir_all(root.join("lade/layers")).unwrap();
    for p in &leftovers {
        std::fs::write(p, noise(3, 1000)).unwrap();
    }
    let (code, r) = fsck(&root, &[]);
    assert_eq!(code, 0, "leftovers are harmless: {r:#}");
    for p in &leftovers {
        assert!(
            r["leftovers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["kind"] == "temp-file" && f["path"] == p.to_str().unwrap()),
            "{} not reported: {r:#}",
            p.display()
        );
    }
    let (code, r) = fsck(&root, &["--repair"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(
        r["removed"].as_array().unwrap().len(),
        leftovers.len(),
        "{r:#}"
    );
    for p in &leftovers {
        assert!(!p.exists(), "{} is removed", p.display());
    }
    let (_, r) = fsck(&root, &[]);
    assert!(kinds(&r["leftovers"]).is_empty(), "{r:#}");
    lade_tests::oci::assert_blobs_valid(&root);
    for name in ["localhost/a:latest", "localhost/b:latest"] {
        ok(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{name}", root.display())));
    }
}

#[test]
fn a_clean_store_is_clean_in_text_and_json() {
    require_peers!("skopeo", "umoci");
    let (_t, root, _src) = setup();
    let text = ok(store(&root).arg("fsck"));
    assert!(text.contains("the store is clean"), "{text}");
    let (code, r) = fsck(&root, &[]);
    assert_eq!(code, 0);
    assert_eq!(r["checked"]["images"], 2, "{r:#}");
    // Two images of config + one layer + manifest each: 6 blobs, as the files on disk say.
    let on_disk = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(r["checked"]["blobs"], on_disk, "{r:#}");
    assert!(kinds(&r["leftovers"]).is_empty(), "{r:#}");
    // Bad usage exits 2.
    let out = run(store(&root).args(["fsck", "--format", "yaml"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn build_cache_records_of_missing_or_damaged_layers_are_found_and_removed() {
    require_peers!("skopeo", "umoci");
    let (_t, root, _src) = setup();
    let dir = root.join("lade/build-cache");
    std::fs::create_dir_all(&dir).unwrap();
    let gone = format!("sha256:{}", "ab".repeat(32));
    let stale = dir.join(format!("{}.json", "01".repeat(32)));
    std::fs::write(
        &stale,
        serde_json::json!({"key": "01".repeat(32), "created": 1, "layer": {
            "diff_id": gone, "digest": gone, "size": 10,
            "media_type": "application/vnd.oci.image.layer.v1.tar+gzip"}})
        .to_string(),
    )
    .unwrap();
    let damaged = dir.join(format!("{}.json", "02".repeat(32)));
    std::fs::write(&damaged, "{not json").unwrap();

    let (code, r) = fsck(&root, &[]);
    assert_eq!(code, 1, "a damaged record is a problem: {r:#}");
    assert_eq!(kinds(&r["problems"]), ["damaged-metadata"], "{r:#}");
    assert_eq!(r["problems"][0]["path"], damaged.to_str().unwrap());
    let l = r["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "stale-metadata")
        .unwrap_or_else(|| panic!("{r:#}"));
    assert_eq!(l["digest"], gone.as_str());
    assert_eq!(l["path"], stale.to_str().unwrap());

    let (code, r) = fsck(&root, &["--repair"]);
    assert_eq!(code, 0, "{r:#}");
    assert!(!stale.exists() && !damaged.exists(), "{r:#}");
    assert_clean(&root);
    // Both images were fine and stay.
    for name in ["localhost/a:latest", "localhost/b:latest"] {
        ok(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{name}", root.display())));
    }
}

#[test]
fn repair_alongside_a_pull_removes_nothing_the_pull_writes() {
    require_peers!("skopeo", "umoci");
    let (t, root, _src) = setup();
    let big = t.path().join("big");
    umoci_image(&big, "1", &[("big", &noise(9, 8 << 20))], None);
    let mut pull = store(&root)
        .arg("pull")
        .arg(format!("oci:{}:1", big.display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Each repair waits for the pull's hold on the store, or runs before or after it: never in between.
    for _ in 0..5 {
        let (code, r) = fsck(&root, &["--repair"]);
        assert_eq!(code, 0, "{r:#}");
        assert!(
            r["removed"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["kind"] != "blob" && f["kind"] != "image"),
            "{r:#}"
        );
    }
    assert!(pull.wait().unwrap().success());
    assert_clean(&root);
    lade_tests::oci::assert_blobs_valid(&root);
    ok(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:localhost/1:latest", root.display())));
}
