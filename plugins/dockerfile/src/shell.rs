//! Word expansion as the Dockerfile reference defines it: `$var`, `${var}` and the `${var<op>word}` forms,
//! the escape character, and single/double quote rules. Quotes and escapes are removed from the result.

/// Looks a variable up; `None` means unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The expansion lexer for one escape character.
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    pub escape: char,
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer { escape }
    }

    /// Expand `input` as one word: whitespace is kept.
    pub fn word(&self, input: &str, env: Lookup) -> Result<String, String> {
        if !input.contains(['$', '\'', '"', self.escape]) {
            return Ok(input.to_string());
        }
        let mut out = Out::default();
        let mut s = Scanner {
            chars: input.chars().collect(),
            pos: 0,
            escape: self.escape,
            env,
            depth: 0,
        };
        s.run(None, &mut out)?;
        Ok(out.joined())
    }

    /// The hint that fits an error of [`Lexer::word`] or [`Lexer::words`] about how the word is written: a
    /// quote or a `${` left open, a form that does not exist. None for the error of a variable that
    /// `${VAR:?message}` requires, whose hint depends on where the word is.
    pub fn hint(&self, error: &str) -> Option<String> {
        let e = self.escape;
        Some(
            if error.contains("matching single-quote") || error.contains("matching double-quote") {
                format!("close the quote, or escape it ({e}\" or {e}') to mean a literal quote")
            } else if error.starts_with("missing '}'") || error.starts_with("bad substitution") {
                format!(
                    "close the ${{...}} with }}, or escape the dollar ({e}$) to mean a literal $"
                )
            } else if error.contains("nested too deeply") {
                "nest fewer ${...} inside one another".into()
            } else if error.starts_with("unsupported modifier") {
                "use ${VAR}, ${VAR:-word}, ${VAR:+word}, ${VAR:?word}, ${VAR#pat}, ${VAR%pat} or ${VAR/pat/rep}"
                .into()
            } else {
                return None;
            },
        )
    }

    /// Expand `input` and split it into words on unquoted whitespace (including whitespace that came from
    /// unquoted expansions).
    pub fn words(&self, input: &str, env: Lookup) -> Result<Vec<String>, String> {
        let mut out = Out {
            split: true,
            ..Default::default()
        };
        let mut s = Scanner {
            chars: input.chars().collect(),
            pos: 0,
            escape: self.escape,
            env,
            depth: 0,
        };
        s.run(None, &mut out)?;
        Ok(out.finish())
    }
}

#[derive(Default)]
struct Out {
    split: bool,
    words: Vec<String>,
    cur: String,
    has: bool,
}

impl Out {
    fn push(&mut self, c: char, quoted: bool) {
        if self.split && !quoted && c.is_whitespace() {
            if self.has {
                self.words.push(std::mem::take(&mut self.cur));
                self.has = false;
            }
        } else {
            self.cur.push(c);
            self.has = true;
        }
    }
    fn push_str(&mut self, s: &str, quoted: bool) {
        for c in s.chars() {
            self.push(c, quoted);
        }
    }
    /// An empty quoted string still makes a word.
    fn mark(&mut self) {
        self.has = true;
    }
    fn joined(self) -> String {
        self.cur
    }
    fn finish(mut self) -> Vec<String> {
        if self.has {
            self.words.push(self.cur);
        }
        self.words
    }
}

