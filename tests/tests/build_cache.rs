//! The layer cache, driven through `lade build --explain-cache`: every kind of input change gives a hit or a
//! miss as it should, a miss names what changed, and a hit never returns stale content.

use lade_tests::oci::{busybox_image, umoci_add_layer};
use lade_tests::{lade, ok, require_peers};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const CONTAINERFILE: &str = "\
FROM localhost/base:1
ARG V=1
COPY app/ /app/
RUN echo \"$V\" > /v && cat /app/a.txt > /copy-of-a
ENV DONE=1
";

struct Project {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    ctx: PathBuf,
    layout: PathBuf,
}

fn project() -> Project {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let ctx = tmp.path().join("ctx");
    let layout = tmp.path().join("base");
    busybox_image(&layout, "1");
    ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg("lade:localhost/base:1"));
    fs::create_dir_all(ctx.join("app/sub")).unwrap();
    fs::write(ctx.join("Containerfile"), CONTAINERFILE).unwrap();
    fs::write(ctx.join("app/a.txt"), "alpha\n").unwrap();
    fs::write(ctx.join("app/sub/b.txt"), "beta\n").unwrap();
    fs::write(ctx.join("app/ignored.log"), "noise\n").unwrap();
    fs::write(ctx.join(".containerignore"), "app/*.log\n").unwrap();
    Project {
        _tmp: tmp,
        root,
        ctx,
        layout,
    }
}

/// One step's cache verdict from `--explain-cache`.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Hit,
    Miss(String),
}

impl Project {
    fn build(&self, extra: &[&str]) -> (Vec<(usize, Verdict)>, String) {
        let mut cmd = lade();
        cmd.arg("--root")
            .arg(&self.root)
            .args(["build", "--explain-cache", "-t", "app:1"])
            .args(extra)
            .arg(&self.ctx);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "lade build failed:\n{stderr}");
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let verdicts = stderr
            .lines()
            .filter_map(|l| {
                let rest = l.split_once("] CACHE step ")?.1;
                let (n, v) = rest.split_once(": ")?;
                let v = if v.starts_with("hit") {
                    Verdict::Hit
                } else {
                    Verdict::Miss(v.strip_prefix("miss: ").unwrap_or(v).to_string())
                };
                Some((n.parse().ok()?, v))
            })
            .collect();
        (verdicts, id)
    }

    /// Hit or miss for (COPY, RUN): steps 2 and 3 of the Containerfile.
    fn copy_run(&self, extra: &[&str]) -> (Verdict, Verdict) {
        let (v, _) = self.build(extra);
        let get = |n| {
            v.iter()
                .find(|(s, _)| *s == n)
                .unwrap_or_else(|| panic!("no cache line for step {n} in {v:?}"))
                .1
                .clone()
        };
        (get(2), get(3))
    }

    /// A file of the built image `app:1`, read from an OCI layout lade exports and umoci unpacks.
    fn image_file(&self, path: &str) -> Option<String> {
        let out = tempfile::tempdir().unwrap();
        let layout = out.path().join("oci");
        ok(lade()
            .arg("--root")
            .arg(&self.root)
            .args(["push", "app:1"])
            .arg(format!("oci:{}:x", layout.display())));
        let bundle = out.path().join("bundle");
        ok(Command::new("umoci")
            .args(["raw", "unpack", "--rootless", "--image"])
            .arg(format!("{}:x", layout.display()))
            .arg(&bundle));
        fs::read_to_string(bundle.join(path.trim_start_matches('/'))).ok()
    }
}

/// Same name, different image: add a file to the base and copy it over the old name.
fn change_base(p: &Project) {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("base2");
    busybox_image(&layout, "1");
    let img = format!("{}:1", layout.display());
    umoci_add_layer(&img, &[("etc/base-version", b"2\n")]);
    ok(lade()
        .arg("--root")
        .arg(&p.root)
        .args(["copy", "-q"])
        .arg(format!("oci:{img}"))
        .arg("lade:localhost/base:1"));
}

fn is_miss(v: &Verdict, needle: &str) -> bool {
    matches!(v, Verdict::Miss(why) if why.contains(needle))
}

fn write(p: &Path, s: &str) {
    fs::write(p, s).unwrap();
}

