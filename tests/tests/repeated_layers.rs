//! A layer that appears twice below a RUN step (overlayfs refuses the same lower dir twice): two steps that
//! change nothing give two identical empty layers, and a base image's manifest may list one layer twice
//! (schema 1 conversions). Each case is built by buildah (`buildah bud --isolation chroot`) and by lade, in
//! overlay mode, in copy mode (`LADE_NO_OVERLAY=1`) and under runc (`--isolation oci`), and the two root filesystems (unpacked by umoci)
//! must be equal. The RUN steps list what they see, so lade's merged view of the repeated layers is
//! compared too, not only umoci's application of them.

use lade_tests::tree::{diff_trees, scan};
use lade_tests::{lade, need_root, oci, ok, peer, run, target_dir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// mtime of the hand-made layers' entries (2000-01-01): old, so the comparer checks both tools keep it.
const LAYER_MTIME: u64 = 946_684_800;

/// Mountpoints buildah 1.28 leaves in an image whose base has none (lade removes those it made): empty,
/// and not what this file tests.
const BUILDAH_MOUNTPOINTS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/etc",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
];

/// A work dir with one buildah storage and one lade store per rootfs mode or isolation: under target/ (kept for
/// inspection until the test runs again), as buildah names an `oci:` image after its path, which must be
/// lower case.
struct Work {
    dir: PathBuf,
}

