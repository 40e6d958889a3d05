//! RUN steps: the isolation layer's mount kinds for `RUN --mount` (a subdir resolved inside its root, another
//! rootfs), and `lade build` end to end: every `--mount` kind, secrets kept out of every layer and the
//! history, failure messages, `--network none`. Bases are made here from busybox-static (umoci).

use lade::dispatch::isolation::{Isolation, RootfsMode, Snapshot, StepMount, StepSpec, run_step};
use lade::layer::{DiffOptions, DiffSource, LayerCache, write_diff};
use lade_tests::{lade, lade_bin, oci, ok, peer, run};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------------------------------------------------
// The isolation layer's mount kinds, through the real `lade __run-step` helper.

/// A layer cache holding one busybox layer with `busybox --install -s` run in it.
struct Lowers {
    store: tempfile::TempDir,
    cache: LayerCache,
    lowers: Vec<PathBuf>,
}

impl Lowers {
    fn steps(&self) -> PathBuf {
        self.store.path().join("lade/steps")
    }
    fn tmp(&self) -> PathBuf {
        let t = self.store.path().join("lade/tmp");
        fs::create_dir_all(&t).unwrap();
        t
    }
}

fn spec(script: &str) -> StepSpec {
    let mut s = StepSpec::new(vec!["/bin/sh".into(), "-c".into(), script.into()]);
    s.helper = Some(lade_bin().to_path_buf());
    s
}

fn busybox_lowers() -> Lowers {
    let busybox = oci::busybox_static().expect("busybox-static is installed (scripts/setup.sh)");
    let store = tempfile::tempdir().unwrap();
    let cache = LayerCache::new(store.path());
    let src = tempfile::tempdir().unwrap();
    for d in ["bin", "etc", "usr/bin"] {
        fs::create_dir_all(src.path().join(d)).unwrap();
    }
    fs::copy(busybox, src.path().join("bin/busybox")).unwrap();
    fs::write(
        src.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
    )
    .unwrap();
    let mut l = Lowers {
        store,
        cache,
        lowers: vec![],
    };
    let blob = write_diff(
        DiffSource::Tree(src.path()),
        &l.tmp(),
        &DiffOptions::default(),
    )
    .unwrap();
    let l0 = l
        .cache
        .get_or_unpack(&blob.diff_id, || Ok(Box::new(fs::File::open(blob.path())?)))
        .unwrap();
    l.lowers.push(l0);
    let snap = Snapshot::prepare(&l.steps(), &l.lowers, RootfsMode::Auto).unwrap();
    let mut s = StepSpec::new(vec!["/bin/busybox".into(), "--install".into(), "-s".into()]);
    s.helper = Some(lade_bin().to_path_buf());
    let out = run_step(&snap, &s).unwrap();
    assert!(out.success(), "{}: {}", out.describe(), out.stderr_tail);
    let (_, l1) = snap
        .commit(&l.cache, &l.tmp(), &DiffOptions::default())
        .unwrap();
    l.lowers.push(l1);
    l
}

fn tar_names(blob: &Path) -> Vec<String> {
    let mut raw = Vec::new();
    lade::layer::decompressor(fs::File::open(blob).unwrap())
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    tar::Archive::new(&raw[..])
        .entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

#[test]
fn subdir_mount_resolves_inside_its_root_and_leaves_no_mountpoint() {
    if !lade_tests::need_root("subdir_mount_resolves_inside_its_root_and_leaves_no_mountpoint") {
        return;
    }
    let l = busybox_lowers();
    let host = tempfile::tempdir().unwrap();
    let root = host.path().join("cache");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("sub/file"), "inside").unwrap();
    // A step that filled a cache with links like these must not reach the host through them.
    std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../..", root.join("rel")).unwrap();
    let outside = host.path().join("outside-marker");
    let snap = Snapshot::prepare(&l.steps(), &l.lowers, RootfsMode::Auto).unwrap();
    let mut s = spec(
        "cat /ro/file > /got; (echo x > /ro/new) 2>/dev/null && echo writable > /ro-state || echo readonly > /ro-state; \
         echo made > /rw/made; ls /abs > /abs-list",
    );
    s.mounts = vec![
        StepMount::subdir(&root, "sub", "/ro", true, false),
        StepMount::subdir(&root, "rel/newdir", "/rw", false, true),
        StepMount::subdir(&root, "abs", "/abs", true, false),
    ];
    let out = run_step(&snap, &s).unwrap();
    assert!(out.success(), "{}: {}", out.describe(), out.stderr_tail);
    let up = snap.upper().to_path_buf();
    assert_eq!(fs::read_to_string(up.join("got")).unwrap(), "inside");
    assert_eq!(
        fs::read_to_string(up.join("ro-state")).unwrap().trim(),
        "readonly"
    );
    // `rel/newdir` resolved inside the root: `..` stops at it, so the dir was made at root/newdir.
    assert_eq!(
        fs::read_to_string(root.join("newdir/made")).unwrap().trim(),
        "made"
    );
    assert!(!outside.exists());
    // `abs` -> `/` means the root itself, not the host's /.
    let abs = fs::read_to_string(up.join("abs-list")).unwrap();
    let mut listed: Vec<&str> = abs.split_whitespace().collect();
    listed.sort();
    assert_eq!(listed, ["abs", "newdir", "rel", "sub"], "{abs}");
    let (blob, _) = snap
        .commit(&l.cache, &l.tmp(), &DiffOptions::default())
        .unwrap();
    let names = tar_names(blob.path());
    for never in ["ro/", "rw/", "abs/", "rw/made"] {
        assert!(
            !names.iter().any(|n| n == never),
            "{never} reached the layer: {names:?}"
        );
    }
    assert!(names.contains(&"got".to_string()), "{names:?}");

    // A missing source is a setup error naming it.
    let snap = Snapshot::prepare(&l.steps(), &l.lowers, RootfsMode::Auto).unwrap();
    let mut s = spec("true");
    s.mounts = vec![StepMount::subdir(&root, "no/such", "/x", true, false)];
    let err = format!("{:#}", run_step(&snap, &s).unwrap_err());
    assert!(err.contains("/no/such"), "{err}");
}

