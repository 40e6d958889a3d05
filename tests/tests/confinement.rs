//! RUN confinement against runc: one Containerfile of probes (each RUN prints `@@probe NAME RESULT`), built
//! by `buildah bud --isolation oci` and by lade under its own namespaces and under `--isolation oci`. lade
//! must block everything runc blocks, and give the containers default capability set and seccomp profile.
//! Then the flags: --cap-add/--cap-drop, --security-opt seccomp=unconfined and no-new-privileges, and
//! --userns=auto against `buildah bud --userns=auto`.

use lade_tests::{lade, need_root, peer, run};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// containers.conf's default_capabilities as a CapEff mask (CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
/// SETUID SETPCAP NET_BIND_SERVICE SYS_CHROOT SETFCAP).
const DEFAULT_CAPEFF: &str = "00000000800405fb";

/// A tiny static program: calls sysfs(2) (which the containers default profile answers with EPERM; without
/// a filter it returns the number of filesystem types) and prints `EPERM`, `ok` or the errno.
const SYSCALL_PROBE: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    long r = syscall(SYS_sysfs, 3);
    if (r >= 0) { puts("ok"); return 0; }
    if (errno == EPERM) { puts("EPERM"); return 0; }
    printf("errno%d\n", errno);
    return 0;
}
"#;

/// The host's root disk as `major minor`.
fn root_disk() -> (u64, u64) {
    // glibc's gnu_dev_major / gnu_dev_minor.
    let dev = std::fs::metadata("/").unwrap().dev();
    (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    )
}

/// Print `@@probe NAME VALUE` and keep it in the layer (so no two probe layers are alike).
fn record(name: &str, value: &str) -> String {
    format!(
        "mkdir -p -m 1777 /probes && echo \"{value}\" > /probes/{name} && echo \"@@probe {name} {value}\""
    )
}

/// A context with busybox-static as /bin and the syscall probe, and the probe Containerfile.
fn context(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let busybox = lade_tests::oci::busybox_static().expect("busybox-static (scripts/setup.sh)");
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for a in [
        "sh", "cat", "echo", "grep", "head", "wc", "mkdir", "mount", "mknod", "ls", "stat",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
    }
    let src = dir.join("probe.c");
    std::fs::write(&src, SYSCALL_PROBE).unwrap();
    let gcc = peer("gcc").expect("checked by the test");
    let out = run(Command::new(gcc)
        .args(["-static", "-O2", "-o"])
        .arg(bin.join("syscall-probe"))
        .arg(&src));
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&src).unwrap();
    let (maj, min) = root_disk();
    let probe = |name: &str, test: &str| {
        format!(
            "RUN if {test}; then r=ALLOWED; else r=blocked; fi; {}\n",
            record(name, "$r")
        )
    };
    let mut f = String::from("FROM scratch\nCOPY bin /bin\n");
    f.push_str(&probe(
        "proc-sys-write",
        "v=$(cat /proc/sys/kernel/core_pattern) && (echo \"$v\" > /proc/sys/kernel/core_pattern) 2>/dev/null",
    ));
    f.push_str(&probe(
        "sysrq-open",
        "(exec 3>/proc/sysrq-trigger) 2>/dev/null",
    ));
    f.push_str(&probe(
        "kcore-read",
        "[ \"$(head -c 1 /proc/kcore 2>/dev/null | wc -c)\" = 1 ]",
    ));
    f.push_str(&probe(
        "mount-tmpfs",
        "mkdir -p /probe-mnt && mount -t tmpfs none /probe-mnt 2>/dev/null",
    ));
    f.push_str(&probe(
        "blockdev-read",
        &format!(
            "(mknod /probe-disk b {maj} {min} 2>/dev/null || [ -b /probe-disk ]) && \
             [ \"$(head -c 512 /probe-disk 2>/dev/null | wc -c)\" = 512 ]"
        ),
    ));
    let value = |name: &str, cmd: &str| format!("RUN r=$({cmd}); {}\n", record(name, "$r"));
    f.push_str(&value(
        "capeff",
        "grep CapEff /proc/self/status | grep -o '[0-9a-f]*$'",
    ));
    f.push_str(&value(
        "nnp",
        "grep NoNewPrivs /proc/self/status | grep -o '[0-9]*$'",
    ));
    f.push_str(&value("sysfs-syscall", "syscall-probe"));
    // Another user than root keeps only the bounding set.
    f.push_str("USER 1000\n");
    f.push_str(&value(
        "capeff-user",
        "grep CapEff /proc/self/status | grep -o '[0-9a-f]*$'",
    ));
    std::fs::write(dir.join("Containerfile"), f).unwrap();
}

