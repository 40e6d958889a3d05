//! The example plugins of examples/plugins, built as their README says (`cargo build --release --target
//! wasm32-wasip2`, once per test process) and used as a user would: `include` (Dockerfile plus INCLUDE)
//! builds an image that buildah builds from the spliced Containerfile, and names both ends of an include
//! cycle, also when a Containerfile picks it with a pinned `# syntax=` line from docker-registry; `secrets`, through `lade scan`, finds secrets planted in every layer of an image made by umoci
//! (one deleted by a later layer) with the layer's diff_id from umoci's config, honours its allowlist from a
//! granted data directory, reports nothing in a Debian minbase image from mmdebstrap, and, in process, is
//! refused a read outside its granted directory while the host keeps serving.

use lade::plugin::scanner::{DataGrants, Entry, EntryKind, ImageInfo, MemoryFiles, ScanRequest};
use lade::plugin::{Limits, PluginSource, Runtime};
use lade_tests::oci::{oci_digest, umoci_add_layer, umoci_image};
use lade_tests::tree::{diff_trees, scan};
use lade_tests::{Registry, fails, lade, ok, require_peers, target_dir, workspace};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The examples, each built once per test process into a target directory shared by test runs (only a
/// cache: each is built from its own sources), and copied to `<name>.wasm`.
fn examples() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = target_dir().join("example-plugins");
        let out = target.join("built");
        std::fs::create_dir_all(&out).unwrap();
        for name in ["include", "secrets"] {
            let src = workspace().join("examples/plugins").join(name);
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(&src)
                .args(["build", "--quiet", "--release", "--locked"])
                .args(["--target", "wasm32-wasip2", "--target-dir"])
                .arg(&target);
            for var in [
                "RUSTFLAGS",
                "CARGO_ENCODED_RUSTFLAGS",
                "CARGO_BUILD_TARGET",
                "CARGO_TARGET_DIR",
            ] {
                cmd.env_remove(var);
            }
            let status = cmd
                .status()
                .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
            assert!(status.success(), "building {} failed", src.display());
            let built = target.join(format!("wasm32-wasip2/release/lade_{name}.wasm"));
            std::fs::copy(&built, out.join(format!("{name}.wasm")))
                .unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
        }
        out
    })
}

fn example(name: &str) -> PathBuf {
    examples().join(format!("{name}.wasm"))
}

