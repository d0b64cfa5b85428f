//! Tests of tar splitting and layer import.