fn probes(out: &std::process::Output) -> BTreeMap<String, String> {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|l| l.strip_prefix("@@probe "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn lade_probes(root: &Path, ctx: &Path, flags: &[&str]) -> BTreeMap<String, String> {
    let mut c = lade();
    c.arg("--root")
        .arg(root)
        .args(["build", "--no-cache"])
        .args(flags)
        .arg(ctx);
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "lade build {flags:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let p = probes(&out);
    assert_eq!(p.len(), 9, "lade {flags:?} reported every probe: {p:?}");
    p
}

fn buildah_probes(ctx: &Path, flags: &[&str]) -> BTreeMap<String, String> {
    let state = tempfile::tempdir().unwrap();
    let buildah = peer("buildah").expect("checked by the test");
    let out = run(Command::new(buildah)
        .arg("--root")
        .arg(state.path().join("root"))
        .arg("--runroot")
        .arg(state.path().join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "bud",
            "--isolation",
            "oci",
            "--layers=false",
        ])
        .args(flags)
        .arg(ctx));
    assert!(
        out.status.success(),
        "buildah bud {flags:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let p = probes(&out);
    assert_eq!(p.len(), 9, "buildah {flags:?} reported every probe: {p:?}");
    p
}

/// Every probe runc blocks, `lade` blocks too; and the absolute expectations hold.
fn assert_confined(what: &str, lade: &BTreeMap<String, String>, runc: &BTreeMap<String, String>) {
    for (k, v) in runc {
        if v == "blocked" {
            assert_eq!(lade[k], "blocked", "{what}: runc blocks {k}, lade does not");
        }
    }
    for k in [
        "proc-sys-write",
        "sysrq-open",
        "kcore-read",
        "mount-tmpfs",
        "blockdev-read",
    ] {
        assert_eq!(lade[k], "blocked", "{what}: {k}");
    }
    assert_eq!(lade["capeff"], runc["capeff"], "{what}: CapEff as runc's");
    assert_eq!(
        lade["capeff-user"], runc["capeff-user"],
        "{what}: CapEff of uid 1000 as runc's"
    );
    assert_eq!(lade["capeff-user"], "0000000000000000", "{what}");
    assert_eq!(
        lade["sysfs-syscall"], runc["sysfs-syscall"],
        "{what}: seccomp as runc's"
    );
}

#[test]
fn run_steps_are_confined_at_least_as_runc_confines_them() {
    if !need_root("run_steps_are_confined_at_least_as_runc_confines_them") {
        return;
    }
    lade_tests::require_peers!("buildah", "runc", "gcc");
    let ctx = tempfile::tempdir().unwrap();
    context(ctx.path());
    let root = tempfile::tempdir().unwrap();
    let runc = buildah_probes(ctx.path(), &[]);
    assert_eq!(
        runc["capeff"], DEFAULT_CAPEFF,
        "buildah's default set: {runc:?}"
    );
    assert_eq!(
        runc["sysfs-syscall"], "EPERM",
        "runc's default profile: {runc:?}"
    );
    assert_eq!(runc["nnp"], "0");
    for iso in ["chroot", "oci"] {
        let l = lade_probes(root.path(), ctx.path(), &["--isolation", iso]);
        assert_confined(&format!("--isolation {iso}"), &l, &runc);
        assert_eq!(
            l["nnp"], "0",
            "no_new_privs is off by default, as in buildah"
        );
    }
}

#[test]
fn cap_add_cap_drop_seccomp_unconfined_and_no_new_privileges() {
    if !need_root("cap_add_cap_drop_seccomp_unconfined_and_no_new_privileges") {
        return;
    }
    lade_tests::require_peers!("buildah", "runc", "gcc");
    let ctx = tempfile::tempdir().unwrap();
    context(ctx.path());
    let root = tempfile::tempdir().unwrap();
    let flags = [
        "--cap-add",
        "NET_RAW,mknod",
        "--cap-drop",
        "CAP_CHOWN",
        "--security-opt",
        "seccomp=unconfined",
    ];
    // buildah 1.28 refuses no-new-privileges, so only lade gets it.
    let runc = buildah_probes(ctx.path(), &flags);
    // CHOWN (bit 0) dropped, NET_RAW (13) and MKNOD (27) added.
    assert_eq!(runc["capeff"], "00000000880425fa", "{runc:?}");
    assert_eq!(runc["sysfs-syscall"], "ok");
    for iso in ["chroot", "oci"] {
        let mut f = vec!["--isolation", iso, "--security-opt", "no-new-privileges"];
        f.extend(flags);
        let l = lade_probes(root.path(), ctx.path(), &f);
        // With CAP_MKNOD the node is made, but the rootfs is nodev: still unreadable.
        assert_confined(&format!("{f:?}"), &l, &runc);
        assert_eq!(l["nnp"], "1", "{f:?}");
    }
    // ALL, and an unknown capability, option or a broken profile refused by name.
    let profile = ctx.path().join("bad-profile.json");
    std::fs::write(&profile, "{\"defaultAction\": 1}").unwrap();
    let bad_profile = format!("seccomp={}", profile.display());
    let l = lade_probes(
        root.path(),
        ctx.path(),
        &["--cap-drop", "ALL", "--cap-add", "kill"],
    );
    assert_eq!(l["capeff"], "0000000000000020");
    for bad in [
        ["--cap-add", "CAP_NOPE"],
        ["--security-opt", "mask=/proc"],
        ["--security-opt", &bad_profile],
    ] {
        let out = run(lade()
            .arg("--root")
            .arg(root.path())
            .arg("build")
            .args(bad)
            .arg(ctx.path()));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&bad[1].to_string()), "{bad:?}: {err}");
    }
}

