//! From raw instructions to the typed plan: stages, ARG scope, expansion where the reference applies it,
//! base-image ENV and ONBUILD triggers, stage references, the dependency graph and target selection.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{error_at, loc, suggest, warning_at};
use crate::instructions::{self as ins, Flags, KEYWORDS};
use crate::model::*;
use crate::parser::{self, Parsed};
use crate::shell::Lexer;

include!("proxy_args.rs");

/// Everything planning needs besides the raw instructions.
pub struct Planner<'a> {
    req: &'a Request,
    images: &'a dyn Images,
    lexer: Lexer,
    predefined: Vec<KeyValue>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    consumed: BTreeSet<String>,
    /// The stages whose base image is looked up (None: all). Bases of stages the target does not need are
    /// never resolved, so `--target` pulls nothing it will not build.
    resolve_for: Option<BTreeSet<usize>>,
}

struct StageHead<'r> {
    name: Option<String>,
    image: String,
    platform: Option<String>,
    location: Location,
    original: String,
    body: Vec<&'r RawInstruction>,
}

/// Stage-local scope while its steps are planned.
#[derive(Default, Clone)]
struct Scope {
    env: BTreeMap<String, String>,
    args: Vec<(String, Option<String>)>,
}

impl Scope {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.env.get(name) {
            return Some(v.clone());
        }
        self.args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    }
    fn set_env(&mut self, k: String, v: String) {
        self.env.insert(k, v);
    }
}

fn predefined(req: &Request) -> Vec<KeyValue> {
    let t = &req.target_platform;
    let b = &req.build_platform;
    vec![
        kv("TARGETPLATFORM", t.to_string_form()),
        kv("TARGETOS", &t.os),
        kv("TARGETARCH", &t.architecture),
        kv("TARGETVARIANT", t.variant.clone().unwrap_or_default()),
        kv("BUILDPLATFORM", b.to_string_form()),
        kv("BUILDOS", &b.os),
        kv("BUILDARCH", &b.architecture),
        kv("BUILDVARIANT", b.variant.clone().unwrap_or_default()),
    ]
}

/// Plan a parsed file. Errors are returned all together.
pub fn plan(req: &Request, parsed: &Parsed, images: &dyn Images) -> Result<Plan, Vec<Diagnostic>> {
    let mut p = Planner {
        req,
        images,
        lexer: Lexer::new(parsed.escape),
        predefined: predefined(req),
        errors: parsed.errors.clone(),
        warnings: Vec::new(),
        consumed: BTreeSet::new(),
        resolve_for: None,
    };
    if parsed.instructions.is_empty() {
        let mut d = error_at(
            "file with no instructions",
            loc(&req.file_name, 1, 1, 1, 1),
            "",
            "a Containerfile needs at least a FROM line, e.g. FROM alpine",
        );
        d.snippet = None;
        p.errors.push(d);
        return Err(p.errors);
    }
    for r in &parsed.instructions {
        p.check_keyword(r);
    }
    let (globals, heads) = p.split_stages(&parsed.instructions);
    if heads.is_empty() {
        if !p.errors.is_empty() {
            return Err(p.errors);
        }
        let last = parsed
            .instructions
            .last()
            .map(|r| r.location.clone())
            .unwrap_or_default();
        p.errors.push(error_at(
            "no FROM instruction: nothing to build",
            last,
            "",
            "add a FROM line after the ARGs",
        ));
        return Err(p.errors);
    }
    let global_scope = p.global_args(&globals);
    // Plan first without looking up any base image, to learn which stages the target needs; then again,
    // looking up only theirs. A base's config can change what a stage needs (ONBUILD triggers, its ENV in
    // `--from=$X`), so repeat until the needed stages are all looked up. If the first pass fails, fall back
    // to looking up every base, so no error comes from a missing base config.
    let (errors, warnings, consumed) = (p.errors.clone(), p.warnings.clone(), p.consumed.clone());
    let mut resolve_for = Some(BTreeSet::new());
    let (stages, target, required) = loop {
        p.errors = errors.clone();
        p.warnings = warnings.clone();
        p.consumed = consumed.clone();
        p.resolve_for = resolve_for.clone();
        let stages = p.stages(&heads, &global_scope);
        let planned = if p.errors.is_empty() {
            p.target(&stages, &heads).map(|t| (t, required(&stages, t)))
        } else {
            None
        };
        let Some(looked_up) = resolve_for.clone() else {
            // Every base looked up: this pass is final, whatever it says.
            if !p.errors.is_empty() {
                return Err(p.errors);
            }
            let Some((target, required)) = planned else {
                return Err(p.errors);
            };
            break (stages, target, required);
        };
        match planned {
            Some((target, Ok(required))) => {
                let need: BTreeSet<usize> = required.iter().map(|&i| i as usize).collect();
                if need.is_subset(&looked_up) {
                    break (stages, target, Ok(required));
                }
                resolve_for = Some(looked_up.union(&need).copied().collect());
            }
            _ => resolve_for = None,
        }
    };
    let required = match required {
        Ok(r) => r,
        Err(cycle) => {
            let names: Vec<String> = cycle
                .iter()
                .map(|&i| stage_label(&stages[i as usize]))
                .collect();
            let at = &stages[cycle[0] as usize];
            p.errors.push(error_at(
                format!("circular dependency between stages: {}", names.join(" -> ")),
                at.location.clone(),
                &heads[cycle[0] as usize].original,
                "a stage cannot use itself, directly or through other stages",
            ));
            return Err(p.errors);
        }
    };
    let unused = req
        .build_args
        .iter()
        .map(|a| a.key.clone())
        .filter(|k| !p.consumed.contains(k) && !PROXY_ARGS.contains(&k.as_str()))
        .fold(Vec::new(), |mut v: Vec<String>, k| {
            if !v.contains(&k) {
                v.push(k);
            }
            v
        });
    Ok(Plan {
        stages,
        target,
        required,
        directives: parsed.directives.clone(),
        global_args: global_scope
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| kv(k, v)))
            .collect(),
        unused_build_args: unused,
        warnings: p.warnings,
    })
}

