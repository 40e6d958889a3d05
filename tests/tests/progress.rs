//! `--progress`: the NDJSON events of build, pull, push and copy validate against docs/events.schema.json
//! (python jsonschema), a terminal (under `script`) gets progress drawn in place, and output that is not a
//! terminal stays line by line.

use lade_tests::oci::{noise, umoci_image};
use lade_tests::{Registry, lade, ok, peer, require_peers, run, workspace};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where scripts/setup.sh puts jsonschema (the SBOM tools' venv).
const VENV_PYTHON: &str = "/usr/local/lib/lade-test/spdx-tools/bin/python3";

fn python() -> Option<PathBuf> {
    let venv = PathBuf::from(VENV_PYTHON);
    if venv.exists() {
        return Some(venv);
    }
    peer("python3")
}

/// Parse NDJSON `stdout` and validate every line against the schema; return the events.
fn validated(stdout: &str, dir: &Path) -> Vec<Value> {
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert!(!events.is_empty(), "no events on stdout");
    let file = dir.join("events.ndjson");
    std::fs::write(&file, stdout).unwrap();
    let Some(python) = python() else {
        return events;
    };
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
v = cls(schema)
bad = 0
for n, line in enumerate(open(sys.argv[2])):
    for e in v.iter_errors(json.loads(line)):
        print(n + 1, line.strip(), e.message[:300]); bad += 1
sys.exit(1 if bad else 0)
"#;
    ok(Command::new(python)
        .args(["-c", script])
        .arg(workspace().join("docs/events.schema.json"))
        .arg(&file));
    events
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

/// A one-layer image of 400 KiB of noise in an umoci layout.
fn layout(dir: &Path) -> PathBuf {
    let l = dir.join("layout");
    let big = noise(7, 400 << 10);
    umoci_image(&l, "v1", &[("data.bin", &big)], None);
    l
}

fn layer_count(events: &[Value], how: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event"] == "blob-done" && e["how"] == how)
        .count()
}

#[test]
fn build_events_validate_and_the_old_format_json_still_works() {
    require_peers!("umoci");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY a.txt /a.txt\n",
    )
    .unwrap();
    let root = tmp.path().join("store");
    let build = |flag: &str| {
        let mut c = lade();
        c.arg("--root")
            .arg(&root)
            .args(["build", flag, "--timestamp=0", "-t", "ev:1"])
            .arg(&ctx);
        run(&mut c)
    };
    let out = build("--progress=json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = validated(&String::from_utf8(out.stdout).unwrap(), tmp.path());
    let k = kinds(&events);
    assert!(
        k.contains(&"step-started") && k.contains(&"step-finished"),
        "{k:?}"
    );
    assert_eq!(k.last(), Some(&"image"), "{k:?}");
    // The deprecated spelling: same events (the step now cached), and a note on stderr.
    let out = build("--format=json");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("deprecated") && err.contains("--progress=json"),
        "{err}"
    );
    let again = validated(&String::from_utf8(out.stdout).unwrap(), tmp.path());
    assert!(kinds(&again).contains(&"step-cached"), "{again:?}");
    assert_eq!(again.last().unwrap()["id"], events.last().unwrap()["id"]);
    // Events into a pipe whose reader is gone (`| head` after it exits): the build stops, killed by SIGPIPE
    // like any program whose reader left, and tags nothing.
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = lade()
        .arg("--root")
        .arg(&root)
        .args([
            "build",
            "--progress=json",
            "--timestamp=0",
            "-t",
            "ev:piped",
        ])
        .arg(&ctx)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(13),
        "a build into a closed pipe went on: {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let images = ok(lade().arg("--root").arg(&root).arg("images"));
    assert!(!images.contains("piped"), "{images}");
}

#[test]
fn copy_push_and_pull_events_validate_against_the_schema() {
    require_peers!("umoci", "skopeo", "docker-registry");
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let l = layout(tmp.path());
    let root = tmp.path().join("store");
    let remote = format!("docker://{}/ev/img:1", reg.addr);
    let lade_ = || {
        let mut c = lade();
        c.arg("--root").arg(&root);
        c
    };
    // copy: every blob copied (config and layer), the manifest written, then done.
    let out = ok(lade_()
        .args(["copy", "--progress=json", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", l.display()))
        .arg(&remote));
    let ev = validated(&out, tmp.path());
    assert_eq!(layer_count(&ev, "copied"), 2, "{ev:?}");
    let done = ev.last().unwrap();
    assert_eq!(done["event"], "done");
    let inspected = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &remote])
        .output()
        .unwrap();
    let m: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    let layer = &m["layers"][0];
    let started = ev
        .iter()
        .find(|e| e["event"] == "blob-started" && e["digest"] == layer["digest"])
        .expect("a blob-started event for the layer");
    assert_eq!(started["size"], layer["size"]);
    let written = ev
        .iter()
        .find(|e| e["event"] == "manifest-written")
        .unwrap();
    assert_eq!(written["digest"], done["digest"]);
    // pull: stdout holds only events (no image ID line).
    let out = ok(lade_()
        .args(["pull", "--progress=json", "--tls-verify=false"])
        .arg(&remote));
    let ev = validated(&out, tmp.path());
    assert_eq!(layer_count(&ev, "copied"), 2, "{ev:?}");
    assert_eq!(ev.last().unwrap()["event"], "done");
    // push to another repository of the same registry: the layer is mounted or copied, never lost.
    let other = format!("{}/ev/other:1", reg.addr);
    let out = ok(lade_()
        .args(["push", "--progress=json", "--tls-verify=false"])
        .arg(format!("{}/ev/img:1", reg.addr))
        .arg(&other));
    let ev = validated(&out, tmp.path());
    assert_eq!(
        layer_count(&ev, "copied") + layer_count(&ev, "mounted") + layer_count(&ev, "skipped"),
        2,
        "{ev:?}"
    );
    assert!(kinds(&ev).contains(&"manifest-written"));
    // A build from that image, pushed: its base pull and its push report blobs among the steps.
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    let base = format!("{}/ev/img:1", reg.addr);
    std::fs::write(
        ctx.join("Containerfile"),
        format!("FROM {base}\nCOPY a.txt /a.txt\n"),
    )
    .unwrap();
    let out = ok(lade()
        .arg("--root")
        .arg(tmp.path().join("build-store"))
        .args([
            "build",
            "--progress=json",
            "--tls-verify=false",
            "--push",
            "-t",
        ])
        .arg(format!("{}/ev/built:1", reg.addr))
        .arg(&ctx));
    let ev = validated(&out, tmp.path());
    let k = kinds(&ev);
    let first_step = k.iter().position(|k| *k == "step-started").unwrap();
    let image = k.iter().position(|k| *k == "image").unwrap();
    // The base was pulled again (--pull=always) before the step ran: its blobs are in the store already...
    assert!(k[..first_step].contains(&"blob-done"), "{k:?}");
    // ...and the push wrote the new layer and the manifest before the image event.
    assert!(k[..image].contains(&"manifest-written"), "{k:?}");
    assert!(layer_count(&ev, "copied") >= 1, "{k:?}");
}

#[test]
fn a_terminal_gets_progress_drawn_in_place_and_a_pipe_gets_lines() {
    require_peers!("umoci", "script");
    let tmp = tempfile::tempdir().unwrap();
    let l = layout(tmp.path());
    let lade_bin = lade_tests::lade_bin().display().to_string();
    let copy = |dest: &str, progress: &str| {
        format!(
            "{lade_bin} --root {} copy --progress={progress} oci:{}:v1 oci:{}:v1",
            tmp.path().join("store").display(),
            l.display(),
            tmp.path().join(dest).display()
        )
    };
    // Under `script` stderr is a terminal: auto draws bars, updated in place (ANSI line clears and
    // cursor movement; the pty turns every \n into \r\n, so a bare \r alone would prove nothing).
    let out = ok(lade().args(["--version"])); // the binary is built
    assert!(out.starts_with("lade"));
    let drawn = run(Command::new("script")
        .args(["-qfec", &copy("tty-out", "auto"), "/dev/null"])
        .env("TERM", "xterm")
        .env("LADE_CACHE_DIR", lade_tests::shared_cache_dir()));
    assert!(drawn.status.success(), "{drawn:?}");
    let text = String::from_utf8_lossy(&drawn.stdout);
    assert!(
        text.contains("\x1b[2K") || text.contains("\x1b[1A"),
        "no in-place drawing on a terminal:\n{text:?}"
    );
    assert!(text.contains("Copying blob"), "{text:?}");
    // The same copy with stderr a pipe: one line per event, no carriage return, no escape sequence.
    let mut c = lade();
    c.arg("--root").arg(tmp.path().join("store"));
    c.args(["copy", "--progress=auto"])
        .arg(format!("oci:{}:v1", l.display()))
        .arg(format!("oci:{}:v1", tmp.path().join("pipe-out").display()));
    let out = run(&mut c);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("Copying blob"))
            .count(),
        2,
        "{err}"
    );
}
