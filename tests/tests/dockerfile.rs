//! `lade dockerfile parse` end to end: the real binary, the embedded frontend plugin in its sandbox, and
//! Containerfiles written here. Expected results follow the Dockerfile reference.

use lade_tests::{fails, lade, ok};
use serde_json::{Value, json};
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) {
    if let Some(parent) = dir.join(name).parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(dir.join(name), text).unwrap();
}

/// Parse `text` as the context's Containerfile, with extra arguments; returns the JSON output.
fn parse_json(text: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Containerfile", text);
    let out = ok(lade()
        .args(["dockerfile", "parse", "--format", "json"])
        .args(extra)
        .arg(dir.path()));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// Parse `text` expecting failure; returns (stderr, JSON stdout).
fn parse_fails(text: &str, extra: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Containerfile", text);
    let mut cmd = lade();
    cmd.current_dir(dir.path())
        .args(["dockerfile", "parse", "--format", "json"])
        .args(extra);
    let stderr = fails(&mut cmd, 1);
    let out = lade_tests::run(
        lade()
            .current_dir(dir.path())
            .args(["dockerfile", "parse", "--format", "json"])
            .args(extra),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (stderr, serde_json::from_str(&stdout).unwrap_or(Value::Null))
}

fn steps(v: &Value, stage: usize) -> Vec<Value> {
    v["plan"]["stages"][stage]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["instruction"].clone())
        .collect()
}

fn kv(k: &str, v: &str) -> Value {
    json!({ "key": k, "value": v })
}

#[test]
fn backtick_escape_with_windows_paths() {
    let v = parse_json(
        "# escape=`\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\nCOPY testfile.txt c:\\\nWORKDIR c:\\app\\bin\nRUN dir c:\\ `\n    && echo done\n",
        &[],
    );
    assert_eq!(v["plan"]["directives"], json!([kv("escape", "`")]));
    let s = steps(&v, 0);
    assert_eq!(s[0]["Copy"]["sources"], json!(["testfile.txt"]));
    assert_eq!(s[0]["Copy"]["destination"], json!("c:\\"));
    assert_eq!(s[1], json!({ "Workdir": "c:\\app\\bin" }));
    assert_eq!(
        s[2]["Run"]["command"],
        json!({ "Shell": "dir c:\\     && echo done" })
    );
    // The continued RUN spans lines 5-6.
    assert_eq!(v["raw"][3]["location"]["line"], json!(5));
    assert_eq!(v["raw"][3]["location"]["end_line"], json!(6));
}

#[test]
fn continuation_followed_by_comment_lines() {
    let v = parse_json(
        "FROM alpine\nRUN apk add \\\n# the compiler\n    gcc \\\n\n    # and make\n    make\nUSER nobody\n",
        &[],
    );
    assert_eq!(
        steps(&v, 0)[0]["Run"]["command"],
        json!({ "Shell": "apk add     gcc     make" })
    );
    assert_eq!(
        v["plan"]["stages"][0]["steps"][1]["location"]["line"],
        json!(8)
    );
}

#[test]
fn env_with_quotes_and_escaped_spaces() {
    let v = parse_json(
        "FROM alpine\nENV MY_NAME=\"John Doe\" MY_DOG=Rex\\ The\\ Dog \\\n    MY_CAT=fluffy\nENV SINGLE='$MY_NAME' DOUBLE=\"$MY_NAME\"\n",
        &[],
    );
    let s = steps(&v, 0);
    assert_eq!(
        s[0],
        json!({ "Env": [kv("MY_NAME", "John Doe"), kv("MY_DOG", "Rex The Dog"), kv("MY_CAT", "fluffy")] })
    );
    assert_eq!(
        s[1],
        json!({ "Env": [kv("SINGLE", "$MY_NAME"), kv("DOUBLE", "John Doe")] })
    );
    // The raw form keeps the pairs as written.
    assert_eq!(
        v["raw"][1]["args"],
        json!([
            "MY_NAME=\"John Doe\"",
            "MY_DOG=Rex\\ The\\ Dog",
            "MY_CAT=fluffy"
        ])
    );
}

#[test]
fn heredoc_with_tab_stripping_and_quoted_delimiter() {
    let v = parse_json(
        "FROM alpine\nARG NAME=world\nCOPY <<-'EOT' /greeting\n\thello $NAME\n\t\tindented\n\tEOT\nCOPY <<EOT /expanded\nhello $NAME\nEOT\n",
        &[],
    );
    let raw = &v["raw"][2]["heredocs"][0];
    assert_eq!(raw["name"], json!("EOT"));
    assert_eq!(raw["content"], json!("hello $NAME\nindented\n"));
    assert_eq!(raw["expand"], json!(false));
    assert_eq!(raw["strip_tabs"], json!(true));
    let s = steps(&v, 0);
    assert_eq!(
        s[1]["Copy"]["inline_sources"],
        json!([{ "path": "EOT", "content": "hello $NAME\nindented\n", "mode": 0o644 }])
    );
    assert_eq!(s[1]["Copy"]["destination"], json!("/greeting"));
    assert_eq!(
        s[2]["Copy"]["inline_sources"][0]["content"],
        json!("hello world\n")
    );
}

#[test]
fn required_variable_fails_naming_it() {
    let (stderr, out) = parse_fails(
        "FROM alpine\nWORKDIR ${APP_DIR:?set APP_DIR with --build-arg}\n",
        &[],
    );
    assert!(stderr.contains("Containerfile:2:1:"), "{stderr}");
    assert!(
        stderr.contains("APP_DIR: set APP_DIR with --build-arg"),
        "{stderr}"
    );
    assert!(
        stderr.contains("WORKDIR ${APP_DIR:?"),
        "the snippet is shown: {stderr}"
    );
    assert_eq!(
        out["error"]["InvalidInput"][0]["location"]["line"],
        json!(2)
    );
    // With the variable given, the same file parses.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Containerfile",
        "FROM alpine\nARG APP_DIR\nWORKDIR ${APP_DIR:?set it}\n",
    );
    let out = ok(lade()
        .args([
            "dockerfile",
            "parse",
            "--format",
            "json",
            "--build-arg",
            "APP_DIR=/srv",
        ])
        .arg(dir.path()));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(steps(&v, 0)[1], json!({ "Workdir": "/srv" }));
}