impl Work {
    fn new(test: &str) -> Work {
        let dir = target_dir().join("repeated-layers").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Work { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    fn buildah(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.path("buildah-root"))
            .arg("--runroot")
            .arg(self.path("buildah-run"))
            .args(["--storage-driver", "vfs"]);
        c
    }

    fn lade(&self, mode: &str) -> Command {
        let mut c = lade();
        c.arg("--root").arg(self.path(&format!("lade-{mode}")));
        if mode == "copy" {
            c.env("LADE_NO_OVERLAY", "1");
        }
        c
    }

    /// Build `containerfile` (with `--build-arg BASE=base`) by buildah and by lade in both rootfs modes and
    /// under runc,
    /// and require each lade tree to equal buildah's (their rootfs dirs are `<case>-<tool>-rootfs`).
    fn compare(&self, case: &str, containerfile: &str, base: &str, ctx_files: impl Fn(&Path)) {
        let ctx = self.path(&format!("{case}-ctx"));
        std::fs::create_dir_all(&ctx).unwrap();
        ctx_files(&ctx);
        std::fs::write(ctx.join("Containerfile"), containerfile).unwrap();
        let tag = format!("localhost/{case}:1");
        let build = |mut c: Command, extra: &[&str]| {
            let out = run(c
                .args(extra)
                .args(["-t", &tag, "--build-arg", &format!("BASE={base}"), "-f"])
                .arg(ctx.join("Containerfile"))
                .arg(&ctx));
            assert!(
                out.status.success(),
                "{case}: {c:?} failed\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        build(
            self.buildah(),
            &["bud", "--isolation", "chroot", "--layers=false"],
        );
        let theirs = scan(&self.export(self.buildah(), &tag, &format!("{case}-buildah")));
        for (mode, args) in [
            ("overlay", &["build"][..]),
            ("copy", &["build"]),
            ("runc", &["build", "--isolation", "oci"]),
        ] {
            build(self.lade(mode), args);
            let out = self.export(self.lade(mode), &tag, &format!("{case}-lade-{mode}"));
            let diffs: Vec<String> = diff_trees(&theirs, &scan(&out))
                .into_iter()
                .map(|d| d.text)
                .filter(|t| {
                    !BUILDAH_MOUNTPOINTS
                        .iter()
                        .any(|m| t.starts_with(&format!("{m}: only in buildah's image")))
                })
                .collect();
            assert!(
                diffs.is_empty(),
                "{case}: lade ({mode} rootfs) and buildah built different trees:\n{}",
                diffs.join("\n")
            );
        }
    }

    /// Push `tag` with `tool` to an OCI layout and unpack it with umoci; returns the rootfs.
    fn export(&self, mut tool: Command, tag: &str, name: &str) -> PathBuf {
        let layout = self.path(&format!("{name}-oci"));
        ok(tool
            .arg("push")
            .arg(tag)
            .arg(format!("oci:{}:img", layout.display())));
        let rootfs = self.path(&format!("{name}-rootfs"));
        ok(Command::new("umoci")
            .args(["raw", "unpack", "--image"])
            .arg(format!("{}:img", layout.display()))
            .arg(&rootfs));
        rootfs
    }
}

fn ready(test: &str) -> bool {
    need_root(test)
        && ["buildah", "umoci", "sha256sum"]
            .iter()
            .all(|p| peer(p).is_some())
}

/// FROM scratch, COPY a busybox /bin, then three RUN steps that change nothing: their layers are the same
/// empty layer, so the third step runs over it twice.
#[test]
fn steps_that_change_nothing_stack_the_same_layer() {
    if !ready("steps_that_change_nothing_stack_the_same_layer") {
        return;
    }
    let busybox = oci::busybox_static().expect("busybox-static is installed (scripts/setup.sh)");
    let w = Work::new("three-runs");
    let file = "FROM scratch\nCOPY bin /bin\nRUN echo 1\nRUN echo 2\nRUN echo 3\nRUN ls -l /bin > /listing\n";
    w.compare("three-runs", file, "scratch", |ctx| {
        std::fs::create_dir_all(ctx.join("bin")).unwrap();
        std::fs::copy(&busybox, ctx.join("bin/busybox")).unwrap();
        for applet in ["sh", "echo", "ls"] {
            std::os::unix::fs::symlink("busybox", ctx.join("bin").join(applet)).unwrap();
        }
        // `ls -l` prints these times, and the tools store them differently (buildah rounds to the nearest
        // second, lade keeps the nanoseconds as BuildKit does): whole seconds make the listings comparable.
        for name in ["busybox", "sh", "echo", "ls"] {
            let t = rustix::fs::Timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 0,
            };
            let times = rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                ctx.join("bin").join(name),
                &times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
    });
    // The case really is the one of the issue: lade's image lists one layer several times.
    let digests = layer_digests(&w.path("three-runs-lade-overlay-oci"), "img");
    let mut distinct = digests.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() < digests.len(),
        "lade's image should repeat its empty layer: {digests:?}"
    );
}

/// A base whose manifest lists one layer twice (busybox, A, A).
#[test]
fn a_base_listing_one_layer_twice() {
    if !ready("a_base_listing_one_layer_twice") {
        return;
    }
    let w = Work::new("one-twice");
    let layout = w.path("base");
    base_with_layers(&layout, &[0, 1, 1], &w);
    let file = "ARG BASE\nFROM $BASE\n\
                RUN find /a /keep /shared | sort > /listing && cat /a/file /shared/f >> /listing\n";
    let base = format!("oci:{}:1", layout.display());
    w.compare("one-twice", file, &base, |_| {});
}

/// A base of busybox, A, B, A where B deletes (whiteouts) and opaque-replaces things of A and of busybox:
/// A on top brings its files back, what B added stays, what B deleted or hid of busybox stays so. A RUN
/// --mount of a stage on that base sees the same tree.
#[test]
fn a_base_with_a_layer_again_above_its_whiteouts() {
    if !ready("a_base_with_a_layer_again_above_its_whiteouts") {
        return;
    }
    let w = Work::new("aba");
    let layout = w.path("base");
    base_with_layers(&layout, &[0, 1, 2, 1], &w);
    let file = "ARG BASE\nFROM $BASE AS again\n\
                FROM $BASE\n\
                RUN find /a /b /keep /shared /etc /home | sort > /listing && cat /a/file /a/dir/x /a/dir/y /shared/f >> /listing\n\
                RUN --mount=type=bind,from=again,target=/m find /m/a /m/b /m/keep /m/shared /m/etc /m/home | sort > /mounted\n";
    let base = format!("oci:{}:1", layout.display());
    w.compare("aba", file, &base, |_| {});
    // The oracle's tree is the one applying the layers in order gives (not A, B; not B's deletions undone).
    let root = w.path("aba-buildah-rootfs");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    assert_eq!(read("a/file").as_deref(), Some("A file\n"));
    assert_eq!(read("a/dir/x").as_deref(), Some("x from A\n"));
    assert_eq!(read("a/dir/y").as_deref(), Some("y from B\n"));
    assert_eq!(read("shared/f").as_deref(), Some("from A\n"));
    assert_eq!(read("b/new").as_deref(), Some("B\n"));
    assert_eq!(read("keep").as_deref(), Some("keep\n"));
    assert!(read("etc/group").is_none(), "B's whiteout of /etc/group");
    assert_eq!(read("a/dir/old").as_deref(), Some("old from A\n"));
    assert_eq!(read("home/b-only").as_deref(), Some("B\n"));
    assert!(
        !root.join("home/app").exists(),
        "B's opaque /home hides busybox's /home/app"
    );
}

/// The hand-made layers: 1 = A, 2 = B (B deletes and opaque-replaces what A and busybox have).
fn layer_tar(which: usize) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: Option<&[u8]>| {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(LAYER_MTIME);
        h.set_uid(0);
        h.set_gid(0);
        match data {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
            }
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
            }
        }
        h.set_cksum();
        t.append_data(&mut h, path, data.unwrap_or_default())
            .unwrap();
    };
    if which == 1 {
        add("a", None);
        add("a/file", Some(b"A file\n"));
        add("a/dir", None);
        add("a/dir/x", Some(b"x from A\n"));
        add("a/dir/old", Some(b"old from A\n"));
        add("keep", Some(b"keep\n"));
        add("shared", None);
        add("shared/f", Some(b"from A\n"));
    } else {
        add("a", None);
        add("a/.wh.file", Some(b""));
        add("a/dir", None);
        add("a/dir/.wh..wh..opq", Some(b""));
        add("a/dir/y", Some(b"y from B\n"));
        add(".wh.keep", Some(b""));
        add("shared", None);
        add("shared/f", Some(b"from B\n"));
        add("b", None);
        add("b/new", Some(b"B\n"));
        add("etc", None);
        add("etc/.wh.group", Some(b""));
        add("home", None);
        add("home/.wh..wh..opq", Some(b""));
        add("home/b-only", Some(b"B\n"));
    }
    t.into_inner().unwrap()
}

