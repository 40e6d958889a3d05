//! `lade build` against buildah (Debian's 1.28, `buildah bud --isolation chroot`): the same Containerfile
//! and context (tests/fixtures/build/NN-*/) built by both, on the same base image, must give the same image.
//!
//! * The base is made once per test process with umoci from busybox-static (applet symlinks, /etc/passwd
//!   and /etc/group with a named user and group, /lib -> usr/lib, an absolute dir symlink, an xattr, a setuid
//!   file) and read by both tools as `oci:DIR:1` (passed as `--build-arg BASE=...`).
//! * Both images are exported twice: to `dir:` (whose config keeps the Docker-only fields Healthcheck, Shell
//!   and OnBuild; both tools build with `--format docker`) and to `oci:`, which `umoci raw unpack` turns into
//!   a root filesystem.
//! * Compared: the config fields of issue #5 plus author, os and architecture, and every path of the two
//!   trees: type, mode (with setuid/setgid/sticky), uid, gid, size, content, symlink target, device numbers,
//!   hardlink groups and xattrs. Modification times are compared only where either side is older than 2001-09
//!   (the base and the contexts are given fixed old mtimes, so those are the times a builder must carry over);
//!   times a build sets itself (directories it touched, files RUN created) are not comparable.
//!
//! Deliberate differences are listed in [`DELIBERATE`] with their reason; every other difference fails the
//! test, with the whole list in the message.

use lade_tests::tree::{Content, Diff, diff_trees, scan};
use lade_tests::{lade, ok, peer, run, target_dir, workspace};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// mtime given to every base-image file (2000-01-01).
const BASE_MTIME: i64 = 946_684_800;
/// mtime given to every context file (2001-01-01).
const CONTEXT_MTIME: i64 = 978_307_200;
/// mtime of the entries of the generated tar archives (2001-01-20).
const TAR_MTIME: u64 = 980_000_000;

/// A difference lade is allowed to have, and why: in fixture `case`, `item` (`/path field` or
/// `config.<Field>`) must be exactly `lade` on lade's side (what the Dockerfile reference gives), whatever
/// buildah has.
struct Deliberate {
    case: &'static str,
    item: &'static str,
    lade: &'static str,
    reason: &'static str,
}

const DELIBERATE: &[Deliberate] = &[
    // Docker (BuildKit's fsutil copier: copyDirectoryOnly, then copyFileInfo on a directory it created) gives
    // the destination of a directory COPY the source directory's mode; buildah 1.28 creates it 0755.
    Deliberate {
        case: "08-copy-dirs",
        item: "/copied-contents mode",
        lade: "0750",
        reason: "a created COPY destination takes the source dir's mode, as Docker",
    },
    Deliberate {
        case: "08-copy-dirs",
        item: "/copied-noslash mode",
        lade: "0750",
        reason: "a created COPY destination takes the source dir's mode, as Docker",
    },
    Deliberate {
        case: "08-copy-dirs",
        item: "/restricted-copy mode",
        lade: "0700",
        reason: "a created COPY destination takes the source dir's mode, as Docker",
    },
    // Docker keeps a context file's mode bits on COPY (copyFileInfo chmods with the full mode); buildah 1.28
    // strips setuid and setgid from context files.
    Deliberate {
        case: "15-xattrs-modes",
        item: "/x/setuid.bin mode",
        lade: "4755",
        reason: "setuid kept on COPY from the context, as Docker",
    },
    Deliberate {
        case: "15-xattrs-modes",
        item: "/x/setgid.bin mode",
        lade: "2755",
        reason: "setgid kept on COPY from the context, as Docker",
    },
    Deliberate {
        case: "15-xattrs-modes",
        item: "/x/special/setgid-dir mode",
        lade: "2775",
        reason: "setgid kept on a directory copied from the context, as Docker",
    },
    Deliberate {
        case: "02-env-arg",
        item: "config.Env",
        lade: r#"["PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","BASE_ENV=overridden-from-base","GREETING=hello world","NAME=default-value","LEGACY=legacy form value","COMBINED=cli-given-fallback","SINGLE=$NAME","ESCAPED=$NAME","GLOBAL_SEEN=not-in-scope","FROM_ARG=cli","LATE=late-default"]"#,
        reason: "same variables and values; only the order differs: buildah 1.28 moves a redefined variable \
                 (PATH, BASE_ENV from the base) to the end, Docker (BuildKit's addEnv) and lade replace it in place",
    },
    Deliberate {
        case: "04-cmd-entrypoint-shell",
        item: "config.Entrypoint",
        lade: r#"["/bin/sh","-e","-c","echo shell-form entrypoint"]"#,
        reason: "the Dockerfile reference: SHELL applies to the shell form of RUN, CMD and ENTRYPOINT; buildah \
                 1.28 ignores SHELL for ENTRYPOINT and writes /bin/sh -c",
    },
];

