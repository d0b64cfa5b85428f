//! Parse errors of the composefs-dump reader. The `Display` of every
//! [`ParseErrorKind`] is the exact message of C `mkcomposefs` 1.0.8 (without
//! the `mkcomposefs: ` prefix); byte strings in messages (paths, fields) are
//! shown lossily by `Display` and exactly by [`ParseError::c_message_bytes`].

use std::fmt;
use std::io;

fn show(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// What went wrong; `Display` is C's message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A raw NUL byte at this offset of the line.
    #[error("Invalid embedded NUL character at position {position}")]
    EmbeddedNul {
        /// Byte offset within the line.
        position: usize,
    },
    /// The PATH field is empty (or starts with an escaped NUL).
    #[error("Invalid empty path")]
    EmptyPath,
    /// An entry other than `/` came before the root.
    #[error("Root node not present")]
    RootNotPresent,
    /// The `/` line is not a directory.
    #[error("Root must be a directory")]
    RootNotDirectory,
    /// A second `/` line.
    #[error("Can't have multiple roots")]
    MultipleRoots,
    /// A path component before the last one does not exist (yet).
    #[error("Parent directory missing for {}", show(.path))]
    ParentMissing {
        /// The (unescaped) PATH.
        path: Box<[u8]>,
    },
    /// The parent of the new entry is not a directory.
    #[error("Parent must be a directory for {}", show(.path))]
    ParentNotDirectory {
        /// The (unescaped) PATH.
        path: Box<[u8]>,
    },
    /// The last path component is `.` or `..`.
    #[error("Invalid . or .. in path: {}", show(.path))]
    DotInPath {
        /// The (unescaped) PATH.
        path: Box<[u8]>,
    },
    /// The name is empty, longer than 255 bytes, or already exists.
    #[error("Can't add child")]
    CantAddChild,
    /// A numeric field is empty or not entirely a number.
    #[error("Invalid integer {}", show(.text))]
    InvalidInteger {
        /// The raw field text.
        text: Box<[u8]>,
    },
    /// MODE has no valid file type.
    #[error("Invalid mode {mode:o}")]
    InvalidMode {
        /// The mode (low 32 bits).
        mode: u32,
    },
    /// A `@` line with a directory mode, or a hard link whose target is a
    /// directory (the latter is accepted by C; see the module docs).
    #[error("Directories can't be hardlinked")]
    DirectoryHardlink,
    /// A `@` line whose PAYLOAD is `-`.
    #[error("No target path for the hardlink")]
    NoHardlinkTarget,
    /// A hard-link target path that names no entry.
    #[error("No target at {} for hardlink", show(.path))]
    HardlinkTargetMissing {
        /// The target path.
        path: Box<[u8]>,
    },
    /// A hard link naming itself.
    #[error("Self-referential hardlink {}", show(.path))]
    SelfHardlink {
        /// The target path.
        path: Box<[u8]>,
    },
    /// Hard links forming a cycle. C accepts them while parsing and fails when
    /// writing the image (ELOOP); this is C's final message.
    #[error("cannot write file: Too many levels of symbolic links")]
    HardlinkCycle,
    /// CONTENT length differs from SIZE (both printed as signed, like C).
    #[error("Invalid content size {content}, must match size {size}")]
    ContentSizeMismatch {
        /// Unescaped CONTENT length.
        content: i64,
        /// SIZE.
        size: i64,
    },
    /// CONTENT longer than [`MAX_INLINE_CONTENT`](super::MAX_INLINE_CONTENT).
    #[error("Inline content size {size} exceeds maximum {max}")]
    InlineTooLarge {
        /// Unescaped CONTENT length.
        size: i64,
        /// The limit.
        max: i64,
    },
    /// A symlink without target, with an empty one, or one of 4096+ bytes.
    #[error("Invalid symlink")]
    InvalidSymlink,
    /// Strict mode: symlink SIZE differs from the target length.
    #[error("Invalid symlink size {target}, must match size {size}")]
    SymlinkSizeMismatch {
        /// Target length (C prints it first).
        target: i64,
        /// SIZE.
        size: i64,
    },
    /// Strict mode: a symlink with non-empty CONTENT.
    #[error("Symlink cannot have content")]
    SymlinkContent,
    /// A PAYLOAD of 4096 bytes or more on a non-symlink.
    #[error("Invalid payload")]
    InvalidPayload,
    /// Strict mode: RDEV not 0 on a non-device.
    #[error("Non-zero devnum on non-device")]
    DevnumOnNonDevice,
    /// More than 65535 bytes after the 11th field.
    #[error("Too many xattrs")]
    TooManyXattrs,
    /// An xattr field without `=`.
    #[error("Missing = in xattr")]
    MissingXattrEquals,
    /// An xattr with an empty or too long key, or over the per-inode budget.
    #[error("Can't set xattr")]
    CantSetXattr,
    /// A backslash at the end of a field.
    #[error("No character after escape")]
    NoCharacterAfterEscape,
    /// `\x` with fewer than two characters after it.
    #[error("No hex characters after hex escape")]
    NoHexAfterEscape,
    /// `\x` followed by something that is not two hex digits.
    #[error("Invalid hex characters after hex escape")]
    InvalidHexEscape,
    /// A backslash followed by an unknown character.
    #[error("Unsupported escape type {}", show(std::slice::from_ref(.escape)))]
    UnsupportedEscape {
        /// The byte after the backslash.
        escape: u8,
    },
    /// Strict mode: the last line has no `\n`.
    #[error("Missing trailing newline")]
    MissingTrailingNewline,
    /// The input is empty.
    #[error("No files in dump file")]
    NoFiles,
    /// A line longer than [`MAX_LINE_LEN`](super::MAX_LINE_LEN) (no C equivalent).
    #[error("Line too long (more than {max} bytes)")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// More entries than [`MAX_ENTRIES`](super::MAX_ENTRIES) (no C equivalent).
    #[error("Too many entries (more than {max})")]
    TooManyEntries {
        /// The limit.
        max: usize,
    },
    /// Reading the input failed.
    #[error("Error reading from file")]
    Io(#[source] io::Error),
}

impl ParseErrorKind {
    /// The C message as raw bytes (paths and fields exactly as C prints them).
    pub fn c_message_bytes(&self) -> Vec<u8> {
        let with = |prefix: &str, bytes: &[u8], suffix: &str| {
            let mut v = Vec::with_capacity(prefix.len() + bytes.len() + suffix.len());
            v.extend_from_slice(prefix.as_bytes());
            v.extend_from_slice(bytes);
            v.extend_from_slice(suffix.as_bytes());
            v
        };
        match self {
            Self::ParentMissing { path } => with("Parent directory missing for ", path, ""),
            Self::ParentNotDirectory { path } => with("Parent must be a directory for ", path, ""),
            Self::DotInPath { path } => with("Invalid . or .. in path: ", path, ""),
            Self::InvalidInteger { text } => with("Invalid integer ", text, ""),
            Self::HardlinkTargetMissing { path } => with("No target at ", path, " for hardlink"),
            Self::SelfHardlink { path } => with("Self-referential hardlink ", path, ""),
            Self::UnsupportedEscape { escape } => {
                with("Unsupported escape type ", std::slice::from_ref(escape), "")
            }
            other => other.to_string().into_bytes(),
        }
    }
}

/// A field of a dump line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// PATH
    Path,
    /// SIZE
    Size,
    /// MODE
    Mode,
    /// NLINK
    Nlink,
    /// UID
    Uid,
    /// GID
    Gid,
    /// RDEV
    Rdev,
    /// MTIME
    Mtime,
    /// PAYLOAD
    Payload,
    /// CONTENT
    Content,
    /// DIGEST
    Digest,
    /// The n-th (1-based) `KEY=VALUE` field after the fixed ones.
    Xattr(usize),
}

