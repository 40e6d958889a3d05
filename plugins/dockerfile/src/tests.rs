//! End-to-end tests of the native frontend: source text in, plan (or diagnostics) out. Expected results
//! follow the Dockerfile reference.

use crate::model::*;

fn req(src: &str) -> Request {
    Request {
        source: src.to_string(),
        file_name: "Containerfile".into(),
        build_args: Vec::new(),
        target_platform: Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        },
        build_platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        target: None,
    }
}

fn ok(r: Request) -> Output {
    match crate::parse(&r, &NoImages) {
        Ok(o) => o,
        Err(e) => panic!("unexpected errors: {e:#?}"),
    }
}

fn plan(src: &str) -> Plan {
    ok(req(src)).plan
}

fn errors(src: &str) -> Vec<Diagnostic> {
    crate::parse(&req(src), &NoImages).expect_err("expected errors")
}

fn steps(p: &Plan, stage: usize) -> Vec<Instruction> {
    p.stages[stage]
        .steps
        .iter()
        .map(|s| s.instruction.clone())
        .collect()
}

fn env_of(p: &Plan, stage: usize) -> Vec<(String, String)> {
    steps(p, stage)
        .into_iter()
        .filter_map(|i| {
            if let Instruction::Env(v) = i {
                Some(v)
            } else {
                None
            }
        })
        .flatten()
        .map(|k| (k.key, k.value))
        .collect()
}

#[test]
fn empty_and_comment_only_files_are_errors() {
    for src in [
        "",
        "\n\n",
        "# just a comment\n# another\n",
        "# syntax=docker/dockerfile:1\n",
    ] {
        let e = errors(src);
        assert_eq!(e[0].message, "file with no instructions", "{src:?}");
    }
}

