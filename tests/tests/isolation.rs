//! RUN isolation: a busybox rootfs made here, steps run through the real `lade __run-step` helper, in overlay
//! and copy modes, with lade's namespaces and with runc.

use lade::dispatch::isolation::{
    Isolation, Network, RootfsMode, Snapshot, StepMount, StepSpec, run_step,
};
use lade::layer::{DiffOptions, DiffSource, LayerCache, write_diff};
use lade_tests::lade_bin;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A store with a busybox base layer made from busybox-static, with `busybox --install -s` run inside it.
struct Base {
    store: tempfile::TempDir,
    cache: LayerCache,
    lowers: Vec<PathBuf>,
}

impl Base {
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
    s.hostname = "lade-test-host".into();
    s
}

fn base(mode: RootfsMode) -> Base {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists());
    let busybox = busybox.expect("busybox-static is installed (scripts/setup.sh)");
    let store = tempfile::tempdir().unwrap();
    let cache = LayerCache::new(store.path());
    let src = tempfile::tempdir().unwrap();
    for d in ["bin", "sbin", "usr/bin", "usr/sbin"] {
        fs::create_dir_all(src.path().join(d)).unwrap();
    }
    fs::create_dir_all(src.path().join("etc")).unwrap();
    fs::create_dir_all(src.path().join("home/app")).unwrap();
    fs::copy(busybox, src.path().join("bin/busybox")).unwrap();
    fs::write(
        src.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        src.path().join("etc/group"),
        "root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
    )
    .unwrap();
    std::os::unix::fs::chown(src.path().join("home/app"), Some(1000), Some(1000)).unwrap();
    let tmp = store.path().join("lade/tmp");
    fs::create_dir_all(&tmp).unwrap();
    let blob = write_diff(DiffSource::Tree(src.path()), &tmp, &DiffOptions::default()).unwrap();
    let l0 = cache
        .get_or_unpack(&blob.diff_id, || Ok(Box::new(fs::File::open(blob.path())?)))
        .unwrap();
    let mut b = Base {
        cache,
        lowers: vec![l0],
        store,
    };
    let snap = Snapshot::prepare(&b.steps(), &b.lowers, mode).unwrap();
    let mut s = StepSpec::new(vec!["/bin/busybox".into(), "--install".into(), "-s".into()]);
    s.helper = Some(lade_bin().to_path_buf());
    let out = run_step(&snap, &s).unwrap();
    assert!(
        out.success(),
        "busybox --install: {} {}",
        out.describe(),
        out.stderr_tail
    );
    let (_, l1) = snap
        .commit(&b.cache, &b.tmp(), &DiffOptions::default())
        .unwrap();
    b.lowers.push(l1);
    b
}

