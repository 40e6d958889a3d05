//! The plugin sandbox: hostile plugins (tests/fixtures/plugins) each end as the right error and never take
//! the host down, built against either contract version; 0.1.0 and 0.2.0 plugins side by side; data
//! directories; the import check, the compile cache and `lade plugin list/inspect/install/remove`.

use lade::plugin::frontend::{
    BaseImage, ContextEntry, ContextFileKind, ContextReader, ContextStat, ImageResolver, NoImages,
    ParseRequest, Platform,
};
use lade::plugin::{Limits, PluginFailure, PluginSource, Runtime};
use lade_tests::{fails, lade, ok, run, target_dir, workspace};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const FIXTURES: &[&str] = &[
    "endless-loop",
    "memory-bomb",
    "recursion",
    "panic",
    "fs-reader",
    "net-caller",
    "future-contract",
    "well-behaved",
    "file-lister",
    "toy-signer",
    "sleeper",
];

/// Fixtures built against lade:plugin@0.2.0: the frontends above from the same source, plus 0.2.0-only ones.
const FIXTURES_V0_2: &[&str] = &[
    "endless-loop",
    "memory-bomb",
    "recursion",
    "panic",
    "fs-reader",
    "net-caller",
    "sleeper",
    "well-behaved",
    "data-reader",
    "key-signer",
];

/// The contract versions the shared-source fixtures are built for.
const VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// The fixture plugins, built for wasm32-wasip2 once per test process and copied to `<name>.wasm`, plus
/// `garbage.wasm` (bytes that are no component at all).
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = workspace().join("tests/fixtures/plugins");
        let target = target_dir().join("fixtures");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&src)
            .args([
                "build",
                "--quiet",
                "--release",
                "--locked",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(&target);
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
        ] {
            cmd.env_remove(var);
        }
        let status = cmd.status().expect("running cargo for the fixture plugins");
        assert!(
            status.success(),
            "building the fixture plugins in {} failed",
            src.display()
        );
        let out = target.join("plugins");
        std::fs::create_dir_all(&out).unwrap();
        for name in FIXTURES {
            let built = target
                .join("wasm32-wasip2/release")
                .join(format!("fixture_{}.wasm", name.replace('-', "_")));
            std::fs::copy(&built, out.join(format!("{name}.wasm")))
                .unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
        }
        // The 0.2.0 builds go in a directory of their own, so they keep the same names (and the same
        // plugin names in messages).
        std::fs::create_dir_all(out.join("v0.2.0")).unwrap();
        for name in FIXTURES_V0_2 {
            let krate = name.replace('-', "_");
            // A twin of a 0.1.0 fixture is `<crate>_v0_2`; a 0.2.0-only fixture has its plain name.
            let file = if FIXTURES.contains(name) {
                format!("fixture_{krate}_v0_2.wasm")
            } else {
                format!("fixture_{krate}.wasm")
            };
            let built = target.join("wasm32-wasip2/release").join(file);
            std::fs::copy(&built, out.join("v0.2.0").join(format!("{name}.wasm")))
                .unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
        }
        std::fs::write(
            out.join("garbage.wasm"),
            b"this is not a component, just some bytes\n".repeat(40),
        )
        .unwrap();
        out
    })
}

/// A fixture built against lade:plugin@0.1.0 (or version-independent: garbage, future-contract).
fn fixture(name: &str) -> PathBuf {
    fixtures().join(format!("{name}.wasm"))
}

/// A fixture built against the given contract version.
fn fixture_at(version: &str, name: &str) -> PathBuf {
    match version {
        "0.1.0" => fixture(name),
        v => fixtures()
            .join(format!("v{v}"))
            .join(format!("{name}.wasm")),
    }
}

/// A build context held in memory.
struct MemoryContext(BTreeMap<String, Vec<u8>>);

impl ContextReader for MemoryContext {
    fn read_file(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no such file"))
    }

    fn stat(&self, path: &str) -> anyhow::Result<Option<ContextStat>> {
        Ok(self.0.get(path).map(|c| ContextStat {
            kind: ContextFileKind::File,
            size: c.len() as u64,
            mode: 0o644,
        }))
    }

    fn list_dir(&self, _path: &str) -> anyhow::Result<Vec<ContextEntry>> {
        Ok(self
            .0
            .keys()
            .map(|k| ContextEntry {
                name: k.clone(),
                kind: ContextFileKind::File,
            })
            .collect())
    }
}

fn context() -> Arc<dyn ContextReader> {
    Arc::new(MemoryContext(BTreeMap::from([(
        "hello.txt".to_string(),
        b"hello from the context".to_vec(),
    )])))
}

/// Resolves `alpine` only.
struct OneImage;

impl ImageResolver for OneImage {
    fn resolve(&self, reference: &str, platform: &Platform) -> anyhow::Result<Option<BaseImage>> {
        match reference {
            "alpine" => Ok(Some(BaseImage {
                reference: "docker.io/library/alpine:latest".into(),
                env: vec![format!("ARCH={}", platform.architecture)],
                on_build: vec![],
                shell: vec![],
            })),
            "broken" => anyhow::bail!("the registry is on fire"),
            _ => Ok(None),
        }
    }
}

fn platform(arch: &str) -> Platform {
    Platform {
        os: "linux".into(),
        architecture: arch.into(),
        variant: None,
        os_version: None,
        os_features: vec![],
    }
}

fn request(source: &str) -> ParseRequest {
    ParseRequest {
        source: source.into(),
        file_name: "Containerfile".into(),
        build_args: vec![],
        target_platform: platform("arm64"),
        build_platform: platform("amd64"),
        target: None,
    }
}

