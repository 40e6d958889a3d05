//! FROM and the build outputs, through the real `lade build`: `--pull` policies against a loopback
//! docker-registry, bases from an `oci:` layout made by umoci, a docker-archive and an index (platform
//! chosen), and `--output`/`--push` read back by skopeo and umoci (never by lade).

use lade_tests::oci::{assert_blobs_valid, busybox_image, umoci_image};
use lade_tests::{Registry, fails, lade, ok, require_peers};
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A store, a build context and a umoci-made busybox base at `oci:<layout>:base`.
struct Project {
    tmp: tempfile::TempDir,
    root: PathBuf,
    ctx: PathBuf,
    layout: PathBuf,
}

impl Project {
    fn new(containerfile: &str) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("store");
        let ctx = tmp.path().join("ctx");
        let layout = tmp.path().join("base");
        busybox_image(&layout, "base");
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("hello.txt"), "hello from the context\n").unwrap();
        let p = Project {
            tmp,
            root,
            ctx,
            layout,
        };
        p.containerfile(containerfile);
        p
    }

    /// Write the Containerfile; `{BASE}` stands for the umoci layout's directory.
    fn containerfile(&self, text: &str) {
        let text = text.replace("{BASE}", &self.layout.display().to_string());
        fs::write(self.ctx.join("Containerfile"), text).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `lade --root R build ARGS CONTEXT`.
    fn build(&self, args: &[&str]) -> Command {
        let mut c = lade();
        c.arg("--root")
            .arg(&self.root)
            .arg("build")
            .args(args)
            .arg(&self.ctx);
        c
    }

    fn images(&self) -> String {
        ok(lade().arg("--root").arg(&self.root).arg("images"))
    }

    /// The manifest of a store image, read by skopeo (the store is an OCI layout).
    fn stored_manifest(&self, name: &str) -> Value {
        skopeo_json(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{name}", self.root.display()),
        ])
    }
}

fn skopeo_json(args: &[&str]) -> Value {
    let out = ok(Command::new("skopeo").args(args));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("skopeo {args:?}: {e}: {out}"))
}

fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn diff_ids(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

fn iid(p: &Path) -> String {
    fs::read_to_string(p).unwrap().trim().to_string()
}

#[test]
fn pull_never_with_a_missing_image_fails_clearly_and_tags_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Containerfile"),
        "FROM localhost/nothere:1\nLABEL a=b\n",
    )
    .unwrap();
    let root = tmp.path().join("store");
    let err = fails(
        lade()
            .arg("--root")
            .arg(&root)
            .args(["build", "--pull=never", "-t", "app:1"])
            .arg(&ctx),
        1,
    );
    assert!(err.contains("localhost/nothere:1"), "{err}");
    assert!(err.contains("--pull=never"), "{err}");
    assert!(err.contains("not in the local store"), "{err}");
    let images = ok(lade().arg("--root").arg(&root).arg("images"));
    assert!(!images.contains("app"), "{images}");
}

#[test]
fn bad_output_spec_fails_before_building() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Containerfile"), "FROM scratch\nLABEL a=b\n").unwrap();
    let root = tmp.path().join("store");
    let err = fails(
        lade()
            .arg("--root")
            .arg(&root)
            .args(["build", "-t", "app:1", "--output", "type=tarball,dest=x"])
            .arg(&ctx),
        1,
    );
    assert!(err.contains("unknown type `tarball`"), "{err}");
    let err = fails(
        lade()
            .arg("--root")
            .arg(&root)
            .args(["build", "-t", "app:1", "--output", "type=oci"])
            .arg(&ctx),
        1,
    );
    assert!(err.contains("needs dest=DIR"), "{err}");
    let images = ok(lade().arg("--root").arg(&root).arg("images"));
    assert!(!images.contains("app"), "{images}");
}

