use super::*;
use crate::plugin::frontend::{
    CacheSharing, Command, Location, Mount, MountType, NetworkMode, RunStep, SecurityMode,
};

fn at(line: u32) -> Location {
    Location {
        file: "Containerfile".into(),
        line,
        column: 1,
        end_line: line,
        end_column: 1,
    }
}

fn step(line: u32, instruction: Instruction) -> Step {
    Step {
        instruction,
        original: "...".into(),
        location: at(line),
        build_args: vec![],
        from_onbuild: false,
    }
}

fn stage(index: u32, base: StageBase, steps: Vec<Step>, depends_on: Vec<u32>) -> Stage {
    Stage {
        index,
        name: None,
        base,
        platform: None,
        steps,
        depends_on,
        location: at(1),
    }
}

fn plan(stages: Vec<Stage>) -> Plan {
    let n = stages.len() as u32;
    Plan {
        stages,
        target: n.saturating_sub(1),
        required: (0..n).collect(),
        directives: vec![],
        global_args: vec![],
        unused_build_args: vec![],
        warnings: vec![],
    }
}

fn copy(sources: &[&str], dest: &str, from: Option<SourceRef>) -> Instruction {
    Instruction::Copy(CopyStep {
        sources: sources.iter().map(|s| s.to_string()).collect(),
        inline_sources: vec![],
        destination: dest.into(),
        from,
        chown: None,
        chmod: None,
        link: false,
        parents: false,
        exclude: vec![],
        checksum: None,
        keep_git_dir: false,
    })
}

fn mount(kind: MountType) -> Mount {
    Mount {
        kind,
        target: Some("/m".into()),
        source: None,
        from: None,
        read_write: false,
        id: None,
        sharing: CacheSharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    }
}

fn run(mounts: Vec<Mount>, network: NetworkMode, security: SecurityMode) -> Instruction {
    Instruction::Run(RunStep {
        command: Command::Shell("true".into()),
        files: vec![],
        mounts,
        network,
        security,
    })
}

fn one(i: Instruction) -> Plan {
    plan(vec![stage(0, StageBase::Scratch, vec![step(2, i)], vec![])])
}

fn check_with(p: &Plan, secrets: &Secrets, network: Option<Network>) -> Result<()> {
    check(p, &Allowed { secrets, network })
}

fn refused(p: &Plan) -> String {
    let e = check_with(p, &Secrets::default(), None).expect_err("the plan must be refused");
    format!("{e:#}")
}

fn passes(p: &Plan) {
    check_with(p, &Secrets::default(), None).expect("the plan must pass");
}

#[test]
fn context_sources_stay_in_the_context() {
    passes(&one(copy(
        &["a/../b", "/abs/in/context", "*.txt"],
        "/x/",
        None,
    )));
    for src in ["../../etc/passwd", "/../outside", "a/../../b"] {
        let e = refused(&one(copy(&[src], "/x", None)));
        assert!(
            e.contains("Containerfile:2")
                && e.contains("step 1: COPY")
                && e.contains(src)
                && e.contains("outside the build context"),
            "{e}"
        );
    }
    let e = refused(&one(copy(
        &["../x"],
        "/x",
        Some(SourceRef::Image("img".into())),
    )));
    assert!(e.contains("outside the --from image"), "{e}");
    // ADD URLs are fetched, not read from the context; an option smuggled in as the host is refused.
    let add = |s: &str| match copy(&[s], "/x", None) {
        Instruction::Copy(c) => Instruction::Add(c),
        _ => unreachable!(),
    };
    passes(&one(add("https://example.com/../a.tar")));
    assert!(refused(&one(add("ssh://-oProxyCommand=x/r.git"))).contains("not a URL"));
}

#[test]
fn destinations_and_workdir_stay_under_the_root() {
    passes(&one(copy(&["a"], "rel/../x", None)));
    passes(&one(Instruction::Workdir("/app/../srv".into())));
    assert!(refused(&one(copy(&["a"], "/../../x", None))).contains("destination"));
    assert!(refused(&one(Instruction::Workdir("/../..".into()))).contains("WORKDIR"));
    assert!(refused(&one(copy(&["a"], "", None))).contains("empty destination"));
    assert!(refused(&one(copy(&["a\0b"], "/x", None))).contains("NUL"));
}

#[test]
fn bind_mounts_come_from_the_context_or_a_stage_never_the_host() {
    let mut m = mount(MountType::Bind);
    m.source = Some("../../../etc".into());
    let e = refused(&one(run(
        vec![m.clone()],
        NetworkMode::Default,
        SecurityMode::Sandbox,
    )));
    assert!(
        e.contains("type=bind source") && e.contains("outside the build context"),
        "{e}"
    );
    m.source = Some("/etc".into()); // the context's etc/, as in BuildKit
    passes(&one(run(
        vec![m.clone()],
        NetworkMode::Default,
        SecurityMode::Sandbox,
    )));
    m.target = Some("/a/../../b".into());
    assert!(
        refused(&one(run(
            vec![m],
            NetworkMode::Default,
            SecurityMode::Sandbox
        )))
        .contains("target")
    );
    let mut c = mount(MountType::Cache);
    c.source = Some("../up".into());
    assert!(
        refused(&one(run(
            vec![c],
            NetworkMode::Default,
            SecurityMode::Sandbox
        )))
        .contains("outside the cache")
    );
    let mut t = mount(MountType::Tmpfs);
    t.target = None;
    assert!(
        refused(&one(run(
            vec![t],
            NetworkMode::Default,
            SecurityMode::Sandbox
        )))
        .contains("no target")
    );
}

