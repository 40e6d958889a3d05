//! `lade history` against `podman history` of the same image after `podman load`: created-by and sizes
//! agree row by row (JSON and the table's columns), in an isolated podman store.

use lade_tests::oci::{busybox_image, umoci_add_layer};
use lade_tests::{lade, need_root, ok, require_peers};
use std::process::Command;

#[test]
fn history_agrees_with_podman() {
    require_peers!("podman", "umoci", "skopeo");
    if !need_root("history_agrees_with_podman") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    busybox_image(&layout, "1");
    let img = format!("{}:1", layout.display());
    umoci_add_layer(&img, &[("data/a.bin", &lade_tests::oci::noise(7, 300_000))]);
    ok(Command::new("umoci").args([
        "config",
        "--image",
        &img,
        "--history.created_by",
        "/bin/sh -c #(nop) a very long created-by line that podman cuts at forty-five characters",
        "--history.comment",
        "a comment",
        "--config.cmd",
        "/bin/true",
    ]));
    let archive = tmp.path().join("a.tar");
    ok(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{img}"))
        .arg(format!(
            "oci-archive:{}:localhost/hist:1",
            archive.display()
        )));
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(tmp.path().join("root"))
            .arg("--runroot")
            .arg(tmp.path().join("run"))
            .args(["--storage-driver", "overlay"]);
        c
    };
    ok(podman().arg("load").arg("-i").arg(&archive));
    let lade_root = tmp.path().join("lade");
    ok(lade()
        .arg("--root")
        .arg(&lade_root)
        .args(["copy", "-q"])
        .arg(format!("oci:{img}"))
        .arg("lade:localhost/hist:1"));
    let lade_history = |args: &[&str]| {
        ok(lade()
            .arg("--root")
            .arg(&lade_root)
            .arg("history")
            .args(args)
            .arg("localhost/hist:1"))
    };
    let theirs: serde_json::Value = serde_json::from_str(&ok(podman().args([
        "history",
        "--format",
        "json",
        "localhost/hist:1",
    ])))
    .unwrap();
    let ours: serde_json::Value =
        serde_json::from_str(&lade_history(&["--format", "json"])).unwrap();
    let pick = |v: &serde_json::Value| -> Vec<(String, u64, String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["CreatedBy"].as_str().unwrap_or("").to_string(),
                    r["size"].as_u64().unwrap(),
                    r["comment"].as_str().unwrap_or("").to_string(),
                    r["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(pick(&ours), pick(&theirs));
    assert!(pick(&ours).iter().any(|r| r.1 > 300_000), "{ours}");
    // The table's columns, as people read them: truncated created-by, sizes in podman's words.
    let cols = "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}";
    let theirs = ok(podman().args(["history", "--format", cols, "localhost/hist:1"]));
    assert_eq!(lade_history(&["--format", cols]), theirs);
    let theirs = ok(podman().args([
        "history",
        "--no-trunc",
        "--format",
        cols,
        "localhost/hist:1",
    ]));
    assert_eq!(lade_history(&["--no-trunc", "--format", cols]), theirs);
    // And through the transport: the image podman loaded, read from its store.
    let cs = format!(
        "containers-storage:[overlay@{}+{}]localhost/hist:1",
        tmp.path().join("root").display(),
        tmp.path().join("run").display()
    );
    let via_cs = ok(lade().arg("history").args(["--format", cols]).arg(&cs));
    let theirs = ok(podman().args(["history", "--format", cols, "localhost/hist:1"]));
    assert_eq!(via_cs, theirs);
}
