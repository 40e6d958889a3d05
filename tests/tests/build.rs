//! `lade build` as a whole: reproducible digests with SOURCE_DATE_EPOCH, the stage graph (--target skips what
//! it does not need, independent stages both run), the image format, the commit-time flags, and the ways a
//! build reports itself (-q, --iidfile, --format json).

use lade_tests::oci::busybox_image;
use lade_tests::{fails, lade, ok, require_peers};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Store {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
}

/// A fresh store holding `localhost/base:1` (busybox), and a context dir with `containerfile`.
fn store(containerfile: &str) -> Store {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("base");
    busybox_image(&layout, "1");
    store_from(tmp, &layout, containerfile)
}

/// As [`store`], with the base from `layout:1` (so several stores can share the very same base image).
fn store_from(tmp: tempfile::TempDir, layout: &Path, containerfile: &str) -> Store {
    let root = tmp.path().join("store");
    ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg("lade:localhost/base:1"));
    let dir = tmp.path().join("ctx");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Containerfile"), containerfile).unwrap();
    fs::write(dir.join("file.txt"), "content\n").unwrap();
    Store {
        _tmp: tmp,
        root,
        dir,
    }
}

impl Store {
    fn lade(&self) -> Command {
        let mut c = lade();
        c.arg("--root").arg(&self.root);
        c
    }

    /// The manifest (`--raw`) or config (`--config`) of a stored image, as skopeo reads it from a `dir:` copy
    /// lade exports (skopeo's `oci:` reader only sees OCI-typed manifests; a Docker-format image is not one).
    fn skopeo(&self, name: &str, what: &str) -> Value {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("img");
        ok(self
            .lade()
            .args(["push", name])
            .arg(format!("dir:{}", dir.display())));
        let out =
            ok(Command::new("skopeo").args(["inspect", what, &format!("dir:{}", dir.display())]));
        serde_json::from_str(&out).unwrap()
    }
}

const REPRO: &str = "\
FROM localhost/base:1
COPY file.txt /etc/file.txt
RUN echo made > /made && mkdir -p /var/cache/x && touch /var/cache/x/file
LABEL stage=one
";

#[test]
fn same_source_date_epoch_gives_the_same_digests_in_two_stores() {
    require_peers!("skopeo");
    if !lade_tests::need_root("same_source_date_epoch_gives_the_same_digests_in_two_stores") {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let layout = base.path().join("base");
    busybox_image(&layout, "1");
    let a = store_from(tempfile::tempdir().unwrap(), &layout, REPRO);
    let b = store_from(tempfile::tempdir().unwrap(), &layout, REPRO);
    let build = |s: &Store| {
        ok(s.lade()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "-q", "-t", "repro:1"])
            .arg(&s.dir))
        .trim()
        .to_string()
    };
    let (ia, ib) = (build(&a), build(&b));
    assert_eq!(ia, ib, "the image IDs differ");
    let (ma, mb) = (
        a.skopeo("localhost/repro:1", "--raw"),
        b.skopeo("localhost/repro:1", "--raw"),
    );
    assert_eq!(ma, mb, "the manifests differ");
    let cfg = a.skopeo("localhost/repro:1", "--config");
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
    // A different epoch changes the digests (the times really are in the image).
    let c = store_from(tempfile::tempdir().unwrap(), &layout, REPRO);
    let ic = ok(c
        .lade()
        .env("SOURCE_DATE_EPOCH", "1700000001")
        .args(["build", "-q", "-t", "repro:1"])
        .arg(&c.dir));
    assert_ne!(ic.trim(), ia);
}

