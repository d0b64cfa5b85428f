//! The pattern matcher: every pattern in one multi-pattern lazy DFA
//! (`regex_automata::hybrid`), with PCRE2 for the patterns the DFA's syntax
//! can't express (look-around, back-references), exactly as composefs-rs
//! 0.9.4 builds it:
//!
//! 1. Build one DFA from all patterns. If that works, that's the matcher.
//! 2. Otherwise parse each pattern with the DFA's syntax; those that parse go
//!    into one DFA, each of the others is compiled by PCRE2 (bytes, no UTF,
//!    no JIT). A pattern neither engine accepts is an error naming its file
//!    and line.
//!
//! Patterns are given in priority order (index 0 wins). A lookup runs the
//! DFA, anchored, over the whole key; leftmost-first semantics make the
//! lowest-index pattern that matches the reported one (every pattern ends in
//! `$`, so all matches end at the end of the key). Then the PCRE2 patterns
//! with a lower index than the DFA's answer are tried in order; the first
//! that matches wins. A PCRE2 match error (its backtracking limit) counts as
//! no match, as in composefs-rs.
//!
//! Syntax: no Unicode (classes and `\w` are ASCII, `.` is a byte), no UTF-8
//! requirement (keys are raw path bytes), and NUL as the line terminator, so
//! `.` matches every byte but NUL — including `\n`. The NFA is limited to
//! [`MAX_NFA_SIZE`] bytes (composefs-rs has no limit; a hostile pattern
//! like `(a{1000}){1000}` would otherwise take all memory); the lazy DFA's
//! cache is 10 MB and never gives up.

use regex_automata::hybrid::dfa;
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};

use super::error::{SelinuxError, cut};

/// Largest Thompson NFA (bytes) the patterns may compile to. Debian 12's
/// 5 621-pattern policy needs 3.3 MiB.
pub const MAX_NFA_SIZE: usize = 64 << 20;

/// Where a pattern comes from, for error messages.
pub(super) struct Origin {
    /// The file.
    pub path: String,
    /// The line.
    pub line: usize,
    /// The pattern as written.
    pub regex: String,
}

/// The compiled patterns.
pub(super) struct Matcher {
    dfa: Option<DfaPart>,
    /// Sorted by `index`.
    fallbacks: Vec<Fallback>,
}

struct DfaPart {
    dfa: dfa::DFA,
    cache: dfa::Cache,
    /// DFA pattern id → pattern index.
    ids: Vec<usize>,
}

