//! The binary's basic contract: usage errors exit 2, help and version work.

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

/// The README's main job on the example project: the frontend runs in its sandbox and the plan names both
/// stages and their dependency; with no executor in this version, the command then fails saying so.
#[test]
fn build_example_runs_the_frontend_and_stops_after_the_plan() {
    let example = workspace().join("examples/hello");
    let out = run(lade()
        .arg("build")
        .arg("-t")
        .arg("hello:test")
        .arg(&example));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("stage 0 (build): from image localhost/lade-example/debian-gcc:bookworm"),
        "{stdout}"
    );
    assert!(stdout.contains("needs [0]"), "{stdout}");
    assert!(
        stdout.contains("ENTRYPOINT exec [\"/usr/local/bin/hello\"]"),
        "{stdout}"
    );
    assert!(
        stderr.contains("build executor is not part of this version"),
        "{stderr}"
    );
}