/// FROM an `oci:` layout made by umoci; every file output kind read back by skopeo and umoci.
#[test]
fn from_an_umoci_layout_to_oci_archives_and_a_rootfs() {
    require_peers!("umoci", "skopeo");
    let p = Project::new(
        "FROM oci:{BASE}:base\nCOPY hello.txt /hello.txt\nLABEL stage=out\nENV FROM_BUILD=1\n",
    );
    let rootfs_tar = p.path("rootfs.tar");
    let (oci, oci_tar, docker_tar, rootfs, iidfile) = (
        p.path("out-oci"),
        p.path("out.oci.tar"),
        p.path("out.docker.tar"),
        p.path("rootfs"),
        p.path("iid"),
    );
    ok(&mut p.build(&[
        "-t",
        "app:1",
        "--iidfile",
        iidfile.to_str().unwrap(),
        "--output",
        &format!("type=oci,dest={}", oci.display()),
        "--output",
        &format!("type=oci-archive,dest={}", oci_tar.display()),
        "--output",
        &format!(
            "type=docker-archive,dest={},name=localhost/app:1",
            docker_tar.display()
        ),
        "--output",
        &format!("type=local,dest={}", rootfs.display()),
        "--output",
        &format!("type=tar,dest={}", rootfs_tar.display()),
    ]));
    let id = iid(&iidfile);
    assert!(p.images().contains("localhost/app"), "{}", p.images());
    let base = format!("oci:{}:base", p.layout.display());
    let base_manifest = skopeo_json(&["inspect", "--raw", &base]);
    let base_config = skopeo_json(&["inspect", "--config", &base]);

    // type=oci: a layout skopeo reads under `latest`, the base layer reused as is, one layer added.
    let out = format!("oci:{}:latest", oci.display());
    let m = skopeo_json(&["inspect", "--raw", &out]);
    assert_eq!(
        m["config"]["digest"],
        json!(id),
        "the exported image is the built one"
    );
    let layers = layer_digests(&m);
    assert_eq!(layers.len(), 2, "{m}");
    assert_eq!(layers[0], layer_digests(&base_manifest)[0]);
    let info = skopeo_json(&["inspect", &out]);
    assert_eq!(info["Labels"]["stage"], "out", "{info}");
    let env: Vec<&str> = info["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"FROM_BUILD=1"), "{env:?}");
    assert!(
        env.iter().any(|e| e.starts_with("PATH=")),
        "the base's Env is kept: {env:?}"
    );
    let cfg = skopeo_json(&["inspect", "--config", &out]);
    assert_eq!(diff_ids(&cfg)[0], diff_ids(&base_config)[0]);
    assert_blobs_valid(&oci);

    // umoci unpacks it: the base's files and the copied one.
    let bundle = p.path("bundle");
    let mut unpack = Command::new("umoci");
    unpack.arg("unpack");
    if !lade_tests::is_root() {
        unpack.arg("--rootless");
    }
    ok(unpack
        .arg("--image")
        .arg(format!("{}:latest", oci.display()))
        .arg(&bundle));
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "hello from the context\n"
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert_eq!(
        fs::read_link(bundle.join("rootfs/bin/sh")).unwrap(),
        Path::new("busybox")
    );

    // type=oci-archive: the same manifest.
    let m2 = skopeo_json(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:latest", oci_tar.display()),
    ]);
    assert_eq!(m2, m);

    // type=docker-archive: a docker-format image with the same config and diff_ids, named as asked.
    let dref = format!("docker-archive:{}", docker_tar.display());
    let dm = skopeo_json(&["inspect", "--raw", &dref]);
    assert_eq!(
        dm["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(dm["layers"].as_array().unwrap().len(), 2);
    let dinfo = skopeo_json(&["inspect", &dref]);
    assert_eq!(dinfo["Labels"]["stage"], "out", "{dinfo}");
    let dcfg = skopeo_json(&["inspect", "--config", &dref]);
    assert_eq!(diff_ids(&dcfg), diff_ids(&cfg));
    let manifest_json = tar_member(&docker_tar, "manifest.json");
    let mj: Value = serde_json::from_slice(&manifest_json).unwrap();
    assert_eq!(mj[0]["RepoTags"], json!(["localhost/app:1"]), "{mj}");

    // type=local: the root filesystem, layers applied.
    assert_eq!(
        fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
        "hello from the context\n"
    );
    assert!(rootfs.join("bin/busybox").is_file());

    // type=tar: the same tree, as GNU tar extracts it.
    let extracted = p.path("extracted");
    fs::create_dir_all(&extracted).unwrap();
    ok(Command::new("tar")
        .arg("-C")
        .arg(&extracted)
        .arg("-xf")
        .arg(&rootfs_tar));
    assert_eq!(
        fs::read_to_string(extracted.join("hello.txt")).unwrap(),
        "hello from the context\n"
    );
    assert_eq!(
        fs::read(extracted.join("bin/busybox")).unwrap(),
        fs::read(rootfs.join("bin/busybox")).unwrap()
    );
    assert_eq!(
        fs::read_link(extracted.join("usr/bin")).unwrap(),
        Path::new("../bin")
    );

    // A second build into the same non-empty rootfs dir is refused, naming it.
    let err = fails(
        &mut p.build(&[
            "-t",
            "app:1",
            "--output",
            &format!("type=local,dest={}", rootfs.display()),
        ]),
        1,
    );
    assert!(err.contains("not empty"), "{err}");
}

fn tar_member(archive: &Path, name: &str) -> Vec<u8> {
    let mut a = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut v = vec![];
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            return v;
        }
    }
    panic!("{name} is not in {}", archive.display());
}

