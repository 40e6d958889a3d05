//! Working containers (`lade from`/`mount`/`cp`/`run`/`config`/`umount`/`commit`/`rm`, `unshare`, `diff`,
//! `export`, `import`) against buildah and podman:
//!
//! * the seed's container-style build script, run once by buildah (1.28, vfs, chroot isolation) and once by
//!   lade, on the same busybox base (`oci:DIR:1`): the two committed images' configs (the fields
//!   build_compat compares) and file trees (tests/src/tree.rs) must be equal;
//! * the same script by an ordinary user inside `lade unshare`, compared with buildah's root result;
//! * `lade diff` of a built image against `podman diff` of the same image after `podman load`;
//! * `lade export`, `lade import --change`, `lade containers --format`, `lade rename`;
//! * crash and concurrency: a `lade run` killed with -9 leaves the container listed, usable and removable;
//!   while one `lade run` uses a container, a second is refused at once with a message naming it (lade's
//!   documented behaviour: no waiting).

use lade_tests::oci::busybox_image;
use lade_tests::tree::{diff_trees, scan};
use lade_tests::{lade, lade_bin, ok, peer, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The config fields compared (as build_compat).
const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "WorkingDir",
    "User",
    "StopSignal",
];

/// What buildah's image has and lade's deliberately does not: `buildah run` in a working container leaves the
/// mountpoints it made in the rootfs (empty /etc/hostname, /etc/hosts, /etc/resolv.conf; /dev, /proc, /run,
/// /sys), and `commit` takes them into the image; lade's `run` removes the mountpoints it made, as its
/// build's RUN does and as `buildah bud` does.
const BUILDAH_RUN_LEFTOVERS: &[&str] = &[
    "/dev: only in buildah's image",
    "/proc: only in buildah's image",
    "/sys: only in buildah's image",
    "/run: only in buildah's image",
    "/etc/hostname: only in buildah's image (file",
    "/etc/hosts: only in buildah's image (file",
    "/etc/resolv.conf: only in buildah's image (file",
];

/// The seed's script, `$T` the tool (with its root flags), `$BASE` the base image, `$APP` a program file.
/// buildah spells the copy verb `copy`, lade `cp` (`$CP`).
const SCRIPT: &str = r#"
set -e
ctr=$($T from --name work "$BASE")
mnt=$($T mount "$ctr")
mkdir -p "$mnt/usr/local/bin"
cp "$APP" "$mnt/usr/local/bin/hello"
chmod 755 "$mnt/usr/local/bin/hello"
$T run "$ctr" -- /bin/sh -c 'echo ran > /ran.txt && mkdir -p /srv/data && rm /etc/motd'
$T $CP --chown app:app --chmod 640 "$ctr" "$NOTE" /srv/data/note.txt
$T config --entrypoint '["/usr/local/bin/hello"]' --port 8080/tcp --user app --workingdir /srv \
  --label org.example.title=hello --label stage=test --env GREETING=hi --cmd '["--loud"]' \
  --stop-signal SIGTERM --author seed "$ctr"
$T umount "$ctr"
$T commit -q --squash "$ctr" localhost/seed:1
$T rm "$ctr"
"#;

struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        // Lower case only: buildah names an `oci:` image after its path, and a name must be lower case.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = tempfile::Builder::new()
            .prefix(&format!("lade-ctr-{}-{n}", std::process::id()))
            .rand_bytes(0)
            .tempdir()
            .unwrap();
        busybox_image(&dir.path().join("base"), "1");
        // A file the script's `run` deletes, so the squashed trees differ from the base by a deletion too.
        std::fs::write(
            dir.path().join("app"),
            "#!/bin/sh\necho hello from the app \"$@\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("note.txt"), "a note\n").unwrap();
        Work { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn base(&self) -> String {
        format!("oci:{}:1", self.path().join("base").display())
    }
}

fn buildah_prefix(w: &Path) -> String {
    format!(
        "buildah --root {0}/bh-root --runroot {0}/bh-run --storage-driver vfs",
        w.display()
    )
}

/// The base with /etc/motd added (the script removes it), as a layout `base2:1`.
fn base_with_motd(w: &Work) -> String {
    let root = w.path().join("lade-prep");
    let mut c = lade();
    c.arg("--root").arg(&root);
    let ctx = w.path().join("prep");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        format!("FROM {}\nRUN echo welcome > /etc/motd\n", w.base()),
    )
    .unwrap();
    ok(c.args(["build", "-q", "-t", "prep:1"]).arg(&ctx));
    let out = format!("oci:{}:1", w.path().join("base2").display());
    ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["push", "prep:1"])
        .arg(&out));
    out
}