/// A tmpfs mounted on the host for a test, unmounted when dropped.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(at: &Path) -> HostTmpfs {
        fs::create_dir_all(at).unwrap();
        ok(Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(at));
        HostTmpfs(at.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn read_only_binds_do_not_carry_writable_submounts() {
    if !lade_tests::need_root("read_only_binds_do_not_carry_writable_submounts") {
        return;
    }
    let l = busybox_lowers();
    let host = tempfile::tempdir().unwrap();
    let ctx = host.path().join("ctx");
    fs::create_dir_all(ctx.join("inner")).unwrap();
    let inner = HostTmpfs::mount(&ctx.join("inner"));
    let runc = lade_tests::peer("runc").is_some();
    for isolation in [Isolation::Namespaces, Isolation::Oci] {
        if isolation == Isolation::Oci && !runc {
            continue;
        }
        let snap = Snapshot::prepare(&l.steps(), &l.lowers, RootfsMode::Auto).unwrap();
        let mut s = spec(
            "(echo x > /ro/inner/escaped) 2>/dev/null && echo writable > /state || echo readonly > /state",
        );
        s.isolation = isolation;
        s.mounts = vec![StepMount::subdir(&ctx, "", "/ro", true, false)];
        let out = run_step(&snap, &s).unwrap();
        assert!(
            out.success(),
            "{isolation:?}: {}: {}",
            out.describe(),
            out.stderr_tail
        );
        assert_eq!(
            fs::read_to_string(snap.upper().join("state"))
                .unwrap()
                .trim(),
            "readonly",
            "{isolation:?}"
        );
        assert!(
            !inner.0.join("escaped").exists(),
            "{isolation:?}: a read-only bind let the step write into a host mount below it"
        );
    }
}

#[test]
fn rootfs_mount_shows_merged_layers_and_discards_writes() {
    if !lade_tests::need_root("rootfs_mount_shows_merged_layers_and_discards_writes") {
        return;
    }
    let l = busybox_lowers();
    // A third layer over the base, in overlay form: it adds /opt/msg and deletes /etc/passwd (a 0/0 char
    // device is a whiteout).
    let top = l.store.path().join("lade/layers/top");
    fs::create_dir_all(top.join("opt")).unwrap();
    fs::create_dir_all(top.join("etc")).unwrap();
    fs::write(top.join("opt/msg"), "from-stage").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        top.join("etc/passwd"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    let mut stage = l.lowers.clone();
    stage.push(top.clone());
    let runc = lade_tests::peer("runc").is_some();
    for (mode, isolation) in [
        (RootfsMode::Overlay, Isolation::Namespaces),
        (RootfsMode::Copy, Isolation::Namespaces),
        (RootfsMode::Overlay, Isolation::Oci),
    ] {
        if isolation == Isolation::Oci && !runc {
            continue;
        }
        let other = Snapshot::prepare(&l.steps(), &stage, mode).unwrap();
        let snap = Snapshot::prepare(&l.steps(), &l.lowers, RootfsMode::Overlay).unwrap();
        let mut s = spec(
            "cat /stage/opt/msg > /got; test ! -e /stage/etc/passwd && echo hidden > /whiteout; \
             (touch /stage/ro-try) 2>/dev/null && echo writable > /ro-state || echo readonly > /ro-state; \
             echo scribble > /w/scribble && cat /w/scribble > /rw-state; cat /file-mount > /file-got",
        );
        s.mounts = vec![
            StepMount::rootfs(&other, "", "/stage", true),
            StepMount::rootfs(&other, "/opt", "/w", false),
            StepMount::rootfs(&other, "opt/msg", "/file-mount", true),
        ];
        s.isolation = isolation;
        let out = run_step(&snap, &s).unwrap();
        assert!(
            out.success(),
            "{mode:?} {isolation:?}: {}: {}",
            out.describe(),
            out.stderr_tail
        );
        let up = snap.upper();
        let read = |n: &str| fs::read_to_string(up.join(n)).unwrap().trim().to_string();
        assert_eq!(read("got"), "from-stage", "{mode:?} {isolation:?}");
        assert_eq!(read("whiteout"), "hidden", "{mode:?} {isolation:?}");
        assert_eq!(read("ro-state"), "readonly", "{mode:?} {isolation:?}");
        assert_eq!(read("rw-state"), "scribble", "{mode:?} {isolation:?}");
        assert_eq!(read("file-got"), "from-stage", "{mode:?} {isolation:?}");
        // Writes went to the mounted snapshot's own changes, never to a layer.
        assert!(!top.join("opt/scribble").exists());
        for d in &l.lowers {
            assert!(!d.join("opt/scribble").exists());
        }
        let (blob, _) = snap
            .commit(&l.cache, &l.tmp(), &DiffOptions::default())
            .unwrap();
        let names = tar_names(blob.path());
        for never in ["stage/", "w/", "file-mount"] {
            assert!(
                !names.iter().any(|n| n == never),
                "{mode:?} {isolation:?}: {never} reached the layer: {names:?}"
            );
        }
    }
}

#[test]
fn mountpoints_behind_symlinks_are_removed_in_both_modes() {
    if !lade_tests::need_root("mountpoints_behind_symlinks_are_removed_in_both_modes") {
        return;
    }
    let l = busybox_lowers();
    // Debian's layout: /var/run -> /run.
    let top = l.store.path().join("lade/layers/varrun");
    fs::create_dir_all(top.join("var")).unwrap();
    fs::create_dir_all(top.join("run")).unwrap();
    std::os::unix::fs::symlink("../run", top.join("var/run")).unwrap();
    let mut lowers = l.lowers.clone();
    lowers.push(top);
    let secret = tempfile::NamedTempFile::new().unwrap();
    fs::write(secret.path(), "x").unwrap();
    for mode in [RootfsMode::Overlay, RootfsMode::Copy] {
        let snap = Snapshot::prepare(&l.steps(), &lowers, mode).unwrap();
        let mut s = spec(
            "cat /var/run/secrets/tok > /dev/null && ls /var/run/cache > /dev/null && echo ok > /ok",
        );
        s.mounts = vec![
            StepMount {
                target: "/var/run/secrets/tok".into(),
                kind: lade::dispatch::isolation::MountKind::Secret {
                    source: secret.path().to_path_buf(),
                },
            },
            StepMount::tmpfs("/var/run/cache"),
        ];
        let out = run_step(&snap, &s).unwrap();
        assert!(
            out.success(),
            "{mode:?}: {}: {}",
            out.describe(),
            out.stderr_tail
        );
        let (blob, _) = snap
            .commit(&l.cache, &l.tmp(), &DiffOptions::default())
            .unwrap();
        let names = tar_names(blob.path());
        assert!(names.contains(&"ok".to_string()), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("run/") || n.starts_with("var/")),
            "{mode:?}: a mountpoint behind /var/run -> /run reached the layer: {names:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// `lade build` end to end.

/// A lade store, a busybox base in an OCI layout, and a work dir; skipped (None) without root or umoci.
struct Fx {
    work: tempfile::TempDir,
    root: PathBuf,
    base: String,
}

fn fixture(test: &str) -> Option<Fx> {
    if !lade_tests::need_root(test) {
        return None;
    }
    peer("umoci")?;
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("base");
    oci::busybox_image(&layout, "1");
    Some(Fx {
        root: work.path().join("store"),
        base: format!("oci:{}:1", layout.display()),
        work,
    })
}

impl Fx {
    /// A context dir `name` with these files (path, content).
    fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.work.path().join(name);
        for (p, c) in files {
            let p = dir.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, c).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `lade build` of `containerfile` (written as <work>/<tag>.Containerfile, outside the context) with
    /// `--build-arg BASE=<the busybox base>`.
    fn build(
        &self,
        tag: &str,
        containerfile: &str,
        ctx: &Path,
        extra: &[&str],
    ) -> std::process::Output {
        self.build_with_env(tag, containerfile, ctx, extra, &[])
    }

    fn build_with_env(
        &self,
        tag: &str,
        containerfile: &str,
        ctx: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> std::process::Output {
        let file = self.work.path().join(format!("{tag}.Containerfile"));
        fs::write(&file, containerfile).unwrap();
        run(lade()
            .envs(env.iter().copied())
            .arg("--root")
            .arg(&self.root)
            .args(["build", "-t", tag, "-f"])
            .arg(&file)
            .arg("--build-arg")
            .arg(format!("BASE={}", self.base))
            .args(extra)
            .arg(ctx))
    }

    fn build_ok(&self, tag: &str, containerfile: &str, ctx: &Path, extra: &[&str]) -> Image {
        let out = self.build(tag, containerfile, ctx, extra);
        assert!(
            out.status.success(),
            "lade build {tag} failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.image(tag)
    }

    /// The image `tag`, exported with `lade push` to an OCI layout and read back from its files.
    fn image(&self, tag: &str) -> Image {
        let dir = self
            .work
            .path()
            .join(format!("export-{}", tag.replace(':', "-")));
        let _ = fs::remove_dir_all(&dir);
        ok(lade()
            .arg("--root")
            .arg(&self.root)
            .args(["push", tag])
            .arg(format!("oci:{}:x", dir.display())));
        let blob = |digest: &str| {
            fs::read(
                dir.join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            )
            .unwrap()
        };
        let index: Value =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        let manifest: Value =
            serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap()))
                .unwrap();
        let config_raw = blob(manifest["config"]["digest"].as_str().unwrap());
        let config: Value = serde_json::from_slice(&config_raw).unwrap();
        let mut layers = Vec::new();
        for l in manifest["layers"].as_array().unwrap() {
            let mut raw = Vec::new();
            lade::layer::decompressor(&blob(l["digest"].as_str().unwrap())[..])
                .unwrap()
                .read_to_end(&mut raw)
                .unwrap();
            layers.push(raw);
        }
        Image {
            config,
            config_raw,
            layers,
        }
    }
}

struct Image {
    config: Value,
    config_raw: Vec<u8>,
    /// Uncompressed layer tars, base first.
    layers: Vec<Vec<u8>>,
}

impl Image {
    /// Every entry path of the layers lade added on top of the base (the base is one layer).
    fn added_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for l in &self.layers[1..] {
            for e in tar::Archive::new(&l[..]).entries().unwrap() {
                names.push(String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned());
            }
        }
        names
    }

    /// The regular files of all layers merged (later layers win; whiteouts are not applied).
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for l in &self.layers {
            for e in tar::Archive::new(&l[..]).entries().unwrap() {
                let mut e = e.unwrap();
                if e.header().entry_type().is_file() {
                    let p = String::from_utf8_lossy(&e.path_bytes())
                        .trim_start_matches("./")
                        .to_string();
                    let mut v = Vec::new();
                    e.read_to_end(&mut v).unwrap();
                    out.insert(p, v);
                }
            }
        }
        out
    }

    fn text(&self, path: &str) -> String {
        let f = self.files();
        let v = f.get(path).unwrap_or_else(|| {
            panic!(
                "{path} is not in the image; files: {:?}",
                f.keys().collect::<Vec<_>>()
            )
        });
        String::from_utf8_lossy(v).trim().to_string()
    }

    /// Fail when a path the step only mounted reached a layer lade wrote.
    fn assert_not_committed(&self, paths: &[&str]) {
        let names = self.added_names();
        for p in paths {
            let p = p.trim_start_matches('/');
            assert!(
                !names.iter().any(|n| {
                    let n = n.trim_start_matches("./").trim_end_matches('/');
                    n == p || n.starts_with(&format!("{p}/"))
                }),
                "{p} reached a layer: {names:?}"
            );
        }
    }
}

#[test]
fn cache_mount_persists_across_builds_with_its_owner_and_mode() {
    let Some(fx) = fixture("cache_mount_persists_across_builds_with_its_owner_and_mode") else {
        return;
    };
    let ctx = fx.context("ctx", &[]);
    let file = "ARG BASE\n\
        FROM $BASE AS seed\n\
        RUN mkdir -p /opt/seed && echo seeded > /opt/seed/msg\n\
        FROM $BASE\nARG N\n\
        RUN --mount=type=cache,target=/var/cache/counter \
            n=$(cat /var/cache/counter/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /var/cache/counter/n; echo \"$N $n\" > /count\n\
        RUN --mount=type=cache,id=owned,target=/owned,uid=1000,gid=50,mode=0750 \
            stat -c '%u %g %a' /owned > /owned-stat && touch /owned/x\n\
        RUN --mount=type=cache,id=lk,target=/lk,sharing=locked --mount=type=cache,id=pv,target=/pv,sharing=private \
            echo $N >> /lk/log && echo $N >> /pv/log && cat /lk/log | wc -l > /lk-count\n\
        RUN --mount=type=cache,id=seeded,target=/seeded,from=seed,source=/opt/seed \
            cat /seeded/msg > /seeded-got && echo $N >> /seeded/msg\n";
    let one = fx.build_ok("cache:1", file, &ctx, &["--build-arg", "N=first"]);
    assert_eq!(one.text("count"), "first 1");
    assert_eq!(one.text("owned-stat"), "1000 50 750");
    assert_eq!(one.text("lk-count"), "1");
    assert_eq!(
        one.text("seeded-got"),
        "seeded",
        "from= did not seed the new cache"
    );
    let two = fx.build_ok("cache:2", file, &ctx, &["--build-arg", "N=second"]);
    assert_eq!(
        two.text("count"),
        "second 2",
        "the cache mount did not keep its content"
    );
    assert_eq!(two.text("lk-count"), "2");
    assert_eq!(
        two.text("seeded-got"),
        "seeded\nfirst",
        "a seeded cache must be seeded once, then persist"
    );
    for img in [&one, &two] {
        img.assert_not_committed(&["/var/cache/counter", "/owned", "/lk", "/pv", "/seeded"]);
    }
}

#[test]
fn bind_mounts_from_context_and_stage_are_read_only_and_invalidate_the_cache() {
    let Some(fx) =
        fixture("bind_mounts_from_context_and_stage_are_read_only_and_invalidate_the_cache")
    else {
        return;
    };
    let ctx = fx.context(
        "ctx",
        &[
            ("data/a.txt", "version-1"),
            ("data/ignored.txt", "should not be seen"),
            (".containerignore", "data/ignored.txt\n"),
        ],
    );
    let file = "ARG BASE\n\
        FROM $BASE AS tools\n\
        RUN mkdir -p /opt/tool && echo from-stage > /opt/tool/msg\n\
        FROM $BASE\n\
        RUN --mount=type=bind,source=data,target=/data cat /data/a.txt > /got-context; \
            test -e /data/ignored.txt && echo visible > /ignored || echo absent > /ignored; \
            (touch /data/new) 2>/dev/null && echo writable > /ro || echo readonly > /ro; \
            cat /proc/sys/kernel/random/uuid > /nonce; readlink /data/rel > /rel-link; head -n1 /data/abs > /abs-link\n\
        RUN --mount=type=bind,from=tools,source=/opt/tool,target=/t cat /t/msg > /got-stage\n\
        RUN --mount=type=bind,source=data,target=/data,rw echo scribble > /data/a.txt && cat /data/a.txt > /rw\n";
    std::os::unix::fs::symlink("a.txt", ctx.join("data/rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ctx.join("data/abs")).unwrap();
    let img = fx.build_ok("bind:1", file, &ctx, &[]);
    assert_eq!(img.text("got-context"), "version-1");
    assert_eq!(img.text("rel-link"), "a.txt");
    assert_eq!(
        img.text("abs-link"),
        "root:x:0:0:root:/root:/bin/sh",
        "an absolute link in a bind-mounted context must resolve in the step's root, not the host's"
    );
    assert_eq!(
        img.text("ignored"),
        "absent",
        "the ignore file did not apply to the bind mount"
    );
    assert_eq!(img.text("ro"), "readonly");
    assert_eq!(img.text("got-stage"), "from-stage");
    assert_eq!(img.text("rw"), "scribble");
    assert_eq!(
        fs::read_to_string(ctx.join("data/a.txt")).unwrap(),
        "version-1",
        "a rw bind mount wrote into the build context"
    );
    assert!(!ctx.join("data/new").exists());
    img.assert_not_committed(&["/data", "/t"]);
    // A changed byte in a bind-mounted file must rerun the step (the cache never returns a stale layer).
    fs::write(ctx.join("data/a.txt"), "version-2").unwrap();
    let img = fx.build_ok("bind:2", file, &ctx, &[]);
    assert_eq!(
        img.text("got-context"),
        "version-2",
        "stale cache hit for a bind-mounted file"
    );
    let nonce = img.text("nonce");
    // An ignored file and an unrelated one are no input of the step: it is a cache hit (same nonce).
    fs::write(ctx.join("data/ignored.txt"), "changed").unwrap();
    fs::write(ctx.join("elsewhere.txt"), "new").unwrap();
    let img = fx.build_ok("bind:3", file, &ctx, &[]);
    assert_eq!(
        img.text("nonce"),
        nonce,
        "a change outside the step's inputs reran it"
    );
    // A file added to the mounted dir is an input.
    fs::write(ctx.join("data/added.txt"), "x").unwrap();
    let img = fx.build_ok("bind:4", file, &ctx, &[]);
    assert_ne!(
        img.text("nonce"),
        nonce,
        "a file added to a bind-mounted dir did not rerun the step"
    );
    // from= an image reference: its merged layers, read-only.
    let file = format!(
        "ARG BASE\nFROM $BASE\nRUN --mount=type=bind,from={},source=/bin,target=/b ls /b > /listing\n",
        fx.base
    );
    let img = fx.build_ok("bind:image", &file, &ctx, &[]);
    let listing = img.text("listing");
    assert!(
        listing.lines().any(|l| l == "busybox") && listing.lines().any(|l| l == "sh"),
        "{listing}"
    );
    img.assert_not_committed(&["/b"]);
}

#[test]
fn tmpfs_mount_is_a_tmpfs_and_is_not_committed() {
    let Some(fx) = fixture("tmpfs_mount_is_a_tmpfs_and_is_not_committed") else {
        return;
    };
    let ctx = fx.context("ctx", &[]);
    let img = fx.build_ok(
        "tmpfs:1",
        "ARG BASE\nFROM $BASE\n\
         RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/f && grep ' /scratch tmpfs ' /proc/mounts > /mounts && cat /scratch/f > /seen\n",
        &ctx,
        &[],
    );
    assert!(img.text("mounts").contains("/scratch tmpfs"));
    assert_eq!(img.text("seen"), "x");
    img.assert_not_committed(&["/scratch"]);
}

/// Regular files under `dir` (symlinks not followed) whose content holds `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file()
                && fs::read(e.path()).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                found.push(e.path());
            }
        }
    }
    found
}

