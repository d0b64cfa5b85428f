//! CLI and kernel-level integration tests, one binary with submodules.
#![allow(clippy::print_stderr, clippy::print_stdout)]

mod cli;
mod compat;
mod mount;
mod support;