struct Fallback {
    index: usize,
    regex: pcre2::bytes::Regex,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field(
                "dfa_patterns",
                &self.dfa.as_ref().map_or(0, |d| d.ids.len()),
            )
            .field(
                "pcre2_patterns",
                &self.fallbacks.iter().map(|f| f.index).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn syntax_config() -> syntax::Config {
    syntax::Config::new()
        .unicode(false)
        .utf8(false)
        .line_terminator(0)
}

fn builder() -> dfa::Builder {
    let mut builder = dfa::Builder::new();
    builder
        .syntax(syntax_config())
        .thompson(thompson::Config::new().nfa_size_limit(Some(MAX_NFA_SIZE)))
        .configure(
            dfa::Config::new()
                .cache_capacity(10_000_000)
                .skip_cache_capacity_check(true),
        );
    builder
}

/// An error and its sources, each reduced to its last line (regex-syntax
/// repeats the whole pattern with a caret line before its `error: …` line).
fn describe(err: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        parts.push(
            e.to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        );
        next = e.source();
    }
    cut(&parts.join(": "), 400)
}

impl Matcher {
    /// Compiles `patterns` (priority order); `origin(i)` describes pattern `i`.
    pub(super) fn build(
        patterns: &[String],
        origin: &dyn Fn(usize) -> Origin,
    ) -> Result<Matcher, SelinuxError> {
        let builder = builder();
        if let Ok(dfa) = builder.build_many(patterns) {
            let cache = dfa.create_cache();
            return Ok(Matcher {
                dfa: Some(DfaPart {
                    dfa,
                    cache,
                    ids: (0..patterns.len()).collect(),
                }),
                fallbacks: Vec::new(),
            });
        }
        let config = syntax_config();
        let mut ids = Vec::new();
        let mut fallbacks = Vec::new();
        for (index, pattern) in patterns.iter().enumerate() {
            match syntax::parse_with(pattern, &config) {
                Ok(_) => ids.push(index),
                Err(dfa_err) => match pcre2::bytes::Regex::new(pattern) {
                    Ok(regex) => fallbacks.push(Fallback { index, regex }),
                    Err(pcre_err) => {
                        let o = origin(index);
                        return Err(SelinuxError::Regex {
                            path: o.path,
                            line: o.line,
                            regex: cut(&o.regex, 200),
                            reason: format!(
                                "DFA: {}; PCRE2: {}",
                                describe(&dfa_err),
                                describe(&pcre_err)
                            ),
                        });
                    }
                },
            }
        }
        let dfa = if ids.is_empty() {
            None
        } else {
            let subset: Vec<&str> = ids.iter().map(|&i| patterns[i].as_str()).collect();
            let dfa = builder
                .build_many(&subset)
                .map_err(|e| Self::culprit(&builder, patterns, &ids, origin, &e))?;
            let cache = dfa.create_cache();
            Some(DfaPart { dfa, cache, ids })
        };
        Ok(Matcher { dfa, fallbacks })
    }

    /// The error for a failed combined build: the first pattern that fails
    /// alone, else the combination.
    fn culprit(
        builder: &dfa::Builder,
        patterns: &[String],
        ids: &[usize],
        origin: &dyn Fn(usize) -> Origin,
        combined: &regex_automata::hybrid::BuildError,
    ) -> SelinuxError {
        for &index in ids {
            if let Err(e) = builder.build(&patterns[index]) {
                let o = origin(index);
                return SelinuxError::Regex {
                    path: o.path,
                    line: o.line,
                    regex: cut(&o.regex, 200),
                    reason: describe(&e),
                };
            }
        }
        SelinuxError::Build {
            patterns: ids.len(),
            reason: describe(combined),
        }
    }

    /// The index of the winning pattern for `key`, if any matches.
    pub(super) fn find(&mut self, key: &[u8]) -> Result<Option<usize>, String> {
        let dfa_hit = match &mut self.dfa {
            Some(part) => {
                let input = Input::new(key).anchored(Anchored::Yes);
                part.dfa
                    .try_search_fwd(&mut part.cache, &input)
                    .map_err(|e| e.to_string())?
                    .and_then(|m| part.ids.get(m.pattern().as_usize()).copied())
            }
            None => None,
        };
        for fallback in &self.fallbacks {
            if dfa_hit.is_some_and(|hit| fallback.index >= hit) {
                break;
            }
            if fallback.regex.is_match(key).unwrap_or(false) {
                return Ok(Some(fallback.index));
            }
        }
        Ok(dfa_hit)
    }

    /// How many patterns went to PCRE2.
    pub(super) fn fallback_count(&self) -> usize {
        self.fallbacks.len()
    }

