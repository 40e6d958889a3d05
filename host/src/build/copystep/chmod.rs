//! `--chmod`: an octal mode (`0755`, `644`) or a symbolic one as chmod(1) takes it (`u+x,go-w`, `a=rX`).

use anyhow::{Result, bail};

/// A parsed `--chmod` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModeSpec {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

/// One `who op perms` clause of a symbolic mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    /// The classes it applies to, as a bit mask: 4 = u, 2 = g, 1 = o (none given means all).
    who: u8,
    op: char,
    perms: String,
}

impl ModeSpec {
    pub fn parse(s: &str) -> Result<ModeSpec> {
        let s = s.trim();
        if s.is_empty() {
            bail!("empty mode");
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            let m = u32::from_str_radix(s, 8)
                .map_err(|_| anyhow::anyhow!("`{s}` is not an octal mode (digits 0-7)"))?;
            if m > 0o7777 {
                bail!("`{s}` is more than 07777");
            }
            return Ok(ModeSpec::Octal(m));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let opi = part
                .find(['+', '-', '='])
                .ok_or_else(|| anyhow::anyhow!("`{part}`: expected [ugoa]*[+-=][rwxXst]*"))?;
            let (who_s, rest) = part.split_at(opi);
            let mut who = 0u8;
            for c in who_s.chars() {
                who |= match c {
                    'u' => 4,
                    'g' => 2,
                    'o' => 1,
                    'a' => 7,
                    _ => bail!("`{part}`: unknown class `{c}` (use u, g, o or a)"),
                };
            }
            // Several operators in one clause (`u+x-w`) are several clauses for the same classes.
            let mut chars = rest.chars().peekable();
            while let Some(op) = chars.next() {
                let mut perms = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, '+' | '-' | '=') {
                        break;
                    }
                    if !"rwxXst".contains(c) {
                        bail!("`{part}`: unknown permission `{c}` (use r, w, x, X, s or t)");
                    }
                    perms.push(c);
                    chars.next();
                }
                clauses.push(Clause {
                    who: if who == 0 { 7 } else { who },
                    op,
                    perms,
                });
            }
        }
        Ok(ModeSpec::Symbolic(clauses))
    }

    /// The new permission bits for an entry whose current bits are `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            ModeSpec::Octal(m) => *m,
            ModeSpec::Symbolic(clauses) => {
                let mut mode = mode & 0o7777;
                for c in clauses {
                    let mut bits = 0u32;
                    let any_x = mode & 0o111 != 0;
                    for p in c.perms.chars() {
                        for (class, shift) in [(4u8, 6u32), (2, 3), (1, 0)] {
                            if c.who & class == 0 {
                                continue;
                            }
                            bits |= match p {
                                'r' => 4 << shift,
                                'w' => 2 << shift,
                                'x' => 1 << shift,
                                'X' if is_dir || any_x => 1 << shift,
                                's' if class == 4 => 0o4000,
                                's' if class == 2 => 0o2000,
                                't' if class == 1 => 0o1000,
                                _ => 0,
                            };
                        }
                    }
                    let mut class_mask = 0u32;
                    for (class, shift, special) in
                        [(4u8, 6u32, 0o4000u32), (2, 3, 0o2000), (1, 0, 0o1000)]
                    {
                        if c.who & class != 0 {
                            class_mask |= (7 << shift) | special;
                        }
                    }
                    mode = match c.op {
                        '+' => mode | bits,
                        '-' => mode & !bits,
                        _ => (mode & !class_mask) | bits,
                    };
                }
                mode
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_symbolic() {
        assert_eq!(ModeSpec::parse("0755").unwrap().apply(0o600, false), 0o755);
        assert_eq!(ModeSpec::parse("644").unwrap().apply(0o777, true), 0o644);
        assert_eq!(ModeSpec::parse("u+x").unwrap().apply(0o644, false), 0o744);
        assert_eq!(ModeSpec::parse("go-w").unwrap().apply(0o666, false), 0o644);
        assert_eq!(ModeSpec::parse("a=rX").unwrap().apply(0o640, false), 0o444);
        assert_eq!(ModeSpec::parse("a=rX").unwrap().apply(0o700, true), 0o555);
        assert_eq!(ModeSpec::parse("+x").unwrap().apply(0o644, false), 0o755);
        assert_eq!(
            ModeSpec::parse("u+s,o=").unwrap().apply(0o755, false),
            0o4750
        );
        assert_eq!(
            ModeSpec::parse("u=rw,g=r,o=").unwrap().apply(0o777, false),
            0o640
        );
        assert_eq!(ModeSpec::parse("u+x-w").unwrap().apply(0o644, false), 0o544);
        assert!(ModeSpec::parse("0999").is_err());
        assert!(ModeSpec::parse("17777").is_err());
        assert!(ModeSpec::parse("u+q").is_err());
        assert!(ModeSpec::parse("z+x").is_err());
        assert!(ModeSpec::parse("").is_err());
    }
}