fn stage_label(s: &Stage) -> String {
    s.name
        .clone()
        .unwrap_or_else(|| format!("stage {}", s.index))
}

/// The target and everything it needs, dependencies first; or a cycle.
fn required(stages: &[Stage], target: u32) -> Result<Vec<u32>, Vec<u32>> {
    // 0 = unvisited, 1 = on the current path, 2 = done
    let mut state = vec![0u8; stages.len()];
    let mut order = Vec::new();
    let mut path = Vec::new();
    fn visit(
        i: u32,
        stages: &[Stage],
        state: &mut [u8],
        order: &mut Vec<u32>,
        path: &mut Vec<u32>,
    ) -> Result<(), Vec<u32>> {
        match state[i as usize] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(i);
                return Err(cycle);
            }
            _ => {}
        }
        state[i as usize] = 1;
        path.push(i);
        for &d in &stages[i as usize].depends_on {
            visit(d, stages, state, order, path)?;
        }
        path.pop();
        state[i as usize] = 2;
        order.push(i);
        Ok(())
    }
    // Cycles anywhere are errors, even outside the target's needs, as in BuildKit.
    let mut all_state = vec![0u8; stages.len()];
    let mut all_order = Vec::new();
    for i in 0..stages.len() as u32 {
        visit(i, stages, &mut all_state, &mut all_order, &mut path)?;
    }
    visit(target, stages, &mut state, &mut order, &mut path)?;
    Ok(order)
}

