//! COPY and ADD through the real `lade build`: sources outside the context are refused, hostile ADD
//! archives (`../` paths, an absolute symlink escape, a hardlink to a host file) are refused or contained,
//! and Docker's COPY rules hold in the committed layers (read back from `lade push oci:`).

use lade_tests::oci::busybox_image;
use lade_tests::{lade, need_root, ok, require_peers, run};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

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
    Project { tmp, root, ctx }
}

impl Project {
    fn containerfile(&self, text: &str) {
        fs::write(self.ctx.join("Containerfile"), text).unwrap();
    }

    fn build(&self, tag: &str) -> std::process::Output {
        run(lade()
            .arg("--root")
            .arg(&self.root)
            .args(["build", "-q", "-t", tag])
            .arg(&self.ctx))
    }

    fn with_busybox_base(&self) {
        let layout = self.tmp.path().join("base");
        busybox_image(&layout, "1");
        ok(lade()
            .arg("--root")
            .arg(&self.root)
            .args(["copy", "-q"])
            .arg(format!("oci:{}:1", layout.display()))
            .arg("lade:localhost/base:1"));
    }

    /// Every entry of every layer of `tag` (path → (type, mode, uid, gid, link target, content)), read
    /// from an `oci:` export; later layers win.
    fn entries(&self, tag: &str) -> Vec<BTreeMap<String, Ent>> {
        let out = self.tmp.path().join(format!("export-{tag}"));
        ok(lade()
            .arg("--root")
            .arg(&self.root)
            .args(["push", "-q", tag])
            .arg(format!("oci:{}:x", out.display())));
        layout_layers(&out)
    }
}

/// Every entry of every layer of the one image in the OCI layout `out`, layer by layer.
fn layout_layers(out: &Path) -> Vec<BTreeMap<String, Ent>> {
    let index: Value = serde_json::from_slice(&fs::read(out.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        out.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: Value = serde_json::from_slice(&fs::read(blob(&mdigest)).unwrap()).unwrap();
    let mut layers = Vec::new();
    for l in manifest["layers"].as_array().unwrap() {
        let f = fs::File::open(blob(l["digest"].as_str().unwrap())).unwrap();
        let mut a = tar::Archive::new(lade::layer::decompressor(f).unwrap());
        let mut map = BTreeMap::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = String::from_utf8_lossy(&e.path_bytes())
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string();
            let mut xattrs = BTreeMap::new();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for x in exts {
                    let x = x.unwrap();
                    if let Some(k) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                        xattrs.insert(k.to_string(), x.value_bytes().to_vec());
                    }
                }
            }
            let h = e.header().clone();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            map.insert(
                path,
                Ent {
                    kind: h.entry_type(),
                    mode: h.mode().unwrap() & 0o7777,
                    uid: h.uid().unwrap(),
                    gid: h.gid().unwrap(),
                    link: h
                        .link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned()),
                    body,
                    mtime: h.mtime().unwrap(),
                    xattrs,
                },
            );
        }
        layers.push(map);
    }
    layers
}

#[derive(Debug, Clone)]
#[allow(dead_code)]
struct Ent {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    link: Option<String>,
    body: Vec<u8>,
    mtime: u64,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A snapshot of every path under `dir` with its content, to prove nothing changed there.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
                out.insert(p, Vec::new());
            } else if m.is_file() {
                out.insert(p.clone(), fs::read(&p).unwrap());
            } else {
                out.insert(
                    p.clone(),
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            }
        }
    }
    out
}