struct Scanner<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: Lookup<'a>,
    depth: u32,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += usize::from(c.is_some());
        c
    }

    /// Process until `stop` (consumed) or the end; returns whether `stop` was found.
    fn run(&mut self, stop: Option<char>, out: &mut Out) -> Result<bool, String> {
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok(true);
            }
            self.pos += 1;
            if c == self.escape {
                if let Some(n) = self.next() {
                    out.push(n, true);
                }
            } else if c == '\'' {
                out.mark();
                loop {
                    match self.next() {
                        None => return Err(
                            "unexpected end of statement while looking for matching single-quote"
                                .into(),
                        ),
                        Some('\'') => break,
                        Some(q) => out.push(q, true),
                    }
                }
            } else if c == '"' {
                out.mark();
                self.double_quoted(out)?;
            } else if c == '$' {
                let v = self.dollar()?;
                out.push_str(&v, false);
            } else {
                out.push(c, false);
            }
        }
        Ok(false)
    }

    fn double_quoted(&mut self, out: &mut Out) -> Result<(), String> {
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => return Ok(()),
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v, true);
                }
                Some(c) if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        out.push(n, true);
                    }
                    _ => out.push(c, true),
                },
                Some(c) => out.push(c, true),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            Some(c) if "@*#?-$!".contains(c) => {
                self.pos += 1;
                return c.to_string();
            }
            _ => {}
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// A nested word up to `stop`, expanded; an error names `what` when `stop` is missing.
    fn sub_word(&mut self, stop: char) -> Result<(String, bool), String> {
        self.depth += 1;
        if self.depth > 64 {
            return Err("substitutions nested too deeply".into());
        }
        let mut out = Out::default();
        let found = self.run(Some(stop), &mut out)?;
        self.depth -= 1;
        Ok((out.joined(), found))
    }

    fn dollar(&mut self) -> Result<String, String> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.lookup(&name).unwrap_or_default());
        }
        self.pos += 1;
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: missing variable name after ${".into());
        }
        let value = self.lookup(&name);
        let Some(op) = self.next() else {
            return Err(format!("missing '}}' in ${{{name}"));
        };
        let missing_brace = || format!("missing '}}' in ${{{name}...");
        match op {
            '}' => Ok(value.unwrap_or_default()),
            ':' | '-' | '+' | '?' => {
                let (colon, kind) = if op == ':' {
                    match self.next() {
                        Some(k @ ('-' | '+' | '?')) => (true, k),
                        Some(k) => {
                            return Err(format!(
                                "unsupported modifier (:{k}) in substitution of ${{{name}}}"
                            ));
                        }
                        None => return Err(missing_brace()),
                    }
                } else {
                    (false, op)
                };
                let (word, found) = self.sub_word('}')?;
                if !found {
                    return Err(missing_brace());
                }
                let set = match &value {
                    Some(v) => !colon || !v.is_empty(),
                    None => false,
                };
                match kind {
                    '-' => Ok(if set { value.unwrap_or_default() } else { word }),
                    '+' => Ok(if set { word } else { String::new() }),
                    _ => {
                        if set {
                            Ok(value.unwrap_or_default())
                        } else if word.is_empty() {
                            Err(format!(
                                "{name}: is not allowed to be {}",
                                if colon { "unset or empty" } else { "unset" }
                            ))
                        } else {
                            Err(format!("{name}: {word}"))
                        }
                    }
                }
            }
            '#' | '%' => {
                let longest = self.peek() == Some(op);
                if longest {
                    self.pos += 1;
                }
                let (pat, found) = self.sub_word('}')?;
                if !found {
                    return Err(missing_brace());
                }
                let v = value.unwrap_or_default();
                Ok(if op == '#' {
                    trim_prefix(&v, &pat, longest)
                } else {
                    trim_suffix(&v, &pat, longest)
                })
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let (pat, _) = self.sub_word_until2('/', '}')?;
                let rep = if self.chars.get(self.pos - 1) == Some(&'/') {
                    let (rep, found) = self.sub_word('}')?;
                    if !found {
                        return Err(missing_brace());
                    }
                    rep
                } else {
                    String::new()
                };
                Ok(replace(&value.unwrap_or_default(), &pat, &rep, all))
            }
            other => Err(format!(
                "unsupported modifier ({other}) in substitution of ${{{name}}}"
            )),
        }
    }

    /// The pattern of `${var/pat/rep}`: up to `/` or `}` (both consumed).
    fn sub_word_until2(&mut self, a: char, b: char) -> Result<(String, char), String> {
        let mut pat = String::new();
        loop {
            match self.next() {
                None => return Err("missing '}' in ${.../...}".into()),
                Some(c) if c == a || c == b => return Ok((pat, c)),
                Some(c) if c == self.escape => {
                    pat.push('\\');
                    if let Some(n) = self.next() {
                        pat.push(n);
                    }
                }
                Some('$') => {
                    let v = self.dollar()?;
                    pat.push_str(&v);
                }
                Some(c) => pat.push(c),
            }
        }
    }
}

