//! Test images made with the peers, not with lade: umoci writes them, so what lade reads is independent of it.

use crate::ok;
use std::path::Path;
use std::process::Command;

/// Deterministic pseudo-random bytes (so layers differ per seed and do not compress away).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Add a layer holding `files` (path, content; parents made as needed) to `image` (`LAYOUT:TAG`) with umoci.
pub fn umoci_add_layer(image: &str, files: &[(&str, &[u8])]) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for (path, content) in files {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let tar = work.path().join("layer.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    ok(Command::new("umoci")
        .args(["raw", "add-layer", "--image", image])
        .arg(&tar));
}

/// Add image `layout:tag` (linux/amd64) made with umoci: one layer holding `files` (path, content), and
/// `cmd` as its Cmd when given. The layout is created when missing.
pub fn umoci_image(layout: &Path, tag: &str, files: &[(&str, &[u8])], cmd: Option<&str>) {
    if !layout.join("index.json").exists() {
        ok(Command::new("umoci")
            .arg("init")
            .arg("--layout")
            .arg(layout));
    }
    let img = format!("{}:{tag}", layout.display());
    ok(Command::new("umoci").args(["new", "--image", &img]));
    umoci_add_layer(&img, files);
    let mut config = Command::new("umoci");
    config.args([
        "config",
        "--image",
        &img,
        "--architecture",
        "amd64",
        "--os",
        "linux",
    ]);
    if let Some(cmd) = cmd {
        config.args(["--config.cmd", cmd]);
    }
    ok(&mut config);
}

/// The manifest digest `tag` names in an OCI layout (a bare tag or a full `name:tag` ref).
pub fn oci_digest(layout: &Path, tag: &str) -> Option<String> {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).ok()?).ok()?;
    idx["manifests"].as_array()?.iter().find_map(|m| {
        let name = m["annotations"]["org.opencontainers.image.ref.name"].as_str()?;
        (name == tag || name.ends_with(&format!(":{tag}")))
            .then(|| m["digest"].as_str().unwrap().to_string())
    })
}

/// Every blob in a layout hashes to its file name (checked with sha256sum, not with lade).
pub fn assert_blobs_valid(layout: &Path) {
    let Ok(rd) = std::fs::read_dir(layout.join("blobs/sha256")) else {
        return;
    };
    for e in rd.flatten() {
        let out = ok(Command::new("sha256sum").arg(e.path()));
        assert_eq!(
            out.split_whitespace().next().unwrap(),
            e.file_name().to_string_lossy(),
            "blob {} does not match its digest",
            e.path().display()
        );
    }
}

/// The busybox-static binary on this machine (Debian's busybox-static package).
pub fn busybox_static() -> Option<std::path::PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
}

/// Add image `layout:tag` (linux/amd64), made with umoci: a small busybox userland. /bin/busybox with a
/// symlink per common applet in /bin, /usr/bin -> ../bin, /etc/passwd and /etc/group with root, `app`
/// (1000:1000) and nobody, /tmp (1777), and PATH in the config. Base image for build tests.
pub fn busybox_image(layout: &Path, tag: &str) {
    busybox_image_for(layout, tag, "amd64");
}

/// Where scripts/setup.sh unpacks Debian's busybox-static:arm64.
pub const ARM64_BUSYBOX: &str = "/usr/local/lib/lade-test/busybox-arm64/bin/busybox";

/// [`busybox_image`] for `arch` (`amd64` or `arm64`), from that architecture's busybox-static.
pub fn busybox_image_for(layout: &Path, tag: &str, arch: &str) {
    let busybox = match arch {
        "arm64" => Some(std::path::PathBuf::from(ARM64_BUSYBOX)).filter(|p| p.is_file()),
        _ => busybox_static(),
    }
    .unwrap_or_else(|| panic!("busybox-static for {arch} is installed (scripts/setup.sh)"));
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    for d in ["bin", "etc", "tmp", "root", "home/app", "usr"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    for applet in [
        "sh",
        "ls",
        "cat",
        "echo",
        "id",
        "mkdir",
        "touch",
        "chmod",
        "chown",
        "rm",
        "cp",
        "mv",
        "ln",
        "find",
        "wc",
        "grep",
        "sed",
        "uname",
        "stat",
        "env",
        "true",
        "false",
        "test",
        "sleep",
        "tar",
        "head",
        "tail",
        "sort",
        "md5sum",
        "sha256sum",
        "printf",
        "readlink",
        "xargs",
        "ip",
        "cut",
        "tr",
        "pwd",
        "whoami",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::os::unix::fs::symlink("../bin", root.join("usr/bin")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let tar = work.path().join("layer.tar");
    ok(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    if !layout.join("index.json").exists() {
        ok(Command::new("umoci")
            .arg("init")
            .arg("--layout")
            .arg(layout));
    }
    let img = format!("{}:{tag}", layout.display());
    ok(Command::new("umoci").args(["new", "--image", &img]));
    ok(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &img])
        .arg(&tar));
    ok(Command::new("umoci").args([
        "config",
        "--image",
        &img,
        "--architecture",
        arch,
        "--os",
        "linux",
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]));
}
