//! The raw parse: directives, comments, continuations, heredocs, flags and arguments, with positions.
//!
//! This room knows nothing of what instructions mean beyond how their arguments are shaped (JSON array,
//! key/value pairs, words). It never expands variables.

use crate::diag::{error_at, loc};
use crate::model::{Diagnostic, Flag, Heredoc, KeyValue, RawInstruction, kv};

/// The result of the raw parse.
#[derive(Debug, Default)]
pub struct Parsed {
    pub directives: Vec<KeyValue>,
    pub escape: char,
    pub instructions: Vec<RawInstruction>,
    pub errors: Vec<Diagnostic>,
}

const DIRECTIVES: [&str; 3] = ["syntax", "escape", "check"];
const HEREDOC_KEYWORDS: [&str; 3] = ["RUN", "COPY", "ADD"];

struct Line<'a> {
    number: u32,
    text: &'a str,
}

/// Parse a whole file.
pub fn parse(source: &str, file: &str) -> Parsed {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let lines: Vec<Line> = source
        .split('\n')
        .enumerate()
        .map(|(i, t)| Line {
            number: i as u32 + 1,
            text: t.strip_suffix('\r').unwrap_or(t),
        })
        .collect();
    let mut out = Parsed {
        escape: '\\',
        ..Default::default()
    };
    let mut i = directives(&lines, file, &mut out);
    while i < lines.len() {
        let line = &lines[i];
        let trimmed = line.text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        i = instruction(&lines, i, file, &mut out);
    }
    out
}

/// Read parser directives at the top of the file; returns the index of the first line after them.
fn directives(lines: &[Line], file: &str, out: &mut Parsed) -> usize {
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        let Some((name, value)) = directive(line.text) else {
            break;
        };
        let key = name.to_ascii_lowercase();
        if !DIRECTIVES.contains(&key.as_str()) {
            break;
        }
        let location = loc(
            file,
            line.number,
            1,
            line.number,
            line.text.chars().count() as u32 + 1,
        );
        if out.directives.iter().any(|d| d.key == key) {
            out.errors.push(error_at(
                format!("only one {key} parser directive can be used"),
                location,
                line.text,
                "remove the repeated directive",
            ));
        } else {
            if key == "escape" {
                match value.as_str() {
                    "\\" => out.escape = '\\',
                    "`" => out.escape = '`',
                    _ => out.errors.push(error_at(
                        format!("invalid escape token {value:?} does not match ` or \\"),
                        location,
                        line.text,
                        "use `# escape=\\` (the default) or `# escape=`` (for Windows paths)",
                    )),
                }
            }
            out.directives.push(kv(key, value));
        }
        i += 1;
    }
    i
}

/// `# name = value` → (name, value).
fn directive(text: &str) -> Option<(String, String)> {
    let rest = text.trim_start().strip_prefix('#')?.trim_start();
    let name_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[name_len..].trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_string(), value.to_string()))
}

/// Whether `text` continues on the next line; returns the text before the continuation escape. As BuildKit
/// (`([^E])E[ \t]*$|^E[ \t]*$` for the escape E): the line ends with the escape plus optional blanks, and
/// that escape is the line's first character or follows a character other than the escape. So an escaped
/// escape at the end (`ENV C a\\`) is literal and the line ends there; BuildKit's regular expression also
/// ends the line at an odd run (`a\\\`), and so does this.
fn continued(text: &str, escape: char) -> Option<&str> {
    let t = text.trim_end_matches([' ', '\t']);
    let before = t.strip_suffix(escape)?;
    if before.ends_with(escape) {
        return None;
    }
    Some(before)
}