#[test]
fn unchanged_rebuild_hits_every_step_and_gives_the_same_image() {
    require_peers!("umoci");
    if !lade_tests::need_root("unchanged_rebuild_hits_every_step_and_gives_the_same_image") {
        return;
    }
    let p = project();
    let (first, _) = p.build(&[]);
    assert!(
        first.iter().all(|(_, v)| matches!(v, Verdict::Miss(_))),
        "a first build cannot hit: {first:?}"
    );
    let (second, _) = p.build(&[]);
    assert_eq!(second.len(), 2, "COPY and RUN report: {second:?}");
    assert!(second.iter().all(|(_, v)| *v == Verdict::Hit), "{second:?}");
    let (nocache, _) = p.build(&["--no-cache"]);
    assert!(
        nocache.iter().all(|(_, v)| matches!(v, Verdict::Miss(_))),
        "--no-cache must not hit: {nocache:?}"
    );
    assert_eq!(p.image_file("/copy-of-a").as_deref(), Some("alpha\n"));
    // What a --no-cache build made is cached, as buildah's "new set of cached layers": the next build of
    // another clean store after one hits every step (the COPY's chain key is the same with and without it).
    let q = project();
    let (first, _) = q.build(&["--no-cache"]);
    assert!(first.iter().all(|(_, v)| matches!(v, Verdict::Miss(_))));
    let (after, _) = q.build(&[]);
    assert!(
        after.len() == 2 && after.iter().all(|(_, v)| *v == Verdict::Hit),
        "{after:?}"
    );
}

#[test]
fn content_mode_added_and_removed_files_invalidate_copy_and_what_follows() {
    require_peers!("umoci");
    if !lade_tests::need_root(
        "content_mode_added_and_removed_files_invalidate_copy_and_what_follows",
    ) {
        return;
    }
    let p = project();
    p.build(&[]);
    let a = p.ctx.join("app/a.txt");

    // One changed byte: COPY misses and names the file; the RUN after it misses too; no stale content.
    write(&a, "alphA\n");
    let (copy, run) = p.copy_run(&[]);
    assert!(is_miss(&copy, "file app/a.txt changed"), "{copy:?}");
    assert!(matches!(run, Verdict::Miss(_)), "{run:?}");
    assert_eq!(p.image_file("/copy-of-a").as_deref(), Some("alphA\n"));
    assert_eq!(p.copy_run(&[]), (Verdict::Hit, Verdict::Hit));

    // The same content with a different mode.
    fs::set_permissions(&a, fs::Permissions::from_mode(0o600)).unwrap();
    let (copy, _) = p.copy_run(&[]);
    assert!(
        matches!(copy, Verdict::Miss(_)),
        "a mode change must miss: {copy:?}"
    );
    assert_eq!(p.copy_run(&[]).0, Verdict::Hit);

    // An added file, then a removed one.
    write(&p.ctx.join("app/sub/c.txt"), "gamma\n");
    let (copy, _) = p.copy_run(&[]);
    assert!(is_miss(&copy, "file app/sub/c.txt added"), "{copy:?}");
    fs::remove_file(p.ctx.join("app/sub/b.txt")).unwrap();
    let (copy, _) = p.copy_run(&[]);
    assert!(is_miss(&copy, "file app/sub/b.txt removed"), "{copy:?}");

    // A file the .containerignore excludes changes nothing.
    write(&p.ctx.join("app/ignored.log"), "other noise\n");
    assert_eq!(p.copy_run(&[]), (Verdict::Hit, Verdict::Hit));
}

#[test]
fn build_args_invalidate_only_the_steps_that_use_them() {
    require_peers!("umoci");
    if !lade_tests::need_root("build_args_invalidate_only_the_steps_that_use_them") {
        return;
    }
    let p = project();
    p.build(&[]);
    // A build arg no ARG declares is not used: every step hits.
    assert_eq!(
        p.copy_run(&["--build-arg", "UNUSED=x"]),
        (Verdict::Hit, Verdict::Hit)
    );
    // The ARG the RUN sees: COPY still hits, RUN misses and names the arg.
    let (copy, run) = p.copy_run(&["--build-arg", "V=2"]);
    assert_eq!(copy, Verdict::Hit);
    assert!(is_miss(&run, "arg V changed"), "{run:?}");
    assert_eq!(p.image_file("/v").as_deref(), Some("2\n"));
    assert_eq!(
        p.copy_run(&["--build-arg", "V=2"]),
        (Verdict::Hit, Verdict::Hit)
    );
}

