//! Plugins as Wasm OCI artifacts (`lade plugin push`, `lade plugin install REF`) through a loopback
//! docker-registry and `oci:` layouts, read back by skopeo; and the frontend a Containerfile's `# syntax=`
//! line selects: a pushed frontend pulled once and cached by digest, BuildKit's `docker/dockerfile` lines
//! mapped to the built-in frontend offline, `--frontend` overriding the line.

use lade_tests::{Registry, fails, lade, lade_bin, ok, require_peers, run, target_dir, workspace};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The built-in Dockerfile frontend's component, as the host's build.rs left it: a real 0.2.0 frontend.
fn frontend_wasm() -> PathBuf {
    lade_bin();
    let p = target_dir().join("plugins/wasm32-wasip2/release/lade_dockerfile.wasm");
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// `lade --root ROOT ARGS`.
fn at(root: &Path, args: &[&str]) -> Command {
    let mut c = lade();
    c.arg("--root").arg(root).args(args);
    c
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn skopeo_raw(args: &[&str]) -> Value {
    let out = ok(Command::new("skopeo").arg("inspect").args(args));
    json(&out)
}

/// The manifest digest `lade plugin push` printed (its last line).
fn pushed_digest(out: &str) -> String {
    let d = out.lines().last().unwrap_or_default().trim().to_string();
    assert!(d.starts_with("sha256:") && d.len() == 71, "{out}");
    d
}

/// The installed (not built-in) rows of `lade plugin list --format json`.
fn installed(root: &Path) -> Vec<Value> {
    let list = json(&ok(&mut at(root, &["plugin", "list", "--format", "json"])));
    list.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "installed")
        .cloned()
        .collect()
}

/// Both streams of a finished command.
fn outputs(c: &mut Command) -> (bool, String) {
    let o = run(c);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn push_and_install_through_a_registry() {
    require_peers!("docker-registry", "skopeo");
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let wasm = frontend_wasm();
    let reference = format!("{}/plugins/front:1", reg.addr);
    let out = ok(at(&root, &["plugin", "push", "--tls-verify=false"])
        .arg(&wasm)
        .arg(&reference));
    let digest = pushed_digest(&out);

    // The artifact layout, as skopeo reads it from the registry.
    let docker = format!("docker://{reference}");
    let m = skopeo_raw(&["--raw", "--tls-verify=false", &docker]);
    assert_eq!(
        m["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{m}"
    );
    assert_eq!(
        m["config"]["mediaType"], "application/vnd.wasm.config.v0+json",
        "{m}"
    );
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{m}");
    assert_eq!(layers[0]["mediaType"], "application/wasm", "{m}");
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "dockerfile.wasm"
    );
    let bytes = fs::read(&wasm).unwrap();
    assert_eq!(layers[0]["size"], bytes.len());
    let layer_digest = layers[0]["digest"].as_str().unwrap().to_string();
    let config = skopeo_raw(&["--config", "--raw", "--tls-verify=false", &docker]);
    assert_eq!(config["architecture"], "wasm", "{config}");
    assert_eq!(config["os"], "wasip2", "{config}");
    assert_eq!(config["layerDigests"][0], layer_digest.as_str(), "{config}");
    assert_eq!(
        config["component"]["target"],
        "lade:plugin/frontend-plugin@0.2.0"
    );
    let exports = config["component"]["exports"].to_string();
    assert!(exports.contains("lade:plugin/frontend@0.2.0"), "{config}");

    // A wrong pin is refused, naming the pinned digest; nothing is installed.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = fails(
        at(&root, &["plugin", "install", "--tls-verify=false"]).arg(format!("{reference}@{wrong}")),
        1,
    );
    assert!(err.contains(&wrong), "{err}");
    assert!(installed(&root).is_empty());

    // Pinned to the pushed digest: installed, byte for byte, with where it came from.
    ok(at(&root, &["plugin", "install", "--tls-verify=false"])
        .arg(format!("{reference}@{digest}")));
    assert_eq!(
        fs::read(root.join("plugins/dockerfile.wasm")).unwrap(),
        bytes
    );
    let rows = installed(&root);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0]["origin"]["reference"],
        format!("docker://{reference}@{digest}").as_str()
    );
    assert_eq!(rows[0]["origin"]["manifest_digest"], digest.as_str());
    let text = ok(&mut at(&root, &["plugin", "list"]));
    assert!(
        text.contains(&format!("docker://{reference}@{digest}")) && text.contains(&digest),
        "{text}"
    );
    let text = ok(&mut at(&root, &["plugin", "inspect", "dockerfile"]));
    assert!(
        text.contains(&format!("from:        docker://{reference}@{digest}")),
        "{text}"
    );
}