/// `lade --root ROOT`.
fn lade_in(root: &Path) -> Command {
    let mut c = lade();
    c.arg("--root").arg(root);
    c
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------------------
// include

/// The config fields compared with buildah's.
const CONFIG_FIELDS: &[&str] = &["Env", "Cmd", "Entrypoint", "Labels", "WorkingDir", "User"];

/// Export `tag` with `cmd` (buildah or lade, with its store) to `dir:` and `oci:` under `out`: the config's
/// compared fields, and the unpacked root filesystem.
fn export(cmd: impl Fn() -> Command, tag: &str, out: &Path) -> (Value, PathBuf) {
    let dir = out.join("dir");
    let layout = out.join("oci");
    std::fs::create_dir_all(out).unwrap();
    for dest in [
        format!("dir:{}", dir.display()),
        format!("oci:{}:img", layout.display()),
    ] {
        ok(cmd().arg("push").arg(tag).arg(dest));
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let digest = manifest["config"]["digest"].as_str().unwrap();
    let config: Value = serde_json::from_slice(
        &std::fs::read(dir.join(digest.trim_start_matches("sha256:"))).unwrap(),
    )
    .unwrap();
    let mut fields = serde_json::Map::new();
    for f in CONFIG_FIELDS {
        let mut v = config["config"].get(*f).cloned().unwrap_or(Value::Null);
        if let Some(labels) = v.as_object_mut() {
            labels.remove("io.buildah.version");
        }
        let empty = matches!(&v, Value::Array(a) if a.is_empty())
            || matches!(&v, Value::Object(o) if o.is_empty())
            || v == Value::String(String::new());
        fields.insert(f.to_string(), if empty { Value::Null } else { v });
    }
    let rootfs = out.join("rootfs");
    ok(Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:img", layout.display()))
        .arg(&rootfs));
    (Value::Object(fields), rootfs)
}

#[test]
fn include_builds_what_buildah_builds_from_the_spliced_containerfile() {
    require_peers!("buildah", "umoci");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("lade");
    let ours = tmp.path().join("ours");
    let theirs = tmp.path().join("theirs");
    let installed = ok(lade_in(&root)
        .args(["plugin", "install"])
        .arg(example("include")));
    assert!(
        installed.contains("installed frontend plugin `include`"),
        "{installed}"
    );
    let fragments: &[(&str, &str)] = &[
        (
            "inc/meta.inc",
            "ENV GREETING=hello\nLABEL org.example.part=meta\nWORKDIR /app\n",
        ),
        (
            "inc/files.inc",
            "COPY data/ /app/data/\nINCLUDE inc/more.inc\n",
        ),
        ("inc/more.inc", "ENV MORE=\"from more.inc\"\n"),
        ("app.txt", "the app\n"),
        ("data/one", "1\n"),
        ("data/sub/two", "2\n"),
    ];
    write(&ours, fragments);
    write(
        &ours,
        &[(
            "Containerfile",
            "FROM scratch\nINCLUDE inc/meta.inc\nCOPY app.txt /app/\nINCLUDE inc/files.inc\nCMD [\"/app/run\"]\n",
        )],
    );
    // The same, spliced by hand, for buildah.
    write(&theirs, fragments);
    write(
        &theirs,
        &[(
            "Containerfile",
            "FROM scratch\nENV GREETING=hello\nLABEL org.example.part=meta\nWORKDIR /app\nCOPY app.txt /app/\n\
             COPY data/ /app/data/\nENV MORE=\"from more.inc\"\nCMD [\"/app/run\"]\n",
        )],
    );
    ok(lade_in(&root)
        .args([
            "build",
            "--format",
            "docker",
            "--frontend",
            "include",
            "-t",
            "incl:1",
        ])
        .arg(&ours));
    let buildah = || {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(tmp.path().join("buildah"))
            .arg("--runroot")
            .arg(tmp.path().join("buildah-run"))
            .args(["--storage-driver", "vfs"]);
        c
    };
    ok(buildah()
        .args(["bud", "--isolation", "chroot", "--layers=false"])
        .args(["--format", "docker", "-t", "incl:1"])
        .arg(&theirs));
    let (our_config, our_rootfs) =
        export(|| lade_in(&root), "incl:1", &tmp.path().join("out-lade"));
    let (their_config, their_rootfs) = export(buildah, "incl:1", &tmp.path().join("out-buildah"));
    assert_eq!(our_config, their_config);
    assert_eq!(our_config["Env"][2], "MORE=from more.inc", "{our_config}");
    let (ours, theirs) = (scan(&our_rootfs), scan(&their_rootfs));
    assert!(ours.contains_key("app/data/sub/two"), "{:?}", ours.keys());
    let diffs: Vec<String> = diff_trees(&theirs, &ours)
        .into_iter()
        .map(|d| d.text)
        .collect();
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
fn include_names_both_ends_of_a_cycle_and_points_into_included_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("lade");
    ok(lade_in(&root)
        .args(["plugin", "install"])
        .arg(example("include")));
    let ctx = tmp.path().join("ctx");
    write(
        &ctx,
        &[
            ("Containerfile", "FROM scratch\nINCLUDE parts/a.inc\n"),
            ("parts/a.inc", "ENV A=1\nINCLUDE parts/b.inc\n"),
            ("parts/b.inc", "# b\n\nINCLUDE parts/a.inc\n"),
        ],
    );
    let err = fails(
        lade_in(&root)
            .args(["build", "--frontend", "include", "-t", "cycle:1"])
            .arg(&ctx),
        1,
    );
    assert!(
        err.contains(
            "include cycle: parts/a.inc:2 includes parts/b.inc, parts/b.inc:3 includes parts/a.inc"
        ) && err.contains("parts/b.inc:3:1"),
        "{err}"
    );
    // An error inside an included file points at its file, line and column.
    write(
        &ctx,
        &[
            ("Containerfile", "FROM scratch\nINCLUDE parts/c.inc\n"),
            ("parts/c.inc", "ENV C=1\n  COPY --chmod=9z9 a /b\n"),
        ],
    );
    let err = fails(
        lade_in(&root)
            .args(["dockerfile", "parse", "--frontend", "include"])
            .arg(&ctx),
        1,
    );
    assert!(err.contains("parts/c.inc:2:3"), "{err}");
}

/// The dialect as the issue asks for it: pushed to a registry like any plugin, and chosen by the
/// Containerfile's own `# syntax=REF@DIGEST` line, with no `--frontend` and nothing installed.
#[test]
fn include_is_chosen_by_a_pinned_syntax_line_from_a_registry() {
    require_peers!("docker-registry", "skopeo");
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("lade");
    let reference = format!("{}/plugins/include:1", reg.addr);
    let pushed = ok(lade_in(&root)
        .args(["plugin", "push", "--tls-verify=false"])
        .arg(example("include"))
        .arg(&reference));
    let digest = pushed.lines().last().unwrap_or_default().trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{pushed}"
    );
    let ctx = tmp.path().join("ctx");
    write(
        &ctx,
        &[
            (
                "Containerfile",
                format!(
                    "# syntax={reference}@{digest}\nFROM scratch\nINCLUDE parts/env.inc\nCOPY a.txt /a.txt\n"
                )
                .as_str(),
            ),
            ("parts/env.inc", "ENV FROM_INCLUDE=yes\n"),
            ("a.txt", "a\n"),
        ],
    );
    ok(lade_in(&root)
        .args(["build", "--tls-verify=false", "-t", "syntax-include:1"])
        .arg(&ctx));
    // skopeo reads the config lade wrote: the included ENV is there.
    let dir = tmp.path().join("dir");
    ok(lade_in(&root)
        .args(["push", "syntax-include:1"])
        .arg(format!("dir:{}", dir.display())));
    let config: Value = serde_json::from_str(&ok(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("dir:{}", dir.display()))))
    .unwrap();
    let env = config["config"]["Env"].to_string();
    assert!(env.contains("FROM_INCLUDE=yes"), "{config}");

    // A cycle through the same line is reported with both positions.
    write(
        &ctx,
        &[
            (
                "Containerfile",
                format!("# syntax={reference}@{digest}\nFROM scratch\nINCLUDE parts/a.inc\n")
                    .as_str(),
            ),
            ("parts/a.inc", "INCLUDE parts/b.inc\n"),
            ("parts/b.inc", "INCLUDE parts/a.inc\n"),
        ],
    );
    let err = fails(
        lade_in(&root)
            .args(["build", "--tls-verify=false", "-t", "cycle:1"])
            .arg(&ctx),
        1,
    );
    assert!(
        err.contains("parts/a.inc:1 includes parts/b.inc, parts/b.inc:1 includes parts/a.inc"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// secrets, in process

fn entry(path: &str, size: usize, layer_index: u32, visible: bool) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File,
        size: size as u64,
        mode: 0o600,
        uid: 0,
        gid: 0,
        link_target: None,
        layer: format!("sha256:{}", format!("{layer_index}").repeat(64)),
        layer_index,
        visible,
    }
}

fn request() -> ScanRequest {
    ScanRequest {
        image: Some(ImageInfo {
            reference: "test".into(),
            digest: format!("sha256:{}", "f".repeat(64)),
            config: "{}".into(),
            platform: lade::plugin::frontend::Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
                os_version: None,
                os_features: vec![],
            },
            layers: vec![],
        }),
        options: vec![],
        inputs: vec![],
    }
}

