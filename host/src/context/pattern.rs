//! Path patterns: Go `filepath.Match` syntax (`*`, `?`, `[...]`, `\` escapes) plus `**`, compiled to a regex.
//!
//! `*` and `?` never match `/`. A `**` matches any number of whole path components, none included
//! (`**/x` matches `x` and `a/b/x`); a trailing `**` matches everything below. Character classes take ranges
//! (`[a-z]`) and negation with `^` or `!`. A malformed pattern (unclosed `[`, empty class, trailing `\`) is an
//! error, as Go's `ErrBadPattern`.

use regex::Regex;

/// A compiled pattern, matched against a whole slash-separated relative path.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    re: Regex,
}

impl Pattern {
    /// Compile `text` as written (no cleaning).
    pub fn new(text: &str) -> anyhow::Result<Pattern> {
        let re = to_regex(text).map_err(|why| anyhow::anyhow!("bad pattern {text:?}: {why}"))?;
        let re = Regex::new(&re).map_err(|e| anyhow::anyhow!("bad pattern {text:?}: {e}"))?;
        Ok(Pattern {
            text: text.to_string(),
            re,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` (slash-separated, no leading `/`) matches the whole pattern.
    pub fn matches(&self, path: &str) -> bool {
        self.re.is_match(path)
    }

    /// Whether the pattern contains no wildcard: it names exactly one path.
    pub fn is_literal(&self) -> bool {
        !self.text.contains(['*', '?', '[', '\\'])
    }
}

/// Whether a single path component `name` matches a single-component Go pattern `pat`.
pub fn match_component(pat: &str, name: &str) -> anyhow::Result<bool> {
    Ok(Pattern::new(pat)?.matches(name))
}

fn push_literal(re: &mut String, c: char) {
    let mut buf = [0u8; 4];
    re.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

fn to_regex(pat: &str) -> Result<String, &'static str> {
    let chars: Vec<char> = pat.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(?:.*/)?");
                }
                continue;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err("trailing escape");
                };
                push_literal(&mut re, next);
                i += 1;
            }
            '[' => {
                i = class(&chars, i + 1, &mut re)?;
                continue;
            }
            _ => push_literal(&mut re, c),
        }
        i += 1;
    }
    re.push('$');
    Ok(re)
}

/// Translate a class starting after `[`; returns the index after the closing `]`.
fn class(chars: &[char], mut i: usize, re: &mut String) -> Result<usize, &'static str> {
    re.push('[');
    if matches!(chars.get(i), Some('^') | Some('!')) {
        re.push('^');
        i += 1;
    }
    let mut ranges = 0;
    loop {
        match chars.get(i) {
            None => return Err("unclosed character class"),
            Some(']') if ranges > 0 => {
                re.push(']');
                return Ok(i + 1);
            }
            Some(_) => {
                let (lo, next) = class_char(chars, i)?;
                i = next;
                let mut hi = lo;
                if chars.get(i) == Some(&'-') {
                    let (h, next) = class_char(chars, i + 1)?;
                    if h < lo {
                        return Err("character range out of order");
                    }
                    hi = h;
                    i = next;
                }
                push_class_char(re, lo);
                if hi != lo {
                    re.push('-');
                    push_class_char(re, hi);
                }
                ranges += 1;
            }
        }
    }
}

/// One (possibly escaped) character inside a class, as Go's `getEsc`.
fn class_char(chars: &[char], i: usize) -> Result<(char, usize), &'static str> {
    match chars.get(i) {
        None => Err("unclosed character class"),
        Some('-') | Some(']') => Err("misplaced '-' or ']' in character class"),
        Some('\\') => match chars.get(i + 1) {
            None => Err("trailing escape"),
            Some(&c) => Ok((c, i + 2)),
        },
        Some(&c) => Ok((c, i + 1)),
    }
}

fn push_class_char(re: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        re.push(c);
    } else {
        re.push_str(&format!("\\x{{{:x}}}", c as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::new(p).unwrap().matches(s)
    }

    #[test]
    fn go_filepath_match_table() {
        // Cases from the Go filepath.Match documentation and its test table.
        assert!(m("abc", "abc"));
        assert!(m("*", "abc"));
        assert!(m("*c", "abc"));
        assert!(!m("a*", "ab/c"));
        assert!(m("a*/b", "abc/b"));
        assert!(!m("a*/b", "a/c/b"));
        assert!(m("a*b*c*d*e*/f", "axbxcxdxe/f"));
        assert!(m("a*b*c*d*e*/f", "axbxcxdxexxx/f"));
        assert!(!m("a*b*c*d*e*/f", "axbxcxdxe/xxx/f"));
        assert!(!m("a*b*c*d*e*/f", "axbxcxdxexxx/fff"));
        assert!(m("a*b?c*x", "abxbbxdbxebxczzx"));
        assert!(!m("a*b?c*x", "abxbbxdbxebxczzy"));
        assert!(m("ab[c]", "abc"));
        assert!(m("ab[b-d]", "abc"));
        assert!(!m("ab[e-g]", "abc"));
        assert!(!m("ab[^c]", "abc"));
        assert!(!m("ab[^b-d]", "abc"));
        assert!(m("ab[^e-g]", "abc"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "ab"));
        assert!(m("a?b", "a☺b"));
        assert!(m("a[^a]b", "a☺b"));
        assert!(!m("a???b", "a☺b"));
        assert!(m("[a-ζ]*", "α"));
        assert!(!m("*[a-ζ]", "A"));
        assert!(!m("a?b", "a/b"));
        assert!(!m("a*b", "a/b"));
        assert!(m("[\\]a]", "]"));
        assert!(m("[\\-]", "-"));
        assert!(m("[x\\-]", "x"));
        assert!(m("[x\\-]", "-"));
        assert!(!m("[x\\-]", "z"));
        assert!(m("[\\-x]", "x"));
        assert!(m("*x", "xxx"));
    }

    #[test]
    fn bang_negates_a_class_too() {
        assert!(!m("ab[!c]", "abc"));
        assert!(m("ab[!c]", "abd"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for p in [
            "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "[z-a]",
        ] {
            assert!(Pattern::new(p).is_err(), "{p} should be a bad pattern");
        }
    }

    #[test]
    fn double_star() {
        assert!(m("**", "a/b/c"));
        assert!(m("**/x", "x"));
        assert!(m("**/x", "a/b/x"));
        assert!(!m("**/x", "a/bx"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(!m("a/**/b", "ab"));
        assert!(m("a/**", "a/x/y"));
        assert!(m("**/*.go", "main.go"));
        assert!(m("**/*.go", "cmd/x/main.go"));
        assert!(!m("**/*.go", "cmd/x/main.rs"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(m("(x)+{y}|$^", "(x)+{y}|$^"));
        assert!(m("[.]", "."));
        assert!(!m("[.]", "x"));
    }

    #[test]
    fn literal_detection() {
        assert!(Pattern::new("a/b.txt").unwrap().is_literal());
        assert!(!Pattern::new("a/*.txt").unwrap().is_literal());
        assert!(match_component("*.txt", "x.txt").unwrap());
    }
}
