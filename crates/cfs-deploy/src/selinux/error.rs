//! [`SelinuxError`]: everything that can go wrong while finding, reading,
//! compiling or applying a policy. Paths are image paths (`/etc/selinux/…`),
//! lines count from 1.

/// An error while labelling a tree or loading a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelinuxError {
    /// The file reader failed.
    #[error("{path}: {source}")]
    Io {
        /// The image path that was being read.
        path: String,
        /// What the reader reported.
        #[source]
        source: std::io::Error,
    },
    /// A policy file is larger than [`MAX_POLICY_FILE`](super::MAX_POLICY_FILE).
    #[error("{path}: {size} bytes, more than the {limit}-byte limit for a policy file")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A line that is not UTF-8 (composefs-rs reads the files as text).
    #[error("{path}: line {line}: not valid UTF-8")]
    NotUtf8 {
        /// The file.
        path: String,
        /// The line.
        line: usize,
    },
    /// A malformed line in a spec or substitution file.
    #[error("{path}: line {line}: {problem}")]
    Syntax {
        /// The file.
        path: String,
        /// The line.
        line: usize,
        /// What is wrong with it.
        problem: SyntaxProblem,
    },
    /// A pattern that neither the DFA nor PCRE2 compiles.
    #[error("{path}: line {line}: pattern {regex:?} does not compile: {reason}")]
    Regex {
        /// The file.
        path: String,
        /// The line.
        line: usize,
        /// The pattern as written (cut to 200 bytes).
        regex: String,
        /// The engines' complaints.
        reason: String,
    },
    /// The patterns parse one by one but the combined automaton can't be built
    /// (e.g. it exceeds [`MAX_NFA_SIZE`](super::MAX_NFA_SIZE)).
    #[error("compiling {patterns} file_contexts patterns: {reason}")]
    Build {
        /// How many patterns went into the automaton.
        patterns: usize,
        /// The builder's complaint.
        reason: String,
    },
    /// The policy directory exists but has no `file_contexts`.
    #[error("{path}: the mandatory file_contexts file is missing")]
    MissingFileContexts {
        /// The missing file.
        path: String,
    },
    /// A directory on the way to a policy file is missing
    /// (`/etc/selinux/<type>` or its `contexts/files`).
    #[error("{path}: no such directory")]
    NotFound {
        /// The missing directory.
        path: String,
    },
    /// A path component that should be a directory is something else.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The component's path.
        path: String,
    },
    /// A policy file that is a directory.
    #[error("{path}: is a directory, not a regular file")]
    IsADirectory {
        /// The file's path.
        path: String,
    },
    /// A policy file that is a symlink, device, FIFO or socket.
    #[error("{path}: not a regular file")]
    NotRegular {
        /// The file's path.
        path: String,
    },
    /// `SELINUXTYPE` names a path composefs-rs refuses (`.`, `..` as the first
    /// component, or `..` anywhere).
    #[error("{path}: SELINUXTYPE={name:?} is not a usable policy directory name")]
    BadPolicyType {
        /// The config file.
        path: String,
        /// The value.
        name: String,
    },
    /// The lazy DFA gave up on a lookup (it is configured never to; kept so a
    /// library change can't turn into a panic).
    #[error("matching {path:?}: {reason}")]
    Match {
        /// The path being looked up.
        path: String,
        /// The engine's complaint.
        reason: String,
    },
}

/// What is wrong with a line of a spec or substitution file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyntaxProblem {
    /// A spec line with a pattern but no context.
    #[error("missing context after the pattern")]
    MissingContext,
    /// A `-X` file type other than `-b -c -d -p -l -s --`.
    #[error("invalid file type {0:?} (expected one of -b -c -d -p -l -s --)")]
    BadFileType(String),
    /// More fields than the format has.
    #[error("trailing data {0:?}")]
    TrailingData(String),
    /// A substitution line with an alias but no original path.
    #[error("missing original path after the alias")]
    MissingTarget,
}

/// `path` for messages (lossy UTF-8).
pub(super) fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
pub(super) fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