#[test]
fn a_mknod_node_lands_in_the_layer_but_cannot_be_opened() {
    if !need_root("a_mknod_node_lands_in_the_layer_but_cannot_be_opened") {
        return;
    }
    lade_tests::require_peers!("buildah", "runc", "gcc");
    let ctx = tempfile::tempdir().unwrap();
    context(ctx.path());
    let (maj, min) = root_disk();
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!(
            "FROM scratch\nCOPY bin /bin\nRUN mknod /disk b {maj} {min}\n\
             RUN [ -b /disk ] && echo \"@@probe node b\"; if head -c 1 /disk >/dev/null 2>&1; \
             then echo '@@probe open ALLOWED'; else echo '@@probe open blocked'; fi\n"
        ),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    for iso in ["chroot", "oci"] {
        let out = run(lade()
            .arg("--root")
            .arg(root.path())
            .args([
                "build",
                "--no-cache",
                "--cap-add",
                "MKNOD",
                "--isolation",
                iso,
            ])
            .arg(ctx.path()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let p = probes(&out);
        assert_eq!(p.get("node").map(String::as_str), Some("b"), "{iso}: {p:?}");
        assert_eq!(
            p.get("open").map(String::as_str),
            Some("blocked"),
            "{iso}: {p:?}"
        );
    }
}

/// A `containers` range in /etc/subuid and /etc/subgid for `--userns=auto`: added when a file has none, and
/// removed again on drop only from the files this added it to. Every edit is a rename of a complete file.
struct ContainersRange {
    added: Vec<&'static str>,
    /// The first host uid of the range (inside uid 0).
    uid_start: u64,
}

const TEST_RANGE: &str = "containers:2147483647:2147483648";

fn containers_start(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        (f.len() == 3 && f[0] == "containers" && f[2].parse::<u64>().is_ok_and(|n| n >= 65536))
            .then(|| f[1].parse().ok())
            .flatten()
    })
}

fn replace_file(path: &str, text: &str) {
    let tmp = format!("{path}.lade-test-tmp");
    std::fs::write(&tmp, text).unwrap();
    let mode = std::fs::metadata(path).map(|m| m.mode()).unwrap_or(0o644);
    std::fs::set_permissions(
        &tmp,
        std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777),
    )
    .unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

impl ContainersRange {
    fn ensure() -> ContainersRange {
        let mut r = ContainersRange {
            added: Vec::new(),
            uid_start: 0,
        };
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let start = match containers_start(&text) {
                Some(s) => s,
                None => {
                    let mut t = text.clone();
                    if !t.is_empty() && !t.ends_with('\n') {
                        t.push('\n');
                    }
                    t.push_str(TEST_RANGE);
                    t.push('\n');
                    replace_file(file, &t);
                    r.added.push(file);
                    containers_start(&t).unwrap()
                }
            };
            if file == "/etc/subuid" {
                r.uid_start = start;
            }
        }
        r
    }
}

impl Drop for ContainersRange {
    fn drop(&mut self) {
        for file in &self.added {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let kept: String = text
                .lines()
                .filter(|l| l.trim() != TEST_RANGE)
                .map(|l| format!("{l}\n"))
                .collect();
            replace_file(file, &kept);
        }
    }
}

