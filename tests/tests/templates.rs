//! `--format` Go templates against the peers that defined them: `lade images` against `podman images` over
//! the same images (pulled by both from one registry, so both stores hold the same manifest and config
//! bytes), `lade inspect` against `skopeo inspect`, and errors that say where a template is wrong.

mod fixture;

use lade_tests::{Registry, fails, lade, ok, require_peers};
use std::path::Path;
use std::process::Command;

/// Bytes that gzip cannot shrink much (so sizes differ compressed and not), from a seed.
fn noise(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// Push two images, with gzip layers, to `reg` as `a:1` and `b:2` (b also as `b:extra`).
fn seed(t: &Path, reg: &Registry) {
    let src = t.join("src");
    fixture::fixture(&src, "a", "amd64", &noise(1, 300_000));
    fixture::fixture(&src, "b", "amd64", &noise(2, 4_000_000));
    for (tag, dest) in [("a", "a:1"), ("b", "b:2"), ("b", "b:extra")] {
        ok(Command::new("skopeo").args([
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--dest-compress-format",
            "gzip",
            "--dest-compress",
            &format!("oci:{}:{tag}", src.display()),
            &format!("docker://{}/{dest}", reg.addr),
        ]));
    }
}

fn podman(t: &Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(t.join("podroot"))
        .arg("--runroot")
        .arg(t.join("podrun"))
        .args(["--storage-driver", "vfs"]);
    c
}

fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn images_template_prints_what_podman_prints() {
    require_peers!("podman", "skopeo", "docker-registry");
    let Some(reg) = Registry::start() else { return };
    let t = tempfile::tempdir().unwrap();
    seed(t.path(), &reg);
    let root = t.path().join("root");
    for name in ["a:1", "b:2", "b:extra"] {
        let r = format!("{}/{name}", reg.addr);
        ok(podman(t.path()).args(["pull", "-q", "--tls-verify=false", &r]));
        ok(lade().arg("--root").arg(&root).args([
            "pull",
            "--tls-verify=false",
            &format!("docker://{r}"),
        ]));
    }
    for format in [
        "{{.Repository}}:{{.Tag}} {{.Size}}",
        "{{.ID}} {{.Digest}} {{.VirtualSize}} {{.CreatedAt}}",
        // (podman lists an image's newest name first, lade in name order: only the count is compared)
        "{{len .Names}} {{len .Labels}} {{.Dangling}}",
        r"table {{.Repository}}\t{{.Tag}}\t{{.Size}}",
    ] {
        let want = ok(podman(t.path()).args(["images", "--format", format]));
        let got = ok(lade()
            .arg("--root")
            .arg(&root)
            .args(["images", "--format", format]));
        // podman lists newest first, lade in store order: the rows must be the same set; a table's header
        // stays first.
        assert_eq!(
            got.lines().next().filter(|_| format.starts_with("table")),
            want.lines().next().filter(|_| format.starts_with("table")),
            "{format}"
        );
        assert_eq!(sorted(&got), sorted(&want), "{format}");
    }
    let sizes = ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["images", "--format", "{{.Size}}"]));
    assert!(sizes.contains("MB"), "the 4 MB image reads as MB: {sizes}");
    // The sizes podman agreed with above are remembered: with the gzip layer blobs moved aside, the listing
    // is the same, so it decompressed none of them again.
    let blobs = root.join("blobs/sha256");
    let aside = t.path().join("aside");
    std::fs::create_dir(&aside).unwrap();
    let mut moved = 0;
    for e in std::fs::read_dir(&blobs).unwrap().flatten() {
        if std::fs::read(e.path()).unwrap().starts_with(&[0x1f, 0x8b]) {
            std::fs::rename(e.path(), aside.join(e.file_name())).unwrap();
            moved += 1;
        }
    }
    assert!(
        moved >= 2,
        "the noise layers of the two images at least: {moved}"
    );
    let again = lade()
        .arg("--root")
        .arg(&root)
        .args(["images", "--format", "{{.Size}}"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        sizes,
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    for e in std::fs::read_dir(&aside).unwrap().flatten() {
        std::fs::rename(e.path(), blobs.join(e.file_name())).unwrap();
    }
    // What it remembered is sound store metadata.
    let report = ok(lade().arg("--root").arg(&root).arg("fsck"));
    assert!(!report.contains("metadata"), "{report}");
}

#[test]
fn images_all_lists_unnamed_builds_but_not_attached_artifacts() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let src = t.path().join("src");
    let empty = ok(lade().arg("--root").arg(&root).arg("images"));
    assert_eq!(
        empty.split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    let subject = fixture::fixture(&src, "named", "amd64", "named");
    fixture::referrer(&src, &subject, "an attached document");
    ok(lade().arg("--root").arg(&root).args([
        "copy",
        &format!("oci:{}:named", src.display()),
        "lade:named:1",
    ]));
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nLABEL unnamed=yes\n",
    )
    .unwrap();
    ok(lade().arg("--root").arg(&root).arg("build").arg(&ctx));
    // An empty manifest list has no image for this host: it is listed all the same, as its index.
    ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["manifest", "create", "list:1"]));
    let f = "{{.Repository}}:{{.Tag}} {{.Dangling}} {{.Labels}}";
    let plain = ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["images", "--format", f]));
    assert_eq!(
        sorted(&plain),
        [
            "localhost/list:1 false map[]",
            "localhost/named:1 false map[fixture:named]"
        ]
    );
    let all = ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["images", "-a", "--format", f]));
    assert_eq!(
        sorted(&all),
        [
            "<none>:<none> true map[unnamed:yes]",
            "localhost/list:1 false map[]",
            "localhost/named:1 false map[fixture:named]"
        ],
        "{all}"
    );
}