/// A runtime of its own (its own engine and compile cache) with small limits.
fn runtime(deadline: Duration, cache: &Path) -> Runtime {
    let limits = Limits {
        deadline,
        memory: 64 << 20,
        ..Limits::default()
    };
    Runtime::new(limits, Some(cache.to_path_buf())).unwrap()
}

/// What a call to `name` ends with: a load error, a runtime failure, or the plugin's own answer.
fn call(rt: &Runtime, name: &str) -> String {
    call_file(rt, fixture(name))
}

fn call_file(rt: &Runtime, file: PathBuf) -> String {
    let plugin = match rt.load(&PluginSource::File(file)) {
        Ok(p) => p,
        Err(e) => return format!("load: {e:#}"),
    };
    match plugin.frontend().unwrap().parse(
        &request("read hello.txt"),
        context(),
        Arc::new(NoImages),
    ) {
        Ok(out) => format!("ok: {:?}", out.plan.directives),
        Err(PluginFailure::Runtime(e)) => format!("runtime: {e:#}"),
        Err(reported) => format!("reported: {reported}"),
    }
}

/// The well-behaved plugin works, in both contract versions: proof that the runtime survived whatever came
/// before.
fn assert_runtime_still_works(rt: &Runtime, after: &str) {
    for version in VERSIONS {
        let answer = call_file(rt, fixture_at(version, "well-behaved"));
        assert!(
            answer.contains("hello from the context"),
            "after {after}, a good {version} plugin failed: {answer}"
        );
    }
}

#[test]
fn hostile_plugins_each_get_the_right_error_and_the_next_call_works() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(Duration::from_secs(2), cache.path());
    let cases: &[(&str, &[&str])] = &[
        (
            "endless-loop",
            &["runtime: plugin `endless-loop` exceeded its 2 s deadline"],
        ),
        (
            "memory-bomb",
            &["runtime: plugin `memory-bomb` hit its 64 MiB memory cap"],
        ),
        (
            "recursion",
            &["runtime: plugin `recursion` overflowed its 1 MiB wasm stack"],
        ),
        (
            "panic",
            &[
                "runtime: plugin `panic` panicked at ",
                "panic/src/lib.rs:",
                "the panic fixture gives up on purpose",
            ],
        ),
        (
            "fs-reader",
            &[
                "load: plugin `fs-reader` imports `wasi:filesystem/",
                "may not use",
            ],
        ),
        (
            "net-caller",
            &[
                "load: plugin `net-caller` imports `wasi:",
                "wasi:sockets/tcp@0.2.6",
            ],
        ),
    ];
    // The same hostile source, built against each contract version, meets the same sandbox.
    for version in VERSIONS {
        for (name, expected) in cases {
            let file = fixture_at(version, name);
            assert!(file.exists(), "{}", file.display());
            let answer = call_file(&rt, file);
            for e in *expected {
                assert!(
                    answer.contains(e),
                    "{name} ({version}): expected `{e}` in: {answer}"
                );
            }
            assert_runtime_still_works(&rt, name);
        }
    }
    for (name, expected) in [
        (
            "future-contract",
            &[
                "load: plugin `future-contract` was built against lade:plugin@0.9.0",
                "it knows lade:plugin@0.1.0, lade:plugin@0.2.0",
            ][..],
        ),
        (
            "garbage",
            &["load: plugin `garbage` is not a WebAssembly component"][..],
        ),
    ] {
        let answer = call(&rt, name);
        for e in expected {
            assert!(answer.contains(e), "{name}: expected `{e}` in: {answer}");
        }
        assert_runtime_still_works(&rt, name);
    }
}

#[test]
fn plugins_of_both_contract_versions_load_and_run_in_one_process() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(Duration::from_secs(10), cache.path());
    let old = rt
        .load(&PluginSource::File(fixture_at("0.1.0", "well-behaved")))
        .unwrap();
    let new = rt
        .load(&PluginSource::File(fixture_at("0.2.0", "well-behaved")))
        .unwrap();
    assert_eq!(old.contract_version(), "0.1.0");
    assert_eq!(new.contract_version(), "0.2.0");
    let script = "read hello.txt\nstat hello.txt\nlist .\nimage alpine";
    let mut answers = Vec::new();
    // Interleaved, so neither version's bindings disturb the other's.
    for plugin in [&old, &new, &old, &new] {
        let out = plugin
            .frontend()
            .unwrap()
            .parse(&request(script), context(), Arc::new(OneImage))
            .unwrap();
        let d: BTreeMap<String, String> = out
            .plan
            .directives
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        assert_eq!(d["read:hello.txt"], "hello from the context");
        assert_eq!(d["stat:hello.txt"], "file 22 644");
        assert_eq!(d["list:."], "hello.txt:file");
        assert_eq!(
            d["image:alpine"],
            "docker.io/library/alpine:latest env=ARCH=arm64"
        );
        answers.push(d);
    }
    assert_eq!(
        answers[0], answers[1],
        "0.1.0 adapted up answers as 0.2.0 does"
    );
    // The plugin's own error comes up from 0.1.0 as from 0.2.0.
    for plugin in [&old, &new] {
        let failure = plugin
            .frontend()
            .unwrap()
            .parse(&request("fail adapted"), context(), Arc::new(NoImages))
            .unwrap_err();
        assert!(
            failure
                .to_string()
                .contains("Containerfile:1:1: error: adapted"),
            "{failure}"
        );
    }
    // Both declare no needs.
    assert!(old.info().needs.data_dirs.is_empty() && new.info().needs.data_dirs.is_empty());
}