/// FROM a docker-archive written by skopeo: same diff_ids as the base it came from.
#[test]
fn from_a_docker_archive_written_by_skopeo() {
    require_peers!("umoci", "skopeo");
    let p = Project::new("");
    let archive = p.path("base.tar");
    ok(Command::new("skopeo").args([
        "copy",
        &format!("oci:{}:base", p.layout.display()),
        &format!("docker-archive:{}:example.com/base:7", archive.display()),
    ]));
    p.containerfile(&format!(
        "FROM docker-archive:{}\nLABEL from=archive\n",
        archive.display()
    ));
    ok(&mut p.build(&["-t", "fromarchive:1"]));
    let m = p.stored_manifest("localhost/fromarchive:1");
    let cfg: Value = {
        let d = m["config"]["digest"].as_str().unwrap();
        let hex = d.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&fs::read(p.root.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let base_cfg = skopeo_json(&[
        "inspect",
        "--config",
        &format!("oci:{}:base", p.layout.display()),
    ]);
    assert_eq!(diff_ids(&cfg), diff_ids(&base_cfg));
    assert_eq!(cfg["config"]["Labels"]["from"], "archive");
    // Tagged as `lade pull` tags it: the archive's file name.
    assert!(p.images().contains("localhost/base"), "{}", p.images());
}

/// FROM an index: `--platform` picks the instance.
#[test]
fn from_an_index_picks_the_platform() {
    require_peers!("umoci", "skopeo");
    let p = Project::new("FROM oci:{BASE}:multi\nLABEL picked=yes\n");
    umoci_image(&p.layout, "a", &[("which", b"amd64\n")], None);
    umoci_image(&p.layout, "b", &[("which", b"arm64\n")], None);
    ok(Command::new("umoci").args([
        "config",
        "--image",
        &format!("{}:b", p.layout.display()),
        "--architecture",
        "arm64",
    ]));
    add_index(
        &p.layout,
        "multi",
        &[("a", "amd64", None), ("b", "arm64", Some("v8"))],
    );
    let want_b = skopeo_json(&[
        "inspect",
        "--config",
        &format!("oci:{}:b", p.layout.display()),
    ]);
    ok(&mut p.build(&["--platform", "linux/arm64", "-t", "multi:arm64"]));
    let m = p.stored_manifest("localhost/multi:arm64");
    let hex = m["config"]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let cfg: Value =
        serde_json::from_slice(&fs::read(p.root.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    assert_eq!(cfg["architecture"], "arm64", "{cfg}");
    assert_eq!(diff_ids(&cfg), diff_ids(&want_b));
    let err = fails(
        &mut p.build(&["--platform", "linux/s390x", "-t", "multi:s390x"]),
        1,
    );
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
}

/// Add an index named `name` to `layout` over its tags `(tag, arch, variant)`.
fn add_index(layout: &Path, name: &str, entries: &[(&str, &str, Option<&str>)]) {
    let idx_path = layout.join("index.json");
    let mut idx: Value = serde_json::from_slice(&fs::read(&idx_path).unwrap()).unwrap();
    let mut manifests = vec![];
    for (tag, arch, variant) in entries {
        let d = idx["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == json!(tag))
            .unwrap()
            .clone();
        let mut platform = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        manifests.push(json!({
            "mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"], "platform": platform
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests
    }))
    .unwrap();
    let staged = layout.join("index.staged");
    fs::write(&staged, &index).unwrap();
    let sum = ok(Command::new("sha256sum").arg(&staged));
    fs::remove_file(&staged).unwrap();
    let hex = sum.split_whitespace().next().unwrap();
    fs::write(layout.join("blobs/sha256").join(hex), &index).unwrap();
    idx["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": format!("sha256:{hex}"),
        "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": name}
    }));
    fs::write(&idx_path, serde_json::to_vec(&idx).unwrap()).unwrap();
}

/// `--pull` against a loopback registry: missing pulls once and then keeps the local image, newer follows
/// the registry and keeps the local image when it is down, always fails then, never never pulls.
#[test]
fn pull_policies_against_a_loopback_registry() {
    require_peers!("umoci", "skopeo", "docker-registry");
    let Some(reg) = Registry::start() else { return };
    let p = Project::new("");
    let base_ref = format!("{}/base:1", reg.addr);
    let push_base = |tag: &str| {
        ok(Command::new("skopeo").args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", p.layout.display()),
            &format!("docker://{base_ref}"),
        ]));
    };
    let first_diff = |name: &str| -> String {
        let m = p.stored_manifest(name);
        let hex = m["config"]["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        let cfg: Value =
            serde_json::from_slice(&fs::read(p.root.join("blobs/sha256").join(hex)).unwrap())
                .unwrap();
        diff_ids(&cfg)[0].clone()
    };
    let diff_of = |tag: &str| {
        diff_ids(&skopeo_json(&[
            "inspect",
            "--config",
            &format!("oci:{}:{tag}", p.layout.display()),
        ]))[0]
            .clone()
    };
    push_base("base");
    p.containerfile(&format!("FROM {base_ref}\nLABEL n=1\n"));

    let err = fails(&mut p.build(&["--pull=never", "-t", "app:0"]), 1);
    assert!(
        err.contains(&base_ref) && err.contains("--pull=never"),
        "{err}"
    );
    assert!(
        !p.images().contains(&base_ref),
        "--pull=never pulled: {}",
        p.images()
    );

    ok(&mut p.build(&["--tls-verify=false", "-t", "app:1"]));
    assert!(
        p.images().contains(&format!("{}/base", reg.addr)),
        "{}",
        p.images()
    );
    assert_eq!(first_diff("localhost/app:1"), diff_of("base"));
    ok(&mut p.build(&["--pull=never", "-t", "app:1n"]));

    // The registry's tag moves to another image.
    umoci_image(&p.layout, "v2", &[("v2.txt", b"two\n")], None);
    push_base("v2");
    ok(&mut p.build(&["--tls-verify=false", "--pull=missing", "-t", "app:2"]));
    assert_eq!(
        first_diff("localhost/app:2"),
        diff_of("base"),
        "missing keeps the local image"
    );
    ok(&mut p.build(&["--tls-verify=false", "--pull=newer", "-t", "app:3"]));
    assert_eq!(
        first_diff("localhost/app:3"),
        diff_of("v2"),
        "newer follows the registry"
    );
    assert_eq!(
        first_diff(&base_ref),
        diff_of("v2"),
        "the pull re-tags the base"
    );

    // The registry goes away.
    drop(reg);
    let out = lade_tests::run(&mut p.build(&["--tls-verify=false", "--pull=newer", "-t", "app:4"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot reach the registry"), "{stderr}");
    assert_eq!(first_diff("localhost/app:4"), diff_of("v2"));
    let err = fails(
        &mut p.build(&["--tls-verify=false", "--pull=always", "-t", "app:5"]),
        1,
    );
    assert!(
        err.contains(&base_ref) && err.contains("--pull=missing"),
        "{err}"
    );
}

/// `--push` and `--output type=registry` to a loopback registry, read back by skopeo.
#[test]
fn push_and_registry_output_to_a_loopback_registry() {
    require_peers!("umoci", "skopeo", "docker-registry");
    let Some(reg) = Registry::start() else { return };
    let p = Project::new("FROM oci:{BASE}:base\nCOPY hello.txt /hello.txt\nLABEL pushed=yes\n");
    let name = format!("{}/app:1", reg.addr);
    let other = format!("{}/other:2", reg.addr);
    let iidfile = p.path("iid");
    ok(&mut p.build(&[
        "--tls-verify=false",
        "-t",
        &name,
        "--push",
        "--iidfile",
        iidfile.to_str().unwrap(),
        "--output",
        &format!("type=registry,name={other}"),
    ]));
    let id = iid(&iidfile);
    for r in [&name, &other] {
        let m = skopeo_json(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{r}"),
        ]);
        assert_eq!(m["config"]["digest"], json!(id), "{r}: {m}");
        assert_eq!(m["layers"].as_array().unwrap().len(), 2);
        let info = skopeo_json(&["inspect", "--tls-verify=false", &format!("docker://{r}")]);
        assert_eq!(info["Labels"]["pushed"], "yes", "{r}: {info}");
    }
    // What was pushed is what the store holds, byte for byte.
    let stored = p.stored_manifest(&name);
    let pushed = skopeo_json(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    assert_eq!(stored, pushed);
}

/// The frontend sees the base's config through the resolver: its ENV expands in the child, and its
/// ONBUILD triggers run. The base is found in the store by short name, and as `lade:NAME`.
#[test]
fn a_local_base_gives_the_frontend_its_env_and_onbuild_triggers() {
    require_peers!("umoci");
    let p = Project::new(
        "FROM oci:{BASE}:base\nENV GREETING=hello\nONBUILD LABEL triggered=yes\nLABEL parent=1\n",
    );
    ok(&mut p.build(&["-t", "parent:1"]));
    let child_cfg = |name: &str| -> Value {
        let m = p.stored_manifest(name);
        let hex = m["config"]["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        serde_json::from_slice(&fs::read(p.root.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    for (from, tag) in [
        ("parent:1", "child:1"),
        ("lade:localhost/parent:1", "child:2"),
    ] {
        p.containerfile(&format!(
            "FROM {from}\nLABEL greeting=\"$GREETING world\"\n"
        ));
        ok(&mut p.build(&["--pull=never", "-t", tag]));
        let cfg = child_cfg(&format!("localhost/{tag}"));
        let labels = &cfg["config"]["Labels"];
        assert_eq!(labels["greeting"], "hello world", "{from}: {cfg}");
        assert_eq!(
            labels["triggered"], "yes",
            "{from}: the ONBUILD trigger ran: {cfg}"
        );
        assert_eq!(labels["parent"], "1", "{from}: {cfg}");
    }
    // `lade:` never pulls: an absent image is an error naming it.
    p.containerfile("FROM lade:localhost/absent:1\n");
    let err = fails(&mut p.build(&["-t", "child:3"]), 1);
    assert!(err.contains("localhost/absent:1"), "{err}");
}

/// FROM a digest-pinned index: the host's instance is pulled once, and later builds find the pinned
/// digest in the store without the registry.
#[test]
fn a_pinned_index_is_found_locally_once_pulled() {
    require_peers!("umoci", "skopeo", "docker-registry");
    let Some(reg) = Registry::start() else { return };
    let p = Project::new("");
    umoci_image(&p.layout, "a", &[("which", b"amd64\n")], None);
    umoci_image(&p.layout, "b", &[("which", b"arm64\n")], None);
    ok(Command::new("umoci").args([
        "config",
        "--image",
        &format!("{}:b", p.layout.display()),
        "--architecture",
        "arm64",
    ]));
    add_index(
        &p.layout,
        "multi",
        &[("a", "amd64", None), ("b", "arm64", Some("v8"))],
    );
    ok(Command::new("skopeo").args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", p.layout.display()),
        &format!("docker://{}/multi:1", reg.addr),
    ]));
    let digest = lade_tests::oci::oci_digest(&p.layout, "multi").unwrap();
    p.containerfile(&format!(
        "FROM {}/multi@{digest}\nLABEL pinned=1\n",
        reg.addr
    ));
    let want = diff_ids(&skopeo_json(&[
        "inspect",
        "--config",
        &format!("oci:{}:a", p.layout.display()),
    ]));
    let config_of = |name: &str| -> Value {
        let m = p.stored_manifest(name);
        let hex = m["config"]["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        serde_json::from_slice(&fs::read(p.root.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    ok(&mut p.build(&["--tls-verify=false", "-t", "pinned:1"]));
    assert_eq!(diff_ids(&config_of("localhost/pinned:1"))[..1], want[..]);
    drop(reg);
    ok(&mut p.build(&["--tls-verify=false", "-t", "pinned:2"]));
    assert_eq!(diff_ids(&config_of("localhost/pinned:2"))[..1], want[..]);
}
