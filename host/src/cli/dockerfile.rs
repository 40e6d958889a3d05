//! `lade dockerfile parse`: run the frontend plugin on a Containerfile and print exactly what it understood,
//! the raw instructions and the resolved plan, as text or JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use super::{Global, OutputFormat};
use crate::context::BuildContext;
use crate::plugin::frontend::{
    Command, ContextReader, Instruction, KeyValue, Mount, MountType, NetworkMode, NoImages,
    ParseOutput, ParseRequest, SecurityMode, SourceRef, StageBase,
};
use crate::plugin::{PluginFailure, render_diagnostic};

#[derive(clap::Subcommand, Debug)]
pub enum DockerfileCommand {
    /// Print the raw instructions and the resolved plan
    Parse(ParseArgs),
}

/// What to parse and how: shared by `lade dockerfile parse` and `lade build`.
#[derive(clap::Args, Debug)]
pub struct DefinitionArgs {
    /// The Containerfile (default: Containerfile, then Dockerfile, in the context directory); `-` reads stdin
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A build argument, `NAME=value` (or `NAME` to take it from the environment); repeatable
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// The platform to plan for (default: the one lade runs on)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// The stage to build, by name or index (default: the last)
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// The frontend plugin: a built-in or installed name, or a component file (default: what the
    /// Containerfile's `# syntax=` line names, else the built-in `dockerfile`)
    #[arg(long, value_name = "NAME|FILE")]
    pub frontend: Option<String>,
    /// The build context directory
    #[arg(value_name = "CONTEXT", default_value = ".")]
    pub context: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ParseArgs {
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

pub fn run(g: &Global, c: DockerfileCommand) -> anyhow::Result<()> {
    match c {
        DockerfileCommand::Parse(a) => parse(g, a),
    }
}

/// Find the build definition: `-f` as given (else relative to the context), or Containerfile/Dockerfile in
/// the context. Returns the path to read and the name to show in diagnostics.
pub fn locate(context: &Path, file: Option<&Path>) -> anyhow::Result<(PathBuf, String)> {
    match file {
        Some(f) if f.exists() || f.is_absolute() => Ok((f.to_path_buf(), f.display().to_string())),
        Some(f) => {
            let in_ctx = context.join(f);
            anyhow::ensure!(
                in_ctx.exists(),
                "no such Containerfile: {} (looked in the current directory and in the context {})",
                f.display(),
                context.display()
            );
            Ok((in_ctx.clone(), in_ctx.display().to_string()))
        }
        None => {
            for name in ["Containerfile", "Dockerfile"] {
                let p = context.join(name);
                if p.is_file() {
                    let shown = if context == Path::new(".") {
                        name.to_string()
                    } else {
                        p.display().to_string()
                    };
                    return Ok((p, shown));
                }
            }
            anyhow::bail!(
                "no Containerfile or Dockerfile in {} (hint: name one with -f FILE)",
                context.display()
            )
        }
    }
}

/// `NAME=value` or `NAME` (value from the environment, skipped when unset, as buildah does).
pub fn build_args(args: &[String]) -> anyhow::Result<Vec<KeyValue>> {
    let mut out = Vec::new();
    for a in args {
        match a.split_once('=') {
            Some(("", _)) => anyhow::bail!("--build-arg {a:?}: the name is empty"),
            Some((k, v)) => out.push(KeyValue {
                key: k.into(),
                value: v.into(),
            }),
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.push(KeyValue {
                        key: a.clone(),
                        value: v,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A build definition read from disk or stdin, with the request to parse it.
pub struct Definition {
    pub request: ParseRequest,
    /// The file read (None for stdin), to keep it out of the context's ignore rules.
    pub path: Option<PathBuf>,
    pub target_platform: crate::dispatch::platform::Platform,
}

/// Read the definition `a` names and make the frontend request for it.
pub fn definition(a: &DefinitionArgs) -> anyhow::Result<Definition> {
    let stdin = a.file.as_deref() == Some(Path::new("-"));
    let (source, file_name, file_path) = if stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the Containerfile from stdin")?;
        (s, "-".to_string(), None)
    } else {
        let (path, shown) = locate(&a.context, a.file.as_deref())?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{shown}: not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            )
        })?;
        (text, shown, Some(path))
    };
    let host = crate::dispatch::platform::Platform::host();
    let target_platform = match &a.platform {
        Some(p) => p.parse::<crate::dispatch::platform::Platform>()?,
        None => host.clone(),
    };
    let request = ParseRequest {
        source,
        file_name,
        build_args: build_args(&a.build_args)?,
        target_platform: crate::build::driver::wit_platform(&target_platform),
        build_platform: crate::build::driver::wit_platform(&host),
        target: a.target.clone(),
    };
    Ok(Definition {
        request,
        path: file_path,
        target_platform,
    })
}

pub fn parse(g: &Global, args: ParseArgs) -> anyhow::Result<()> {
    let (a, format) = (args.definition, args.format);
    let Definition {
        request,
        path: file_path,
        ..
    } = definition(&a)?;
    let context = BuildContext::open(&a.context, file_path.as_deref())?;
    let context: Arc<dyn ContextReader> = Arc::new(context);
    let rt = super::plugin::runtime(g)?;
    let ctx = super::flags::RemoteFlags::default().context(g);
    let chosen = super::runtime()?.block_on(crate::plugin::syntax::choose(
        a.frontend.as_deref(),
        &request.source,
        &super::plugin::plugins_dir(g),
        &ctx,
    ))?;
    if let Some(note) = &chosen.note {
        eprintln!("{note}");
    }
    let plugin = rt.load(&chosen.source)?;
    let started = std::time::Instant::now();
    let result = plugin
        .frontend()?
        .parse(&request, context, Arc::new(NoImages));
    tracing::debug!(
        "frontend {} parsed {} ({} lines) in {:.3} ms, instantiation included",
        plugin.name(),
        request.file_name,
        request.source.lines().count(),
        started.elapsed().as_secs_f64() * 1e3
    );
    match result {
        Ok(out) => {
            let rendered = match format {
                OutputFormat::Json => serde_json::to_string_pretty(&out)? + "\n",
                OutputFormat::Text => text(&out),
            };
            write_stdout(&rendered)?;
            for w in &out.plan.warnings {
                eprintln!("{}", render_diagnostic(w));
            }
            Ok(())
        }
        Err(failure) => {
            if let (OutputFormat::Json, PluginFailure::Reported { error, .. }) = (format, &failure)
            {
                let doc = serde_json::json!({ "error": error });
                write_stdout(&(serde_json::to_string_pretty(&doc)? + "\n"))?;
            }
            Err(anyhow::Error::new(failure))
        }
    }
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(s: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| s.to_string())
}

fn command(c: &Command) -> String {
    match c {
        Command::Shell(s) => format!("shell {}", quote(s)),
        Command::Exec(v) => format!("exec {}", serde_json::to_string(v).unwrap_or_default()),
    }
}

fn mount(m: &Mount) -> String {
    let mut parts = vec![format!("type={:?}", m.kind).to_lowercase()];
    let opt = |k: &str, v: &Option<String>| v.as_ref().map(|v| format!("{k}={v}"));
    parts.extend(opt("target", &m.target));
    parts.extend(opt("source", &m.source));
    parts.extend(m.from.as_ref().map(|f| format!("from={}", source_ref(f))));
    parts.extend(opt("id", &m.id));
    parts.push(if m.read_write {
        "rw".into()
    } else {
        "ro".into()
    });
    if matches!(m.kind, MountType::Cache) {
        parts.push(format!("sharing={:?}", m.sharing).to_lowercase());
    }
    parts.extend(m.mode.map(|v| format!("mode={v:o}")));
    parts.extend(m.uid.map(|v| format!("uid={v}")));
    parts.extend(m.gid.map(|v| format!("gid={v}")));
    parts.extend(m.size.map(|v| format!("size={v}")));
    parts.extend(opt("env", &m.env));
    if m.required {
        parts.push("required".into());
    }
    parts.join(",")
}

fn source_ref(s: &SourceRef) -> String {
    match s {
        SourceRef::Stage(i) => format!("stage {i}"),
        SourceRef::Image(r) => format!("image {r}"),
    }
}

fn pairs(v: &[KeyValue]) -> String {
    v.iter()
        .map(|k| format!("{}={}", k.key, quote(&k.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The human rendering: one line per raw instruction, then the plan stage by stage.
pub fn text(out: &ParseOutput) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "raw instructions:");
    for r in &out.raw {
        let l = &r.location;
        let _ = write!(
            s,
            "  {}:{}-{}:{} {}",
            l.line, l.column, l.end_line, l.end_column, r.keyword
        );
        for f in &r.flags {
            match &f.value {
                Some(v) => {
                    let _ = write!(s, " --{}={}", f.name, quote(v));
                }
                None => {
                    let _ = write!(s, " --{}", f.name);
                }
            }
        }
        if matches!(r.keyword.as_str(), "ENV" | "LABEL") {
            for a in &r.args {
                let (k, v) = a.split_once('=').unwrap_or((a, ""));
                let _ = write!(s, " {}={}", quote(k), quote(v));
            }
        } else {
            let form = if r.exec_form { "exec" } else { "shell" };
            let _ = write!(
                s,
                " ({form}) {}",
                serde_json::to_string(&r.args).unwrap_or_default()
            );
        }
        let _ = writeln!(s);
        for h in &r.heredocs {
            let _ = writeln!(
                s,
                "      heredoc {}{}{}: {}",
                h.name,
                if h.expand { "" } else { " (no expansion)" },
                if h.strip_tabs { " (tabs stripped)" } else { "" },
                quote(&h.content)
            );
        }
    }
    let p = &out.plan;
    let _ = writeln!(s, "plan:");
    if !p.directives.is_empty() {
        let _ = writeln!(s, "  directives: {}", pairs(&p.directives));
    }
    if !p.global_args.is_empty() {
        let _ = writeln!(s, "  global args: {}", pairs(&p.global_args));
    }
    for st in &p.stages {
        let base = match &st.base {
            StageBase::Scratch => "scratch".to_string(),
            StageBase::Stage(i) => format!("stage {i}"),
            StageBase::Image(r) => format!("image {r}"),
        };
        let _ = writeln!(
            s,
            "  stage {}{}: from {base}{}{}",
            st.index,
            st.name
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            st.platform
                .as_ref()
                .map(|p| format!(" for {p}"))
                .unwrap_or_default(),
            if st.depends_on.is_empty() {
                String::new()
            } else {
                format!(", needs {:?}", st.depends_on)
            }
        );
        for step in &st.steps {
            let l = &step.location;
            let _ = writeln!(
                s,
                "    {}:{} {}{}",
                l.line,
                l.column,
                instruction(&step.instruction),
                if step.from_onbuild {
                    " (from the base image's ONBUILD)"
                } else {
                    ""
                }
            );
        }
    }
    let _ = writeln!(s, "  target: stage {}", p.target);
    let _ = writeln!(s, "  required: {:?}", p.required);
    if !p.unused_build_args.is_empty() {
        let _ = writeln!(s, "  unused build args: {}", p.unused_build_args.join(", "));
    }
    s
}

fn instruction(i: &Instruction) -> String {
    match i {
        Instruction::Run(r) => {
            let mut s = format!("RUN {}", command(&r.command));
            for m in &r.mounts {
                s.push_str(&format!(" --mount={}", mount(m)));
            }
            for f in &r.files {
                s.push_str(&format!(" file={}:{:o}", f.path, f.mode));
            }
            if !matches!(r.network, NetworkMode::Default) {
                s.push_str(&format!(" network={:?}", r.network).to_lowercase());
            }
            if matches!(r.security, SecurityMode::Insecure) {
                s.push_str(" security=insecure");
            }
            s
        }
        Instruction::Copy(c) | Instruction::Add(c) => {
            let kw = if matches!(i, Instruction::Copy(_)) {
                "COPY"
            } else {
                "ADD"
            };
            let mut s = format!("{kw} {} -> {}", json(&c.sources), quote(&c.destination));
            for f in &c.inline_sources {
                s.push_str(&format!(" inline {}={}", f.path, quote(&f.content)));
            }
            if let Some(f) = &c.from {
                s.push_str(&format!(" from {}", source_ref(f)));
            }
            for (k, v) in [
                ("chown", &c.chown),
                ("chmod", &c.chmod),
                ("checksum", &c.checksum),
            ] {
                if let Some(v) = v {
                    s.push_str(&format!(" {k}={v}"));
                }
            }
            for (k, v) in [
                ("link", c.link),
                ("parents", c.parents),
                ("keep-git-dir", c.keep_git_dir),
            ] {
                if v {
                    s.push_str(&format!(" {k}"));
                }
            }
            if !c.exclude.is_empty() {
                s.push_str(&format!(" exclude={}", json(&c.exclude)));
            }
            s
        }
        Instruction::Env(v) => format!("ENV {}", pairs(v)),
        Instruction::Label(v) => format!("LABEL {}", pairs(v)),
        Instruction::Maintainer(m) => format!("MAINTAINER {}", quote(m)),
        Instruction::Cmd(c) => format!("CMD {}", command(c)),
        Instruction::Entrypoint(c) => format!("ENTRYPOINT {}", command(c)),
        Instruction::Shell(v) => format!("SHELL {}", json(v)),
        Instruction::Expose(v) => format!("EXPOSE {}", v.join(" ")),
        Instruction::Volume(v) => format!("VOLUME {}", json(v)),
        Instruction::User(u) => format!("USER {}", quote(u)),
        Instruction::Workdir(w) => format!("WORKDIR {}", quote(w)),
        Instruction::Arg(v) => format!(
            "ARG {}",
            v.iter()
                .map(|a| match &a.value {
                    Some(val) => format!("{}={}", a.name, quote(val)),
                    None => format!("{} (unset)", a.name),
                })
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Instruction::Onbuild(t) => format!("ONBUILD {}", quote(t)),
        Instruction::Stopsignal(sig) => format!("STOPSIGNAL {sig}"),
        Instruction::Healthcheck(h) => format!(
            "HEALTHCHECK {}",
            serde_json::to_string(h).unwrap_or_default()
        ),
    }
}