#[test]
fn oci_layouts_install_offline_and_tampering_is_refused() {
    require_peers!("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let layout = tmp.path().join("layout");
    let wasm = frontend_wasm();
    let out = ok(at(&root, &["plugin", "push"])
        .arg(&wasm)
        .arg(format!("oci:{}:1", layout.display())));
    let digest = pushed_digest(&out);

    // skopeo copies the artifact to a layout of its own; lade installs from that, with no registry.
    let copy = tmp.path().join("copy");
    ok(Command::new("skopeo").args([
        "copy",
        &format!("oci:{}:1", layout.display()),
        &format!("oci:{}:1", copy.display()),
    ]));
    let installed_from = format!("oci:{}:1@{digest}", copy.display());
    ok(&mut at(&root, &["plugin", "install", &installed_from]));
    let rows = installed(&root);
    assert_eq!(rows[0]["origin"]["manifest_digest"], digest.as_str());
    assert_eq!(
        fs::read(root.join("plugins/dockerfile.wasm")).unwrap(),
        fs::read(&wasm).unwrap()
    );

    // A pin that is not the manifest the tag names.
    let other = tmp.path().join("other");
    let err = fails(
        at(&other, &["plugin", "install"]).arg(format!(
            "oci:{}:1@sha256:{}",
            copy.display(),
            "1".repeat(64)
        )),
        1,
    );
    assert!(
        err.contains(&format!("sha256:{}", "1".repeat(64))) && err.contains(&digest),
        "{err}"
    );

    // One byte of the component changed in the copy: its digest no longer matches the manifest.
    let m = skopeo_raw(&["--raw", &format!("oci:{}:1", copy.display())]);
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let blob = copy
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&blob, bytes).unwrap();
    let err = fails(
        at(&other, &["plugin", "install"]).arg(format!("oci:{}:1", copy.display())),
        1,
    );
    assert!(
        err.contains(&layer) && err.contains("does not match"),
        "{err}"
    );
    assert!(!other.join("plugins/dockerfile.wasm").exists());
}

#[test]
fn installing_checks_the_component_and_bounds_its_compile() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    // Over the size cap: refused before it is compiled, and never pushed.
    let big = tmp.path().join("big.wasm");
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.resize(65 << 20, 0);
    fs::write(&big, bytes).unwrap();
    let err = fails(at(&root, &["plugin", "install"]).arg(&big), 1);
    assert!(err.contains("more than the 64 MiB"), "{err}");
    let err = fails(
        at(&root, &["plugin", "push"])
            .arg(&big)
            .arg(format!("oci:{}:1", tmp.path().join("l").display())),
        1,
    );
    assert!(err.contains("more than the 64 MiB"), "{err}");
    assert!(!tmp.path().join("l").exists());
    // Not in the compile cache and a deadline no compile can meet: a clear error, nothing installed.
    let err = fails(
        at(
            &root,
            &["--plugin-compile-timeout", "0.001", "plugin", "install"],
        )
        .env("LADE_CACHE_DIR", tmp.path().join("fresh-cache"))
        .arg(frontend_wasm()),
        1,
    );
    assert!(
        err.contains("compile deadline") && err.contains("--plugin-compile-timeout"),
        "{err}"
    );
    assert!(!root.join("plugins/dockerfile.wasm").exists());
}