/// The label buildah stamps on every image it commits; it names the tool, not the build.
const BUILDAH_LABEL: &str = "io.buildah.version";

// ---------------------------------------------------------------------------------------------------------
// The run: one work dir, one base image, one buildah storage and one lade store per test process.

struct Env {
    work: PathBuf,
    base: String,
    buildah_root: PathBuf,
    buildah_runroot: PathBuf,
    lade_root: PathBuf,
}

/// None (the test skips) when a peer is missing or we are not root (buildah's chroot isolation and
/// `umoci raw unpack` keeping owners both need root); under LADE_REQUIRE_PEERS=1 that is a failure.
fn env() -> Option<&'static Env> {
    for p in ["buildah", "umoci", "tar", "gzip", "bzip2", "xz", "zstd"] {
        peer(p)?;
    }
    if !lade_tests::need_root_for(
        "build_compat",
        "buildah --isolation chroot, umoci keeping owners",
    ) {
        return None;
    }
    static ENV: OnceLock<Env> = OnceLock::new();
    Some(ENV.get_or_init(make_env))
}

fn make_env() -> Env {
    // Per-process work dir under target/, kept for inspection; those of finished processes are removed.
    let parent = target_dir().join("build-compat");
    std::fs::create_dir_all(&parent).unwrap();
    for e in std::fs::read_dir(&parent).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let alive = name
            .parse::<u32>()
            .is_ok_and(|pid| Path::new("/proc").join(pid.to_string()).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let work = parent.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let layout = work.join("base");
    make_base(&work.join("base-rootfs"), &layout);
    Env {
        base: format!("oci:{}:1", layout.display()),
        buildah_root: work.join("buildah-root"),
        buildah_runroot: work.join("buildah-run"),
        lade_root: work.join("lade-root"),
        work,
    }
}

fn write_file(path: &Path, content: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn symlink(target: &str, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setting xattr {name} on {}: {e}", path.display()));
}

/// Every entry under `dir` (itself included) gets mtime `secs`, symlinks not followed.
fn set_mtimes(dir: &Path, secs: i64) {
    ok(Command::new("find")
        .arg(dir)
        .args(["-exec", "touch", "-h", "-d"])
        .arg(format!("@{secs}"))
        .args(["{}", "+"]));
}

/// The shared base image `layout:1`: busybox-static with the files the fixtures rely on.
fn make_base(root: &Path, layout: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .expect("busybox-static (/bin/busybox) is installed");
    mkdir(&root.join("bin"), 0o755);
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::fs::set_permissions(
        root.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    for applet in [
        "sh", "ls", "cat", "echo", "mkdir", "chmod", "chown", "ln", "touch", "id", "printf", "rm",
        "mv", "cp", "pwd", "mkfifo", "stat", "test", "true", "env", "sleep", "wget",
    ] {
        symlink("busybox", &root.join("bin").join(applet));
    }
    write_file(&root.join("usr/bin/suid"), b"suid\n", 0o4755);
    write_file(&root.join("usr/lib/libx.so"), b"lib\n", 0o644);
    set_xattr(&root.join("usr/lib/libx.so"), "user.base", b"v1");
    mkdir(&root.join("usr/local/bin"), 0o755);
    symlink("usr/lib", &root.join("lib"));
    write_file(
        &root.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        0o644,
    );
    write_file(
        &root.join("etc/group"),
        b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
        0o644,
    );
    // Present in the base, as in real images, so a builder's RUN mounts over them rather than creating them.
    write_file(&root.join("etc/hosts"), b"127.0.0.1 localhost\n", 0o644);
    write_file(&root.join("etc/hostname"), b"base\n", 0o644);
    write_file(
        &root.join("etc/resolv.conf"),
        b"nameserver 127.0.0.1\n",
        0o644,
    );
    for d in ["dev", "proc", "sys", "run"] {
        mkdir(&root.join(d), 0o755);
    }
    mkdir(&root.join("tmp"), 0o1777);
    mkdir(&root.join("root"), 0o700);
    mkdir(&root.join("home/app"), 0o755);
    std::os::unix::fs::chown(root.join("home/app"), Some(1000), Some(1000)).unwrap();
    write_file(&root.join("opt/data/keep.txt"), b"keep\n", 0o644);
    write_file(&root.join("opt/data/drop.txt"), b"drop\n", 0o644);
    write_file(&root.join("opt/old/x"), b"old\n", 0o644);
    symlink("/opt/data", &root.join("srv/linkdir"));
    set_mtimes(root, BASE_MTIME);

    let tar = root.with_extension("tar");
    ok(Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--sort=name",
            "-C",
        ])
        .arg(root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    let img = format!("{}:1", layout.display());
    ok(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(layout));
    ok(Command::new("umoci").args(["new", "--image", &img]));
    ok(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &img])
        .arg(&tar));
    ok(Command::new("umoci").args([
        "config",
        "--image",
        &img,
        "--architecture",
        "amd64",
        "--os",
        "linux",
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.env",
        "BASE_ENV=from-base",
        "--config.cmd",
        "/bin/sh",
        "--config.label",
        "org.example.base=yes",
    ]));
}

// ---------------------------------------------------------------------------------------------------------
// Contexts: the fixture dir copied, plus what git cannot hold (modes, empty dirs, xattrs, archives).

fn fixture_dir(name: &str) -> PathBuf {
    workspace().join("tests/fixtures/build").join(name)
}

fn prepare_context(case: &str, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    ok(Command::new("cp").arg("-a").arg(fixture_dir(case)).arg(dir));
    let chmod = |p: &str, mode: u32| {
        std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    match case {
        "08-copy-dirs" => {
            mkdir(&dir.join("tree/empty"), 0o755);
            mkdir(&dir.join("tree/sub/empty-too"), 0o700);
            chmod("tree", 0o750);
            chmod("tree/private.key", 0o600);
            chmod("tree/restricted", 0o700);
            chmod("tree/sub/deeper", 0o711);
        }
        "11-copy-chown-chmod" => {
            chmod("dir/sub", 0o700);
            chmod("a.txt", 0o664);
        }
        "13-add-tar" => make_archives(dir),
        "15-xattrs-modes" => {
            set_xattr(&dir.join("xattr.txt"), "user.test", b"hello");
            set_xattr(&dir.join("xattr.txt"), "user.binary", b"a\0b\xff");
            set_xattr(&dir.join("special/setgid-dir"), "user.dir", b"on a dir");
            chmod("setuid.bin", 0o4755);
            chmod("setgid.bin", 0o2755);
            chmod("special/setgid-dir", 0o2775);
            chmod("special/sticky-dir", 0o1777);
        }
        _ => {}
    }
    set_mtimes(dir, CONTEXT_MTIME);
}

/// A tar holding owners, modes, setuid, a symlink, a hardlink, an empty dir and an xattr.
fn sample_tar() -> Vec<u8> {
    fn add(
        b: &mut tar::Builder<Vec<u8>>,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        owner: (u64, u64),
        body: &[u8],
    ) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_mtime(TAR_MTIME);
        h.set_size(body.len() as u64);
        match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                h.set_size(0);
                h.set_path(path).unwrap();
                h.set_link_name(std::str::from_utf8(body).unwrap()).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            _ => {
                h.set_path(path).unwrap();
                h.set_cksum();
                b.append(&h, body).unwrap();
            }
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    add(&mut b, "top/", Directory, 0o750, (1234, 5678), b"");
    add(
        &mut b,
        "top/file",
        Regular,
        0o640,
        (1234, 5678),
        b"content\n",
    );
    add(&mut b, "top/exec", Regular, 0o755, (0, 0), b"#!/bin/sh\n");
    add(&mut b, "top/suid", Regular, 0o4755, (0, 0), b"suid\n");
    add(&mut b, "top/link", Symlink, 0o777, (0, 0), b"file");
    add(&mut b, "top/hard", Link, 0o640, (1234, 5678), b"top/file");
    add(&mut b, "top/empty/", Directory, 0o700, (0, 0), b"");
    add(&mut b, "rootfile", Regular, 0o600, (0, 0), b"root file\n");
    b.append_pax_extensions([("SCHILY.xattr.user.fromtar", &b"tarvalue"[..])])
        .unwrap();
    add(&mut b, "top/with-xattr", Regular, 0o644, (0, 0), b"x\n");
    b.into_inner().unwrap()
}

fn compress(tool: &str, input: &Path) {
    ok(Command::new(tool).args(["-q", "-f"]).arg(input));
}

fn make_archives(dir: &Path) {
    let data = sample_tar();
    std::fs::write(dir.join("plain.tar"), &data).unwrap();
    for (tool, name) in [
        ("gzip", "gz.tar"),
        ("bzip2", "bz.tar"),
        ("xz", "xz.tar"),
        ("zstd", "zst.tar"),
    ] {
        std::fs::write(dir.join(name), &data).unwrap();
        compress(tool, &dir.join(name));
        if tool == "zstd" {
            // zstd keeps its input.
            std::fs::remove_file(dir.join(name)).unwrap();
        }
    }
    std::fs::write(dir.join("file.txt"), b"a compressed file, not a tar\n").unwrap();
    compress("gzip", &dir.join("file.txt"));
}

// ---------------------------------------------------------------------------------------------------------
// Building and exporting with each tool.

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tool {
    Buildah,
    Lade,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Buildah => "buildah",
            Tool::Lade => "lade",
        }
    }

    fn command(self, env: &Env) -> Command {
        match self {
            Tool::Buildah => {
                let mut c = Command::new("buildah");
                c.arg("--root")
                    .arg(&env.buildah_root)
                    .arg("--runroot")
                    .arg(&env.buildah_runroot)
                    .args(["--storage-driver", "vfs"]);
                c
            }
            Tool::Lade => {
                let mut c = lade();
                c.arg("--root").arg(&env.lade_root);
                c
            }
        }
    }

    /// Build `file` in `ctx` as `tag`.
    fn build(self, env: &Env, tag: &str, file: &Path, ctx: &Path, extra: &[&str]) {
        let mut c = self.command(env);
        match self {
            Tool::Buildah => c.args([
                "bud",
                "--isolation",
                "chroot",
                "--layers=false",
                "--format",
                "docker",
            ]),
            Tool::Lade => c.args(["build", "--format", "docker"]),
        };
        c.args(["-t", tag])
            .arg("-f")
            .arg(file)
            .arg("--build-arg")
            .arg(format!("BASE={}", env.base))
            .args(extra)
            .arg(ctx);
        let out = run(&mut c);
        assert!(
            out.status.success(),
            "{} could not build {}: {}\n{c:?}\nstdout:\n{}\nstderr:\n{}",
            self.name(),
            file.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Export `tag` to `dir:` and `oci:` under `out`; returns (config document, unpacked rootfs).
    fn export(self, env: &Env, tag: &str, out: &Path) -> (Value, PathBuf) {
        let _ = std::fs::remove_dir_all(out);
        std::fs::create_dir_all(out).unwrap();
        let dir = out.join("dir");
        let layout = out.join("oci");
        for dest in [
            format!("dir:{}", dir.display()),
            format!("oci:{}:img", layout.display()),
        ] {
            let mut c = self.command(env);
            c.arg("push");
            if self == Tool::Buildah {
                c.arg("-q");
            }
            ok(c.arg(tag).arg(&dest));
        }
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config_file = dir.join(config_digest.trim_start_matches("sha256:"));
        let config: Value = serde_json::from_slice(&std::fs::read(&config_file).unwrap())
            .unwrap_or_else(|e| panic!("{} wrote a config that is not JSON: {e}", self.name()));
        let rootfs = out.join("rootfs");
        ok(Command::new("umoci")
            .args(["raw", "unpack", "--image"])
            .arg(format!("{}:img", layout.display()))
            .arg(&rootfs));
        (config, rootfs)
    }
}

// ---------------------------------------------------------------------------------------------------------
// The comparison.

/// The config fields compared, from the config document's `config` object.
const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "WorkingDir",
    "User",
    "Healthcheck",
    "StopSignal",
    "Shell",
    "OnBuild",
];

/// A field as compared: absent, null, "", [] and {} all mean "not set" (the image spec treats them alike,
/// and buildah writes `[]`/`{}` where other builders leave the field out).
fn normalized(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(Value::Array(a)) if a.is_empty() => Value::Null,
        Some(Value::Object(o)) if o.is_empty() => Value::Null,
        Some(v) => v.clone(),
    }
}

