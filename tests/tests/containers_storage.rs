//! `containers-storage:`: podman's own store, written and read by lade in place. Each test uses a store of
//! its own (`podman --root R --runroot RR --storage-driver overlay`, `containers-storage:[overlay@R+RR]NAME`
//! for lade). podman here cannot raise rlimits in its containers, so `podman run` gets a containers.conf
//! with `default_ulimits = []` (CONTAINERS_CONF).

use lade_tests::oci::{busybox_image, umoci_add_layer};
use lade_tests::{lade, need_root, ok, require_peers, run};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Podman {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    runroot: PathBuf,
    conf: PathBuf,
    lade_root: PathBuf,
    dir: PathBuf,
}

impl Podman {
    fn new() -> Podman {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
        Podman {
            root: dir.join("root"),
            runroot: dir.join("run"),
            conf,
            lade_root: dir.join("lade"),
            dir,
            _tmp: tmp,
        }
    }
    fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "overlay"]);
        c
    }
    fn lade(&self) -> Command {
        let mut c = lade();
        c.arg("--root").arg(&self.lade_root);
        c
    }
    /// `containers-storage:[overlay@ROOT+RUNROOT]name`.
    fn cs(&self, name: &str) -> String {
        format!(
            "containers-storage:[overlay@{}+{}]{name}",
            self.root.display(),
            self.runroot.display()
        )
    }
    /// podman reads every image it lists: inspect, and `podman save`, which rebuilds each layer's tar from
    /// its tar-split and checks it against the recorded digest. (This podman has no `system check`.)
    fn check_every_image(&self) {
        let ids = ok(self.podman().args(["images", "-q", "--no-trunc"]));
        assert!(!ids.trim().is_empty(), "podman lists no image");
        for id in ids.lines() {
            ok(self.podman().args(["image", "inspect", id]));
            let out = self.dir.join("save.tar");
            let _ = std::fs::remove_file(&out);
            ok(self
                .podman()
                .args(["save", "--format", "oci-archive", "-o"])
                .arg(&out)
                .arg(id));
        }
    }
}

/// A two-layer busybox image in `layout:1` whose Cmd prints `message`.
fn app_image(layout: &Path, message: &str) {
    busybox_image(layout, "1");
    let img = format!("{}:1", layout.display());
    umoci_add_layer(
        &img,
        &[("msg/hello.txt", format!("{message}\n").as_bytes())],
    );
    ok(Command::new("umoci").args([
        "config",
        "--image",
        &img,
        "--config.cmd",
        "/bin/cat",
        "--config.cmd",
        "/msg/hello.txt",
    ]));
}

#[test]
fn pushed_image_runs_in_podman_and_survives_podman_reads() {
    require_peers!("podman", "umoci", "skopeo");
    if !need_root("podman run with an overlay store") {
        return;
    }
    let p = Podman::new();
    let layout = p.dir.join("layout");
    app_image(&layout, "hello from lade");
    ok(p.lade()
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg("lade:localhost/app:1"));
    ok(p.lade()
        .args(["push", "-q", "localhost/app:1"])
        .arg(p.cs("localhost/app:1")));
    let images = ok(p
        .podman()
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(images.contains("localhost/app:1"), "{images}");
    let out = ok(p
        .podman()
        .args(["run", "--rm", "--network", "none", "localhost/app:1"]));
    assert_eq!(out.trim(), "hello from lade");
    // skopeo reads the layers back from podman's store, digests checked against the manifest lade wrote.
    let back = p.dir.join("back");
    ok(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(p.cs("localhost/app:1"))
        .arg(format!("oci:{}:x", back.display())));
    p.check_every_image();
    // A second push of the same image reuses its layers and moves nothing.
    ok(p.lade()
        .args(["push", "-q", "localhost/app:1"])
        .arg(p.cs("localhost/app:2")));
    let layers: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.root.join("overlay-layers/layers.json")).unwrap())
            .unwrap();
    assert_eq!(layers.as_array().unwrap().len(), 2, "{layers}");
    let names = ok(p
        .podman()
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(
        names.contains("localhost/app:2") && names.contains("localhost/app:1"),
        "{names}"
    );
}