impl Planner<'_> {
    fn err(&mut self, r: &RawInstruction, message: impl Into<String>, hint: impl Into<String>) {
        self.errors
            .push(error_at(message, r.location.clone(), &r.original, hint));
    }

    fn check_keyword(&mut self, r: &RawInstruction) {
        if !KEYWORDS.contains(&r.keyword.as_str()) {
            let word = r.original.split_whitespace().next().unwrap_or("");
            let hint = match suggest(&r.keyword, &KEYWORDS) {
                Some(s) => format!("did you mean {s}?"),
                None => format!("instructions are {}", KEYWORDS.join(", ")),
            };
            let msg = match suggest(&r.keyword, &KEYWORDS) {
                Some(s) => format!("unknown instruction {word:?} (did you mean {s}?)"),
                None => format!("unknown instruction {word:?}"),
            };
            self.err(r, msg, hint);
        }
    }

    fn split_stages<'r>(
        &mut self,
        all: &'r [RawInstruction],
    ) -> (Vec<&'r RawInstruction>, Vec<StageHead<'r>>) {
        let mut globals = Vec::new();
        let mut heads: Vec<StageHead<'r>> = Vec::new();
        for r in all {
            if r.keyword == "FROM" {
                if let Some(h) = self.stage_head(r, &heads) {
                    heads.push(h);
                } else {
                    heads.push(StageHead {
                        name: None,
                        image: "scratch".into(),
                        platform: None,
                        location: r.location.clone(),
                        original: r.original.clone(),
                        body: Vec::new(),
                    });
                }
            } else if let Some(h) = heads.last_mut() {
                h.body.push(r);
            } else if r.keyword == "ARG" {
                globals.push(r);
            } else if KEYWORDS.contains(&r.keyword.as_str()) {
                self.err(
                    r,
                    format!(
                        "{} before the first FROM: no build stage in current context",
                        r.keyword
                    ),
                    "only ARG may come before the first FROM",
                );
            }
        }
        (globals, heads)
    }

    fn stage_head<'r>(
        &mut self,
        r: &RawInstruction,
        heads: &[StageHead<'r>],
    ) -> Option<StageHead<'r>> {
        let flags = self.flags(r)?;
        let (image, name) = match r.args.as_slice() {
            [image] => (image.clone(), None),
            [image, as_kw, name] if as_kw.eq_ignore_ascii_case("AS") => {
                (image.clone(), Some(name.to_ascii_lowercase()))
            }
            [] => {
                self.err(
                    r,
                    "FROM requires an image",
                    "write FROM <image> [AS <name>]",
                );
                return None;
            }
            _ => {
                self.err(
                    r,
                    "FROM takes an image and optionally AS <name>",
                    "write FROM <image> [AS <name>]",
                );
                return None;
            }
        };
        if let Some(n) = &name {
            if !ins::valid_stage_name(n) {
                self.err(
                    r,
                    format!("invalid stage name {n:?}"),
                    "a stage name starts with a letter and holds letters, digits, '-', '_' and '.'",
                );
                return None;
            }
            if heads.iter().any(|h| h.name.as_deref() == Some(n)) {
                self.err(
                    r,
                    format!("duplicate stage name {n:?}"),
                    "give each stage its own name",
                );
                return None;
            }
        }
        Some(StageHead {
            name,
            image,
            platform: flags.value("platform").map(str::to_string),
            location: r.location.clone(),
            original: r.original.clone(),
            body: Vec::new(),
        })
    }

    fn flags(&mut self, r: &RawInstruction) -> Option<Flags> {
        match Flags::check(&r.keyword, &r.flags) {
            Ok(f) => Some(f),
            Err(errs) => {
                for (m, h) in errs {
                    self.err(r, m, h);
                }
                None
            }
        }
    }

    fn build_arg(&self, name: &str) -> Option<String> {
        self.req
            .build_args
            .iter()
            .rev()
            .find(|a| a.key == name)
            .map(|a| a.value.clone())
    }

    fn predefined_value(&self, name: &str) -> Option<String> {
        self.predefined
            .iter()
            .find(|a| a.key == name)
            .map(|a| a.value.clone())
    }

    /// Declare the ARGs of one instruction into `scope`; `global` gives the values of global ARGs that a
    /// stage may redeclare without a default.
    fn declare(
        &mut self,
        r: &RawInstruction,
        scope: &mut Scope,
        global: Option<&Scope>,
    ) -> Vec<ArgDecl> {
        if r.args.is_empty() {
            self.err(
                r,
                "ARG requires at least one argument",
                "write ARG <name>[=<default>]",
            );
        }
        let mut decls = Vec::new();
        // Before the first FROM, the predefined platform ARGs are usable in defaults too.
        let predefined = if global.is_none() {
            self.predefined.clone()
        } else {
            Vec::new()
        };
        for word in &r.args {
            let (raw_name, raw_default) = match word.split_once('=') {
                Some((n, d)) => (n, Some(d)),
                None => (word.as_str(), None),
            };
            let lookup = |n: &str| {
                scope.lookup(n).or_else(|| {
                    predefined
                        .iter()
                        .find(|a| a.key == n)
                        .map(|a| a.value.clone())
                })
            };
            let name = match self.lexer.word(raw_name, &lookup) {
                Ok(n) => n,
                Err(e) => {
                    let hint = self.lexer.hint(&e).unwrap_or_default();
                    self.err(r, e, hint);
                    continue;
                }
            };
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                self.err(
                    r,
                    format!("invalid ARG name {name:?}"),
                    "use letters, digits and '_'",
                );
                continue;
            }
            let default = match raw_default.map(|d| self.lexer.word(d, &lookup)) {
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    let hint = self.lexer.hint(&e).unwrap_or_default();
                    self.err(r, format!("ARG {name}: {e}"), hint);
                    continue;
                }
                None => None,
            };
            self.consumed.insert(name.clone());
            let value = if let Some(v) = self.predefined_value(&name) {
                Some(v)
            } else if let Some(v) = self.build_arg(&name) {
                Some(v)
            } else if default.is_some() {
                default
            } else {
                global.and_then(|g| {
                    g.args
                        .iter()
                        .rev()
                        .find(|(k, _)| *k == name)
                        .and_then(|(_, v)| v.clone())
                })
            };
            scope.args.retain(|(k, _)| *k != name);
            scope.args.push((name.clone(), value.clone()));
            decls.push(ArgDecl { name, value });
        }
        decls
    }

    fn global_args(&mut self, globals: &[&RawInstruction]) -> Scope {
        let mut scope = Scope::default();
        for r in globals {
            if self.flags(r).is_some() {
                self.declare(r, &mut scope, None);
            }
        }
        scope
    }

    /// Look a name up for FROM lines: global ARGs, then the predefined platform ARGs.
    fn global_lookup(&self, g: &Scope, name: &str) -> Option<String> {
        g.lookup(name).or_else(|| self.predefined_value(name))
    }

    fn stages(&mut self, heads: &[StageHead], global: &Scope) -> Vec<Stage> {
        // Expand FROM lines and resolve bases.
        let mut bases = Vec::new();
        let mut platforms = Vec::new();
        let mut bad = false;
        for (i, h) in heads.iter().enumerate() {
            let lookup = |n: &str| self.global_lookup(global, n);
            let image = self.lexer.word(&h.image, &lookup);
            let platform = h
                .platform
                .as_ref()
                .map(|p| self.lexer.word(p, &lookup))
                .transpose();
            let snippet_err = |s: &mut Self, m: String| {
                let hint = s.lexer.hint(&m).unwrap_or_else(|| {
                    "define the variable with ARG before the first FROM, or give it a default"
                        .into()
                });
                s.errors
                    .push(error_at(m, h.location.clone(), &h.original, hint));
            };
            let image = match image {
                Ok(v) if v.is_empty() => {
                    snippet_err(
                        self,
                        format!("FROM {}: the image name expands to nothing", h.image),
                    );
                    None
                }
                Ok(v) => Some(v),
                Err(e) => {
                    snippet_err(self, format!("FROM: {e}"));
                    None
                }
            };
            match platform {
                Ok(Some(p)) if Platform::parse(&p).is_none() => {
                    self.errors.push(error_at(
                        format!("FROM --platform={p}: not a platform"),
                        h.location.clone(),
                        &h.original,
                        "write os/arch[/variant], e.g. linux/arm64",
                    ));
                    platforms.push(None);
                    bad = true;
                }
                Ok(p) => platforms.push(p),
                Err(e) => {
                    snippet_err(self, format!("FROM --platform: {e}"));
                    platforms.push(None);
                    bad = true;
                }
            }
            let Some(image) = image else {
                bad = true;
                bases.push(StageBase::Scratch);
                continue;
            };
            let lower = image.to_ascii_lowercase();
            let base = if lower == "scratch" {
                StageBase::Scratch
            } else if let Some(j) = heads
                .iter()
                .position(|o| o.name.as_deref() == Some(lower.as_str()))
            {
                if j == i {
                    self.errors.push(error_at(
                        format!("stage {lower:?} uses itself as its base"),
                        h.location.clone(),
                        &h.original,
                        "name the base image or an earlier stage",
                    ));
                    bad = true;
                    bases.push(StageBase::Scratch);
                    continue;
                }
                StageBase::Stage(j as u32)
            } else {
                StageBase::Image(image)
            };
            bases.push(base);
        }
        if bad {
            return Vec::new();
        }
        // Plan stages with their base before them (bases may name later stages).
        let n = heads.len();
        let mut order = Vec::new();
        let mut state = vec![0u8; n];
        for i in 0..n {
            let mut chain = Vec::new();
            let mut cur = i;
            loop {
                if state[cur] == 2 {
                    break;
                }
                if chain.contains(&cur) {
                    let names: Vec<String> = chain
                        .iter()
                        .chain(std::iter::once(&cur))
                        .map(|&c| {
                            heads[c]
                                .name
                                .clone()
                                .unwrap_or_else(|| format!("stage {c}"))
                        })
                        .collect();
                    self.errors.push(error_at(
                        format!("circular dependency between stages: {}", names.join(" -> ")),
                        heads[cur].location.clone(),
                        &heads[cur].original,
                        "a stage cannot be built on itself, directly or through other stages",
                    ));
                    return Vec::new();
                }
                chain.push(cur);
                match bases[cur] {
                    StageBase::Stage(j) => cur = j as usize,
                    _ => break,
                }
            }
            for &c in chain.iter().rev() {
                if state[c] != 2 {
                    state[c] = 2;
                    order.push(c);
                }
            }
        }
        let mut planned: Vec<Option<(Stage, Scope)>> = vec![None; n];
        for i in order {
            let base_scope = match &bases[i] {
                StageBase::Stage(j) => planned[*j as usize].as_ref().map(|(_, s)| Scope {
                    env: s.env.clone(),
                    args: Vec::new(),
                }),
                _ => None,
            };
            let stage = self.stage(i, heads, &bases, &platforms[i], global, base_scope);
            planned[i] = Some(stage);
        }
        planned.into_iter().flatten().map(|(s, _)| s).collect()
    }

    fn stage(
        &mut self,
        index: usize,
        heads: &[StageHead],
        bases: &[StageBase],
        platform: &Option<String>,
        global: &Scope,
        base_scope: Option<Scope>,
    ) -> (Stage, Scope) {
        let h = &heads[index];
        let mut scope = base_scope.unwrap_or_default();
        let mut triggers = Vec::new();
        let look_up = self.resolve_for.as_ref().is_none_or(|s| s.contains(&index));
        if let StageBase::Image(reference) = &bases[index]
            && look_up
        {
            let plat = platform
                .as_deref()
                .and_then(Platform::parse)
                .unwrap_or_else(|| self.req.target_platform.clone());
            match self.images.resolve(reference, &plat) {
                Ok(Some(img)) => {
                    for e in &img.env {
                        if let Some((k, v)) = e.split_once('=') {
                            scope.set_env(k.to_string(), v.to_string());
                        }
                    }
                    triggers = img.on_build.clone();
                }
                Ok(None) => {}
                Err(e) => self.errors.push(error_at(
                    format!("looking up base image {reference}: {e}"),
                    h.location.clone(),
                    &h.original,
                    "check the image reference and that lade may pull it",
                )),
            }
        }
        let mut steps = Vec::new();
        let mut deps = BTreeSet::new();
        if let StageBase::Stage(j) = bases[index] {
            deps.insert(j);
        }
        let ctx = StageCtx {
            index: index as u32,
            heads,
        };
        for trigger in &triggers {
            let parsed = parser::parse(trigger, &self.req.file_name);
            for mut r in parsed.instructions {
                r.location = h.location.clone();
                self.check_keyword(&r);
                if let Some(step) = self.step(&r, &mut scope, global, &ctx, &mut deps) {
                    steps.push(Step {
                        from_onbuild: true,
                        ..step
                    });
                }
            }
            for mut e in parsed.errors {
                e.message = format!(
                    "ONBUILD trigger {trigger:?} of the base image: {}",
                    e.message
                );
                e.location = Some(h.location.clone());
                self.errors.push(e);
            }
        }
        for r in &h.body {
            if let Some(step) = self.step(r, &mut scope, global, &ctx, &mut deps) {
                steps.push(step);
            }
        }
        let stage = Stage {
            index: index as u32,
            name: h.name.clone(),
            base: bases[index].clone(),
            platform: platform.clone(),
            steps,
            depends_on: deps.into_iter().collect(),
            location: h.location.clone(),
        };
        (stage, scope)
    }

    fn step_args(&self, scope: &Scope) -> Vec<KeyValue> {
        let mut out: Vec<KeyValue> = scope
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| kv(k, v)))
            .collect();
        for p in PROXY_ARGS {
            if !out.iter().any(|a| a.key == p)
                && let Some(v) = self.build_arg(p)
            {
                out.push(kv(p, v));
            }
        }
        out
    }

    fn expand(&mut self, r: &RawInstruction, scope: &Scope, word: &str) -> Option<String> {
        let lookup = |n: &str| scope.lookup(n);
        match self.lexer.word(word, &lookup) {
            Ok(v) => Some(v),
            Err(e) => {
                let hint = self.lexer.hint(&e).unwrap_or_else(|| {
                    "define the variable with ARG or ENV, or give it a default".into()
                });
                self.err(r, format!("{}: {e}", r.keyword), hint);
                None
            }
        }
    }

    fn step(
        &mut self,
        r: &RawInstruction,
        scope: &mut Scope,
        global: &Scope,
        ctx: &StageCtx,
        deps: &mut BTreeSet<u32>,
    ) -> Option<Step> {
        if !KEYWORDS.contains(&r.keyword.as_str()) {
            return None;
        }
        let flags = self.flags(r)?;
        let build_args = self.step_args(scope);
        let instruction = match r.keyword.as_str() {
            "RUN" => Instruction::Run(self.run(r, &flags, scope, ctx, deps)?),
            "COPY" | "ADD" => {
                let c = self.copy(r, &flags, scope, ctx, deps)?;
                if r.keyword == "COPY" {
                    Instruction::Copy(c)
                } else {
                    Instruction::Add(c)
                }
            }
            "ENV" | "LABEL" => {
                let mut pairs = Vec::new();
                for pair in &r.args {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let (k, v) = (self.expand(r, scope, k)?, self.expand(r, scope, v)?);
                    if k.is_empty() {
                        self.err(
                            r,
                            format!("{} names can not be blank", r.keyword),
                            "write name=value",
                        );
                        return None;
                    }
                    pairs.push(kv(k, v));
                }
                if r.keyword == "ENV" {
                    let legacy = r
                        .original
                        .split_whitespace()
                        .nth(1)
                        .is_some_and(|w| !w.contains('='));
                    if legacy {
                        self.warnings.push(warning_at(
                            "legacy \"ENV key value\" form",
                            r.location.clone(),
                            &r.original,
                            "write ENV key=value",
                        ));
                    }
                    for p in &pairs {
                        scope.set_env(p.key.clone(), p.value.clone());
                    }
                    Instruction::Env(pairs)
                } else {
                    Instruction::Label(pairs)
                }
            }
            "MAINTAINER" => {
                self.warnings.push(warning_at(
                    "MAINTAINER is deprecated",
                    r.location.clone(),
                    &r.original,
                    "use LABEL org.opencontainers.image.authors=\"...\"",
                ));
                Instruction::Maintainer(self.single(r)?)
            }
            "CMD" | "ENTRYPOINT" => {
                let cmd = if r.exec_form {
                    Command::Exec(r.args.clone())
                } else {
                    Command::Shell(r.args.join(" "))
                };
                if r.keyword == "CMD" {
                    Instruction::Cmd(cmd)
                } else {
                    Instruction::Entrypoint(cmd)
                }
            }
            "SHELL" => {
                if r.args.is_empty() {
                    self.err(
                        r,
                        "SHELL requires at least one argument",
                        "write SHELL [\"/bin/sh\", \"-c\"]",
                    );
                    return None;
                }
                Instruction::Shell(r.args.clone())
            }
            "EXPOSE" => {
                if r.args.is_empty() {
                    self.err(
                        r,
                        "EXPOSE requires at least one argument",
                        "write EXPOSE <port>[/<protocol>]",
                    );
                    return None;
                }
                let mut ports = Vec::new();
                for a in &r.args {
                    let lookup = |n: &str| scope.lookup(n);
                    let words = match self.lexer.words(a, &lookup) {
                        Ok(w) => w,
                        Err(e) => {
                            let hint = self.lexer.hint(&e).unwrap_or_default();
                            self.err(r, format!("EXPOSE: {e}"), hint);
                            return None;
                        }
                    };
                    for w in words {
                        match ins::expose(&w) {
                            Ok(p) => ports.extend(p),
                            Err(e) => {
                                self.err(
                                    r,
                                    e,
                                    "write EXPOSE 80, EXPOSE 53/udp or EXPOSE 8000-8010/tcp",
                                );
                                return None;
                            }
                        }
                    }
                }
                Instruction::Expose(ports)
            }
            "VOLUME" => {
                let mut vols = Vec::new();
                for a in &r.args {
                    let v = self.expand(r, scope, a)?;
                    if v.trim().is_empty() {
                        self.err(
                            r,
                            "VOLUME specified can not be an empty string",
                            "name a path, e.g. VOLUME /data",
                        );
                        return None;
                    }
                    vols.push(v);
                }
                if vols.is_empty() {
                    self.err(
                        r,
                        "VOLUME requires at least one argument",
                        "name a path, e.g. VOLUME /data",
                    );
                    return None;
                }
                Instruction::Volume(vols)
            }
            "USER" | "STOPSIGNAL" => {
                if r.args.len() != 1 {
                    self.err(
                        r,
                        format!("{} requires exactly one argument", r.keyword),
                        match r.keyword.as_str() {
                            "USER" => "write USER <user>[:<group>]",
                            _ => "write STOPSIGNAL SIGTERM (a name or a number)",
                        },
                    );
                    return None;
                }
                let v = self.expand(r, scope, &r.args[0])?;
                if r.keyword == "USER" {
                    Instruction::User(v)
                } else if ins::valid_signal(&v) {
                    Instruction::Stopsignal(v)
                } else {
                    self.err(
                        r,
                        format!("STOPSIGNAL {v}: not a signal"),
                        "write a signal name such as SIGTERM or SIGQUIT, or a number from 1 to 64",
                    );
                    return None;
                }
            }
            "WORKDIR" => {
                let raw = self.single(r)?;
                let v = self.expand(r, scope, &raw)?;
                if v.is_empty() {
                    self.err(
                        r,
                        "WORKDIR expands to an empty path",
                        "name a directory, e.g. WORKDIR /app",
                    );
                    return None;
                }
                Instruction::Workdir(v)
            }
            "ARG" => Instruction::Arg(self.declare(r, scope, Some(global))),
            "ONBUILD" => Instruction::Onbuild(self.onbuild(r)?),
            "HEALTHCHECK" => Instruction::Healthcheck(self.healthcheck(r, &flags)?),
            _ => return None,
        };
        Some(Step {
            instruction,
            original: r.original.clone(),
            location: r.location.clone(),
            build_args,
            from_onbuild: false,
        })
    }

    fn single(&mut self, r: &RawInstruction) -> Option<String> {
        match r.args.first() {
            Some(a) if !a.is_empty() => Some(a.clone()),
            _ => {
                self.err(r, format!("{} requires an argument", r.keyword), "");
                None
            }
        }
    }

    fn onbuild(&mut self, r: &RawInstruction) -> Option<String> {
        let trigger = self.single(r)?;
        let parsed = parser::parse(&trigger, "ONBUILD");
        let Some(first) = parsed.instructions.first() else {
            self.err(
                r,
                "ONBUILD requires an instruction",
                "write ONBUILD <INSTRUCTION> ...",
            );
            return None;
        };
        match first.keyword.as_str() {
            "ONBUILD" => self.err(r, "chaining ONBUILD via ONBUILD ONBUILD isn't allowed", ""),
            "FROM" | "MAINTAINER" => self.err(
                r,
                format!("{} isn't allowed as an ONBUILD trigger", first.keyword),
                "",
            ),
            k if !KEYWORDS.contains(&k) => {
                let hint = suggest(k, &KEYWORDS)
                    .map(|s| format!("did you mean {s}?"))
                    .unwrap_or_default();
                self.err(r, format!("unknown instruction {k:?} in ONBUILD"), hint)
            }
            _ => {
                if let Err(errs) = Flags::check(&first.keyword, &first.flags) {
                    for (m, h) in errs {
                        self.err(r, m, h);
                    }
                } else if parsed.errors.is_empty() {
                    return Some(trigger.trim().to_string());
                } else {
                    for e in parsed.errors {
                        self.err(
                            r,
                            format!("ONBUILD: {}", e.message),
                            e.hint.unwrap_or_default(),
                        );
                    }
                }
            }
        }
        None
    }

    fn healthcheck(&mut self, r: &RawInstruction, flags: &Flags) -> Option<HealthCheck> {
        let Some(kind) = r.args.first() else {
            self.err(
                r,
                "HEALTHCHECK requires an argument",
                "write HEALTHCHECK NONE or HEALTHCHECK [options] CMD <command>",
            );
            return None;
        };
        if kind.eq_ignore_ascii_case("NONE") {
            if r.args.len() > 1 || !r.flags.is_empty() {
                self.err(
                    r,
                    "HEALTHCHECK NONE takes no other arguments",
                    "write HEALTHCHECK NONE alone",
                );
                return None;
            }
            return Some(HealthCheck {
                test: vec!["NONE".into()],
                ..Default::default()
            });
        }
        if !kind.eq_ignore_ascii_case("CMD") {
            self.err(
                r,
                format!("unknown type {kind:?} in HEALTHCHECK"),
                "try HEALTHCHECK CMD <command> or HEALTHCHECK NONE",
            );
            return None;
        }
        let rest = &r.args[1..];
        if rest.is_empty() {
            self.err(
                r,
                "HEALTHCHECK CMD requires a command",
                "write HEALTHCHECK CMD curl -f http://localhost/",
            );
            return None;
        }
        let test = if r.exec_form {
            std::iter::once("CMD".to_string())
                .chain(rest.iter().cloned())
                .collect()
        } else {
            vec!["CMD-SHELL".to_string(), rest.join(" ")]
        };
        let mut hc = HealthCheck {
            test,
            ..Default::default()
        };
        for (name, slot) in [
            ("interval", &mut hc.interval),
            ("timeout", &mut hc.timeout),
            ("start-period", &mut hc.start_period),
            ("start-interval", &mut hc.start_interval),
        ] {
            if let Some(v) = flags.value(name) {
                match ins::duration(v) {
                    Ok(0) => {}
                    Ok(d) if d < 1_000_000 => {
                        self.err(
                            r,
                            format!("--{name}={v} is shorter than the minimum of 1ms"),
                            "",
                        );
                        return None;
                    }
                    Ok(d) => *slot = Some(d),
                    Err(e) => {
                        self.err(r, format!("--{name}: {e}"), "");
                        return None;
                    }
                }
            }
        }
        if let Some(v) = flags.value("retries") {
            match v.parse::<u32>() {
                Ok(0) => {}
                Ok(n) => hc.retries = Some(n),
                Err(_) => {
                    self.err(
                        r,
                        format!("--retries={v}: expected a whole number of at least 0"),
                        "",
                    );
                    return None;
                }
            }
        }
        Some(hc)
    }

    /// Resolve a `--from` value (expanded): a stage index, a stage name, or an image.
    fn source_ref(
        &mut self,
        r: &RawInstruction,
        value: &str,
        ctx: &StageCtx,
        deps: &mut BTreeSet<u32>,
    ) -> Option<SourceRef> {
        if value.is_empty() {
            self.err(
                r,
                "--from expands to an empty value",
                "name a stage or an image",
            );
            return None;
        }
        if let Ok(n) = value.parse::<u32>() {
            if n >= ctx.index {
                self.err(
                    r,
                    format!("--from={value} refers to stage {n}, which does not come before this one (stage {})", ctx.index),
                    "use the index of an earlier stage, or its name",
                );
                return None;
            }
            deps.insert(n);
            return Some(SourceRef::Stage(n));
        }
        let lower = value.to_ascii_lowercase();
        if let Some(j) = ctx
            .heads
            .iter()
            .position(|h| h.name.as_deref() == Some(lower.as_str()))
        {
            if j as u32 == ctx.index {
                self.err(
                    r,
                    format!("--from={value} refers to the stage it is in"),
                    "name another stage or an image",
                );
                return None;
            }
            deps.insert(j as u32);
            return Some(SourceRef::Stage(j as u32));
        }
        Some(SourceRef::Image(value.to_string()))
    }

    fn run(
        &mut self,
        r: &RawInstruction,
        flags: &Flags,
        scope: &Scope,
        ctx: &StageCtx,
        deps: &mut BTreeSet<u32>,
    ) -> Option<RunStep> {
        let network = ins::network(flags.value("network"))
            .map_err(|e| self.err(r, e, ""))
            .ok()?;
        let security = ins::security(flags.value("security"))
            .map_err(|e| self.err(r, e, ""))
            .ok()?;
        let mut mounts = Vec::new();
        for spec in flags.all("mount") {
            let spec = self.expand(r, scope, spec)?;
            let parsed = match ins::mount(&spec) {
                Ok(m) => m,
                Err(e) => {
                    self.err(r, format!("--mount={spec}: {e}"), "see the RUN --mount reference: type=bind|cache|tmpfs|secret|ssh,target=...");
                    return None;
                }
            };
            let mut m = parsed.mount;
            if let Some(from) = parsed.from {
                m.from = Some(self.source_ref(r, &from, ctx, deps)?);
            }
            mounts.push(m);
        }
        if r.args.is_empty() {
            self.err(
                r,
                "RUN requires a command",
                "write RUN <command> or RUN [\"executable\", \"arg\"]",
            );
            return None;
        }
        let mut files = Vec::new();
        let command = if r.heredocs.is_empty() {
            if r.exec_form {
                Command::Exec(r.args.clone())
            } else {
                Command::Shell(r.args.join(" "))
            }
        } else if r.exec_form {
            self.err(
                r,
                "heredocs are only valid with the shell form of RUN",
                "write RUN <<EOF ... without the JSON array",
            );
            return None;
        } else {
            let cmd = r.args.join(" ");
            let lone =
                r.heredocs.len() == 1 && parser::words(cmd.trim(), self.lexer.escape).len() == 1;
            if lone {
                let doc = &r.heredocs[0];
                if doc.content.starts_with("#!") {
                    let path = format!("/dev/pipes/{}", doc.name);
                    files.push(InlineFile {
                        path: path.clone(),
                        content: doc.content.clone(),
                        mode: 0o755,
                    });
                    Command::Exec(vec![path])
                } else {
                    Command::Shell(doc.content.clone())
                }
            } else {
                let mut script = cmd;
                for doc in &r.heredocs {
                    script.push('\n');
                    script.push_str(&doc.content);
                    script.push_str(&doc.name);
                }
                Command::Shell(script)
            }
        };
        Some(RunStep {
            command,
            files,
            mounts,
            network,
            security,
        })
    }

    fn copy(
        &mut self,
        r: &RawInstruction,
        flags: &Flags,
        scope: &Scope,
        ctx: &StageCtx,
        deps: &mut BTreeSet<u32>,
    ) -> Option<CopyStep> {
        if r.args.len() < 2 {
            self.err(
                r,
                format!(
                    "{} requires at least two arguments, a source and a destination",
                    r.keyword
                ),
                format!("write {} <src>... <dest>", r.keyword),
            );
            return None;
        }
        let mut c = CopyStep::default();
        let (dest, srcs) = r.args.split_last()?;
        c.destination = self.expand(r, scope, dest)?;
        let mut used_docs = 0;
        for s in srcs {
            let doc = if r.exec_form {
                None
            } else {
                heredoc_for(s, &r.heredocs)
            };
            if let Some(doc) = doc {
                used_docs += 1;
                let content = if doc.expand {
                    self.expand(r, scope, &doc.content)?
                } else {
                    doc.content.clone()
                };
                c.inline_sources.push(InlineFile {
                    path: doc.name.clone(),
                    content,
                    mode: 0o644,
                });
            } else {
                c.sources.push(self.expand(r, scope, s)?);
            }
        }
        let _ = used_docs;
        if let Some(from) = flags.value("from") {
            let from = self.expand(r, scope, from)?;
            c.from = Some(self.source_ref(r, &from, ctx, deps)?);
        }
        if let Some(v) = flags.value("chown") {
            c.chown = Some(self.expand(r, scope, v)?);
        }
        if let Some(v) = flags.value("chmod") {
            let v = self.expand(r, scope, v)?;
            if !valid_chmod(&v) {
                self.err(
                    r,
                    format!("--chmod={v}: not an octal or symbolic mode"),
                    "write --chmod=0755 or --chmod=u+x,g-w",
                );
                return None;
            }
            if let Ok(m) = u32::from_str_radix(&v, 8) {
                for f in &mut c.inline_sources {
                    f.mode = m;
                }
            }
            c.chmod = Some(v);
        }
        if let Some(v) = flags.value("checksum") {
            let v = self.expand(r, scope, v)?;
            let ok = v.split_once(':').is_some_and(|(alg, hex)| {
                matches!(alg, "sha256" | "sha384" | "sha512")
                    && !hex.is_empty()
                    && hex.chars().all(|c| c.is_ascii_hexdigit())
            });
            // For a git repository the checksum is the commit (a hex prefix of at least 7 digits).
            let git = !c.sources.is_empty() && c.sources.iter().all(|s| is_git_address(s));
            let commit =
                git && (7..=64).contains(&v.len()) && v.chars().all(|c| c.is_ascii_hexdigit());
            if !ok && !commit {
                self.err(
                    r,
                    format!("--checksum={v}: expected sha256:<hex>"),
                    "for a git source, the commit sha",
                );
                return None;
            }
            c.checksum = Some(v);
        }
        for e in flags.all("exclude") {
            c.exclude.push(self.expand(r, scope, e)?);
        }
        c.link = flags.bool("link");
        c.parents = flags.bool("parents");
        c.keep_git_dir = flags.bool("keep-git-dir");
        if c.sources.is_empty() && c.inline_sources.is_empty() {
            self.err(r, format!("{} has no source", r.keyword), "");
            return None;
        }
        Some(c)
    }

    fn target(&mut self, stages: &[Stage], heads: &[StageHead]) -> Option<u32> {
        let Some(t) = &self.req.target else {
            return Some(stages.len() as u32 - 1);
        };
        let lower = t.to_ascii_lowercase();
        if let Some(i) = heads
            .iter()
            .position(|h| h.name.as_deref() == Some(lower.as_str()))
        {
            return Some(i as u32);
        }
        if let Ok(i) = t.parse::<u32>()
            && (i as usize) < stages.len()
        {
            return Some(i);
        }
        let names: Vec<&str> = heads.iter().filter_map(|h| h.name.as_deref()).collect();
        let hint = match suggest(&lower, &names) {
            Some(s) => format!("did you mean {s}?"),
            None if names.is_empty() => format!(
                "no stage has a name; use an index from 0 to {}",
                stages.len() - 1
            ),
            None => format!("stages are named {}", names.join(", ")),
        };
        self.errors.push(Diagnostic {
            severity: Severity::Error,
            message: format!("target stage {t:?} could not be found"),
            location: None,
            snippet: None,
            hint: Some(hint),
        });
        None
    }
}