fn sha256_of(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("v");
    fs::write(&f, bytes).unwrap();
    let out = ok(Command::new("sha256sum").arg(&f));
    out.split_whitespace().next().unwrap().to_string()
}

#[test]
fn secret_is_visible_during_run_but_in_no_layer_and_no_history() {
    let Some(fx) = fixture("secret_is_visible_during_run_but_in_no_layer_and_no_history") else {
        return;
    };
    let ctx = fx.context("ctx", &[]);
    let value = "s3cr3t-VALUE-7f3a9c";
    let secret = fx.work.path().join("token.txt");
    fs::write(&secret, value).unwrap();
    let file = "ARG BASE\nFROM $BASE\n\
        RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /sum-file; stat -c '%a %u %g' /run/secrets/tok > /stat-default\n\
        RUN --mount=type=secret,id=tok,env=TOKEN printf %s \"$TOKEN\" | sha256sum | cut -d' ' -f1 > /sum-env; test -e /run/secrets/tok && echo file > /env-only || echo none > /env-only\n\
        RUN --mount=type=secret,id=tok,target=/etc/app/key,mode=0440,uid=1000,gid=50 stat -c '%a %u %g' /etc/app/key > /stat-custom\n\
        RUN --mount=type=secret,id=not-given test ! -e /run/secrets/not-given && echo skipped > /optional\n\
        USER app\n\
        RUN --mount=type=secret,id=tok (cat /run/secrets/tok > /dev/null 2>&1 && echo readable || echo denied) > /tmp/app-default\n\
        RUN --mount=type=secret,id=tok,uid=1000 (cat /run/secrets/tok > /dev/null 2>&1 && echo readable || echo denied) > /tmp/app-owned\n";
    let img = fx.build_ok(
        "secret:1",
        file,
        &ctx,
        &["--secret", &format!("id=tok,src={}", secret.display())],
    );
    let want = sha256_of(value.as_bytes());
    assert_eq!(
        img.text("sum-file"),
        want,
        "the secret file had the wrong content"
    );
    assert_eq!(img.text("stat-default"), "400 0 0");
    assert_eq!(
        img.text("sum-env"),
        want,
        "the env= secret had the wrong value"
    );
    assert_eq!(
        img.text("env-only"),
        "none",
        "env= without target= must not mount a file"
    );
    assert_eq!(img.text("stat-custom"), "440 1000 50");
    assert_eq!(img.text("optional"), "skipped");
    assert_eq!(
        img.text("tmp/app-default"),
        "denied",
        "a 0400 root secret was readable by USER app"
    );
    assert_eq!(
        img.text("tmp/app-owned"),
        "readable",
        "uid=1000 did not give the secret to USER app"
    );
    img.assert_not_committed(&["/run/secrets", "/etc/app/key", "/etc/app"]);
    // Not in any layer (the base included), nor in the config and its history.
    for (i, l) in img.layers.iter().enumerate() {
        assert!(
            !l.windows(value.len()).any(|w| w == value.as_bytes()),
            "the secret value is in layer {i}"
        );
    }
    let config = String::from_utf8_lossy(&img.config_raw);
    assert!(
        !config.contains(value),
        "the secret value is in the config: {config}"
    );
    assert!(
        !config.contains(&secret.display().to_string()),
        "the secret's path is in the config"
    );
    assert!(
        img.config["history"]
            .as_array()
            .is_some_and(|h| !h.is_empty())
    );
    // Nor anywhere in the store: unpacked layers, step dirs, caches.
    let leaks = files_containing(&fx.root, value.as_bytes());
    assert!(leaks.is_empty(), "the secret value is in {leaks:?}");

    // required=true without such a secret fails, naming the id and what to pass.
    let out = fx.build(
        "secret:2",
        "ARG BASE\nFROM $BASE\nRUN --mount=type=secret,id=needed,required=true true\n",
        &ctx,
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needed") && err.contains("--secret"), "{err}");
    assert!(
        err.contains(":3"),
        "the error does not name the Containerfile line: {err}"
    );
}

#[test]
fn failing_run_reports_exit_code_stderr_tail_and_line() {
    let Some(fx) = fixture("failing_run_reports_exit_code_stderr_tail_and_line") else {
        return;
    };
    let ctx = fx.context("ctx", &[]);
    let out = fx.build(
        "fail:1",
        "ARG BASE\nFROM $BASE\nRUN echo fine\nRUN echo 'boom: the widget is missing' >&2; exit 7\nRUN echo never\n",
        &ctx,
        &[],
    );
    assert!(!out.status.success(), "a failing RUN must fail the build");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fail:1.Containerfile:4"),
        "no file:line in: {err}"
    );
    assert!(err.contains("exit code 7"), "no exit code in: {err}");
    assert!(
        err.contains("boom: the widget is missing"),
        "no stderr tail in: {err}"
    );
    let out = fx.build(
        "fail:2",
        "ARG BASE\nFROM $BASE\nRUN [\"/no/such/program\"]\n",
        &ctx,
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/no/such/program") && err.contains(":3"),
        "{err}"
    );
    // ssh mounts are refused clearly rather than silently skipped.
    let out = fx.build(
        "fail:3",
        "ARG BASE\nFROM $BASE\nRUN --mount=type=ssh true\n",
        &ctx,
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ssh") && err.contains("not supported"),
        "{err}"
    );
}