#[test]
fn podman_loaded_image_is_read_and_copied_by_lade() {
    require_peers!("podman", "umoci", "skopeo");
    if !need_root("podman with an overlay store") {
        return;
    }
    let p = Podman::new();
    let layout = p.dir.join("layout");
    app_image(&layout, "loaded by podman");
    let archive = p.dir.join("a.tar");
    ok(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("oci-archive:{}", archive.display())));
    ok(p.podman().arg("load").arg("-i").arg(&archive));
    let id = ok(p.podman().args(["images", "-q", "--no-trunc"]));
    let id = id.trim().trim_start_matches("sha256:").to_string();
    ok(p.podman().args(["tag", &id, "localhost/loaded:1"]));
    let v: serde_json::Value = serde_json::from_str(&ok(p
        .lade()
        .args(["inspect"])
        .arg(p.cs("localhost/loaded:1"))))
    .unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{v}");
    let cfg: serde_json::Value = serde_json::from_str(&ok(p
        .lade()
        .args(["inspect", "--config"])
        .arg(p.cs(&id[..12]))))
    .unwrap();
    assert_eq!(cfg["config"]["Cmd"][1], "/msg/hello.txt", "{cfg}");
    // Copied out to an OCI layout, unpacked by umoci: the files podman stored.
    let out = p.dir.join("out");
    ok(p.lade()
        .args(["copy", "-q"])
        .arg(p.cs("localhost/loaded:1"))
        .arg(format!("oci:{}:x", out.display())));
    let bundle = p.dir.join("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:x", out.display()))
        .arg(&bundle));
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/msg/hello.txt")).unwrap(),
        "loaded by podman\n"
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    p.check_every_image();
}

#[test]
fn lade_and_podman_write_the_store_at_once() {
    require_peers!("podman", "umoci", "skopeo");
    if !need_root("podman with an overlay store") {
        return;
    }
    let p = Podman::new();
    let mut archives = vec![];
    for i in 0..3 {
        let layout = p.dir.join(format!("l{i}"));
        app_image(&layout, &format!("image {i}"));
        ok(p.lade()
            .args(["copy", "-q"])
            .arg(format!("oci:{}:1", layout.display()))
            .arg(format!("lade:localhost/lade{i}:1")));
        let a = p.dir.join(format!("p{i}.tar"));
        let other = p.dir.join(format!("o{i}"));
        app_image(&other, &format!("podman {i}"));
        ok(Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("oci:{}:1", other.display()))
            .arg(format!("oci-archive:{}:localhost/pod{i}:1", a.display())));
        archives.push(a);
    }
    let mut children = vec![];
    for (i, a) in archives.iter().enumerate() {
        children.push(
            p.podman()
                .arg("load")
                .arg("-i")
                .arg(a)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        children.push(
            p.lade()
                .args(["push", "-q", &format!("localhost/lade{i}:1")])
                .arg(p.cs(&format!("localhost/lade{i}:1")))
                .spawn()
                .unwrap(),
        );
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let names = ok(p
        .podman()
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    for i in 0..3 {
        assert!(names.contains(&format!("localhost/lade{i}:1")), "{names}");
        assert!(names.contains(&format!("localhost/pod{i}:1")), "{names}");
        let out = ok(p.podman().args([
            "run",
            "--rm",
            "--network",
            "none",
            &format!("localhost/lade{i}:1"),
        ]));
        assert_eq!(out.trim(), format!("image {i}"));
    }
    p.check_every_image();
}

#[test]
fn build_output_containers_storage_runs_in_podman() {
    require_peers!("podman", "umoci");
    if !need_root("podman run with an overlay store") {
        return;
    }
    let p = Podman::new();
    let layout = p.dir.join("base");
    busybox_image(&layout, "1");
    ok(p.lade()
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg("lade:localhost/base:1"));
    let ctx = p.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM localhost/base:1\nRUN echo built by lade > /built\nCMD [\"cat\", \"/built\"]\n",
    )
    .unwrap();
    let spec = format!(
        "type=containers-storage,name=[overlay@{}+{}]localhost/built:1",
        p.root.display(),
        p.runroot.display()
    );
    ok(p.lade()
        .args(["build", "-q", "-t", "built:1", "--output", &spec])
        .arg(&ctx));
    let out = ok(p
        .podman()
        .args(["run", "--rm", "--network", "none", "localhost/built:1"]));
    assert_eq!(out.trim(), "built by lade");
    p.check_every_image();
}

#[test]
fn other_drivers_and_lade_store_names_are_kept_apart() {
    let p = Podman::new();
    let out = run(p
        .lade()
        .args(["inspect"])
        .arg(format!("containers-storage:[vfs@{}]x", p.root.display())));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vfs") && err.contains("overlay"), "{err}");
    // `lade:` is lade's own store; containers-storage: is not an alias of it any more.
    let out = run(p.lade().args(["inspect"]).arg(format!(
        "containers-storage:[overlay@{}+{}]nothing:1",
        p.root.display(),
        p.runroot.display()
    )));
    assert!(!out.status.success());
}
