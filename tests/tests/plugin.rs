//! The plugin sandbox: hostile plugins (tests/fixtures/plugins) each end as the right error and never take
//! the host down; the import check, the compile cache and `lade plugin list/inspect/install/remove`.

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
        std::fs::write(
            out.join("garbage.wasm"),
            b"this is not a component, just some bytes\n".repeat(40),
        )
        .unwrap();
        out
    })
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(format!("{name}.wasm"))
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
    let plugin = match rt.load(&PluginSource::File(fixture(name))) {
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

/// The well-behaved plugin works: proof that the runtime survived whatever came before.
fn assert_runtime_still_works(rt: &Runtime, after: &str) {
    let answer = call(rt, "well-behaved");
    assert!(
        answer.contains("hello from the context"),
        "after {after}, a good plugin failed: {answer}"
    );
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
                "runtime: plugin `panic` panicked at panic/src/lib.rs:",
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
        (
            "future-contract",
            &[
                "load: plugin `future-contract` was built against lade:plugin@0.9.0",
                "it knows lade:plugin@0.1.0",
            ],
        ),
        (
            "garbage",
            &["load: plugin `garbage` is not a WebAssembly component"],
        ),
    ];
    for (name, expected) in cases {
        let answer = call(&rt, name);
        for e in *expected {
            assert!(answer.contains(e), "{name}: expected `{e}` in: {answer}");
        }
        assert_runtime_still_works(&rt, name);
    }
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

#[test]
fn a_scanner_reads_exactly_the_files_it_is_handed_in_chunks() {
    use lade::plugin::scanner::{Entry, EntryKind, ImageInfo, KeyValue, MemoryFiles};
    let entry = |path: &str, size: u64| Entry {
        path: path.into(),
        kind: EntryKind::File,
        size,
        mode: 0o644,
        uid: 0,
        gid: 0,
        link_target: None,
        layer: "sha256:layer1".into(),
    };
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(Duration::from_secs(10), cache.path());
    let plugin = rt
        .load(&PluginSource::File(fixture("file-lister")))
        .unwrap();
    assert_eq!(plugin.kind(), lade::plugin::Kind::Scanner);
    assert!(plugin.frontend().is_err());
    let scanner = plugin.scanner().unwrap();
    assert_eq!(scanner.wants().unwrap(), ["/etc/**"]);
    let files = MemoryFiles::new([
        (entry("/etc/os-release", 10), b"ID=alpine\n".to_vec()),
        (entry("/etc/empty", 0), Vec::new()),
    ]);
    let image = ImageInfo {
        reference: "docker.io/library/alpine:3".into(),
        digest: "sha256:abc".into(),
        config: "{}".into(),
        platform: platform("amd64"),
    };
    let chunk = [KeyValue {
        key: "chunk".into(),
        value: "3".into(),
    }];
    let out = scanner.scan(&image, &chunk, Box::new(files)).unwrap();
    let messages: Vec<(&str, &str)> = out
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [("/etc/os-release", "ID=alpine\n"), ("/etc/empty", "")]
    );
    assert_eq!(out.documents.len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&out.documents[0].content),
        "docker.io/library/alpine:3\n/etc/os-release sha256:layer1\n/etc/empty sha256:layer1\n"
    );
}

#[test]
fn a_signer_signs_and_verifies_through_the_sandbox() {
    use lade::plugin::signer::KeyMaterial;
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(Duration::from_secs(10), cache.path());
    let plugin = rt.load(&PluginSource::File(fixture("toy-signer"))).unwrap();
    let signer = plugin.signer().unwrap();
    assert_eq!(signer.payload_type().unwrap(), "application/x-lade-toy");
    let key = |private: Option<&[u8]>, public: Option<&[u8]>| KeyMaterial {
        private_key: private.map(<[u8]>::to_vec),
        public_key: public.map(<[u8]>::to_vec),
        passphrase: None,
        options: vec![],
    };
    let sig = signer.sign(b"payload", &key(Some(b"K"), None)).unwrap();
    assert_eq!(sig.content, b"daolyapK");
    assert_eq!(sig.media_type, "application/x-lade-toy-signature");
    assert_eq!(
        signer
            .verify(b"payload", &sig, &key(None, Some(b"K")))
            .unwrap()
            .signer,
        "toy-key"
    );
    let wrong = signer.verify(b"payload", &sig, &key(None, Some(b"X")));
    assert!(
        matches!(&wrong, Err(f @ PluginFailure::Reported { .. }) if f.to_string().contains("does not match")),
        "{:?}",
        wrong.err().map(|e| e.to_string())
    );
}

/// What any plugin may import, written out independently of the host's own list.
fn import_allowed(import: &str, kind: &str) -> bool {
    let (name, version) = import.split_once('@').unwrap_or((import, ""));
    let lade = match kind {
        "frontend" => &["types", "context", "images"][..],
        "scanner" => &["types", "image-files"][..],
        _ => &["types"][..],
    };
    if let Some(iface) = name.strip_prefix("lade:plugin/") {
        return version == "0.1.0" && lade.contains(&iface);
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
        let imports = d["imports"].as_array().unwrap();
        for i in imports {
            assert!(
                import_allowed(i.as_str().unwrap(), kind),
                "embedded {kind} `{name}` imports {i}"
            );
        }
        assert!(
            d["exports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "lade:plugin/metadata@0.1.0"),
            "{d}"
        );
        assert!(d["digest"].as_str().unwrap().starts_with("sha256:"), "{d}");
        // The text form shows the same imports.
        let text = ok(lade().args(["plugin", "inspect", name]));
        assert!(text.contains("contract:    lade:plugin@0.1.0"), "{text}");
        for i in imports {
            assert!(text.contains(i.as_str().unwrap()), "{text}");
        }
    }
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
