//! Repository checks (in progress).
