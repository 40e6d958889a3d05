//! `lade db import|info` and the vuln scanner: an OSV database written here (every record validated against
//! the official OSV JSON schema, tests/fixtures/schemas/osv-schema.json from github.com/ossf/osv-schema
//! validation/schema.json, Apache-2.0), imported from a zip and from a directory, then an SBOM in the sbom
//! plugin's JSON scanned against it: introduced/fixed, last_affected, limit, versions[], withdrawn records,
//! Debian and Alpine records matched by source package and release, CVSS severities and trivy's exit codes.

use lade_tests::{fails, lade, ok, peer, peers_required, run, workspace};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn records() -> Vec<Value> {
    let crit =
        json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]);
    let low = json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}]);
    let pypi = |name: &str, ranges: Value| json!([{"package": {"ecosystem": "PyPI", "name": name}, "ranges": ranges}]);
    vec![
        json!({"id": "PYSEC-2099-1", "modified": "2099-01-02T00:00:00Z", "summary": "fixed in 1.2.0", "severity": crit,
               "affected": pypi("demo", json!([{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2.0"}]}]))}),
        json!({"id": "PYSEC-2099-2", "modified": "2099-01-03T00:00:00Z", "severity": low,
               "affected": pypi("demo", json!([{"type": "ECOSYSTEM", "events": [{"introduced": "1.1"}, {"last_affected": "1.1.5"}]}]))}),
        json!({"id": "PYSEC-2099-3", "modified": "2099-01-01T00:00:00Z", "database_specific": {"severity": "MODERATE"},
               "affected": pypi("demo", json!([{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"limit": "1.1"}]}]))}),
        json!({"id": "PYSEC-2099-4", "modified": "2099-01-01T00:00:00Z",
               "affected": [{"package": {"ecosystem": "PyPI", "name": "other"}, "versions": ["0.9.1", "0.9.2"]}]}),
        json!({"id": "PYSEC-2099-5", "modified": "2099-01-01T00:00:00Z", "withdrawn": "2099-01-05T00:00:00Z",
               "affected": pypi("demo", json!([{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]))}),
        json!({"id": "PYSEC-2099-6", "modified": "2099-01-01T00:00:00Z",
               "affected": pypi("demo", json!([{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}]))}),
    ]
}

fn distro_records() -> Vec<Value> {
    let deb = |release: &str, fixed: &str| {
        json!([{"package": {"ecosystem": format!("Debian:{release}"), "name": "openssl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}])
    };
    vec![
        json!({"id": "DSA-9999-1", "modified": "2099-02-01T00:00:00Z", "aliases": ["CVE-2099-1000"],
               "affected": deb("12", "3.0.11-1~deb12u2")}),
        json!({"id": "DLA-9999-1", "modified": "2099-02-01T00:00:00Z", "affected": deb("11", "9.9.9-1")}),
        json!({"id": "ALPINE-CVE-2099-2000", "modified": "2099-02-02T00:00:00Z",
               "affected": [{"package": {"ecosystem": "Alpine:v3.20", "name": "busybox"},
                             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.36.1-r30"}]}]}]}),
    ]
}

/// Validates every record with python's jsonschema against the OSV schema.
fn validate(records: &[Value]) -> bool {
    let Some(python) = peer("python3") else {
        return false;
    };
    let schema = workspace().join("tests/fixtures/schemas/osv-schema.json");
    let script = "import json, sys, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  v = jsonschema.Draft202012Validator(schema)\n\
                  for r in json.load(sys.stdin):\n    v.validate(r)\nprint('valid')\n";
    let mut child = Command::new(python)
        .args(["-c", script])
        .arg(&schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(records).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No module named 'jsonschema'") {
        assert!(
            !peers_required(),
            "python3's jsonschema is missing and LADE_REQUIRE_PEERS=1: run scripts/setup.sh"
        );
        eprintln!("SKIPPED: python3's jsonschema is missing (scripts/setup.sh installs it)");
        return false;
    }
    assert!(
        out.status.success(),
        "an OSV record of the test is not valid: {err}"
    );
    true
}

/// A zip of `records` (one NAME.json each, as OSV's all.zip), made by python's zipfile.
fn zip(records: &[Value], dir: &Path, zip: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for r in records {
        std::fs::write(
            dir.join(format!("{}.json", r["id"].as_str().unwrap())),
            r.to_string(),
        )
        .unwrap();
    }
    let script = "import sys, zipfile, pathlib\n\
                  with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:\n\
                  \x20   for p in sorted(pathlib.Path(sys.argv[1]).glob('*.json')): z.write(p, p.name)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .arg(zip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sbom(distro: Value, packages: Value) -> String {
    json!({"source": {"reference": "test", "digest": ""}, "distro": distro, "packages": packages, "notes": []}).to_string()
}

fn findings(db: &Path, sbom_file: &Path, extra: &[&str]) -> Vec<Value> {
    let data = format!("vuln-db={}", db.display());
    let out = ok(lade()
        .args([
            "scan",
            "--plugin",
            "vuln",
            "--plugin-data",
            &data,
            "-f",
            "json",
        ])
        .args(extra)
        .arg(sbom_file));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["findings"].as_array().unwrap().clone()
}

fn ids(findings: &[Value]) -> BTreeSet<String> {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["package"].as_str().unwrap(),
                f["id"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn osv_records_are_imported_and_matched() {
    let (pypi, distro) = (records(), distro_records());
    if !validate(&pypi.iter().chain(&distro).cloned().collect::<Vec<_>>()) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let all_zip = tmp.path().join("all.zip");
    zip(&pypi, &tmp.path().join("pypi"), &all_zip);
    let distro_dir = tmp.path().join("distro");
    std::fs::create_dir_all(distro_dir.join("nested")).unwrap();
    for r in &distro {
        std::fs::write(
            distro_dir
                .join("nested")
                .join(format!("{}.json", r["id"].as_str().unwrap())),
            r.to_string(),
        )
        .unwrap();
    }
    ok(lade()
        .args(["db", "import"])
        .arg(&all_zip)
        .arg("--db")
        .arg(&db));
    ok(lade()
        .args(["db", "import"])
        .arg(&distro_dir)
        .arg("--db")
        .arg(&db));
    let info: Value = serde_json::from_str(&ok(lade()
        .args(["db", "info", "-f", "json", "--db"])
        .arg(&db)))
    .unwrap();
    assert_eq!(
        info["ecosystems"],
        json!({"PyPI": 6, "Debian:12": 1, "Debian:11": 1, "Alpine:v3.20": 1})
    );
    let sources = info["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{info}");
    assert_eq!(sources[0]["records"], 6);
    assert_eq!(sources[0]["newest_modified"], "2099-01-03T00:00:00Z");
    assert_eq!(sources[1]["ecosystems"], json!(["Alpine", "Debian"]));
    // What was written is exactly the OSV records, each still valid.
    let written: Vec<Value> = std::fs::read_to_string(db.join("ecosystems/PyPI/demo.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(written.len(), 5);
    assert!(validate(&written));
    let text = ok(lade().args(["db", "info", "--db"]).arg(&db));
    assert!(
        text.contains("Debian:12") && text.contains("2099-01-03T00:00:00Z"),
        "{text}"
    );

    // PyPI: 1.1.2 is before the fix of -1, inside -2's last_affected, past -3's limit, not -4's package;
    // -5 is withdrawn, -6 was fixed in 1.0. Debian 12's openssl (source of libssl3) is affected, the
    // Debian 11 record is not for this release.
    let sbom_file = tmp.path().join("sbom.json");
    let deb = sbom(
        json!({"id": "debian", "versionId": "12"}),
        json!([
            {"name": "libssl3", "version": "3.0.11-1~deb12u1", "type": "deb", "sourceName": "openssl", "layer": "sha256:l1", "location": "/var/lib/dpkg/status"},
            {"name": "openssl", "version": "3.0.11-1~deb12u2", "type": "deb", "layer": "sha256:l1"},
            {"name": "demo", "version": "1.1.2", "type": "pypi", "layer": "sha256:l2", "location": "/usr/lib/python3/dist-packages/demo-1.1.2.dist-info/METADATA"},
            {"name": "other", "version": "0.9.2", "type": "pypi", "layer": "sha256:l2"},
            {"name": "other2", "version": "0.9.2", "type": "pypi"}
        ]),
    );
    std::fs::write(&sbom_file, &deb).unwrap();
    let deb_again = deb.clone();
    let found = findings(&db, &sbom_file, &[]);
    let want: BTreeSet<String> = [
        "demo PYSEC-2099-1",
        "demo PYSEC-2099-2",
        "other PYSEC-2099-4",
        "libssl3 DSA-9999-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(ids(&found), want, "{found:#?}");
    let by_id = |id: &str| found.iter().find(|f| f["id"] == id).unwrap().clone();
    let dsa = by_id("DSA-9999-1");
    assert_eq!(dsa["fixedVersion"], "3.0.11-1~deb12u2");
    assert_eq!(dsa["layer"], "sha256:l1");
    assert_eq!(dsa["details"]["source-package"], "openssl");
    let p1 = by_id("PYSEC-2099-1");
    assert_eq!(
        (p1["severity"].as_str(), p1["fixedVersion"].as_str()),
        (Some("CRITICAL"), Some("1.2.0"))
    );
    assert_eq!(p1["details"]["cvss-score"], "9.8");
    assert_eq!(p1["layer"], "sha256:l2");
    assert_eq!(by_id("PYSEC-2099-2")["severity"], "LOW");
    assert_eq!(by_id("PYSEC-2099-2")["fixedVersion"], Value::Null);

    // The limit record matches inside its range; the release decides for Debian.
    let other = sbom(
        json!({"id": "debian", "versionId": "11.9"}),
        json!([
            {"name": "demo", "version": "1.0.5", "type": "pypi"},
            {"name": "libssl3", "version": "1.1.1w-0+deb11u1", "type": "deb", "sourceName": "openssl"}
        ]),
    );
    std::fs::write(&sbom_file, other).unwrap();
    let found = findings(&db, &sbom_file, &[]);
    let want: BTreeSet<String> = [
        "demo PYSEC-2099-1",
        "demo PYSEC-2099-3",
        "libssl3 DLA-9999-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(ids(&found), want, "{found:#?}");
    assert_eq!(
        found.iter().find(|f| f["id"] == "PYSEC-2099-3").unwrap()["severity"],
        "MEDIUM"
    );

    // Alpine by origin and release; trivy's exit code only when something is reported after --severity.
    let alpine = sbom(
        json!({"id": "alpine", "versionId": "3.20.3"}),
        json!([{"name": "busybox-binsh", "version": "1.36.1-r29", "type": "apk", "sourceName": "busybox", "layer": "sha256:a1"}]),
    );
    std::fs::write(&sbom_file, alpine).unwrap();
    let found = findings(&db, &sbom_file, &[]);
    assert_eq!(
        ids(&found),
        ["busybox-binsh ALPINE-CVE-2099-2000".to_string()].into()
    );
    assert_eq!(found[0]["fixedVersion"], "1.36.1-r30");
    let data = format!("vuln-db={}", db.display());
    let base = |extra: &[&str]| {
        let mut c = lade();
        c.args(["scan", "--plugin", "vuln", "--plugin-data", &data])
            .args(extra)
            .arg(&sbom_file);
        c
    };
    fails(&mut base(&["--exit-code", "3"]), 3);
    let out = run(&mut base(&[
        "--exit-code",
        "3",
        "--severity",
        "CRITICAL,HIGH",
    ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The Debian 12 SBOM again: --ignore-unfixed drops the last_affected finding, an ignore file drops ids
    // and aliases, grype's --fail-on exits 2 at or above its severity only.
    std::fs::write(&sbom_file, deb_again).unwrap();
    let found = findings(&db, &sbom_file, &["--ignore-unfixed"]);
    assert!(
        !ids(&found).contains("demo PYSEC-2099-2") && ids(&found).contains("demo PYSEC-2099-1"),
        "{found:#?}"
    );
    let ignore = tmp.path().join("ignore");
    std::fs::write(
        &ignore,
        "# accepted\nCVE-2099-1000\nPYSEC-2099-1  # until the upgrade\n",
    )
    .unwrap();
    let found = findings(&db, &sbom_file, &["--ignorefile", ignore.to_str().unwrap()]);
    let want: BTreeSet<String> = ["demo PYSEC-2099-2", "other PYSEC-2099-4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(ids(&found), want);
    fails(&mut base(&["--fail-on", "critical", "--exit-code", "5"]), 2);
    let out = run(&mut base(&[
        "--fail-on",
        "critical",
        "--ignorefile",
        ignore.to_str().unwrap(),
    ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fails(
        &mut base(&["--fail-on", "low", "--ignorefile", ignore.to_str().unwrap()]),
        2,
    );
    let log: Value =
        serde_json::from_str(&ok(&mut base(&["-f", "sarif", "--ignore-unfixed"]))).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let results = log["runs"][0]["results"].as_array().unwrap();
    let rule_ids: BTreeSet<&str> = results
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert_eq!(rule_ids, ["DSA-9999-1", "PYSEC-2099-1"].into());
    let p1 = results
        .iter()
        .find(|r| r["ruleId"] == "PYSEC-2099-1")
        .unwrap();
    assert_eq!(p1["level"], "error");
    assert!(
        p1["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("METADATA")
    );
    let err = fails(&mut base(&["--fail-on", "severe"]), 1);
    assert!(err.contains("--fail-on"), "{err}");

    // Re-importing a source replaces its ecosystem and keeps the others.
    zip(&pypi[..2], &tmp.path().join("pypi2"), &all_zip);
    ok(lade()
        .args(["db", "import"])
        .arg(&all_zip)
        .arg("--db")
        .arg(&db));
    let info: Value = serde_json::from_str(&ok(lade()
        .args(["db", "info", "-f", "json", "--db"])
        .arg(&db)))
    .unwrap();
    assert_eq!(
        info["ecosystems"],
        json!({"PyPI": 2, "Debian:12": 1, "Debian:11": 1, "Alpine:v3.20": 1})
    );
    assert!(!db.join("ecosystems/PyPI/other.jsonl").exists());
    assert!(db.join("ecosystems/Debian%3A12/openssl.jsonl").exists());

    // With no --plugin, lade scan of a root filesystem runs the sbom scanner, then vuln on its packages.
    let root = tmp.path().join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n",
    )
    .unwrap();
    let status = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\n\
                  Version: 3.0.11-1~deb12u1\nDescription: TLS\n\n";
    std::fs::write(root.join("var/lib/dpkg/status"), status).unwrap();
    let out = ok(lade()
        .args(["scan", "--plugin-data", &data, "-f", "json"])
        .arg(&root));
    let v: Value = serde_json::from_str(&out).unwrap();
    let found = v["findings"].as_array().unwrap();
    assert_eq!(
        ids(found),
        ["libssl3 DSA-9999-1".to_string()].into(),
        "{out}"
    );
    assert_eq!(found[0]["fixedVersion"], "3.0.11-1~deb12u2");
}

#[test]
fn bad_sources_and_missing_databases_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let err = fails(lade().args(["db", "info", "--db"]).arg(&db), 1);
    assert!(err.contains("lade db import"), "{err}");
    let not_zip = tmp.path().join("all.zip");
    std::fs::write(&not_zip, "hello").unwrap();
    let err = fails(
        lade()
            .args(["db", "import"])
            .arg(&not_zip)
            .arg("--db")
            .arg(&db),
        1,
    );
    assert!(err.contains("is not a zip file"), "{err}");
    let dir = tmp.path().join("records");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("x.json"), r#"{"id": "X-1"}"#).unwrap();
    let err = fails(
        lade().args(["db", "import"]).arg(&dir).arg("--db").arg(&db),
        1,
    );
    assert!(err.contains("x.json is not an OSV record"), "{err}");
    assert!(!db.exists(), "a failed import leaves no database");
    let sbom_file = tmp.path().join("sbom.json");
    std::fs::write(&sbom_file, r#"{"packages": []}"#).unwrap();
    let data = format!("vuln-db={}", dir.display());
    let err = fails(
        lade()
            .args(["scan", "--plugin", "vuln", "--plugin-data", &data])
            .arg(&sbom_file),
        1,
    );
    assert!(err.contains("lade db import"), "{err}");
}

/// A package's records over `read-file`'s 64 MiB (the Linux kernel's have thousands) are read in pieces, and
/// an unreadable one fails the scan: either used to pass as "no vulnerabilities".
#[test]
fn a_package_file_over_64_mib_is_read_and_an_unreadable_one_fails() {
    let pypi = records();
    if !validate(&pypi) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let all_zip = tmp.path().join("all.zip");
    zip(&pypi, &tmp.path().join("pypi"), &all_zip);
    ok(lade()
        .args(["db", "import"])
        .arg(&all_zip)
        .arg("--db")
        .arg(&db));
    // Blank lines (which readers skip) ahead of the records push the file past 64 MiB.
    let file = db.join("ecosystems/PyPI/demo.jsonl");
    let records = std::fs::read(&file).unwrap();
    let mut big = vec![b'\n'; 65 << 20];
    big.extend_from_slice(&records);
    std::fs::write(&file, &big).unwrap();
    let sbom_file = tmp.path().join("sbom.json");
    std::fs::write(
        &sbom_file,
        sbom(
            json!(null),
            json!([{"name": "demo", "version": "1.1.2", "type": "pypi"}]),
        ),
    )
    .unwrap();
    let found = ids(&findings(&db, &sbom_file, &[]));
    assert!(
        found.contains("demo PYSEC-2099-1") && found.contains("demo PYSEC-2099-2"),
        "{found:?}"
    );
    // A directory where the package's file should be cannot be read: the scan says so.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let data = format!("vuln-db={}", db.display());
    let err = fails(
        lade()
            .args(["scan", "--plugin", "vuln", "--plugin-data", &data])
            .arg(&sbom_file),
        1,
    );
    assert!(err.contains("ecosystems/PyPI/demo.jsonl"), "{err}");
}