#[test]
fn network_none_has_only_loopback() {
    let Some(fx) = fixture("network_none_has_only_loopback") else {
        return;
    };
    let ctx = fx.context("ctx", &[]);
    // The build arg keeps the second build from reusing the first one's layers (--network is not part of
    // the cache key, as in Docker and buildah).
    let file = "ARG BASE\nFROM $BASE\nARG V\nRUN ls /sys/class/net > /ifaces\nRUN --network=none ls /sys/class/net > /ifaces-step\n";
    let img = fx.build_ok(
        "net:1",
        file,
        &ctx,
        &["--network", "none", "--build-arg", "V=1"],
    );
    assert_eq!(img.text("ifaces"), "lo");
    assert_eq!(img.text("ifaces-step"), "lo");
    let img = fx.build_ok("net:2", file, &ctx, &["--build-arg", "V=2"]);
    assert_ne!(
        img.text("ifaces"),
        "lo",
        "the default network is the host's, as in buildah"
    );
    assert_eq!(
        img.text("ifaces-step"),
        "lo",
        "RUN --network=none was not applied"
    );
}

#[test]
fn every_mount_kind_works_in_copy_mode_and_under_runc() {
    let Some(fx) = fixture("every_mount_kind_works_in_copy_mode_and_under_runc") else {
        return;
    };
    let ctx = fx.context("ctx", &[("data/a", "ctxdata\n")]);
    let value = "runc-and-copy-secret-5d1e";
    let secret = fx.work.path().join("tok");
    fs::write(&secret, value).unwrap();
    let file = "ARG BASE\nFROM $BASE AS s\nRUN echo stage > /m\nFROM $BASE\nARG V\n\
        RUN --mount=type=secret,id=tok --mount=type=cache,target=/c --mount=type=bind,source=data,target=/d \
            --mount=type=bind,from=s,target=/s --mount=type=tmpfs,target=/t \
            sha256sum /run/secrets/tok | cut -d' ' -f1 > /out; cat /d/a /s/m >> /out; echo $V >> /c/log; \
            cat /c/log | wc -l >> /out; echo t > /t/x; ls /sys/class/net >> /out\n";
    let sum = sha256_of(value.as_bytes());
    let secret_arg = format!("id=tok,src={}", secret.display());
    let mut count = 0;
    for (name, extra, env) in [
        ("copy", vec![], vec![("LADE_NO_OVERLAY", "1")]),
        ("runc", vec!["--isolation", "oci"], vec![]),
    ] {
        if name == "runc" && peer("runc").is_none() {
            continue;
        }
        count += 1;
        let mut args = vec!["--network", "none", "--secret", &secret_arg, "--build-arg"];
        let v = format!("V={name}");
        args.push(&v);
        args.extend(extra);
        let tag = format!("kinds:{name}");
        let out = fx.build_with_env(&tag, file, &ctx, &args, &env);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let img = fx.image(&tag);
        assert_eq!(
            img.text("out"),
            format!("{sum}\nctxdata\nstage\n{count}\nlo"),
            "{name}"
        );
        img.assert_not_committed(&["/run/secrets", "/c", "/d", "/s", "/t"]);
        for l in &img.layers {
            assert!(
                !l.windows(value.len()).any(|w| w == value.as_bytes()),
                "{name}: the secret is in a layer"
            );
        }
    }
}