/// A context with a file and a Containerfile starting with `first_line`.
fn context(dir: &Path, first_line: &str) -> PathBuf {
    let ctx = dir.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    fs::write(
        ctx.join("Containerfile"),
        format!("{first_line}\nFROM scratch\nCOPY hello.txt /hello.txt\n"),
    )
    .unwrap();
    ctx
}

fn build(root: &Path, ctx: &Path, extra: &[&str]) -> Command {
    let mut c = at(root, &["build", "--timestamp", "0", "--tls-verify=false"]);
    c.args(extra).arg(ctx);
    c
}

/// The image ID a build printed last.
fn image_id(out: &str) -> String {
    out.lines()
        .rev()
        .find(|l| l.trim().len() == 64)
        .unwrap_or_else(|| panic!("no image ID in {out}"))
        .trim()
        .to_string()
}

#[test]
fn syntax_pulls_a_pushed_frontend_once_and_then_builds_from_the_cache() {
    require_peers!("docker-registry");
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let reference = format!("{}/plugins/front:1", reg.addr);
    let digest = pushed_digest(&ok(at(&root, &["plugin", "push", "--tls-verify=false"])
        .arg(frontend_wasm())
        .arg(&reference)));
    let ctx = context(tmp.path(), &format!("# syntax={reference}@{digest}"));

    let (okay, out) = outputs(&mut build(&root, &ctx, &[]));
    assert!(okay, "{out}");
    assert!(out.contains("frontend pulled"), "{out}");
    let pulled_id = image_id(&out);
    assert!(
        root.join("plugins/pulled")
            .join(format!(
                "sha256-{}.wasm",
                digest.trim_start_matches("sha256:")
            ))
            .is_file()
    );
    let manifest_gets = reg
        .log()
        .matches("GET /v2/plugins/front/manifests/")
        .count();
    assert!(manifest_gets >= 1);

    // The registry gone, the pinned frontend comes from the cache.
    drop(reg);
    let (okay, out) = outputs(&mut build(&root, &ctx, &[]));
    assert!(okay, "{out}");
    assert!(out.contains("frontend from the plugin cache"), "{out}");
    assert_eq!(image_id(&out), pulled_id);

    // The same Containerfile through the built-in frontend (--frontend overrides the line) gives the same
    // image: the pulled frontend is the built-in one, pushed.
    let (okay, out) = outputs(&mut build(&root, &ctx, &["--frontend", "dockerfile"]));
    assert!(okay, "{out}");
    assert!(out.contains("--frontend overrides"), "{out}");
    assert_eq!(image_id(&out), pulled_id);

    // A pin the cache does not hold needs the registry, which is gone: refused, naming the reference.
    let other = format!("sha256:{}", "2".repeat(64));
    fs::write(
        ctx.join("Containerfile"),
        format!("# syntax={reference}@{other}\nFROM scratch\n"),
    )
    .unwrap();
    let (okay, out) = outputs(&mut build(&root, &ctx, &[]));
    assert!(!okay && out.contains(&other), "{out}");
}

#[test]
fn buildkit_syntax_lines_use_the_builtin_frontend_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    for line in [
        "# syntax=docker/dockerfile:1.7".to_string(),
        "# syntax=docker.io/docker/dockerfile:1.7-labs".to_string(),
        format!("#syntax = docker/dockerfile:1@sha256:{}", "3".repeat(64)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), &line);
        let (okay, out) = outputs(&mut build(&root, &ctx, &[]));
        assert!(okay, "{line}: {out}");
        assert!(
            out.contains("using lade's built-in `dockerfile` frontend"),
            "{line}: {out}"
        );
    }
    // The example's Containerfile starts with such a line, and parses without a network.
    let (okay, out) =
        outputs(at(&root, &["dockerfile", "parse"]).arg(workspace().join("examples/hello")));
    assert!(
        okay && out.contains("built-in `dockerfile` frontend"),
        "{out}"
    );
    // An unknown plugin name is refused, naming it.
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), "# syntax=no-such-frontend");
    let (okay, out) = outputs(&mut build(&root, &ctx, &[]));
    assert!(
        !okay && out.contains("no plugin `no-such-frontend`"),
        "{out}"
    );
}
