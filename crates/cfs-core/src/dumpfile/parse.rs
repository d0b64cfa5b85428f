//! The reading loop of the composefs-dump parser: bounded line splitting,
//! strict-mode newline check, and the public entry point.

use std::io::{BufRead, Read};

use super::build::{Builder, LINK_FLAG};
use super::error::Tagged;
use super::{Field, ParseError, ParseErrorKind};
use crate::tree::FileSystem;

/// Longest accepted line in bytes, without its `\n`. C has no limit; real
/// lines stay far below (C caps the xattr text at 64 KiB, content at 20 KiB
/// escaped, payloads at 16 KiB escaped), so this only bounds the memory a
/// hostile input can make the parser buffer.
pub const MAX_LINE_LEN: usize = 4 << 20;

/// Most entries (lines) one input may define; keeps inode ids below the
/// placeholder bit used for unresolved hard links.
pub const MAX_ENTRIES: usize = (LINK_FLAG - 1) as usize;

/// Parser options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Strict mode (C: `CFS_PARSE_STRICT` set): require a final newline, no
    /// RDEV on non-devices, symlink SIZE equal to the target length and no
    /// symlink CONTENT.
    pub strict: bool,
}

impl ParseOptions {
    /// Options as C `mkcomposefs` derives them: strict iff the environment
    /// variable `CFS_PARSE_STRICT` is present (any value, even empty).
    pub fn from_env() -> Self {
        ParseOptions {
            strict: std::env::var_os("CFS_PARSE_STRICT").is_some(),
        }
    }
}

/// Parses a composefs dump into a tree, accepting and rejecting exactly what
/// C `mkcomposefs --from-file` does (see the [module docs](super) for the
/// format and the few deliberate differences).
///
/// The result has sorted directories, one primary entry per inode (the line
/// without `@`), hard links as alias entries, and passes
/// [`FileSystem::validate`].
pub fn parse_dumpfile<R: BufRead>(input: R, opts: &ParseOptions) -> Result<FileSystem, ParseError> {
    parse_with_limits(input, opts, MAX_LINE_LEN, MAX_ENTRIES)
}

/// [`parse_dumpfile`] with explicit limits (for tests of the limits).
pub(super) fn parse_with_limits<R: BufRead>(
    mut input: R,
    opts: &ParseOptions,
    max_line: usize,
    max_entries: usize,
) -> Result<FileSystem, ParseError> {
    let mut builder = Builder::new(opts.strict, max_entries);
    let mut line = Vec::new();
    let mut lineno: u64 = 0;
    let limit = u64::try_from(max_line)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    loop {
        line.clear();
        let read = (&mut input)
            .take(limit)
            .read_until(b'\n', &mut line)
            .map_err(|e| ParseError::new(None, ParseErrorKind::Io(e)))?;
        if read == 0 {
            break;
        }
        lineno += 1;
        let at = |kind| ParseError::new(Some(lineno), kind);
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > max_line {
            return Err(at(ParseErrorKind::LineTooLong { max: max_line }));
        } else if opts.strict {
            // The input ended without a newline.
            return Err(at(ParseErrorKind::MissingTrailingNewline));
        }
        builder
            .add_line(&line, lineno)
            .map_err(|Tagged(field, kind)| at(kind).with_field(field))?;
    }
    builder.finish().map_err(|(line, kind)| {
        // Hard-link resolution errors are about the `@` line's PAYLOAD.
        let field = line.is_some().then_some(Field::Payload);
        ParseError::new(line, kind).with_field(field)
    })
}