#[test]
fn locked_and_private_caches_are_never_used_by_two_steps_at_once() {
    let Some(fx) = fixture("locked_and_private_caches_are_never_used_by_two_steps_at_once") else {
        return;
    };
    let ctx = fx.context("ctx", &[]);
    // Stages a and b are independent, so the executor runs them at the same time; each step marks the cache
    // busy for a while and records whether it found the other one's mark.
    for sharing in ["locked", "private"] {
        let step = format!(
            "RUN --mount=type=cache,id=c-{sharing},target=/c,sharing={sharing} \
             if test -e /c/busy; then echo COLLISION; else echo clean; fi > /result; \
             touch /c/busy; sleep 2; rm -f /c/busy; echo done >> /c/log\n"
        );
        let file = format!(
            "ARG BASE\nFROM $BASE AS a\n{step}FROM $BASE AS b\n{step}FROM $BASE\n\
             RUN --mount=type=bind,from=a,source=/result,target=/ra --mount=type=bind,from=b,source=/result,target=/rb \
             cat /ra /rb > /results\n"
        );
        let img = fx.build_ok(&format!("sharing:{sharing}"), &file, &ctx, &[]);
        assert_eq!(
            img.text("results"),
            "clean\nclean",
            "sharing={sharing}: two steps used one cache dir at once"
        );
    }
}

