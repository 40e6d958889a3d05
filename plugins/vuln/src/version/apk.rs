//! Alpine (apk-tools 3) version order: `digits{.digits}[letter]{_suffix[N]}[~hash][-rN]`. Pre-release
//! suffixes `_alpha < _beta < _pre < _rc` sort before the bare version, post-release ones (`_cvs`, `_svn`,
//! `_git`, `_hg`, `_p`) after it. A `.` component with a leading zero (in either version) compares as a
//! string, as in Gentoo's rules; the first component and suffix and revision numbers compare as numbers.
//! Checked against apk-tools' own vectors (tests/fixtures/apk/version.data).

use std::cmp::Ordering;

/// The kind of a token; the order matters (a version whose next token is of a larger kind is older, the end
/// and an invalid tail being the largest).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    First,
    Digits,
    Letter,
    Suffix,
    SuffixNo,
    Hash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffixes in order; `None`'s place (between pre- and post-releases) is index 4.
const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
const FIRST_POST: usize = 4;

#[derive(Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    text: &'a [u8],
    number: u64,
    suffix: usize,
}

struct Tokens<'a> {
    rest: &'a [u8],
    token: Token<'a>,
}

impl<'a> Tokens<'a> {
    fn new(v: &'a str) -> Self {
        let mut t = Tokens {
            rest: v.as_bytes(),
            token: Token {
                kind: Kind::First,
                text: b"",
                number: 0,
                suffix: 0,
            },
        };
        t.digits(Kind::First);
        t
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        head
    }

    fn digits(&mut self, kind: Kind) {
        let n = self.rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let text = self.take(n);
        self.token.kind = if n == 0 { Kind::Invalid } else { kind };
        self.token.text = text;
        self.token.number = text.iter().fold(0u64, |v, &c| {
            v.saturating_mul(10).saturating_add(u64::from(c - b'0'))
        });
    }

    /// Moves to the next token; a token that may not follow the current one makes the rest invalid.
    fn advance(&mut self) {
        let Some(&c) = self.rest.first() else {
            self.token.kind = Kind::End;
            return;
        };
        let prev = self.token.kind;
        match c {
            b'a'..=b'z' if prev <= Kind::Digits => {
                self.token.kind = Kind::Letter;
                self.token.text = self.take(1);
            }
            b'.' | b'0'..=b'9' if c != b'.' || prev <= Kind::Digits => {
                if c == b'.' {
                    self.take(1);
                }
                match prev {
                    Kind::First | Kind::Digits => self.digits(Kind::Digits),
                    Kind::Suffix => self.digits(Kind::SuffixNo),
                    _ => self.token.kind = Kind::Invalid,
                }
            }
            b'_' if prev <= Kind::SuffixNo => {
                self.take(1);
                let n = self
                    .rest
                    .iter()
                    .take_while(|c| c.is_ascii_lowercase())
                    .count();
                let text = self.take(n);
                match SUFFIXES.iter().position(|s| s.as_bytes() == text) {
                    Some(i) => {
                        self.token.kind = Kind::Suffix;
                        self.token.suffix = if i < FIRST_POST { i } else { i + 1 };
                        self.token.text = text;
                    }
                    None => self.token.kind = Kind::Invalid,
                }
            }
            b'~' if prev < Kind::Hash => {
                self.take(1);
                let n = self
                    .rest
                    .iter()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
                self.token.text = self.take(n);
                self.token.kind = if n == 0 { Kind::Invalid } else { Kind::Hash };
            }
            b'-' if prev < Kind::RevisionNo && self.rest.starts_with(b"-r") => {
                self.take(2);
                self.digits(Kind::RevisionNo);
            }
            _ => self.token.kind = Kind::Invalid,
        }
    }
}

/// Two tokens of the same kind.
fn compare_tokens(a: &Token, b: &Token) -> Ordering {
    match a.kind {
        Kind::Digits if a.text.first() == Some(&b'0') || b.text.first() == Some(&b'0') => {
            a.text.cmp(b.text)
        }
        Kind::First | Kind::Digits | Kind::SuffixNo | Kind::RevisionNo => a.number.cmp(&b.number),
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        _ => a.text.cmp(b.text),
    }
}

/// Compares two apk versions as `apk version -t` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (mut ta, mut tb) = (Tokens::new(a), Tokens::new(b));
    while ta.token.kind == tb.token.kind && ta.token.kind < Kind::End {
        let o = compare_tokens(&ta.token, &tb.token);
        if o != Ordering::Equal {
            return o;
        }
        ta.advance();
        tb.advance();
    }
    let (ka, kb) = (ta.token.kind, tb.token.kind);
    if ka == kb {
        return Ordering::Equal;
    }
    // Equal so far: the longer version is newer, unless what follows is a pre-release suffix.
    let pre = |t: &Token| t.kind == Kind::Suffix && t.suffix < FIRST_POST;
    if pre(&ta.token) {
        return Ordering::Less;
    }
    if pre(&tb.token) {
        return Ordering::Greater;
    }
    kb.cmp(&ka)
}

/// Whether apk accepts the version.
pub fn is_valid(v: &str) -> bool {
    let mut t = Tokens::new(v);
    while t.token.kind < Kind::End {
        t.advance();
    }
    t.token.kind == Kind::End
}

#[cfg(test)]
mod tests {
    use super::{compare, is_valid};
    use std::cmp::Ordering::{self, *};

    /// A few cases beyond apk-tools' vectors (those are checked in tests/tests/vuln_apk.rs).
    const VECTORS: &[(&str, Ordering, &str)] = &[
        ("1.0", Equal, "1.0"),
        ("1.2", Less, "1.10"),
        ("1.0_rc", Less, "1.0"),
        ("1.0_hg", Less, "1.0_p"),
        ("1.0_p1-r5", Less, "1.0_p2-r1"),
        ("1.0a", Less, "1.0.1"),
        ("1.01", Less, "1.1"),
        ("1.001", Less, "1.01"),
        ("1.0~abc", Greater, "1.0"),
        ("1.0~abc-r1", Less, "1.0~abd"),
        ("1.0~abc-r1", Greater, "1.0~abc"),
        ("3.20.0-r0", Greater, "3.19.1-r3"),
        ("1.36.1-r29", Less, "1.36.1-r30"),
    ];

    #[test]
    fn apk_vectors() {
        for &(a, want, b) in VECTORS {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn validity() {
        assert!(is_valid("1.2.3_rc1-r4"));
        assert!(is_valid("1.0a_p2"));
        assert!(is_valid("1.0_git~0a1b-r2"));
        assert!(!is_valid("1.0-foo"));
        assert!(!is_valid("1.0_bogus"));
        assert!(!is_valid("1.0ab"));
        assert!(!is_valid(""));
    }
}
