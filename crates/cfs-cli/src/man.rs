//! Manual pages and shell completions, made from the same definitions as
//! the help texts: `cfsctl` and each of its subcommands from the clap
//! command (clap_mangen), the drop-in tools from the option tables their
//! usage texts print (`mkcomposefs::OPTIONS`, `mount_composefs::OPTIONS`,
//! `composefs_info::COMMANDS`). The format page composefs-dump(5) is
//! written by hand (`contrib/man/composefs-dump.5`).
//!
//! `cfsctl manpages DIR` writes `DIR/man1/*.1` and `DIR/man8/*.8`;
//! `cfsctl completions SHELL` prints a completion script.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, VERSION};
use crate::cmd::{composefs_info, mkcomposefs, mount_composefs};

/// The footer's source field of every page.
fn source() -> String {
    format!("cfs {VERSION}")
}

/// `cfsctl completions SHELL`: the script on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cfsctl", &mut out);
    crate::cmd::repo::print(&String::from_utf8_lossy(&out))
}

/// `cfsctl manpages DIR`: every page; prints the paths written.
pub(crate) fn write_pages(dir: &Path) -> Result<()> {
    let mut written = Vec::new();
    let mut cmd = Cli::command();
    cmd.build();
    cfsctl_pages(&cmd, "cfsctl", "cfsctl", dir, &mut written)?;
    for (name, section, text) in [
        ("mkcomposefs", "1", mkcomposefs_page()),
        ("composefs-info", "1", composefs_info_page()),
        ("mount.composefs", "8", mount_composefs_page()),
    ] {
        written.push(write_page(dir, name, section, text.as_bytes())?);
    }
    let mut listing = String::new();
    for path in written {
        listing.push_str(&format!("{}\n", path.display()));
    }
    crate::cmd::repo::print(&listing)
}

/// `DIR/manSECTION/NAME.SECTION`.
fn write_page(dir: &Path, name: &str, section: &str, text: &[u8]) -> Result<PathBuf> {
    let sub = dir.join(format!("man{section}"));
    std::fs::create_dir_all(&sub).with_context(|| format!("Creating {}", sub.display()))?;
    let path = sub.join(format!("{name}.{section}"));
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("Creating {}", path.display()))?;
    file.write_all(text)
        .with_context(|| format!("Writing {}", path.display()))?;
    Ok(path)
}

/// `cmd`'s page as `page` (`cfsctl-oci-pull`), then its visible
/// subcommands' (`help` and hidden ones skipped).
fn cfsctl_pages(
    cmd: &clap::Command,
    page: &str,
    bin: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let cmd = cmd.clone().name(page.to_owned()).bin_name(bin.to_owned());
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("1")
        .date(env!("CFS_GIT_DATE"))
        .source(source())
        .manual("cfs")
        .render(&mut text)
        .with_context(|| format!("Rendering {page}(1)"))?;
    written.push(write_page(dir, page, "1", &text)?);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        cfsctl_pages(
            sub,
            &format!("{page}-{}", sub.get_name()),
            &format!("{bin} {}", sub.get_name()),
            dir,
            written,
        )?;
    }
    Ok(())
}

/// Text for roff: backslashes and hyphens escaped, and a leading `.` or
/// `'` kept from being read as a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// A man(7) page of a drop-in tool.
struct Page<'a> {
    name: &'a str,
    section: &'a str,
    summary: &'a str,
    synopsis: &'a str,
    description: &'a [&'a str],
    /// Titled lists of (term, text).
    lists: Vec<(&'a str, Vec<(String, String)>)>,
    examples: &'a [&'a str],
    see_also: &'a str,
}

impl Page<'_> {
    fn render(&self) -> String {
        let mut out = format!(
            ".TH {} {} \"{}\" \"{}\" \"cfs\"\n.SH NAME\n{} \\- {}\n.SH SYNOPSIS\n",
            self.name.to_uppercase(),
            self.section,
            env!("CFS_GIT_DATE"),
            roff(&source()),
            roff(self.name),
            roff(self.summary)
        );
        let (bin, args) = self.synopsis.split_once(' ').unwrap_or((self.synopsis, ""));
        out.push_str(&format!(".B {}\n{}\n", roff(bin), roff(args)));
        out.push_str(".SH DESCRIPTION\n");
        for (i, paragraph) in self.description.iter().enumerate() {
            if i > 0 {
                out.push_str(".PP\n");
            }
            out.push_str(&format!("{}\n", roff(paragraph)));
        }
        for (title, items) in &self.lists {
            out.push_str(&format!(".SH {}\n", roff(title)));
            for (term, text) in items {
                out.push_str(&format!(".TP\n.B {}\n{}\n", roff(term), roff(text)));
            }
        }
        if !self.examples.is_empty() {
            out.push_str(".SH EXAMPLES\n.EX\n");
            for line in self.examples {
                out.push_str(&format!("{}\n", roff(line)));
            }
            out.push_str(".EE\n");
        }
        out.push_str(&format!(".SH SEE ALSO\n{}\n", roff(self.see_also)));
        out
    }
}

