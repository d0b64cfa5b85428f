//! SELinux labels for an image: `security.selinux` on every inode of a
//! [`FileSystem`](cfs_core::tree::FileSystem), from the file contexts of the policy **inside the image**,
//! byte for byte as composefs-rs 0.9.4 (`composefs-boot/src/selabel.rs`)
//! computes them, so that both tools give an image the same digest.
//!
//! ```text
//! label(fs, read)                          find /etc/selinux/config in fs, load, apply
//!   ├─ no /etc/selinux, no config,         → strip: remove security.selinux from every inode
//!   │  no SELINUXTYPE
//!   ├─ Policy::load(read, order)           config → <type>/contexts/files/{file_contexts,…}
//!   └─ apply(fs, &mut policy)              walk: root "/", then depth first in name order
//! ```
//!
//! * [`label`] / [`label_with`] — the whole job on a tree (inline files are
//!   read from the tree, external ones through a [`ReadExternal`] callback);
//!   the search rules (which absences strip and which are errors) are in
//!   `label.rs`.
//! * [`Policy::load`] with any [`ReadFile`] (e.g. [`dir_reader`] for an
//!   unpacked root), then [`Policy::lookup`] / [`Policy::matching_spec`] for
//!   single paths, [`apply`] for a tree, [`strip`] to remove labels.
//!
//! # Matching
//!
//! A spec line `REGEX [-T] CONTEXT` becomes the pattern `^(REGEX)T$` (`T`
//! one of `b c d p l s -`) or `^(REGEX).$` without a type, matched against
//! the bytes of the path followed by the file's type character (`-` regular,
//! `d`, `l`, `p`, `s`, `b`, `c`). All patterns go into one lazy DFA
//! (`matcher.rs`), with PCRE2 for patterns the DFA syntax can't express:
//! real policies have them (Bazzite's waydroid module uses
//! `/var/run/waydroid-(?!lxc).*`, composefs-rs issue #317). Regex syntax:
//! no Unicode, no UTF-8 requirement, NUL as line terminator. `<<none>>`
//! means "no label", as does no match; either removes the xattr. The value
//! written is the context's bytes, without a trailing NUL.
//!
//! # Which spec wins: [`LookupOrder`]
//!
//! composefs-rs ([`LookupOrder::ComposefsRs`], the default): the **last**
//! matching spec in the concatenation `file_contexts`, `.local`, `.homedirs`.
//!
//! libselinux (`matchpathcon`, `restorecon`, `setfiles`) orders differently,
//! and [`LookupOrder::Libselinux`] reproduces its 3.4 `selabel_lookup`:
//!
//! * `sort_specs` moves specs without regex meta-characters (exact paths
//!   such as `/usr/bin/sudo`) after all others before "last wins", so an
//!   exact path beats any pattern, wherever it is in the files;
//! * the files are read as `file_contexts`, `.homedirs`, `.local`;
//! * substitutions are prefixes applied to the looked-up path (`.subs`,
//!   then `.subs_dist` on its result) instead of whole-path aliases applied
//!   while walking; the results differ for chains (composefs-rs maps
//!   `/var/run/lock` to `/run/lock`, then, walking on, to `/var/lock`) and
//!   for an alias listed in both files.
//!
//! Measured on Debian 12's `selinux-policy-default` (5 621 specs) by
//! `tests/selinux_matchpathcon.rs`: on ~130 000 paths of a real system and
//! on all 2 244 exact-path specs as each of the 7 file types, the libselinux
//! order agrees with `matchpathcon` everywhere, and the composefs-rs order
//! differs on one lookup only: `/root/restore` as a directory, where
//! composefs-rs takes `/root/.+` (`file_contexts.homedirs`, read last:
//! `user_home_t`) and libselinux the exact `/root/restore -d`
//! (`file_contexts`: `amanda_recover_dir_t`).
//!
//! Not reproduced from libselinux even in that mode (none of it occurs in
//! Debian's policy): libselinux anchors as `^REGEX$` without parentheses and
//! without the type character, so a top-level `|` leaves the alternatives
//! half-anchored, a `$` inside the pattern can match (composefs-rs's
//! `^(…$).$` never does) and back-reference `\1` means the spec's first
//! group (composefs-rs's wrapper group shifts it); it matches every pattern
//! with PCRE2 (the DFA syntax differs in corners, e.g. `\<`; PCRE2's `.`
//! does not match `\n`); its stem prefilter skips specs whose first
//! component contains a `\`; and its parser is laxer (extra fields, 1 KiB
//! substitution lines).
//!
//! # Limits and cost
//!
//! Each policy file is at most [`MAX_POLICY_FILE`] bytes and the compiled
//! NFA at most [`MAX_NFA_SIZE`]; errors name the file and line of the spec
//! at fault ([`SelinuxError`]). Debian's policy compiles in ~60 ms (a 3.3 MiB
//! NFA; the DFA is built lazily during lookups); labelling 130 000 names,
//! compilation included, takes ~0.2 s.

mod error;
mod label;
mod matcher;
mod policy;
mod spec;
mod walk;

#[cfg(test)]
mod tests;

pub use error::{SelinuxError, SyntaxProblem};
pub use label::{NoPolicy, Outcome, ReadExternal, label, label_with};
pub use matcher::MAX_NFA_SIZE;
pub use policy::{
    CONFIG_PATH, LookupOrder, MAX_POLICY_FILE, Policy, ReadFile, SpecRef, dir_reader,
};
pub use spec::NO_LABEL;
pub use walk::{LabelStats, apply, strip};

/// The extended attribute holding a file's SELinux context.
pub const XATTR_NAME: &[u8] = b"security.selinux";