/// Planted secrets, made from pieces so that this file is no finding itself.
fn aws_key_id() -> String {
    ["AKIA", "Z7Q3KD9WP2LM4XR8"].concat()
}

fn pem() -> String {
    let kind = "OPENSSH PRIVATE KEY";
    format!(
        "-----BEGIN {kind}-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END {kind}-----\n"
    )
}

#[test]
fn secrets_runs_sandboxed_with_its_allowlist_and_cannot_read_outside_it() {
    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(
        Limits {
            deadline: Duration::from_secs(20),
            ..Limits::default()
        },
        Some(cache.path().to_path_buf()),
    )
    .unwrap();
    let plugin = rt.load(&PluginSource::File(example("secrets"))).unwrap();
    let need = &plugin.info().needs.data_dirs[0];
    assert!(
        need.name == "secrets-allowlist" && !need.required,
        "{need:?}"
    );
    let scanner = plugin.scanner().unwrap();
    let wants = scanner.wants().unwrap();
    assert!(
        wants.all_layers,
        "a secret in a deleted file is still in the image"
    );

    let env = format!(
        "AWS_ACCESS_KEY_ID={}\nDOCS_KEY=AKIAIOSFODNN7EXAMPLE\n",
        aws_key_id()
    );
    let files = || {
        MemoryFiles::new([
            (
                entry("/root/.ssh/id_ed25519", pem().len(), 0, false),
                pem().into_bytes(),
            ),
            (
                entry("/srv/test/fixture.pem", pem().len(), 0, true),
                pem().into_bytes(),
            ),
            (
                entry("/app/.env", env.len(), 1, true),
                env.clone().into_bytes(),
            ),
        ])
    };
    let found = |grants: &DataGrants| -> Vec<(String, String, String)> {
        let out = scanner.scan(&request(), Box::new(files()), grants).unwrap();
        out.findings
            .iter()
            .map(|f| {
                (
                    f.id.clone(),
                    f.location.clone().unwrap_or_default(),
                    f.layer.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    let layer = |i: u32| format!("sha256:{}", format!("{i}").repeat(64));
    // No allowlist granted: everything.
    assert_eq!(
        found(&DataGrants::default()),
        [
            (
                "secrets/private-key".into(),
                "/root/.ssh/id_ed25519:1".into(),
                layer(0)
            ),
            (
                "secrets/private-key".into(),
                "/srv/test/fixture.pem:1".into(),
                layer(0)
            ),
            (
                "secrets/aws-access-key-id".into(),
                "/app/.env:1".into(),
                layer(1)
            ),
            (
                "secrets/aws-access-key-id".into(),
                "/app/.env:2".into(),
                layer(1)
            ),
        ]
    );
    // The allowlist: a path glob and a regex.
    let top = tempfile::tempdir().unwrap();
    let allow = top.path().join("allow");
    write(
        &allow,
        &[(
            "allowlist.txt",
            "# fixtures\n/srv/test/**\nAKIA[A-Z0-9]{9}EXAMPLE\n",
        )],
    );
    let grants = DataGrants::parse(&[format!("secrets-allowlist={}", allow.display())]).unwrap();
    let kept = found(&grants);
    assert_eq!(
        kept.iter().map(|f| f.1.as_str()).collect::<Vec<_>>(),
        ["/root/.ssh/id_ed25519:1", "/app/.env:1"]
    );

    // An allowlist that is a link out of the granted directory is refused, and the scan says why.
    let outside = top.path().join("outside.txt");
    std::fs::write(&outside, "/**\n# do not leak\n").unwrap();
    let linked = top.path().join("linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(&outside, linked.join("allowlist.txt")).unwrap();
    let bad = DataGrants::parse(&[format!("secrets-allowlist={}", linked.display())]).unwrap();
    let e = scanner
        .scan(&request(), Box::new(files()), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("in data directory `secrets-allowlist`") && !e.contains("do not leak"),
        "{e}"
    );
    // The host keeps serving: the same scanner, again, with the good grant.
    assert_eq!(found(&grants), kept);
}

// ---------------------------------------------------------------------------------------------------------
// secrets, through `lade scan`

/// The diff_ids of `layout:tag`, from the config umoci wrote.
fn diff_ids(layout: &Path, tag: &str) -> Vec<String> {
    let blob = |d: &str| -> Value {
        let path = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let manifest = oci_digest(layout, tag).unwrap();
    let config = blob(blob(&manifest)["config"]["digest"].as_str().unwrap());
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// `lade scan --plugin secrets -f json` with `extra` flags before `scan`: (id, location, layer, severity) of
/// each finding, in the scanner's order.
fn scan_secrets(root: &Path, extra: &[String], target: &str) -> Vec<[String; 4]> {
    let out = ok(lade_in(root)
        .args(extra)
        .args(["scan", "--plugin", "secrets", "-f", "json"])
        .arg(target));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            ["id", "location", "layer", "severity"]
                .map(|k| f[k].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[test]
fn secrets_finds_what_was_planted_in_every_layer_and_honours_the_allowlist() {
    require_peers!("umoci");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("lade");
    let installed = ok(lade_in(&root)
        .args(["plugin", "install"])
        .arg(example("secrets")));
    assert!(
        installed.contains("installed scanner plugin `secrets`"),
        "{installed}"
    );
    let layout = tmp.path().join("layout");
    let creds = format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        aws_key_id(),
        ["wJalrXUtnFEMI/K7MDENG", "/bPxRfiCYzQ9rT5mW2n"].concat()
    );
    let token = format!("GITHUB_TOKEN=ghs_{}\n", "x7".repeat(18));
    umoci_image(
        &layout,
        "planted",
        &[
            ("root/.ssh/id_ed25519", pem().as_bytes()),
            ("etc/os-release", b"ID=test\n"),
        ],
        None,
    );
    let img = format!("{}:planted", layout.display());
    // Layer 1 deletes the key (a whiteout) and adds credentials; layer 2 a token, a fixture key and the AWS
    // documentation's example key id.
    umoci_add_layer(
        &img,
        &[
            ("root/.ssh/.wh.id_ed25519", b""),
            ("home/app/.aws/credentials", creds.as_bytes()),
        ],
    );
    let docs = "# see https://docs.aws.amazon.com\nexample = AKIAIOSFODNN7EXAMPLE\n";
    umoci_add_layer(
        &img,
        &[
            ("app/.env", token.as_bytes()),
            ("srv/fixtures/server.pem", pem().as_bytes()),
            ("usr/share/doc/aws.txt", docs.as_bytes()),
        ],
    );
    let layers = diff_ids(&layout, "planted");
    assert_eq!(layers.len(), 3);
    let target = format!("oci:{}:planted", layout.display());
    let f = |id: &str, location: &str, layer: usize, severity: &str| {
        [
            format!("secrets/{id}"),
            location.to_string(),
            layers[layer].clone(),
            severity.to_string(),
        ]
    };
    let all = vec![
        f("private-key", "/root/.ssh/id_ed25519:1", 0, "CRITICAL"),
        f(
            "aws-access-key-id",
            "/home/app/.aws/credentials:2",
            1,
            "HIGH",
        ),
        f(
            "aws-secret-access-key",
            "/home/app/.aws/credentials:3",
            1,
            "CRITICAL",
        ),
        f("github-token", "/app/.env:1", 2, "HIGH"),
        f("private-key", "/srv/fixtures/server.pem:1", 2, "CRITICAL"),
        f("aws-access-key-id", "/usr/share/doc/aws.txt:2", 2, "HIGH"),
    ];
    let mut found = scan_secrets(&root, &[], &target);
    found.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(found, want);

    // The allowlist, granted as a data directory: a path glob and a regular expression.
    let allow = tmp.path().join("allow");
    write(
        &allow,
        &[(
            "allowlist.txt",
            "# test keys\n/srv/fixtures/**\nAKIA[A-Z0-9]{9}EXAMPLE\n",
        )],
    );
    let grant = vec![
        "--plugin-data".to_string(),
        format!("secrets-allowlist={}", allow.display()),
    ];
    let mut found = scan_secrets(&root, &grant, &target);
    found.sort();
    let mut want: Vec<_> = all
        .iter()
        .filter(|x| !x[1].starts_with("/srv/") && !x[1].starts_with("/usr/share/doc/"))
        .cloned()
        .collect();
    want.sort();
    assert_eq!(found, want);
    // A bad allowlist stops the scan and names its line.
    write(&allow, &[("allowlist.txt", "ok\n/[broken\n")]);
    let err = fails(
        lade_in(&root)
            .args(&grant)
            .args(["scan", "--plugin", "secrets"])
            .arg(&target),
        1,
    );
    assert!(
        err.contains("secrets-allowlist/allowlist.txt:2: invalid path glob `/[broken`"),
        "{err}"
    );
}

/// A Debian minbase root filesystem from mmdebstrap, as a tar, made once and kept in the target directory.
fn debian_minbase() -> PathBuf {
    let tar = target_dir().join("example-plugins/debian-minbase.tar");
    if !tar.is_file() {
        let part = tar.with_extension("tar.part");
        std::fs::create_dir_all(tar.parent().unwrap()).unwrap();
        ok(Command::new("mmdebstrap")
            .args(["--quiet", "--variant=minbase", "--format=tar", "bookworm"])
            .arg(&part));
        std::fs::rename(&part, &tar).unwrap();
    }
    tar
}

#[test]
fn secrets_reports_nothing_in_a_debian_minbase_image() {
    require_peers!("mmdebstrap", "umoci");
    if !lade_tests::need_root_for(
        "secrets_reports_nothing_in_a_debian_minbase_image",
        "mmdebstrap",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("lade");
    ok(lade_in(&root)
        .args(["plugin", "install"])
        .arg(example("secrets")));
    let layout = tmp.path().join("layout");
    ok(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    let img = format!("{}:debian", layout.display());
    ok(Command::new("umoci").args(["new", "--image", &img]));
    ok(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &img])
        .arg(debian_minbase()));
    // One planted key on top proves the whole image was read: it is the only finding.
    umoci_add_layer(&img, &[("opt/leak/key.pem", pem().as_bytes())]);
    let top = diff_ids(&layout, "debian")[1].clone();
    // A whole distribution in one call: a generous deadline for a debug build of lade.
    let found = scan_secrets(
        &root,
        &["--plugin-timeout".to_string(), "600".to_string()],
        &format!("oci:{img}"),
    );
    let want = [[
        "secrets/private-key".to_string(),
        "/opt/leak/key.pem:1".to_string(),
        top,
        "CRITICAL".to_string(),
    ]];
    assert_eq!(found, want);
}
