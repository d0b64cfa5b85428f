//! composefs-dump(5): the text format read by `mkcomposefs --from-file` and
//! printed by `composefs-info dump`, as implemented here.
//!
//! The parser ([`parse_dumpfile`]) accepts exactly what the C `mkcomposefs`
//! of composefs 1.0.8 accepts and rejects what it rejects, with the same error
//! messages ([`ParseError::c_message`]); the printers ([`write_dumpfile`],
//! [`write_ls`], [`write_objects`]) are byte-identical to C `composefs-info
//! dump`, `ls` and `objects`. The few deliberate differences are listed under
//! "Deviations from C" below.
//!
//! # Lines and fields
//!
//! One entry per line, lines end with `\n` (a `\r` before it is part of the
//! last field). A line is split at single spaces into 11 fixed fields; the
//! rest of the line holds the extended attributes:
//!
//! ```text
//! PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD CONTENT DIGEST [KEY=VALUE ...]
//! ```
//!
//! Missing trailing fields are empty (so a 10-field line has an empty DIGEST,
//! which parses as an all-zero digest); one space after the DIGEST (or after
//! the last xattr) ends the line, two spaces make an empty xattr field. A raw
//! NUL byte anywhere in a line is an error (`Invalid embedded NUL character at
//! position N`, N = byte offset in the line).
//!
//! | field | syntax | meaning |
//! |---|---|---|
//! | PATH | escaped | `/` is the root and must be the first line. Any other path is resolved like C: each run of slashes before a component is skipped (`a`, `//a` and `/a` are the same entry), the last component is the new name and must be 1..=255 bytes, not `.`/`..`, and not exist yet; every earlier component must already exist, and the parent must be a directory. |
//! | SIZE | number | file size; directories keep it as [`Directory::size`](crate::tree::Directory::size); ignored for symlinks and special files |
//! | MODE | `[@]` octal number | `st_mode` with a file type of REG, DIR, LNK, CHR, BLK, FIFO or SOCK (bits above 16 are dropped); `@` marks a hard link |
//! | NLINK, UID, GID | number | stored truncated to 32 bits (uid `-1` is 4294967295, 2³² is 0) |
//! | RDEV | number | glibc `dev_t` of devices, stored as its low 32 bits (so a character device whose low 32 bits are 0 is a whiteout) |
//! | MTIME | number `.` number | seconds (wrapping to signed 64 bits, so `-10` works) and nanoseconds as an integer (`1.5` is 1 s + 5 ns; not range-checked, truncated to 32 bits) |
//! | PAYLOAD | `-` or escaped | symlink target (1..4095 bytes), object path of a regular file (< 4096 bytes; empty means none), or the target of a hard link |
//! | CONTENT | `-` or escaped | inline file content; its length must equal SIZE; at most 5000 bytes |
//! | DIGEST | `-` or escaped hex | fs-verity SHA-256 of an external file, parsed leniently like C: pairs of hex digits (either case) fill the 32 bytes from the start until the first pair that is not hex or the end; the rest stays zero; longer text is ignored |
//! | KEY=VALUE | escaped `=` escaped | one xattr; the key ends at the first raw `=` (write `\x3d` for `=` in a key) |
//!
//! Numbers behave like C `strtoull` followed by a "whole field consumed"
//! check: optional leading whitespace (tab, vertical tab, form feed, carriage
//! return), an optional `+` or `-` (a `-` negates modulo 2⁶⁴), then digits;
//! values above 2⁶⁴−1 saturate. An empty field or trailing garbage is
//! `Invalid integer <field>`. As in C, a malformed GID or RDEV is read as 0
//! (no error) when the UID is not 0.
//!
//! # Escapes
//!
//! In PATH, PAYLOAD, CONTENT, DIGEST and both halves of an xattr: `\\`, `\n`,
//! `\r`, `\t` and `\xHH` (two hex digits, either case); anything else after a
//! backslash is an error (`Unsupported escape type c`, `No character after
//! escape`, `No hex characters after hex escape`, `Invalid hex characters
//! after hex escape`). The optional fields are absent only when they are
//! exactly `-` (`\x2d` is a literal dash). Like C, which keeps these values as
//! C strings, PATH, PAYLOAD, DIGEST and xattr keys end at an escaped NUL
//! (`\x00`); CONTENT and xattr values may contain NUL.
//!
//! The printers escape `\`, LF, CR and TAB as above and every byte outside
//! `!`..`~` as `\xHH` (lowercase), plus `=` in xattr keys and values; PAYLOAD
//! and CONTENT consisting of a single `-` print as `\x2d`. `ls` prints spaces
//! in paths literally.
//!
//! # Entry kinds
//!
//! - Regular file with CONTENT: [`RegularFile::Inline`](crate::tree::RegularFile::Inline)
//!   (PAYLOAD and DIGEST are ignored). SIZE 0 without CONTENT: an empty inline
//!   file. SIZE > 0 without CONTENT: [`RegularFile::External`](crate::tree::RegularFile::External)
//!   with the PAYLOAD (if non-empty) and the DIGEST (if given).
//! - Symlink: PAYLOAD is the target (`Invalid symlink` if absent, empty or
//!   4096 bytes or longer); SIZE is ignored.
//! - Character/block device: RDEV. Directory, FIFO, socket: common fields only.
//!   CONTENT and PAYLOAD of these are still checked (length rules above) but
//!   dropped.
//! - Xattrs keep line order; a repeated key replaces the earlier value. Per
//!   entry, 12 + Σ(7 + key length + value length) over the current set must stay
//!   ≤ 32767, keys must be 1..=255 bytes (`Can't set xattr`), and the text after
//!   the 11th field must be ≤ 65535 bytes (`Too many xattrs`).
//!
//! # Hard links
//!
//! A MODE starting with `@` adds a second name for the inode named by PAYLOAD
//! (an absolute or, as in C, slash-less path). Only MODE (which must still be a
//! valid mode, and not a directory: `Directories can't be hardlinked`) and
//! PAYLOAD are used; every other field and the xattrs are ignored unchecked.
//! Targets are resolved after the whole input was read, in reverse line order
//! like C (`No target path for the hardlink`, `No target at P for hardlink`,
//! `Self-referential hardlink P`), so a target may come later in the file. A
//! link to a link resolves to the final inode. The link becomes an alias
//! [`DirEntry`](crate::tree::DirEntry) of the target, whose NLINK stays as
//! written on its own line. The printer writes the first name of an inode in
//! depth-first name order in full and every later name as `@` + the inode's
//! fields with the first name in the PAYLOAD column, like `composefs-info`.
//!
//! # Strict mode
//!
//! [`ParseOptions::strict`] (C: the environment variable `CFS_PARSE_STRICT` is
//! set, to any value) adds: the last line must end with `\n` (`Missing
//! trailing newline`); RDEV must be 0 on non-devices (`Non-zero devnum on
//! non-device`); a symlink's SIZE must equal its target length (`Invalid
//! symlink size T, must match size S`) and it must have no CONTENT (`Symlink
//! cannot have content`).
//!
//! # Deviations from C (deliberate)
//!
//! - A hard link whose final target is a directory (C accepts
//!   `/l 0 @100644 … /d` and writes a directory hard link) is rejected with
//!   `Directories can't be hardlinked`.
//! - A cycle of hard links (C fails later, while writing the image) is rejected
//!   by the parser with C's final message `cannot write file: Too many levels of
//!   symbolic links`.
//! - Bounds on hostile input: a line may be at most [`MAX_LINE_LEN`] bytes and
//!   the input may hold at most [`MAX_ENTRIES`] entries.
//! - SIZE of special files (devices, FIFOs, sockets) cannot be carried by the
//!   tree and is dropped.
//!
//! # Errors
//!
//! [`ParseError`] carries the 1-based line number (where one applies) and a
//! [`ParseErrorKind`] whose `Display` is exactly the C message (see
//! [`ParseError::c_message`]). C reports the first error it meets, in this
//! order within a line: NUL byte, PATH escapes, empty PATH, MODE, placement in
//! the tree, (hard links: directory mode, PAYLOAD escapes), SIZE, NLINK, UID,
//! GID, RDEV, MTIME, PAYLOAD, CONTENT, content size, DIGEST escapes, strict
//! RDEV, symlink/payload/content limits, xattr text length, then each xattr.

