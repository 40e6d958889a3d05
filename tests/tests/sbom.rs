//! `lade sbom` against the real package tools: a Debian rootfs from mmdebstrap against `dpkg-query -W`, a
//! pip venv against `pip list`, npm's node_modules against `npm ls --all --json`, a Go binary against
//! `go version -m`; the SPDX output checked by pyspdxtools and the SPDX schema, the CycloneDX output by the
//! official CycloneDX 1.6 schema (tests/fixtures/schemas).

use lade_tests::oci::umoci_add_layer;
use lade_tests::{lade, need_root_for, ok, peer, require_peers, shared_cache_dir, workspace};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where scripts/setup.sh puts spdx-tools and jsonschema.
const SBOM_TOOLS: &str = "/usr/local/lib/lade-test/spdx-tools/bin";

/// `lade sbom TARGET --format FORMAT` with a private store.
fn sbom_raw(store: &Path, target: &str, format: &str) -> String {
    ok(lade()
        .arg("--root")
        .arg(store)
        .args(["sbom", "--format", format, target]))
}

/// The packages of the `json` format.
fn packages(store: &Path, target: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&sbom_raw(store, target, "json")).unwrap();
    v["packages"].as_array().unwrap().clone()
}

/// `(name, version)` of the packages of one purl type.
fn set_of(packages: &[Value], kind: &str) -> BTreeSet<(String, String)> {
    packages
        .iter()
        .filter(|p| p["type"] == kind)
        .map(|p| {
            let name = match p["namespace"].as_str() {
                Some(ns) if kind == "npm" => format!("{ns}/{}", p["name"].as_str().unwrap()),
                _ => p["name"].as_str().unwrap().to_string(),
            };
            (name, p["version"].as_str().unwrap().to_string())
        })
        .collect()
}

/// A Debian bookworm minbase root filesystem as a tar, made once by mmdebstrap and kept in the test cache.
fn debian_tar() -> Option<PathBuf> {
    peer("mmdebstrap")?;
    let tar = shared_cache_dir().join("debian-bookworm-minbase.tar");
    if !tar.exists() {
        std::fs::create_dir_all(shared_cache_dir()).unwrap();
        let part = tar.with_extension(format!("tar.{}.tmp", std::process::id()));
        ok(Command::new("mmdebstrap")
            .args(["--variant=minbase", "--format=tar", "--quiet", "bookworm"])
            .arg(&part));
        std::fs::rename(&part, &tar).unwrap();
    }
    Some(tar)
}

fn dpkg_query(admindir: &Path) -> BTreeSet<String> {
    ok(Command::new("dpkg-query")
        .args([
            "-W",
            "-f",
            "${Package} ${Version} ${Architecture}\\n",
            "--admindir",
        ])
        .arg(admindir))
    .lines()
    .map(String::from)
    .collect()
}

fn deb_lines(packages: &[Value]) -> BTreeSet<String> {
    packages
        .iter()
        .filter(|p| p["type"] == "deb")
        .map(|p| {
            format!(
                "{} {} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["arch"].as_str().unwrap()
            )
        })
        .collect()
}

/// A package `lade-extra` added by hand to a dpkg status (and its file list), for a second layer.
const EXTRA: &str = "Package: lade-extra\nStatus: install ok installed\nPriority: optional\nSection: misc\n\
Maintainer: lade tests <t@example.com>\nArchitecture: all\nVersion: 1.0-1\nDescription: added by the sbom test\n";

