//! The shared build cache (`--cache-to`, `--cache-from`): two "runners" (two stores, two copies of the context
//! with other mtimes and inodes) share a cache through a real docker-registry or an OCI layout directory.
//! Runner B runs no step A ran, downloads only the layers its image holds (counted in the registry's own
//! log), and gets A's image digest; cache mounts travel too; buildah's plain `--cache-from REPO` works.

use lade_tests::oci::busybox_image;
use lade_tests::{Registry, lade, ok, require_peers};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const CONTAINERFILE: &str = "\
FROM localhost/base:1
RUN echo one > /one
COPY app/ /app/
RUN --mount=type=cache,id=X,target=/cache sh -c 'echo from-a > /cache/seen; cat /one /app/a.txt > /all'
ENV DONE=1
WORKDIR /app
";

struct Runners {
    tmp: tempfile::TempDir,
    layout: PathBuf,
}

impl Runners {
    fn new() -> Runners {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("base");
        busybox_image(&layout, "1");
        Runners { tmp, layout }
    }

    /// A runner's clean store, holding only the base image.
    fn store(&self, name: &str) -> PathBuf {
        let root = self.tmp.path().join(format!("store-{name}"));
        ok(lade()
            .arg("--root")
            .arg(&root)
            .args(["copy", "-q"])
            .arg(format!("oci:{}:1", self.layout.display()))
            .arg("lade:localhost/base:1"));
        root
    }

    /// The same context in a directory of its own: other inodes, and every file touched to `stamp`.
    fn context(&self, name: &str, containerfile: &str, stamp: &str) -> PathBuf {
        let ctx = self.tmp.path().join(format!("ctx-{name}"));
        fs::create_dir_all(ctx.join("app/sub")).unwrap();
        fs::write(ctx.join("Containerfile"), containerfile).unwrap();
        fs::write(ctx.join("app/a.txt"), "alpha\n").unwrap();
        fs::write(ctx.join("app/sub/b.txt"), "beta\n").unwrap();
        ok(Command::new("find")
            .arg(&ctx)
            .args(["-exec", "touch", "-h", "-d", stamp, "{}", "+"]));
        ctx
    }
}

/// `lade build --explain-cache` in `root`: (the image ID, each step's verdict `hit`/`miss: ...`, stderr).
fn build(root: &Path, ctx: &Path, args: &[&str], epoch: bool) -> (String, Vec<String>, String) {
    let mut cmd = lade();
    cmd.arg("--root")
        .arg(root)
        .args(["build", "--explain-cache", "--tls-verify=false"])
        .args(args)
        .arg(ctx);
    if epoch {
        cmd.env("SOURCE_DATE_EPOCH", "1700000000");
    } else {
        cmd.env_remove("SOURCE_DATE_EPOCH");
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "lade build failed:\n{stderr}");
    let verdicts = stderr
        .lines()
        .filter_map(|l| {
            Some(
                l.split_once("] CACHE step ")?
                    .1
                    .split_once(": ")?
                    .1
                    .to_string(),
            )
        })
        .collect();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        verdicts,
        stderr,
    )
}

fn all_hits(verdicts: &[String], stderr: &str) {
    assert!(verdicts.len() >= 3, "too few cache lines:\n{stderr}");
    assert!(
        verdicts.iter().all(|v| v.starts_with("hit")),
        "a step ran instead of coming from the cache:\n{stderr}"
    );
}

fn skopeo_raw(reference: &str) -> Value {
    let out = ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    serde_json::from_str(&out).unwrap()
}

fn skopeo_digest(reference: &str) -> String {
    ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{reference}"),
    ]))
    .trim()
    .to_string()
}