#[test]
fn copy_from_outside_the_context_is_refused() {
    let p = project();
    fs::write(p.tmp.path().join("outside.txt"), "host secret").unwrap();
    fs::create_dir_all(p.ctx.join("sub")).unwrap();
    fs::write(p.ctx.join("sub/in.txt"), "in").unwrap();
    for (i, src) in [
        "../outside.txt",
        "../",
        "sub/../../outside.txt",
        "/../outside.txt",
    ]
    .iter()
    .enumerate()
    {
        for kw in ["COPY", "ADD"] {
            p.containerfile(&format!("FROM scratch\n{kw} {src} /x/\n"));
            let o = p.build(&format!("t{i}{kw}"));
            let e = stderr(&o);
            assert!(!o.status.success(), "{kw} {src} must fail\n{e}");
            assert!(
                e.contains("Containerfile:2") && e.contains("outside the build context"),
                "{kw} {src}: the error names the line and the reason\n{e}"
            );
        }
    }
    // A context symlink that leads outside is not followed out of the context either.
    std::os::unix::fs::symlink("../outside.txt", p.ctx.join("escape")).unwrap();
    p.containerfile("FROM scratch\nCOPY escape /x\n");
    let o = p.build("link");
    eprintln!("escaping context symlink: {}", stderr(&o));
    if o.status.success() {
        for layer in p.entries("link") {
            for (path, ent) in layer {
                assert_ne!(
                    ent.body, b"host secret",
                    "{path} has the outside file's content"
                );
            }
        }
    }
    // Inside the context, `..` that stays inside is fine.
    p.containerfile("FROM scratch\nCOPY sub/../sub/in.txt /x\n");
    let o = p.build("fine");
    assert!(o.status.success(), "{}", stderr(&o));
    let layers = p.entries("fine");
    assert_eq!(layers.last().unwrap()["x"].body, b"in");
}

/// A tar header with a raw name and link target, past the tar crate's path checks (an attacker's archive).
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
fn add_of_a_hostile_tar_is_contained_or_refused() {
    let p = project();
    let outside = p.tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "keep").unwrap();
    let out_s = outside.display().to_string();
    let secret_s = outside.join("secret").display().to_string();
    let before = snapshot(&outside);
    type E<'e> = (&'e str, tar::EntryType, &'e str, &'e [u8]);
    let cases: Vec<(&str, Vec<E>)> = vec![
        (
            "dotdot",
            vec![
                ("ok.txt", tar::EntryType::Regular, "", b"fine"),
                (
                    "../../../../../../../../outside/dotdot",
                    tar::EntryType::Regular,
                    "",
                    b"evil",
                ),
            ],
        ),
        (
            "abs-symlink",
            vec![
                ("esc", tar::EntryType::Symlink, &out_s, b""),
                ("esc/pwned", tar::EntryType::Regular, "", b"evil"),
                ("esc/secret", tar::EntryType::Regular, "", b"overwritten"),
            ],
        ),
        (
            "root-symlink",
            vec![
                ("r", tar::EntryType::Symlink, "/", b""),
                (
                    "r/etc/lade-build-copy-test",
                    tar::EntryType::Regular,
                    "",
                    b"evil",
                ),
            ],
        ),
        (
            "hardlink",
            vec![("hl", tar::EntryType::Link, &secret_s, b"")],
        ),
        (
            "hardlink-dotdot",
            vec![(
                "hl2",
                tar::EntryType::Link,
                "../../../../../outside/secret",
                b"",
            )],
        ),
    ];
    for (name, entries) in &cases {
        let mut b = tar::Builder::new(Vec::new());
        for (n, k, l, body) in entries {
            raw_entry(&mut b, n, *k, l, body);
        }
        let file = format!("{name}.tar");
        fs::write(p.ctx.join(&file), b.into_inner().unwrap()).unwrap();
        p.containerfile(&format!("FROM scratch\nADD {file} /x/\n"));
        let tag = format!("hostile-{name}");
        let o = p.build(&tag);
        eprintln!(
            "{name}: {}",
            if o.status.success() {
                "contained".to_string()
            } else {
                stderr(&o)
            }
        );
        if o.status.success() {
            // Contained: every entry is under /x, and what it holds came from the archive only.
            let layers = p.entries(&tag);
            if *name == "root-symlink" {
                // `r -> /` resolved inside the extraction root: the file is /x/etc/..., not the host's /etc.
                let top = layers.last().unwrap();
                assert_eq!(top["x/etc/lade-build-copy-test"].body, b"evil", "{top:?}");
            }
            for layer in layers {
                for (path, ent) in layer {
                    assert!(
                        path == "x" || path.starts_with("x/"),
                        "{name}: {path} escaped /x"
                    );
                    assert_ne!(
                        ent.body, b"keep",
                        "{name}: {path} holds the host file's content"
                    );
                    if ent.kind == tar::EntryType::Link {
                        let l = ent.link.unwrap_or_default();
                        assert!(
                            l.starts_with("x/"),
                            "{name}: hardlink {path} -> {l} leaves the layer"
                        );
                    }
                }
            }
        } else {
            let e = stderr(&o);
            assert!(
                e.contains("Containerfile:2") && e.contains(&file),
                "{name}: a refusal names the line and the archive\n{e}"
            );
        }
        assert_eq!(
            snapshot(&outside),
            before,
            "{name}: something outside the rootfs changed"
        );
        assert!(!Path::new("/etc/lade-build-copy-test").exists(), "{name}");
    }
    // `..` entries are refused outright, with the entry named.
    p.containerfile("FROM scratch\nADD dotdot.tar /x/\n");
    let o = p.build("dotdot-again");
    assert!(!o.status.success());
    assert!(stderr(&o).contains(".."), "{}", stderr(&o));
}

