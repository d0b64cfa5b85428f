//! Reading layer split streams as tar entries without re-hashing external
//! objects (their digests are in the stream).
