//! Splicing: every `INCLUDE <path>` instruction is replaced by the lines of that file from the build context,
//! recursively, and each line of the result remembers the file and line it came from.
//!
//! INCLUDE instructions are found with the Dockerfile parser, so an `INCLUDE` word inside a heredoc, a
//! continued line or a comment is left alone, exactly as the Dockerfile frontend would read it.

use lade_dockerfile::diag::{error_at, loc};
use lade_dockerfile::model::{Diagnostic, Location, RawInstruction};
use lade_dockerfile::parser;
use lade_plugin_sdk::Tree;

/// How deep includes may nest (a cycle is reported before this; this bounds a long chain).
pub const MAX_DEPTH: usize = 32;
/// The spliced text's largest size, so a file included many times over cannot exhaust memory.
pub const MAX_BYTES: usize = 4 << 20;

/// The spliced definition: one text, and where each of its lines came from.
#[derive(Debug, Default)]
pub struct Spliced {
    pub text: String,
    /// For line `n` (1-based) of `text`, `origins[n - 1]` is (index in `files`, line in that file).
    pub origins: Vec<(usize, u32)>,
    /// The files that contributed, the main file first.
    pub files: Vec<String>,
}

impl Spliced {
    /// A location in the spliced text, moved back to the file and line it came from.
    pub fn map(&self, l: &Location) -> Location {
        let origin = |line: u32| {
            line.checked_sub(1)
                .and_then(|i| self.origins.get(i as usize))
                .copied()
        };
        let Some((file, line)) = origin(l.line) else {
            return l.clone();
        };
        // A span that runs on into another file (a continuation at an included file's end) ends where its
        // first line does.
        let (end_line, end_column) = match origin(l.end_line) {
            Some((f, e)) if f == file => (e, l.end_column),
            _ => (line, l.column),
        };
        loc(&self.files[file], line, l.column, end_line, end_column)
    }
}

/// One INCLUDE being expanded: the file that says it, where, and what it names.
struct Frame {
    file: String,
    line: u32,
    target: String,
}

struct Splicer<'a, T: Tree> {
    tree: &'a T,
    out: Spliced,
    /// The chain of includes being expanded, outermost first.
    stack: Vec<Frame>,
}

/// Splice `source` (the file `file_name`), reading included files from `tree`.
pub fn splice(tree: &impl Tree, source: &str, file_name: &str) -> Result<Spliced, Diagnostic> {
    let mut s = Splicer {
        tree,
        out: Spliced::default(),
        stack: Vec::new(),
    };
    // Compared by its context-relative path (to find cycles back to it), shown as the user named it.
    s.file(
        source,
        &normalize(file_name).unwrap_or_else(|| file_name.to_string()),
    )?;
    s.out.files[0] = file_name.to_string();
    Ok(s.out)
}

impl<T: Tree> Splicer<'_, T> {
    fn file(&mut self, source: &str, name: &str) -> Result<(), Diagnostic> {
        let index = self.out.files.len();
        self.out.files.push(name.to_string());
        let includes: Vec<RawInstruction> = parser::parse(source, name)
            .instructions
            .into_iter()
            .filter(|r| r.keyword == "INCLUDE")
            .collect();
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        let lines: Vec<&str> = source.split('\n').collect();
        let mut next = includes.iter().peekable();
        let mut n = 0usize;
        while n < lines.len() {
            let number = n as u32 + 1;
            match next.peek() {
                Some(r) if r.location.line == number => {
                    self.include(r, name)?;
                    n = r.location.end_line.max(number) as usize;
                    next.next();
                }
                _ => {
                    // The file's last piece after its final newline is no line of its own.
                    if n + 1 == lines.len() && lines[n].is_empty() {
                        break;
                    }
                    self.push_line(lines[n], index, number)?;
                    n += 1;
                }
            }
        }
        Ok(())
    }

    fn push_line(&mut self, text: &str, file: usize, line: u32) -> Result<(), Diagnostic> {
        if self.out.text.len() + text.len() + 1 > MAX_BYTES {
            let l = loc(&self.out.files[file], line, 1, line, 1);
            return Err(error_at(
                format!(
                    "the definition grows past {} MiB with its includes",
                    MAX_BYTES >> 20
                ),
                l,
                text,
                "include fewer or smaller files",
            ));
        }
        self.out.text.push_str(text);
        self.out.text.push('\n');
        self.out.origins.push((file, line));
        Ok(())
    }

    /// Expand one INCLUDE instruction of the file `from`.
    fn include(&mut self, r: &RawInstruction, from: &str) -> Result<(), Diagnostic> {
        let at = r.location.clone();
        let snippet = r.original.as_str();
        let target = match (r.args.as_slice(), r.flags.is_empty(), r.exec_form) {
            ([path], true, false) => path.clone(),
            _ => {
                return Err(error_at(
                    "INCLUDE takes exactly one path",
                    at,
                    snippet,
                    "write `INCLUDE path/in/the/context`",
                ));
            }
        };
        let Some(path) = normalize(&target) else {
            return Err(error_at(
                format!("INCLUDE {target}: the path leaves the build context"),
                at,
                snippet,
                "name a file inside the build context, relative to its root",
            ));
        };
        if let Some(start) = self.stack.iter().position(|f| f.file == path) {
            return Err(self.cycle(start, from, &at, &path, snippet));
        }
        if path == from {
            return Err(self.cycle(self.stack.len(), from, &at, &path, snippet));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(error_at(
                format!("INCLUDE {target}: includes nest deeper than {MAX_DEPTH}"),
                at,
                snippet,
                "flatten the chain of includes",
            ));
        }
        let content = self.tree.read(&path).map_err(|e| {
            error_at(
                format!("INCLUDE {target}: cannot read it from the build context: {e}"),
                at.clone(),
                snippet,
                "paths are relative to the root of the build context; check the name and .containerignore",
            )
        })?;
        let text = String::from_utf8(content).map_err(|_| {
            error_at(
                format!("INCLUDE {target}: not UTF-8 text"),
                at.clone(),
                snippet,
                "include Containerfile fragments only",
            )
        })?;
        self.stack.push(Frame {
            file: from.to_string(),
            line: at.line,
            target: path.clone(),
        });
        self.file(&text, &path)?;
        self.stack.pop();
        Ok(())
    }

    /// The error for an include of `path` from `from` (at `at`) that closes a cycle: every `file:line` on
    /// it, from where `path` first includes the next file to this INCLUDE.
    fn cycle(
        &self,
        start: usize,
        from: &str,
        at: &Location,
        path: &str,
        snippet: &str,
    ) -> Diagnostic {
        let mut steps: Vec<String> = self.stack[start..]
            .iter()
            .map(|f| format!("{}:{} includes {}", f.file, f.line, f.target))
            .collect();
        steps.push(format!("{from}:{} includes {path}", at.line));
        error_at(
            format!("include cycle: {}", steps.join(", ")),
            at.clone(),
            snippet,
            "remove one of these INCLUDE lines",
        )
    }
}

/// `path` relative to the context root, with `.` and `..` resolved; None when it would leave the context
/// or is absolute.
fn normalize(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_and_kept_inside() {
        assert_eq!(normalize("./a/../b/c").as_deref(), Some("b/c"));
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("/etc/passwd"), None);
        assert_eq!(normalize("."), None);
    }
}
