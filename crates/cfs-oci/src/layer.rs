//! Tar layers as split streams (in progress).
