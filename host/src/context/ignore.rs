//! `.containerignore` / `.dockerignore`: reading the file, choosing which one applies, and matching paths.
//!
//! Semantics as Docker's and buildah's: one pattern a line; `#` starts a comment line; blank lines are
//! skipped; surrounding whitespace is trimmed; `!` makes an exception; patterns are cleaned like Go's
//! `filepath.Clean` (so a leading `/` or `./` is dropped); the last pattern that matches a path decides; and a
//! pattern that matches a directory also matches everything under it.

use std::path::{Path, PathBuf};

use super::pattern::Pattern;

/// One line of an ignore file.
#[derive(Debug, Clone)]
pub struct Rule {
    pattern: Pattern,
    /// True for a `!` exception.
    exception: bool,
    /// 1-based line in the ignore file.
    line: usize,
}

impl Rule {
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }
    pub fn is_exception(&self) -> bool {
        self.exception
    }
    pub fn line(&self) -> usize {
        self.line
    }
}

/// The compiled rules of one ignore file (or none: matches nothing).
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    rules: Vec<Rule>,
    source: Option<PathBuf>,
}

impl IgnoreMatcher {
    /// Parse the text of an ignore file; `source` names it in errors.
    pub fn parse(text: &str, source: Option<&Path>) -> anyhow::Result<IgnoreMatcher> {
        let name = source
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "ignore file".into());
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let mut p = raw.trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            let exception = p.starts_with('!');
            if exception {
                p = p[1..].trim();
                if p.is_empty() {
                    anyhow::bail!("{name}:{line}: an exception \"!\" needs a pattern after it");
                }
            }
            let cleaned = clean(p);
            let cleaned = cleaned
                .strip_prefix('/')
                .filter(|s| !s.is_empty())
                .unwrap_or(&cleaned)
                .to_string();
            let pattern = Pattern::new(&cleaned).map_err(|e| {
                anyhow::anyhow!(
                    "{name}:{line}: {e} (hint: escape a literal '[', '*', '?' or '\\' with '\\')"
                )
            })?;
            rules.push(Rule {
                pattern,
                exception,
                line,
            });
        }
        Ok(IgnoreMatcher {
            rules,
            source: source.map(Path::to_path_buf),
        })
    }

    /// Read and parse the ignore file that applies to a build: `<containerfile>.containerignore`, then
    /// `<containerfile>.dockerignore` next to the named file, then `.containerignore` and `.dockerignore` at
    /// the context root. No file means nothing is ignored.
    pub fn for_build(
        context_dir: &Path,
        containerfile: Option<&Path>,
    ) -> anyhow::Result<IgnoreMatcher> {
        match choose_file(context_dir, containerfile) {
            None => Ok(IgnoreMatcher::default()),
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("reading ignore file {}: {e}", path.display()))?;
                IgnoreMatcher::parse(&text, Some(&path))
            }
        }
    }

    /// The file the rules came from.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether any `!` exception exists (then an ignored directory may still hold included files).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// Whether `rel` (a context-relative path; `/`, `./` and `..` are cleaned) is excluded. `_is_dir` is
    /// accepted for callers that know it; the rules do not depend on it (a pattern matching a directory
    /// excludes the directory and everything under it either way).
    pub fn is_ignored(&self, rel: &str, _is_dir: bool) -> bool {
        if self.rules.is_empty() {
            return false;
        }
        let path = clean(rel);
        let path = path.trim_start_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let mut ignored = false;
        for rule in &self.rules {
            if rule.exception != ignored {
                // This rule cannot change the verdict.
                continue;
            }
            if matches_or_parent_matches(&rule.pattern, path) {
                ignored = !rule.exception;
            }
        }
        ignored
    }

    /// Whether a walk must enter directory `rel` even though it is ignored, because an exception could
    /// re-include something below it.
    pub fn must_descend(&self, rel: &str) -> bool {
        if !self.has_exceptions() {
            return false;
        }
        let dir = clean(rel);
        let dir = dir.trim_start_matches('/');
        self.rules
            .iter()
            .filter(|r| r.exception)
            .any(|r| could_match_below(r.pattern.as_str(), dir))
    }
}