#[test]
fn secrets_are_only_those_given() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let given = Secrets::parse(&[format!("id=tok,src={}", file.path().display())]).unwrap();
    let mut m = mount(MountType::Secret);
    m.id = Some("other".into());
    m.required = true;
    let p = one(run(
        vec![m.clone()],
        NetworkMode::Default,
        SecurityMode::Sandbox,
    ));
    let e = format!("{:#}", check_with(&p, &given, None).unwrap_err());
    assert!(
        e.contains("secret `other` is required but was not given"),
        "{e}"
    );
    m.id = Some("tok".into());
    let p = one(run(
        vec![m.clone()],
        NetworkMode::Default,
        SecurityMode::Sandbox,
    ));
    check_with(&p, &given, None).unwrap();
    // Not required and not given: the executor leaves it out.
    m.id = Some("absent".into());
    m.required = false;
    passes(&one(run(
        vec![m],
        NetworkMode::Default,
        SecurityMode::Sandbox,
    )));
    let e = refused(&one(run(
        vec![mount(MountType::Ssh)],
        NetworkMode::Default,
        SecurityMode::Sandbox,
    )));
    assert!(e.contains("ssh") && e.contains("not supported"), "{e}");
}

#[test]
fn network_and_security_modes_stay_within_the_flags() {
    let host = one(run(vec![], NetworkMode::Host, SecurityMode::Sandbox));
    let e = format!(
        "{:#}",
        check_with(&host, &Secrets::default(), Some(Network::None)).unwrap_err()
    );
    assert!(
        e.contains("--network=host") && e.contains("--network none"),
        "{e}"
    );
    check_with(&host, &Secrets::default(), None).unwrap();
    check_with(&host, &Secrets::default(), Some(Network::Host)).unwrap();
    let none = one(run(vec![], NetworkMode::None, SecurityMode::Sandbox));
    check_with(&none, &Secrets::default(), Some(Network::None)).unwrap();
    let insecure = one(run(vec![], NetworkMode::Default, SecurityMode::Insecure));
    assert!(refused(&insecure).contains("--security=insecure"));
}

#[test]
fn platforms_parse_and_are_known() {
    for (p, ok) in [
        ("linux/arm64", true),
        ("linux/arm/v7", true),
        ("windows/amd64", true),
        ("linux/z80", false),
        ("plan10/amd64", false),
        ("linux//v7", false),
        ("linux/arm/v7;rm", false),
    ] {
        let mut pl = one(Instruction::Workdir("/".into()));
        pl.stages[0].platform = Some(p.into());
        assert_eq!(
            check_with(&pl, &Secrets::default(), None).is_ok(),
            ok,
            "{p}"
        );
    }
}

#[test]
fn structure_is_in_range_and_in_order() {
    // Stage 2 copies from stage 1: fine as given.
    let two = || {
        plan(vec![
            stage(0, StageBase::Scratch, vec![], vec![]),
            stage(
                1,
                StageBase::Scratch,
                vec![step(3, copy(&["/a"], "/a", Some(SourceRef::Stage(0))))],
                vec![0],
            ),
        ])
    };
    passes(&two());
    let mut p = two();
    p.stages[1].depends_on.clear();
    assert!(refused(&p).contains("not among the stages it depends on"));
    let mut p = two();
    p.required = vec![1, 0];
    assert!(refused(&p).contains("does not require before it"));
    let mut p = two();
    p.required = vec![0];
    assert!(refused(&p).contains("target"));
    let mut p = two();
    p.stages[1].depends_on = vec![0, 1];
    assert!(refused(&p).contains("depends on itself"));
    let mut p = two();
    p.stages[1].base = StageBase::Stage(7);
    p.stages[1].depends_on = vec![0, 7];
    assert!(refused(&p).contains("stage 8"));
    let mut p = two();
    p.target = 5;
    assert!(refused(&p).contains("target"));
    let mut p = two();
    p.stages[0].index = 1;
    assert!(refused(&p).contains("says it is stage 2"));
    assert!(refused(&plan(vec![])).contains("no stage"));
    // A stage that does not run is checked for structure only.
    let mut p = two();
    p.target = 0;
    p.required = vec![0];
    if let Instruction::Copy(c) = &mut p.stages[1].steps[0].instruction {
        c.sources = vec!["../../x".into()];
    }
    passes(&p);
}

#[test]
fn sizes_are_bounded() {
    let steps = (0..MAX_STEPS + 1)
        .map(|i| step(i as u32, Instruction::User("u".into())))
        .collect();
    let e = refused(&plan(vec![stage(0, StageBase::Scratch, steps, vec![])]));
    assert!(e.contains("10001 steps"), "{e}");
    let big = "x".repeat(MAX_PLAN_BYTES);
    let e = refused(&one(Instruction::Maintainer(big)));
    assert!(e.contains("larger than 16 MiB"), "{e}");
    let long = "a/".repeat(MAX_PATH);
    assert!(refused(&one(copy(&[&long], "/x", None))).contains("longer than"));
    let many = vec!["a".to_string(); MAX_ITEMS + 1];
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(refused(&one(copy(&refs, "/x", None))).contains("sources"));
}

#[test]
fn what_the_frontend_wrote_is_shown_without_control_characters() {
    let e = refused(&one(copy(&["../\u{1b}[2Jx"], "/x", None)));
    assert!(e.contains("../\\u{1b}[2Jx") && !e.contains('\u{1b}'), "{e}");
}