impl Field {
    /// The field at 0-based position `index` of a line.
    pub fn from_index(index: usize) -> Field {
        const FIXED: [Field; 11] = [
            Field::Path,
            Field::Size,
            Field::Mode,
            Field::Nlink,
            Field::Uid,
            Field::Gid,
            Field::Rdev,
            Field::Mtime,
            Field::Payload,
            Field::Content,
            Field::Digest,
        ];
        FIXED
            .get(index)
            .copied()
            .unwrap_or_else(|| Field::Xattr(index - 10))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Field::Path => "PATH",
            Field::Size => "SIZE",
            Field::Mode => "MODE",
            Field::Nlink => "NLINK",
            Field::Uid => "UID",
            Field::Gid => "GID",
            Field::Rdev => "RDEV",
            Field::Mtime => "MTIME",
            Field::Payload => "PAYLOAD",
            Field::Content => "CONTENT",
            Field::Digest => "DIGEST",
            Field::Xattr(n) => return write!(f, "xattr {n}"),
        };
        f.write_str(name)
    }
}

/// A kind tagged with the field it is about (inside the parser).
#[derive(Debug)]
pub(super) struct Tagged(pub(super) Option<Field>, pub(super) ParseErrorKind);

impl From<ParseErrorKind> for Tagged {
    fn from(kind: ParseErrorKind) -> Self {
        Tagged(None, kind)
    }
}

/// Tags the error of a field's parse with that field.
pub(super) trait InField<T> {
    fn in_field(self, field: Field) -> Result<T, Tagged>;
}

impl<T> InField<T> for Result<T, ParseErrorKind> {
    fn in_field(self, field: Field) -> Result<T, Tagged> {
        self.map_err(|kind| Tagged(Some(field), kind))
    }
}

/// A composefs-dump parse error: the kind (C's message) and, where they
/// apply, the 1-based line number and the field.
#[derive(Debug)]
#[non_exhaustive]
pub struct ParseError {
    line: Option<u64>,
    field: Option<Field>,
    kind: ParseErrorKind,
}

impl ParseError {
    pub(super) fn new(line: Option<u64>, kind: ParseErrorKind) -> Self {
        ParseError {
            line,
            field: None,
            kind,
        }
    }

    pub(super) fn with_field(mut self, field: Option<Field>) -> Self {
        self.field = field;
        self
    }

    /// The 1-based line the error is about, if any.
    pub fn line(&self) -> Option<u64> {
        self.line
    }

    /// The field of that line the error is about, if it is about one.
    pub fn field(&self) -> Option<Field> {
        self.field
    }

    /// What went wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// Exactly what C `mkcomposefs` prints after `mkcomposefs: ` (byte strings
    /// shown lossily; see [`ParseError::c_message_bytes`]).
    pub fn c_message(&self) -> String {
        self.kind.to_string()
    }

    /// The C message as raw bytes.
    pub fn c_message_bytes(&self) -> Vec<u8> {
        self.kind.c_message_bytes()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.field) {
            (Some(line), Some(field)) => write!(f, "line {line}, field {field}: {}", self.kind),
            (Some(line), None) => write!(f, "line {line}: {}", self.kind),
            _ => fmt::Display::fmt(&self.kind, f),
        }
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ParseErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
