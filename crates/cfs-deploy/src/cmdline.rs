//! The composefs kernel arguments: which image the initramfs mounts as `/`.
//!
//! ```text
//! composefs=<hex>                          image by fs-verity digest (64 hex: SHA-256, 128: SHA-512)
//! composefs=?<hex>                         the same, fs-verity optional
//! composefs.digest=v1-sha512-12:<hex>      self-describing: EROFS epoch (v1 = C-compatible
//! composefs.digest=v2-sha256-12:<hex>      V0/V1 images, v2 = composefs-rs V2), hash, log2 block size
//! composefs.digest=?v1-sha512-12:<hex>     the same, fs-verity optional
//! composefs.digest=<hex>                   the bare form some composefs-rs revisions write
//! ```
//!
//! The command line is split as the kernel does: on whitespace, except
//! inside double quotes (no escapes). A value may itself be quoted
//! (`composefs="<hex>"`).
//!
//! **Order of candidates** ([`candidates`]): every `composefs.digest=` in
//! command-line order, then every `composefs=` in command-line order; the
//! caller mounts the first whose image exists and moves on when one is
//! missing. A malformed value is reported with the argument it came from
//! and does not hide the well-formed ones.
//!
//! Limits: command lines longer than [`MAX_CMDLINE`] bytes are refused (the
//! kernel's own limit on x86 is 2048; some architectures allow more).

use std::fmt;

use cfs_core::verity::{Algorithm, Digest};

/// Longest command line looked at.
pub const MAX_CMDLINE: usize = 1 << 16;

/// The key of the self-describing form.
pub const KEY_DIGEST: &str = "composefs.digest";
/// The key of the short form.
pub const KEY_SHORT: &str = "composefs";

/// Which argument a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `composefs.digest=…`
    Digest,
    /// `composefs=…`
    Short,
}

/// The EROFS format epoch a self-describing argument names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epoch {
    /// `v1`: C-compatible images (format versions 0 and 1).
    V1,
    /// `v2`: composefs-rs V2 images.
    V2,
}

/// One composefs kernel argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposefsArg {
    /// Which key it used.
    pub form: Form,
    /// The epoch, when the value names one (`v1-…`/`v2-…`).
    pub epoch: Option<Epoch>,
    /// The image's fs-verity digest.
    pub digest: Digest,
    /// `?`: fs-verity is optional for this boot.
    pub insecure: bool,
}

impl ComposefsArg {
    /// `composefs.digest=[?]v<epoch>-<hash>-12:<hex>`, the form `compute-karg`
    /// prints for C-compatible images.
    pub fn self_describing(epoch: Epoch, digest: Digest, insecure: bool) -> Self {
        ComposefsArg {
            form: Form::Digest,
            epoch: Some(epoch),
            digest,
            insecure,
        }
    }

    /// `composefs=[?]<hex>`, the form bootc writes.
    pub fn short(digest: Digest, insecure: bool) -> Self {
        ComposefsArg {
            form: Form::Short,
            epoch: None,
            digest,
            insecure,
        }
    }
}

/// Renders the argument as it is written on a command line.
impl fmt::Display for ComposefsArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = if self.insecure { "?" } else { "" };
        let hex = self.digest.to_hex();
        match (self.form, self.epoch) {
            (Form::Short, _) => write!(f, "{KEY_SHORT}={q}{hex}"),
            (Form::Digest, None) => write!(f, "{KEY_DIGEST}={q}{hex}"),
            (Form::Digest, Some(epoch)) => {
                let e = match epoch {
                    Epoch::V1 => "v1",
                    Epoch::V2 => "v2",
                };
                let h = match self.digest.algorithm() {
                    Algorithm::Sha256 => "sha256",
                    Algorithm::Sha512 => "sha512",
                };
                write!(f, "{KEY_DIGEST}={q}{e}-{h}-12:{hex}")
            }
        }
    }
}