#[test]
fn copy_rules_hold_in_the_committed_layers() {
    require_peers!("umoci");
    let p = project();
    p.with_busybox_base();
    let c = &p.ctx;
    fs::create_dir_all(c.join("dir/sub")).unwrap();
    fs::write(c.join("dir/f1"), "one").unwrap();
    fs::write(c.join("dir/sub/f2"), "two").unwrap();
    fs::write(c.join("dir/skip.log"), "log").unwrap();
    fs::write(c.join("tool"), "#!/bin/sh\necho tool\n").unwrap();
    // An archive ADD extracts (gzip through the real pipeline).
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "pkg/readme", tar::EntryType::Regular, "", b"packed");
    let tar = b.into_inner().unwrap();
    let gz = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().unwrap().write_all(&tar)?;
            ch.wait_with_output()
        })
        .unwrap();
    fs::write(c.join("pkg.tar.gz"), gz.stdout).unwrap();
    p.containerfile(
        "FROM localhost/base:1\n\
         WORKDIR /srv\n\
         COPY --exclude=*.log dir conf/\n\
         COPY --chown=app:staff --chmod=0750 tool /usr/bin/\n\
         ADD pkg.tar.gz /opt/\n",
    );
    let o = p.build("rules");
    assert!(o.status.success(), "{}", stderr(&o));
    let layers = p.entries("rules");
    let n = layers.len();
    // dir's contents (not dir itself) under WORKDIR, *.log left out.
    let conf = &layers[n - 3];
    assert_eq!(conf["srv/conf/f1"].body, b"one");
    assert_eq!(conf["srv/conf/sub/f2"].body, b"two");
    assert!(!conf.contains_key("srv/conf/dir"));
    assert!(!conf.contains_key("srv/conf/skip.log"));
    assert_eq!((conf["srv/conf/f1"].uid, conf["srv/conf/f1"].gid), (0, 0));
    // /usr/bin -> ../bin in the base: the file lands in /bin, the symlink is not replaced.
    let tool = &layers[n - 2];
    assert!(
        !tool.contains_key("usr/bin"),
        "{:?}",
        tool.keys().collect::<Vec<_>>()
    );
    let t = &tool["bin/tool"];
    assert_eq!((t.uid, t.gid, t.mode), (1000, 50, 0o750));
    // The archive is extracted.
    assert_eq!(layers[n - 1]["opt/pkg/readme"].body, b"packed");
}

// ---- COPY/ADD/WORKDIR never change a host file through a symlink a source put in the tree ----

