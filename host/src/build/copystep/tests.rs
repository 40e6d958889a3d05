//! Unit tests of COPY/ADD over temp contexts and layer dirs.

use super::*;
use crate::context::IgnoreMatcher;
use crate::plugin::frontend::InlineFile;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::fs::symlink;
use std::time::SystemTime;

fn step(sources: &[&str], dest: &str) -> CopyStep {
    CopyStep {
        sources: sources.iter().map(|s| s.to_string()).collect(),
        inline_sources: Vec::new(),
        destination: dest.to_string(),
        from: None,
        chown: None,
        chmod: None,
        link: false,
        parents: false,
        exclude: Vec::new(),
        checksum: None,
        keep_git_dir: false,
    }
}

struct Fixture {
    t: tempfile::TempDir,
    ctx: BuildContext,
    view: RootView,
    cache: StatCache,
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let c = t.path().join("ctx");
    write(&c.join("a.txt"), "A");
    write(&c.join("b.txt"), "B");
    write(&c.join("run.sh"), "#!/bin/sh\n");
    std::fs::set_permissions(c.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(&c.join("dir/f1"), "one");
    write(&c.join("dir/sub/f2"), "two");
    write(&c.join("dir/debug.log"), "log");
    symlink("f1", c.join("dir/link")).unwrap();
    write(&c.join("a/b/c.txt"), "C");
    let base = t.path().join("layer0");
    write(
        &base.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    );
    write(
        &base.join("etc/group"),
        "root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
    );
    std::fs::create_dir_all(base.join("usr/bin")).unwrap();
    symlink("usr/bin", base.join("bin")).unwrap();
    symlink("../../../etc/passwd", base.join("etc/pw-link")).unwrap();
    std::fs::create_dir_all(base.join("app")).unwrap();
    std::fs::set_permissions(base.join("app"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let ctx = BuildContext::with_ignore(&c, IgnoreMatcher::parse("", None).unwrap()).unwrap();
    let view = RootView::new(vec![base]);
    let cache = StatCache::open(&t.path().join("statcache.json"));
    Fixture {
        t,
        ctx,
        view,
        cache,
    }
}

impl Fixture {
    fn req<'a>(&'a self, s: &'a CopyStep, add: bool, workdir: &'a str) -> CopyRequest<'a> {
        CopyRequest {
            step: s,
            add,
            source: CopySource::Context(&self.ctx),
            dest: &self.view,
            users: &self.view,
            workdir,
            statcache: &self.cache,
            tmp_dir: self.t.path(),
            location: "Containerfile:7",
        }
    }

    /// prepare + apply into a fresh dir; the list of (path, type+mode, uid:gid).
    fn copy(&self, s: &CopyStep, add: bool, workdir: &str) -> Result<(PathBuf, PreparedCopy)> {
        let req = self.req(s, add, workdir);
        let p = prepare(&req)?;
        let out = tempfile::Builder::new()
            .prefix("out")
            .tempdir_in(self.t.path())
            .unwrap()
            .keep();
        p.apply(&req, &out)?;
        Ok((out, p))
    }

    fn digest(&self, s: &CopyStep) -> String {
        prepare(&self.req(s, false, "/")).unwrap().digest
    }
}

fn tree(out: &Path) -> Vec<String> {
    let mut v = Vec::new();
    fn walk(root: &Path, dir: &Path, v: &mut Vec<String>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let k = if m.is_dir() {
                "d"
            } else if m.file_type().is_symlink() {
                "l"
            } else {
                "f"
            };
            v.push(format!(
                "{rel} {k}{:o} {}:{}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            ));
            if m.is_dir() {
                walk(root, &p, v);
            }
        }
    }
    walk(out, out, &mut v);
    v
}

fn read(out: &Path, p: &str) -> String {
    std::fs::read_to_string(out.join(p)).unwrap()
}

#[test]
fn file_to_file_and_to_dir() {
    let f = fixture();
    let (out, _) = f.copy(&step(&["a.txt"], "/x/b.txt"), false, "/").unwrap();
    assert_eq!(read(&out, "x/b.txt"), "A");
    let t = tree(&out);
    assert_eq!(t[0], "x d755 0:0");
    assert_eq!(t[1], "x/b.txt f644 0:0");
    assert_eq!(t.len(), 2);
    // A trailing slash: into the directory.
    let (out, _) = f.copy(&step(&["a.txt"], "/x/"), false, "/").unwrap();
    assert_eq!(read(&out, "x/a.txt"), "A");
    // An existing directory without the slash: into it, and the parent keeps the image's metadata.
    let (out, _) = f.copy(&step(&["run.sh"], "/app"), false, "/").unwrap();
    assert_eq!(tree(&out), vec!["app d750 0:0", "app/run.sh f755 0:0"]);
    // Source mtime is kept.
    let src = std::fs::metadata(f.ctx.root_path().join("run.sh")).unwrap();
    let dst = std::fs::metadata(out.join("app/run.sh")).unwrap();
    assert_eq!(
        (src.mtime(), src.mtime_nsec()),
        (dst.mtime(), dst.mtime_nsec())
    );
}

#[test]
fn dir_source_copies_its_contents() {
    let f = fixture();
    let (out, _) = f.copy(&step(&["dir"], "/d"), false, "/").unwrap();
    assert!(!out.join("d/dir").exists());
    assert_eq!(read(&out, "d/f1"), "one");
    assert_eq!(read(&out, "d/sub/f2"), "two");
    assert_eq!(
        std::fs::read_link(out.join("d/link")).unwrap(),
        Path::new("f1")
    );
}

#[test]
fn several_sources_need_a_directory() {
    let f = fixture();
    let e = f
        .copy(&step(&["a.txt", "b.txt"], "/nodir"), false, "/")
        .unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("Containerfile:7") && msg.contains("must be a directory"),
        "{msg}"
    );
    let (out, _) = f
        .copy(&step(&["a.txt", "b.txt"], "/nodir/"), false, "/")
        .unwrap();
    assert_eq!(read(&out, "nodir/b.txt"), "B");
    // A wildcard is several sources too; an existing dir needs no slash.
    let (out, _) = f.copy(&step(&["*.txt"], "/app"), false, "/").unwrap();
    assert_eq!(read(&out, "app/a.txt"), "A");
    assert_eq!(read(&out, "app/b.txt"), "B");
    assert!(!out.join("app/run.sh").exists());
}

#[test]
fn workdir_relative_destination_and_dest_through_image_symlink() {
    let f = fixture();
    let (out, _) = f.copy(&step(&["a.txt"], "rel/"), false, "/work").unwrap();
    assert_eq!(read(&out, "work/rel/a.txt"), "A");
    let (out, _) = f.copy(&step(&["a.txt"], "."), false, "/app").unwrap();
    assert_eq!(read(&out, "app/a.txt"), "A");
    // /bin -> usr/bin in the image: the file lands in /usr/bin, /bin stays the image's symlink.
    let (out, _) = f.copy(&step(&["run.sh"], "/bin/"), false, "/").unwrap();
    assert_eq!(read(&out, "usr/bin/run.sh"), "#!/bin/sh\n");
    assert!(std::fs::symlink_metadata(out.join("bin")).is_err());
    let (out, _) = f.copy(&step(&["run.sh"], "/bin/tool"), false, "/").unwrap();
    assert_eq!(read(&out, "usr/bin/tool"), "#!/bin/sh\n");
    // A destination that is a symlink to a file is written through, inside the root.
    let (out, _) = f
        .copy(&step(&["a.txt"], "/etc/pw-link"), false, "/")
        .unwrap();
    assert_eq!(read(&out, "etc/passwd"), "A");
    assert!(std::fs::symlink_metadata(out.join("etc/pw-link")).is_err());
}

#[test]
fn chown_by_name_and_id_and_chmod() {
    let f = fixture();
    let mut s = step(&["dir"], "/d/");
    s.chown = Some("app:staff".into());
    let (out, _) = f.copy(&s, false, "/").unwrap();
    let t = tree(&out);
    assert!(t.contains(&"d/f1 f644 1000:50".to_string()), "{t:?}");
    assert!(t.contains(&"d/sub d755 1000:50".to_string()), "{t:?}");
    s.chown = Some("7".into());
    let (out, _) = f.copy(&s, false, "/").unwrap();
    assert!(tree(&out).contains(&"d/sub/f2 f644 7:7".to_string()));
    s.chown = Some("app".into());
    let (out, _) = f.copy(&s, false, "/").unwrap();
    assert!(tree(&out).contains(&"d/f1 f644 1000:1000".to_string()));
    s.chown = Some("nobody-here".into());
    let e = format!("{:#}", f.copy(&s, false, "/").unwrap_err());
    assert!(
        e.contains("nobody-here") && e.contains("/etc/passwd"),
        "{e}"
    );

    let mut s = step(&["a.txt"], "/m/");
    s.chmod = Some("0640".into());
    let (out, _) = f.copy(&s, false, "/").unwrap();
    assert!(tree(&out).contains(&"m/a.txt f640 0:0".to_string()));
    s.chmod = Some("u+x,o-r".into());
    let (out, _) = f.copy(&s, false, "/").unwrap();
    assert!(tree(&out).contains(&"m/a.txt f740 0:0".to_string()));
    s.chmod = Some("9".into());
    assert!(f.copy(&s, false, "/").is_err());
}

#[test]
fn exclude_and_parents() {
    let f = fixture();
    let mut s = step(&["dir"], "/d/");
    s.exclude = vec!["*.log".into(), "sub".into()];
    let (out, _) = f.copy(&s, false, "/").unwrap();
    assert!(out.join("d/f1").exists());
    assert!(!out.join("d/debug.log").exists());
    assert!(!out.join("d/sub").exists());
    let mut s = step(&["*.txt"], "/w/");
    s.exclude = vec!["b.txt".into()];
    let (out, _) = f.copy(&s, false, "/").unwrap();
    assert!(out.join("w/a.txt").exists() && !out.join("w/b.txt").exists());

    let mut s = step(&["a/b/c.txt", "dir/sub"], "/p/");
    s.parents = true;
    let (out, _) = f.copy(&s, false, "/").unwrap();
    assert_eq!(read(&out, "p/a/b/c.txt"), "C");
    assert_eq!(read(&out, "p/dir/sub/f2"), "two");
    let mut s = step(&["a/./b/c.txt"], "/p/");
    s.parents = true;
    let (out, _) = f.copy(&s, false, "/").unwrap();
    assert_eq!(read(&out, "p/b/c.txt"), "C");
}

#[test]
fn source_outside_the_context_is_refused() {
    let f = fixture();
    for src in ["../x", "dir/../../x", "/../etc/passwd"] {
        let e = format!("{:#}", f.copy(&step(&[src], "/x"), false, "/").unwrap_err());
        assert!(
            e.contains("Containerfile:7") && e.contains("outside the build context"),
            "{e}"
        );
    }
    let e = format!(
        "{:#}",
        f.copy(&step(&["nope"], "/x"), false, "/").unwrap_err()
    );
    assert!(e.contains("`nope` not found"), "{e}");
}

#[test]
fn heredoc_source() {
    let f = fixture();
    let mut s = step(&[], "/etc/motd");
    s.inline_sources = vec![InlineFile {
        path: "EOF".into(),
        content: "hello\n".into(),
        mode: 0o644,
    }];
    let (out, _) = f.copy(&s, false, "/").unwrap();
    assert_eq!(read(&out, "etc/motd"), "hello\n");
    // The parent exists in the image: its metadata comes from there.
    assert!(tree(&out).contains(&"etc d755 0:0".to_string()));
}

#[test]
fn stat_cache_means_no_content_read_when_unchanged() {
    let f = fixture();
    let s = step(&["dir", "a.txt"], "/d/");
    let d1 = f.digest(&s);
    let reads = f.cache.content_reads();
    assert_eq!(reads, 4, "every context file read once");
    assert_eq!(f.digest(&s), d1);
    assert_eq!(
        f.cache.content_reads(),
        reads,
        "an unchanged context reads no content"
    );
}

#[test]
fn digest_changes_with_every_input() {
    let f = fixture();
    let s = step(&["dir"], "/d/");
    let base = f.digest(&s);
    let c = f.ctx.root_path().to_path_buf();
    // A content byte (same size).
    std::fs::write(c.join("dir/f1"), "onf").unwrap();
    let d = f.digest(&s);
    assert_ne!(d, base);
    // A mode.
    std::fs::set_permissions(c.join("dir/f1"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let d2 = f.digest(&s);
    assert_ne!(d2, d);
    // An added file, then its removal (back to the previous key).
    std::fs::write(c.join("dir/new"), "").unwrap();
    let d3 = f.digest(&s);
    assert_ne!(d3, d2);
    std::fs::remove_file(c.join("dir/new")).unwrap();
    assert_eq!(f.digest(&s), d2);
    // A link target; the step's flags and destination.
    std::fs::remove_file(c.join("dir/link")).unwrap();
    symlink("sub", c.join("dir/link")).unwrap();
    let d4 = f.digest(&s);
    assert_ne!(d4, d2);
    let mut s2 = s.clone();
    s2.chmod = Some("0600".into());
    assert_ne!(f.digest(&s2), d4);
    assert_ne!(f.digest(&step(&["dir"], "/e/")), d4);
    // A touch alone (same content, same mode) keeps the key, as BuildKit's content hash.
    let file = std::fs::File::options()
        .write(true)
        .open(c.join("dir/f1"))
        .unwrap();
    file.set_modified(SystemTime::now()).unwrap();
    assert_eq!(f.digest(&s), d4);
}

#[test]
fn copy_from_an_image_keeps_owners_and_applies_whiteouts() {
    let f = fixture();
    let l1 = f.t.path().join("src1");
    let l2 = f.t.path().join("src2");
    write(&l1.join("opt/app/bin"), "binary");
    write(&l1.join("opt/app/gone"), "x");
    std::os::unix::fs::lchown(l1.join("opt/app/bin"), Some(1000), Some(1000)).unwrap();
    symlink("/opt/app", l1.join("current")).unwrap();
    std::fs::create_dir_all(l2.join("opt/app")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        l2.join("opt/app/gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    let src = RootView::new(vec![l1, l2]);
    let s = step(&["/current"], "/app/");
    let req = CopyRequest {
        source: CopySource::Image(&src),
        ..f.req(&s, false, "/")
    };
    let p = prepare(&req).unwrap();
    let out = f.t.path().join("img-out");
    std::fs::create_dir(&out).unwrap();
    p.apply(&req, &out).unwrap();
    assert_eq!(read(&out, "app/bin"), "binary");
    assert!(!out.join("app/gone").exists());
    assert!(tree(&out).contains(&"app/bin f644 1000:1000".to_string()));
}

fn tar_bytes(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn add_extracts_every_compression() {
    let f = fixture();
    let c = f.ctx.root_path().to_path_buf();
    let tar = tar_bytes(&[("top/x.txt", "X")]);
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let bz = {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&tar[..], 1).unwrap();
    for (name, data) in [
        ("p.tar", &tar),
        ("g.tgz", &gz),
        ("b.tar.bz2", &bz),
        ("x.tar.xz", &xz),
        ("z.tar.zst", &zst),
    ] {
        std::fs::write(c.join(name), data).unwrap();
        let (out, p) = f.copy(&step(&[name], "/ex/"), true, "/").unwrap();
        assert_eq!(read(&out, "ex/top/x.txt"), "X", "{name}");
        assert_eq!(p.inputs.len(), 1);
        // COPY never extracts.
        let (out, _) = f.copy(&step(&[name], "/ex/"), false, "/").unwrap();
        assert!(out.join("ex").join(name).is_file(), "{name}");
    }
    // A compressed file that is not a tar is copied as it is.
    let notar = zstd::encode_all(&b"just text"[..], 1).unwrap();
    std::fs::write(c.join("t.zst"), &notar).unwrap();
    let (out, _) = f.copy(&step(&["t.zst"], "/ex/"), true, "/").unwrap();
    assert_eq!(std::fs::read(out.join("ex/t.zst")).unwrap(), notar);
}

/// A tar header with a raw name, bypassing the tar crate's path checks (what an attacker would write).
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: &str,
    body: &[u8],
) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(body.len() as u64);
    h.set_cksum();
    b.append(&h, body).unwrap();
}

#[test]
fn add_of_a_hostile_tar_stays_inside() {
    let f = fixture();
    let c = f.ctx.root_path().to_path_buf();
    let outside = f.t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    write(&outside.join("secret"), "keep");
    let sentinel = outside.join("secret");

    // An absolute symlink and a write through it; a hardlink to a host file; a link to `/` and a write
    // below it. Each is refused or contained: nothing outside the output directory changes.
    let out_s = outside.to_str().unwrap().to_string();
    let sent_s = sentinel.to_str().unwrap().to_string();
    type Entry<'e> = (&'e str, tar::EntryType, &'e str, &'e [u8]);
    let cases: Vec<Vec<Entry>> = vec![
        vec![
            ("esc", tar::EntryType::Symlink, &out_s, b""),
            ("esc/pwned", tar::EntryType::Regular, "", b"evil"),
        ],
        vec![("hl", tar::EntryType::Link, &sent_s, b"")],
        vec![
            ("root", tar::EntryType::Symlink, "/", b""),
            ("root/etc/x-lade-test", tar::EntryType::Regular, "", b"evil"),
        ],
    ];
    for (i, entries) in cases.iter().enumerate() {
        let mut b = tar::Builder::new(Vec::new());
        for (n, k, l, body) in entries {
            raw_entry(&mut b, n, *k, l, body);
        }
        let name = format!("hostile{i}.tar");
        std::fs::write(c.join(&name), b.into_inner().unwrap()).unwrap();
        match f.copy(&step(&[&name], "/ex/"), true, "/") {
            Ok((out, _)) => {
                for (n, k, ..) in entries {
                    let m = std::fs::symlink_metadata(out.join("ex").join(n));
                    if *k == tar::EntryType::Link
                        && let Ok(m) = m
                    {
                        assert_ne!(m.ino(), std::fs::metadata(&sentinel).unwrap().ino());
                    }
                }
            }
            Err(e) => {
                let e = format!("{e:#}");
                assert!(e.contains("Containerfile:7") && e.contains(&name), "{e}");
            }
        }
        assert!(!outside.join("pwned").exists());
        assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "keep");
        assert!(!Path::new("/etc/x-lade-test").exists());
    }

    // `..` entries: refused.
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(
        &mut b,
        "../../../outside/dotdot",
        tar::EntryType::Regular,
        "",
        b"evil",
    );
    std::fs::write(c.join("dotdot.tar"), b.into_inner().unwrap()).unwrap();
    let e = format!(
        "{:#}",
        f.copy(&step(&["dotdot.tar"], "/ex/"), true, "/")
            .unwrap_err()
    );
    assert!(e.contains("Containerfile:7") && e.contains(".."), "{e}");
    assert!(!outside.join("dotdot").exists());
    let entries: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert_eq!(entries.len(), 1, "nothing new outside");
}

/// Serve `body` once per connection on a loopback port, for `n` connections.
fn serve(body: &'static [u8], n: usize) -> String {
    use std::net::TcpListener;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(n) {
            let mut s = s.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    format!("http://127.0.0.1:{port}/files/tool.bin")
}

#[test]
fn add_url_with_checksum() {
    let f = fixture();
    let url = serve(b"payload", 3);
    let good = crate::layer::sha256_hex(b"payload");
    let mut s = step(&[&url], "/dl/");
    s.checksum = Some(good.clone());
    let (out, p) = f.copy(&s, true, "/").unwrap();
    assert_eq!(read(&out, "dl/tool.bin"), "payload");
    assert!(tree(&out).contains(&"dl/tool.bin f600 0:0".to_string()));
    assert_eq!(p.inputs, vec![(url.clone(), good)]);
    s.checksum = Some(crate::layer::sha256_hex(b"other"));
    let e = format!("{:#}", f.copy(&s, true, "/").unwrap_err());
    assert!(
        e.contains("checksum mismatch") && e.contains("Containerfile:7"),
        "{e}"
    );
    // Without --checksum the download is still taken (and digested for the cache key).
    s.checksum = None;
    let (out, _) = f.copy(&s, true, "/").unwrap();
    assert_eq!(read(&out, "dl/tool.bin"), "payload");
}

#[test]
fn dest_conflicts_never_write_through_a_link() {
    // dir1 has `sub -> /` (a link), dir2 has `sub/x`: the later source replaces the link with a dir.
    let f = fixture();
    let c = f.ctx.root_path().to_path_buf();
    std::fs::create_dir_all(c.join("d1")).unwrap();
    symlink("/", c.join("d1/sub")).unwrap();
    write(&c.join("d2/sub/x"), "x");
    let (out, _) = f.copy(&step(&["d1", "d2"], "/m/"), false, "/").unwrap();
    assert_eq!(read(&out, "m/sub/x"), "x");
    assert!(
        std::fs::symlink_metadata(out.join("m/sub"))
            .unwrap()
            .is_dir()
    );
}

#[test]
fn xattrs_are_copied_and_keyed() {
    let f = fixture();
    let c = f.ctx.root_path().to_path_buf();
    if rustix::fs::lsetxattr(
        c.join("a.txt"),
        "user.test",
        b"v1",
        rustix::fs::XattrFlags::empty(),
    )
    .is_err()
    {
        eprintln!(
            "SKIPPED xattrs_are_copied_and_keyed: no user xattrs on {}",
            c.display()
        );
        return;
    }
    let s = step(&["a.txt"], "/x/");
    let d1 = f.digest(&s);
    let (out, _) = f.copy(&s, false, "/").unwrap();
    let mut v = [0u8; 16];
    let n = rustix::fs::lgetxattr(out.join("x/a.txt"), "user.test", &mut v).unwrap();
    assert_eq!(&v[..n], b"v1");
    rustix::fs::lsetxattr(
        c.join("a.txt"),
        "user.test",
        b"v2",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    assert_ne!(f.digest(&s), d1, "an xattr change changes the key");
}

#[test]
fn chown_owns_the_parents_it_creates() {
    let f = fixture();
    let mut s = step(&["a.txt"], "/new/deep/a.txt");
    s.chown = Some("app".into());
    let (out, _) = f.copy(&s, false, "/").unwrap();
    let t = tree(&out);
    assert!(t.contains(&"new d755 1000:1000".to_string()), "{t:?}");
    assert!(t.contains(&"new/deep d755 1000:1000".to_string()), "{t:?}");
    // A parent the image has keeps its owner.
    let mut s = step(&["a.txt"], "/app/x");
    s.chown = Some("app".into());
    let (out, _) = f.copy(&s, false, "/").unwrap();
    assert!(tree(&out).contains(&"app d750 0:0".to_string()));
}

#[test]
fn hardlinks_in_a_copied_dir_stay_hardlinks() {
    let f = fixture();
    let c = f.ctx.root_path().to_path_buf();
    write(&c.join("hl/one"), "same");
    std::fs::hard_link(c.join("hl/one"), c.join("hl/two")).unwrap();
    let s = step(&["hl"], "/h/");
    let (out, _) = f.copy(&s, false, "/").unwrap();
    let (a, b) = (
        std::fs::metadata(out.join("h/one")).unwrap(),
        std::fs::metadata(out.join("h/two")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(read(&out, "h/two"), "same");
    let d1 = f.digest(&s);
    // Unlinked (same content): a different layer, so a different key.
    std::fs::remove_file(c.join("hl/two")).unwrap();
    write(&c.join("hl/two"), "same");
    assert_ne!(f.digest(&s), d1);
}

#[test]
fn a_later_source_never_turns_a_dir_into_a_way_out() {
    // ADD ctxdir/ evil.tar /dest/: `sub` (0777, and `sub/inner`) is a directory of the context, the
    // archive makes `sub` a link to a directory outside; the directories' deferred metadata must not
    // follow it (issue 11).
    let f = fixture();
    let outside = f.t.path().join("outside");
    std::fs::create_dir_all(outside.join("inner")).unwrap();
    for p in [outside.clone(), outside.join("inner")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o750)).unwrap();
    }
    let c = f.ctx.root_path().to_path_buf();
    std::fs::create_dir_all(c.join("ctxdir/sub/inner")).unwrap();
    for p in ["ctxdir/sub", "ctxdir/sub/inner"] {
        std::fs::set_permissions(c.join(p), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(
        &mut b,
        "sub",
        tar::EntryType::Symlink,
        outside.to_str().unwrap(),
        b"",
    );
    std::fs::write(c.join("evil.tar"), b.into_inner().unwrap()).unwrap();
    let (out, _) = f
        .copy(&step(&["ctxdir/", "evil.tar"], "/dest/"), true, "/")
        .unwrap();
    for p in [outside.clone(), outside.join("inner")] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750, "{} was changed through the link", p.display());
    }
    let sub = std::fs::symlink_metadata(out.join("dest/sub")).unwrap();
    assert!(sub.file_type().is_symlink());
}