#[test]
fn debian_packages_equal_dpkg_query_and_keep_their_layer() {
    if !need_root_for(
        "debian_packages_equal_dpkg_query",
        "mmdebstrap and the rootfs's device nodes",
    ) {
        return;
    }
    require_peers!("umoci", "dpkg-query");
    let Some(tar) = debian_tar() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-xf")
        .arg(&tar)
        .arg("--exclude=./dev/*"));

    // The root filesystem as a directory.
    let want = dpkg_query(&root.join("var/lib/dpkg"));
    assert!(
        want.len() > 50,
        "a minbase system has more packages: {want:?}"
    );
    let found = packages(&store, root.to_str().unwrap());
    assert_eq!(deb_lines(&found), want);
    let libc = found.iter().find(|p| p["name"] == "libc6").unwrap();
    assert_eq!(libc["sourceName"], "glibc");
    assert!(
        libc["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:deb/debian/libc6@"),
        "{libc}"
    );
    assert!(
        libc["purl"].as_str().unwrap().contains("distro=debian-12"),
        "{libc}"
    );
    let files: Vec<&str> = libc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let listed = std::fs::read_to_string(root.join("var/lib/dpkg/info/libc6:amd64.list")).unwrap();
    assert_eq!(
        files,
        listed.lines().filter(|l| *l != "/.").collect::<Vec<_>>()
    );

    // As an image of two layers made by umoci: the tar, then a status with one more package.
    let layout = dir.path().join("img");
    ok(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    let img = format!("{}:t", layout.display());
    ok(Command::new("umoci").args(["new", "--image", &img]));
    ok(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &img])
        .arg(&tar));
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap() + "\n" + EXTRA;
    umoci_add_layer(
        &img,
        &[
            ("var/lib/dpkg/status", status.as_bytes()),
            (
                "var/lib/dpkg/info/lade-extra.list",
                b"/.\n/usr/share/lade-extra\n",
            ),
        ],
    );
    std::fs::write(root.join("var/lib/dpkg/status"), &status).unwrap();
    let want = dpkg_query(&root.join("var/lib/dpkg"));
    let found = packages(&store, &format!("oci:{img}"));
    assert_eq!(deb_lines(&found), want);
    let layers: BTreeSet<(&str, &str)> = found
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["layer"].as_str().unwrap()))
        .filter(|(n, _)| *n == "lade-extra" || *n == "libc6")
        .collect();
    let diff_ids = config_diff_ids(&layout);
    assert_eq!(
        layers,
        BTreeSet::from([
            ("lade-extra", diff_ids[1].as_str()),
            ("libc6", diff_ids[0].as_str())
        ])
    );

    // Both document formats validate.
    validate_spdx(
        &sbom_raw(&store, &format!("oci:{img}"), "spdx-json"),
        dir.path(),
    );
    validate_cyclonedx(
        &sbom_raw(&store, &format!("oci:{img}"), "cyclonedx-json"),
        dir.path(),
    );
}