fn sh(script: &str, envs: &[(&str, String)]) -> String {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "script failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Push `image` with `tool` (its root flags included) to `dir:` and `oci:` under `out`; returns (config,
/// unpacked rootfs).
fn export(tool: &str, image: &str, out: &Path) -> (Value, PathBuf) {
    std::fs::create_dir_all(out).unwrap();
    let dir = out.join("dir");
    let layout = out.join("oci");
    for dest in [
        format!("dir:{}", dir.display()),
        format!("oci:{}:img", layout.display()),
    ] {
        sh(&format!("{tool} push {image} {dest} >/dev/null"), &[]);
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let cfg = manifest["config"]["digest"].as_str().unwrap();
    let config: Value = serde_json::from_slice(
        &std::fs::read(dir.join(cfg.trim_start_matches("sha256:"))).unwrap(),
    )
    .unwrap();
    let rootfs = out.join("rootfs");
    ok(Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:img", layout.display()))
        .arg(&rootfs));
    (config, rootfs)
}

fn normalized(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(Value::Array(a)) if a.is_empty() => Value::Null,
        Some(Value::Object(o)) if o.is_empty() => Value::Null,
        Some(v) => v.clone(),
    }
}

/// Every difference between buildah's image (a) and lade's (b): config fields and file trees.
fn compare(a: &(Value, PathBuf), b: &(Value, PathBuf)) -> Vec<String> {
    let mut out = Vec::new();
    for f in CONFIG_FIELDS {
        let mut x = normalized(a.0["config"].get(*f));
        if *f == "Labels"
            && let Some(o) = x.as_object_mut()
        {
            o.remove("io.buildah.version");
        }
        let x = normalized(Some(&x));
        let y = normalized(b.0["config"].get(*f));
        if x != y {
            out.push(format!("config {f}: {x} (buildah) vs {y} (lade)"));
        }
    }
    for f in ["architecture", "os", "author"] {
        if normalized(a.0.get(f)) != normalized(b.0.get(f)) {
            out.push(format!("{f}: {} vs {}", a.0[f], b.0[f]));
        }
    }
    let layers = |c: &Value| c["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
    if layers(&a.0) != layers(&b.0) {
        out.push(format!(
            "layers: {} (buildah) vs {} (lade)",
            layers(&a.0),
            layers(&b.0)
        ));
    }
    out.extend(
        diff_trees(&scan(&a.1), &scan(&b.1))
            .into_iter()
            .map(|d| d.text)
            .filter(|t| !BUILDAH_RUN_LEFTOVERS.iter().any(|l| t.starts_with(l))),
    );
    out
}

fn buildah_image(w: &Work, base: &str) -> (Value, PathBuf) {
    let bh = buildah_prefix(w.path());
    sh(
        SCRIPT,
        &[
            ("T", bh.clone()),
            ("CP", "copy".into()),
            ("BASE", base.into()),
            ("APP", w.path().join("app").display().to_string()),
            ("NOTE", w.path().join("note.txt").display().to_string()),
        ],
    );
    let _ = std::fs::remove_dir_all(w.path().join("bh-out"));
    export(&bh, "localhost/seed:1", &w.path().join("bh-out"))
}

fn require(tools: &[&str]) -> bool {
    for t in tools {
        if peer(t).is_none() {
            return false;
        }
    }
    lade_tests::need_root_for(
        "containers",
        "buildah and umoci keep owners only as root; the script mounts",
    )
}

#[test]
fn the_seed_script_gives_the_image_buildah_gives() {
    if !require(&["buildah", "umoci"]) {
        return;
    }
    let w = Work::new();
    let base = base_with_motd(&w);
    let theirs = buildah_image(&w, &base);
    let lade_t = format!(
        "{} --root {}",
        lade_bin().display(),
        w.path().join("lade-root").display()
    );
    sh(
        SCRIPT,
        &[
            ("T", lade_t.clone()),
            ("CP", "cp".into()),
            ("BASE", base.clone()),
            ("APP", w.path().join("app").display().to_string()),
            ("NOTE", w.path().join("note.txt").display().to_string()),
        ],
    );
    let ours = export(&lade_t, "localhost/seed:1", &w.path().join("lade-out"));
    let diffs = compare(&theirs, &ours);
    assert!(
        diffs.is_empty(),
        "lade and buildah differ:\n{}",
        diffs.join("\n")
    );
    // The script's container is gone, and the image runs its entrypoint.
    let list = sh(&format!("{lade_t} containers -q"), &[]);
    assert!(list.trim().is_empty(), "{list}");
    let ctr = sh(&format!("{lade_t} from localhost/seed:1"), &[]);
    let said = sh(
        &format!("{lade_t} run {} -- /usr/local/bin/hello there", ctr.trim()),
        &[],
    );
    assert_eq!(said.trim(), "hello from the app there");
    let id = sh(&format!("{lade_t} run {} -- id -un", ctr.trim()), &[]);
    assert_eq!(id.trim(), "app", "the committed User applies to lade run");
}

/// The user scripts/setup.sh makes, with a subordinate id range (as tests/tests/rootless.rs).
const USER: &str = "lade-rootless";

#[test]
fn the_seed_script_passes_as_an_ordinary_user_inside_lade_unshare() {
    if !require(&["buildah", "umoci", "unshare", "newuidmap", "su"]) {
        return;
    }
    let ready = Command::new("id")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            !lade_tests::peers_required(),
            "this test needs the user {USER} (scripts/setup.sh)"
        );
        return;
    }
    let w = Work::new();
    let base = base_with_motd(&w);
    let theirs = buildah_image(&w, &base);
    let home = w.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    for f in ["app", "note.txt"] {
        std::fs::copy(w.path().join(f), home.join(f)).unwrap();
    }
    // The base layout, readable by the user.
    ok(Command::new("cp")
        .arg("-a")
        .arg(w.path().join("base2"))
        .arg(home.join("base2")));
    ok(Command::new("chown").args(["-R", USER]).arg(&home));
    ok(Command::new("chmod").arg("755").arg(w.path()).arg(&home));
    let script = format!(
        "set -e; cd {h}; export L={l} LADE_CACHE_DIR={h}/cache; \
         $L --root {h}/store unshare sh -c 'T=\"$L --root {h}/store\" CP=cp BASE=oci:{h}/base2:1 \
         APP={h}/app NOTE={h}/note.txt sh -c \"$SCRIPT\"'; \
         $L --root {h}/store push localhost/seed:1 oci:{h}/out:img; \
         $L --root {h}/store push localhost/seed:1 dir:{h}/outdir",
        h = home.display(),
        l = lade_bin().display()
    );
    let out = Command::new("su")
        .args([USER, "-s", "/bin/sh", "-c"])
        .arg(&script)
        .env("SCRIPT", SCRIPT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "as {USER}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(home.join("outdir/manifest.json")).unwrap()).unwrap();
    let cfg = manifest["config"]["digest"].as_str().unwrap();
    let config: Value = serde_json::from_slice(
        &std::fs::read(home.join("outdir").join(cfg.trim_start_matches("sha256:"))).unwrap(),
    )
    .unwrap();
    let rootfs = w.path().join("rootless-rootfs");
    ok(Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:img", home.join("out").display()))
        .arg(&rootfs));
    let diffs = compare(&theirs, &(config, rootfs));
    assert!(
        diffs.is_empty(),
        "lade (rootless, in lade unshare) and buildah (root) differ:\n{}",
        diffs.join("\n")
    );
    // Outside `lade unshare`, `lade mount` says where it works.
    let out = Command::new("su")
        .args([USER, "-s", "/bin/sh", "-c"])
        .arg(format!(
            "cd {h}; {l} --root {h}/store from --name x oci:{h}/base2:1 >/dev/null && {l} --root {h}/store mount x",
            h = home.display(),
            l = lade_bin().display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("lade unshare"),
        "{err}"
    );
}

fn lade_in(root: &Path) -> Command {
    let mut c = lade();
    c.arg("--root").arg(root);
    c
}

/// `lade diff` of a built image's top layer and of a working container agree with `podman diff` of the
/// same image (after `podman load`) and of a podman container with the same changes.
#[test]
fn diff_agrees_with_podman() {
    if !require(&["podman", "umoci"]) {
        return;
    }
    let w = Work::new();
    let root = w.path().join("lade-root");
    let ctx = w.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        format!(
            "FROM {}\nRUN mkdir -p /srv/new/deeper && echo x > /srv/new/deeper/f && echo changed >> /etc/passwd \
             && rm /bin/ls && touch /tmp/t\n",
            w.base()
        ),
    )
    .unwrap();
    ok(lade_in(&root)
        .args(["build", "-q", "-t", "difftest:1"])
        .arg(&ctx));
    let archive = w.path().join("img.tar");
    ok(lade_in(&root).args(["push", "difftest:1"]).arg(format!(
        "docker-archive:{}:localhost/difftest:1",
        archive.display()
    )));
    let podman = |args: &[&str]| -> String {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(w.path().join("pm-root"))
            .arg("--runroot")
            .arg(w.path().join("pm-run"))
            .args(["--storage-driver", "overlay"])
            .args(args);
        ok(&mut c)
    };
    podman(&["load", "-q", "-i", archive.to_str().unwrap()]);
    let sorted = |s: String| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let theirs = sorted(podman(&["diff", "localhost/difftest:1"]));
    let ours = sorted(ok(lade_in(&root).args(["diff", "difftest:1"])));
    assert!(theirs.iter().any(|l| l == "D /bin/ls"), "{theirs:?}");
    assert_eq!(ours, theirs, "lade diff vs podman diff of the image");
    // JSON groups the same paths.
    let j: Value = serde_json::from_str(&ok(lade_in(&root).args([
        "diff",
        "--format",
        "json",
        "difftest:1",
    ])))
    .unwrap();
    let pj: Value = serde_json::from_str(&podman(&[
        "diff",
        "--format",
        "json",
        "localhost/difftest:1",
    ]))
    .unwrap();
    for k in ["added", "changed", "deleted"] {
        let set = |v: &Value| {
            let mut s: Vec<String> = v[k]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            s.sort();
            s
        };
        assert_eq!(set(&j), set(&pj), "{k}");
    }
}

/// `lade export` writes the container's tree (its changes included), and `lade import --change` makes an
/// image of it that skopeo-readable tools see with that config.
#[test]
fn export_and_import_round_trip() {
    if !require(&["umoci"]) {
        return;
    }
    let w = Work::new();
    let root = w.path().join("lade-root");
    let ctr = ok(lade_in(&root).args(["from", "--name", "ex"]).arg(w.base()));
    assert_eq!(ctr.trim(), "ex");
    ok(lade_in(&root).args([
        "run",
        "ex",
        "--",
        "/bin/sh",
        "-c",
        "echo inside > /made.txt && rm /etc/group",
    ]));
    // run's flags: a host bind mount, env, user, working dir; `add` extracts a local archive.
    let input = w.path().join("in");
    std::fs::create_dir_all(input.join("dir")).unwrap();
    std::fs::write(input.join("file"), "mounted\n").unwrap();
    std::fs::write(input.join("dir/x.txt"), "x\n").unwrap();
    let got = ok(lade_in(&root)
        .arg("run")
        .arg(format!(
            "--mount=type=bind,source={},target=/in",
            input.display()
        ))
        .args([
            "--env",
            "X=1",
            "--user",
            "app",
            "--workingdir",
            "/tmp",
            "ex",
            "--",
        ])
        .args(["/bin/sh", "-c", "cat /in/file; echo $X; id -un; pwd"]));
    assert_eq!(got, "mounted\n1\napp\n/tmp\n");
    let archive = w.path().join("a.tar");
    ok(Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&input)
        .arg("dir"));
    ok(lade_in(&root)
        .args(["add", "ex"])
        .arg(&archive)
        .arg("/opt/"));
    let tar = w.path().join("rootfs.tar");
    ok(lade_in(&root).args(["export", "ex", "-o"]).arg(&tar));
    let list = ok(Command::new("tar").arg("-tf").arg(&tar));
    assert!(
        list.lines()
            .any(|l| l.trim_start_matches("./") == "made.txt"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.trim_start_matches("./") == "bin/busybox"),
        "{list}"
    );
    assert!(
        !list
            .lines()
            .any(|l| l.trim_start_matches("./") == "etc/group"),
        "{list}"
    );
    let has = |p: &str| list.lines().any(|l| l.trim_start_matches("./") == p);
    assert!(has("opt/dir/x.txt") && !has("in/file"), "{list}");
    let id = ok(lade_in(&root).arg("import").arg(&tar).args([
        "imported:1",
        "--change",
        r#"CMD ["/bin/cat","/made.txt"]"#,
        "--change",
        "ENV A=1",
    ]));
    assert_eq!(id.trim().len(), 64, "{id}");
    let (config, rootfs) = export(
        &format!("{} --root {}", lade_bin().display(), root.display()),
        "imported:1",
        &w.path().join("imp"),
    );
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["/bin/cat", "/made.txt"])
    );
    assert!(
        config["config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "A=1")
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("made.txt")).unwrap(),
        "inside\n"
    );
    // A plain commit: the image's layers plus one with the container's changes (a deletion as a whiteout).
    ok(lade_in(&root).args(["commit", "-q", "ex", "layered:1"]));
    let (config, rootfs) = export(
        &format!("{} --root {}", lade_bin().display(), root.display()),
        "layered:1",
        &w.path().join("layered"),
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        config["history"].as_array().unwrap().last().unwrap()["created_by"],
        "/bin/sh"
    );
    assert!(rootfs.join("made.txt").exists() && rootfs.join("opt/dir/x.txt").exists());
    assert!(!rootfs.join("etc/group").exists() && rootfs.join("etc/passwd").exists());
    // Containers list with templates; rename; rm --all.
    let t = ok(lade_in(&root).args([
        "containers",
        "--format",
        "{{.ContainerName}} {{.ImageName}}",
    ]));
    assert!(t.trim().starts_with("ex "), "{t}");
    ok(lade_in(&root).args(["rename", "ex", "ex2"]));
    let j: Value =
        serde_json::from_str(&ok(lade_in(&root).args(["containers", "--format", "json"]))).unwrap();
    assert_eq!(j[0]["containername"], "ex2");
    ok(lade_in(&root).args(["rm", "--all"]));
    assert!(
        ok(lade_in(&root).args(["containers", "-q"]))
            .trim()
            .is_empty()
    );
}

