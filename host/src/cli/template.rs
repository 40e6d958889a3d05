//! `--format` as podman, buildah and skopeo take it: `json`, `table`, `table TEMPLATE` (a header row, then
//! one row per item, columns aligned) or a Go template rendered once per item (gtmpl speaks Go's
//! text/template). `\t` and `\n` typed as two characters mean a tab and a newline, and a newline ends each
//! row, as podman does. Functions beyond Go's builtins: `json` and `join`, as podman adds them.

use anyhow::{Result, anyhow};
use gtmpl::{Context, FuncError, Template, Value};
use std::collections::HashMap;
use std::io::Write;

/// What `--format` asked for.
pub enum Format {
    /// No `--format`, or `text`: the command's own output.
    Default,
    Json,
    /// `table` alone: the command's default columns; `table TEMPLATE`: these columns with a header row.
    Table(Option<Tmpl>),
    Template(Tmpl),
}

/// A parsed template with its source, for error messages.
pub struct Tmpl {
    source: String,
    t: Template,
}

/// clap's check of `--format`: a named format or a template that parses (the error says where it fails).
pub fn check(s: &str) -> Result<String, String> {
    Format::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{e:#}"))
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        let trimmed = s.trim();
        Ok(match trimmed {
            "" | "text" => Format::Default,
            "json" => Format::Json,
            "table" => Format::Table(None),
            _ => match trimmed.strip_prefix("table ") {
                Some(t) => Format::Table(Some(Tmpl::parse(t)?)),
                None => Format::Template(Tmpl::parse(s)?),
            },
        })
    }
}

fn json(args: &[Value]) -> Result<Value, FuncError> {
    let [v] = args else {
        return Err(FuncError::ExactlyXArgs("json".into(), 1));
    };
    Ok(Value::String(to_json(v).to_string()))
}

/// A value as Go's fmt prints it (`[a b]`, `map[k:v]`), for actions that print a field as it is.
fn gofmt(args: &[Value]) -> Result<Value, FuncError> {
    fn show(v: &Value) -> String {
        match v {
            Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(" ")),
            Value::Object(o) | Value::Map(o) => {
                let mut kv: Vec<_> = o.iter().map(|(k, v)| format!("{k}:{}", show(v))).collect();
                kv.sort();
                format!("map[{}]", kv.join(" "))
            }
            Value::Nil => "<nil>".into(),
            other => other.to_string(),
        }
    }
    let [v] = args else {
        return Err(FuncError::ExactlyXArgs("gofmt".into(), 1));
    };
    Ok(Value::String(show(v)))
}

/// The template with every action that only prints a field (`{{.Labels}}`, `{{ $x.Names }}`) printing it
/// through `gofmt`, so lists and maps read as Go prints them.
fn go_printing(source: &str) -> String {
    static BARE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\{\{(-?\s*)((?:\$[A-Za-z0-9_]*)?(?:\.[A-Za-z0-9_]+)*\.?)(\s*-?)\}\}")
            .expect("a valid regex")
    });
    BARE.replace_all(source, |c: &regex::Captures| {
        if c[2].is_empty() {
            return c[0].to_string();
        }
        format!("{{{{{}gofmt {}{}}}}}", &c[1], &c[2], &c[3])
    })
    .into_owned()
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    let [Value::Array(items), Value::String(sep)] = args else {
        return Err(FuncError::Generic(
            "join takes a list and a separator".into(),
        ));
    };
    let parts: Vec<String> = items.iter().map(|v| v.to_string()).collect();
    Ok(Value::String(parts.join(sep)))
}

