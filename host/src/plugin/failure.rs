//! How a plugin call fails: the plugin's own `plugin-error` (with diagnostics for the user's input), or the
//! runtime stopping it (trap, deadline, memory cap, panic, bad component). Also the plain-text rendering of
//! diagnostics as `file:line:col: severity: message`.

use super::v0_2_0::types::{Diagnostic, PluginError, Severity};
use std::fmt;

#[derive(Debug)]
pub enum PluginFailure {
    /// The plugin ran to the end and reported an error about what it was given.
    Reported { plugin: String, error: PluginError },
    /// The plugin was stopped or could not run; the message names the plugin and says what happened.
    Runtime(anyhow::Error),
}

impl PluginFailure {
    /// The diagnostics of an `invalid-input` report (empty otherwise).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PluginFailure::Reported {
                error: PluginError::InvalidInput(d),
                ..
            } => d,
            _ => &[],
        }
    }
}

impl fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginFailure::Runtime(e) => write!(f, "{e:#}"),
            PluginFailure::Reported { plugin, error } => match error {
                PluginError::InvalidInput(diags) => {
                    let errors = diags
                        .iter()
                        .filter(|d| matches!(d.severity, Severity::Error))
                        .count();
                    write!(
                        f,
                        "plugin `{plugin}` found {} problem(s)",
                        errors.max(diags.len().min(1))
                    )?;
                    for d in diags {
                        write!(f, "\n{}", render(d))?;
                    }
                    Ok(())
                }
                PluginError::Unsupported(m) => {
                    write!(f, "plugin `{plugin}` does not support this: {m}")
                }
                PluginError::Host(m) => write!(f, "plugin `{plugin}` could not use the host: {m}"),
                PluginError::Failed(m) => write!(f, "plugin `{plugin}` failed: {m}"),
            },
        }
    }
}

impl std::error::Error for PluginFailure {}

/// `s` with every control character but newline and tab escaped (`\u{1b}`): what a plugin says is shown to
/// the user, and must not drive their terminal.
fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// `Containerfile:3:5: error: unknown instruction FORM` plus the snippet and hint on their own lines; control
/// characters the plugin put in any of them are shown escaped.
pub fn render(d: &Diagnostic) -> String {
    let severity = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    let message = printable(&d.message);
    let mut s = match &d.location {
        Some(l) => format!(
            "{}:{}:{}: {severity}: {message}",
            printable(&l.file),
            l.line,
            l.column
        ),
        None => format!("{severity}: {message}"),
    };
    if let Some(snippet) = &d.snippet {
        s.push_str(&format!("\n    {}", printable(snippet)));
    }
    if let Some(hint) = &d.hint {
        s.push_str(&format!("\n  hint: {}", printable(hint)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::v0_2_0::types::Location;

    #[test]
    fn diagnostics_render_with_position_and_hint() {
        let d = Diagnostic {
            severity: Severity::Error,
            message: "unknown instruction FORM".into(),
            location: Some(Location {
                file: "Containerfile".into(),
                line: 3,
                column: 1,
                end_line: 3,
                end_column: 5,
            }),
            snippet: Some("FORM alpine".into()),
            hint: Some("did you mean FROM?".into()),
        };
        let f = PluginFailure::Reported {
            plugin: "dockerfile".into(),
            error: PluginError::InvalidInput(vec![d]),
        };
        let text = f.to_string();
        assert!(
            text.contains("Containerfile:3:1: error: unknown instruction FORM"),
            "{text}"
        );
        assert!(text.contains("hint: did you mean FROM?"), "{text}");
        assert_eq!(f.diagnostics().len(), 1);
    }

    #[test]
    fn control_characters_from_a_plugin_are_shown_escaped() {
        let d = Diagnostic {
            severity: Severity::Warning,
            message: "clear\x1b[2J\rscreen".into(),
            location: None,
            snippet: Some("a\tb\x07".into()),
            hint: None,
        };
        let text = render(&d);
        assert_eq!(text, "warning: clear\\u{1b}[2J\\u{d}screen\n    a\tb\\u{7}");
    }
}
