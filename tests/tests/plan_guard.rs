//! A frontend's plan is untrusted input: a hostile frontend (tests/fixtures/plugins/v0.2.0/hostile-frontend,
//! chosen with `lade build --frontend FILE`) asks for host paths, a secret the user did not pass, the host's
//! network under `--network none`, a cycle and absurdly large plans. Each build is refused with an error
//! that names the step and the field, nothing of the host ends up in the store, and the next build works.

use lade_tests::{lade, run, target_dir, workspace};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The hostile frontend, built for wasm32-wasip2 once per test process.
fn hostile() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let target = target_dir().join("fixtures");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace().join("tests/fixtures/plugins"))
            .args([
                "build",
                "--quiet",
                "--release",
                "--locked",
                "--target",
                "wasm32-wasip2",
                "-p",
                "fixture-hostile-frontend",
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
        let status = cmd
            .status()
            .expect("running cargo for the hostile frontend");
        assert!(status.success(), "building the hostile frontend failed");
        target.join("wasm32-wasip2/release/fixture_hostile_frontend.wasm")
    })
}

struct Project {
    tmp: tempfile::TempDir,
    root: PathBuf,
    ctx: PathBuf,
}

fn project() -> Project {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("a.txt"), "from the context\n").unwrap();
    Project { tmp, root, ctx }
}

impl Project {
    /// `lade build` of a Containerfile whose first line is `marker`, with the hostile frontend.
    fn build(&self, marker: &str, extra: &[&str]) -> Output {
        let file = self.tmp.path().join("Containerfile");
        fs::write(&file, format!("{marker}\n")).unwrap();
        run(lade()
            .arg("--root")
            .arg(&self.root)
            .args(["build", "-q", "--frontend"])
            .arg(hostile())
            .arg("-f")
            .arg(&file)
            .args(["-t", &format!("localhost/hostile:{marker}")])
            .args(extra)
            .arg(&self.ctx))
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir` (layer blobs decompressed) that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let Ok(f) = fs::File::open(&p) else { continue };
                let mut bytes = Vec::new();
                let read = lade::layer::decompressor(f)
                    .and_then(|mut r| Ok(std::io::Read::read_to_end(&mut r, &mut bytes)?));
                if read.is_err() {
                    bytes = fs::read(&p).unwrap_or_default();
                }
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(p);
                }
            }
        }
    }
    found
}

#[test]
fn hostile_plans_are_refused_and_the_host_keeps_serving() {
    let p = project();
    let secret = p.tmp.path().join("tok");
    fs::write(&secret, "the user's own token").unwrap();
    let secret_arg = format!("id=tok,src={}", secret.display());
    // (marker, extra flags, what the error must say)
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "bind-escape",
            &[],
            &[
                "refused before anything ran",
                "step 1: RUN",
                "type=bind source `../../../../../../etc`",
                "outside the build context",
            ],
        ),
        // An absolute source is relative to the context root (as in BuildKit): the context has no etc/.
        (
            "bind-abs",
            &[],
            &["source=/etc", "not in the build context"],
        ),
        (
            "copy-escape",
            &[],
            &[
                "refused before anything ran",
                "step 1: COPY",
                "`../../etc/passwd`",
                "outside the build context",
            ],
        ),
        (
            "copy-abs",
            &[],
            &["`/etc/shadow`", "not found in the build context"],
        ),
        (
            "secret",
            &["--secret", &secret_arg],
            &[
                "refused before anything ran",
                "secret `host-token` is required but was not given",
            ],
        ),
        (
            "network-host",
            &["--network", "none"],
            &[
                "refused before anything ran",
                "RUN --network=host",
                "--network none",
            ],
        ),
        (
            "insecure",
            &[],
            &["refused before anything ran", "--security=insecure"],
        ),
        (
            "cycle",
            &[],
            &["refused before anything ran", "depends on itself"],
        ),
        (
            "many",
            &[],
            &[
                "refused before anything ran",
                "20000 steps, more than 10000",
            ],
        ),
        (
            "huge",
            &[],
            &["fixture_hostile_frontend", "more than 128 MiB in one call"],
        ),
    ];
    for (marker, extra, expected) in cases {
        let o = p.build(marker, extra);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{marker}: must fail cleanly\n{e}");
        for want in *expected {
            assert!(e.contains(want), "{marker}: the error lacks {want:?}\n{e}");
        }
        assert!(!e.contains("panicked"), "{marker}: {e}");
    }
    // The host keeps serving: the same frontend's acceptable plan builds, and so does the embedded one.
    let o = p.build("ok", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = p.tmp.path().join("Containerfile.embedded");
    fs::write(&file, "FROM scratch\nCOPY a.txt /b.txt\n").unwrap();
    let o = run(lade()
        .arg("--root")
        .arg(&p.root)
        .args(["build", "-q", "-t", "localhost/embedded:1", "-f"])
        .arg(&file)
        .arg(&p.ctx));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = p.tmp.path().join("export");
    let o = run(lade()
        .arg("--root")
        .arg(&p.root)
        .args(["push", "-q", "localhost/hostile:ok"])
        .arg(format!("oci:{}:x", out.display())));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !files_containing(&out, b"from the context").is_empty(),
        "the accepted plan's layer holds a.txt"
    );
    // Nothing of the host's /etc reached the store: no blob, layer or cache file holds its passwd lines.
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd.lines().next().expect("/etc/passwd has a line");
    let leaked = files_containing(&p.root, line.as_bytes());
    assert!(
        leaked.is_empty(),
        "host /etc/passwd content in the store: {leaked:?}"
    );
}
