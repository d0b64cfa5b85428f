//! A GNU `getopt_long` work-alike, so the drop-in tools accept exactly the
//! command lines the C tools accept:
//!
//! - options may come before, between or after operands (argument permutation);
//!   `--` ends option parsing and `-` alone is an operand;
//! - `--name=value` and `--name value` for options that take a value;
//! - unambiguous prefixes of long names (`--from` for `--from-file`); an exact
//!   match always wins; several matches are ambiguous;
//! - clusters of short flags (`-CR`).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HasArg {
    /// A flag.
    No,
    /// `--name=value` or `--name value`.
    Required,
}

/// A long option: `--name`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LongOpt<T> {
    pub(crate) name: &'static str,
    pub(crate) has_arg: HasArg,
    pub(crate) id: T,
}

/// A parse error, with the message GNU getopt prints for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GetoptError {
    #[error("unrecognized option '{0}'")]
    Unrecognized(String),
    #[error("invalid option -- '{0}'")]
    InvalidShort(char),
    #[error("option '{option}' is ambiguous; possibilities: {candidates}")]
    Ambiguous { option: String, candidates: String },
    #[error("option '--{0}' doesn't allow an argument")]
    UnexpectedValue(&'static str),
    #[error("option '--{0}' requires an argument")]
    MissingValue(&'static str),
}

/// The result of parsing: options in command-line order, then operands.
#[derive(Debug)]
pub(crate) struct Parsed<T> {
    pub(crate) options: Vec<(T, Option<OsString>)>,
    pub(crate) operands: Vec<OsString>,
}

/// Parses `args` (without the program name). Short options are flags only.
/// Parsing stops at the first error, as the C tools exit there.
pub(crate) fn getopt_long<T: Copy>(
    args: &[OsString],
    shorts: &[(char, T)],
    longs: &[LongOpt<T>],
) -> Result<Parsed<T>, GetoptError> {
    let mut options = Vec::new();
    let mut operands = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            operands.extend(iter.by_ref().cloned());
            break;
        }
        if let Some(body) = bytes.strip_prefix(b"--") {
            let (name, inline_value) = match body.iter().position(|&b| b == b'=') {
                Some(i) => (&body[..i], Some(&body[i + 1..])),
                None => (body, None),
            };
            let opt = match_long(longs, name, arg)?;
            let value = match (opt.has_arg, inline_value) {
                (HasArg::No, None) => None,
                (HasArg::No, Some(_)) => return Err(GetoptError::UnexpectedValue(opt.name)),
                (HasArg::Required, Some(v)) => Some(OsStr::from_bytes(v).to_owned()),
                (HasArg::Required, None) => match iter.next() {
                    Some(v) => Some(v.clone()),
                    None => return Err(GetoptError::MissingValue(opt.name)),
                },
            };
            options.push((opt.id, value));
        } else if bytes.len() > 1 && bytes[0] == b'-' {
            for &c in &bytes[1..] {
                let c = char::from(c);
                match shorts.iter().find(|(s, _)| *s == c) {
                    Some((_, id)) => options.push((*id, None)),
                    None => return Err(GetoptError::InvalidShort(c)),
                }
            }
        } else {
            operands.push(arg.clone());
        }
    }
    Ok(Parsed { options, operands })
}

fn match_long<'a, T>(
    longs: &'a [LongOpt<T>],
    name: &[u8],
    arg: &OsStr,
) -> Result<&'a LongOpt<T>, GetoptError> {
    if let Some(exact) = longs.iter().find(|o| o.name.as_bytes() == name) {
        return Ok(exact);
    }
    let candidates: Vec<&LongOpt<T>> = if name.is_empty() {
        Vec::new()
    } else {
        longs
            .iter()
            .filter(|o| o.name.as_bytes().starts_with(name))
            .collect()
    };
    let shown = || {
        let s = arg.to_string_lossy();
        s.split('=').next().unwrap_or_default().to_string()
    };
    match candidates.as_slice() {
        [] => Err(GetoptError::Unrecognized(shown())),
        [one] => Ok(one),
        many => Err(GetoptError::Ambiguous {
            option: shown(),
            candidates: many
                .iter()
                .map(|o| format!("'--{}'", o.name))
                .collect::<Vec<_>>()
                .join(" "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum O {
        PrintDigest,
        PrintDigestOnly,
        FromFile,
        Threads,
        C,
        R,
    }

    const LONGS: &[LongOpt<O>] = &[
        LongOpt {
            name: "print-digest",
            has_arg: HasArg::No,
            id: O::PrintDigest,
        },
        LongOpt {
            name: "print-digest-only",
            has_arg: HasArg::No,
            id: O::PrintDigestOnly,
        },
        LongOpt {
            name: "from-file",
            has_arg: HasArg::No,
            id: O::FromFile,
        },
        LongOpt {
            name: "threads",
            has_arg: HasArg::Required,
            id: O::Threads,
        },
    ];
    const SHORTS: &[(char, O)] = &[('C', O::C), ('R', O::R)];

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn parse(list: &[&str]) -> Result<Parsed<O>, GetoptError> {
        getopt_long(&args(list), SHORTS, LONGS)
    }

    #[test]
    fn permutation_values_and_prefixes() {
        let p = parse(&[
            "src",
            "--from",
            "--threads",
            "3",
            "out",
            "--threads=4",
            "--print-digest",
        ])
        .unwrap();
        assert_eq!(p.operands, args(&["src", "out"]));
        assert_eq!(
            p.options,
            vec![
                (O::FromFile, None),
                (O::Threads, Some("3".into())),
                (O::Threads, Some("4".into())),
                (O::PrintDigest, None),
            ]
        );
        // Exact match wins over a longer candidate; a prefix of only one is fine.
        let p = parse(&["--print-digest", "--print-digest-o"]).unwrap();
        assert_eq!(
            p.options,
            vec![(O::PrintDigest, None), (O::PrintDigestOnly, None)]
        );
        // A value may start with a dash; "-" is an operand; "--" ends options.
        let p = parse(&["--threads", "-1", "-", "--", "--from-file"]).unwrap();
        assert_eq!(p.options, vec![(O::Threads, Some("-1".into()))]);
        assert_eq!(p.operands, args(&["-", "--from-file"]));
        let p = parse(&["-CR"]).unwrap();
        assert_eq!(p.options, vec![(O::C, None), (O::R, None)]);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse(&["--print"]),
            Err(GetoptError::Ambiguous { .. })
        ));
        assert_eq!(
            parse(&["--nope=1"]).unwrap_err().to_string(),
            "unrecognized option '--nope'"
        );
        assert_eq!(
            parse(&["--from-file=x"]).unwrap_err(),
            GetoptError::UnexpectedValue("from-file")
        );
        assert_eq!(
            parse(&["x", "--threads"]).unwrap_err(),
            GetoptError::MissingValue("threads")
        );
        assert_eq!(parse(&["-h"]).unwrap_err(), GetoptError::InvalidShort('h'));
        assert!(matches!(parse(&["--"]), Ok(p) if p.operands.is_empty()));
        assert!(matches!(parse(&["--="]), Err(GetoptError::Unrecognized(_))));
    }
}
