//! `lade version --format json` against the facts it reports (Cargo.toml, Cargo.lock, the plugin contract
//! folders in wit/, `uname -m`), and the exit codes README.md's table lists that are easy to trigger.

use lade_tests::{fails, lade, ok, workspace};
use serde_json::Value;
use std::process::Command;

/// The version of `package` in the workspace's Cargo.lock.
fn locked(package: &str) -> String {
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap();
    let entry = format!("name = \"{package}\"\nversion = \"");
    let at = lock
        .find(&entry)
        .unwrap_or_else(|| panic!("{package} is not in Cargo.lock"))
        + entry.len();
    lock[at..].split('"').next().unwrap().to_string()
}

#[test]
fn version_as_json_reports_what_the_binary_was_built_with() {
    let v: Value = serde_json::from_str(&ok(lade().args(["version", "--format", "json"]))).unwrap();
    assert_eq!(v["version"], locked("lade"), "{v}");
    assert_eq!(v["wasmtime"], locked("wasmtime"), "{v}");
    // Every contract folder in wit/ is one the binary runs.
    let mut wit: Vec<String> = std::fs::read_dir(workspace().join("wit"))
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix('v')
                .map(String::from)
        })
        .collect();
    wit.sort();
    let contracts: Vec<String> = serde_json::from_value(v["contracts"].clone()).unwrap();
    assert_eq!(contracts, wit, "{v}");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("docs/events.schema.json")).unwrap(),
    )
    .unwrap();
    let schema_version = &schema["oneOf"][0]["properties"]["version"]["const"];
    assert_eq!(&v["events_schema"], schema_version, "{v}");
    let machine = Command::new("uname").arg("-m").output().unwrap();
    let arch = match String::from_utf8_lossy(&machine.stdout).trim() {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("add {other} to this test"),
    };
    assert_eq!(v["platform"], format!("linux/{arch}"), "{v}");
    assert!(v["commit"].is_null() || v["commit"].is_string(), "{v}");
}

#[test]
fn exit_codes_are_the_documented_ones() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    for row in ["| 0 | success |", "| 1 | any error", "| 2 | bad usage"] {
        assert!(
            readme.contains(row),
            "README.md's exit code table lacks {row:?}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    ok(lade().args(["version"]));
    // 2: clap's usage errors, a bad --progress value among them.
    fails(lade().arg("no-such-command"), 2);
    fails(lade().args(["images", "--no-such-flag"]), 2);
    let err = fails(
        lade().args(["copy", "--progress=fancy", "oci:a", "oci:b"]),
        2,
    );
    assert!(err.contains("auto") && err.contains("json"), "{err}");
    // 1: an error, and `manifest exists` on a missing list.
    let err = fails(
        lade()
            .arg("--root")
            .arg(&root)
            .args(["rmi", "no-such:image"]),
        1,
    );
    assert!(err.starts_with("error: "), "{err}");
    fails(
        lade()
            .arg("--root")
            .arg(&root)
            .args(["manifest", "exists", "no-such:list"]),
        1,
    );
}

/// A reader of stdout that went away (`lade plugin list | head -1`) ends lade as it ends podman and coreutils:
/// killed by SIGPIPE, with nothing on stderr; a full disk behind `>` is an error, exit 1. Both used to panic.
#[test]
fn a_closed_or_full_stdout_ends_lade_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["version"][..], &["version", "--format", "json"][..]] {
        // A pipe whose reading end is closed before lade starts: its first write fails, whatever the timing.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = lade()
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(13),
            "lade {args:?} into a closed pipe: {:?}, stderr {err}",
            out.status
        );
        assert!(
            err.is_empty(),
            "lade {args:?} into a closed pipe said {err}"
        );
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = lade()
        .arg("version")
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{:?}: {err}", out.status);
    assert!(
        err.starts_with("error: writing to standard output:") && !err.contains("panicked"),
        "{err}"
    );
}
