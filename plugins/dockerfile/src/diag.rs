//! Building diagnostics: location, snippet, hint, and "did you mean" suggestions.

use crate::model::{Diagnostic, Location, Severity};

pub fn loc(file: &str, line: u32, column: u32, end_line: u32, end_column: u32) -> Location {
    Location {
        file: file.to_string(),
        line,
        column,
        end_line,
        end_column,
    }
}

pub fn error_at(
    message: impl Into<String>,
    location: Location,
    snippet: &str,
    hint: impl Into<String>,
) -> Diagnostic {
    let hint = hint.into();
    Diagnostic {
        severity: Severity::Error,
        message: message.into(),
        location: Some(location),
        snippet: Some(snippet.to_string()),
        hint: if hint.is_empty() { None } else { Some(hint) },
    }
}

pub fn warning_at(
    message: impl Into<String>,
    location: Location,
    snippet: &str,
    hint: impl Into<String>,
) -> Diagnostic {
    Diagnostic {
        severity: Severity::Warning,
        ..error_at(message, location, snippet, hint)
    }
}

/// Edit distance with adjacent transpositions (optimal string alignment), case-insensitive.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_ascii_lowercase().chars().collect();
    let b: Vec<char> = b.to_ascii_lowercase().chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The closest candidate within a small distance, for "did you mean".
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if word.chars().count() > 64 {
        return None;
    }
    let limit = (word.chars().count() / 3).clamp(1, 2);
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("FORM", &["FROM", "RUN"]), Some("FROM"));
        assert_eq!(suggest("chwon", &["chown", "chmod"]), Some("chown"));
        assert_eq!(suggest("zzzz", &["FROM"]), None);
    }
}