#[test]
fn inspect_template_prints_what_skopeo_prints() {
    require_peers!("skopeo", "docker-registry");
    let Some(reg) = Registry::start() else { return };
    let t = tempfile::tempdir().unwrap();
    seed(t.path(), &reg);
    let image = format!("docker://{}/b:2", reg.addr);
    for format in [
        "{{.Digest}}",
        "{{.Name}} {{.Architecture}} {{.Os}} {{.Created}}",
        "{{.Layers}} {{.Env}} {{.RepoTags}}",
        "{{range .Layers}}{{.}} {{end}}{{len .Labels}}",
    ] {
        let want = ok(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--format",
            format,
            &image,
        ]));
        let got = ok(lade().args(["inspect", "--tls-verify=false", "--format", format, &image]));
        assert_eq!(got, want, "{format}");
    }
    let tags = ok(lade().args([
        "list-tags",
        "--tls-verify=false",
        "--format",
        "{{range .Tags}}{{.}} {{end}}",
        &format!("docker://{}/b", reg.addr),
    ]));
    let mut tags: Vec<&str> = tags.split_whitespace().collect();
    tags.sort();
    assert_eq!(tags, ["2", "extra"]);
}

#[test]
fn a_bad_template_says_where() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let src = t.path().join("src");
    fixture::fixture(&src, "x", "amd64", "x");
    ok(lade().arg("--root").arg(&root).args([
        "copy",
        &format!("oci:{}:x", src.display()),
        "lade:x:1",
    ]));
    let images = |f: &str| {
        fails(
            lade()
                .arg("--root")
                .arg(&root)
                .args(["images", "--format", f]),
            2,
        )
    };
    let e = images("{{.Repository}} {{nosuch .Tag}}");
    assert!(
        e.contains("line 1, column 17") && e.contains("{{nosuch .Tag}}"),
        "{e}"
    );
    let e = images("{{.Repository}}\n{{.Tag");
    assert!(
        e.contains("line 2, column 1") && e.contains("unclosed action"),
        "{e}"
    );
    // A field the image does not have fails when rendered, naming the field and where it is.
    let e = fails(
        lade()
            .arg("--root")
            .arg(&root)
            .args(["images", "--format", "{{.Tag}} {{.Nope}}"]),
        1,
    );
    assert!(
        e.contains("line 1, column 10") && e.contains("no field Nope"),
        "{e}"
    );
    let e = fails(
        lade()
            .arg("--root")
            .arg(&root)
            .args(["inspect", "--format", "{{.Digest", "x:1"]),
        2,
    );
    assert!(
        e.contains("column 1") && e.contains("unclosed action"),
        "{e}"
    );
}