/// Make `layout:1`: layers busybox (0), A (1) and B (2) added with umoci, then the manifest rewritten by
/// hand to list them as `order` (indices into those three), the config's diff_ids and history to match.
fn base_with_layers(layout: &Path, order: &[usize], w: &Work) {
    oci::busybox_image(layout, "1");
    let image = format!("{}:1", layout.display());
    for which in [1, 2] {
        let tar = w.path(&format!("layer-{which}.tar"));
        std::fs::write(&tar, layer_tar(which)).unwrap();
        ok(Command::new("umoci")
            .args(["raw", "add-layer", "--image", &image])
            .arg(&tar));
    }
    let manifest_digest = oci::oci_digest(layout, "1").unwrap();
    let mut manifest = read_json(layout, &manifest_digest);
    let mut config = read_json(layout, manifest["config"]["digest"].as_str().unwrap());
    let layers = manifest["layers"].as_array().unwrap().clone();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap().clone();
    let history: Vec<Value> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] != Value::Bool(true))
        .cloned()
        .collect();
    assert_eq!((layers.len(), diff_ids.len(), history.len()), (3, 3, 3));
    manifest["layers"] = order.iter().map(|&i| layers[i].clone()).collect();
    config["rootfs"]["diff_ids"] = order.iter().map(|&i| diff_ids[i].clone()).collect();
    config["history"] = order.iter().map(|&i| history[i].clone()).collect();
    let (config_digest, config_size) = write_blob(layout, &config);
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_size.into();
    let (digest, size) = write_blob(layout, &manifest);
    let mut index =
        serde_json::from_slice::<Value>(&std::fs::read(layout.join("index.json")).unwrap())
            .unwrap();
    for m in index["manifests"].as_array_mut().unwrap() {
        if m["digest"] == Value::String(manifest_digest.clone()) {
            m["digest"] = digest.clone().into();
            m["size"] = size.into();
        }
    }
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let listed = layer_digests(layout, "1");
    assert_eq!(listed.len(), order.len());
    assert_eq!(listed[order.len() - 1], listed[1], "{listed:?}");
}

fn read_json(layout: &Path, digest: &str) -> Value {
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Write `v` as a blob (hashed by sha256sum); returns its digest and size.
fn write_blob(layout: &Path, v: &Value) -> (String, u64) {
    let bytes = serde_json::to_vec(v).unwrap();
    let tmp = layout.join("blob.tmp");
    std::fs::write(&tmp, &bytes).unwrap();
    let sum = ok(Command::new("sha256sum").arg(&tmp));
    let hex = sum.split_whitespace().next().unwrap().to_string();
    std::fs::rename(&tmp, layout.join("blobs/sha256").join(&hex)).unwrap();
    (format!("sha256:{hex}"), bytes.len() as u64)
}

/// The layer digests of `layout:tag`'s manifest, in order.
fn layer_digests(layout: &Path, tag: &str) -> Vec<String> {
    let m = read_json(layout, &oci::oci_digest(layout, tag).unwrap());
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}