fn layer_names(blob: &Path) -> Vec<String> {
    let mut raw = Vec::new();
    lade::layer::decompressor(fs::File::open(blob).unwrap())
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    let mut a = tar::Archive::new(&raw[..]);
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

fn isolated_step_sees_only_its_rootfs(mode: RootfsMode, isolation: Isolation) {
    let b = base(mode);
    let marker = tempfile::NamedTempFile::new_in("/tmp").unwrap();
    let marker = marker.path().to_str().unwrap().to_string();
    let secret = tempfile::NamedTempFile::new().unwrap();
    fs::write(secret.path(), "hunter2").unwrap();
    let snap = Snapshot::prepare(&b.steps(), &b.lowers, mode).unwrap();
    assert_eq!(snap.is_overlay(), mode != RootfsMode::Copy);
    let mut s = spec(&format!(
        "echo $$ > /out.pid; hostname > /out.hostname; \
         if test -e {marker} || test -e /work; then echo visible > /out.host; fi; \
         cat /run/secrets/tok > /out.secret; ls /proc/1/ > /dev/null && echo proc > /out.proc; \
         test -c /dev/null && echo devnull > /out.dev; cat /etc/resolv.conf > /dev/null && echo resolv > /out.resolv; \
         pwd > /out.pwd"
    ));
    s.isolation = isolation;
    s.workdir = "/srv/app".into();
    s.mounts.push(StepMount::secret(secret.path(), "tok"));
    let out = run_step(&snap, &s).unwrap();
    assert!(out.success(), "{}: {}", out.describe(), out.stderr_tail);
    let up = snap.upper().to_path_buf();
    let read = |n: &str| {
        fs::read_to_string(up.join(n))
            .unwrap_or_else(|e| panic!("{n}: {e}"))
            .trim()
            .to_string()
    };
    assert_eq!(
        read("out.pid"),
        "1",
        "the step is pid 1 of its own pid namespace"
    );
    assert_eq!(read("out.hostname"), "lade-test-host");
    assert!(
        !up.join("out.host").exists(),
        "the step saw the host's files"
    );
    assert_eq!(read("out.secret"), "hunter2");
    assert_eq!(read("out.proc"), "proc");
    assert_eq!(read("out.dev"), "devnull");
    assert_eq!(read("out.resolv"), "resolv");
    assert_eq!(read("out.pwd"), "/srv/app");
    // The writes landed in this step's changes only, never in a lower layer.
    for l in &b.lowers {
        assert!(!l.join("out.pid").exists());
    }
    let (blob, _) = snap
        .commit(&b.cache, &b.tmp(), &DiffOptions::default())
        .unwrap();
    let names = layer_names(blob.path());
    assert!(names.contains(&"out.pid".to_string()), "{names:?}");
    assert!(
        names.contains(&"srv/app/".to_string()),
        "the workdir belongs in the layer: {names:?}"
    );
    for never in [
        "etc/resolv.conf",
        "etc/hosts",
        "etc/hostname",
        "run/",
        "run/secrets/tok",
        "proc/",
        "dev/",
        "sys/",
    ] {
        assert!(
            !names.iter().any(|n| n == never),
            "{never} leaked into the layer: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("etc")),
        "the bind-mounted /etc files left /etc in the layer: {names:?}"
    );
}

#[test]
fn overlay_step_is_isolated_and_commits_only_its_changes() {
    if lade_tests::need_root("overlay_step_is_isolated_and_commits_only_its_changes") {
        isolated_step_sees_only_its_rootfs(RootfsMode::Overlay, Isolation::Namespaces);
    }
}

#[test]
fn copy_fallback_step_is_isolated_and_commits_only_its_changes() {
    if lade_tests::need_root("copy_fallback_step_is_isolated_and_commits_only_its_changes") {
        isolated_step_sees_only_its_rootfs(RootfsMode::Copy, Isolation::Namespaces);
    }
}

#[test]
fn runc_step_is_isolated_and_commits_only_its_changes() {
    if !lade_tests::need_root("runc_step_is_isolated_and_commits_only_its_changes") {
        return;
    }
    if lade_tests::peer("runc").is_none() {
        return;
    }
    isolated_step_sees_only_its_rootfs(RootfsMode::Overlay, Isolation::Oci);
}

#[test]
fn network_none_has_only_loopback() {
    if !lade_tests::need_root("network_none_has_only_loopback") {
        return;
    }
    let b = base(RootfsMode::Overlay);
    for (net, iso) in [
        (Network::None, Isolation::Namespaces),
        (Network::Host, Isolation::Namespaces),
        (Network::None, Isolation::Oci),
    ] {
        if iso == Isolation::Oci && lade_tests::peer("runc").is_none() {
            continue;
        }
        let snap = Snapshot::prepare(&b.steps(), &b.lowers, RootfsMode::Overlay).unwrap();
        let mut s = spec(
            "ls /sys/class/net > /out.ifaces; ip -o link | grep -q 'lo:.*UP' && echo up > /out.lo; true",
        );
        s.network = net;
        s.isolation = iso;
        let out = run_step(&snap, &s).unwrap();
        assert!(out.success(), "{}: {}", out.describe(), out.stderr_tail);
        let ifaces = fs::read_to_string(snap.upper().join("out.ifaces")).unwrap();
        let ifaces: Vec<&str> = ifaces.split_whitespace().collect();
        match net {
            Network::None => {
                assert_eq!(ifaces, ["lo"], "{iso:?}");
                assert!(
                    snap.upper().join("out.lo").exists(),
                    "lo is not up ({iso:?})"
                );
            }
            Network::Host => assert!(
                ifaces.len() > 1,
                "host network should show the host's interfaces: {ifaces:?}"
            ),
        }
    }
}

#[test]
fn failing_step_reports_exit_code_signal_and_stderr() {
    if !lade_tests::need_root("failing_step_reports_exit_code_signal_and_stderr") {
        return;
    }
    let b = base(RootfsMode::Overlay);
    let snap = Snapshot::prepare(&b.steps(), &b.lowers, RootfsMode::Overlay).unwrap();
    let out = run_step(
        &snap,
        &spec("echo started; echo 'boom: no such thing' >&2; exit 3"),
    )
    .unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert!(
        out.stderr_tail.contains("boom: no such thing"),
        "{:?}",
        out.stderr_tail
    );
    // The command is pid 1: like in docker and buildah, signals it has no handler for do not kill it.
    let out = run_step(&snap, &spec("kill -TERM $$; echo survived >&2")).unwrap();
    assert!(
        out.success() && out.stderr_tail.contains("survived"),
        "{}",
        out.describe()
    );
    let mut s = spec("");
    s.argv = vec!["no-such-command".into()];
    let err = run_step(&snap, &s).unwrap_err();
    assert!(format!("{err:#}").contains("no-such-command"), "{err:#}");
}

#[test]
fn user_by_name_and_id_with_groups() {
    if !lade_tests::need_root("user_by_name_and_id_with_groups") {
        return;
    }
    let b = base(RootfsMode::Overlay);
    for (user, want) in [
        ("app", "1000 1000 1000 10 /home/app"),
        ("4242:77", "4242 77 77 / "),
        ("", "0 0 0 /root"),
    ] {
        let snap = Snapshot::prepare(&b.steps(), &b.lowers, RootfsMode::Overlay).unwrap();
        let mut s = spec("echo $(id -u) $(id -g) $(id -G) $HOME > /tmp/id; cat /tmp/id >&2");
        s.user = user.into();
        s.mounts.push(StepMount::tmpfs("/tmp"));
        let out = run_step(&snap, &s).unwrap();
        assert!(
            out.success(),
            "{user}: {}: {}",
            out.describe(),
            out.stderr_tail
        );
        assert_eq!(out.stderr_tail.trim(), want.trim(), "user {user:?}");
        // The tmpfs mount kept /tmp out of the layer.
        assert!(!snap.upper().join("tmp/id").exists());
    }
    let snap = Snapshot::prepare(&b.steps(), &b.lowers, RootfsMode::Overlay).unwrap();
    let mut s = spec("true");
    s.user = "nobody".into();
    let err = run_step(&snap, &s).unwrap_err();
    assert!(format!("{err:#}").contains("nobody"), "{err:#}");
}

fn deletions_reach_the_next_step(mode: RootfsMode) {
    let b = base(mode);
    let snap = Snapshot::prepare(&b.steps(), &b.lowers, mode).unwrap();
    let out = run_step(
        &snap,
        &spec("rm /etc/group && rm -r /home && mkdir /home && touch /home/new"),
    )
    .unwrap();
    assert!(out.success(), "{}: {}", out.describe(), out.stderr_tail);
    let (blob, dir) = snap
        .commit(&b.cache, &b.tmp(), &DiffOptions::default())
        .unwrap();
    let names = layer_names(blob.path());
    assert!(names.contains(&"etc/.wh.group".to_string()), "{names:?}");
    assert!(names.contains(&"home/new".to_string()), "{names:?}");
    let hides_app = names.contains(&"home/.wh..wh..opq".to_string())
        || names.contains(&"home/.wh.app".to_string());
    assert!(hides_app, "the old /home/app must be hidden: {names:?}");
    let mut lowers = b.lowers.clone();
    lowers.push(dir);
    let next = Snapshot::prepare(&b.steps(), &lowers, mode).unwrap();
    let out = run_step(
        &next,
        &spec("test ! -e /etc/group && test -e /etc/passwd && ls -A /home >&2"),
    )
    .unwrap();
    assert!(out.success(), "{}: {}", out.describe(), out.stderr_tail);
    assert_eq!(out.stderr_tail.trim(), "new");
}

#[test]
fn deletions_reach_the_next_step_overlay() {
    if lade_tests::need_root("deletions_reach_the_next_step_overlay") {
        deletions_reach_the_next_step(RootfsMode::Overlay);
    }
}

#[test]
fn deletions_reach_the_next_step_copy() {
    if lade_tests::need_root("deletions_reach_the_next_step_copy") {
        deletions_reach_the_next_step(RootfsMode::Copy);
    }
}

#[test]
fn many_layers_fit_one_overlay() {
    if !lade_tests::need_root("many_layers_fit_one_overlay") {
        return;
    }
    let b = base(RootfsMode::Overlay);
    let mut lowers = b.lowers.clone();
    // 80 lower dirs with long paths: far more than the classic 4 KiB mount option string can hold.
    for i in 0..80 {
        let d = b
            .store
            .path()
            .join(format!("lade/layers/{}-{i:03}", "l".repeat(80)));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("layer-{i:03}")), "").unwrap();
        lowers.push(d);
    }
    let snap = Snapshot::prepare(&b.steps(), &lowers, RootfsMode::Overlay).unwrap();
    let out = run_step(&snap, &spec("ls / | grep -c '^layer-' >&2")).unwrap();
    assert!(out.success(), "{}: {}", out.describe(), out.stderr_tail);
    assert_eq!(out.stderr_tail.trim(), "80");
}