/// A composefs argument whose value could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel argument {arg:?}: {reason}")]
pub struct KargError {
    /// The argument as it appears on the command line.
    pub arg: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Splits a command line as the kernel does: on ASCII whitespace, except
/// inside double quotes (which stay part of the word; there are no escapes).
pub fn split(cmdline: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    cmdline
        .split(move |c: char| {
            if c == '"' {
                quoted = !quoted;
            }
            !quoted && c.is_ascii_whitespace()
        })
        .filter(|w| !w.is_empty())
}

/// The composefs arguments of `cmdline`, in the order they are tried (see
/// the module docs), each parsed or with its error. Words that are not
/// composefs arguments are ignored; a command line longer than
/// [`MAX_CMDLINE`] gives one error.
pub fn candidates(cmdline: &str) -> Vec<Result<ComposefsArg, KargError>> {
    if cmdline.len() > MAX_CMDLINE {
        return vec![Err(KargError {
            arg: format!("{}…", cmdline.chars().take(40).collect::<String>()),
            reason: format!("command line longer than {MAX_CMDLINE} bytes"),
        })];
    }
    let mut digest_form = Vec::new();
    let mut short_form = Vec::new();
    for word in split(cmdline) {
        // The kernel also takes a whole quoted word: `"composefs=<hex>"`.
        let unquoted = word
            .strip_prefix('"')
            .map_or(word, |w| w.strip_suffix('"').unwrap_or(w));
        let (key, value) = unquoted.split_once('=').unwrap_or((unquoted, ""));
        let form = match key {
            KEY_DIGEST => Form::Digest,
            KEY_SHORT => Form::Short,
            _ => continue,
        };
        let parsed = parse_value(form, value).map_err(|reason| KargError {
            arg: word.to_owned(),
            reason,
        });
        match form {
            Form::Digest => digest_form.push(parsed),
            Form::Short => short_form.push(parsed),
        }
    }
    digest_form.extend(short_form);
    digest_form
}

/// Parses the value of a `composefs=` / `composefs.digest=` argument.
pub fn parse_value(form: Form, value: &str) -> Result<ComposefsArg, String> {
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let (insecure, rest) = match value.strip_prefix('?') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    if rest.is_empty() {
        return Err("no digest".into());
    }
    let (epoch, algorithm, hex) = match rest.split_once(':') {
        None => (None, None, rest),
        Some(_) if form == Form::Short => {
            return Err("composefs= takes a bare hex digest; the v1-sha512-12:<hex> form belongs to composefs.digest=".into());
        }
        Some((describe, hex)) => {
            let mut parts = describe.split('-');
            let (Some(e), Some(h), Some(bits), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "expected v1|v2-sha256|sha512-12:<hex>, found {describe:?}"
                ));
            };
            let epoch = match e {
                "v1" => Epoch::V1,
                "v2" => Epoch::V2,
                _ => return Err(format!("unknown EROFS epoch {e:?} (expected v1 or v2)")),
            };
            let algorithm = match h {
                "sha256" => Algorithm::Sha256,
                "sha512" => Algorithm::Sha512,
                _ => return Err(format!("unknown hash {h:?} (expected sha256 or sha512)")),
            };
            if bits != "12" {
                return Err(format!(
                    "unsupported block size 2^{bits} (only 12, 4096-byte blocks)"
                ));
            }
            (Some(epoch), Some(algorithm), hex)
        }
    };
    let digest = match algorithm {
        Some(alg) => Digest::from_hex_with(alg, hex),
        None => Digest::from_hex(hex),
    }
    .map_err(|e| format!("not a digest ({e}): {} hex characters", hex.len()))?;
    Ok(ComposefsArg {
        form,
        epoch,
        digest,
        insecure,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn digest(alg: Algorithm, byte: u8) -> Digest {
        Digest::from_hex_with(alg, &format!("{byte:02x}").repeat(alg.digest_len())).unwrap()
    }

    #[test]
    fn every_form_parses() {
        let d512 = digest(Algorithm::Sha512, 0xab);
        let d256 = digest(Algorithm::Sha256, 0xcd);
        let (h512, h256) = (d512.to_hex(), d256.to_hex());
        let cases = [
            (format!("composefs={h512}"), Form::Short, None, &d512, false),
            (format!("composefs=?{h256}"), Form::Short, None, &d256, true),
            (
                format!("composefs.digest=v1-sha512-12:{h512}"),
                Form::Digest,
                Some(Epoch::V1),
                &d512,
                false,
            ),
            (
                format!("composefs.digest=?v1-sha256-12:{h256}"),
                Form::Digest,
                Some(Epoch::V1),
                &d256,
                true,
            ),
            (
                format!("composefs.digest=v2-sha512-12:{h512}"),
                Form::Digest,
                Some(Epoch::V2),
                &d512,
                false,
            ),
            (
                format!("composefs.digest={h256}"),
                Form::Digest,
                None,
                &d256,
                false,
            ),
            (
                format!("composefs=\"{h512}\""),
                Form::Short,
                None,
                &d512,
                false,
            ),
            (
                format!("\"composefs=?{h512}\""),
                Form::Short,
                None,
                &d512,
                true,
            ),
        ];
        for (arg, form, epoch, d, insecure) in cases {
            let got = candidates(&format!("root=UUID=x {arg} rw"));
            assert_eq!(got.len(), 1, "{arg}");
            let got = got[0].clone().unwrap();
            assert_eq!(
                (got.form, got.epoch, &got.digest, got.insecure),
                (form, epoch, d, insecure),
                "{arg}"
            );
            if !arg.contains('"') {
                assert_eq!(got.to_string(), arg);
            }
        }
    }

    #[test]
    fn digest_form_is_tried_first_then_command_line_order() {
        let (a, b, c) = (
            digest(Algorithm::Sha512, 1),
            digest(Algorithm::Sha512, 2),
            digest(Algorithm::Sha512, 3),
        );
        let cmdline = format!(
            "composefs={} quiet composefs.digest=v1-sha512-12:{} x=\"a b composefs={}\" composefs.digest=v2-sha512-12:{}",
            a.to_hex(),
            b.to_hex(),
            a.to_hex(),
            c.to_hex()
        );
        let order: Vec<Digest> = candidates(&cmdline)
            .into_iter()
            .map(|r| r.unwrap().digest)
            .collect();
        assert_eq!(order, [b, c, a]);
    }

    #[test]
    fn malformed_values_are_reported_and_do_not_hide_good_ones() {
        let good = digest(Algorithm::Sha256, 9);
        let bad = [
            "composefs=",
            "composefs=?",
            "composefs=xyz",
            "composefs=v1-sha512-12:00",
            "composefs.digest=v3-sha512-12:00",
            "composefs.digest=v1-md5-12:00",
            "composefs.digest=v1-sha256-16:00",
            "composefs.digest=v1-sha256:00",
            &format!("composefs.digest=v1-sha512-12:{}", good.to_hex()),
        ];
        for arg in bad {
            let got = candidates(&format!("{arg} composefs={}", good.to_hex()));
            assert_eq!(got.len(), 2, "{arg}");
            let e = got[0].clone().unwrap_err();
            assert_eq!(e.arg, arg);
            assert!(e.to_string().contains(arg), "{e}");
            assert_eq!(got[1].clone().unwrap().digest, good);
        }
        assert!(candidates("composefsx=1 xcomposefs=2 composefs.digestx=3").is_empty());
        assert_eq!(candidates(&"a ".repeat(MAX_CMDLINE)).len(), 1);
    }

    fn arg_strategy() -> impl Strategy<Value = ComposefsArg> {
        (
            any::<bool>(),
            prop_oneof![Just(None), Just(Some(Epoch::V1)), Just(Some(Epoch::V2))],
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 64),
        )
            .prop_map(|(short, epoch, sha512, insecure, bytes)| {
                let alg = if sha512 {
                    Algorithm::Sha512
                } else {
                    Algorithm::Sha256
                };
                let hex: String = bytes[..alg.digest_len()]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let digest = Digest::from_hex_with(alg, &hex).unwrap();
                ComposefsArg {
                    form: if short { Form::Short } else { Form::Digest },
                    epoch: if short { None } else { epoch },
                    digest,
                    insecure,
                }
            })
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(
            args in prop::collection::vec(arg_strategy(), 0..6),
            noise in prop::collection::vec("[a-z.=_\"-]{1,12}", 0..6),
        ) {
            let mut words: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            // Other arguments in between, never starting with a composefs key
            // nor leaving a quote open.
            for (i, n) in noise.iter().enumerate() {
                let n = format!("x{}", n.replace('"', ""));
                words.insert(i.min(words.len()), n);
            }
            let parsed: Vec<ComposefsArg> = candidates(&words.join(" "))
                .into_iter()
                .map(|r| r.unwrap())
                .collect();
            let mut want: Vec<ComposefsArg> = args.iter().filter(|a| a.form == Form::Digest).cloned().collect();
            want.extend(args.iter().filter(|a| a.form == Form::Short).cloned());
            prop_assert_eq!(parsed, want);
        }

        #[test]
        fn any_text_parses_without_panicking(text in ".{0,300}") {
            // Whatever parses formats to something that parses back.
            for a in candidates(&text).into_iter().flatten() {
                let again = candidates(&a.to_string());
                prop_assert_eq!(again.len(), 1);
                prop_assert_eq!(again[0].clone().unwrap().digest, a.digest);
            }
        }
    }
}
