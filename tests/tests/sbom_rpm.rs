//! `lade sbom` on rpm's Berkeley DB (`Packages`) and ndb (`Packages.db`) databases against the real rpm.
//!
//! rpmbuild makes the packages and rpm installs them into a sqlite database (the format Debian's rpm 4.18
//! writes); its header blobs are then written into the two other formats:
//! - Berkeley DB: by Berkeley DB's own `db5.3_load` (Debian's db5.3-util), in several page sizes and both
//!   byte orders. rpm reads these back (`--define '_db_backend bdb_ro'`), and its `rpm -qa` is the oracle.
//!   One more copy with page checksums, which rpm's reader does not take, is checked against the same list.
//! - ndb: Debian's rpm has no ndb backend, so no tool here writes or reads it. The test writes the file
//!   itself with the Python below, from the layout in rpm's `lib/backend/ndb/rpmpkg.c` (header, slot pages,
//!   blobs with Adler-32 tails), holding the blobs rpm wrote; the oracle is `rpm -qa` of the sqlite database
//!   the blobs came from.

use lade_tests::{lade, ok, require_peers};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The packages of `lade sbom --format json DIR`.
fn packages(store: &Path, target: &Path) -> Vec<Value> {
    let out = ok(lade()
        .arg("--root")
        .arg(store)
        .args(["sbom", "--format", "json"])
        .arg(target));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["packages"].as_array().unwrap().clone()
}

const QF: &str = "%{NAME} %|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE} %{ARCH}\\n";

fn rpm_qa(root: &Path, dbpath: &str, backend: &str) -> BTreeSet<String> {
    ok(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", dbpath, "--define"])
        .arg(format!("_db_backend {backend}"))
        .args(["-qa", "--qf", QF]))
    .lines()
    .map(String::from)
    .collect()
}

fn lade_rpms(store: &Path, root: &Path) -> (BTreeSet<String>, Vec<Value>) {
    let found: Vec<Value> = packages(store, root)
        .into_iter()
        .filter(|p| p["type"] == "rpm")
        .collect();
    let lines = found
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["arch"].as_str().unwrap()
            )
        })
        .collect();
    (lines, found)
}

