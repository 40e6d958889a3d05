//! Layers: safe unpacking against hostile tars, whiteouts and opaque directories both ways, deterministic
//! digests, the copy-mode tree diff, and the unpacked-layer cache.

use lade::layer::{
    DiffOptions, DiffSource, LayerCache, UnpackOptions, WhiteoutMode, unpack, write_diff, write_tar,
};
use lade::oci::Compression;
use lade_tests::oci::busybox_image;
use lade_tests::{lade, need_root, ok, require_peers, run};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

/// A tar with raw names (the tar crate refuses `..`, which is the point here).
struct RawTar(Vec<u8>);

impl RawTar {
    fn new() -> Self {
        RawTar(Vec::new())
    }
    fn entry(mut self, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_ustar();
        {
            let u = h.as_ustar_mut().unwrap();
            u.name[..name.len()].copy_from_slice(name.as_bytes());
            u.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, "", data)
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Symlink, target, b"")
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Link, target, b"")
    }
    fn bytes(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

fn unpack_bytes(tar: &[u8], dest: &Path) -> anyhow::Result<()> {
    unpack(tar, dest, &UnpackOptions::default()).map(|_| ())
}

fn entries(blob: &Path) -> Vec<(String, tar::EntryType)> {
    let f = fs::File::open(blob).unwrap();
    let r = lade::layer::decompressor(f).unwrap();
    let mut a = tar::Archive::new(r);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().entry_type(),
            )
        })
        .collect()
}

#[test]
fn dotdot_paths_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let dest = outside.path().join("root");
    fs::create_dir(&dest).unwrap();
    let tar = RawTar::new().file("../escaped.txt", b"pwned").bytes();
    let err = unpack_bytes(&tar, &dest).unwrap_err();
    assert!(format!("{err:#}").contains(".."), "{err:#}");
    assert!(!outside.path().join("escaped.txt").exists());
    let tar = RawTar::new().file("a/../../escaped2.txt", b"pwned").bytes();
    assert!(unpack_bytes(&tar, &dest).is_err());
    assert!(!outside.path().join("escaped2.txt").exists());
}