/// Read one instruction starting at line `start`; returns the index of the next unread line.
fn instruction(lines: &[Line], start: usize, file: &str, out: &mut Parsed) -> usize {
    let escape = out.escape;
    let first = &lines[start];
    let indent = first.text.len() - first.text.trim_start().len();
    let column = first.text[..indent].chars().count() as u32 + 1;
    let mut joined = String::new();
    let mut i = start;
    let mut last;
    let mut text = &first.text[indent..];
    loop {
        last = i;
        match continued(text, escape) {
            Some(before) => {
                joined.push_str(before);
                i += 1;
                // Comment and blank lines inside a continued instruction are skipped.
                while i < lines.len() {
                    let t = lines[i].text.trim_start();
                    if t.is_empty() || t.starts_with('#') {
                        i += 1;
                    } else {
                        break;
                    }
                }
                if i >= lines.len() {
                    break;
                }
                text = lines[i].text;
            }
            None => {
                joined.push_str(text);
                i += 1;
                break;
            }
        }
    }
    let joined = joined.trim_end().to_string();
    let (word, rest) = split_first_word(&joined);
    let keyword = word.to_ascii_uppercase();
    let mut heredocs = Vec::new();
    let mut end_line = lines[last].number;
    let mut end_col = lines[last].text.chars().count() as u32 + 1;
    if HEREDOC_KEYWORDS.contains(&keyword.as_str()) && rest.contains("<<") {
        for (name, expand, strip_tabs) in heredoc_words(rest, escape) {
            let mut content = String::new();
            let mut closed = false;
            while i < lines.len() {
                let body = lines[i].text;
                let line = if strip_tabs {
                    body.trim_start_matches('\t')
                } else {
                    body
                };
                end_line = lines[i].number;
                end_col = body.chars().count() as u32 + 1;
                i += 1;
                if line == name {
                    closed = true;
                    break;
                }
                content.push_str(line);
                content.push('\n');
            }
            if !closed {
                out.errors.push(error_at(
                    format!("unterminated heredoc <<{name}: no line reads exactly {name:?}"),
                    loc(file, first.number, column, end_line, end_col),
                    &joined,
                    format!("end the heredoc with a line containing only {name}"),
                ));
            }
            heredocs.push(Heredoc {
                name,
                content,
                expand,
                strip_tabs,
            });
        }
    }
    let location = loc(file, first.number, column, end_line, end_col);
    let (flags, after_flags) = if keyword == "ONBUILD" {
        (Vec::new(), rest.to_string())
    } else {
        extract_flags(rest, escape)
    };
    let (args, exec_form) = match shape_args(&keyword, &after_flags, escape) {
        Ok(v) => v,
        Err(message) => {
            out.errors.push(error_at(
                message,
                location.clone(),
                &joined,
                json_hint(&keyword),
            ));
            (Vec::new(), false)
        }
    };
    out.instructions.push(RawInstruction {
        keyword,
        original: joined,
        flags,
        args,
        exec_form,
        heredocs,
        location,
    });
    i
}

fn json_hint(keyword: &str) -> &'static str {
    match keyword {
        "SHELL" => "write the shell as a JSON array of strings: SHELL [\"/bin/bash\", \"-c\"]",
        "ENV" | "LABEL" => "write key=value pairs, quoting values that contain spaces",
        _ => "write a JSON array of strings, each in double quotes",
    }
}

fn split_first_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(n) => (&s[..n], s[n..].trim_start()),
        None => (s, ""),
    }
}

/// Shape the arguments after the flags as the instruction wants them.
fn shape_args(keyword: &str, rest: &str, escape: char) -> Result<(Vec<String>, bool), String> {
    let rest = rest.trim();
    match keyword {
        "RUN" | "CMD" | "ENTRYPOINT" => maybe_json(rest, true),
        "SHELL" => match json_array(rest) {
            Some(Ok(v)) => Ok((v, true)),
            Some(Err(e)) => Err(e),
            None => Err("SHELL requires the arguments to be in JSON form".into()),
        },
        "COPY" | "ADD" | "VOLUME" => maybe_json(rest, false),
        "ENV" | "LABEL" => Ok((name_values(keyword, rest, escape)?, false)),
        "ARG" => Ok((words(rest, escape), false)),
        "WORKDIR" | "MAINTAINER" | "ONBUILD" => Ok((
            if rest.is_empty() {
                Vec::new()
            } else {
                vec![rest.to_string()]
            },
            false,
        )),
        "HEALTHCHECK" => {
            let (sub, tail) = split_first_word(rest);
            if sub.eq_ignore_ascii_case("CMD") {
                let (mut args, exec) = maybe_json(tail, true)?;
                args.insert(0, "CMD".into());
                Ok((args, exec))
            } else {
                Ok((rest.split_whitespace().map(str::to_string).collect(), false))
            }
        }
        _ => Ok((rest.split_whitespace().map(str::to_string).collect(), false)),
    }
}