#[test]
fn unknown_instruction_with_suggestion_and_several_errors() {
    let e = errors("FORM alpine\nFROM alpine\nRUNN echo\nCOPY --chwon=1 a b\n");
    assert_eq!(
        e.len(),
        3,
        "{:#?}",
        e.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
    assert_eq!(
        e[0].message,
        "unknown instruction \"FORM\" (did you mean FROM?)"
    );
    let l = e[0].location.as_ref().unwrap();
    assert_eq!((l.file.as_str(), l.line, l.column), ("Containerfile", 1, 1));
    assert_eq!(e[0].snippet.as_deref(), Some("FORM alpine"));
    assert_eq!(e[0].hint.as_deref(), Some("did you mean FROM?"));
    assert!(e[1].message.contains("RUNN") && e[1].message.contains("RUN"));
    assert_eq!(e[1].location.as_ref().unwrap().line, 3);
    assert!(
        e[2].message.contains("--chwon") && e[2].hint.as_deref() == Some("did you mean --chown?")
    );
}

#[test]
fn instruction_before_from() {
    let e = errors("RUN echo\nFROM x\n");
    assert!(e[0].message.contains("no build stage"));
}

#[test]
fn from_forms_and_platform() {
    let p = plan("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\nFROM scratch\nFROM build\n");
    assert_eq!(p.stages[0].name.as_deref(), Some("build"));
    assert_eq!(p.stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(p.stages[0].base, StageBase::Image("golang:1.22".into()));
    assert_eq!(p.stages[1].base, StageBase::Scratch);
    assert_eq!(p.stages[2].base, StageBase::Stage(0));
    assert_eq!(p.stages[2].depends_on, [0]);
    assert_eq!(p.target, 2);
    assert_eq!(p.required, [0, 2]);
    assert!(errors("FROM a AS b c\n")[0].message.contains("FROM takes"));
    assert!(
        errors("FROM a AS 1x\n")[0]
            .message
            .contains("invalid stage name")
    );
    assert!(
        errors("FROM a AS x\nFROM b AS X\n")[0]
            .message
            .contains("duplicate stage name")
    );
    assert!(
        errors("FROM --platform=bogus a\n")[0]
            .message
            .contains("not a platform")
    );
}

#[test]
fn global_args_in_from_and_redeclaration() {
    let src = "ARG VERSION=3.19\nARG REG\nFROM ${REG:-docker.io}/alpine:${VERSION}\nRUN echo\nARG VERSION\nENV V=$VERSION\nFROM alpine\nENV W=\"$VERSION\"\n";
    let p = plan(src);
    assert_eq!(
        p.stages[0].base,
        StageBase::Image("docker.io/alpine:3.19".into())
    );
    assert_eq!(p.global_args, [kv("VERSION", "3.19")]);
    // Not in scope before it is redeclared: RUN's build args do not list it.
    assert!(p.stages[0].steps[0].build_args.is_empty());
    assert_eq!(env_of(&p, 0), [("V".into(), "3.19".into())]);
    // Global ARGs are not visible inside a stage that does not redeclare them.
    assert_eq!(env_of(&p, 1), [("W".into(), "".into())]);
    let mut r = req(src);
    r.build_args = vec![
        kv("VERSION", "3.20"),
        kv("UNUSED", "1"),
        kv("HTTP_PROXY", "http://p"),
    ];
    let p = ok(r).plan;
    assert_eq!(
        p.stages[0].base,
        StageBase::Image("docker.io/alpine:3.20".into())
    );
    assert_eq!(p.unused_build_args, ["UNUSED"]);
    assert!(
        p.stages[0].steps[0]
            .build_args
            .contains(&kv("HTTP_PROXY", "http://p")),
        "proxy args reach RUN"
    );
}

#[test]
fn predefined_platform_args() {
    let p = plan(
        "FROM --platform=$TARGETPLATFORM alpine\nARG TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM\nENV T=$TARGETOS/$TARGETARCH/$TARGETVARIANT B=$BUILDPLATFORM\n",
    );
    assert_eq!(p.stages[0].platform.as_deref(), Some("linux/arm64/v8"));
    assert_eq!(
        env_of(&p, 0),
        [
            ("T".into(), "linux/arm64/v8".into()),
            ("B".into(), "linux/amd64".into())
        ]
    );
    // Global ARG defaults may use them.
    let p = plan("ARG IMG=img-$TARGETARCH\nFROM $IMG\n");
    assert_eq!(p.stages[0].base, StageBase::Image("img-arm64".into()));
    // Without ARG inside the stage they expand to nothing.
    let p = plan("FROM alpine\nENV T=x$TARGETARCH\n");
    assert_eq!(env_of(&p, 0), [("T".into(), "x".into())]);
}

#[test]
fn arg_defaults_and_build_args() {
    let mut r = req("FROM a\nARG A=1 B C=${A}2\nARG D\nRUN echo\n");
    r.build_args = vec![kv("B", "bee")];
    let p = ok(r).plan;
    assert_eq!(
        steps(&p, 0)[0],
        Instruction::Arg(vec![
            ArgDecl {
                name: "A".into(),
                value: Some("1".into())
            },
            ArgDecl {
                name: "B".into(),
                value: Some("bee".into())
            },
            ArgDecl {
                name: "C".into(),
                value: Some("12".into())
            },
        ])
    );
    assert_eq!(
        p.stages[0].steps[2].build_args,
        [kv("A", "1"), kv("B", "bee"), kv("C", "12")]
    );
}

#[test]
fn env_forms_quotes_and_escaped_spaces() {
    let p = plan(
        "FROM a\nENV MY_NAME=\"John Doe\" MY_DOG=Rex\\ The\\ Dog MY_CAT=fluffy\nENV OLD legacy value here\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nENV q='$abc' dq=\"$abc\" esc=\\$abc\n",
    );
    assert_eq!(
        env_of(&p, 0),
        [
            ("MY_NAME".into(), "John Doe".into()),
            ("MY_DOG".into(), "Rex The Dog".into()),
            ("MY_CAT".into(), "fluffy".into()),
            ("OLD".into(), "legacy value here".into()),
            ("abc".into(), "hello".into()),
            ("abc".into(), "bye".into()),
            ("def".into(), "hello".into()),
            ("ghi".into(), "bye".into()),
            ("q".into(), "$abc".into()),
            ("dq".into(), "bye".into()),
            ("esc".into(), "$abc".into()),
        ]
    );
    assert!(p.warnings.iter().any(|w| w.message.contains("legacy")));
}

#[test]
fn env_wins_over_arg() {
    let mut r = req("FROM a\nARG X=arg\nENV X=env\nWORKDIR /$X\n");
    r.build_args = vec![kv("X", "cli")];
    let p = ok(r).plan;
    assert_eq!(steps(&p, 0)[2], Instruction::Workdir("/env".into()));
}

#[test]
fn expansion_only_where_the_reference_says() {
    let p = plan(
        "FROM a\nARG V=1\nRUN echo $V\nCMD echo $V\nENTRYPOINT [\"echo\", \"$V\"]\nHEALTHCHECK CMD echo $V\nUSER u$V\nLABEL l=$V\nEXPOSE 80$V\nSTOPSIGNAL $V\nVOLUME /v$V\nWORKDIR /w$V\nONBUILD RUN echo $V\nMAINTAINER m$V\n",
    );
    let s = steps(&p, 0);
    assert_eq!(
        s[1],
        Instruction::Run(RunStep {
            command: Command::Shell("echo $V".into()),
            files: vec![],
            mounts: vec![],
            network: NetworkMode::Default,
            security: SecurityMode::Sandbox
        })
    );
    assert_eq!(s[2], Instruction::Cmd(Command::Shell("echo $V".into())));
    assert_eq!(
        s[3],
        Instruction::Entrypoint(Command::Exec(vec!["echo".into(), "$V".into()]))
    );
    assert!(matches!(&s[4], Instruction::Healthcheck(h) if h.test == ["CMD-SHELL", "echo $V"]));
    assert_eq!(s[5], Instruction::User("u1".into()));
    assert_eq!(s[6], Instruction::Label(vec![kv("l", "1")]));
    assert_eq!(s[7], Instruction::Expose(vec!["801/tcp".into()]));
    assert_eq!(s[8], Instruction::Stopsignal("1".into()));
    assert_eq!(s[9], Instruction::Volume(vec!["/v1".into()]));
    assert_eq!(s[10], Instruction::Workdir("/w1".into()));
    assert_eq!(s[11], Instruction::Onbuild("RUN echo $V".into()));
    assert_eq!(s[12], Instruction::Maintainer("m$V".into()));
}

#[test]
fn required_variable_error_names_it() {
    let e = errors("FROM a\nENV X=\"${MISSING:?set MISSING with --build-arg}\"\n");
    assert!(
        e[0].message
            .contains("MISSING: set MISSING with --build-arg"),
        "{}",
        e[0].message
    );
    assert_eq!(e[0].location.as_ref().unwrap().line, 2);
    let e = errors("FROM a\nWORKDIR ${DIR:?}\n");
    assert!(e[0].message.contains("DIR"), "{}", e[0].message);
    let e = errors("ARG IMG\nFROM ${IMG:?}\n");
    assert!(e[0].message.contains("IMG"));
}

#[test]
fn backtick_escape_with_windows_paths() {
    let p = plan(
        "# escape=`\nFROM mcr.microsoft.com/windows/servercore\nARG D=c:\\data\nWORKDIR c:\\Users\\$D\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n    && echo done\nENV P=c:\\a` b\n",
    );
    let s = steps(&p, 0);
    assert_eq!(s[1], Instruction::Workdir("c:\\Users\\c:\\data".into()));
    assert!(
        matches!(&s[2], Instruction::Copy(c) if c.sources == ["testfile.txt"] && c.destination == "c:\\")
    );
    assert!(
        matches!(&s[3], Instruction::Run(r) if r.command == Command::Shell("dir c:\\     && echo done".into()))
    );
    assert_eq!(s[4], Instruction::Env(vec![kv("P", "c:\\a b")]));
    assert_eq!(p.directives, [kv("escape", "`")]);
}

#[test]
fn continuation_followed_by_comment_lines() {
    let p = plan(
        "FROM a\nRUN apt-get update && \\\n# install the tools\n    # more commentary\n\n    apt-get install -y curl\nUSER nobody\n",
    );
    let s = &p.stages[0].steps;
    assert!(
        matches!(&s[0].instruction, Instruction::Run(r) if r.command == Command::Shell("apt-get update &&     apt-get install -y curl".into()))
    );
    assert_eq!(s[1].location.line, 7);
}

#[test]
fn run_flags_and_mounts() {
    let p = plan(
        "FROM a AS deps\nFROM b\nARG CACHE=/root/.cache\nRUN --mount=type=cache,target=$CACHE,sharing=private --mount=type=bind,from=deps,source=/out,target=/in --mount=type=secret,id=tok,env=TOKEN --mount=type=ssh,required --mount=type=tmpfs,target=/t,size=1m --network=none --security=insecure make\n",
    );
    let Instruction::Run(r) = &steps(&p, 1)[1] else {
        panic!()
    };
    assert_eq!(r.network, NetworkMode::None);
    assert_eq!(r.security, SecurityMode::Insecure);
    assert_eq!(r.mounts.len(), 5);
    assert_eq!(r.mounts[0].target.as_deref(), Some("/root/.cache"));
    assert_eq!(r.mounts[0].sharing, CacheSharing::Private);
    assert_eq!(r.mounts[1].from, Some(SourceRef::Stage(0)));
    assert!(!r.mounts[1].read_write);
    assert_eq!(r.mounts[2].env.as_deref(), Some("TOKEN"));
    assert!(r.mounts[3].required);
    assert_eq!(r.mounts[4].size, Some(1 << 20));
    assert_eq!(p.stages[1].depends_on, [0]);
    assert_eq!(p.required, [0, 1]);
    assert!(
        errors("FROM a\nRUN --network=bridge x\n")[0]
            .message
            .contains("--network=bridge")
    );
    assert!(
        errors("FROM a\nRUN --mount=type=cache x\n")[0]
            .message
            .contains("target")
    );
    assert!(
        errors("FROM a\nRUN --foo x\n")[0]
            .message
            .contains("unknown flag --foo")
    );
}

#[test]
fn run_heredocs_fold_like_buildkit() {
    let p = plan(
        "FROM a\nRUN <<EOF\necho one\necho two\nEOF\nRUN <<EOF\n#!/usr/bin/env python3\nprint('hi')\nEOF\nRUN python3 <<EOF > /out\nprint(1)\nEOF\nRUN cat <<A <<-'B'\na\nA\n\tb $x\n\tB\n",
    );
    let s = steps(&p, 0);
    assert!(
        matches!(&s[0], Instruction::Run(r) if r.command == Command::Shell("echo one\necho two\n".into()) && r.files.is_empty())
    );
    let Instruction::Run(r) = &s[1] else { panic!() };
    assert_eq!(r.command, Command::Exec(vec!["/dev/pipes/EOF".into()]));
    assert_eq!(
        r.files,
        [InlineFile {
            path: "/dev/pipes/EOF".into(),
            content: "#!/usr/bin/env python3\nprint('hi')\n".into(),
            mode: 0o755
        }]
    );
    assert!(
        matches!(&s[2], Instruction::Run(r) if r.command == Command::Shell("python3 <<EOF > /out\nprint(1)\nEOF".into()))
    );
    assert!(
        matches!(&s[3], Instruction::Run(r) if r.command == Command::Shell("cat <<A <<-'B'\na\nA\nb $x\nB".into()))
    );
}

#[test]
fn copy_and_add_flags_json_and_heredocs() {
    let p = plan(
        "FROM a AS build\nFROM b\nARG U=app\nCOPY --from=build --chown=$U:$U --chmod=0755 --link --parents --exclude=*.md /src/ /dst/\nCOPY [\"a b\", \"/c d/\"]\nCOPY --from=0 x y\nCOPY --from=alpine:3 /etc/os-release /\nADD --checksum=sha256:abcd --keep-git-dir=true https://x/y.tar /z\nCOPY <<-\"CONF\" <<EOF --chmod=600 /etc/\n\tkey=$U\n\tCONF\nuser=$U\nEOF\n",
    );
    let s = steps(&p, 1);
    let Instruction::Copy(c) = &s[1] else {
        panic!()
    };
    assert_eq!(c.from, Some(SourceRef::Stage(0)));
    assert_eq!(c.chown.as_deref(), Some("app:app"));
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md"]);
    assert_eq!(
        (c.sources.as_slice(), c.destination.as_str()),
        (["/src/".to_string()].as_slice(), "/dst/")
    );
    assert!(
        matches!(&s[2], Instruction::Copy(c) if c.sources == ["a b"] && c.destination == "/c d/")
    );
    assert!(matches!(&s[3], Instruction::Copy(c) if c.from == Some(SourceRef::Stage(0))));
    assert!(
        matches!(&s[4], Instruction::Copy(c) if c.from == Some(SourceRef::Image("alpine:3".into())))
    );
    let Instruction::Add(a) = &s[5] else { panic!() };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abcd"));
    assert!(a.keep_git_dir);
    // Heredocs after the flags? Here flags come after the heredoc words, so they are arguments: the
    // reference requires flags first.
    let p = plan(
        "FROM b\nARG U=app\nCOPY --chmod=600 <<-\"CONF\" <<EOF /etc/\n\tkey=$U\n\tCONF\nuser=$U\nEOF\n",
    );
    let Instruction::Copy(c) = &steps(&p, 0)[1] else {
        panic!()
    };
    assert!(c.sources.is_empty());
    assert_eq!(
        c.inline_sources,
        [
            InlineFile {
                path: "CONF".into(),
                content: "key=$U\n".into(),
                mode: 0o600
            },
            InlineFile {
                path: "EOF".into(),
                content: "user=app\n".into(),
                mode: 0o600
            },
        ]
    );
    assert!(
        errors("FROM a\nCOPY onlyone\n")[0]
            .message
            .contains("at least two")
    );
    assert!(
        errors("FROM a\nADD --from=x a b\n")[0]
            .message
            .contains("unknown flag --from")
    );
    assert!(
        errors("FROM a\nCOPY --chmod=9z a b\n")[0]
            .message
            .contains("--chmod")
    );
}

#[test]
fn stage_references_unknown_forward_and_cycles() {
    assert!(
        errors("FROM a\nCOPY --from=1 x y\nFROM b\n")[0]
            .message
            .contains("does not come before")
    );
    // An unknown name is an image reference, as in BuildKit.
    let p = plan("FROM a\nCOPY --from=nosuchstage x y\n");
    assert!(
        matches!(&steps(&p, 0)[0], Instruction::Copy(c) if c.from == Some(SourceRef::Image("nosuchstage".into())))
    );
    let e = errors("FROM a AS one\nCOPY --from=two x y\nFROM b AS two\nCOPY --from=one x y\n");
    assert!(e[0].message.contains("circular dependency"), "{e:#?}");
    let e = errors("FROM two AS one\nFROM one AS two\n");
    assert!(e[0].message.contains("circular dependency"));
    assert!(
        errors("FROM a AS x\nCOPY --from=x a b\n")[0]
            .message
            .contains("the stage it is in")
    );
}

#[test]
fn target_selection_and_required_order() {
    let src = "FROM a AS base\nFROM base AS build\nFROM a AS unrelated\nFROM base AS test\nCOPY --from=build x y\nFROM scratch AS final\nCOPY --from=build x y\n";
    let mut r = req(src);
    r.target = Some("test".into());
    let p = ok(r).plan;
    assert_eq!(p.target, 3);
    assert_eq!(p.required, [0, 1, 3]);
    assert_eq!(p.stages[3].depends_on, [0, 1]);
    let p = plan(src);
    assert_eq!(p.target, 4);
    assert_eq!(p.required, [0, 1, 4]);
    let mut r = req(src);
    r.target = Some("2".into());
    assert_eq!(ok(r).plan.required, [2]);
    let mut r = req(src);
    r.target = Some("tset".into());
    let e = crate::parse(&r, &NoImages).unwrap_err();
    assert!(e[0].message.contains("\"tset\""));
    assert_eq!(e[0].hint.as_deref(), Some("did you mean test?"));
}

#[test]
fn cmd_entrypoint_shell_label_expose_volume_user_stopsignal() {
    let p = plan(
        "FROM a\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\nENTRYPOINT /bin/run --fast\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nLABEL a=1 \"b c\"=\"d e\"\nLABEL legacy with space\nEXPOSE 80 53/udp 8000-8001\nVOLUME [\"/data\", \"/logs\"]\nVOLUME /x /y\nUSER app:grp\nSTOPSIGNAL SIGQUIT\n",
    );
    let s = steps(&p, 0);
    assert_eq!(
        s[0],
        Instruction::Cmd(Command::Exec(vec![
            "nginx".into(),
            "-g".into(),
            "daemon off;".into()
        ]))
    );
    assert_eq!(
        s[1],
        Instruction::Entrypoint(Command::Shell("/bin/run --fast".into()))
    );
    assert_eq!(
        s[2],
        Instruction::Shell(vec![
            "/bin/bash".into(),
            "-o".into(),
            "pipefail".into(),
            "-c".into()
        ])
    );
    assert_eq!(
        s[3],
        Instruction::Label(vec![kv("a", "1"), kv("b c", "d e")])
    );
    assert_eq!(s[4], Instruction::Label(vec![kv("legacy", "with space")]));
    assert_eq!(
        s[5],
        Instruction::Expose(vec![
            "80/tcp".into(),
            "53/udp".into(),
            "8000/tcp".into(),
            "8001/tcp".into()
        ])
    );
    assert_eq!(
        s[6],
        Instruction::Volume(vec!["/data".into(), "/logs".into()])
    );
    assert_eq!(s[7], Instruction::Volume(vec!["/x".into(), "/y".into()]));
    assert_eq!(s[8], Instruction::User("app:grp".into()));
    assert_eq!(s[9], Instruction::Stopsignal("SIGQUIT".into()));
    assert!(
        errors("FROM a\nUSER a b\n")[0]
            .message
            .contains("exactly one")
    );
    let e = errors("FROM a\nARG V=1.2\nSTOPSIGNAL SIG$V\n");
    assert!(
        e[0].message.contains("STOPSIGNAL SIG1.2: not a signal"),
        "{e:?}"
    );
    assert!(
        errors("FROM a\nEXPOSE 80/icmp\n")[0]
            .message
            .contains("protocol")
    );
}

#[test]
fn healthcheck_forms() {
    let p = plan(
        "FROM a\nHEALTHCHECK NONE\nHEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=2s --retries=3 CMD curl -f http://localhost/ || exit 1\nHEALTHCHECK CMD [\"/bin/check\", \"-q\"]\n",
    );
    let s = steps(&p, 0);
    assert_eq!(
        s[0],
        Instruction::Healthcheck(HealthCheck {
            test: vec!["NONE".into()],
            ..Default::default()
        })
    );
    assert_eq!(
        s[1],
        Instruction::Healthcheck(HealthCheck {
            test: vec![
                "CMD-SHELL".into(),
                "curl -f http://localhost/ || exit 1".into()
            ],
            interval: Some(30_000_000_000),
            timeout: Some(5_000_000_000),
            start_period: Some(60_000_000_000),
            start_interval: Some(2_000_000_000),
            retries: Some(3),
        })
    );
    assert!(matches!(&s[2], Instruction::Healthcheck(h) if h.test == ["CMD", "/bin/check", "-q"]));
    assert!(
        errors("FROM a\nHEALTHCHECK --interval=30 CMD x\n")[0]
            .message
            .contains("interval")
    );
    assert!(
        errors("FROM a\nHEALTHCHECK NONE extra\n")[0]
            .message
            .contains("NONE")
    );
    assert!(
        errors("FROM a\nHEALTHCHECK RUN x\n")[0]
            .message
            .contains("unknown type")
    );
    assert!(
        errors("FROM a\nHEALTHCHECK --retries=-1 CMD x\n")[0]
            .message
            .contains("retries")
    );
}

#[test]
fn onbuild_validation() {
    assert!(
        errors("FROM a\nONBUILD ONBUILD RUN x\n")[0]
            .message
            .contains("ONBUILD ONBUILD")
    );
    assert!(
        errors("FROM a\nONBUILD FROM x\n")[0]
            .message
            .contains("FROM isn't allowed")
    );
    assert!(
        errors("FROM a\nONBUILD RUNN x\n")[0]
            .message
            .contains("RUNN")
    );
    let p = plan("FROM a\nONBUILD COPY --chown=1 . /app\n");
    assert_eq!(
        steps(&p, 0)[0],
        Instruction::Onbuild("COPY --chown=1 . /app".into())
    );
}

struct FakeImages;

impl Images for FakeImages {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<Option<BaseImage>, String> {
        assert_eq!(platform.architecture, "arm64");
        match reference {
            "base:1" => Ok(Some(BaseImage {
                reference: "docker.io/library/base:1".into(),
                env: vec!["PATH=/usr/bin".into(), "HOME=/root".into()],
                on_build: vec![
                    "ARG X=trig".into(),
                    "RUN echo from trigger".into(),
                    "COPY --from=helper a b".into(),
                ],
                shell: vec![],
            })),
            "broken" => Err("registry said no".into()),
            _ => Ok(None),
        }
    }
}

#[test]
fn base_image_env_and_onbuild_triggers() {
    let r = req("FROM x AS helper\nFROM base:1\nENV P=$PATH:/opt H=${HOME}\n");
    let p = crate::parse(&r, &FakeImages).unwrap().plan;
    let st = &p.stages[1].steps;
    assert!(st[0].from_onbuild && st[1].from_onbuild && st[2].from_onbuild && !st[3].from_onbuild);
    assert_eq!(st[0].location.line, 2);
    assert!(
        matches!(&st[1].instruction, Instruction::Run(r) if r.command == Command::Shell("echo from trigger".into()))
    );
    assert_eq!(st[1].build_args, [kv("X", "trig")]);
    assert_eq!(p.stages[1].depends_on, [0]);
    assert_eq!(
        env_of(&p, 1),
        [
            ("P".into(), "/usr/bin:/opt".into()),
            ("H".into(), "/root".into())
        ]
    );
    // A stage built on a stage sees its ENV.
    let p = crate::parse(
        &req("FROM base:1 AS b\nENV A=1\nFROM b\nENV B=$A$HOME\n"),
        &FakeImages,
    );
    let p = p.unwrap().plan;
    assert_eq!(env_of(&p, 1), [("B".into(), "1/root".into())]);
    let e = crate::parse(&req("FROM broken\n"), &FakeImages).unwrap_err();
    assert!(e[0].message.contains("registry said no"));
}

/// Records every lookup.
struct Recording(std::cell::RefCell<Vec<String>>);

impl Images for Recording {
    fn resolve(&self, reference: &str, p: &Platform) -> Result<Option<BaseImage>, String> {
        self.0.borrow_mut().push(reference.to_string());
        FakeImages.resolve(reference, p)
    }
}

#[test]
fn only_the_bases_the_target_needs_are_looked_up() {
    let src =
        "FROM broken AS unused\nFROM x AS helper\nFROM base:1 AS app\nRUN true\nFROM y AS other\n";
    let mut r = req(src);
    r.target = Some("app".into());
    let images = Recording(Default::default());
    let p = crate::parse(&r, &images).unwrap().plan;
    // base:1's ONBUILD trigger copies from `helper`, so helper's base is needed too; `unused` (whose base
    // would fail) and `other` are never looked up.
    assert_eq!(p.required, [1, 2]);
    let mut seen = images.0.borrow().clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["base:1", "x"]);
    assert!(p.stages[2].steps[0].from_onbuild);
    // The target that needs the broken base still reports it.
    r.target = Some("unused".into());
    let e = crate::parse(&r, &FakeImages).unwrap_err();
    assert!(e[0].message.contains("registry said no"), "{e:?}");
}

#[test]
fn raw_output_shape() {
    let out = ok(req(
        "FROM a\nENV a=1 b=\"2 3\"\nCOPY --link <<EOF /x\nhi\nEOF\n",
    ));
    assert_eq!(out.raw.len(), 3);
    assert_eq!(out.raw[1].keyword, "ENV");
    assert_eq!(out.raw[1].args, ["a=1", "b=\"2 3\""]);
    assert_eq!(
        out.raw[2].flags,
        [Flag {
            name: "link".into(),
            value: None
        }]
    );
    assert_eq!(out.raw[2].heredocs[0].content, "hi\n");
    assert_eq!(out.raw[2].location.end_line, 5);
}

#[test]
fn keywords_are_case_insensitive() {
    let p = plan("from a as B\nrun echo\ncopy x y\n");
    assert_eq!(p.stages[0].name.as_deref(), Some("b"));
    assert_eq!(p.stages[0].steps.len(), 2);
}

#[test]
fn checksum_of_a_git_source_is_a_commit() {
    let p = plan("FROM a\nADD --checksum=0123abc git://h/r.git#main /src\n");
    assert!(
        matches!(&steps(&p, 0)[0], Instruction::Add(c) if c.checksum.as_deref() == Some("0123abc"))
    );
    let e = errors("FROM a\nADD --checksum=0123abc https://h/file.tar /src\n");
    assert!(e[0].message.contains("--checksum=0123abc"), "{e:?}");
}

#[test]
fn an_escaped_escape_at_the_end_of_a_line_is_literal() {
    // BuildKit: the line continues only when its last escape follows something other than the escape.
    let p = plan(
        "FROM x\nENV C trailing\\\\backslash\\\\\nENV D next\nENV E a\\\\\\\nENV F two\nENV G x\\\n y\n",
    );
    assert_eq!(
        env_of(&p, 0),
        [
            ("C".to_string(), "trailing\\backslash\\".to_string()),
            ("D".into(), "next".into()),
            ("E".into(), "a\\".into()),
            ("F".into(), "two".into()),
            ("G".into(), "x y".into()),
        ]
    );
    // The same with the backtick escape.
    let p = plan("# escape=`\nFROM x\nENV C a``\nENV D next\nENV G x`\n y\n");
    assert_eq!(
        env_of(&p, 0),
        [
            ("C".to_string(), "a`".to_string()),
            ("D".into(), "next".into()),
            ("G".into(), "x y".into()),
        ]
    );
}

#[test]
fn quote_errors_get_a_hint_about_quotes() {
    for src in [
        "FROM x\nENV A \"open\n",
        "FROM x\nENV A='open\n",
        "FROM x\nADD \"a b /x\n",
        "FROM x\nCOPY 'a /x\n",
        "FROM \"x\n",
        "FROM x\nARG A=\"open\n",
    ] {
        let e = errors(src);
        assert!(e[0].message.contains("matching"), "{src:?}: {e:?}");
        let hint = e[0].hint.as_deref().unwrap_or("");
        assert!(
            hint.starts_with("close the quote") && !hint.contains("ARG"),
            "{src:?}: {hint}"
        );
    }
    let e = errors("FROM x\nWORKDIR ${A/x\n");
    assert!(
        e[0].hint.as_deref().unwrap().contains("close the ${...}"),
        "{e:?}"
    );
    // A variable the word requires keeps the hint about defining it.
    let e = errors("FROM x\nENV B ${A:?need it}\n");
    assert_eq!(
        e[0].hint.as_deref(),
        Some("define the variable with ARG or ENV, or give it a default")
    );
}