#[test]
fn an_endless_loop_or_sleep_is_stopped_within_its_deadline_plus_one_second() {
    let cache = tempfile::tempdir().unwrap();
    let deadline = Duration::from_secs(1);
    let rt = runtime(deadline, cache.path());
    // Spinning in wasm (epoch interruption) and blocked in a host poll (the clock is cut at the deadline).
    for name in ["endless-loop", "sleeper"] {
        let plugin = rt.load(&PluginSource::File(fixture(name))).unwrap();
        let started = Instant::now();
        let result = plugin
            .frontend()
            .unwrap()
            .parse(&request(""), context(), Arc::new(NoImages));
        let took = started.elapsed();
        let Err(PluginFailure::Runtime(e)) = result else {
            panic!("{name} was not stopped as a runtime failure")
        };
        assert!(
            e.to_string().contains("exceeded its 1 s deadline"),
            "{name}: {e:#}"
        );
        // The acceptance bound: stopped within the deadline plus one second (and not before the deadline).
        assert!(
            took >= deadline && took <= deadline + Duration::from_secs(1),
            "{name} stopped after {took:?}"
        );
    }
}

#[test]
fn host_interfaces_reach_the_plugin_and_its_errors_come_back_apart() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(Duration::from_secs(10), cache.path());
    let plugin = rt
        .load(&PluginSource::File(fixture("well-behaved")))
        .unwrap();
    assert_eq!(plugin.info().name, "well-behaved");
    assert_eq!(plugin.info().version, "1.2.3");
    assert_eq!(plugin.contract_version(), "0.1.0");
    let frontend = plugin.frontend().unwrap();
    let script = "read hello.txt\nread missing.txt\nstat hello.txt\nstat nope\nlist .\nimage alpine\nimage busybox\n\
                  image broken\nprint to stdout\neprint to stderr";
    let out = frontend
        .parse(&request(script), context(), Arc::new(OneImage))
        .unwrap();
    let d: BTreeMap<String, String> = out
        .plan
        .directives
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    assert_eq!(d["read:hello.txt"], "hello from the context");
    assert!(
        d["read:missing.txt"].starts_with("host error: reading `missing.txt` in the build context"),
        "{d:?}"
    );
    assert_eq!(d["stat:hello.txt"], "file 22 644");
    assert_eq!(d["stat:nope"], "none");
    assert_eq!(d["list:."], "hello.txt:file");
    // The target platform reaches the resolver; a resolver error reaches the plugin as a host error.
    assert_eq!(
        d["image:alpine"],
        "docker.io/library/alpine:latest env=ARCH=arm64"
    );
    assert_eq!(d["image:busybox"], "none");
    assert!(
        d["image:broken"].contains("resolving base image `broken`: the registry is on fire"),
        "{d:?}"
    );

    // The plugin's own error: diagnostics with file:line:col and hint, not a runtime failure.
    let failure = frontend.parse(
        &request("read hello.txt\nfail no such thing"),
        context(),
        Arc::new(NoImages),
    );
    let Err(failure @ PluginFailure::Reported { .. }) = failure else {
        panic!("expected the plugin's own error")
    };
    assert_eq!(failure.diagnostics().len(), 1);
    let text = failure.to_string();
    assert!(
        text.contains("Containerfile:2:1: error: no such thing")
            && text.contains("hint: remove the fail line"),
        "{text}"
    );

    // A plugin is no frontend and a scanner at once.
    assert!(plugin.scanner().is_err() && plugin.signer().is_err());
}

#[test]
fn a_frontend_reads_the_real_build_context_only_inside_it_and_not_what_is_ignored() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello from the context").unwrap();
    std::fs::set_permissions(
        dir.path().join("hello.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::write(dir.path().join("secret.txt"), "do not leak").unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "secret.txt\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("escape")).unwrap();
    ok(Command::new("mkfifo").arg(dir.path().join("fifo")));
    let ctx = lade::context::BuildContext::open(dir.path(), None).unwrap();

    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(Duration::from_secs(10), cache.path());
    let plugin = rt
        .load(&PluginSource::File(fixture("well-behaved")))
        .unwrap();
    let script = "read hello.txt\nstat hello.txt\nread secret.txt\nstat secret.txt\nread ../../../etc/hostname\n\
                  read /etc/hostname\nread escape\nread fifo\nread .\nlist .";
    let out = plugin
        .frontend()
        .unwrap()
        .parse(&request(script), Arc::new(ctx), Arc::new(NoImages))
        .unwrap();
    let d: BTreeMap<String, String> = out
        .plan
        .directives
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    assert_eq!(d["read:hello.txt"], "hello from the context");
    assert_eq!(d["stat:hello.txt"], "file 22 640");
    assert_eq!(d["stat:secret.txt"], "none", "{d:?}");
    for path in [
        "secret.txt",
        "../../../etc/hostname",
        "/etc/hostname",
        "escape",
    ] {
        let v = &d[&format!("read:{path}")];
        assert!(
            v.starts_with("host error: reading"),
            "{path} was readable: {v}"
        );
    }
    assert!(
        d["list:."].contains("hello.txt:file") && !d["list:."].contains("secret"),
        "{d:?}"
    );
}

fn scan_entry(
    path: &str,
    size: u64,
    layer_index: u32,
    visible: bool,
) -> lade::plugin::scanner::Entry {
    lade::plugin::scanner::Entry {
        path: path.into(),
        kind: lade::plugin::scanner::EntryKind::File,
        size,
        mode: 0o644,
        uid: 0,
        gid: 0,
        link_target: None,
        layer: format!("sha256:layer{layer_index}"),
        layer_index,
        visible,
    }
}

