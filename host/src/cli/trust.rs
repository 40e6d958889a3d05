//! lade trust show|set: the signature policy (policy.json) as `podman image trust` shows and edits it.

use super::Global;
use crate::policy::registries_d::{self, RegistriesD};
use crate::policy::trust::{self, Row, TrustType};
use crate::policy::{Policy, policy_path};
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum TrustCommand {
    /// Show the policy: one row per requirement of the default and of every scope
    Show(ShowArgs),
    /// Set the requirements of the default or of one registry, namespace or repository scope
    Set(SetArgs),
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// Only this scope (e.g. quay.io/team or default)
    pub scope: Option<String>,
    /// Output as JSON (the fields podman prints)
    #[arg(short, long)]
    pub json: bool,
    /// Print the policy file as it is
    #[arg(long)]
    pub raw: bool,
    /// Do not print column headings
    #[arg(short, long)]
    pub noheading: bool,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// `default`, or a registry (quay.io), namespace or repository (quay.io/team/app), image or
    /// `*.domain` wildcard
    pub scope: String,
    /// accept, reject, signedBy (GPG keys) or sigstoreSigned (public keys)
    #[arg(
        short = 't',
        long = "type",
        default_value = "signedBy",
        value_name = "TYPE"
    )]
    pub kind: String,
    /// Public key file to trust (repeat for several; each becomes one requirement, as podman does)
    #[arg(short = 'f', long = "pubkeysfile", value_name = "FILE")]
    pub pubkeysfile: Vec<PathBuf>,
}

pub fn run(g: &Global, c: TrustCommand) -> Result<()> {
    match c {
        TrustCommand::Show(a) => show(g, a),
        TrustCommand::Set(a) => set(g, a),
    }
}

fn show(g: &Global, a: ShowArgs) -> Result<()> {
    let path = policy_path(g.signature_policy.as_deref())?;
    if a.raw {
        let raw = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        crate::stdout::outln!("{}", raw.trim_end());
        return Ok(());
    }
    let policy = Policy::load(&path)?;
    let conf = RegistriesD::load(&registries_d::dir(g.registries_d.as_deref()))?;
    let rows: Vec<Row> = trust::show(&policy, &conf)
        .into_iter()
        .filter(|r| a.scope.as_ref().is_none_or(|s| &r.repo_name == s))
        .collect();
    if a.json {
        crate::stdout::outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let mut lines: Vec<[String; 5]> = vec![];
    if !a.noheading {
        lines.push(["TRANSPORT", "NAME", "TYPE", "ID", "STORE"].map(String::from));
    }
    for r in rows {
        lines.push([
            r.transport,
            r.repo_name,
            r.kind,
            r.gpg_id,
            r.signature_store,
        ]);
    }
    crate::stdout::out!("{}", table(&lines));
    Ok(())
}

/// Columns as podman's report writer lays them out: each but the last padded to the widest cell plus two,
/// at least twelve wide.
fn table(lines: &[[String; 5]]) -> String {
    let mut widths = [12usize; 4];
    for l in lines {
        for (w, cell) in widths.iter_mut().zip(l) {
            *w = (*w).max(cell.chars().count() + 2);
        }
    }
    let mut out = String::new();
    for l in lines {
        for (w, cell) in widths.iter().zip(l) {
            out.push_str(&format!("{cell:<w$}"));
        }
        out.push_str(&l[4]);
        out.push('\n');
    }
    out
}

fn set(g: &Global, a: SetArgs) -> Result<()> {
    let kind: TrustType = a.kind.parse()?;
    let path = trust::set_path(g.signature_policy.as_deref());
    trust::set(&path, &a.scope, kind, &a.pubkeysfile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_like_podman() {
        let lines = vec![
            ["TRANSPORT", "NAME", "TYPE", "ID", "STORE"].map(String::from),
            ["repository", "example.com/a/b", "sigstoreSigned", "N/A", ""].map(String::from),
        ];
        assert_eq!(
            table(&lines),
            "TRANSPORT   NAME             TYPE            ID          STORE\nrepository  example.com/a/b  sigstoreSigned  N/A         \n"
        );
    }
}