/// The diff_ids of `t` in an OCI layout, from its config as umoci wrote it.
fn config_diff_ids(layout: &Path) -> Vec<String> {
    let manifest = lade_tests::oci::oci_digest(layout, "t").unwrap();
    let blob = |d: &str| -> Value {
        let path = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let config = blob(blob(&manifest)["config"]["digest"].as_str().unwrap());
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// The SBOM tools' python (spdx-tools, jsonschema): setup.sh's venv, else one on PATH.
fn sbom_tool(name: &str) -> Option<PathBuf> {
    let venv = Path::new(SBOM_TOOLS).join(name);
    if venv.exists() {
        return Some(venv);
    }
    peer(name)
}

fn validate_spdx(doc: &str, dir: &Path) {
    let file = dir.join("sbom.spdx.json");
    std::fs::write(&file, doc).unwrap();
    let Some(tool) = sbom_tool("pyspdxtools") else {
        return;
    };
    let out = ok(Command::new(tool).arg("-i").arg(&file));
    assert!(!out.contains("ERROR"), "{out}");
    validate_schema(&file, "spdx-2.3-schema.json");
}

fn validate_cyclonedx(doc: &str, dir: &Path) {
    let file = dir.join("sbom.cdx.json");
    std::fs::write(&file, doc).unwrap();
    validate_schema(&file, "bom-1.6.schema.json");
}

/// Validate `file` against a schema in tests/fixtures/schemas, with the schemas it refers to registered.
fn validate_schema(file: &Path, schema: &str) {
    let Some(python) = sbom_tool("python3") else {
        return;
    };
    let script = r#"
import json, sys, pathlib
import jsonschema, referencing
dir = pathlib.Path(sys.argv[1])
resources = []
for f in dir.glob("*.json"):
    s = json.loads(f.read_text())
    resources.append((s["$id"], referencing.Resource.from_contents(s, default_specification=referencing.jsonschema.DRAFT7)))
registry = referencing.Registry().with_resources(resources)
schema = json.loads((dir / sys.argv[2]).read_text())
cls = jsonschema.validators.validator_for(schema)
errors = list(cls(schema, registry=registry).iter_errors(json.loads(pathlib.Path(sys.argv[3]).read_text())))
for e in errors[:10]:
    print(list(e.absolute_path), e.message)
sys.exit(1 if errors else 0)
"#;
    ok(Command::new(python)
        .args(["-c", script])
        .arg(workspace().join("tests/fixtures/schemas"))
        .arg(schema)
        .arg(file));
}

/// A PEP 517 build backend that writes a wheel of one empty module with zipfile.
const WHEEL_BACKEND: &str = r#"
import base64, hashlib, os, zipfile
NAME, VERSION = "@NAME@", "@VERSION@"
DIST = NAME.lower().replace("-", "_")

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    info = f"{DIST}-{VERSION}.dist-info"
    files = {
        f"{DIST}/__init__.py": b"",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\nLicense: MIT\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: lade-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    name = f"{DIST}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
    return name
"#;

#[test]
fn python_packages_equal_pip_list() {
    require_peers!("python3");
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    let wheels = dir.path().join("wheels");
    for (name, version) in [("tiny_alpha", "1.2.0"), ("Tiny-Beta", "0.3.1")] {
        // An in-tree PEP 517 backend, so pip builds the wheel with nothing from PyPI (no setuptools, no wheel).
        let proj = dir.path().join(name);
        std::fs::create_dir_all(&proj).unwrap();
        std::fs::write(
            proj.join("pyproject.toml"),
            "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n",
        )
        .unwrap();
        std::fs::write(
            proj.join("backend.py"),
            WHEEL_BACKEND
                .replace("@NAME@", name)
                .replace("@VERSION@", version),
        )
        .unwrap();
        ok(Command::new(venv.join("bin/pip"))
            .args([
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "-w",
            ])
            .arg(&wheels)
            .arg(&proj));
    }
    ok(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--no-index", "--find-links"])
        .arg(&wheels)
        .args(["tiny_alpha", "Tiny-Beta"]));
    let list: Value = serde_json::from_str(&ok(
        Command::new(venv.join("bin/pip")).args(["list", "--format=json"])
    ))
    .unwrap();
    let norm = |n: &str| n.to_lowercase().replace('_', "-");
    let want: BTreeSet<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                norm(p["name"].as_str().unwrap()),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let found = packages(&dir.path().join("store"), venv.to_str().unwrap());
    let got: BTreeSet<(String, String)> = set_of(&found, "pypi")
        .into_iter()
        .map(|(n, v)| (norm(&n), v))
        .collect();
    assert_eq!(got, want);
    let alpha = found
        .iter()
        .find(|p| p["name"] == "tiny_alpha" || p["name"] == "tiny-alpha")
        .unwrap();
    assert_eq!(alpha["licenses"], "MIT");
    assert!(
        alpha["files"].as_array().unwrap().iter().any(|f| f
            .as_str()
            .unwrap()
            .ends_with("/site-packages/tiny_alpha/__init__.py")),
        "{alpha}"
    );
}

#[test]
fn npm_packages_equal_npm_ls() {
    require_peers!("npm");
    let dir = tempfile::tempdir().unwrap();
    let mut tarballs = Vec::new();
    for (name, version, license) in [
        ("left-thing", "1.0.0", "MIT"),
        ("@lade/scoped", "2.1.0", "ISC"),
    ] {
        let proj = dir.path().join(name.replace('/', "_"));
        std::fs::create_dir_all(&proj).unwrap();
        std::fs::write(
            proj.join("package.json"),
            format!(r#"{{"name":"{name}","version":"{version}","license":"{license}","main":"index.js"}}"#),
        )
        .unwrap();
        std::fs::write(proj.join("index.js"), "module.exports = 1;\n").unwrap();
        let out = ok(Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(dir.path())
            .current_dir(&proj));
        tarballs.push(dir.path().join(out.trim()));
    }
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("package.json"),
        r#"{"name":"app","version":"0.0.1","private":true}"#,
    )
    .unwrap();
    ok(Command::new("npm")
        .args([
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--silent",
            "--cache",
        ])
        .arg(dir.path().join("npm-cache"))
        .args(&tarballs)
        .current_dir(&app));
    let ls: Value = serde_json::from_str(&ok(Command::new("npm")
        .args(["ls", "--all", "--json"])
        .current_dir(&app)))
    .unwrap();
    let mut want = BTreeSet::new();
    flatten_npm(&ls["dependencies"], &mut want);
    let found = packages(&dir.path().join("store"), app.to_str().unwrap());
    assert_eq!(set_of(&found, "npm"), want);
    let scoped = found.iter().find(|p| p["name"] == "scoped").unwrap();
    assert_eq!(scoped["purl"], "pkg:npm/%40lade/scoped@2.1.0");
    assert_eq!(scoped["licenses"], "ISC");
}

fn flatten_npm(deps: &Value, out: &mut BTreeSet<(String, String)>) {
    for (name, d) in deps.as_object().into_iter().flatten() {
        out.insert((name.clone(), d["version"].as_str().unwrap().to_string()));
        flatten_npm(&d["dependencies"], out);
    }
}

#[test]
fn go_modules_equal_go_version_m() {
    require_peers!("go");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("greet")).unwrap();
    std::fs::write(
        src.join("go.mod"),
        "module example.com/hello\n\ngo 1.19\n\nrequire example.com/greet v0.0.0\n\nreplace example.com/greet => ./greet\n",
    )
    .unwrap();
    std::fs::write(
        src.join("main.go"),
        "package main\n\nimport \"example.com/greet\"\n\nfunc main() { greet.Hello() }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("greet/go.mod"),
        "module example.com/greet\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(
        src.join("greet/greet.go"),
        "package greet\n\nimport \"fmt\"\n\nfunc Hello() { fmt.Println(\"hi\") }\n",
    )
    .unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    let bin = root.join("usr/local/bin/hello");
    ok(Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOPATH", dir.path().join("gopath"))
        .env("GOCACHE", dir.path().join("gocache")));
    // go version -m: the main module, every dep (a module replacement by another module wins), the toolchain.
    let out = ok(Command::new("go").args(["version", "-m"]).arg(&bin));
    let mut want: Vec<(String, String)> = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.trim_start_matches('\t').split('\t').collect();
        match f.as_slice() {
            ["mod" | "dep", path, version, ..] => {
                want.push((path.to_string(), version.to_string()))
            }
            ["=>", path, version, ..] if !path.starts_with(['.', '/']) => {
                *want.last_mut().unwrap() = (path.to_string(), version.to_string())
            }
            _ => {}
        }
    }
    let toolchain = out
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    want.push(("stdlib".into(), toolchain));
    let found = packages(&dir.path().join("store"), root.to_str().unwrap());
    assert_eq!(
        set_of(&found, "golang"),
        want.into_iter().collect::<BTreeSet<_>>()
    );
    assert!(
        found
            .iter()
            .all(|p| p["location"] == "/usr/local/bin/hello")
    );
}

#[test]
fn rpm_packages_equal_rpm_qa() {
    require_peers!("rpm", "rpmbuild");
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("rpmbuild");
    for (name, epoch, license) in [
        ("lade-alpha", "", "MIT"),
        ("lade-beta", "Epoch: 2\n", "GPL-2.0-or-later"),
    ] {
        let spec = dir.path().join(format!("{name}.spec"));
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\nVersion: 1.4\nRelease: 3\n{epoch}Summary: t\nLicense: {license}\nBuildArch: noarch\n\
                 %description\nt\n%install\nmkdir -p %{{buildroot}}/usr/share/{name}\n\
                 echo hi > %{{buildroot}}/usr/share/{name}/file\n%files\n/usr/share/{name}/file\n"
            ),
        )
        .unwrap();
        ok(Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .arg(&spec));
    }
    let root = dir.path().join("root");
    let rpm = |args: &[&str]| {
        let mut c = Command::new("rpm");
        c.arg("--root")
            .arg(&root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args);
        c
    };
    ok(&mut rpm(&["--initdb"]));
    let built: Vec<PathBuf> = std::fs::read_dir(top.join("RPMS/noarch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    ok(rpm(&["-i", "--nodeps", "--ignorearch"]).args(&built));
    assert!(
        root.join("var/lib/rpm/rpmdb.sqlite").exists(),
        "this rpm does not write the sqlite format"
    );
    let want: BTreeSet<String> = ok(&mut rpm(&[
        "-qa",
        "--qf",
        "%{NAME} %|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE} %{ARCH}\\n",
    ]))
    .lines()
    .map(String::from)
    .collect();
    assert_eq!(want.len(), 2, "{want:?}");
    let found = packages(&dir.path().join("store"), root.to_str().unwrap());
    let got: BTreeSet<String> = found
        .iter()
        .filter(|p| p["type"] == "rpm")
        .map(|p| {
            format!(
                "{} {} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["arch"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(got, want);
    let beta = found.iter().find(|p| p["name"] == "lade-beta").unwrap();
    assert_eq!(
        beta["files"],
        serde_json::json!(["/usr/share/lade-beta/file"])
    );
    assert_eq!(beta["licenses"], "GPL-2.0-or-later");
    assert!(beta["purl"].as_str().unwrap().contains("epoch=2"), "{beta}");
}

#[test]
fn build_sbom_writes_the_documents_of_the_built_image() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("node_modules/@s/x")).unwrap();
    std::fs::write(
        ctx.join("node_modules/@s/x/package.json"),
        r#"{"name":"@s/x","version":"1.0.0","license":"MIT"}"#,
    )
    .unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY node_modules /app/node_modules\n",
    )
    .unwrap();
    let store = dir.path().join("store");
    for (preset, file) in [("spdx", "b.spdx.json"), ("syft-cyclonedx", "b.cdx.json")] {
        ok(lade()
            .arg("--root")
            .arg(&store)
            .args([
                "build",
                "-q",
                "-t",
                "sbom-built:1",
                "--sbom",
                preset,
                "--sbom-output",
            ])
            .arg(dir.path().join(file))
            .arg("--sbom-purl-output")
            .arg(dir.path().join("purls.txt"))
            .arg(&ctx));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("purls.txt")).unwrap(),
            "pkg:npm/%40s/x@1.0.0\n"
        );
    }
    let spdx = std::fs::read_to_string(dir.path().join("b.spdx.json")).unwrap();
    assert!(spdx.contains("pkg:npm/%40s/x@1.0.0"), "{spdx}");
    validate_spdx(&spdx, dir.path());
    validate_cyclonedx(
        &std::fs::read_to_string(dir.path().join("b.cdx.json")).unwrap(),
        dir.path(),
    );
    let e = lade_tests::fails(
        lade()
            .arg("--root")
            .arg(&store)
            .args(["build", "--sbom", "spdx"])
            .arg(&ctx),
        1,
    );
    assert!(e.contains("--sbom needs --sbom-output FILE"), "{e}");
}
