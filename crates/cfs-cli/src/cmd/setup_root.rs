//! `cfsctl setup-root` / `composefs-setup-root`: the initramfs step that
//! mounts the booted deployment as the new root (see
//! [`cfs_deploy::setup_root`]). Messages go to stderr, which the systemd
//! unit sends to the console and the journal: an initramfs failure is the
//! worst place for a vague one.

use anyhow::{Context, Result};
use cfs_deploy::setup_root::{CONFIG_PATH, Config, EtcMount, SetupOptions, setup_root};

use crate::cli::SetupRootArgs;

pub(crate) fn run(args: &SetupRootArgs) -> Result<()> {
    let cmdline = match &args.cmdline {
        Some(c) => c.clone(),
        None => std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?,
    };
    let config_path = args
        .config
        .clone()
        .or_else(|| Some(CONFIG_PATH.into()).filter(|p: &std::path::PathBuf| p.exists()));
    let config = match &config_path {
        Some(p) => {
            let text = cfs_deploy::deploy::read_small_file(
                p,
                cfs_deploy::setup_root::config::MAX_CONFIG_LEN as u64,
            )
            .with_context(|| format!("reading {}", p.display()))?;
            Config::parse(&text).with_context(|| format!("{}", p.display()))?
        }
        None => Config::default(),
    };
    let opts = SetupOptions {
        cmdline,
        sysroot: args.sysroot.clone(),
        target: args.target.clone(),
        config,
        run_dir: args.run_dir.clone(),
    };
    let gpt_auto = std::path::Path::new(cfs_deploy::setup_root::gpt_auto::GPT_AUTO_ROOT);
    if let Some(link) =
        cfs_deploy::setup_root::gpt_auto::write_volatile_root_hint(gpt_auto, &args.run_dir)
            .with_context(|| format!("writing the volatile-root hint for {}", gpt_auto.display()))?
    {
        eprintln!("composefs: {} -> {}", link.display(), gpt_auto.display());
    }
    let r = setup_root(&opts).context("composefs root setup failed")?;
    let etc = match r.etc {
        EtcMount::Bind => "bind",
        EtcMount::Overlay => "overlay",
        EtcMount::Transient => "transient",
        EtcMount::None => "image (read-only)",
    };
    let var = match r.var {
        Some(cfs_deploy::setup_root::VarMount::Bind) => "bind",
        Some(cfs_deploy::setup_root::VarMount::None) => "image",
        None => "skipped (systemd.volatile)",
    };
    eprintln!(
        "composefs: mounted {} ({}) on {} as {}{}; /etc {etc}, /var {var}{}",
        r.id,
        r.arg,
        r.target.display(),
        r.source,
        if r.verity {
            ", verity=require"
        } else {
            ", verity not enforced"
        },
        if r.sysroot {
            ", physical root at sysroot/"
        } else {
            ""
        },
    );
    Ok(())
}