/// The cache map of the artifact named `tag` in an OCI layout.
fn layout_map(dir: &Path, tag: &str) -> Value {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"));
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let m: Value =
        serde_json::from_slice(&fs::read(blob(entry["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    assert_eq!(
        m["artifactType"], "application/vnd.lade.cache.v1+json",
        "{m}"
    );
    serde_json::from_slice(&fs::read(blob(m["config"]["digest"].as_str().unwrap())).unwrap())
        .unwrap()
}

fn keys(map: &Value) -> BTreeSet<String> {
    map["steps"].as_object().unwrap().keys().cloned().collect()
}

/// A file of image `name` in `root`, read from an OCI layout lade exports and umoci unpacks.
fn image_file(root: &Path, name: &str, path: &str) -> Option<String> {
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("oci");
    ok(lade()
        .arg("--root")
        .arg(root)
        .args(["push", name])
        .arg(format!("oci:{}:x", layout.display())));
    let bundle = out.path().join("bundle");
    ok(Command::new("umoci")
        .args(["raw", "unpack", "--rootless", "--image"])
        .arg(format!("{}:x", layout.display()))
        .arg(&bundle));
    fs::read_to_string(bundle.join(path.trim_start_matches('/'))).ok()
}

#[test]
fn runner_b_reuses_runner_a_registry_cache_and_downloads_only_the_image_layers() {
    require_peers!("umoci", "skopeo", "docker-registry");
    if !lade_tests::need_root("registry cache") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let r = Runners::new();
    let cache = format!("{}/cache/app:main", reg.addr);
    let (a, b) = (r.store("a"), r.store("b"));
    let ctx_a = r.context("a", CONTAINERFILE, "2020-01-01 00:00:00");
    let ctx_b = r.context("b", CONTAINERFILE, "2023-06-15 12:34:56");
    let (tag_a, tag_b) = (format!("{}/app:a", reg.addr), format!("{}/app:b", reg.addr));
    let to = format!("type=registry,ref={cache},mode=max,mounts=true");
    let (id_a, va, err_a) = build(
        &a,
        &ctx_a,
        &["--cache-to", &to, "-t", &tag_a, "--push"],
        true,
    );
    assert!(va.iter().all(|v| v.starts_with("miss")), "{err_a}");
    // The cache is an artifact whose map names every layer step of the build.
    let manifest = skopeo_raw(&cache);
    assert_eq!(
        manifest["artifactType"], "application/vnd.lade.cache.v1+json",
        "{manifest}"
    );
    // Its layers were mounted from the repository A pushed the image to, not uploaded again.
    assert!(
        reg.log()
            .contains("\"POST /v2/cache/app/blobs/uploads/?mount=sha256:"),
        "{err_a}"
    );
    let before = reg.log().len();
    let from = format!("type=registry,ref={cache}");
    let (id_b, vb, err_b) = build(
        &b,
        &ctx_b,
        &["--cache-from", &from, "-t", &tag_b, "--push"],
        true,
    );
    let log = reg.log()[before..].to_string();
    all_hits(&vb, &err_b);
    assert_eq!(id_a, id_b, "the two runners' images differ:\n{err_b}");
    assert_eq!(skopeo_digest(&tag_a), skopeo_digest(&tag_b));
    // B downloaded exactly the image's layers above the base (which it had), each once, and nothing else
    // but the cache map.
    let image = skopeo_raw(&tag_a);
    let layers: Vec<&str> = image["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let gets: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
        .collect();
    let map_digest = manifest["config"]["digest"].as_str().unwrap();
    for l in &layers[1..] {
        let n = gets.iter().filter(|g| g.contains(l)).count();
        assert_eq!(n, 1, "layer {l} downloaded {n} times:\n{log}");
    }
    let others: Vec<&&str> = gets
        .iter()
        .filter(|g| !layers[1..].iter().any(|l| g.contains(l)) && !g.contains(map_digest))
        .collect();
    assert!(
        others.is_empty(),
        "blobs downloaded beyond the image's layers: {others:#?}"
    );
    // No step of B reads files (the COPY is keyed by its parent's key and the context before anything is
    // unpacked, and the cache recorded that WORKDIR /app exists), so B unpacked no layer at all, not even
    // the base's: the blobs are in its store, no tree is. A, which ran the steps, has the top one.
    let config: Value = serde_json::from_str(&ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!("docker://{tag_a}"),
    ])))
    .unwrap();
    let top = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    let hex = top.as_str().unwrap().trim_start_matches("sha256:");
    assert!(a.join("lade/layers").join(hex).is_dir());
    let unpacked: Vec<String> = fs::read_dir(b.join("lade/layers"))
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64)
        .collect();
    assert!(
        unpacked.is_empty(),
        "runner B unpacked layers {unpacked:?}, which no step needed:\n{err_b}"
    );
}

