//! The three text formats under `/etc/selinux`, parsed the way composefs-rs
//! 0.9.4 (`composefs-boot/src/selabel.rs`) reads them. Pure functions over
//! bytes; the caller bounds the input.
//!
//! Lines are what `BufRead::lines` yields: split at `\n`, one `\r` before
//! the `\n` dropped, a last line without `\n` kept, and each line must be
//! UTF-8 — only the lines actually read are checked, so `config` may hold
//! anything after its `SELINUXTYPE=` line. Fields are separated by Unicode
//! white space (`str::split_whitespace`).
//!
//! * `config`: the first line whose part before its first `=`, trimmed,
//!   equals `SELINUXTYPE` ignoring ASCII case gives the policy type (the
//!   rest of the line, trimmed). `# SELINUXTYPE=x` does not count (the key
//!   would be `# SELINUXTYPE`).
//! * spec files (`file_contexts`, `.local`, `.homedirs`):
//!   `REGEX [-T] CONTEXT` with `T` one of `b c d p l s -`; a line whose first
//!   field starts with `#` and a blank line are skipped; a missing context,
//!   a bad `-T` or a fourth field is an error. A second field starting with
//!   `-` is always a type (composefs-rs does the same), and `<<none>>` as the
//!   context means "no label".
//! * substitution files (`.subs`, `.subs_dist`): `ALIAS ORIGINAL`; comments
//!   and blank lines as above; a missing original or a third field is an error.

use super::error::{SelinuxError, SyntaxProblem, cut};

/// One `file_contexts` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spec {
    /// The file it comes from (an index into the policy's file list).
    pub(super) file: usize,
    /// Its line number (from 1).
    pub(super) line: usize,
    /// The pattern as written.
    pub(super) regex: String,
    /// The `-T` type character (`b'-'` for `--`), if any.
    pub(super) file_type: Option<u8>,
    /// The context, possibly `<<none>>`.
    pub(super) context: String,
}

/// The context that means "leave the file unlabelled".
pub const NO_LABEL: &str = "<<none>>";

/// The lines of `data` with their numbers (from 1), as `BufRead::lines`.
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut rest = data;
    let mut number = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        number += 1;
        let line = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let (line, tail) = rest.split_at(i);
                rest = tail.get(1..).unwrap_or_default();
                line.strip_suffix(b"\r").unwrap_or(line)
            }
            None => std::mem::take(&mut rest),
        };
        Some((number, line))
    })
}

