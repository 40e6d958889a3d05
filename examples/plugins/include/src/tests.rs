use super::parse;
use lade_dockerfile::model::{
    Diagnostic, Instruction, Location, NoImages, Output, Platform, Request,
};
use lade_plugin_sdk::MemoryTree;

fn request(source: &str) -> Request {
    let linux = Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    Request {
        source: source.into(),
        file_name: "Containerfile".into(),
        build_args: Vec::new(),
        target_platform: linux.clone(),
        build_platform: linux,
        target: None,
    }
}

fn plan(main: &str, files: &[(&str, &str)]) -> Result<Output, Vec<Diagnostic>> {
    parse(
        &request(main),
        &MemoryTree::new(files.iter().copied()),
        &NoImages,
    )
}

fn at(l: &Location) -> String {
    format!("{}:{}:{}", l.file, l.line, l.column)
}

/// Each step of the target stage: its location and its text.
fn steps(out: &Output) -> Vec<(String, String)> {
    let stage = &out.plan.stages[out.plan.target as usize];
    stage
        .steps
        .iter()
        .map(|s| (at(&s.location), s.original.clone()))
        .collect()
}

fn error(main: &str, files: &[(&str, &str)]) -> Diagnostic {
    let mut diags = plan(main, files).expect_err("an error");
    diags.remove(0)
}

#[test]
fn an_include_is_spliced_in_place_and_keeps_its_own_positions() {
    let out = plan(
        "FROM alpine\nINCLUDE common/env.inc\nRUN echo done\n",
        &[("common/env.inc", "ENV A=1\n\nRUN echo $A")],
    )
    .unwrap();
    assert_eq!(
        steps(&out),
        [
            ("common/env.inc:1:1".into(), "ENV A=1".into()),
            ("common/env.inc:3:1".into(), "RUN echo $A".into()),
            ("Containerfile:3:1".into(), "RUN echo done".into()),
        ]
    );
    assert!(matches!(
        &out.plan.stages[0].steps[0].instruction,
        Instruction::Env(kv) if kv[0].key == "A" && kv[0].value == "1"
    ));
    // The raw instructions are the spliced ones: no INCLUDE is left.
    assert!(out.raw.iter().all(|r| r.keyword != "INCLUDE"));
    assert_eq!(at(&out.raw[1].location), "common/env.inc:1:1");
}

#[test]
fn includes_nest_and_a_file_may_be_included_twice() {
    let out = plan(
        "FROM alpine AS base\nINCLUDE ./a.inc\nINCLUDE b.inc\n",
        &[
            ("a.inc", "RUN echo a\nINCLUDE lib/../c.inc\n"),
            ("b.inc", "INCLUDE c.inc\n"),
            ("c.inc", "RUN echo c\n"),
        ],
    )
    .unwrap();
    let where_: Vec<String> = steps(&out).into_iter().map(|(l, _)| l).collect();
    assert_eq!(where_, ["a.inc:1:1", "c.inc:1:1", "c.inc:1:1"]);
}

#[test]
fn an_include_cycle_names_every_position_on_it() {
    let d = error(
        "FROM alpine\nINCLUDE a.inc\n",
        &[
            ("a.inc", "RUN echo a\nINCLUDE b.inc\n"),
            ("b.inc", "\n\nINCLUDE a.inc\n"),
        ],
    );
    assert_eq!(
        d.message,
        "include cycle: a.inc:2 includes b.inc, b.inc:3 includes a.inc"
    );
    assert_eq!(at(d.location.as_ref().unwrap()), "b.inc:3:1");
    // Back to the main file, and a file including itself.
    let d = error(
        "FROM alpine\nINCLUDE a.inc\n",
        &[("a.inc", "INCLUDE ./Containerfile\n")],
    );
    assert_eq!(
        d.message,
        "include cycle: Containerfile:2 includes a.inc, a.inc:1 includes Containerfile"
    );
    let d = error(
        "FROM alpine\nINCLUDE a.inc\n",
        &[("a.inc", "RUN x\nINCLUDE a.inc\n")],
    );
    assert_eq!(d.message, "include cycle: a.inc:2 includes a.inc");
}

#[test]
fn errors_inside_an_included_file_point_into_it() {
    // The oracle: the same line, planned by the Dockerfile frontend on its own.
    // Indented and continued, so the column and the end line are tested too.
    let bad = "   RUN --mount=type=bogus,target=/x \\\n      echo";
    let alone = lade_dockerfile::parse(&request(&format!("FROM alpine\n{bad}\n")), &NoImages)
        .expect_err("the line is wrong");
    let l = alone[0].location.clone().unwrap();
    assert!((l.line, l.column, l.end_line) == (2, 4, 3), "{alone:?}");
    let d = error(
        "FROM alpine\nRUN echo before\nINCLUDE frag.inc\nRUN echo after\n",
        &[("frag.inc", &format!("# a fragment\n{bad}\n"))],
    );
    assert_eq!(d.message, alone[0].message);
    let got = d.location.unwrap();
    assert_eq!(
        (
            got.file.as_str(),
            got.line,
            got.column,
            got.end_line,
            got.end_column
        ),
        ("frag.inc", 2, 4, 3, l.end_column)
    );
}

#[test]
fn include_words_that_are_no_instruction_are_left_alone() {
    let out = plan(
        "FROM alpine\nRUN echo one \\\n  INCLUDE x\nRUN <<EOF\nINCLUDE y\nEOF\n# INCLUDE z\n",
        &[],
    )
    .unwrap();
    assert_eq!(steps(&out).len(), 2);
    assert_eq!(steps(&out)[1].0, "Containerfile:4:1");
}

#[test]
fn a_bad_include_is_an_error_at_its_line() {
    let d = error("FROM alpine\n\nINCLUDE missing.inc\n", &[]);
    assert!(
        d.message.starts_with("INCLUDE missing.inc: cannot read it"),
        "{d:?}"
    );
    assert_eq!(at(d.location.as_ref().unwrap()), "Containerfile:3:1");
    let d = error("FROM alpine\nINCLUDE ../outside\n", &[]);
    assert!(d.message.contains("leaves the build context"), "{d:?}");
    let d = error("FROM alpine\nINCLUDE a b\n", &[]);
    assert_eq!(d.message, "INCLUDE takes exactly one path");
}
