//! `lade plugin new --kind frontend|scanner|signer NAME`: a plugin crate that builds with
//! `cargo build --release --target wasm32-wasip2` and that `lade plugin install` accepts. The guest SDK
//! (plugins/sdk) and the contract it is built on (wit/v0.2.0) are embedded in lade and written into the
//! crate's `sdk/` directory, so the crate needs nothing from lade's repository.

use crate::plugin::Kind;
use std::path::{Path, PathBuf};

/// The SDK's files, as written into a new plugin crate (relative path, content).
const SDK: &[(&str, &str)] = &[
    (
        "sdk/Cargo.toml",
        include_str!("../../../plugins/sdk/Cargo.toml"),
    ),
    (
        "sdk/src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "sdk/wit/types.wit",
        include_str!("../../../wit/v0.2.0/types.wit"),
    ),
    (
        "sdk/wit/metadata.wit",
        include_str!("../../../wit/v0.2.0/metadata.wit"),
    ),
    (
        "sdk/wit/context.wit",
        include_str!("../../../wit/v0.2.0/context.wit"),
    ),
    (
        "sdk/wit/images.wit",
        include_str!("../../../wit/v0.2.0/images.wit"),
    ),
    (
        "sdk/wit/frontend.wit",
        include_str!("../../../wit/v0.2.0/frontend.wit"),
    ),
    (
        "sdk/wit/image-files.wit",
        include_str!("../../../wit/v0.2.0/image-files.wit"),
    ),
    (
        "sdk/wit/data-dirs.wit",
        include_str!("../../../wit/v0.2.0/data-dirs.wit"),
    ),
    (
        "sdk/wit/scanner.wit",
        include_str!("../../../wit/v0.2.0/scanner.wit"),
    ),
    (
        "sdk/wit/signer.wit",
        include_str!("../../../wit/v0.2.0/signer.wit"),
    ),
    (
        "sdk/wit/worlds.wit",
        include_str!("../../../wit/v0.2.0/worlds.wit"),
    ),
];

fn template(kind: Kind) -> &'static str {
    match kind {
        Kind::Frontend => include_str!("../../../plugins/sdk/templates/frontend.rs"),
        Kind::Scanner => include_str!("../../../plugins/sdk/templates/scanner.rs"),
        Kind::Signer => include_str!("../../../plugins/sdk/templates/signer.rs"),
    }
}

fn manifest(name: &str, kind: Kind) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the component (target/wasm32-wasip2/release/{lib}.wasm); rlib: native `cargo test`.
crate-type = ["cdylib", "rlib"]

[dependencies]
lade-plugin-sdk = {{ path = "sdk", features = ["{kind}"] }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A workspace of its own, so that an enclosing one does not claim this crate.
[workspace]
"#,
        lib = name.replace('-', "_"),
        kind = kind.as_str(),
    )
}

/// Write the crate into `parent/name`; the directory must not exist yet. Returns it.
pub fn create(parent: &Path, name: &str, kind: Kind) -> anyhow::Result<PathBuf> {
    crate::plugin::installed::check_name(name)?;
    anyhow::ensure!(
        name.starts_with(|c: char| c.is_ascii_lowercase()) && !name.contains('.'),
        "`{name}` cannot name a Rust crate: start with a letter and use letters, digits, `-` and `_`"
    );
    let root = parent.join(name);
    anyhow::ensure!(
        !root.exists(),
        "{} already exists; pick another name or remove it",
        root.display()
    );
    let description = format!("A lade {kind} plugin");
    let lib = template(kind)
        .replace("__NAME__", name)
        .replace("__DESCRIPTION__", &description);
    let mut files: Vec<(String, String)> = vec![
        ("Cargo.toml".into(), manifest(name, kind)),
        ("src/lib.rs".into(), lib),
        (".gitignore".into(), "/target\n".into()),
    ];
    // The SDK's own manifest is a member of lade's plugins workspace; here it stands alone.
    files.extend(SDK.iter().map(|(p, c)| (p.to_string(), c.to_string())));
    // Written under a temporary name and renamed, so a failure leaves no half-made crate behind.
    let staging = parent.join(format!(".{name}.lade-new"));
    let _ = std::fs::remove_dir_all(&staging);
    let write = || -> anyhow::Result<()> {
        for (path, content) in &files {
            let target = staging.join(path);
            std::fs::create_dir_all(target.parent().expect("files are in a directory"))?;
            std::fs::write(&target, content)?;
        }
        std::fs::rename(&staging, &root)?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        e.context(format!("writing the new plugin crate {}", root.display()))
    })?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crate_is_written_once_with_its_sdk() {
        let dir = tempfile::tempdir().unwrap();
        let root = create(dir.path(), "my-scanner", Kind::Scanner).unwrap();
        let toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(toml.contains(r#"features = ["scanner"]"#), "{toml}");
        let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
        assert!(lib.contains(r#""my-scanner""#) && !lib.contains("__NAME__"));
        assert!(root.join("sdk/wit/data-dirs.wit").is_file());
        let e = create(dir.path(), "my-scanner", Kind::Scanner).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert!(create(dir.path(), "Bad Name", Kind::Signer).is_err());
        assert!(create(dir.path(), "9lives", Kind::Signer).is_err());
    }
}
