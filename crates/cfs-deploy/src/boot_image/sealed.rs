//! Sealed UKIs: a UKI whose `.cmdline` names the composefs image it boots
//! (`composefs=` / `composefs.digest=`). Since the UKI is signed, that
//! digest cannot change: the boot image built here must have it, as its V1
//! or its V2 id, or the machine will not find its root.

use cfs_core::tree::FileSystem;
use cfs_core::verity::Digest;

use super::{BootError, Contents, PeKind, Resource};
use crate::cmdline::{ComposefsArg, candidates};
use crate::uki::Uki;

/// The boot image's ids in both formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootIds {
    /// Id of the V1 image.
    pub v1: Digest,
    /// Id of the V2 image.
    pub v2: Digest,
}

/// A UKI of the image and the composefs argument it carries.
#[derive(Debug, Clone)]
pub struct SealedUki {
    /// Path of the UKI in the image.
    pub path: String,
    /// Its composefs argument (`None`: not sealed).
    pub arg: Option<ComposefsArg>,
}

/// The composefs argument of every UKI in `resources`.
pub fn uki_args(
    fs: &FileSystem,
    contents: &dyn Contents,
    resources: &[Resource],
) -> Result<Vec<SealedUki>, BootError> {
    let mut out = Vec::new();
    for r in resources {
        let Resource::Uki {
            path,
            kind: PeKind::Uki,
            inode,
            ..
        } = r
        else {
            continue;
        };
        let shown = String::from_utf8_lossy(path).into_owned();
        let uki = Uki::open(contents.open(fs, path, *inode)?)
            .map_err(|e| BootError::Invalid(format!("UKI {shown}: {e}")))?;
        let cmdline = uki
            .text(".cmdline")
            .map_err(|e| BootError::Invalid(format!("UKI {shown}: .cmdline: {e}")))?
            .unwrap_or_default();
        let arg = match candidates(&cmdline).into_iter().next() {
            None => None,
            Some(Ok(arg)) => Some(arg),
            Some(Err(e)) => {
                return Err(BootError::Invalid(format!("UKI {shown}: .cmdline: {e}")));
            }
        };
        out.push(SealedUki { path: shown, arg });
    }
    Ok(out)
}

/// Checks every sealed UKI against `ids`; returns the UKIs (sealed or not).
pub fn check(
    fs: &FileSystem,
    contents: &dyn Contents,
    resources: &[Resource],
    ids: &BootIds,
) -> Result<Vec<SealedUki>, BootError> {
    let ukis = uki_args(fs, contents, resources)?;
    for u in &ukis {
        let Some(arg) = &u.arg else { continue };
        if arg.digest != ids.v1 && arg.digest != ids.v2 {
            return Err(BootError::Invalid(format!(
                "UKI {} is sealed for composefs image {} ({arg}), but this image's boot image is \
                 {} (V1) or {} (V2); the UKI was built for different content or with other \
                 settings (try `oci pull --bootable --expected-digest {}` to search the xattr \
                 modes and formats)",
                u.path,
                arg.digest.to_hex(),
                ids.v1.to_hex(),
                ids.v2.to_hex(),
                arg.digest.to_hex(),
            )));
        }
    }
    Ok(ukis)
}