fn diff_configs(a: &Value, b: &Value) -> Vec<Diff> {
    let mut out = Vec::new();
    for f in CONFIG_FIELDS {
        let mut x = normalized(a["config"].get(*f));
        let y = normalized(b["config"].get(*f));
        if *f == "Labels" {
            if let Some(o) = x.as_object_mut() {
                o.remove(BUILDAH_LABEL);
            }
            x = normalized(Some(&x));
        }
        if x != y {
            out.push(Diff {
                item: format!("config.{f}"),
                lade: y.to_string(),
                text: format!("config {f}: {x} (buildah) vs {y} (lade)"),
            });
        }
    }
    for f in ["author", "architecture", "os", "variant"] {
        let (x, y) = (normalized(a.get(f)), normalized(b.get(f)));
        if x != y {
            out.push(Diff {
                item: format!("config.{f}"),
                lade: y.to_string(),
                text: format!("config {f}: {x} (buildah) vs {y} (lade)"),
            });
        }
    }
    out
}

/// The differences not listed as deliberate for `case`. A listed one is accepted only when lade's side is
/// exactly the documented value; a listed one that no longer occurs is reported too, so the list stays true.
fn undocumented(case: &str, diffs: Vec<Diff>) -> Vec<String> {
    let listed: Vec<&Deliberate> = DELIBERATE.iter().filter(|d| d.case == case).collect();
    let mut out = Vec::new();
    for d in &diffs {
        match listed.iter().find(|l| l.item == d.item) {
            Some(l) if l.lade == d.lade => {}
            Some(l) => out.push(format!(
                "{} (listed as deliberate, but lade should have {}: {})",
                d.text, l.lade, l.reason
            )),
            None => out.push(d.text.clone()),
        }
    }
    for l in listed {
        if !diffs.iter().any(|d| d.item == l.item) {
            out.push(format!(
                "{}: listed as a deliberate difference but buildah and lade agree; remove it from DELIBERATE",
                l.item
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// One fixture, end to end.

/// Build fixture `case` with both tools and compare the images: first its `Containerfile.parent`, when there
/// is one (tagged [`parent_tag`], which the `Containerfile` names in FROM), then its `Containerfile`.
fn compare(case: &str, extra: &[&str]) {
    let Some(env) = env() else { return };
    let work = env.work.join(case);
    let ctx = work.join("context");
    prepare_context(case, &ctx);
    let mut failures = Vec::new();
    let mut builds = Vec::new();
    if ctx.join("Containerfile.parent").exists() {
        builds.push((parent_tag(case), ctx.join("Containerfile.parent")));
    }
    builds.push((format!("compat-{case}"), ctx.join("Containerfile")));
    for (tag, file) in &builds {
        let mut results = Vec::new();
        for tool in [Tool::Buildah, Tool::Lade] {
            tool.build(env, tag, file, &ctx, extra);
            results.push(tool.export(env, tag, &work.join(format!("{}-{tag}", tool.name()))));
        }
        let (theirs, ours) = (&results[0], &results[1]);
        let mut diffs = diff_configs(&theirs.0, &ours.0);
        diffs.extend(diff_trees(&scan(&theirs.1), &scan(&ours.1)));
        for d in undocumented(case, diffs) {
            failures.push(format!("{tag}: {d}"));
        }
    }
    assert!(
        failures.is_empty(),
        "lade and buildah built {case} differently ({} differences; both images are under {}):\n{}",
        failures.len(),
        work.display(),
        failures.join("\n")
    );
}

/// The tag of a fixture's parent image, which its Containerfile names in FROM.
fn parent_tag(case: &str) -> String {
    match case {
        "07-onbuild" => "compat-onbuild-parent".into(),
        _ => format!("compat-{case}-parent"),
    }
}

#[test]
fn run_shell_and_exec_forms() {
    compare("01-run", &[]);
}

#[test]
fn env_and_arg() {
    compare(
        "02-env-arg",
        &[
            "--build-arg",
            "PLAIN=given",
            "--build-arg",
            "OVERRIDDEN=cli",
        ],
    );
}

#[test]
fn label_and_maintainer() {
    compare("03-label-maintainer", &["--build-arg", "VERSION=2.5"]);
}

#[test]
fn cmd_entrypoint_and_shell() {
    compare("04-cmd-entrypoint-shell", &[]);
}

#[test]
fn expose_volume_stopsignal_healthcheck() {
    compare("05-expose-volume-healthcheck", &[]);
}

#[test]
fn user_and_workdir() {
    compare("06-user-workdir", &[]);
}

#[test]
fn onbuild_triggers() {
    compare("07-onbuild", &[]);
}

#[test]
fn copy_directories() {
    compare("08-copy-dirs", &[]);
}

#[test]
fn copy_files_and_wildcards() {
    compare("09-copy-files", &[]);
}

#[test]
fn copy_through_image_symlinks() {
    compare("10-copy-symlink-dest", &[]);
}

#[test]
fn copy_chown_and_chmod() {
    compare("11-copy-chown-chmod", &[]);
}

#[test]
fn containerignore_with_exceptions() {
    compare("12-containerignore", &[]);
}

#[test]
fn add_local_archives() {
    compare("13-add-tar", &[]);
}

#[test]
fn multi_stage_copy_from() {
    compare("14-multistage", &[]);
}

#[test]
fn xattrs_and_special_modes() {
    compare("15-xattrs-modes", &[]);
}

#[test]
fn target_stage() {
    compare("16-target", &["--target", "test"]);
}

/// The comparer itself: two trees differing in one attribute per path give exactly one difference each,
/// and identical configs with buildah's `[]`/`{}` spellings give none.
#[test]
fn comparer_reports_every_kind_of_difference() {
    if !lade_tests::need_root_for(
        "comparer_reports_every_kind_of_difference",
        "it sets owners",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for root in [&a, &b] {
        for name in ["mode", "owner", "content", "xattr", "same"] {
            write_file(&root.join(name), b"same\n", 0o644);
        }
        write_file(&root.join("hard1"), b"h\n", 0o644);
        symlink("target", &root.join("link"));
        mkdir(&root.join("dir"), 0o755);
    }
    write_file(&a.join("only-a"), b"", 0o644);
    std::fs::set_permissions(b.join("mode"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::chown(b.join("owner"), Some(1), Some(2)).unwrap();
    std::fs::write(b.join("content"), b"diff\n").unwrap();
    set_xattr(&b.join("xattr"), "user.k", b"v");
    std::fs::remove_file(b.join("link")).unwrap();
    symlink("elsewhere", &b.join("link"));
    std::fs::hard_link(b.join("hard1"), b.join("hard2")).unwrap();
    std::fs::write(a.join("hard2"), b"h\n").unwrap();
    // An old mtime on one side is compared; recent ones are not.
    ok(Command::new("touch").args(["-d", "@5"]).arg(a.join("same")));
    let diffs = diff_trees(&scan(&a), &scan(&b));
    let items: Vec<&str> = diffs.iter().map(|d| d.item.as_str()).collect();
    let texts: Vec<&str> = diffs.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(
        items,
        [
            "/content content",
            "/hard1 hardlinked with",
            "/hard2 hardlinked with",
            "/link symlink target",
            "/mode mode",
            "/only-a presence",
            "/owner owner",
            "/same mtime",
            "/xattr xattrs"
        ],
        "{texts:#?}"
    );
    assert_eq!(diffs[4].lade, "4755");
    assert!(
        texts.contains(&"/mode: mode 0644 (buildah) vs 4755 (lade)"),
        "{texts:#?}"
    );
    assert!(
        texts.contains(&"/owner: owner 0:0 (buildah) vs 1:2 (lade)"),
        "{texts:#?}"
    );
    assert!(
        texts.contains(&"/content: content \"same\\n\" (buildah) vs \"diff\\n\" (lade)"),
        "{texts:#?}"
    );
    assert!(
        texts.contains(
            &"/link: symlink target Some(\"target\") (buildah) vs Some(\"elsewhere\") (lade)"
        ),
        "{texts:#?}"
    );
    assert!(
        texts.contains(&"/xattr: xattrs {} (buildah) vs {user.k=\"v\"} (lade)"),
        "{texts:#?}"
    );
    assert!(
        texts.contains(&"/only-a: only in buildah's image (file 0644 0:0 0 bytes)"),
        "{texts:#?}"
    );
    let same = json!({"config": {"Env": ["A=1"], "Cmd": [], "Labels": {BUILDAH_LABEL: "1.28.2"}, "Volumes": {}}, "os": "linux"});
    let other = json!({"config": {"Env": ["A=1"]}, "os": "linux"});
    assert_eq!(diff_configs(&same, &other), Vec::new());
    let changed = json!({"config": {"Env": ["A=2"], "User": "app"}, "os": "linux"});
    let items: Vec<String> = diff_configs(&same, &changed)
        .into_iter()
        .map(|d| d.item)
        .collect();
    assert_eq!(items, ["config.Env", "config.User"]);
}

/// Heredocs, which buildah 1.28 predates (it reads `<<EOF` as a word): lade alone builds the fixture, and
/// the result is checked against the Dockerfile reference — a RUN heredoc is the script the shell runs, a
/// heredoc after a command is its stdin, a COPY heredoc is a root-owned 0644 file whose content is expanded
/// unless the delimiter is quoted, and `<<-` strips leading tabs.
#[test]
fn heredocs_against_the_reference() {
    let Some(env) = env() else { return };
    let case = "17-heredoc";
    let work = env.work.join(case);
    let ctx = work.join("context");
    prepare_context(case, &ctx);
    let tag = format!("compat-{case}");
    Tool::Lade.build(env, &tag, &ctx.join("Containerfile"), &ctx, &[]);
    let (_, rootfs) = Tool::Lade.export(env, &tag, &work.join("lade"));
    let tree = scan(&rootfs);
    let file = |path: &str, mode: u32, content: &str| {
        let e = tree
            .get(path)
            .unwrap_or_else(|| panic!("/{path} is missing from lade's image"));
        assert_eq!(
            (e.kind, e.mode, e.uid, e.gid, &e.content),
            (
                "file",
                mode,
                0,
                0,
                &Content::Bytes(content.as_bytes().to_vec())
            ),
            "/{path}"
        );
    };
    file("run-heredoc", 0o644, "hello world\n0\nfirst\n");
    file("from-stdin", 0o644, "first\n");
    file("etc/greeting", 0o644, "hello world\n");
    file("quoted", 0o644, "raw $NAME\nindented\n");
    file("usr/local/bin/script", 0o755, "#!/bin/sh\necho script\n");
}
