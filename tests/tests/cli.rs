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
