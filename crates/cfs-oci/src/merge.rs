//! Merging layers into a tree (in progress).
