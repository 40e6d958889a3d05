//! Multi-arch builds: one command builds linux/amd64 and linux/arm64 (RUN under QEMU), pushes one index that
//! skopeo reads per architecture; the same index can be assembled from per-platform builds with
//! `lade manifest`; and each runner path (binfmt handler, injected qemu, neither) behaves as documented.

use lade_tests::oci::{ARM64_BUSYBOX, busybox_image_for};
use lade_tests::{Registry, lade, ok, require_peers};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const CONTAINERFILE: &str = "\
FROM localhost/base:1
ARG TARGETARCH
RUN uname -m > /arch && echo \"$TARGETARCH\" > /targetarch
CMD [\"cat\", \"/arch\"]
";

fn need_root_and_arm64(test: &str) -> bool {
    if !lade_tests::need_root(test) {
        return false;
    }
    let arm = Path::new(ARM64_BUSYBOX).is_file();
    let qemu = lade_tests::which("qemu-aarch64-static").is_some();
    if arm && qemu {
        return true;
    }
    let why = format!(
        "{test}: needs {ARM64_BUSYBOX} and qemu-aarch64-static (scripts/setup.sh): arm64-busybox={arm} qemu={qemu}"
    );
    assert!(!lade_tests::peers_required(), "{why}");
    eprintln!("SKIPPED {why}");
    false
}

struct Setup {
    tmp: tempfile::TempDir,
    root: PathBuf,
    ctx: PathBuf,
}

/// A store holding `localhost/base:1`, an index over busybox images for amd64 and arm64, and a context.
fn setup(containerfile: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let layout = tmp.path().join("bases");
    busybox_image_for(&layout, "amd64", "amd64");
    busybox_image_for(&layout, "arm64", "arm64");
    let l = |c: &mut Command| {
        c.arg("--root").arg(&root);
    };
    let mut c = lade();
    l(&mut c);
    ok(c.args(["manifest", "create", "localhost/base:1"]));
    for arch in ["amd64", "arm64"] {
        let mut c = lade();
        l(&mut c);
        ok(c.args(["manifest", "add", "localhost/base:1"])
            .arg(format!("oci:{}:{arch}", layout.display())));
    }
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Containerfile"), containerfile).unwrap();
    Setup { tmp, root, ctx }
}

impl Setup {
    fn lade(&self) -> Command {
        let mut c = lade();
        c.arg("--root").arg(&self.root);
        c
    }

    /// A file of an image, pulled from the registry by skopeo for `arch` and unpacked by umoci.
    fn registry_file(&self, reference: &str, arch: &str, path: &str) -> String {
        let out = self
            .tmp
            .path()
            .join(format!("pull-{arch}-{}", rand_suffix()));
        ok(Command::new("skopeo").args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--override-arch",
            arch,
            &format!("docker://{reference}"),
            &format!("oci:{}:x", out.display()),
        ]));
        let bundle = out.with_extension("bundle");
        ok(Command::new("umoci")
            .args(["raw", "unpack", "--rootless", "--image"])
            .arg(format!("{}:x", out.display()))
            .arg(&bundle));
        fs::read_to_string(bundle.join(path.trim_start_matches('/'))).unwrap()
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn raw(reference: &str) -> Value {
    let out = ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    serde_json::from_str(&out).unwrap()
}

/// (os, architecture, variant, mediaType) of every entry, sorted.
fn platforms(index: &Value) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |p: &str| {
                m.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            (
                s("/platform/os"),
                s("/platform/architecture"),
                s("/platform/variant"),
                s("/mediaType"),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn two_platforms_in_one_command_make_one_index_with_the_right_images() {
    require_peers!("skopeo", "umoci", "docker-registry");
    if !need_root_and_arm64("two_platforms_in_one_command_make_one_index_with_the_right_images") {
        return;
    }
    let s = setup(CONTAINERFILE);
    let reg = Registry::start().unwrap();
    ok(s.lade()
        .args([
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "--manifest",
            "localhost/app:1",
        ])
        .arg(&s.ctx));
    let pushed = format!("{}/app:1", reg.addr);
    ok(s.lade().args([
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        "localhost/app:1",
        &format!("docker://{pushed}"),
    ]));
    let index = raw(&pushed);
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let archs: Vec<String> = platforms(&index).into_iter().map(|p| p.1).collect();
    assert_eq!(archs, vec!["amd64", "arm64"]);
    assert_eq!(s.registry_file(&pushed, "arm64", "/arch"), "aarch64\n");
    assert_eq!(s.registry_file(&pushed, "amd64", "/arch"), "x86_64\n");
    assert_eq!(s.registry_file(&pushed, "arm64", "/targetarch"), "arm64\n");
    assert_eq!(s.registry_file(&pushed, "amd64", "/targetarch"), "amd64\n");

    // The same index assembled from two separate builds, as two CI runners would.
    for arch in ["amd64", "arm64"] {
        ok(s.lade()
            .args(["build", "--platform", &format!("linux/{arch}"), "-t"])
            .arg(format!("localhost/app-{arch}:1"))
            .arg(&s.ctx));
    }
    ok(s.lade().args(["manifest", "create", "localhost/merged:1"]));
    for arch in ["amd64", "arm64"] {
        ok(s.lade().args([
            "manifest",
            "add",
            "localhost/merged:1",
            &format!("localhost/app-{arch}:1"),
        ]));
    }
    let merged = format!("{}/merged:1", reg.addr);
    ok(s.lade().args([
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        "localhost/merged:1",
        &format!("docker://{merged}"),
    ]));
    let m = raw(&merged);
    assert_eq!(m["mediaType"], index["mediaType"]);
    assert_eq!(
        platforms(&m),
        platforms(&index),
        "merged: {m}\none command: {index}"
    );
    assert_eq!(s.registry_file(&merged, "arm64", "/arch"), "aarch64\n");
}

#[test]
fn without_binfmt_handlers_qemu_is_injected_or_the_error_names_the_fix() {
    require_peers!("umoci");
    if !need_root_and_arm64("without_binfmt_handlers_qemu_is_injected_or_the_error_names_the_fix") {
        return;
    }
    // Only the step's own process is emulated when qemu is injected (no binfmt for its children), so the
    // command is exec form and uses shell builtins alone.
    let s = setup(
        "FROM localhost/base:1\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"read -r a < /proc/sys/kernel/osrelease; echo injected > /how\"]\n",
    );
    // Injection: no handler may be used, qemu-aarch64-static is on PATH.
    let qemu_dir = lade_tests::which("qemu-aarch64-static")
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let out = s
        .lade()
        .env("PATH", &qemu_dir)
        .args([
            "build",
            "--ignore-binfmt",
            "--platform",
            "linux/arm64",
            "-t",
            "localhost/inj:1",
        ])
        .arg(&s.ctx)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("linux/arm64: RUN steps run under")
            && stderr.contains("qemu-aarch64-static injected into the step"),
        "the build must say which runner it picked: {stderr}"
    );
    let layout = s.tmp.path().join("inj-out");
    ok(s.lade()
        .args(["push", "localhost/inj:1"])
        .arg(format!("oci:{}:x", layout.display())));
    let bundle = s.tmp.path().join("inj-bundle");
    ok(Command::new("umoci")
        .args(["raw", "unpack", "--rootless", "--image"])
        .arg(format!("{}:x", layout.display()))
        .arg(&bundle));
    assert_eq!(
        fs::read_to_string(bundle.join("how")).unwrap(),
        "injected\n"
    );
    assert!(
        !bundle.join(".lade-qemu-static").exists(),
        "the injected emulator must not be committed"
    );

    // Neither: no handler and no qemu on PATH → a clear error naming the platform and the fix.
    let empty = s.tmp.path().join("empty-path");
    fs::create_dir_all(&empty).unwrap();
    let err = lade_tests::fails(
        s.lade()
            .env("PATH", &empty)
            .args([
                "build",
                "--ignore-binfmt",
                "--platform",
                "linux/arm64",
                "--no-cache",
                "-t",
                "localhost/none:1",
            ])
            .arg(&s.ctx),
        1,
    );
    assert!(err.contains("linux/arm64"), "{err}");
    assert!(err.contains("qemu-user-static"), "{err}");
}

#[test]
fn info_reports_the_runner_for_each_platform() {
    let out = ok(lade().args(["info", "--format", "json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let runners = v["runners"].as_array().unwrap();
    let amd64 = runners
        .iter()
        .find(|r| r["platform"] == "linux/amd64")
        .unwrap();
    assert_eq!(amd64["runner"]["kind"], "native", "{v}");
    let arm = runners
        .iter()
        .find(|r| r["platform"] == "linux/arm64")
        .unwrap();
    if v["binfmt"]["enabled"] == true
        && v["binfmt"]["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "qemu-aarch64")
    {
        assert_eq!(arm["runner"]["kind"], "binfmt", "{v}");
    }
    // Ignoring handlers, with nothing on PATH: an error that names the fix.
    let empty = tempfile::tempdir().unwrap();
    let out =
        ok(lade()
            .env("PATH", empty.path())
            .args(["info", "--format", "json", "--ignore-binfmt"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let arm = v["runners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["platform"] == "linux/arm64")
        .unwrap();
    assert!(
        arm["error"].as_str().unwrap().contains("qemu-user-static"),
        "{v}"
    );
}

#[test]
fn pull_and_copy_choose_the_host_platform_unless_told_otherwise() {
    require_peers!("umoci", "skopeo");
    if !Path::new(ARM64_BUSYBOX).is_file() {
        assert!(
            !lade_tests::peers_required(),
            "{ARM64_BUSYBOX} is missing (scripts/setup.sh)"
        );
        eprintln!("SKIPPED: {ARM64_BUSYBOX} is missing");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let layout = tmp.path().join("bases");
    busybox_image_for(&layout, "amd64", "amd64");
    busybox_image_for(&layout, "arm64", "arm64");
    let l = || {
        let mut c = lade();
        c.arg("--root").arg(&root);
        c
    };
    ok(l().args(["manifest", "create", "localhost/multi:1"]));
    for arch in ["amd64", "arm64"] {
        ok(l()
            .args(["manifest", "add", "localhost/multi:1"])
            .arg(format!("oci:{}:{arch}", layout.display())));
    }
    let index = tmp.path().join("index");
    ok(l()
        .args(["manifest", "push", "--all", "localhost/multi:1"])
        .arg(format!("oci:{}:multi", index.display())));
    let arch_of = |dest: &Path| -> String {
        let out = ok(Command::new("skopeo").args([
            "inspect",
            "--config",
            &format!("oci:{}:x", dest.display()),
        ]));
        let v: Value = serde_json::from_str(&out).unwrap();
        v["architecture"].as_str().unwrap().to_string()
    };
    let src = format!("oci:{}:multi", index.display());
    for (flags, want) in [
        (vec![], "amd64"),
        (vec!["--arch", "arm64"], "arm64"),
        (vec!["--platform", "linux/arm64"], "arm64"),
        (vec!["--override-arch", "amd64"], "amd64"),
    ] {
        let dest = tmp.path().join(format!("out-{}", rand_suffix()));
        ok(lade()
            .args(["copy", "-q"])
            .args(&flags)
            .arg(&src)
            .arg(format!("oci:{}:x", dest.display())));
        assert_eq!(arch_of(&dest), want, "copy {flags:?}");
    }
}

#[test]
fn a_crash_under_emulation_says_so_and_suggests_a_native_builder() {
    if !need_root_and_arm64("a_crash_under_emulation_says_so_and_suggests_a_native_builder") {
        return;
    }
    let s = setup("FROM localhost/base:1\nRUN echo about to crash >&2; kill -SEGV $$\n");
    let err = lade_tests::fails(
        s.lade()
            .args([
                "build",
                "--platform",
                "linux/arm64",
                "-t",
                "localhost/crash:1",
            ])
            .arg(&s.ctx),
        1,
    );
    assert!(err.contains("Containerfile:2"), "{err}");
    assert!(err.contains("SIGSEGV"), "{err}");
    assert!(err.contains("emulation"), "{err}");
    assert!(err.contains("native arm64"), "{err}");
    assert!(err.contains("about to crash"), "the stderr tail: {err}");
}

#[test]
fn a_build_platform_stage_runs_natively_and_feeds_every_target() {
    require_peers!("skopeo", "umoci");
    if !need_root_and_arm64("a_build_platform_stage_runs_natively_and_feeds_every_target") {
        return;
    }
    let s = setup(
        "FROM --platform=$BUILDPLATFORM localhost/base:1 AS tool\n\
         ARG TARGETARCH\n\
         RUN uname -m > /built-on && echo \"$TARGETARCH\" > /for\n\
         FROM localhost/base:1\n\
         COPY --from=tool /built-on /for /\n\
         RUN uname -m > /runs-on\n",
    );
    ok(s.lade()
        .args([
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "localhost/cross:1",
        ])
        .arg(&s.ctx));
    let index = s.tmp.path().join("cross-index");
    ok(s.lade()
        .args(["manifest", "push", "--all", "localhost/cross:1"])
        .arg(format!("oci:{}:x", index.display())));
    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let one = s.tmp.path().join(format!("cross-{arch}"));
        ok(Command::new("skopeo").args([
            "copy",
            "-q",
            "--override-arch",
            arch,
            &format!("oci:{}:x", index.display()),
            &format!("oci:{}:x", one.display()),
        ]));
        let bundle = s.tmp.path().join(format!("cross-{arch}-bundle"));
        ok(Command::new("umoci")
            .args(["raw", "unpack", "--rootless", "--image"])
            .arg(format!("{}:x", one.display()))
            .arg(&bundle));
        let read = |f: &str| fs::read_to_string(bundle.join(f)).unwrap();
        assert_eq!(
            read("built-on"),
            "x86_64\n",
            "the $BUILDPLATFORM stage runs natively"
        );
        assert_eq!(
            read("for"),
            format!("{arch}\n"),
            "TARGETARCH is the target's"
        );
        assert_eq!(read("runs-on"), format!("{machine}\n"));
    }
}

#[test]
fn manifest_remove_annotate_rm_exists_and_v2s2_push() {
    require_peers!("umoci", "skopeo", "docker-registry");
    if !Path::new(ARM64_BUSYBOX).is_file() {
        assert!(
            !lade_tests::peers_required(),
            "{ARM64_BUSYBOX} is missing (scripts/setup.sh)"
        );
        eprintln!("SKIPPED: {ARM64_BUSYBOX} is missing");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let layout = tmp.path().join("imgs");
    busybox_image_for(&layout, "amd64", "amd64");
    busybox_image_for(&layout, "arm64", "arm64");
    let l = || {
        let mut c = lade();
        c.arg("--root").arg(&root);
        c
    };
    let inspect = || -> Value {
        serde_json::from_str(&ok(l().args(["manifest", "inspect", "localhost/list:1"]))).unwrap()
    };
    lade_tests::fails(l().args(["manifest", "exists", "localhost/list:1"]), 1);
    ok(l().args(["manifest", "create", "localhost/list:1"]));
    ok(l().args(["manifest", "exists", "localhost/list:1"]));
    let mut digests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let out = ok(l()
            .args(["manifest", "add", "localhost/list:1"])
            .arg(format!("oci:{}:{arch}", layout.display())));
        digests.push(out.trim().to_string());
    }
    // annotate: variant and an entry annotation on the arm64 entry; an index annotation.
    ok(l().args([
        "manifest",
        "annotate",
        "localhost/list:1",
        &digests[1],
        "--variant",
        "v8",
        "--annotation",
        "org.example.note=arm",
        "--index-annotation",
        "org.example.list=yes",
    ]));
    let idx = inspect();
    assert_eq!(idx["annotations"]["org.example.list"], "yes", "{idx}");
    let arm = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == digests[1].as_str())
        .unwrap()
        .clone();
    assert_eq!(arm["platform"]["variant"], "v8");
    assert_eq!(arm["platform"]["architecture"], "arm64");
    assert_eq!(arm["annotations"]["org.example.note"], "arm");
    // Pushed as a Docker manifest list, every image first.
    let reg = Registry::start().unwrap();
    let pushed = format!("{}/list:1", reg.addr);
    ok(l().args([
        "manifest",
        "push",
        "--all",
        "--format",
        "v2s2",
        "--tls-verify=false",
        "localhost/list:1",
        &format!("docker://{pushed}"),
    ]));
    let raw = raw(&pushed);
    assert_eq!(
        raw["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json",
        "{raw}"
    );
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);
    // remove: one entry left; an unknown digest is an error naming the list.
    ok(l().args(["manifest", "remove", "localhost/list:1", &digests[0]]));
    assert_eq!(inspect()["manifests"].as_array().unwrap().len(), 1);
    let err = lade_tests::fails(
        l().args(["manifest", "remove", "localhost/list:1", &digests[0]]),
        1,
    );
    assert!(err.contains("localhost/list:1"), "{err}");
    // rm: the list is gone.
    ok(l().args(["manifest", "rm", "localhost/list:1"]));
    lade_tests::fails(l().args(["manifest", "exists", "localhost/list:1"]), 1);
}
