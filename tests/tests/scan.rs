//! `lade scan`: a scanner plugin over an image from several transports (an OCI layout, a registry, the local
//! store) and over a root filesystem directory. The image is made by umoci with a later layer that deletes
//! one file and replaces another; the fixture scanners (tests/fixtures/plugins) report what they were handed.
//! The layers' diff_ids come from umoci's config, not from lade.

use lade_tests::oci::{oci_digest, umoci_add_layer, umoci_image};
use lade_tests::{Registry, fails, lade, ok, require_peers, run, target_dir, workspace};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The two scanner fixtures this file uses, built once per test process: `file-lister` (contract 0.1.0:
/// `/etc/**` of the final filesystem, each file's content as the message) and `data-reader` (0.2.0: `/etc/**`
/// and executables in every layer, each finding saying `layer N visible B`).
fn fixture(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target = target_dir().join("fixtures");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace().join("tests/fixtures/plugins"))
            .args(["build", "--quiet", "--release", "--locked"])
            .args(["--target", "wasm32-wasip2", "--target-dir"])
            .arg(&target)
            .args(["-p", "fixture-file-lister", "-p", "fixture-data-reader"]);
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
        ] {
            cmd.env_remove(var);
        }
        assert!(
            cmd.status().unwrap().success(),
            "building the fixture scanners failed"
        );
        target.join("wasm32-wasip2/release")
    });
    dir.join(format!("fixture_{}.wasm", name.replace('-', "_")))
}

/// An OCI layout `img:t` made by umoci: layer 0 has /etc/a, /etc/b and an executable /usr/bin/tool; layer 1
/// deletes /etc/a (a whiteout) and replaces /etc/b. Returns the layout and the config's diff_ids.
fn layered_image(dir: &Path) -> (PathBuf, Vec<String>) {
    let layout = dir.join("img");
    umoci_image(
        &layout,
        "t",
        &[("etc/a", b"first a\n"), ("etc/b", b"first b\n")],
        None,
    );
    let img = format!("{}:t", layout.display());
    umoci_add_layer(&img, &[("etc/.wh.a", b""), ("etc/b", b"second b\n")]);
    ok(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &img])
        .arg(exec_layer(dir)));
    let manifest = oci_digest(&layout, "t").unwrap();
    let blob = |d: &str| -> Value {
        let path = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let config = blob(blob(&manifest)["config"]["digest"].as_str().unwrap());
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (layout, diff_ids)
}

/// A tar holding /usr/bin/tool with mode 0755.
fn exec_layer(dir: &Path) -> PathBuf {
    let root = dir.join("exec-root");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let tool = root.join("usr/bin/tool");
    std::fs::write(&tool, b"\x7fELF not really").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tar = dir.join("exec.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// `lade scan -f json` with a private store; the findings as (id, layer, message), sorted.
fn scan(root: &Path, extra: &[&str], target: &str) -> Vec<(String, String, String)> {
    let db = root.join("db");
    std::fs::create_dir_all(&db).unwrap();
    let out = ok(lade()
        .arg("--root")
        .arg(root.join("store"))
        .arg("--plugin-data")
        .arg(format!("db={}", db.display()))
        .args(["scan", "-f", "json", "--tls-verify=false"])
        .args(extra)
        .arg(target));
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut f: Vec<_> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("layer"), s("message"))
        })
        .collect();
    f.sort();
    f
}

fn expected_layered(diff_ids: &[String]) -> Vec<(String, String, String)> {
    let mut want = vec![
        (
            "/etc/a".into(),
            diff_ids[0].clone(),
            "layer 0 visible false".into(),
        ),
        (
            "/etc/b".into(),
            diff_ids[0].clone(),
            "layer 0 visible false".into(),
        ),
        (
            "/etc/b".into(),
            diff_ids[1].clone(),
            "layer 1 visible true".into(),
        ),
        (
            "/usr/bin/tool".into(),
            diff_ids[2].clone(),
            "layer 2 visible true".into(),
        ),
    ];
    want.sort();
    want
}

#[test]
fn every_layer_is_scanned_with_what_later_layers_delete() {
    require_peers!("umoci");
    let dir = tempfile::tempdir().unwrap();
    let (layout, diff_ids) = layered_image(dir.path());
    let reader = fixture("data-reader");
    let target = format!("oci:{}:t", layout.display());
    let found = scan(dir.path(), &["--plugin", reader.to_str().unwrap()], &target);
    assert_eq!(found, expected_layered(&diff_ids));
}

#[test]
fn a_final_filesystem_scanner_sees_only_what_is_left() {
    require_peers!("umoci");
    let dir = tempfile::tempdir().unwrap();
    let (layout, diff_ids) = layered_image(dir.path());
    let lister = fixture("file-lister");
    let target = format!("oci:{}:t", layout.display());
    let found = scan(dir.path(), &["--plugin", lister.to_str().unwrap()], &target);
    // A 0.1.0 scanner's findings carry no layer; /etc/a is gone, /etc/b has the second layer's content.
    assert_eq!(
        found,
        vec![("/etc/b".into(), String::new(), "second b\n".into())]
    );
    assert_eq!(diff_ids.len(), 3);
}

