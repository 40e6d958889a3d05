//! Builds the default plugins in `plugins/` for wasm32-wasip2 and embeds them, so one `lade` file is a
//! complete tool. The plugins get a target directory of their own (`target/plugins`), shared by every
//! profile, so they are compiled once however often the host is rebuilt.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().to_path_buf();
    let plugins = workspace.join("plugins");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());

    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    // Part of the plugin compile cache key.
    println!(
        "cargo:rustc-env=LADE_WASMTIME_VERSION={}",
        locked_version(&workspace, "wasmtime")
    );
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.lock").display()
    );
    let members = plugin_members(&plugins);
    for m in &members {
        println!("cargo:rerun-if-changed={}", plugins.join(m).display());
    }

    if !target_installed() {
        // One line, naming the fix.
        panic!(
            "the {TARGET} Rust target is missing: run `rustup target add {TARGET}` (scripts/setup.sh does it)"
        );
    }

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("plugins");
    // One cargo run per plugin: each enables the SDK feature of its own kind, and the SDK's kinds cannot be
    // compiled together (wit-bindgen names the shared `metadata` export's macro the same in every world), so
    // a single workspace build, which unifies features, would not compile.
    for m in &members {
        build_plugin(&plugins, &target_dir, &format!("lade-{m}"));
    }

    let mut table =
        String::from("/// The default plugins, built from plugins/ (name, component bytes).\n");
    table.push_str("pub static EMBEDDED: &[(&str, &[u8])] = &[\n");
    for m in &members {
        let file = format!("lade_{}.wasm", m.replace('-', "_"));
        let built = target_dir.join(TARGET).join("release").join(&file);
        let copy = out.join(&file);
        fs::copy(&built, &copy).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
        table.push_str(&format!(
            "    ({m:?}, include_bytes!({:?})),\n",
            copy.display().to_string()
        ));
    }
    table.push_str("];\n");
    fs::write(out.join("embedded_plugins.rs"), table).unwrap();
}

/// `cargo build` of one plugin package for wasm32-wasip2 into `target_dir`.
fn build_plugin(plugins: &Path, target_dir: &Path, package: &str) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(plugins)
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "-p",
            package,
            "--target-dir",
        ])
        .arg(target_dir);
    // CI builds exactly what plugins/Cargo.lock says; a developer's build may refresh it, as cargo does for
    // the main workspace, so a dependency added in plugins/ does not stop everyone's build.
    println!("cargo:rerun-if-env-changed=CI");
    if env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        cmd.arg("--locked");
    }
    // The outer build's settings are for the host, not for wasm.
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy().to_string();
        let keep = k == "CARGO_HOME" || k == "CARGO_MAKEFLAGS" || k == "CARGO_NET_OFFLINE";
        if !keep
            && (k.starts_with("CARGO_")
                || k.starts_with("RUSTC")
                || k.starts_with("RUSTFLAGS")
                || k == "RUSTDOCFLAGS")
        {
            cmd.env_remove(&k);
        }
    }
    let status = cmd.status().expect("running cargo for the plugins");
    if !status.success() {
        panic!(
            "building the default plugin {package} in {} failed (see the errors above); after a dependency \
             change in plugins/, refresh its lock file: `cargo update -w --manifest-path plugins/Cargo.toml`",
            plugins.display()
        );
    }
}

/// Member crates of the plugins workspace: every directory with a Cargo.toml that builds a cdylib.
fn plugin_members(plugins: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(plugins)
        .expect("reading plugins/")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let toml = e.path().join("Cargo.toml");
            fs::read_to_string(toml).is_ok_and(|t| t.contains("cdylib"))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The version of `package` in the workspace's Cargo.lock.
fn locked_version(workspace: &Path, package: &str) -> String {
    let lock = fs::read_to_string(workspace.join("Cargo.lock")).expect("reading Cargo.lock");
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .unwrap_or_else(|| panic!("{package} is not in Cargo.lock"))
        + needle.len();
    lock[start..].split('"').next().unwrap().to_string()
}

fn target_installed() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .exists()
}
