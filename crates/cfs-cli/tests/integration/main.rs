//! CLI and kernel-level integration tests, one binary with submodules.
#![allow(clippy::print_stderr, clippy::print_stdout)]

#[path = "../../../../tests/fixtures/corpus.rs"]
mod corpus;

mod cli;
mod compat;
mod crash;
mod crash_gc;
mod crash_oci;
mod mount;
mod mount_overlay;
mod oci;
mod oci_interop;
mod oci_support;
mod oci_tree;
mod repo;
mod repo_interop;
mod support;
mod verity;