mod build;
mod error;
mod escape;
mod number;
mod parse;
mod print;

#[cfg(test)]
mod tests;

pub use error::{Field, ParseError, ParseErrorKind};
pub use parse::{MAX_ENTRIES, MAX_LINE_LEN, ParseOptions, parse_dumpfile};
pub use print::{
    object_paths, write_dumpfile, write_dumpfile_rs_links, write_entry_line, write_hardlink_line,
    write_ls, write_objects,
};

/// Largest inline CONTENT in bytes (C `LCFS_INLINE_CONTENT_MAX`).
pub const MAX_INLINE_CONTENT: usize = crate::limits::MAX_INLINE;

/// Symlink targets and payloads must be shorter than this (C `PATH_MAX`).
pub const PATH_MAX: usize = crate::limits::PATH_MAX;

/// Largest text after the 11 fixed fields of a line (C `UINT16_MAX`).
pub const MAX_XATTR_TEXT: usize = 65535;

/// Per-inode xattr budget: 12 + Σ(7 + key + value) must not exceed this
/// (C `LCFS_INODE_EXTERNAL_XATTR_MAX`).
pub const XATTR_BUDGET: usize = crate::limits::XATTR_BUDGET;

/// Largest xattr key in bytes (C `XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME: usize = crate::limits::MAX_XATTR_NAME;
