//! Fuzzes the composefs-dump parser: any input must give a tree or an error,
//! never a panic; a tree it gives must be valid, print, and re-parse to a tree
//! that prints the same.

#![no_main]

use cfs_core::dumpfile::{ParseOptions, parse_dumpfile, write_dumpfile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for strict in [false, true] {
        let opts = ParseOptions { strict };
        let Ok(fs) = parse_dumpfile(data, &opts) else {
            continue;
        };
        fs.validate().expect("parser produced an invalid tree");
        let mut printed = Vec::new();
        write_dumpfile(&fs, &mut printed).expect("printing failed");
        let again = parse_dumpfile(&printed[..], &ParseOptions::default())
            .expect("printed dump does not re-parse");
        let mut printed2 = Vec::new();
        write_dumpfile(&again, &mut printed2).expect("printing failed");
        assert!(printed == printed2, "print → parse → print is not stable");
    }
});