/// Packages made by rpmbuild: a few small ones with and without epochs, and one owning 400 files, whose
/// header is larger than several Berkeley DB pages.
fn build_rpms(dir: &Path) -> Vec<PathBuf> {
    let top = dir.join("rpmbuild");
    let specs = [
        ("lade-alpha", "1.4", "3", "", "MIT", 1),
        (
            "lade-beta",
            "2.0",
            "1.el8",
            "Epoch: 2\n",
            "GPL-2.0-or-later",
            1,
        ),
        ("lade-gamma", "0.9~rc1", "7", "Epoch: 0\n", "Apache-2.0", 2),
        ("lade-many", "10.2.1", "5", "", "BSD-3-Clause", 400),
    ];
    for (name, version, release, epoch, license, files) in specs {
        let spec = dir.join(format!("{name}.spec"));
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\nVersion: {version}\nRelease: {release}\n{epoch}Summary: t\nLicense: {license}\n\
                 BuildArch: noarch\n%description\nt\n%install\nmkdir -p %{{buildroot}}/usr/share/{name}\n\
                 for i in $(seq 1 {files}); do echo $i > %{{buildroot}}/usr/share/{name}/a-rather-long-file-name-$i.txt; done\n\
                 %files\n/usr/share/{name}\n"
            ),
        )
        .unwrap();
        ok(Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .arg(&spec));
    }
    std::fs::read_dir(top.join("RPMS/noarch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Writes the header blobs of a sqlite rpmdb as a `db_load` input (keys: rpm's instance numbers, 4 bytes
/// little-endian) and as an ndb `Packages.db`, laid out as rpm's rpmpkg.c does.
const EXPORT: &str = r#"
import sqlite3, struct, sys, zlib
src, dump, ndb = sys.argv[1:4]
rows = sqlite3.connect(src).execute('select hnum, blob from Packages order by hnum').fetchall()
with open(dump, 'w') as f:
    f.write('VERSION=3\nformat=bytevalue\ntype=hash\nHEADER=END\n')
    f.write(' 00000000\n ' + struct.pack('<I', len(rows) + 1).hex() + '\n')  # rpm's instance counter
    for hnum, blob in rows:
        f.write(' ' + struct.pack('<I', hnum).hex() + '\n ' + bytes(blob).hex() + '\n')
    f.write('DATA=END\n')
PAGE, SLOT, BLK = 4096, 16, 16
out = bytearray(PAGE)
out[0:16] = struct.pack('<4sIII', b'RpmP', 0, 1, 1)
for at in range(32, PAGE, SLOT):
    out[at:at + 4] = b'Slot'
slot = 3 * SLOT  # slot 2 stays free, as after an erase
for hnum, blob in rows:
    blob = bytes(blob)
    head = struct.pack('<4sIII', b'BlbS', hnum, 1700000000, len(blob))
    blkcnt = (16 + len(blob) + 12 + BLK - 1) // BLK
    body = head + blob + bytes(blkcnt * BLK - 12 - 16 - len(blob))
    block = body + struct.pack('<II4s', zlib.adler32(body), len(blob), b'BlbE')
    out[slot:slot + SLOT] = struct.pack('<4sIII', b'Slot', hnum, len(out) // BLK, blkcnt)
    slot += SLOT
    out += block
open(ndb, 'wb').write(out)
"#;

#[test]
fn rpm_berkeley_db_and_ndb_equal_rpm_qa() {
    require_peers!("rpm", "rpmbuild", "db5.3_load", "python3");
    let dir = tempfile::tempdir().unwrap();
    let built = build_rpms(dir.path());
    let sqlite_root = dir.path().join("sqlite");
    let rpm_sqlite = |args: &[&str]| {
        let mut c = Command::new("rpm");
        c.arg("--root")
            .arg(&sqlite_root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args);
        c
    };
    ok(&mut rpm_sqlite(&["--initdb"]));
    ok(rpm_sqlite(&["-i", "--nodeps", "--ignorearch"]).args(&built));
    let want = rpm_qa(&sqlite_root, "/var/lib/rpm", "sqlite");
    assert_eq!(want.len(), 4, "{want:?}");
    let many_files: BTreeSet<String> = ok(&mut rpm_sqlite(&["-ql", "lade-many"]))
        .lines()
        .filter(|l| l.ends_with(".txt"))
        .map(String::from)
        .collect();
    assert_eq!(many_files.len(), 400);

    let (dump, ndb) = (dir.path().join("dump.txt"), dir.path().join("Packages.db"));
    ok(Command::new("python3")
        .args(["-c", EXPORT])
        .arg(sqlite_root.join("var/lib/rpm/rpmdb.sqlite"))
        .arg(&dump)
        .arg(&ndb));
    let store = dir.path().join("store");

    // Berkeley DB: 4 KiB pages (each header on a chain of overflow pages), 512-byte pages (long chains),
    // 64 KiB pages (the small headers on the hash page itself), big-endian, and with page checksums.
    let dump_text = std::fs::read_to_string(&dump).unwrap();
    for (variant, rpm_reads_it) in [
        ("db_pagesize=4096", true),
        ("db_pagesize=512", true),
        ("db_pagesize=65536", true),
        ("db_lorder=4321", true),
        ("chksum=1", false),
    ] {
        let root = dir.path().join(variant.replace('=', "-"));
        std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
        let input = dir.path().join(format!("{variant}.txt"));
        std::fs::write(
            &input,
            dump_text.replace("type=hash\n", &format!("type=hash\n{variant}\n")),
        )
        .unwrap();
        ok(Command::new("db5.3_load")
            .arg("-f")
            .arg(&input)
            .arg(root.join("var/lib/rpm/Packages")));
        if rpm_reads_it {
            assert_eq!(
                rpm_qa(&root, "/var/lib/rpm", "bdb_ro"),
                want,
                "rpm reads the {variant} database"
            );
        }
        let (got, found) = lade_rpms(&store, &root);
        assert_eq!(got, want, "{variant}");
        let many = found.iter().find(|p| p["name"] == "lade-many").unwrap();
        let files: BTreeSet<String> = many["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .filter(|f| f.ends_with(".txt"))
            .collect();
        assert_eq!(files, many_files, "{variant}");
        let beta = found.iter().find(|p| p["name"] == "lade-beta").unwrap();
        assert_eq!(beta["licenses"], "GPL-2.0-or-later");
        assert_eq!(beta["location"], "/var/lib/rpm/Packages");
    }

    // ndb, where SUSE keeps it.
    let root = dir.path().join("ndb");
    std::fs::create_dir_all(root.join("usr/lib/sysimage/rpm")).unwrap();
    std::fs::copy(&ndb, root.join("usr/lib/sysimage/rpm/Packages.db")).unwrap();
    let (got, found) = lade_rpms(&store, &root);
    assert_eq!(got, want, "ndb");
    let many = found.iter().find(|p| p["name"] == "lade-many").unwrap();
    let txt = many["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.as_str().unwrap().ends_with(".txt"))
        .count();
    assert_eq!(txt, 400);
    assert_eq!(many["location"], "/usr/lib/sysimage/rpm/Packages.db");
}

/// A damaged database is reported, and the records that are whole are still listed.
#[test]
fn a_damaged_ndb_record_is_skipped_with_a_note() {
    require_peers!("rpm", "rpmbuild", "python3");
    let dir = tempfile::tempdir().unwrap();
    let built = build_rpms(dir.path());
    let root = dir.path().join("sqlite");
    let rpm = |args: &[&str]| {
        let mut c = Command::new("rpm");
        c.arg("--root")
            .arg(&root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args);
        c
    };
    ok(&mut rpm(&["--initdb"]));
    ok(rpm(&["-i", "--nodeps", "--ignorearch"]).args(&built));
    let ndb = dir.path().join("ndb/var/lib/rpm/Packages.db");
    std::fs::create_dir_all(ndb.parent().unwrap()).unwrap();
    ok(Command::new("python3")
        .args(["-c", EXPORT])
        .arg(root.join("var/lib/rpm/rpmdb.sqlite"))
        .arg(dir.path().join("dump.txt"))
        .arg(&ndb));
    // Flip a byte inside the first blob (it starts right after the slot page and its 16-byte head).
    let mut data = std::fs::read(&ndb).unwrap();
    data[4096 + 100] ^= 0xff;
    std::fs::write(&ndb, data).unwrap();
    let out = lade()
        .arg("--root")
        .arg(dir.path().join("store"))
        .args(["sbom", "--format", "json"])
        .arg(dir.path().join("ndb"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "rpm")
        .count();
    assert_eq!(n, 3, "the three whole records");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notes = format!("{stderr}{}", v["notes"]);
    assert!(notes.contains("checksum"), "{notes}");
}