    /// Memory of the DFA's NFA (for sizing [`MAX_NFA_SIZE`]).
    pub(super) fn nfa_memory(&self) -> usize {
        self.dfa
            .as_ref()
            .map_or(0, |d| d.dfa.get_nfa().memory_usage())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const DIRS: &[&str] = &["usr", "lib", "bin", "etc", "a", "b", "lib64"];
    const TYPES: &[&str] = &[".", ".", ".", "-", "d", "l"];

    fn origin(i: usize) -> Origin {
        Origin {
            path: "test".into(),
            line: i + 1,
            regex: String::new(),
        }
    }

    /// A pattern in file_contexts style, `lookaround` allowing PCRE2-only ones.
    fn pattern(rng: &mut Rng, lookaround: bool) -> String {
        let (d1, d2, d3) = (rng.pick(DIRS), rng.pick(DIRS), rng.pick(DIRS));
        let body = match rng.below(if lookaround { 8 } else { 7 }) {
            0 => format!("/{d1}/{d2}"),
            1 => format!("/{d1}(/.*)?"),
            2 => format!("/{d1}/[^/]*"),
            3 => format!("/{d1}/{d2}.*"),
            4 => format!("/{d1}/({d2}|{d3})/.*"),
            5 => format!("/{d1}/{d2}?{d3}"),
            6 => format!("/{d1}/.*/{d2}"),
            _ => format!("/{d1}/(?!{d2}).*"),
        };
        format!("^({body}){}$", rng.pick(TYPES))
    }

    fn key(rng: &mut Rng) -> Vec<u8> {
        let mut key = Vec::new();
        for _ in 0..=rng.below(4) {
            key.push(b'/');
            key.extend_from_slice(rng.pick(DIRS).as_bytes());
        }
        key.extend_from_slice(rng.pick(&["-", "d", "l", "p"]).as_bytes());
        key
    }

    /// The matcher agrees with "first matching pattern" computed pattern by
    /// pattern with PCRE2.
    fn agrees_with_pcre2(lookaround: bool, seed: u64) {
        let mut rng = Rng(seed);
        let mut patterns: Vec<String> = (0..300).map(|_| pattern(&mut rng, lookaround)).collect();
        patterns.push("^(/.*).$".to_owned());
        let oracle: Vec<pcre2::bytes::Regex> = patterns
            .iter()
            .map(|p| pcre2::bytes::Regex::new(p).unwrap())
            .collect();
        let mut matcher = Matcher::build(&patterns, &origin).unwrap();
        assert_eq!(matcher.fallback_count() > 0, lookaround);
        let mut hits = 0;
        for _ in 0..3000 {
            let key = key(&mut rng);
            let want = oracle.iter().position(|r| r.is_match(&key).unwrap());
            let got = matcher.find(&key).unwrap();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&key));
            hits += usize::from(got.is_some_and(|i| i > 0));
        }
        assert!(hits > 100, "too few interesting keys: {hits}");
    }

    #[test]
    fn dfa_picks_the_first_matching_pattern() {
        agrees_with_pcre2(false, 0x9e37_79b9_7f4a_7c15);
    }

    #[test]
    fn lookaround_goes_to_pcre2_and_keeps_priority() {
        agrees_with_pcre2(true, 0x2545_f491_4f6c_dd1d);
        let patterns = [
            "^(/etc/hostname).$",
            "^(/etc/(?!shadow).*).$",
            "^(/usr/bin/good).$",
            "^(/usr/bin/(?!bad).*).$",
            "^(/usr.*).$",
            "^(/.*).$",
        ]
        .map(String::from);
        let mut m = Matcher::build(&patterns, &origin).unwrap();
        assert_eq!(m.fallback_count(), 2);
        for (key, want) in [
            (&b"/etc/hostname-"[..], Some(0)),
            (b"/etc/passwd-", Some(1)),
            (b"/etc/shadow-", Some(5)),
            (b"/usr/bin/good-", Some(2)),
            (b"/usr/bin/ls-", Some(3)),
            (b"/usr/bin/bad-", Some(4)),
            (b"x", None),
        ] {
            assert_eq!(
                m.find(key).unwrap(),
                want,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn newline_and_invalid_utf8_match_dot() {
        let patterns = ["^(/a.b).$".to_owned()];
        let mut m = Matcher::build(&patterns, &origin).unwrap();
        assert_eq!(m.find(b"/a\nb-").unwrap(), Some(0));
        assert_eq!(m.find(b"/a\xffb-").unwrap(), Some(0));
        assert_eq!(m.find(b"/a\0b-").unwrap(), None);
    }
}
