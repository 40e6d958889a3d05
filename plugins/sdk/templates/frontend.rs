//! A lade frontend: a tiny build language to start from. Each line is `FROM <image>` (once, first) or
//! `RUN <shell command>`; `#` starts a comment. Replace `plan` with your own language.

use lade_plugin_sdk::frontend::{
    self, BuildContext, Command, Guest, Instruction, Metadata, NetworkMode, ParseOutput, ParseRequest,
    Plan, PluginError, PluginInfo, RunStep, SecurityMode, Stage, StageBase, Step,
};

// Used by the export, which only the wasm build has.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Plugin;

impl Metadata for Plugin {
    fn info() -> PluginInfo {
        frontend::info("__NAME__", env!("CARGO_PKG_VERSION"), "__DESCRIPTION__")
    }
}

impl Guest for Plugin {
    fn parse(request: ParseRequest, _context: &BuildContext) -> Result<ParseOutput, PluginError> {
        plan(&request.source, &request.file_name).map(|plan| ParseOutput { raw: Vec::new(), plan })
    }
}

/// The plan for `source`: plain Rust over the SDK's types, so it unit-tests natively.
pub fn plan(source: &str, file: &str) -> Result<Plan, PluginError> {
    let mut base = None;
    let mut steps = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let line_no = n as u32 + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match (word, &base) {
            ("FROM", None) if !rest.is_empty() => {
                base = Some(if rest == "scratch" { StageBase::Scratch } else { StageBase::Image(rest.into()) });
            }
            ("RUN", Some(_)) if !rest.is_empty() => steps.push(Step {
                instruction: Instruction::Run(RunStep {
                    command: Command::Shell(rest.into()),
                    files: Vec::new(),
                    mounts: Vec::new(),
                    network: NetworkMode::Default,
                    security: SecurityMode::Sandbox,
                }),
                original: line.into(),
                location: at(file, line_no),
                build_args: Vec::new(),
                from_onbuild: false,
            }),
            _ => {
                return Err(frontend::invalid(file, line_no, &format!("cannot read `{line}`"), Some(
                    "write `FROM <image>` first, then `RUN <command>` lines",
                )));
            }
        }
    }
    let Some(base) = base else {
        return Err(frontend::invalid(file, 1, "no FROM line", Some("start with `FROM <image>`")));
    };
    Ok(Plan {
        stages: vec![Stage {
            index: 0,
            name: None,
            base,
            platform: None,
            steps,
            depends_on: Vec::new(),
            location: at(file, 1),
        }],
        target: 0,
        required: vec![0],
        directives: Vec::new(),
        global_args: Vec::new(),
        unused_build_args: Vec::new(),
        warnings: Vec::new(),
    })
}

fn at(file: &str, line: u32) -> frontend::Location {
    frontend::Location { file: file.into(), line, column: 1, end_line: line, end_column: 1 }
}

// The component's exports exist in the wasm build only; natively, `cargo test` tests the logic.
#[cfg(target_arch = "wasm32")]
lade_plugin_sdk::export_frontend!(Plugin);

#[cfg(test)]
mod tests {
    #[test]
    fn a_plan_has_its_base_and_steps() {
        let plan = super::plan("FROM alpine\nRUN echo hi\n", "Buildfile").unwrap();
        assert_eq!(plan.stages[0].steps.len(), 1);
        assert!(super::plan("RUN first\n", "Buildfile").is_err());
    }
}
