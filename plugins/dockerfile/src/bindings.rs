//! The WIT boundary: converts between the SDK's frontend types and the native model. Public, so that another
//! frontend built on this one (a dialect that preprocesses, then plans as Dockerfile) reuses the conversions;
//! the export itself is behind the `component` feature.

use crate::model as m;
use lade_plugin_sdk::frontend as f;
use lade_plugin_sdk::frontend::types as t;

#[cfg(feature = "component")]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Dockerfile;

#[cfg(feature = "component")]
impl f::Metadata for Dockerfile {
    fn info() -> t::PluginInfo {
        t::PluginInfo {
            name: "dockerfile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The Dockerfile/Containerfile language".into(),
            kind: t::PluginKind::Frontend,
            needs: t::Needs {
                data_dirs: Vec::new(),
                documents: Vec::new(),
            },
        }
    }
}

/// Base images looked up through the host's `images` interface.
pub struct HostImages;

impl m::Images for HostImages {
    fn resolve(
        &self,
        reference: &str,
        platform: &m::Platform,
    ) -> Result<Option<m::BaseImage>, String> {
        let p = t::Platform {
            os: platform.os.clone(),
            architecture: platform.architecture.clone(),
            variant: platform.variant.clone(),
            os_version: None,
            os_features: Vec::new(),
        };
        match f::images::resolve(reference, &p) {
            Ok(None) => Ok(None),
            Ok(Some(b)) => Ok(Some(m::BaseImage {
                reference: b.reference,
                env: b.env,
                on_build: b.on_build,
                shell: b.shell,
            })),
            Err(e) => Err(match e {
                t::PluginError::InvalidInput(d) => d
                    .into_iter()
                    .map(|d| d.message)
                    .collect::<Vec<_>>()
                    .join("; "),
                t::PluginError::Unsupported(s)
                | t::PluginError::Host(s)
                | t::PluginError::Failed(s) => s,
            }),
        }
    }
}

#[cfg(feature = "component")]
impl f::Guest for Dockerfile {
    fn parse(
        request: f::ParseRequest,
        _context: &f::BuildContext,
    ) -> Result<f::ParseOutput, t::PluginError> {
        crate::parse(&self::request(request), &HostImages)
            .map(output)
            .map_err(errors)
    }
}

/// The native request for a frontend request.
pub fn request(request: f::ParseRequest) -> m::Request {
    m::Request {
        source: request.source,
        file_name: request.file_name,
        build_args: request
            .build_args
            .into_iter()
            .map(|k| m::kv(k.key, k.value))
            .collect(),
        target_platform: platform(request.target_platform),
        build_platform: platform(request.build_platform),
        target: request.target,
    }
}

/// The plugin error for planning diagnostics.
pub fn errors(diags: Vec<m::Diagnostic>) -> t::PluginError {
    t::PluginError::InvalidInput(diags.into_iter().map(diagnostic).collect())
}

fn platform(p: t::Platform) -> m::Platform {
    m::Platform {
        os: p.os,
        architecture: p.architecture,
        variant: p.variant.filter(|v| !v.is_empty()),
    }
}

fn kv(k: m::KeyValue) -> t::KeyValue {
    t::KeyValue {
        key: k.key,
        value: k.value,
    }
}

fn location(l: m::Location) -> t::Location {
    t::Location {
        file: l.file,
        line: l.line,
        column: l.column,
        end_line: l.end_line,
        end_column: l.end_column,
    }
}

/// One diagnostic, in the contract's type.
pub fn diagnostic(d: m::Diagnostic) -> t::Diagnostic {
    t::Diagnostic {
        severity: match d.severity {
            m::Severity::Error => t::Severity::Error,
            m::Severity::Warning => t::Severity::Warning,
        },
        message: d.message,
        location: d.location.map(location),
        snippet: d.snippet,
        hint: d.hint,
    }
}

fn command(c: m::Command) -> f::Command {
    match c {
        m::Command::Shell(s) => f::Command::Shell(s),
        m::Command::Exec(v) => f::Command::Exec(v),
    }
}

fn inline(i: m::InlineFile) -> f::InlineFile {
    f::InlineFile {
        path: i.path,
        content: i.content,
        mode: i.mode,
    }
}

fn source_ref(s: m::SourceRef) -> f::SourceRef {
    match s {
        m::SourceRef::Stage(i) => f::SourceRef::Stage(i),
        m::SourceRef::Image(r) => f::SourceRef::Image(r),
    }
}

fn mount(x: m::Mount) -> f::Mount {
    f::Mount {
        kind: match x.kind {
            m::MountType::Bind => f::MountType::Bind,
            m::MountType::Cache => f::MountType::Cache,
            m::MountType::Tmpfs => f::MountType::Tmpfs,
            m::MountType::Secret => f::MountType::Secret,
            m::MountType::Ssh => f::MountType::Ssh,
        },
        target: x.target,
        source: x.source,
        from: x.from.map(source_ref),
        read_write: x.read_write,
        id: x.id,
        sharing: match x.sharing {
            m::CacheSharing::Shared => f::CacheSharing::Shared,
            m::CacheSharing::Private => f::CacheSharing::Private,
            m::CacheSharing::Locked => f::CacheSharing::Locked,
        },
        mode: x.mode,
        uid: x.uid,
        gid: x.gid,
        required: x.required,
        size: x.size,
        env: x.env,
    }
}