fn items(table: &[(&str, &str)]) -> Vec<(String, String)> {
    table
        .iter()
        .map(|(term, text)| ((*term).to_owned(), (*text).to_owned()))
        .collect()
}

fn mkcomposefs_page() -> String {
    let options = mkcomposefs::OPTIONS
        .iter()
        .map(|(term, text)| {
            (
                (*term).to_owned(),
                text.replace("{threads}", "the number of CPUs"),
            )
        })
        .collect();
    Page {
        name: "mkcomposefs",
        section: "1",
        summary: "build a composefs image",
        synopsis: mkcomposefs::SYNOPSIS,
        description: &[
            "mkcomposefs writes the composefs image of SOURCE to IMAGE: an EROFS file system \
             holding the metadata of the tree (names, modes, owners, times, extended \
             attributes) in which every regular file larger than 64 bytes refers, by its \
             fs-verity digest, to a backing object stored elsewhere. Mounted with \
             mount.composefs(8), the image and its objects give back the tree.",
            "SOURCE is a directory, or with --from-file a dumpfile (composefs-dump(5)); - reads \
             the dumpfile from standard input. IMAGE may be - for standard output. With \
             --digest-store the backing objects are copied into that directory, named by \
             their digests (ab/cdef...), with fs-verity enabled where the file system \
             supports it.",
            "This mkcomposefs is the multi-call binary cfsctl(1) run under this name: its \
             options, images (byte for byte) and exit codes are those of the C mkcomposefs \
             of composefs 1.0.8.",
        ],
        lists: vec![("OPTIONS", options)],
        examples: &[
            "mkcomposefs --digest-store=/composefs/objects /srv/root /composefs/root.cfs",
            "mkcomposefs --print-digest-only /srv/root",
            "composefs-info dump root.cfs > root.dump",
            "mkcomposefs --from-file root.dump copy.cfs   # the same bytes as root.cfs",
        ],
        see_also: "composefs-info(1), mount.composefs(8), composefs-dump(5), cfsctl(1)",
    }
    .render()
}

fn composefs_info_page() -> String {
    Page {
        name: "composefs-info",
        section: "1",
        summary: "show what a composefs image holds",
        synopsis: composefs_info::SYNOPSIS,
        description: &[
            "composefs-info reads composefs images (as mkcomposefs(1) writes them) and prints \
             their contents, their dumpfiles or the backing objects they need. Several \
             IMAGES are read in order.",
            "This composefs-info is the multi-call binary cfsctl(1) run under this name, with \
             the options and output of the C composefs-info of composefs 1.0.8; it also reads \
             images whose objects are named by SHA-512 digests.",
        ],
        lists: vec![
            ("COMMANDS", items(composefs_info::COMMANDS)),
            ("OPTIONS", items(composefs_info::OPTIONS)),
        ],
        examples: &[
            "composefs-info ls root.cfs",
            "composefs-info --basedir=/composefs/objects missing-objects root.cfs",
            "composefs-info --filter=etc dump root.cfs",
        ],
        see_also: "mkcomposefs(1), mount.composefs(8), composefs-dump(5), cfsctl(1)",
    }
    .render()
}

fn mount_composefs_page() -> String {
    Page {
        name: "mount.composefs",
        section: "8",
        summary: "mount a composefs image",
        synopsis: mount_composefs::SYNOPSIS,
        description: &[
            "mount.composefs mounts the composefs IMAGE on MOUNTPOINT: the image is mounted \
             as EROFS and an overlayfs joins it with the object directories of basedir, from \
             which the contents of regular files are read. With verity (or digest=) every \
             object must carry the fs-verity digest the image records, and reading a file \
             whose object was changed fails; with digest= the image itself must have that \
             fs-verity digest.",
            "mount(8) runs it for mount -t composefs IMAGE MOUNTPOINT -o OPTIONS once it is \
             installed as /sbin/mount.composefs. It needs root (CAP_SYS_ADMIN).",
            "This mount.composefs is the multi-call binary cfsctl(1) run under this name, with \
             the options of the C mount.composefs of composefs 1.0.8. Options are given with \
             -o, separated by commas; a backslash escapes the next character of a value.",
        ],
        lists: vec![("OPTIONS", items(mount_composefs::OPTIONS))],
        examples: &[
            mount_composefs::EXAMPLE,
            "mount -t composefs -o basedir=/composefs/objects,verity root.cfs /mnt",
        ],
        see_also: "mkcomposefs(1), composefs-info(1), composefs-dump(5), cfsctl(1), mount(8)",
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::roff;

    #[test]
    fn roff_escapes() {
        assert_eq!(roff("--from-file"), "\\-\\-from\\-file");
        assert_eq!(roff("a\\b"), "a\\eb");
        assert_eq!(roff(".hidden"), "\\&.hidden");
        assert_eq!(roff("'quote"), "\\&'quote");
    }
}