fn scan_request(
    options: &[(&str, &str)],
    inputs: Vec<lade::plugin::scanner::InputDocument>,
) -> lade::plugin::scanner::ScanRequest {
    use lade::plugin::scanner::{ImageInfo, KeyValue, ScanRequest};
    ScanRequest {
        image: Some(ImageInfo {
            reference: "docker.io/library/alpine:3".into(),
            digest: "sha256:abc".into(),
            config: "{}".into(),
            platform: platform("amd64"),
            layers: vec!["sha256:layer0".into(), "sha256:layer1".into()],
        }),
        options: options
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        inputs,
    }
}

#[test]
fn a_scanner_reads_exactly_the_files_it_is_handed_in_chunks() {
    use lade::plugin::scanner::{DataGrants, MemoryFiles};
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(Duration::from_secs(10), cache.path());
    let plugin = rt
        .load(&PluginSource::File(fixture("file-lister")))
        .unwrap();
    assert_eq!(plugin.kind(), lade::plugin::Kind::Scanner);
    assert!(plugin.frontend().is_err());
    let scanner = plugin.scanner().unwrap();
    // A 0.1.0 scanner's globs, adapted up: the final filesystem only.
    let wants = scanner.wants().unwrap();
    assert_eq!(wants.globs, ["/etc/**"]);
    assert!(!wants.all_layers && !wants.executables);
    let files = MemoryFiles::new([
        (
            scan_entry("/etc/os-release", 10, 1, true),
            b"ID=alpine\n".to_vec(),
        ),
        (scan_entry("/etc/empty", 0, 1, true), Vec::new()),
    ]);
    let out = scanner
        .scan(
            &scan_request(&[("chunk", "3")], vec![]),
            Box::new(files),
            &DataGrants::default(),
        )
        .unwrap();
    let messages: Vec<(&str, &str)> = out
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [("/etc/os-release", "ID=alpine\n"), ("/etc/empty", "")]
    );
    // 0.1.0 findings carry no layer.
    assert!(out.findings.iter().all(|f| f.layer.is_none()));
    assert_eq!(out.documents.len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&out.documents[0].content),
        "docker.io/library/alpine:3\n/etc/os-release sha256:layer1\n/etc/empty sha256:layer1\n"
    );
    // Without an image (documents alone), a 0.1.0 scanner says it cannot.
    let mut no_image = scan_request(&[], vec![]);
    no_image.image = None;
    let e = scanner
        .scan(
            &no_image,
            Box::new(MemoryFiles::default()),
            &DataGrants::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("lade:plugin@0.1.0 and scans images only"), "{e}");
}

/// A data directory for the data-reader fixture, a secret beside it, and links in and out.
fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let db = top.path().join("db");
    std::fs::create_dir_all(db.join("sub")).unwrap();
    std::fs::write(db.join("rules.txt"), "rule one\nrule two\n").unwrap();
    std::fs::write(db.join("sub/deep.txt"), "deep").unwrap();
    std::fs::write(top.path().join("secret.txt"), "do not leak").unwrap();
    std::os::unix::fs::symlink(top.path().join("secret.txt"), db.join("out-abs")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", db.join("out-rel")).unwrap();
    std::os::unix::fs::symlink("rules.txt", db.join("in")).unwrap();
    (top, db)
}

fn findings_of(out: &lade::plugin::scanner::ScanResult) -> BTreeMap<String, String> {
    out.findings
        .iter()
        .map(|f| (f.id.clone(), f.message.clone()))
        .collect()
}

