//! The allowlist: secrets the user knows about and accepts (test keys, documented examples).
//!
//! Read from the file `allowlist.txt` in the data directory the user grants as `secrets-allowlist`. One
//! entry per line; blank lines and lines starting with `#` are ignored:
//! - a line starting with `/` is a glob of image paths (`*` within a name, `**` across directories):
//!   files it matches are not scanned at all;
//! - any other line is a regular expression (Rust `regex-lite` syntax: `regex`'s, without Unicode classes): a finding whose line matches it is
//!   dropped.

use glob::{MatchOptions, Pattern};
use regex_lite::Regex;

/// The file read from the data directory.
pub const FILE: &str = "allowlist.txt";
/// The largest allowlist read.
pub const MAX_BYTES: usize = 1 << 20;

/// `*` never crosses a `/`; `**` does (as a whole path component).
const GLOB: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

#[derive(Debug, Default)]
pub struct Allowlist {
    paths: Vec<Pattern>,
    lines: Vec<Regex>,
}

impl Allowlist {
    /// Parse the allowlist's text; an error names the line that is wrong (`allowlist.txt:3: ...`).
    pub fn parse(text: &str) -> Result<Allowlist, String> {
        let mut paths = Vec::new();
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let entry = line.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let at = |what: &str, e: &dyn std::fmt::Display| {
                format!("{FILE}:{}: {what} `{entry}`: {e}", n + 1)
            };
            if entry.starts_with('/') {
                paths.push(Pattern::new(entry).map_err(|e| at("invalid path glob", &e))?);
            } else {
                lines.push(Regex::new(entry).map_err(|e| at("invalid regular expression", &e))?);
            }
        }
        Ok(Allowlist { paths, lines })
    }

    /// Whether the file at `path` is not to be scanned.
    pub fn skips_path(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p.matches_with(path, GLOB))
    }

    /// Whether a finding on this line is accepted.
    pub fn allows_line(&self, line: &str) -> bool {
        self.lines.iter().any(|r| r.is_match(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_regexes_and_errors_with_their_line() {
        let a = Allowlist::parse(
            "# test keys\n\n/srv/fixtures/**\n/etc/*.example\nAKIA[A-Z0-9]{9}EXAMPLE\n",
        )
        .unwrap();
        assert!(a.skips_path("/srv/fixtures/a/b.pem"));
        assert!(a.skips_path("/etc/app.example"));
        assert!(!a.skips_path("/etc/app.conf"));
        assert!(a.allows_line("key = AKIAIOSFODNN7EXAMPLE"));
        assert!(!a.allows_line("key = AKIAIOSFODNN7REALKEY"));
        let e = Allowlist::parse("ok\n/[unclosed\n").unwrap_err();
        assert!(
            e.starts_with("allowlist.txt:2: invalid path glob `/[unclosed`"),
            "{e}"
        );
        let e = Allowlist::parse("(\n").unwrap_err();
        assert!(
            e.starts_with("allowlist.txt:1: invalid regular expression `(`"),
            "{e}"
        );
    }
}