/// What must stay as it is on a host file: mode, owner, times (mtime, and ctime, which any chmod, chown,
/// xattr or times change moves), content (a directory: its listing) and xattrs.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    mode: u32,
    owner: (u32, u32),
    mtime: (i64, i64),
    ctime: (i64, i64),
    content: Vec<u8>,
    xattrs: Vec<u8>,
}

fn host_state(p: &Path) -> HostState {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p).unwrap();
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
    let mut list = vec![0u8; 64 * 1024];
    let n = rustix::fs::llistxattr(p, &mut list[..]).unwrap_or(0);
    list.truncate(n);
    HostState {
        mode: m.mode(),
        owner: (m.uid(), m.gid()),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        content,
        xattrs: list,
    }
}

/// A host file (or directory) with distinctive metadata: 0640, 4321:4321, mtime 2009-02-13.
fn victim(p: &Path, dir: bool) -> PathBuf {
    if dir {
        fs::create_dir_all(p).unwrap();
        fs::write(p.join("keep"), "host").unwrap();
    } else {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "host file").unwrap();
    }
    rustix::fs::chmod(p, rustix::fs::Mode::from_raw_mode(0o640)).unwrap();
    std::os::unix::fs::chown(p, Some(4321), Some(4321)).unwrap();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    let f = fs::File::open(p).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
    p.to_path_buf()
}

/// Build, and check that every victim is exactly as it was; the build's outcome is returned.
fn build_sparing(p: &Project, tag: &str, victims: &[&Path]) -> std::process::Output {
    let before: Vec<HostState> = victims.iter().map(|v| host_state(v)).collect();
    let o = p.build(tag);
    eprintln!(
        "{tag}: {}",
        if o.status.success() {
            "built".into()
        } else {
            stderr(&o)
        }
    );
    for (v, b) in victims.iter().zip(before) {
        assert_eq!(
            host_state(v),
            b,
            "{tag}: the host's {} changed",
            v.display()
        );
    }
    o
}

/// A tar of raw entries: (name, type, link target, mode, mtime, pax xattrs).
type TarEnt<'a> = (
    &'a str,
    tar::EntryType,
    &'a str,
    u32,
    u64,
    &'a [(&'a str, &'a str)],
);

fn tar_of(entries: &[TarEnt]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, mode, mtime, xattrs) in entries {
        if !xattrs.is_empty() {
            let recs: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_bytes()))
                .collect();
            b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_ustar_mut().unwrap().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(*mtime);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A context directory `ctxdir` whose `sub` (and everything named in `dirs`, under it) is a directory
/// with mode 0777 and an old mtime, plus a file.
fn context_dir(p: &Project, dirs: &[&str]) {
    let base = p.ctx.join("ctxdir");
    fs::create_dir_all(base.join("sub")).unwrap();
    fs::write(base.join("file"), "f").unwrap();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    let mut all = vec!["sub".to_string()];
    for d in dirs {
        fs::create_dir_all(base.join(d)).unwrap();
        all.push(d.to_string());
    }
    all.sort();
    for d in all.iter().rev() {
        let path = base.join(d);
        rustix::fs::chmod(&path, rustix::fs::Mode::from_raw_mode(0o777)).unwrap();
        fs::File::open(&path)
            .unwrap()
            .set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
            .unwrap();
    }
}

/// `buildah` with a store of its own under the project's temp dir.
fn buildah(p: &Project) -> std::process::Command {
    let work = p.tmp.path().join("buildah");
    let mut c = std::process::Command::new("buildah");
    c.arg("--root")
        .arg(work.join("root"))
        .arg("--runroot")
        .arg(work.join("run"))
        .args(["--storage-driver", "vfs"]);
    c
}

/// buildah's tree of an image built from `ctx`, layer by layer.
fn buildah_layers(p: &Project, tag: &str) -> Vec<BTreeMap<String, Ent>> {
    ok(buildah(p)
        .args(["bud", "--isolation", "chroot", "--layers=false", "-t", tag])
        .arg(&p.ctx));
    let out = p.tmp.path().join(format!("buildah-export-{tag}"));
    ok(buildah(p)
        .args(["push", "-q", tag])
        .arg(format!("oci:{}:x", out.display())));
    layout_layers(&out)
}