#[test]
fn absolute_symlink_parent_stays_inside() {
    let outside = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    // `evil` points at a real directory outside that does not exist inside: refused, nothing written outside.
    let tar = RawTar::new()
        .symlink("evil", &target)
        .file("evil/pwned", b"x")
        .bytes();
    let err = unpack_bytes(&tar, dest.path()).unwrap_err();
    assert!(format!("{err:#}").contains("symlink"), "{err:#}");
    assert!(
        !outside.path().join("pwned").exists(),
        "a file escaped through an absolute symlink"
    );
    // Where the target exists inside the root, the absolute link resolves there (as in the container).
    let tar = RawTar::new()
        .entry("inside/", tar::EntryType::Directory, "", b"")
        .symlink("etc", "/inside")
        .file("etc/passwd", b"contained")
        .bytes();
    unpack_bytes(&tar, dest.path()).unwrap();
    assert_eq!(
        fs::read(dest.path().join("inside/passwd")).unwrap(),
        b"contained"
    );
    assert!(
        fs::symlink_metadata(dest.path().join("etc"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn relative_symlink_parent_escape_is_contained() {
    let outside = tempfile::tempdir().unwrap();
    let dest = outside.path().join("deep/root");
    fs::create_dir_all(&dest).unwrap();
    let tar = RawTar::new()
        .symlink("up", "../../../../../../../..")
        .file("up/pwned", b"x")
        .bytes();
    // `up` resolves to the root itself (`..` is clamped there), which exists: the write is contained.
    unpack_bytes(&tar, &dest).unwrap();
    assert!(!outside.path().join("pwned").exists());
    assert!(!outside.path().join("deep/pwned").exists());
    assert!(!Path::new("/pwned").exists());
    assert_eq!(
        fs::read(dest.join("pwned")).unwrap(),
        b"x",
        "`..` through the symlink is clamped at the root"
    );
}

#[test]
fn file_over_symlink_replaces_the_link() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, "original").unwrap();
    let dest = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .symlink("f", victim.to_str().unwrap())
        .file("f", b"overwritten")
        .bytes();
    unpack_bytes(&tar, dest.path()).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "original");
    assert_eq!(
        fs::read_to_string(dest.path().join("f")).unwrap(),
        "overwritten"
    );
    assert!(
        !fs::symlink_metadata(dest.path().join("f"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn outside_hardlinks_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    fs::write(&secret, "s3cret").unwrap();
    let dest = outside.path().join("root");
    fs::create_dir(&dest).unwrap();
    for link in ["../secret", secret.to_str().unwrap()] {
        let tar = RawTar::new().hardlink("hl", link).bytes();
        assert!(
            unpack_bytes(&tar, &dest).is_err(),
            "hardlink to {link} must be refused"
        );
        assert!(!dest.join("hl").exists());
    }
    // Through a symlinked directory: resolved inside the root, so the outside file is unreachable.
    let tar = RawTar::new()
        .symlink("d", outside.path().to_str().unwrap())
        .hardlink("hl", "d/secret")
        .bytes();
    assert!(unpack_bytes(&tar, &dest).is_err());
    assert_eq!(
        fs::metadata(&secret).unwrap().nlink(),
        1,
        "the outside file gained a link"
    );
}

#[test]
fn metadata_long_names_and_xattrs_round_trip() {
    let src = tempfile::tempdir().unwrap();
    let long = "d".repeat(120) + "/" + &"f".repeat(150);
    fs::create_dir_all(src.path().join("d".repeat(120))).unwrap();
    fs::write(src.path().join(&long), "long").unwrap();
    let suid = src.path().join("suid");
    fs::write(&suid, "bin").unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    // The owner part needs root (a skip of that part fails under LADE_REQUIRE_PEERS=1).
    let root = need_root("metadata_long_names_and_xattrs_round_trip (owners)");
    if root {
        std::os::unix::fs::lchown(&suid, Some(1234), Some(5678)).unwrap();
        fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    }
    rustix::fs::setxattr(
        &suid,
        "user.lade.test",
        b"value",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    symlink("suid", src.path().join("link")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let blob = write_diff(
        DiffSource::Tree(src.path()),
        tmp.path(),
        &DiffOptions::default(),
    )
    .unwrap();
    let dest = tempfile::tempdir().unwrap();
    unpack(
        fs::File::open(blob.path()).unwrap(),
        dest.path(),
        &UnpackOptions::default(),
    )
    .unwrap();
    assert_eq!(fs::read_to_string(dest.path().join(&long)).unwrap(), "long");
    let md = fs::metadata(dest.path().join("suid")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o4755, "setuid bit lost");
    if root {
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
    }
    let mut v = [0u8; 16];
    let n = rustix::fs::getxattr(dest.path().join("suid"), "user.lade.test", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"value");
    assert_eq!(
        fs::read_link(dest.path().join("link")).unwrap(),
        Path::new("suid")
    );
    // GNU tar reads it too.
    let out = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(blob.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&long));
}

fn make_tree(dir: &Path) {
    fs::create_dir_all(dir.join("a/sub")).unwrap();
    fs::write(dir.join("a/x"), "x").unwrap();
    fs::write(dir.join("a/sub/y"), "y".repeat(100_000)).unwrap();
    fs::write(dir.join("b"), "b").unwrap();
    fs::hard_link(dir.join("b"), dir.join("b2")).unwrap();
    symlink("/a/x", dir.join("abs")).unwrap();
}

#[test]
fn same_tree_same_epoch_same_digests() {
    let tmp = tempfile::tempdir().unwrap();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let opts = DiffOptions {
            compression,
            epoch: Some(1_700_000_000),
            ..Default::default()
        };
        let t1 = tempfile::tempdir().unwrap();
        make_tree(t1.path());
        let b1 = write_diff(DiffSource::Tree(t1.path()), tmp.path(), &opts).unwrap();
        // The same tree made again later: new mtimes (after the epoch), new inodes.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let t2 = tempfile::tempdir().unwrap();
        make_tree(t2.path());
        let b2 = write_diff(DiffSource::Tree(t2.path()), tmp.path(), &opts).unwrap();
        assert_eq!(b1.diff_id, b2.diff_id, "{compression:?}");
        assert_eq!(b1.digest, b2.digest, "{compression:?}");
        // The digests are those of the bytes on disk.
        let bytes = fs::read(b1.path()).unwrap();
        assert_eq!(b1.digest, lade::layer::sha256_hex(&bytes));
        assert_eq!(b1.size, bytes.len() as u64);
        let mut raw = Vec::new();
        lade::layer::decompressor(&bytes[..])
            .unwrap()
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(b1.diff_id, lade::layer::sha256_hex(&raw));
        // A changed byte changes both.
        fs::write(t2.path().join("a/x"), "X").unwrap();
        let b3 = write_diff(DiffSource::Tree(t2.path()), tmp.path(), &opts).unwrap();
        assert_ne!(b1.diff_id, b3.diff_id);
        // Sorted entries and the hardlink written as a link.
        let names: Vec<_> = entries(b1.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a/", "a/sub/", "a/sub/y", "a/x", "abs", "b", "b2"]);
        assert_eq!(entries(b1.path())[6].1, tar::EntryType::Link);
    }
}

#[test]
fn whiteouts_and_opaque_dirs_round_trip() {
    // Root for char devices and trusted xattrs.
    if !need_root("whiteouts_and_opaque_dirs_round_trip") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = tempfile::tempdir().unwrap();
    make_tree(lower.path());
    let lower_blob = write_diff(
        DiffSource::Tree(lower.path()),
        tmp.path(),
        &DiffOptions::default(),
    )
    .unwrap();
    // An overlay upper: `b` deleted, `a` replaced by an opaque dir holding only `z`.
    let upper = tempfile::tempdir().unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.path().join("b"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    fs::create_dir(upper.path().join("a")).unwrap();
    rustix::fs::setxattr(
        upper.path().join("a"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs::write(upper.path().join("a/z"), "z").unwrap();
    let diff = write_diff(
        DiffSource::OverlayUpper(upper.path()),
        tmp.path(),
        &DiffOptions::default(),
    )
    .unwrap();
    let names: Vec<_> = entries(diff.path()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a/", "a/.wh..wh..opq", "a/z", ".wh.b"]);
    // Copy mode: apply both layers onto one dir.
    let rootfs = tempfile::tempdir().unwrap();
    for b in [&lower_blob, &diff] {
        unpack(
            fs::File::open(b.path()).unwrap(),
            rootfs.path(),
            &UnpackOptions::default(),
        )
        .unwrap();
    }
    assert!(!rootfs.path().join("b").exists());
    assert!(rootfs.path().join("b2").exists());
    assert!(!rootfs.path().join("a/x").exists() && !rootfs.path().join("a/sub").exists());
    assert_eq!(fs::read_to_string(rootfs.path().join("a/z")).unwrap(), "z");
    // Overlay form: the diff unpacks back into the same upper shape.
    let cache = LayerCache::new(tmp.path());
    let dir = cache
        .get_or_unpack(&diff.diff_id, || Ok(Box::new(fs::File::open(diff.path())?)))
        .unwrap();
    let md = fs::symlink_metadata(dir.join("b")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(&md.file_type()) && md.rdev() == 0);
    let mut v = [0u8; 4];
    assert_eq!(
        rustix::fs::getxattr(dir.join("a"), "trusted.overlay.opaque", &mut v[..]).unwrap(),
        1
    );
    // ... and writing it again gives the same layer.
    let again = write_diff(
        DiffSource::OverlayUpper(&dir),
        tmp.path(),
        &DiffOptions::default(),
    )
    .unwrap();
    assert_eq!(again.diff_id, diff.diff_id);
}

#[test]
fn compare_trees_for_the_copy_fallback() {
    let lower = tempfile::tempdir().unwrap();
    let upper = tempfile::tempdir().unwrap();
    make_tree(lower.path());
    // Copy with identical metadata through tar, then change a few things.
    let mut t = Vec::new();
    write_tar(DiffSource::Tree(lower.path()), &mut t, None).unwrap();
    unpack(&t[..], upper.path(), &UnpackOptions::default()).unwrap();
    let lower2 = tempfile::tempdir().unwrap();
    unpack(&t[..], lower2.path(), &UnpackOptions::default()).unwrap();
    fs::remove_file(upper.path().join("a/x")).unwrap();
    fs::write(upper.path().join("a/sub/new"), "n").unwrap();
    fs::remove_dir_all(upper.path().join("a/sub")).unwrap();
    fs::create_dir(upper.path().join("a/sub")).unwrap();
    fs::write(upper.path().join("a/sub/new"), "n").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let blob = write_diff(
        DiffSource::Compare {
            lower: lower2.path(),
            upper: upper.path(),
        },
        tmp.path(),
        &DiffOptions::default(),
    )
    .unwrap();
    let names: Vec<_> = entries(blob.path()).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"a/.wh.x".to_string()), "{names:?}");
    assert!(names.contains(&"a/sub/.wh.y".to_string()), "{names:?}");
    assert!(names.contains(&"a/sub/new".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "b" || n == "b2" || n == "abs"),
        "unchanged files in the diff: {names:?}"
    );
    // Applying the diff on the lower gives the upper.
    unpack(
        fs::File::open(blob.path()).unwrap(),
        lower2.path(),
        &UnpackOptions::default(),
    )
    .unwrap();
    assert!(!lower2.path().join("a/x").exists() && !lower2.path().join("a/sub/y").exists());
    assert_eq!(
        fs::read_to_string(lower2.path().join("a/sub/new")).unwrap(),
        "n"
    );
}

#[test]
fn cache_verifies_the_diff_id_and_never_shows_half_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let blob = write_diff(
        DiffSource::Tree(src.path()),
        tmp.path(),
        &DiffOptions {
            compression: Compression::Zstd,
            ..Default::default()
        },
    )
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let cache = LayerCache::new(store.path());
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = cache
        .get_or_unpack(&wrong, || Ok(Box::new(fs::File::open(blob.path())?)))
        .unwrap_err();
    assert!(format!("{err:#}").contains("does not match"), "{err:#}");
    let left: Vec<_> = fs::read_dir(cache.dir()).unwrap().collect();
    assert!(left.is_empty(), "a failed unpack left {left:?}");
    assert!(
        cache
            .get_or_unpack("sha256:../../etc", || unreachable!())
            .is_err()
    );
    let dir = cache
        .get_or_unpack(&blob.diff_id, || Ok(Box::new(fs::File::open(blob.path())?)))
        .unwrap();
    assert_eq!(
        dir,
        store
            .path()
            .join("lade/layers")
            .join(blob.diff_id.trim_start_matches("sha256:"))
    );
    assert_eq!(fs::read_to_string(dir.join("a/x")).unwrap(), "x");
    // The second call is a hit: the opener is not called.
    assert_eq!(
        cache
            .get_or_unpack(&blob.diff_id, || unreachable!())
            .unwrap(),
        dir
    );
}

#[test]
fn whiteout_mode_overlay_needs_no_lower() {
    if !need_root("whiteout_mode_overlay_needs_no_lower") {
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .file("d/.wh.gone", b"")
        .file("d/.wh..wh..opq", b"")
        .bytes();
    unpack(
        &tar[..],
        dest.path(),
        &UnpackOptions {
            whiteouts: WhiteoutMode::Overlay { user_xattr: false },
            ..Default::default()
        },
    )
    .unwrap();
    let md = fs::symlink_metadata(dest.path().join("d/gone")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &md.file_type()
    ));
}

/// What must stay as it is on a host file: mode, owner, mtime, ctime (moved by any chmod, chown, xattr or
/// times change), content and xattrs.
fn host_state(p: &Path) -> (u32, u32, u32, i64, i64, i64, i64, Vec<u8>, Vec<u8>) {
    let m = fs::symlink_metadata(p).unwrap();
    let mut list = vec![0u8; 64 * 1024];
    let n = rustix::fs::llistxattr(p, &mut list[..]).unwrap_or(0);
    list.truncate(n);
    let content = if m.is_dir() {
        let mut names: Vec<String> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.join("\n").into_bytes()
    } else {
        fs::read(p).unwrap()
    };
    let (mt, mtn, ct, ctn) = (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
    (m.mode(), m.uid(), m.gid(), mt, mtn, ct, ctn, content, list)
}

/// One entry of [`hostile_layer`]: name, type, link target, mode, pax xattrs.
type LayerEnt<'a> = (
    &'a str,
    tar::EntryType,
    &'a str,
    u32,
    &'a [(&'a str, &'a str)],
);

/// A layer tar of `entries`, mtime 2001-09-09, owner 4242:4242.
fn hostile_layer(entries: &[LayerEnt]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, mode, xattrs) in entries {
        if !xattrs.is_empty() {
            let recs: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_bytes()))
                .collect();
            b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        let u = h.as_ustar_mut().unwrap();
        u.name[..name.len()].copy_from_slice(name.as_bytes());
        u.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_uid(4242);
        h.set_gid(4242);
        h.set_mtime(1_000_000_000);
        if *kind == tar::EntryType::Char {
            // /dev/null's numbers (0/0 would be a whiteout).
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        let body: &[u8] = if *kind == tar::EntryType::Regular {
            b"evil"
        } else {
            b""
        };
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn a_base_layer_cannot_reach_the_host_through_its_links() {
    if !need_root("a_base_layer_cannot_reach_the_host_through_its_links") {
        return;
    }
    require_peers!("umoci");
    let t = tempfile::tempdir().unwrap();
    // The victims: a host directory and a file in it, with distinctive metadata.
    let hostdir = t.path().join("hostdir");
    let victim = hostdir.join("victim");
    fs::create_dir_all(&hostdir).unwrap();
    fs::write(&victim, "host file").unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    for p in [&victim, &hostdir] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(p, Some(4321), Some(4321)).unwrap();
        fs::File::open(p)
            .unwrap()
            .set_times(fs::FileTimes::new().set_modified(old).set_accessed(old))
            .unwrap();
    }
    let (hd, v) = (hostdir.to_str().unwrap(), victim.to_str().unwrap());
    let in_root = format!("{}/", hd.trim_start_matches('/'));
    let in_root_victim = v.trim_start_matches('/');
    let x: &[(&str, &str)] = &[("user.lade.evil", "1")];
    use tar::EntryType::{Char, Directory as D, Link, Regular as F, Symlink as L};
    let layer = hostile_layer(&[
        // A link to the host directory, then writes and metadata through it (they land in the rootfs).
        (&in_root, D, "", 0o755, &[]),
        ("esc", L, hd, 0o777, &[]),
        ("esc/victim", F, "", 0o4777, x),
        ("esc/", D, "", 0o777, x),
        // A directory (its mtime set last) replaced by a link to the host file.
        ("d/", D, "", 0o777, x),
        ("d", L, v, 0o777, x),
        // A directory below a directory that becomes a link to the host directory.
        ("p/q/", D, "", 0o777, &[]),
        ("p", L, hd, 0o777, &[]),
        // A hardlink and a device node where links to the host file were.
        ("h", L, v, 0o777, &[]),
        ("h", Link, in_root_victim, 0o777, &[]),
        ("n", L, v, 0o777, &[]),
        ("n", Char, "", 0o666, &[]),
    ]);
    let layout = t.path().join("img");
    busybox_image(&layout, "1");
    let tar_path = t.path().join("evil.tar");
    fs::write(&tar_path, layer).unwrap();
    ok(std::process::Command::new("umoci")
        .args(["raw", "add-layer", "--image"])
        .arg(format!("{}:1", layout.display()))
        .arg(&tar_path));
    let root = t.path().join("store");
    ok(lade()
        .arg("--root")
        .arg(&root)
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg("lade:localhost/evil:1"));
    let ctx = t.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    // The RUN step sees what the layer wrote inside the rootfs, and changes nothing.
    fs::write(
        ctx.join("Containerfile"),
        format!(
            "FROM localhost/evil:1\nRUN cat /{in_root_victim} && test -L /d && test -L /p && \
             test -c /n && cat /h\n"
        ),
    )
    .unwrap();
    let before = (host_state(&victim), host_state(&hostdir));
    let o = run(lade()
        .arg("--root")
        .arg(&root)
        .args(["build", "-t", "after"])
        .arg(&ctx));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        host_state(&victim),
        before.0,
        "the host file changed\n{err}"
    );
    assert_eq!(
        host_state(&hostdir),
        before.1,
        "the host dir changed\n{err}"
    );
    assert!(o.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("evilevil") || err.contains("evilevil"),
        "the writes through the link landed in the rootfs\n{err}"
    );
}