#[test]
fn a_scanner_reads_its_granted_data_directory_and_nothing_outside_it() {
    use lade::plugin::scanner::{DataGrants, Document, InputDocument, MemoryFiles};
    let (top, db) = data_dir();
    let grants = DataGrants::parse(&[format!("db={}", db.display())]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(Duration::from_secs(10), cache.path());
    let plugin = rt
        .load(&PluginSource::File(fixture_at("0.2.0", "data-reader")))
        .unwrap();
    assert_eq!(plugin.contract_version(), "0.2.0");
    let needs = &plugin.info().needs;
    assert_eq!(needs.data_dirs.len(), 2);
    assert!(needs.data_dirs[0].name == "db" && needs.data_dirs[0].required);
    let scanner = plugin.scanner().unwrap();
    let wants = scanner.wants().unwrap();
    assert!(wants.all_layers && wants.executables);

    let secret = top.path().join("secret.txt").display().to_string();
    let options = [
        ("read", "db:rules.txt"),
        ("read", "db:sub/../in"),
        ("read-at", "db:rules.txt:5:3"),
        ("list", "db:"),
        ("read", "db:../secret.txt"),
        ("read", "db:sub/../../secret.txt"),
        ("read", &format!("db:{secret}")),
        ("read", "db:out-abs"),
        ("read", "db:out-rel"),
        ("list", "db:.."),
        ("open", "extra"),
        ("open", "elsewhere"),
    ];
    // A file a later layer deleted still reaches an all-layers scanner, marked invisible, with its layer.
    let files = MemoryFiles::new([
        (scan_entry("/etc/key", 4, 0, false), b"key!".to_vec()),
        (scan_entry("/etc/os-release", 4, 1, true), b"ID=x".to_vec()),
    ]);
    let inputs = vec![InputDocument {
        producer: "sbom".into(),
        document: Document {
            media_type: "text/plain".into(),
            content: b"an earlier document".to_vec(),
        },
    }];
    let out = scanner
        .scan(&scan_request(&options, inputs), Box::new(files), &grants)
        .unwrap();
    let f = findings_of(&out);
    assert_eq!(f["read db:rules.txt"], "rule one\nrule two\n");
    assert_eq!(
        f["read db:sub/../in"], "rule one\nrule two\n",
        "a link inside is followed"
    );
    assert_eq!(f["read-at db:rules.txt:5:3"], "one");
    assert_eq!(f["list db:"], "in,out-abs,out-rel,rules.txt,sub");
    for refused in [
        "read db:../secret.txt".to_string(),
        "read db:sub/../../secret.txt".to_string(),
        format!("read db:{secret}"),
        "read db:out-abs".to_string(),
        "read db:out-rel".to_string(),
        "list db:..".to_string(),
    ] {
        let v = &f[&refused];
        assert!(
            v.starts_with("host error: ")
                && v.contains("in data directory `db`")
                && !v.contains("do not leak"),
            "{refused}: {v}"
        );
    }
    assert!(f[&format!("read db:{secret}")].contains("absolute paths are refused"));
    assert!(
        f["open extra"].contains("`extra` was not granted")
            && f["open extra"].contains("--plugin-data extra=DIR"),
        "{f:?}"
    );
    assert!(
        f["open elsewhere"].contains("did not declare the data directory `elsewhere`"),
        "{f:?}"
    );
    assert_eq!(f["/etc/key"], "layer 0 visible false");
    assert_eq!(f["/etc/os-release"], "layer 1 visible true");
    let layers: BTreeMap<&str, Option<&str>> = out
        .findings
        .iter()
        .map(|x| (x.id.as_str(), x.layer.as_deref()))
        .collect();
    assert_eq!(layers["/etc/key"], Some("sha256:layer0"));
    assert_eq!(f["input sbom"], "an earlier document");

    // The host keeps serving: the same scanner again, and a frontend of each version.
    let again = scanner
        .scan(
            &scan_request(&[("read", "db:sub/deep.txt")], vec![]),
            Box::new(MemoryFiles::default()),
            &grants,
        )
        .unwrap();
    assert_eq!(findings_of(&again)["read db:sub/deep.txt"], "deep");
    assert_runtime_still_works(&rt, "a scanner reading outside its data directory");

    // Its required directory not granted: refused before it runs, saying how to grant it.
    let e = scanner
        .scan(
            &scan_request(&[], vec![]),
            Box::new(MemoryFiles::default()),
            &DataGrants::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("plugin `data-reader` needs the data directory `db` (the test database)")
            && e.contains("--plugin-data db=DIR"),
        "{e}"
    );
}

#[test]
fn a_signer_signs_and_verifies_through_the_sandbox() {
    use lade::plugin::signer::{KeyMaterial, SignRequest, SignatureFormat, Signed};
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(Duration::from_secs(10), cache.path());
    let key = |private: Option<&[u8]>, public: Option<&[u8]>| KeyMaterial {
        private_key: private.map(<[u8]>::to_vec),
        public_key: public.map(<[u8]>::to_vec),
        passphrase: None,
        options: vec![],
    };
    let request = |format| SignRequest {
        format,
        payload: b"payload".to_vec(),
        payload_type: "application/x-test".into(),
    };

    // 0.1.0, adapted up: untyped artifact signatures, the material handed over on each call.
    let plugin = rt.load(&PluginSource::File(fixture("toy-signer"))).unwrap();
    let signer = plugin.signer().unwrap();
    assert!(signer.formats().unwrap().is_empty());
    let signing = signer.signing_key(&key(Some(b"K"), None)).unwrap();
    assert!(signing.key_id().unwrap().starts_with("sha256:"));
    let sig = signing.sign(&request(SignatureFormat::Cosign)).unwrap();
    let Signed::Artifact(artifact) = &sig else {
        panic!("a 0.1.0 signature comes up as an artifact: {sig:?}")
    };
    assert_eq!(artifact.content, b"daolyapK");
    assert_eq!(artifact.media_type, "application/x-lade-toy-signature");
    let verifying = signer.verifying_key(&key(None, Some(b"K"))).unwrap();
    assert_eq!(
        verifying.verify(Some(b"payload"), &sig).unwrap().key_id,
        "toy-key"
    );
    let wrong = signer.verifying_key(&key(None, Some(b"X"))).unwrap();
    let e = wrong.verify(Some(b"payload"), &sig).unwrap_err();
    assert!(
        matches!(&e, PluginFailure::Reported { .. }) && e.to_string().contains("does not match"),
        "{e}"
    );

    // 0.2.0: a key opened once serves many signatures (it is parsed once), typed outputs, stable ids.
    let plugin = rt
        .load(&PluginSource::File(fixture_at("0.2.0", "key-signer")))
        .unwrap();
    let signer = plugin.signer().unwrap();
    assert_eq!(
        signer.formats().unwrap(),
        [SignatureFormat::Cosign, SignatureFormat::Dsse]
    );
    let signing = signer.signing_key(&key(Some(b"K"), None)).unwrap();
    assert_eq!(signing.key_id().unwrap(), "toy:K");
    assert_eq!(signing.public_key().unwrap().as_deref(), Some(&b"K"[..]));
    let mut last = None;
    for _ in 0..3 {
        last = Some(signing.sign(&request(SignatureFormat::Cosign)).unwrap());
    }
    let Some(Signed::Cosign(cosign)) = &last else {
        panic!("{last:?}")
    };
    assert_eq!(cosign.signature, b"daolyapK");
    assert_eq!(
        cosign.annotations[0].value, "1",
        "the key was parsed more than once"
    );
    let dsse = signing.sign(&request(SignatureFormat::Dsse)).unwrap();
    assert!(matches!(&dsse, Signed::Dsse(d) if d.signatures[0].keyid == "toy:K"));
    let e = signing
        .sign(&request(SignatureFormat::OpenpgpMessage))
        .unwrap_err();
    assert!(e.to_string().contains("only cosign and dsse"), "{e}");

    let verifying = signer.verifying_key(&key(None, Some(b"K"))).unwrap();
    assert_eq!(verifying.key_ids().unwrap(), ["toy:K"]);
    let v = verifying
        .verify(Some(b"payload"), last.as_ref().unwrap())
        .unwrap();
    assert_eq!(
        (v.key_id.as_str(), v.payload.as_slice()),
        ("toy:K", &b"payload"[..])
    );
    let v = verifying.verify(None, &dsse).unwrap();
    assert_eq!(v.payload, b"payload");
    let wrong = signer.verifying_key(&key(None, Some(b"X"))).unwrap();
    assert!(
        wrong
            .verify(None, &dsse)
            .unwrap_err()
            .to_string()
            .contains("does not match")
    );
    // A key that does not open is the plugin's own error.
    let e = signer.signing_key(&key(None, None)).err().unwrap();
    assert!(
        matches!(&e, PluginFailure::Reported { .. }) && e.to_string().contains("no key material"),
        "{e}"
    );
}

/// What any plugin may import, written out independently of the host's own list.
fn import_allowed(import: &str, kind: &str, contract: &str) -> bool {
    let (name, version) = import.split_once('@').unwrap_or((import, ""));
    let lade = match (kind, contract) {
        ("frontend", _) => &["types", "context", "images"][..],
        ("scanner", "0.1.0") => &["types", "image-files"][..],
        ("scanner", _) => &["types", "image-files", "data-dirs"][..],
        _ => &["types"][..],
    };
    if let Some(iface) = name.strip_prefix("lade:plugin/") {
        return version == contract && lade.contains(&iface);
    }
    let wasi = [
        "wasi:io/poll",
        "wasi:io/error",
        "wasi:io/streams",
        "wasi:cli/environment",
        "wasi:cli/exit",
        "wasi:cli/stdin",
        "wasi:cli/stdout",
        "wasi:cli/stderr",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
        "wasi:clocks/monotonic-clock",
        "wasi:clocks/wall-clock",
        "wasi:random/random",
        "wasi:random/insecure",
        "wasi:random/insecure-seed",
    ];
    version.starts_with("0.2.") && wasi.contains(&name)
}

#[test]
fn every_embedded_plugin_imports_only_what_its_kind_may() {
    let list: serde_json::Value =
        serde_json::from_str(&ok(lade().args(["plugin", "list", "--format", "json"]))).unwrap();
    let embedded: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"] == "embedded")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(embedded.contains(&"dockerfile"), "{list}");
    for name in embedded {
        let d: serde_json::Value = serde_json::from_str(&ok(
            lade().args(["plugin", "inspect", name, "--format", "json"])
        ))
        .unwrap();
        let kind = d["kind"].as_str().unwrap();
        // The embedded plugins are built against the newest contract.
        let contract = d["contract_version"].as_str().unwrap();
        assert_eq!(contract, "0.2.0", "{d}");
        let imports = d["imports"].as_array().unwrap();
        for i in imports {
            assert!(
                import_allowed(i.as_str().unwrap(), kind, contract),
                "embedded {kind} `{name}` imports {i}"
            );
        }
        assert!(
            d["exports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "lade:plugin/metadata@0.2.0"),
            "{d}"
        );
        assert!(d["digest"].as_str().unwrap().starts_with("sha256:"), "{d}");
        // The text form shows the same imports.
        let text = ok(lade().args(["plugin", "inspect", name]));
        assert!(text.contains("contract:    lade:plugin@0.2.0"), "{text}");
        for i in imports {
            assert!(text.contains(i.as_str().unwrap()), "{text}");
        }
    }
}

#[test]
fn inspect_shows_declared_needs_and_what_plugin_data_grants() {
    let (_top, db) = data_dir();
    let file = fixture_at("0.2.0", "data-reader");
    let text = ok(lade().args(["plugin", "inspect"]).arg(&file));
    assert!(text.contains("contract:    lade:plugin@0.2.0"), "{text}");
    assert!(
        text.contains(
            "data directory db: the test database (required, not granted: --plugin-data NAME=DIR)"
        ) && text.contains("data directory extra: optional extra rules (optional, not granted)")
            && text.contains("input documents: text/plain"),
        "{text}"
    );
    let granted = ok(lade()
        .arg("--plugin-data")
        .arg(format!("db={}", db.display()))
        .args(["plugin", "inspect"])
        .arg(&file));
    assert!(
        granted.contains("data directory db: the test database (granted)"),
        "{granted}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(lade()
        .arg(format!("--plugin-data=db={}", db.display()))
        .args(["plugin", "inspect", "--format", "json"])
        .arg(&file)))
    .unwrap();
    assert_eq!(json["needs"]["data_dirs"][0]["name"], "db");
    assert_eq!(json["granted_data_dirs"], serde_json::json!(["db"]));
    // A frontend declares nothing.
    let text = ok(lade().args(["plugin", "inspect", "dockerfile"]));
    assert!(text.contains("needs:       nothing"), "{text}");
    for (bad, want) in [
        ("db", "expected NAME=DIR"),
        ("db=/no/such/dir", "cannot open directory /no/such/dir"),
        ("Bad=/tmp", "not a valid data directory name"),
    ] {
        let err = fails(
            lade()
                .args(["--plugin-data", bad, "plugin", "inspect"])
                .arg(&file),
            1,
        );
        assert!(err.contains(want), "{bad}: {err}");
    }
}

/// `cargo` for a plugin crate: the outer build's settings removed, a target directory shared between test
/// runs (a cache only: the crate itself is made from nothing each time).
fn plugin_cargo(dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir().join("new-plugins"));
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn a_new_author_goes_from_an_empty_directory_to_a_running_plugin() {
    use lade::plugin::scanner::{DataGrants, MemoryFiles};
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let lade_at = || {
        let mut c = lade();
        c.arg("--root").arg(root.path());
        c
    };
    let release = target_dir().join("new-plugins/wasm32-wasip2/release");
    for kind in ["frontend", "scanner", "signer"] {
        let name = format!("hello-{kind}");
        let out = ok(lade_at()
            .args(["plugin", "new", "--kind", kind, &name, "--dir"])
            .arg(work.path()));
        assert!(
            out.contains(&format!("created {kind} plugin `{name}`")),
            "{out}"
        );
        let krate = work.path().join(&name);
        // The SDK comes along: nothing is read from lade's repository.
        assert!(krate.join("sdk/wit/worlds.wit").is_file());
        ok(plugin_cargo(&krate).args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
        ]));
        // The template's logic unit-tests natively.
        let tests = ok(plugin_cargo(&krate).args(["test", "--quiet"]));
        assert!(tests.contains("1 passed"), "{tests}");
        let wasm = release.join(format!("hello_{kind}.wasm"));
        let installed = ok(lade_at().args(["plugin", "install"]).arg(&wasm));
        assert!(
            installed.contains(&format!("installed {kind} plugin `{name}`")),
            "{installed}"
        );
    }
    let list = ok(lade_at().args(["plugin", "list"]));
    for kind in ["frontend", "scanner", "signer"] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(&format!("hello-{kind} ")) && l.contains("0.2.0")),
            "{list}"
        );
    }

    // A run: the new frontend parses a build file through the CLI, by its installed name...
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        "FROM alpine\nRUN echo from the new plugin\n",
    )
    .unwrap();
    let parsed = ok(lade_at()
        .args(["dockerfile", "parse", "--frontend", "hello-frontend"])
        .arg(ctx.path()));
    assert!(parsed.contains("echo from the new plugin"), "{parsed}");
    std::fs::write(ctx.path().join("Containerfile"), "RUN too early\n").unwrap();
    let err = fails(
        lade_at()
            .args(["dockerfile", "parse", "--frontend", "hello-frontend"])
            .arg(ctx.path()),
        1,
    );
    assert!(
        err.contains("Containerfile:1:1") && err.contains("write `FROM <image>` first"),
        "{err}"
    );

    // ...and the new scanner flags a marker in a deleted file, with its layer.
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(Duration::from_secs(10), cache.path());
    let plugin = rt
        .load(&PluginSource::File(release.join("hello_scanner.wasm")))
        .unwrap();
    let files = MemoryFiles::new([
        (scan_entry("/app/notes", 9, 0, false), b"TODO: fix".to_vec()),
        (scan_entry("/app/done", 4, 1, true), b"done".to_vec()),
    ]);
    let out = plugin
        .scanner()
        .unwrap()
        .scan(
            &scan_request(&[], vec![]),
            Box::new(files),
            &DataGrants::default(),
        )
        .unwrap();
    assert_eq!(out.findings.len(), 1, "{:?}", out.findings);
    assert_eq!(out.findings[0].layer.as_deref(), Some("sha256:layer0"));

    // ...and, by its installed name, through `lade scan` over a root filesystem.
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(rootfs.path().join("app")).unwrap();
    std::fs::write(rootfs.path().join("app/notes"), "TODO: ship it\n").unwrap();
    std::fs::write(rootfs.path().join("app/done"), "shipped\n").unwrap();
    let json: serde_json::Value = serde_json::from_str(&ok(lade_at()
        .args(["scan", "--plugin", "hello-scanner", "-f", "json"])
        .arg(rootfs.path())))
    .unwrap();
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{json}");
    assert_eq!(findings[0]["location"], "/app/notes");
}

