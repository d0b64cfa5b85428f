//! Fuzzes the EROFS reader: any input must give a tree or an error, never a
//! panic, and a tree it gives must be valid and printable.
//!
//! The input is used twice: as is (header and size checks), and with its
//! length rounded down to whole blocks and the superblock block count fixed
//! up, so that mutations reach the inode, xattr and directory code instead of
//! failing the size check.

#![no_main]

use cfs_core::dumpfile::write_dumpfile;
use cfs_core::erofs::reader::{Image, ReadOptions, read_image, referenced_objects};
use libfuzzer_sys::fuzz_target;

fn check(data: &[u8]) {
    let opts = ReadOptions::default();
    if let Ok((fs, _)) = read_image(data, &opts) {
        fs.validate().expect("reader produced an invalid tree");
        write_dumpfile(&fs, std::io::sink()).expect("printing a read tree failed");
    }
    if let Ok(image) = Image::open(data) {
        let _ = referenced_objects(&image, &opts);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let blocks = data.len() / 4096;
    if blocks > 0 && data.len() >= 1024 + 40 {
        let mut fixed = data[..blocks * 4096].to_vec();
        fixed[1024 + 36..1024 + 40].copy_from_slice(&(blocks as u32).to_le_bytes());
        check(&fixed);
    }
});