/// A JSON array of strings, or the shell form: one string (`single`) or whitespace-split words.
fn maybe_json(rest: &str, single: bool) -> Result<(Vec<String>, bool), String> {
    match json_array(rest) {
        Some(Ok(v)) => Ok((v, true)),
        Some(Err(e)) => Err(e),
        None if rest.is_empty() => Ok((Vec::new(), false)),
        None if single => Ok((vec![rest.to_string()], false)),
        None => Ok((rest.split_whitespace().map(str::to_string).collect(), false)),
    }
}

/// `None` when `rest` is not a JSON array; an error when it is one but holds something besides strings.
fn json_array(rest: &str) -> Option<Result<Vec<String>, String>> {
    if !rest.starts_with('[') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(rest).ok()?;
    let items = value.as_array()?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str() {
            Some(s) => out.push(s.to_string()),
            None => {
                return Some(Err(format!(
                    "JSON array elements must be strings, found {item}"
                )));
            }
        }
    }
    Some(Ok(out))
}

/// ENV and LABEL: `key value` (legacy, one pair) or `k=v k2=v2 ...`; returned as raw `key=value` strings.
fn name_values(keyword: &str, rest: &str, escape: char) -> Result<Vec<String>, String> {
    let ws = words(rest, escape);
    let Some(first) = ws.first() else {
        return Err(format!("{keyword} requires at least one argument"));
    };
    if !first.contains('=') {
        let (key, value) = split_first_word(rest);
        if value.is_empty() {
            return Err(format!("{keyword} names {key:?} but gives it no value"));
        }
        return Ok(vec![format!("{key}={value}")]);
    }
    for w in &ws {
        if !w.contains('=') {
            return Err(format!(
                "syntax error: can't find = in {w:?}; {keyword} needs name=value pairs"
            ));
        }
        if w.starts_with('=') {
            return Err(format!("{keyword} names can not be blank, in {w:?}"));
        }
    }
    Ok(ws)
}

/// Split on blanks outside quotes, keeping quotes and escapes in the words (the lexer removes them later).
pub fn words(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
            }
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            _ if c == escape && quote != Some('\'') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Leading `--name[=value]` words; a lone `--` ends them. Quotes in a value are removed.
fn extract_flags(rest: &str, escape: char) -> (Vec<Flag>, String) {
    let mut flags = Vec::new();
    let mut pos;
    let chars: Vec<(usize, char)> = rest.char_indices().collect();
    let mut k = 0;
    loop {
        while k < chars.len() && chars[k].1.is_whitespace() {
            k += 1;
        }
        pos = chars.get(k).map(|c| c.0).unwrap_or(rest.len());
        if !rest[pos..].starts_with("--") {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while k < chars.len() {
            let c = chars[k].1;
            match quote {
                None if c.is_whitespace() => break,
                None if c == '"' || c == '\'' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == escape && quote != Some('\'') && k + 1 < chars.len() => {
                    k += 1;
                    word.push(chars[k].1);
                }
                _ => word.push(c),
            }
            k += 1;
        }
        if word == "--" {
            pos = chars.get(k).map(|c| c.0).unwrap_or(rest.len());
            break;
        }
        let body = &word[2..];
        let flag = match body.split_once('=') {
            Some((n, v)) => Flag {
                name: n.to_string(),
                value: Some(v.to_string()),
            },
            None => Flag {
                name: body.to_string(),
                value: None,
            },
        };
        flags.push(flag);
    }
    (flags, rest[pos..].trim_start().to_string())
}

/// Heredoc markers in a line: (name, expand, strip_tabs), in order.
fn heredoc_words(rest: &str, escape: char) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    for w in words(rest, escape) {
        let digits = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
        let Some(after) = w[digits..].strip_prefix("<<") else {
            continue;
        };
        let (strip_tabs, spec) = match after.strip_prefix('-') {
            Some(s) => (true, s),
            None => (false, after),
        };
        if spec.is_empty() || spec.starts_with('<') || spec.contains('<') {
            continue;
        }
        let quoted = spec.contains(['"', '\'']);
        let name: String = unquote(spec, escape);
        if name.is_empty() {
            continue;
        }
        out.push((name, !quoted, strip_tabs));
    }
    out
}