/// The entries under `dir/` of the merged `layers`, as (type, mode, link, content).
fn under(layers: &[BTreeMap<String, Ent>], dir: &str) -> BTreeMap<String, String> {
    let mut merged = BTreeMap::new();
    for l in layers {
        for (k, e) in l {
            if k.starts_with(&format!("{dir}/")) {
                let mode = if e.kind == tar::EntryType::Symlink {
                    0
                } else {
                    e.mode
                };
                merged.insert(
                    k.clone(),
                    format!(
                        "{:?} {mode:o} {:?} {:?}",
                        e.kind,
                        e.link,
                        String::from_utf8_lossy(&e.body)
                    ),
                );
            }
        }
    }
    merged
}

#[test]
fn add_over_a_dir_never_chmods_the_host_file_its_link_names() {
    if !need_root("add_over_a_dir_never_chmods_the_host_file_its_link_names") {
        return;
    }
    require_peers!("buildah");
    // The defect as found: `ctxdir/sub` is 0777, `evil.tar` turns `sub` into a link to a host file, and
    // the directory's deferred metadata went through that link.
    let p = project();
    let host = victim(&p.tmp.path().join("host/file"), false);
    context_dir(&p, &[]);
    let tar = tar_of(&[(
        "sub",
        tar::EntryType::Symlink,
        host.to_str().unwrap(),
        0o777,
        1_600_000_000,
        &[],
    )]);
    fs::write(p.ctx.join("evil.tar"), tar).unwrap();
    p.containerfile("FROM scratch\nADD ctxdir/ evil.tar /dest/\n");
    let o = build_sparing(&p, "add-dir", &[&host]);
    assert!(o.status.success(), "{}", stderr(&o));
    // buildah leaves the host file alone too, and both trees agree: the link stands, the file is copied.
    let before = host_state(&host);
    let theirs = under(&buildah_layers(&p, "add-dir"), "dest");
    assert_eq!(host_state(&host), before, "buildah changed the host file");
    let ours = under(&p.entries("add-dir"), "dest");
    assert_eq!(ours, theirs, "lade's /dest differs from buildah's");
    assert!(ours["dest/sub"].starts_with("Symlink"), "{ours:?}");
}

#[test]
fn add_chown_through_a_replaced_parent_leaves_the_host_alone() {
    if !need_root("add_chown_through_a_replaced_parent_leaves_the_host_alone") {
        return;
    }
    // `sub` becomes a link to a host directory: `sub/inner`'s owner, mode and times must not reach the
    // host's `inner`, with ADD --chown and with COPY --chown of two sources.
    let p = project();
    let hostdir = p.tmp.path().join("hostdir");
    let inner = victim(&hostdir.join("inner"), false);
    let dir = victim(&hostdir, true);
    context_dir(&p, &["sub/inner"]);
    let link: TarEnt = (
        "sub",
        tar::EntryType::Symlink,
        hostdir.to_str().unwrap(),
        0o777,
        1_600_000_000,
        &[],
    );
    fs::write(p.ctx.join("evil.tar"), tar_of(&[link])).unwrap();
    p.containerfile("FROM scratch\nADD --chown=4242:4243 ctxdir/ evil.tar /dest/\n");
    let o = build_sparing(&p, "add-chown", &[&inner, &dir]);
    assert!(o.status.success(), "{}", stderr(&o));
    let top = p.entries("add-chown").pop().unwrap();
    assert_eq!(top["dest/file"].uid, 4242, "{top:?}");
    assert_eq!(top["dest/sub"].kind, tar::EntryType::Symlink, "{top:?}");
    // COPY of two dirs, the second holding `sub` as a link to the host directory.
    fs::create_dir_all(p.ctx.join("b")).unwrap();
    std::os::unix::fs::symlink(&hostdir, p.ctx.join("b/sub")).unwrap();
    p.containerfile("FROM scratch\nCOPY --chown=4242:4243 ctxdir/ b/ /dest/\n");
    let o = build_sparing(&p, "copy-chown", &[&inner, &dir]);
    assert!(o.status.success(), "{}", stderr(&o));
    let top = p.entries("copy-chown").pop().unwrap();
    assert_eq!(top["dest/sub"].kind, tar::EntryType::Symlink, "{top:?}");
    assert_eq!((top["dest/sub"].uid, top["dest/sub"].gid), (4242, 4243));
}