/// Layers of a layout directory are read in place; one whose bytes no longer match its digest fails the
/// scan, naming the blob, and no findings are printed.
#[test]
fn a_damaged_layer_in_a_layout_fails_the_scan() {
    require_peers!("umoci");
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = layered_image(dir.path());
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(&oci_digest(&layout, "t").unwrap())).unwrap())
            .unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bytes = std::fs::read(blob(&layer)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(blob(&layer), &bytes).unwrap();
    let lister = fixture("file-lister");
    let out = run(lade()
        .arg("--root")
        .arg(dir.path().join("store"))
        .args(["scan", "-f", "json", "--plugin", lister.to_str().unwrap()])
        .arg(format!("oci:{}:t", layout.display())));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a damaged layer was scanned: {err}");
    assert!(
        err.contains(&layer) && err.contains("damaged"),
        "the error should name the damaged blob {layer}: {err}"
    );
    assert!(out.stdout.is_empty(), "findings printed: {:?}", out.stdout);
}

/// The scan cache: the first scan keeps what the selection took from each layer, a second scan of the same
/// layers streams those extracts instead of the layers (shown by editing one: the findings change with
/// it), and the blobs are still checked, so a damaged layout fails even when every layer is cached.
#[test]
fn a_second_scan_reads_the_layer_extracts_and_still_checks_the_blobs() {
    require_peers!("umoci");
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = layered_image(dir.path());
    // A private scan cache (beside the shared compiled plugins, so nothing is compiled again).
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let shared = lade_tests::shared_cache_dir().join("plugins");
    std::fs::create_dir_all(&shared).unwrap();
    std::os::unix::fs::symlink(&shared, cache.join("plugins")).unwrap();
    let lister = fixture("file-lister");
    let target = format!("oci:{}:t", layout.display());
    let scan = || {
        run(lade()
            .env("LADE_CACHE_DIR", &cache)
            .arg("--root")
            .arg(dir.path().join("store"))
            .args(["scan", "-f", "json", "--plugin", lister.to_str().unwrap()])
            .arg(&target))
    };
    let first = scan();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("second b"));
    let extracts: Vec<_> = std::fs::read_dir(cache.join("scan/extracts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(extracts.len(), 3, "one extract per layer: {extracts:?}");
    let holding = extracts
        .iter()
        .find(|p| {
            std::fs::read(p)
                .unwrap()
                .windows(8)
                .any(|w| w == b"second b")
        })
        .expect("an extract holds /etc/b's content");
    let edited: Vec<u8> = {
        let bytes = std::fs::read(holding).unwrap();
        let at = bytes.windows(8).position(|w| w == b"second b").unwrap();
        let mut b = bytes.clone();
        b[at..at + 8].copy_from_slice(b"cached b");
        b
    };
    std::fs::write(holding, &edited).unwrap();
    let second = scan();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(
        out.contains("cached b") && !out.contains("second b"),
        "{out}"
    );

    // Every layer is cached; a damaged blob still fails the scan.
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            layout.join("blobs/sha256").join(
                oci_digest(&layout, "t")
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&blob, &bytes).unwrap();
    let third = scan();
    let err = String::from_utf8_lossy(&third.stderr);
    assert!(!third.status.success() && err.contains(&layer), "{err}");
}

#[test]
fn images_from_a_registry_and_the_local_store_are_scanned_alike() {
    require_peers!("umoci", "skopeo", "docker-registry");
    let Some(reg) = Registry::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (layout, diff_ids) = layered_image(dir.path());
    let remote = format!("docker://{}/scan/layered:t", reg.addr);
    ok(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:t", layout.display()))
        .arg(&remote));
    let reader = fixture("data-reader");
    let plugin = ["--plugin", reader.to_str().unwrap()];
    assert_eq!(
        scan(dir.path(), &plugin, &remote),
        expected_layered(&diff_ids)
    );
    ok(lade().arg("--root").arg(dir.path().join("store")).args([
        "pull",
        "--tls-verify=false",
        &remote,
    ]));
    let local = format!("{}/scan/layered:t", reg.addr);
    assert_eq!(
        scan(dir.path(), &plugin, &local),
        expected_layered(&diff_ids)
    );
}

#[test]
fn a_root_filesystem_directory_is_one_layer() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc/sub")).unwrap();
    std::fs::write(rootfs.join("etc/sub/x"), b"x").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", rootfs.join("etc/link")).unwrap();
    std::fs::write(rootfs.join("other"), b"not selected").unwrap();
    let lister = fixture("file-lister");
    let found = scan(
        dir.path(),
        &["--plugin", lister.to_str().unwrap()],
        rootfs.to_str().unwrap(),
    );
    let ids: Vec<&str> = found.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(ids, ["/etc/link", "/etc/sub", "/etc/sub/x"]);
    // The symlink is reported, never followed out of the directory.
    assert_eq!(found[0].2, "");
    assert_eq!(found[2].2, "x");
}

#[test]
fn severity_filter_and_exit_code_behave_as_trivy() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/x"), b"x").unwrap();
    let lister = fixture("file-lister");
    let base = |extra: &[&str]| {
        let mut c = lade();
        c.arg("--root")
            .arg(dir.path().join("store"))
            .args(["scan", "--plugin", lister.to_str().unwrap()])
            .args(extra)
            .arg(&rootfs);
        c
    };
    // The fixture's findings are LOW: filtered out by --severity HIGH, so the exit code stays 0.
    let out = ok(&mut base(&[
        "--severity",
        "HIGH,CRITICAL",
        "--exit-code",
        "5",
    ]));
    assert!(out.contains("no findings"), "{out}");
    fails(&mut base(&["--severity", "low", "--exit-code", "5"]), 5);
    ok(&mut base(&["--severity", "LOW"]));
    let e = fails(&mut base(&["--severity", "SEVERE"]), 1);
    assert!(e.contains("--severity \"SEVERE\""), "{e}");
    // With no --plugin the scanner is vuln, which needs the database.
    let e = fails(lade().args(["scan"]).arg(&rootfs), 1);
    assert!(e.contains("lade db import"), "{e}");
}