#[test]
fn run_gets_env_args_user_workdir_and_shell_from_the_image() {
    let Some(fx) = fixture("run_gets_env_args_user_workdir_and_shell_from_the_image") else {
        return;
    };
    let ctx = fx.context("ctx", &[]);
    let file = "ARG BASE\nFROM $BASE\nENV A=image\nARG A=arg\nARG B=argb\nWORKDIR /w/sub\nUSER app\n\
        RUN echo \"$A $B $(id -u):$(id -g) $(pwd) $HOME $PATH\" > /tmp/env-out; echo \"$HTTP_PROXY\" > /tmp/proxy\n\
        SHELL [\"/bin/sh\", \"-c\", \"echo shell-form >> /tmp/shell; eval \\\"$0\\\"\"]\n\
        RUN echo ran > /tmp/ran\n\
        RUN [\"/bin/sh\", \"-c\", \"echo exec-form > /tmp/exec\"]\n";
    let img = fx.build_ok(
        "env:1",
        file,
        &ctx,
        &["--build-arg", "HTTP_PROXY=http://proxy.invalid:3128"],
    );
    assert_eq!(
        img.text("tmp/env-out"),
        "image argb 1000:1000 /w/sub /home/app /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "image ENV must win over ARG; USER, WORKDIR, HOME and PATH come from the image"
    );
    assert_eq!(
        img.text("tmp/proxy"),
        "http://proxy.invalid:3128",
        "proxy args reach RUN's environment"
    );
    assert_eq!(
        img.text("tmp/shell"),
        "shell-form",
        "the shell form must run through SHELL, the exec form must not"
    );
    assert_eq!(img.text("tmp/ran"), "ran");
    assert_eq!(img.text("tmp/exec"), "exec-form");
    let history = img.config["history"].to_string();
    assert!(
        !history.contains("proxy.invalid"),
        "a proxy arg reached the history: {history}"
    );
}