#[test]
fn several_errors_with_positions_snippets_and_hints() {
    let (stderr, out) = parse_fails(
        "FORM alpine\nFROM alpine\n  RUNN make\nCOPY --chwon=app src /dst\n",
        &[],
    );
    assert!(
        stderr.contains(
            "Containerfile:1:1: error: unknown instruction \"FORM\" (did you mean FROM?)"
        ),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("Containerfile:3:3: error: unknown instruction \"RUNN\" (did you mean RUN?)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Containerfile:4:1: error: unknown flag --chwon for COPY"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: did you mean --chown?"), "{stderr}");
    assert!(stderr.contains("    FORM alpine"), "{stderr}");
    assert_eq!(out["error"]["InvalidInput"].as_array().unwrap().len(), 3);
}

#[test]
fn empty_or_comment_only_file_is_an_error() {
    for text in ["", "# only a comment\n\n# and another\n"] {
        let (stderr, _) = parse_fails(text, &[]);
        assert!(stderr.contains("file with no instructions"), "{stderr}");
    }
}

#[test]
fn build_args_platform_and_target() {
    let text = "ARG BASE=alpine:3.19\nFROM --platform=$BUILDPLATFORM ${BASE} AS build\nARG TARGETARCH\nRUN echo $TARGETARCH\nENV ARCH=$TARGETARCH\nFROM build AS test\nFROM scratch AS final\nCOPY --from=build /out /\n";
    let v = parse_json(
        text,
        &[
            "--platform",
            "linux/arm64",
            "--build-arg",
            "BASE=debian:12",
            "--build-arg",
            "NOPE=1",
        ],
    );
    let p = &v["plan"];
    assert_eq!(p["stages"][0]["base"], json!({ "Image": "debian:12" }));
    assert_eq!(steps(&v, 0)[2], json!({ "Env": [kv("ARCH", "arm64")] }));
    assert_eq!(
        p["stages"][0]["steps"][1]["build_args"],
        json!([kv("TARGETARCH", "arm64")])
    );
    assert_eq!(p["global_args"], json!([kv("BASE", "debian:12")]));
    assert_eq!(p["unused_build_args"], json!(["NOPE"]));
    assert_eq!(p["target"], json!(2));
    assert_eq!(p["required"], json!([0, 2]));
    assert_eq!(p["stages"][2]["depends_on"], json!([0]));
    let v = parse_json(text, &["--target", "test"]);
    assert_eq!(v["plan"]["target"], json!(1));
    assert_eq!(v["plan"]["required"], json!([0, 1]));
    assert_eq!(v["plan"]["stages"][1]["base"], json!({ "Stage": 0 }));
    let (stderr, _) = parse_fails(text, &["--target", "tset"]);
    assert!(stderr.contains("did you mean test?"), "{stderr}");
}

#[test]
fn run_mounts_and_heredoc_script() {
    let v = parse_json(
        "FROM golang AS deps\nFROM golang\nRUN --mount=type=cache,target=/root/.cache/go-build,sharing=locked --mount=type=bind,from=deps,source=/go,target=/deps --mount=type=secret,id=npm,env=NPM_TOKEN --network=none go build\nRUN <<EOF\n#!/bin/sh\necho script\nEOF\n",
        &[],
    );
    let s = steps(&v, 1);
    let run = &s[0]["Run"];
    assert_eq!(run["network"], json!("None"));
    assert_eq!(run["mounts"][0]["kind"], json!("Cache"));
    assert_eq!(run["mounts"][0]["sharing"], json!("Locked"));
    assert_eq!(run["mounts"][1]["from"], json!({ "Stage": 0 }));
    assert_eq!(run["mounts"][2]["env"], json!("NPM_TOKEN"));
    assert_eq!(v["plan"]["stages"][1]["depends_on"], json!([0]));
    let script = &s[1]["Run"];
    assert_eq!(script["command"], json!({ "Exec": ["/dev/pipes/EOF"] }));
    assert_eq!(
        script["files"][0]["content"],
        json!("#!/bin/sh\necho script\n")
    );
    assert_eq!(script["files"][0]["mode"], json!(0o755));
}

#[test]
fn config_instructions() {
    let v = parse_json(
        "FROM alpine\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\nENTRYPOINT /docker-entrypoint.sh\nSHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\nLABEL org.opencontainers.image.title=\"My App\" version=1\nEXPOSE 80 443/tcp 53/udp\nVOLUME [\"/data\"]\nUSER 1000:1000\nSTOPSIGNAL SIGQUIT\nHEALTHCHECK --interval=30s --retries=3 CMD wget -q -O- http://localhost/ || exit 1\nONBUILD COPY . /app\n",
        &[],
    );
    let s = steps(&v, 0);
    assert_eq!(
        s[0],
        json!({ "Cmd": { "Exec": ["nginx", "-g", "daemon off;"] } })
    );
    assert_eq!(
        s[1],
        json!({ "Entrypoint": { "Shell": "/docker-entrypoint.sh" } })
    );
    assert_eq!(
        s[2],
        json!({ "Shell": ["/bin/ash", "-eo", "pipefail", "-c"] })
    );
    assert_eq!(
        s[3],
        json!({ "Label": [kv("org.opencontainers.image.title", "My App"), kv("version", "1")] })
    );
    assert_eq!(s[4], json!({ "Expose": ["80/tcp", "443/tcp", "53/udp"] }));
    assert_eq!(s[5], json!({ "Volume": ["/data"] }));
    assert_eq!(s[6], json!({ "User": "1000:1000" }));
    assert_eq!(s[7], json!({ "Stopsignal": "SIGQUIT" }));
    assert_eq!(
        s[8]["Healthcheck"]["test"],
        json!(["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"])
    );
    assert_eq!(s[8]["Healthcheck"]["interval"], json!(30_000_000_000u64));
    assert_eq!(s[8]["Healthcheck"]["retries"], json!(3));
    assert_eq!(s[9], json!({ "Onbuild": "COPY . /app" }));
    assert_eq!(v["raw"][1]["exec_form"], json!(true));
    assert_eq!(v["raw"][2]["exec_form"], json!(false));
}

#[test]
fn text_output_and_file_choice() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM alpine AS base\nENV A=1\n");
    write(
        dir.path(),
        "docker/Containerfile.prod",
        "FROM scratch\nCOPY a b\n",
    );
    // Without -f, Dockerfile is found when there is no Containerfile.
    let out = ok(lade().args(["dockerfile", "parse"]).arg(dir.path()));
    assert!(out.contains("raw instructions:"), "{out}");
    assert!(out.contains("stage 0 (base): from image alpine"), "{out}");
    assert!(out.contains("ENV A=\"1\""), "{out}");
    // -f relative to the current directory, named as given in messages.
    let out = ok(lade().current_dir(dir.path()).args([
        "dockerfile",
        "parse",
        "-f",
        "docker/Containerfile.prod",
        ".",
    ]));
    assert!(out.contains("COPY [\"a\"] -> \"b\""), "{out}");
    let stderr = fails(
        lade()
            .current_dir(dir.path())
            .args(["dockerfile", "parse", "-f", "missing"]),
        1,
    );
    assert!(
        stderr.contains("no such Containerfile: missing"),
        "{stderr}"
    );
}

/// The image config a plan implies for its target, folded the way a builder applies the steps (base stages
/// first). PATH, which builders add by default, is left to the build engine.
fn config_from_plan(v: &Value) -> Value {
    let plan = &v["plan"];
    let mut chain = Vec::new();
    let mut i = plan["target"].as_u64().unwrap() as usize;
    loop {
        chain.push(i);
        match plan["stages"][i]["base"].get("Stage") {
            Some(b) => i = b.as_u64().unwrap() as usize,
            None => break,
        }
    }
    let mut c = serde_json::Map::new();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut labels = serde_json::Map::new();
    let mut ports = serde_json::Map::new();
    let mut volumes = serde_json::Map::new();
    let mut onbuild = Vec::new();
    let shell_form = |cmd: &Value, shell: &Value| -> Value {
        match (cmd.get("Shell"), cmd.get("Exec")) {
            (Some(s), _) => {
                let mut argv = shell
                    .as_array()
                    .cloned()
                    .unwrap_or_else(|| vec![json!("/bin/sh"), json!("-c")]);
                argv.push(s.clone());
                Value::Array(argv)
            }
            (_, Some(e)) => e.clone(),
            _ => Value::Null,
        }
    };
    let mut shell = Value::Null;
    for &s in chain.iter().rev() {
        for step in plan["stages"][s]["steps"].as_array().unwrap() {
            let ins = &step["instruction"];
            let (kind, body) = ins.as_object().unwrap().iter().next().unwrap();
            match kind.as_str() {
                "Env" => {
                    for p in body.as_array().unwrap() {
                        let (k, val) = (
                            p["key"].as_str().unwrap().to_string(),
                            p["value"].as_str().unwrap().to_string(),
                        );
                        match env.iter_mut().find(|(ek, _)| *ek == k) {
                            Some(e) => e.1 = val,
                            None => env.push((k, val)),
                        }
                    }
                }
                "Label" => {
                    for p in body.as_array().unwrap() {
                        labels.insert(p["key"].as_str().unwrap().into(), p["value"].clone());
                    }
                }
                "Cmd" => {
                    c.insert("Cmd".into(), shell_form(body, &shell));
                }
                "Entrypoint" => {
                    c.insert("Entrypoint".into(), shell_form(body, &shell));
                }
                "Shell" => {
                    shell = body.clone();
                    c.insert("Shell".into(), body.clone());
                }
                "Workdir" => {
                    c.insert("WorkingDir".into(), body.clone());
                }
                "User" => {
                    c.insert("User".into(), body.clone());
                }
                "Stopsignal" => {
                    c.insert("StopSignal".into(), body.clone());
                }
                "Expose" => body.as_array().unwrap().iter().for_each(|p| {
                    ports.insert(p.as_str().unwrap().into(), json!({}));
                }),
                "Volume" => body.as_array().unwrap().iter().for_each(|p| {
                    volumes.insert(p.as_str().unwrap().into(), json!({}));
                }),
                "Onbuild" => onbuild.push(body.clone()),
                "Healthcheck" => {
                    let mut h = serde_json::Map::new();
                    h.insert("Test".into(), body["test"].clone());
                    for (from, to) in [
                        ("interval", "Interval"),
                        ("timeout", "Timeout"),
                        ("start_period", "StartPeriod"),
                        ("retries", "Retries"),
                    ] {
                        if !body[from].is_null() {
                            h.insert(to.into(), body[from].clone());
                        }
                    }
                    c.insert("Healthcheck".into(), Value::Object(h));
                }
                _ => {}
            }
        }
    }
    c.insert(
        "Env".into(),
        json!(
            env.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        ),
    );
    c.insert("Labels".into(), Value::Object(labels));
    c.insert("ExposedPorts".into(), Value::Object(ports));
    c.insert("Volumes".into(), Value::Object(volumes));
    c.insert("OnBuild".into(), Value::Array(onbuild));
    Value::Object(c)
}

/// buildah builds the same file (FROM scratch, nothing to run) and its image config must agree with the plan
/// on every field the frontend decides.
#[test]
fn plan_agrees_with_buildah_on_the_config() {
    lade_tests::require_peers!("buildah");
    let text = "FROM scratch AS base\nARG V=1.2.3\nENV MY_NAME=\"John Doe\" MY_DOG=Rex\\ The\\ Dog \\\n    MY_CAT=fluffy\nENV abc=hello\nENV abc=bye def=$abc\nENV q='$abc' dq=\"$abc\" esc=\\$abc\nENV OLD legacy value here\nLABEL \"b c\"=\"d e\" v=$V\nFROM base\nARG V=2\nENV F=${V:-unset} G=${abc}\nEXPOSE 80 53/udp\nWORKDIR /w$V\nUSER u$V\nSTOPSIGNAL SIGQUIT\nVOLUME /v$V [\"/data\"]\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\nENTRYPOINT /docker-entrypoint.sh --x\nSHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\nHEALTHCHECK --interval=30s --timeout=5s --start-period=1m --retries=3 CMD wget -q -O- http://localhost/ || exit 1\nONBUILD COPY . /app\nONBUILD   RUN  echo  hi\n";
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Containerfile", text);
    let storage = tempfile::tempdir().unwrap();
    let buildah = |args: &[&str]| {
        let mut c = std::process::Command::new(lade_tests::peer("buildah").unwrap());
        c.arg("--root")
            .arg(storage.path().join("root"))
            .arg("--runroot")
            .arg(storage.path().join("run"));
        c.args(["--storage-driver", "vfs"]).args(args);
        ok(&mut c)
    };
    buildah(&[
        "build",
        "--format",
        "docker",
        "-q",
        "-t",
        "lade-h2-compare",
        dir.path().to_str().unwrap(),
    ]);
    let inspect: Value = serde_json::from_str(&buildah(&["inspect", "lade-h2-compare"])).unwrap();
    let theirs = &inspect["Docker"]["config"];
    let v = parse_json(text, &[]);
    let ours = config_from_plan(&v);
    let their_env: Vec<Value> = theirs["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e.as_str().unwrap().starts_with("PATH="))
        .cloned()
        .collect();
    assert_eq!(ours["Env"], json!(their_env));
    let mut their_labels = theirs["Labels"].as_object().unwrap().clone();
    their_labels.remove("io.buildah.version");
    assert_eq!(ours["Labels"], Value::Object(their_labels));
    for field in [
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "Volumes",
        "Healthcheck",
        "StopSignal",
        "Shell",
        "OnBuild",
    ] {
        assert_eq!(
            ours[field], theirs[field],
            "{field} differs: lade {} vs buildah {}",
            ours[field], theirs[field]
        );
    }
}

/// `ENV C trailing\\backslash\\` ends its line: BuildKit continues a line only when its last escape follows
/// something other than the escape (docker/for-win#5254), and an odd run ends it too (BuildKit's regular
/// expression). buildah 1.28 still joins such a line with the next, so the comparison with buildah covers the
/// cases where both agree: a plain continuation and escaped escapes inside a line.
#[test]
fn escaped_escape_at_line_end_is_literal() {
    let text =
        "FROM scratch\nENV C trailing\\\\backslash\\\\\nENV D next\nENV E a\\\\\\\nENV F two\n";
    let v = parse_json(text, &[]);
    let env: Vec<Value> = steps(&v, 0)
        .into_iter()
        .flat_map(|s| s["Env"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        env,
        [
            kv("C", "trailing\\backslash\\"),
            kv("D", "next"),
            kv("E", "a\\"),
            kv("F", "two")
        ]
    );
    lade_tests::require_peers!("buildah");
    let agreed =
        "FROM scratch\nENV G=x\\\ny\nENV H=a\\\\b \\\n  I=\"q\\\\\\\"\" \\\n  J=c\\\\\\\\d\n";
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Containerfile", agreed);
    let storage = tempfile::tempdir().unwrap();
    let buildah = |args: &[&str]| {
        let mut c = std::process::Command::new(lade_tests::peer("buildah").unwrap());
        c.arg("--root")
            .arg(storage.path().join("root"))
            .arg("--runroot")
            .arg(storage.path().join("run"));
        c.args(["--storage-driver", "vfs"]).args(args);
        ok(&mut c)
    };
    buildah(&[
        "build",
        "-q",
        "-t",
        "lade-escape-compare",
        dir.path().to_str().unwrap(),
    ]);
    let inspect: Value =
        serde_json::from_str(&buildah(&["inspect", "lade-escape-compare"])).unwrap();
    let theirs: Vec<Value> = inspect["OCIv1"]["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e.as_str().unwrap().starts_with("PATH="))
        .cloned()
        .collect();
    let ours = config_from_plan(&parse_json(agreed, &[]));
    assert_eq!(ours["Env"], json!(theirs));
    assert_eq!(
        theirs,
        [
            json!("G=xy"),
            json!("H=a\\b"),
            json!("I=q\\\""),
            json!("J=c\\\\d")
        ],
        "buildah reads the shared cases as expected"
    );
}

/// An unterminated quote in ENV, ADD or COPY gets a hint about quotes, not about defining variables.
#[test]
fn quote_errors_hint_at_the_quote() {
    for text in [
        "FROM scratch\nENV A \"open\n",
        "FROM scratch\nENV A='open\n",
        "FROM scratch\nADD \"a b /x\n",
        "FROM scratch\nCOPY 'a /x\n",
    ] {
        let (stderr, _) = parse_fails(text, &[]);
        assert!(
            stderr.contains("Containerfile:2")
                && stderr.contains("matching")
                && stderr.contains("close the quote"),
            "{text:?}: {stderr}"
        );
        assert!(
            !stderr.contains("define the variable"),
            "{text:?}: {stderr}"
        );
    }
}
