//! The scanner's file selection, compiled: globs of absolute image paths, executables, all layers or only
//! the final filesystem.

use crate::context::pattern::Pattern;
use crate::plugin::scanner::FileSelection;
use anyhow::Result;

pub struct Selection {
    globs: Vec<Pattern>,
    executables: bool,
    pub all_layers: bool,
    /// What the selection takes from a layer (not whether hidden entries count), for the scan cache.
    pub key: String,
}

impl Selection {
    pub fn new(wants: &FileSelection) -> Result<Selection> {
        let globs = wants
            .globs
            .iter()
            .map(|g| Pattern::new(g.trim_start_matches('/')))
            .collect::<Result<_>>()?;
        let key =
            serde_json::json!({"globs": wants.globs, "executables": wants.executables}).to_string();
        Ok(Selection {
            globs,
            executables: wants.executables,
            all_layers: wants.all_layers,
            key,
        })
    }

    /// Whether an entry at `path` (relative, no leading `/`) is selected; `exec_file` when it is a regular
    /// file with an execute bit set.
    pub fn wants(&self, path: &str, exec_file: bool) -> bool {
        (self.executables && exec_file) || self.globs.iter().any(|g| g.matches(path))
    }
}

/// An image path as the tar names it (`./usr/bin/`, `usr/bin`) in the form the selection and the scanner
/// see: relative, no `./`, no trailing `/`; None for the root itself.
pub fn clean(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_absolute_image_paths() {
        let s = Selection::new(&FileSelection {
            globs: vec!["/var/lib/dpkg/status".into(), "/**/*.jar".into()],
            executables: true,
            all_layers: false,
        })
        .unwrap();
        assert!(s.wants("var/lib/dpkg/status", false));
        assert!(s.wants("opt/app/lib/x.jar", false));
        assert!(s.wants("x.jar", false));
        assert!(!s.wants("var/lib/dpkg/status-old", false));
        assert!(s.wants("usr/bin/go", true));
    }

    #[test]
    fn tar_names_are_cleaned() {
        assert_eq!(clean("./usr/bin/").as_deref(), Some("usr/bin"));
        assert_eq!(clean("/etc//passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(clean("./"), None);
    }
}
