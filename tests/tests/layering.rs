//! The module layering of `host/src` is a checked fact: ARCHITECTURE.md draws the layers (the block after
//! `<!-- layers -->`), and this test reads every `crate::` path in the code and fails on an import that runs
//! upward, on any cycle between top-level modules, and on a top-level module the drawing does not place.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Layer number of every top-level module, from ARCHITECTURE.md: lines `N  mod mod ...` in the fenced
/// block right after the `<!-- layers -->` marker (a `#` starts a comment).
fn drawn_layers(arch: &str) -> BTreeMap<String, u32> {
    let after = arch
        .split("<!-- layers -->")
        .nth(1)
        .expect("ARCHITECTURE.md has a `<!-- layers -->` marker before the layer drawing");
    let block = after
        .split("```")
        .nth(1)
        .expect("a fenced block follows the `<!-- layers -->` marker");
    let mut out = BTreeMap::new();
    for line in block.lines() {
        let mut words = line.split('#').next().unwrap_or("").split_whitespace();
        let Some(n) = words.next().and_then(|w| w.parse::<u32>().ok()) else {
            continue;
        };
        for m in words {
            assert!(
                out.insert(m.to_string(), n).is_none(),
                "ARCHITECTURE.md places module {m} twice"
            );
        }
    }
    assert!(!out.is_empty(), "no layers read from ARCHITECTURE.md");
    out
}

/// The code of a Rust file with comments and string literals blanked, so only real paths count.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            // A string literal (raw strings in this code base hold no `crate::`, so a plain scan will do).
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal such as '"' or '\n' (lifetimes are left alone).
            let end = b[i + 1..]
                .iter()
                .position(|&c| c == b'\'')
                .map_or(i + 1, |p| i + 2 + p);
            out.push_str("' '");
            i = end;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The top-level modules a piece of code names through `crate::`, including `use crate::{a, b::c}`.
fn imported_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (pos, _) in code.match_indices("crate::") {
        if pos > 0 {
            let before = code.as_bytes()[pos - 1];
            if before.is_ascii_alphanumeric() || before == b'_' {
                continue; // `foo_crate::` or `$crate::`-like names
            }
        }
        let rest = &code[pos + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::x, b, c::{..}}`: the first segment of every path at depth one.
            let mut depth = 1;
            let mut at_start = true;
            let mut i = 0;
            let g = group.as_bytes();
            while i < g.len() && depth > 0 {
                match g[i] {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    b',' if depth == 1 => at_start = true,
                    c if at_start && (c.is_ascii_alphabetic() || c == b'_') => {
                        let name = ident(&group[i..]);
                        i += name.len();
                        out.insert(name);
                        at_start = false;
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn host_modules_import_only_downward_and_form_no_cycle() {
    let ws = lade_tests::workspace();
    let layers = drawn_layers(&fs::read_to_string(ws.join("ARCHITECTURE.md")).unwrap());
    let src = ws.join("host/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();

    // module -> imported module -> one file that does it
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel.iter().next().unwrap().to_str().unwrap();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let Some(&from) = layers.get(&module) else {
            problems.push(format!(
                "host/src/{} belongs to module `{module}`, which ARCHITECTURE.md's layer drawing does not place",
                rel.display()
            ));
            continue;
        };
        let code = code_only(&fs::read_to_string(f).unwrap());
        for to in imported_modules(&code) {
            if to == module {
                continue;
            }
            let Some(&layer) = layers.get(&to) else {
                problems.push(format!(
                    "host/src/{} uses crate::{to}, a module ARCHITECTURE.md does not place",
                    rel.display()
                ));
                continue;
            };
            if layer > from {
                problems.push(format!(
                    "host/src/{} ({module}, layer {from}) imports {to} (layer {layer}): an upward import",
                    rel.display()
                ));
            }
            edges
                .entry(module.clone())
                .or_default()
                .entry(to)
                .or_insert_with(|| format!("host/src/{}", rel.display()));
        }
    }
    // Cycles, within a layer too: a depth-first search that reports the first cycle it meets.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for next in edges.get(m).into_iter().flat_map(|e| e.keys()) {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|s| s == next).unwrap();
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in edges.keys() {
        if state.get(m.as_str()).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(m, &edges, &mut state, &mut Vec::new())
        {
            let hops: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {} ({})", w[0], w[1], edges[&w[0]][&w[1]]))
                .collect();
            problems.push(format!("an import cycle: {}", hops.join(", ")));
            break;
        }
    }
    assert!(
        problems.is_empty(),
        "the layering in ARCHITECTURE.md is broken:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths_but_not_comments() {
    let code = code_only(
        "use crate::{oci::{Digest, media}, store::Store};\n\
         // crate::build is only mentioned here\n\
         let s = \"crate::cli\";\n\
         let x = crate::layer::unpack(); let c = '\"'; let y = crate::paths::root();",
    );
    let got: Vec<String> = imported_modules(&code).into_iter().collect();
    assert_eq!(got, ["layer", "oci", "paths", "store"]);
}