#[test]
fn a_crash_under_emulation_gets_a_hint_and_a_native_one_does_not() {
    let Some(fx) = fixture("a_crash_under_emulation_gets_a_hint_and_a_native_one_does_not") else {
        return;
    };
    let ctx = fx.context("ctx", &[]);
    // A child shell killed by SIGSEGV: the step's shell exits 139.
    let file = "ARG BASE\nFROM $BASE\nRUN sh -c 'kill -SEGV $$'; exit $?\n";
    let out = fx.build("crash:native", file, &ctx, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3") && err.contains("exit code 139"), "{err}");
    assert!(
        !err.contains("hint: the command crashed"),
        "a native crash got the emulation hint: {err}"
    );
    let emulated = Path::new(oci::ARM64_BUSYBOX).is_file()
        && Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists();
    if !emulated {
        assert!(
            !lade_tests::peers_required(),
            "arm64 busybox (scripts/setup.sh) and a qemu-aarch64 binfmt_misc handler are needed"
        );
        eprintln!(
            "\n*** SKIPPED the emulated half: no arm64 busybox or no qemu-aarch64 binfmt handler ***\n"
        );
        return;
    }
    let layout = fx.work.path().join("arm64");
    oci::busybox_image_for(&layout, "1", "arm64");
    let out = run(lade()
        .arg("--root")
        .arg(&fx.root)
        .args([
            "build",
            "--platform",
            "linux/arm64",
            "-t",
            "crash:arm64",
            "-f",
        ])
        .arg({
            let f = fx.work.path().join("crash-arm64.Containerfile");
            fs::write(&f, file).unwrap();
            f
        })
        .arg("--build-arg")
        .arg(format!("BASE=oci:{}:1", layout.display()))
        .arg(&ctx));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exit code 139"), "{err}");
    assert!(
        err.contains("hint: the command crashed while running under CPU emulation (arm64"),
        "{err}"
    );
    // The step's own shell killed by a signal: under qemu-user as pid 1 that used to hang forever (pid 1
    // cannot die of a signal sent inside its namespace). Bounded, so a regression fails instead of hanging.
    let f = fx.work.path().join("crash-pid1.Containerfile");
    fs::write(
        &f,
        "ARG BASE\nFROM $BASE\nRUN echo about to crash >&2; kill -SEGV $$\n",
    )
    .unwrap();
    let mut cmd = lade();
    cmd.arg("--root")
        .arg(&fx.root)
        .args([
            "build",
            "--platform",
            "linux/arm64",
            "-t",
            "crash:pid1",
            "-f",
        ])
        .arg(&f)
        .arg("--build-arg")
        .arg(format!("BASE=oci:{}:1", layout.display()))
        .arg(&ctx)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        stderr.read_to_string(&mut err).unwrap();
        err
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > std::time::Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a RUN killed by a signal under emulation hung the build");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let err = reader.join().unwrap();
    assert!(!status.success());
    assert!(err.contains("killed by signal 11 (SIGSEGV)"), "{err}");
    assert!(
        err.contains("about to crash") && err.contains("hint: the command crashed"),
        "{err}"
    );
}
