//! Working containers, with buildah's names: `from`, `containers`, `run`, `mount`, `umount`, `unshare`,
//! `commit`, `rm`, `rename`, `add`; buildah's `copy` is `lade cp` (lade's `copy` is skopeo's). Image
//! inspection beside them: `diff`, `export`, `import`. `config` is in `containers_config`.
//!
//! As an ordinary user each command re-runs itself in lade's user namespace (as a build does); `mount`
//! only makes sense inside `lade unshare`, whose namespace outlives the command.

use super::Global;
use super::build::{IsolationArg, NetworkArg, SecurityFlags};
use super::template::{self, Format};
use crate::build::base::{BaseResolver, PullPolicy};
use crate::container::commit::{self, CommitOptions};
use crate::container::ops::{self, RunOptions};
use crate::container::{Containers, rootfs};
use crate::dispatch::isolation::{Isolation, Network, Security};
use crate::dispatch::platform::Platform;
use crate::dispatch::userns;
use crate::layer::DiffOptions;
use crate::oci::Compression;
use crate::plugin::frontend::{CacheSharing, Mount, MountType};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Re-run in lade's user namespace as an ordinary user (layers keep their owners there), as a build does.
fn enter_userns(g: &Global) -> Result<()> {
    if userns::needed() {
        userns::rerun(&g.root(), &crate::paths::cache_dir())?;
    }
    Ok(())
}

fn open(g: &Global) -> Result<Containers> {
    Containers::open(&Store::open(&g.root())?)
}

#[derive(clap::Args, Debug)]
pub struct FromArgs {
    /// The image (`scratch` for an empty one): a name in the store, or any transport reference
    pub image: String,
    /// The container's name (default: `<image>-working-container`, numbered when taken)
    #[arg(long)]
    pub name: Option<String>,
    /// When to pull the image
    #[arg(long, num_args = 0..=1, default_missing_value = "always", require_equals = true, default_value = "missing",
        value_parser = super::flags::choice::<PullPolicy>(&["always", "missing", "never", "newer", "true", "false"]))]
    pub pull: PullPolicy,
    /// The platform of the image to use (default: this host's)
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub remote: super::flags::RemoteFlags,
}

