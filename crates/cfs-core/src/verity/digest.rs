//! fs-verity digest values: algorithm, raw bytes, hex form and object-store path.
//!
//! A digest is 32 bytes (SHA-256) or 64 bytes (SHA-512). Hex is lowercase on
//! output and accepted in either case on input. Objects in a store are named
//! `XX/<rest>`: the first byte in hex, a slash, then the remaining bytes in hex
//! (62 characters for SHA-256, 126 for SHA-512).

use std::fmt;

/// The hash function of an fs-verity Merkle tree (block size is always 4096, no salt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, kernel algorithm id 1, 32-byte digests.
    Sha256,
    /// SHA-512, kernel algorithm id 2, 64-byte digests.
    Sha512,
}

impl Algorithm {
    /// The kernel's `FS_VERITY_HASH_ALG_*` number.
    pub const fn kernel_id(self) -> u8 {
        match self {
            Algorithm::Sha256 => 1,
            Algorithm::Sha512 => 2,
        }
    }

    /// Algorithm for a kernel `FS_VERITY_HASH_ALG_*` number.
    pub const fn from_kernel_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Algorithm::Sha256),
            2 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// Digest length in bytes (32 or 64).
    pub const fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    /// Algorithm whose digests have `len` bytes.
    pub const fn from_digest_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(Algorithm::Sha256),
            64 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// Short name as used by `fsverity digest`: `sha256` / `sha512`.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error parsing a hex digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestParseError {
    /// The text has a length that is not 64 or 128 hex characters (or not the one asked for).
    #[error("invalid digest length: expected {expected} hex characters, found {found}")]
    Length {
        /// What was expected, in words ("64", "64 or 128").
        expected: &'static str,
        /// The number of characters found.
        found: usize,
    },
    /// A character that is not a hex digit.
    #[error("invalid hex character {found:?} at position {position} of a digest")]
    NotHex {
        /// Byte position in the text.
        position: usize,
        /// The offending character.
        found: char,
    },
    /// An object path not of the form `XX/<rest>`.
    #[error("invalid object path {0:?}: expected XX/<hex digest rest>")]
    ObjectPath(String),
}

/// An fs-verity digest of either algorithm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    bytes: [u8; 64],
}

impl Digest {
    /// Builds a digest from raw bytes; the length (32 or 64) selects the algorithm.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let algorithm = Algorithm::from_digest_len(bytes.len())?;
        let mut buf = [0u8; 64];
        buf.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(Digest {
            algorithm,
            bytes: buf,
        })
    }

    /// A SHA-256 digest from its 32 bytes.
    pub fn sha256(bytes: [u8; 32]) -> Self {
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&bytes);
        Digest {
            algorithm: Algorithm::Sha256,
            bytes: buf,
        }
    }

    /// A SHA-512 digest from its 64 bytes.
    pub fn sha512(bytes: [u8; 64]) -> Self {
        Digest {
            algorithm: Algorithm::Sha512,
            bytes,
        }
    }

    /// The algorithm this digest was made with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw digest bytes (32 or 64).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.algorithm.digest_len()]
    }

    /// Parses 64 (SHA-256) or 128 (SHA-512) hex characters, either case.
    pub fn from_hex(text: &str) -> Result<Self, DigestParseError> {
        let algorithm = match text.len() {
            64 => Algorithm::Sha256,
            128 => Algorithm::Sha512,
            found => {
                return Err(DigestParseError::Length {
                    expected: "64 or 128",
                    found,
                });
            }
        };
        Self::from_hex_with(algorithm, text)
    }

    /// Parses the hex form of a digest of a given algorithm.
    pub fn from_hex_with(algorithm: Algorithm, text: &str) -> Result<Self, DigestParseError> {
        let len = algorithm.digest_len();
        if text.len() != 2 * len {
            return Err(DigestParseError::Length {
                expected: match algorithm {
                    Algorithm::Sha256 => "64",
                    Algorithm::Sha512 => "128",
                },
                found: text.len(),
            });
        }
        let mut bytes = [0u8; 64];
        decode_hex_into(text.as_bytes(), &mut bytes[..len], 0)?;
        Ok(Digest { algorithm, bytes })
    }

    /// Lowercase hex of the digest.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(2 * self.as_bytes().len());
        push_hex(&mut s, self.as_bytes());
        s
    }

    /// `<algorithm>:<hex>`, e.g. `sha512:3a7b…`, the form of `fsverity digest`
    /// (for messages that must say which algorithm a digest belongs to).
    pub fn to_prefixed(&self) -> String {
        format!("{}:{}", self.algorithm(), self.to_hex())
    }

    /// The object-store path `XX/<rest>` of this digest.
    pub fn object_path(&self) -> String {
        let bytes = self.as_bytes();
        let mut s = String::with_capacity(2 * bytes.len() + 1);
        push_hex(&mut s, &bytes[..1]);
        s.push('/');
        push_hex(&mut s, &bytes[1..]);
        s
    }

    /// Parses an object path `XX/<rest>` (as made by [`Digest::object_path`]).
    pub fn from_object_path(path: &str) -> Result<Self, DigestParseError> {
        let bad = || DigestParseError::ObjectPath(path.to_owned());
        let (dir, rest) = path.split_once('/').ok_or_else(bad)?;
        if dir.len() != 2 || !(rest.len() == 62 || rest.len() == 126) {
            return Err(bad());
        }
        let mut hex = String::with_capacity(dir.len() + rest.len());
        hex.push_str(dir);
        hex.push_str(rest);
        Self::from_hex(&hex).map_err(|_| bad())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the lowercase hex form of `bytes` to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// Value of one hex digit (either case).
pub const fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `2 * out.len()` hex characters of `text` into `out`; `offset` is added
/// to positions reported in errors.
fn decode_hex_into(text: &[u8], out: &mut [u8], offset: usize) -> Result<(), DigestParseError> {
    for (i, (pair, byte)) in text.chunks_exact(2).zip(out.iter_mut()).enumerate() {
        let digit = |j: usize| {
            let c = pair[j];
            hex_value(c).ok_or(DigestParseError::NotHex {
                position: offset + 2 * i + j,
                found: char::from(c),
            })
        };
        *byte = (digit(0)? << 4) | digit(1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_object_path() {
        let hex = "0b6aeb8072e1260ee430edff44a4939b9a306ff4d0fd58d8b3ec40abf3ea7636";
        let d = Digest::from_hex(hex).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_hex(), hex);
        assert_eq!(d.object_path(), format!("0b/{}", &hex[2..]));
        assert_eq!(Digest::from_object_path(&d.object_path()).unwrap(), d);
        let upper = Digest::from_hex(&hex.to_uppercase()).unwrap();
        assert_eq!(upper, d);
    }

    #[test]
    fn sha512_lengths() {
        let hex = "ab".repeat(64);
        let d = Digest::from_hex(&hex).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.as_bytes().len(), 64);
        assert_eq!(d.object_path().len(), 129);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            Digest::from_hex("abc"),
            Err(DigestParseError::Length { found: 3, .. })
        ));
        let mut bad = "0".repeat(64);
        bad.replace_range(10..11, "g");
        assert_eq!(
            Digest::from_hex(&bad),
            Err(DigestParseError::NotHex {
                position: 10,
                found: 'g'
            })
        );
        assert!(Digest::from_object_path("0b6aeb").is_err());
        assert!(Digest::from_hex_with(Algorithm::Sha512, &"0".repeat(64)).is_err());
    }
}
