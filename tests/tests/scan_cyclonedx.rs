//! `lade scan -f cyclonedx` (trivy's `--format cyclonedx`): a CycloneDX 1.6 BOM with the scanned packages
//! as components and the findings as vulnerabilities, validated with python's jsonschema against the
//! official CycloneDX 1.6 schema (tests/fixtures/schemas), and checked against `-f json` of the same scan.

use lade_tests::{lade, ok, peer, workspace};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where scripts/setup.sh puts jsonschema (with `referencing`).
const SBOM_TOOLS: &str = "/usr/local/lib/lade-test/spdx-tools/bin/python3";

fn python() -> Option<PathBuf> {
    let venv = PathBuf::from(SBOM_TOOLS);
    if venv.exists() {
        return Some(venv);
    }
    peer("python3")
}

/// Validate `doc` (written into `dir`) against the CycloneDX 1.6 schema, with the schemas it refers to
/// registered.
fn validate_cyclonedx(doc: &Value, dir: &Path) {
    let Some(python) = python() else {
        return;
    };
    let file = dir.join("scan.cdx.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let script = r#"
import json, sys, pathlib
import jsonschema, referencing
dir = pathlib.Path(sys.argv[1])
resources = []
for f in dir.glob("*.json"):
    s = json.loads(f.read_text())
    resources.append((s["$id"], referencing.Resource.from_contents(s, default_specification=referencing.jsonschema.DRAFT7)))
registry = referencing.Registry().with_resources(resources)
schema = json.loads((dir / "bom-1.6.schema.json").read_text())
cls = jsonschema.validators.validator_for(schema)
errors = list(cls(schema, registry=registry).iter_errors(json.loads(pathlib.Path(sys.argv[2]).read_text())))
for e in errors[:10]:
    print(list(e.absolute_path), e.message)
sys.exit(1 if errors else 0)
"#;
    ok(Command::new(python)
        .args(["-c", script])
        .arg(workspace().join("tests/fixtures/schemas"))
        .arg(&file));
}

fn records() -> Vec<Value> {
    let crit =
        json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]);
    vec![
        json!({"id": "PYSEC-2099-1", "modified": "2099-01-02T00:00:00Z", "summary": "fixed in 1.2.0",
               "severity": crit, "aliases": ["CVE-2099-0001"],
               "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"},
                             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2.0"}]}]}]}),
        json!({"id": "PYSEC-2099-4", "modified": "2099-01-01T00:00:00Z",
               "affected": [{"package": {"ecosystem": "PyPI", "name": "other"}, "versions": ["0.9.2"]}]}),
        json!({"id": "DSA-9999-1", "modified": "2099-02-01T00:00:00Z", "aliases": ["CVE-2099-1000"],
               "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]}]}),
    ]
}

fn scan(db: &Path, target: &Path, extra: &[&str]) -> Value {
    let data = format!("vuln-db={}", db.display());
    let out = ok(lade()
        .args(["scan", "--plugin-data", &data])
        .args(extra)
        .arg(target));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn scan_cyclonedx_lists_components_and_their_vulnerabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let records_dir = tmp.path().join("osv");
    std::fs::create_dir_all(&records_dir).unwrap();
    for r in records() {
        std::fs::write(
            records_dir.join(format!("{}.json", r["id"].as_str().unwrap())),
            r.to_string(),
        )
        .unwrap();
    }
    let db = tmp.path().join("db");
    ok(lade()
        .args(["db", "import"])
        .arg(&records_dir)
        .arg("--db")
        .arg(&db));
    let sbom = tmp.path().join("sbom.json");
    std::fs::write(
        &sbom,
        json!({"source": {"reference": "test", "digest": ""},
               "distro": {"id": "debian", "versionId": "12", "prettyName": "Debian 12"},
               "packages": [
                   {"name": "libssl3", "version": "3.0.11-1~deb12u1", "type": "deb", "sourceName": "openssl",
                    "purl": "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?distro=debian-12", "layer": "sha256:l1",
                    "location": "/var/lib/dpkg/status", "licenses": "Apache-2.0"},
                   {"name": "demo", "version": "1.1.2", "type": "pypi", "purl": "pkg:pypi/demo@1.1.2",
                    "layer": "sha256:l2", "location": "/usr/lib/python3/dist-packages/demo-1.1.2.dist-info/METADATA"},
                   {"name": "other", "version": "0.9.2", "type": "pypi", "purl": "pkg:pypi/other@0.9.2"},
                   {"name": "safe", "version": "2.0", "type": "pypi", "purl": "pkg:pypi/safe@2.0"}
               ], "notes": []})
        .to_string(),
    )
    .unwrap();

    let bom = scan(&db, &sbom, &["-f", "cyclonedx"]);
    validate_cyclonedx(&bom, tmp.path());
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.6");
    let components = bom["components"].as_array().unwrap();
    assert_eq!(components.len(), 4, "every package, vulnerable or not");

    // The same findings as -f json, each pointing at the component it was found in.
    let plain = scan(&db, &sbom, &["-f", "json"]);
    let want: BTreeSet<(String, String)> = plain["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["package"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(want.len(), 3, "{plain}");
    let by_ref = |r: &str| {
        components
            .iter()
            .find(|c| c["bom-ref"] == r)
            .unwrap_or_else(|| panic!("no component {r}"))
    };
    let vulns = bom["vulnerabilities"].as_array().unwrap();
    let got: BTreeSet<(String, String)> = vulns
        .iter()
        .map(|v| {
            let c = by_ref(v["affects"][0]["ref"].as_str().unwrap());
            assert_eq!(
                v["affects"][0]["versions"][0]["version"], c["version"],
                "{v}"
            );
            (
                v["id"].as_str().unwrap().to_string(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let demo = vulns.iter().find(|v| v["id"] == "PYSEC-2099-1").unwrap();
    assert_eq!(demo["ratings"][0]["severity"], "critical");
    assert_eq!(demo["ratings"][0]["score"], 9.8);
    assert_eq!(demo["recommendation"], "Upgrade demo to version 1.2.0");
    assert_eq!(demo["references"][0]["id"], "CVE-2099-0001");
    let ssl = vulns.iter().find(|v| v["id"] == "DSA-9999-1").unwrap();
    assert_eq!(
        by_ref(ssl["affects"][0]["ref"].as_str().unwrap())["purl"],
        "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?distro=debian-12"
    );

    // trivy's filters apply to the BOM as to the other formats.
    let critical = scan(&db, &sbom, &["-f", "cyclonedx", "--severity", "CRITICAL"]);
    let ids: Vec<&str> = critical["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["PYSEC-2099-1"]);
    let unfixed = scan(&db, &sbom, &["-f", "cyclonedx", "--ignore-unfixed"]);
    assert!(
        unfixed["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["id"] != "PYSEC-2099-4")
    );
}

/// A root filesystem directory: the components are what the sbom scanner catalogued there.
#[test]
fn scan_cyclonedx_of_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let records_dir = tmp.path().join("osv");
    std::fs::create_dir_all(&records_dir).unwrap();
    let r = &records()[0];
    std::fs::write(records_dir.join("r.json"), r.to_string()).unwrap();
    let db = tmp.path().join("db");
    ok(lade()
        .args(["db", "import"])
        .arg(&records_dir)
        .arg("--db")
        .arg(&db));
    let root = tmp.path().join("root");
    let info = root.join("usr/lib/python3/dist-packages/demo-1.1.2.dist-info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(
        info.join("METADATA"),
        "Metadata-Version: 2.1\nName: demo\nVersion: 1.1.2\n",
    )
    .unwrap();
    let bom = scan(&db, &root, &["-f", "cyclonedx"]);
    validate_cyclonedx(&bom, tmp.path());
    let components = bom["components"].as_array().unwrap();
    let demo = components.iter().find(|c| c["name"] == "demo").unwrap();
    assert_eq!(demo["purl"], "pkg:pypi/demo@1.1.2");
    let vulns = bom["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulns.len(), 1, "{bom}");
    assert_eq!(vulns[0]["affects"][0]["ref"], demo["bom-ref"]);
}
