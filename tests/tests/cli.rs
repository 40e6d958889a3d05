//! The binary's basic contract: usage errors exit 2, help and version work; the README's example builds.

use lade_tests::*;

#[test]
fn version_and_help() {
    let v = ok(lade().arg("--version"));
    assert!(v.starts_with("lade "), "{v}");
    let h = ok(lade().arg("--help"));
    for cmd in ["build", "copy", "plugin", "inspect"] {
        assert!(h.contains(cmd), "help lacks {cmd}: {h}");
    }
}

#[test]
fn bad_usage_exits_2() {
    let err = fails(lade().arg("no-such-command"), 2);
    assert!(err.contains("no-such-command"), "{err}");
}

/// The README's main job on the example project, with its bases made here: a Debian rootfs with gcc from
/// mmdebstrap for the build stage, busybox for the final one. The program compiled in the first stage is in
/// the final image, executable, and runs.
#[test]
fn the_example_builds_and_its_program_runs() {
    require_peers!("mmdebstrap", "umoci");
    if !lade_tests::need_root_for(
        "the_example_builds_and_its_program_runs",
        "RUN steps, mmdebstrap",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let layout = tmp.path().join("bases");
    let rootfs = tmp.path().join("debian.tar");
    ok(std::process::Command::new("mmdebstrap")
        .args([
            "--quiet",
            "--variant=minbase",
            "--include=gcc,libc6-dev",
            "--format=tar",
            "bookworm",
        ])
        .arg(&rootfs));
    ok(std::process::Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    let gcc = format!("{}:gcc", layout.display());
    ok(std::process::Command::new("umoci").args(["new", "--image", &gcc]));
    ok(std::process::Command::new("umoci")
        .args(["raw", "add-layer", "--image", &gcc])
        .arg(&rootfs));
    ok(std::process::Command::new("umoci").args([
        "config",
        "--image",
        &gcc,
        "--os",
        "linux",
        "--architecture",
        "amd64",
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]));
    oci::busybox_image(&layout, "busybox");
    let store = |c: &mut std::process::Command| {
        c.arg("--root").arg(&root);
    };
    for (tag, name) in [
        ("gcc", "localhost/ex/gcc:1"),
        ("busybox", "localhost/ex/busybox:1"),
    ] {
        let mut c = lade();
        store(&mut c);
        ok(c.args(["copy", "-q"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("lade:{name}")));
    }
    let mut c = lade();
    store(&mut c);
    let out = ok(c
        .args([
            "build",
            "-q",
            "--build-arg",
            "BUILDER=localhost/ex/gcc:1",
            "--build-arg",
            "RUNTIME=localhost/ex/busybox:1",
            "-t",
            "hello:1",
        ])
        .arg(workspace().join("examples/hello")));
    assert_eq!(out.trim().len(), 64, "-q prints the image ID: {out}");
    let exported = tmp.path().join("out");
    let mut c = lade();
    store(&mut c);
    ok(c.args(["push", "hello:1"])
        .arg(format!("oci:{}:x", exported.display())));
    let bundle = tmp.path().join("bundle");
    ok(std::process::Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:x", exported.display()))
        .arg(&bundle));
    let hello = bundle.join("usr/local/bin/hello");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&hello).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(
        !bundle.join("src").exists(),
        "the build stage's files must not reach the final image"
    );
    // The binary is static, so the host can run it as it is.
    let ran = ok(&mut std::process::Command::new(&hello));
    assert_eq!(ran, "hello from lade on x86_64\n");
}
