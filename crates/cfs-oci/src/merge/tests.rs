//! Tests of the layer merge.