/// `lade from`: prints the new container's name.
pub fn from(g: &Global, a: FromArgs) -> Result<()> {
    enter_userns(g)?;
    let platform = match &a.platform {
        Some(p) => p.parse::<Platform>()?,
        None => Platform::host(),
    };
    let cs = open(g)?;
    let rt = super::runtime()?;
    let resolver = BaseResolver::new(
        cs.store().clone(),
        a.remote.context(g),
        a.pull,
        rt.handle().clone(),
    );
    let c = ops::from(&cs, &resolver, &a.image, &platform, a.name.as_deref())?;
    crate::stdout::outln!("{}", c.name);
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ContainersArgs {
    /// `json`, `table`, or a Go template over ContainerID, Builder, ImageID, ImageName, ContainerName
    #[arg(long, default_value = "text", value_parser = template::check)]
    pub format: String,
    /// Only the container ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Full ids
    #[arg(long)]
    pub notruncate: bool,
    /// Leave the header row out
    #[arg(short = 'n', long)]
    pub noheading: bool,
}

/// `lade containers`, with buildah's fields.
pub fn containers(g: &Global, a: ContainersArgs) -> Result<()> {
    let cs = open(g)?;
    let list = cs.list()?;
    let short = |s: &str| -> String {
        let s = s.trim_start_matches("sha256:");
        if a.notruncate {
            s.to_string()
        } else {
            s.chars().take(12).collect()
        }
    };
    if a.quiet {
        for c in &list {
            crate::stdout::outln!("{}", short(&c.id));
        }
        return Ok(());
    }
    let format = Format::parse(&a.format)?;
    if matches!(format, Format::Json) {
        let v: Vec<Value> = list
            .iter()
            .map(|c| {
                json!({"id": c.id, "builder": true, "imageid": c.image_id.trim_start_matches("sha256:"),
                    "imagename": c.image, "containername": c.name, "created": c.created})
            })
            .collect();
        crate::stdout::outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let rows: Vec<Value> = list
        .iter()
        .map(|c| {
            json!({"ContainerID": short(&c.id), "Builder": "   *", "ImageID": short(&c.image_id),
                "ImageName": c.image, "ContainerName": c.name})
        })
        .collect();
    let is_table = matches!(format, Format::Default | Format::Table(_));
    let t = match format {
        Format::Default | Format::Table(None) => template::Tmpl::parse(
            "{{.ContainerID}}\t{{.Builder}}\t{{.ImageID}}\t{{.ImageName}}\t{{.ContainerName}}",
        )?,
        Format::Table(Some(t)) | Format::Template(t) => t,
        Format::Json => unreachable!("handled above"),
    };
    let header = json!({"ContainerID": "CONTAINER ID", "Builder": "BUILDER", "ImageID": "IMAGE ID",
        "ImageName": "IMAGE NAME", "ContainerName": "CONTAINER NAME"});
    template::print(&t, (is_table && !a.noheading).then_some(&header), &rows)
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Run as this user (`name`, `uid`, `uid:gid`); default: the container's User
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Working directory of the command; default: the container's WorkingDir
    #[arg(long)]
    pub workingdir: Option<String>,
    /// Set an environment variable for the command, `KEY=value`; repeatable
    #[arg(long, short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A mount, as a build's `RUN --mount` takes it: `type=bind,source=/host/dir,target=/in,rw`,
    /// `type=tmpfs,target=/t`, `type=cache,target=/c`; bind sources are host paths, read-only unless `rw`
    /// (writes to a `rw` bind land in a throwaway layer, as in a build)
    #[arg(long, value_name = "SPEC")]
    pub mount: Vec<String>,
    /// The command's network
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// How the command is isolated
    #[arg(long, value_enum, default_value_t = IsolationArg::Chroot)]
    pub isolation: IsolationArg,
    #[command(flatten)]
    pub security: SecurityFlags,
    /// The working container
    pub container: String,
    /// The command and its arguments (after `--`)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `--mount` SPEC as a build's mount record.
fn parse_mount(spec: &str) -> Result<Mount> {
    let mut m = Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        read_write: false,
        id: None,
        sharing: CacheSharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let num = |v: &str| -> Result<u32> {
            v.parse()
                .with_context(|| format!("--mount {spec}: {k}={v} is not a number"))
        };
        match k {
            "type" => {
                m.kind = match v {
                    "bind" => MountType::Bind,
                    "tmpfs" => MountType::Tmpfs,
                    "cache" => MountType::Cache,
                    _ => bail!("--mount {spec}: type must be bind, tmpfs or cache"),
                }
            }
            "source" | "src" => m.source = Some(v.to_string()),
            "target" | "destination" | "dst" => m.target = Some(v.to_string()),
            "ro" | "readonly" => m.read_write = v == "false",
            "rw" | "readwrite" => m.read_write = v != "false",
            "id" => m.id = Some(v.to_string()),
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(v, 8)
                        .with_context(|| format!("--mount {spec}: mode={v} is not octal"))?,
                )
            }
            "uid" => m.uid = Some(num(v)?),
            "gid" => m.gid = Some(num(v)?),
            "sharing" => {
                m.sharing = match v {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => bail!("--mount {spec}: sharing must be shared, private or locked"),
                }
            }
            "size" | "tmpfs-size" => {
                m.size = Some(
                    v.parse()
                        .with_context(|| format!("--mount {spec}: size={v}"))?,
                )
            }
            _ => bail!("--mount {spec}: unknown option {k:?}"),
        }
    }
    if m.target.is_none() {
        bail!("--mount {spec}: needs target=/path");
    }
    // Bind sources are host paths: the "context" of `lade run` is the host's root.
    if m.kind == MountType::Bind {
        let src = m
            .source
            .clone()
            .with_context(|| format!("--mount {spec}: a bind mount needs source=/host/path"))?;
        let abs = std::env::current_dir()?.join(src);
        m.source = Some(abs.to_string_lossy().trim_start_matches('/').to_string());
    }
    Ok(m)
}

