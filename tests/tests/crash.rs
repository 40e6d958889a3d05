//! Crash safety: `kill -9` a pull, a build (during RUN and during its commit) and a push at random points,
//! at least 20 times each. After every kill `lade fsck` finds the store clean (leftovers of the killed
//! process allowed, no problem), every blob matches its digest (sha256sum), and the operation run again
//! succeeds. Kill times are spread over the operation's measured duration by a seeded RNG; the seed is
//! printed, and `LADE_CRASH_SEED=N` replays it.

use lade_tests::oci::{assert_blobs_valid, busybox_image, noise, umoci_add_layer, umoci_image};
use lade_tests::{Registry, lade, need_root, ok, require_peers, run};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: usize = 20;

/// xorshift64*, seeded from `LADE_CRASH_SEED` or the clock (printed either way).
struct Rng(u64);

impl Rng {
    fn new(test: &str) -> Rng {
        let seed = std::env::var("LADE_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: crash seed {seed} (replay with LADE_CRASH_SEED={seed})");
        Rng(seed | 1)
    }

    /// Uniform in [lo, hi).
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        let f = x as f64 / (1u64 << 53) as f64;
        lo + (hi.saturating_sub(lo)).mul_f64(f)
    }
}

fn store(root: &Path) -> Command {
    let mut c = lade();
    c.arg("--root").arg(root);
    c
}

/// Start `cmd`, kill it with SIGKILL after `after`; true when it was still running (the kill landed).
fn kill_after(cmd: &mut Command, after: Duration) -> Result<(), Duration> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return Err(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2).min(after - start.elapsed().min(after)));
    }
    if child.try_wait().unwrap().is_some() {
        return Err(start.elapsed());
    }
    let _ = child.kill();
    child.wait().unwrap();
    Ok(())
}

/// The kill times of a test are drawn from its first, timed run. When a later run ends before its kill
/// (this machine got faster than during that run), the window shrinks to match, so enough kills land.
#[derive(Clone, Copy)]
struct Window {
    scale: f64,
    took: Duration,
}

impl Window {
    fn new(took: Duration) -> Window {
        Window { scale: 1.0, took }
    }
    fn at(&self, rng: &mut Rng, lo: Duration, hi: Duration) -> Duration {
        rng.between(lo.mul_f64(self.scale), hi.mul_f64(self.scale))
    }
    fn missed(&mut self, lived: Duration) {
        let ratio = lived.as_secs_f64() / self.took.as_secs_f64().max(1e-3);
        self.scale = self.scale.min(ratio * 0.95);
    }
}

/// How long `cmd` takes to succeed.
fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    ok(cmd);
    start.elapsed()
}