#[test]
fn a_changed_base_image_invalidates_every_step() {
    require_peers!("umoci");
    if !lade_tests::need_root("a_changed_base_image_invalidates_every_step") {
        return;
    }
    let p = project();
    p.build(&[]);
    change_base(&p);
    let (copy, run) = p.copy_run(&[]);
    assert!(is_miss(&copy, "previous step changed"), "{copy:?}");
    assert!(matches!(run, Verdict::Miss(_)), "{run:?}");
    assert_eq!(p.image_file("/etc/base-version").as_deref(), Some("2\n"));
    let _ = &p.layout;
}

#[test]
fn a_copy_link_layer_is_reused_over_a_changed_base() {
    require_peers!("umoci");
    if !lade_tests::need_root("a_copy_link_layer_is_reused_over_a_changed_base") {
        return;
    }
    let p = project();
    write(
        &p.ctx.join("Containerfile"),
        &CONTAINERFILE.replace("COPY app/ /app/", "COPY --link --chown=1:2 app/ /app/"),
    );
    p.build(&[]);
    change_base(&p);
    let (copy, run) = p.copy_run(&[]);
    // A plain COPY misses here (a_changed_base_image_invalidates_every_step); the linked one does not, and
    // the steps after it still see the new base.
    assert_eq!(copy, Verdict::Hit);
    assert!(matches!(run, Verdict::Miss(_)), "{run:?}");
    assert_eq!(p.image_file("/etc/base-version").as_deref(), Some("2\n"));
    assert_eq!(p.image_file("/copy-of-a").as_deref(), Some("alpha\n"));
    // What the linked layer reads from the image is still in its key: a new WORKDIR above it misses.
    let with_workdir = |w: &str| {
        CONTAINERFILE
            .replace(
                "COPY app/ /app/",
                &format!("WORKDIR {w}\nCOPY --link app/ app/"),
            )
            .replace("cat /app/a.txt", "cat app/a.txt")
    };
    write(&p.ctx.join("Containerfile"), &with_workdir("/w1"));
    p.build(&[]);
    write(&p.ctx.join("Containerfile"), &with_workdir("/w2"));
    let (v, _) = p.build(&[]);
    let copy = &v
        .iter()
        .find(|(n, _)| *n == 3)
        .expect("a cache line for the COPY")
        .1;
    assert!(matches!(copy, Verdict::Miss(_)), "{v:?}");
    assert_eq!(p.image_file("/w2/app/a.txt").as_deref(), Some("alpha\n"));
    assert_eq!(p.image_file("/w1/app/a.txt"), None);
}

#[test]
fn prune_removes_the_unpacked_layers_no_image_uses() {
    if !lade_tests::need_root("prune_removes_the_unpacked_layers_no_image_uses") {
        return;
    }
    let p = project();
    p.build(&[]);
    let layer_dirs = || -> Vec<String> {
        fs::read_dir(p.root.join("lade/layers"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let built = layer_dirs();
    assert!(built.len() >= 3, "base, COPY and RUN layers: {built:?}");
    // While the images exist, prune keeps every layer they use.
    ok(lade().arg("--root").arg(&p.root).arg("prune"));
    assert_eq!(layer_dirs().len(), built.len());
    // Without the built image only the base's layers stay; without any image, none.
    ok(lade().arg("--root").arg(&p.root).args(["rmi", "app:1"]));
    let left = layer_dirs();
    assert!(!left.is_empty() && left.len() < built.len(), "{left:?}");
    ok(lade()
        .arg("--root")
        .arg(&p.root)
        .args(["rmi", "localhost/base:1"]));
    let out = ok(lade()
        .arg("--root")
        .arg(&p.root)
        .args(["prune", "--format", "json"]));
    assert_eq!(layer_dirs(), Vec::<String>::new(), "{out}");
    let files: Vec<_> = fs::read_dir(p.root.join("lade/layers"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(files.is_empty(), "markers left behind: {files:?}");
    // With the base back, the next build makes them again and still works.
    ok(lade()
        .arg("--root")
        .arg(&p.root)
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1", p.layout.display()))
        .arg("lade:localhost/base:1"));
    p.build(&[]);
    assert_eq!(p.image_file("/copy-of-a").as_deref(), Some("alpha\n"));
}