#[test]
fn target_skips_unneeded_stages_and_independent_stages_both_run() {
    require_peers!("skopeo", "umoci");
    if !lade_tests::need_root("target_skips_unneeded_stages_and_independent_stages_both_run") {
        return;
    }
    let s = store(
        "FROM localhost/base:1 AS broken\nRUN exit 7\n\
         FROM 127.0.0.1:9/nowhere/base:1 AS offline\nRUN true\n\
         FROM localhost/base:1 AS left\nRUN echo left > /left\n\
         FROM localhost/base:1 AS right\nRUN echo right > /right\n\
         FROM localhost/base:1 AS final\nCOPY --from=left /left /l\nCOPY --from=right /right /r\n",
    );
    // The broken stage is not needed by `final`, so it never runs, and the base of `offline` (a registry
    // that does not exist) is never even looked up.
    ok(s.lade()
        .args(["build", "-t", "two:1", "--target", "final"])
        .arg(&s.dir));
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("oci");
    ok(s.lade()
        .args(["push", "two:1"])
        .arg(format!("oci:{}:x", layout.display())));
    let bundle = out.path().join("b");
    ok(Command::new("umoci")
        .args(["raw", "unpack", "--rootless", "--image"])
        .arg(format!("{}:x", layout.display()))
        .arg(&bundle));
    assert_eq!(fs::read_to_string(bundle.join("l")).unwrap(), "left\n");
    assert_eq!(fs::read_to_string(bundle.join("r")).unwrap(), "right\n");
    // Targeting the broken stage fails with its exit code and its Containerfile line.
    let err = fails(
        s.lade()
            .args(["build", "-t", "bad:1", "--target", "broken"])
            .arg(&s.dir),
        1,
    );
    assert!(err.contains("Containerfile:2"), "{err}");
    assert!(err.contains("exit code 7"), "{err}");
    assert!(
        !ok(s.lade().args(["images"])).contains("bad"),
        "a failed build must not tag anything"
    );
    let err = fails(
        s.lade()
            .args(["build", "-t", "bad:1", "--target", "offline"])
            .arg(&s.dir),
        1,
    );
    assert!(err.contains("127.0.0.1:9/nowhere/base:1"), "{err}");
}

#[test]
fn commit_flags_and_docker_format() {
    require_peers!("skopeo");
    if !lade_tests::need_root("commit_flags_and_docker_format") {
        return;
    }
    let s = store("FROM localhost/base:1\nENV KEEP=1 DROP=1\nRUN true\n");
    let iid = s.dir.join("iid");
    let quiet = ok(s
        .lade()
        .args([
            "build",
            "-q",
            "--format",
            "docker",
            "--label",
            "team=core",
            "--env",
            "ADDED=yes",
            "--unsetenv",
            "DROP",
            "--iidfile",
        ])
        .arg(&iid)
        .args(["-t", "flags:1", "-t", "flags:2"])
        .arg(&s.dir));
    let id = fs::read_to_string(&iid).unwrap();
    assert_eq!(
        format!("sha256:{}", quiet.trim()),
        id,
        "-q prints the ID --iidfile holds"
    );
    let m = s.skopeo("localhost/flags:2", "--raw");
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(m["config"]["digest"], id);
    for l in m["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }
    let cfg = s.skopeo("localhost/flags:1", "--config");
    let env: Vec<&str> = cfg["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"KEEP=1") && env.contains(&"ADDED=yes"),
        "{env:?}"
    );
    assert!(!env.iter().any(|e| e.starts_with("DROP=")), "{env:?}");
    assert_eq!(cfg["config"]["Labels"]["team"], "core");
    // History: one entry per instruction, RUN with a layer, ENV without.
    let hist = cfg["history"].as_array().unwrap();
    let last: Vec<&Value> = hist.iter().rev().take(2).collect();
    assert_eq!(last[0]["created_by"], "/bin/sh -c true");
    assert!(last[0].get("empty_layer").is_none());
    assert_eq!(last[1]["empty_layer"], true);
}

#[test]
fn json_progress_events_and_zstd_layers() {
    require_peers!("skopeo");
    if !lade_tests::need_root("json_progress_events_and_zstd_layers") {
        return;
    }
    let s = store("FROM localhost/base:1\nRUN echo one > /one\nENV X=1\n");
    let run = |extra: &[&str]| -> Vec<Value> {
        let out = ok(s
            .lade()
            .args([
                "build",
                "--format",
                "json",
                "--compression-format",
                "zstd",
                "-t",
                "j:1",
            ])
            .args(extra)
            .arg(&s.dir));
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    };
    let first = run(&[]);
    let kinds: Vec<&str> = first.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec![
            "step-started",
            "cache-miss",
            "step-finished",
            "step-started",
            "step-finished",
            "image"
        ],
        "{first:?}"
    );
    assert!(first[2]["seconds"].as_f64().unwrap() >= 0.0);
    let second = run(&[]);
    assert!(
        second.iter().any(|e| e["event"] == "step-cached"),
        "{second:?}"
    );
    let m = s.skopeo("localhost/j:1", "--raw");
    let top = m["layers"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        top["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // The blob really is zstd (magic 28 b5 2f fd), and its digest matches.
    let blob = s.root.join("blobs/sha256").join(
        top["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let bytes = fs::read(&blob).unwrap();
    assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    lade_tests::oci::assert_blobs_valid(Path::new(&s.root));
}