fn copy(c: m::CopyStep) -> f::CopyStep {
    f::CopyStep {
        sources: c.sources,
        inline_sources: c.inline_sources.into_iter().map(inline).collect(),
        destination: c.destination,
        from: c.from.map(source_ref),
        chown: c.chown,
        chmod: c.chmod,
        link: c.link,
        parents: c.parents,
        exclude: c.exclude,
        checksum: c.checksum,
        keep_git_dir: c.keep_git_dir,
    }
}

fn instruction(i: m::Instruction) -> f::Instruction {
    use m::Instruction as I;
    match i {
        I::Run(r) => f::Instruction::Run(f::RunStep {
            command: command(r.command),
            files: r.files.into_iter().map(inline).collect(),
            mounts: r.mounts.into_iter().map(mount).collect(),
            network: match r.network {
                m::NetworkMode::Default => f::NetworkMode::Default,
                m::NetworkMode::None => f::NetworkMode::None,
                m::NetworkMode::Host => f::NetworkMode::Host,
            },
            security: match r.security {
                m::SecurityMode::Sandbox => f::SecurityMode::Sandbox,
                m::SecurityMode::Insecure => f::SecurityMode::Insecure,
            },
        }),
        I::Copy(c) => f::Instruction::Copy(copy(c)),
        I::Add(c) => f::Instruction::Add(copy(c)),
        I::Env(v) => f::Instruction::Env(v.into_iter().map(kv).collect()),
        I::Label(v) => f::Instruction::Label(v.into_iter().map(kv).collect()),
        I::Maintainer(s) => f::Instruction::Maintainer(s),
        I::Cmd(c) => f::Instruction::Cmd(command(c)),
        I::Entrypoint(c) => f::Instruction::Entrypoint(command(c)),
        I::Shell(v) => f::Instruction::Shell(v),
        I::Expose(v) => f::Instruction::Expose(v),
        I::Volume(v) => f::Instruction::Volume(v),
        I::User(s) => f::Instruction::User(s),
        I::Workdir(s) => f::Instruction::Workdir(s),
        I::Arg(v) => f::Instruction::Arg(
            v.into_iter()
                .map(|a| f::ArgDecl {
                    name: a.name,
                    value: a.value,
                })
                .collect(),
        ),
        I::Onbuild(s) => f::Instruction::Onbuild(s),
        I::Stopsignal(s) => f::Instruction::Stopsignal(s),
        I::Healthcheck(h) => f::Instruction::Healthcheck(f::HealthCheck {
            test: h.test,
            interval: h.interval,
            timeout: h.timeout,
            start_period: h.start_period,
            start_interval: h.start_interval,
            retries: h.retries,
        }),
    }
}

/// The parse output, in the contract's type.
pub fn output(o: m::Output) -> f::ParseOutput {
    let raw = o
        .raw
        .into_iter()
        .map(|r| f::RawInstruction {
            keyword: r.keyword,
            original: r.original,
            flags: r
                .flags
                .into_iter()
                .map(|x| f::Flag {
                    name: x.name,
                    value: x.value,
                })
                .collect(),
            args: r.args,
            exec_form: r.exec_form,
            heredocs: r
                .heredocs
                .into_iter()
                .map(|h| f::Heredoc {
                    name: h.name,
                    content: h.content,
                    expand: h.expand,
                    strip_tabs: h.strip_tabs,
                })
                .collect(),
            location: location(r.location),
        })
        .collect();
    let p = o.plan;
    let stages = p
        .stages
        .into_iter()
        .map(|s| f::Stage {
            index: s.index,
            name: s.name,
            base: match s.base {
                m::StageBase::Scratch => f::StageBase::Scratch,
                m::StageBase::Stage(i) => f::StageBase::Stage(i),
                m::StageBase::Image(r) => f::StageBase::Image(r),
            },
            platform: s.platform,
            steps: s
                .steps
                .into_iter()
                .map(|st| f::Step {
                    instruction: instruction(st.instruction),
                    original: st.original,
                    location: location(st.location),
                    build_args: st.build_args.into_iter().map(kv).collect(),
                    from_onbuild: st.from_onbuild,
                })
                .collect(),
            depends_on: s.depends_on,
            location: location(s.location),
        })
        .collect();
    f::ParseOutput {
        raw,
        plan: f::Plan {
            stages,
            target: p.target,
            required: p.required,
            directives: p.directives.into_iter().map(kv).collect(),
            global_args: p.global_args.into_iter().map(kv).collect(),
            unused_build_args: p.unused_build_args,
            warnings: p.warnings.into_iter().map(diagnostic).collect(),
        },
    }
}

#[cfg(all(feature = "component", target_arch = "wasm32"))]
lade_plugin_sdk::export_frontend!(Dockerfile);