/// `lade run`: exits with the command's status.
pub fn run(g: &Global, a: RunArgs) -> Result<std::process::ExitCode> {
    enter_userns(g)?;
    let cs = open(g)?;
    let c = cs.find(&a.container)?;
    let _held = cs.lock(&c)?;
    let env = a
        .env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => std::env::var(e)
                .map(|v| (e.clone(), v))
                .with_context(|| format!("--env {e}: not KEY=value, and not set here")),
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = RunOptions {
        user: a.user,
        workdir: a.workingdir,
        env,
        mounts: a
            .mount
            .iter()
            .map(|m| parse_mount(m))
            .collect::<Result<_>>()?,
        network: a.network.map(|n| match n {
            NetworkArg::Host => Network::Host,
            NetworkArg::None => Network::None,
        }),
        isolation: match a.isolation {
            IsolationArg::Chroot => Isolation::Namespaces,
            IsolationArg::Oci => Isolation::Oci,
        },
        security: Security::from_flags(
            &a.security.cap_add,
            &a.security.cap_drop,
            &a.security.security_opt,
        )?,
    };
    let out = ops::run(&cs, &c, a.command, &opts)?;
    Ok(match (out.exit_code, out.signal) {
        (Some(code), _) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        (None, Some(s)) => std::process::ExitCode::from((128 + s).clamp(0, 255) as u8),
        (None, None) => std::process::ExitCode::from(1),
    })
}

#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// Working containers (none: list the mounted ones with their mount points)
    pub containers: Vec<String>,
}