fn unquote(s: &str, escape: char) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c == '"' || c == '\'' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ if c == escape && quote != Some('\'') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Parsed {
        let r = parse(src, "Dockerfile");
        assert!(r.errors.is_empty(), "unexpected errors: {:?}", r.errors);
        r
    }

    #[test]
    fn directives_at_the_top_only() {
        let r =
            p("# syntax=docker/dockerfile:1\n#ESCAPE = `\n# check=skip=all\nFROM x\n# escape=\\\n");
        assert_eq!(r.escape, '`');
        let keys: Vec<&str> = r.directives.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["syntax", "escape", "check"]);
        assert_eq!(r.directives[2].value, "skip=all");
        // After a blank line or an instruction, a directive is a comment.
        let r = p("\n# escape=`\nFROM x\n");
        assert_eq!(r.escape, '\\');
        assert!(r.directives.is_empty());
        // An unknown directive ends the directive block.
        let r = p("# foo=bar\n# escape=`\nFROM x\n");
        assert_eq!(r.escape, '\\');
    }

    #[test]
    fn repeated_and_bad_directives_are_errors() {
        let r = parse("# escape=`\n# escape=\\\nFROM x\n", "f");
        assert!(r.errors[0].message.contains("only one escape"));
        assert_eq!(r.errors[0].location.as_ref().unwrap().line, 2);
        let r = parse("# escape=x\nFROM x\n", "f");
        assert!(r.errors[0].message.contains("invalid escape token"));
    }

    #[test]
    fn bom_crlf_comments_positions() {
        let r = p("\u{feff}FROM alpine\r\n\r\n# comment\r\n  RUN echo hi\r\n");
        assert_eq!(r.instructions.len(), 2);
        assert_eq!(r.instructions[0].location.line, 1);
        assert_eq!(r.instructions[0].location.column, 1);
        assert_eq!(r.instructions[1].location.line, 4);
        assert_eq!(r.instructions[1].location.column, 3);
        assert_eq!(r.instructions[1].args, ["echo hi"]);
        assert!(!r.instructions[1].original.contains('\r'));
    }

    #[test]
    fn continuation_with_comments_blank_lines_and_trailing_blanks() {
        let r = p("FROM x\nRUN echo a \\  \n# a comment\n\n   # indented comment\n  b \\\n\tc\n");
        let run = &r.instructions[1];
        assert_eq!(run.args, ["echo a   b \tc"]);
        assert_eq!(run.location.line, 2);
        assert_eq!(run.location.end_line, 7);
    }

    #[test]
    fn continuation_at_end_of_file() {
        let r = p("FROM x\nRUN echo a \\");
        assert_eq!(r.instructions[1].args, ["echo a"]);
        let r = p("FROM x\nRUN echo a \\\n# only a comment\n");
        assert_eq!(r.instructions[1].args, ["echo a"]);
    }

    #[test]
    fn escaped_escape_at_line_end_does_not_continue() {
        // BuildKit's rule: continue only when the last escape is the line's first character or follows a
        // character other than the escape.
        let r = p("FROM x\nENV C a\\\\\nENV D b\n");
        assert_eq!(r.instructions.len(), 3);
        assert_eq!(r.instructions[1].original, "ENV C a\\\\");
        let r = p("FROM x\nENV E a\\\\\\ \t\nENV F b\n");
        assert_eq!(
            r.instructions.len(),
            3,
            "an odd run ends the line too, as in BuildKit"
        );
        let r = p("FROM x\nRUN a \\\n\\\n  b\n");
        assert_eq!(r.instructions.len(), 2);
        assert_eq!(r.instructions[1].args, ["a   b"]);
        let r = p("# escape=`\nFROM x\nRUN a``\nRUN b `\n c\n");
        assert_eq!(r.instructions.len(), 3);
        assert_eq!(r.instructions[2].args, ["b  c"]);
    }

    #[test]
    fn backtick_escape_keeps_windows_paths() {
        let r = p(
            "# escape=`\nFROM mcr.microsoft.com/windows/servercore\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n  && echo done\n",
        );
        assert_eq!(r.instructions.len(), 3);
        assert_eq!(r.instructions[1].args, ["testfile.txt", "c:\\"]);
        assert_eq!(r.instructions[2].args, ["dir c:\\   && echo done"]);
    }

    #[test]
    fn json_and_shell_forms() {
        let r = p(
            "FROM x\nCMD [\"a\", \"b c\"]\nCMD a b\nCMD [not json\nENTRYPOINT [\"x\"] trailing\nVOLUME [\"/a\", \"/b\"]\nVOLUME /c /d\n",
        );
        let i = &r.instructions;
        assert!(i[1].exec_form);
        assert_eq!(i[1].args, ["a", "b c"]);
        assert!(!i[2].exec_form);
        assert_eq!(i[2].args, ["a b"]);
        assert_eq!(i[3].args, ["[not json"]);
        assert!(!i[4].exec_form);
        assert_eq!(i[5].args, ["/a", "/b"]);
        assert_eq!(i[6].args, ["/c", "/d"]);
        let bad = parse("FROM x\nCMD [1, 2]\n", "f");
        assert!(bad.errors[0].message.contains("must be strings"));
        let shell = parse("FROM x\nSHELL /bin/bash -c\n", "f");
        assert!(shell.errors[0].message.contains("JSON form"));
    }

    #[test]
    fn flags_are_split_off() {
        let r = p(
            "FROM --platform=$BUILDPLATFORM golang AS build\nCOPY --from=build --chown=\"a b\" --link /x /y\nRUN -- --not-a-flag\n",
        );
        let from = &r.instructions[0];
        assert_eq!(
            from.flags,
            [Flag {
                name: "platform".into(),
                value: Some("$BUILDPLATFORM".into())
            }]
        );
        assert_eq!(from.args, ["golang", "AS", "build"]);
        let copy = &r.instructions[1];
        assert_eq!(copy.flags.len(), 3);
        assert_eq!(copy.flags[1].value.as_deref(), Some("a b"));
        assert_eq!(
            copy.flags[2],
            Flag {
                name: "link".into(),
                value: None
            }
        );
        assert_eq!(r.instructions[2].args, ["--not-a-flag"]);
    }

    #[test]
    fn env_and_label_pairs() {
        let r = p(
            "FROM x\nENV a=\"hello world\" b=c\\ d\nENV legacy value with spaces\nLABEL \"k\"='v'\n",
        );
        assert_eq!(r.instructions[1].args, ["a=\"hello world\"", "b=c\\ d"]);
        assert_eq!(r.instructions[2].args, ["legacy=value with spaces"]);
        assert_eq!(r.instructions[3].args, ["\"k\"='v'"]);
        let bad = parse("FROM x\nENV a=1 b\n", "f");
        assert!(bad.errors[0].message.contains("can't find ="));
        let bad = parse("FROM x\nENV a\n", "f");
        assert!(!bad.errors.is_empty());
    }

    #[test]
    fn heredocs() {
        let r = p(
            "FROM x\nRUN <<EOF\necho hi\nEOF\nCOPY <<-\"A\" <<B /dst/\n\t\tline $x\n\tA\nb\nB\nRUN echo\n",
        );
        let run = &r.instructions[1];
        assert_eq!(
            run.heredocs,
            [Heredoc {
                name: "EOF".into(),
                content: "echo hi\n".into(),
                expand: true,
                strip_tabs: false
            }]
        );
        assert_eq!(run.location.end_line, 4);
        let copy = &r.instructions[2];
        assert_eq!(copy.heredocs.len(), 2);
        assert_eq!(
            copy.heredocs[0],
            Heredoc {
                name: "A".into(),
                content: "line $x\n".into(),
                expand: false,
                strip_tabs: true
            }
        );
        assert_eq!(copy.heredocs[1].content, "b\n");
        assert_eq!(copy.args, ["<<-\"A\"", "<<B", "/dst/"]);
        assert_eq!(r.instructions[3].location.line, 10);
        let bad = parse("FROM x\nRUN <<EOF\nno end\n", "f");
        assert!(bad.errors[0].message.contains("unterminated heredoc"));
        // A heredoc marker is only recognised on RUN, COPY and ADD, and not inside quotes or as <<<.
        let r = p("FROM x\nRUN echo \"<<EOF\" <<<word\nLABEL a=<<EOF\n");
        assert!(r.instructions.iter().all(|i| i.heredocs.is_empty()));
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            words("a \"b c\" 'd e' f\\ g", '\\'),
            ["a", "\"b c\"", "'d e'", "f\\ g"]
        );
    }
}