#[test]
fn cache_mounts_travel_to_a_clean_runner() {
    require_peers!("umoci", "docker-registry");
    if !lade_tests::need_root("cache mounts") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let r = Runners::new();
    let file = "FROM localhost/base:1\nARG V=a\n\
        RUN --mount=type=cache,id=X,target=/cache sh -c 'echo $V >> /cache/log; cp /cache/log /log'\n";
    let ctx = r.context("m", file, "2021-01-01 00:00:00");
    let cache = format!("{}/cache/mounts:1", reg.addr);
    let a = r.store("a");
    build(
        &a,
        &ctx,
        &[
            "--cache-to",
            &format!("type=registry,ref={cache},mounts=true"),
            "-t",
            "m:1",
        ],
        false,
    );
    assert_eq!(image_file(&a, "m:1", "/log").as_deref(), Some("a\n"));
    // B's step is another (V=b), so it runs, on the cache dir A's step left.
    let b = r.store("b");
    let from = format!("type=registry,ref={cache}");
    let (_, vb, err) = build(
        &b,
        &ctx,
        &["--cache-from", &from, "--build-arg", "V=b", "-t", "m:1"],
        false,
    );
    assert!(vb.iter().any(|v| v.starts_with("miss")), "{err}");
    assert_eq!(
        image_file(&b, "m:1", "/log").as_deref(),
        Some("a\nb\n"),
        "{err}"
    );
    // Without the cache, the mount starts empty.
    let c = r.store("c");
    build(&c, &ctx, &["--build-arg", "V=b", "-t", "m:1"], false);
    assert_eq!(image_file(&c, "m:1", "/log").as_deref(), Some("b\n"));
}

#[test]
fn keys_do_not_depend_on_the_machine_and_an_oci_dir_carries_the_cache() {
    require_peers!("umoci");
    if !lade_tests::need_root("oci cache") {
        return;
    }
    let r = Runners::new();
    let (a, b, c) = (r.store("a"), r.store("b"), r.store("c"));
    let ctx_a = r.context("a", CONTAINERFILE, "2020-01-01 00:00:00");
    let ctx_b = r.context("b", CONTAINERFILE, "2024-02-29 08:00:00");
    let (dir_a, dir_b) = (r.tmp.path().join("cache-a"), r.tmp.path().join("cache-b"));
    // Two cold builds of the same definition and context in two places give the same keys.
    for (root, ctx, dir) in [(&a, &ctx_a, &dir_a), (&b, &ctx_b, &dir_b)] {
        let to = format!("type=oci,dest={},mode=max", dir.display());
        let (_, v, err) = build(root, ctx, &["--cache-to", &to, "-t", "k:1"], false);
        assert!(v.iter().all(|v| v.starts_with("miss")), "{err}");
    }
    let (ka, kb) = (
        keys(&layout_map(&dir_a, "lade-cache")),
        keys(&layout_map(&dir_b, "lade-cache")),
    );
    assert_eq!(ka.len(), 3, "{ka:?}");
    assert_eq!(ka, kb, "the cache keys depend on where the context is");
    // A third runner builds B's copy from A's directory: every step hits.
    let from = format!("type=oci,src={}", dir_a.display());
    let (_, v, err) = build(&c, &ctx_b, &["--cache-from", &from, "-t", "k:1"], false);
    all_hits(&v, &err);
    assert_eq!(
        image_file(&c, "k:1", "/all").as_deref(),
        Some("one\nalpha\n")
    );
}

