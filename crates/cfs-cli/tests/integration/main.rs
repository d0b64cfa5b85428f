//! CLI and kernel-level integration tests, one binary with submodules.
#![allow(clippy::print_stderr, clippy::print_stdout)]

#[path = "../../../../tests/fixtures/corpus.rs"]
mod corpus;

mod boot;
mod boot_interop;
mod cli;
mod compat;
mod crash;
mod crash_gc;
mod crash_oci;
mod debian_os;
mod mount;
mod mount_overlay;
mod newcomer;
mod oci;
mod oci_hardening;
mod oci_interop;
mod oci_support;
mod oci_tree;
mod repo;
mod repo_hardening;
mod repo_interop;
mod setup_root;
#[path = "../../../../tests/fixtures/stub_registry.rs"]
#[allow(dead_code)]
mod stub_registry;
mod support;
mod system;
mod system_field;
mod system_model;
mod verity;
