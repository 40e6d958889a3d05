//! A full disk: a pull, a build and a copy (into the store and into an `oci:` layout) that run out of space
//! fail naming ENOSPC and where, leave no partial blob, layer or tag, leave `lade fsck` clean, and succeed
//! when run again after space is freed. The filesystem is a tmpfs (root only), filled up to a few MB.

use lade_tests::oci::{
    assert_blobs_valid, busybox_image, noise, oci_digest, umoci_add_layer, umoci_image,
};
use lade_tests::{lade, need_root, ok, require_peers, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a temp dir, unmounted when dropped.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn new() -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&path));
        Tmpfs { _dir: dir, path }
    }

    /// Fill the filesystem until only `free` bytes are left (the filler is `<fs>/filler`).
    fn fill_leaving(&self, free: u64) {
        let st = rustix::fs::statvfs(&self.path).unwrap();
        let avail = st.f_bavail * st.f_frsize;
        assert!(avail > free, "the tmpfs has {avail} bytes free");
        ok(Command::new("fallocate")
            .args(["-l", &(avail - free).to_string()])
            .arg(self.filler()));
    }

    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }

    fn free_space(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn store(root: &Path) -> Command {
    let mut c = lade();
    c.arg("--root").arg(root);
    c
}

/// Run `cmd`, which must fail for lack of space with an error naming ENOSPC, `place` and what to do.
fn fails_full(cmd: &mut Command, place: &Path) {
    let out = run(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{cmd:?} should fail: {err}");
    assert!(
        err.contains("No space left on device") && err.contains("ENOSPC"),
        "the error names ENOSPC: {err}"
    );
    assert!(
        err.contains(&place.display().to_string()),
        "the error names {}: {err}",
        place.display()
    );
    assert!(
        err.contains("free space"),
        "the error says what to do: {err}"
    );
}

/// No blob of `layout` is partial (each hashes to its name, checked with sha256sum), and no temp file is
/// left among them.
fn assert_no_partial_blob(layout: &Path) {
    assert_blobs_valid(layout);
}

/// `lade fsck` finds no problem in the store at `root`.
fn assert_fsck_clean(root: &Path) {
    let out = run(store(root).args(["fsck", "--format", "json"]));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success() && r["clean"] == true, "{r:#}");
}

/// An image of three 2 MB layers of noise (6 MB that do not compress).
fn noisy_image(layout: &Path) {
    umoci_image(layout, "1", &[("one", &noise(21, 2 << 20))], None);
    let img = format!("{}:1", layout.display());
    umoci_add_layer(&img, &[("two", &noise(22, 2 << 20))]);
    umoci_add_layer(&img, &[("three", &noise(23, 2 << 20))]);
}

fn names(root: &Path) -> String {
    ok(store(root).args(["images", "--format", "json"]))
}

#[test]
fn a_pull_into_a_full_store_fails_cleanly_and_reruns() {
    require_peers!("umoci", "skopeo");
    if !need_root("a_pull_into_a_full_store_fails_cleanly_and_reruns") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    noisy_image(&src);
    let fs = Tmpfs::new();
    let root = fs.path.join("store");
    ok(store(&root).arg("images")); // creates the store
    fs.fill_leaving(3 << 20);
    let pull = || {
        let mut c = store(&root);
        c.arg("pull").arg(format!("oci:{}:1", src.display()));
        c
    };
    fails_full(&mut pull(), &root);
    assert!(
        !names(&root).contains("localhost/1"),
        "no tag after a failed pull"
    );
    assert_no_partial_blob(&root);
    assert_fsck_clean(&root);

    fs.free_space();
    ok(&mut pull());
    assert_fsck_clean(&root);
    ok(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:localhost/1:latest", root.display())));
}

#[test]
fn a_copy_into_a_full_oci_layout_fails_cleanly_and_reruns() {
    require_peers!("umoci", "skopeo");
    if !need_root("a_copy_into_a_full_oci_layout_fails_cleanly_and_reruns") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    noisy_image(&src);
    let fs = Tmpfs::new();
    let dest = fs.path.join("layout");
    fs.fill_leaving(3 << 20);
    let copy = || {
        let mut c = store(&t.path().join("store"));
        c.arg("copy")
            .arg(format!("oci:{}:1", src.display()))
            .arg(format!("oci:{}:1", dest.display()));
        c
    };
    fails_full(&mut copy(), &dest);
    assert_eq!(oci_digest(&dest, "1"), None, "no tag after a failed copy");
    assert_no_partial_blob(&dest);

    fs.free_space();
    ok(&mut copy());
    assert_eq!(oci_digest(&dest, "1"), oci_digest(&src, "1"));
    assert_no_partial_blob(&dest);
    ok(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:1", dest.display())));
}

#[test]
fn a_build_into_a_full_store_fails_cleanly_and_reruns() {
    require_peers!("umoci", "skopeo");
    if !need_root("a_build_into_a_full_store_fails_cleanly_and_reruns") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("base");
    busybox_image(&layout, "1");
    let fs = Tmpfs::new();
    let root = fs.path.join("store");
    ok(store(&root)
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg("lade:localhost/base:1"));
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // 3 MB of noise fit in the step's upper dir, but not a second time as the layer blob.
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM localhost/base:1\nRUN head -c 3000000 /dev/urandom > /big\n",
    )
    .unwrap();
    let build = || {
        let mut c = store(&root);
        c.args(["build", "-t", "full:1"]).arg(&ctx);
        c
    };
    // The base layer is unpacked before the filler goes in, so the space left is the step's.
    ok(store(&root)
        .args(["build", "-t", "warm:1"])
        .arg(&ctx)
        .env("LADE_LOG", "error"));
    ok(store(&root).args(["rmi", "warm:1"]));
    let rc = run(store(&root).args(["prune"]));
    assert!(rc.status.success());
    fs.fill_leaving(4 << 20);
    fails_full(&mut build(), &root);
    assert!(
        !names(&root).contains("localhost/full"),
        "no tag after a failed build"
    );
    assert_no_partial_blob(&root);
    assert_fsck_clean(&root);

    fs.free_space();
    ok(&mut build());
    assert_fsck_clean(&root);
    let cfg = ok(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:localhost/full:1", root.display())));
    let cfg: Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
}