/// The ignore file for a build, or none.
pub fn choose_file(context_dir: &Path, containerfile: Option<&Path>) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(cf) = containerfile {
        let cf = if cf.is_absolute() {
            cf.to_path_buf()
        } else {
            context_dir.join(cf)
        };
        for ext in ["containerignore", "dockerignore"] {
            let mut name = cf.clone().into_os_string();
            name.push(".");
            name.push(ext);
            candidates.push(PathBuf::from(name));
        }
    }
    candidates.push(context_dir.join(".containerignore"));
    candidates.push(context_dir.join(".dockerignore"));
    candidates.into_iter().find(|p| p.is_file())
}

fn matches_or_parent_matches(pattern: &Pattern, path: &str) -> bool {
    if pattern.matches(path) {
        return true;
    }
    path.char_indices()
        .any(|(i, c)| c == '/' && pattern.matches(&path[..i]))
}

/// Conservative: could `pattern` match some path strictly below `dir`?
fn could_match_below(pattern: &str, dir: &str) -> bool {
    if pattern.starts_with("**") {
        return true;
    }
    let pat_parts: Vec<&str> = pattern.split('/').collect();
    let dir_parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for (i, d) in dir_parts.iter().enumerate() {
        let Some(p) = pat_parts.get(i) else {
            return false;
        };
        if *p == "**" {
            return true;
        }
        match Pattern::new(p) {
            Ok(pat) if pat.matches(d) => {}
            Ok(_) => return false,
            Err(_) => return true,
        }
    }
    pat_parts.len() > dir_parts.len()
}