/// The container's upper dir, where a file the command wrote appears.
fn upper_of(root: &Path, name: &str) -> PathBuf {
    let j: Value =
        serde_json::from_str(&ok(lade_in(root).args(["containers", "--format", "json"]))).unwrap();
    let id = j
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["containername"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    root.join("lade/containers").join(id).join("upper")
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_run_leaves_the_container_usable_and_a_second_run_is_refused_while_one_runs() {
    if !lade_tests::need_root_for("containers", "mounts of the RUN step") {
        return;
    }
    let w = Work::new();
    let root = w.path().join("lade-root");
    ok(lade_in(&root).args(["from", "--name", "c1"]).arg(w.base()));
    let upper = upper_of(&root, "c1");
    // The container keeps its image's blobs and unpacked layers through rmi and prune.
    ok(lade_in(&root).args(["rmi", "--all"]));
    ok(lade_in(&root).arg("prune"));
    assert!(ok(lade_in(&root).args(["images", "-q"])).trim().is_empty());

    // Two at once: the second is refused at once, naming the container; the first finishes. The first holds
    // the container until the test opens its gate (a bound wait, not a sleep that a slow machine outlasts).
    let gate = w.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let mut first = lade_in(&root)
        .arg("run")
        .arg(format!("--mount=type=bind,source={},target=/gate", gate.display()))
        .args([
            "c1",
            "--",
            "/bin/sh",
            "-c",
            "touch /started; i=0; while [ ! -e /gate/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; \
             echo done > /finished",
        ])
        .spawn()
        .unwrap();
    wait_for(&upper.join("started"));
    let out = run(lade_in(&root).args(["run", "c1", "--", "true"]));
    std::fs::write(gate.join("go"), "").unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("c1") && err.contains("in use"), "{err}");
    assert!(first.wait().unwrap().success());
    assert!(upper.join("finished").exists());

    // kill -9 of `lade run` mid-command: its step dies with it, the container is listed, runs again, and
    // is removed.
    let mut victim = lade_in(&root)
        .args([
            "run",
            "c1",
            "--",
            "/bin/sh",
            "-c",
            "touch /victim; sleep 60; touch /never",
        ])
        .spawn()
        .unwrap();
    wait_for(&upper.join("victim"));
    victim.kill().unwrap();
    victim.wait().unwrap();
    let listed = ok(lade_in(&root).args(["containers", "--format", "{{.ContainerName}}"]));
    assert!(listed.lines().any(|l| l == "c1"), "{listed}");
    let start = Instant::now();
    loop {
        let out = run(lade_in(&root).args(["run", "c1", "--", "cat", "/victim", "/finished"]));
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the container stayed unusable after kill -9: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !upper.join("never").exists(),
        "the killed run's command kept running"
    );
    ok(lade_in(&root).args(["rm", "c1"]));
    assert!(
        ok(lade_in(&root).args(["containers", "-q"]))
            .trim()
            .is_empty()
    );
}

/// `commit --sign-by-sigstore-private-key` signs the committed image in the store (the signature format
/// itself is checked against independent implementations in signing.rs and bundles.rs); a wrong key is
/// refused, and GPG `--sign-by` is refused before anything is committed.
#[test]
fn commit_signs_with_a_sigstore_key() {
    if !require(&["umoci"]) {
        return;
    }
    let w = Work::new();
    let root = w.path().join("lade-root");
    let keys = w.path().join("keys");
    let other = w.path().join("other");
    for d in [&keys, &other] {
        std::fs::create_dir_all(d).unwrap();
        ok(lade()
            .current_dir(d)
            .env("COSIGN_PASSWORD", "")
            .arg("generate-key-pair"));
    }
    ok(lade_in(&root).args(["from", "--name", "sg"]).arg(w.base()));
    let refused = run(lade_in(&root).args(["commit", "--sign-by", "ABCDEF", "sg", "gpg:1"]));
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("keeps no GPG signatures"),
        "{refused:?}"
    );
    assert!(
        !ok(lade_in(&root).arg("images")).contains("gpg"),
        "a refused commit left an image"
    );
    ok(lade_in(&root)
        .env("COSIGN_PASSWORD", "")
        .args([
            "commit",
            "-q",
            "sg",
            "signed:1",
            "--sign-by-sigstore-private-key",
        ])
        .arg(keys.join("cosign.key")));
    ok(lade_in(&root)
        .args(["verify", "lade:signed:1", "--key"])
        .arg(keys.join("cosign.pub")));
    let wrong = run(lade_in(&root)
        .args(["verify", "lade:signed:1", "--key"])
        .arg(other.join("cosign.pub")));
    assert!(!wrong.status.success(), "{wrong:?}");
}