/// The Containerfile of the --userns=auto test: the step's uid_map and CapEff, a file owned by root and a
/// directory owned by 1000, then a device node and the removal of the read-only /proc/sys mount (with
/// CAP_MKNOD and CAP_SYS_ADMIN, both allowed to a root in the host's user namespace, neither inside another
/// one: device nodes need the host's CAP_MKNOD, and the setup's mounts are locked beneath the step).
/// Under --userns=auto a cache mount is written and the context read (both idmapped). lade only: buildah
/// 1.28's own --userns=auto cannot write its cache mount (the cache dir stays owned by the host's root).
const USERNS_MOUNTS_FILE: &str = "FROM scratch\nCOPY bin /bin\n\
RUN --mount=type=cache,target=/cache --mount=type=bind,target=/ctx \
touch /cache/x && cat /ctx/Containerfile >/dev/null && echo \"@@probe mounts ok\"\n";

const USERNS_FILE: &str = "FROM scratch\nCOPY bin /bin\n\
RUN echo \"@@probe uidmap $(cat /proc/self/uid_map)\" && \
echo \"@@probe capeff $(grep CapEff /proc/self/status | grep -o '[0-9a-f]*$')\" && \
touch /a && mkdir /b && chown 1000:1000 /b\n\
RUN if mknod /null c 1 3 2>/dev/null; then r=ALLOWED; else r=refused; fi; echo \"@@probe mknod $r\"; rm -f /null; \
if umount -l /proc/sys 2>/dev/null; then r=ALLOWED; else r=refused; fi; echo \"@@probe umount $r\"\n";

/// Build `ctx` with lade (`flags`), export it to an OCI layout and return its probes and last layer's owners.
fn lade_userns_build(
    root: &Path,
    ctx: &Path,
    flags: &[&str],
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let out = run(lade()
        .arg("--root")
        .arg(root)
        .args([
            "build",
            "--no-cache",
            "-t",
            "userns-probe",
            "--cap-add",
            "MKNOD,SYS_ADMIN",
        ])
        .args(flags)
        .arg(ctx));
    assert!(
        out.status.success(),
        "lade build {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = probes(&out);
    let layout = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:1", layout.path().join("img").display());
    let out = run(lade()
        .arg("--root")
        .arg(root)
        .args(["push", "userns-probe"])
        .arg(&dest));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The mknod step's layer is the last; /a and /b are in the one before.
    (p, layer_owners(&layout.path().join("img"), 1))
}

/// `uid/gid` by name of every entry of a layer of the image in `layout` (`back` layers from the top).
fn layer_owners(layout: &Path, back: usize) -> BTreeMap<String, String> {
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let blob = |d: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(&index["manifests"][0]["digest"]));
    let layers = manifest["layers"].as_array().unwrap();
    tar_owners(&blob(&layers[layers.len() - 1 - back]["digest"]))
}

fn tar_owners(layer: &Path) -> BTreeMap<String, String> {
    let out = run(Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(layer));
    assert!(out.status.success(), "tar -tvf {}", layer.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6).then(|| (f[5].trim_end_matches('/').to_string(), f[1].to_string()))
        })
        .collect()
}