fn sha256_of(path: &Path) -> String {
    let out = ok(Command::new("sha256sum").arg(path));
    format!("sha256:{}", out.split_whitespace().next().unwrap())
}

#[test]
fn install_list_inspect_remove_round_trip() {
    let root = tempfile::tempdir().unwrap();
    let lade_at = || {
        let mut c = lade();
        c.arg("--root").arg(root.path());
        c
    };
    let file = fixture("well-behaved");
    let installed: serde_json::Value = serde_json::from_str(&ok(lade_at()
        .args(["plugin", "install", "--format", "json"])
        .arg(&file)))
    .unwrap();
    assert_eq!(installed["name"], "well-behaved");
    assert_eq!(installed["source"], "installed");
    let stored = root.path().join("plugins/well-behaved.wasm");
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(&file).unwrap()
    );

    let list: serde_json::Value =
        serde_json::from_str(&ok(lade_at().args(["plugin", "list", "--format", "json"]))).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "well-behaved")
        .expect("installed plugin listed");
    assert_eq!(row["source"], "installed");
    assert_eq!(row["kind"], "frontend");
    assert_eq!(row["version"], "1.2.3");
    assert_eq!(row["contract_version"], "0.1.0");
    assert_eq!(row["digest"], sha256_of(&file));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "dockerfile" && p["source"] == "embedded")
    );
    let text = ok(lade_at().args(["plugin", "list"]));
    assert!(
        text.lines()
            .any(|l| l.starts_with("well-behaved ") && l.contains("installed")),
        "{text}"
    );

    let by_name = ok(lade_at().args(["plugin", "inspect", "well-behaved"]));
    assert!(
        by_name.contains("source:      installed") && by_name.contains("lade:plugin/context@0.1.0"),
        "{by_name}"
    );

    // An installed file that went bad is listed with its error; the listing itself still works.
    std::fs::write(&stored, b"no longer a component").unwrap();
    let out = run(lade_at().args(["plugin", "list"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("plugin `well-behaved` is not a WebAssembly component"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dockerfile"));

    let removed = ok(lade_at().args(["plugin", "remove", "well-behaved"]));
    assert!(
        removed.contains("removed plugin `well-behaved`"),
        "{removed}"
    );
    assert!(!stored.exists());
    let list = ok(lade_at().args(["plugin", "list"]));
    assert!(!list.contains("well-behaved"), "{list}");
    let err = fails(lade_at().args(["plugin", "remove", "well-behaved"]), 1);
    assert!(err.contains("no installed plugin `well-behaved`"), "{err}");
    let err = fails(lade_at().args(["plugin", "inspect", "well-behaved"]), 1);
    assert!(
        err.contains("no plugin `well-behaved`") && err.contains("dockerfile"),
        "{err}"
    );
}

#[test]
fn install_refuses_what_the_sandbox_refuses() {
    let root = tempfile::tempdir().unwrap();
    for (name, expected) in [
        ("fs-reader", "plugin `fs-reader` imports `wasi:filesystem/"),
        ("net-caller", "wasi:sockets/tcp@0.2.6"),
        ("future-contract", "lade:plugin@0.9.0"),
        ("garbage", "plugin `garbage` is not a WebAssembly component"),
    ] {
        let err = fails(
            lade()
                .arg("--root")
                .arg(root.path())
                .args(["plugin", "install"])
                .arg(fixture(name)),
            1,
        );
        assert!(err.contains(expected), "{name}: {err}");
    }
    let err = fails(
        lade().args(["plugin", "inspect"]).arg(fixture("fs-reader")),
        1,
    );
    assert!(
        err.contains("plugin `fs-reader` imports `wasi:filesystem/"),
        "{err}"
    );
    let stored: Vec<_> = std::fs::read_dir(root.path().join("plugins"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(stored.is_empty(), "a refused plugin was stored: {stored:?}");
}

/// The one compile-cache entry in `dir`.
fn cache_entry(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir.join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

#[test]
fn a_damaged_compile_cache_entry_is_discarded_and_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    let inspect = || {
        let mut c = lade();
        c.env("LADE_CACHE_DIR", cache.path())
            .args(["plugin", "inspect"])
            .arg(fixture("well-behaved"));
        let out = run(&mut c);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    inspect();
    let entry = cache_entry(cache.path());
    let sound = std::fs::read(&entry).unwrap();
    // A sound entry is used as it is.
    assert!(!inspect().contains("discarding"));

    let mut flipped = sound.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    // One flipped byte in the middle (the checksum catches what a header check would not), truncated to
    // nothing, and garbage: each is discarded with a warning and rebuilt into an entry that loads cleanly.
    for damage in [
        flipped,
        Vec::new(),
        b"garbage garbage garbage garbage garbage garbage".to_vec(),
    ] {
        std::fs::write(&entry, &damage).unwrap();
        let stderr = inspect();
        assert!(stderr.contains("discarding compiled plugin"), "{stderr}");
        let rebuilt = std::fs::read(cache_entry(cache.path())).unwrap();
        assert_ne!(rebuilt, damage, "the damaged entry was left in place");
        assert_eq!(rebuilt.len(), sound.len());
        assert!(
            !inspect().contains("discarding"),
            "the rebuilt entry does not load cleanly"
        );
    }
}

#[test]
fn the_cli_applies_the_limits_and_logs_plugin_output() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        "print hello stdout\neprint hello stderr\nread Containerfile\n",
    )
    .unwrap();
    let parse = |frontend: &str| {
        let mut c = lade();
        c.args(["dockerfile", "parse", "--frontend"])
            .arg(fixture(frontend))
            .arg(ctx.path());
        c
    };
    let err = fails(parse("sleeper").args(["--plugin-timeout", "1"]), 1);
    assert!(
        err.contains("plugin `sleeper` exceeded its 1 s deadline"),
        "{err}"
    );
    let err = fails(parse("memory-bomb").env("LADE_PLUGIN_MEMORY", "32"), 1);
    assert!(
        err.contains("plugin `memory-bomb` hit its 32 MiB memory cap"),
        "{err}"
    );
    let err = fails(&mut parse("net-caller"), 1);
    assert!(err.contains("plugin `net-caller` imports `wasi:"), "{err}");

    // Output goes to lade's log, with the plugin's name in front, never straight to the terminal.
    let out = run(parse("well-behaved").args(["--log-level", "info"]));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("plugin well-behaved stdout: hello stdout"),
        "{stderr}"
    );
    assert!(
        stderr.contains("plugin well-behaved stderr: hello stderr"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("hello stdout\n") && stdout.contains("read:Containerfile"),
        "{stdout}"
    );
}

#[test]
fn plugin_limits_come_from_the_global_options() {
    let help = ok(lade().args(["plugin", "list", "--help"]));
    assert!(
        help.contains("--plugin-timeout") && help.contains("--plugin-memory"),
        "{help}"
    );
    let err = fails(lade().args(["--plugin-timeout", "0", "plugin", "list"]), 1);
    assert!(err.contains("plugin timeout must be between"), "{err}");
    let err = fails(
        lade()
            .env("LADE_PLUGIN_MEMORY", "0")
            .args(["plugin", "list"]),
        1,
    );
    assert!(err.contains("plugin memory cap must be between"), "{err}");
}