#[test]
fn buildah_plain_form_pushes_each_step_to_a_repository() {
    require_peers!("skopeo", "docker-registry");
    if !lade_tests::need_root("plain cache") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let r = Runners::new();
    let ctx = r.context("p", CONTAINERFILE, "2022-01-01 00:00:00");
    let repo = format!("{}/cache/plain", reg.addr);
    let (_, va, _) = build(
        &r.store("a"),
        &ctx,
        &["--cache-to", &repo, "-t", "p:1"],
        true,
    );
    // One tag per layer step, named by its key.
    let tags: Value = serde_json::from_str(&ok(Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{repo}"),
    ])))
    .unwrap();
    assert_eq!(tags["Tags"].as_array().unwrap().len(), va.len(), "{tags}");
    let (_, vb, err) = build(
        &r.store("b"),
        &ctx,
        &["--cache-from", &format!("{repo}:cache"), "-t", "p:1"],
        true,
    );
    all_hits(&vb, &err);
}

#[test]
fn copy_from_a_cached_stage_downloads_nothing_of_that_stage() {
    require_peers!("umoci", "skopeo", "docker-registry");
    if !lade_tests::need_root("registry cache, two stages") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let r = Runners::new();
    let file = "\
FROM localhost/base:1 AS build
RUN echo built > /out && head -c 65536 /dev/zero > /big
FROM localhost/base:1
COPY --from=build /out /out
";
    let (ctx_a, ctx_b) = (
        r.context("a", file, "2020-01-01 00:00:00"),
        r.context("b", file, "2021-01-01 00:00:00"),
    );
    let cache = format!("{}/cache/stages:1", reg.addr);
    let (id_a, va, err_a) = build(
        &r.store("a"),
        &ctx_a,
        &[
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
            "-t",
            "s:1",
        ],
        true,
    );
    assert_eq!(va.len(), 2, "{err_a}");
    let map_layers: Vec<String> = skopeo_raw(&cache)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        map_layers.len(),
        2,
        "mode=max records the build stage's step too"
    );
    // Each layer went up once (sent while the build went on; the export found it there).
    let puts = |d: &str| {
        reg.log()
            .lines()
            .filter(|l| {
                l.contains("\"PUT /v2/cache/stages/blobs/uploads/")
                    && l.contains(d.trim_start_matches("sha256:"))
            })
            .count()
    };
    for d in &map_layers {
        assert_eq!(puts(d), 1, "layer {d} uploaded {} times:\n{err_a}", puts(d));
    }
    assert!(
        err_a.contains("(0 blobs uploaded, 0 mounted, 2 already there)"),
        "the layers were not sent while the build went on:\n{err_a}"
    );
    let before = reg.log().len();
    let b = r.store("b");
    let (id_b, vb, err_b) = build(
        &b,
        &ctx_b,
        &[
            "--cache-from",
            &format!("type=registry,ref={cache}"),
            "-t",
            "s:1",
        ],
        true,
    );
    all_hits_of(&vb, 2, &err_b);
    assert_eq!(id_a, id_b, "{err_b}");
    // The COPY was keyed by the build stage's key: the stage's layer was neither downloaded nor unpacked,
    // only the final image's one layer above the base was fetched.
    let log = reg.log()[before..].to_string();
    let gets: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
        .collect();
    let fetched: Vec<&String> = map_layers
        .iter()
        .filter(|d| gets.iter().any(|g| g.contains(d.as_str())))
        .collect();
    assert_eq!(fetched.len(), 1, "layers fetched: {fetched:?}\n{log}");
    assert_eq!(
        image_file(&b, "s:1", "/out").as_deref(),
        Some("built\n"),
        "{err_b}"
    );
}

fn all_hits_of(verdicts: &[String], n: usize, stderr: &str) {
    assert_eq!(verdicts.len(), n, "cache lines:\n{stderr}");
    assert!(
        verdicts.iter().all(|v| v.starts_with("hit")),
        "a step ran instead of coming from the cache:\n{stderr}"
    );
}
