//! Random small trees: pristine, and current and new as random edits of
//! it; the merge must agree with the oracle and with the invariants
//! stated directly (unchanged paths take new's version, changed ones
//! current's).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{Fx, M, oracle, read, snapshot};

/// A tiny deterministic generator for the edits (proptest picks seeds).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const NAMES: [&str; 3] = ["a", "b", "c"];

fn leaf(rng: &mut Rng) -> M {
    match rng.below(4) {
        0 | 1 => M::File(
            ["1", "2"][rng.below(2) as usize].to_owned(),
            [0o644, 0o600][rng.below(2) as usize],
        ),
        2 => M::Link(["t1", "t2"][rng.below(2) as usize].to_owned()),
        _ => M::Fifo(0o644),
    }
}

fn fresh(rng: &mut Rng, depth: u32) -> M {
    if depth == 0 || rng.below(3) != 0 {
        return leaf(rng);
    }
    let mut entries = BTreeMap::new();
    for name in NAMES {
        if rng.below(2) == 0 {
            entries.insert(name.to_owned(), fresh(rng, depth - 1));
        }
    }
    M::Dir(entries, [0o755, 0o700][rng.below(2) as usize])
}

/// `m` with random edits (removals, replacements, additions, mode flips).
fn edit(m: &M, rng: &mut Rng, depth: u32) -> Option<M> {
    match rng.below(10) {
        0 => return None,
        1 => return Some(fresh(rng, depth)),
        _ => {}
    }
    match m {
        M::Dir(entries, mode) => {
            let mut out = BTreeMap::new();
            for name in NAMES {
                let child = match entries.get(name) {
                    Some(child) => edit(child, rng, depth.saturating_sub(1)),
                    None if rng.below(6) == 0 => Some(fresh(rng, depth.saturating_sub(1))),
                    None => None,
                };
                if let Some(child) = child {
                    out.insert(name.to_owned(), child);
                }
            }
            let mode = if rng.below(8) == 0 {
                mode ^ 0o055
            } else {
                *mode
            };
            Some(M::Dir(out, mode))
        }
        M::File(content, mode) if rng.below(6) == 0 => Some(M::File(content.clone(), mode ^ 0o044)),
        other => Some(other.clone()),
    }
}

fn root(entries: BTreeMap<String, M>) -> M {
    M::Dir(entries, 0o755)
}

/// The trees: pristine random, current and new edited from it.
fn trees(seed: u64) -> (M, M, M) {
    let mut rng = Rng(seed | 1);
    let p = match fresh(&mut rng, 3) {
        M::Dir(e, _) => root(e),
        leaf => root(BTreeMap::from([("a".to_owned(), leaf)])),
    };
    let edit_root = |rng: &mut Rng| match edit(&p, rng, 3) {
        Some(M::Dir(e, _)) => root(e),
        _ => root(BTreeMap::new()),
    };
    let c = edit_root(&mut rng);
    let n = edit_root(&mut rng);
    (p, c, n)
}

fn at<'a>(m: &'a M, path: &[&str]) -> Option<&'a M> {
    match path.split_first() {
        None => Some(m),
        Some((first, rest)) => match m {
            M::Dir(e, _) => e.get(*first).and_then(|c| at(c, rest)),
            _ => None,
        },
    }
}

fn all_paths(m: &M, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let M::Dir(e, _) = m {
        for (name, child) in e {
            prefix.push(name.clone());
            out.push(prefix.clone());
            all_paths(child, prefix, out);
            prefix.pop();
        }
    }
}

/// The rules stated path by path, where every ancestor is a directory in
/// all three trees (elsewhere an ancestor's rule decides).
fn check_invariants(p: &M, c: &M, n: &M, r: &M) {
    let mut paths = Vec::new();
    for t in [p, c, n] {
        all_paths(t, &mut Vec::new(), &mut paths);
    }
    paths.sort();
    paths.dedup();
    for path in paths {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let parents_are_dirs = (0..path.len()).all(|i| {
            [p, c, n]
                .iter()
                .all(|t| matches!(at(t, &path[..i]), Some(M::Dir(..))))
        });
        if !parents_are_dirs {
            continue;
        }
        let [pv, cv, nv, rv] = [p, c, n, r].map(|t| at(t, &path));
        let shown = path.join("/");
        if pv == cv {
            assert_eq!(rv, nv, "{shown}: unchanged locally must keep new's");
        } else if cv.is_none() {
            assert_eq!(rv, None, "{shown}: removed locally");
        } else if let Some(M::Dir(_, cm)) = cv {
            let rm = match (pv, nv, rv) {
                (_, _, Some(M::Dir(_, rm))) => rm,
                // The image deleted the directory and the admin only
                // removed entries inside: nothing to keep.
                (Some(M::Dir(_, pm)), None, None) if pm == cm => continue,
                _ => panic!("{shown}: a local directory must stay a directory, got {rv:?}"),
            };
            match pv {
                Some(M::Dir(_, pm)) if pm == cm => {
                    if let Some(M::Dir(_, nm)) = nv {
                        assert_eq!(rm, nm, "{shown}: mode not changed locally");
                    }
                }
                _ => assert_eq!(rm, cm, "{shown}: mode changed locally"),
            }
        } else {
            assert_eq!(rv, cv, "{shown}: changed locally must be current's");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_trees_merge_as_the_rules_say(seed in any::<u64>()) {
        let (p, c, n) = trees(seed);
        let fx = Fx::from_models(&p, &c, &n);
        let mut conflicts = Vec::new();
        let expected = oracle(Some(&p), Some(&c), Some(&n), "", &mut conflicts);
        let before = snapshot(&fx.n);
        let plan = fx.plan().unwrap();
        prop_assert_eq!(snapshot(&fx.n), before.clone());
        let got: Vec<String> = plan
            .conflicts()
            .iter()
            .map(|c| c.path.to_str().unwrap().to_owned())
            .collect();
        prop_assert_eq!(&got, &conflicts);
        if conflicts.is_empty() {
            fx.apply(&plan).unwrap();
            let result = read(&fx.n).unwrap();
            prop_assert_eq!(Some(&result), expected.as_ref());
            check_invariants(&p, &c, &n, &result);
        } else {
            prop_assert!(fx.apply(&plan).is_err());
            prop_assert_eq!(snapshot(&fx.n), before);
        }
        prop_assert_eq!(read(&fx.c), Some(c));
    }
}
