//! Streaming userspace computation of fs-verity digests (4096-byte blocks, no salt).
//!
//! Level 0 of the Merkle tree is the list of hashes of the file's 4096-byte
//! data blocks (the last one zero-padded). Each higher level is the list of
//! hashes of the 4096-byte blocks formed by concatenating the hashes of the
//! level below (again zero-padding the last block), up to a level holding a
//! single hash: the root. An empty file has an all-zero root. The root is then
//! wrapped in the 256-byte descriptor (see [`super::block`]) whose hash is the
//! digest.
//!
//! Memory is constant: [`TreeBuilder`] keeps one partially filled block per
//! level (at most 8 levels for a 2⁶⁴-byte file), [`FsVerityHasher`] one
//! partial data block. Full data blocks are hashed straight from the caller's
//! buffer.

use std::io::{self, Read, Write};

use super::block::{
    BLOCK_SIZE, MAX_DIGEST, descriptor_digest, hash_block, hash_blocks, hashes_per_block,
    split_blocks,
};
use super::digest::{Algorithm, Digest};

/// Leaves hashed per call of [`hash_blocks`] (a multiple of 4).
const LEAF_BATCH: usize = 16;

/// One level of the tree under construction: the block currently being filled
/// with hashes of the level below, and how many hashes the level has received.
#[derive(Debug)]
struct Level {
    buf: Box<[u8; BLOCK_SIZE]>,
    len: usize,
    count: u64,
}

impl Level {
    fn new() -> Self {
        Level {
            buf: Box::new([0u8; BLOCK_SIZE]),
            len: 0,
            count: 0,
        }
    }
}

/// Upper part of a Merkle tree: receives level-0 hashes (hashes of data
/// blocks) in file order and folds them into the root.
///
/// `levels[i]` collects the hashes of tree level `i`; a full block of level
/// `i` is hashed at once and pushed to level `i + 1`.
#[derive(Debug)]
pub(crate) struct TreeBuilder {
    alg: Algorithm,
    levels: Vec<Level>,
}

impl TreeBuilder {
    pub(crate) fn new(alg: Algorithm) -> Self {
        TreeBuilder {
            alg,
            levels: Vec::new(),
        }
    }

    /// Appends one hash (`alg.digest_len()` bytes) to tree level `level`.
    pub(crate) fn push(&mut self, mut level: usize, hash: &[u8]) {
        let d = self.alg.digest_len();
        let mut carry = [0u8; MAX_DIGEST];
        carry[..d].copy_from_slice(&hash[..d]);
        loop {
            while self.levels.len() <= level {
                self.levels.push(Level::new());
            }
            let l = &mut self.levels[level];
            l.buf[l.len..l.len + d].copy_from_slice(&carry[..d]);
            l.len += d;
            l.count += 1;
            if l.len < BLOCK_SIZE {
                return;
            }
            hash_block(self.alg, &l.buf, &mut carry);
            l.len = 0;
            level += 1;
        }
    }

    /// Appends the level-1 hash of a full group of `hashes_per_block(alg)`
    /// level-0 hashes that were folded by the caller. Level 0 must be at a
    /// group boundary (no partially filled block).
    pub(crate) fn push_group(&mut self, level1_hash: &[u8]) {
        if self.levels.is_empty() {
            self.levels.push(Level::new());
        }
        let l0 = &mut self.levels[0];
        debug_assert_eq!(l0.len, 0, "push_group off a group boundary");
        l0.count += hashes_per_block(self.alg) as u64;
        self.push(1, level1_hash);
    }

    /// Finishes the tree and writes the root hash into `root[..digest_len]`
    /// (all zeros if no hash was ever pushed, i.e. for an empty file).
    pub(crate) fn finish(mut self, root: &mut [u8; MAX_DIGEST]) {
        let d = self.alg.digest_len();
        *root = [0u8; MAX_DIGEST];
        let mut level = 0;
        while let Some(l) = self.levels.get_mut(level) {
            match l.count {
                0 => return,
                1 => {
                    // A level with a single hash never filled a block, so the
                    // hash is still in the buffer and no higher level exists.
                    root[..d].copy_from_slice(&l.buf[..d]);
                    return;
                }
                _ => {
                    if l.len > 0 {
                        l.buf[l.len..].fill(0);
                        let mut h = [0u8; MAX_DIGEST];
                        hash_block(self.alg, &l.buf, &mut h);
                        l.len = 0;
                        self.push(level + 1, &h);
                    }
                    level += 1;
                }
            }
        }
    }
}

/// Streaming fs-verity digest computation (4096-byte blocks, no salt).
///
/// Feed the file content in any chunking with [`update`](Self::update) (or
/// through [`Write`]); [`finalize`](Self::finalize) returns the digest that
/// `FS_IOC_MEASURE_VERITY` would report once verity is enabled on the file.
#[derive(Debug)]
pub struct FsVerityHasher {
    tree: TreeBuilder,
    size: u64,
    pending: Box<[u8; BLOCK_SIZE]>,
    pending_len: usize,
}

impl FsVerityHasher {
    /// A hasher for an empty file of the given algorithm.
    pub fn new(alg: Algorithm) -> Self {
        FsVerityHasher {
            tree: TreeBuilder::new(alg),
            size: 0,
            pending: Box::new([0u8; BLOCK_SIZE]),
            pending_len: 0,
        }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> Algorithm {
        self.tree.alg
    }

    /// Number of bytes fed so far.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether no byte has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Appends `data` to the file content.
    pub fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        let alg = self.tree.alg;
        let mut hash = [0u8; MAX_DIGEST];
        if self.pending_len > 0 {
            let take = (BLOCK_SIZE - self.pending_len).min(data.len());
            let (head, rest) = data.split_at(take);
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(head);
            self.pending_len += take;
            data = rest;
            if self.pending_len < BLOCK_SIZE {
                return;
            }
            hash_block(alg, &self.pending, &mut hash);
            self.tree.push(0, &hash);
            self.pending_len = 0;
        }
        let (blocks, rest) = split_blocks(data);
        // Leaves are independent: hash a batch of them together.
        let d = alg.digest_len();
        let mut hashes = [0u8; LEAF_BATCH * MAX_DIGEST];
        for batch in blocks.chunks(LEAF_BATCH) {
            let out = &mut hashes[..batch.len() * d];
            hash_blocks(alg, batch, out);
            for h in out.chunks_exact(d) {
                self.tree.push(0, h);
            }
        }
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// Finishes the tree and returns the fs-verity digest.
    pub fn finalize(mut self) -> Digest {
        let alg = self.tree.alg;
        if self.pending_len > 0 {
            self.pending[self.pending_len..].fill(0);
            let mut hash = [0u8; MAX_DIGEST];
            hash_block(alg, &self.pending, &mut hash);
            self.tree.push(0, &hash);
        }
        let mut root = [0u8; MAX_DIGEST];
        self.tree.finish(&mut root);
        descriptor_digest(alg, self.size, &root)
    }
}

impl Write for FsVerityHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The fs-verity digest of `data`.
pub fn digest_bytes(alg: Algorithm, data: &[u8]) -> Digest {
    let mut h = FsVerityHasher::new(alg);
    h.update(data);
    h.finalize()
}

/// Read buffer size of [`digest_reader`].
const READ_BUF: usize = 256 * 1024;

/// The fs-verity digest of everything `r` yields until end of file.
pub fn digest_reader(alg: Algorithm, mut r: impl Read) -> io::Result<Digest> {
    let mut h = FsVerityHasher::new(alg);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(h.finalize()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