/// `buildah bud --userns=auto` of `ctx`: its probes and the owners in its (single, --layers=false) layer; None
/// (with a loud message) when buildah cannot do it on this machine.
fn buildah_userns_build(
    ctx: &Path,
) -> Option<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let state = tempfile::tempdir().unwrap();
    let buildah = peer("buildah")?;
    let base = |c: &mut Command| {
        c.arg("--root")
            .arg(state.path().join("root"))
            .arg("--runroot")
            .arg(state.path().join("run"))
            .args(["--storage-driver", "vfs"]);
    };
    let mut c = Command::new(&buildah);
    base(&mut c);
    c.args([
        "bud",
        "--userns=auto",
        "--isolation",
        "chroot",
        "--layers=false",
        "--cap-add",
        "MKNOD,SYS_ADMIN",
        "-t",
        "userns-probe",
    ])
    .arg(ctx);
    let out = run(&mut c);
    if !out.status.success() {
        eprintln!(
            "\n*** buildah bud --userns=auto FAILED on this machine; only lade's own assertions ran ***\n{}\n",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let p = probes(&out);
    let layout = state.path().join("img");
    let mut c = Command::new(&buildah);
    base(&mut c);
    c.args(["push", "userns-probe"])
        .arg(format!("oci:{}:1", layout.display()));
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "buildah push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((p, layer_owners(&layout, 0)))
}

#[test]
fn userns_auto_runs_steps_in_a_user_namespace_with_the_usual_owners() {
    if !need_root("userns_auto_runs_steps_in_a_user_namespace_with_the_usual_owners") {
        return;
    }
    lade_tests::require_peers!("buildah", "tar");
    let range = ContainersRange::ensure();
    let ctx = tempfile::tempdir().unwrap();
    let bin = ctx.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let busybox = lade_tests::oci::busybox_static().expect("busybox-static (scripts/setup.sh)");
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for a in [
        "sh", "cat", "echo", "grep", "touch", "mkdir", "chown", "mknod", "rm",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
    }
    std::fs::write(ctx.path().join("Containerfile"), USERNS_FILE).unwrap();
    let root = tempfile::tempdir().unwrap();

    let (host_p, host_owners) = lade_userns_build(root.path(), ctx.path(), &[]);
    let (ns_p, ns_owners) = lade_userns_build(root.path(), ctx.path(), &["--userns=auto"]);
    // Without --userns: the identity map, and a root with CAP_MKNOD makes the node.
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(words(&host_p["uidmap"]), "0 0 4294967295", "{host_p:?}");
    assert_eq!(host_p["mknod"], "ALLOWED", "{host_p:?}");
    assert_eq!(host_p["umount"], "ALLOWED", "{host_p:?}");
    // With it: inside 0 is the containers range's start, and the same root cannot make a device node.
    let map: Vec<u64> = ns_p["uidmap"]
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(map.len(), 3, "one uid_map line: {ns_p:?}");
    assert_eq!(
        (map[0], map[1]),
        (0, range.uid_start),
        "inside 0 -> the containers range: {ns_p:?}"
    );
    assert!(map[2] >= 1001, "uid 1000 is mapped: {ns_p:?}");
    assert_eq!(
        ns_p["mknod"], "refused",
        "a user namespace's root: {ns_p:?}"
    );
    assert_eq!(ns_p["umount"], "refused", "locked mounts: {ns_p:?}");
    // The default set with MKNOD (bit 27) and SYS_ADMIN (21), inside the namespace as outside.
    assert_eq!(ns_p["capeff"], "00000000882405fb", "{ns_p:?}");
    assert_eq!(host_p["capeff"], ns_p["capeff"]);
    // The layer comes out with the owners it has without a user namespace.
    assert_eq!(
        host_owners.get("a").map(String::as_str),
        Some("0/0"),
        "{host_owners:?}"
    );
    assert_eq!(
        host_owners.get("b").map(String::as_str),
        Some("1000/1000"),
        "{host_owners:?}"
    );
    assert_eq!(
        ns_owners, host_owners,
        "--userns=auto's layer vs the host namespace's"
    );

    if let Some((bp, b_owners)) = buildah_userns_build(ctx.path()) {
        let bmap: Vec<u64> = bp["uidmap"]
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        assert_eq!(
            (bmap[0], bmap[1]),
            (0, range.uid_start),
            "buildah's map: {bp:?}"
        );
        assert_eq!(bp["mknod"], ns_p["mknod"], "mknod as in buildah: {bp:?}");
        assert_eq!(bp["umount"], ns_p["umount"], "umount as in buildah: {bp:?}");
        assert_eq!(bp["capeff"], ns_p["capeff"], "{bp:?}");
        for f in ["a", "b"] {
            assert_eq!(
                b_owners.get(f),
                ns_owners.get(f),
                "owner of /{f} as buildah's"
            );
        }
    }

    std::fs::write(ctx.path().join("Mounts.Containerfile"), USERNS_MOUNTS_FILE).unwrap();
    let out = run(lade()
        .arg("--root")
        .arg(root.path())
        .args(["build", "--no-cache", "--userns=auto", "-f"])
        .arg(ctx.path().join("Mounts.Containerfile"))
        .arg(ctx.path()));
    assert!(
        out.status.success(),
        "cache and context mounts under --userns=auto: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(probes(&out).get("mounts").map(String::as_str), Some("ok"));

    // runc 1.1 cannot idmap the rootfs: refused by name.
    let out = run(lade()
        .arg("--root")
        .arg(root.path())
        .args(["build", "--userns=auto", "--isolation", "oci"])
        .arg(ctx.path()));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--isolation oci"), "{err}");
    drop(range);
}