#[test]
fn add_xattrs_never_land_on_the_host() {
    if !need_root("add_xattrs_never_land_on_the_host") {
        return;
    }
    // xattrs from the context (on `sub/inner`) and from the archive (pax records) go to the layer only.
    let p = project();
    let hostdir = p.tmp.path().join("hostdir");
    let inner = victim(&hostdir.join("inner"), false);
    let dir = victim(&hostdir, true);
    context_dir(&p, &["sub/inner"]);
    let ctx_inner = p.ctx.join("ctxdir/sub/inner");
    rustix::fs::setxattr(
        &ctx_inner,
        "user.lade.ctx",
        b"from-context",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("the test's filesystem takes user xattrs");
    let xattr_dir: &[(&str, &str)] = &[("user.lade.tar", "from-tar")];
    let host_s = hostdir.to_str().unwrap();
    // `sub2` leads to the host directory's path *inside* the archive's root, where `sub2/inner` lands.
    let in_root = format!("{}/", host_s.trim_start_matches('/'));
    let tar = tar_of(&[
        (
            "kept/",
            tar::EntryType::Directory,
            "",
            0o755,
            1_500_000_000,
            xattr_dir,
        ),
        ("sub", tar::EntryType::Symlink, host_s, 0o777, 0, &[]),
        (&in_root, tar::EntryType::Directory, "", 0o755, 0, &[]),
        ("sub2", tar::EntryType::Symlink, host_s, 0o777, 0, &[]),
        (
            "sub2/inner/",
            tar::EntryType::Directory,
            "",
            0o700,
            0,
            xattr_dir,
        ),
    ]);
    fs::write(p.ctx.join("x.tar"), tar).unwrap();
    p.containerfile("FROM scratch\nADD ctxdir/ x.tar /dest/\n");
    let o = build_sparing(&p, "add-xattr", &[&inner, &dir]);
    assert!(o.status.success(), "{}", stderr(&o));
    let top = p.entries("add-xattr").pop().unwrap();
    // The xattrs are in the tree where they belong.
    assert_eq!(top["dest/kept"].xattrs["user.lade.tar"], b"from-tar");
    let contained = top
        .iter()
        .find(|(k, _)| k.ends_with("hostdir/inner"))
        .unwrap_or_else(|| panic!("sub2/inner resolves inside the archive's root: {top:?}"));
    assert!(contained.0.starts_with("dest/"), "{}", contained.0);
    assert_eq!(contained.1.xattrs["user.lade.tar"], b"from-tar");
}

#[test]
fn directory_times_never_move_the_hosts() {
    if !need_root("directory_times_never_move_the_hosts") {
        return;
    }
    // Deeper directories with old mtimes below `sub`, which the archive turns into a link to a host
    // directory that holds directories of those names.
    let p = project();
    let hostdir = p.tmp.path().join("hostdir");
    let deeper = victim(&hostdir.join("inner/deeper"), true);
    let inner = victim(&hostdir.join("inner"), true);
    context_dir(&p, &["sub/inner", "sub/inner/deeper"]);
    let link: TarEnt = (
        "sub",
        tar::EntryType::Symlink,
        hostdir.to_str().unwrap(),
        0o777,
        1_600_000_000,
        &[],
    );
    // A second archive adds a directory with its own time, then replaces it by a link to the host.
    let again = tar_of(&[
        (
            "later/",
            tar::EntryType::Directory,
            "",
            0o755,
            1_100_000_000,
            &[],
        ),
        (
            "later",
            tar::EntryType::Symlink,
            inner.to_str().unwrap(),
            0o777,
            0,
            &[],
        ),
    ]);
    fs::write(p.ctx.join("evil.tar"), tar_of(&[link])).unwrap();
    fs::write(p.ctx.join("again.tar"), again).unwrap();
    p.containerfile("FROM scratch\nADD ctxdir/ evil.tar again.tar /dest/\n");
    let o = build_sparing(&p, "times", &[&deeper, &inner]);
    assert!(o.status.success(), "{}", stderr(&o));
    let top = p.entries("times").pop().unwrap();
    // Times are kept inside the tree.
    assert_eq!(top["dest/file"].kind, tar::EntryType::Regular);
    assert_eq!(top["dest/later"].kind, tar::EntryType::Symlink, "{top:?}");
    assert!(!top.contains_key("dest/sub/inner"), "{top:?}");
}

#[test]
fn workdir_through_a_link_made_in_the_build_stays_in_the_image() {
    if !need_root("workdir_through_a_link_made_in_the_build_stays_in_the_image") {
        return;
    }
    require_peers!("umoci", "buildah");
    let p = project();
    p.with_busybox_base();
    let by_add = victim(&p.tmp.path().join("host-a"), true);
    let by_run = victim(&p.tmp.path().join("host-r"), true);
    let tar = tar_of(&[(
        "w",
        tar::EntryType::Symlink,
        by_add.to_str().unwrap(),
        0o777,
        0,
        &[],
    )]);
    fs::write(p.ctx.join("w.tar"), tar).unwrap();
    let file = format!(
        "FROM localhost/base:1\n\
         ADD w.tar /\n\
         WORKDIR /w/x\n\
         RUN ln -s {} /r\n\
         WORKDIR /r/y/z\n\
         RUN touch here\n",
        by_run.display()
    );
    p.containerfile(&file);
    let o = build_sparing(&p, "workdir", &[&by_add, &by_run]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!by_add.join("x").exists() && !by_run.join("y").exists());
    // The directories are made at the links' targets inside the image, as buildah makes them.
    let layers = p.entries("workdir");
    let merged: BTreeMap<&String, &Ent> = layers.iter().flat_map(|l| l.iter()).collect();
    let a = by_add.to_str().unwrap().trim_start_matches('/');
    let r = by_run.to_str().unwrap().trim_start_matches('/');
    for d in [format!("{a}/x"), format!("{r}/y/z")] {
        assert_eq!(
            merged[&d].kind,
            tar::EntryType::Directory,
            "{d}: {merged:?}"
        );
    }
    assert_eq!(
        merged[&format!("{r}/y/z/here")].kind,
        tar::EntryType::Regular
    );
    assert_eq!(merged[&"w".to_string()].kind, tar::EntryType::Symlink);
    // buildah on the same Containerfile (with the base image it can read).
    // buildah names an `oci:` image after its path, which must be lowercase: reach it through a link.
    let link = std::env::temp_dir().join(format!("lade-copy-base-{}", std::process::id()));
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(p.tmp.path().join("base"), &link).unwrap();
    let id = ok(buildah(&p)
        .args(["pull", "-q"])
        .arg(format!("oci:{}:1", link.display())));
    fs::remove_file(&link).unwrap();
    p.containerfile(&file.replace("localhost/base:1", id.trim()));
    let theirs = buildah_layers(&p, "workdir");
    let theirs: BTreeMap<&String, &Ent> = theirs.iter().flat_map(|l| l.iter()).collect();
    for d in [format!("{a}/x"), format!("{r}/y/z")] {
        assert_eq!(theirs[&d].kind, tar::EntryType::Directory, "buildah: {d}");
    }
    assert_eq!(
        theirs[&format!("{r}/y/z/here")].kind,
        tar::EntryType::Regular
    );
}
