//! Every (pristine, current, new) combination of entry types at one path,
//! built on disk, merged, and checked against the oracle.

use super::{Fx, M, dir, file, oracle, read, snapshot};
use crate::etc_merge::MergeError;

/// The six values of the brief: absent, file A, file B, directory,
/// symlink, FIFO.
fn six() -> Vec<(&'static str, Option<M>)> {
    vec![
        ("absent", None),
        ("fileA", Some(file("A", 0o644))),
        ("fileB", Some(file("B", 0o644))),
        ("dir", Some(dir(&[("inner", file("X", 0o644))], 0o755))),
        ("link", Some(M::Link("target-a".into()))),
        ("fifo", Some(M::Fifo(0o644))),
    ]
}

/// More variants, so that directories differ inside and in metadata,
/// files in mode only, links in target.
fn extended() -> Vec<(&'static str, Option<M>)> {
    let mut v = six();
    v.extend([
        ("fileA600", Some(file("A", 0o600))),
        ("dirY", Some(dir(&[("inner", file("Y", 0o644))], 0o755))),
        ("dir700", Some(dir(&[("inner", file("X", 0o644))], 0o700))),
        (
            "dirXK",
            Some(dir(
                &[("inner", file("X", 0o644)), ("keep", file("K", 0o644))],
                0o755,
            )),
        ),
        ("linkB", Some(M::Link("target-b".into()))),
    ]);
    v
}

/// Runs one combination; returns whether it was a conflict.
fn run(names: [&str; 3], values: [&Option<M>; 3]) -> bool {
    let root = |v: &Option<M>| match v {
        Some(m) => dir(&[("x", m.clone())], 0o755),
        None => dir(&[], 0o755),
    };
    let [p, c, n] = values.map(root);
    let fx = Fx::from_models(&p, &c, &n);
    let mut conflicts = Vec::new();
    let expected = oracle(Some(&p), Some(&c), Some(&n), "", &mut conflicts);
    let before = [snapshot(&fx.p), snapshot(&fx.c), snapshot(&fx.n)];
    let plan = fx
        .plan()
        .unwrap_or_else(|e| panic!("{names:?}: plan failed: {e}"));
    let got: Vec<String> = plan
        .conflicts()
        .iter()
        .map(|c| c.path.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, conflicts, "{names:?}: conflicts; plan {plan:?}");
    assert_eq!(
        snapshot(&fx.n),
        before[2],
        "{names:?}: the dry run changed new"
    );
    if conflicts.is_empty() {
        fx.apply(&plan)
            .unwrap_or_else(|e| panic!("{names:?}: apply failed: {e}"));
    } else {
        let err = fx.apply(&plan).unwrap_err();
        assert!(matches!(err, MergeError::Conflicts(_)), "{names:?}: {err}");
        assert!(
            err.to_string()
                .contains("x is a directory with local changes"),
            "{err}"
        );
        assert_eq!(
            snapshot(&fx.n),
            before[2],
            "{names:?}: a refused apply changed new"
        );
    }
    assert_eq!(read(&fx.n), expected, "{names:?}: result; plan {plan:?}");
    assert_eq!(snapshot(&fx.p), before[0], "{names:?}: pristine changed");
    assert_eq!(snapshot(&fx.c), before[1], "{names:?}: current changed");
    !conflicts.is_empty()
}

fn run_all(values: &[(&'static str, Option<M>)]) -> (usize, usize) {
    let (mut total, mut conflicts) = (0, 0);
    for (pn, pv) in values {
        for (cn, cv) in values {
            for (nn, nv) in values {
                total += 1;
                conflicts += usize::from(run([pn, cn, nn], [pv, cv, nv]));
            }
        }
    }
    (total, conflicts)
}

#[test]
fn all_216_type_combinations() {
    let (total, conflicts) = run_all(&six());
    assert_eq!(total, 216);
    // The one directory value is never changed inside, so pristine dir →
    // current dir is always "unchanged": no conflict among these.
    assert_eq!(conflicts, 0);
}

#[test]
fn all_1331_combinations_with_content_and_metadata_variants() {
    let (total, conflicts) = run_all(&extended());
    assert_eq!(total, 11 * 11 * 11);
    // Conflicts: pristine one of 4 directories, current a different one
    // (3), new one of 6 non-directories: 4 × 3 × 6.
    assert_eq!(conflicts, 72);
}

/// A few rows of the module table spelled out, so that a mistake shared by
/// the oracle and the code would still show.
#[test]
fn table_rows_by_hand() {
    let d = |inner: &str| dir(&[("inner", file(inner, 0o644))], 0o755);
    let link = M::Link("t".into());
    let cases: Vec<([Option<M>; 3], Option<M>)> = vec![
        // Row 1: untouched locally, the image's type change wins.
        (
            [Some(d("X")), Some(d("X")), Some(link.clone())],
            Some(link.clone()),
        ),
        ([Some(file("A", 0o644)), Some(file("A", 0o644)), None], None),
        // Row 2: removed locally, even though upstream changed it.
        ([Some(d("X")), None, Some(d("Z"))], None),
        // Row 3: a local edit beats an upstream type change.
        (
            [Some(file("A", 0o644)), Some(file("B", 0o644)), Some(d("Z"))],
            Some(file("B", 0o644)),
        ),
        // Row 5: upstream deleted the directory, the local edit is kept.
        ([Some(d("X")), Some(d("Y")), None], Some(d("Y"))),
        // Row 8: a local directory replaces upstream's new symlink.
        ([None, Some(d("Y")), Some(link.clone())], Some(d("Y"))),
    ];
    for (i, ([p, c, n], want)) in cases.iter().enumerate() {
        let wrap = |v: &Option<M>| match v {
            Some(m) => dir(&[("x", m.clone())], 0o755),
            None => dir(&[], 0o755),
        };
        let fx = Fx::from_models(&wrap(p), &wrap(c), &wrap(n));
        fx.merge().unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(read(&fx.n.join("x")), *want, "case {i}");
    }
}