/// One element of a shell pattern.
#[derive(Debug)]
enum Atom {
    Star,
    Any,
    Lit(char),
    Class(bool, Vec<(char, char)>),
}

fn compile(pat: &str) -> Vec<Atom> {
    let chars: Vec<char> = pat.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => out.push(Atom::Star),
            '?' => out.push(Atom::Any),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push(Atom::Lit(chars[i]));
            }
            '[' => {
                let mut j = i + 1;
                let neg = matches!(chars.get(j), Some('!') | Some('^'));
                if neg {
                    j += 1;
                }
                let mut ranges = Vec::new();
                let mut closed = false;
                let mut first = true;
                while j < chars.len() {
                    let c = chars[j];
                    if c == ']' && !first {
                        closed = true;
                        break;
                    }
                    first = false;
                    if j + 2 < chars.len() && chars[j + 1] == '-' && chars[j + 2] != ']' {
                        ranges.push((c, chars[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((c, c));
                        j += 1;
                    }
                }
                if closed {
                    out.push(Atom::Class(neg, ranges));
                    i = j;
                } else {
                    out.push(Atom::Lit('['));
                }
            }
            c => out.push(Atom::Lit(c)),
        }
        i += 1;
    }
    out
}

fn atom_matches(a: &Atom, c: char) -> bool {
    match a {
        Atom::Star | Atom::Any => true,
        Atom::Lit(l) => *l == c,
        Atom::Class(neg, ranges) => ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *neg,
    }
}

