//! COPY and ADD through the real `lade build`: sources outside the context are refused, hostile ADD
//! archives (`../` paths, an absolute symlink escape, a hardlink to a host file) are refused or contained,
//! and Docker's COPY rules hold in the committed layers (read back from `lade push oci:`).

use lade_tests::oci::busybox_image;
use lade_tests::{lade, ok, require_peers, run};
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
        let index: Value =
            serde_json::from_slice(&fs::read(out.join("index.json")).unwrap()).unwrap();
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
                    .trim_end_matches('/')
                    .to_string();
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
                    },
                );
            }
            layers.push(map);
        }
        layers
    }
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