/// Lexical cleaning as Go's `path.Clean` on slash paths: collapse `//`, drop `.` parts, resolve `..`
/// lexically (never above the root for a relative path: leading `..` parts are dropped, since nothing in a
/// context lies above it), drop a trailing `/`.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(text: &str) -> IgnoreMatcher {
        IgnoreMatcher::parse(text, None).unwrap()
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let m = matcher("# a comment\n\n   \n  *.log  \n#secret\n");
        assert_eq!(m.rules().len(), 1);
        assert!(m.is_ignored("x.log", false));
        assert!(!m.is_ignored("#secret", false));
        assert!(!m.is_ignored("x.txt", false));
    }

    #[test]
    fn star_does_not_cross_directories() {
        let m = matcher("*.log");
        assert!(m.is_ignored("a.log", false));
        assert!(!m.is_ignored("dir/a.log", false));
        let m = matcher("*/*.log");
        assert!(m.is_ignored("dir/a.log", false));
        assert!(!m.is_ignored("a.log", false));
        assert!(!m.is_ignored("a/b/c.log", false));
    }

    #[test]
    fn double_star_anywhere() {
        let m = matcher("**/*.log");
        assert!(m.is_ignored("a.log", false));
        assert!(m.is_ignored("x/y/z/a.log", false));
        assert!(!m.is_ignored("x/y/z/a.txt", false));
        let m = matcher("src/**/test");
        assert!(m.is_ignored("src/test", true));
        assert!(m.is_ignored("src/a/b/test/file.rs", false));
        assert!(!m.is_ignored("src/a/b/tests", true));
        let m = matcher("**");
        assert!(m.is_ignored("anything/at/all", false));
    }

    #[test]
    fn question_mark_and_classes() {
        let m = matcher("file?.txt\n[abc]-[0-9].bin\nx[^0-9]\ny[!a-c]");
        assert!(m.is_ignored("file1.txt", false));
        assert!(!m.is_ignored("file10.txt", false));
        assert!(!m.is_ignored("file/.txt", false));
        assert!(m.is_ignored("b-7.bin", false));
        assert!(!m.is_ignored("d-7.bin", false));
        assert!(m.is_ignored("xa", false));
        assert!(!m.is_ignored("x5", false));
        assert!(m.is_ignored("yd", false));
        assert!(!m.is_ignored("yb", false));
    }

    #[test]
    fn escapes() {
        let m = matcher("\\*literal\nq\\?");
        assert!(m.is_ignored("*literal", false));
        assert!(!m.is_ignored("xliteral", false));
        assert!(m.is_ignored("q?", false));
        assert!(!m.is_ignored("qx", false));
    }

    #[test]
    fn directory_pattern_excludes_everything_below() {
        let m = matcher("node_modules\nbuild/");
        assert!(m.is_ignored("node_modules", true));
        assert!(m.is_ignored("node_modules/a/b/c.js", false));
        assert!(m.is_ignored("build/out.o", false));
        assert!(
            !m.is_ignored("src/node_modules", true),
            "patterns are anchored at the root"
        );
        assert!(!m.is_ignored("node_modules2", true));
    }

    #[test]
    fn leading_slash_and_dot_slash_are_cleaned() {
        let m = matcher("/secret.txt\n./tmp\n./a/../b\nc//d/");
        assert!(m.is_ignored("secret.txt", false));
        assert!(m.is_ignored("tmp/x", false));
        assert!(m.is_ignored("b", false));
        assert!(!m.is_ignored("a", false));
        assert!(m.is_ignored("c/d/e", false));
        // Paths asked about are cleaned too.
        assert!(m.is_ignored("./secret.txt", false));
        assert!(m.is_ignored("/tmp/x", false));
    }

    #[test]
    fn exceptions_last_match_wins() {
        let m = matcher("*.md\n!README.md");
        assert!(m.is_ignored("CHANGES.md", false));
        assert!(!m.is_ignored("README.md", false));
        let m = matcher("!README.md\n*.md");
        assert!(
            m.is_ignored("README.md", false),
            "a later exclusion overrides an earlier exception"
        );
        let m = matcher("*.md\n!README*.md\nREADME-secret.md");
        assert!(!m.is_ignored("README-public.md", false));
        assert!(m.is_ignored("README-secret.md", false));
    }

    #[test]
    fn exception_inside_an_excluded_directory() {
        let m = matcher("docs\n!docs/keep.txt");
        assert!(m.is_ignored("docs/other.txt", false));
        assert!(!m.is_ignored("docs/keep.txt", false));
        assert!(m.must_descend("docs"));
        let m = matcher("docs");
        assert!(!m.must_descend("docs"));
        let m = matcher("*\n!src/**/*.rs");
        assert!(m.must_descend("src"));
        assert!(m.must_descend("src/a"));
        assert!(!m.must_descend("target"));
        assert!(!m.is_ignored("src/a/b.rs", false));
        assert!(m.is_ignored("src/a/b.c", false));
    }

    #[test]
    fn everything_then_some_back() {
        let m = matcher("*\n!Cargo.toml\n!src");
        assert!(m.is_ignored("target", true));
        assert!(!m.is_ignored("Cargo.toml", false));
        assert!(!m.is_ignored("src/main.rs", false));
    }

    #[test]
    fn root_is_never_ignored() {
        let m = matcher("*\n**");
        assert!(!m.is_ignored(".", true));
        assert!(!m.is_ignored("", true));
    }

    #[test]
    fn bad_pattern_names_file_and_line() {
        let err = IgnoreMatcher::parse("ok\n[unclosed\n", Some(Path::new("/ctx/.dockerignore")))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/ctx/.dockerignore:2"), "{msg}");
        assert!(IgnoreMatcher::parse("!\n", None).is_err());
    }

    #[test]
    fn empty_matcher_ignores_nothing() {
        let m = IgnoreMatcher::default();
        assert!(!m.is_ignored("a", false));
        assert!(!m.must_descend("a"));
    }

    #[test]
    fn go_clean() {
        assert_eq!(clean("./a/b/"), "a/b");
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("../.."), ".");
    }

    #[test]
    fn file_choice_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        assert_eq!(choose_file(d, Some(Path::new("sub/Containerfile"))), None);
        std::fs::write(d.join(".dockerignore"), "a").unwrap();
        assert_eq!(choose_file(d, None), Some(d.join(".dockerignore")));
        std::fs::write(d.join(".containerignore"), "a").unwrap();
        assert_eq!(choose_file(d, None), Some(d.join(".containerignore")));
        std::fs::write(d.join("sub/Containerfile.dockerignore"), "a").unwrap();
        assert_eq!(
            choose_file(d, Some(Path::new("sub/Containerfile"))),
            Some(d.join("sub/Containerfile.dockerignore"))
        );
        std::fs::write(d.join("sub/Containerfile.containerignore"), "a").unwrap();
        assert_eq!(
            choose_file(d, Some(Path::new("sub/Containerfile"))),
            Some(d.join("sub/Containerfile.containerignore"))
        );
        let abs = d.join("sub/Containerfile");
        assert_eq!(
            choose_file(d, Some(&abs)),
            Some(d.join("sub/Containerfile.containerignore"))
        );
    }
}
