//! The CI recipes in examples/ci: every YAML file parses (python3's yaml as the oracle) and has the shape its
//! CI system needs; every `lade ...` command line in them is accepted by lade's argument parser (run with
//! `LADE_PARSE_ONLY=1`, which stops right after parsing); and `local-matrix.sh` really plays the matrix: two
//! stores, one registry, arm64 under QEMU, one merged index that skopeo reads.

use lade_tests::oci::ARM64_BUSYBOX;
use lade_tests::{Registry, lade_bin, ok, require_peers, run, workspace};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ci_dir() -> PathBuf {
    workspace().join("examples/ci")
}

/// Every document of a YAML file, as python3's yaml reads it.
fn yaml(path: &Path) -> Vec<Value> {
    let out = ok(Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(path));
    serde_json::from_str(&out).unwrap()
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The `lade ...` command lines in a shell script text: logical lines (backslash continuations joined)
/// that start with `lade `, or pipe into it (`... | lade login ...`).
fn lade_lines(script: &str) -> Vec<String> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    logical.push(current);
    logical
        .iter()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with("lade ") {
                Some(l.to_string())
            } else {
                l.find("| lade ").map(|i| l[i + 2..].to_string())
            }
        })
        .collect()
}

/// Run `line` with bash (so quoting and `$VARS` expand as in CI; an unset variable is an error), `lade`
/// being the binary under test in parse-only mode. The failure, if any, with lade's message.
fn parses(line: &str) -> Result<(), String> {
    let dir = lade_bin().parent().unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let vars = [
        ("IMAGE", "registry.example.com/team/app"),
        ("TAG", "0123abc"),
        ("ARCH", "arm64"),
        ("REGISTRY", "ghcr.io"),
        ("GITHUB_ACTOR", "octocat"),
        ("CI_REGISTRY", "registry.gitlab.example.com"),
        ("CI_REGISTRY_USER", "gitlab-ci-token"),
        ("COSIGN_PRIVATE_KEY", "/builds/tmp/COSIGN_PRIVATE_KEY"),
    ];
    let out = run(Command::new("bash")
        .args(["-c", &format!("set -u\n{line}")])
        .env("PATH", path)
        .env("LADE_PARSE_ONLY", "1")
        .envs(vars)
        .stdin(std::process::Stdio::null()));
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{line}\n    -> {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The recipe files and what each must hold.
fn recipes() -> Vec<(&'static str, Vec<Value>)> {
    ["github-actions.yml", "gitlab-ci.yml", "kubernetes-job.yaml"]
        .into_iter()
        .map(|f| (f, yaml(&ci_dir().join(f))))
        .collect()
}

#[test]
fn parse_only_mode_still_refuses_what_the_parser_refuses() {
    assert_eq!(
        parses("lade build --platform linux/arm64 -t a/b:1 --push ."),
        Ok(())
    );
    let e = parses("lade build --no-such-flag .").unwrap_err();
    assert!(e.contains("--no-such-flag"), "{e}");
    let e = parses("lade manifest merge only-a-target").unwrap_err();
    assert!(e.contains("<SOURCES>"), "{e}");
}

#[test]
fn recipes_are_valid_yaml_of_the_right_shape() {
    require_peers!("python3");
    let recipes = recipes();
    let doc = |name: &str| recipes.iter().find(|(f, _)| *f == name).unwrap().1.clone();

    let gh = &doc("github-actions.yml")[0];
    let include = gh["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_array()
        .expect("a build matrix");
    let arches: Vec<&str> = include.iter().filter_map(|m| m["arch"].as_str()).collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    assert!(include.iter().all(|m| m["runner"].is_string()), "{gh}");
    assert_eq!(gh["jobs"]["merge"]["needs"], "build");
    assert!(gh["on"].is_object(), "{gh}");

    let gl = &doc("gitlab-ci.yml")[0];
    assert_eq!(gl["stages"], serde_json::json!(["build", "merge"]));
    assert_eq!(
        gl["build"]["parallel"]["matrix"][0]["ARCH"],
        serde_json::json!(["amd64", "arm64"])
    );
    assert_eq!(gl["merge"]["needs"], serde_json::json!(["build"]));

    let k8s = doc("kubernetes-job.yaml");
    let job = k8s.iter().find(|d| d["kind"] == "Job").expect("a Job");
    assert_eq!(job["apiVersion"], "batch/v1");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["privileged"], false);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for m in ["/etc/subuid", "/etc/subgid", "/var/lib/lade-store"] {
        assert!(mounts.contains(&m), "{m} is not mounted: {mounts:?}");
    }
    let cm = k8s
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the subid ConfigMap");
    assert!(
        cm["data"]["subuid"].as_str().unwrap().starts_with("lade:"),
        "{cm}"
    );
}

#[test]
fn every_lade_command_line_in_the_recipes_parses() {
    require_peers!("python3", "bash");
    let mut failures = Vec::new();
    let mut total = 0;
    for (file, docs) in recipes() {
        let mut texts = Vec::new();
        docs.iter().for_each(|d| strings(d, &mut texts));
        let lines: Vec<String> = texts.iter().flat_map(|t| lade_lines(t)).collect();
        let commands: std::collections::BTreeSet<&str> = lines
            .iter()
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        // Each recipe builds; the two CI systems also merge, make an SBOM and sign.
        let wanted: &[&str] = match file {
            "kubernetes-job.yaml" => &["build"],
            _ => &["build", "login", "manifest", "sbom", "sign"],
        };
        for w in wanted {
            assert!(
                commands.contains(w),
                "{file} has no `lade {w}` line: {lines:#?}"
            );
        }
        for line in lines {
            total += 1;
            if let Err(e) = parses(&line) {
                failures.push(format!("{file}: {e}"));
            }
        }
    }
    assert!(total >= 15, "only {total} lade command lines were found");
    assert!(
        failures.is_empty(),
        "{} of {total} lade command lines in examples/ci are refused by lade's parser:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Root (RUN steps, as the other build tests), docker-registry, skopeo, QEMU and an arm64 busybox.
fn matrix_peers(test: &str) -> bool {
    if !lade_tests::need_root(test) {
        return false;
    }
    for p in ["docker-registry", "skopeo", "python3", "timeout"] {
        if lade_tests::peer(p).is_none() {
            return false;
        }
    }
    let arm = Path::new(ARM64_BUSYBOX).is_file();
    let qemu = lade_tests::which("qemu-aarch64-static").is_some();
    if arm && qemu {
        return true;
    }
    let why = format!("{test}: needs {ARM64_BUSYBOX} and qemu-aarch64-static (scripts/setup.sh)");
    assert!(!lade_tests::peers_required(), "{why}");
    eprintln!("\n*** SKIPPED {why} ***\n");
    false
}

fn local_matrix() -> Command {
    let mut c = Command::new("timeout");
    c.args(["900", "bash"])
        .arg(ci_dir().join("local-matrix.sh"))
        .env("LADE", lade_bin())
        .env("LADE_CACHE_DIR", lade_tests::shared_cache_dir())
        .env("STEP_TIMEOUT", "300")
        .env_remove("LADE_ROOT")
        .env_remove("REGISTRY");
    c
}

#[test]
fn local_matrix_merges_an_amd64_and_an_emulated_arm64_image_into_one_index() {
    if !matrix_peers("local_matrix_merges_an_amd64_and_an_emulated_arm64_image_into_one_index") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let out = ok(local_matrix().env("REGISTRY", &reg.addr));
    let target = format!("{}/ci/app:latest", reg.addr);
    assert_eq!(out.trim(), target);
    // The oracle: skopeo reads one index with both platforms, each entry the image its runner pushed.
    let raw = ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]));
    let idx: Value = serde_json::from_str(&raw).unwrap();
    let entries = idx["manifests"].as_array().expect("an index");
    let mut platforms = Vec::new();
    for e in entries {
        let arch = e["platform"]["architecture"].as_str().unwrap();
        platforms.push(format!("{}/{arch}", e["platform"]["os"].as_str().unwrap()));
        let pushed: Value = serde_json::from_str(&ok(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/ci/app:{arch}", reg.addr),
        ])))
        .unwrap();
        assert_eq!(
            e["digest"], pushed["Digest"],
            "the {arch} entry is not the image its runner pushed: {idx}"
        );
    }
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
}

#[test]
fn local_matrix_alone_starts_its_own_registry_and_cleans_up() {
    if !matrix_peers("local_matrix_alone_starts_its_own_registry_and_cleans_up") {
        return;
    }
    let out = run(&mut local_matrix());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "local-matrix.sh failed:\n{stderr}");
    let scratch = stderr
        .lines()
        .find_map(|l| l.strip_prefix("local-matrix: scratch directory "))
        .expect("the script names its scratch directory");
    assert!(
        !Path::new(scratch).exists(),
        "{scratch} was left behind:\n{stderr}"
    );
    // The registry it started is gone: its port no longer accepts connections.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let addr = stdout.trim().split('/').next().unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the registry on {addr} is still running"
    );
    assert!(
        stderr.contains("arm64 built under QEMU: aarch64"),
        "{stderr}"
    );
}