/// `lade fsck` on `root` must find no problem; every blob must match its name (checked with sha256sum).
fn assert_store_sound(root: &Path, what: &str) {
    if !root.join("index.json").exists() {
        return; // killed before the store was created
    }
    let out = run(store(root).args(["fsck", "--format", "json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: fsck printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success() && report["clean"] == true,
        "{what}: fsck found problems:\n{report:#}"
    );
    assert_blobs_valid(root);
}

/// An image of three 2 MB layers of noise in an OCI layout made by umoci.
fn noisy_image(layout: &Path, tag: &str) {
    umoci_image(layout, tag, &[("one", &noise(11, 2 << 20))], None);
    let img = format!("{}:{tag}", layout.display());
    umoci_add_layer(&img, &[("two", &noise(12, 2 << 20))]);
    umoci_add_layer(&img, &[("three", &noise(13, 2 << 20))]);
}

#[test]
fn killed_pulls_leave_a_sound_store_and_rerun() {
    require_peers!("skopeo", "umoci", "docker-registry");
    let Some(reg) = Registry::start() else { return };
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    noisy_image(&src, "1");
    let remote = format!("docker://{}/crash/pull:1", reg.addr);
    ok(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:1", src.display()))
        .arg(&remote));
    let pull = |root: &Path| {
        let mut c = store(root);
        c.args(["pull", "--tls-verify=false", &remote]);
        c
    };
    let took = timed(&mut pull(&t.path().join("measure")));
    let mut rng = Rng::new("killed_pulls");
    let mut window = Window::new(took);
    let (mut landed, mut tries) = (0, 0);
    while landed < KILLS && tries < 3 * KILLS {
        tries += 1;
        let root = t.path().join(format!("store-{tries}"));
        let at = window.at(&mut rng, Duration::ZERO, took);
        if let Err(lived) = kill_after(&mut pull(&root), at) {
            window.missed(lived);
            continue;
        }
        landed += 1;
        let what = format!("pull killed after {at:?} (of {took:?})");
        assert_store_sound(&root, &what);
        ok(&mut pull(&root));
        ok(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{}/crash/pull:1", root.display(), reg.addr))
            .arg("--raw"));
        std::fs::remove_dir_all(&root).unwrap();
    }
    eprintln!("{landed} of {tries} kills landed");
    assert!(landed >= KILLS, "only {landed} of {tries} kills landed");
}

#[test]
fn killed_pushes_leave_the_store_untouched_and_rerun() {
    require_peers!("skopeo", "umoci", "docker-registry");
    let t = tempfile::tempdir().unwrap();
    let (src, root) = (t.path().join("src"), t.path().join("root"));
    noisy_image(&src, "1");
    ok(store(&root)
        .arg("pull")
        .arg(format!("oci:{}:1", src.display())));
    let index_before = std::fs::read(root.join("index.json")).unwrap();
    let push = |addr: &str| {
        let mut c = store(&root);
        c.args(["push", "--tls-verify=false", "localhost/1:latest"])
            .arg(format!("docker://{addr}/crash/push:1"));
        c
    };
    let took = {
        let reg = Registry::start().unwrap();
        timed(&mut push(&reg.addr))
    };
    let mut rng = Rng::new("killed_pushes");
    let mut window = Window::new(took);
    let (mut landed, mut tries) = (0, 0);
    while landed < KILLS && tries < 3 * KILLS {
        tries += 1;
        let reg = Registry::start().unwrap();
        let at = window.at(&mut rng, Duration::ZERO, took);
        if let Err(lived) = kill_after(&mut push(&reg.addr), at) {
            window.missed(lived);
            continue;
        }
        landed += 1;
        let what = format!("push killed after {at:?} (of {took:?})");
        assert_store_sound(&root, &what);
        assert_eq!(
            std::fs::read(root.join("index.json")).unwrap(),
            index_before,
            "{what}: a push changed the local store's index"
        );
        ok(&mut push(&reg.addr));
        // skopeo verifies every blob's digest while copying the pushed image out.
        let out = t.path().join(format!("out-{tries}"));
        ok(Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{}/crash/push:1", reg.addr))
            .arg(format!("oci:{}:x", out.display())));
    }
    eprintln!("{landed} of {tries} kills landed");
    assert!(landed >= KILLS, "only {landed} of {tries} kills landed");
}

/// From one build (of the Containerfile below, into `root`): the time from spawn to the RUN step's start (its
/// JSON progress event), to the end of the RUN command (its last file, `/done`, appears in the step's upper
/// dir), and to the end of the build.
fn measure_build(cmd: &mut Command, root: &Path) -> (Duration, Duration, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .args(["--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let events = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut run_start = None;
        for line in BufReader::new(events).lines() {
            let v: Value = serde_json::from_str(&line.unwrap()).unwrap_or_default();
            if v["event"] == "step-started" && v["step"] == 1 {
                run_start = Some(start.elapsed());
            }
        }
        run_start
    });
    let steps = root.join("lade/steps");
    let mut run_end = None;
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
        let done = std::fs::read_dir(&steps)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("upper/done").exists());
        if done && run_end.is_none() {
            run_end = Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        child.wait().unwrap().success(),
        "the measuring build failed"
    );
    let took = start.elapsed();
    let run_start = reader
        .join()
        .unwrap()
        .expect("a step-started event for the RUN step");
    (
        run_start,
        run_end.expect("the RUN step's /done seen in its upper dir"),
        took,
    )
}

#[test]
fn killed_builds_leave_a_sound_store_and_rerun() {
    require_peers!("umoci", "skopeo");
    if !need_root("killed_builds_leave_a_sound_store_and_rerun") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("base");
    busybox_image(&layout, "1");
    let template = t.path().join("template");
    ok(store(&template)
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg("lade:localhost/base:1"));
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // The RUN sleeps (kills land in it) and writes 6 MB of noise (the commit has work to do).
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM localhost/base:1\nRUN sleep 0.3 && head -c 6000000 /dev/urandom > /big && echo ok > /done\n",
    )
    .unwrap();
    let fresh = |name: &str| -> PathBuf {
        let root = t.path().join(name);
        ok(Command::new("cp").arg("-a").arg(&template).arg(&root));
        root
    };
    let build = |root: &Path| {
        let mut c = store(root);
        c.args(["build", "-t", "crash:1"]).arg(&ctx);
        c
    };
    let measure = fresh("measure");
    let (run_start, run_end, took) = measure_build(&mut build(&measure), &measure);
    eprintln!("build: RUN from {run_start:?} to {run_end:?}, done at {took:?}");
    let mut rng = Rng::new("killed_builds");
    for (phase, lo, hi) in [("RUN", run_start, run_end), ("commit", run_end, took)] {
        let (mut landed, mut tries) = (0, 0);
        let mut window = Window::new(took);
        while landed < KILLS && tries < 3 * KILLS {
            tries += 1;
            let root = fresh(&format!("{phase}-{tries}"));
            // "commit" spans the layer diff (inside the step, before step-finished) too: start a bit early.
            let lo = if phase == "commit" {
                lo.mul_f64(0.9)
            } else {
                lo
            };
            let at = window.at(&mut rng, lo, hi);
            if let Err(lived) = kill_after(&mut build(&root), at) {
                window.missed(lived);
                let _ = std::fs::remove_dir_all(&root);
                continue;
            }
            landed += 1;
            let what = format!("build killed during {phase} after {at:?} (of {took:?})");
            assert_store_sound(&root, &what);
            ok(&mut build(&root));
            let cfg = ok(Command::new("skopeo")
                .args(["inspect", "--config"])
                .arg(format!("oci:{}:localhost/crash:1", root.display())));
            let cfg: Value = serde_json::from_str(&cfg).unwrap();
            assert_eq!(
                cfg["rootfs"]["diff_ids"].as_array().unwrap().len(),
                2,
                "{what}"
            );
            let _ = std::fs::remove_dir_all(&root);
        }
        eprintln!("{phase}: {landed} of {tries} kills landed");
        assert!(
            landed >= KILLS,
            "{phase}: only {landed} of {tries} kills landed"
        );
    }
}