struct StageCtx<'a> {
    index: u32,
    heads: &'a [StageHead<'a>],
}

fn heredoc_for<'a>(word: &str, docs: &'a [Heredoc]) -> Option<&'a Heredoc> {
    let digits = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let spec = word[digits..].strip_prefix("<<")?;
    let spec = spec.strip_prefix('-').unwrap_or(spec);
    let name: String = spec.chars().filter(|c| *c != '"' && *c != '\'').collect();
    docs.iter().find(|d| d.name == name)
}

fn valid_chmod(v: &str) -> bool {
    if !v.is_empty() && v.chars().all(|c| ('0'..='7').contains(&c)) {
        return u32::from_str_radix(v, 8).is_ok_and(|m| m <= 0o7777);
    }
    !v.is_empty()
        && v.split(',').all(|clause| {
            let ops = clause.trim_start_matches(['u', 'g', 'o', 'a']);
            !ops.is_empty()
                && ops.starts_with(['+', '-', '='])
                && ops.chars().all(|c| "+-=rwxXstugo".contains(c))
        })
}

/// A git repository address as ADD takes it: `git@host:…`, `git://`, `ssh://`, or an http(s) URL whose
/// path ends in `.git` (optionally followed by `#ref[:subdir]`).
fn is_git_address(s: &str) -> bool {
    if s.starts_with("git@") || s.starts_with("git://") || s.starts_with("ssh://") {
        return true;
    }
    (s.starts_with("https://") || s.starts_with("http://"))
        && s.split('#').next().is_some_and(|u| u.ends_with(".git"))
}
