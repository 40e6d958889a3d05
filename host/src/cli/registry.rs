//! lade login, logout, list-tags, delete.

use super::Global;
use super::flags::RemoteFlags;
use crate::registry::{Registry, auth};
use crate::transport::{self, SystemContext, TransportRef};
use anyhow::{Context, Result, bail};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Registry host (optionally with a namespace: HOST/NS), as in the auth file
    pub registry: String,
    /// User name (asked for on a terminal when missing)
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (asked for, without echo, on a terminal when missing)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// Print the user name stored for the registry and exit
    #[arg(long)]
    pub get_login: bool,
    #[command(flatten)]
    pub remote: RemoteFlags,
}

/// `host[/ns]` from what the user typed (`https://host/`, `docker://host`, `index.docker.io`).
fn registry_key(s: &str) -> Result<String> {
    let s = s.trim();
    let s = s
        .strip_prefix("docker://")
        .or_else(|| s.strip_prefix("https://"))
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let s = s.trim_end_matches('/');
    if s.is_empty() {
        bail!("no registry given: write lade login HOST[:PORT]");
    }
    if s.contains('@')
        || s.rsplit('/')
            .next()
            .is_some_and(|last| s.contains('/') && last.contains(':'))
    {
        bail!("`{s}`: log in to a registry or a namespace, without a tag or digest");
    }
    let host = s.split('/').next().unwrap_or(s);
    let host = if host == "index.docker.io" || host == "registry-1.docker.io" {
        "docker.io"
    } else {
        host
    };
    Ok(match s.split_once('/') {
        Some((_, rest)) => format!("{host}/{rest}"),
        None => host.to_string(),
    })
}

/// The password from `--password`, `--password-stdin`, or None when neither was given.
fn given_password(a: &LoginArgs) -> Result<Option<String>> {
    match (&a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin exclude each other"),
        (Some(p), false) => Ok(Some(p.clone())),
        (None, true) => {
            if a.username.is_none() {
                bail!("--password-stdin needs --username (standard input carries the password)");
            }
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the password from standard input")?;
            Ok(Some(s.trim_end_matches(['\n', '\r']).to_string()))
        }
        (None, false) => Ok(None),
    }
}

/// Ask on the terminal for what is missing (as podman does: `Username (stored):`, then a password without
/// echo). Without a terminal on standard input, say which flag to pass instead of waiting.
fn ask_missing(
    username: Option<String>,
    password: Option<String>,
    stored_user: Option<&str>,
) -> Result<(String, String)> {
    let terminal = std::io::stdin().is_terminal();
    let username = match username {
        Some(u) => u,
        None if terminal => {
            match stored_user {
                Some(u) => eprint!("Username ({u}): "),
                None => eprint!("Username: "),
            }
            std::io::stderr().flush()?;
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the user name from the terminal")?;
            match line.trim() {
                "" => stored_user
                    .map(str::to_string)
                    .context("no user name given")?,
                u => u.to_string(),
            }
        }
        None => bail!(
            "no user name: pass --username (standard input is not a terminal, so lade cannot ask for it)"
        ),
    };
    let password = match password {
        Some(p) => p,
        None if terminal => rpassword::prompt_password("Password: ")
            .context("reading the password from the terminal")?,
        None => bail!(
            "no password: pass --password or --password-stdin (standard input is not a terminal, so lade cannot ask for it)"
        ),
    };
    if username.is_empty() {
        bail!("the user name is empty");
    }
    Ok((username, password))
}

pub fn login(g: &Global, mut a: LoginArgs) -> Result<()> {
    let key = registry_key(&a.registry)?;
    // `--creds USER[:PASSWORD]` is another way to give what -u and -p give.
    if let Some(c) = a.remote.creds.take() {
        let (user, pass) = match c.split_once(':') {
            Some((u, p)) => (u.to_string(), Some(p.to_string())),
            None => (c, None),
        };
        a.username.get_or_insert(user);
        if a.password.is_none() && !a.password_stdin {
            a.password = pass;
        }
    }
    let ctx = a.remote.context(g);
    let existing = auth::for_key(&key, &ctx)?;
    let stored_user = match &existing {
        Some(auth::Credentials::Basic { username, .. }) => Some(username.clone()),
        _ => None,
    };
    if a.get_login {
        return match stored_user {
            Some(u) => {
                crate::stdout::outln!("{u}");
                Ok(())
            }
            None => bail!("not logged into {key}"),
        };
    }
    let password = given_password(&a)?;
    let host = key.split('/').next().unwrap_or(&key).to_string();
    let insecure = insecure_in_conf(&ctx, &host)?;
    let rt = super::runtime()?;
    let check = |c: auth::Credentials| -> Result<()> {
        let reg = Registry::new(&host, None, &ctx, insecure)?.with_credentials(Some(c));
        rt.block_on(reg.check_login())
    };
    if a.username.is_none()
        && password.is_none()
        && let Some(c @ auth::Credentials::Basic { .. }) = &existing
    {
        crate::stdout::outln!("Authenticating with existing credentials for {key}");
        match check(c.clone()) {
            Ok(()) => {
                crate::stdout::outln!(
                    "Existing credentials are valid. Already logged in to {host}"
                );
                return Ok(());
            }
            Err(e) => {
                tracing::debug!("existing credentials for {key}: {e:#}");
                crate::stdout::outln!(
                    "Existing credentials are invalid, please enter valid username and password"
                );
            }
        }
    }
    let (username, password) = ask_missing(a.username.clone(), password, stored_user.as_deref())?;
    check(auth::Credentials::Basic {
        username: username.clone(),
        password: password.clone(),
    })?;
    match auth::save_for(&ctx, &key, &username, &password)? {
        auth::Saved::File(f) => tracing::info!("credentials for {key} stored in {}", f.display()),
        auth::Saved::Helper(h) => {
            tracing::info!("credentials for {key} stored in credential helper {h}")
        }
    }
    crate::stdout::outln!("Login Succeeded!");
    Ok(())
}