/// The lines of `data` as text; a non-UTF-8 line is an error when reached.
fn text_lines<'a>(
    data: &'a [u8],
    path: &'a str,
) -> impl Iterator<Item = Result<(usize, &'a str), SelinuxError>> + 'a {
    lines(data).map(move |(line, bytes)| {
        std::str::from_utf8(bytes)
            .map(|text| (line, text))
            .map_err(|_| SelinuxError::NotUtf8 {
                path: path.to_owned(),
                line,
            })
    })
}

/// The `SELINUXTYPE` of a `config` file, if it has one.
pub(super) fn parse_config(data: &[u8], path: &str) -> Result<Option<String>, SelinuxError> {
    for line in text_lines(data, path) {
        let (_, text) = line?;
        if let Some((key, value)) = text.split_once('=')
            && key.trim().eq_ignore_ascii_case("SELINUXTYPE")
        {
            return Ok(Some(value.trim().to_owned()));
        }
    }
    Ok(None)
}

/// Appends the specs of one spec file to `out`; `file` is recorded in each.
pub(super) fn parse_specs(
    data: &[u8],
    path: &str,
    file: usize,
    out: &mut Vec<Spec>,
) -> Result<(), SelinuxError> {
    for line in text_lines(data, path) {
        let (line, text) = line?;
        let syntax = |problem| SelinuxError::Syntax {
            path: path.to_owned(),
            line,
            problem,
        };
        let mut fields = text.split_whitespace();
        let regex = match fields.next() {
            None => continue,
            Some(first) if first.starts_with('#') => continue,
            Some(regex) => regex,
        };
        let second = fields
            .next()
            .ok_or_else(|| syntax(SyntaxProblem::MissingContext))?;
        let (file_type, context) = match second.strip_prefix('-') {
            Some(code) => {
                let file_type = match code {
                    "b" | "c" | "d" | "p" | "l" | "s" | "-" => code.as_bytes().first().copied(),
                    _ => return Err(syntax(SyntaxProblem::BadFileType(cut(second, 100)))),
                };
                let context = fields
                    .next()
                    .ok_or_else(|| syntax(SyntaxProblem::MissingContext))?;
                (file_type, context)
            }
            None => (None, second),
        };
        if let Some(extra) = fields.next() {
            return Err(syntax(SyntaxProblem::TrailingData(cut(extra, 100))));
        }
        out.push(Spec {
            file,
            line,
            regex: regex.to_owned(),
            file_type,
            context: context.to_owned(),
        });
    }
    Ok(())
}

/// The `(alias, original)` pairs of one substitution file, in file order.
pub(super) fn parse_subs(data: &[u8], path: &str) -> Result<Vec<(String, String)>, SelinuxError> {
    let mut out = Vec::new();
    for line in text_lines(data, path) {
        let (line, text) = line?;
        let syntax = |problem| SelinuxError::Syntax {
            path: path.to_owned(),
            line,
            problem,
        };
        let mut fields = text.split_whitespace();
        let alias = match fields.next() {
            None => continue,
            Some(first) if first.starts_with('#') => continue,
            Some(alias) => alias,
        };
        let original = fields
            .next()
            .ok_or_else(|| syntax(SyntaxProblem::MissingTarget))?;
        if let Some(extra) = fields.next() {
            return Err(syntax(SyntaxProblem::TrailingData(cut(extra, 100))));
        }
        out.push((alias.to_owned(), original.to_owned()));
    }
    Ok(out)
}

/// libselinux's `spec_hasMetaChars` (label_file.h, 3.4): does the pattern
/// contain `. ^ $ ? * + | [ ( {` outside a `\x` escape?
pub(super) fn has_meta_chars(regex: &str) -> bool {
    let mut bytes = regex.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'.' | b'^' | b'$' | b'?' | b'*' | b'+' | b'|' | b'[' | b'(' | b'{' => return true,
            b'\\' => {
                bytes.next();
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_like_bufread() {
        let data = b"a\r\nb\n\nc\rd\r";
        let got: Vec<_> = lines(data).collect();
        assert_eq!(
            got,
            vec![
                (1, &b"a"[..]),
                (2, &b"b"[..]),
                (3, &b""[..]),
                (4, &b"c\rd\r"[..])
            ]
        );
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"\n").count(), 1);
    }

    #[test]
    fn config_first_selinuxtype_wins_and_later_lines_are_not_read() {
        let cfg = b"# SELINUXTYPE=commented\n SeLinuxType = targeted \nSELINUXTYPE=mls\n\xff";
        assert_eq!(parse_config(cfg, "c").unwrap().as_deref(), Some("targeted"));
        assert_eq!(parse_config(b"SELINUX=enforcing\n", "c").unwrap(), None);
        assert_eq!(
            parse_config(b"SELINUXTYPE=", "c").unwrap().as_deref(),
            Some("")
        );
        assert_eq!(
            parse_config(b"SELINUXTYPE=a=b\n", "c").unwrap().as_deref(),
            Some("a=b")
        );
        let err = parse_config(b"x\n\xff\nSELINUXTYPE=t\n", "/etc/selinux/config").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/selinux/config: line 2: not valid UTF-8"
        );
    }

    #[test]
    fn spec_lines() {
        let mut specs = Vec::new();
        let data = b"# comment\n\n  /usr(/.*)?\tsystem_u:object_r:usr_t:s0\n\
            /dev/null -c system_u:object_r:null_device_t:s0\n/tmp/x -- <<none>>\n #x y z w\n";
        parse_specs(data, "fc", 3, &mut specs).unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].line, 3);
        assert_eq!(specs[0].regex, "/usr(/.*)?");
        assert_eq!(specs[0].file_type, None);
        assert_eq!(specs[1].file_type, Some(b'c'));
        assert_eq!(specs[2].file_type, Some(b'-'));
        assert_eq!(specs[2].context, NO_LABEL);
        assert_eq!(specs[2].file, 3);

        let err = |data: &[u8]| {
            parse_specs(data, "/fc", 0, &mut Vec::new())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(b"\n/a\n"),
            "/fc: line 2: missing context after the pattern"
        );
        assert_eq!(
            err(b"/a -d\n"),
            "/fc: line 1: missing context after the pattern"
        );
        assert_eq!(
            err(b"/a -x ctx\n"),
            "/fc: line 1: invalid file type \"-x\" (expected one of -b -c -d -p -l -s --)"
        );
        assert_eq!(err(b"/a -- c d\n"), "/fc: line 1: trailing data \"d\"");
        assert_eq!(err(b"/a c d\n"), "/fc: line 1: trailing data \"d\"");
        assert_eq!(err(b"/a c\n/\xc3 c\n"), "/fc: line 2: not valid UTF-8");
    }

    #[test]
    fn subs_lines() {
        let subs = parse_subs(b"# c\n/a /b\n\t/c\t/d  \n", "s").unwrap();
        assert_eq!(
            subs,
            vec![("/a".into(), "/b".into()), ("/c".into(), "/d".into())]
        );
        let err = |data: &[u8]| parse_subs(data, "/s").unwrap_err().to_string();
        assert_eq!(
            err(b"/a\n"),
            "/s: line 1: missing original path after the alias"
        );
        assert_eq!(err(b"/a /b /c\n"), "/s: line 1: trailing data \"/c\"");
    }

    #[test]
    fn meta_chars_as_libselinux() {
        assert!(!has_meta_chars("/etc/passwd"));
        assert!(!has_meta_chars(r"/lib/ld-linux\.so\.2"));
        assert!(has_meta_chars("/usr(/.*)?"));
        assert!(has_meta_chars("/dev/tty[0-9]"));
        assert!(has_meta_chars("/a{2}"));
        assert!(!has_meta_chars(r"/a\"));
    }
}