/// A JSON value as a template value (objects' keys are the template's field names).
pub fn to_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::from(u),
            (_, Some(i)) => Value::from(i),
            _ => Value::from(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => Value::String(s.clone()),
        J::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        J::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::String(s) => J::String(s.clone()),
        Value::Number(n) => n
            .as_u64()
            .map(J::from)
            .or_else(|| n.as_i64().map(J::from))
            .or_else(|| n.as_f64().map(J::from))
            .unwrap_or(J::Null),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Object(o) | Value::Map(o) => {
            J::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// Where each action (`{{...}}`) ends, as byte offsets just past its `}}`.
fn action_ends(s: &str) -> Vec<usize> {
    let mut out = vec![];
    let mut at = 0;
    while let Some(open) = s[at..].find("{{") {
        let from = at + open + 2;
        let Some(close) = s[from..].find("}}") else {
            break;
        };
        at = from + close + 2;
        out.push(at);
    }
    out
}

/// The end of the template when its last `{{` is never closed.
fn unclosed(s: &str) -> Option<usize> {
    let open = s.rfind("{{")?;
    (!s[open..].contains("}}")).then_some(s.trim_end().len())
}

/// "line L, column C (`{{...}}`)" for the action ending at `end`.
fn position(s: &str, end: usize) -> String {
    let start = s[..end].rfind("{{").unwrap_or(0);
    let end = end.max(start);
    let line = s[..start].matches('\n').count() + 1;
    let col = start - s[..start].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {col} (`{}`)", &s[start..end])
}

/// An error message without the receiver's dump gtmpl puts in "no field" errors.
fn tidy(e: &impl std::fmt::Display) -> String {
    let m = e.to_string();
    match m.find("no field ") {
        Some(i) => {
            let field = m[i + 9..].split_whitespace().next().unwrap_or("");
            format!("no field {field}")
        }
        None => m,
    }
}

impl Tmpl {
    /// The parsed template (gtmpl's parse error is large; it is only ever turned into a message).
    #[allow(clippy::result_large_err)]
    fn build(source: &str) -> Result<Template, gtmpl::error::ParseError> {
        let mut t = Template::with_name("format");
        t.add_func("json", json);
        t.add_func("join", join);
        t.add_func("gofmt", gofmt);
        t.parse(go_printing(source))?;
        Ok(t)
    }

    pub fn parse(raw: &str) -> Result<Tmpl> {
        let mut source = raw.replace("\\t", "\t").replace("\\n", "\n");
        if !source.ends_with('\n') {
            source.push('\n');
        }
        match Self::build(&source) {
            Ok(t) => Ok(Tmpl { source, t }),
            Err(e) => {
                let msg = e.to_string();
                // The first action whose prefix fails with the same error is where it fails.
                let at = action_ends(&source)
                    .into_iter()
                    .find(|&end| Self::build(&source[..end]).is_err_and(|e2| e2.to_string() == msg))
                    .or_else(|| unclosed(&source))
                    .map(|end| format!(" at {}", position(&source, end)));
                // gtmpl's own "template: NAME:LINE:" prefix, when lade says where instead.
                let short = match &at {
                    Some(_) => msg.splitn(3, ':').nth(2).unwrap_or(&msg).trim(),
                    None => &msg,
                };
                Err(anyhow!(
                    "the --format template {raw:?} does not parse{}: {short}",
                    at.unwrap_or_default()
                ))
            }
        }
    }

    /// The template rendered for one item.
    pub fn render(&self, item: &serde_json::Value) -> Result<String> {
        let ctx = Context::from(to_value(item));
        self.t.render(&ctx).map_err(|e| {
            let at = action_ends(&self.source)
                .into_iter()
                .find(|&end| {
                    Self::build(&self.source[..end])
                        .is_ok_and(|t| t.render(&Context::from(to_value(item))).is_err())
                })
                .map(|end| format!(" at {}", position(&self.source, end)))
                .unwrap_or_default();
            anyhow!(
                "the --format template {:?} failed{at}: {}",
                self.source.trim_end(),
                tidy(&e)
            )
        })
    }
}

/// Print `rows` through a template; for a table, `header` first and the columns aligned as podman aligns
/// them (Go's tabwriter with minwidth 12 and padding 2: a cell and its padding at least 12 wide).
pub fn print(
    t: &Tmpl,
    header: Option<&serde_json::Value>,
    rows: &[serde_json::Value],
) -> Result<()> {
    let mut text = String::new();
    if let Some(h) = header {
        text.push_str(&t.render(h)?);
    }
    for r in rows {
        text.push_str(&t.render(r)?);
    }
    let mut so = std::io::stdout().lock();
    if header.is_some() {
        let mut tw = tabwriter::TabWriter::new(vec![]).minwidth(10).padding(2);
        tw.write_all(text.as_bytes())?;
        let aligned = tw
            .into_inner()
            .map_err(|e| anyhow!("aligning columns: {e}"))?;
        so.write_all(&aligned)?;
    } else {
        so.write_all(text.as_bytes())?;
    }
    Ok(())
}

/// Print one document through the template `format` names (with a header row for `table TEMPLATE`);
/// false when `format` is `json` or `text`, which the caller prints its own way.
pub fn print_doc(format: &str, v: &serde_json::Value) -> Result<bool> {
    let (t, table) = match Format::parse(format)? {
        Format::Default | Format::Json => return Ok(false),
        Format::Template(t) => (t, false),
        Format::Table(Some(t)) => (t, true),
        Format::Table(None) => anyhow::bail!(
            "--format table needs columns here, as in `table {{{{.Digest}}}}`; or use json"
        ),
    };
    let header = table.then(|| {
        let keys: Vec<&str> = v
            .as_object()
            .map_or(vec![], |o| o.keys().map(String::as_str).collect());
        header(&keys, &[])
    });
    print(&t, header.as_ref(), std::slice::from_ref(v))?;
    Ok(true)
}

/// A header row for `fields`: each field's name in capitals, words split where case changes
/// (`VirtualSize` → `VIRTUAL SIZE`), unless `names` gives it another.
pub fn header(fields: &[&str], names: &[(&str, &str)]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for f in fields {
        let h = match names.iter().find(|(k, _)| k == f) {
            Some((_, h)) => h.to_string(),
            None => {
                let mut out = String::new();
                let cs: Vec<char> = f.chars().collect();
                for (i, c) in cs.iter().enumerate() {
                    let next_lower = cs.get(i + 1).is_some_and(|n| n.is_lowercase());
                    if i > 0 && c.is_uppercase() && (cs[i - 1].is_lowercase() || next_lower) {
                        out.push(' ');
                    }
                    out.extend(c.to_uppercase());
                }
                out
            }
        };
        m.insert(f.to_string(), serde_json::Value::String(h));
    }
    serde_json::Value::Object(m)
}

/// A size as podman prints it: decimal units, three significant digits (Go's `%.3g`), as go-units'
/// `HumanSizeWithPrecision(size, 3)`.
pub fn go_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{} {}", g3(v), units[u])
}

/// Go's `%.3g` for a non-negative number below 1000 (or 1e+03 once it rounds up).
fn g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{v:.2e}"); // "9.99e2": the rounded mantissa and exponent
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..3).contains(&exp) {
        let m = mant.trim_end_matches('0').trim_end_matches('.');
        return format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let decimals = (2 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A duration as podman's CREATED column says it ("About an hour ago"), as go-units' `HumanDuration`.
pub fn go_since(secs: i64) -> String {
    let s = secs.max(0);
    let hours = ((s as f64) / 3600.0 + 0.5) as i64;
    let d = match s {
        0 => "Less than a second".to_string(),
        1 => "1 second".into(),
        2..60 => format!("{s} seconds"),
        60..120 => "About a minute".into(),
        120..3600 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", s / 3600 / 24 / 365),
    };
    format!("{d} ago")
}

/// Seconds since the epoch as Go's `time.Time.String()` prints them in UTC.
pub fn go_time(t: i64) -> String {
    // Civil from days (Howard Hinnant's algorithm).
    let (days, secs) = (t.div_euclid(86400), t.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Seconds since the epoch for `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let off = match rest {
        "Z" | "z" | "" => 0,
        r if r.len() == 6 => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            sign * (r[1..3].parse::<i64>().ok()? * 3600 + r[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86400 + h * 3600 + mi * 60 + se - off)
}

/// An RFC 3339 timestamp as Go's `time.Time.String()` prints it in UTC (fraction kept, trailing zeros
/// dropped), as skopeo's and podman's templates show `.Created`.
pub fn go_timestamp(s: &str) -> Option<String> {
    let secs = parse_rfc3339(s)?;
    let frac: String = s
        .get(19..)
        .and_then(|r| r.strip_prefix('.'))
        .map(|r| r.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    let frac = frac.trim_end_matches('0');
    let base = go_time(secs);
    Some(match frac.is_empty() {
        true => base,
        false => base.replacen(" +0000", &format!(".{frac} +0000"), 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_read_as_podman_prints_them() {
        assert_eq!(go_size(2749), "2.75 kB");
        assert_eq!(go_size(4_270_000), "4.27 MB");
        assert_eq!(go_size(1_234_567), "1.23 MB");
        assert_eq!(go_size(123), "123 B");
        assert_eq!(go_size(0), "0 B");
        assert_eq!(go_size(5_000_000), "5 MB");
        assert_eq!(go_size(999_999), "1e+03 kB");
    }

    #[test]
    fn parses_and_prints_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339("2000-03-01T01:00:00.5+01:00"),
            Some(951_868_800)
        );
        assert_eq!(go_time(1_796_434_381), "2026-12-05 01:33:01 +0000 UTC");
        assert_eq!(
            go_timestamp("2024-01-02T03:04:05.120Z").as_deref(),
            Some("2024-01-02 03:04:05.12 +0000 UTC")
        );
    }

    #[test]
    fn durations_read_as_podman_prints_them() {
        assert_eq!(go_since(3000), "50 minutes ago");
        assert_eq!(go_since(3600 + 1200), "About an hour ago");
        assert_eq!(go_since(3 * 86400), "3 days ago");
    }

    #[test]
    fn renders_fields_functions_and_tables() {
        let t = Tmpl::parse(r"{{.Repository}}:{{.Tag}}\t{{json .Labels}}").unwrap();
        let row = json!({"Repository": "localhost/a", "Tag": "1", "Labels": {"k": "v"}});
        assert_eq!(t.render(&row).unwrap(), "localhost/a:1\t{\"k\":\"v\"}\n");
        let t = Tmpl::parse("{{.Labels}} {{ .Names }} {{range .Names}}<{{.}}>{{end}}").unwrap();
        let row = json!({"Labels": {"b": "2", "a": "1"}, "Names": ["x", "y"]});
        assert_eq!(t.render(&row).unwrap(), "map[a:1 b:2] [x y] <x><y>\n");
        let h = header(&["Repository", "VirtualSize", "ID"], &[("ID", "IMAGE ID")]);
        assert_eq!(h["VirtualSize"], "VIRTUAL SIZE");
        assert_eq!(h["ID"], "IMAGE ID");
        assert!(matches!(Format::parse("json").unwrap(), Format::Json));
        assert!(matches!(
            Format::parse("table {{.ID}}").unwrap(),
            Format::Table(Some(_))
        ));
    }

    #[test]
    fn errors_name_the_failing_action() {
        let e = Tmpl::parse("{{.A}} {{nosuch .B}}")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("column 8") && e.contains("{{nosuch .B}}"), "{e}");
        let e = Tmpl::parse("{{.A}} {{.B").err().unwrap().to_string();
        assert!(
            e.contains("column 8") && e.contains("unclosed action"),
            "{e}"
        );
        let t = Tmpl::parse("{{.A}}\n{{.Missing}}").unwrap();
        let e = t.render(&json!({"A": 1})).unwrap_err().to_string();
        assert!(
            e.contains("line 2, column 1") && e.contains("no field Missing"),
            "{e}"
        );
    }
}