/// `lade mount`: prints the mount point (for several containers: `name mountpoint` lines, as buildah).
pub fn mount(g: &Global, a: MountArgs) -> Result<()> {
    if userns::needed() {
        bail!(
            "`lade mount` as an ordinary user needs lade's user namespace to stay: run it inside `lade unshare` \
             (e.g. `lade unshare sh -c 'mnt=$(lade mount CTR); ...'`), as `buildah mount` needs `buildah unshare`"
        );
    }
    let cs = open(g)?;
    if a.containers.is_empty() {
        for c in cs.list()? {
            let m = rootfs::merged(&cs, &c);
            if rootfs::is_mounted(&m) {
                crate::stdout::outln!("{} {}", c.name, m.display());
            }
        }
        return Ok(());
    }
    let many = a.containers.len() > 1;
    for name in &a.containers {
        let c = cs.find(name)?;
        let _held = cs.lock(&c)?;
        let m = rootfs::mount(&cs, &c)?;
        if many {
            crate::stdout::outln!("{} {}", c.name, m.display());
        } else {
            crate::stdout::outln!("{}", m.display());
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct UmountArgs {
    /// Unmount every working container
    #[arg(long, short)]
    pub all: bool,
    pub containers: Vec<String>,
}

/// `lade umount`.
pub fn umount(g: &Global, a: UmountArgs) -> Result<()> {
    let cs = open(g)?;
    let list = if a.all {
        cs.list()?
    } else {
        if a.containers.is_empty() {
            bail!("name the containers to unmount, or --all");
        }
        a.containers
            .iter()
            .map(|n| cs.find(n))
            .collect::<Result<Vec<_>>>()?
    };
    for c in list {
        let _held = cs.lock(&c)?;
        if rootfs::unmount(&cs, &c)? && !a.all {
            crate::stdout::outln!("{}", c.id);
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct UnshareArgs {
    /// The command (default: $SHELL, else /bin/sh)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `lade unshare`: the command in lade's user and mount namespace (as root: the command as it is), where
/// `lade mount` mounts stay visible; exits with its status.
pub fn unshare(g: &Global, a: UnshareArgs) -> Result<std::process::ExitCode> {
    enter_userns(g)?;
    let mut argv = a.command;
    if argv.is_empty() {
        argv.push(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()));
    }
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env("LADE_ROOT", g.root())
        .env("LADE_UNSHARE", "1")
        .status()
        .with_context(|| format!("running {}", argv[0]))?;
    Ok(std::process::ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8,
    ))
}

#[derive(clap::Args, Debug)]
pub struct CopyInArgs {
    /// Owner of the copied files, `user[:group]` (names looked up in the container)
    #[arg(long)]
    pub chown: Option<String>,
    /// Mode of the copied files, octal (`0755`) or symbolic (`u+x`)
    #[arg(long)]
    pub chmod: Option<String>,
    pub container: String,
    /// Sources (host paths; for `add` also URLs, and local archives are extracted), then the destination
    #[arg(required = true, num_args = 2..)]
    pub paths: Vec<String>,
}

/// `lade cp` (`add` false) and `lade add` (`add` true).
pub fn copy_in(g: &Global, a: CopyInArgs, add: bool) -> Result<()> {
    enter_userns(g)?;
    let cs = open(g)?;
    let c = cs.find(&a.container)?;
    let _held = cs.lock(&c)?;
    let (dest, sources) = a.paths.split_last().context("no destination")?;
    ops::copy(&cs, &c, add, sources, dest, a.chown, a.chmod)
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormatArg {
    Oci,
    Docker,
}

#[derive(clap::Args, Debug)]
pub struct CommitArgs {
    pub container: String,
    /// Name for the image (none: unnamed; its id is printed either way)
    pub image: Option<String>,
    /// One layer holding the whole tree
    #[arg(long)]
    pub squash: bool,
    #[arg(long, short = 'f', value_enum, default_value_t = ImageFormatArg::Oci)]
    pub format: ImageFormatArg,
    /// Remove the container after committing it
    #[arg(long)]
    pub rm: bool,
    /// Layer compression
    #[arg(long, default_value = "gzip", value_parser = super::flags::choice::<Compression>(&["gzip", "zstd"]))]
    pub compression_format: Compression,
    /// Print nothing
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub sign: super::sign::SignFlags,
    /// GPG simple signing (buildah's flag): refused, since the store keeps no GPG signatures; commit,
    /// then `lade push --sign-by`
    #[arg(long, value_name = "FINGERPRINT")]
    pub sign_by: Option<String>,
}

/// `lade commit`: prints the image id.
pub fn commit(g: &Global, a: CommitArgs) -> Result<()> {
    if a.sign_by.is_some() {
        bail!(
            "commit --sign-by: lade's store keeps no GPG signatures; commit, then sign where the image goes (lade push --sign-by FPR NAME docker://...)"
        );
    }
    if a.sign.sign_by_sigstore_private_key.is_some() && a.image.is_none() {
        bail!("--sign-by-sigstore-private-key signs the committed image by name: give IMAGE");
    }
    // The key is opened (its passphrase checked) before anything is committed.
    let signer = super::sign::copy_signer(g, &a.sign)?;
    enter_userns(g)?;
    let cs = open(g)?;
    let c = cs.find(&a.container)?;
    let names: Vec<String> = a.image.iter().cloned().collect();
    let done = {
        let _held = cs.lock(&c)?;
        let opts = CommitOptions {
            names: names.clone(),
            squash: a.squash,
            docker: a.format == ImageFormatArg::Docker,
            layer: DiffOptions {
                compression: a.compression_format,
                ..DiffOptions::default()
            },
        };
        commit::commit(&cs, &c, &opts)?
    };
    if let Some(s) = &signer {
        for n in &names {
            let dest = format!("lade:{n}");
            s.sign(&dest, &super::flags::RemoteFlags::default().context(g))
                .with_context(|| format!("signing the committed {dest}"))?;
        }
    }
    if a.rm {
        cs.remove(&c)?;
    }
    if !a.quiet {
        crate::stdout::outln!("{}", done.config_digest.trim_start_matches("sha256:"));
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Remove every working container
    #[arg(long, short)]
    pub all: bool,
    pub containers: Vec<String>,
}

/// `lade rm`: prints each removed container's id.
pub fn rm(g: &Global, a: RmArgs) -> Result<()> {
    enter_userns(g)?;
    let cs = open(g)?;
    let list = if a.all {
        cs.list()?
    } else {
        if a.containers.is_empty() {
            bail!("name the containers to remove, or --all");
        }
        a.containers
            .iter()
            .map(|n| cs.find(n))
            .collect::<Result<Vec<_>>>()?
    };
    for c in list {
        cs.remove(&c)?;
        crate::stdout::outln!("{}", c.id);
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

pub fn rename(g: &Global, a: RenameArgs) -> Result<()> {
    let cs = open(g)?;
    let c = cs.find(&a.container)?;
    cs.rename(&c, &a.new_name)
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// A working container, or an image in the store
    pub target: String,
    /// `json` for {"added","changed","deleted"}, as podman
    #[arg(long, default_value = "text")]
    pub format: String,
}

/// `lade diff`: A/C/D lines against the parent (the image below a container, the layer below an image's
/// top layer).
pub fn diff(g: &Global, a: DiffArgs) -> Result<()> {
    enter_userns(g)?;
    let cs = open(g)?;
    let (rw, lowers) = match cs.find(&a.target) {
        Ok(c) => (rootfs::upper(&cs, &c), cs.state(&c)?.lowers()),
        Err(_) => {
            let rt = super::runtime()?;
            let resolver = BaseResolver::new(
                cs.store().clone(),
                super::flags::RemoteFlags::default().context(g),
                PullPolicy::Never,
                rt.handle().clone(),
            );
            let base = resolver
                .resolve(&a.target, &Platform::host())
                .with_context(|| {
                    format!(
                        "{:?} is neither a working container nor an image in the store",
                        a.target
                    )
                })?;
            let state =
                resolver.image_state(&base, &crate::layer::LayerCache::new(cs.store().root()))?;
            let mut lowers = state.lowers();
            let Some(top) = lowers.pop() else {
                bail!("{} has no layers", a.target);
            };
            (top, lowers)
        }
    };
    let changes = commit::changes(&rw, &lowers)?;
    if a.format == "json" {
        let pick = |k: char| -> Vec<&str> {
            changes
                .iter()
                .filter(|c| c.kind == k)
                .map(|c| c.path.as_str())
                .collect()
        };
        let mut v = serde_json::Map::new();
        for (k, name) in [('A', "added"), ('C', "changed"), ('D', "deleted")] {
            let list = pick(k);
            if !list.is_empty() {
                v.insert(name.into(), json!(list));
            }
        }
        crate::stdout::outln!("{}", serde_json::to_string_pretty(&Value::Object(v))?);
    } else {
        for c in &changes {
            crate::stdout::outln!("{} {}", c.kind, c.path);
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    pub container: String,
    /// The tar to write (default: stdout)
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub fn export(g: &Global, a: ExportArgs) -> Result<()> {
    enter_userns(g)?;
    let cs = open(g)?;
    let c = cs.find(&a.container)?;
    let _held = cs.lock(&c)?;
    commit::export(&cs, &c, a.output.as_deref())
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// A tar of a root filesystem (plain, gzip or zstd)
    pub tarball: PathBuf,
    /// Name for the image
    pub image: Option<String>,
    /// A Dockerfile instruction applied to the config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
    /// STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable
    #[arg(long, short)]
    pub change: Vec<String>,
    /// The history comment
    #[arg(long, short)]
    pub message: Option<String>,
    #[arg(long, short = 'f', value_enum, default_value_t = ImageFormatArg::Oci)]
    pub format: ImageFormatArg,
    #[arg(long, short)]
    pub quiet: bool,
}

/// `lade import`: prints the image id.
pub fn import(g: &Global, a: ImportArgs) -> Result<()> {
    enter_userns(g)?;
    let store = Store::open(&g.root())?;
    let mut cfg = crate::build::config::initial(None, &Platform::host(), false);
    for ch in &a.change {
        super::containers_config::apply_change(&mut cfg, ch)?;
    }
    let opts = CommitOptions {
        names: a.image.into_iter().collect(),
        squash: true,
        docker: a.format == ImageFormatArg::Docker,
        layer: DiffOptions::default(),
    };
    let done = commit::import(&store, &a.tarball, cfg, a.message, &opts)?;
    if !a.quiet {
        crate::stdout::outln!("{}", done.config_digest.trim_start_matches("sha256:"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_as_a_build_takes_them() {
        let m = parse_mount("type=bind,source=/srv/data,target=/data,rw").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert_eq!(m.source.as_deref(), Some("srv/data"));
        assert!(m.read_write);
        let t = parse_mount("type=tmpfs,dst=/t").unwrap();
        assert_eq!(t.kind, MountType::Tmpfs);
        assert!(parse_mount("type=bind,target=/x").is_err());
        assert!(parse_mount("type=nfs,target=/x").is_err());
        assert!(parse_mount("type=tmpfs").is_err());
    }
}