/// Whole-string glob match, linear backtracking over the last `*`.
fn glob(pat: &[Atom], s: &[char]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && !matches!(pat[p], Atom::Star) && atom_matches(&pat[p], s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && matches!(pat[p], Atom::Star) {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    while p < pat.len() && matches!(pat[p], Atom::Star) {
        p += 1;
    }
    p == pat.len()
}

fn trim_prefix(v: &str, pat: &str, longest: bool) -> String {
    let atoms = compile(pat);
    let chars: Vec<char> = v.chars().collect();
    let mut ends: Box<dyn Iterator<Item = usize>> = if longest {
        Box::new((0..=chars.len()).rev())
    } else {
        Box::new(0..=chars.len())
    };
    match ends.find(|&n| glob(&atoms, &chars[..n])) {
        Some(n) => chars[n..].iter().collect(),
        None => v.to_string(),
    }
}

fn trim_suffix(v: &str, pat: &str, longest: bool) -> String {
    let atoms = compile(pat);
    let chars: Vec<char> = v.chars().collect();
    let mut starts: Box<dyn Iterator<Item = usize>> = if longest {
        Box::new(0..=chars.len())
    } else {
        Box::new((0..=chars.len()).rev())
    };
    match starts.find(|&n| glob(&atoms, &chars[n..])) {
        Some(n) => chars[..n].iter().collect(),
        None => v.to_string(),
    }
}

fn replace(v: &str, pat: &str, rep: &str, all: bool) -> String {
    if pat.is_empty() {
        return v.to_string();
    }
    let atoms = compile(pat);
    let chars: Vec<char> = v.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut replaced = false;
    while i < chars.len() {
        if (!replaced || all)
            && let Some(end) = (i + 1..=chars.len())
                .rev()
                .find(|&e| glob(&atoms, &chars[i..e]))
        {
            out.push_str(rep);
            i = end;
            replaced = true;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "x" => Some("hello".into()),
            "e" => Some(String::new()),
            "path" => Some("/usr/local/bin/app.tar.gz".into()),
            "sp" => Some("a b  c".into()),
            _ => None,
        }
    }

    fn w(s: &str) -> String {
        Lexer::new('\\').word(s, &env).unwrap()
    }
    fn err(s: &str) -> String {
        Lexer::new('\\').word(s, &env).unwrap_err()
    }

    #[test]
    fn simple_forms() {
        assert_eq!(w("$x"), "hello");
        assert_eq!(w("${x}"), "hello");
        assert_eq!(w("a${x}b"), "ahellob");
        assert_eq!(w("$xyz"), "");
        assert_eq!(w("$x.y"), "hello.y");
        assert_eq!(w("$"), "$");
        assert_eq!(w("a$ b"), "a$ b");
        assert_eq!(w("$1"), "");
    }

    #[test]
    fn default_alternative_and_error() {
        assert_eq!(w("${nope:-dflt}"), "dflt");
        assert_eq!(w("${e:-dflt}"), "dflt");
        assert_eq!(w("${e-dflt}"), "");
        assert_eq!(w("${nope-dflt}"), "dflt");
        assert_eq!(w("${x:-dflt}"), "hello");
        assert_eq!(w("${x:+alt}"), "alt");
        assert_eq!(w("${e:+alt}"), "");
        assert_eq!(w("${e+alt}"), "alt");
        assert_eq!(w("${nope+alt}"), "");
        assert_eq!(w("${nope:-${x}-suffix}"), "hello-suffix");
        assert_eq!(w("${x:?boom}"), "hello");
        assert_eq!(err("${nope:?must be set}"), "nope: must be set");
        assert_eq!(err("${e:?}"), "e: is not allowed to be unset or empty");
        assert_eq!(w("${e?x}"), "");
        assert_eq!(err("${nope?}"), "nope: is not allowed to be unset");
    }

    #[test]
    fn prefix_suffix_and_replace() {
        assert_eq!(w("${path#*/}"), "usr/local/bin/app.tar.gz");
        assert_eq!(w("${path##*/}"), "app.tar.gz");
        assert_eq!(w("${path%.*}"), "/usr/local/bin/app.tar");
        assert_eq!(w("${path%%.*}"), "/usr/local/bin/app");
        assert_eq!(w("${path#nomatch}"), "/usr/local/bin/app.tar.gz");
        assert_eq!(w("${x/l/L}"), "heLlo");
        assert_eq!(w("${x//l/L}"), "heLLo");
        assert_eq!(w("${x/l*/X}"), "heX");
        assert_eq!(w("${x//[lo]/_}"), "he___");
        assert_eq!(w("${x/ll}"), "heo");
        assert_eq!(w("${nope/a/b}"), "");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$x'"), "$x");
        assert_eq!(w("\"$x\""), "hello");
        assert_eq!(w("\\$x"), "$x");
        assert_eq!(w("\"\\$x \\\" \\n\""), "$x \" \\n");
        assert_eq!(w("a\\ b"), "a b");
        assert_eq!(w("'a'\"b\"c"), "abc");
        assert!(err("'open").contains("single-quote"));
        assert!(err("\"open").contains("double-quote"));
        assert!(err("${x").contains("missing"));
        assert!(err("${}").contains("bad substitution"));
        assert!(err("${x:=y}").contains("unsupported modifier"));
    }

    #[test]
    fn backtick_escape() {
        let l = Lexer::new('`');
        assert_eq!(
            l.word("c:\\windows\\$x", &env).unwrap(),
            "c:\\windows\\hello"
        );
        assert_eq!(l.word("`$x", &env).unwrap(), "$x");
    }

    #[test]
    fn word_splitting() {
        let l = Lexer::new('\\');
        assert_eq!(
            l.words("a $sp \"q $sp\" ''", &env).unwrap(),
            ["a", "a", "b", "c", "q a b  c", ""]
        );
        assert_eq!(l.words("  ", &env).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn pathological_inputs_terminate() {
        let deep = "${a:-".repeat(200) + &"}".repeat(200);
        assert!(Lexer::new('\\').word(&deep, &env).is_err());
        let stars = "${path//".to_string() + &"*a".repeat(50) + "/x}";
        let _ = Lexer::new('\\').word(&stars, &env);
    }
}
