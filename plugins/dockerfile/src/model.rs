//! Native mirrors of the WIT frontend types, so the parser and planner compile and test without wasm.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/arm64/v8`.
    pub fn to_string_form(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{}", self.os, self.architecture, v),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

pub fn kv(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub location: Option<Location>,
    pub snippet: Option<String>,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub source: String,
    pub file_name: String,
    pub build_args: Vec<KeyValue>,
    pub target_platform: Platform,
    pub build_platform: Platform,
    pub target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    pub reference: String,
    pub env: Vec<String>,
    pub on_build: Vec<String>,
    pub shell: Vec<String>,
}

/// What the planner may ask the host about base images.
pub trait Images {
    /// `Ok(None)` when the host cannot or may not look the image up; `Err` carries the host's message.
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<Option<BaseImage>, String>;
}

/// No image lookups (tests, fuzzing).
pub struct NoImages;

impl Images for NoImages {
    fn resolve(&self, _: &str, _: &Platform) -> Result<Option<BaseImage>, String> {
        Ok(None)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    pub expand: bool,
    pub strip_tabs: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawInstruction {
    pub keyword: String,
    pub original: String,
    pub flags: Vec<Flag>,
    pub args: Vec<String>,
    pub exec_form: bool,
    pub heredocs: Vec<Heredoc>,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    pub path: String,
    pub content: String,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRef {
    Stage(u32),
    Image(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<SourceRef>,
    pub read_write: bool,
    pub id: Option<String>,
    pub sharing: CacheSharing,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub required: bool,
    pub size: Option<u64>,
    pub env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    pub command: Command,
    pub files: Vec<InlineFile>,
    pub mounts: Vec<Mount>,
    pub network: NetworkMode,
    pub security: SecurityMode,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyStep {
    pub sources: Vec<String>,
    pub inline_sources: Vec<InlineFile>,
    pub destination: String,
    pub from: Option<SourceRef>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthCheck {
    pub test: Vec<String>,
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
    pub start_period: Option<u64>,
    pub start_interval: Option<u64>,
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Run(RunStep),
    Copy(CopyStep),
    Add(CopyStep),
    Env(Vec<KeyValue>),
    Label(Vec<KeyValue>),
    Maintainer(String),
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    Onbuild(String),
    Stopsignal(String),
    Healthcheck(HealthCheck),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub instruction: Instruction,
    pub original: String,
    pub location: Location,
    pub build_args: Vec<KeyValue>,
    pub from_onbuild: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    Scratch,
    Stage(u32),
    Image(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: u32,
    pub name: Option<String>,
    pub base: StageBase,
    pub platform: Option<String>,
    pub steps: Vec<Step>,
    pub depends_on: Vec<u32>,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub stages: Vec<Stage>,
    pub target: u32,
    pub required: Vec<u32>,
    pub directives: Vec<KeyValue>,
    pub global_args: Vec<KeyValue>,
    pub unused_build_args: Vec<String>,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub raw: Vec<RawInstruction>,
    pub plan: Plan,
}