fn insecure_in_conf(ctx: &SystemContext, host: &str) -> Result<bool> {
    Ok(crate::registry::registries_conf(ctx)?.insecure_host(host))
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// Registry host (or HOST/NS) to forget
    pub registry: Option<String>,
    /// Remove the credentials of every registry (credential helpers included)
    #[arg(short, long)]
    pub all: bool,
    /// auth.json to edit
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

pub fn logout(g: &Global, a: LogoutArgs) -> Result<()> {
    let file = auth::primary_auth_file(a.authfile.as_deref());
    let ctx = SystemContext {
        authfile: a.authfile.clone(),
        registries_conf: g.registries_conf.clone(),
        ..Default::default()
    };
    if a.all {
        if let Some(r) = &a.registry {
            bail!("--all takes no registry (got `{r}`)");
        }
        auth::forget_all_for(&ctx)?;
        crate::stdout::outln!("Removed login credentials for all registries");
        return Ok(());
    }
    let key = registry_key(
        a.registry
            .as_deref()
            .context("name the registry to log out of, or pass --all")?,
    )?;
    if auth::forget_for(&ctx, &key)? {
        crate::stdout::outln!("Removed login credentials for {key}");
        return Ok(());
    }
    for other in auth::auth_files(a.authfile.as_deref()).into_iter().skip(1) {
        if auth::stored_user(&other, &key).ok().flatten().is_some() {
            bail!(
                "not logged into {key} in {}; credentials for it are in {} (remove them there)",
                file.display(),
                other.display()
            );
        }
    }
    bail!("not logged into {key} (looked in {})", file.display())
}

#[derive(clap::Args, Debug)]
pub struct ListTagsArgs {
    /// docker://REPOSITORY (no tag)
    pub repository: String,
    /// Output format: json (the default) or a Go template (.Repository, .Tags)
    #[arg(long, default_value = "json", value_parser = super::template::check)]
    pub format: String,
    #[command(flatten)]
    pub remote: RemoteFlags,
}

pub fn list_tags(g: &Global, a: ListTagsArgs) -> Result<()> {
    let TransportRef::Docker(r) = transport::parse(&a.repository)? else {
        bail!("{}: list-tags works on docker://REPOSITORY", a.repository);
    };
    let ctx = a.remote.context(g);
    let (name, tags) = super::runtime()?.block_on(transport::docker::list_tags(&r, &ctx))?;
    let out = serde_json::json!({ "Repository": name, "Tags": tags });
    if !super::template::print_doc(&a.format, &out)? {
        crate::stdout::outln!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// docker://REFERENCE or oci:DIR:REF
    pub image: String,
    #[command(flatten)]
    pub remote: RemoteFlags,
}

pub fn delete(g: &Global, a: DeleteArgs) -> Result<()> {
    match transport::parse(&a.image)? {
        TransportRef::Docker(r) => {
            let ctx = a.remote.context(g);
            let d = super::runtime()?.block_on(transport::docker::delete(&r, &ctx))?;
            eprintln!("Deleted {} ({d})", a.image);
            Ok(())
        }
        TransportRef::Oci {
            dir,
            reference: Some(r),
        } => {
            let layout = crate::store::layout::Layout::open(&dir)?;
            match layout.remove_ref(&r)? {
                Some(d) => {
                    eprintln!(
                        "Deleted {} ({}); its blobs stay until a prune",
                        a.image,
                        d.digest()
                    );
                    Ok(())
                }
                None => bail!("{}: no image named `{r}` in {}", a.image, dir.display()),
            }
        }
        TransportRef::Oci {
            dir,
            reference: None,
        } => bail!(
            "{}: name the image to delete: oci:{}:REF",
            a.image,
            dir.display()
        ),
        _ => bail!(
            "{}: lade delete works on docker:// and oci:DIR:REF",
            a.image
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            registry_key("https://index.docker.io/").unwrap(),
            "docker.io"
        );
        assert_eq!(registry_key("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(registry_key("quay.io/team").unwrap(), "quay.io/team");
        assert!(registry_key("quay.io/team/app:1").is_err());
        assert!(registry_key("").is_err());
    }
}
