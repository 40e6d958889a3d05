//! A rootless build: `lade build` started by an ordinary user re-runs itself in a user namespace mapped from
//! /etc/subuid and /etc/subgid, and the image it makes has the owners its steps gave (RUN chown, COPY --chown,
//! WORKDIR under USER), exactly as a root build would record them.

use lade_tests::oci::busybox_image;
use lade_tests::{lade_bin, ok, require_peers};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// The user scripts/setup.sh makes, with a subordinate id range.
const USER: &str = "lade-rootless";

/// Run `script` as [`USER`] with a `sh`, lade as `$L`.
fn as_user(script: &str, home: &Path) -> String {
    let out = Command::new("su")
        .args([USER, "-s", "/bin/sh", "-c"])
        .arg(format!(
            "set -e; export L={} LADE_CACHE_DIR={}/cache; cd {}; {script}",
            lade_bin().display(),
            home.display(),
            home.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "as {USER}: {script}\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_ordinary_user_builds_with_the_owners_the_steps_gave() {
    require_peers!("umoci", "unshare", "newuidmap");
    if !lade_tests::need_root_for(
        "an_ordinary_user_builds_with_the_owners_the_steps_gave",
        "it switches to an ordinary user",
    ) {
        return;
    }
    let ready = Command::new("id")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            !lade_tests::peers_required(),
            "the rootless test needs the user {USER} (scripts/setup.sh)"
        );
        eprintln!("SKIPPED: needs the user {USER} (scripts/setup.sh)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    busybox_image(&home.join("base"), "1");
    fs::create_dir_all(home.join("ctx")).unwrap();
    fs::write(
        home.join("ctx/Containerfile"),
        "FROM localhost/base:1\n\
         RUN mkdir -p /data && echo made > /data/made && chown -R 1000:50 /data\n\
         COPY --chown=app:staff a.txt /data/a.txt\n\
         USER app\n\
         WORKDIR /srv/work\n\
         RUN id -u > ./uid && id -G > ./groups\n",
    )
    .unwrap();
    fs::write(home.join("ctx/a.txt"), "from the context\n").unwrap();
    ok(Command::new("chown").args(["-R", USER]).arg(home));
    ok(Command::new("chmod").arg("755").arg(home));

    let id = as_user(
        "$L --root store copy -q oci:base:1 lade:localhost/base:1; \
         $L --root store build -q -t app:1 ctx; \
         $L --root store push app:1 oci:out:x",
        home,
    );
    assert_eq!(id.trim().lines().last().unwrap_or("").len(), 64, "{id}");
    // The store is the user's own.
    let uid = fs::metadata(home.join("store/index.json")).unwrap().uid();
    let user_uid: u32 = String::from_utf8(
        Command::new("id")
            .args(["-u", USER])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    assert_eq!(uid, user_uid, "the store belongs to the user who built");

    // Unpacked by root with umoci: the owners are the image's, not the host's.
    let bundle = home.join("bundle");
    ok(Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:x", home.join("out").display()))
        .arg(&bundle));
    let owner = |p: &str| {
        let m = fs::symlink_metadata(bundle.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("data/made"), (1000, 50));
    assert_eq!(owner("data/a.txt"), (1000, 50));
    assert_eq!(owner("srv/work"), (1000, 1000));
    assert_eq!(owner("srv/work/uid"), (1000, 1000));
    assert_eq!(owner("bin/busybox"), (0, 0));
    assert_eq!(
        fs::read_to_string(bundle.join("data/a.txt")).unwrap(),
        "from the context\n"
    );
    assert_eq!(
        fs::read_to_string(bundle.join("srv/work/uid")).unwrap(),
        "1000\n"
    );
    assert_eq!(
        fs::read_to_string(bundle.join("srv/work/groups")).unwrap(),
        "1000 50\n"
    );
}
